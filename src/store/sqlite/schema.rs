//! Versioned schema migrations, as in the PostgreSQL store: each migration runs once, in
//! order, and all that are due run in one transaction, so that a failed start leaves the
//! database as it was.
//!
//! The versions applied are recorded in a `schema_migrations` table rather than in
//! `PRAGMA user_version`: the same table as in the PostgreSQL store, so that which version a
//! database has is asked the same way of either store, and it keeps when each version was
//! applied, which a single integer in the file header cannot.
//!
//! Databases written before versions were recorded have no `schema_migrations` table and are
//! taken for version 0: the one change made to them before then (the `due_at` column) is made
//! if missing, and migration 1, the schema those programs created, word for word, is applied
//! on top of what exists.

use super::objects;
use crate::store::{StoreError, StoreResult};
use rusqlite::{params, Connection, Transaction, TransactionBehavior};

/// The migrations, oldest first; a version is never changed once released, only appended to.
const MIGRATIONS: &[(i64, &str)] = &[(1, V1_INITIAL), (2, V2_POLL_INDEX), (3, V3_DELIVERY_CHANGED_AT)];

/// The schema as the store created it before versions were recorded. It keeps `IF NOT EXISTS`
/// because it is also how such a database is adopted: applied to one it creates only what
/// an interrupted first start left out (those statements were not run in one transaction).
/// Later migrations need no such guard.
const V1_INITIAL: &str = r#"
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
CREATE INDEX IF NOT EXISTS objects_by_due ON objects (due_at) WHERE due_at IS NOT NULL;
"#;

/// A poll reads the records of one node that wait for it: indexed by node and status, so
/// that the records of what the node already has are not read on every poll.
const V2_POLL_INDEX: &str = r#"
DROP INDEX notifications_by_remote;
CREATE INDEX notifications_by_remote_status ON notifications (org, remote_type, remote_id, status);
"#;

/// For the status page: when each delivery state last changed (rows written before read 0,
/// their time unknown), and the states of an object's destinations in an index of their
/// own, so that counting them per state reads the index in order instead of the rows.
const V3_DELIVERY_CHANGED_AT: &str = r#"
ALTER TABLE object_destinations ADD COLUMN changed_at INTEGER NOT NULL DEFAULT 0;
CREATE INDEX object_destinations_by_state ON object_destinations (org, object_type, object_id, status);
"#;

/// The newest schema version this program knows.
pub(super) fn latest_version() -> i64 {
    MIGRATIONS.last().map_or(0, |(version, _)| *version)
}

/// Brings the schema of the database behind `conn` up to date. A database migrated by a
/// newer program is refused rather than misread.
pub(super) fn migrate(conn: &Connection) -> StoreResult<()> {
    // IMMEDIATE takes the write lock before the version is read: two processes opening the
    // same file migrate one after the other, and the later one finds nothing left to do.
    let transaction = Transaction::new_unchecked(conn, TransactionBehavior::Immediate)?;
    transaction.execute_batch(
        "CREATE TABLE IF NOT EXISTS schema_migrations (
            version INTEGER PRIMARY KEY, applied_at TEXT NOT NULL DEFAULT CURRENT_TIMESTAMP)",
    )?;
    let current: i64 = transaction.query_row("SELECT COALESCE(MAX(version), 0) FROM schema_migrations", [], |r| {
        r.get(0)
    })?;
    if current > latest_version() {
        return Err(StoreError::Corrupt(format!(
            "the database schema is version {current}, newer than this program knows ({}); run a newer edge-sync-service",
            latest_version()
        )));
    }
    if current == 0 {
        adopt_unversioned(&transaction)?;
    }
    for (version, sql) in MIGRATIONS.iter().filter(|(version, _)| *version > current) {
        transaction.execute_batch(sql)?;
        transaction.execute("INSERT INTO schema_migrations (version) VALUES (?1)", params![version])?;
        tracing::info!(version, "database schema migrated");
    }
    transaction.commit()?;
    Ok(())
}

/// Prepares a database written before versions were recorded (or a new, empty one) for
/// migration 1. The earliest programs stored objects without `due_at` (when an object's
/// expiration or activation falls due); migration 1 has the column, and `IF NOT EXISTS`
/// would not add it to an existing table, so it is added here and filled from the stored
/// metadata, so that the timers find objects stored by those programs.
fn adopt_unversioned(conn: &Connection) -> StoreResult<()> {
    let (columns, has_due_at): (i64, bool) = conn.query_row(
        "SELECT COUNT(*), COALESCE(MAX(name = 'due_at'), 0) FROM pragma_table_info('objects')",
        [],
        |r| Ok((r.get(0)?, r.get(1)?)),
    )?;
    if columns == 0 {
        return Ok(());
    }
    tracing::info!("database written before schema versions were recorded; adopting it as version 1");
    if !has_due_at {
        conn.execute_batch("ALTER TABLE objects ADD COLUMN due_at INTEGER;")?;
        for record in objects::sent(conn)? {
            let key = record.key();
            conn.execute(
                "UPDATE objects SET due_at = ?4 WHERE org = ?1 AND object_type = ?2 AND object_id = ?3",
                params![key.org, key.object_type, key.object_id, record.lifecycle_due()],
            )?;
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests;
