//! HTTPS serving end to end (spec security.md §8): the real binary as an ESS, with the
//! generated certificate, a configured one, `both`, and the Unix-socket modes.
//! Self-contained on purpose (does not use tests/common).

use base64::Engine as _;
use std::fs;
use std::io::{Read, Write};
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

const START_DEADLINE: Duration = Duration::from_secs(60);
const USER: &str = "org/admin";
const PASSWORD: &str = "x";

/// A running node; killed (by its pid) when dropped, also when a test panics.
struct Node {
    child: Child,
    log: PathBuf,
    secure_port: u16,
    unsecure_port: u16,
}

impl Drop for Node {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Node {
    fn log(&self) -> String {
        fs::read_to_string(&self.log).unwrap_or_default()
    }

    fn https(&self, path: &str) -> String {
        format!("https://localhost:{}{path}", self.secure_port)
    }

    fn stop(mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("a free port")
}

fn command(root: &Path, log: &Path, env: &[(&str, String)]) -> Command {
    let mut command = Command::new(env!("CARGO_BIN_EXE_edge-sync-service"));
    command
        .arg("-c")
        .arg(root.join("no-such-sync.conf"))
        .env_clear()
        .env("NODE_TYPE", "ESS")
        .env("DESTINATION_TYPE", "edge")
        .env("DESTINATION_ID", "n1")
        .env("ORG_ID", "org")
        .env("COMMUNICATION_PROTOCOL", "http")
        .env("HTTP_CSS_HOST", "127.0.0.1")
        .env("HTTP_CSS_PORT", "9")
        .env("LISTENING_ADDRESS", "127.0.0.1")
        .env("PERSISTENCE_ROOT_PATH", root)
        .env("LOG_TRACE_DESTINATION", "stdout")
        .envs(env.iter().map(|(k, v)| (*k, v.as_str())))
        .stdin(Stdio::null());
    // The log lines (stdout) and the start-up errors (stderr), in one file in order.
    let output = fs::File::create(log).unwrap();
    command
        .stdout(Stdio::from(output.try_clone().unwrap()))
        .stderr(Stdio::from(output));
    command
}

/// Starts the node in `root` and waits until it has logged `listeners` bound listeners.
/// Ports are chosen here; a start that fails because a port was taken meanwhile is retried.
fn start(root: &Path, env: &[(&str, String)], listeners: usize) -> Node {
    for attempt in 0..5 {
        let log = root.join(format!("node-{}-{attempt}.log", std::process::id()));
        let secure_port = free_port();
        let unsecure_port = std::iter::repeat_with(free_port)
            .find(|&port| port != secure_port)
            .unwrap();
        let mut env = env.to_vec();
        env.push(("SECURE_LISTENING_PORT", secure_port.to_string()));
        env.push(("UNSECURE_LISTENING_PORT", unsecure_port.to_string()));
        let child = command(root, &log, &env).spawn().expect("start the binary");
        let mut node = Node {
            child,
            log,
            secure_port,
            unsecure_port,
        };
        let deadline = Instant::now() + START_DEADLINE;
        loop {
            if node.log().matches("edge-sync-service listening").count() >= listeners {
                return node;
            }
            if let Some(status) = node.child.try_wait().unwrap() {
                let log = node.log();
                if log.contains("cannot listen on") && log.contains("in use") {
                    break; // a port was taken between picking and binding: try others
                }
                panic!("node exited ({status}) before listening:\n{log}");
            }
            assert!(Instant::now() < deadline, "node did not start in time:\n{}", node.log());
            std::thread::sleep(Duration::from_millis(20));
        }
    }
    panic!("could not start the node on free ports");
}

/// Runs a node start-up expected to fail and returns its exit status and output.
fn start_failing(root: &Path, env: &[(&str, String)]) -> (std::process::ExitStatus, String) {
    let log = root.join("failing.log");
    let mut env = env.to_vec();
    env.push(("SECURE_LISTENING_PORT", free_port().to_string()));
    let child = command(root, &log, &env).spawn().expect("start the binary");
    let mut node = Node {
        child,
        log,
        secure_port: 0,
        unsecure_port: 0,
    };
    let deadline = Instant::now() + START_DEADLINE;
    loop {
        if let Some(status) = node.child.try_wait().unwrap() {
            return (status, node.log());
        }
        assert!(
            !node.log().contains("edge-sync-service listening"),
            "node started although it should not have:\n{}",
            node.log()
        );
        assert!(
            Instant::now() < deadline,
            "node neither failed nor started:\n{}",
            node.log()
        );
        std::thread::sleep(Duration::from_millis(20));
    }
}

fn trusting(cert_pem: &[u8]) -> reqwest::Client {
    reqwest::Client::builder()
        .add_root_certificate(reqwest::Certificate::from_pem(cert_pem).expect("certificate PEM"))
        .timeout(Duration::from_secs(20))
        .build()
        .unwrap()
}

async fn health_status(client: &reqwest::Client, url: &str) -> Result<u16, reqwest::Error> {
    let response = client.get(url).basic_auth(USER, Some(PASSWORD)).send().await?;
    Ok(response.status().as_u16())
}

fn generated_cert(root: &Path) -> Vec<u8> {
    fs::read(root.join("sync/certs/cert.pem")).expect("generated sync/certs/cert.pem")
}

fn mode(path: &Path) -> u32 {
    fs::metadata(path).unwrap().permissions().mode() & 0o777
}

/// A raw HTTP/1.1 health request over any stream; returns the status line.
async fn raw_health<S: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin>(mut stream: S) -> String {
    let credentials = base64::engine::general_purpose::STANDARD.encode(format!("{USER}:{PASSWORD}"));
    let request = format!(
        "GET /api/v1/health HTTP/1.1\r\nHost: localhost\r\n\
         Authorization: Basic {credentials}\r\nConnection: close\r\n\r\n"
    );
    stream.write_all(request.as_bytes()).await.unwrap();
    let mut response = Vec::new();
    let _ = tokio::time::timeout(Duration::from_secs(20), stream.read_to_end(&mut response)).await;
    String::from_utf8_lossy(&response)
        .lines()
        .next()
        .unwrap_or_default()
        .to_string()
}

#[tokio::test]
async fn ess_serves_https_with_a_generated_certificate_kept_across_restarts() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path();
    let node = start(root, &[], 1);
    let cert = generated_cert(root);
    assert!(String::from_utf8_lossy(&cert).contains("BEGIN CERTIFICATE"));
    assert_eq!(mode(&root.join("sync/certs/key.pem")), 0o600);
    assert_eq!(mode(&root.join("sync/certs")) & 0o027, 0);
    assert!(node.log().contains("sha256"), "fingerprint not logged:\n{}", node.log());

    let client = trusting(&cert);
    let url = node.https("/api/v1/health");
    assert_eq!(health_status(&client, &url).await.expect("HTTPS health"), 200);

    // A client that does not trust the certificate is refused.
    let untrusting = reqwest::Client::builder()
        .timeout(Duration::from_secs(20))
        .build()
        .unwrap();
    assert!(health_status(&untrusting, &url).await.is_err());
    // Garbage instead of a handshake does not stop the listener.
    {
        let mut junk = std::net::TcpStream::connect(("127.0.0.1", node.secure_port)).unwrap();
        junk.write_all(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n").unwrap();
        junk.set_read_timeout(Some(Duration::from_secs(20))).unwrap();
        let _ = junk.read(&mut [0u8; 64]);
    }
    // Nor does plain HTTP on the HTTPS port go anywhere.
    let plain = reqwest::Client::builder()
        .timeout(Duration::from_secs(20))
        .build()
        .unwrap();
    let plain_url = format!("http://127.0.0.1:{}/api/v1/health", node.secure_port);
    assert!(!matches!(health_status(&plain, &plain_url).await, Ok(200)));
    assert_eq!(
        health_status(&client, &url).await.expect("HTTPS health after junk"),
        200
    );
    node.stop();

    let node = start(root, &[], 1);
    assert_eq!(generated_cert(root), cert, "certificate must be reused on restart");
    let url = node.https("/api/v1/health");
    assert_eq!(
        health_status(&client, &url).await.expect("HTTPS health after restart"),
        200
    );
    node.stop();
}

#[tokio::test]
async fn both_serves_http_and_https() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path();
    let node = start(root, &[("LISTENING_TYPE", "both".to_string())], 2);
    let client = trusting(&generated_cert(root));
    assert_eq!(
        health_status(&client, &node.https("/api/v1/health")).await.unwrap(),
        200
    );
    let http_url = format!("http://127.0.0.1:{}/api/v1/health", node.unsecure_port);
    assert_eq!(health_status(&client, &http_url).await.unwrap(), 200);
    node.stop();
}

#[tokio::test]
async fn configured_certificate_files_are_served_and_nothing_is_generated() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path();
    let key = rcgen::KeyPair::generate().unwrap();
    let params = rcgen::CertificateParams::new(vec!["localhost".to_string()]).unwrap();
    let cert = params.self_signed(&key).unwrap();
    fs::create_dir_all(root.join("tls")).unwrap();
    fs::write(root.join("tls/server.crt"), cert.pem()).unwrap();
    fs::write(root.join("tls/server.key"), key.serialize_pem()).unwrap();
    let env = [
        ("SERVER_CERTIFICATE", "tls/server.crt".to_string()),
        ("SERVER_KEY", "tls/server.key".to_string()),
    ];
    let node = start(root, &env, 1);
    let client = trusting(cert.pem().as_bytes());
    assert_eq!(
        health_status(&client, &node.https("/api/v1/health")).await.unwrap(),
        200
    );
    assert!(!root.join("sync/certs/cert.pem").exists());
    node.stop();
}

#[test]
fn invalid_configured_certificate_is_a_start_up_error_naming_the_key() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path();
    let key = rcgen::KeyPair::generate().unwrap();
    let env = [
        ("SERVER_CERTIFICATE", "tls/missing.crt".to_string()),
        ("SERVER_KEY", key.serialize_pem()),
    ];
    let (status, output) = start_failing(root, &env);
    assert!(!status.success());
    assert!(
        output.contains("ServerCertificate") && output.contains("missing.crt"),
        "{output}"
    );
    assert!(!output.contains("panicked"), "{output}");

    let env = [
        (
            "SERVER_CERTIFICATE",
            "-----BEGIN CERTIFICATE-----\ngarbage\n-----END CERTIFICATE-----".to_string(),
        ),
        ("SERVER_KEY", key.serialize_pem()),
    ];
    let (status, output) = start_failing(root, &env);
    assert!(!status.success());
    assert!(output.contains("ServerCertificate"), "{output}");
}

#[tokio::test]
async fn unix_socket_gets_the_configured_permissions() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path();
    let env = [
        ("LISTENING_TYPE", "unix".to_string()),
        ("LISTENING_ADDRESS", "run/ess.sock".to_string()),
        ("UNIX_SOCKET_FILE_PERMISSIONS", "0600".to_string()),
    ];
    let node = start(root, &env, 1);
    let socket = root.join("run/ess.sock");
    assert_eq!(mode(&socket), 0o600);
    let stream = tokio::net::UnixStream::connect(&socket).await.unwrap();
    let status = raw_health(stream).await;
    assert!(status.starts_with("HTTP/1.1 200"), "{status}");
    // No certificate is needed for plain HTTP.
    assert!(!root.join("sync/certs/cert.pem").exists());
    node.stop();
}

#[tokio::test]
async fn secure_unix_serves_https_on_the_socket() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path();
    let env = [
        ("LISTENING_TYPE", "secure-unix".to_string()),
        ("LISTENING_ADDRESS", "ess.sock".to_string()),
        ("UNIX_SOCKET_FILE_PERMISSIONS", "0640".to_string()),
    ];
    let node = start(root, &env, 1);
    let socket = root.join("ess.sock");
    assert_eq!(mode(&socket), 0o640);

    use rustls::pki_types::pem::PemObject;
    let cert = rustls::pki_types::CertificateDer::from_pem_slice(&generated_cert(root)).unwrap();
    let mut roots = rustls::RootCertStore::empty();
    roots.add(cert).unwrap();
    let config = rustls::ClientConfig::builder_with_provider(Arc::new(rustls::crypto::ring::default_provider()))
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_root_certificates(roots)
        .with_no_client_auth();
    let connector = tokio_rustls::TlsConnector::from(Arc::new(config));
    let name = rustls::pki_types::ServerName::try_from("localhost").unwrap();
    let stream = tokio::net::UnixStream::connect(&socket).await.unwrap();
    let tls = connector
        .connect(name, stream)
        .await
        .expect("TLS handshake over the socket");
    let status = raw_health(tls).await;
    assert!(status.starts_with("HTTP/1.1 200"), "{status}");

    // Plain HTTP on the TLS socket gets no answer.
    let stream = tokio::net::UnixStream::connect(&socket).await.unwrap();
    let status = raw_health(stream).await;
    assert!(!status.contains("200"), "{status}");
    node.stop();
}
