//! Data URIs end to end (spec: lifecycle.md §10, metadata.md rules 21/22, config.md
//! `AllowedDataFileExtensions`): an ESS application's `sourceDataUri` file reaches the CSS
//! byte for byte, a CSS object's `destinationDataUri` file is written, served and removed on
//! the ESS, and every URI outside the allowed directories (by path, `..`, symlink, extension
//! or scheme) is refused at PUT or, when the file system changed later, at transfer time.
//! Real CSS and ESS processes on loopback; every wait has a deadline.

mod common;

use common::sync::{css_with, eventually, http_ess, listed, wait_for, wait_registered, SYNC_DEADLINE};
use common::{pattern, NodeOptions, Role, TestNode, ADMIN};
use serde_json::{json, Value};
use std::path::{Path, PathBuf};

/// Chunk size of both sides: a few MB of data travel in several chunks.
const CHUNK: &str = "524288";

fn uri(path: &Path) -> String {
    format!("file://{}", path.display())
}

/// Writes `contents` at `path`, creating its directory.
fn write(path: &Path, contents: &[u8]) {
    std::fs::create_dir_all(path.parent().unwrap()).unwrap();
    std::fs::write(path, contents).unwrap();
}

/// An ESS of the CSS with `CHUNK`-sized chunks, retrying failed SPI calls after 1 s.
fn ess_of(css: &TestNode, id: &str, env: &[(&str, &str)]) -> TestNode {
    let mut all = vec![
        ("MAX_DATA_CHUNK_SIZE", CHUNK),
        ("ESS_CALL_SPI_RETRY_INTERVAL", "1"),
        ("DESTINATION_ID", id),
    ];
    all.extend_from_slice(env);
    http_ess(css.port(), &all)
}

/// PUT {obj} with `meta` on `node`; returns the answer's status and text.
async fn put_meta(node: &TestNode, path: &str, meta: Value) -> (u16, String) {
    let response = node.api().put_json(path, &common::object_body(path, meta, None)).await;
    (response.status, response.text())
}

/// Asserts that PUT {obj} with `meta` is refused with 400 and a body starting with `message`.
async fn assert_refused(node: &TestNode, path: &str, meta: Value, message: &str) {
    let (status, text) = put_meta(node, path, meta.clone()).await;
    assert_eq!(status, 400, "{meta}: {text}");
    assert!(text.starts_with(message), "{meta}: expected {message:?}, got {text:?}");
    assert_eq!(node.api().get(path).await.status, 404, "nothing stored for {meta}");
}

/// The delivery status and message of `path` at `edge`/`id` on the CSS.
async fn delivery(css: &TestNode, path: &str, id: &str) -> Option<(String, String)> {
    let response = css.api().get(&format!("{path}/destinations")).await;
    if response.status != 200 {
        return None;
    }
    let entry = response
        .json()
        .as_array()?
        .iter()
        .find(|d| d["destinationType"] == "edge" && d["destinationID"] == id)?
        .clone();
    Some((
        entry["status"].as_str()?.to_string(),
        entry["message"].as_str().unwrap_or_default().to_string(),
    ))
}

/// Waits until the ESS log has a line containing `needle`.
async fn wait_logged(nodes: &[&TestNode], ess: &TestNode, needle: &str) {
    wait_for(
        &format!("the ESS to log {needle:?}"),
        nodes,
        SYNC_DEADLINE,
        async || ess.log().lines().any(|l| l.contains(needle)),
    )
    .await;
}

#[tokio::test]
async fn a_source_file_on_the_ess_reaches_the_css_byte_identical() {
    let css = css_with(&[]);
    let ess = ess_of(&css, "node1", &[]);
    wait_registered(&css, &ess, "node1").await;
    // 3 MiB and a bit inside the ESS's persistence root (the default data URI root): 7 chunks.
    let data = pattern(3 * 1024 * 1024 + 1234, 21);
    let file = ess.root().join("files/report.bin");
    write(&file, &data);
    let ess_path = ess.obj("report", "fromfile");
    let (status, text) = put_meta(&ess, &ess_path, json!({"sourceDataUri": uri(&file)})).await;
    assert_eq!(status, 204, "{text}");
    let meta = ess.api().meta(&ess_path).await;
    assert_eq!(meta["objectSize"], data.len(), "objectSize is measured at PUT");
    assert_eq!(
        ess.api().data(&ess_path).await,
        data,
        "GET data on the ESS reads the file"
    );

    eventually("the object on the CSS", &[&css, &ess], SYNC_DEADLINE, async || {
        listed(&css, "report", "fromfile").await
    })
    .await;
    let css_path = css.obj("report", "fromfile");
    assert_eq!(css.api().status_of(&css_path).await, "completelyReceived");
    assert_eq!(css.api().data(&css_path).await, data, "identical data on the CSS");
    // The ESS logs the upload once the CSS acknowledged its last chunk.
    wait_logged(&[&css, &ess], &ess, "data uploaded to the CSS").await;
    let uploaded = ess
        .log()
        .lines()
        .find(|l| l.contains("data uploaded to the CSS"))
        .map(str::to_string);
    assert!(
        uploaded.as_deref().is_some_and(|l| l.contains("parts=7")),
        "uploaded in 7 chunks: {uploaded:?}"
    );
    assert!(ess.files_in("data").is_empty(), "the ESS stored no copy of the file");
    assert_eq!(std::fs::read(&file).unwrap(), data, "the source file is untouched");
}

#[tokio::test]
async fn source_uris_outside_the_allowed_directories_are_refused_at_put() {
    let outside = tempfile::tempdir().unwrap();
    let roots = tempfile::tempdir().unwrap();
    let root = roots.path().to_path_buf();
    let secret = outside.path().join("secret.bin");
    write(&secret, b"not for the CSS");
    write(&root.join("sub/ok.bin"), b"fine");
    write(&root.join("tool.exe"), b"MZ");
    std::os::unix::fs::symlink(&secret, root.join("link.bin")).unwrap();
    let mut options = NodeOptions::new(Role::Ess);
    options.env.extend([
        ("DATA_URI_ROOTS".to_string(), root.display().to_string()),
        ("ALLOWED_DATA_FILE_EXTENSIONS".to_string(), ".bin,.DAT".to_string()),
    ]);
    let ess = TestNode::start(options);
    let path = ess.obj("report", "refused");
    let source = |path: PathBuf| json!({"sourceDataUri": uri(&path)});

    assert_refused(
        &ess,
        &path,
        source(secret.clone()),
        &format!(
            "Invalid source data URI: {} is outside the allowed data directories",
            secret.display()
        ),
    )
    .await;
    // The persistence root is not a root once DATA_URI_ROOTS is set.
    let in_persistence = ess.root().join("files/data.bin");
    write(&in_persistence, b"elsewhere");
    assert_refused(&ess, &path, source(in_persistence), "Invalid source data URI: ").await;
    // `{root}/sub/../../{outside}/secret.bin` exists: only the `..` refuses it.
    let outside_name = outside.path().file_name().unwrap().to_string_lossy();
    let escape = format!("file://{}/sub/../../{outside_name}/secret.bin", root.display());
    let traversal = json!({"sourceDataUri": escape});
    assert_refused(
        &ess,
        &path,
        traversal,
        "Invalid source data URI: path traversal ('..') is not allowed",
    )
    .await;
    assert_refused(
        &ess,
        &path,
        source(root.join("link.bin")),
        "Invalid source data URI: symlink escapes the allowed directories",
    )
    .await;
    assert_refused(
        &ess,
        &path,
        source(root.join("tool.exe")),
        "Invalid source data URI: file extension .exe is not allowed",
    )
    .await;
    assert_refused(
        &ess,
        &path,
        json!({"sourceDataUri": "http://127.0.0.1/sub/ok.bin"}),
        "Invalid source data URI",
    )
    .await;
    // A file inside the root with an allowed extension (any case) is accepted.
    write(&root.join("sub/ok.dat"), b"fine too");
    let (status, text) = put_meta(&ess, &path, source(root.join("sub/ok.dat"))).await;
    assert_eq!(status, 204, "{text}");
    assert_eq!(ess.api().data(&path).await, b"fine too");
}

#[tokio::test]
async fn the_services_own_files_and_bad_destination_uris_are_refused() {
    // Inside the persistence root (the default root) but in the service's own storage.
    let ess = TestNode::ess();
    let own = ess.root().join("sync/dummy-auth.json");
    assert_refused(
        &ess,
        &ess.obj("report", "own"),
        json!({"sourceDataUri": uri(&own)}),
        &format!(
            "Invalid source data URI: {} is inside the service's own storage",
            own.display()
        ),
    )
    .await;
    // The CSS checks what it can of a destination URI, whose file is on the edge nodes.
    let css = css_with(&[("ALLOWED_DATA_FILE_EXTENSIONS", ".bin")]);
    let path = css.obj("model", "bad");
    let cases = [
        (
            "file:///data/../etc/x.bin",
            "Invalid destination data URI: path traversal ('..') is not allowed",
        ),
        (
            "file:///data/x.exe",
            "Invalid destination data URI: file extension .exe is not allowed",
        ),
        (
            "file:relative.bin",
            "Invalid destination data URI: file:relative.bin is not a file URI",
        ),
        ("http:///data/x.bin", "Invalid destination data URI"),
        ("file://host/data/x.bin", "Invalid destination data URI"),
    ];
    for (uri, message) in cases {
        assert_refused(&css, &path, json!({"destinationDataUri": uri}), message).await;
    }
    let (status, text) = put_meta(&css, &path, json!({"destinationDataUri": "file:///data/x.BIN"})).await;
    assert_eq!(status, 204, "{text}");
}

#[tokio::test]
async fn a_destination_file_is_written_served_and_removed_with_the_copy() {
    let css = css_with(&[("MAX_DATA_CHUNK_SIZE", CHUNK)]);
    let roots = tempfile::tempdir().unwrap();
    let root = roots.path().display().to_string();
    let ess = ess_of(&css, "node1", &[("DATA_URI_ROOTS", &root)]);
    wait_registered(&css, &ess, "node1").await;
    let target = roots.path().join("models/model.bin");
    std::fs::create_dir_all(target.parent().unwrap()).unwrap();
    let data = pattern(3 * 1024 * 1024 + 77, 5);
    let css_path = css.obj("model", "tofile");
    css.api()
        .create(
            &css_path,
            json!({"destinationType": "edge", "destinationID": "node1", "destinationDataUri": uri(&target)}),
            None,
        )
        .await;
    let response = css.api().put_bytes(&format!("{css_path}/data"), data.clone()).await;
    assert_eq!(response.status, 204, "{}", response.text());

    eventually("the copy on the ESS", &[&css, &ess], SYNC_DEADLINE, async || {
        listed(&ess, "model", "tofile").await
    })
    .await;
    assert_eq!(
        std::fs::read(&target).unwrap(),
        data,
        "the destination file holds the data"
    );
    assert!(
        !roots.path().join("models/model.bin.tmp").exists(),
        "no temporary file is left"
    );
    assert!(
        ess.files_in("data").is_empty(),
        "the data is not kept in the store as well"
    );
    let ess_path = ess.obj("model", "tofile");
    assert_eq!(ess.api().status_of(&ess_path).await, "completelyReceived");
    assert_eq!(
        ess.api().data(&ess_path).await,
        data,
        "GET data reads the destination file"
    );
    let ranged = ess
        .api()
        .send(
            ess.api()
                .request(reqwest::Method::GET, &format!("{ess_path}/data"), Some(ADMIN))
                .header("Range", "bytes=1000-1999"),
        )
        .await;
    assert_eq!(ranged.status, 206);
    assert_eq!(ranged.body, data[1000..2000]);
    wait_for("delivered on the CSS", &[&css, &ess], SYNC_DEADLINE, async || {
        delivery(&css, &css_path, "node1")
            .await
            .is_some_and(|(s, _)| s == "delivered")
    })
    .await;

    // Consumption removes the copy, and with it the file, once the CSS acknowledged.
    let response = ess.api().put_empty_as(ADMIN, &format!("{ess_path}/consumed")).await;
    assert_eq!(response.status, 204, "{}", response.text());
    wait_for(
        "the copy and its file to go",
        &[&css, &ess],
        SYNC_DEADLINE,
        async || ess.api().get(&ess_path).await.status == 404 && !target.exists(),
    )
    .await;
    assert!(!roots.path().join("models/model.bin.tmp").exists());
}

#[tokio::test]
async fn a_new_instance_rewrites_the_destination_file_and_a_deletion_removes_it() {
    let css = css_with(&[]);
    let roots = tempfile::tempdir().unwrap();
    let root = roots.path().display().to_string();
    let ess = ess_of(&css, "node4", &[("DATA_URI_ROOTS", &root)]);
    wait_registered(&css, &ess, "node4").await;
    let target = roots.path().join("latest.bin");
    let css_path = css.obj("model", "replaced");
    let meta = json!({"destinationType": "edge", "destinationID": "node4", "destinationDataUri": uri(&target)});
    let ess_path = ess.obj("model", "replaced");
    for (round, data) in [b"first version".to_vec(), pattern(300_000, 3)].into_iter().enumerate() {
        css.api().create(&css_path, meta.clone(), Some(&data)).await;
        wait_for(
            &format!("version {round} in the file"),
            &[&css, &ess],
            SYNC_DEADLINE,
            async || {
                std::fs::read(&target).is_ok_and(|on_disk| on_disk == data)
                    && ess.api().get(&format!("{ess_path}/status")).await.text() == "completelyReceived"
            },
        )
        .await;
        assert_eq!(ess.api().data(&ess_path).await, data, "round {round}");
    }
    // The CSS deletes the object: the ESS copy is marked deleted and its file goes.
    let response = css.api().delete_as(ADMIN, &css_path).await;
    assert_eq!(response.status, 204, "{}", response.text());
    wait_for(
        "the file to go with the deletion",
        &[&css, &ess],
        SYNC_DEADLINE,
        async || !target.exists() && ess.api().get(&format!("{ess_path}/status")).await.text() == "objdeleted",
    )
    .await;
    assert_eq!(ess.api().get(&format!("{ess_path}/data")).await.status, 404);
}

#[tokio::test]
async fn a_destination_outside_the_ess_roots_is_refused_with_feedback() {
    let css = css_with(&[]);
    let roots = tempfile::tempdir().unwrap();
    let outside = tempfile::tempdir().unwrap();
    // Inside the root by name, outside by its symlinked directory.
    std::os::unix::fs::symlink(outside.path(), roots.path().join("escape")).unwrap();
    let root = roots.path().display().to_string();
    let ess = ess_of(&css, "node2", &[("DATA_URI_ROOTS", &root)]);
    wait_registered(&css, &ess, "node2").await;
    let cases = [
        (
            "viasymlink",
            roots.path().join("escape/x.bin"),
            "symlink escapes the allowed directories",
        ),
        (
            "outside",
            outside.path().join("y.bin"),
            "is outside the allowed data directories",
        ),
    ];
    for (id, target, message) in &cases {
        let css_path = css.obj("model", id);
        let meta = json!({"destinationType": "edge", "destinationID": "node2", "destinationDataUri": uri(target)});
        css.api().create(&css_path, meta, Some(b"never written outside")).await;
        let (status, reason) = eventually("error feedback on the CSS", &[&css, &ess], SYNC_DEADLINE, async || {
            delivery(&css, &css_path, "node2").await.filter(|(s, _)| s == "error")
        })
        .await;
        assert_eq!(status, "error");
        assert!(reason.contains(message), "{id}: {reason}");
        assert_eq!(
            ess.api().get(&ess.obj("model", id)).await.status,
            404,
            "{id}: no copy on the ESS"
        );
    }
    let written: Vec<_> = std::fs::read_dir(outside.path()).unwrap().collect();
    assert!(written.is_empty(), "nothing was written outside the roots: {written:?}");
}

#[tokio::test]
async fn a_source_file_changed_or_swapped_after_put_is_never_sent() {
    let css = css_with(&[]);
    let ess = ess_of(&css, "node3", &[]);
    wait_registered(&css, &ess, "node3").await;
    let outside = tempfile::tempdir().unwrap();
    let files = ess.root().join("files");
    let original = pattern(200_000, 9);
    // Stored inactive, so nothing moves until the file has been tampered with.
    for id in ["grown", "rewritten", "swapped"] {
        write(&files.join(format!("{id}.bin")), &original);
        let meta = json!({"sourceDataUri": uri(&files.join(format!("{id}.bin"))), "inactive": true});
        let (status, text) = put_meta(&ess, &ess.obj("report", id), meta).await;
        assert_eq!(status, 204, "{id}: {text}");
    }
    // Grown: a different size than objectSize.
    let mut grown = original.clone();
    grown.extend_from_slice(b"appended later");
    std::fs::write(files.join("grown.bin"), &grown).unwrap();
    // Rewritten: the same size, other bytes, modified after the instance was stored (the
    // modification time is set explicitly: file system clocks are coarser than instance IDs).
    let instance = ess.api().meta(&ess.obj("report", "rewritten")).await["instanceID"]
        .as_i64()
        .unwrap();
    let later = std::time::UNIX_EPOCH + std::time::Duration::from_nanos(instance as u64 + 1_000_000);
    std::fs::write(files.join("rewritten.bin"), pattern(200_000, 10)).unwrap();
    let handle = std::fs::File::options()
        .write(true)
        .open(files.join("rewritten.bin"))
        .unwrap();
    handle.set_modified(later).unwrap();
    // Swapped: replaced by a symlink to an older file of the same size outside the roots.
    let elsewhere = outside.path().join("elsewhere.bin");
    std::fs::write(&elsewhere, pattern(200_000, 11)).unwrap();
    let old = std::time::UNIX_EPOCH + std::time::Duration::from_secs(1_000_000_000);
    std::fs::File::options()
        .write(true)
        .open(&elsewhere)
        .unwrap()
        .set_modified(old)
        .unwrap();
    std::fs::remove_file(files.join("swapped.bin")).unwrap();
    std::os::unix::fs::symlink(&elsewhere, files.join("swapped.bin")).unwrap();

    for id in ["grown", "rewritten", "swapped"] {
        let response = ess
            .api()
            .put_empty_as(ADMIN, &format!("{}/activate", ess.obj("report", id)))
            .await;
        assert_eq!(response.status, 204, "{id}: {}", response.text());
    }
    let nodes = [&css, &ess];
    wait_logged(&nodes, &ess, "changed after the object was stored: it has 200014 bytes").await;
    wait_logged(&nodes, &ess, "modified after the object was stored").await;
    wait_logged(&nodes, &ess, "symlink escapes the allowed directories").await;
    for id in ["grown", "rewritten", "swapped"] {
        let css_path = css.obj("report", id);
        let status = css.api().get(&format!("{css_path}/status")).await.text();
        assert_ne!(status, "completelyReceived", "{id}: the CSS must not complete it");
        assert_ne!(
            css.api().get(&format!("{css_path}/data")).await.status,
            200,
            "{id}: no data on the CSS"
        );
    }
    // The application on the ESS is refused the swapped file as well.
    let response = ess.api().get(&format!("{}/data", ess.obj("report", "swapped"))).await;
    assert_eq!(response.status, 409, "{}", response.text());
    assert!(response.text().contains("symlink escapes"), "{}", response.text());
}
