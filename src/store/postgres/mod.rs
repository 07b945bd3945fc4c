//! The PostgreSQL store: the same tables and semantics as the SQLite store, in a database that
//! several CSS instances can share. Metadata is kept as JSON text beside the columns that
//! queries filter on; object data is in the database too ([`data`]) unless the CSS is told
//! to keep it in files ([`super::blobs`]).
//!
//! Transactions run at PostgreSQL's default `READ COMMITTED` level. Revision checks are part
//! of the writing statement itself (`UPDATE … WHERE revision = $n`, `INSERT … ON CONFLICT DO
//! NOTHING`, `DELETE … WHERE revision = $n`): a concurrent writer of the same row waits for the
//! row lock and then sees the new revision, so the check and the write are one atomic step,
//! and a failed check rolls the whole [`Store::apply`] batch back. Read-modify-write calls
//! (chunk ranges, ACL changes) lock what they read first. A deadlock or serialization failure
//! reported by the server is a [`StoreError::Conflict`], which callers already retry.
//!
//! Modules: [`schema`] (versioned migrations), `connect` (pool and TLS), then the queries by
//! subject: `objects`, `batch` (the operations of [`Store::apply`]), `uploads`, `nodes`
//! (destinations, deliveries, notifications), `admin` (organizations, webhooks, ACLs), and
//! `cluster` (what instances sharing the database coordinate through: the leader lease,
//! instance ID slots, wake-up messages).

mod admin;
mod batch;
mod cluster;
pub use cluster::WakeupListener;
mod connect;
mod data;
mod fleet;
pub use data::DatabaseData;
mod nodes;
mod objects;
pub mod schema;
mod uploads;

use super::fleet::{DeliveryCount, DeliveryRow, NodeRow, PageRequest, Paged};
use super::{Expect, Store, StoreError, StoreOp, StoreResult, UploadSession};
use crate::model::acl::{AclEntry, AclKind, AclUserType};
use crate::model::sync::{Notification, Remote};
use crate::model::{Destination, DestinationStatus, ObjectDeliveryView, ObjectKey, ObjectRecord, Organization};
use async_trait::async_trait;
use deadpool_postgres::{GenericClient, Object, Pool, PoolError};
use std::sync::Arc;
use std::time::Duration;
use tokio_postgres::error::SqlState;
use tokio_postgres::types::ToSql;
use tokio_postgres::Row;

/// PostgreSQL-backed [`Store`].
pub struct PostgresStore {
    pool: Pool,
    connector: connect::Connector,
}

impl PostgresStore {
    /// Connects to the database of `url` (a `postgres://` URL or key=value string), over TLS
    /// with `tls` unless the URL says `sslmode=disable`, and brings its schema up to date. An
    /// unreachable server is retried for `connect_budget`; a refusal by the server (wrong
    /// password, unknown database) fails at once. The flag tells whether the schema was
    /// created now.
    pub async fn connect(
        url: &str,
        tls: Option<Arc<rustls::ClientConfig>>,
        connect_budget: Duration,
    ) -> StoreResult<(Self, bool)> {
        let connector = connect::Connector::new(url, tls)?;
        let pool = connect::pool(&connector, connect::MAX_CONNECTIONS)?;
        let mut client = connect::first_connection(&pool, connect_budget).await?;
        let created = schema::migrate(&mut client).await?;
        Ok((Self { pool, connector }, created))
    }

    /// The connection pool, for what goes beyond the [`Store`] contract (leader election,
    /// `LISTEN`/`NOTIFY`).
    pub fn pool(&self) -> &Pool {
        &self.pool
    }

    /// Object data in this database, over a pool of its own (see [`data`]).
    pub fn data(&self) -> StoreResult<DatabaseData> {
        Ok(DatabaseData::new(connect::pool(
            &self.connector,
            data::DATA_CONNECTIONS,
        )?))
    }

    async fn client(&self) -> StoreResult<Object> {
        Ok(self.pool.get().await?)
    }
}

/// A driver error whose message says what the server or the connection reported (the
/// driver's own says only "db error" for everything the server refused).
#[derive(Debug)]
pub struct PostgresError(pub tokio_postgres::Error);

impl std::fmt::Display for PostgresError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        if let Some(db) = self.0.as_db_error() {
            return write!(f, "{db}");
        }
        write!(f, "{}", self.0)?;
        match std::error::Error::source(&self.0) {
            Some(cause) => write!(f, ": {cause}"),
            None => Ok(()),
        }
    }
}

impl std::error::Error for PostgresError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        Some(&self.0)
    }
}

impl From<tokio_postgres::Error> for StoreError {
    fn from(e: tokio_postgres::Error) -> Self {
        match e.code() {
            Some(code) if *code == SqlState::T_R_SERIALIZATION_FAILURE || *code == SqlState::T_R_DEADLOCK_DETECTED => {
                StoreError::Conflict
            }
            Some(code)
                if *code == SqlState::ADMIN_SHUTDOWN
                    || *code == SqlState::CRASH_SHUTDOWN
                    || *code == SqlState::CANNOT_CONNECT_NOW =>
            {
                StoreError::Unavailable(PostgresError(e).to_string())
            }
            Some(code) if *code == SqlState::DISK_FULL => StoreError::Full,
            None if is_connection_failure(&e) => StoreError::Unavailable(PostgresError(e).to_string()),
            _ => StoreError::Backend(Box::new(PostgresError(e))),
        }
    }
}

/// The connection to the server was lost or could not be made (not a refused statement).
fn is_connection_failure(error: &tokio_postgres::Error) -> bool {
    if error.is_closed() {
        return true;
    }
    let mut source = std::error::Error::source(error);
    while let Some(cause) = source {
        if cause.is::<std::io::Error>() {
            return true;
        }
        source = cause.source();
    }
    false
}

impl From<PoolError> for StoreError {
    fn from(e: PoolError) -> Self {
        match e {
            PoolError::Closed => StoreError::Closed,
            PoolError::Backend(e) => e.into(),
            PoolError::Timeout(_) => StoreError::Unavailable(e.to_string()),
            other => StoreError::Backend(Box::new(other)),
        }
    }
}

type Params<'a> = [&'a (dyn ToSql + Sync)];

/// Runs a query through the connection's statement cache.
async fn query(client: &impl GenericClient, sql: &str, params: &Params<'_>) -> StoreResult<Vec<Row>> {
    let statement = client.prepare_cached(sql).await?;
    Ok(client.query(&statement, params).await?)
}

/// Runs a statement through the connection's statement cache; the number of rows it changed.
async fn execute(client: &impl GenericClient, sql: &str, params: &Params<'_>) -> StoreResult<u64> {
    let statement = client.prepare_cached(sql).await?;
    Ok(client.execute(&statement, params).await?)
}

/// A count as an unsigned number.
fn count(rows: &[Row]) -> StoreResult<u64> {
    let value: i64 = match rows.first() {
        Some(row) => row.try_get(0)?,
        None => 0,
    };
    Ok(u64::try_from(value).unwrap_or(0))
}

/// The first column of every row.
fn column<T: for<'a> tokio_postgres::types::FromSql<'a>>(rows: &[Row]) -> StoreResult<Vec<T>> {
    rows.iter().map(|row| Ok(row.try_get(0)?)).collect()
}

fn to_i64(value: u64) -> i64 {
    i64::try_from(value).unwrap_or(i64::MAX)
}

/// Runs `$body` (which uses `$tx`) in a transaction of a pooled connection and commits it;
/// an error returned from the body drops the transaction, which rolls it back.
macro_rules! in_transaction {
    ($store:expr, |$tx:ident| $body:expr) => {{
        let mut client = $store.client().await?;
        let $tx = client.transaction().await?;
        let value = $body;
        $tx.commit().await?;
        Ok(value)
    }};
}

#[async_trait]
impl Store for PostgresStore {
    async fn object(&self, key: &ObjectKey) -> StoreResult<Option<ObjectRecord>> {
        objects::object(&self.client().await?, key).await
    }

    async fn objects_of_type(&self, org: &str, object_type: &str) -> StoreResult<Vec<ObjectRecord>> {
        objects::of_type(&self.client().await?, org, object_type).await
    }

    async fn objects_of_org(&self, org: &str) -> StoreResult<Vec<ObjectRecord>> {
        objects::of_org(&self.client().await?, org).await
    }

    async fn objects_due(&self, now: i64) -> StoreResult<Vec<ObjectRecord>> {
        objects::due(&self.client().await?, now).await
    }

    async fn count_sender_objects(&self) -> StoreResult<u64> {
        count(&query(&self.client().await?, "SELECT COUNT(*) FROM objects WHERE sender", &[]).await?)
    }

    async fn write_object(&self, record: ObjectRecord, expect: Expect, drop_upload: bool) -> StoreResult<i64> {
        in_transaction!(self, |tx| objects::write(&tx, &record, expect, drop_upload).await?)
    }

    async fn delete_object(&self, key: &ObjectKey, revision: i64) -> StoreResult<()> {
        in_transaction!(self, |tx| objects::delete(&tx, key, revision).await?)
    }

    async fn upload_session(&self, key: &ObjectKey, total: u64) -> StoreResult<UploadSession> {
        in_transaction!(self, |tx| uploads::session(&tx, key, total).await?)
    }

    async fn record_chunk(&self, id: i64, start: u64, len: u64) -> StoreResult<UploadSession> {
        in_transaction!(self, |tx| uploads::record_chunk(&tx, id, start, len).await?)
    }

    async fn sent_progress(&self, key: &ObjectKey) -> StoreResult<Option<(i64, u64)>> {
        uploads::sent_progress(&self.client().await?, key).await
    }

    async fn set_sent_progress(&self, key: &ObjectKey, progress: Option<(i64, u64)>) -> StoreResult<()> {
        uploads::set_sent_progress(&self.client().await?, key, progress).await
    }

    async fn upload_session_ids(&self) -> StoreResult<Vec<i64>> {
        column(&query(&self.client().await?, "SELECT id FROM uploads ORDER BY id", &[]).await?)
    }

    async fn destinations(&self, org: &str) -> StoreResult<Vec<Destination>> {
        nodes::destinations(&self.client().await?, org).await
    }

    async fn object_totals(&self) -> StoreResult<super::ObjectTotals> {
        let client = self.client().await?;
        // The size lives in the metadata JSON only, as in the SQLite store.
        let rows = query(
            &client,
            "SELECT COUNT(*), COALESCE(SUM(CASE WHEN blob IS NOT NULL
                 THEN (meta::jsonb ->> 'objectSize')::bigint END), 0)::bigint FROM objects",
            &[],
        )
        .await?;
        let (objects, bytes): (i64, i64) = match rows.first() {
            Some(row) => (row.try_get(0)?, row.try_get(1)?),
            None => (0, 0),
        };
        Ok(super::ObjectTotals {
            objects: u64::try_from(objects).unwrap_or(0),
            data_bytes: u64::try_from(bytes).unwrap_or(0),
        })
    }

    async fn unacknowledged_notifications(&self, limit: usize) -> StoreResult<Vec<super::UnacknowledgedCount>> {
        let statuses: Vec<String> = crate::model::sync::NotificationStatus::unacknowledged()
            .map(|s| s.as_str().to_string())
            .collect();
        let limit = i64::try_from(limit).unwrap_or(i64::MAX);
        let rows = query(
            &self.client().await?,
            "SELECT org, remote_type, remote_id, COUNT(*) AS pending FROM notifications
             WHERE status = ANY($1) GROUP BY org, remote_type, remote_id ORDER BY pending DESC LIMIT $2",
            &[&statuses, &limit],
        )
        .await?;
        rows.iter()
            .map(|row| {
                Ok(super::UnacknowledgedCount {
                    org: row.try_get(0)?,
                    remote: Remote {
                        dest_type: row.try_get(1)?,
                        dest_id: row.try_get(2)?,
                    },
                    count: u64::try_from(row.try_get::<_, i64>(3)?).unwrap_or(0),
                })
            })
            .collect()
    }

    async fn count_destinations(&self) -> StoreResult<u64> {
        count(&query(&self.client().await?, "SELECT COUNT(*) FROM destinations", &[]).await?)
    }

    async fn destination_statuses(&self, key: &ObjectKey) -> StoreResult<Vec<DestinationStatus>> {
        nodes::destination_statuses(&self.client().await?, key).await
    }

    async fn delivery_counts(&self, org: &str, ids: Vec<(String, String)>) -> StoreResult<Vec<DeliveryCount>> {
        fleet::delivery_counts(&self.client().await?, org, &ids).await
    }

    async fn delivery_page(&self, key: &ObjectKey, page: &PageRequest) -> StoreResult<Paged<DeliveryRow>> {
        fleet::delivery_page(&self.client().await?, key, page).await
    }

    async fn nodes_last_seen(&self) -> StoreResult<Vec<(Destination, i64)>> {
        fleet::nodes_last_seen(&self.client().await?).await
    }

    async fn node_page(&self, org: &str, page: &PageRequest) -> StoreResult<Paged<NodeRow>> {
        fleet::node_page(&self.client().await?, org, page).await
    }

    async fn objects_for_destination(
        &self,
        org: &str,
        dest_type: &str,
        dest_id: &str,
    ) -> StoreResult<Vec<ObjectDeliveryView>> {
        nodes::objects_for_destination(&self.client().await?, org, dest_type, dest_id).await
    }

    async fn organizations(&self) -> StoreResult<Vec<Organization>> {
        admin::organizations(&self.client().await?).await
    }

    async fn put_organization(&self, org: Organization) -> StoreResult<()> {
        admin::put_organization(&self.client().await?, &org).await
    }

    async fn delete_organization(&self, org: &str) -> StoreResult<Vec<String>> {
        in_transaction!(self, |tx| admin::delete_organization(&tx, org).await?)
    }

    async fn webhooks(&self, org: &str, object_type: &str) -> StoreResult<Vec<String>> {
        let sql = "SELECT url FROM webhooks WHERE org = $1 AND object_type = $2 ORDER BY url";
        column(&query(&self.client().await?, sql, &[&org, &object_type]).await?)
    }

    async fn add_webhook(&self, org: &str, object_type: &str, url: &str) -> StoreResult<()> {
        let sql = "INSERT INTO webhooks (org, object_type, url) VALUES ($1, $2, $3) ON CONFLICT DO NOTHING";
        execute(&self.client().await?, sql, &[&org, &object_type, &url]).await?;
        Ok(())
    }

    async fn remove_webhook(&self, org: &str, object_type: &str, url: &str) -> StoreResult<()> {
        let sql = "DELETE FROM webhooks WHERE org = $1 AND object_type = $2 AND lower(url) = lower($3)";
        execute(&self.client().await?, sql, &[&org, &object_type, &url]).await?;
        Ok(())
    }

    async fn acl(&self, org: &str, kind: AclKind, key: &str) -> StoreResult<Vec<AclEntry>> {
        admin::acl(&self.client().await?, org, kind, key).await
    }

    async fn acl_keys(&self, org: &str, kind: AclKind) -> StoreResult<Vec<String>> {
        let sql = "SELECT DISTINCT key FROM acls WHERE org = $1 AND kind = $2 ORDER BY key";
        column(&query(&self.client().await?, sql, &[&org, &kind.as_str()]).await?)
    }

    async fn change_acl(
        &self,
        org: &str,
        kind: AclKind,
        key: &str,
        add: Vec<AclEntry>,
        remove: Vec<(AclUserType, String)>,
    ) -> StoreResult<()> {
        in_transaction!(self, |tx| admin::change_acl(&tx, org, kind, key, &add, &remove).await?)
    }

    async fn apply(&self, ops: Vec<StoreOp>) -> StoreResult<()> {
        in_transaction!(self, |tx| batch::apply(&tx, &ops).await?)
    }

    async fn notification(&self, key: &ObjectKey, remote: &Remote) -> StoreResult<Option<Notification>> {
        nodes::notification(&self.client().await?, key, remote).await
    }

    async fn notifications_of_object(&self, key: &ObjectKey) -> StoreResult<Vec<Notification>> {
        nodes::notifications_of_object(&self.client().await?, key).await
    }

    async fn notifications_for_remote(&self, org: &str, remote: &Remote) -> StoreResult<Vec<Notification>> {
        nodes::notifications_for_remote(&self.client().await?, org, remote).await
    }

    async fn notifications_awaiting_poll(&self, org: &str, remote: &Remote) -> StoreResult<Vec<Notification>> {
        nodes::notifications_awaiting_poll(&self.client().await?, org, remote).await
    }

    async fn due_notifications(&self, now: i64) -> StoreResult<Vec<Notification>> {
        nodes::due_notifications(&self.client().await?, now).await
    }

    async fn upsert_destination(&self, destination: Destination, now: i64) -> StoreResult<()> {
        nodes::upsert_destination(&self.client().await?, &destination, now).await
    }

    async fn destination(&self, org: &str, remote: &Remote) -> StoreResult<Option<Destination>> {
        nodes::destination(&self.client().await?, org, remote).await
    }

    async fn touch_destination(&self, org: &str, remote: &Remote, now: i64) -> StoreResult<bool> {
        let sql = "UPDATE destinations SET last_seen = $4 WHERE org = $1 AND dest_type = $2 AND dest_id = $3";
        let params: &Params<'_> = &[&org, &remote.dest_type, &remote.dest_id, &now];
        Ok(execute(&self.client().await?, sql, params).await? > 0)
    }

    async fn remove_destination(&self, org: &str, remote: &Remote) -> StoreResult<()> {
        in_transaction!(self, |tx| nodes::remove_destination(&tx, org, remote).await?)
    }

    async fn inactive_destinations(&self, before: i64) -> StoreResult<Vec<Destination>> {
        nodes::inactive_destinations(&self.client().await?, before).await
    }

    async fn referenced_blobs(&self) -> StoreResult<Vec<String>> {
        column(
            &query(
                &self.client().await?,
                "SELECT blob FROM objects WHERE blob IS NOT NULL",
                &[],
            )
            .await?,
        )
    }

    async fn max_instance_id(&self) -> StoreResult<i64> {
        let rows = query(
            &self.client().await?,
            "SELECT COALESCE(MAX(instance_id), 0)::BIGINT FROM objects",
            &[],
        )
        .await?;
        Ok(column::<i64>(&rows)?.first().copied().unwrap_or(0))
    }

    /// Closes the pool: connections in use are closed when they are returned.
    fn close(&self) {
        self.pool.close();
    }
}
