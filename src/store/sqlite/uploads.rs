//! Chunked uploads in progress (received ranges) and how far an upload to the other node got.

use super::to_i64;
use crate::model::ObjectKey;
use crate::store::{StoreError, StoreResult, UploadSession};
use rusqlite::{params, Connection, OptionalExtension, Row};

fn session_from_row(row: &Row<'_>) -> rusqlite::Result<(i64, i64, Option<i64>, String)> {
    Ok((row.get(0)?, row.get(1)?, row.get(2)?, row.get(3)?))
}

fn to_session(raw: (i64, i64, Option<i64>, String)) -> StoreResult<UploadSession> {
    let (id, total, first_chunk_size, ranges) = raw;
    let ranges: Vec<(u64, u64)> =
        serde_json::from_str(&ranges).map_err(|e| StoreError::Corrupt(format!("upload ranges: {e}")))?;
    Ok(UploadSession {
        id,
        total: u64::try_from(total).unwrap_or(0),
        first_chunk_size: first_chunk_size.and_then(|v| u64::try_from(v).ok()),
        ranges,
    })
}

pub(super) fn delete_session(conn: &Connection, key: &ObjectKey) -> StoreResult<()> {
    conn.prepare_cached("DELETE FROM uploads WHERE org = ?1 AND object_type = ?2 AND object_id = ?3")?
        .execute(params![key.org, key.object_type, key.object_id])?;
    Ok(())
}

/// The upload session of `key` for data of `total` bytes; one for another total is
/// replaced, since its ranges belong to other data.
pub(super) fn session(conn: &Connection, key: &ObjectKey, total: u64) -> StoreResult<UploadSession> {
    let existing = conn
        .prepare_cached(
            "SELECT id, total, first_chunk_size, ranges FROM uploads
             WHERE org = ?1 AND object_type = ?2 AND object_id = ?3",
        )?
        .query_row(params![key.org, key.object_type, key.object_id], session_from_row)
        .optional()?;
    if let Some(raw) = existing {
        let session = to_session(raw)?;
        if session.total == total {
            return Ok(session);
        }
        delete_session(conn, key)?;
    }
    conn.prepare_cached(
        "INSERT INTO uploads (org, object_type, object_id, total, first_chunk_size, ranges)
         VALUES (?1, ?2, ?3, ?4, NULL, '[]')",
    )?
    .execute(params![key.org, key.object_type, key.object_id, to_i64(total)])?;
    Ok(UploadSession {
        id: conn.last_insert_rowid(),
        total,
        first_chunk_size: None,
        ranges: Vec::new(),
    })
}

pub(super) fn record_chunk(conn: &Connection, id: i64, start: u64, len: u64) -> StoreResult<UploadSession> {
    let raw = conn
        .prepare_cached("SELECT id, total, first_chunk_size, ranges FROM uploads WHERE id = ?1")?
        .query_row(params![id], session_from_row)
        .optional()?
        .ok_or(StoreError::NotFound)?;
    let mut session = to_session(raw)?;
    if len > 0 {
        session.add_range(start, start + len);
    }
    if start == 0 {
        session.first_chunk_size = Some(len);
    }
    let ranges = serde_json::to_string(&session.ranges).map_err(|e| StoreError::Corrupt(e.to_string()))?;
    conn.prepare_cached("UPDATE uploads SET ranges = ?2, first_chunk_size = ?3 WHERE id = ?1")?
        .execute(params![id, ranges, session.first_chunk_size.map(to_i64)])?;
    Ok(session)
}

pub(super) fn session_ids(conn: &Connection) -> StoreResult<Vec<i64>> {
    let mut statement = conn.prepare("SELECT id FROM uploads")?;
    let ids = statement
        .query_map([], |r| r.get(0))?
        .collect::<rusqlite::Result<Vec<i64>>>()?;
    Ok(ids)
}

pub(super) fn sent_progress(conn: &Connection, key: &ObjectKey) -> StoreResult<Option<(i64, u64)>> {
    Ok(conn
        .prepare_cached(
            "SELECT instance_id, acknowledged FROM sent_progress
             WHERE org = ?1 AND object_type = ?2 AND object_id = ?3",
        )?
        .query_row(params![key.org, key.object_type, key.object_id], |r| {
            Ok((r.get::<_, i64>(0)?, u64::try_from(r.get::<_, i64>(1)?).unwrap_or(0)))
        })
        .optional()?)
}

pub(super) fn set_sent_progress(conn: &Connection, key: &ObjectKey, progress: Option<(i64, u64)>) -> StoreResult<()> {
    match progress {
        Some((instance, acknowledged)) => conn
            .prepare_cached(
                "INSERT OR REPLACE INTO sent_progress (org, object_type, object_id, instance_id, acknowledged)
                 VALUES (?1, ?2, ?3, ?4, ?5)",
            )?
            .execute(params![
                key.org,
                key.object_type,
                key.object_id,
                instance,
                to_i64(acknowledged)
            ])?,
        None => conn
            .prepare_cached("DELETE FROM sent_progress WHERE org = ?1 AND object_type = ?2 AND object_id = ?3")?
            .execute(params![key.org, key.object_type, key.object_id])?,
    };
    Ok(())
}
