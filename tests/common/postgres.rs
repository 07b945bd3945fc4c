//! A throw-away PostgreSQL cluster for tests: `initdb` into a temporary folder, a server on a
//! free loopback port (`pg_ctl -w start` returns once it accepts connections), a new database
//! per test, and `pg_ctl stop -m immediate` (then a kill of the postmaster by its pid) when it
//! is dropped. [`shared`] gives one cluster per test binary; a static is never dropped, so a
//! small watchdog process, whose standard input is a pipe from the test process, stops the
//! cluster and removes its folder when that pipe closes, that is when the test process ends
//! however it ends.
//!
//! The server binaries are looked up on `PATH`, then in `/usr/lib/postgresql/<version>/bin`
//! (Debian's `postgresql` package). `initdb` refuses to run as root: then everything runs as
//! the `postgres` user (made by that package), or as `nobody`, through `runuser`.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::OnceLock;

/// A running cluster; stopped on drop.
pub struct PgCluster {
    dir: tempfile::TempDir,
    bin: PathBuf,
    run_as: Option<String>,
    port: u16,
    pid: u32,
    watchdog: Option<Child>,
    /// The server options it was started with, to start it again.
    options: String,
}

/// The cluster of this test binary, started on first use.
pub fn shared() -> &'static PgCluster {
    static CLUSTER: OnceLock<PgCluster> = OnceLock::new();
    CLUSTER.get_or_init(PgCluster::start)
}

impl PgCluster {
    /// Initializes and starts a cluster (trust authentication, superuser `postgres`, only on
    /// 127.0.0.1, no fsync: nothing of it is meant to survive).
    pub fn start() -> PgCluster {
        Self::launch(None)
    }

    /// A cluster that also accepts TLS connections with this certificate chain and key (PEM).
    pub fn start_with_tls(certificate: &str, key: &str) -> PgCluster {
        Self::launch(Some((certificate, key)))
    }

    fn launch(tls: Option<(&str, &str)>) -> PgCluster {
        let bin = server_binaries();
        let run_as = unprivileged_user();
        // The server's user must reach the folder: /tmp, whatever TMPDIR says, when that
        // user is not this one.
        let dir = match run_as {
            Some(_) => tempfile::Builder::new().prefix("pg").tempdir_in("/tmp"),
            None => tempfile::Builder::new().prefix("pg").tempdir(),
        }
        .expect("temp dir");
        if let Some(user) = &run_as {
            let (uid, gid) = ids_of(user);
            std::os::unix::fs::chown(dir.path(), Some(uid), Some(gid)).expect("chown the cluster folder");
        }
        let data = dir.path().join("data");
        let mut cluster = PgCluster {
            dir,
            bin,
            run_as,
            port: 0,
            pid: 0,
            watchdog: None,
            options: String::new(),
        };
        cluster.run(
            "initdb",
            &[
                "-D",
                &data.display().to_string(),
                "-U",
                "postgres",
                "--auth=trust",
                "--no-sync",
                "-E",
                "UTF8",
            ],
        );
        let mut tls_options = String::new();
        if let Some((certificate, key)) = tls {
            cluster.give(&data.join("server.crt"), certificate);
            cluster.give(&data.join("server.key"), key);
            tls_options = " -c ssl=on -c ssl_cert_file=server.crt -c ssl_key_file=server.key".to_string();
        }
        for _ in 0..5 {
            cluster.port = super::free_port();
            let options = format!(
                "-p {} -k {} -c listen_addresses=127.0.0.1 -c fsync=off -c full_page_writes=off -c max_connections=200{tls_options}",
                cluster.port,
                cluster.dir.path().display()
            );
            let log = cluster.dir.path().join("server.log");
            let started = cluster.try_run(
                "pg_ctl",
                &[
                    "-D",
                    &data.display().to_string(),
                    "-l",
                    &log.display().to_string(),
                    "-o",
                    &options,
                    "-w",
                    "-t",
                    "60",
                    "start",
                ],
            );
            if started.is_ok() {
                cluster.options = options;
                cluster.pid = postmaster_pid(&data);
                cluster.watchdog = Some(cluster.spawn_watchdog(&data));
                return cluster;
            }
            let log = std::fs::read_to_string(&log).unwrap_or_default();
            assert!(
                log.contains("could not bind") || log.contains("Address already in use"),
                "the PostgreSQL server did not start: {started:?}\n{log}"
            );
        }
        panic!("no free port for the PostgreSQL server after 5 attempts");
    }

    /// Stops the server (`pg_ctl stop -m fast`: sessions are disconnected, as in a restart
    /// by an operator); the data stays.
    pub fn stop(&self) {
        let data = self.dir.path().join("data").display().to_string();
        self.run("pg_ctl", &["-D", &data, "-w", "-t", "60", "stop", "-m", "fast"]);
    }

    /// Starts the stopped server again on the same port.
    pub fn start_again(&mut self) {
        let data = self.dir.path().join("data");
        let log = self.dir.path().join("server.log").display().to_string();
        let options = self.options.clone();
        let data_arg = data.display().to_string();
        self.run(
            "pg_ctl",
            &["-D", &data_arg, "-l", &log, "-o", &options, "-w", "-t", "60", "start"],
        );
        self.pid = postmaster_pid(&data);
    }

    /// The port the server listens on (127.0.0.1).
    pub fn port(&self) -> u16 {
        self.port
    }

    /// The URL of database `db` as the superuser, without TLS.
    pub fn url(&self, db: &str) -> String {
        format!("postgres://postgres@127.0.0.1:{}/{db}?sslmode=disable", self.port)
    }

    /// Creates a new, empty database; returns its URL.
    pub async fn create_database(&self) -> String {
        static NEXT: AtomicU32 = AtomicU32::new(0);
        let name = format!("test_{}_{}", std::process::id(), NEXT.fetch_add(1, Ordering::Relaxed));
        let (client, connection) = tokio_postgres::connect(&self.url("postgres"), tokio_postgres::NoTls)
            .await
            .expect("connect to the test cluster");
        let driver = tokio::spawn(connection);
        client
            .batch_execute(&format!("CREATE DATABASE {name}"))
            .await
            .expect("create a test database");
        drop(client);
        let _ = driver.await;
        self.url(&name)
    }

    /// Writes a file only the cluster's user can read.
    fn give(&self, path: &Path, contents: &str) {
        use std::os::unix::fs::PermissionsExt;
        std::fs::write(path, contents).expect("write a cluster file");
        std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o600)).expect("chmod");
        if let Some(user) = &self.run_as {
            let (uid, gid) = ids_of(user);
            std::os::unix::fs::chown(path, Some(uid), Some(gid)).expect("chown a cluster file");
        }
    }

    /// Runs one of the server binaries as the cluster's user; panics when it fails.
    fn run(&self, program: &str, args: &[&str]) {
        if let Err(failure) = self.try_run(program, args) {
            panic!("{failure}");
        }
    }

    fn try_run(&self, program: &str, args: &[&str]) -> Result<(), String> {
        let output = self
            .command(program, args)
            .stdin(Stdio::null())
            .output()
            .map_err(|e| format!("cannot run {program}: {e}"))?;
        if output.status.success() {
            Ok(())
        } else {
            Err(format!(
                "{program} failed with {}:\n{}{}",
                output.status,
                String::from_utf8_lossy(&output.stdout),
                String::from_utf8_lossy(&output.stderr)
            ))
        }
    }

    fn command(&self, program: &str, args: &[&str]) -> Command {
        let program = self.bin.join(program);
        let mut command = match &self.run_as {
            Some(user) => {
                let mut command = Command::new("runuser");
                command.args(["-u", user, "--"]).arg(&program);
                command
            }
            None => Command::new(&program),
        };
        command.args(args).current_dir(self.dir.path());
        command
    }

    /// `sh` waiting on its standard input; when the pipe closes (this process ended, or the
    /// cluster is dropped) it stops the server and removes the cluster's folder.
    fn spawn_watchdog(&self, data: &Path) -> Child {
        let script =
            r#"read -r _; "$0" -D "$1" stop -m immediate >/dev/null 2>&1; kill -9 "$2" 2>/dev/null; rm -rf "$3"; true"#;
        let mut command = match &self.run_as {
            Some(user) => {
                let mut command = Command::new("runuser");
                command.args(["-u", user, "--", "sh"]);
                command
            }
            None => Command::new("sh"),
        };
        command
            .args(["-c", script])
            .arg(self.bin.join("pg_ctl"))
            .arg(data)
            .arg(self.pid.to_string())
            .arg(self.dir.path())
            .current_dir("/")
            .stdin(Stdio::piped())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("start the cluster watchdog")
    }
}

impl Drop for PgCluster {
    fn drop(&mut self) {
        let data = self.dir.path().join("data");
        let _ = self.try_run(
            "pg_ctl",
            &["-D", &data.display().to_string(), "stop", "-m", "immediate"],
        );
        if self.pid != 0 {
            let _ = Command::new("kill")
                .args(["-9", &self.pid.to_string()])
                .stderr(Stdio::null())
                .status();
        }
        if let Some(mut watchdog) = self.watchdog.take() {
            if let Some(mut input) = watchdog.stdin.take() {
                let _ = input.write_all(b"stop\n");
            }
            let _ = watchdog.wait();
        }
    }
}

/// The folder with `initdb`, `pg_ctl` and `postgres`: on `PATH`, else the newest
/// `/usr/lib/postgresql/<version>/bin`.
fn server_binaries() -> PathBuf {
    let has_all = |dir: &Path| ["initdb", "pg_ctl", "postgres"].iter().all(|b| dir.join(b).is_file());
    if let Some(path) = std::env::var_os("PATH") {
        if let Some(dir) = std::env::split_paths(&path).find(|dir| has_all(dir)) {
            return dir;
        }
    }
    let mut versions: Vec<(u32, PathBuf)> = std::fs::read_dir("/usr/lib/postgresql")
        .into_iter()
        .flatten()
        .filter_map(|entry| {
            let entry = entry.ok()?;
            let version = entry.file_name().to_str()?.parse::<u32>().ok()?;
            Some((version, entry.path().join("bin")))
        })
        .filter(|(_, dir)| has_all(dir))
        .collect();
    versions.sort();
    match versions.pop() {
        Some((_, dir)) => dir,
        None => panic!(
            "PostgreSQL server binaries (initdb, pg_ctl, postgres) are neither on PATH nor in /usr/lib/postgresql/*/bin: install the postgresql package"
        ),
    }
}

/// The user to run the cluster as when this process is root (`initdb` refuses root).
fn unprivileged_user() -> Option<String> {
    let uid = Command::new("id").arg("-u").output().expect("id -u");
    if String::from_utf8_lossy(&uid.stdout).trim() != "0" {
        return None;
    }
    for user in ["postgres", "nobody"] {
        if Command::new("id")
            .arg(user)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()
            .is_ok_and(|s| s.success())
        {
            return Some(user.to_string());
        }
    }
    panic!("running as root, and neither a postgres nor a nobody user exists to run the PostgreSQL server as");
}

fn ids_of(user: &str) -> (u32, u32) {
    let id = |flag: &str| -> u32 {
        let output = Command::new("id").args([flag, user]).output().expect("id");
        String::from_utf8_lossy(&output.stdout)
            .trim()
            .parse()
            .expect("numeric id")
    };
    (id("-u"), id("-g"))
}

/// The postmaster's pid, first line of `postmaster.pid`.
fn postmaster_pid(data: &Path) -> u32 {
    let text = std::fs::read_to_string(data.join("postmaster.pid")).expect("postmaster.pid");
    text.lines()
        .next()
        .and_then(|line| line.trim().parse().ok())
        .expect("pid in postmaster.pid")
}
