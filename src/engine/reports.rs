//! What the node's health report and `/metrics` read from the store: a few aggregate
//! queries, each failing on its own so that a report can still show the rest.

use super::{EngineResult, Node};
use crate::store::{ObjectTotals, UnacknowledgedCount};

/// What the store holds, for the detailed health report.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct StoreUsage {
    pub registered_nodes: u64,
    pub stored_objects: u64,
}

impl Node {
    /// Registered edge nodes and the objects this node holds as sender.
    pub async fn store_usage(&self) -> EngineResult<StoreUsage> {
        Ok(StoreUsage {
            registered_nodes: self.registered_node_count().await?,
            stored_objects: self.0.store.count_sender_objects().await?,
        })
    }

    /// Whether the store answers a read.
    pub async fn store_answers(&self) -> bool {
        self.0.store.max_instance_id().await.is_ok()
    }

    /// Edge nodes registered with this CSS.
    pub async fn registered_node_count(&self) -> EngineResult<u64> {
        Ok(self.0.store.count_destinations().await?)
    }

    /// Object count and stored data bytes.
    pub async fn object_totals(&self) -> EngineResult<ObjectTotals> {
        Ok(self.0.store.object_totals().await?)
    }

    /// Messages not yet acknowledged, counted per node: the `limit` nodes with the most.
    pub async fn unacknowledged_counts(&self, limit: usize) -> EngineResult<Vec<UnacknowledgedCount>> {
        Ok(self.0.store.unacknowledged_notifications(limit).await?)
    }
}
