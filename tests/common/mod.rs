//! Test harness: runs the built binary as a CSS or an ESS on a free loopback port with its own
//! temporary persistence root, waits for its health route, and kills it on drop. Requests go
//! through reqwest (what an application would use) or, for bytes reqwest would normalise
//! away (`..`, raw `%00`, odd headers), through a raw HTTP/1.1 exchange on a TCP socket.
#![allow(dead_code)]

pub mod app;
pub mod broker;
pub mod browser;
mod client;
pub mod cluster;
pub mod fake_ess;
pub mod faults;
pub mod kill_points;
pub mod metrics;
pub mod postgres;
pub mod proxy;
mod raw;
pub mod sequence;
pub mod signing;
pub mod sync;
pub mod trials;
pub mod uploads;

// Each test crate uses a different subset of the harness.
#[allow(unused_imports)]
pub use client::{channel_body, object_body, Api, Resp};
pub use raw::RawResponse;

use base64::Engine as _;
use std::io::{BufRead, BufReader, Read};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// Object admin of `org` (dummy authenticator: `org/user` not listed as exchange admin).
pub const ADMIN: &str = "org/admin";
/// Org admin of `org` (`user@org` not listed anywhere).
pub const ORG_ADMIN: &str = "alice@org";
/// Object admin of another organization.
pub const OTHER_ADMIN: &str = "other/admin";
/// An edge node of `org`: never allowed on the application API.
pub const EDGE_NODE: &str = "org/edge/node1";
/// A sync admin (listed in `dummy-auth.json`).
pub const SYNC_ADMIN: &str = "ops@ops";
/// The organization every test node serves.
pub const ORG: &str = "org";

/// Longest a node may take to start answering its health route.
const START_DEADLINE: Duration = Duration::from_secs(30);
/// Longest any single HTTP exchange of a test may take.
pub const REQUEST_TIMEOUT: Duration = Duration::from_secs(60);

/// Which role a test node plays.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Role {
    Css,
    Ess,
}

/// How to start a node.
#[derive(Debug, Clone)]
pub struct NodeOptions {
    pub role: Role,
    /// `bolt` (persistent, the default) or `inmemory`.
    pub storage: &'static str,
    /// Extra environment, applied last.
    pub env: Vec<(String, String)>,
    /// Files written before the first start: path relative to the persistence root, contents.
    pub files: Vec<(String, String)>,
}

impl NodeOptions {
    /// A persistent node of `role`.
    pub fn new(role: Role) -> Self {
        Self {
            role,
            storage: "bolt",
            env: Vec::new(),
            files: Vec::new(),
        }
    }
}

/// A running service process with its persistence root; killed on drop.
pub struct TestNode {
    pub role: Role,
    dir: tempfile::TempDir,
    options: NodeOptions,
    port: u16,
    child: Option<Child>,
    log: Arc<Mutex<String>>,
}

impl TestNode {
    /// A persistent CSS.
    pub fn css() -> Self {
        Self::start(NodeOptions::new(Role::Css))
    }

    /// A persistent ESS of `org`, type `edge`, id `node1`.
    pub fn ess() -> Self {
        Self::start(NodeOptions::new(Role::Ess))
    }

    /// A persistent node of `role`.
    pub fn of(role: Role) -> Self {
        Self::start(NodeOptions::new(role))
    }

    /// Starts a node on a free port; retries with another port if that one was taken.
    pub fn start(options: NodeOptions) -> Self {
        let dir = tempfile::tempdir().expect("temp dir");
        write_test_users(dir.path());
        for (path, contents) in &options.files {
            let path = dir.path().join(path);
            if let Some(parent) = path.parent() {
                std::fs::create_dir_all(parent).expect("parent of an extra file");
            }
            std::fs::write(&path, contents).expect("extra file");
        }
        let mut node = Self {
            role: options.role,
            dir,
            options,
            port: 0,
            child: None,
            log: Arc::new(Mutex::new(String::new())),
        };
        for _ in 0..8 {
            node.port = free_port();
            match node.spawn_and_wait() {
                Ok(()) => return node,
                Err(log) if log.contains("cannot listen") => continue,
                Err(log) => panic!("the node did not start:\n{log}"),
            }
        }
        panic!("no free port found after 8 attempts");
    }

    /// Environment of the child: everything explicit, nothing inherited. The CSS gets no
    /// `ORG_ID`, which would put it in single-organization mode.
    fn environment(&self) -> Vec<(String, String)> {
        let root = self.dir.path().display().to_string();
        let mut env: Vec<(String, String)> = vec![
            ("LISTENING_TYPE", "unsecure".to_string()),
            ("LISTENING_ADDRESS", "127.0.0.1".to_string()),
            ("UNSECURE_LISTENING_PORT", self.port.to_string()),
            ("PERSISTENCE_ROOT_PATH", root),
            ("STORAGE_PROVIDER", self.options.storage.to_string()),
            ("COMMUNICATION_PROTOCOL", "http".to_string()),
            ("LOG_LEVEL", "INFO".to_string()),
            // The original's default is files under /var; tests read the log from stdout.
            ("LOG_TRACE_DESTINATION", "stdout".to_string()),
            ("NO_COLOR", "1".to_string()),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_string(), v))
        .collect();
        let role_env: &[(&str, &str)] = match self.role {
            Role::Css => &[("NODE_TYPE", "CSS")],
            Role::Ess => &[
                ("NODE_TYPE", "ESS"),
                ("ORG_ID", ORG),
                ("DESTINATION_TYPE", "edge"),
                ("DESTINATION_ID", "node1"),
                ("HTTP_CSS_HOST", "127.0.0.1"),
                ("HTTP_CSS_PORT", "9"),
            ],
        };
        env.extend(role_env.iter().map(|(k, v)| (k.to_string(), v.to_string())));
        env.extend(self.options.env.iter().cloned());
        env
    }

    /// The environment the node runs with, to run the binary again against it.
    pub fn env(&self) -> Vec<(String, String)> {
        self.environment()
    }

    /// Spawns the child and waits for health 200; `Err` carries its log if it exited.
    fn spawn_and_wait(&mut self) -> Result<(), String> {
        let config = self.dir.path().join("absent-sync.conf");
        let mut child = Command::new(env!("CARGO_BIN_EXE_edge-sync-service"))
            .arg("-c")
            .arg(&config)
            .env_clear()
            .envs(self.environment())
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("spawn the service");
        let log = Arc::new(Mutex::new(String::new()));
        collect_lines(child.stdout.take().expect("stdout"), &log);
        collect_lines(child.stderr.take().expect("stderr"), &log);
        self.log = log;
        self.child = Some(child);
        let deadline = Instant::now() + START_DEADLINE;
        loop {
            if let Some(status) = self.child.as_mut().unwrap().try_wait().expect("try_wait") {
                self.child = None;
                // The reader thread may still be copying the last lines.
                let log = wait_for_text(&self.log, "", Duration::from_millis(500));
                return Err(format!("exited with {status}:\n{log}"));
            }
            if let Ok(response) = self.raw(&format!(
                "GET /api/v1/health HTTP/1.1\r\nHost: x\r\nAuthorization: {}\r\n\r\n",
                basic(ADMIN)
            )) {
                if response.status == 200 {
                    return Ok(());
                }
            }
            assert!(
                Instant::now() < deadline,
                "the node did not become healthy:\n{}",
                self.log()
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// Asks the process to stop with SIGTERM, as a service manager does.
    pub fn terminate(&self) {
        let sent = Command::new("kill")
            .args(["-TERM", &self.pid().to_string()])
            .status()
            .expect("kill");
        assert!(sent.success(), "SIGTERM could not be sent");
    }

    /// Kills the process with SIGKILL and reaps it; the persistence root stays.
    pub fn kill9(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// Starts the process again on the same port and persistence root.
    pub fn restart(&mut self) {
        self.kill9();
        let deadline = Instant::now() + START_DEADLINE;
        loop {
            match self.spawn_and_wait() {
                Ok(()) => return,
                // The old socket may linger for a moment after the kill.
                Err(log) if log.contains("cannot listen") && Instant::now() < deadline => {
                    std::thread::sleep(Duration::from_millis(50))
                }
                Err(log) => panic!("the node did not restart:\n{log}"),
            }
        }
    }

    /// Waits for the process to exit by itself within `timeout`.
    pub fn wait_exit(&mut self, timeout: Duration) -> Option<ExitStatus> {
        let deadline = Instant::now() + timeout;
        let child = self.child.as_mut()?;
        loop {
            if let Some(status) = child.try_wait().expect("try_wait") {
                self.child = None;
                return Some(status);
            }
            if Instant::now() >= deadline {
                return None;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// Process ID of the running node (0 when it is not running).
    pub fn pid(&self) -> u32 {
        self.child.as_ref().map_or(0, |c| c.id())
    }

    /// Peak resident memory of the running process so far (VmHWM), in bytes.
    pub fn peak_rss(&self) -> u64 {
        let status = std::fs::read_to_string(format!("/proc/{}/status", self.pid())).unwrap_or_default();
        status
            .lines()
            .find_map(|l| l.strip_prefix("VmHWM:"))
            .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<u64>().ok())
            .map_or(0, |kb| kb * 1024)
    }

    /// CPU time (user + system) the running process has used so far.
    pub fn cpu_time(&self) -> Duration {
        let stat = std::fs::read_to_string(format!("/proc/{}/stat", self.pid())).expect("the process is running");
        // Fields after the command name (which is in parentheses): state is field 3, utime 14,
        // stime 15.
        let fields: Vec<&str> = stat[stat.rfind(')').expect("stat format") + 2..].split(' ').collect();
        let ticks: u64 = fields[11].parse::<u64>().unwrap() + fields[12].parse::<u64>().unwrap();
        let per_second = Command::new("getconf")
            .arg("CLK_TCK")
            .output()
            .ok()
            .and_then(|o| String::from_utf8(o.stdout).ok())
            .and_then(|s| s.trim().parse::<u64>().ok())
            .unwrap_or(100);
        Duration::from_millis(ticks * 1000 / per_second)
    }

    /// The port the node listens on.
    pub fn port(&self) -> u16 {
        self.port
    }

    /// `http://127.0.0.1:{port}`.
    pub fn base(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    /// The persistence root.
    pub fn root(&self) -> &Path {
        self.dir.path()
    }

    /// Files currently in `sync/objects/{sub}` (`tmp`, `data`, `partial`).
    pub fn files_in(&self, sub: &str) -> Vec<PathBuf> {
        match std::fs::read_dir(self.root().join("sync/objects").join(sub)) {
            Ok(entries) => entries.filter_map(|e| e.ok().map(|e| e.path())).collect(),
            Err(_) => Vec::new(),
        }
    }

    /// What the process wrote on stdout and stderr so far, line by line.
    pub fn log(&self) -> String {
        self.log.lock().unwrap().clone()
    }

    /// Path of an object route: `/api/v1/objects/{org}/{type}/{id}` on the CSS, without the
    /// org on the ESS.
    pub fn obj(&self, object_type: &str, object_id: &str) -> String {
        format!("{}/{object_id}", self.type_path(object_type))
    }

    /// Path of a type route (list, webhooks).
    pub fn type_path(&self, object_type: &str) -> String {
        type_path(self.role, object_type)
    }

    /// A client for this node, acting as [`ADMIN`] unless told otherwise.
    pub fn api(&self) -> Api {
        api_at(self.port)
    }

    /// Sends raw bytes as one HTTP/1.1 request (a `Connection: close` is added) and reads
    /// the whole answer.
    pub fn raw(&self, request: &str) -> std::io::Result<RawResponse> {
        raw::raw_exchange(self.port, request.as_bytes())
    }

    /// Sends raw bytes as one HTTP/1.1 request, closes the sending side and reads the
    /// whole answer.
    pub fn raw_half_closed(&self, request: &str) -> std::io::Result<RawResponse> {
        raw::half_closed_exchange(self.port, request.as_bytes())
    }

    /// A raw GET of `target` (sent verbatim) as `user`.
    pub fn raw_get(&self, target: &str, user: &str) -> RawResponse {
        self.raw(&format!(
            "GET {target} HTTP/1.1\r\nHost: x\r\nAuthorization: {}\r\n\r\n",
            basic(user)
        ))
        .expect("raw request")
    }

    /// Asserts the node still answers its health route.
    pub async fn assert_healthy(&self) {
        let response = self.api().get("/api/v1/health").await;
        assert_eq!(response.status, 200, "health after the previous request");
    }
}

impl Drop for TestNode {
    fn drop(&mut self) {
        self.kill9();
    }
}

/// Waits until `log` contains `needle` (or the timeout passes); returns the log.
fn wait_for_text(log: &Arc<Mutex<String>>, needle: &str, timeout: Duration) -> String {
    let deadline = Instant::now() + timeout;
    loop {
        let text = log.lock().unwrap().clone();
        if (!needle.is_empty() && text.contains(needle)) || Instant::now() >= deadline {
            return text;
        }
        std::thread::sleep(Duration::from_millis(10));
    }
}

/// Path of a type route (list, webhooks) on a node of `role`: with the org on the CSS.
pub fn type_path(role: Role, object_type: &str) -> String {
    match role {
        Role::Css => format!("/api/v1/objects/{ORG}/{object_type}"),
        Role::Ess => format!("/api/v1/objects/{object_type}"),
    }
}

/// A client for whatever answers on the loopback `port` (a node, or a front door to nodes),
/// acting as [`ADMIN`] unless told otherwise.
pub fn api_at(port: u16) -> Api {
    Api {
        client: reqwest::Client::builder()
            .redirect(reqwest::redirect::Policy::none())
            .timeout(REQUEST_TIMEOUT)
            .build()
            .expect("client"),
        base: format!("http://127.0.0.1:{port}"),
    }
}

/// Appends the lines `output` carries to `log`, on a thread of its own, until it closes.
fn collect_lines(output: impl Read + Send + 'static, log: &Arc<Mutex<String>>) {
    let sink = log.clone();
    std::thread::spawn(move || {
        for line in BufReader::new(output).lines().map_while(Result::ok) {
            let mut log = sink.lock().unwrap();
            log.push_str(&line);
            log.push('\n');
        }
    });
}

/// Writes the users the tests act as (`ops`, `boss`, `bob`) into the persistence folder
/// `root`, for the `dummy` authenticator.
pub fn write_test_users(root: &Path) {
    let sync = root.join("sync");
    std::fs::create_dir_all(&sync).expect("sync dir");
    std::fs::write(
        sync.join("dummy-auth.json"),
        r#"{"syncAdmins":["ops"],"exchangeAdmins":["boss"],"regularUsers":["bob"]}"#,
    )
    .expect("dummy-auth.json");
}

/// A port that was free a moment ago.
pub fn free_port() -> u16 {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    listener.local_addr().expect("addr").port()
}

/// `Basic base64(user:secret)`.
pub fn basic(user: &str) -> String {
    format!(
        "Basic {}",
        base64::engine::general_purpose::STANDARD.encode(format!("{user}:secret"))
    )
}

/// Runs the binary to completion with exactly `env` and `args` (plus logging to stdout
/// unless `env` chooses a `LOG_TRACE_DESTINATION`); returns its exit status and its stderr
/// followed by its stdout. Killed if it runs longer than `timeout`.
pub fn run_to_exit(env: &[(&str, &str)], args: &[&str], timeout: Duration) -> (ExitStatus, String) {
    let chooses_destination = env.iter().any(|(name, _)| *name == "LOG_TRACE_DESTINATION");
    let console = (!chooses_destination).then_some(("LOG_TRACE_DESTINATION", "stdout"));
    let mut child = Command::new(env!("CARGO_BIN_EXE_edge-sync-service"))
        .args(args)
        .env_clear()
        .envs(console)
        .envs(env.iter().copied())
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn");
    let deadline = Instant::now() + timeout;
    let status = loop {
        if let Some(status) = child.try_wait().expect("try_wait") {
            break status;
        }
        if Instant::now() >= deadline {
            let _ = child.kill();
            let _ = child.wait();
            panic!("the binary did not exit within {timeout:?}");
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    let mut output = String::new();
    child.stderr.take().unwrap().read_to_string(&mut output).unwrap();
    child.stdout.take().unwrap().read_to_string(&mut output).unwrap();
    (status, output)
}

/// Deterministic bytes that never repeat, so misplaced chunks are detected, and that do not
/// compress (a SplitMix64 sequence), so they travel byte for byte between nodes that
/// compress what pays: tests that cut, pace or count a transfer's bytes count on it. A
/// shorter pattern is the start of a longer one with the same seed.
pub fn pattern(len: usize, seed: u8) -> Vec<u8> {
    let mut out = Vec::with_capacity(len + 8);
    let mut position = 0u64;
    while out.len() < len {
        position = position.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = position;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        out.extend_from_slice(&(z ^ (z >> 31)).to_le_bytes());
    }
    out.truncate(len);
    out.iter_mut().for_each(|byte| *byte ^= seed);
    out
}

/// Declares each `async fn name(role)` as two tests, `css::name` and `ess::name`.
#[macro_export]
macro_rules! on_both_roles {
    ($($name:ident),* $(,)?) => {
        mod css {
            $(
                #[tokio::test]
                async fn $name() {
                    super::$name($crate::common::Role::Css).await
                }
            )*
        }
        mod ess {
            $(
                #[tokio::test]
                async fn $name() {
                    super::$name($crate::common::Role::Ess).await
                }
            )*
        }
    };
}

/// Polls `condition` every 10 ms until it holds; panics with `what` after `timeout`.
pub async fn wait_until(what: &str, timeout: Duration, mut condition: impl FnMut() -> bool) {
    let deadline = Instant::now() + timeout;
    while !condition() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

/// Total size of the files in `sync/objects/{sub}`.
pub fn bytes_in(node: &TestNode, sub: &str) -> u64 {
    node.files_in(sub)
        .iter()
        .filter_map(|p| std::fs::metadata(p).ok())
        .map(|m| m.len())
        .sum()
}
