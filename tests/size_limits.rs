//! `MaxObjectSize`: object data over the limit is refused with 413 and a message naming the
//! limit, whether it comes whole, in chunks or inline, and what was stored stays intact.

mod common;

use common::sync::css_with;
use common::{object_body, TestNode, ADMIN};
use serde_json::json;

const LIMIT: usize = 1000;

fn limited_css() -> TestNode {
    css_with(&[("MAX_OBJECT_SIZE", &LIMIT.to_string())])
}

fn refused_for_size(response: &common::Resp) {
    assert_eq!(response.status, 413, "{}", response.text());
    assert!(
        response.text().contains("1000 bytes") && response.text().contains("MaxObjectSize"),
        "{}",
        response.text()
    );
}

#[tokio::test]
async fn data_over_the_limit_is_refused_and_the_stored_data_kept() {
    let css = limited_css();
    let api = css.api();
    let path = css.obj("model", "capped");
    api.create(&path, json!({}), None).await;
    let at_limit = common::pattern(LIMIT, 3);
    let response = api.put_bytes(&format!("{path}/data"), at_limit.clone()).await;
    assert_eq!(response.status, 204, "{}", response.text());

    refused_for_size(&api.put_bytes(&format!("{path}/data"), vec![7; LIMIT + 1]).await);
    let chunk = api.send(
        api.request(reqwest::Method::PUT, &format!("{path}/data"), Some(ADMIN))
            .header("Content-Range", format!("bytes 0-99/{}", LIMIT * 2))
            .body(vec![1u8; 100]),
    );
    refused_for_size(&chunk.await);
    let inline = object_body(&path, json!({}), Some(&vec![9u8; LIMIT + 1]));
    refused_for_size(&api.put_json(&path, &inline).await);

    assert_eq!(api.data(&path).await, at_limit);
    assert_eq!(api.status_of(&path).await, "ready");
}

#[tokio::test]
async fn a_declared_size_beyond_the_disk_is_413_with_nothing_kept() {
    // No MaxObjectSize: the node's own storage is the limit. Freeing space would never make
    // 4 PB fit, so the answer is "too large", not 507's "retry once space is freed".
    let css = common::sync::css_with(&[]);
    let api = css.api();
    let path = css.obj("model", "huge");
    api.create(&path, json!({}), None).await;
    let chunk = api.send(
        api.request(reqwest::Method::PUT, &format!("{path}/data"), Some(ADMIN))
            .header("Content-Range", format!("bytes 0-99/{}", 1u64 << 52))
            .body(vec![1u8; 100]),
    );
    let response = chunk.await;
    assert_eq!(response.status, 413, "{}", response.text());
    assert!(response.text().contains("storage"), "{}", response.text());
    assert_eq!(api.status_of(&path).await, "notReady");
    use std::os::unix::fs::MetadataExt;
    let allocated: u64 = css
        .files_in("partial")
        .iter()
        .filter_map(|f| f.metadata().ok())
        .map(|m| m.blocks() * 512)
        .sum();
    assert!(
        allocated < 1 << 20,
        "the refused reservation was given back: {allocated} bytes"
    );
}

#[test]
fn a_negative_limit_is_a_configuration_error() {
    let dir = tempfile::tempdir().expect("temp dir");
    let root = dir.path().display().to_string();
    let config = dir.path().join("sync.conf");
    std::fs::write(&config, "").expect("config");
    let (status, output) = common::run_to_exit(
        &[
            ("NODE_TYPE", "CSS"),
            ("PERSISTENCE_ROOT_PATH", &root),
            ("LISTENING_TYPE", "unsecure"),
            ("MAX_OBJECT_SIZE", "-5"),
        ],
        &["-c", &config.display().to_string()],
        std::time::Duration::from_secs(20),
    );
    assert_eq!(status.code(), Some(98), "{output}");
    assert!(output.contains("MaxObjectSize"), "{output}");
}
