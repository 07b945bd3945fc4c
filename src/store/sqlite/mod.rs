//! The embedded store: one SQLite database file in WAL mode, metadata as JSON beside the
//! columns that queries filter on. Writes are group-committed by [`SqlitePool`].
//!
//! Modules, as in the PostgreSQL store: `pool` (the connection threads), `schema`
//! (versioned migrations), then the queries by subject: `objects`, `uploads`, `nodes`
//! (destinations, deliveries, notifications) and `admin` (organizations, webhooks, ACLs).
//! Each query is a plain function of a connection; which connection it runs on (the writer's
//! batch, a reader thread, or the caller's own) is decided here.

mod admin;
mod cache;
mod fleet;
mod node_cache;
mod nodes;
mod objects;
mod pool;
mod schema;
mod uploads;

use super::fleet::{DeliveryCount, DeliveryRow, NodeRow, PageRequest, Paged};
use super::{Expect, ObjectTotals, Store, StoreOp, StoreResult, UnacknowledgedCount, UploadSession};
use crate::model::acl::{AclEntry, AclKind, AclUserType};
use crate::model::sync::{Notification, Remote};
use crate::model::{Destination, DestinationStatus, ObjectDeliveryView, ObjectKey, ObjectRecord, Organization};
use async_trait::async_trait;
use cache::ObjectCache;
use node_cache::NodeCache;
use pool::SqlitePool;
use std::path::Path;
use std::sync::Arc;

/// SQLite-backed [`Store`].
pub struct SqliteStore {
    pool: SqlitePool,
    /// Shared with the writer thread, which invalidates what each write changed.
    cache: Arc<ObjectCache>,
    /// The same for what long polls ask about their nodes.
    nodes: Arc<NodeCache>,
}

impl SqliteStore {
    /// Opens or creates the database at `path` and brings its schema up to date. `durable`
    /// makes every acknowledged write survive a crash or power loss.
    pub fn open(path: &Path, durable: bool) -> StoreResult<Self> {
        Ok(Self {
            pool: SqlitePool::open(path, schema::migrate, durable)?,
            cache: Arc::default(),
            nodes: Arc::default(),
        })
    }

    /// Runs a write that changes the rows of `keys`, which the cache forgets once it settles.
    async fn write_objects<R, F>(&self, keys: Vec<ObjectKey>, work: F) -> StoreResult<R>
    where
        R: Send + 'static,
        F: FnOnce(&rusqlite::Connection) -> StoreResult<R> + Send + 'static,
    {
        let cache = Arc::clone(&self.cache);
        let settled = move || cache.invalidate(&keys);
        self.pool.write_then(work, settled).await
    }

    /// Runs a write that changes the registration of a node, which the node cache forgets
    /// once it settles.
    async fn write_node<R, F>(&self, org: &str, remote: &Remote, work: F) -> StoreResult<R>
    where
        R: Send + 'static,
        F: FnOnce(&rusqlite::Connection) -> StoreResult<R> + Send + 'static,
    {
        let (nodes, org, remote) = (Arc::clone(&self.nodes), org.to_string(), remote.clone());
        self.pool.write_then(work, move || nodes.forget(&org, &remote)).await
    }
}

/// The node a batch's operation may queue a message for.
fn queued_for(op: &StoreOp) -> Option<(String, Remote)> {
    match op {
        StoreOp::PutNotification(n) => Some((n.key.org.clone(), n.remote.clone())),
        _ => None,
    }
}

fn to_i64(value: u64) -> i64 {
    i64::try_from(value).unwrap_or(i64::MAX)
}

#[async_trait]
impl Store for SqliteStore {
    async fn object(&self, key: &ObjectKey) -> StoreResult<Option<ObjectRecord>> {
        Ok(self.shared_object(key).await?.map(Arc::unwrap_or_clone))
    }

    async fn shared_object(&self, key: &ObjectKey) -> StoreResult<Option<Arc<ObjectRecord>>> {
        let seen = match self.cache.lookup(key) {
            Ok(record) => return Ok(Some(record)),
            Err(seen) => seen,
        };
        let Some((record, stored_len)) = self.pool.read_here(|conn| objects::object(conn, key))? else {
            return Ok(None);
        };
        let record = Arc::new(record);
        self.cache.insert(Arc::clone(&record), stored_len, seen);
        Ok(Some(record))
    }

    async fn objects_of_type(&self, org: &str, object_type: &str) -> StoreResult<Vec<ObjectRecord>> {
        let (org, object_type) = (org.to_string(), object_type.to_string());
        self.pool
            .read(move |conn| objects::of_type(conn, &org, &object_type))
            .await
    }

    async fn objects_of_org(&self, org: &str) -> StoreResult<Vec<ObjectRecord>> {
        let org = org.to_string();
        self.pool.read(move |conn| objects::of_org(conn, &org)).await
    }

    async fn objects_due(&self, now: i64) -> StoreResult<Vec<ObjectRecord>> {
        self.pool.read(move |conn| objects::due(conn, now)).await
    }

    async fn count_sender_objects(&self) -> StoreResult<u64> {
        self.pool.read(objects::count_sender).await
    }

    async fn write_object(&self, record: ObjectRecord, expect: Expect, drop_upload: bool) -> StoreResult<i64> {
        self.write_objects(vec![record.key()], move |conn| {
            objects::write(conn, &record, expect, drop_upload)
        })
        .await
    }

    async fn delete_object(&self, key: &ObjectKey, revision: i64) -> StoreResult<()> {
        let key = key.clone();
        self.write_objects(vec![key.clone()], move |conn| objects::delete(conn, &key, revision))
            .await
    }

    async fn upload_session(&self, key: &ObjectKey, total: u64) -> StoreResult<UploadSession> {
        let key = key.clone();
        self.pool.write(move |conn| uploads::session(conn, &key, total)).await
    }

    async fn record_chunk(&self, id: i64, start: u64, len: u64) -> StoreResult<UploadSession> {
        self.pool
            .write(move |conn| uploads::record_chunk(conn, id, start, len))
            .await
    }

    async fn sent_progress(&self, key: &ObjectKey) -> StoreResult<Option<(i64, u64)>> {
        let key = key.clone();
        self.pool.read(move |conn| uploads::sent_progress(conn, &key)).await
    }

    async fn set_sent_progress(&self, key: &ObjectKey, progress: Option<(i64, u64)>) -> StoreResult<()> {
        let key = key.clone();
        self.pool
            .write(move |conn| uploads::set_sent_progress(conn, &key, progress))
            .await
    }

    async fn upload_session_ids(&self) -> StoreResult<Vec<i64>> {
        self.pool.read(uploads::session_ids).await
    }

    async fn destinations(&self, org: &str) -> StoreResult<Vec<Destination>> {
        let org = org.to_string();
        self.pool.read(move |conn| nodes::destinations(conn, &org)).await
    }

    async fn count_destinations(&self) -> StoreResult<u64> {
        self.pool.read(nodes::count_destinations).await
    }

    async fn destination_statuses(&self, key: &ObjectKey) -> StoreResult<Vec<DestinationStatus>> {
        let key = key.clone();
        self.pool
            .read(move |conn| nodes::destination_statuses(conn, &key))
            .await
    }

    async fn objects_for_destination(
        &self,
        org: &str,
        dest_type: &str,
        dest_id: &str,
    ) -> StoreResult<Vec<ObjectDeliveryView>> {
        let (org, dest_type, dest_id) = (org.to_string(), dest_type.to_string(), dest_id.to_string());
        self.pool
            .read(move |conn| nodes::objects_for_destination(conn, &org, &dest_type, &dest_id))
            .await
    }

    async fn delivery_counts(&self, org: &str, ids: Vec<(String, String)>) -> StoreResult<Vec<DeliveryCount>> {
        let org = org.to_string();
        self.pool
            .read(move |conn| fleet::delivery_counts(conn, &org, &ids))
            .await
    }

    async fn delivery_page(&self, key: &ObjectKey, page: &PageRequest) -> StoreResult<Paged<DeliveryRow>> {
        let (key, page) = (key.clone(), page.clone());
        self.pool
            .read(move |conn| fleet::delivery_page(conn, &key, &page))
            .await
    }

    async fn nodes_last_seen(&self) -> StoreResult<Vec<(Destination, i64)>> {
        self.pool.read(fleet::nodes_last_seen).await
    }

    async fn node_page(&self, org: &str, page: &PageRequest) -> StoreResult<Paged<NodeRow>> {
        let (org, page) = (org.to_string(), page.clone());
        self.pool.read(move |conn| fleet::node_page(conn, &org, &page)).await
    }

    async fn organizations(&self) -> StoreResult<Vec<Organization>> {
        self.pool.read(admin::organizations).await
    }

    async fn put_organization(&self, org: Organization) -> StoreResult<()> {
        self.pool.write(move |conn| admin::put_organization(conn, &org)).await
    }

    async fn delete_organization(&self, org: &str) -> StoreResult<Vec<String>> {
        let org = org.to_string();
        let (cache, nodes) = (Arc::clone(&self.cache), Arc::clone(&self.nodes));
        self.pool
            .write_then(
                move |conn| admin::delete_organization(conn, &org),
                move || {
                    cache.clear();
                    nodes.clear();
                },
            )
            .await
    }

    async fn webhooks(&self, org: &str, object_type: &str) -> StoreResult<Vec<String>> {
        let (org, object_type) = (org.to_string(), object_type.to_string());
        self.pool
            .read(move |conn| admin::webhooks(conn, &org, &object_type))
            .await
    }

    async fn add_webhook(&self, org: &str, object_type: &str, url: &str) -> StoreResult<()> {
        let (org, object_type, url) = (org.to_string(), object_type.to_string(), url.to_string());
        self.pool
            .write(move |conn| admin::add_webhook(conn, &org, &object_type, &url))
            .await
    }

    async fn remove_webhook(&self, org: &str, object_type: &str, url: &str) -> StoreResult<()> {
        let (org, object_type, url) = (org.to_string(), object_type.to_string(), url.to_string());
        self.pool
            .write(move |conn| admin::remove_webhook(conn, &org, &object_type, &url))
            .await
    }

    async fn acl(&self, org: &str, kind: AclKind, key: &str) -> StoreResult<Vec<AclEntry>> {
        let (org, key) = (org.to_string(), key.to_string());
        self.pool.read(move |conn| admin::acl(conn, &org, kind, &key)).await
    }

    async fn acl_keys(&self, org: &str, kind: AclKind) -> StoreResult<Vec<String>> {
        let org = org.to_string();
        self.pool.read(move |conn| admin::acl_keys(conn, &org, kind)).await
    }

    async fn change_acl(
        &self,
        org: &str,
        kind: AclKind,
        key: &str,
        add: Vec<AclEntry>,
        remove: Vec<(AclUserType, String)>,
    ) -> StoreResult<()> {
        let (org, key) = (org.to_string(), key.to_string());
        self.pool
            .write(move |conn| admin::change_acl(conn, &org, kind, &key, &add, &remove))
            .await
    }

    async fn apply(&self, ops: Vec<StoreOp>) -> StoreResult<()> {
        let written: Vec<ObjectKey> = ops.iter().filter_map(StoreOp::written_object).collect();
        let queued: Vec<(String, Remote)> = ops.iter().filter_map(queued_for).collect();
        let (cache, nodes) = (Arc::clone(&self.cache), Arc::clone(&self.nodes));
        let settled = move || {
            cache.invalidate(&written);
            if !queued.is_empty() {
                nodes.records_written(queued.iter().map(|(org, remote)| (org.as_str(), remote)));
            }
        };
        let work = move |conn: &rusqlite::Connection| {
            for op in &ops {
                objects::apply_op(conn, op)?;
            }
            Ok(())
        };
        self.pool.write_then(work, settled).await
    }

    async fn notification(&self, key: &ObjectKey, remote: &Remote) -> StoreResult<Option<Notification>> {
        let (key, remote) = (key.clone(), remote.clone());
        self.pool
            .read(move |conn| nodes::notification(conn, &key, &remote))
            .await
    }

    async fn notifications_of_object(&self, key: &ObjectKey) -> StoreResult<Vec<Notification>> {
        let key = key.clone();
        self.pool
            .read(move |conn| nodes::notifications_of_object(conn, &key))
            .await
    }

    async fn notifications_for_remote(&self, org: &str, remote: &Remote) -> StoreResult<Vec<Notification>> {
        let (org, remote) = (org.to_string(), remote.clone());
        self.pool
            .read(move |conn| nodes::notifications_for_remote(conn, &org, &remote))
            .await
    }

    async fn notifications_awaiting_poll(&self, org: &str, remote: &Remote) -> StoreResult<Vec<Notification>> {
        let Err(seen) = self.nodes.nothing_awaiting(org, remote) else {
            return Ok(Vec::new());
        };
        let (owned_org, owned_remote) = (org.to_string(), remote.clone());
        let records = self
            .pool
            .read(move |conn| nodes::notifications_awaiting_poll(conn, &owned_org, &owned_remote))
            .await?;
        if records.is_empty() {
            self.nodes.keep_nothing_awaiting(org, remote, seen);
        }
        Ok(records)
    }

    async fn due_notifications(&self, now: i64) -> StoreResult<Vec<Notification>> {
        self.pool.read(move |conn| nodes::due_notifications(conn, now)).await
    }

    async fn upsert_destination(&self, destination: Destination, now: i64) -> StoreResult<()> {
        let remote = Remote {
            dest_type: destination.dest_type.clone(),
            dest_id: destination.dest_id.clone(),
        };
        let org = destination.org.clone();
        self.write_node(&org, &remote, move |conn| {
            nodes::upsert_destination(conn, &destination, now)
        })
        .await
    }

    async fn destination(&self, org: &str, remote: &Remote) -> StoreResult<Option<Destination>> {
        let seen = match self.nodes.registration(org, remote) {
            Ok(registration) => return Ok(registration),
            Err(seen) => seen,
        };
        let (owned_org, owned_remote) = (org.to_string(), remote.clone());
        let registration = self
            .pool
            .read(move |conn| nodes::destination(conn, &owned_org, &owned_remote))
            .await?;
        self.nodes.keep_registration(org, remote, registration.clone(), seen);
        Ok(registration)
    }

    async fn touch_destination(&self, org: &str, remote: &Remote, now: i64) -> StoreResult<bool> {
        let (org, remote) = (org.to_string(), remote.clone());
        self.pool
            .write(move |conn| nodes::touch_destination(conn, &org, &remote, now))
            .await
    }

    async fn remove_destination(&self, org: &str, remote: &Remote) -> StoreResult<()> {
        let (owned_org, owned_remote) = (org.to_string(), remote.clone());
        self.write_node(org, remote, move |conn| {
            nodes::remove_destination(conn, &owned_org, &owned_remote)
        })
        .await
    }

    async fn inactive_destinations(&self, before: i64) -> StoreResult<Vec<Destination>> {
        self.pool
            .read(move |conn| nodes::inactive_destinations(conn, before))
            .await
    }

    async fn referenced_blobs(&self) -> StoreResult<Vec<String>> {
        self.pool.read(objects::referenced_blobs).await
    }

    async fn max_instance_id(&self) -> StoreResult<i64> {
        self.pool.read(objects::max_instance_id).await
    }

    /// Waits for queued writes and stops the writer thread.
    fn close(&self) {
        self.pool.close();
    }

    async fn object_totals(&self) -> StoreResult<ObjectTotals> {
        self.pool.read(objects::totals).await
    }

    async fn unacknowledged_notifications(&self, limit: usize) -> StoreResult<Vec<UnacknowledgedCount>> {
        let sql = nodes::unacknowledged_sql();
        let limit = i64::try_from(limit).unwrap_or(i64::MAX);
        self.pool
            .read(move |conn| nodes::unacknowledged(conn, &sql, limit))
            .await
    }
}

#[cfg(test)]
mod tests;
