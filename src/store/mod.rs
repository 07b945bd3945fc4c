//! Persistent state of a node. [`Store`] is the contract the engine relies on; the embedded
//! SQLite implementation lives in [`sqlite`], the PostgreSQL one (several CSS instances
//! sharing a database) in [`postgres`], object data files in [`blobs`]. The store knows
//! nothing of HTTP and makes no domain decisions: the engine reads, decides, and writes back
//! with an optimistic revision check.

pub mod blobs;
pub mod buffers;
pub mod fleet;
pub mod postgres;
pub mod space;
pub mod sqlite;

use crate::clock::now_nanos;
use crate::model::acl::{AclEntry, AclKind, AclUserType};
use crate::model::sync::{Notification, Remote};
use crate::model::{
    DeliveryStatus, Destination, DestinationStatus, ObjectDeliveryView, ObjectKey, ObjectRecord, Organization,
};
use async_trait::async_trait;
use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::Arc;

/// What a store operation can fail with; callers branch on the first two.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// The record changed (or appeared, or vanished) since it was read.
    #[error("the record was changed concurrently")]
    Conflict,
    /// A referenced record does not exist.
    #[error("not found")]
    NotFound,
    /// The database failed; the source is backend-specific.
    #[error("database error: {0}")]
    Backend(Box<dyn std::error::Error + Send + Sync>),
    #[error("stored record is corrupt: {0}")]
    Corrupt(String),
    #[error("the store is shutting down")]
    Closed,
    /// The database cannot be reached right now (a restart, a network failure); retrying
    /// later may succeed.
    #[error("the database is unreachable: {0}")]
    Unavailable(String),
    /// The disk holding the database or the data files is full ([`space`]); writes work
    /// again once space is freed.
    #[error("not enough disk space")]
    Full,
}

impl From<rusqlite::Error> for StoreError {
    fn from(e: rusqlite::Error) -> Self {
        if space::is_sqlite_full(&e) {
            return StoreError::Full;
        }
        StoreError::Backend(Box::new(e))
    }
}

/// Result of store operations.
pub type StoreResult<T> = Result<T, StoreError>;

/// How a write relates to what the caller read before.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Expect {
    /// The key must not exist yet.
    Absent,
    /// The stored record must still carry this revision.
    Revision(i64),
}

/// State of a chunked upload of an object's data (spec: rest-api.md §4.8, Content-Range).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UploadSession {
    /// Names the partial data file.
    pub id: i64,
    pub total: u64,
    /// Length of the chunk that started at offset 0, once it arrived.
    pub first_chunk_size: Option<u64>,
    /// Received byte ranges, merged, sorted, end-exclusive.
    pub ranges: Vec<(u64, u64)>,
}

impl UploadSession {
    /// Adds `[start, end)` to the received ranges, keeping them sorted and merged (touching
    /// or overlapping ranges become one).
    pub fn add_range(&mut self, start: u64, end: u64) {
        merge_range(&mut self.ranges, start, end);
    }

    /// True when every byte of `[0, total)` has arrived.
    pub fn is_complete(&self) -> bool {
        match self.ranges.as_slice() {
            [] => self.total == 0,
            [(0, end)] => *end >= self.total,
            _ => false,
        }
    }
}

/// Adds `[start, end)` to sorted, merged, end-exclusive ranges.
fn merge_range(ranges: &mut Vec<(u64, u64)>, start: u64, end: u64) {
    ranges.push((start, end));
    ranges.sort_unstable();
    let mut merged: Vec<(u64, u64)> = Vec::with_capacity(ranges.len());
    for &(s, e) in ranges.iter() {
        match merged.last_mut() {
            Some(last) if s <= last.1 => last.1 = last.1.max(e),
            _ => merged.push((s, e)),
        }
    }
    *ranges = merged;
}

/// What the objects of a node add up to (for `/metrics`).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ObjectTotals {
    /// Every stored object record (sender copies, received copies, deletion markers).
    pub objects: u64,
    /// Summed `objectSize` of the objects whose data is held in a data file of this node
    /// (data URI files and data still arriving are not counted).
    pub data_bytes: u64,
}

/// Messages owed to one remote node and not acknowledged yet (for `/metrics`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UnacknowledgedCount {
    pub org: String,
    pub remote: Remote,
    pub count: u64,
}

/// One change of an atomic batch ([`Store::apply`]): an object change together with the
/// messages it owes other nodes (the outbox) and the delivery states it implies.
#[derive(Debug, Clone)]
pub enum StoreOp {
    WriteObject {
        record: Box<ObjectRecord>,
        expect: Expect,
        drop_upload: bool,
    },
    DeleteObject {
        key: ObjectKey,
        revision: i64,
    },
    PutNotification(Notification),
    DeleteNotification {
        key: ObjectKey,
        remote: Remote,
    },
    /// Every notification record of an object.
    DeleteNotificationsOf(ObjectKey),
    /// Creates or replaces the delivery state of an object at one destination.
    SetDelivery {
        key: ObjectKey,
        remote: Remote,
        status: DeliveryStatus,
        message: String,
        /// When, in seconds since the epoch; kept as the time of change only when the
        /// state differs from the stored one.
        at: i64,
    },
    DeleteDelivery {
        key: ObjectKey,
        remote: Remote,
    },
    /// Writes nothing: the batch fails with [`StoreError::Conflict`] unless the object still
    /// carries this revision. Unlike [`StoreOp::unchanged`] it does not bump the revision, so
    /// batches that only queue messages for different nodes never fail each other.
    ExpectObject {
        key: ObjectKey,
        revision: i64,
    },
    /// Writes nothing: the batch fails with [`StoreError::Conflict`] unless the notification
    /// record of `key` at `remote` still exists with this status and instance, so that a
    /// decision made on the record (acknowledging a message) never overwrites a newer one
    /// queued meanwhile.
    ExpectNotification {
        key: ObjectKey,
        remote: Remote,
        status: crate::model::sync::NotificationStatus,
        instance_id: i64,
    },
}

impl StoreOp {
    /// The object whose row this operation writes or deletes.
    pub fn written_object(&self) -> Option<ObjectKey> {
        match self {
            StoreOp::WriteObject { record, .. } => Some(record.key()),
            StoreOp::DeleteObject { key, .. } => Some(key.clone()),
            _ => None,
        }
    }

    /// Guards a batch with the object as read ([`StoreOp::ExpectObject`]).
    pub fn expect_object(record: &ObjectRecord) -> Self {
        StoreOp::ExpectObject {
            key: record.key(),
            revision: record.revision,
        }
    }

    /// Guards a batch with the state of a notification record ([`StoreOp::ExpectNotification`]).
    pub fn expect_notification(record: &Notification) -> Self {
        StoreOp::ExpectNotification {
            key: record.key.clone(),
            remote: record.remote.clone(),
            status: record.status,
            instance_id: record.instance_id,
        }
    }

    /// Writes `record` back as it is, expecting its revision: in a batch, it makes the batch
    /// fail with [`StoreError::Conflict`] when the object changed since it was read, so a
    /// decision made on that state (which messages to queue) is made again instead of
    /// overwriting what the change wrote.
    pub fn unchanged(record: &ObjectRecord) -> Self {
        StoreOp::WriteObject {
            expect: Expect::Revision(record.revision),
            record: Box::new(record.clone()),
            drop_upload: false,
        }
    }
}

/// The persistent state every role needs. Implementations must make each call atomic.
#[async_trait]
pub trait Store: Send + Sync + 'static {
    /// One object by key.
    async fn object(&self, key: &ObjectKey) -> StoreResult<Option<ObjectRecord>>;
    /// One object by key, for reading only: a store that keeps recently read records hands
    /// out the kept one without copying it.
    async fn shared_object(&self, key: &ObjectKey) -> StoreResult<Option<Arc<ObjectRecord>>> {
        Ok(self.object(key).await?.map(Arc::new))
    }
    /// Every object of a type in an org.
    async fn objects_of_type(&self, org: &str, object_type: &str) -> StoreResult<Vec<ObjectRecord>>;
    /// Every object of an org.
    async fn objects_of_org(&self, org: &str) -> StoreResult<Vec<ObjectRecord>>;
    /// Origin objects whose expiration or activation time is at or before `now` (seconds
    /// since the epoch), earliest first.
    async fn objects_due(&self, now: i64) -> StoreResult<Vec<ObjectRecord>>;
    /// Number of objects created on this node (sender copies).
    async fn count_sender_objects(&self) -> StoreResult<u64>;
    /// Inserts or replaces an object; returns the new revision. `drop_upload` also discards
    /// a chunked upload in progress for the key, in the same transaction.
    async fn write_object(&self, record: ObjectRecord, expect: Expect, drop_upload: bool) -> StoreResult<i64>;
    /// Removes an object (and its upload session and delivery rows) if it still has `revision`.
    async fn delete_object(&self, key: &ObjectKey, revision: i64) -> StoreResult<()>;

    /// The chunked upload in progress for a key, creating it for `total` bytes if absent.
    /// A session for a different total is replaced.
    async fn upload_session(&self, key: &ObjectKey, total: u64) -> StoreResult<UploadSession>;
    /// Records that `[start, start+len)` of session `id` is durably written; returns the session.
    async fn record_chunk(&self, id: i64, start: u64, len: u64) -> StoreResult<UploadSession>;
    /// How far an upload of an object's data to the other node got: the instance and the
    /// offset up to which the other node acknowledged the bytes.
    async fn sent_progress(&self, key: &ObjectKey) -> StoreResult<Option<(i64, u64)>>;
    /// Records (or with `None` forgets) how far an upload to the other node got.
    async fn set_sent_progress(&self, key: &ObjectKey, progress: Option<(i64, u64)>) -> StoreResult<()>;
    /// Every upload session id, for start-up cleanup of partial files.
    async fn upload_session_ids(&self) -> StoreResult<Vec<i64>>;

    /// Registered edge nodes of an org.
    async fn destinations(&self, org: &str) -> StoreResult<Vec<Destination>>;
    /// Number of registered edge nodes of every org.
    async fn count_destinations(&self) -> StoreResult<u64>;
    /// Delivery state of an object per destination.
    async fn destination_statuses(&self, key: &ObjectKey) -> StoreResult<Vec<DestinationStatus>>;
    /// Objects with delivery rows for one edge node.
    async fn objects_for_destination(
        &self,
        org: &str,
        dest_type: &str,
        dest_id: &str,
    ) -> StoreResult<Vec<ObjectDeliveryView>>;

    // The status page's reads ([`fleet`]): a page of rows each, aggregates in the database.

    /// Destinations per delivery state of the objects `ids` (type, id) of `org`; states
    /// without destinations are left out.
    async fn delivery_counts(&self, org: &str, ids: Vec<(String, String)>) -> StoreResult<Vec<fleet::DeliveryCount>>;
    /// A page of an object's delivery states, ordered by destination.
    async fn delivery_page(
        &self,
        key: &ObjectKey,
        page: &fleet::PageRequest,
    ) -> StoreResult<fleet::Paged<fleet::DeliveryRow>>;
    /// Every registered node of every org with the time of its last registration or ping
    /// (seconds since the epoch), for `/metrics`.
    async fn nodes_last_seen(&self) -> StoreResult<Vec<(Destination, i64)>>;
    /// A page of an org's registered nodes, ordered by type and id.
    async fn node_page(&self, org: &str, page: &fleet::PageRequest) -> StoreResult<fleet::Paged<fleet::NodeRow>>;

    /// Every stored organization.
    async fn organizations(&self) -> StoreResult<Vec<Organization>>;
    /// Creates or replaces an organization.
    async fn put_organization(&self, org: Organization) -> StoreResult<()>;
    /// Removes an organization with all its objects, destinations, webhooks and ACLs; returns the
    /// data files the caller must remove.
    async fn delete_organization(&self, org: &str) -> StoreResult<Vec<String>>;

    /// Webhook URLs registered for an object type.
    async fn webhooks(&self, org: &str, object_type: &str) -> StoreResult<Vec<String>>;
    /// Registers a webhook URL (idempotent).
    async fn add_webhook(&self, org: &str, object_type: &str, url: &str) -> StoreResult<()>;
    /// Removes a webhook URL, compared case-insensitively (idempotent).
    async fn remove_webhook(&self, org: &str, object_type: &str, url: &str) -> StoreResult<()>;

    /// The entries of one ACL, in order (empty when the ACL does not exist).
    async fn acl(&self, org: &str, kind: AclKind, key: &str) -> StoreResult<Vec<AclEntry>>;
    /// Keys that have an ACL of this kind in the org (`*` for the org-wide one).
    async fn acl_keys(&self, org: &str, kind: AclKind) -> StoreResult<Vec<String>>;
    /// Atomically adds entries (replacing those with the same user type and name, placed
    /// before the surviving old ones) and removes entries matched by user type and name. An
    /// ACL without entries ceases to exist.
    async fn change_acl(
        &self,
        org: &str,
        kind: AclKind,
        key: &str,
        add: Vec<AclEntry>,
        remove: Vec<(AclUserType, String)>,
    ) -> StoreResult<()>;

    /// Applies every operation or none (a failed revision check fails the batch with
    /// [`StoreError::Conflict`]).
    async fn apply(&self, ops: Vec<StoreOp>) -> StoreResult<()>;

    /// The notification record of an object for one remote node.
    async fn notification(&self, key: &ObjectKey, remote: &Remote) -> StoreResult<Option<Notification>>;
    /// Every notification record of an object.
    async fn notifications_of_object(&self, key: &ObjectKey) -> StoreResult<Vec<Notification>>;
    /// Every notification record for one remote node of an org.
    async fn notifications_for_remote(&self, org: &str, remote: &Remote) -> StoreResult<Vec<Notification>>;
    /// The records of one remote node whose message waits for its poll
    /// ([`NotificationStatus::awaiting_poll`]), by instance ID. What a poll reads: a node's
    /// delivered records stay until their objects go, and a poll must not cost more for
    /// them.
    async fn notifications_awaiting_poll(&self, org: &str, remote: &Remote) -> StoreResult<Vec<Notification>>;
    /// Records whose resend time has passed.
    async fn due_notifications(&self, now: i64) -> StoreResult<Vec<Notification>>;

    /// Registers (or re-registers) an edge node and records `now` as its last contact.
    async fn upsert_destination(&self, destination: Destination, now: i64) -> StoreResult<()>;
    /// One registered edge node.
    async fn destination(&self, org: &str, remote: &Remote) -> StoreResult<Option<Destination>>;
    /// Records a contact with a registered node; false when the node is unknown.
    async fn touch_destination(&self, org: &str, remote: &Remote, now: i64) -> StoreResult<bool>;
    /// Removes a node with its notification records and delivery rows.
    async fn remove_destination(&self, org: &str, remote: &Remote) -> StoreResult<()>;
    /// Nodes (of every org) whose last contact is not after `before`.
    async fn inactive_destinations(&self, before: i64) -> StoreResult<Vec<Destination>>;

    /// Every data file name referenced by an object, for start-up cleanup of orphans.
    async fn referenced_blobs(&self) -> StoreResult<Vec<String>>;
    /// The largest instance ID stored, to seed [`InstanceClock`].
    async fn max_instance_id(&self) -> StoreResult<i64>;

    /// Finishes queued writes and releases the database; later calls fail with
    /// [`StoreError::Closed`].
    fn close(&self) {}

    // Read at every scrape of `/metrics`: keep each one a single aggregate query.

    /// Object count and stored data bytes ([`ObjectTotals`]).
    async fn object_totals(&self) -> StoreResult<ObjectTotals>;
    /// Notification records in a status of [`crate::model::sync::NotificationStatus::unacknowledged`],
    /// counted per org and remote node: the `limit` nodes with the most, most first (ties in
    /// any order).
    async fn unacknowledged_notifications(&self, limit: usize) -> StoreResult<Vec<UnacknowledgedCount>>;
}

/// Hands out strictly increasing instance IDs: nanoseconds since the epoch, or the next free
/// value after the last one handed out when the clock has not moved on (the original's
/// millisecond IDs could repeat; see metadata.md §7).
///
/// Instance IDs also name data files. When several processes write one store, each takes a
/// different slot and only hands out IDs congruent to it modulo [`INSTANCE_SLOTS`], so two
/// processes can never hand out the same ID, whatever their clocks say.
#[derive(Debug)]
pub struct InstanceClock {
    last: AtomicI64,
    slot: Option<i64>,
}

/// Processes that can write one shared store at the same time with disjoint instance IDs.
pub const INSTANCE_SLOTS: i64 = 1024;

impl InstanceClock {
    /// Starts above every ID already stored; the only writer of its store.
    pub fn starting_after(stored_max: i64) -> Self {
        Self {
            last: AtomicI64::new(stored_max),
            slot: None,
        }
    }

    /// Hands out only IDs in slot `slot` (taken modulo [`INSTANCE_SLOTS`]).
    pub fn in_slot(self, slot: i64) -> Self {
        Self {
            slot: Some(slot.rem_euclid(INSTANCE_SLOTS)),
            ..self
        }
    }

    /// The next ID.
    pub fn next(&self) -> i64 {
        let now = now_nanos();
        let step = |last: i64| self.first_in_slot_from(now.max(last.saturating_add(1)));
        let previous = self
            .last
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |last| Some(step(last)))
            .unwrap_or_else(|last| last);
        step(previous)
    }

    /// The smallest ID of this clock's slot that is at least `from`.
    fn first_in_slot_from(&self, from: i64) -> i64 {
        match self.slot {
            None => from,
            Some(slot) => from.saturating_add((slot - from.rem_euclid(INSTANCE_SLOTS)).rem_euclid(INSTANCE_SLOTS)),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashSet;

    #[test]
    fn instance_ids_strictly_increase_even_after_a_future_seed() {
        let far_future = now_nanos() + 1_000_000_000_000;
        let clock = InstanceClock::starting_after(far_future);
        let first = clock.next();
        let second = clock.next();
        assert_eq!(first, far_future + 1);
        assert_eq!(second, far_future + 2);
    }

    #[test]
    fn clocks_in_different_slots_never_hand_out_the_same_id() {
        let seed = now_nanos();
        let first = InstanceClock::starting_after(seed).in_slot(3);
        let second = InstanceClock::starting_after(seed).in_slot(INSTANCE_SLOTS + 4);
        let mut seen = HashSet::new();
        let mut previous = (seed, seed);
        for _ in 0..2000 {
            let (a, b) = (first.next(), second.next());
            assert_eq!(a.rem_euclid(INSTANCE_SLOTS), 3);
            assert_eq!(b.rem_euclid(INSTANCE_SLOTS), 4);
            assert!(a > previous.0 && b > previous.1, "IDs strictly increase");
            previous = (a, b);
            assert!(seen.insert(a) && seen.insert(b), "an ID was handed out twice");
        }
    }

    #[test]
    fn ranges_merge_when_touching_or_overlapping() {
        let mut ranges = Vec::new();
        merge_range(&mut ranges, 10, 20);
        merge_range(&mut ranges, 0, 10);
        assert_eq!(ranges, vec![(0, 20)]);
        merge_range(&mut ranges, 30, 40);
        merge_range(&mut ranges, 15, 31);
        assert_eq!(ranges, vec![(0, 40)]);
    }

    #[test]
    fn upload_completion_needs_every_byte() {
        let mut session = UploadSession {
            id: 1,
            total: 10,
            first_chunk_size: None,
            ranges: vec![(0, 4), (6, 10)],
        };
        assert!(!session.is_complete());
        session.ranges = vec![(0, 10)];
        assert!(session.is_complete());
        session.ranges = vec![(2, 10)];
        assert!(!session.is_complete());
    }
}
