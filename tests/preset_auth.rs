//! The `preset` authenticator end to end: the real binary with `AUTHENTICATION_HANDLER=preset`
//! and a `sync/preset-auth.json` in its persistence root.

mod common;

use common::{run_to_exit, NodeOptions, Resp, Role, TestNode, ADMIN};
use std::time::Duration;

const WRONG_SECRET: &str = "not-the-secret-4711";

/// A node whose only credentials are those of the preset file: `org/admin` (clear text
/// `secret`, what the harness uses to see the node is up), `hashed@org` (bcrypt of
/// `hashed-secret`) and `broken@org` (a type that cannot log in).
fn preset_node(role: Role) -> TestNode {
    let hashed = bcrypt::hash("hashed-secret", 4).expect("bcrypt");
    let file = serde_json::json!({
        "credentials": {
            ADMIN: {"secret": "secret", "orgID": "org", "username": "admin", "type": "admin"},
            "hashed@org": {"secret": hashed, "orgID": "org", "username": "hashed", "type": "User"},
            "broken@org": {"secret": "secret", "orgID": "org", "username": "broken", "type": "objectadmin"},
        },
        "cssCredentials": {"key": "org/edge/node1", "secret": "css-secret"},
    });
    TestNode::start(NodeOptions {
        env: vec![("AUTHENTICATION_HANDLER".into(), "Preset".into())],
        files: vec![("sync/preset-auth.json".into(), file.to_string())],
        ..NodeOptions::new(role)
    })
}

async fn health_as(node: &TestNode, key: &str, secret: &str) -> Resp {
    let api = node.api();
    let request = api
        .client
        .get(format!("{}/api/v1/health", api.base))
        .basic_auth(key, Some(secret));
    api.send(request).await
}

#[tokio::test]
async fn right_secret_is_accepted_and_wrong_one_refused() {
    let node = preset_node(Role::Css);
    assert_eq!(health_as(&node, ADMIN, "secret").await.status, 200);
    let refused = health_as(&node, ADMIN, WRONG_SECRET).await;
    assert_eq!(refused.status, 403);
    assert_eq!(refused.text(), "Unauthorized");
    assert!(refused.header("www-authenticate").is_none());
    assert_eq!(health_as(&node, "unknown@org", "secret").await.status, 403);
    // Served from the cache now, and still right.
    assert_eq!(health_as(&node, ADMIN, "secret").await.status, 200);
}

#[tokio::test]
async fn bcrypt_hashed_secret_works() {
    let node = preset_node(Role::Css);
    assert_eq!(health_as(&node, "hashed@org", "hashed-secret").await.status, 200);
    assert_eq!(health_as(&node, "hashed@org", "hashed-secret").await.status, 200);
    assert_eq!(health_as(&node, "hashed@org", WRONG_SECRET).await.status, 403);
    assert_eq!(health_as(&node, "hashed@org", "hashed-secret").await.status, 200);
}

#[tokio::test]
async fn unknown_types_are_logged_at_start_and_never_log_in() {
    let node = preset_node(Role::Ess);
    assert_eq!(health_as(&node, "broken@org", "secret").await.status, 403);
    let log = node.log();
    assert!(log.contains("broken@org") && log.contains("objectadmin"), "{log}");
    assert!(!log.contains("'dummy'"), "no dummy warning with preset:\n{log}");
}

#[tokio::test]
async fn failures_are_logged_with_key_and_source_but_never_the_secret() {
    let node = preset_node(Role::Css);
    assert_eq!(health_as(&node, ADMIN, WRONG_SECRET).await.status, 403);
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    let log = loop {
        let log = node.log();
        if log.contains("authentication failed") || std::time::Instant::now() > deadline {
            break log;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    };
    let line = log
        .lines()
        .find(|l| l.contains("authentication failed"))
        .unwrap_or_else(|| panic!("no failure logged:\n{log}"));
    assert!(line.contains(ADMIN), "{line}");
    assert!(line.contains("127.0.0.1:"), "{line}");
    assert!(!log.contains(WRONG_SECRET), "{log}");
    assert!(!log.contains("css-secret"), "{log}");
}

#[test]
fn unknown_handler_exits_99_listing_the_valid_ones() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().display().to_string();
    let config = dir.path().join("absent.conf").display().to_string();
    let port = common::free_port().to_string();
    let (status, output) = run_to_exit(
        &[
            ("NODE_TYPE", "CSS"),
            ("AUTHENTICATION_HANDLER", "Bogus"),
            ("PERSISTENCE_ROOT_PATH", &root),
            ("LISTENING_TYPE", "unsecure"),
            ("LISTENING_ADDRESS", "127.0.0.1"),
            ("UNSECURE_LISTENING_PORT", &port),
        ],
        &["-c", &config],
        Duration::from_secs(20),
    );
    assert_eq!(status.code(), Some(99), "{output}");
    assert!(
        output.contains("Unknown Authentication handler identifier Bogus. Valid values are dummy, preset."),
        "{output}"
    );
}
