//! A receiving application as the original's SDKs run one: it polls the listing of updated
//! objects of one type (`?received=true` the first time, as the SDKs do), takes each object
//! once per (`objectID`, `instanceID`, `deleted`), and handles it as the SDKs' samples and
//! the original's end-to-end tests do: a deleted object is acknowledged with `deleted`; any
//! other one has its data downloaded (unless `noData`) and is then marked `consumed` or
//! `received`. What it saw and every failure are kept as [`Seen`] events, in order.

use super::TestNode;
use std::collections::{HashMap, HashSet};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// How often the application polls (the SDKs take the period from the application).
const POLL_PERIOD: Duration = Duration::from_millis(100);

/// One object the application was handed, and what became of it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Seen {
    pub object_id: String,
    pub instance_id: i64,
    pub deleted: bool,
    pub meta_only: bool,
    pub no_data: bool,
    /// The downloaded data (`None` for deleted and `noData` objects).
    pub data: Option<Vec<u8>>,
    /// What went wrong handling it (a download or report refused), if anything.
    pub failure: Option<String>,
}

#[derive(Default)]
struct Shared {
    seen: Vec<Seen>,
    /// Completed polls of the listing.
    polls: u64,
    /// Objects to mark `received` instead of `consumed`.
    only_received: HashSet<String>,
    /// Objects listed again after the application had handled them without a failure, and
    /// how often: the node should have stopped listing them.
    relisted: HashMap<(String, bool), usize>,
}

/// The application's loop, stopped when this handle is dropped.
pub struct ReceivingApp {
    shared: Arc<Mutex<Shared>>,
    stopping: Arc<AtomicBool>,
    task: tokio::task::JoinHandle<()>,
}

impl ReceivingApp {
    /// Starts polling `node` for objects of `object_type`, as its object admin.
    pub fn start(node: &TestNode, object_type: &str) -> Self {
        let shared = Arc::new(Mutex::new(Shared::default()));
        let api = node.api();
        let type_path = node.type_path(object_type);
        let state = shared.clone();
        let stopping = Arc::new(AtomicBool::new(false));
        let stop = stopping.clone();
        let task = tokio::spawn(async move {
            // Handled without a failure; a failed one is taken again, as the SDKs do.
            let mut handled: HashSet<(String, i64, bool)> = HashSet::new();
            let mut first = true;
            loop {
                let listing_path = if first {
                    format!("{type_path}?received=true")
                } else {
                    type_path.clone()
                };
                first = false;
                let listing = api.get(&listing_path).await;
                let objects = match listing.status {
                    200 => listing.json().as_array().cloned().unwrap_or_default(),
                    _ => Vec::new(),
                };
                for meta in objects {
                    let object_id = meta["objectID"].as_str().unwrap_or_default().to_string();
                    let instance_id = meta["instanceID"].as_i64().unwrap_or_default();
                    let deleted = meta["deleted"].as_bool().unwrap_or(false);
                    let key = (object_id.clone(), instance_id, deleted);
                    if handled.contains(&key) {
                        *state.lock().unwrap().relisted.entry((object_id, deleted)).or_insert(0) += 1;
                        continue;
                    }
                    let only_received = state.lock().unwrap().only_received.contains(&object_id);
                    let seen = handle(&api, &type_path, &meta, only_received).await;
                    if seen.failure.is_none() {
                        handled.insert(key);
                    }
                    state.lock().unwrap().seen.push(seen);
                }
                state.lock().unwrap().polls += 1;
                if stop.load(Ordering::SeqCst) {
                    return;
                }
                tokio::time::sleep(POLL_PERIOD).await;
            }
        });
        Self { shared, stopping, task }
    }

    /// Objects with this ID are marked `received` rather than `consumed`.
    pub fn only_receive(&self, object_id: &str) {
        self.shared.lock().unwrap().only_received.insert(object_id.to_string());
    }

    /// Lets the application finish the round it is in, so that nothing is left half
    /// handled (downloaded but not yet marked), and stops it; what it saw stays readable.
    pub async fn stop(&mut self) {
        self.stopping.store(true, Ordering::SeqCst);
        let _ = (&mut self.task).await;
    }

    /// Everything seen so far, in order.
    pub fn seen(&self) -> Vec<Seen> {
        self.shared.lock().unwrap().seen.clone()
    }

    /// Objects listed again after the application handled them, with how often.
    pub fn relisted(&self) -> HashMap<(String, bool), usize> {
        self.shared.lock().unwrap().relisted.clone()
    }

    /// Completed polls so far.
    pub fn polls(&self) -> u64 {
        self.shared.lock().unwrap().polls
    }

    /// Waits until the application completed `rounds` more polls, so that anything listed by
    /// then has been seen.
    pub async fn wait_polls(&self, rounds: u64, nodes: &[&TestNode], timeout: Duration) {
        let target = self.polls() + rounds;
        super::sync::wait_for("the application to poll again", nodes, timeout, async || {
            self.polls() >= target
        })
        .await
    }
}

impl Drop for ReceivingApp {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// Handles one listed object as the SDK samples do.
async fn handle(api: &super::Api, type_path: &str, meta: &serde_json::Value, only_received: bool) -> Seen {
    let object_id = meta["objectID"].as_str().unwrap_or_default().to_string();
    let object_path = format!("{type_path}/{object_id}");
    let flag = |name: &str| meta[name].as_bool().unwrap_or(false);
    let mut seen = Seen {
        object_id,
        instance_id: meta["instanceID"].as_i64().unwrap_or_default(),
        deleted: flag("deleted"),
        meta_only: flag("metaOnly"),
        no_data: flag("noData"),
        data: None,
        failure: None,
    };
    if seen.deleted {
        let response = api.put_empty_as(super::ADMIN, &format!("{object_path}/deleted")).await;
        seen.failure = failure("marking it deleted", &response);
        return seen;
    }
    if !seen.no_data {
        let response = api.get(&format!("{object_path}/data")).await;
        if response.status != 200 {
            seen.failure = failure("downloading its data", &response);
            return seen;
        }
        seen.data = Some(response.body);
    }
    let action = if only_received { "received" } else { "consumed" };
    let response = api.put_empty_as(super::ADMIN, &format!("{object_path}/{action}")).await;
    seen.failure = failure(&format!("marking it {action}"), &response);
    seen
}

/// What went wrong, when the node refused a step.
fn failure(what: &str, response: &super::Resp) -> Option<String> {
    (response.status >= 300).then(|| format!("{what}: {} {}", response.status, response.text()))
}
