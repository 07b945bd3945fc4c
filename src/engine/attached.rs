//! What the layers above hand the engine at start: the broker connection's health (from the
//! MQTT transport) and whether this instance leads (from the cluster). The engine keeps only
//! these small interfaces, so it depends on neither module and each keeps its own state.

use tokio::sync::watch;

/// A snapshot of the broker connection, for health and metrics.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BrokerHealth {
    pub connected: bool,
    pub subscribe_failures: u64,
    pub publish_failures: u64,
    /// Milliseconds the connection has been down (0 while connected).
    pub disconnected_for_ms: u64,
    /// Seconds since the last failure of each kind (`None` = never).
    pub since_subscribe_failure: Option<u64>,
    pub since_publish_failure: Option<u64>,
    pub sent_bytes: u64,
    pub received_bytes: u64,
}

/// The broker connection of a node that talks MQTT.
pub trait BrokerStatus: Send + Sync {
    fn health(&self) -> BrokerHealth;
}

/// Whether this instance does the cluster-wide periodic work.
pub trait LeaderRole: Send + Sync {
    /// True while this instance leads; read at each use, since leading ends with time.
    fn is_leader(&self) -> bool;
    /// Follows [`LeaderRole::is_leader`].
    fn changes(&self) -> watch::Receiver<bool>;
}
