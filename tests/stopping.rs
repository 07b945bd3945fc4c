//! A stop (SIGTERM) finishes in bounded time whatever a node is doing: edge nodes' long polls
//! held open end at once, an upload whose client went silent is cut off after the grace
//! period, and an ESS whose CSS never answers stops all the same.

mod common;

use common::proxy::{Closed, Gate};
use common::sync::{http_ess, wait_for, wait_registered, SYNC_DEADLINE};
use common::{channel_body, NodeOptions, Role, TestNode, ADMIN};
use serde_json::json;
use std::time::Duration;

/// How long a stopping node lets work in progress finish (the service's `STOP_GRACE`).
const GRACE: Duration = Duration::from_secs(10);
/// Longest any stop may take (the service's `STOP_DEADLINE`).
const DEADLINE: Duration = Duration::from_secs(20);

/// Stops `node` with SIGTERM; its exit status, or a panic when it did not end within `within`.
fn stop(node: &mut TestNode, within: Duration) -> std::process::ExitStatus {
    node.terminate();
    node.wait_exit(within)
        .unwrap_or_else(|| panic!("the node did not stop within {within:?}:\n{}", node.log()))
}

/// Edge nodes wait in long polls of up to a minute: a stop ends them instead of waiting.
#[tokio::test]
async fn a_css_stops_at_once_while_edge_nodes_long_poll() {
    let mut css = TestNode::css();
    let ess = http_ess(css.port(), &[("HTTP_POLLING_INTERVAL", "60")]);
    wait_registered(&css, &ess, "node1").await;
    let status = stop(&mut css, GRACE - Duration::from_secs(2));
    assert!(status.success(), "{status}");
}

/// An upload whose client stopped sending would hold the stop forever; it is cut off once
/// the grace period is over.
#[tokio::test]
async fn a_css_stops_within_the_grace_period_while_an_upload_stalls() {
    let mut css = TestNode::css();
    let api = css.api();
    let path = css.obj("model", "stalled");
    api.create(&path, json!({}), None).await;
    let (sender, body) = channel_body();
    let upload = tokio::spawn({
        let api = api.clone();
        let path = format!("{path}/data");
        async move {
            let request = api.request(reqwest::Method::PUT, &path, Some(ADMIN)).body(body);
            let _ = request.send().await;
        }
    });
    sender
        .send(bytes::Bytes::from(vec![7u8; 65536]))
        .await
        .expect("first part");
    wait_for("the upload to reach the CSS", &[&css], SYNC_DEADLINE, async || {
        !css.files_in("tmp").is_empty()
    })
    .await;
    let status = stop(&mut css, DEADLINE);
    assert!(status.success(), "{status}");
    drop(sender);
    upload.abort();
}

/// An ESS whose CSS takes its requests and never answers stops all the same.
#[tokio::test]
async fn an_ess_whose_css_never_answers_stops_all_the_same() {
    let silent = Gate::start(common::free_port(), Closed::Silent).await;
    let mut options = NodeOptions::new(Role::Ess);
    for (key, value) in [
        ("COMMUNICATION_PROTOCOL", "http".to_string()),
        ("HTTP_CSS_HOST", "127.0.0.1".to_string()),
        ("HTTP_CSS_PORT", silent.port().to_string()),
    ] {
        options.env.push((key.to_string(), value));
    }
    let mut ess = TestNode::start(options);
    wait_for("the ESS to call its CSS", &[&ess], SYNC_DEADLINE, async || {
        silent.refused() > 0
    })
    .await;
    let status = stop(&mut ess, DEADLINE);
    assert!(status.success(), "{status}");
}
