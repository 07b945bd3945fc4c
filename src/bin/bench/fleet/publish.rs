//! Mode `publish`: a CSS that knows a large fleet and many objects addressed to all of it.
//! How long publishing one more version takes (every node gets a notification, in one
//! commit), how long a node that registers as new waits for the list of everything addressed
//! to it, and what one (object, node) pair costs in the store.

use super::sim::{self, FLEET_TYPE};
use super::{verdict, Outcome};
use crate::fanout::{self, SimNode};
use crate::server::{Server, TempDir};
use serde_json::json;
use std::fmt::Write as _;
use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::sync::Semaphore;

/// Requests in flight while the fleet and the objects are set up.
const SETUP_CONCURRENCY: usize = 32;
/// New versions published one after another; the median is reported.
const PUBLISH_RUNS: usize = 5;

/// Mode `publish` with `nodes` registered nodes and `objects` objects addressed to all.
pub async fn run(binary: &Path, nodes: usize, objects: usize) -> Result<Outcome, String> {
    with_one_css(binary, nodes, async |dir, base, admin| {
        measure(dir, base, admin, nodes, objects).await
    })
    .await
}

/// Starts one CSS with room for `nodes` connections, runs `measure` on it (its folder, its
/// base URL, an admin client) and stops it; an error carries the end of its log.
pub(super) async fn with_one_css(
    binary: &Path,
    nodes: usize,
    measure: impl AsyncFnOnce(&Path, &Arc<str>, &reqwest::Client) -> Result<Outcome, String>,
) -> Result<Outcome, String> {
    sim::make_room(nodes)?;
    let dir = TempDir::create()?;
    let mut css = Server::start(binary, dir.path())?;
    let admin = crate::http_client()?;
    let base: Arc<str> = Arc::from(format!("http://127.0.0.1:{}", css.port));
    css.wait_healthy(&admin, &base, Duration::from_secs(30)).await?;
    let outcome = measure(dir.path(), &base, &admin).await;
    css.stop();
    outcome.map_err(|e| format!("{e}{}", css.log_tail()))
}

async fn measure(
    dir: &Path,
    base: &Arc<str>,
    admin: &reqwest::Client,
    nodes: usize,
    objects: usize,
) -> Result<Outcome, String> {
    let client = fanout::node_client(SETUP_CONCURRENCY)?;
    crate::progress(&format!("fleet: registering {nodes} nodes"));
    let registration = Instant::now();
    each(nodes, |i| {
        let node = SimNode::new(client.clone(), base.clone(), "edge", &format!("n{i}"));
        async move { node.register_new().await }
    })
    .await?;
    let registration = registration.elapsed();

    let store_before = store_bytes(dir);
    crate::progress(&format!("fleet: {objects} objects addressed to all {nodes} nodes"));
    let creation = Instant::now();
    each(objects, |i| {
        let (admin, base) = (admin.clone(), base.clone());
        async move { fanout::put_object(&admin, &base, FLEET_TYPE, &format!("o{i}"), json!({"noData": true})).await }
    })
    .await?;
    let creation = creation.elapsed();
    let pairs = (nodes * objects) as f64;
    let per_pair = store_bytes(dir).saturating_sub(store_before) as f64 / pairs;

    crate::progress("fleet: publishing new versions one at a time");
    let mut publish = Vec::with_capacity(PUBLISH_RUNS);
    for run in 0..PUBLISH_RUNS {
        let id = format!("o{}", run * objects / PUBLISH_RUNS);
        let started = Instant::now();
        fanout::put_object(
            admin,
            base,
            FLEET_TYPE,
            &id,
            json!({"noData": true, "version": format!("2.{run}")}),
        )
        .await?;
        publish.push(started.elapsed());
    }
    publish.sort_unstable();
    let publish_median = publish[publish.len() / 2];

    crate::progress("fleet: a node registering as new");
    let newcomer = SimNode::new(client.clone(), base.clone(), "edge", "newcomer");
    let started = Instant::now();
    newcomer.register_new().await?;
    let listed = newcomer.poll(None).await?;
    let served = started.elapsed();
    let listed = listed.iter().filter(|item| item.meta.object_type == FLEET_TYPE).count();
    let failed = listed != objects;

    let mut table = format!(
        "fleet: publish  ({nodes} registered nodes, {objects} metadata-only objects addressed to all, {} CPUs)\n",
        std::thread::available_parallelism().map(|n| n.get()).unwrap_or(1)
    );
    let _ = writeln!(
        table,
        "registration of all nodes: {:.2} s\n\
         creation of the objects ({:.0} (object, node) pairs): {:.1} s = {:.0} pairs/s\n\
         store size per (object, node) pair: {per_pair:.0} bytes\n\
         publishing a new version (every node notified): median {:.0} ms, max {:.0} ms of {PUBLISH_RUNS}\n\
         a node registering as new: its list of {listed} objects served {:.0} ms after it asked to register\n\
         targets: publishing < 1 s {}, the new node's list < 1 s {}",
        registration.as_secs_f64(),
        pairs,
        creation.as_secs_f64(),
        pairs / creation.as_secs_f64(),
        publish_median.as_secs_f64() * 1e3,
        publish.last().map_or(0.0, |d| d.as_secs_f64() * 1e3),
        served.as_secs_f64() * 1e3,
        verdict(publish_median < Duration::from_secs(1)),
        verdict(served < Duration::from_secs(1)),
    );
    let json = json!({
        "mode": "publish",
        "nodes": nodes,
        "objects": objects,
        "registration_s": registration.as_secs_f64(),
        "creation_s": creation.as_secs_f64(),
        "store_bytes_per_pair": per_pair,
        "publish_ms": publish.iter().map(|d| d.as_secs_f64() * 1e3).collect::<Vec<_>>(),
        "new_node_list_ms": served.as_secs_f64() * 1e3,
        "new_node_listed": listed,
    });
    Ok(Outcome { table, json, failed })
}

/// Runs `task(i)` for every `i` below `count`, [`SETUP_CONCURRENCY`] at a time; the first
/// error ends it.
pub(super) async fn each<F, Fut>(count: usize, task: F) -> Result<(), String>
where
    F: Fn(usize) -> Fut,
    Fut: std::future::Future<Output = Result<(), String>> + Send + 'static,
{
    let gate = Arc::new(Semaphore::new(SETUP_CONCURRENCY));
    let mut running = tokio::task::JoinSet::new();
    for i in 0..count {
        let permit = gate.clone().acquire_owned().await.map_err(|e| e.to_string())?;
        let work = task(i);
        running.spawn(async move {
            let _permit = permit;
            work.await
        });
        while let Some(done) = running.try_join_next() {
            done.map_err(|e| e.to_string())??;
        }
    }
    while let Some(done) = running.join_next().await {
        done.map_err(|e| e.to_string())??;
    }
    Ok(())
}

/// Bytes of the store's files (the SQLite database and its journal) under `dir`.
fn store_bytes(dir: &Path) -> u64 {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return 0;
    };
    entries
        .flatten()
        .map(|entry| {
            let path = entry.path();
            if path.is_dir() {
                store_bytes(&path)
            } else if path.to_string_lossy().contains(".sqlite3") {
                entry.metadata().map_or(0, |m| m.len())
            } else {
                0
            }
        })
        .sum()
}
