//! Fleet-scale modes (`--fleet MODE`): how one CSS holds thousands of edge nodes, large
//! objects to many nodes at once, and publishing to a large fleet. Each mode starts its own
//! processes on 127.0.0.1, prints a table and returns its figures as JSON; docs/SCALING.md
//! explains what they mean for fleets beyond one machine.

mod database_data;
mod delta;
mod instances;
mod mqtt;
mod mqtt_sim;
mod publish;
mod real_ess;
mod signed;
mod sim;
mod slow_link;
mod status_page;
mod waiting;

use std::path::Path;

/// One fleet-scale measurement.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum Mode {
    /// 10,000 simulated nodes long-polling one CSS: memory and CPU while they wait, then a
    /// metadata-only object and a 1 MiB object to all of them.
    Waiting,
    /// 3,000 simulated nodes downloading one 16 MiB object at once, every byte compared.
    BigObject,
    /// 3,000 registered nodes and 1,000 objects addressed to all: publishing a new version
    /// and serving a newly registered node its list.
    Publish,
    /// One 160 MB object signed with RSA-PSS over its SHA-256, verified on the CSS and on one
    /// ESS process: what verification adds to the data PUT and to the arrival, and the peak
    /// RSS, against the same object unsigned; a tampered copy must be refused.
    Signed,
    /// 1,000 simulated nodes, each its own connection to one mosquitto, and a CSS over MQTT:
    /// registration, then a 1 MiB object to all, every byte compared; CSS and broker memory.
    Mqtt,
    /// 3 CSS instances on one PostgreSQL and 10,000 simulated nodes spread over them,
    /// long-polling: each instance's memory and the database's, CPU and store statements per
    /// idle poll, a metadata-only and a 1 MiB object to all, store size per (object, node).
    Instances,
    /// Object data in PostgreSQL against data in files: a 1 GiB object (--quick: 256 MiB) up
    /// and down on each, through two instances sharing only the database, then a 16 MiB object
    /// to 500 simulated nodes (--quick: 50) polling both; rates and peak RSS.
    DatabaseData,
    /// 20 real ESS processes (--quick: 5) fetching one 1 GiB object (--quick: 256 MiB) in
    /// chunks; CSS and ESS peak RSS, and the total against the single-stream download rate.
    RealEss,
    /// The status page of a CSS with 10,000 registered nodes and 50 objects addressed to all:
    /// how long each page takes to answer (objects with counts, one object's destinations,
    /// nodes; first page, last page, searched).
    StatusPage,
    /// One CSS and one ESS over a link limited to 10 Mbit/s each way: a 100 MB object
    /// (--quick: 10 MB) of log lines with compression negotiated and with an ESS that does
    /// not take part, and of random bytes; bytes on the wire and time to arrival.
    SlowLink,
    /// One CSS and one ESS on each transport: a 1 GiB object (--quick: 64 MiB) of random
    /// bytes, then a new version with 1 % changed in 1,024 places (--quick: 64); bytes on the
    /// wire, time and peak RSS of each version.
    Delta,
}

/// What a mode found: its table, its figures, and whether a target or a check failed.
pub struct Outcome {
    pub table: String,
    pub json: serde_json::Value,
    /// A correctness check failed (a node without its object, bytes that differ).
    pub failed: bool,
}

/// Runs `mode` against `binary`; `nodes` overrides the mode's fleet size, `quick` makes
/// everything ten times smaller.
pub async fn run(binary: &Path, mode: Mode, quick: bool, nodes: Option<usize>) -> Result<Outcome, String> {
    let scale = |full: usize| nodes.unwrap_or(if quick { full / 10 } else { full });
    match mode {
        Mode::Waiting => waiting::run(binary, scale(10_000)).await,
        Mode::BigObject => waiting::big_object(binary, scale(3_000)).await,
        Mode::Publish => publish::run(binary, scale(3_000), if quick { 100 } else { 1_000 }).await,
        Mode::Signed => signed::run(binary, quick).await,
        Mode::Mqtt => mqtt::run(binary, scale(1_000)).await,
        Mode::Instances => instances::run(binary, scale(10_000)).await,
        Mode::DatabaseData => {
            let (size, runs) = if quick { (256 << 20, 1) } else { (1 << 30, 3) };
            database_data::run(binary, size, runs, nodes.unwrap_or(if quick { 50 } else { 500 })).await
        }
        Mode::SlowLink => slow_link::run(binary, if quick { 10_000_000 } else { 100_000_000 }).await,
        Mode::Delta => {
            let (size, places) = if quick { (64 << 20, 64) } else { (1 << 30, 1024) };
            delta::run(binary, size, places).await
        }
        Mode::StatusPage => status_page::run(binary, scale(10_000), 50).await,
        Mode::RealEss => {
            real_ess::run(
                binary,
                nodes.unwrap_or(if quick { 5 } else { 20 }),
                if quick { 256 << 20 } else { 1 << 30 },
            )
            .await
        }
    }
}

/// The value of `series` (name and labels, as written) in a `/metrics` text.
pub fn metric(text: &str, series: &str) -> Option<f64> {
    text.lines()
        .find_map(|line| line.strip_prefix(series)?.strip_prefix(' '))
        .and_then(|value| value.trim().parse().ok())
}

/// How a table tells whether a target was met.
pub fn verdict(met: bool) -> &'static str {
    if met {
        "met"
    } else {
        "NOT met"
    }
}

/// `part` of `whole` as a percentage.
pub fn percent(part: f64, whole: f64) -> f64 {
    if whole > 0.0 {
        100.0 * part / whole
    } else {
        f64::NAN
    }
}

/// Megabytes (10^6 bytes) of `kb` kibibytes as reported by `/proc`.
pub fn mb(kb: u64) -> f64 {
    kb as f64 * 1024.0 / 1e6
}

/// A CSS serving HTTP and MQTT through a mosquitto of its own, metrics open: the modes that
/// pair it with ESS processes. Fields drop in order: the CSS, the broker, then their folder.
pub struct CssWithBroker {
    pub css: crate::server::Server,
    pub broker: crate::mqtt::Broker,
    pub dir: crate::server::TempDir,
    pub admin: reqwest::Client,
    pub base: String,
}

impl CssWithBroker {
    pub async fn start(binary: &Path) -> Result<Self, String> {
        let dir = crate::server::TempDir::create()?;
        let broker = crate::mqtt::Broker::start(dir.path())?;
        let css_dir = dir.path().join("css");
        std::fs::create_dir_all(&css_dir).map_err(|e| e.to_string())?;
        let mut env = broker.transport_env();
        env.push(("COMMUNICATION_PROTOCOL".into(), "http,mqtt".into()));
        env.push(("METRICS_ACCESS".into(), "open".into()));
        let mut css = crate::server::Server::start_with(binary, &css_dir, &env)?;
        let admin = crate::http_client()?;
        let base = format!("http://127.0.0.1:{}", css.port);
        css.wait_healthy(&admin, &base, std::time::Duration::from_secs(30))
            .await?;
        Ok(Self {
            css,
            broker,
            dir,
            admin,
            base,
        })
    }

    /// Stops the CSS; an error of the mode gets the end of its log.
    pub fn finish(mut self, outcome: Result<Outcome, String>) -> Result<Outcome, String> {
        self.css.stop();
        outcome.map_err(|e| format!("{e}{}", self.css.log_tail()))
    }

    /// Bytes the CSS has `direction` (`sent` or `received`) over `transport` (`http`:
    /// object data and manifests on its routes; `mqtt`: every message).
    pub async fn transport_bytes(&self, transport: &str, direction: &str) -> Result<u64, String> {
        let text = self
            .admin
            .get(format!("{}/metrics", self.base))
            .send()
            .await
            .map_err(|e| e.to_string())?
            .text()
            .await
            .map_err(|e| e.to_string())?;
        let series = format!("edge_sync_transport_bytes_total{{transport=\"{transport}\",direction=\"{direction}\"}}");
        metric(&text, &series)
            .map(|v| v as u64)
            .ok_or_else(|| format!("no {transport} byte count in the CSS's metrics"))
    }
}
