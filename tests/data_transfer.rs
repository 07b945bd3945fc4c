//! Data routes on both roles: whole uploads, downloads with and without Range, chunked
//! uploads with Content-Range in and out of order, and two uploads racing.

mod common;

use common::{Role, TestNode, ADMIN};
use serde_json::json;
use std::time::Duration;

/// Creates `model/{id}` without data and uploads `data` whole; returns the object path.
async fn object_with_data(node: &TestNode, id: &str, data: &[u8]) -> String {
    let api = node.api();
    let path = node.obj("model", id);
    api.create(&path, json!({}), None).await;
    let response = api.put_bytes(&format!("{path}/data"), data.to_vec()).await;
    assert_eq!((response.status, response.text()), (204, String::new()));
    path
}

async fn get_range(node: &TestNode, path: &str, range: &str) -> common::Resp {
    let api = node.api();
    api.send(
        api.request(reqwest::Method::GET, &format!("{path}/data"), Some(ADMIN))
            .header("Range", range),
    )
    .await
}

async fn put_chunk(node: &TestNode, path: &str, data: &[u8], start: usize, total: usize) -> common::Resp {
    let api = node.api();
    let end = start + data.len() - 1;
    api.send(
        api.request(reqwest::Method::PUT, &format!("{path}/data"), Some(ADMIN))
            .header("Content-Range", format!("bytes {start}-{end}/{total}"))
            .body(data.to_vec()),
    )
    .await
}

async fn whole_upload_round_trips_byte_identical(role: Role) {
    let node = TestNode::of(role);
    let api = node.api();
    let data = common::pattern(3 * 1024 * 1024 + 17, 7);
    let path = node.obj("model", "whole");
    api.create(&path, json!({}), None).await;
    let created = api.meta(&path).await["instanceID"].as_i64().unwrap();
    assert_eq!(api.put_bytes(&format!("{path}/data"), data.clone()).await.status, 204);
    assert_eq!(api.status_of(&path).await, "ready");
    let meta = api.meta(&path).await;
    assert_eq!(meta["objectSize"], data.len());
    assert!(
        meta["instanceID"].as_i64().unwrap() > created,
        "data upload renews instanceID"
    );
    assert_eq!(meta["dataID"], meta["instanceID"]);
    let download = api.get(&format!("{path}/data")).await;
    assert_eq!(download.status, 200);
    assert_eq!(
        download.header("content-type").as_deref(),
        Some("application/octet-stream")
    );
    assert!(download.header("content-range").is_none());
    assert!(download.body == data, "downloaded data differs");
}

async fn second_upload_replaces_data_and_its_file(role: Role) {
    let node = TestNode::of(role);
    let api = node.api();
    let path = object_with_data(&node, "replaced", b"first version").await;
    assert_eq!(
        api.put_bytes(&format!("{path}/data"), b"second".to_vec()).await.status,
        204
    );
    assert_eq!(api.data(&path).await, b"second");
    assert_eq!(node.files_in("data").len(), 1, "the first data file is removed");
}

async fn range_returns_206_with_content_range(role: Role) {
    let node = TestNode::of(role);
    let data = common::pattern(100, 3);
    let path = object_with_data(&node, "ranged", &data).await;
    let response = get_range(&node, &path, "bytes=10-19").await;
    assert_eq!(response.status, 206);
    assert_eq!(response.header("content-range").as_deref(), Some("bytes 10-19/100"));
    assert_eq!(response.body, &data[10..20]);
    let clamped = get_range(&node, &path, "bytes=90-200").await;
    assert_eq!(clamped.status, 206);
    assert_eq!(clamped.header("content-range").as_deref(), Some("bytes 90-99/100"));
    assert_eq!(clamped.body, &data[90..]);
}

async fn open_ended_range_reads_to_the_end(role: Role) {
    let node = TestNode::of(role);
    let data = common::pattern(100, 4);
    let path = object_with_data(&node, "open", &data).await;
    let response = get_range(&node, &path, "bytes=40-").await;
    assert_eq!(response.status, 206);
    assert_eq!(response.header("content-range").as_deref(), Some("bytes 40-99/100"));
    assert_eq!(response.body, &data[40..]);
}

async fn range_covering_everything_from_zero_is_200(role: Role) {
    let node = TestNode::of(role);
    let data = common::pattern(100, 5);
    let path = object_with_data(&node, "all", &data).await;
    for range in ["bytes=0-99", "bytes=0-5000"] {
        let response = get_range(&node, &path, range).await;
        assert_eq!(response.status, 200, "{range}");
        assert!(response.header("content-range").is_none(), "{range}");
        assert_eq!(response.body, data, "{range}");
    }
}

async fn range_beyond_end_is_416(role: Role) {
    let node = TestNode::of(role);
    let path = object_with_data(&node, "short", &common::pattern(100, 6)).await;
    for range in ["bytes=100-200", "bytes=5000-"] {
        let response = get_range(&node, &path, range).await;
        assert_eq!(response.status, 416, "{range}");
        assert_eq!(response.header("content-range").as_deref(), Some("bytes */100"));
    }
    node.assert_healthy().await;
}

async fn data_of_object_without_data_is_404(role: Role) {
    let node = TestNode::of(role);
    let api = node.api();
    let path = node.obj("model", "empty");
    api.create(&path, json!({}), None).await;
    let response = api.get(&format!("{path}/data")).await;
    assert_eq!((response.status, response.text()), (404, String::new()));
}

async fn data_upload_for_missing_object_is_404(role: Role) {
    let node = TestNode::of(role);
    let api = node.api();
    let path = node.obj("model", "missing");
    let response = api.put_bytes(&format!("{path}/data"), b"orphan".to_vec()).await;
    assert_eq!((response.status, response.text()), (404, String::new()));
    assert_eq!(api.get(&path).await.status, 404, "no object was created");
    assert!(node.files_in("data").is_empty());
}

async fn chunked_upload_in_order_completes_on_last_chunk(role: Role) {
    let node = TestNode::of(role);
    let api = node.api();
    let data = common::pattern(2500, 8);
    let path = node.obj("model", "chunks");
    api.create(&path, json!({}), None).await;
    for start in [0, 1000] {
        let response = put_chunk(&node, &path, &data[start..start + 1000], start, 2500).await;
        assert_eq!(response.status, 204, "{}", response.text());
        assert_eq!(api.status_of(&path).await, "notReady", "after chunk at {start}");
    }
    assert_eq!(put_chunk(&node, &path, &data[2000..], 2000, 2500).await.status, 204);
    api.wait_status(&path, "ready").await;
    let meta = api.meta(&path).await;
    assert_eq!(meta["objectSize"], 2500);
    assert_eq!(meta["uploadChunkSize"], 1000);
    assert_eq!(api.data(&path).await, data);
    assert!(node.files_in("partial").is_empty(), "no partial file after completion");
}

async fn chunked_upload_out_of_order_waits_for_every_byte(role: Role) {
    let node = TestNode::of(role);
    let api = node.api();
    let data = common::pattern(2500, 9);
    let path = node.obj("model", "shuffled");
    api.create(&path, json!({}), None).await;
    // The tail first: an early tail must not finalize an incomplete upload.
    for start in [2000, 0] {
        let end = (start + 1000).min(2500);
        assert_eq!(
            put_chunk(&node, &path, &data[start..end], start, 2500).await.status,
            204
        );
        assert_eq!(api.status_of(&path).await, "notReady", "after chunk at {start}");
        assert_eq!(api.get(&format!("{path}/data")).await.status, 404);
    }
    assert_eq!(put_chunk(&node, &path, &data[1000..2000], 1000, 2500).await.status, 204);
    api.wait_status(&path, "ready").await;
    assert_eq!(api.meta(&path).await["uploadChunkSize"], 1000);
    assert_eq!(api.data(&path).await, data);
}

async fn racing_uploads_never_fail_with_5xx(role: Role) {
    let node = TestNode::of(role);
    let api = node.api();
    let path = node.obj("model", "raced");
    api.create(&path, json!({}), None).await;
    let first = common::pattern(4 * 1024 * 1024, 10);
    let second = common::pattern(3 * 1024 * 1024, 11);
    // The first upload sends half its body, then stalls while the second one runs.
    let (sender, body) = common::channel_body();
    let slow = tokio::spawn({
        let (api, path) = (api.clone(), path.clone());
        async move {
            api.send(
                api.request(reqwest::Method::PUT, &format!("{path}/data"), Some(ADMIN))
                    .body(body),
            )
            .await
        }
    });
    sender
        .send(bytes::Bytes::copy_from_slice(&first[..2 * 1024 * 1024]))
        .await
        .unwrap();
    common::wait_until("the first upload to reach the disk", Duration::from_secs(20), || {
        common::bytes_in(&node, "tmp") > 0
    })
    .await;
    let fast = api.put_bytes(&format!("{path}/data"), second.clone()).await;
    sender
        .send(bytes::Bytes::copy_from_slice(&first[2 * 1024 * 1024..]))
        .await
        .unwrap();
    drop(sender);
    let slow = slow.await.unwrap();
    let statuses = [slow.status, fast.status];
    for status in statuses {
        assert!(status == 204 || status == 409, "status {status}");
    }
    assert!(statuses.contains(&204), "one upload succeeds: {statuses:?}");
    let stored = api.data(&path).await;
    let candidates: Vec<&Vec<u8>> = [(slow.status, &first), (fast.status, &second)]
        .into_iter()
        .filter(|(status, _)| *status == 204)
        .map(|(_, data)| data)
        .collect();
    assert!(
        candidates.iter().any(|c| **c == stored),
        "the stored data is one of the successful bodies"
    );
    if fast.status == 409 {
        assert!(!fast.body.is_empty(), "409 explains itself");
    }
    node.assert_healthy().await;
}

on_both_roles!(
    whole_upload_round_trips_byte_identical,
    second_upload_replaces_data_and_its_file,
    range_returns_206_with_content_range,
    open_ended_range_reads_to_the_end,
    range_covering_everything_from_zero_is_200,
    range_beyond_end_is_416,
    data_of_object_without_data_is_404,
    data_upload_for_missing_object_is_404,
    chunked_upload_in_order_completes_on_last_chunk,
    chunked_upload_out_of_order_waits_for_every_byte,
    racing_uploads_never_fail_with_5xx,
);
