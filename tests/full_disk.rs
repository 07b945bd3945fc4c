//! A full disk: the persistence folder (database and data files) on a small tmpfs that the
//! test fills. An upload that does not fit is answered `507` with a plain-text reason and
//! leaves the object and the disk as they were; reads go on; writes work again once space
//! is freed, without a restart. An ESS whose disk fills during a download reports it to its
//! CSS and completes the download once space is freed.
//!
//! Mounting needs root (CI runs as root); elsewhere each test says why and skips.

mod common;

use common::sync::{eventually, wait_registered, SYNC_DEADLINE};
use common::{pattern, NodeOptions, Role, TestNode, ADMIN};
use serde_json::json;
use std::path::{Path, PathBuf};
use std::process::Command;

/// Size of the small file system.
const DISK: &str = "16m";
const DISK_BYTES: usize = 16 << 20;
/// Free space left on the disk when it is "full" for data: less than any upload below.
const HEADROOM: u64 = 256 << 10;
/// Data the tests store: larger than [`HEADROOM`].
const DATA_LEN: usize = 2 << 20;

/// A tmpfs mounted on a temporary directory, unmounted on drop (lazily if still busy), so
/// nothing stays mounted even when a test fails.
struct SmallDisk {
    dir: tempfile::TempDir,
}

impl SmallDisk {
    /// `None` (with the reason printed) when this machine cannot mount one: mounting needs
    /// root, and a container may forbid it even then.
    fn mount() -> Option<Self> {
        let dir = tempfile::tempdir().expect("temp dir");
        let mounted = Command::new("mount")
            .args(["-t", "tmpfs", "-o", &format!("size={DISK}"), "tmpfs"])
            .arg(dir.path())
            .output();
        match mounted {
            Ok(output) if output.status.success() => Some(Self { dir }),
            Ok(output) => {
                eprintln!(
                    "SKIPPED: cannot mount a small tmpfs (needs root): {}",
                    String::from_utf8_lossy(&output.stderr).trim()
                );
                None
            }
            Err(e) => {
                eprintln!("SKIPPED: cannot run mount: {e}");
                None
            }
        }
    }

    fn path(&self) -> &Path {
        self.dir.path()
    }

    /// Bytes still free for files.
    fn free(&self) -> u64 {
        let stats = rustix::fs::statvfs(self.path()).expect("statvfs");
        stats.f_bavail * stats.f_frsize
    }

    /// Writes a filler file that leaves `left` bytes free (or less, never more).
    fn fill(&self, name: &str, left: u64) -> PathBuf {
        use std::io::Write;
        let path = self.path().join(name);
        let mut file = std::fs::File::create(&path).expect("filler");
        let block = vec![0xa5u8; 64 << 10];
        while self.free() > left {
            let want = (self.free() - left).min(block.len() as u64) as usize;
            match file.write_all(&block[..want]) {
                Ok(()) => {}
                Err(e) if e.raw_os_error() == Some(28) => break,
                Err(e) => panic!("writing the filler: {e}"),
            }
        }
        file.sync_all().expect("filler sync");
        path
    }

    /// Starts a node of `role` whose persistence folder is on this disk.
    fn node(&self, role: Role, env: &[(&str, &str)]) -> TestNode {
        common::write_test_users(self.path());
        let mut options = NodeOptions::new(role);
        options
            .env
            .push(("PERSISTENCE_ROOT_PATH".into(), self.path().display().to_string()));
        options
            .env
            .extend(env.iter().map(|(k, v)| (k.to_string(), v.to_string())));
        TestNode::start(options)
    }

    /// Bytes in the files of `sync/objects/{sub}` on this disk.
    fn bytes_in(&self, sub: &str) -> u64 {
        let dir = self.path().join("sync/objects").join(sub);
        std::fs::read_dir(dir)
            .map(|entries| entries.filter_map(|e| e.ok()?.metadata().ok()).map(|m| m.len()).sum())
            .unwrap_or(0)
    }
}

impl Drop for SmallDisk {
    fn drop(&mut self) {
        let path = self.path().to_path_buf();
        let unmounted = Command::new("umount").arg(&path).status().is_ok_and(|s| s.success());
        if !unmounted {
            // Still busy (a node that did not exit yet): detach it now, freed when unused.
            let _ = Command::new("umount").arg("-l").arg(&path).status();
        }
    }
}

/// PUT of raw bytes, with an optional `Content-Range`; a connection the node closed while
/// the body was still being sent counts as a failed request (status 0).
async fn put_data(node: &TestNode, path: &str, body: Vec<u8>, range: Option<String>) -> (u16, String) {
    let api = node.api();
    let mut request = api.request(reqwest::Method::PUT, &format!("{path}/data"), Some(ADMIN));
    if let Some(range) = range {
        request = request.header("Content-Range", range);
    }
    match request.body(body).send().await {
        Ok(response) => {
            let status = response.status().as_u16();
            (status, response.text().await.unwrap_or_default())
        }
        Err(e) => (0, e.to_string()),
    }
}

fn assert_no_space(what: &str, (status, text): &(u16, String)) {
    assert_eq!(*status, 507, "{what}: {text}");
    assert!(text.contains("disk space"), "{what}: a plain-text reason, got {text:?}");
}

/// The object's data, or the status when there is none.
async fn data_of(node: &TestNode, path: &str) -> Result<Vec<u8>, u16> {
    let response = node.api().get(&format!("{path}/data")).await;
    if response.status == 200 {
        Ok(response.body)
    } else {
        Err(response.status)
    }
}

async fn put_meta(node: &TestNode, path: &str, meta: serde_json::Value) -> (u16, String) {
    let response = node.api().put_json(path, &common::object_body(path, meta, None)).await;
    (response.status, response.text())
}

#[tokio::test]
async fn uploads_that_do_not_fit_get_507_and_writes_work_again_once_space_is_freed() {
    let Some(disk) = SmallDisk::mount() else { return };
    let css = disk.node(Role::Css, &[]);
    let (kept, chunked) = (css.obj("files", "kept"), css.obj("files", "chunked"));
    let old = pattern(DATA_LEN, 1);
    css.api().create(&kept, json!({}), None).await;
    assert_eq!(put_data(&css, &kept, old.clone(), None).await.0, 204);
    css.api().create(&chunked, json!({}), None).await;

    let filler = disk.fill("filler", HEADROOM);
    let free_before = disk.free();

    // A whole upload replacing the data, larger than the whole disk: refused while the
    // client is still sending, the old data stays, no temporary file.
    let whole = put_data(&css, &kept, pattern(DISK_BYTES, 2), None).await;
    assert_no_space("whole upload", &whole);
    assert_eq!(
        data_of(&css, &kept).await,
        Ok(old.clone()),
        "the previous data is served"
    );
    assert_eq!(disk.bytes_in("tmp"), 0, "no temporary file left");
    assert!(
        disk.free() >= free_before - (64 << 10),
        "the failed upload gave its space back"
    );

    // A chunked upload: refused at its first chunk, nothing reserved, no data visible.
    let total = DATA_LEN as u64;
    let range = format!("bytes 0-{}/{total}", (1 << 20) - 1);
    let first_chunk = put_data(&css, &chunked, pattern(1 << 20, 3), Some(range)).await;
    assert_no_space("first chunk", &first_chunk);
    assert_eq!(data_of(&css, &chunked).await, Err(404), "no data appeared");
    assert_eq!(disk.bytes_in("partial"), 0, "no partial file keeps space");

    // Reads keep working.
    assert_eq!(css.api().meta(&kept).await["objectID"], "kept");
    let listing = css
        .api()
        .get(&format!("{}?all_objects=true", css.type_path("files")))
        .await;
    assert_eq!(listing.status, 200, "{}", listing.text());
    assert_eq!(listing.json().as_array().map(Vec::len), Some(2));

    // The last bytes go too: metadata writes fail once the database cannot grow, with 507
    // and without a trace of the refused object.
    let rest = disk.fill("rest", 0);
    let description = "d".repeat(16 << 10);
    let mut refused = None;
    for n in 0..400 {
        let path = css.obj("meta", &format!("m{n}"));
        let (status, text) = put_meta(&css, &path, json!({ "description": description })).await;
        match status {
            204 => continue,
            507 => {
                assert!(text.contains("disk space"), "{text}");
                refused = Some(path);
                break;
            }
            other => panic!("metadata PUT {n} on a full disk: {other} {text}"),
        }
    }
    let refused = refused.expect("the database ran out of space within 400 objects");
    assert_eq!(
        css.api().get(&refused).await.status,
        404,
        "the refused object is not visible"
    );
    assert_eq!(data_of(&css, &kept).await, Ok(old), "existing data still served");
    css.assert_healthy().await;

    // Space freed (the filler files removed): every refused write succeeds, no restart.
    std::fs::remove_file(filler).unwrap();
    std::fs::remove_file(rest).unwrap();
    let new = pattern(DATA_LEN, 4);
    assert_eq!(put_data(&css, &kept, new.clone(), None).await.0, 204);
    assert_eq!(data_of(&css, &kept).await, Ok(new));
    let chunks = pattern(DATA_LEN, 5);
    for (start, part) in chunks.chunks(1 << 20).enumerate() {
        let start = start << 20;
        let range = format!("bytes {start}-{}/{total}", start + part.len() - 1);
        assert_eq!(put_data(&css, &chunked, part.to_vec(), Some(range)).await.0, 204);
    }
    assert_eq!(data_of(&css, &chunked).await, Ok(chunks));
    assert_eq!(put_meta(&css, &refused, json!({})).await.0, 204);
    css.assert_healthy().await;
}

#[tokio::test]
async fn deleting_an_object_frees_space_for_the_next_upload() {
    let Some(disk) = SmallDisk::mount() else { return };
    let css = disk.node(Role::Css, &[]);
    let (big, next) = (css.obj("files", "big"), css.obj("files", "next"));
    css.api().create(&big, json!({}), None).await;
    assert_eq!(put_data(&css, &big, pattern(DATA_LEN, 1), None).await.0, 204);
    css.api().create(&next, json!({}), None).await;
    let _filler = disk.fill("filler", HEADROOM);
    assert_no_space(
        "upload on a full disk",
        &put_data(&css, &next, pattern(DATA_LEN, 2), None).await,
    );

    let deleted = css.api().delete_as(ADMIN, &big).await;
    assert_eq!(deleted.status, 204, "{}", deleted.text());
    let data = pattern(DATA_LEN, 3);
    eventually(
        "the deleted object's space to be usable",
        &[&css],
        SYNC_DEADLINE,
        async || (put_data(&css, &next, data.clone(), None).await.0 == 204).then_some(()),
    )
    .await;
    assert_eq!(data_of(&css, &next).await, Ok(data));
}

/// The delivery state of `path` at `edge/node1` on the CSS: status and message.
async fn delivery(css: &TestNode, path: &str) -> Option<(String, String)> {
    let response = css.api().get(&format!("{path}/destinations")).await;
    let destinations = (response.status == 200).then(|| response.json())?;
    let node = destinations
        .as_array()?
        .iter()
        .find(|d| d["destinationType"] == "edge" && d["destinationID"] == "node1")?
        .clone();
    Some((
        node["status"].as_str()?.to_string(),
        node["message"].as_str().unwrap_or_default().to_string(),
    ))
}

#[tokio::test]
async fn an_ess_with_a_full_disk_reports_it_and_completes_the_download_once_space_is_freed() {
    let Some(disk) = SmallDisk::mount() else { return };
    let css = common::sync::css_with(&[("RESEND_INTERVAL", "1"), ("MAX_DATA_CHUNK_SIZE", "524288")]);
    let port = css.port().to_string();
    let ess = disk.node(
        Role::Ess,
        &[
            ("COMMUNICATION_PROTOCOL", "http"),
            ("HTTP_CSS_HOST", "127.0.0.1"),
            ("HTTP_CSS_PORT", &port),
            ("HTTP_POLLING_INTERVAL", "1"),
            ("RESEND_INTERVAL", "1"),
            ("ESS_CALL_SPI_RETRY_INTERVAL", "1"),
        ],
    );
    wait_registered(&css, &ess, "node1").await;
    let filler = disk.fill("filler", HEADROOM);

    let path = css.obj("files", "big");
    let data = pattern(DATA_LEN, 7);
    let meta = json!({"destinationType": "edge", "destinationID": "node1"});
    css.api().create(&path, meta, None).await;
    assert_eq!(put_data(&css, &path, data.clone(), None).await.0, 204);

    let (_, reason) = eventually(
        "the ESS to report its full disk",
        &[&css, &ess],
        SYNC_DEADLINE,
        async || delivery(&css, &path).await.filter(|(status, _)| status == "error"),
    )
    .await;
    assert!(reason.contains("disk space"), "reported reason: {reason}");
    assert_eq!(disk.bytes_in("partial"), 0, "the failed download keeps no space");
    let on_ess = ess.obj("files", "big");
    assert_ne!(data_of(&ess, &on_ess).await.ok(), Some(data.clone()), "no data yet");
    ess.assert_healthy().await;

    std::fs::remove_file(filler).unwrap();
    eventually("the download to complete", &[&css, &ess], SYNC_DEADLINE, async || {
        (data_of(&ess, &on_ess).await.ok().as_ref() == Some(&data)).then_some(())
    })
    .await;
    eventually(
        "the CSS to see the delivery",
        &[&css, &ess],
        SYNC_DEADLINE,
        async || delivery(&css, &path).await.filter(|(status, _)| status == "delivered"),
    )
    .await;
    ess.assert_healthy().await;
    let own = ess.obj("local", "after");
    ess.api().create(&own, json!({}), Some(b"works")).await;
    assert_eq!(data_of(&ess, &own).await, Ok(b"works".to_vec()));
}
