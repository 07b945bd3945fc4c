//! Object data in PostgreSQL: CSS instances that share the database and nothing else (each
//! has its own persistence folder) serve each other's data, whole and by range, continue
//! each other's chunked uploads, verify signed data they did not receive, and a `kill -9`
//! of the instance receiving data leaves nothing visible of what it had not acknowledged.

mod common;

use common::cluster::two_instances;
use common::metrics::value;
use common::signing::Signer;
use common::sync::wait_for;
use common::{pattern, ADMIN};
use serde_json::json;
use std::time::Duration;

const DEADLINE: Duration = Duration::from_secs(30);
const MIB: usize = 1 << 20;

#[tokio::test]
async fn data_uploaded_through_one_instance_is_served_whole_and_by_range_by_the_other() {
    let cluster = common::postgres::shared();
    let (first, second) = two_instances(cluster).await;
    assert_ne!(first.root(), second.root(), "the instances share no folder");
    let (api1, api2) = (first.api(), second.api());
    let model = first.obj("model", "m1");
    let data = pattern(3 * MIB + 4321, 11);
    api1.create(&model, json!({}), None).await;
    assert_eq!(api1.put_bytes(&format!("{model}/data"), data.clone()).await.status, 204);
    assert_eq!(api2.status_of(&model).await, "ready");
    assert_eq!(api2.data(&model).await, data);
    for (start, end) in [(0usize, 9usize), (MIB - 3, MIB + 3), (2 * MIB, data.len() - 1)] {
        let response = api2
            .send(
                api2.request(reqwest::Method::GET, &format!("{model}/data"), Some(ADMIN))
                    .header("Range", format!("bytes={start}-{end}")),
            )
            .await;
        assert_eq!(response.status, 206, "{start}-{end}");
        assert_eq!(
            response.header("content-range").as_deref(),
            Some(format!("bytes {start}-{end}/{}", data.len()).as_str())
        );
        assert_eq!(response.body, &data[start..=end], "{start}-{end}");
    }
    assert!(first.files_in("data").is_empty(), "no data file on either instance");
    assert!(second.files_in("data").is_empty());

    // New data replaces the old one, and deleting the object removes its data.
    let newer = pattern(MIB / 2, 12);
    assert_eq!(
        api2.put_bytes(&format!("{model}/data"), newer.clone()).await.status,
        204
    );
    assert_eq!(api1.data(&model).await, newer);
    assert_eq!(api1.delete_as(ADMIN, &model).await.status, 204);
    assert_eq!(api2.get(&format!("{model}/data")).await.status, 404);
}

#[tokio::test]
async fn signed_data_sent_in_chunks_to_both_instances_is_verified_from_the_database() {
    let cluster = common::postgres::shared();
    let (first, second) = two_instances(cluster).await;
    let (api1, api2) = (first.api(), second.api());
    let data = pattern(2 * MIB + 99, 5);
    let signed = Signer::new().meta(&data);
    let good = first.obj("model", "signed");
    api1.create(&good, signed.clone(), None).await;
    let total = data.len();
    let half = total / 2;
    // Chunks through different instances: no running hash saw all the data, so the instance
    // that completes the upload hashes it from the database.
    for (api, start, end) in [(&api2, half, total - 1), (&api1, 0, half - 1)] {
        let response = api
            .send(
                api.request(reqwest::Method::PUT, &format!("{good}/data"), Some(ADMIN))
                    .header("Content-Range", format!("bytes {start}-{end}/{total}"))
                    .body(data[start..=end].to_vec()),
            )
            .await;
        assert_eq!(response.status, 204, "{}", response.text());
    }
    assert_eq!(api2.status_of(&good).await, "ready");
    assert_eq!(api2.data(&good).await, data);

    let tampered = first.obj("model", "tampered");
    api1.create(&tampered, signed, None).await;
    let mut other = data.clone();
    other[MIB + 1] ^= 1;
    for (api, start, end) in [(&api1, 0, half - 1), (&api2, half, total - 1)] {
        let response = api
            .send(
                api.request(reqwest::Method::PUT, &format!("{tampered}/data"), Some(ADMIN))
                    .header("Content-Range", format!("bytes {start}-{end}/{total}"))
                    .body(other[start..=end].to_vec()),
            )
            .await;
        if start == 0 {
            assert_eq!(response.status, 204, "{}", response.text());
        } else {
            assert_eq!(response.status, 400, "{}", response.text());
            assert!(response.text().contains("verify"), "{}", response.text());
        }
    }
    assert_eq!(api1.status_of(&tampered).await, "verificationFailed");
    assert_eq!(api1.get(&format!("{tampered}/data")).await.status, 404);
}

#[tokio::test]
async fn a_kill9_mid_upload_leaves_nothing_visible_and_the_other_instance_continues() {
    let cluster = common::postgres::shared();
    let (mut first, second) = two_instances(cluster).await;
    let (api1, api2) = (first.api(), second.api());
    let chunked = first.obj("model", "chunked");
    let whole = first.obj("model", "whole");
    api1.create(&chunked, json!({}), None).await;
    api1.create(&whole, json!({}), None).await;
    let data = pattern(4 * MIB, 21);
    let (total, half) = (data.len(), data.len() / 2);

    // The first half of a chunked upload is acknowledged by the first instance.
    let response = api1
        .send(
            api1.request(reqwest::Method::PUT, &format!("{chunked}/data"), Some(ADMIN))
                .header("Content-Range", format!("bytes 0-{}/{total}", half - 1))
                .body(data[..half].to_vec()),
        )
        .await;
    assert_eq!(response.status, 204, "{}", response.text());

    // A whole upload and the second chunk are under way in the first instance when it dies.
    let (whole_body, whole_request) = api1.put_data_streamed(&whole, None);
    let (chunk_body, chunk_request) =
        api1.put_data_streamed(&chunked, Some(format!("bytes {half}-{}/{total}", total - 1)));
    for part in data.chunks(MIB).take(2) {
        whole_body.send(bytes::Bytes::copy_from_slice(part)).await.unwrap();
    }
    chunk_body
        .send(bytes::Bytes::copy_from_slice(&data[half..half + MIB]))
        .await
        .unwrap();
    wait_for("both bodies to be received", &[&first], DEADLINE, async || {
        let samples = common::cluster::scrape(&first).await.unwrap_or_default();
        value(&samples, "edge_sync_transfers_in_flight", &[("direction", "receiving")]) == Some(2.0)
    })
    .await;
    first.kill9();
    assert!(
        whole_request.await.unwrap().is_err(),
        "the cut upload was not acknowledged"
    );
    assert!(chunk_request.await.unwrap().is_err());
    drop((whole_body, chunk_body));

    // Nothing of either is visible through the other instance.
    for object in [&whole, &chunked] {
        assert_eq!(api2.status_of(object).await, "notReady", "{object}");
        assert_eq!(api2.get(&format!("{object}/data")).await.status, 404, "{object}");
    }

    // The chunked upload continues where the acknowledged part ended, the whole one again.
    let response = api2
        .send(
            api2.request(reqwest::Method::PUT, &format!("{chunked}/data"), Some(ADMIN))
                .header("Content-Range", format!("bytes {half}-{}/{total}", total - 1))
                .body(data[half..].to_vec()),
        )
        .await;
    assert_eq!(response.status, 204, "{}", response.text());
    assert_eq!(api2.data(&chunked).await, data);
    assert_eq!(api2.put_bytes(&format!("{whole}/data"), data.clone()).await.status, 204);
    assert_eq!(api2.data(&whole).await, data);
}

/// Runs `--copy-data-into-database` with the environment of `node`'s last run.
fn copy_data(node: &common::TestNode) -> (Option<i32>, String) {
    let env = node.env();
    let env: Vec<(&str, &str)> = env.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
    let config = node.root().join("absent-sync.conf").display().to_string();
    let (status, output) = common::run_to_exit(
        &env,
        &["-c", &config, "--copy-data-into-database"],
        Duration::from_secs(120),
    );
    (status.code(), output)
}

#[tokio::test]
async fn a_shared_folder_installation_copies_its_data_into_the_database() {
    let cluster = common::postgres::shared();
    let url = cluster.create_database().await;
    let in_files = vec![("OBJECT_DATA_STORAGE".to_string(), "files".to_string())];
    let mut css = common::cluster::instance_with(&url, None, in_files);
    let api = css.api();
    let objects: Vec<(String, Vec<u8>)> = vec![
        (css.obj("model", "big"), pattern(3 * MIB + 5, 31)),
        (css.obj("model", "small"), pattern(1000, 32)),
        (css.obj("model", "empty"), Vec::new()),
    ];
    for (object, data) in &objects {
        api.create(object, json!({}), None).await;
        assert_eq!(api.put_bytes(&format!("{object}/data"), data.clone()).await.status, 204);
    }
    let files = css.files_in("data");
    assert_eq!(files.len(), 3, "kept in files: {files:?}");
    css.terminate();
    assert!(css.wait_exit(DEADLINE).is_some_and(|s| s.success()));

    let (code, output) = copy_data(&css);
    assert_eq!(code, Some(0), "{output}");
    assert!(output.contains("copied 3"), "{output}");
    // Run again: nothing to copy, everything verified against its file.
    let (code, output) = copy_data(&css);
    assert_eq!(code, Some(0), "{output}");
    assert!(output.contains("copied 0") && output.contains("verified 3"), "{output}");

    // A file that differs from the database's copy is reported, never copied over.
    let big = files
        .iter()
        .max_by_key(|f| f.metadata().unwrap().len())
        .unwrap()
        .clone();
    let mut changed = std::fs::read(&big).unwrap();
    changed[MIB] ^= 0xff;
    std::fs::write(&big, &changed).unwrap();
    let (code, output) = copy_data(&css);
    assert_eq!(code, Some(1), "{output}");
    assert!(
        output.contains("differing 1") && output.contains("different SHA-256"),
        "{output}"
    );

    // The data is served from the database by an instance of its own folder; one started
    // on the old folder serves it too, and its log says the files there are not used.
    for root in [None, Some(css.root())] {
        let in_database = common::cluster::instance_with(&url, root, Vec::new());
        for (object, data) in &objects {
            assert_eq!(in_database.api().data(object).await, *data, "{object}");
        }
        let warned = in_database.log().contains("--copy-data-into-database");
        assert_eq!(warned, root.is_some(), "{}", in_database.log());
    }
}

#[test]
fn copying_data_into_the_database_needs_postgres() {
    let (status, output) = common::run_to_exit(
        &[("NODE_TYPE", "CSS")],
        &["-c", "/nonexistent/sync.conf", "--copy-data-into-database"],
        Duration::from_secs(30),
    );
    assert_eq!(status.code(), Some(2), "{output}");
    assert!(output.contains("needs StorageProvider postgres"), "{output}");
}
