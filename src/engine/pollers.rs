//! Long polls waiting for news, per edge node. A poll that finds nothing pending waits on its
//! node's signal until a notification for it commits or its time is up; this is what makes
//! HTTP delivery take milliseconds instead of a polling interval.

use crate::model::sync::Remote;
use parking_lot::Mutex;
use std::collections::HashMap;
use std::sync::Arc;
use tokio::sync::Notify;

/// Signals per (org, node).
#[derive(Default)]
pub struct PollRegistry {
    signals: Mutex<HashMap<(String, Remote), Arc<Notify>>>,
    /// A transport that pushes messages (MQTT) learns of every node with news.
    pusher: Mutex<Option<tokio::sync::mpsc::UnboundedSender<(String, Remote)>>>,
    /// Other instances sharing the store learn of them too: an edge node's poll may wait in
    /// any of them.
    peers: Mutex<Option<tokio::sync::mpsc::UnboundedSender<(String, Remote)>>>,
    /// The node is stopping: polls answer at once instead of being held.
    stopping: std::sync::atomic::AtomicBool,
}

impl PollRegistry {
    /// The signal of one node, created on first use.
    pub fn signal(&self, org: &str, remote: &Remote) -> Arc<Notify> {
        let mut signals = self.signals.lock();
        Arc::clone(signals.entry((org.to_string(), remote.clone())).or_default())
    }

    /// Wakes every poll of the node waiting now; a poll that starts later finds the
    /// notification in the store.
    pub fn wake(&self, org: &str, remote: &Remote) {
        self.wake_here(org, remote);
        let peers = self.peers.lock();
        if let Some(peers) = peers.as_ref() {
            let _ = peers.send((org.to_string(), remote.clone()));
        }
    }

    /// Wakes the node's polls waiting in this process, and the pusher when this process
    /// runs one; not the other instances (news announced by one of them).
    pub fn wake_here(&self, org: &str, remote: &Remote) {
        self.wake_polls(org, remote);
        let pusher = self.pusher.lock();
        if let Some(pusher) = pusher.as_ref() {
            let _ = pusher.send((org.to_string(), remote.clone()));
        }
    }

    fn wake_polls(&self, org: &str, remote: &Remote) {
        let signals = self.signals.lock();
        if let Some(signal) = signals.get(&(org.to_string(), remote.clone())) {
            signal.notify_waiters();
        }
    }

    /// Wakes every poll waiting in this process; each one looks for news and waits again if
    /// there is none.
    pub fn wake_all_polls(&self) {
        let signals = self.signals.lock();
        for signal in signals.values() {
            signal.notify_waiters();
        }
    }

    /// Ends every held poll and holds none from now on: a held poll would keep its
    /// connection, and with it the stop of the node, waiting for up to a minute.
    pub fn stop_holding(&self) {
        self.stopping.store(true, std::sync::atomic::Ordering::SeqCst);
        self.wake_all_polls();
    }

    /// True once the node stops.
    pub fn stopping(&self) -> bool {
        self.stopping.load(std::sync::atomic::Ordering::SeqCst)
    }

    /// Makes every later wake also reach the other instances through `peers`.
    pub fn set_peers(&self, peers: tokio::sync::mpsc::UnboundedSender<(String, Remote)>) {
        *self.peers.lock() = Some(peers);
    }

    /// Makes every later wake also reach `pusher`.
    pub fn set_pusher(&self, pusher: tokio::sync::mpsc::UnboundedSender<(String, Remote)>) {
        *self.pusher.lock() = Some(pusher);
    }

    /// Forgets a node (unregistered or removed).
    pub fn forget(&self, org: &str, remote: &Remote) {
        let mut signals = self.signals.lock();
        signals.remove(&(org.to_string(), remote.clone()));
    }
}
