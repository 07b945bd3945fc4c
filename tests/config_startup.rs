//! Start-up with a bad configuration: the exit code and message name the problem, and no
//! node is left running.

mod common;

use common::run_to_exit;
use std::time::Duration;

const LIMIT: Duration = Duration::from_secs(20);

/// A fresh persistence root and a config path inside it that does not exist.
fn scratch() -> (tempfile::TempDir, String, String) {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().display().to_string();
    let config = dir.path().join("absent.conf").display().to_string();
    (dir, root, config)
}

#[test]
fn bogus_node_type_exits_98_naming_it() {
    let (_dir, root, config) = scratch();
    let (status, output) = run_to_exit(
        &[
            ("NODE_TYPE", "bogus"),
            ("PERSISTENCE_ROOT_PATH", &root),
            ("LISTENING_TYPE", "unsecure"),
        ],
        &["-c", &config],
        LIMIT,
    );
    assert_eq!(status.code(), Some(98), "{output}");
    assert!(output.contains("bogus"), "{output}");
    assert!(output.contains("CSS or ESS"), "{output}");
}

#[test]
fn ess_without_destination_type_exits_98() {
    let (_dir, root, config) = scratch();
    let (status, output) = run_to_exit(
        &[
            ("NODE_TYPE", "ESS"),
            ("DESTINATION_ID", "node1"),
            ("ORG_ID", "org"),
            ("PERSISTENCE_ROOT_PATH", &root),
            ("LISTENING_TYPE", "unsecure"),
            ("COMMUNICATION_PROTOCOL", "http"),
            ("HTTP_CSS_HOST", "127.0.0.1"),
            ("HTTP_CSS_PORT", "9"),
        ],
        &["-c", &config],
        LIMIT,
    );
    assert_eq!(status.code(), Some(98), "{output}");
    assert!(output.to_lowercase().contains("destination type"), "{output}");
}

/// Runs a CSS listening on loopback with the setting `name=value` added; returns how it
/// exited and what it printed.
fn css_with_setting(name: &str, value: &str) -> (std::process::ExitStatus, String) {
    let (_dir, root, config) = scratch();
    let port = common::free_port().to_string();
    run_to_exit(
        &[
            ("NODE_TYPE", "CSS"),
            (name, value),
            ("PERSISTENCE_ROOT_PATH", &root),
            ("LISTENING_TYPE", "unsecure"),
            ("LISTENING_ADDRESS", "127.0.0.1"),
            ("UNSECURE_LISTENING_PORT", &port),
        ],
        &["-c", &config],
        LIMIT,
    )
}

#[test]
fn a_sendfile_choice_other_than_auto_always_or_never_is_refused() {
    let (status, output) = css_with_setting("SENDFILE_DOWNLOADS", "sometimes");
    assert_eq!(status.code(), Some(98), "{output}");
    assert!(
        output.contains("SendfileDownloads must be auto, always or never, not 'sometimes'"),
        "{output}"
    );
}

#[test]
fn an_object_data_storage_other_than_database_or_files_is_refused() {
    let (status, output) = css_with_setting("OBJECT_DATA_STORAGE", "nfs");
    assert_eq!(status.code(), Some(98), "{output}");
    assert!(
        output.contains("ObjectDataStorage must be database or files, not 'nfs'"),
        "{output}"
    );
}

#[test]
fn mongo_storage_provider_is_refused_with_the_alternatives() {
    let (status, output) = css_with_setting("STORAGE_PROVIDER", "mongo");
    assert!(!status.success(), "{output}");
    assert!(output.contains("mongo"), "{output}");
    assert!(output.contains("PostgreSQL") || output.contains("embedded"), "{output}");
}

#[test]
fn help_exits_zero() {
    let (status, output) = run_to_exit(&[], &["-h"], LIMIT);
    assert_eq!(status.code(), Some(0), "{output}");
    assert!(output.contains("-c"), "{output}");
}

#[test]
fn duplicate_key_in_config_file_exits_99() {
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("sync.conf");
    std::fs::write(
        &config,
        format!(
            "NodeType CSS\nPersistenceRootPath {}\nListeningType unsecure\nNodeType ESS\n",
            dir.path().display()
        ),
    )
    .unwrap();
    let (status, output) = run_to_exit(&[], &["-c", &config.display().to_string()], LIMIT);
    assert_eq!(status.code(), Some(99), "{output}");
    assert!(output.contains("NodeType"), "{output}");
}

#[test]
fn occupied_port_is_a_start_error_naming_it() {
    let (_dir, root, config) = scratch();
    let taken = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = taken.local_addr().unwrap().port().to_string();
    let (status, output) = run_to_exit(
        &[
            ("NODE_TYPE", "CSS"),
            ("PERSISTENCE_ROOT_PATH", &root),
            ("LISTENING_TYPE", "unsecure"),
            ("LISTENING_ADDRESS", "127.0.0.1"),
            ("UNSECURE_LISTENING_PORT", &port),
        ],
        &["-c", &config],
        LIMIT,
    );
    assert!(!status.success(), "{output}");
    assert!(output.contains("cannot listen") && output.contains(&port), "{output}");
}

/// Kills the process on drop, so a failed assertion leaves nothing running.
struct KillOnDrop(std::process::Child);

impl Drop for KillOnDrop {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

#[test]
fn ess_serves_the_api_over_a_unix_socket() {
    use std::io::{Read, Write};
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().display().to_string();
    let config = dir.path().join("absent.conf");
    let child = std::process::Command::new(env!("CARGO_BIN_EXE_edge-sync-service"))
        .arg("-c")
        .arg(&config)
        .env_clear()
        .envs([
            ("NODE_TYPE", "ESS"),
            ("DESTINATION_TYPE", "edge"),
            ("DESTINATION_ID", "node1"),
            ("ORG_ID", "org"),
            ("PERSISTENCE_ROOT_PATH", root.as_str()),
            ("LISTENING_TYPE", "unix"),
            ("LISTENING_ADDRESS", "ess.sock"),
            ("COMMUNICATION_PROTOCOL", "http"),
            ("HTTP_CSS_HOST", "127.0.0.1"),
            ("HTTP_CSS_PORT", "9"),
            ("LOG_TRACE_DESTINATION", "stdout"),
        ])
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let mut child = KillOnDrop(child);
    let socket = dir.path().join("ess.sock");
    let deadline = std::time::Instant::now() + LIMIT;
    let answer = loop {
        assert!(child.0.try_wait().unwrap().is_none(), "the ESS exited");
        if let Ok(mut stream) = std::os::unix::net::UnixStream::connect(&socket) {
            stream.set_read_timeout(Some(LIMIT)).unwrap();
            let request = format!(
                "GET /api/v1/health HTTP/1.1\r\nHost: localhost:8080\r\nAuthorization: {}\r\nConnection: close\r\n\r\n",
                common::basic(common::ADMIN)
            );
            stream.write_all(request.as_bytes()).unwrap();
            let mut answer = String::new();
            stream.read_to_string(&mut answer).unwrap();
            break answer;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "no socket at {}",
            socket.display()
        );
        std::thread::sleep(Duration::from_millis(20));
    };
    assert!(answer.starts_with("HTTP/1.1 200"), "{answer}");
    assert!(answer.contains("\"nodeType\": \"ESS\""), "{answer}");
}

#[test]
fn unknown_log_format_exits_98_naming_the_key() {
    let (_dir, root, config) = scratch();
    let (status, output) = run_to_exit(
        &[
            ("NODE_TYPE", "CSS"),
            ("LOG_FORMAT", "xml"),
            ("PERSISTENCE_ROOT_PATH", &root),
            ("LISTENING_TYPE", "unsecure"),
        ],
        &["-c", &config],
        LIMIT,
    );
    assert_eq!(status.code(), Some(98), "{output}");
    assert!(output.contains("LogFormat"), "{output}");
    assert!(output.contains("xml"), "{output}");
}
