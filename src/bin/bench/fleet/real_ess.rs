//! Mode `real-ess`: one large object to a fleet of real ESS processes of the release binary,
//! each with its own persistence folder, over HTTP.
//!
//! The object is streamed to the CSS, addressed to nobody, and downloaded alone by an
//! application (median of three) for the single-stream rate. Then a `metaOnly` update
//! addresses it to every ESS, which fetches the data in `Range` chunks of the CSS's
//! `MaxDataChunkSize`; the time runs until every ESS lists the object as complete through
//! its own API. Each ESS's copy is then read back from that ESS and compared (byte count and
//! checksum) with what was published. The total is set against the ideal: every copy at the
//! single-stream rate, one after the other.

use super::{mb, verdict, Outcome};
use crate::fanout::{self, EssFleet};
use crate::server::cpu_seconds;
use crate::server::{self, Server, TempDir};
use crate::transfer::{self, Content, RssSampler, TransferStats, BLOB_TYPE};
use serde_json::json;
use std::fmt::Write as _;
use std::path::Path;
use std::time::{Duration, Instant};

/// The object's ID.
const OBJECT_ID: &str = "fleet-large";
/// Destination type of the ESS fleet (set by [`EssFleet::spawn`]).
const FLEET_TYPE: &str = "edge";
/// Single-stream downloads; the median is reported.
const SINGLE_RUNS: usize = 3;
/// How often each ESS is asked whether it holds the object.
const WATCH_PERIOD: Duration = Duration::from_millis(100);
/// Free disk space wanted beyond the copies: databases, logs, the page cache's writeback.
const DISK_MARGIN: u64 = 2 << 30;
/// Targets of the issue: CSS and per-ESS peak RSS, total time against the ideal.
const CSS_RSS_TARGET_MB: f64 = 128.0;
const ESS_RSS_TARGET_MB: f64 = 64.0;
const RATIO_TARGET: f64 = 1.5;

/// Runs the mode with `nodes` ESS processes and an object of `size` bytes.
pub async fn run(binary: &Path, nodes: usize, size: u64) -> Result<Outcome, String> {
    // Declared first: dropped last, after the processes writing into it stopped.
    let dir = TempDir::create()?;
    ensure_disk(dir.path(), (nodes as u64 + 1) * size + DISK_MARGIN)?;
    // Its request counts tell how often the ESS were refused as busy.
    let metrics = [("METRICS_ACCESS".to_string(), "open".to_string())];
    let mut css = Server::start_with(binary, dir.path(), &metrics)?;
    let admin = crate::http_client()?;
    let base = format!("http://127.0.0.1:{}", css.port);
    css.wait_healthy(&admin, &base, Duration::from_secs(30)).await?;
    // Declared after the CSS: stopped before it.
    let mut fleet = EssFleet::new();
    crate::progress(&format!("fleet: starting {nodes} ESS processes"));
    fleet.spawn(binary, dir.path(), css.port, 0, nodes)?;
    fleet.wait_registered(&admin, &base, Duration::from_secs(60)).await?;
    let measured = measure(&admin, &base, css.pid(), &fleet, dir.path(), size).await;
    fleet.stop();
    let tail = css.log_tail();
    css.stop();
    let figures = measured.map_err(|e| format!("{e}{tail}"))?;
    Ok(figures.outcome(nodes, size))
}

/// What the run found.
struct Figures {
    upload: TransferStats,
    /// The application's downloads of the object alone, sorted by time.
    singles: Vec<TransferStats>,
    /// `cp` of a file of the object's size followed by `sync`: what the disk allows a copy.
    disk: transfer::CpStats,
    /// From the `metaOnly` update's answer until every ESS listed the object (or the
    /// deadline passed).
    total: Duration,
    /// Per ESS, when it listed the object; `None` when it did not.
    listed: Vec<Option<Duration>>,
    /// Per ESS, why the data it serves is not the published data; `None` when it is.
    mismatches: Vec<Option<String>>,
    css_fleet_peak_kb: u64,
    /// CPU seconds of the CSS and of all ESS together while the copies were made.
    css_cpu: f64,
    ess_cpu: f64,
    /// Per ESS, its peak RSS from the addressing until its copy was read back.
    ess_peak_kb: Vec<u64>,
    /// The CSS's answers to ranged data requests of the ESS: served, refused as busy.
    served: u64,
    busy: u64,
    delivered: usize,
}

async fn measure(
    admin: &reqwest::Client,
    base: &str,
    css_pid: u32,
    fleet: &EssFleet,
    dir: &Path,
    size: u64,
) -> Result<Figures, String> {
    let content = Content::new();
    let label = size_label(size);
    crate::progress(&format!("fleet: streaming the {label} object to the CSS"));
    fanout::put_object(admin, base, BLOB_TYPE, OBJECT_ID, json!({"destinationType": "nobody"})).await?;
    let upload = transfer::upload_data(admin, base, OBJECT_ID, size, &content, css_pid).await?;

    let singles = single_streams(admin, base, css_pid, size, &content).await?;
    let single_rate = singles[singles.len() / 2].mb_per_second();
    crate::progress("fleet: cp + sync of a file of the object's size, for the disk's rate");
    let disk = transfer::cp_baseline(dir, size, &content, 1)?;
    let ideal = ideal_seconds(fleet.members.len(), size, single_rate);
    // Generous: a run far above the target still finishes and reports its figures.
    let deadline = Duration::from_secs_f64(20.0 * ideal + 120.0);

    crate::progress(&format!(
        "fleet: the object to {} ESS processes (ideal {ideal:.1} s, giving up after {:.0} s)",
        fleet.members.len(),
        deadline.as_secs_f64()
    ));
    let before = spi_data_answers(admin, base).await;
    let ess_samplers: Vec<RssSampler> = fleet.members.iter().map(|m| RssSampler::start(m.pid())).collect();
    let css_sampler = RssSampler::start(css_pid);
    let ess_cpu_ticks = || -> Option<u64> { fleet.members.iter().map(|m| server::cpu_ticks(m.pid())).sum() };
    let cpu_before = (server::cpu_ticks(css_pid), ess_cpu_ticks());
    fanout::put_object(
        admin,
        base,
        BLOB_TYPE,
        OBJECT_ID,
        json!({"destinationType": FLEET_TYPE, "metaOnly": true}),
    )
    .await?;
    let start = Instant::now();
    let listed = fanout::wait_listed(admin, fleet, BLOB_TYPE, OBJECT_ID, start, WATCH_PERIOD, deadline).await;
    let total = match listed.iter().copied().collect::<Option<Vec<Duration>>>() {
        Some(times) => times.into_iter().max().unwrap_or_default(),
        None => start.elapsed(),
    };
    let (_, css_fleet_peak_kb) = css_sampler.finish();
    let css_cpu = cpu_seconds(cpu_before.0, server::cpu_ticks(css_pid));
    let ess_cpu = cpu_seconds(cpu_before.1, ess_cpu_ticks());
    let after = spi_data_answers(admin, base).await;

    let mismatches = read_back(admin, fleet, &listed, size, &content).await;
    let ess_peak_kb = ess_samplers.into_iter().map(|s| s.finish().1).collect();
    let (delivered, _) = fanout::delivered_count(admin, base, BLOB_TYPE, OBJECT_ID).await?;
    Ok(Figures {
        upload,
        singles,
        disk,
        total,
        listed,
        mismatches,
        css_fleet_peak_kb,
        css_cpu,
        ess_cpu,
        ess_peak_kb,
        served: after.0.saturating_sub(before.0),
        busy: after.1.saturating_sub(before.1),
        delivered,
    })
}

/// The application's downloads of the object alone, checked and sorted by time.
async fn single_streams(
    admin: &reqwest::Client,
    base: &str,
    css_pid: u32,
    size: u64,
    content: &Content,
) -> Result<Vec<TransferStats>, String> {
    crate::progress(&format!(
        "fleet: {SINGLE_RUNS} single-stream downloads by an application"
    ));
    let mut singles = Vec::with_capacity(SINGLE_RUNS);
    for _ in 0..SINGLE_RUNS {
        singles.push(transfer::download(admin, base, OBJECT_ID, size, content, css_pid).await?);
    }
    singles.sort_by_key(|s| s.elapsed);
    Ok(singles)
}

/// Reads every ESS's copy back through that ESS's API, one after the other: per ESS, why
/// it is not the published data (missing, another byte count or checksum), `None` when it is.
async fn read_back(
    admin: &reqwest::Client,
    fleet: &EssFleet,
    listed: &[Option<Duration>],
    size: u64,
    content: &Content,
) -> Vec<Option<String>> {
    crate::progress("fleet: reading every ESS's copy back");
    let mut mismatches = Vec::with_capacity(fleet.members.len());
    for (member, listed) in fleet.members.iter().zip(listed) {
        let mismatch = match listed {
            None => Some("does not list the object".to_string()),
            Some(_) => {
                let url = format!("{}/api/v1/objects/{BLOB_TYPE}/{OBJECT_ID}/data", member.base());
                transfer::download_url(admin, &url, size, content, member.pid())
                    .await
                    .err()
            }
        };
        mismatches.push(mismatch);
    }
    mismatches
}

impl Figures {
    fn single(&self) -> &TransferStats {
        &self.singles[self.singles.len() / 2]
    }

    fn outcome(&self, nodes: usize, size: u64) -> Outcome {
        let label = size_label(size);
        let single_rate = self.single().mb_per_second();
        let ideal = ideal_seconds(nodes, size, single_rate);
        let total = self.total.as_secs_f64();
        let ratio = total / ideal;
        let aggregate = nodes as f64 * size as f64 / 1e6 / total;
        let mut ess_peaks = self.ess_peak_kb.clone();
        ess_peaks.sort_unstable();
        let ess_max = ess_peaks.last().copied().unwrap_or(0);
        let ess_median = ess_peaks
            .get(ess_peaks.len().saturating_sub(1) / 2)
            .copied()
            .unwrap_or(0);
        let single_peak = self.singles.iter().map(|s| s.peak_rss_kb).max().unwrap_or(0);
        let css_peak = self.upload.peak_rss_kb.max(single_peak).max(self.css_fleet_peak_kb);
        let mut done: Vec<Duration> = self.listed.iter().flatten().copied().collect();
        done.sort_unstable();
        let complete = done.len();
        let verified = self.mismatches.iter().filter(|m| m.is_none()).count();
        let failed = verified != nodes;
        let css_met = mb(css_peak) < CSS_RSS_TARGET_MB;
        let ess_met = mb(ess_max) < ESS_RSS_TARGET_MB;
        let time_met = !failed && ratio <= RATIO_TARGET;

        let cpus = std::thread::available_parallelism().map(|n| n.get()).unwrap_or(1);
        let disk_bound = ideal_seconds(nodes, size, self.disk.cp_sync_mb_per_second());
        let mut table =
            format!("fleet: real-ess  ({nodes} ESS processes over HTTP, one {label} object, {cpus} CPUs)\n\n");
        table.push_str("phase                       seconds      MB/s  CSS peak MB\n");
        let mut row = |name: &str, seconds: f64, rate: f64, peak_kb: Option<u64>| {
            let peak = peak_kb.map_or("-".to_string(), |kb| format!("{:.1}", mb(kb)));
            let _ = writeln!(table, "{name:<24} {seconds:>10.2} {rate:>9.0} {peak:>12}");
        };
        row(
            "upload (streamed)",
            self.upload.elapsed.as_secs_f64(),
            self.upload.mb_per_second(),
            Some(self.upload.peak_rss_kb),
        );
        row(
            "single-stream download",
            self.single().elapsed.as_secs_f64(),
            single_rate,
            Some(single_peak),
        );
        row(
            "disk: cp + sync",
            self.disk.cp_sync.as_secs_f64(),
            self.disk.cp_sync_mb_per_second(),
            None,
        );
        row(
            &format!("{nodes} ESS, every copy"),
            total,
            aggregate,
            Some(self.css_fleet_peak_kb),
        );
        let _ = writeln!(
            table,
            "\nideal ({nodes} x {label} at the single-stream rate, median of {SINGLE_RUNS}): {ideal:.1} s; \
             total / ideal = {ratio:.2}\n\
             the copies at the disk's cp + sync rate: {disk_bound:.1} s; total / that = {:.2}\n\
             CPU while copying: CSS {:.1} s, all ESS {:.1} s, of {:.1} s of {cpus} CPUs\n\
             ESS complete (first / median / last): {:.1} / {:.1} / {:.1} s; {complete} of {nodes} complete\n\
             ESS peak RSS: max {:.1} MB, median {:.1} MB\n\
             CSS answers to the ESS's ranged data requests: {} served, {} refused as busy (429)\n\
             read back from every ESS: {verified} of {nodes} serve the published bytes \
             (count and checksum); the CSS lists {} as delivered",
            total / disk_bound,
            self.css_cpu,
            self.ess_cpu,
            total * cpus as f64,
            quantile_s(&done, 0.0),
            quantile_s(&done, 0.5),
            quantile_s(&done, 1.0),
            mb(ess_max),
            mb(ess_median),
            self.served,
            self.busy,
            self.delivered,
        );
        for (k, mismatch) in self.mismatches.iter().enumerate() {
            if let Some(reason) = mismatch {
                let _ = writeln!(table, "  ESS n{k}: {reason}");
            }
        }
        let _ = writeln!(
            table,
            "targets: CSS peak RSS < {CSS_RSS_TARGET_MB} MB {}, each ESS < {ESS_RSS_TARGET_MB} MB {}, \
             total <= {RATIO_TARGET} x ideal {}{}",
            verdict(css_met),
            verdict(ess_met),
            verdict(time_met),
            if failed {
                "\nfailed: not every ESS serves the published object"
            } else {
                ""
            },
        );
        let json = json!({
            "mode": "real-ess",
            "nodes": nodes,
            "object_bytes": size,
            "upload_s": self.upload.elapsed.as_secs_f64(),
            "upload_mb_per_s": self.upload.mb_per_second(),
            "single_stream_s": self.single().elapsed.as_secs_f64(),
            "single_stream_mb_per_s": single_rate,
            "total_s": total,
            "ideal_s": ideal,
            "ratio_to_ideal": ratio,
            "disk_cp_sync_mb_per_s": self.disk.cp_sync_mb_per_second(),
            "disk_bound_s": disk_bound,
            "css_cpu_s": self.css_cpu,
            "ess_cpu_s": self.ess_cpu,
            "aggregate_mb_per_s": aggregate,
            "ess_complete_s": done.iter().map(Duration::as_secs_f64).collect::<Vec<_>>(),
            "css_peak_rss_mb": mb(css_peak),
            "css_fleet_peak_rss_mb": mb(self.css_fleet_peak_kb),
            "ess_peak_rss_max_mb": mb(ess_max),
            "ess_peak_rss_median_mb": mb(ess_median),
            "ranged_served": self.served,
            "ranged_busy": self.busy,
            "verified": verified,
            "delivered": self.delivered,
            "failed": failed,
        });
        Outcome { table, json, failed }
    }
}

/// Seconds `nodes` copies of `size` bytes take one after the other at `rate` MB/s.
fn ideal_seconds(nodes: usize, size: u64, rate: f64) -> f64 {
    nodes as f64 * size as f64 / 1e6 / rate
}

fn size_label(size: u64) -> String {
    if size >= 1 << 30 && size % (1 << 30) == 0 {
        format!("{} GiB", size >> 30)
    } else {
        format!("{} MiB", size >> 20)
    }
}

/// Quantile `q` of sorted durations in seconds (nearest rank; 0 = the first).
fn quantile_s(sorted: &[Duration], q: f64) -> f64 {
    if q == 0.0 {
        return sorted.first().map_or(f64::NAN, Duration::as_secs_f64);
    }
    fanout::quantile_ms(sorted, q) / 1e3
}

/// Fails early when the disk of `dir` has less than `needed` bytes free: the run writes
/// every ESS's copy and the CSS's.
fn ensure_disk(dir: &Path, needed: u64) -> Result<(), String> {
    let stats =
        rustix::fs::statvfs(dir).map_err(|e| format!("cannot read the free space of {}: {e}", dir.display()))?;
    let free = stats.f_bavail.saturating_mul(stats.f_frsize);
    if free < needed {
        return Err(format!(
            "the run writes about {:.1} GB under {}, but only {:.1} GB are free; use --quick or fewer --fleet-nodes",
            needed as f64 / 1e9,
            dir.display(),
            free as f64 / 1e9
        ));
    }
    Ok(())
}

/// The CSS's count of answers to `spiGetData` with 206 and with 429 so far (its `/metrics`);
/// zeros when they cannot be read.
async fn spi_data_answers(admin: &reqwest::Client, base: &str) -> (u64, u64) {
    let Ok(response) = admin.get(format!("{base}/metrics")).send().await else {
        return (0, 0);
    };
    let text = response.text().await.unwrap_or_default();
    let count = |status: &str| -> u64 {
        let series = format!("edge_sync_http_requests_total{{route=\"spiGetData\",status=\"{status}\"}}");
        super::metric(&text, &series).map_or(0, |n| n as u64)
    };
    (count("206"), count("429"))
}
