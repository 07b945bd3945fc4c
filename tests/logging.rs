//! The original's logging keys on the real binary: `LogTraceDestination` `file` writes the
//! log and the trace to their own files at their own levels and rotates them into gzip
//! files; `stdout` writes to standard output and no file; a destination list with nothing
//! known, or a log folder that cannot be made, stops the start with exit code 98.
//!
//! Nodes run as plain processes here (not through `TestNode`): the tests tell standard
//! output from standard error, and stop the node with SIGTERM to see the last lines flushed.

mod common;

use std::fs;
use std::io::{Read, Write};
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::time::{Duration, Instant};

use common::{basic, free_port, run_to_exit, ADMIN};

/// Longest a node may take to answer its health route, to stop, or to write a line.
const DEADLINE: Duration = Duration::from_secs(30);

/// A running CSS with its standard output and standard error in files; killed on drop.
struct Node {
    child: Child,
    port: u16,
    stdout: PathBuf,
    stderr: PathBuf,
}

impl Drop for Node {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Node {
    /// Starts a CSS with its persistence root and output files in `dir`, `env` added last,
    /// and waits until it answers its health route.
    fn start(dir: &Path, env: &[(&str, &str)]) -> Node {
        let stdout = dir.join("stdout.txt");
        let stderr = dir.join("stderr.txt");
        let console = (
            Stdio::from(fs::File::create(&stdout).unwrap()),
            Stdio::from(fs::File::create(&stderr).unwrap()),
        );
        Self::start_with(dir, env, console, stdout, stderr)
    }

    /// As [`Node::start`], with standard output and error on pipes that nobody reads: once
    /// they are full, every write to them waits.
    fn start_unread(dir: &Path, env: &[(&str, &str)]) -> Node {
        let unread = dir.join("unread");
        Self::start_with(dir, env, (Stdio::piped(), Stdio::piped()), unread.clone(), unread)
    }

    fn start_with(dir: &Path, env: &[(&str, &str)], console: (Stdio, Stdio), stdout: PathBuf, stderr: PathBuf) -> Node {
        let root = dir.join("persist");
        fs::create_dir_all(&root).unwrap();
        let port = free_port();
        let child = Command::new(env!("CARGO_BIN_EXE_edge-sync-service"))
            .arg("-c")
            .arg(dir.join("absent-sync.conf"))
            .env_clear()
            .env("NODE_TYPE", "CSS")
            .env("LISTENING_TYPE", "unsecure")
            .env("LISTENING_ADDRESS", "127.0.0.1")
            .env("UNSECURE_LISTENING_PORT", port.to_string())
            .env("PERSISTENCE_ROOT_PATH", &root)
            .env("COMMUNICATION_PROTOCOL", "http")
            .env("NO_COLOR", "1")
            .envs(env.iter().copied())
            .stdin(Stdio::null())
            .stdout(console.0)
            .stderr(console.1)
            .spawn()
            .expect("spawn the service");
        let mut node = Node {
            child,
            port,
            stdout,
            stderr,
        };
        let deadline = Instant::now() + DEADLINE;
        while node.health() != Some(200) {
            if let Some(status) = node.child.try_wait().unwrap() {
                panic!("the node exited with {status}:\n{}", node.output());
            }
            assert!(Instant::now() < deadline, "the node did not start:\n{}", node.output());
            std::thread::sleep(Duration::from_millis(20));
        }
        node
    }

    /// `GET /api/v1/health` as an admin; the status, or `None` when nothing answered.
    fn health(&self) -> Option<u16> {
        let mut stream = TcpStream::connect(("127.0.0.1", self.port)).ok()?;
        stream.set_read_timeout(Some(DEADLINE)).ok()?;
        let request = format!(
            "GET /api/v1/health HTTP/1.1\r\nHost: localhost\r\nAuthorization: {}\r\nConnection: close\r\n\r\n",
            basic(ADMIN)
        );
        stream.write_all(request.as_bytes()).ok()?;
        let mut answer = String::new();
        stream.read_to_string(&mut answer).ok()?;
        answer.split(' ').nth(1)?.parse().ok()
    }

    fn stdout(&self) -> String {
        fs::read_to_string(&self.stdout).unwrap_or_default()
    }

    fn stderr(&self) -> String {
        fs::read_to_string(&self.stderr).unwrap_or_default()
    }

    fn output(&self) -> String {
        format!("stdout:\n{}\nstderr:\n{}", self.stdout(), self.stderr())
    }

    /// Stops the node as a service manager does (SIGTERM) and waits for its exit.
    fn stop(&mut self) -> ExitStatus {
        let sent = Command::new("kill")
            .args(["-TERM", &self.child.id().to_string()])
            .status()
            .expect("kill");
        assert!(sent.success());
        let deadline = Instant::now() + DEADLINE;
        loop {
            if let Some(status) = self.child.try_wait().unwrap() {
                return status;
            }
            assert!(Instant::now() < deadline, "the node did not stop:\n{}", self.output());
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

/// Waits until `path` holds text for which `done` is true; returns that text.
fn wait_for_file(path: &Path, what: &str, done: impl Fn(&str) -> bool) -> String {
    let deadline = Instant::now() + DEADLINE;
    loop {
        let text = fs::read_to_string(path).unwrap_or_default();
        if done(&text) {
            return text;
        }
        assert!(
            Instant::now() < deadline,
            "{what} never appeared in {}:\n{text}",
            path.display()
        );
        std::thread::sleep(Duration::from_millis(20));
    }
}

fn gunzip(path: &Path) -> String {
    let mut text = String::new();
    flate2::read::GzDecoder::new(fs::File::open(path).unwrap())
        .read_to_string(&mut text)
        .unwrap_or_else(|e| panic!("{} is not gzip text: {e}", path.display()));
    text
}

fn file_names(folder: &Path) -> Vec<String> {
    let mut names: Vec<String> = fs::read_dir(folder)
        .unwrap()
        .map(|entry| entry.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    names.sort();
    names
}

fn path_text(path: &Path) -> String {
    path.display().to_string()
}

#[test]
fn file_destination_writes_the_log_and_the_trace_at_their_own_levels() {
    let dir = tempfile::tempdir().unwrap();
    let log_root = dir.path().join("var/log");
    let trace_root = dir.path().join("var/trace");
    let (log_text, trace_text) = (path_text(&log_root), path_text(&trace_root));
    let env = [
        ("LOG_TRACE_DESTINATION", "file"),
        ("LOG_ROOT_PATH", log_text.as_str()),
        ("TRACE_ROOT_PATH", trace_text.as_str()),
        ("LOG_LEVEL", "INFO"),
        ("TRACE_LEVEL", "TRACE"),
    ];
    let node = Node::start(dir.path(), &env);
    assert_eq!(node.health(), Some(200));

    let log_file = log_root.join("sync-service.log");
    let trace_file = trace_root.join("sync-service.log");
    // Each answered request is a debug line: in the trace only.
    let trace = wait_for_file(&trace_file, "the request's debug line", |t| {
        t.contains("request answered")
    });
    let log = wait_for_file(&log_file, "the listening line", |t| {
        t.contains("edge-sync-service listening")
    });
    assert!(trace.contains("edge-sync-service listening"), "{trace}");
    assert!(trace.lines().any(|l| l.contains(" DEBUG ")), "{trace}");
    assert!(
        log.lines().all(|l| !l.contains(" DEBUG ") && !l.contains(" TRACE ")),
        "{log}"
    );
    assert!(!log.contains("request answered"), "{log}");
    // Each field once, though two streams format the request.
    let answered = trace.lines().find(|l| l.contains("request answered")).unwrap();
    assert_eq!(answered.matches("status=200").count(), 1, "{answered}");
    // The original's prefixes: `CSS: ` in the log, `* CSS: ` in the trace; never colours.
    assert!(log.lines().all(|l| l.starts_with("CSS: ")), "{log}");
    assert!(trace.lines().all(|l| l.starts_with("* CSS: ")), "{trace}");
    assert!(!log.contains('\u{1b}') && !trace.contains('\u{1b}'));
    // Nothing on the console.
    assert!(!node.stdout().contains("listening"), "{}", node.output());
    assert!(!node.stderr().contains("listening"), "{}", node.output());
}

#[test]
fn full_files_are_rotated_into_a_bounded_number_of_gzip_files() {
    let dir = tempfile::tempdir().unwrap();
    let log_root = dir.path().join("log");
    let trace_root = dir.path().join("trace");
    let (log_text, trace_text) = (path_text(&log_root), path_text(&trace_root));
    let env = [
        ("LOG_TRACE_DESTINATION", "file"),
        ("LOG_ROOT_PATH", log_text.as_str()),
        ("TRACE_ROOT_PATH", trace_text.as_str()),
        // A line per request in both files, about 150 bytes each.
        ("LOG_LEVEL", "DEBUG"),
        ("TRACE_LEVEL", "DEBUG"),
        ("LOG_TRACE_FILE_SIZE_KB", "1"),
        ("MAX_COMPRESSED_LOG_TRACE_FILES_NUMBER", "2"),
    ];
    let mut node = Node::start(dir.path(), &env);
    // Well over the 3 × 1 KiB that fill the file and two gzip files: older ones must go.
    for _ in 0..80 {
        assert_eq!(node.health(), Some(200));
    }
    // The node writes out what it still holds when it stops.
    assert!(node.stop().success(), "{}", node.output());

    for folder in [&log_root, &trace_root] {
        let names = file_names(folder);
        assert_eq!(
            names,
            ["sync-service.log", "sync-service.log.1.gz", "sync-service.log.2.gz"],
            "{}",
            folder.display()
        );
        let newest = gunzip(&folder.join("sync-service.log.1.gz"));
        assert!(newest.contains("request answered"), "{newest}");
        assert!(newest.lines().all(|l| l.contains("CSS: ")), "{newest}");
        // Rotated once past 1 KiB, so each file holds about 1 KiB.
        assert!((1024..4096).contains(&newest.len()), "{}", newest.len());
        let older = gunzip(&folder.join("sync-service.log.2.gz"));
        assert!(older.contains("request answered"), "{older}");
        // The last lines, written out at the stop (in the newest gzip file if they filled
        // the file).
        let current = fs::read_to_string(folder.join("sync-service.log")).unwrap();
        let last = format!("{newest}{current}");
        assert!(last.contains("stop signal received"), "{current}");
    }
}

#[test]
fn one_file_named_by_log_and_trace_is_written_once_at_the_more_verbose_level() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().join("logs");
    let root_text = path_text(&root);
    let env = [
        ("LOG_TRACE_DESTINATION", "FILE"),
        ("LOG_ROOT_PATH", root_text.as_str()),
        ("TRACE_ROOT_PATH", root_text.as_str()),
        ("LOG_LEVEL", "WARNING"),
        ("TRACE_LEVEL", "DEBUG"),
        ("LOG_FORMAT", "json"),
    ];
    let node = Node::start(dir.path(), &env);
    assert_eq!(node.health(), Some(200));
    let text = wait_for_file(&root.join("sync-service.log"), "the request's debug line", |t| {
        t.contains("request answered")
    });
    assert_eq!(file_names(&root), ["sync-service.log"]);
    assert_eq!(text.matches("edge-sync-service listening").count(), 1, "{text}");
    for line in text.lines() {
        let value: serde_json::Value =
            serde_json::from_str(line).unwrap_or_else(|e| panic!("not a JSON line ({e}): {line}"));
        assert!(value["level"].is_string(), "{line}");
    }
}

#[test]
fn stdout_destination_writes_standard_output_and_no_file() {
    let dir = tempfile::tempdir().unwrap();
    let log_root = dir.path().join("log");
    let trace_root = dir.path().join("trace");
    let (log_text, trace_text) = (path_text(&log_root), path_text(&trace_root));
    let env = [
        ("LOG_TRACE_DESTINATION", "stdout"),
        ("LOG_ROOT_PATH", log_text.as_str()),
        ("TRACE_ROOT_PATH", trace_text.as_str()),
        ("LOG_LEVEL", "INFO"),
        ("TRACE_LEVEL", "DEBUG"),
    ];
    let node = Node::start(dir.path(), &env);
    assert_eq!(node.health(), Some(200));
    let stdout = wait_for_file(&node.stdout, "the request's debug line", |t| {
        t.contains("request answered")
    });
    // One stream at the more verbose level (DEBUG), each line once, with the log's prefix.
    assert_eq!(stdout.matches("edge-sync-service listening").count(), 1, "{stdout}");
    assert!(stdout.lines().all(|l| l.starts_with("CSS: ")), "{stdout}");
    assert!(!node.stderr().contains("listening"), "{}", node.output());
    assert!(!log_root.exists() && !trace_root.exists());
}

#[test]
fn a_destination_list_with_nothing_known_exits_98_naming_the_key() {
    let dir = tempfile::tempdir().unwrap();
    let root = path_text(dir.path());
    let env = [
        ("NODE_TYPE", "CSS"),
        ("PERSISTENCE_ROOT_PATH", root.as_str()),
        ("LISTENING_TYPE", "unsecure"),
        ("LOG_TRACE_DESTINATION", "console,kafka"),
    ];
    let (status, output) = run_to_exit(&env, &["-c", &path_text(&dir.path().join("absent.conf"))], DEADLINE);
    assert_eq!(status.code(), Some(98), "{output}");
    assert!(output.contains("LogTraceDestination"), "{output}");
    assert!(output.contains("console,kafka"), "{output}");
}

#[test]
fn a_log_folder_that_cannot_be_made_exits_98_naming_the_path_and_the_key() {
    let dir = tempfile::tempdir().unwrap();
    let blocker = dir.path().join("a-file");
    fs::write(&blocker, "not a folder").unwrap();
    let port = free_port().to_string();
    let config = path_text(&dir.path().join("absent.conf"));
    let root = path_text(dir.path());
    for (failing, key, stream) in [
        ("LOG_ROOT_PATH", "LogRootPath", "log"),
        ("TRACE_ROOT_PATH", "TraceRootPath", "trace"),
    ] {
        let under_a_file = path_text(&blocker.join(stream));
        let fine = path_text(&dir.path().join("fine"));
        let other = if failing == "LOG_ROOT_PATH" {
            "TRACE_ROOT_PATH"
        } else {
            "LOG_ROOT_PATH"
        };
        let env = [
            ("NODE_TYPE", "CSS"),
            ("PERSISTENCE_ROOT_PATH", root.as_str()),
            ("LISTENING_TYPE", "unsecure"),
            ("LISTENING_ADDRESS", "127.0.0.1"),
            ("UNSECURE_LISTENING_PORT", port.as_str()),
            ("LOG_TRACE_DESTINATION", "file"),
            (failing, under_a_file.as_str()),
            (other, fine.as_str()),
        ];
        let (status, output) = run_to_exit(&env, &["-c", &config], DEADLINE);
        assert_eq!(status.code(), Some(98), "{output}");
        assert!(
            output.contains(&format!("Failed to initialize the {stream}")),
            "{output}"
        );
        assert!(output.contains(&under_a_file), "{output}");
        assert!(output.contains(key), "{output}");
    }
}

#[test]
fn the_health_probe_creates_no_log_files() {
    let dir = tempfile::tempdir().unwrap();
    let log_root = dir.path().join("log");
    let log_text = path_text(&log_root);
    let port = free_port().to_string();
    let env = [
        ("NODE_TYPE", "CSS"),
        ("LISTENING_TYPE", "unsecure"),
        ("UNSECURE_LISTENING_PORT", port.as_str()),
        ("LOG_TRACE_DESTINATION", "file"),
        ("LOG_ROOT_PATH", log_text.as_str()),
        ("TRACE_ROOT_PATH", log_text.as_str()),
    ];
    let (status, output) = run_to_exit(&env, &["--healthcheck"], DEADLINE);
    assert_eq!(status.code(), Some(1), "{output}");
    assert!(!log_root.exists(), "{output}");
}

/// A console nobody reads (a parent that pipes the output and reads it only at the end, as
/// the original's test suite does) must cost log lines, never requests or the stop: written
/// from the runtime's threads, full pipes once stalled every request and the stop signal.
#[test]
fn a_console_nobody_reads_stalls_neither_requests_nor_the_stop() {
    let dir = tempfile::tempdir().unwrap();
    let env = [
        ("LOG_TRACE_DESTINATION", "stdout,glog"),
        ("LOG_LEVEL", "TRACE"),
        ("TRACE_LEVEL", "TRACE"),
    ];
    let mut node = Node::start_unread(dir.path(), &env);
    // Each request writes lines at the trace level: together far more than a pipe holds.
    for _ in 0..2000 {
        assert_eq!(node.health(), Some(200), "a request answered while the console is full");
    }
    assert!(node.stop().success());
}
