//! The operations of an atomic batch ([`crate::store::Store::apply`]), applied in order.
//!
//! Publishing an object to a fleet queues, for every addressed node, a delivery status and a
//! notification record: one statement each would be two round trips per node inside the
//! commit (10,000 nodes: 20,000 statements, most of a second). So a run of consecutive upserts
//! of those two kinds is written as one `INSERT … SELECT FROM unnest(…) ON CONFLICT DO UPDATE`
//! per table and per [`ROWS_PER_STATEMENT`] rows. That keeps the batch's meaning exactly:
//! - the two kinds write different tables and read nothing, so which table is written first
//!   within a run cannot be seen once the batch commits; every other operation still ends a
//!   run, so what comes before or after one is applied before or after all of it;
//! - within a run, a record written more than once is written with its last value, as
//!   writing them one after the other would leave it (PostgreSQL refuses a statement that
//!   updates one row twice, so the earlier values are dropped before the statement).

use super::{execute, objects, query, Params};
use crate::model::sync::{Notification, Remote};
use crate::model::{DeliveryStatus, ObjectKey};
use crate::store::{StoreError, StoreOp, StoreResult};
use deadpool_postgres::Transaction;
use std::collections::HashSet;
use std::hash::Hash;

/// Rows written by one statement at most: large enough that a fleet's records take a few
/// round trips, small enough that one statement's parameters stay a few hundred kB.
const ROWS_PER_STATEMENT: usize = 5_000;

/// Applies `ops` in order, each run of consecutive upserts as a few statements.
pub(super) async fn apply(tx: &Transaction<'_>, ops: &[StoreOp]) -> StoreResult<()> {
    let mut rest = ops;
    while let Some(first) = rest.first() {
        let run = rest.iter().take_while(|op| is_upsert(op)).count();
        if run == 0 {
            apply_op(tx, first).await?;
            rest = &rest[1..];
            continue;
        }
        let (upserts, after) = rest.split_at(run);
        write_upserts(tx, upserts).await?;
        rest = after;
    }
    Ok(())
}

/// Writes a run of upserts: each table's records in statements of many rows.
async fn write_upserts(tx: &Transaction<'_>, upserts: &[StoreOp]) -> StoreResult<()> {
    let mut notifications = Vec::new();
    let mut deliveries = Vec::new();
    for op in upserts {
        match op {
            StoreOp::PutNotification(n) => notifications.push(n),
            StoreOp::SetDelivery {
                key,
                remote,
                status,
                message,
                at,
            } => deliveries.push(Delivery {
                key,
                remote,
                status: *status,
                message,
                at: *at,
            }),
            _ => {}
        }
    }
    put_notifications(tx, notifications).await?;
    set_deliveries(tx, deliveries).await
}

/// The operations that [`apply`] groups into runs.
fn is_upsert(op: &StoreOp) -> bool {
    matches!(op, StoreOp::PutNotification(_) | StoreOp::SetDelivery { .. })
}

/// A `SetDelivery` operation's fields.
struct Delivery<'a> {
    key: &'a ObjectKey,
    remote: &'a Remote,
    status: DeliveryStatus,
    message: &'a str,
    at: i64,
}

/// The last of the items of each key, in the order of those last ones.
fn last_of_each<T, K: Hash + Eq>(items: Vec<T>, key: impl Fn(&T) -> K) -> Vec<T> {
    let mut seen = HashSet::with_capacity(items.len());
    let mut kept: Vec<T> = items.into_iter().rev().filter(|item| seen.insert(key(item))).collect();
    kept.reverse();
    kept
}

/// Writes (inserts or replaces) notification records.
async fn put_notifications(tx: &Transaction<'_>, records: Vec<&Notification>) -> StoreResult<()> {
    let records = last_of_each(records, |n| {
        (
            &n.key.org,
            &n.key.object_type,
            &n.key.object_id,
            &n.remote.dest_type,
            &n.remote.dest_id,
        )
    });
    let sql = "INSERT INTO notifications (org, object_type, object_id, remote_type, remote_id, status,
            instance_id, data_id, resend_time)
         SELECT * FROM unnest($1::text[], $2::text[], $3::text[], $4::text[], $5::text[], $6::text[],
            $7::bigint[], $8::bigint[], $9::bigint[])
         ON CONFLICT (org, object_type, object_id, remote_type, remote_id) DO UPDATE SET
            status = excluded.status, instance_id = excluded.instance_id, data_id = excluded.data_id,
            resend_time = excluded.resend_time";
    for chunk in records.chunks(ROWS_PER_STATEMENT) {
        let text = |f: fn(&Notification) -> &str| chunk.iter().map(|n| f(n)).collect::<Vec<&str>>();
        let number = |f: fn(&Notification) -> i64| chunk.iter().map(|n| f(n)).collect::<Vec<i64>>();
        let columns = (
            text(|n| &n.key.org),
            text(|n| &n.key.object_type),
            text(|n| &n.key.object_id),
            text(|n| &n.remote.dest_type),
            text(|n| &n.remote.dest_id),
            text(|n| n.status.as_str()),
            number(|n| n.instance_id),
            number(|n| n.data_id),
            number(|n| n.resend_time),
        );
        let params: &Params<'_> = &[
            &columns.0, &columns.1, &columns.2, &columns.3, &columns.4, &columns.5, &columns.6, &columns.7, &columns.8,
        ];
        execute(tx, sql, params).await?;
    }
    Ok(())
}

/// Writes (inserts or replaces) the delivery statuses of objects at nodes.
async fn set_deliveries(tx: &Transaction<'_>, deliveries: Vec<Delivery<'_>>) -> StoreResult<()> {
    let deliveries = last_of_each(deliveries, |d| {
        (
            d.key.org.as_str(),
            d.key.object_type.as_str(),
            d.key.object_id.as_str(),
            d.remote.dest_type.as_str(),
            d.remote.dest_id.as_str(),
        )
    });
    // The time of change moves only with the state (as in the embedded store).
    let sql = "INSERT INTO object_destinations (org, object_type, object_id, dest_type, dest_id, status, message, changed_at)
         SELECT * FROM unnest($1::text[], $2::text[], $3::text[], $4::text[], $5::text[], $6::text[], $7::text[], $8::bigint[])
         ON CONFLICT (org, object_type, object_id, dest_type, dest_id) DO UPDATE SET
            changed_at = CASE WHEN object_destinations.status = excluded.status
                THEN object_destinations.changed_at ELSE excluded.changed_at END,
            status = excluded.status, message = excluded.message";
    for chunk in deliveries.chunks(ROWS_PER_STATEMENT) {
        let text = |f: for<'d> fn(&'d Delivery<'d>) -> &'d str| chunk.iter().map(|d| f(d)).collect::<Vec<&str>>();
        let columns = (
            text(|d| &d.key.org),
            text(|d| &d.key.object_type),
            text(|d| &d.key.object_id),
            text(|d| &d.remote.dest_type),
            text(|d| &d.remote.dest_id),
            text(|d| d.status.as_str()),
            text(|d| d.message),
            chunk.iter().map(|d| d.at).collect::<Vec<i64>>(),
        );
        let params: &Params<'_> = &[
            &columns.0, &columns.1, &columns.2, &columns.3, &columns.4, &columns.5, &columns.6, &columns.7,
        ];
        execute(tx, sql, params).await?;
    }
    Ok(())
}

/// The key of a notification record: object key, then remote node.
fn record_params<'a>(key: &'a ObjectKey, remote: &'a Remote) -> [&'a (dyn tokio_postgres::types::ToSql + Sync); 5] {
    [
        &key.org,
        &key.object_type,
        &key.object_id,
        &remote.dest_type,
        &remote.dest_id,
    ]
}

/// One operation of the batch.
async fn apply_op(tx: &Transaction<'_>, op: &StoreOp) -> StoreResult<()> {
    match op {
        StoreOp::WriteObject {
            record,
            expect,
            drop_upload,
        } => {
            objects::write(tx, record, *expect, *drop_upload).await?;
        }
        StoreOp::DeleteObject { key, revision } => objects::delete(tx, key, *revision).await?,
        StoreOp::PutNotification(_) | StoreOp::SetDelivery { .. } => {
            write_upserts(tx, std::slice::from_ref(op)).await?;
        }
        StoreOp::DeleteNotification { key, remote } => {
            let sql = "DELETE FROM notifications WHERE org = $1 AND object_type = $2 AND object_id = $3
                 AND remote_type = $4 AND remote_id = $5";
            execute(tx, sql, &record_params(key, remote)).await?;
        }
        StoreOp::ExpectObject { key, revision } => {
            // Shared lock until the batch commits: a change of the object waits for it, other
            // guarded batches do not.
            let rows = query(
                tx,
                "SELECT revision FROM objects WHERE org = $1 AND object_type = $2 AND object_id = $3 FOR SHARE",
                &[&key.org, &key.object_type, &key.object_id],
            )
            .await?;
            let stored = match rows.first() {
                Some(row) => Some(row.try_get::<_, i64>(0)?),
                None => None,
            };
            if stored != Some(*revision) {
                return Err(StoreError::Conflict);
            }
        }
        StoreOp::ExpectNotification {
            key,
            remote,
            status,
            instance_id,
        } => {
            // Locked until the batch commits: the check holds for the writes that follow.
            let sql = "SELECT status, instance_id FROM notifications WHERE org = $1 AND object_type = $2
                 AND object_id = $3 AND remote_type = $4 AND remote_id = $5 FOR UPDATE";
            let rows = query(tx, sql, &record_params(key, remote)).await?;
            let stored = match rows.first() {
                Some(row) => Some((row.try_get::<_, String>(0)?, row.try_get::<_, i64>(1)?)),
                None => None,
            };
            if stored != Some((status.as_str().to_string(), *instance_id)) {
                return Err(StoreError::Conflict);
            }
        }
        StoreOp::DeleteNotificationsOf(key) => objects::delete_of_object(tx, "notifications", key).await?,
        StoreOp::DeleteDelivery { key, remote } => {
            let sql = "DELETE FROM object_destinations WHERE org = $1 AND object_type = $2 AND object_id = $3
                 AND dest_type = $4 AND dest_id = $5";
            execute(tx, sql, &record_params(key, remote)).await?;
        }
    }
    Ok(())
}
