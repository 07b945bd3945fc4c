//! Several CSS instances on one shared PostgreSQL store (spec: css-ess-protocol.md §9): one
//! of them is elected leader for the cluster-wide timers ([`leadership`]), and a commit made
//! by one instance wakes the long polls waiting on the others ([`wakeups`]). A node on a
//! store of its own (SQLite) is always the leader and has no peers.

pub mod leadership;
pub mod wakeups;

use crate::engine::Node;
use crate::store::postgres::PostgresStore;
use leadership::Leadership;
use std::sync::Arc;
use std::time::Duration;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

/// Makes `node` one instance of the cluster sharing `store`: it campaigns for the leader
/// lease (renewed every `timeout`/6, lost after `timeout` without renewal) and exchanges
/// wake-ups with its peers, until `shutdown`.
pub fn join(
    node: &Node,
    store: Arc<PostgresStore>,
    timeout: Duration,
    tracker: &TaskTracker,
    shutdown: &CancellationToken,
) {
    let holder = instance_name();
    tracing::info!(instance = %holder, leadership_timeout = ?timeout, "joining the CSS cluster of the shared database");
    let leadership = Leadership::elected();
    node.set_leadership(leadership.clone());
    tracker.spawn(leadership::campaign(
        leadership,
        store.clone(),
        holder.clone(),
        timeout,
        shutdown.clone(),
    ));
    wakeups::spawn(node, store, holder, tracker, shutdown);
}

/// A name no other instance has, that tells an operator which process it is.
fn instance_name() -> String {
    let host = std::fs::read_to_string("/proc/sys/kernel/hostname")
        .map(|name| name.trim().to_string())
        .ok()
        .filter(|name| !name.is_empty())
        .unwrap_or_else(|| "css".to_string());
    format!("{host}-{}-{:016x}", std::process::id(), crate::random::u64())
}
