//! The embedded store: one SQLite database file in WAL mode, metadata as JSON beside the
//! columns that queries filter on. Writes are group-committed by [`SqlitePool`].

use super::sqlite_pool::SqlitePool;
use super::{Expect, ObjectTotals, Store, StoreError, StoreOp, StoreResult, UnacknowledgedCount, UploadSession};
use crate::model::acl::{AclEntry, AclKind, AclRole, AclUserType};
use crate::model::sync::{Notification, NotificationStatus, Remote};
use crate::model::{
    DeliveryStatus, Destination, DestinationStatus, MetaData, ObjectDeliveryView, ObjectKey, ObjectRecord,
    ObjectStatus, Organization,
};
use async_trait::async_trait;
use rusqlite::{params, Connection, OptionalExtension, Row};
use std::path::Path;

const SCHEMA: &str = r#"
CREATE TABLE IF NOT EXISTS objects (
    org TEXT NOT NULL, object_type TEXT NOT NULL, object_id TEXT NOT NULL,
    meta TEXT NOT NULL, status TEXT NOT NULL, sender INTEGER NOT NULL,
    remaining_consumers INTEGER NOT NULL, remaining_receivers INTEGER NOT NULL,
    policy_received INTEGER NOT NULL, blob TEXT, instance_id INTEGER NOT NULL,
    revision INTEGER NOT NULL, due_at INTEGER,
    PRIMARY KEY (org, object_type, object_id)
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS destinations (
    org TEXT NOT NULL, dest_type TEXT NOT NULL, dest_id TEXT NOT NULL,
    communication TEXT NOT NULL, code_version TEXT NOT NULL, last_seen INTEGER NOT NULL,
    PRIMARY KEY (org, dest_type, dest_id)
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS object_destinations (
    org TEXT NOT NULL, object_type TEXT NOT NULL, object_id TEXT NOT NULL,
    dest_type TEXT NOT NULL, dest_id TEXT NOT NULL, status TEXT NOT NULL, message TEXT NOT NULL,
    PRIMARY KEY (org, object_type, object_id, dest_type, dest_id)
) WITHOUT ROWID;
CREATE INDEX IF NOT EXISTS object_destinations_by_node ON object_destinations (org, dest_type, dest_id);
CREATE TABLE IF NOT EXISTS organizations (
    org TEXT PRIMARY KEY, user TEXT NOT NULL, password TEXT NOT NULL, address TEXT NOT NULL
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS webhooks (
    org TEXT NOT NULL, object_type TEXT NOT NULL, url TEXT NOT NULL,
    PRIMARY KEY (org, object_type, url)
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS notifications (
    org TEXT NOT NULL, object_type TEXT NOT NULL, object_id TEXT NOT NULL,
    remote_type TEXT NOT NULL, remote_id TEXT NOT NULL, status TEXT NOT NULL,
    instance_id INTEGER NOT NULL, data_id INTEGER NOT NULL, resend_time INTEGER NOT NULL,
    PRIMARY KEY (org, object_type, object_id, remote_type, remote_id)
) WITHOUT ROWID;
CREATE INDEX IF NOT EXISTS notifications_by_remote ON notifications (org, remote_type, remote_id);
CREATE INDEX IF NOT EXISTS notifications_by_time ON notifications (resend_time);
CREATE TABLE IF NOT EXISTS acls (
    org TEXT NOT NULL, kind TEXT NOT NULL, key TEXT NOT NULL, position INTEGER NOT NULL,
    username TEXT NOT NULL, user_type TEXT NOT NULL, role TEXT NOT NULL,
    PRIMARY KEY (org, kind, key, user_type, username)
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS sent_progress (
    org TEXT NOT NULL, object_type TEXT NOT NULL, object_id TEXT NOT NULL,
    instance_id INTEGER NOT NULL, acknowledged INTEGER NOT NULL,
    PRIMARY KEY (org, object_type, object_id)
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS uploads (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    org TEXT NOT NULL, object_type TEXT NOT NULL, object_id TEXT NOT NULL,
    total INTEGER NOT NULL, first_chunk_size INTEGER, ranges TEXT NOT NULL,
    UNIQUE (org, object_type, object_id)
);
"#;

/// SQLite-backed [`Store`].
pub struct SqliteStore {
    pool: SqlitePool,
}

impl SqliteStore {
    /// Opens or creates the database at `path`. `durable` makes every acknowledged write
    /// survive a crash or power loss.
    pub fn open(path: &Path, durable: bool) -> StoreResult<Self> {
        Ok(Self {
            pool: SqlitePool::open(path, set_up_schema, durable)?,
        })
    }
}

/// Creates the tables, and adds what later versions added to a database made by an earlier
/// one: the `due_at` column (when an object's expiration or activation falls due), filled
/// from the stored metadata.
fn set_up_schema(conn: &Connection) -> StoreResult<()> {
    conn.execute_batch(SCHEMA)?;
    let has_due_at = conn
        .prepare("SELECT 1 FROM pragma_table_info('objects') WHERE name = 'due_at'")?
        .exists([])?;
    if !has_due_at {
        conn.execute_batch("BEGIN; ALTER TABLE objects ADD COLUMN due_at INTEGER;")?;
        let records = query_objects(
            conn,
            &format!("SELECT {OBJECT_COLUMNS} FROM objects WHERE sender = 1"),
            &[],
        )?;
        for record in records {
            let key = record.key();
            conn.execute(
                "UPDATE objects SET due_at = ?4 WHERE org = ?1 AND object_type = ?2 AND object_id = ?3",
                params![key.org, key.object_type, key.object_id, record.lifecycle_due()],
            )?;
        }
        conn.execute_batch("COMMIT;")?;
    }
    conn.execute_batch("CREATE INDEX IF NOT EXISTS objects_by_due ON objects (due_at) WHERE due_at IS NOT NULL;")?;
    Ok(())
}

const OBJECT_COLUMNS: &str =
    "meta, status, sender, remaining_consumers, remaining_receivers, policy_received, blob, revision";

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

/// Removes an object that still has `revision`, with its upload session, notification
/// records and delivery rows.
fn delete_object_rows(conn: &Connection, key: &ObjectKey, revision: i64) -> StoreResult<()> {
    let removed = conn
        .prepare_cached("DELETE FROM objects WHERE org = ?1 AND object_type = ?2 AND object_id = ?3 AND revision = ?4")?
        .execute(params![key.org, key.object_type, key.object_id, revision])?;
    if removed == 0 {
        return Err(StoreError::Conflict);
    }
    delete_upload_row(conn, key)?;
    for table in ["object_destinations", "notifications", "sent_progress"] {
        conn.prepare_cached(&format!(
            "DELETE FROM {table} WHERE org = ?1 AND object_type = ?2 AND object_id = ?3"
        ))?
        .execute(params![key.org, key.object_type, key.object_id])?;
    }
    Ok(())
}

fn delete_upload_row(conn: &Connection, key: &ObjectKey) -> StoreResult<()> {
    conn.prepare_cached("DELETE FROM uploads WHERE org = ?1 AND object_type = ?2 AND object_id = ?3")?
        .execute(params![key.org, key.object_type, key.object_id])?;
    Ok(())
}

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

const NOTIFICATION_COLUMNS: &str =
    "org, object_type, object_id, remote_type, remote_id, status, instance_id, data_id, resend_time";

fn query_notifications(conn: &Connection, sql: &str, args: &[&dyn rusqlite::ToSql]) -> StoreResult<Vec<Notification>> {
    let mut statement = conn.prepare_cached(sql)?;
    let rows = statement.query_map(args, |r| {
        Ok((
            ObjectKey::new(r.get::<_, String>(0)?, r.get::<_, String>(1)?, r.get::<_, String>(2)?),
            Remote {
                dest_type: r.get(3)?,
                dest_id: r.get(4)?,
            },
            r.get::<_, String>(5)?,
            r.get::<_, i64>(6)?,
            r.get::<_, i64>(7)?,
            r.get::<_, i64>(8)?,
        ))
    })?;
    let mut notifications = Vec::new();
    for row in rows {
        let (key, remote, status, instance_id, data_id, resend_time) = row?;
        let status = NotificationStatus::parse(&status)
            .ok_or_else(|| StoreError::Corrupt(format!("notification status {status:?}")))?;
        notifications.push(Notification {
            key,
            remote,
            status,
            instance_id,
            data_id,
            resend_time,
        });
    }
    Ok(notifications)
}

fn destination_from_row(r: &Row<'_>) -> rusqlite::Result<Destination> {
    Ok(Destination {
        org: r.get(0)?,
        dest_type: r.get(1)?,
        dest_id: r.get(2)?,
        communication: r.get(3)?,
        code_version: r.get(4)?,
    })
}

fn apply_op(conn: &Connection, op: &StoreOp) -> StoreResult<()> {
    match op {
        StoreOp::WriteObject {
            record,
            expect,
            drop_upload,
        } => {
            write_object_row(conn, record, *expect)?;
            if *drop_upload {
                delete_upload_row(conn, &record.key())?;
            }
        }
        StoreOp::DeleteObject { key, revision } => delete_object_rows(conn, key, *revision)?,
        StoreOp::PutNotification(n) => {
            conn.prepare_cached(
                "INSERT OR REPLACE INTO notifications (org, object_type, object_id, remote_type, remote_id, status,
                    instance_id, data_id, resend_time) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9)",
            )?
            .execute(params![
                n.key.org,
                n.key.object_type,
                n.key.object_id,
                n.remote.dest_type,
                n.remote.dest_id,
                n.status.as_str(),
                n.instance_id,
                n.data_id,
                n.resend_time
            ])?;
        }
        StoreOp::DeleteNotification { key, remote } => {
            conn.prepare_cached(
                "DELETE FROM notifications WHERE org = ?1 AND object_type = ?2 AND object_id = ?3
                 AND remote_type = ?4 AND remote_id = ?5",
            )?
            .execute(params![
                key.org,
                key.object_type,
                key.object_id,
                remote.dest_type,
                remote.dest_id
            ])?;
        }
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
        } => {
            let stored: Option<(String, i64)> = conn
                .prepare_cached(
                    "SELECT status, instance_id FROM notifications WHERE org = ?1 AND object_type = ?2
                     AND object_id = ?3 AND remote_type = ?4 AND remote_id = ?5",
                )?
                .query_row(
                    params![
                        key.org,
                        key.object_type,
                        key.object_id,
                        remote.dest_type,
                        remote.dest_id
                    ],
                    |row| Ok((row.get(0)?, row.get(1)?)),
                )
                .optional()?;
            if stored != Some((status.as_str().to_string(), *instance_id)) {
                return Err(StoreError::Conflict);
            }
        }
        StoreOp::DeleteNotificationsOf(key) => {
            conn.prepare_cached("DELETE FROM notifications WHERE org = ?1 AND object_type = ?2 AND object_id = ?3")?
                .execute(params![key.org, key.object_type, key.object_id])?;
        }
        StoreOp::SetDelivery {
            key,
            remote,
            status,
            message,
        } => {
            conn.prepare_cached(
                "INSERT OR REPLACE INTO object_destinations (org, object_type, object_id, dest_type, dest_id, status, message)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)",
            )?
            .execute(params![
                key.org,
                key.object_type,
                key.object_id,
                remote.dest_type,
                remote.dest_id,
                status.as_str(),
                message
            ])?;
        }
        StoreOp::DeleteDelivery { key, remote } => {
            conn.prepare_cached(
                "DELETE FROM object_destinations WHERE org = ?1 AND object_type = ?2 AND object_id = ?3
                 AND dest_type = ?4 AND dest_id = ?5",
            )?
            .execute(params![
                key.org,
                key.object_type,
                key.object_id,
                remote.dest_type,
                remote.dest_id
            ])?;
        }
    }
    Ok(())
}

fn read_acl(conn: &Connection, org: &str, kind: AclKind, key: &str) -> StoreResult<Vec<AclEntry>> {
    let mut statement = conn.prepare_cached(
        "SELECT username, user_type, role FROM acls WHERE org = ?1 AND kind = ?2 AND key = ?3 ORDER BY position",
    )?;
    let rows = statement.query_map(params![org, kind.as_str(), key], |r| {
        Ok((r.get::<_, String>(0)?, r.get::<_, String>(1)?, r.get::<_, String>(2)?))
    })?;
    let mut entries = Vec::new();
    for row in rows {
        let (username, user_type, role) = row?;
        let user_type = AclUserType::parse(&user_type)
            .ok_or_else(|| StoreError::Corrupt(format!("ACL user type {user_type:?}")))?;
        let role = AclRole::parse(&role).ok_or_else(|| StoreError::Corrupt(format!("ACL role {role:?}")))?;
        entries.push(AclEntry {
            username,
            user_type,
            role,
        });
    }
    Ok(entries)
}

fn to_i64(value: u64) -> i64 {
    i64::try_from(value).unwrap_or(i64::MAX)
}

#[async_trait]
impl Store for SqliteStore {
    async fn object(&self, key: &ObjectKey) -> StoreResult<Option<ObjectRecord>> {
        self.pool.read_here(|conn| {
            let sql =
                format!("SELECT {OBJECT_COLUMNS} FROM objects WHERE org = ?1 AND object_type = ?2 AND object_id = ?3");
            Ok(query_objects(conn, &sql, &[&key.org, &key.object_type, &key.object_id])?.pop())
        })
    }

    async fn objects_of_type(&self, org: &str, object_type: &str) -> StoreResult<Vec<ObjectRecord>> {
        let (org, object_type) = (org.to_string(), object_type.to_string());
        self.pool
            .read(move |conn| {
                let sql = format!(
                    "SELECT {OBJECT_COLUMNS} FROM objects WHERE org = ?1 AND object_type = ?2 ORDER BY object_id"
                );
                query_objects(conn, &sql, &[&org, &object_type])
            })
            .await
    }

    async fn objects_of_org(&self, org: &str) -> StoreResult<Vec<ObjectRecord>> {
        let org = org.to_string();
        self.pool
            .read(move |conn| {
                let sql =
                    format!("SELECT {OBJECT_COLUMNS} FROM objects WHERE org = ?1 ORDER BY object_type, object_id");
                query_objects(conn, &sql, &[&org])
            })
            .await
    }

    async fn objects_due(&self, now: i64) -> StoreResult<Vec<ObjectRecord>> {
        self.pool
            .read(move |conn| {
                query_objects(
                    conn,
                    &format!("SELECT {OBJECT_COLUMNS} FROM objects WHERE due_at <= ?1 ORDER BY due_at"),
                    &[&now],
                )
            })
            .await
    }

    async fn count_sender_objects(&self) -> StoreResult<u64> {
        self.pool
            .read(|conn| {
                let count: i64 = conn.query_row("SELECT COUNT(*) FROM objects WHERE sender = 1", [], |r| r.get(0))?;
                Ok(u64::try_from(count).unwrap_or(0))
            })
            .await
    }

    async fn write_object(&self, record: ObjectRecord, expect: Expect, drop_upload: bool) -> StoreResult<i64> {
        self.pool
            .write(move |conn| {
                let revision = write_object_row(conn, &record, expect)?;
                if drop_upload {
                    delete_upload_row(conn, &record.key())?;
                }
                Ok(revision)
            })
            .await
    }

    async fn delete_object(&self, key: &ObjectKey, revision: i64) -> StoreResult<()> {
        let key = key.clone();
        self.pool
            .write(move |conn| delete_object_rows(conn, &key, revision))
            .await
    }

    async fn upload_session(&self, key: &ObjectKey, total: u64) -> StoreResult<UploadSession> {
        let key = key.clone();
        self.pool
            .write(move |conn| {
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
                    delete_upload_row(conn, &key)?;
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
            })
            .await
    }

    async fn record_chunk(&self, id: i64, start: u64, len: u64) -> StoreResult<UploadSession> {
        self.pool
            .write(move |conn| {
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
            })
            .await
    }

    async fn sent_progress(&self, key: &ObjectKey) -> StoreResult<Option<(i64, u64)>> {
        let key = key.clone();
        self.pool
            .read(move |conn| {
                Ok(conn
                    .prepare_cached(
                        "SELECT instance_id, acknowledged FROM sent_progress
                         WHERE org = ?1 AND object_type = ?2 AND object_id = ?3",
                    )?
                    .query_row(params![key.org, key.object_type, key.object_id], |r| {
                        Ok((r.get::<_, i64>(0)?, u64::try_from(r.get::<_, i64>(1)?).unwrap_or(0)))
                    })
                    .optional()?)
            })
            .await
    }

    async fn set_sent_progress(&self, key: &ObjectKey, progress: Option<(i64, u64)>) -> StoreResult<()> {
        let key = key.clone();
        self.pool
            .write(move |conn| {
                match progress {
                    Some((instance, acknowledged)) => conn
                        .prepare_cached(
                            "INSERT OR REPLACE INTO sent_progress (org, object_type, object_id, instance_id, acknowledged)
                             VALUES (?1, ?2, ?3, ?4, ?5)",
                        )?
                        .execute(params![key.org, key.object_type, key.object_id, instance, to_i64(acknowledged)])?,
                    None => conn
                        .prepare_cached(
                            "DELETE FROM sent_progress WHERE org = ?1 AND object_type = ?2 AND object_id = ?3",
                        )?
                        .execute(params![key.org, key.object_type, key.object_id])?,
                };
                Ok(())
            })
            .await
    }

    async fn upload_session_ids(&self) -> StoreResult<Vec<i64>> {
        self.pool
            .read(|conn| {
                let mut statement = conn.prepare("SELECT id FROM uploads")?;
                let ids = statement
                    .query_map([], |r| r.get(0))?
                    .collect::<rusqlite::Result<Vec<i64>>>()?;
                Ok(ids)
            })
            .await
    }

    async fn destinations(&self, org: &str) -> StoreResult<Vec<Destination>> {
        let org = org.to_string();
        self.pool
            .read(move |conn| {
                let mut statement = conn.prepare_cached(
                    "SELECT org, dest_type, dest_id, communication, code_version FROM destinations
                     WHERE org = ?1 ORDER BY dest_type, dest_id",
                )?;
                let rows = statement.query_map(params![org], |r| {
                    Ok(Destination {
                        org: r.get(0)?,
                        dest_type: r.get(1)?,
                        dest_id: r.get(2)?,
                        communication: r.get(3)?,
                        code_version: r.get(4)?,
                    })
                })?;
                Ok(rows.collect::<rusqlite::Result<Vec<_>>>()?)
            })
            .await
    }

    async fn count_destinations(&self) -> StoreResult<u64> {
        self.pool
            .read(|conn| {
                let count: i64 = conn.query_row("SELECT COUNT(*) FROM destinations", [], |r| r.get(0))?;
                Ok(u64::try_from(count).unwrap_or(0))
            })
            .await
    }

    async fn destination_statuses(&self, key: &ObjectKey) -> StoreResult<Vec<DestinationStatus>> {
        let key = key.clone();
        self.pool
            .read(move |conn| {
                let mut statement = conn.prepare_cached(
                    "SELECT dest_type, dest_id, status, message FROM object_destinations
                     WHERE org = ?1 AND object_type = ?2 AND object_id = ?3 ORDER BY dest_type, dest_id",
                )?;
                let rows = statement.query_map(params![key.org, key.object_type, key.object_id], |r| {
                    Ok((
                        r.get::<_, String>(0)?,
                        r.get::<_, String>(1)?,
                        r.get::<_, String>(2)?,
                        r.get::<_, String>(3)?,
                    ))
                })?;
                let mut statuses = Vec::new();
                for row in rows {
                    let (dest_type, dest_id, status, message) = row?;
                    let status = DeliveryStatus::parse(&status)
                        .ok_or_else(|| StoreError::Corrupt(format!("delivery status {status:?}")))?;
                    statuses.push(DestinationStatus {
                        dest_type,
                        dest_id,
                        status,
                        message,
                    });
                }
                Ok(statuses)
            })
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
            .read(move |conn| {
                let mut statement = conn.prepare_cached(
                    "SELECT object_type, object_id, status FROM object_destinations
                     WHERE org = ?1 AND dest_type = ?2 AND dest_id = ?3
                       AND status IN ('delivering', 'delivered', 'consumed', 'error')
                     ORDER BY object_type, object_id",
                )?;
                let rows = statement.query_map(params![org, dest_type, dest_id], |r| {
                    Ok((r.get::<_, String>(0)?, r.get::<_, String>(1)?, r.get::<_, String>(2)?))
                })?;
                let mut views = Vec::new();
                for row in rows {
                    let (object_type, object_id, status) = row?;
                    let status = DeliveryStatus::parse(&status)
                        .ok_or_else(|| StoreError::Corrupt(format!("delivery status {status:?}")))?;
                    views.push(ObjectDeliveryView {
                        org: org.clone(),
                        object_type,
                        object_id,
                        status,
                    });
                }
                Ok(views)
            })
            .await
    }

    async fn organizations(&self) -> StoreResult<Vec<Organization>> {
        self.pool
            .read(|conn| {
                let mut statement =
                    conn.prepare_cached("SELECT org, user, password, address FROM organizations ORDER BY org")?;
                let rows = statement.query_map([], |r| {
                    Ok(Organization {
                        org_id: r.get(0)?,
                        user: r.get(1)?,
                        password: r.get(2)?,
                        address: r.get(3)?,
                    })
                })?;
                Ok(rows.collect::<rusqlite::Result<Vec<_>>>()?)
            })
            .await
    }

    async fn put_organization(&self, org: Organization) -> StoreResult<()> {
        self.pool
            .write(move |conn| {
                conn.prepare_cached(
                    "INSERT INTO organizations (org, user, password, address) VALUES (?1, ?2, ?3, ?4)
                     ON CONFLICT (org) DO UPDATE SET user = excluded.user, password = excluded.password, address = excluded.address",
                )?
                .execute(params![org.org_id, org.user, org.password, org.address])?;
                Ok(())
            })
            .await
    }

    async fn delete_organization(&self, org: &str) -> StoreResult<Vec<String>> {
        let org = org.to_string();
        self.pool
            .write(move |conn| {
                let mut statement = conn.prepare("SELECT blob FROM objects WHERE org = ?1 AND blob IS NOT NULL")?;
                let blobs = statement
                    .query_map(params![org], |r| r.get(0))?
                    .collect::<rusqlite::Result<Vec<String>>>()?;
                for table in [
                    "objects",
                    "object_destinations",
                    "notifications",
                    "destinations",
                    "webhooks",
                    "uploads",
                    "sent_progress",
                    "organizations",
                    "acls",
                ] {
                    conn.execute(&format!("DELETE FROM {table} WHERE org = ?1"), params![org])?;
                }
                Ok(blobs)
            })
            .await
    }

    async fn webhooks(&self, org: &str, object_type: &str) -> StoreResult<Vec<String>> {
        let (org, object_type) = (org.to_string(), object_type.to_string());
        self.pool
            .read(move |conn| {
                let mut statement =
                    conn.prepare_cached("SELECT url FROM webhooks WHERE org = ?1 AND object_type = ?2 ORDER BY url")?;
                let urls = statement.query_map(params![org, object_type], |r| r.get(0))?;
                Ok(urls.collect::<rusqlite::Result<Vec<String>>>()?)
            })
            .await
    }

    async fn add_webhook(&self, org: &str, object_type: &str, url: &str) -> StoreResult<()> {
        let (org, object_type, url) = (org.to_string(), object_type.to_string(), url.to_string());
        self.pool
            .write(move |conn| {
                conn.prepare_cached(
                    "INSERT INTO webhooks (org, object_type, url) VALUES (?1, ?2, ?3) ON CONFLICT DO NOTHING",
                )?
                .execute(params![org, object_type, url])?;
                Ok(())
            })
            .await
    }

    async fn remove_webhook(&self, org: &str, object_type: &str, url: &str) -> StoreResult<()> {
        let (org, object_type, url) = (org.to_string(), object_type.to_string(), url.to_string());
        self.pool
            .write(move |conn| {
                conn.prepare_cached(
                    "DELETE FROM webhooks WHERE org = ?1 AND object_type = ?2 AND lower(url) = lower(?3)",
                )?
                .execute(params![org, object_type, url])?;
                Ok(())
            })
            .await
    }

    async fn acl(&self, org: &str, kind: AclKind, key: &str) -> StoreResult<Vec<AclEntry>> {
        let (org, key) = (org.to_string(), key.to_string());
        self.pool.read(move |conn| read_acl(conn, &org, kind, &key)).await
    }

    async fn acl_keys(&self, org: &str, kind: AclKind) -> StoreResult<Vec<String>> {
        let org = org.to_string();
        self.pool
            .read(move |conn| {
                let mut statement =
                    conn.prepare_cached("SELECT DISTINCT key FROM acls WHERE org = ?1 AND kind = ?2 ORDER BY key")?;
                let keys = statement.query_map(params![org, kind.as_str()], |r| r.get(0))?;
                Ok(keys.collect::<rusqlite::Result<Vec<String>>>()?)
            })
            .await
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
            .write(move |conn| {
                let current = read_acl(conn, &org, kind, &key)?;
                let replaced = |e: &AclEntry| {
                    add.iter()
                        .any(|a| a.user_type == e.user_type && a.username == e.username)
                        || remove.iter().any(|(t, n)| *t == e.user_type && *n == e.username)
                };
                let survivors: Vec<AclEntry> = current.into_iter().filter(|e| !replaced(e)).collect();
                conn.prepare_cached("DELETE FROM acls WHERE org = ?1 AND kind = ?2 AND key = ?3")?
                    .execute(params![org, kind.as_str(), key])?;
                let mut insert = conn.prepare_cached(
                    "INSERT OR REPLACE INTO acls (org, kind, key, position, username, user_type, role)
                     VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)",
                )?;
                for (position, entry) in add.iter().chain(survivors.iter()).enumerate() {
                    insert.execute(params![
                        org,
                        kind.as_str(),
                        key,
                        position as i64,
                        entry.username,
                        entry.user_type.as_str(),
                        entry.role.as_str()
                    ])?;
                }
                Ok(())
            })
            .await
    }

    async fn apply(&self, ops: Vec<StoreOp>) -> StoreResult<()> {
        self.pool
            .write(move |conn| {
                for op in &ops {
                    apply_op(conn, op)?;
                }
                Ok(())
            })
            .await
    }

    async fn notification(&self, key: &ObjectKey, remote: &Remote) -> StoreResult<Option<Notification>> {
        let (key, remote) = (key.clone(), remote.clone());
        self.pool
            .read(move |conn| {
                let sql = format!(
                    "SELECT {NOTIFICATION_COLUMNS} FROM notifications WHERE org = ?1 AND object_type = ?2
                     AND object_id = ?3 AND remote_type = ?4 AND remote_id = ?5"
                );
                let args: [&dyn rusqlite::ToSql; 5] = [
                    &key.org,
                    &key.object_type,
                    &key.object_id,
                    &remote.dest_type,
                    &remote.dest_id,
                ];
                Ok(query_notifications(conn, &sql, &args)?.pop())
            })
            .await
    }

    async fn notifications_of_object(&self, key: &ObjectKey) -> StoreResult<Vec<Notification>> {
        let key = key.clone();
        self.pool
            .read(move |conn| {
                let sql = format!(
                    "SELECT {NOTIFICATION_COLUMNS} FROM notifications WHERE org = ?1 AND object_type = ?2 AND object_id = ?3"
                );
                query_notifications(conn, &sql, &[&key.org, &key.object_type, &key.object_id])
            })
            .await
    }

    async fn notifications_for_remote(&self, org: &str, remote: &Remote) -> StoreResult<Vec<Notification>> {
        let (org, remote) = (org.to_string(), remote.clone());
        self.pool
            .read(move |conn| {
                let sql = format!(
                    "SELECT {NOTIFICATION_COLUMNS} FROM notifications WHERE org = ?1 AND remote_type = ?2
                     AND remote_id = ?3 ORDER BY instance_id"
                );
                query_notifications(conn, &sql, &[&org, &remote.dest_type, &remote.dest_id])
            })
            .await
    }

    async fn due_notifications(&self, now: i64) -> StoreResult<Vec<Notification>> {
        self.pool
            .read(move |conn| {
                let sql = format!(
                    "SELECT {NOTIFICATION_COLUMNS} FROM notifications WHERE resend_time <= ?1 ORDER BY resend_time"
                );
                query_notifications(conn, &sql, &[&now])
            })
            .await
    }

    async fn upsert_destination(&self, destination: Destination, now: i64) -> StoreResult<()> {
        self.pool
            .write(move |conn| {
                conn.prepare_cached(
                    "INSERT INTO destinations (org, dest_type, dest_id, communication, code_version, last_seen)
                     VALUES (?1, ?2, ?3, ?4, ?5, ?6)
                     ON CONFLICT (org, dest_type, dest_id) DO UPDATE SET communication = excluded.communication,
                        code_version = excluded.code_version, last_seen = excluded.last_seen",
                )?
                .execute(params![
                    destination.org,
                    destination.dest_type,
                    destination.dest_id,
                    destination.communication,
                    destination.code_version,
                    now
                ])?;
                Ok(())
            })
            .await
    }

    async fn destination(&self, org: &str, remote: &Remote) -> StoreResult<Option<Destination>> {
        let (org, remote) = (org.to_string(), remote.clone());
        self.pool
            .read(move |conn| {
                Ok(conn
                    .prepare_cached(
                        "SELECT org, dest_type, dest_id, communication, code_version FROM destinations
                         WHERE org = ?1 AND dest_type = ?2 AND dest_id = ?3",
                    )?
                    .query_row(params![org, remote.dest_type, remote.dest_id], destination_from_row)
                    .optional()?)
            })
            .await
    }

    async fn touch_destination(&self, org: &str, remote: &Remote, now: i64) -> StoreResult<bool> {
        let (org, remote) = (org.to_string(), remote.clone());
        self.pool
            .write(move |conn| {
                let changed = conn
                    .prepare_cached(
                        "UPDATE destinations SET last_seen = ?4 WHERE org = ?1 AND dest_type = ?2 AND dest_id = ?3",
                    )?
                    .execute(params![org, remote.dest_type, remote.dest_id, now])?;
                Ok(changed > 0)
            })
            .await
    }

    async fn remove_destination(&self, org: &str, remote: &Remote) -> StoreResult<()> {
        let (org, remote) = (org.to_string(), remote.clone());
        self.pool
            .write(move |conn| {
                conn.prepare_cached("DELETE FROM destinations WHERE org = ?1 AND dest_type = ?2 AND dest_id = ?3")?
                    .execute(params![org, remote.dest_type, remote.dest_id])?;
                conn.prepare_cached(
                    "DELETE FROM notifications WHERE org = ?1 AND remote_type = ?2 AND remote_id = ?3",
                )?
                .execute(params![org, remote.dest_type, remote.dest_id])?;
                conn.prepare_cached(
                    "DELETE FROM object_destinations WHERE org = ?1 AND dest_type = ?2 AND dest_id = ?3",
                )?
                .execute(params![org, remote.dest_type, remote.dest_id])?;
                Ok(())
            })
            .await
    }

    async fn inactive_destinations(&self, before: i64) -> StoreResult<Vec<Destination>> {
        self.pool
            .read(move |conn| {
                let mut statement = conn.prepare_cached(
                    "SELECT org, dest_type, dest_id, communication, code_version FROM destinations WHERE last_seen <= ?1",
                )?;
                let rows = statement.query_map(params![before], destination_from_row)?;
                Ok(rows.collect::<rusqlite::Result<Vec<_>>>()?)
            })
            .await
    }

    async fn referenced_blobs(&self) -> StoreResult<Vec<String>> {
        self.pool
            .read(|conn| {
                let mut statement = conn.prepare("SELECT blob FROM objects WHERE blob IS NOT NULL")?;
                let blobs = statement.query_map([], |r| r.get(0))?;
                Ok(blobs.collect::<rusqlite::Result<Vec<String>>>()?)
            })
            .await
    }

    async fn max_instance_id(&self) -> StoreResult<i64> {
        self.pool
            .read(|conn| Ok(conn.query_row("SELECT COALESCE(MAX(instance_id), 0) FROM objects", [], |r| r.get(0))?))
            .await
    }

    /// Waits for queued writes and stops the writer thread.
    fn close(&self) {
        self.pool.close();
    }
    async fn object_totals(&self) -> StoreResult<ObjectTotals> {
        self.pool
            .read(|conn| {
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
            })
            .await
    }

    async fn unacknowledged_notifications(&self, limit: usize) -> StoreResult<Vec<UnacknowledgedCount>> {
        // Literals of our own status spellings (no caller input), so the statement stays cached.
        let statuses: Vec<String> = NotificationStatus::unacknowledged()
            .map(|s| format!("'{}'", s.as_str()))
            .collect();
        let sql = format!(
            "SELECT org, remote_type, remote_id, COUNT(*) AS pending FROM notifications
             WHERE status IN ({}) GROUP BY org, remote_type, remote_id ORDER BY pending DESC LIMIT ?1",
            statuses.join(", ")
        );
        let limit = i64::try_from(limit).unwrap_or(i64::MAX);
        self.pool
            .read(move |conn| {
                let mut statement = conn.prepare_cached(&sql)?;
                let rows = statement.query_map(params![limit], |r| {
                    Ok(UnacknowledgedCount {
                        org: r.get(0)?,
                        remote: Remote {
                            dest_type: r.get(1)?,
                            dest_id: r.get(2)?,
                        },
                        count: u64::try_from(r.get::<_, i64>(3)?).unwrap_or(0),
                    })
                })?;
                Ok(rows.collect::<rusqlite::Result<Vec<_>>>()?)
            })
            .await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A database written before objects had `due_at` gets the column, filled from the
    /// stored metadata, so the timers find objects stored by the earlier version.
    #[tokio::test]
    async fn an_earlier_database_gains_the_due_column() {
        let dir = tempfile::tempdir().expect("temp dir");
        let path = dir.path().join("sync.db");
        let meta = MetaData {
            destination_org_id: "org".into(),
            object_type: "t".into(),
            object_id: "expiring".into(),
            expiration: "2020-01-01T00:00:00Z".into(),
            ..MetaData::default()
        };
        {
            let conn = Connection::open(&path).expect("open");
            conn.execute_batch(&SCHEMA.replace(
                "revision INTEGER NOT NULL, due_at INTEGER,",
                "revision INTEGER NOT NULL,",
            ))
            .expect("old schema");
            conn.execute(
                "INSERT INTO objects (org, object_type, object_id, meta, status, sender, remaining_consumers,
                    remaining_receivers, policy_received, blob, instance_id, revision)
                 VALUES ('org', 't', 'expiring', ?1, 'ready', 1, 1, 1, 0, NULL, 1, 1)",
                params![serde_json::to_string(&meta).expect("json")],
            )
            .expect("insert");
        }
        let store = SqliteStore::open(&path, true).expect("store");
        let due = store.objects_due(crate::model::lifecycle::instant_secs("2021-01-01T00:00:00Z").unwrap());
        let due = due.await.expect("query");
        assert_eq!(due.len(), 1);
        assert_eq!(due[0].meta.object_id, "expiring");
        assert!(store.objects_due(0).await.expect("query").is_empty());
        store.close();
    }

    fn record(object_id: &str, size: i64, blob: Option<&str>) -> ObjectRecord {
        ObjectRecord {
            meta: MetaData {
                destination_org_id: "org".into(),
                object_type: "t".into(),
                object_id: object_id.into(),
                object_size: size,
                ..MetaData::default()
            },
            status: ObjectStatus::Ready,
            sender: true,
            remaining_consumers: 1,
            remaining_receivers: 1,
            policy_received: false,
            blob: blob.map(str::to_string),
            revision: 0,
        }
    }

    fn notification(object_id: &str, dest_id: &str, status: NotificationStatus) -> StoreOp {
        StoreOp::PutNotification(Notification {
            key: ObjectKey::new("org", "t", object_id),
            remote: Remote {
                dest_type: "edge".into(),
                dest_id: dest_id.into(),
            },
            status,
            instance_id: 1,
            data_id: 1,
            resend_time: 0,
        })
    }

    /// The metrics queries: bytes only of objects with a data file; unacknowledged messages
    /// per node, most first, limited.
    #[tokio::test]
    async fn metrics_totals_count_what_they_say() {
        let dir = tempfile::tempdir().expect("temp dir");
        let store = SqliteStore::open(&dir.path().join("sync.db"), true).expect("store");
        assert_eq!(store.object_totals().await.expect("totals"), ObjectTotals::default());
        for record in [
            record("a", 10, Some("blob-a")),
            record("b", 32, Some("blob-b")),
            record("c", 99, None),
        ] {
            store.write_object(record, Expect::Absent, false).await.expect("write");
        }
        assert_eq!(
            store.object_totals().await.expect("totals"),
            ObjectTotals {
                objects: 3,
                data_bytes: 42
            }
        );
        store
            .apply(vec![
                notification("a", "n1", NotificationStatus::UpdatePending),
                notification("b", "n1", NotificationStatus::Update),
                notification("c", "n1", NotificationStatus::Updated),
                notification("a", "n2", NotificationStatus::ConsumedPending),
                notification("b", "n3", NotificationStatus::AckReceived),
            ])
            .await
            .expect("notifications");
        let counts = store.unacknowledged_notifications(10).await.expect("counts");
        let summary: Vec<(&str, u64)> = counts.iter().map(|c| (c.remote.dest_id.as_str(), c.count)).collect();
        assert_eq!(summary, vec![("n1", 2), ("n2", 1)]);
        assert_eq!(store.unacknowledged_notifications(1).await.expect("counts").len(), 1);
        store.close();
    }
}
