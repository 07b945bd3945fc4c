//! `edge-sync-bench`: measures a release build of `edge-sync-service` on 127.0.0.1.
//!
//! Usage: `edge-sync-bench [--server PATH] [--quick] [--json] [--repeat N]`
//!
//! The bench starts the server itself (CSS, unsecure HTTP on a free loopback port, a fresh
//! persistence folder under `./target/bench-tmp/`, on the same disk as the current
//! directory) and stops it at the end. It reports, as a table on stdout:
//! 1. the server's idle RSS after start-up;
//! 2. metadata PUT (durable upsert of `noData` objects) ops/s and p50/p99 latency at
//!    concurrency 1 and 32;
//! 3. metadata GET ops/s and latency at concurrency 1 and 32, with the server's CPU time
//!    per request (utime + stime from `/proc/PID/stat`);
//! 4. streamed data upload and download throughput of a 10 MB and a 1 GiB object
//!    (256 MiB with `--quick`), each with the server's peak RSS during the transfer;
//! 5. a `cp` baseline of a file of the large size on the same disk, alone and followed by
//!    `sync` of the copy, so transfers can be compared with a plain copy.
//!
//! Transfers and the `cp` baseline run `--repeat` times (default 3, each upload into a new
//! object) and report the median time. `--quick` divides request counts by 10 and uses a
//! 256 MiB large object (well under 30 s; the full run stays under about 3 minutes on two
//! cores). `--json` prints the results as JSON on stdout and the table on stderr. MB means
//! 10^6 bytes everywhere. `--server` defaults to the `edge-sync-service` next to this
//! executable (build both with `cargo build --release`). Progress goes to stderr.
//!
//! `--sync` runs only the synchronization benchmarks instead (CSS <-> ESS over the HTTP
//! transport, each phase on a fresh CSS):
//! 1. fan-out of a 1 MB broadcast object to 1,000 simulated edge nodes (`--quick`: 100;
//!    `--nodes N`), tasks of this process that long-poll (`wait=30`), download and report
//!    `received`: total time, per-node p50/p99, the CSS's peak RSS and CPU seconds;
//! 2. propagation latency of noData objects published one at a time: 200 to one
//!    long-polling node (`wait=10`), and 200 (`--quick`: 40) spread over 4 nodes that poll
//!    without `wait` every second, the original ESS's schedule after activity;
//! 3. the same with real ESS processes of the server binary (100, `--quick`: 10; 50 objects
//!    to one of them), when the binary works as an HTTP ESS; otherwise reported as not yet
//!    measurable.
//!
//! `--ha` runs only the several-instances benchmark: a PostgreSQL server (Debian package
//! `postgresql`, durable settings), then one CSS on SQLite, one on PostgreSQL and two on
//! PostgreSQL (each with a persistence folder of its own, data in the database); for each, metadata PUT and GET rates at
//! concurrency 32 spread over the instances, server CPU per GET, and the fan-out of a 1 MB
//! object to simulated edge nodes polling the instances in turn (`--quick`: fewer).
//!
//! `--mqtt` runs only the MQTT transport benchmark: a real mosquitto broker (Debian package
//! `mosquitto`), a CSS and one ESS over it; propagation latency of 200 noData objects
//! (`--quick`: 50) and the arrival of a 256 MB object (`--quick`: 64 MB) on the ESS.

mod fanout;
mod fleet;
mod ha;
mod load;
mod mqtt;
mod postgres;
mod propagation;
mod server;
mod transfer;

use base64::Engine;
use clap::Parser;
use serde_json::json;
use server::{Server, TempDir};
use std::fmt::Write as _;
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;
use std::time::{Duration, Instant};
use transfer::Content;

/// Benchmark of edge-sync-service: request rates, latencies, transfer throughput, memory.
#[derive(Parser, Debug)]
#[command(name = "edge-sync-bench", version, about)]
struct Args {
    /// The edge-sync-service binary to start (default: next to this executable).
    #[arg(long, value_name = "PATH")]
    server: Option<PathBuf>,
    /// Ten times fewer requests and a 256 MiB large object instead of 1 GiB.
    #[arg(long)]
    quick: bool,
    /// Print the results as JSON on stdout (the table goes to stderr).
    #[arg(long)]
    json: bool,
    /// Runs of every data transfer and of the cp baseline; the median time is reported.
    #[arg(long, value_name = "N", default_value_t = 3, value_parser = clap::value_parser!(u64).range(1..=20))]
    repeat: u64,
    /// Run only the synchronization benchmarks (fan-out to edge nodes, propagation latency).
    #[arg(long)]
    sync: bool,
    /// With --sync: simulated edge nodes of the fan-out (default 1000, --quick 100).
    #[arg(long, value_name = "N", requires = "sync", value_parser = clap::value_parser!(u64).range(1..=100_000))]
    nodes: Option<u64>,
    /// Run only the MQTT transport benchmark (needs mosquitto installed).
    #[arg(long, conflicts_with = "sync")]
    mqtt: bool,
    /// Run only the several-instances benchmark (needs PostgreSQL's server binaries).
    #[arg(long, conflicts_with_all = ["sync", "mqtt"])]
    ha: bool,
    /// Run one fleet-scale mode instead (see docs/SCALING.md).
    #[arg(long, value_enum, value_name = "MODE", conflicts_with_all = ["sync", "mqtt", "ha"])]
    fleet: Option<fleet::Mode>,
    /// With --fleet: the number of nodes instead of the mode's.
    #[arg(long = "fleet-nodes", value_name = "N", requires = "fleet", value_parser = clap::value_parser!(u64).range(1..=100_000))]
    fleet_nodes: Option<u64>,
}

/// How much work each phase does.
struct Plan {
    put_requests: [u64; 2],
    get_requests: [u64; 2],
    /// Object sizes and their labels, small then large.
    sizes: [(u64, &'static str); 2],
}

const CONCURRENCY: [usize; 2] = [1, 32];
const ORG: &str = "bench";
const USER: &str = "bench/admin";

impl Plan {
    fn new(quick: bool) -> Self {
        if quick {
            Plan {
                put_requests: [200, 2_000],
                get_requests: [2_000, 20_000],
                sizes: [(10_000_000, "10 MB"), (256 << 20, "256 MiB")],
            }
        } else {
            Plan {
                put_requests: [2_000, 20_000],
                get_requests: [20_000, 200_000],
                sizes: [(10_000_000, "10 MB"), (1 << 30, "1 GiB")],
            }
        }
    }
}

struct OpRow {
    op: &'static str,
    concurrency: usize,
    stats: load::LoadStats,
    server_cpu_us_per_op: f64,
    /// Server VmRSS right after the phase.
    rss_after_kb: u64,
}

/// One direction and size: median time over the runs, RSS at the first start and peak
/// over all runs.
struct TransferRow {
    direction: &'static str,
    label: &'static str,
    large: bool,
    stats: transfer::TransferStats,
    runs: Vec<Duration>,
}

impl TransferRow {
    fn new(direction: &'static str, label: &'static str, large: bool, runs: Vec<transfer::TransferStats>) -> Self {
        let times: Vec<Duration> = runs.iter().map(|r| r.elapsed).collect();
        let stats = transfer::TransferStats {
            bytes: runs.first().map(|r| r.bytes).unwrap_or(0),
            elapsed: transfer::median(times.clone()),
            start_rss_kb: runs.first().map(|r| r.start_rss_kb).unwrap_or(0),
            peak_rss_kb: runs.iter().map(|r| r.peak_rss_kb).max().unwrap_or(0),
        };
        TransferRow {
            direction,
            label,
            large,
            stats,
            runs: times,
        }
    }
}

struct Report {
    quick: bool,
    repeat: u64,
    server: PathBuf,
    cpus: usize,
    idle_rss_kb: u64,
    ops: Vec<OpRow>,
    transfers: Vec<TransferRow>,
    cp_label: &'static str,
    cp: transfer::CpStats,
    total: Duration,
}

/// Parses the options, runs the bench on a multi-thread runtime and prints the report.
fn main() -> ExitCode {
    let args = Args::parse();
    let runtime = match tokio::runtime::Builder::new_multi_thread().enable_all().build() {
        Ok(runtime) => runtime,
        Err(e) => {
            eprintln!("edge-sync-bench: cannot start the async runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    let json = args.json;
    if let Some(mode) = args.fleet {
        return match runtime.block_on(run_fleet(mode, args)) {
            Ok(outcome) => {
                if json {
                    eprint!("{}", outcome.table);
                    println!("{}", serde_json::to_string_pretty(&outcome.json).unwrap_or_default());
                } else {
                    print!("{}", outcome.table);
                }
                if outcome.failed {
                    ExitCode::FAILURE
                } else {
                    ExitCode::SUCCESS
                }
            }
            Err(e) => {
                eprintln!("edge-sync-bench: {e}");
                ExitCode::FAILURE
            }
        };
    }
    if args.ha || args.mqtt {
        let outcome = if args.ha {
            runtime.block_on(run_ha(args))
        } else {
            runtime.block_on(run_mqtt(args))
        };
        return match outcome {
            Ok(value) => {
                if json {
                    println!("{}", serde_json::to_string_pretty(&value).unwrap_or_default());
                }
                ExitCode::SUCCESS
            }
            Err(e) => {
                eprintln!("edge-sync-bench: {e}");
                ExitCode::FAILURE
            }
        };
    }
    if args.sync {
        return match runtime.block_on(run_sync(args)) {
            Ok(report) => {
                let table = report.table();
                if json {
                    eprint!("{table}");
                    println!("{}", serde_json::to_string_pretty(&report.json()).unwrap_or_default());
                } else {
                    print!("{table}");
                }
                if report.failed() {
                    ExitCode::FAILURE
                } else {
                    ExitCode::SUCCESS
                }
            }
            Err(e) => {
                eprintln!("edge-sync-bench: {e}");
                ExitCode::FAILURE
            }
        };
    }
    match runtime.block_on(run(args)) {
        Ok(report) => {
            let table = report.table();
            if json {
                eprint!("{table}");
                println!("{}", serde_json::to_string_pretty(&report.json()).unwrap_or_default());
            } else {
                print!("{table}");
            }
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("edge-sync-bench: {e}");
            ExitCode::FAILURE
        }
    }
}

fn default_server() -> Result<PathBuf, String> {
    let exe = std::env::current_exe().map_err(|e| format!("cannot locate this executable: {e}"))?;
    Ok(exe.with_file_name("edge-sync-service"))
}

fn progress(message: &str) {
    eprintln!("[bench] {message}");
}

async fn run(args: Args) -> Result<Report, String> {
    let started = Instant::now();
    let plan = Plan::new(args.quick);
    let binary = match args.server {
        Some(path) => path,
        None => default_server()?,
    };
    if !binary.is_file() {
        return Err(format!(
            "server binary {} not found (build it with `cargo build --release` or pass --server)",
            binary.display()
        ));
    }
    // Declared before the server so that the server stops before the folder is removed.
    let dir = TempDir::create()?;
    let mut server = Server::start(&binary, dir.path())?;
    let pid = server.pid();
    let base = format!("http://127.0.0.1:{}", server.port);
    let client = http_client()?;
    progress(&format!("server pid {pid} on {base}, data in {}", dir.path().display()));
    server.wait_healthy(&client, &base, Duration::from_secs(30)).await?;
    tokio::time::sleep(Duration::from_millis(300)).await;
    let idle_rss_kb = server::rss_kb(pid).ok_or("cannot read the server's VmRSS")?;

    let ticks_per_second = server::clock_ticks_per_second();
    let base: Arc<str> = Arc::from(base);
    let mut ops = Vec::new();

    for (index, &concurrency) in CONCURRENCY.iter().enumerate() {
        let total = plan.put_requests[index];
        progress(&format!("metadata PUT x{total}, concurrency {concurrency}"));
        let prefix: Arc<str> = Arc::from(format!("c{concurrency}-"));
        let (client, base) = (client.clone(), base.clone());
        let cpu_before = server::cpu_ticks(pid);
        let stats = load::run(concurrency, total, move |i| {
            let (client, base, prefix) = (client.clone(), base.clone(), prefix.clone());
            async move { load::put_meta(&client, &base, "meta", &format!("{prefix}{i}")).await }
        })
        .await
        .map_err(|e| with_log(e, &server))?;
        let cpu = cpu_per_op(cpu_before, server::cpu_ticks(pid), ticks_per_second, stats.requests);
        ops.push(OpRow {
            op: "PUT",
            concurrency,
            stats,
            server_cpu_us_per_op: cpu,
            rss_after_kb: server::rss_kb(pid).unwrap_or(0),
        });
    }

    // GETs read the objects written by the concurrent PUT phase.
    let existing = plan.put_requests[1];
    let existing_prefix = format!("c{}-", CONCURRENCY[1]);
    for (index, &concurrency) in CONCURRENCY.iter().enumerate() {
        let total = plan.get_requests[index];
        progress(&format!("metadata GET x{total}, concurrency {concurrency}"));
        let prefix: Arc<str> = Arc::from(existing_prefix.as_str());
        let (client, base) = (client.clone(), base.clone());
        let cpu_before = server::cpu_ticks(pid);
        let stats = load::run(concurrency, total, move |i| {
            let (client, base, prefix) = (client.clone(), base.clone(), prefix.clone());
            async move { load::get_meta(&client, &base, "meta", &format!("{prefix}{}", i % existing)).await }
        })
        .await
        .map_err(|e| with_log(e, &server))?;
        let cpu = cpu_per_op(cpu_before, server::cpu_ticks(pid), ticks_per_second, stats.requests);
        ops.push(OpRow {
            op: "GET",
            concurrency,
            stats,
            server_cpu_us_per_op: cpu,
            rss_after_kb: server::rss_kb(pid).unwrap_or(0),
        });
    }

    let content = Content::new();
    let mut transfers = Vec::new();
    for (index, &(size, label)) in plan.sizes.iter().enumerate() {
        let (mut uploads, mut downloads) = (Vec::new(), Vec::new());
        for run in 0..args.repeat {
            let id = format!("blob-{index}-{run}");
            progress(&format!("upload and download {label}, run {}/{}", run + 1, args.repeat));
            let stats = transfer::upload(&client, &base, &id, size, &content, pid)
                .await
                .map_err(|e| with_log(e, &server))?;
            uploads.push(stats);
            let stats = transfer::download(&client, &base, &id, size, &content, pid)
                .await
                .map_err(|e| with_log(e, &server))?;
            downloads.push(stats);
        }
        transfers.push(TransferRow::new("upload", label, index == 1, uploads));
        transfers.push(TransferRow::new("download", label, index == 1, downloads));
    }
    server.stop();
    drop(server);

    let (cp_size, cp_label) = plan.sizes[1];
    progress(&format!("cp baseline {cp_label}, {} runs", args.repeat));
    let cp_runs = args.repeat as usize;
    let cp_dir = dir.path().to_path_buf();
    let cp_content = content.clone();
    let cp = tokio::task::spawn_blocking(move || transfer::cp_baseline(&cp_dir, cp_size, &cp_content, cp_runs))
        .await
        .map_err(|e| format!("cp baseline task failed: {e}"))??;

    Ok(Report {
        quick: args.quick,
        repeat: args.repeat,
        server: binary,
        cpus: std::thread::available_parallelism().map(|n| n.get()).unwrap_or(1),
        idle_rss_kb,
        ops,
        transfers,
        cp_label,
        cp,
        total: started.elapsed(),
    })
}

fn http_client() -> Result<reqwest::Client, String> {
    let credentials = base64::engine::general_purpose::STANDARD.encode(format!("{USER}:bench"));
    let mut headers = reqwest::header::HeaderMap::new();
    let value = reqwest::header::HeaderValue::from_str(&format!("Basic {credentials}"))
        .map_err(|e| format!("bad authorization header: {e}"))?;
    headers.insert(reqwest::header::AUTHORIZATION, value);
    reqwest::Client::builder()
        .no_proxy()
        .default_headers(headers)
        .pool_max_idle_per_host(64)
        .connect_timeout(Duration::from_secs(5))
        .tcp_nodelay(true)
        .build()
        .map_err(|e| format!("cannot build the HTTP client: {e}"))
}

fn with_log(error: String, server: &Server) -> String {
    format!("{error}{}", server.log_tail())
}

fn cpu_per_op(before: Option<u64>, after: Option<u64>, ticks_per_second: u64, requests: u64) -> f64 {
    match (before, after) {
        (Some(before), Some(after)) if requests > 0 => {
            after.saturating_sub(before) as f64 * 1e6 / ticks_per_second as f64 / requests as f64
        }
        _ => f64::NAN,
    }
}

fn mb(kb: u64) -> f64 {
    kb as f64 * 1024.0 / 1e6
}

fn percent(part: f64, whole: f64) -> String {
    format!("{:.0} %", 100.0 * part / whole)
}

impl Report {
    fn table(&self) -> String {
        let mut out = String::new();
        let _ = writeln!(
            out,
            "edge-sync-service benchmark{}  (org {ORG}, {} CPUs, server {})",
            if self.quick { " --quick" } else { "" },
            self.cpus,
            self.server.display()
        );
        let _ = writeln!(out);
        let _ = writeln!(out, "idle RSS after start: {:.1} MB", mb(self.idle_rss_kb));
        let _ = writeln!(out);
        let _ = writeln!(
            out,
            "{:<10} {:>5} {:>9} {:>8} {:>10} {:>8} {:>8} {:>14} {:>13}",
            "metadata", "conc", "requests", "seconds", "ops/s", "p50 ms", "p99 ms", "server CPU µs", "RSS after MB"
        );
        for row in &self.ops {
            let _ = writeln!(
                out,
                "{:<10} {:>5} {:>9} {:>8.2} {:>10.0} {:>8.3} {:>8.3} {:>14.1} {:>13.1}",
                row.op,
                row.concurrency,
                row.stats.requests,
                row.stats.elapsed.as_secs_f64(),
                row.stats.ops_per_second(),
                row.stats.quantile_ms(0.50),
                row.stats.quantile_ms(0.99),
                row.server_cpu_us_per_op,
                mb(row.rss_after_kb)
            );
        }
        let _ = writeln!(out);
        let cp_rate = self.cp.cp_mb_per_second();
        let cp_sync_rate = self.cp.cp_sync_mb_per_second();
        let _ = writeln!(
            out,
            "{:<10} {:>8} {:>8} {:>9} {:>13} {:>12} {:>9} {:>11}",
            "data", "size", "seconds", "MB/s", "start RSS MB", "peak RSS MB", "% of cp", "% cp+fsync"
        );
        for row in &self.transfers {
            let rate = row.stats.mb_per_second();
            let (vs_cp, vs_cp_sync) = if row.large {
                (percent(rate, cp_rate), percent(rate, cp_sync_rate))
            } else {
                ("-".to_string(), "-".to_string())
            };
            let _ = writeln!(
                out,
                "{:<10} {:>8} {:>8.2} {:>9.1} {:>13.1} {:>12.1} {:>9} {:>11}",
                row.direction,
                row.label,
                row.stats.elapsed.as_secs_f64(),
                rate,
                mb(row.stats.start_rss_kb),
                mb(row.stats.peak_rss_kb),
                vs_cp,
                vs_cp_sync
            );
        }
        let _ = writeln!(
            out,
            "{:<10} {:>8} {:>8.2} {:>9.1} {:>13} {:>12} {:>9} {:>11}",
            "cp",
            self.cp_label,
            self.cp.cp.as_secs_f64(),
            cp_rate,
            "-",
            "-",
            "",
            ""
        );
        let _ = writeln!(
            out,
            "{:<10} {:>8} {:>8.2} {:>9.1} {:>13} {:>12} {:>9} {:>11}",
            "cp+fsync",
            self.cp_label,
            self.cp.cp_sync.as_secs_f64(),
            cp_sync_rate,
            "-",
            "-",
            "",
            ""
        );
        let _ = writeln!(out);
        let _ = writeln!(
            out,
            "data rows: median of {} runs (peak RSS: maximum over the runs); MB = 10^6 bytes",
            self.repeat
        );
        let _ = writeln!(out, "total bench time: {:.1} s", self.total.as_secs_f64());
        out
    }

    fn json(&self) -> serde_json::Value {
        let round = |x: f64, digits: i32| {
            let factor = 10f64.powi(digits);
            (x * factor).round() / factor
        };
        let ops: Vec<_> = self
            .ops
            .iter()
            .map(|row| {
                json!({
                    "op": row.op,
                    "concurrency": row.concurrency,
                    "requests": row.stats.requests,
                    "seconds": round(row.stats.elapsed.as_secs_f64(), 3),
                    "ops_per_s": round(row.stats.ops_per_second(), 1),
                    "p50_ms": round(row.stats.quantile_ms(0.50), 3),
                    "p99_ms": round(row.stats.quantile_ms(0.99), 3),
                    "server_cpu_us_per_op": round(row.server_cpu_us_per_op, 1),
                    "rss_after_mb": round(mb(row.rss_after_kb), 1),
                })
            })
            .collect();
        let transfers: Vec<_> = self
            .transfers
            .iter()
            .map(|row| {
                json!({
                    "direction": row.direction,
                    "size": row.label,
                    "bytes": row.stats.bytes,
                    "seconds": round(row.stats.elapsed.as_secs_f64(), 3),
                    "mb_per_s": round(row.stats.mb_per_second(), 1),
                    "start_rss_mb": round(mb(row.stats.start_rss_kb), 1),
                    "peak_rss_mb": round(mb(row.stats.peak_rss_kb), 1),
                    "runs_seconds": row.runs.iter().map(|t| round(t.as_secs_f64(), 3)).collect::<Vec<_>>(),
                })
            })
            .collect();
        json!({
            "quick": self.quick,
            "repeat": self.repeat,
            "server": self.server.display().to_string(),
            "cpus": self.cpus,
            "idle_rss_mb": round(mb(self.idle_rss_kb), 1),
            "metadata": ops,
            "transfers": transfers,
            "cp_baseline": {
                "size": self.cp_label,
                "bytes": self.cp.bytes,
                "cp_seconds": round(self.cp.cp.as_secs_f64(), 3),
                "cp_mb_per_s": round(self.cp.cp_mb_per_second(), 1),
                "cp_fsync_seconds": round(self.cp.cp_sync.as_secs_f64(), 3),
                "cp_fsync_mb_per_s": round(self.cp.cp_sync_mb_per_second(), 1),
                "runs": self.cp.runs.iter().map(|(cp, cp_sync)| json!({
                    "cp_seconds": round(cp.as_secs_f64(), 3),
                    "cp_fsync_seconds": round(cp_sync.as_secs_f64(), 3),
                })).collect::<Vec<_>>(),
            },
            "total_seconds": round(self.total.as_secs_f64(), 1),
        })
    }
}

/// Results of `--sync`; a phase that failed keeps its error.
struct SyncReport {
    quick: bool,
    server: PathBuf,
    cpus: usize,
    fanout: Result<fanout::FanoutStats, String>,
    propagation: Result<Vec<propagation::Latencies>, String>,
    real: Result<fanout::RealOutcome, String>,
    real_count: usize,
    total: Duration,
}

/// The synchronization benchmarks, each phase on its own CSS.
async fn run_sync(args: Args) -> Result<SyncReport, String> {
    let started = Instant::now();
    let binary = match args.server {
        Some(path) => path,
        None => default_server()?,
    };
    if !binary.is_file() {
        return Err(format!(
            "server binary {} not found (build it with `cargo build --release` or pass --server)",
            binary.display()
        ));
    }
    let nodes = args.nodes.map_or(if args.quick { 100 } else { 1_000 }, |n| n as usize);
    let (plain_nodes, plain_objects) = if args.quick { (4, 10) } else { (4, 50) };
    let (real_count, real_objects) = if args.quick { (10, 50) } else { (100, 50) };

    let fanout = fanout::simulated(&binary, nodes).await;
    if let Err(e) = &fanout {
        progress(&format!("fan-out failed: {e}"));
    }
    let propagation = propagation::simulated(&binary, 200, plain_nodes, plain_objects).await;
    if let Err(e) = &propagation {
        progress(&format!("propagation failed: {e}"));
    }
    let real = fanout::real_processes(&binary, real_count, real_objects).await;
    Ok(SyncReport {
        quick: args.quick,
        server: binary,
        cpus: std::thread::available_parallelism().map(|n| n.get()).unwrap_or(1),
        fanout,
        propagation,
        real,
        real_count,
        total: started.elapsed(),
    })
}

/// The MQTT benchmark; prints its table (stdout, or stderr with `--json`) and returns the
/// figures as JSON.
async fn run_fleet(mode: fleet::Mode, args: Args) -> Result<fleet::Outcome, String> {
    let binary = match args.server {
        Some(path) => path,
        None => default_server()?,
    };
    let nodes = args.fleet_nodes.map(|n| n as usize);
    fleet::run(&binary, mode, args.quick, nodes).await
}

async fn run_mqtt(args: Args) -> Result<serde_json::Value, String> {
    let binary = match args.server {
        Some(path) => path,
        None => default_server()?,
    };
    let (objects, large) = if args.quick {
        (50, 64_000_000)
    } else {
        (200, 256_000_000)
    };
    let stats = mqtt::run(&binary, objects, large).await?;
    let table = format!(
        "edge-sync-service MQTT benchmark{}  (mosquitto on loopback, {} CPUs)\n\
         propagation CSS -> ESS (noData): {} objects, median {:.1} ms, p99 {:.1} ms, max {:.1} ms\n\
         {} MB object: complete on the ESS {:.2} s after its data PUT on the CSS = {:.0} MB/s\n",
        if args.quick { " --quick" } else { "" },
        std::thread::available_parallelism().map(|n| n.get()).unwrap_or(1),
        stats.latencies.samples.len(),
        stats.latencies.median_ms(),
        stats.latencies.p99_ms(),
        stats.latencies.max_ms(),
        stats.large_bytes / 1_000_000,
        stats.large_secs,
        stats.large_mb_per_s()
    );
    if args.json {
        eprint!("{table}");
    } else {
        print!("{table}");
    }
    Ok(json!({
        "propagation_median_ms": stats.latencies.median_ms(),
        "propagation_p99_ms": stats.latencies.p99_ms(),
        "large_bytes": stats.large_bytes,
        "large_seconds": stats.large_secs,
        "large_mb_per_s": stats.large_mb_per_s(),
    }))
}

async fn run_ha(args: Args) -> Result<serde_json::Value, String> {
    let binary = match args.server {
        Some(path) => path,
        None => default_server()?,
    };
    let work = if args.quick {
        ha::Work {
            puts: 2_000,
            gets: 20_000,
            nodes: 100,
        }
    } else {
        ha::Work {
            puts: 10_000,
            gets: 100_000,
            nodes: 500,
        }
    };
    fanout::ensure_descriptors(work.nodes as u64 * 2 + 512, "the simulated edge nodes")?;
    let setups = ha::run(&binary, &work).await?;
    let mut table = format!(
        "edge-sync-service several-instances benchmark{}  ({} CPUs, concurrency 32, loopback)\n\
         {:<20} {:>10} {:>9} {:>10} {:>9} {:>11} {:>12} {:>12} {:>9}\n",
        if args.quick { " --quick" } else { "" },
        std::thread::available_parallelism().map(|n| n.get()).unwrap_or(1),
        "set-up",
        "PUT ops/s",
        "PUT p99",
        "GET ops/s",
        "GET p99",
        "CPU us/GET",
        "fan-out (n)",
        "fan-out time",
        "node p99"
    );
    let mut rows = Vec::new();
    for setup in &setups {
        let _ = writeln!(
            table,
            "{:<20} {:>10.0} {:>7.1}ms {:>10.0} {:>7.1}ms {:>11.0} {:>12} {:>10.0}ms {:>7.0}ms",
            setup.name,
            setup.put.ops_per_second(),
            setup.put.quantile_ms(0.99),
            setup.get.ops_per_second(),
            setup.get.quantile_ms(0.99),
            setup.get_cpu_us,
            setup.fanout.nodes,
            setup.fanout.total.as_secs_f64() * 1e3,
            fanout::quantile_ms(&setup.fanout.per_node, 0.99),
        );
        rows.push(json!({
            "setup": setup.name,
            "put_ops_per_s": setup.put.ops_per_second(),
            "put_p99_ms": setup.put.quantile_ms(0.99),
            "get_ops_per_s": setup.get.ops_per_second(),
            "get_p99_ms": setup.get.quantile_ms(0.99),
            "get_cpu_us": setup.get_cpu_us,
            "fanout_nodes": setup.fanout.nodes,
            "fanout_ms": setup.fanout.total.as_secs_f64() * 1e3,
        }));
    }
    if args.json {
        eprint!("{table}");
    } else {
        print!("{table}");
    }
    Ok(json!(rows))
}

/// First line of an error (the server log tail follows on later lines).
fn first_line(error: &str) -> &str {
    error.lines().next().unwrap_or("")
}

impl SyncReport {
    /// A simulated phase failed, or the real processes ran and failed.
    fn failed(&self) -> bool {
        let real_failed = match &self.real {
            Err(_) => true,
            Ok(fanout::RealOutcome::NotMeasurable(_)) => false,
            Ok(fanout::RealOutcome::Measured { fanout, propagation }) => fanout.is_err() || propagation.is_err(),
        };
        self.fanout.is_err() || self.propagation.is_err() || real_failed
    }

    fn fanout_header(out: &mut String) {
        let _ = writeln!(
            out,
            "{:<18} {:>6} {:>8} {:>8} {:>8} {:>8} {:>13} {:>12} {:>10} {:>10}",
            "fan-out 1 MB",
            "nodes",
            "setup s",
            "total s",
            "p50 ms",
            "p99 ms",
            "CSS RSS MB",
            "CSS peak MB",
            "CSS CPU s",
            "delivered"
        );
    }

    fn fanout_row(out: &mut String, label: &str, stats: &fanout::FanoutStats) {
        let _ = writeln!(
            out,
            "{:<18} {:>6} {:>8.2} {:>8.2} {:>8.1} {:>8.1} {:>13.1} {:>12.1} {:>10.2} {:>10}",
            label,
            stats.nodes,
            stats.setup.as_secs_f64(),
            stats.total.as_secs_f64(),
            fanout::quantile_ms(&stats.per_node, 0.50),
            fanout::quantile_ms(&stats.per_node, 0.99),
            mb(stats.start_rss_kb),
            mb(stats.peak_rss_kb),
            stats.cpu_seconds,
            stats.delivered
        );
    }

    fn latency_header(out: &mut String) {
        let _ = writeln!(
            out,
            "{:<28} {:>6} {:>8} {:>10} {:>9} {:>9}",
            "propagation (noData)", "nodes", "objects", "median ms", "p99 ms", "max ms"
        );
    }

    fn latency_row(out: &mut String, row: &propagation::Latencies) {
        let _ = writeln!(
            out,
            "{:<28} {:>6} {:>8} {:>10.1} {:>9.1} {:>9.1}",
            row.label,
            row.nodes,
            row.samples.len(),
            row.median_ms(),
            row.p99_ms(),
            row.max_ms()
        );
    }

    fn table(&self) -> String {
        let mut out = String::new();
        let _ = writeln!(
            out,
            "edge-sync-service synchronization benchmark{}  (HTTP transport, org {ORG}, {} CPUs, server {})",
            if self.quick { " --quick" } else { "" },
            self.cpus,
            self.server.display()
        );
        let _ = writeln!(out);
        Self::fanout_header(&mut out);
        match &self.fanout {
            Ok(stats) => Self::fanout_row(&mut out, "simulated ESS", stats),
            Err(e) => {
                let _ = writeln!(out, "{:<18} failed: {}", "simulated ESS", first_line(e));
            }
        }
        if let Ok(fanout::RealOutcome::Measured { fanout: real, .. }) = &self.real {
            match real {
                Ok(stats) => Self::fanout_row(&mut out, "real ESS processes", stats),
                Err(e) => {
                    let _ = writeln!(out, "{:<18} failed: {}", "real ESS processes", first_line(e));
                }
            }
        }
        let _ = writeln!(out);
        Self::latency_header(&mut out);
        match &self.propagation {
            Ok(rows) => rows.iter().for_each(|row| Self::latency_row(&mut out, row)),
            Err(e) => {
                let _ = writeln!(out, "{:<28} failed: {}", "simulated ESS", first_line(e));
            }
        }
        if let Ok(fanout::RealOutcome::Measured { propagation: real, .. }) = &self.real {
            match real {
                Ok(row) => Self::latency_row(&mut out, row),
                Err(e) => {
                    let _ = writeln!(out, "{:<28} failed: {}", "real ESS", first_line(e));
                }
            }
        }
        let _ = writeln!(out);
        match &self.real {
            Ok(fanout::RealOutcome::NotMeasurable(reason)) => {
                let _ = writeln!(
                    out,
                    "real ESS processes ({}): not yet measurable: the binary does not work as an HTTP ESS",
                    self.real_count
                );
                for line in reason.lines().take(4) {
                    let _ = writeln!(out, "  {line}");
                }
            }
            Err(e) => {
                let _ = writeln!(out, "real ESS processes: failed: {}", first_line(e));
            }
            Ok(fanout::RealOutcome::Measured { fanout: real, .. }) => {
                if let Some(kb) = real.as_ref().ok().and_then(|s| s.ess_rss_kb) {
                    let _ = writeln!(
                        out,
                        "real ESS processes: median RSS {:.1} MB after the fan-out; each ESS's API asked every {} ms",
                        mb(kb),
                        if self.real_count > 20 { 100 } else { 20 }
                    );
                }
            }
        }
        let _ = writeln!(
            out,
            "fan-out: setup = registration of all nodes; total = data PUT's 204 until every node sent `received` \
             (simulated) / lists the object in its API (real); p50/p99 per node; CSS RSS at the start and peak \
             (sampled every 20 ms); delivered = destinations the CSS lists as delivered at the end"
        );
        let _ = writeln!(
            out,
            "propagation: PUT's 204 on the CSS until the node's poll brings the object, one object at a time; \
             the 1 s pollers get each object after a random pause of up to 1 s; MB = 10^6 bytes"
        );
        let _ = writeln!(out, "total bench time: {:.1} s", self.total.as_secs_f64());
        out
    }

    fn json(&self) -> serde_json::Value {
        let round = |x: f64, digits: i32| {
            let factor = 10f64.powi(digits);
            (x * factor).round() / factor
        };
        let fanout_json = |r: &Result<fanout::FanoutStats, String>| match r {
            Ok(s) => json!({
                "nodes": s.nodes,
                "setup_seconds": round(s.setup.as_secs_f64(), 3),
                "total_seconds": round(s.total.as_secs_f64(), 3),
                "p50_ms": round(fanout::quantile_ms(&s.per_node, 0.50), 1),
                "p99_ms": round(fanout::quantile_ms(&s.per_node, 0.99), 1),
                "css_start_rss_mb": round(mb(s.start_rss_kb), 1),
                "css_peak_rss_mb": round(mb(s.peak_rss_kb), 1),
                "css_cpu_seconds": round(s.cpu_seconds, 2),
                "delivered": s.delivered,
                "ess_median_rss_mb": s.ess_rss_kb.map(|kb| round(mb(kb), 1)),
            }),
            Err(e) => json!({ "error": e }),
        };
        let latency_json = |row: &propagation::Latencies| {
            json!({
                "mode": row.label,
                "nodes": row.nodes,
                "objects": row.samples.len(),
                "median_ms": round(row.median_ms(), 2),
                "p99_ms": round(row.p99_ms(), 2),
                "max_ms": round(row.max_ms(), 2),
            })
        };
        let propagation_json = match &self.propagation {
            Ok(rows) => json!(rows.iter().map(latency_json).collect::<Vec<_>>()),
            Err(e) => json!({ "error": e }),
        };
        let real_json = match &self.real {
            Ok(fanout::RealOutcome::NotMeasurable(reason)) => json!({ "measurable": false, "reason": reason }),
            Ok(fanout::RealOutcome::Measured {
                fanout: f,
                propagation: p,
            }) => json!({
                "measurable": true,
                "fanout": fanout_json(f),
                "propagation": match p {
                    Ok(row) => latency_json(row),
                    Err(e) => json!({ "error": e }),
                },
            }),
            Err(e) => json!({ "error": e }),
        };
        json!({
            "quick": self.quick,
            "server": self.server.display().to_string(),
            "cpus": self.cpus,
            "fanout_simulated": fanout_json(&self.fanout),
            "propagation_simulated": propagation_json,
            "real_processes": real_json,
            "total_seconds": round(self.total.as_secs_f64(), 1),
        })
    }
}
