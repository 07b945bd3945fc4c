//! What the fleet status page reads: one page of a listing at a time, with the aggregates it
//! shows computed by the database, so that a page costs the same at 10 nodes and at 10,000.

use crate::model::{DeliveryStatus, Destination, DestinationStatus};

/// Which rows of a listing to read.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PageRequest {
    /// Rows to skip.
    pub offset: u64,
    /// Most rows to return.
    pub limit: u64,
    /// Case-insensitive text a row must contain (in its names, state or message); empty
    /// matches every row.
    pub search: String,
}

impl PageRequest {
    /// The search in the form the stores compare: lower case.
    pub fn needle(&self) -> String {
        self.search.to_lowercase()
    }
}

/// One page of a listing and how many rows match in all.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Paged<T> {
    pub total: u64,
    pub rows: Vec<T>,
}

/// How many destinations of one object are in one delivery state.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DeliveryCount {
    pub object_type: String,
    pub object_id: String,
    pub status: DeliveryStatus,
    pub count: u64,
}

/// The delivery state of an object at one destination, with when it last changed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DeliveryRow {
    pub delivery: DestinationStatus,
    /// Seconds since the epoch; 0 when the state was written before this was recorded.
    pub changed_at: i64,
}

/// A registered edge node with what the page shows beside its registration.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NodeRow {
    pub destination: Destination,
    /// Seconds since the epoch of its last registration or ping.
    pub last_seen: i64,
    /// Objects on their way to it: delivery state pending or delivering.
    pub pending: u64,
}
