//! Helpers of the upload tests (`UploadSources`): an ESS with sources whose folders are in
//! its persistence root, the objects they become on the CSS, and the ESS's upload statuses.

use super::sync::{eventually as wait_until, listed, wait_registered, Net, Transport, SYNC_DEADLINE};
use super::TestNode;
use serde_json::{json, Value};
use sha2::{Digest, Sha256};
use std::path::PathBuf;

/// Polls `probe` until it returns `Some`, within the sync deadline.
pub async fn eventually<T>(what: &str, nodes: &[&TestNode], probe: impl AsyncFnMut() -> Option<T>) -> T {
    wait_until(what, nodes, SYNC_DEADLINE, probe).await
}

/// An ESS `edge`/`id` of `css` (on the transport of `net`) whose sources are `sources`, with
/// their folders relative to its persistence root.
pub fn ess_with_sources(net: &Net, css: &TestNode, id: &str, sources: Value) -> TestNode {
    ess_with(net, css, id, sources, &[], &[])
}

/// As [`ess_with_sources`], with more settings `env` and `files` (path relative to the
/// persistence root, contents) written before the node starts.
pub fn ess_with(
    net: &Net,
    css: &TestNode,
    id: &str,
    sources: Value,
    env: &[(&str, &str)],
    files: &[(&str, &str)],
) -> TestNode {
    let mut settings = vec![
        ("DESTINATION_ID", id),
        ("UPLOAD_SOURCES", "uploads.json"),
        ("ESS_CALL_SPI_RETRY_INTERVAL", "1"),
    ];
    settings.extend_from_slice(env);
    let mut options = net.ess_options(css, &settings);
    options.files.push(("uploads.json".into(), sources.to_string()));
    options.files.extend(
        files
            .iter()
            .map(|(path, contents)| (path.to_string(), contents.to_string())),
    );
    TestNode::start(options)
}

/// One source named `name` of `*.log` files in `inbox`, objects of type `upload`.
pub fn source(name: &str, triggers: Value) -> Value {
    json!({
        "name": name,
        "folder": "inbox",
        "patterns": ["*.log"],
        "objectType": "upload",
        "objectId": "{relpath}",
        "settleSeconds": 1,
        "triggers": triggers,
    })
}

pub fn inbox(ess: &TestNode) -> PathBuf {
    let folder = ess.root().join("inbox");
    std::fs::create_dir_all(&folder).expect("inbox");
    folder
}

pub fn sha256_hex(data: &[u8]) -> String {
    Sha256::digest(data).iter().map(|b| format!("{b:02x}")).collect()
}

/// The object `id` of type `upload` on the CSS once its data is there: metadata and data.
pub async fn on_css(css: &TestNode, ess: &TestNode, id: &str) -> (Value, Vec<u8>) {
    let meta = eventually(&format!("{id} on the CSS"), &[css, ess], async || {
        listed(css, "upload", id).await
    })
    .await;
    let data = css.api().data(&css.obj("upload", id)).await;
    (meta, data)
}

/// Asserts the CSS object carries exactly `data` and its size and SHA-256.
pub fn assert_integrity(meta: &Value, got: &[u8], data: &[u8]) {
    assert_eq!(got, data, "the CSS has the file's bytes");
    assert_eq!(meta["objectSize"], data.len());
    let description = meta["description"].as_str().unwrap_or_default();
    assert!(
        description.contains(&format!("sha256={} size={}", sha256_hex(data), data.len())),
        "size and SHA-256 in the metadata: {description:?}"
    );
}

/// The ESS's upload statuses.
pub async fn uploads(ess: &TestNode) -> Vec<Value> {
    let response = ess.api().get("/api/v1/uploads").await;
    assert_eq!(response.status, 200, "{}", response.text());
    response.json().as_array().cloned().unwrap_or_default()
}

/// Waits until the ESS shows `path` of `source` as delivered.
pub async fn wait_delivered(css: &TestNode, ess: &TestNode, source: &str, path: &str) -> Value {
    eventually(&format!("{path} delivered"), &[css, ess], async || {
        uploads(ess)
            .await
            .into_iter()
            .find(|u| u["source"] == source && u["path"] == path && u["phase"] == "delivered")
    })
    .await
}

/// Waits until the statuses the ESS reports to the CSS (the data of its object
/// `edge-sync-upload-status`/`node`) show `path` delivered with the SHA-256 of `data`. A newer
/// instance may replace the object between the listing and the read: it is read again then.
pub async fn wait_delivered_on_css(css: &TestNode, ess: &TestNode, node: &str, path: &str, data: &[u8]) {
    let report = css.obj("edge-sync-upload-status", node);
    let sha256 = sha256_hex(data);
    eventually("the delivered status on the CSS", &[css, ess], async || {
        let response = css.api().get(&format!("{report}/data")).await;
        let statuses: Value = serde_json::from_slice(&response.body).ok()?;
        statuses
            .as_array()?
            .iter()
            .any(|s| s["path"] == path && s["phase"] == "delivered" && s["sha256"] == sha256)
            .then_some(())
    })
    .await;
}

/// A CSS and an ESS `edge`/`id` with `sources`, registered, over HTTP.
pub async fn start(id: &str, sources: Value) -> (Net, TestNode, TestNode) {
    start_on(Transport::Http, id, sources).await
}

/// A CSS and an ESS `edge`/`id` with `sources`, registered, over `transport`.
pub async fn start_on(transport: Transport, id: &str, sources: Value) -> (Net, TestNode, TestNode) {
    let net = Net::new(transport);
    let css = net.css(&[]);
    let ess = ess_with_sources(&net, &css, id, sources);
    wait_registered(&css, &ess, id).await;
    (net, css, ess)
}
