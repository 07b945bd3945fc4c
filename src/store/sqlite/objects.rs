//! Object records, the totals over them, and the operations of an atomic batch.

use super::{nodes, uploads};
use crate::model::{MetaData, ObjectKey, ObjectRecord, ObjectStatus};
use crate::store::{Expect, ObjectTotals, StoreError, StoreOp, StoreResult};
use rusqlite::{params, Connection, OptionalExtension, Row};

/// The columns of an object record, in the order [`object_from_row`] reads them.
macro_rules! object_columns {
    () => {
        "meta, status, sender, remaining_consumers, remaining_receivers, policy_received, blob, revision"
    };
}
const OBJECT_COLUMNS: &str = object_columns!();
/// The most frequent query, put together at compile time so that no call formats it.
const OBJECT_BY_KEY: &str = concat!(
    "SELECT ",
    object_columns!(),
    " FROM objects WHERE org = ?1 AND object_type = ?2 AND object_id = ?3"
);

fn object_from_row(row: &Row<'_>) -> rusqlite::Result<Result<ObjectRecord, StoreError>> {
    let meta_json: String = row.get(0)?;
    let status_text: String = row.get(1)?;
    let meta: MetaData = match serde_json::from_str(&meta_json) {
        Ok(meta) => meta,
        Err(e) => return Ok(Err(StoreError::Corrupt(format!("object metadata: {e}")))),
    };
    let Some(status) = ObjectStatus::parse(&status_text) else {
        return Ok(Err(StoreError::Corrupt(format!("object status {status_text:?}"))));
    };
    Ok(Ok(ObjectRecord {
        meta,
        status,
        sender: row.get(2)?,
        remaining_consumers: row.get(3)?,
        remaining_receivers: row.get(4)?,
        policy_received: row.get(5)?,
        blob: row.get(6)?,
        revision: row.get(7)?,
    }))
}

fn query_objects(conn: &Connection, sql: &str, args: &[&dyn rusqlite::ToSql]) -> StoreResult<Vec<ObjectRecord>> {
    let mut statement = conn.prepare_cached(sql)?;
    let rows = statement.query_map(args, object_from_row)?;
    let mut records = Vec::new();
    for row in rows {
        records.push(row??);
    }
    Ok(records)
}

/// One object by key, with the length of its stored metadata (what keeping it costs).
pub(super) fn object(conn: &Connection, key: &ObjectKey) -> StoreResult<Option<(ObjectRecord, usize)>> {
    let mut statement = conn.prepare_cached(OBJECT_BY_KEY)?;
    let mut rows = statement.query(params![key.org, key.object_type, key.object_id])?;
    let Some(row) = rows.next()? else {
        return Ok(None);
    };
    let stored_len = row.get_ref(0)?.as_str().map_or(0, str::len);
    Ok(Some((object_from_row(row)??, stored_len)))
}

pub(super) fn of_type(conn: &Connection, org: &str, object_type: &str) -> StoreResult<Vec<ObjectRecord>> {
    let sql = format!("SELECT {OBJECT_COLUMNS} FROM objects WHERE org = ?1 AND object_type = ?2 ORDER BY object_id");
    query_objects(conn, &sql, &[&org, &object_type])
}

pub(super) fn of_org(conn: &Connection, org: &str) -> StoreResult<Vec<ObjectRecord>> {
    let sql = format!("SELECT {OBJECT_COLUMNS} FROM objects WHERE org = ?1 ORDER BY object_type, object_id");
    query_objects(conn, &sql, &[&org])
}

pub(super) fn due(conn: &Connection, now: i64) -> StoreResult<Vec<ObjectRecord>> {
    query_objects(
        conn,
        &format!("SELECT {OBJECT_COLUMNS} FROM objects WHERE due_at <= ?1 ORDER BY due_at"),
        &[&now],
    )
}

/// The objects this node sends, for filling in `due_at` of a database written before the
/// column existed (only sent objects expire or activate here).
pub(super) fn sent(conn: &Connection) -> StoreResult<Vec<ObjectRecord>> {
    query_objects(
        conn,
        &format!("SELECT {OBJECT_COLUMNS} FROM objects WHERE sender = 1"),
        &[],
    )
}

pub(super) fn count_sender(conn: &Connection) -> StoreResult<u64> {
    let count: i64 = conn.query_row("SELECT COUNT(*) FROM objects WHERE sender = 1", [], |r| r.get(0))?;
    Ok(u64::try_from(count).unwrap_or(0))
}

pub(super) fn totals(conn: &Connection) -> StoreResult<ObjectTotals> {
    // The size lives in the metadata JSON only; one pass over the table.
    let (objects, bytes): (i64, i64) = conn.query_row(
        "SELECT COUNT(*), COALESCE(SUM(CASE WHEN blob IS NOT NULL
             THEN json_extract(meta, '$.objectSize') END), 0) FROM objects",
        [],
        |r| Ok((r.get(0)?, r.get(1)?)),
    )?;
    Ok(ObjectTotals {
        objects: u64::try_from(objects).unwrap_or(0),
        data_bytes: u64::try_from(bytes).unwrap_or(0),
    })
}

pub(super) fn referenced_blobs(conn: &Connection) -> StoreResult<Vec<String>> {
    let mut statement = conn.prepare("SELECT blob FROM objects WHERE blob IS NOT NULL")?;
    let blobs = statement.query_map([], |r| r.get(0))?;
    Ok(blobs.collect::<rusqlite::Result<Vec<String>>>()?)
}

pub(super) fn max_instance_id(conn: &Connection) -> StoreResult<i64> {
    Ok(conn.query_row("SELECT COALESCE(MAX(instance_id), 0) FROM objects", [], |r| r.get(0))?)
}

fn write_object_row(conn: &Connection, record: &ObjectRecord, expect: Expect) -> StoreResult<i64> {
    let meta = serde_json::to_string(&record.meta).map_err(|e| StoreError::Corrupt(e.to_string()))?;
    let key = record.key();
    let new_revision = match expect {
        Expect::Absent => 1,
        Expect::Revision(revision) => revision + 1,
    };
    let values = params![
        key.org,
        key.object_type,
        key.object_id,
        meta,
        record.status.as_str(),
        record.sender,
        record.remaining_consumers,
        record.remaining_receivers,
        record.policy_received,
        record.blob,
        record.meta.instance_id,
        new_revision,
        record.lifecycle_due(),
    ];
    let changed = match expect {
        Expect::Absent => conn.execute(
            "INSERT INTO objects (org, object_type, object_id, meta, status, sender, remaining_consumers,
                remaining_receivers, policy_received, blob, instance_id, revision, due_at)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13) ON CONFLICT DO NOTHING",
            values,
        )?,
        Expect::Revision(revision) => {
            let mut statement = conn.prepare_cached(
                "UPDATE objects SET meta = ?4, status = ?5, sender = ?6, remaining_consumers = ?7,
                    remaining_receivers = ?8, policy_received = ?9, blob = ?10, instance_id = ?11, revision = ?12,
                    due_at = ?14
                 WHERE org = ?1 AND object_type = ?2 AND object_id = ?3 AND revision = ?13",
            )?;
            statement.execute(params![
                key.org,
                key.object_type,
                key.object_id,
                meta,
                record.status.as_str(),
                record.sender,
                record.remaining_consumers,
                record.remaining_receivers,
                record.policy_received,
                record.blob,
                record.meta.instance_id,
                new_revision,
                revision,
                record.lifecycle_due(),
            ])?
        }
    };
    if changed == 0 {
        return Err(StoreError::Conflict);
    }
    Ok(new_revision)
}

/// Writes `record` if the stored one still matches `expect`; the new revision.
pub(super) fn write(conn: &Connection, record: &ObjectRecord, expect: Expect, drop_upload: bool) -> StoreResult<i64> {
    let revision = write_object_row(conn, record, expect)?;
    if drop_upload {
        uploads::delete_session(conn, &record.key())?;
    }
    Ok(revision)
}

/// Removes an object that still has `revision`, with its upload session, notification
/// records and delivery rows.
pub(super) fn delete(conn: &Connection, key: &ObjectKey, revision: i64) -> StoreResult<()> {
    let removed = conn
        .prepare_cached("DELETE FROM objects WHERE org = ?1 AND object_type = ?2 AND object_id = ?3 AND revision = ?4")?
        .execute(params![key.org, key.object_type, key.object_id, revision])?;
    if removed == 0 {
        return Err(StoreError::Conflict);
    }
    uploads::delete_session(conn, key)?;
    for table in ["object_destinations", "notifications", "sent_progress"] {
        conn.prepare_cached(&format!(
            "DELETE FROM {table} WHERE org = ?1 AND object_type = ?2 AND object_id = ?3"
        ))?
        .execute(params![key.org, key.object_type, key.object_id])?;
    }
    Ok(())
}

/// One operation of [`crate::store::Store::apply`]; the whole batch shares the writer's
/// transaction, so a failed check undoes the operations before it.
pub(super) fn apply_op(conn: &Connection, op: &StoreOp) -> StoreResult<()> {
    match op {
        StoreOp::WriteObject {
            record,
            expect,
            drop_upload,
        } => {
            write(conn, record, *expect, *drop_upload)?;
        }
        StoreOp::DeleteObject { key, revision } => delete(conn, key, *revision)?,
        StoreOp::PutNotification(n) => nodes::put_notification(conn, n)?,
        StoreOp::DeleteNotification { key, remote } => nodes::delete_notification(conn, key, remote)?,
        StoreOp::ExpectObject { key, revision } => {
            let stored: Option<i64> = conn
                .prepare_cached("SELECT revision FROM objects WHERE org = ?1 AND object_type = ?2 AND object_id = ?3")?
                .query_row(params![key.org, key.object_type, key.object_id], |row| row.get(0))
                .optional()?;
            if stored != Some(*revision) {
                return Err(StoreError::Conflict);
            }
        }
        StoreOp::ExpectNotification {
            key,
            remote,
            status,
            instance_id,
        } => nodes::expect_notification(conn, key, remote, *status, *instance_id)?,
        StoreOp::DeleteNotificationsOf(key) => nodes::delete_notifications_of(conn, key)?,
        StoreOp::SetDelivery {
            key,
            remote,
            status,
            message,
            at,
        } => nodes::set_delivery(conn, key, remote, *status, message, *at)?,
        StoreOp::DeleteDelivery { key, remote } => nodes::delete_delivery(conn, key, remote)?,
    }
    Ok(())
}
