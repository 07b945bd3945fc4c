//! Mode `status-page`: the fleet status page of a CSS that knows a large fleet. How long the
//! server takes to answer each page (loopback, so the time is the server's): the objects
//! with their destinations counted per state, one object's destinations (first page, a far
//! page, a search), and the nodes (the same three).

use super::publish::{each, with_one_css};
use super::sim::FLEET_TYPE;
use super::{verdict, Outcome};
use crate::fanout::{self, SimNode, ORG};
use serde_json::json;
use std::fmt::Write as _;
use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

/// Requests per page; the median and the slowest are reported.
const SAMPLES: usize = 21;
/// Target for a page at 10,000 nodes.
const TARGET: Duration = Duration::from_millis(50);

/// Mode `status-page` with `nodes` registered nodes and `objects` objects addressed to all.
pub async fn run(binary: &Path, nodes: usize, objects: usize) -> Result<Outcome, String> {
    with_one_css(binary, nodes, async |_, base, admin| {
        measure(base, admin, nodes, objects).await
    })
    .await
}

async fn measure(base: &Arc<str>, admin: &reqwest::Client, nodes: usize, objects: usize) -> Result<Outcome, String> {
    let client = fanout::node_client(32)?;
    crate::progress(&format!("status-page: registering {nodes} nodes"));
    each(nodes, |i| {
        let node = SimNode::new(client.clone(), base.clone(), "edge", &format!("n{i}"));
        async move { node.register_new().await }
    })
    .await?;
    crate::progress(&format!(
        "status-page: {objects} objects addressed to all {nodes} nodes"
    ));
    each(objects, |i| {
        let (admin, base) = (admin.clone(), base.clone());
        async move { fanout::put_object(&admin, &base, FLEET_TYPE, &format!("o{i}"), json!({"noData": true})).await }
    })
    .await?;

    let far = (nodes as u64).div_ceil(50).max(1);
    let middle = format!("n{}", nodes / 2);
    let pages = [
        ("objects, counts per state", format!("/ui?org={ORG}")),
        (
            "one object, first page",
            format!("/ui/object?org={ORG}&type={FLEET_TYPE}&id=o0"),
        ),
        (
            "one object, last page",
            format!("/ui/object?org={ORG}&type={FLEET_TYPE}&id=o0&page={far}"),
        ),
        (
            "one object, searched",
            format!("/ui/object?org={ORG}&type={FLEET_TYPE}&id=o0&q={middle}"),
        ),
        ("nodes, first page", format!("/ui/nodes?org={ORG}")),
        ("nodes, last page", format!("/ui/nodes?org={ORG}&page={far}")),
        ("nodes, searched", format!("/ui/nodes?org={ORG}&q={middle}")),
    ];
    let mut table = format!(
        "fleet: status-page  ({nodes} registered nodes, {objects} objects addressed to all, {} CPUs; {SAMPLES} requests each)\n",
        std::thread::available_parallelism().map(|n| n.get()).unwrap_or(1)
    );
    let _ = writeln!(
        table,
        "{:<28} {:>10} {:>10} {:>9}",
        "page", "median ms", "max ms", "bytes"
    );
    let mut figures = Vec::new();
    let mut slowest_median = Duration::ZERO;
    for (label, path) in pages {
        let url = format!("{base}{path}");
        let mut times = Vec::with_capacity(SAMPLES);
        let mut bytes = 0;
        for _ in 0..SAMPLES {
            let started = Instant::now();
            let response = admin.get(&url).send().await.map_err(|e| format!("GET {path}: {e}"))?;
            let status = response.status();
            let body = response.bytes().await.map_err(|e| format!("GET {path}: {e}"))?;
            times.push(started.elapsed());
            if !status.is_success() {
                return Err(format!("GET {path}: {status}"));
            }
            bytes = body.len();
        }
        times.sort_unstable();
        let median = times[SAMPLES / 2];
        slowest_median = slowest_median.max(median);
        let ms = |d: Duration| d.as_secs_f64() * 1e3;
        let _ = writeln!(
            table,
            "{label:<28} {:>10.2} {:>10.2} {bytes:>9}",
            ms(median),
            ms(times[SAMPLES - 1])
        );
        figures.push(json!({"page": label, "path": path, "median_ms": ms(median), "max_ms": ms(times[SAMPLES - 1]), "bytes": bytes}));
    }
    let _ = writeln!(
        table,
        "target: every page's median < {} ms {}",
        TARGET.as_millis(),
        verdict(slowest_median < TARGET)
    );
    let json = json!({"mode": "status-page", "nodes": nodes, "objects": objects, "pages": figures});
    Ok(Outcome {
        table,
        json,
        failed: false,
    })
}
