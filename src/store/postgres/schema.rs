//! Versioned schema migrations. Each migration runs once, in order, inside one transaction
//! that first takes a transaction-scoped advisory lock: CSS instances starting together
//! migrate one after the other, and the later ones find nothing left to do. The versions
//! applied are recorded in `schema_migrations`.
//!
//! Text columns that are keys or sort orders use the `C` collation, so that ordering is by
//! code point whatever the database's locale, as in the SQLite store.

use super::super::{StoreError, StoreResult};
use deadpool_postgres::Object;

/// Key of the advisory lock that serializes migrations (ASCII `essmigr`).
const MIGRATION_LOCK: i64 = 0x0065_7373_6d69_6772;

/// The migrations, oldest first; a version is never changed once released, only appended to.
const MIGRATIONS: &[(i32, &str)] = &[
    (1, V1_INITIAL),
    (2, V2_CLUSTER),
    (3, V3_POLL_INDEX),
    (4, V4_OBJECT_DATA),
    (5, V5_DELIVERY_CHANGED_AT),
];

const V1_INITIAL: &str = r#"
CREATE TABLE objects (
    org TEXT COLLATE "C" NOT NULL, object_type TEXT COLLATE "C" NOT NULL, object_id TEXT COLLATE "C" NOT NULL,
    meta TEXT NOT NULL, status TEXT NOT NULL, sender BOOLEAN NOT NULL,
    remaining_consumers INTEGER NOT NULL, remaining_receivers INTEGER NOT NULL,
    policy_received BOOLEAN NOT NULL, blob TEXT, instance_id BIGINT NOT NULL,
    revision BIGINT NOT NULL, due_at BIGINT,
    PRIMARY KEY (org, object_type, object_id)
);
CREATE INDEX objects_by_due ON objects (due_at) WHERE due_at IS NOT NULL;
CREATE TABLE destinations (
    org TEXT COLLATE "C" NOT NULL, dest_type TEXT COLLATE "C" NOT NULL, dest_id TEXT COLLATE "C" NOT NULL,
    communication TEXT NOT NULL, code_version TEXT NOT NULL, last_seen BIGINT NOT NULL,
    PRIMARY KEY (org, dest_type, dest_id)
);
CREATE INDEX destinations_by_last_seen ON destinations (last_seen);
CREATE TABLE object_destinations (
    org TEXT COLLATE "C" NOT NULL, object_type TEXT COLLATE "C" NOT NULL, object_id TEXT COLLATE "C" NOT NULL,
    dest_type TEXT COLLATE "C" NOT NULL, dest_id TEXT COLLATE "C" NOT NULL,
    status TEXT NOT NULL, message TEXT NOT NULL,
    PRIMARY KEY (org, object_type, object_id, dest_type, dest_id)
);
CREATE INDEX object_destinations_by_node ON object_destinations (org, dest_type, dest_id);
CREATE TABLE organizations (
    org TEXT COLLATE "C" PRIMARY KEY, username TEXT NOT NULL, password TEXT NOT NULL, address TEXT NOT NULL
);
CREATE TABLE webhooks (
    org TEXT COLLATE "C" NOT NULL, object_type TEXT COLLATE "C" NOT NULL, url TEXT COLLATE "C" NOT NULL,
    PRIMARY KEY (org, object_type, url)
);
CREATE TABLE notifications (
    org TEXT COLLATE "C" NOT NULL, object_type TEXT COLLATE "C" NOT NULL, object_id TEXT COLLATE "C" NOT NULL,
    remote_type TEXT COLLATE "C" NOT NULL, remote_id TEXT COLLATE "C" NOT NULL, status TEXT NOT NULL,
    instance_id BIGINT NOT NULL, data_id BIGINT NOT NULL, resend_time BIGINT NOT NULL,
    PRIMARY KEY (org, object_type, object_id, remote_type, remote_id)
);
CREATE INDEX notifications_by_remote ON notifications (org, remote_type, remote_id);
CREATE INDEX notifications_by_time ON notifications (resend_time);
CREATE TABLE acls (
    org TEXT COLLATE "C" NOT NULL, kind TEXT COLLATE "C" NOT NULL, key TEXT COLLATE "C" NOT NULL,
    position INTEGER NOT NULL, username TEXT COLLATE "C" NOT NULL, user_type TEXT COLLATE "C" NOT NULL,
    role TEXT NOT NULL,
    PRIMARY KEY (org, kind, key, user_type, username)
);
CREATE TABLE sent_progress (
    org TEXT COLLATE "C" NOT NULL, object_type TEXT COLLATE "C" NOT NULL, object_id TEXT COLLATE "C" NOT NULL,
    instance_id BIGINT NOT NULL, acknowledged BIGINT NOT NULL,
    PRIMARY KEY (org, object_type, object_id)
);
CREATE TABLE uploads (
    id BIGSERIAL PRIMARY KEY,
    org TEXT COLLATE "C" NOT NULL, object_type TEXT COLLATE "C" NOT NULL, object_id TEXT COLLATE "C" NOT NULL,
    total BIGINT NOT NULL, first_chunk_size BIGINT, ranges TEXT NOT NULL,
    UNIQUE (org, object_type, object_id)
);
"#;

/// What CSS instances sharing the database coordinate through: the leader lease (one row,
/// times from the database server's clock so that instances' clocks never matter) and the
/// sequence that gives every starting instance its own slot of instance IDs.
const V2_CLUSTER: &str = r#"
CREATE TABLE leader_lease (
    id INTEGER PRIMARY KEY CHECK (id = 1),
    holder TEXT NOT NULL, heartbeat TIMESTAMPTZ NOT NULL, version BIGINT NOT NULL
);
CREATE SEQUENCE instance_slots;
"#;

/// A poll reads the records of one node that wait for it: indexed by node and status, so
/// that the records of what the node already has are not read on every poll.
const V3_POLL_INDEX: &str = r#"
DROP INDEX notifications_by_remote;
CREATE INDEX notifications_by_remote_status ON notifications (org, remote_type, remote_id, status);
"#;

/// Object data in the database (`super::data`): rows of bytes by data name and offset,
/// stored uncompressed, and the complete data with their sizes; objects are found by the
/// data they name when leftovers are collected.
const V4_OBJECT_DATA: &str = r#"
CREATE TABLE object_data (
    name TEXT COLLATE "C" PRIMARY KEY, size BIGINT NOT NULL, created_at TIMESTAMPTZ NOT NULL
);
CREATE TABLE object_data_chunks (
    name TEXT COLLATE "C" NOT NULL, start BIGINT NOT NULL, data BYTEA NOT NULL,
    PRIMARY KEY (name, start)
);
ALTER TABLE object_data_chunks ALTER COLUMN data SET STORAGE EXTERNAL;
CREATE INDEX objects_by_blob ON objects (blob) WHERE blob IS NOT NULL;
"#;

/// For the status page: when each delivery state last changed (rows written before read 0,
/// their time unknown), and the states of an object's destinations in an index of their
/// own, so that they are counted per state from the index.
const V5_DELIVERY_CHANGED_AT: &str = r#"
ALTER TABLE object_destinations ADD COLUMN changed_at BIGINT NOT NULL DEFAULT 0;
CREATE INDEX object_destinations_by_state ON object_destinations (org, object_type, object_id, status);
"#;

/// The newest schema version this program knows.
pub fn latest_version() -> i32 {
    MIGRATIONS.last().map_or(0, |(version, _)| *version)
}

/// Brings the schema up to date; true when the database had no schema before (a first
/// start). A database migrated by a newer program is refused rather than misread.
pub async fn migrate(client: &mut Object) -> StoreResult<bool> {
    let transaction = client.transaction().await?;
    transaction
        .execute("SELECT pg_advisory_xact_lock($1)", &[&MIGRATION_LOCK])
        .await?;
    transaction
        .batch_execute(
            "CREATE TABLE IF NOT EXISTS schema_migrations (
                version INTEGER PRIMARY KEY, applied_at TIMESTAMPTZ NOT NULL DEFAULT now())",
        )
        .await?;
    let current: i32 = transaction
        .query_one("SELECT COALESCE(MAX(version), 0) FROM schema_migrations", &[])
        .await?
        .try_get(0)?;
    if current > latest_version() {
        return Err(StoreError::Corrupt(format!(
            "the database schema is version {current}, newer than this program knows ({}); run a newer edge-sync-service",
            latest_version()
        )));
    }
    for (version, sql) in MIGRATIONS.iter().filter(|(version, _)| *version > current) {
        transaction.batch_execute(sql).await?;
        transaction
            .execute("INSERT INTO schema_migrations (version) VALUES ($1)", &[version])
            .await?;
        tracing::info!(version, "database schema migrated");
    }
    transaction.commit().await?;
    Ok(current == 0)
}
