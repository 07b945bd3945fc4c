//! Databases as earlier programs left them must open, keep their rows, and end up with the
//! schema a new database gets; a database of a newer program must be refused.

use super::super::SqliteStore;
use super::latest_version;
use crate::model::acl::{AclKind, AclRole, AclUserType};
use crate::model::lifecycle::instant_secs;
use crate::model::sync::{NotificationStatus, Remote};
use crate::model::{DeliveryStatus, Destination, MetaData, ObjectKey};
use crate::store::{Expect, Store, StoreError, StoreOp};
use rusqlite::{params, Connection};
use std::path::Path;

/// The schema exactly as the store created it before versions were recorded. A copy, not
/// migration 1 itself: a change to migration 1 must fail these tests, since databases of
/// this schema exist.
const UNVERSIONED_SCHEMA: &str = r#"
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

/// What that store created after the tables once objects had `due_at`.
const UNVERSIONED_DUE_INDEX: &str =
    "CREATE INDEX IF NOT EXISTS objects_by_due ON objects (due_at) WHERE due_at IS NOT NULL;";

/// Tables and indexes as SQLite records them, without the version table (which only
/// versioned databases have) and SQLite's own bookkeeping.
fn schema_of(path: &Path) -> Vec<(String, String, Option<String>)> {
    let conn = Connection::open(path).expect("open");
    let mut statement = conn
        .prepare(
            "SELECT type, name, sql FROM sqlite_master
             WHERE name NOT LIKE 'sqlite_%' AND name != 'schema_migrations' ORDER BY name",
        )
        .expect("prepare");
    let rows = statement
        .query_map([], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)))
        .expect("query");
    rows.collect::<rusqlite::Result<_>>().expect("rows")
}

fn versions(path: &Path) -> Vec<i64> {
    let conn = Connection::open(path).expect("open");
    let mut statement = conn
        .prepare("SELECT version FROM schema_migrations ORDER BY version")
        .expect("prepare");
    let rows = statement.query_map([], |r| r.get(0)).expect("query");
    rows.collect::<rusqlite::Result<_>>().expect("rows")
}

fn expiring(object_id: &str) -> MetaData {
    MetaData {
        destination_org_id: "org".into(),
        object_type: "t".into(),
        object_id: object_id.into(),
        expiration: "2020-01-01T00:00:00Z".into(),
        object_size: 5,
        instance_id: 7,
        ..MetaData::default()
    }
}

fn edge(dest_id: &str) -> Remote {
    Remote {
        dest_type: "edge".into(),
        dest_id: dest_id.into(),
    }
}

/// Every migration's version, as a database the store opened records them.
fn all_versions() -> Vec<i64> {
    (1..=latest_version()).collect()
}

/// The schema migration 1 creates in an empty database.
fn version_1_schema() -> Vec<(String, String, Option<String>)> {
    let dir = tempfile::tempdir().expect("temp dir");
    let path = dir.path().join("v1.db");
    Connection::open(&path)
        .expect("open")
        .execute_batch(super::V1_INITIAL)
        .expect("migration 1");
    schema_of(&path)
}

/// The schema of a database the store creates now.
fn new_schema() -> Vec<(String, String, Option<String>)> {
    let dir = tempfile::tempdir().expect("temp dir");
    let path = dir.path().join("new.db");
    SqliteStore::open(&path, true).expect("store").close();
    schema_of(&path)
}

/// Writes a database as the store did before versions were recorded, with a row in every
/// table.
fn write_unversioned_database(path: &Path) {
    let conn = Connection::open(path).expect("open");
    conn.execute_batch(UNVERSIONED_SCHEMA).expect("schema");
    conn.execute_batch(UNVERSIONED_DUE_INDEX).expect("index");
    let meta = serde_json::to_string(&expiring("o1")).expect("json");
    conn.execute(
        "INSERT INTO objects (org, object_type, object_id, meta, status, sender, remaining_consumers,
            remaining_receivers, policy_received, blob, instance_id, revision, due_at)
         VALUES ('org', 't', 'o1', ?1, 'ready', 1, 1, 1, 0, 'blob-1', 7, 3, ?2)",
        params![meta, instant_secs("2020-01-01T00:00:00Z")],
    )
    .expect("object");
    conn.execute_batch(
        "INSERT INTO destinations VALUES ('org', 'edge', 'n1', 'mqtt', '1.0', 100);
         INSERT INTO object_destinations VALUES ('org', 't', 'o1', 'edge', 'n1', 'delivered', '');
         INSERT INTO notifications VALUES ('org', 't', 'o1', 'edge', 'n1', 'updatePending', 7, 7, 50);
         INSERT INTO organizations VALUES ('org', 'admin', 'secret', 'https://org.example');
         INSERT INTO webhooks VALUES ('org', 't', 'https://hook.example');
         INSERT INTO acls VALUES ('org', 'objects', 't', 0, 'alice', 'user', 'aclWriter');
         INSERT INTO sent_progress VALUES ('org', 't', 'o1', 7, 3);
         INSERT INTO uploads (org, object_type, object_id, total, first_chunk_size, ranges)
             VALUES ('org', 't', 'o2', 100, 10, '[[0,10]]');",
    )
    .expect("rows");
}

/// A database of the schema the store created before versions were recorded is recognized
/// as version 1 (not created again): it keeps its schema and rows, and they can be read and
/// written through the store.
#[tokio::test]
async fn an_unversioned_database_of_the_current_schema_is_adopted_as_version_1() {
    let dir = tempfile::tempdir().expect("temp dir");
    let path = dir.path().join("sync.db");
    write_unversioned_database(&path);
    let before = schema_of(&path);
    let store = SqliteStore::open(&path, true).expect("store");
    assert_eq!(versions(&path), all_versions());
    assert_eq!(
        schema_of(&path),
        new_schema(),
        "adopted, then migrated like any database"
    );
    assert_eq!(
        before,
        version_1_schema(),
        "migration 1 must be the schema of the earlier programs"
    );

    let key = ObjectKey::new("org", "t", "o1");
    let object = store.object(&key).await.expect("read").expect("object kept");
    assert_eq!((object.revision, object.blob.as_deref()), (3, Some("blob-1")));
    assert_eq!(object.meta, expiring("o1"));
    let due = store.objects_due(instant_secs("2021-01-01T00:00:00Z").unwrap()).await;
    assert_eq!(due.expect("due").len(), 1);
    assert_eq!(store.max_instance_id().await.expect("max"), 7);
    assert_eq!(store.destinations("org").await.expect("nodes")[0].communication, "mqtt");
    let deliveries = store.destination_statuses(&key).await.expect("deliveries");
    assert_eq!(deliveries[0].status, DeliveryStatus::Delivered);
    let pending = store
        .notification(&key, &edge("n1"))
        .await
        .expect("read")
        .expect("kept");
    assert_eq!(
        (pending.status, pending.instance_id),
        (NotificationStatus::UpdatePending, 7)
    );
    assert_eq!(store.organizations().await.expect("orgs")[0].user, "admin");
    assert_eq!(
        store.webhooks("org", "t").await.expect("hooks"),
        vec!["https://hook.example"]
    );
    let acl = store.acl("org", AclKind::Objects, "t").await.expect("acl");
    assert_eq!(
        (acl[0].username.as_str(), acl[0].user_type, acl[0].role),
        ("alice", AclUserType::User, AclRole::Writer)
    );
    assert_eq!(store.sent_progress(&key).await.expect("progress"), Some((7, 3)));
    let upload = store
        .upload_session(&ObjectKey::new("org", "t", "o2"), 100)
        .await
        .expect("upload");
    assert_eq!(
        (upload.first_chunk_size, upload.ranges.clone()),
        (Some(10), vec![(0, 10)])
    );

    let revision = store
        .write_object(object.clone(), Expect::Revision(3), false)
        .await
        .expect("write");
    assert_eq!(revision, 4);
    let stale = store.write_object(object, Expect::Revision(3), false).await;
    assert!(matches!(stale, Err(StoreError::Conflict)));
    let chunked = store.record_chunk(upload.id, 10, 15).await.expect("chunk");
    assert_eq!(chunked.ranges, vec![(0, 25)]);
    store
        .apply(vec![StoreOp::DeleteNotification {
            key: key.clone(),
            remote: edge("n1"),
        }])
        .await
        .expect("apply");
    store
        .add_webhook("org", "t", "https://other.example")
        .await
        .expect("hook");
    store.close();
    drop(store);

    let store = SqliteStore::open(&path, true).expect("reopened");
    assert_eq!(store.object(&key).await.expect("read").expect("object").revision, 4);
    assert!(store.notification(&key, &edge("n1")).await.expect("read").is_none());
    assert_eq!(store.webhooks("org", "t").await.expect("hooks").len(), 2);
    store.close();
    assert_eq!(versions(&path), all_versions());
}

/// A database written before objects had `due_at` gets the column, filled from the
/// stored metadata, so the timers find objects stored by the earlier version.
#[tokio::test]
async fn an_earlier_database_gains_the_due_column() {
    let dir = tempfile::tempdir().expect("temp dir");
    let path = dir.path().join("sync.db");
    {
        let conn = Connection::open(&path).expect("open");
        conn.execute_batch(&UNVERSIONED_SCHEMA.replace(
            "revision INTEGER NOT NULL, due_at INTEGER,",
            "revision INTEGER NOT NULL,",
        ))
        .expect("old schema");
        conn.execute(
            "INSERT INTO objects (org, object_type, object_id, meta, status, sender, remaining_consumers,
                remaining_receivers, policy_received, blob, instance_id, revision)
             VALUES ('org', 't', 'expiring', ?1, 'ready', 1, 1, 1, 0, NULL, 1, 1)",
            params![serde_json::to_string(&expiring("expiring")).expect("json")],
        )
        .expect("insert");
    }
    let store = SqliteStore::open(&path, true).expect("store");
    let due = store.objects_due(instant_secs("2021-01-01T00:00:00Z").unwrap());
    let due = due.await.expect("query");
    assert_eq!(due.len(), 1);
    assert_eq!(due[0].meta.object_id, "expiring");
    assert!(store.objects_due(0).await.expect("query").is_empty());
    store.close();
    assert_eq!(versions(&path), all_versions());
    assert!(schema_of(&path).iter().any(|(_, name, _)| name == "objects_by_due"));
}

/// Opening a database again applies nothing again and changes nothing.
#[tokio::test]
async fn opening_twice_changes_nothing() {
    let dir = tempfile::tempdir().expect("temp dir");
    let path = dir.path().join("sync.db");
    let store = SqliteStore::open(&path, true).expect("store");
    let record = crate::model::ObjectRecord {
        meta: expiring("o1"),
        status: crate::model::ObjectStatus::Ready,
        sender: true,
        remaining_consumers: 1,
        remaining_receivers: 1,
        policy_received: false,
        blob: None,
        revision: 0,
    };
    store.write_object(record, Expect::Absent, false).await.expect("write");
    store.close();
    drop(store);
    let (schema, applied) = (schema_of(&path), versions(&path));
    assert_eq!(applied, all_versions());

    let store = SqliteStore::open(&path, true).expect("reopened");
    assert_eq!((schema_of(&path), versions(&path)), (schema, applied));
    let key = ObjectKey::new("org", "t", "o1");
    assert_eq!(store.object(&key).await.expect("read").expect("object").revision, 1);
    let destination = Destination {
        org: "org".into(),
        dest_type: "edge".into(),
        dest_id: "n1".into(),
        communication: "http".into(),
        code_version: "1.0".into(),
    };
    store.upsert_destination(destination, 1).await.expect("write");
    store.close();
}

/// A database migrated by a newer program is refused, and left as it was, rather than
/// read with a schema this program does not know.
#[tokio::test]
async fn a_database_of_a_newer_program_is_refused() {
    let dir = tempfile::tempdir().expect("temp dir");
    let path = dir.path().join("sync.db");
    SqliteStore::open(&path, true).expect("store").close();
    let newer = latest_version() + 1;
    Connection::open(&path)
        .expect("open")
        .execute("INSERT INTO schema_migrations (version) VALUES (?1)", params![newer])
        .expect("newer version");
    let error = match SqliteStore::open(&path, true) {
        Ok(_) => panic!("a database of schema version {newer} was opened"),
        Err(error) => error,
    };
    assert!(matches!(error, StoreError::Corrupt(_)), "{error}");
    let message = error.to_string();
    assert!(
        message.contains(&format!("version {newer}, newer than this program knows")),
        "{message}"
    );
    let mut expected = all_versions();
    expected.push(newer);
    assert_eq!(versions(&path), expected);
}
