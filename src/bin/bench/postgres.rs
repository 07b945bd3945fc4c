//! A PostgreSQL server for the bench: `initdb` into the bench's temporary folder and a server
//! on a free loopback port, durable as in production (`fsync` and `synchronous_commit` on),
//! stopped on drop. As root, the server runs as the `postgres` user (`initdb` refuses root).

use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

pub struct Postgres {
    bin: PathBuf,
    data: PathBuf,
    run_as: Option<&'static str>,
    pub port: u16,
}

impl Postgres {
    /// Initializes a cluster under `dir` and starts it.
    pub fn start(dir: &Path) -> Result<Self, String> {
        Self::start_with(dir, &[])
    }

    /// Like [`Postgres::start`], with server settings `name=value` added (e.g. a library to
    /// preload).
    pub fn start_with(dir: &Path, settings: &[&str]) -> Result<Self, String> {
        let bin = binaries()?;
        let run_as = is_root().then_some("postgres");
        let home = dir.join("postgres");
        std::fs::create_dir_all(&home).map_err(|e| format!("cannot create {}: {e}", home.display()))?;
        if run_as.is_some() {
            let owned = Command::new("chown")
                .args(["-R", "postgres:postgres"])
                .arg(&home)
                .status()
                .map_err(|e| format!("cannot run chown: {e}"))?;
            if !owned.success() {
                return Err("cannot give the database folder to the postgres user".into());
            }
        }
        let port = TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .map(|a| a.port())
            .map_err(|e| format!("cannot find a free port: {e}"))?;
        let server = Postgres {
            bin,
            data: home.join("data"),
            run_as,
            port,
        };
        let data = server.data.display().to_string();
        server.run("initdb", &["-D", &data, "-U", "postgres", "--auth=trust", "-E", "UTF8"])?;
        let mut options = format!(
            "-p {port} -k {} -c listen_addresses=127.0.0.1 -c max_connections=200",
            home.display()
        );
        for setting in settings {
            options.push_str(" -c ");
            options.push_str(setting);
        }
        let log = home.join("server.log").display().to_string();
        server.run(
            "pg_ctl",
            &["-D", &data, "-l", &log, "-o", &options, "-w", "-t", "60", "start"],
        )?;
        Ok(server)
    }

    /// The URL of the `postgres` database as the superuser, without TLS.
    pub fn url(&self) -> String {
        format!("postgres://postgres@127.0.0.1:{}/postgres?sslmode=disable", self.port)
    }

    /// A connection to [`Postgres::url`], its driver running on the runtime.
    pub async fn client(&self) -> Result<tokio_postgres::Client, String> {
        let (client, connection) = tokio_postgres::connect(&self.url(), tokio_postgres::NoTls)
            .await
            .map_err(|e| format!("cannot connect to the bench database: {e}"))?;
        tokio::spawn(connection);
        Ok(client)
    }

    /// The postmaster's process ID (first line of `postmaster.pid`).
    pub fn pid(&self) -> Option<u32> {
        let text = std::fs::read_to_string(self.data.join("postmaster.pid")).ok()?;
        text.lines().next()?.trim().parse().ok()
    }

    /// Resident set size of the server, all its processes together, in kB. Pages of the
    /// shared buffers count once per process that touched them, so this overstates the
    /// memory the server holds; [`Postgres::pss_kb`] shares them out.
    pub fn rss_kb(&self) -> u64 {
        self.processes().into_iter().filter_map(crate::server::rss_kb).sum()
    }

    /// Proportional set size of the server, all its processes together, in kB
    /// (`/proc/PID/smaps_rollup`: shared pages divided among the processes sharing them);
    /// `None` when it cannot be read (another user's processes without privileges).
    pub fn pss_kb(&self) -> Option<u64> {
        self.processes()
            .into_iter()
            .map(|pid| {
                let text = std::fs::read_to_string(format!("/proc/{pid}/smaps_rollup")).ok()?;
                let line = text.lines().find(|l| l.starts_with("Pss:"))?;
                line.split_whitespace().nth(1)?.parse::<u64>().ok()
            })
            .sum()
    }

    /// CPU time of the server in clock ticks: every process, including connections already
    /// closed.
    pub fn cpu_ticks(&self) -> Option<u64> {
        crate::server::tree_cpu_ticks(self.pid()?)
    }

    /// The postmaster and its children.
    fn processes(&self) -> Vec<u32> {
        let Some(pid) = self.pid() else {
            return Vec::new();
        };
        let mut all = crate::server::children(pid);
        all.push(pid);
        all
    }

    fn run(&self, program: &str, args: &[&str]) -> Result<(), String> {
        let program = self.bin.join(program);
        let mut command = match self.run_as {
            Some(user) => {
                let mut command = Command::new("runuser");
                command.args(["-u", user, "--"]).arg(&program);
                command
            }
            None => Command::new(&program),
        };
        let output = command
            .args(args)
            .current_dir("/")
            .stdin(Stdio::null())
            .output()
            .map_err(|e| format!("cannot run {}: {e}", program.display()))?;
        if output.status.success() {
            return Ok(());
        }
        Err(format!(
            "{} failed: {}{}",
            program.display(),
            String::from_utf8_lossy(&output.stdout),
            String::from_utf8_lossy(&output.stderr)
        ))
    }
}

impl Drop for Postgres {
    fn drop(&mut self) {
        let data = self.data.display().to_string();
        let _ = self.run("pg_ctl", &["-D", &data, "-w", "stop", "-m", "fast"]);
    }
}

fn is_root() -> bool {
    Command::new("id")
        .arg("-u")
        .output()
        .is_ok_and(|out| String::from_utf8_lossy(&out.stdout).trim() == "0")
}

/// `initdb` and `pg_ctl`: on `PATH`, else in the newest `/usr/lib/postgresql/<version>/bin`.
fn binaries() -> Result<PathBuf, String> {
    let complete = |dir: &Path| dir.join("initdb").is_file() && dir.join("pg_ctl").is_file();
    if let Some(dir) = std::env::var_os("PATH").and_then(|p| std::env::split_paths(&p).find(|d| complete(d))) {
        return Ok(dir);
    }
    let mut versions: Vec<(u32, PathBuf)> = std::fs::read_dir("/usr/lib/postgresql")
        .into_iter()
        .flatten()
        .flatten()
        .filter_map(|entry| Some((entry.file_name().to_str()?.parse().ok()?, entry.path().join("bin"))))
        .filter(|(_, dir): &(u32, PathBuf)| complete(dir))
        .collect();
    versions.sort();
    versions
        .pop()
        .map(|(_, dir)| dir)
        .ok_or_else(|| "PostgreSQL's initdb and pg_ctl were not found (Debian package postgresql)".to_string())
}
