//! Chunked uploads in progress (received ranges) and how far an upload to the other node got.

use super::{execute, query, to_i64};
use crate::model::ObjectKey;
use crate::store::{StoreError, StoreResult, UploadSession};
use deadpool_postgres::{GenericClient, Transaction};
use tokio_postgres::Row;

const SESSION_COLUMNS: &str = "id, total, first_chunk_size, ranges";

fn session_from_row(row: &Row) -> StoreResult<UploadSession> {
    let total: i64 = row.try_get(1)?;
    let first_chunk_size: Option<i64> = row.try_get(2)?;
    let ranges: &str = row.try_get(3)?;
    Ok(UploadSession {
        id: row.try_get(0)?,
        total: u64::try_from(total).unwrap_or(0),
        first_chunk_size: first_chunk_size.and_then(|v| u64::try_from(v).ok()),
        ranges: serde_json::from_str(ranges).map_err(|e| StoreError::Corrupt(format!("upload ranges: {e}")))?,
    })
}

/// The session of `key`, created for `total` bytes when absent; a session for another total
/// is replaced by a new one (with a new id, so a new partial file). The upsert locks the
/// existing row, so the read that follows sees it unchanged.
pub(super) async fn session(tx: &Transaction<'_>, key: &ObjectKey, total: u64) -> StoreResult<UploadSession> {
    let params: [&(dyn tokio_postgres::types::ToSql + Sync); 4] =
        [&key.org, &key.object_type, &key.object_id, &to_i64(total)];
    let sql = format!(
        "INSERT INTO uploads (org, object_type, object_id, total, first_chunk_size, ranges)
         VALUES ($1, $2, $3, $4, NULL, '[]')
         ON CONFLICT (org, object_type, object_id) DO UPDATE SET
            id = nextval(pg_get_serial_sequence('uploads', 'id')), total = excluded.total,
            first_chunk_size = NULL, ranges = '[]'
         WHERE uploads.total <> excluded.total
         RETURNING {SESSION_COLUMNS}"
    );
    if let Some(row) = query(tx, &sql, &params).await?.first() {
        return session_from_row(row);
    }
    let sql = format!("SELECT {SESSION_COLUMNS} FROM uploads WHERE org = $1 AND object_type = $2 AND object_id = $3");
    let rows = query(tx, &sql, &params[..3]).await?;
    session_from_row(rows.first().ok_or(StoreError::Conflict)?)
}

/// Adds `[start, start+len)` to session `id`; the row is locked from read to write.
pub(super) async fn record_chunk(tx: &Transaction<'_>, id: i64, start: u64, len: u64) -> StoreResult<UploadSession> {
    let sql = format!("SELECT {SESSION_COLUMNS} FROM uploads WHERE id = $1 FOR UPDATE");
    let rows = query(tx, &sql, &[&id]).await?;
    let mut session = session_from_row(rows.first().ok_or(StoreError::NotFound)?)?;
    if len > 0 {
        session.add_range(start, start + len);
    }
    if start == 0 {
        session.first_chunk_size = Some(len);
    }
    let ranges = serde_json::to_string(&session.ranges).map_err(|e| StoreError::Corrupt(e.to_string()))?;
    execute(
        tx,
        "UPDATE uploads SET ranges = $2, first_chunk_size = $3 WHERE id = $1",
        &[&id, &ranges, &session.first_chunk_size.map(to_i64)],
    )
    .await?;
    Ok(session)
}

pub(super) async fn sent_progress(client: &impl GenericClient, key: &ObjectKey) -> StoreResult<Option<(i64, u64)>> {
    let rows = query(
        client,
        "SELECT instance_id, acknowledged FROM sent_progress WHERE org = $1 AND object_type = $2 AND object_id = $3",
        &[&key.org, &key.object_type, &key.object_id],
    )
    .await?;
    match rows.first() {
        None => Ok(None),
        Some(row) => {
            let acknowledged: i64 = row.try_get(1)?;
            Ok(Some((row.try_get(0)?, u64::try_from(acknowledged).unwrap_or(0))))
        }
    }
}

pub(super) async fn set_sent_progress(
    client: &impl GenericClient,
    key: &ObjectKey,
    progress: Option<(i64, u64)>,
) -> StoreResult<()> {
    match progress {
        Some((instance, acknowledged)) => {
            execute(
                client,
                "INSERT INTO sent_progress (org, object_type, object_id, instance_id, acknowledged)
                 VALUES ($1, $2, $3, $4, $5)
                 ON CONFLICT (org, object_type, object_id) DO UPDATE SET
                    instance_id = excluded.instance_id, acknowledged = excluded.acknowledged",
                &[
                    &key.org,
                    &key.object_type,
                    &key.object_id,
                    &instance,
                    &to_i64(acknowledged),
                ],
            )
            .await?
        }
        None => {
            execute(
                client,
                "DELETE FROM sent_progress WHERE org = $1 AND object_type = $2 AND object_id = $3",
                &[&key.org, &key.object_type, &key.object_id],
            )
            .await?
        }
    };
    Ok(())
}
