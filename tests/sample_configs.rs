//! The sample configurations in packaging/ start real nodes as they are: only what must
//! differ on a test machine is overridden by environment variables (which win over the
//! file): free ports, a loopback bind address, a temporary persistence root, and the ESS's
//! CSS address. An ESS with ess.conf registers with a CSS with css.conf, through the
//! preset authenticator both samples choose.
//! Self-contained on purpose: the harness in tests/common sets most keys by environment
//! variables, which would hide the files' own values.

use std::fs;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

const START_DEADLINE: Duration = Duration::from_secs(60);
const ORG: &str = "myorg";
const ADMIN: (&str, &str) = ("myorg/admin", "admin-secret");
const APP: (&str, &str) = ("myorg/app", "app-secret");
const EDGE_KEY: &str = "myorg/edge/node1";
const EDGE_SECRET: &str = "edge-secret";

/// A running node; killed when dropped, also when a test panics.
struct Node {
    child: Child,
    log: PathBuf,
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
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("a free port")
}

fn sample(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("packaging").join(name)
}

/// Writes `preset` as the node's credentials file, starts the binary with the sample
/// `config` and exactly `env`, and waits until `health_url` answers 200 to `user`.
async fn start(
    root: &Path,
    config: &str,
    preset: serde_json::Value,
    env: &[(&str, String)],
    health_url: &str,
    user: (&str, &str),
) -> Node {
    fs::create_dir_all(root.join("sync")).unwrap();
    fs::write(root.join("sync/preset-auth.json"), preset.to_string()).unwrap();
    let log = root.join("node.log");
    // The samples log to stdout; start-up errors go to stderr.
    let output = fs::File::create(&log).unwrap();
    let child = Command::new(env!("CARGO_BIN_EXE_edge-sync-service"))
        .arg("-c")
        .arg(sample(config))
        .env_clear()
        .env("PERSISTENCE_ROOT_PATH", root)
        .env("NO_COLOR", "1")
        .envs(env.iter().map(|(k, v)| (*k, v.as_str())))
        .stdin(Stdio::null())
        .stdout(output.try_clone().unwrap())
        .stderr(output)
        .spawn()
        .expect("spawn the service");
    let mut node = Node { child, log };
    let client = client();
    let deadline = Instant::now() + START_DEADLINE;
    loop {
        if let Some(status) = node.child.try_wait().unwrap() {
            panic!("{config}: the node exited with {status}:\n{}", node.log());
        }
        if let Ok(response) = client.get(health_url).basic_auth(user.0, Some(user.1)).send().await {
            assert_eq!(
                response.status(),
                200,
                "{config}: health as {}:\n{}",
                user.0,
                node.log()
            );
            return node;
        }
        assert!(
            Instant::now() < deadline,
            "{config}: no answer at {health_url}:\n{}",
            node.log()
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// A client for both nodes; the ESS serves HTTPS with the certificate it generated, which
/// this test has no reason to check (tests/tls.rs does).
fn client() -> reqwest::Client {
    reqwest::Client::builder()
        .danger_accept_invalid_certs(true)
        .timeout(Duration::from_secs(30))
        .build()
        .unwrap()
}

async fn health_report(url: &str, user: (&str, &str)) -> serde_json::Value {
    let response = client().get(url).basic_auth(user.0, Some(user.1)).send().await.unwrap();
    serde_json::from_str(&response.text().await.unwrap()).expect("a JSON health report")
}

fn credential(secret: &str, username: &str, kind: &str) -> serde_json::Value {
    serde_json::json!({"secret": secret, "orgID": ORG, "username": username, "type": kind})
}

async fn start_css(root: &Path) -> (Node, u16) {
    let port = free_port();
    let preset = serde_json::json!({"credentials": {
        ADMIN.0: credential(ADMIN.1, "admin", "admin"),
        EDGE_KEY: credential(EDGE_SECRET, "edge/node1", "edgenode"),
    }});
    let env = [
        ("LISTENING_ADDRESS", "127.0.0.1".to_string()),
        ("UNSECURE_LISTENING_PORT", port.to_string()),
    ];
    let url = format!("http://127.0.0.1:{port}/api/v1/health");
    (start(root, "css.conf", preset, &env, &url, ADMIN).await, port)
}

async fn start_ess(root: &Path, css_port: u16) -> (Node, u16) {
    let port = free_port();
    let preset = serde_json::json!({
        "credentials": {APP.0: credential(APP.1, "app", "admin")},
        "cssCredentials": {"key": EDGE_KEY, "secret": EDGE_SECRET},
    });
    let env = [
        ("LISTENING_ADDRESS", "127.0.0.1".to_string()),
        ("SECURE_LISTENING_PORT", port.to_string()),
        ("HTTP_CSS_HOST", "127.0.0.1".to_string()),
        ("HTTP_CSS_PORT", css_port.to_string()),
    ];
    let url = format!("https://127.0.0.1:{port}/api/v1/health");
    (start(root, "ess.conf", preset, &env, &url, APP).await, port)
}

#[tokio::test]
async fn css_conf_starts_a_css_with_its_own_settings() {
    let dir = tempfile::tempdir().unwrap();
    let (node, port) = start_css(dir.path()).await;
    let report = health_report(&format!("http://127.0.0.1:{port}/api/v1/health"), ADMIN).await;
    assert_eq!(report["general"]["nodeType"], "CSS", "{report}");
    // The preset authenticator of the sample is in force: a wrong secret is refused.
    let wrong = client()
        .get(format!("http://127.0.0.1:{port}/api/v1/health"))
        .basic_auth(ADMIN.0, Some("wrong"))
        .send()
        .await
        .unwrap();
    assert_eq!(wrong.status(), 403, "{}", node.log());
    // Its store is the embedded database under the persistence root.
    assert!(dir.path().join("sync/db").is_dir(), "{}", node.log());
}

#[tokio::test]
async fn ess_conf_starts_an_ess_that_registers_with_a_css_conf_css() {
    let css_dir = tempfile::tempdir().unwrap();
    let ess_dir = tempfile::tempdir().unwrap();
    let (css, css_port) = start_css(css_dir.path()).await;
    let (ess, ess_port) = start_ess(ess_dir.path(), css_port).await;

    let report = health_report(&format!("https://127.0.0.1:{ess_port}/api/v1/health"), APP).await;
    assert_eq!(report["general"]["nodeType"], "ESS", "{report}");
    // ListeningType secure: the node generated its certificate.
    assert!(ess_dir.path().join("sync/certs/cert.pem").is_file(), "{}", ess.log());

    // The CSS lists the ESS once it has registered with the sample's credentials.
    let url = format!("http://127.0.0.1:{css_port}/api/v1/destinations/{ORG}");
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let response = client()
            .get(&url)
            .basic_auth(ADMIN.0, Some(ADMIN.1))
            .send()
            .await
            .unwrap();
        let status = response.status();
        let body = response.text().await.unwrap();
        if status == 200 && body.contains("\"node1\"") {
            assert!(body.contains("\"edge\""), "{body}");
            return;
        }
        assert!(
            Instant::now() < deadline,
            "node1 never registered ({status} {body})\nCSS:\n{}\nESS:\n{}",
            css.log(),
            ess.log()
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}
