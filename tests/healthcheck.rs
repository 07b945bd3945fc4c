//! `edge-sync-service --healthcheck` (the container image's HEALTHCHECK) against real nodes:
//! it reads the same configuration as the node, reaches it on the listener that names
//! (HTTP, HTTPS with a generated certificate, a Unix socket) and exits 0 only when the node
//! answers; 1 when it does not or the configuration is broken.

mod common;

use common::{free_port, run_to_exit, NodeOptions, Role, TestNode};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

const PROBE_TIMEOUT: Duration = Duration::from_secs(30);

/// Runs the probe with `env` (the node's environment plus `overrides`); status and output.
fn probe(env: &[(String, String)], overrides: &[(&str, &str)]) -> (bool, Option<i32>, String) {
    let mut all: Vec<(&str, &str)> = env.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
    all.extend_from_slice(overrides);
    let (status, output) = run_to_exit(&all, &["-c", "/nonexistent/sync.conf", "--healthcheck"], PROBE_TIMEOUT);
    (status.success(), status.code(), output)
}

#[test]
fn a_css_serving_http_is_healthy() {
    let node = TestNode::css();
    let (ok, _, output) = probe(&node.env(), &[]);
    assert!(ok, "{output}");
    assert!(
        output.contains(&format!("http://127.0.0.1:{}/api/v1/health", node.port())),
        "{output}"
    );
}

#[test]
fn an_ess_serving_https_with_its_generated_certificate_is_healthy() {
    let secure_port = free_port().to_string();
    let mut options = NodeOptions::new(Role::Ess);
    // `both`, so that the harness can wait for the node over plain HTTP; the probe is then
    // told the node listens `secure` only and must use its HTTPS port.
    options.env = vec![
        ("LISTENING_TYPE".into(), "both".into()),
        ("SECURE_LISTENING_PORT".into(), secure_port.clone()),
    ];
    let node = TestNode::start(options);
    let (ok, _, output) = probe(&node.env(), &[("LISTENING_TYPE", "secure")]);
    assert!(ok, "{output}");
    assert!(
        output.contains(&format!("https://127.0.0.1:{secure_port}/")),
        "{output}"
    );
}

#[test]
fn no_node_listening_is_unhealthy() {
    let port = free_port().to_string();
    let env = [
        ("NODE_TYPE", "CSS"),
        ("LISTENING_TYPE", "unsecure"),
        ("UNSECURE_LISTENING_PORT", port.as_str()),
    ];
    let (status, output) = run_to_exit(&env, &["--healthcheck"], PROBE_TIMEOUT);
    assert_eq!(status.code(), Some(1), "{output}");
    assert!(output.contains("unhealthy"), "{output}");
}

#[test]
fn an_invalid_configuration_is_unhealthy_not_a_config_exit_status() {
    // 98 would be the node's exit status; container engines reserve every status but 0 and 1.
    let env = [("NODE_TYPE", "neither")];
    let (status, output) = run_to_exit(&env, &["--healthcheck"], PROBE_TIMEOUT);
    assert_eq!(status.code(), Some(1), "{output}");
}

/// An ESS on a Unix socket, killed when dropped (the harness waits over TCP, so it cannot
/// start this one).
struct SocketNode(Child);

impl Drop for SocketNode {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn probe_unix_socket_node(listening_type: &str) {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().display().to_string();
    let env: Vec<(String, String)> = [
        ("NODE_TYPE", "ESS"),
        ("ORG_ID", "org"),
        ("DESTINATION_TYPE", "edge"),
        ("DESTINATION_ID", "node1"),
        ("COMMUNICATION_PROTOCOL", "http"),
        ("HTTP_CSS_HOST", "127.0.0.1"),
        ("HTTP_CSS_PORT", "9"),
        ("LISTENING_TYPE", listening_type),
        ("LISTENING_ADDRESS", "run/ess.sock"),
        ("PERSISTENCE_ROOT_PATH", root.as_str()),
        ("LOG_TRACE_DESTINATION", "stdout"),
        ("NO_COLOR", "1"),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_string(), v.to_string()))
    .collect();
    let child = Command::new(env!("CARGO_BIN_EXE_edge-sync-service"))
        .args(["-c", "/nonexistent/sync.conf"])
        .env_clear()
        .envs(env.iter().cloned())
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("spawn the service");
    let _node = SocketNode(child);
    // The node needs a moment to bind; until then the probe must say unhealthy.
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let (ok, code, output) = probe(&env, &[]);
        if ok {
            assert!(output.contains("://localhost/api/v1/health"), "{output}");
            return;
        }
        assert_eq!(code, Some(1), "{output}");
        assert!(Instant::now() < deadline, "never healthy: {output}");
        std::thread::sleep(Duration::from_millis(100));
    }
}

#[test]
fn an_ess_on_a_unix_socket_is_healthy() {
    probe_unix_socket_node("unix");
}

#[test]
fn an_ess_serving_https_on_a_unix_socket_is_healthy() {
    probe_unix_socket_node("secure-unix");
}
