//! Modes `waiting` and `big-object`: one CSS and a fleet of simulated nodes long-polling it.
//!
//! `waiting`: the CSS's memory and CPU while every node waits in a long poll, then how long a
//! metadata-only object and a 1 MiB object addressed to all take to reach all of them.
//! `big-object`: one 16 MiB object downloaded by every node at once, each byte compared;
//! the aggregate rate next to one download of the same object alone.

use super::sim::{self, Arrival, SimFleet, FLEET_TYPE};
use super::{mb, percent, verdict, Outcome};
use crate::fanout::{self, quantile_ms};
use crate::server::cpu_seconds;
use crate::server::{self, Server, TempDir};
use crate::transfer::RssSampler;
use bytes::Bytes;
use serde_json::json;
use std::fmt::Write as _;
use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

/// How long each long poll is held: the ESS's default `HTTPPollingInterval`, so the idle
/// load is that of a fleet of ESS with their defaults.
pub(super) const WAIT: u64 = 10;
/// How long the idle CPU is measured: several long-poll periods.
pub(super) const IDLE_WINDOW: Duration = Duration::from_secs(30);
/// How long the first polls may take to park after the last registration.
const SETTLE: Duration = Duration::from_secs(2);
/// A delivery that makes no progress for this long has failed.
pub(super) const STALL: Duration = Duration::from_secs(60);
/// The same for `big-object`, where nodes wait their turn for each chunk: the first
/// completes only once most chunks of all nodes were served.
const BIG_STALL: Duration = Duration::from_secs(600);
/// Size of the data object of `waiting`.
pub(super) const MIB: u64 = 1 << 20;
/// Size of the object of `big-object`.
const BIG: u64 = 16 << 20;
/// Single-stream downloads of `big-object`'s object; the median is reported.
const SINGLE_RUNS: usize = 3;

/// One or several CSS instances with a registered, polling fleet.
pub(super) struct Stage {
    _dir: TempDir,
    css: Vec<Server>,
    /// Each instance's URL; objects are published through the first.
    bases: Vec<Arc<str>>,
    admin: reqwest::Client,
    pub fleet: SimFleet,
    pub registration: Duration,
}

impl Stage {
    async fn start(binary: &Path, nodes: usize) -> Result<Stage, String> {
        sim::make_room(nodes)?;
        let dir = TempDir::create()?;
        let css = Server::start(binary, dir.path())?;
        Stage::with(dir, vec![css], nodes).await
    }

    /// Waits until every instance of `css` (started in `dir`, with this process's raised
    /// open-file limit: see [`sim::make_room`]) is healthy, then registers `nodes` simulated
    /// nodes spread over them in turn and lets them long-poll.
    pub(super) async fn with(dir: TempDir, mut css: Vec<Server>, nodes: usize) -> Result<Stage, String> {
        let admin = crate::http_client()?;
        let mut bases = Vec::with_capacity(css.len());
        for server in &mut css {
            let base: Arc<str> = Arc::from(format!("http://127.0.0.1:{}", server.port));
            server.wait_healthy(&admin, &base, Duration::from_secs(60)).await?;
            bases.push(base);
        }
        crate::progress(&format!("fleet: registering {nodes} simulated nodes"));
        let (fleet, registration) = match SimFleet::start(&bases, nodes, WAIT).await {
            Ok(started) => started,
            Err(e) => return Err(format!("{e}{}", css.iter().map(Server::log_tail).collect::<String>())),
        };
        tokio::time::sleep(SETTLE).await;
        Ok(Stage {
            _dir: dir,
            css,
            bases,
            admin,
            fleet,
            registration,
        })
    }

    /// The instances' process IDs.
    pub(super) fn pids(&self) -> Vec<u32> {
        self.css.iter().map(Server::pid).collect()
    }

    /// CPU time of all instances together, in clock ticks.
    pub(super) fn cpu_ticks(&self) -> Option<u64> {
        self.css.iter().map(|s| server::cpu_ticks(s.pid())).sum()
    }

    fn log_tails(&self) -> String {
        self.css.iter().map(Server::log_tail).collect()
    }

    /// Publishes `data` as object `id` addressed to every node (`noData` when empty) and
    /// waits for every node to complete it.
    pub(super) async fn deliver(&mut self, id: &str, data: Bytes, stall: Duration) -> Result<Delivery, String> {
        self.fleet.deliveries.expect(id, data.clone());
        let samplers: Vec<RssSampler> = self.pids().into_iter().map(RssSampler::start).collect();
        let cpu_before = self.cpu_ticks();
        let publishing = Instant::now();
        let base = &self.bases[0];
        if data.is_empty() {
            fanout::put_object(&self.admin, base, FLEET_TYPE, id, json!({"noData": true})).await?;
        } else {
            fanout::put_object(&self.admin, base, FLEET_TYPE, id, json!({})).await?;
            fanout::put_data(&self.admin, base, FLEET_TYPE, id, data).await?;
        }
        let published = Instant::now();
        let arrivals = self.fleet.deliveries.all_arrivals(id, stall).await;
        let total = published.elapsed();
        let cpu = cpu_seconds(cpu_before, self.cpu_ticks());
        let peak_kb = samplers.into_iter().map(|s| s.finish().1).collect();
        let arrivals = arrivals.map_err(|e| format!("{e}{}", self.log_tails()))?;
        let (delivered, _) = fanout::delivered_count(&self.admin, base, FLEET_TYPE, id).await?;
        Ok(Delivery {
            publish: published - publishing,
            total,
            polled: sim::delays(&arrivals, published, |a: &Arrival| a.polled),
            done: sim::delays(&arrivals, published, |a: &Arrival| a.done),
            peak_kb,
            cpu,
            delivered,
        })
    }
}

impl Drop for Stage {
    fn drop(&mut self) {
        self.fleet.stop();
    }
}

/// One object delivered to the whole fleet.
pub(super) struct Delivery {
    /// The PUT (and data PUT) until answered.
    publish: Duration,
    /// From the answer until the last node's `received` was answered.
    pub total: Duration,
    /// Per node, sorted: from the answer until the poll bringing the object answered.
    polled: Vec<Duration>,
    /// Per node, sorted: from the answer until its `received` was answered.
    done: Vec<Duration>,
    /// Peak RSS of each instance meanwhile.
    pub peak_kb: Vec<u64>,
    /// CPU seconds of all instances together.
    pub cpu: f64,
    /// Destinations the CSS lists as delivered afterwards.
    pub delivered: usize,
}

impl Delivery {
    /// Peak RSS of all instances together, each at its own peak.
    pub fn peak_total_kb(&self) -> u64 {
        self.peak_kb.iter().sum()
    }

    pub(super) fn row(&self, label: &str) -> String {
        format!(
            "{label:<16} {:>8.1} {:>9.2} {:>8.2} {:>8.2} {:>8.2} {:>11.1} {:>9.2} {:>10}\n",
            self.publish.as_secs_f64() * 1e3,
            quantile_ms(&self.polled, 1.0) / 1e3,
            quantile_ms(&self.done, 0.5) / 1e3,
            quantile_ms(&self.done, 0.99) / 1e3,
            self.total.as_secs_f64(),
            mb(self.peak_total_kb()),
            self.cpu,
            self.delivered
        )
    }

    pub(super) fn json(&self) -> serde_json::Value {
        json!({
            "publish_ms": self.publish.as_secs_f64() * 1e3,
            "all_polled_s": quantile_ms(&self.polled, 1.0) / 1e3,
            "p50_s": quantile_ms(&self.done, 0.5) / 1e3,
            "p99_s": quantile_ms(&self.done, 0.99) / 1e3,
            "total_s": self.total.as_secs_f64(),
            "css_peak_rss_mb": mb(self.peak_total_kb()),
            "css_peak_rss_mb_each": self.peak_kb.iter().map(|&kb| mb(kb)).collect::<Vec<_>>(),
            "css_cpu_s": self.cpu,
            "delivered": self.delivered,
        })
    }
}

pub(super) const DELIVERY_HEADER: &str =
    "object           PUT ms  polled s    p50 s    p99 s    all s  CSS peak MB  CPU s    delivered\n";

/// Mode `waiting`.
pub async fn run(binary: &Path, nodes: usize) -> Result<Outcome, String> {
    let mut stage = Stage::start(binary, nodes).await?;
    let pid = stage.css[0].pid();
    let idle_rss_kb = server::rss_kb(pid).unwrap_or(0);
    crate::progress(&format!("fleet: {nodes} nodes waiting; CSS CPU over {IDLE_WINDOW:?}"));
    let cpu_before = server::cpu_ticks(pid);
    tokio::time::sleep(IDLE_WINDOW).await;
    let idle_cpu = percent(
        cpu_seconds(cpu_before, server::cpu_ticks(pid)),
        IDLE_WINDOW.as_secs_f64(),
    );
    let waiting_rss_kb = server::rss_kb(pid).unwrap_or(0).max(idle_rss_kb);

    crate::progress("fleet: a metadata-only object to every node");
    let meta_only = stage.deliver("meta-only", Bytes::new(), STALL).await?;
    crate::progress("fleet: a 1 MiB object to every node");
    let data = stage.deliver("one-mib", sim::content(MIB), STALL).await?;

    let failed = meta_only.delivered != nodes || data.delivered != nodes;
    let mut table = format!(
        "fleet: waiting  ({nodes} simulated nodes long-polling with wait={WAIT}, {} CPUs)\n\
         registration of all nodes: {:.2} s\n\
         while they wait: CSS RSS {:.1} MB ({:.1} kB per node), CPU {:.2} % of one core over {} s\n\n",
        std::thread::available_parallelism().map(|n| n.get()).unwrap_or(1),
        stage.registration.as_secs_f64(),
        mb(waiting_rss_kb),
        waiting_rss_kb as f64 * 1.024 / nodes as f64,
        idle_cpu,
        IDLE_WINDOW.as_secs(),
    );
    table.push_str(DELIVERY_HEADER);
    table.push_str(&meta_only.row("metadata-only"));
    table.push_str(&data.row("1 MiB"));
    let _ = writeln!(
        table,
        "\nPUT ms: publishing until answered; then from the answer: polled = the last node's poll \
         brought it, p50/p99/all = nodes' `received` answered; delivered = destinations the CSS \
         lists as delivered\ntargets (10,000 nodes): RSS < 256 MB {}, idle CPU < 5 % {}, \
         metadata-only < 5 s {}, 1 MiB < 20 s {}",
        verdict(mb(waiting_rss_kb) < 256.0),
        verdict(idle_cpu < 5.0),
        verdict(meta_only.total < Duration::from_secs(5)),
        verdict(data.total < Duration::from_secs(20)),
    );
    let json = json!({
        "mode": "waiting",
        "nodes": nodes,
        "registration_s": stage.registration.as_secs_f64(),
        "waiting_rss_mb": mb(waiting_rss_kb),
        "waiting_cpu_percent": idle_cpu,
        "metadata_only": meta_only.json(),
        "one_mib": data.json(),
    });
    Ok(Outcome { table, json, failed })
}

/// Mode `big-object`.
pub async fn big_object(binary: &Path, nodes: usize) -> Result<Outcome, String> {
    let mut stage = Stage::start(binary, nodes).await?;
    let data = sim::content(BIG);
    crate::progress("fleet: one download of the object alone");
    let single = single_stream(&stage, &data).await?;
    crate::progress(&format!("fleet: a 16 MiB object to {nodes} nodes at once"));
    let fleet = stage.deliver("big", data, BIG_STALL).await?;
    let aggregate = (BIG as f64 * nodes as f64) / 1e6 / fleet.total.as_secs_f64();
    let single_rate = BIG as f64 / 1e6 / single.as_secs_f64();
    let failed = fleet.delivered != nodes;
    let mut table = format!(
        "fleet: big-object  ({nodes} simulated nodes, one 16 MiB object, {} CPUs)\n\n",
        std::thread::available_parallelism().map(|n| n.get()).unwrap_or(1),
    );
    table.push_str(DELIVERY_HEADER);
    table.push_str(&fleet.row("16 MiB"));
    let _ = writeln!(
        table,
        "\naggregate: {:.1} GB in {:.1} s = {aggregate:.0} MB/s; one download alone: {single_rate:.0} MB/s \
         (median of {SINGLE_RUNS})\nevery byte compared with the published ones\n\
         targets (3,000 nodes): CSS peak RSS < 128 MB {}, aggregate >= single stream {}",
        BIG as f64 * nodes as f64 / 1e9,
        fleet.total.as_secs_f64(),
        verdict(mb(fleet.peak_total_kb()) < 128.0),
        verdict(aggregate >= single_rate),
    );
    let json = json!({
        "mode": "big-object",
        "nodes": nodes,
        "object_bytes": BIG,
        "delivery": fleet.json(),
        "aggregate_mb_per_s": aggregate,
        "single_stream_mb_per_s": single_rate,
    });
    Ok(Outcome { table, json, failed })
}

/// Median time of one whole download of the object by an application, alone; the object is
/// addressed to a node type nobody has, so the fleet does not see it.
async fn single_stream(stage: &Stage, data: &Bytes) -> Result<Duration, String> {
    let id = "alone";
    fanout::put_object(
        &stage.admin,
        &stage.bases[0],
        FLEET_TYPE,
        id,
        json!({"destinationType": "nobody"}),
    )
    .await?;
    fanout::put_data(&stage.admin, &stage.bases[0], FLEET_TYPE, id, data.clone()).await?;
    let url = format!(
        "{}/api/v1/objects/{}/{FLEET_TYPE}/{id}/data",
        stage.bases[0],
        crate::ORG
    );
    let mut times = Vec::with_capacity(SINGLE_RUNS);
    for _ in 0..SINGLE_RUNS {
        let started = Instant::now();
        let mut response = stage
            .admin
            .get(&url)
            .send()
            .await
            .map_err(|e| format!("GET {url}: {}", fanout::describe(&e)))?;
        let mut got = 0u64;
        while let Some(piece) = response
            .chunk()
            .await
            .map_err(|e| format!("GET {url}: {}", fanout::describe(&e)))?
        {
            got += piece.len() as u64;
        }
        if got != data.len() as u64 {
            return Err(format!("GET {url}: {got} bytes of {}", data.len()));
        }
        times.push(started.elapsed());
    }
    times.sort_unstable();
    Ok(times[times.len() / 2])
}
