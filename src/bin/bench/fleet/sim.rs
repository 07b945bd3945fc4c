//! A fleet of simulated edge nodes, tasks of this process speaking /spi/v1 as an ESS does:
//! each registers, long-polls, and for every object of the fleet's type sends `updated`,
//! downloads the data comparing every byte with what was published, and sends `received`
//! (a metadata-only object: `received` at once). Every completed object is reported as an
//! [`Arrival`].

use crate::fanout::{self, SimNode};
use crate::transfer::Content;
use bytes::Bytes;
use parking_lot::Mutex;
use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::sync::{mpsc, Semaphore};

/// Object type of the objects the fleet handles; others are ignored.
pub const FLEET_TYPE: &str = "fleet";
/// Registrations in flight at once (a burst of connects beyond the listen backlog would
/// cost SYN retransmissions of a second).
const REGISTER_CONCURRENCY: usize = 64;
/// Descriptors this process and the CSS need beyond one per simulated node.
const FD_MARGIN: u64 = 512;

/// Raises this process's open-file limit for `nodes` connections, before the CSS is started
/// (it inherits the limit).
pub fn make_room(nodes: usize) -> Result<(), String> {
    fanout::ensure_descriptors(nodes as u64 + FD_MARGIN, &format!("{nodes} simulated edge nodes"))
}

/// One object completed by one node.
pub struct Arrival {
    pub object_id: String,
    /// When the object's notification reached the node: the poll that brought it answered,
    /// or its `update` message came.
    pub polled: Instant,
    /// When the CSS answered `received` (over MQTT: its `ackreceived` came).
    pub done: Instant,
}

/// What the nodes are to receive, by object ID: the data, empty for a metadata-only object.
type Expected = Arc<Mutex<HashMap<String, Bytes>>>;

/// What a fleet's nodes are to receive and what they report back, for fleets of any
/// transport: the bench tells what an object holds before publishing it, each node reports
/// every object it completed (or the error that ended it) through its [`Reporter`].
pub struct Deliveries {
    nodes: usize,
    expected: Expected,
    arrivals: mpsc::UnboundedReceiver<Result<Arrival, String>>,
}

/// A node's side of [`Deliveries`].
#[derive(Clone)]
pub struct Reporter {
    expected: Expected,
    arrivals: mpsc::UnboundedSender<Result<Arrival, String>>,
}

impl Reporter {
    /// The content of object `id`, if the bench published it.
    pub fn expected(&self, id: &str) -> Option<Bytes> {
        self.expected.lock().get(id).cloned()
    }

    /// Reports an object completed, or the error that ended the node; false when nobody
    /// listens any more.
    pub fn report(&self, outcome: Result<Arrival, String>) -> bool {
        self.arrivals.send(outcome).is_ok()
    }
}

impl Deliveries {
    /// Deliveries to `nodes` nodes, and the reporter each of them gets a clone of.
    pub fn new(nodes: usize) -> (Deliveries, Reporter) {
        let expected: Expected = Arc::default();
        let (sender, arrivals) = mpsc::unbounded_channel();
        let reporter = Reporter {
            expected: expected.clone(),
            arrivals: sender,
        };
        let deliveries = Deliveries {
            nodes,
            expected,
            arrivals,
        };
        (deliveries, reporter)
    }

    /// Tells the nodes what object `id` holds, before it is published.
    pub fn expect(&self, id: &str, data: Bytes) {
        self.expected.lock().insert(id.to_string(), data);
    }

    /// Waits until every node completed object `id`; fails on a node's error or when no
    /// node completed it for `stall`. Returns the arrivals in completion order.
    pub async fn all_arrivals(&mut self, id: &str, stall: Duration) -> Result<Vec<Arrival>, String> {
        let mut arrivals = Vec::with_capacity(self.nodes);
        while arrivals.len() < self.nodes {
            match tokio::time::timeout(stall, self.arrivals.recv()).await {
                Ok(Some(Ok(arrival))) if arrival.object_id == id => arrivals.push(arrival),
                Ok(Some(Ok(_))) => {}
                Ok(Some(Err(e))) => return Err(e),
                Ok(None) => return Err("the simulated nodes stopped".into()),
                Err(_) => {
                    return Err(format!(
                        "{} of {} nodes completed {id}; none more for {stall:?}",
                        arrivals.len(),
                        self.nodes
                    ))
                }
            }
        }
        Ok(arrivals)
    }
}

/// The running fleet; dropping it stops every node.
pub struct SimFleet {
    pub deliveries: Deliveries,
    tasks: tokio::task::JoinSet<()>,
    /// Polls answered so far, all nodes together: what an idle window's costs are divided by.
    polls: Arc<AtomicU64>,
}

impl SimFleet {
    /// Registers `nodes` simulated nodes `edge/n{i}`, node `i` with the CSS at
    /// `bases[i % bases.len()]` (several instances sharing a database: round-robin, as a load
    /// balancer would), and lets each long-poll that instance with `wait` seconds. Returns
    /// when every node is registered, with the time that took.
    pub async fn start(bases: &[Arc<str>], nodes: usize, wait: u64) -> Result<(SimFleet, Duration), String> {
        make_room(nodes)?;
        let client = fanout::node_client(nodes.div_ceil(bases.len().max(1)) + 16)?;
        let (deliveries, reporter) = Deliveries::new(nodes);
        let polls = Arc::new(AtomicU64::new(0));
        let gate = Arc::new(Semaphore::new(REGISTER_CONCURRENCY));
        let (registered_tx, mut registered_rx) = mpsc::unbounded_channel::<Result<(), String>>();
        let started = Instant::now();
        let mut tasks = tokio::task::JoinSet::new();
        for i in 0..nodes {
            let base = bases[i % bases.len()].clone();
            let node = SimNode::new(client.clone(), base, "edge", &format!("n{i}"));
            let (gate, registered, reporter) = (gate.clone(), registered_tx.clone(), reporter.clone());
            let polls = polls.clone();
            tasks.spawn(async move {
                let outcome = {
                    let _permit = gate.acquire().await;
                    node.register_new().await
                };
                let failed = outcome.is_err();
                let _ = registered.send(outcome);
                if !failed {
                    let ended = serve(&node, wait, &reporter, &polls).await;
                    reporter.report(Err(ended));
                }
            });
        }
        for _ in 0..nodes {
            match tokio::time::timeout(Duration::from_secs(120), registered_rx.recv()).await {
                Ok(Some(Ok(()))) => {}
                Ok(Some(Err(e))) => return Err(format!("registration: {e}")),
                Ok(None) => return Err("the simulated nodes stopped".into()),
                Err(_) => return Err("registrations stalled for 120 s".into()),
            }
        }
        Ok((
            SimFleet {
                deliveries,
                tasks,
                polls,
            },
            started.elapsed(),
        ))
    }

    /// Polls answered so far, all nodes together.
    pub fn polls(&self) -> u64 {
        self.polls.load(Ordering::Relaxed)
    }

    /// Stops every node.
    pub fn stop(&mut self) {
        self.tasks.abort_all();
    }
}

/// A node's life after its registration: polls and handles what comes, until an error,
/// which it returns.
async fn serve(node: &SimNode, wait: u64, reporter: &Reporter, polls: &AtomicU64) -> String {
    loop {
        let items = match node.poll(Some(wait)).await {
            Ok(items) => items,
            Err(e) => return e,
        };
        polls.fetch_add(1, Ordering::Relaxed);
        let polled = Instant::now();
        for item in items {
            if item.kind != "update" || item.meta.object_type != FLEET_TYPE {
                continue;
            }
            let id = item.meta.object_id.clone();
            let Some(data) = reporter.expected(&id) else {
                return format!("object {id} arrived but was never published");
            };
            if let Err(e) = receive(node, &item.meta, &data).await {
                return e;
            }
            let arrival = Arrival {
                object_id: id,
                polled,
                done: Instant::now(),
            };
            if !reporter.report(Ok(arrival)) {
                return "stopped".into();
            }
        }
    }
}

/// Handles one update as an ESS does, comparing the data with `data`.
async fn receive(node: &SimNode, meta: &edge_sync_service::model::MetaData, data: &Bytes) -> Result<(), String> {
    if !meta.no_data {
        node.action(meta, "updated").await?;
        let size = node
            .download_checked(meta, |offset, bytes| {
                let start = usize::try_from(offset).unwrap_or(usize::MAX);
                match data.get(start..start.saturating_add(bytes.len())) {
                    Some(want) if want == bytes => Ok(()),
                    Some(_) => Err(format!("bytes at {offset} differ from the published ones")),
                    None => Err(format!("bytes beyond the published {} at {offset}", data.len())),
                }
            })
            .await?;
        if size != data.len() as u64 {
            return Err(format!("{size} bytes downloaded of {}", data.len()));
        }
    }
    node.action(meta, "received").await
}

/// Sorted durations from `since` to each arrival's `at`.
pub fn delays(arrivals: &[Arrival], since: Instant, at: impl Fn(&Arrival) -> Instant) -> Vec<Duration> {
    let mut delays: Vec<Duration> = arrivals
        .iter()
        .map(|a| at(a).saturating_duration_since(since))
        .collect();
    delays.sort_unstable();
    delays
}

/// The bench's generated content (see [`Content`]) of `size` bytes, whole in memory: the
/// nodes compare what they download with it.
pub fn content(size: u64) -> Bytes {
    let generator = Content::new();
    let mut data = bytes::BytesMut::with_capacity(usize::try_from(size).unwrap_or(0));
    for block in 0..Content::blocks(size) {
        data.extend_from_slice(&generator.block(block, size));
    }
    data.freeze()
}
