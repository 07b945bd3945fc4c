//! The command-line client (`edge-sync-service object ...`, `nodes`, `completion`) against
//! real nodes: publishing whole, in chunks and from stdin, an interrupted publish and an
//! interrupted download continuing where they stopped, listings, delivery status followed
//! until an ESS has the object, and one-line errors with their exit codes.

mod common;

use common::faults::{Ending, Fault, FaultProxy};
use common::sync::{http_ess, wait_registered};
use common::{pattern, run_to_exit, TestNode};
use std::path::Path;
use std::time::Duration;

const LIMIT: Duration = Duration::from_secs(60);
const MIB: usize = 1 << 20;

/// Runs the client against the node on `port` as the org's admin; exit code and output
/// (stderr, then stdout).
fn client(port: u16, args: &[&str], dir: &Path) -> (i32, String) {
    client_with(port, args, dir, &[])
}

fn client_with(port: u16, args: &[&str], dir: &Path, extra: &[(&str, &str)]) -> (i32, String) {
    let url = format!("http://127.0.0.1:{port}");
    let state = dir.join("state").display().to_string();
    let mut env = vec![
        ("EDGE_SYNC_URL", url.as_str()),
        ("HZN_EXCHANGE_USER_AUTH", "org/admin:secret"),
        ("XDG_STATE_HOME", state.as_str()),
    ];
    env.extend_from_slice(extra);
    let (status, output) = run_to_exit(&env, args, LIMIT);
    (status.code().unwrap_or(-1), output)
}

/// [`client`] from an async test: the run blocks.
async fn client_async(port: u16, args: &[&str], dir: &Path) -> (i32, String) {
    let args: Vec<String> = args.iter().map(|a| a.to_string()).collect();
    let dir = dir.to_path_buf();
    tokio::task::spawn_blocking(move || {
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        client(port, &args, &dir)
    })
    .await
    .unwrap()
}

fn path_arg(path: &Path) -> String {
    path.display().to_string()
}

#[test]
fn publish_list_download_and_delete_on_a_css() {
    let css = TestNode::css();
    let dir = tempfile::tempdir().unwrap();
    let data = pattern(3 * MIB + 11, 4);
    let file = dir.path().join("model.bin");
    std::fs::write(&file, &data).unwrap();
    let meta = dir.path().join("meta.json");
    std::fs::write(
        &meta,
        r#"{"objectType": "model", "objectID": "m1", "version": "1.2", "description": "weights"}"#,
    )
    .unwrap();

    let (code, output) = client(
        css.port(),
        &[
            "object",
            "publish",
            "-m",
            &path_arg(&meta),
            "--dest-type",
            "edge",
            "-f",
            &path_arg(&file),
        ],
        dir.path(),
    );
    assert_eq!(code, 0, "{output}");
    assert!(output.contains("org/model/m1: 3.1 MB of 3.1 MB (100 %)"), "{output}");
    let (code, output) = client(
        css.port(),
        &["object", "publish", "-t", "config", "-i", "c1"],
        dir.path(),
    );
    assert_eq!(code, 0, "{output}");

    let (code, output) = client(css.port(), &["object", "list"], dir.path());
    assert_eq!(code, 0, "{output}");
    let lines: Vec<&str> = output.lines().collect();
    assert!(
        lines
            .iter()
            .any(|l| l.starts_with("TYPE") && l.contains("DESTINATIONS")),
        "{output}"
    );
    let m1 = lines.iter().find(|l| l.contains("m1")).expect("m1 listed");
    for field in ["model", "1.2", "3.1 MB", "edge (all)"] {
        assert!(m1.contains(field), "{m1}");
    }
    assert!(
        lines.iter().any(|l| l.starts_with("config") && l.contains(" - ")),
        "{output}"
    );
    let (code, output) = client(css.port(), &["object", "list", "-t", "model", "--json"], dir.path());
    assert_eq!(code, 0, "{output}");
    let listed: serde_json::Value = serde_json::from_str(&output).expect("JSON");
    assert_eq!(listed.as_array().unwrap().len(), 1, "{output}");
    assert_eq!(listed[0]["description"], "weights");

    let out = dir.path().join("copy.bin");
    let (code, output) = client(
        css.port(),
        &["object", "download", "-t", "model", "-i", "m1", "-f", &path_arg(&out)],
        dir.path(),
    );
    assert_eq!(code, 0, "{output}");
    assert_eq!(std::fs::read(&out).unwrap(), data);
    // `get` is the same command.
    let (code, output) = client(
        css.port(),
        &["object", "get", "-t", "model", "-i", "m1", "-f", &path_arg(&out)],
        dir.path(),
    );
    assert_eq!(code, 2, "an existing file is kept: {output}");
    assert!(output.contains("--overwrite"), "{output}");

    let (code, output) = client(css.port(), &["object", "delete", "-t", "model", "-i", "m1"], dir.path());
    assert_eq!(code, 0, "{output}");
    let (code, output) = client(css.port(), &["object", "status", "-t", "model", "-i", "m1"], dir.path());
    assert_eq!(code, 1, "{output}");
    assert_eq!(output.trim(), "error: reading the object's status: not found");
}

#[tokio::test]
async fn an_interrupted_chunked_publish_continues_where_it_stopped() {
    let css = TestNode::css();
    let proxy = FaultProxy::start(css.port()).await;
    let dir = tempfile::tempdir().unwrap();
    let data = pattern(5 * MIB + 7, 9);
    let file = dir.path().join("big.bin");
    std::fs::write(&file, &data).unwrap();
    let publish = [
        "object",
        "publish",
        "-t",
        "model",
        "-i",
        "big",
        "--chunk-size",
        "1048576",
        "-f",
        &path_arg(&file),
    ];
    // The connection is cut in the third chunk: two were acknowledged.
    proxy.set(Fault::Cut {
        after: 2 * MIB as u64 + MIB as u64 / 2,
        ending: Ending::Reset,
    });
    let (code, output) = client_async(proxy.port(), &publish, dir.path()).await;
    assert_eq!(code, 3, "the service became unreachable: {output}");
    assert_eq!(
        output.lines().filter(|l| l.starts_with("error: ")).count(),
        1,
        "{output}"
    );
    assert_eq!(css.api().status_of(&css.obj("model", "big")).await, "notReady");

    proxy.heal();
    let (code, output) = client_async(proxy.port(), &publish, dir.path()).await;
    assert_eq!(code, 0, "{output}");
    assert!(
        output.contains("continuing an interrupted publish at byte 2097152"),
        "{output}"
    );
    assert!(
        proxy.bytes_up() < (2 * data.len()) as u64,
        "the acknowledged chunks were not sent again"
    );
    assert_eq!(css.api().data(&css.obj("model", "big")).await, data);
    // Done: a further run publishes anew.
    let (code, output) = client_async(proxy.port(), &publish, dir.path()).await;
    assert_eq!(code, 0, "{output}");
    assert!(!output.contains("continuing"), "{output}");
}

#[test]
fn data_from_stdin_and_an_interrupted_download() {
    let css = TestNode::css();
    let dir = tempfile::tempdir().unwrap();
    let data = pattern(2 * MIB + 3, 2);
    let input = dir.path().join("input.bin");
    std::fs::write(&input, &data).unwrap();
    let url = format!("http://127.0.0.1:{}", css.port());
    let published = std::process::Command::new(env!("CARGO_BIN_EXE_edge-sync-service"))
        .args(["object", "publish", "-t", "logs", "-i", "l1", "-f", "-", "-q"])
        .env("EDGE_SYNC_URL", &url)
        .env("HZN_EXCHANGE_USER_AUTH", "org/admin:secret")
        .stdin(std::fs::File::open(&input).unwrap())
        .output()
        .unwrap();
    assert!(
        published.status.success(),
        "{}",
        String::from_utf8_lossy(&published.stderr)
    );
    let meta = futures_executor(css.api().meta(&css.obj("logs", "l1")));
    let instance = meta["instanceID"].as_i64().unwrap();

    // A download that stopped after 1 MiB left its partial file.
    let out = dir.path().join("l1.bin");
    std::fs::write(dir.path().join(format!("l1.bin.part-{instance}")), &data[..MIB]).unwrap();
    std::fs::write(dir.path().join("l1.bin.part-1"), b"an older instance").unwrap();
    let (code, output) = client(
        css.port(),
        &["object", "download", "-t", "logs", "-i", "l1", "-f", &path_arg(&out)],
        dir.path(),
    );
    assert_eq!(code, 0, "{output}");
    assert!(
        output.contains("continuing an interrupted download at byte 1048576"),
        "{output}"
    );
    assert_eq!(std::fs::read(&out).unwrap(), data);
    let left: Vec<_> = std::fs::read_dir(dir.path())
        .unwrap()
        .flatten()
        .filter(|e| e.file_name().to_string_lossy().contains(".part-"))
        .collect();
    assert!(left.is_empty(), "no partial file is left: {left:?}");
}

#[tokio::test]
async fn status_and_watch_follow_the_delivery_to_an_ess() {
    let css = TestNode::css();
    let ess = http_ess(css.port(), &[("DESTINATION_ID", "node1")]);
    wait_registered(&css, &ess, "node1").await;
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("m.bin");
    std::fs::write(&file, pattern(100_000, 1)).unwrap();
    let (code, output) = client_async(
        css.port(),
        &[
            "object",
            "publish",
            "-t",
            "model",
            "-i",
            "w1",
            "--dest-type",
            "edge",
            "--dest-id",
            "node1",
            "-f",
            &path_arg(&file),
        ],
        dir.path(),
    )
    .await;
    assert_eq!(code, 0, "{output}");
    let (code, output) = client_async(
        css.port(),
        &[
            "object",
            "watch",
            "-t",
            "model",
            "-i",
            "w1",
            "--until",
            "delivered",
            "--timeout",
            "30",
            "--interval",
            "1",
        ],
        dir.path(),
    )
    .await;
    assert_eq!(code, 0, "{output}");
    assert!(output.contains("every destination is delivered or further"), "{output}");

    let (code, output) = client_async(
        css.port(),
        &["object", "status", "-t", "model", "-i", "w1", "--json"],
        dir.path(),
    )
    .await;
    assert_eq!(code, 0, "{output}");
    let summary: serde_json::Value = serde_json::from_str(&output).expect("JSON");
    assert_eq!(summary["status"], "ready");
    assert_eq!(summary["destinations"], 1);
    let (code, output) = client_async(
        css.port(),
        &["object", "destinations", "-t", "model", "-i", "w1"],
        dir.path(),
    )
    .await;
    assert_eq!(code, 0, "{output}");
    assert!(
        output.lines().any(|l| l.starts_with("edge") && l.contains("node1")),
        "{output}"
    );
    let (code, output) = client_async(css.port(), &["nodes"], dir.path()).await;
    assert_eq!(code, 0, "{output}");
    assert!(
        output.lines().any(|l| l.contains("node1") && l.contains("http")),
        "{output}"
    );

    // Consumed never comes: the application on the ESS does not consume it.
    let (code, output) = client_async(
        css.port(),
        &[
            "object",
            "watch",
            "-t",
            "model",
            "-i",
            "w1",
            "--until",
            "consumed",
            "--timeout",
            "2",
            "--interval",
            "1",
        ],
        dir.path(),
    )
    .await;
    assert_eq!(code, 1, "{output}");
    assert!(
        output.contains("not every destination reached consumed within 2 s"),
        "{output}"
    );
}

#[test]
fn errors_are_one_line_with_their_exit_codes() {
    let dir = tempfile::tempdir().unwrap();
    // Nothing listens on this port.
    let closed = common::free_port();
    let (code, output) = client(closed, &["object", "list"], dir.path());
    assert_eq!(code, 3, "{output}");
    assert_eq!(output.lines().count(), 1, "{output}");
    assert!(output.starts_with("error: asking the service's health: "), "{output}");

    let (status, output) = run_to_exit(&[("HZN_ORG_ID", "org")], &["object", "list"], LIMIT);
    assert_eq!(status.code(), Some(2), "{output}");
    assert!(output.contains("no service URL"), "{output}");

    let (code, output) = client(closed, &["object", "publish", "-i", "x"], dir.path());
    assert_eq!(code, 2, "{output}");
    assert!(output.contains("no objectType"), "{output}");
}

#[test]
fn the_same_commands_work_against_an_ess() {
    let ess = TestNode::ess();
    let dir = tempfile::tempdir().unwrap();
    let data = pattern(200_000, 6);
    let file = dir.path().join("report.bin");
    std::fs::write(&file, &data).unwrap();
    // The client learns from the health answer that paths have no organization segment.
    let run = |args: &[&str]| client(ess.port(), args, dir.path());
    let (code, output) = run(&["object", "publish", "-t", "report", "-i", "r1", "-f", &path_arg(&file)]);
    assert_eq!(code, 0, "{output}");
    assert_eq!(ess.api().data(&ess.obj("report", "r1")).await_blocking(), data);
    let (code, output) = run(&["object", "list", "-t", "report"]);
    assert_eq!(code, 0, "{output}");
    assert!(
        output
            .lines()
            .any(|l| l.starts_with("report") && l.contains("r1") && l.contains("200.0 kB")),
        "{output}"
    );
    let (code, output) = run(&["object", "list"]);
    assert_eq!(code, 2, "{output}");
    assert!(output.contains("give -t"), "{output}");
    let out = dir.path().join("copy.bin");
    let (code, output) = run(&["object", "download", "-t", "report", "-i", "r1", "-f", &path_arg(&out)]);
    assert_eq!(code, 0, "{output}");
    assert_eq!(std::fs::read(&out).unwrap(), data);
    let (code, output) = run(&["nodes"]);
    assert_eq!(code, 2, "{output}");
    let (code, output) = run(&["object", "delete", "-t", "report", "-i", "r1"]);
    assert_eq!(code, 0, "{output}");
    assert!(output.contains("org/report/r1: deleted"), "{output}");
}

#[test]
fn completion_scripts_and_help_with_examples() {
    let (status, output) = run_to_exit(&[], &["completion", "bash"], LIMIT);
    assert!(status.success(), "{output}");
    assert!(output.contains("complete") && output.contains("publish"), "{output}");
    let (status, output) = run_to_exit(&[], &["object", "--help"], LIMIT);
    assert!(status.success(), "{output}");
    assert!(
        output.contains("Examples:") && output.contains("object publish -t model"),
        "{output}"
    );
}

/// Runs a future to completion from a synchronous test.
fn futures_executor<F: std::future::Future>(future: F) -> F::Output {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap()
        .block_on(future)
}

trait Blocking: std::future::Future + Sized {
    fn await_blocking(self) -> Self::Output {
        futures_executor(self)
    }
}

impl<F: std::future::Future> Blocking for F {}
