//! Publishing what the engine queued for MQTT nodes as soon as it commits. Taking a node's
//! queued messages is a store write (they become sent), so a version published to a
//! thousand nodes would take a thousand writes, each a commit (and a round trip to the
//! database per query) in a row: the last node would hear of it seconds after the first.
//! Nodes are served [`NODES_AT_ONCE`] at a time instead: their writes share commits, and
//! their queries overlap. One node's messages are never taken by two tasks at once, so they
//! leave in the order they were committed; a node woken again while served is served again
//! afterwards.

use super::{address, CssMqtt};
use crate::auth::edge::NodeAddress;
use crate::model::sync::Remote;
use crate::transport::mqtt::codec::Control;
use std::collections::HashMap;
use std::sync::Arc;
use tokio::sync::mpsc;
use tokio::task::{Id, JoinSet};

/// Nodes whose queued messages are taken and published at once: enough for the store to
/// group their writes, few enough that a wake-up of the whole fleet holds only this many
/// nodes' messages in memory (the rest wait as wake-ups, a node address each). Publishing
/// waits for room in the broker connection's queue, which paces the whole.
const NODES_AT_ONCE: usize = 32;

impl CssMqtt {
    /// Publishes what the engine queued for MQTT nodes, as commits wake them.
    pub(super) async fn publish_queued(self: Arc<Self>, mut wakes: mpsc::UnboundedReceiver<(String, Remote)>) {
        let mut running = JoinSet::new();
        // The nodes being served, by task, and those woken again meanwhile.
        let mut serving: HashMap<Id, NodeAddress> = HashMap::new();
        let mut woken_again: HashMap<NodeAddress, bool> = HashMap::new();
        loop {
            tokio::select! {
                wake = wakes.recv(), if running.len() < NODES_AT_ONCE => {
                    let Some((org, remote)) = wake else {
                        break;
                    };
                    let node = address(&org, &remote.dest_type, &remote.dest_id);
                    match woken_again.get_mut(&node) {
                        Some(again) => *again = true,
                        None => {
                            woken_again.insert(node.clone(), false);
                            let task = running.spawn(self.clone().publish_to(node.clone()));
                            serving.insert(task.id(), node);
                        }
                    }
                }
                Some(done) = running.join_next_with_id() => {
                    let id = done.map_or_else(|e| e.id(), |(id, ())| id);
                    let Some(node) = serving.remove(&id) else {
                        continue;
                    };
                    if woken_again.get(&node) == Some(&true) {
                        woken_again.insert(node.clone(), false);
                        let task = running.spawn(self.clone().publish_to(node.clone()));
                        serving.insert(task.id(), node);
                    } else {
                        woken_again.remove(&node);
                    }
                }
            }
        }
        while running.join_next().await.is_some() {}
    }

    /// Takes a node's queued messages and publishes them, if it is an MQTT node.
    async fn publish_to(self: Arc<Self>, node: NodeAddress) {
        if !matches!(self.node.node_communication(&node).await, Ok(Some(communication)) if communication == "mqtt") {
            return;
        }
        match self.node.spi_take_pending(&node).await {
            Ok(items) => {
                for item in items {
                    self.send(&node, &Control::about(&item.kind, item.meta)).await;
                }
            }
            Err(e) => {
                tracing::warn!(org = %node.org, dest_id = %node.dest_id, error = %e, "MQTT: reading queued messages failed")
            }
        }
    }
}
