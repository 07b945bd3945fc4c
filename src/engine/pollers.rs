//! Long polls waiting for news, per edge node. A poll that finds nothing pending waits on its
//! node's signal until a notification for it commits or its time is up; this is what makes
//! HTTP delivery take milliseconds instead of a polling interval.

use crate::model::sync::Remote;
use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use tokio::sync::Notify;

/// Signals per (org, node).
#[derive(Default)]
pub struct PollRegistry {
    signals: Mutex<HashMap<(String, Remote), Arc<Notify>>>,
    /// A transport that pushes messages (MQTT) learns of every node with news.
    pusher: Mutex<Option<tokio::sync::mpsc::UnboundedSender<(String, Remote)>>>,
}

impl PollRegistry {
    /// The signal of one node, created on first use.
    pub fn signal(&self, org: &str, remote: &Remote) -> Arc<Notify> {
        let mut signals = self.signals.lock().unwrap_or_else(|p| p.into_inner());
        Arc::clone(signals.entry((org.to_string(), remote.clone())).or_default())
    }

    /// Wakes every poll of the node waiting now; a poll that starts later finds the
    /// notification in the store.
    pub fn wake(&self, org: &str, remote: &Remote) {
        {
            let signals = self.signals.lock().unwrap_or_else(|p| p.into_inner());
            if let Some(signal) = signals.get(&(org.to_string(), remote.clone())) {
                signal.notify_waiters();
            }
        }
        let pusher = self.pusher.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(pusher) = pusher.as_ref() {
            let _ = pusher.send((org.to_string(), remote.clone()));
        }
    }

    /// Makes every later wake also reach `pusher`.
    pub fn set_pusher(&self, pusher: tokio::sync::mpsc::UnboundedSender<(String, Remote)>) {
        *self.pusher.lock().unwrap_or_else(|p| p.into_inner()) = Some(pusher);
    }

    /// Forgets a node (unregistered or removed).
    pub fn forget(&self, org: &str, remote: &Remote) {
        let mut signals = self.signals.lock().unwrap_or_else(|p| p.into_inner());
        signals.remove(&(org.to_string(), remote.clone()));
    }
}
