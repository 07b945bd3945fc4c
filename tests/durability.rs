//! What survives a restart: a clean stop, a `kill -9` right after a 204, a `kill -9` while a
//! large upload or a chunked upload is in flight, and (by design) nothing of the in-memory
//! store.

mod common;

use bytes::Bytes;
use common::{NodeOptions, Role, TestNode, ADMIN, SYNC_ADMIN};
use serde_json::json;
use std::time::Duration;

const MIB: usize = 1024 * 1024;

async fn objects_and_data_survive_a_clean_restart(role: Role) {
    let mut node = TestNode::of(role);
    let api = node.api();
    let data = common::pattern(2 * MIB + 3, 21);
    let with_data = node.obj("model", "kept");
    let without = node.obj("model", "meta-only");
    api.create(&with_data, json!({"description": "d"}), None).await;
    assert_eq!(
        api.put_bytes(&format!("{with_data}/data"), data.clone()).await.status,
        204
    );
    api.create(&without, json!({"consumers": -1}), None).await;
    let before = api.meta(&with_data).await;
    assert_eq!(api.post_as(SYNC_ADMIN, "/api/v1/shutdown").await.status, 204);
    let status = node.wait_exit(Duration::from_secs(20)).expect("clean stop");
    assert!(status.success());
    node.restart();
    let api = node.api();
    assert_eq!(api.meta(&with_data).await, before, "metadata unchanged");
    assert_eq!(api.status_of(&with_data).await, "ready");
    assert!(api.data(&with_data).await == data, "data byte-identical");
    assert_eq!(api.meta(&without).await["consumers"], 2_147_483_647);
    assert_eq!(api.status_of(&without).await, "notReady");
    api.create(&without, json!({}), None).await;
    let renewed = api.meta(&without).await["instanceID"].as_i64().unwrap();
    assert!(
        renewed > before["instanceID"].as_i64().unwrap(),
        "instance IDs keep growing"
    );
}

async fn data_survives_kill9_right_after_204(role: Role) {
    let mut node = TestNode::of(role);
    let api = node.api();
    let path = node.obj("model", "acked");
    let inline = node.obj("model", "inline");
    let data = common::pattern(5 * MIB, 22);
    api.create(&path, json!({}), None).await;
    api.create(&inline, json!({}), Some(b"inline bytes")).await;
    assert_eq!(api.put_bytes(&format!("{path}/data"), data.clone()).await.status, 204);
    node.kill9();
    node.restart();
    let api = node.api();
    assert_eq!(api.status_of(&path).await, "ready");
    assert_eq!(api.meta(&path).await["objectSize"], data.len());
    assert!(api.data(&path).await == data, "data byte-identical after kill -9");
    assert_eq!(api.data(&inline).await, b"inline bytes");
}

async fn kill9_during_large_upload_keeps_previous_state(role: Role) {
    let mut node = TestNode::of(role);
    let api = node.api();
    let replaced = node.obj("model", "replaced");
    let fresh = node.obj("model", "fresh");
    api.create(&replaced, json!({}), Some(b"old data")).await;
    api.create(&fresh, json!({}), None).await;
    let (to_replaced, replacing) = node.api().put_data_streamed(&replaced, None);
    let (to_fresh, filling) = node.api().put_data_streamed(&fresh, None);
    let block = Bytes::from(common::pattern(MIB, 23));
    // 24 MiB of each 200 MiB body go out; the rest never does.
    for _ in 0..24 {
        to_replaced.send(block.clone()).await.unwrap();
        to_fresh.send(block.clone()).await.unwrap();
    }
    common::wait_until("both uploads to be writing", Duration::from_secs(30), || {
        let files = node.files_in("tmp");
        files.len() == 2
            && files
                .iter()
                .all(|f| std::fs::metadata(f).map_or(0, |m| m.len()) >= 8 * MIB as u64)
    })
    .await;
    node.kill9();
    assert!(replacing.await.unwrap().is_err(), "the upload was cut off");
    assert!(filling.await.unwrap().is_err(), "the upload was cut off");
    drop((to_replaced, to_fresh));
    node.restart();
    let api = node.api();
    assert!(node.files_in("tmp").is_empty(), "temporary files are cleaned at start");
    assert_eq!(api.status_of(&replaced).await, "ready");
    assert_eq!(api.data(&replaced).await, b"old data", "the old data is intact");
    assert_eq!(api.status_of(&fresh).await, "notReady");
    assert_eq!(api.get(&format!("{fresh}/data")).await.status, 404);
    assert_eq!(node.files_in("data").len(), 1, "only the old data file remains");
    let data = common::pattern(3 * MIB, 24);
    assert_eq!(api.put_bytes(&format!("{fresh}/data"), data.clone()).await.status, 204);
    assert!(api.data(&fresh).await == data, "a fresh upload works after the restart");
}

async fn interrupted_chunked_upload_completes_after_restart(role: Role) {
    let mut node = TestNode::of(role);
    let api = node.api();
    let path = node.obj("model", "chunked");
    let total = 6 * MIB;
    let chunk = 2 * MIB;
    let data = common::pattern(total, 25);
    api.create(&path, json!({}), None).await;
    let first = api
        .send(
            api.request(reqwest::Method::PUT, &format!("{path}/data"), Some(ADMIN))
                .header("Content-Range", format!("bytes 0-{}/{total}", chunk - 1))
                .body(data[..chunk].to_vec()),
        )
        .await;
    assert_eq!(first.status, 204, "{}", first.text());
    // The second chunk is cut off half-way by the kill.
    let range = format!("bytes {chunk}-{}/{total}", 2 * chunk - 1);
    let (sender, second) = api.put_data_streamed(&path, Some(range));
    sender
        .send(Bytes::copy_from_slice(&data[chunk..chunk + 3 * MIB / 2]))
        .await
        .unwrap();
    common::wait_until("the second chunk to reach the disk", Duration::from_secs(30), || {
        common::bytes_in(&node, "partial") > chunk as u64
    })
    .await;
    node.kill9();
    assert!(second.await.unwrap().is_err());
    drop(sender);
    node.restart();
    let api = node.api();
    assert_eq!(api.status_of(&path).await, "notReady");
    assert_eq!(api.get(&format!("{path}/data")).await.status, 404);
    for start in [chunk, 2 * chunk] {
        let response = api
            .send(
                api.request(reqwest::Method::PUT, &format!("{path}/data"), Some(ADMIN))
                    .header("Content-Range", format!("bytes {start}-{}/{total}", start + chunk - 1))
                    .body(data[start..start + chunk].to_vec()),
            )
            .await;
        assert_eq!(response.status, 204, "{}", response.text());
    }
    api.wait_status(&path, "ready").await;
    assert_eq!(api.meta(&path).await["uploadChunkSize"], chunk);
    assert!(api.data(&path).await == data, "the resumed upload is byte-identical");
    assert!(node.files_in("partial").is_empty());
}

async fn inmemory_objects_do_not_survive_a_restart(role: Role) {
    let mut node = TestNode::start(NodeOptions {
        storage: "inmemory",
        ..NodeOptions::new(role)
    });
    let api = node.api();
    let path = node.obj("model", "volatile");
    api.create(&path, json!({}), Some(b"gone soon")).await;
    assert_eq!(api.data(&path).await, b"gone soon");
    node.restart();
    let api = node.api();
    assert_eq!(api.get(&path).await.status, 404);
    assert_eq!(api.get(&format!("{path}/data")).await.status, 404);
}

on_both_roles!(
    objects_and_data_survive_a_clean_restart,
    data_survives_kill9_right_after_204,
    kill9_during_large_upload_keeps_previous_state,
    interrupted_chunked_upload_completes_after_restart,
    inmemory_objects_do_not_survive_a_restart,
);
