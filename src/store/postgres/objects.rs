//! Object records.

use super::{execute, query, Params};
use crate::model::{MetaData, ObjectKey, ObjectRecord, ObjectStatus};
use crate::store::{Expect, StoreError, StoreResult};
use deadpool_postgres::{GenericClient, Transaction};
use tokio_postgres::Row;

const OBJECT_COLUMNS: &str =
    "meta, status, sender, remaining_consumers, remaining_receivers, policy_received, blob, revision";

fn object_from_row(row: &Row) -> StoreResult<ObjectRecord> {
    let meta_json: &str = row.try_get(0)?;
    let status_text: &str = row.try_get(1)?;
    let meta: MetaData =
        serde_json::from_str(meta_json).map_err(|e| StoreError::Corrupt(format!("object metadata: {e}")))?;
    let status = ObjectStatus::parse(status_text)
        .ok_or_else(|| StoreError::Corrupt(format!("object status {status_text:?}")))?;
    Ok(ObjectRecord {
        meta,
        status,
        sender: row.try_get(2)?,
        remaining_consumers: row.try_get(3)?,
        remaining_receivers: row.try_get(4)?,
        policy_received: row.try_get(5)?,
        blob: row.try_get(6)?,
        revision: row.try_get(7)?,
    })
}

async fn objects(client: &impl GenericClient, condition: &str, params: &Params<'_>) -> StoreResult<Vec<ObjectRecord>> {
    let sql = format!("SELECT {OBJECT_COLUMNS} FROM objects WHERE {condition}");
    query(client, &sql, params).await?.iter().map(object_from_row).collect()
}

pub(super) async fn object(client: &impl GenericClient, key: &ObjectKey) -> StoreResult<Option<ObjectRecord>> {
    let condition = "org = $1 AND object_type = $2 AND object_id = $3";
    Ok(
        objects(client, condition, &[&key.org, &key.object_type, &key.object_id])
            .await?
            .pop(),
    )
}

pub(super) async fn of_type(
    client: &impl GenericClient,
    org: &str,
    object_type: &str,
) -> StoreResult<Vec<ObjectRecord>> {
    objects(
        client,
        "org = $1 AND object_type = $2 ORDER BY object_id",
        &[&org, &object_type],
    )
    .await
}

pub(super) async fn of_org(client: &impl GenericClient, org: &str) -> StoreResult<Vec<ObjectRecord>> {
    objects(client, "org = $1 ORDER BY object_type, object_id", &[&org]).await
}

pub(super) async fn due(client: &impl GenericClient, now: i64) -> StoreResult<Vec<ObjectRecord>> {
    objects(client, "due_at <= $1 ORDER BY due_at", &[&now]).await
}

/// Inserts (`Expect::Absent`) or updates (`Expect::Revision`) an object, the revision check
/// being part of the statement; returns the new revision.
async fn write_object_row(tx: &Transaction<'_>, record: &ObjectRecord, expect: Expect) -> StoreResult<i64> {
    let meta = serde_json::to_string(&record.meta).map_err(|e| StoreError::Corrupt(e.to_string()))?;
    let key = record.key();
    let (sql, new_revision, old_revision) = match expect {
        Expect::Absent => (
            "INSERT INTO objects (org, object_type, object_id, meta, status, sender, remaining_consumers,
                remaining_receivers, policy_received, blob, instance_id, revision, due_at)
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13) ON CONFLICT DO NOTHING",
            1,
            None,
        ),
        Expect::Revision(revision) => (
            "UPDATE objects SET meta = $4, status = $5, sender = $6, remaining_consumers = $7,
                remaining_receivers = $8, policy_received = $9, blob = $10, instance_id = $11, revision = $12,
                due_at = $13
             WHERE org = $1 AND object_type = $2 AND object_id = $3 AND revision = $14",
            revision + 1,
            Some(revision),
        ),
    };
    let due_at = record.lifecycle_due();
    let status = record.status.as_str();
    let mut params: Vec<&(dyn tokio_postgres::types::ToSql + Sync)> = vec![
        &key.org,
        &key.object_type,
        &key.object_id,
        &meta,
        &status,
        &record.sender,
        &record.remaining_consumers,
        &record.remaining_receivers,
        &record.policy_received,
        &record.blob,
        &record.meta.instance_id,
        &new_revision,
        &due_at,
    ];
    if let Some(old_revision) = &old_revision {
        params.push(old_revision);
    }
    if execute(tx, sql, &params).await? == 0 {
        return Err(StoreError::Conflict);
    }
    Ok(new_revision)
}

/// Writes an object; `drop_upload` also discards its chunked upload in progress.
pub(super) async fn write(
    tx: &Transaction<'_>,
    record: &ObjectRecord,
    expect: Expect,
    drop_upload: bool,
) -> StoreResult<i64> {
    let revision = write_object_row(tx, record, expect).await?;
    if drop_upload {
        delete_of_object(tx, "uploads", &record.key()).await?;
    }
    Ok(revision)
}

/// Removes an object that still has `revision`, with its upload session, notification
/// records, delivery rows and sent progress.
pub(super) async fn delete(tx: &Transaction<'_>, key: &ObjectKey, revision: i64) -> StoreResult<()> {
    let removed = execute(
        tx,
        "DELETE FROM objects WHERE org = $1 AND object_type = $2 AND object_id = $3 AND revision = $4",
        &[&key.org, &key.object_type, &key.object_id, &revision],
    )
    .await?;
    if removed == 0 {
        return Err(StoreError::Conflict);
    }
    for table in ["uploads", "object_destinations", "notifications", "sent_progress"] {
        delete_of_object(tx, table, key).await?;
    }
    Ok(())
}

/// Every row of `table` that belongs to the object.
pub(super) async fn delete_of_object(client: &impl GenericClient, table: &str, key: &ObjectKey) -> StoreResult<()> {
    let sql = format!("DELETE FROM {table} WHERE org = $1 AND object_type = $2 AND object_id = $3");
    execute(client, &sql, &[&key.org, &key.object_type, &key.object_id]).await?;
    Ok(())
}
