//! Mode `database-data`: object data kept in PostgreSQL against data kept in files.
//!
//! 1. One CSS on the embedded store (data in files): a 1 GiB object (`--quick`: 256 MiB)
//!    uploaded and downloaded, several runs, the medians and each direction's peak RSS.
//! 2. Two CSS instances on one throw-away PostgreSQL (durable settings), each with its own
//!    persistence folder, data in the database: the same object uploaded through the first
//!    and downloaded through the second, every byte checked.
//! 3. A 16 MiB object to simulated nodes (500, `--quick`: 50) long-polling both instances in
//!    turn, every byte compared: time, each instance's peak RSS.

use super::sim::{self};
use super::waiting::{Stage, DELIVERY_HEADER};
use super::{mb, verdict, Outcome};
use crate::postgres::Postgres;
use crate::server::{Server, TempDir};
use crate::transfer::{self, Content, TransferStats};
use serde_json::json;
use std::fmt::Write as _;
use std::path::Path;
use std::time::Duration;

/// Object of the fan-out.
const FAN_OUT_BYTES: u64 = 16 << 20;
/// A fan-out that makes no progress for this long has failed.
const FAN_OUT_STALL: Duration = Duration::from_secs(600);
/// The targets: the database's rates against the files', and each instance's RSS.
const DOWNLOAD_SHARE: f64 = 0.5;
const UPLOAD_SHARE: f64 = 1.0 / 3.0;
const PEAK_RSS_MB: f64 = 64.0;

/// Medians of the runs of one kind of store, and the peak RSS over them.
struct Transfers {
    upload: TransferStats,
    download: TransferStats,
}

impl Transfers {
    fn row(&self, label: &str) -> String {
        format!(
            "{label:<22} {:>10.0} {:>12.1} {:>12.0} {:>14.1}\n",
            self.upload.mb_per_second(),
            mb(self.upload.peak_rss_kb),
            self.download.mb_per_second(),
            mb(self.download.peak_rss_kb),
        )
    }

    fn json(&self) -> serde_json::Value {
        json!({
            "upload_mb_per_s": self.upload.mb_per_second(),
            "upload_peak_rss_mb": mb(self.upload.peak_rss_kb),
            "download_mb_per_s": self.download.mb_per_second(),
            "download_peak_rss_mb": mb(self.download.peak_rss_kb),
        })
    }
}

/// Mode `database-data`: `size` bytes moved `runs` times each way, then the fan-out to
/// `nodes` simulated nodes.
pub async fn run(binary: &Path, size: u64, runs: usize, nodes: usize) -> Result<Outcome, String> {
    sim::make_room(nodes)?;
    let content = Content::new();
    let client = crate::http_client()?;
    let label = if size >= 1 << 30 {
        format!("{} GiB", size >> 30)
    } else {
        format!("{} MiB", size >> 20)
    };

    crate::progress(&format!("database-data: {label} in files (embedded store)"));
    let files_dir = TempDir::create()?;
    let mut files_css = Server::start(binary, files_dir.path())?;
    let files_base = format!("http://127.0.0.1:{}", files_css.port);
    files_css
        .wait_healthy(&client, &files_base, Duration::from_secs(60))
        .await?;
    let pid = files_css.pid();
    let files = moved(runs, |id| {
        let (client, base, content) = (&client, &files_base, &content);
        async move {
            let up = transfer::upload(client, base, &id, size, content, pid).await?;
            let down = transfer::download(client, base, &id, size, content, pid).await?;
            Ok((up, down))
        }
    })
    .await
    .map_err(|e| format!("{e}{}", files_css.log_tail()))?;
    files_css.stop();
    drop(files_dir);

    crate::progress("database-data: starting a PostgreSQL server");
    let database_dir = TempDir::create()?;
    let database = Postgres::start(database_dir.path())?;
    let env = [
        ("STORAGE_PROVIDER".to_string(), "postgres".to_string()),
        ("POSTGRES_URL".to_string(), database.url()),
    ];
    let css_dir = TempDir::create()?;
    let mut css = Vec::with_capacity(2);
    for i in 0..2 {
        // Each instance its own persistence folder: they share nothing but the database.
        css.push(Server::start_with(
            binary,
            &css_dir.path().join(format!("css{i}")),
            &env,
        )?);
    }
    let bases: Vec<String> = css.iter().map(|s| format!("http://127.0.0.1:{}", s.port)).collect();
    for (server, base) in css.iter_mut().zip(&bases) {
        server.wait_healthy(&client, base, Duration::from_secs(60)).await?;
    }
    crate::progress(&format!(
        "database-data: {label} in the database, up through one instance, down through the other"
    ));
    let (up_pid, down_pid) = (css[0].pid(), css[1].pid());
    let in_database = moved(runs, |id| {
        let (client, bases, content) = (&client, &bases, &content);
        async move {
            let up = transfer::upload(client, &bases[0], &id, size, content, up_pid).await?;
            let down = transfer::download(client, &bases[1], &id, size, content, down_pid).await?;
            Ok((up, down))
        }
    })
    .await
    .map_err(|e| format!("{e}{}", css.iter().map(Server::log_tail).collect::<String>()))?;

    crate::progress(&format!(
        "database-data: a 16 MiB object to {nodes} nodes polling both instances"
    ));
    let mut stage = Stage::with(css_dir, css, nodes).await?;
    let fan_out = stage
        .deliver("fan-out", sim::content(FAN_OUT_BYTES), FAN_OUT_STALL)
        .await?;
    let failed = fan_out.delivered != nodes;

    let download_share = in_database.download.mb_per_second() / files.download.mb_per_second();
    let upload_share = in_database.upload.mb_per_second() / files.upload.mb_per_second();
    let peak = [in_database.upload.peak_rss_kb, in_database.download.peak_rss_kb]
        .into_iter()
        .chain(fan_out.peak_kb.iter().copied())
        .max()
        .unwrap_or(0);
    let mut table = format!(
        "fleet: database-data  ({label} object, median of {runs} runs; {} CPUs)\n\n\
         store                  up MB/s  up peak MB  down MB/s  down peak MB\n",
        std::thread::available_parallelism().map(|n| n.get()).unwrap_or(1),
    );
    table.push_str(&files.row("files (one CSS)"));
    table.push_str(&in_database.row("database (2 instances)"));
    let _ = writeln!(
        table,
        "\ndatabase / files: download {download_share:.2}x, upload {upload_share:.2}x\n\n\
         fan-out of 16 MiB to {nodes} nodes polling both instances:"
    );
    table.push_str(DELIVERY_HEADER);
    table.push_str(&fan_out.row("16 MiB"));
    let _ = writeln!(
        table,
        "\ntargets: download >= {DOWNLOAD_SHARE}x files {}, upload >= 1/3 files {}, \
         each instance's peak RSS < {PEAK_RSS_MB} MB {}",
        verdict(download_share >= DOWNLOAD_SHARE),
        verdict(upload_share >= UPLOAD_SHARE),
        verdict(mb(peak) < PEAK_RSS_MB),
    );
    let json = json!({
        "mode": "database-data",
        "object_bytes": size,
        "runs": runs,
        "files": files.json(),
        "database": in_database.json(),
        "download_share": download_share,
        "upload_share": upload_share,
        "fan_out": fan_out.json(),
        "nodes": nodes,
    });
    drop(stage);
    drop(database);
    Ok(Outcome { table, json, failed })
}

/// Runs `transfer` `runs` times, each on a new object; the median times and the peak RSS.
async fn moved<F, Fut>(runs: usize, mut transfer: F) -> Result<Transfers, String>
where
    F: FnMut(String) -> Fut,
    Fut: std::future::Future<Output = Result<(TransferStats, TransferStats), String>>,
{
    let (mut ups, mut downs) = (Vec::with_capacity(runs), Vec::with_capacity(runs));
    for run in 0..runs {
        let (up, down) = transfer(format!("object-{run}")).await?;
        ups.push(up);
        downs.push(down);
    }
    Ok(Transfers {
        upload: median_of(ups),
        download: median_of(downs),
    })
}

/// The median time of the runs, with the highest peak RSS of any.
fn median_of(runs: Vec<TransferStats>) -> TransferStats {
    let peak_rss_kb = runs.iter().map(|r| r.peak_rss_kb).max().unwrap_or(0);
    let times: Vec<Duration> = runs.iter().map(|r| r.elapsed).collect();
    TransferStats {
        bytes: runs.first().map_or(0, |r| r.bytes),
        elapsed: transfer::median(times),
        start_rss_kb: runs.first().map_or(0, |r| r.start_rss_kb),
        peak_rss_kb,
    }
}
