//! The server under test: a child process with a fresh persistence folder, and what
//! `/proc` says about it.

use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

/// The bench's temporary folder, removed on drop.
pub struct TempDir {
    path: PathBuf,
}

impl TempDir {
    /// A fresh folder under `./target/bench-tmp` when `./target` exists (same disk as the
    /// working directory), else under the system temporary folder.
    pub fn create() -> Result<Self, String> {
        let cwd = std::env::current_dir().map_err(|e| format!("cannot read the current directory: {e}"))?;
        let base = if cwd.join("target").is_dir() {
            cwd.join("target").join("bench-tmp")
        } else {
            std::env::temp_dir().join("edge-sync-bench")
        };
        let nanos = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map(|d| d.as_nanos())
            .unwrap_or(0);
        let path = base.join(format!("run-{}-{nanos}", std::process::id()));
        std::fs::create_dir_all(&path).map_err(|e| format!("cannot create {}: {e}", path.display()))?;
        Ok(TempDir { path })
    }

    pub fn path(&self) -> &Path {
        &self.path
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.path);
        // Leave no empty `bench-tmp` behind; fails harmlessly while other runs use it.
        if let Some(parent) = self.path.parent() {
            let _ = std::fs::remove_dir(parent);
        }
    }
}

/// A running `edge-sync-service`, stopped on drop.
pub struct Server {
    child: Child,
    pub port: u16,
    log: PathBuf,
}

impl Server {
    /// Starts the binary as a CSS on a free loopback port with bolt-style local storage.
    pub fn start(binary: &Path, dir: &Path) -> Result<Self, String> {
        Self::start_with(binary, dir, &[])
    }

    /// Like [`Server::start`], with `env` added last (it overrides the defaults, e.g. to
    /// start an ESS or to use MQTT).
    pub fn start_with(binary: &Path, dir: &Path, env: &[(String, String)]) -> Result<Self, String> {
        let port = free_port()?;
        let persist = dir.join("persist");
        std::fs::create_dir_all(&persist).map_err(|e| format!("cannot create {}: {e}", persist.display()))?;
        let log = dir.join("server.log");
        let log_file = std::fs::File::create(&log).map_err(|e| format!("cannot create {}: {e}", log.display()))?;
        let child = Command::new(binary)
            .arg("-c")
            .arg(dir.join("no-such-sync.conf"))
            .env("NODE_TYPE", "CSS")
            .env("LISTENING_TYPE", "unsecure")
            .env("LISTENING_ADDRESS", "127.0.0.1")
            .env("UNSECURE_LISTENING_PORT", port.to_string())
            .env("PERSISTENCE_ROOT_PATH", &persist)
            .env("STORAGE_PROVIDER", "bolt")
            .env("COMMUNICATION_PROTOCOL", "http")
            .env("LOG_LEVEL", "WARNING")
            .env("LOG_TRACE_DESTINATION", "stdout")
            .env_remove("RUST_LOG")
            .envs(env.iter().map(|(k, v)| (k.as_str(), v.as_str())))
            .stdin(Stdio::null())
            .stdout(
                log_file
                    .try_clone()
                    .map_err(|e| format!("cannot share {}: {e}", log.display()))?,
            )
            .stderr(log_file)
            .spawn()
            .map_err(|e| format!("cannot start {}: {e}", binary.display()))?;
        Ok(Server { child, port, log })
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Polls `GET /api/v1/health` until it answers 200, the process exits, or `deadline` passes.
    pub async fn wait_healthy(
        &mut self,
        client: &reqwest::Client,
        base: &str,
        deadline: Duration,
    ) -> Result<(), String> {
        let start = Instant::now();
        let url = format!("{base}/api/v1/health");
        loop {
            if let Ok(Some(status)) = self.child.try_wait() {
                return Err(format!(
                    "the server exited during start-up ({status}){}",
                    self.log_tail()
                ));
            }
            if let Ok(response) = client.get(&url).send().await {
                if response.status() == reqwest::StatusCode::OK {
                    return Ok(());
                }
            }
            if start.elapsed() > deadline {
                return Err(format!(
                    "the server did not become healthy within {deadline:?}{}",
                    self.log_tail()
                ));
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// The last lines of the server's stderr, for error messages.
    pub fn log_tail(&self) -> String {
        let text = std::fs::read_to_string(&self.log).unwrap_or_default();
        let lines: Vec<&str> = text.lines().collect();
        let tail = lines[lines.len().saturating_sub(20)..].join("\n");
        if tail.is_empty() {
            String::new()
        } else {
            format!("\nserver log:\n{tail}")
        }
    }

    /// Asks for a graceful stop (SIGTERM), then kills after a grace period.
    pub fn stop(&mut self) {
        if let Ok(Some(_)) = self.child.try_wait() {
            return;
        }
        let _ = Command::new("kill")
            .arg("-TERM")
            .arg(self.child.id().to_string())
            .stderr(Stdio::null())
            .status();
        let start = Instant::now();
        while start.elapsed() < Duration::from_secs(5) {
            if let Ok(Some(_)) = self.child.try_wait() {
                return;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        self.stop();
    }
}

fn free_port() -> Result<u16, String> {
    let listener = TcpListener::bind("127.0.0.1:0").map_err(|e| format!("cannot find a free port: {e}"))?;
    listener
        .local_addr()
        .map(|a| a.port())
        .map_err(|e| format!("cannot find a free port: {e}"))
}

/// Resident set size of a process in kB (`VmRSS` of `/proc/PID/status`).
pub fn rss_kb(pid: u32) -> Option<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let line = status.lines().find(|l| l.starts_with("VmRSS:"))?;
    line.split_whitespace().nth(1)?.parse().ok()
}

/// Field `n` (numbered from 1 as in proc(5)) of `/proc/PID/stat`, from field 3 on.
fn stat_field(pid: u32, n: usize) -> Option<u64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // The command name may contain spaces; the fields after it are space separated.
    let rest = &stat[stat.rfind(')')? + 1..];
    // `rest` starts at field 3 (state), so field N is at index N - 3.
    rest.split_whitespace().nth(n.checked_sub(3)?)?.parse().ok()
}

/// User + system CPU time of a process in clock ticks (`/proc/PID/stat` fields 14 and 15).
pub fn cpu_ticks(pid: u32) -> Option<u64> {
    Some(stat_field(pid, 14)? + stat_field(pid, 15)?)
}

/// CPU time of a process and of all its children, living or ended, in clock ticks: for a
/// server that forks a process per connection (PostgreSQL), whose children come and go.
/// Ended children count once their parent reaped them (`cutime` + `cstime`, fields 16-17).
pub fn tree_cpu_ticks(pid: u32) -> Option<u64> {
    let reaped = stat_field(pid, 16)? + stat_field(pid, 17)?;
    let living: u64 = children(pid).into_iter().filter_map(cpu_ticks).sum();
    Some(cpu_ticks(pid)? + reaped + living)
}

/// The processes whose parent is `pid` (`/proc/*/stat` field 4).
pub fn children(pid: u32) -> Vec<u32> {
    let Ok(entries) = std::fs::read_dir("/proc") else {
        return Vec::new();
    };
    entries
        .flatten()
        .filter_map(|entry| entry.file_name().to_str()?.parse::<u32>().ok())
        .filter(|&child| stat_field(child, 4) == Some(u64::from(pid)))
        .collect()
}

/// Soft open-file limit of a process (`/proc/PID/limits`); `None` when unlimited or unknown.
pub fn open_file_limit(pid: u32) -> Option<u64> {
    let limits = std::fs::read_to_string(format!("/proc/{pid}/limits")).ok()?;
    let line = limits.lines().find(|l| l.starts_with("Max open files"))?;
    line["Max open files".len()..].split_whitespace().next()?.parse().ok()
}

/// CPU seconds between two readings of [`cpu_ticks`]; NaN when either is missing.
pub fn cpu_seconds(before: Option<u64>, after: Option<u64>) -> f64 {
    match (before, after) {
        (Some(b), Some(a)) => a.saturating_sub(b) as f64 / clock_ticks_per_second() as f64,
        _ => f64::NAN,
    }
}

/// Clock ticks per second (`getconf CLK_TCK`), 100 when it cannot be asked.
pub fn clock_ticks_per_second() -> u64 {
    Command::new("getconf")
        .arg("CLK_TCK")
        .output()
        .ok()
        .and_then(|o| String::from_utf8(o.stdout).ok())
        .and_then(|s| s.trim().parse().ok())
        .filter(|&t| t > 0)
        .unwrap_or(100)
}
