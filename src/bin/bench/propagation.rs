//! Propagation latency: how long an object published on the CSS takes to reach an edge node,
//! one object at a time — to a simulated node that long-polls, to simulated nodes that poll
//! at the original ESS's schedule, and to a real ESS process.

use crate::fanout::{self, EssFleet, SimNode};
use crate::server::{Server, TempDir};
use std::collections::HashSet;
use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::sync::mpsc;

const PROP_TYPE: &str = "prop";
/// Long-poll wait of the long-polling node, seconds.
pub const LONG_WAIT: u64 = 10;
/// Interval of the plain-polling nodes: the original's HTTPPollingInterval 10 s gives a tick
/// 1 s after a tick that brought something.
pub const PLAIN_INTERVAL: Duration = Duration::from_secs(1);
/// Longest wait for one object to arrive.
const ARRIVAL_TIMEOUT: Duration = Duration::from_secs(20);

/// Latencies of one propagation phase.
pub struct Latencies {
    pub label: String,
    pub nodes: usize,
    /// Sorted.
    pub samples: Vec<Duration>,
}

impl Latencies {
    pub fn new(label: String, nodes: usize, mut samples: Vec<Duration>) -> Self {
        samples.sort_unstable();
        Latencies { label, nodes, samples }
    }

    pub fn median_ms(&self) -> f64 {
        fanout::quantile_ms(&self.samples, 0.5)
    }

    pub fn p99_ms(&self) -> f64 {
        fanout::quantile_ms(&self.samples, 0.99)
    }

    pub fn max_ms(&self) -> f64 {
        self.samples.last().map_or(f64::NAN, |d| d.as_secs_f64() * 1e3)
    }
}

/// How a simulated node polls.
#[derive(Clone, Copy)]
enum Polling {
    /// `GET /spi/v1/objects/?wait=N`, again at once.
    Long(u64),
    /// `GET /spi/v1/objects/` repeated while it brings something, then a pause.
    Plain(Duration),
}

/// Small deterministic generator for the pauses between objects.
struct XorShift(u64);

impl XorShift {
    fn below_ms(&mut self, limit_ms: u64) -> Duration {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        Duration::from_millis(self.0 % limit_ms.max(1))
    }
}

/// A node's loop: polls; for every new `update` item notes the arrival time, sends
/// `received` and then reports `(objectID, arrival)`.
async fn poll_loop(
    node: SimNode,
    polling: Polling,
    arrivals: mpsc::UnboundedSender<(String, Instant)>,
) -> Result<(), String> {
    let mut seen = HashSet::new();
    loop {
        let wait = match polling {
            Polling::Long(seconds) => Some(seconds),
            Polling::Plain(_) => None,
        };
        let items = node.poll(wait).await?;
        let arrived = Instant::now();
        let brought = !items.is_empty();
        for item in items {
            if item.kind != "update" || !seen.insert((item.meta.object_id.clone(), item.meta.instance_id)) {
                continue;
            }
            node.action(&item.meta, "received").await?;
            if arrivals.send((item.meta.object_id.clone(), arrived)).is_err() {
                return Ok(());
            }
        }
        if let Polling::Plain(pause) = polling {
            // The original polls again at once while a poll brings something.
            if !brought {
                tokio::time::sleep(pause).await;
            }
        }
    }
}

/// Publishes `count` noData objects addressed to `edge/{node_id}`, one at a time, each after
/// a pause below `max_pause_ms`, and times each from the PUT's 204 to its arrival.
async fn drive(
    admin: reqwest::Client,
    base: Arc<str>,
    node_id: String,
    count: usize,
    max_pause_ms: u64,
    seed: u64,
    mut arrivals: mpsc::UnboundedReceiver<(String, Instant)>,
) -> Result<Vec<Duration>, String> {
    let mut pauses = XorShift(seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1);
    let mut samples = Vec::with_capacity(count);
    for k in 0..count {
        tokio::time::sleep(pauses.below_ms(max_pause_ms)).await;
        let id = format!("{node_id}-{k}");
        let meta = serde_json::json!({"destinationType": "edge", "destinationID": node_id, "noData": true});
        fanout::put_object(&admin, &base, PROP_TYPE, &id, meta).await?;
        let published = Instant::now();
        loop {
            match tokio::time::timeout(ARRIVAL_TIMEOUT, arrivals.recv()).await {
                Ok(Some((arrived_id, at))) if arrived_id == id => {
                    samples.push(at.saturating_duration_since(published));
                    break;
                }
                Ok(Some(_)) => continue,
                Ok(None) => return Err(format!("node {node_id} stopped")),
                Err(_) => return Err(format!("{id} did not reach {node_id} within {ARRIVAL_TIMEOUT:?}")),
            }
        }
    }
    Ok(samples)
}

/// One propagation phase: nodes `{prefix}{i}` for `i < nodes`, each sent `count` objects,
/// each after a pause below `max_pause_ms`.
struct Phase {
    prefix: &'static str,
    nodes: usize,
    count: usize,
    polling: Polling,
    max_pause_ms: u64,
}

/// Runs a phase; all latencies.
async fn phase(
    admin: &reqwest::Client,
    base: &Arc<str>,
    client: &reqwest::Client,
    plan: Phase,
) -> Result<Vec<Duration>, String> {
    let Phase {
        prefix,
        nodes,
        count,
        polling,
        max_pause_ms,
    } = plan;
    let mut pollers = tokio::task::JoinSet::new();
    let mut receivers = Vec::with_capacity(nodes);
    for i in 0..nodes {
        let node_id = format!("{prefix}{i}");
        let node = SimNode::new(client.clone(), base.clone(), "edge", &node_id);
        node.register_new().await?;
        let (tx, rx) = mpsc::unbounded_channel();
        pollers.spawn(poll_loop(node, polling, tx));
        receivers.push((node_id, rx));
    }
    // Let the first polls reach the CSS.
    tokio::time::sleep(Duration::from_millis(200)).await;
    let mut drivers = tokio::task::JoinSet::new();
    for (i, (node_id, rx)) in receivers.into_iter().enumerate() {
        drivers.spawn(drive(
            admin.clone(),
            base.clone(),
            node_id,
            count,
            max_pause_ms,
            i as u64 + 1,
            rx,
        ));
    }
    let mut samples = Vec::with_capacity(nodes * count);
    let mut failure = None;
    loop {
        tokio::select! {
            driven = drivers.join_next() => match driven {
                None => break,
                Some(Ok(Ok(mut s))) => samples.append(&mut s),
                Some(Ok(Err(e))) => { failure = Some(e); break; }
                Some(Err(e)) => { failure = Some(format!("driver task failed: {e}")); break; }
            },
            Some(polled) = pollers.join_next() => {
                failure = Some(match polled {
                    Ok(Err(e)) => e,
                    Ok(Ok(())) => "a node stopped polling".to_string(),
                    Err(e) => format!("node task failed: {e}"),
                });
                break;
            }
        }
    }
    drivers.abort_all();
    pollers.abort_all();
    match failure {
        Some(e) => Err(e),
        None => Ok(samples),
    }
}

/// Propagation to simulated nodes on a fresh CSS: `long_objects` objects to one
/// long-polling node, then `plain_objects` to each of `plain_nodes` nodes polling every
/// second. A plain-polling sample costs about one polling interval (the objects go one at a
/// time, after a random pause of up to one interval so that they fall anywhere in the
/// node's cycle), so the plain samples are spread over several independent nodes.
pub async fn simulated(
    binary: &Path,
    long_objects: usize,
    plain_nodes: usize,
    plain_objects: usize,
) -> Result<Vec<Latencies>, String> {
    let dir = TempDir::create()?;
    let mut css = Server::start(binary, dir.path())?;
    let result = async {
        let admin = crate::http_client()?;
        let base: Arc<str> = Arc::from(format!("http://127.0.0.1:{}", css.port));
        css.wait_healthy(&admin, &base, Duration::from_secs(30)).await?;
        let client = fanout::node_client(plain_nodes + 8)?;
        crate::progress(&format!(
            "propagation: {long_objects} objects to a long-polling node (wait={LONG_WAIT})"
        ));
        let long = phase(
            &admin,
            &base,
            &client,
            Phase {
                prefix: "lp",
                nodes: 1,
                count: long_objects,
                polling: Polling::Long(LONG_WAIT),
                max_pause_ms: 20,
            },
        )
        .await?;
        crate::progress(&format!(
            "propagation: {plain_objects} objects to each of {plain_nodes} nodes polling every {} s without wait",
            PLAIN_INTERVAL.as_secs()
        ));
        let pause_ms = PLAIN_INTERVAL.as_millis() as u64;
        let plain = phase(
            &admin,
            &base,
            &client,
            Phase {
                prefix: "pp",
                nodes: plain_nodes,
                count: plain_objects,
                polling: Polling::Plain(PLAIN_INTERVAL),
                max_pause_ms: pause_ms,
            },
        )
        .await?;
        Ok(vec![
            Latencies::new(format!("long poll (wait={LONG_WAIT})"), 1, long),
            Latencies::new(
                format!("poll every {} s (no wait)", PLAIN_INTERVAL.as_secs()),
                plain_nodes,
                plain,
            ),
        ])
    }
    .await;
    css.stop();
    result.map_err(|e: String| format!("{e}{}", css.log_tail()))
}

/// Propagation to a real ESS process (the fleet's first member) on a running CSS: `count`
/// noData objects addressed to it, each timed from the PUT's 204 on the CSS until the ESS's
/// application API lists it (asked every 2 ms). Stops after `budget`.
pub async fn real(
    admin: &reqwest::Client,
    css_base: &str,
    fleet: &EssFleet,
    count: usize,
    budget: Duration,
) -> Result<Latencies, String> {
    let ess = fleet.members.first().ok_or("no ESS process")?;
    let ess_base = ess.base();
    let started = Instant::now();
    let mut pauses = XorShift(0x5EED);
    let mut samples = Vec::with_capacity(count);
    for k in 0..count {
        if started.elapsed() > budget {
            break;
        }
        tokio::time::sleep(pauses.below_ms(50)).await;
        let object_type = format!("{PROP_TYPE}{k}");
        let id = format!("r{k}");
        let meta = serde_json::json!({"destinationType": "edge", "destinationID": ess.id, "noData": true});
        fanout::put_object(admin, css_base, &object_type, &id, meta).await?;
        let published = Instant::now();
        loop {
            if fanout::ess_lists(admin, &ess_base, &object_type, &id).await {
                samples.push(published.elapsed());
                break;
            }
            if published.elapsed() > ARRIVAL_TIMEOUT {
                return Err(format!(
                    "{object_type}/{id} was not listed by ESS {} within {ARRIVAL_TIMEOUT:?}{}",
                    ess.id,
                    ess.log_tail()
                ));
            }
            tokio::time::sleep(Duration::from_millis(2)).await;
        }
    }
    Ok(Latencies::new(format!("real ESS {}", ess.id), 1, samples))
}
