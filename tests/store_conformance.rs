//! One set of store behaviour tests, run against every `Store` implementation: each case is
//! an `async fn(Arc<dyn Store>)`, and `conformance!` makes a `sqlite::<case>` and a
//! `postgres::<case>` test of it. SQLite gets a database file in a temporary folder;
//! PostgreSQL a new database in this binary's throw-away cluster (tests/common/postgres.rs).

// Cases in files of their own beside this one (a crate root finds modules in its own folder).
#[path = "store_conformance/batches.rs"]
mod batches;
mod common;
#[path = "store_conformance/data.rs"]
mod data;
#[path = "store_conformance/fleet.rs"]
mod fleet;
use batches::*;
use data::*;
use fleet::*;

use edge_sync_service::model::acl::{AclEntry, AclKind, AclRole, AclUserType};
use edge_sync_service::model::sync::{Notification, NotificationStatus, Remote};
use edge_sync_service::model::{
    DeliveryStatus, Destination, MetaData, ObjectKey, ObjectRecord, ObjectStatus, Organization,
};
use edge_sync_service::store::blobs::BlobStore;
use edge_sync_service::store::postgres::PostgresStore;
use edge_sync_service::store::sqlite::SqliteStore;
use edge_sync_service::store::{Expect, Store, StoreError, StoreOp};
use std::sync::Arc;
use std::time::Duration;

/// Generates `sqlite::<case>` and `postgres::<case>` for each case.
macro_rules! conformance {
    ($($case:ident),* $(,)?) => {
        mod sqlite {
            $(
                #[tokio::test]
                async fn $case() {
                    let dir = tempfile::tempdir().expect("temp dir");
                    let store = super::SqliteStore::open(&dir.path().join("sync.sqlite3"), true).expect("open");
                    let store: std::sync::Arc<dyn super::Store> = std::sync::Arc::new(store);
                    super::$case(store.clone()).await;
                    store.close();
                }
            )*
        }
        mod postgres {
            $(
                #[tokio::test]
                async fn $case() {
                    let store = super::postgres_store().await;
                    super::$case(store.clone()).await;
                    store.close();
                }
            )*
        }
    };
}

conformance!(
    totals_and_unacknowledged_messages_for_metrics,
    objects_are_written_read_and_revised,
    absent_twice_conflicts,
    stale_revision_fails_the_whole_batch,
    objects_are_deleted_with_their_records,
    objects_list_by_type_and_org_in_key_order,
    batches_apply_notifications_and_deliveries_together,
    notifications_are_found_by_remote_time_and_object,
    a_poll_reads_only_the_records_waiting_for_it,
    destinations_are_upserted_touched_and_removed,
    upload_sessions_merge_ranges_and_restart_on_a_new_total,
    sent_progress_is_recorded_and_forgotten,
    acl_changes_put_added_entries_first,
    webhooks_are_removed_case_insensitively,
    deleting_an_organization_removes_everything_of_it,
    objects_due_by_lifecycle_time,
    counts_and_instance_ids,
    concurrent_writers_of_one_revision_one_wins,
    concurrent_changes_of_one_acl_and_one_upload_all_count,
    a_batch_guarded_by_a_notification_fails_once_it_changed,
    a_batch_guarded_by_an_object_revision_leaves_the_object_as_it_is,
    a_batch_writes_repeated_records_in_order_the_last_winning,
    the_status_page_reads_counts_and_pages,
);

/// Generates `files::<case>` and `database::<case>` for each case of object data: files
/// beside a SQLite store, and rows in PostgreSQL.
macro_rules! data_conformance {
    ($($case:ident),* $(,)?) => {
        mod files {
            $(
                #[tokio::test]
                async fn $case() {
                    let dir = tempfile::tempdir().expect("temp dir");
                    let store = super::SqliteStore::open(&dir.path().join("sync.sqlite3"), true).expect("open");
                    let store: std::sync::Arc<dyn super::Store> = std::sync::Arc::new(store);
                    let blobs = super::BlobStore::open(&dir.path().join("objects")).expect("data folder");
                    super::$case(store.clone(), blobs).await;
                    store.close();
                }
            )*
        }
        mod database {
            $(
                #[tokio::test]
                async fn $case() {
                    let store = super::postgres().await;
                    let blobs = super::BlobStore::in_database(store.data().expect("data pool"));
                    let store: std::sync::Arc<dyn super::Store> = store;
                    super::$case(store.clone(), blobs).await;
                    store.close();
                }
            )*
        }
    };
}

data_conformance!(
    whole_data_reads_back_whole_by_range_and_hashed,
    a_failed_or_overlong_body_leaves_no_data,
    chunks_in_any_order_and_sent_twice_become_the_data,
    leftovers_are_collected_and_referenced_data_kept,
);

async fn postgres_store() -> Arc<dyn Store> {
    postgres().await
}

async fn postgres() -> Arc<PostgresStore> {
    let url = common::postgres::shared().create_database().await;
    let (store, created) = PostgresStore::connect(&url, None, Duration::from_secs(30))
        .await
        .expect("connect");
    assert!(created, "a new database gets its schema now");
    Arc::new(store)
}

const ORG: &str = "org";

fn meta(object_type: &str, object_id: &str) -> MetaData {
    MetaData {
        destination_org_id: ORG.into(),
        object_type: object_type.into(),
        object_id: object_id.into(),
        instance_id: 1,
        ..MetaData::default()
    }
}

fn record(object_type: &str, object_id: &str) -> ObjectRecord {
    ObjectRecord {
        meta: meta(object_type, object_id),
        status: ObjectStatus::Ready,
        sender: true,
        remaining_consumers: 1,
        remaining_receivers: 1,
        policy_received: false,
        blob: None,
        revision: 0,
    }
}

fn key(object_type: &str, object_id: &str) -> ObjectKey {
    ObjectKey::new(ORG, object_type, object_id)
}

fn remote(dest_type: &str, dest_id: &str) -> Remote {
    Remote {
        dest_type: dest_type.into(),
        dest_id: dest_id.into(),
    }
}

fn notification(object: &ObjectKey, to: &Remote, instance_id: i64, resend_time: i64) -> Notification {
    Notification {
        key: object.clone(),
        remote: to.clone(),
        status: NotificationStatus::Update,
        instance_id,
        data_id: instance_id,
        resend_time,
    }
}

fn destination(dest_type: &str, dest_id: &str) -> Destination {
    Destination {
        org: ORG.into(),
        dest_type: dest_type.into(),
        dest_id: dest_id.into(),
        communication: "http".into(),
        code_version: "1.0".into(),
    }
}

fn entry(user_type: AclUserType, username: &str, role: AclRole) -> AclEntry {
    AclEntry {
        username: username.into(),
        user_type,
        role,
    }
}

fn ids(records: &[ObjectRecord]) -> Vec<String> {
    records
        .iter()
        .map(|r| format!("{}/{}", r.meta.object_type, r.meta.object_id))
        .collect()
}

async fn write(store: &Arc<dyn Store>, record: ObjectRecord) -> i64 {
    store.write_object(record, Expect::Absent, false).await.expect("write")
}

async fn objects_are_written_read_and_revised(store: Arc<dyn Store>) {
    let k = key("model", "m1");
    assert_eq!(store.object(&k).await.unwrap(), None);
    let mut stored = record("model", "m1");
    stored.meta.description = "first — ünïcode".into();
    stored.blob = Some("blob-1".into());
    stored.remaining_consumers = 3;
    stored.policy_received = true;
    let first = store.write_object(stored.clone(), Expect::Absent, false).await.unwrap();
    assert_eq!(first, 1);
    let read = store.object(&k).await.unwrap().expect("stored");
    assert_eq!(
        read,
        ObjectRecord {
            revision: 1,
            ..stored.clone()
        }
    );

    stored.status = ObjectStatus::NotReady;
    stored.sender = false;
    stored.blob = None;
    stored.meta.description = "second".into();
    let second = store
        .write_object(stored.clone(), Expect::Revision(1), false)
        .await
        .unwrap();
    assert_eq!(second, 2);
    let read = store.object(&k).await.unwrap().expect("stored");
    assert_eq!(
        read,
        ObjectRecord {
            revision: 2,
            ..stored.clone()
        }
    );

    let stale = store.write_object(stored.clone(), Expect::Revision(1), false).await;
    assert!(matches!(stale, Err(StoreError::Conflict)), "{stale:?}");
    let missing = store
        .write_object(record("model", "nope"), Expect::Revision(1), false)
        .await;
    assert!(matches!(missing, Err(StoreError::Conflict)), "{missing:?}");
    assert_eq!(store.object(&k).await.unwrap().unwrap().revision, 2);
}

async fn absent_twice_conflicts(store: Arc<dyn Store>) {
    write(&store, record("model", "once")).await;
    let mut again = record("model", "once");
    again.meta.description = "other".into();
    let result = store.write_object(again, Expect::Absent, false).await;
    assert!(matches!(result, Err(StoreError::Conflict)), "{result:?}");
    let kept = store.object(&key("model", "once")).await.unwrap().unwrap();
    assert_eq!(kept.meta.description, "");
    assert_eq!(kept.revision, 1);
}

async fn stale_revision_fails_the_whole_batch(store: Arc<dyn Store>) {
    write(&store, record("model", "a")).await;
    write(&store, record("model", "b")).await;
    let to = remote("edge", "n1");
    let mut a = record("model", "a");
    a.meta.description = "changed".into();
    let batch = vec![
        StoreOp::WriteObject {
            record: Box::new(a),
            expect: Expect::Revision(1),
            drop_upload: false,
        },
        StoreOp::PutNotification(notification(&key("model", "a"), &to, 1, 10)),
        StoreOp::SetDelivery {
            key: key("model", "a"),
            remote: to.clone(),
            status: DeliveryStatus::Pending,
            message: String::new(),
            at: 1,
        },
        StoreOp::WriteObject {
            record: Box::new(record("model", "c")),
            expect: Expect::Absent,
            drop_upload: false,
        },
        // Stale: "b" is at revision 1.
        StoreOp::DeleteObject {
            key: key("model", "b"),
            revision: 7,
        },
    ];
    let result = store.apply(batch).await;
    assert!(matches!(result, Err(StoreError::Conflict)), "{result:?}");
    let a = store.object(&key("model", "a")).await.unwrap().unwrap();
    assert_eq!((a.revision, a.meta.description.as_str()), (1, ""));
    assert_eq!(store.object(&key("model", "c")).await.unwrap(), None);
    assert!(store.object(&key("model", "b")).await.unwrap().is_some());
    assert!(store
        .notifications_of_object(&key("model", "a"))
        .await
        .unwrap()
        .is_empty());
    assert!(store.destination_statuses(&key("model", "a")).await.unwrap().is_empty());

    // A second Absent write of the same key inside one batch fails it too.
    let twice = vec![
        StoreOp::WriteObject {
            record: Box::new(record("model", "d")),
            expect: Expect::Absent,
            drop_upload: false,
        },
        StoreOp::WriteObject {
            record: Box::new(record("model", "d")),
            expect: Expect::Absent,
            drop_upload: false,
        },
    ];
    assert!(matches!(store.apply(twice).await, Err(StoreError::Conflict)));
    assert_eq!(store.object(&key("model", "d")).await.unwrap(), None);
}

async fn objects_are_deleted_with_their_records(store: Arc<dyn Store>) {
    let k = key("model", "gone");
    let to = remote("edge", "n1");
    write(&store, record("model", "gone")).await;
    store
        .apply(vec![
            StoreOp::PutNotification(notification(&k, &to, 1, 10)),
            StoreOp::SetDelivery {
                key: k.clone(),
                remote: to.clone(),
                status: DeliveryStatus::Delivering,
                message: String::new(),
                at: 1,
            },
        ])
        .await
        .unwrap();
    store.set_sent_progress(&k, Some((1, 100))).await.unwrap();
    let session = store.upload_session(&k, 10).await.unwrap();
    let stale = store.delete_object(&k, 2).await;
    assert!(matches!(stale, Err(StoreError::Conflict)), "{stale:?}");
    assert!(store.object(&k).await.unwrap().is_some());

    store.delete_object(&k, 1).await.unwrap();
    assert_eq!(store.object(&k).await.unwrap(), None);
    assert!(store.notifications_of_object(&k).await.unwrap().is_empty());
    assert!(store.destination_statuses(&k).await.unwrap().is_empty());
    assert_eq!(store.sent_progress(&k).await.unwrap(), None);
    assert!(!store.upload_session_ids().await.unwrap().contains(&session.id));
    let again = store.delete_object(&k, 1).await;
    assert!(matches!(again, Err(StoreError::Conflict)), "{again:?}");

    // Through a batch, too.
    write(&store, record("model", "gone")).await;
    store
        .apply(vec![StoreOp::DeleteObject {
            key: k.clone(),
            revision: 1,
        }])
        .await
        .unwrap();
    assert_eq!(store.object(&k).await.unwrap(), None);
}

async fn objects_list_by_type_and_org_in_key_order(store: Arc<dyn Store>) {
    for (object_type, object_id) in [("t2", "z"), ("t1", "b"), ("t1", "B"), ("t1", "a"), ("T0", "x")] {
        write(&store, record(object_type, object_id)).await;
    }
    let mut elsewhere = record("t1", "other-org");
    elsewhere.meta.destination_org_id = "org2".into();
    write(&store, elsewhere).await;
    // Byte order: upper case before lower case, whatever the database's locale.
    assert_eq!(
        ids(&store.objects_of_type(ORG, "t1").await.unwrap()),
        ["t1/B", "t1/a", "t1/b"]
    );
    assert_eq!(
        ids(&store.objects_of_org(ORG).await.unwrap()),
        ["T0/x", "t1/B", "t1/a", "t1/b", "t2/z"]
    );
    assert_eq!(ids(&store.objects_of_org("org2").await.unwrap()), ["t1/other-org"]);
    assert!(store.objects_of_type(ORG, "none").await.unwrap().is_empty());
}

async fn batches_apply_notifications_and_deliveries_together(store: Arc<dyn Store>) {
    let k = key("model", "m");
    let (n1, n2) = (remote("edge", "n1"), remote("edge", "n2"));
    store
        .apply(vec![
            StoreOp::WriteObject {
                record: Box::new(record("model", "m")),
                expect: Expect::Absent,
                drop_upload: false,
            },
            StoreOp::PutNotification(notification(&k, &n1, 1, 10)),
            StoreOp::PutNotification(notification(&k, &n2, 1, 10)),
            StoreOp::SetDelivery {
                key: k.clone(),
                remote: n1.clone(),
                status: DeliveryStatus::Pending,
                message: String::new(),
                at: 1,
            },
            StoreOp::SetDelivery {
                key: k.clone(),
                remote: n2.clone(),
                status: DeliveryStatus::Pending,
                message: String::new(),
                at: 1,
            },
        ])
        .await
        .unwrap();
    assert_eq!(store.object(&k).await.unwrap().unwrap().revision, 1);
    assert_eq!(store.notifications_of_object(&k).await.unwrap().len(), 2);

    // Replacing: the same key and remote is one record, the last written.
    let mut updated = notification(&k, &n1, 2, 20);
    updated.status = NotificationStatus::Data;
    store
        .apply(vec![
            StoreOp::PutNotification(updated.clone()),
            StoreOp::SetDelivery {
                key: k.clone(),
                remote: n1.clone(),
                status: DeliveryStatus::Error,
                message: "it failed".into(),
                at: 1,
            },
            StoreOp::DeleteNotification {
                key: k.clone(),
                remote: n2.clone(),
            },
            StoreOp::DeleteDelivery {
                key: k.clone(),
                remote: n2.clone(),
            },
        ])
        .await
        .unwrap();
    assert_eq!(store.notification(&k, &n1).await.unwrap(), Some(updated));
    assert_eq!(store.notification(&k, &n2).await.unwrap(), None);
    let statuses = store.destination_statuses(&k).await.unwrap();
    assert_eq!(statuses.len(), 1);
    assert_eq!(
        (
            statuses[0].dest_id.as_str(),
            statuses[0].status,
            statuses[0].message.as_str()
        ),
        ("n1", DeliveryStatus::Error, "it failed")
    );

    store
        .apply(vec![StoreOp::DeleteNotificationsOf(k.clone())])
        .await
        .unwrap();
    assert!(store.notifications_of_object(&k).await.unwrap().is_empty());
    // An empty batch is fine.
    store.apply(Vec::new()).await.unwrap();
}

async fn notifications_are_found_by_remote_time_and_object(store: Arc<dyn Store>) {
    let (n1, n2) = (remote("edge", "n1"), remote("edge", "n2"));
    let (a, b, c) = (key("t", "a"), key("t", "b"), key("t", "c"));
    let mut other_org = notification(&ObjectKey::new("org2", "t", "a"), &n1, 1, 5);
    other_org.status = NotificationStatus::Delete;
    store
        .apply(vec![
            StoreOp::PutNotification(notification(&a, &n1, 30, 300)),
            StoreOp::PutNotification(notification(&b, &n1, 10, 100)),
            StoreOp::PutNotification(notification(&c, &n1, 20, 200)),
            StoreOp::PutNotification(notification(&a, &n2, 40, 150)),
            StoreOp::PutNotification(other_org.clone()),
        ])
        .await
        .unwrap();
    let for_n1: Vec<i64> = store
        .notifications_for_remote(ORG, &n1)
        .await
        .unwrap()
        .iter()
        .map(|n| n.instance_id)
        .collect();
    assert_eq!(for_n1, [10, 20, 30], "ordered by instance");
    assert_eq!(store.notifications_for_remote("org2", &n1).await.unwrap(), [other_org]);
    assert!(store
        .notifications_for_remote(ORG, &remote("edge", "n3"))
        .await
        .unwrap()
        .is_empty());

    let due: Vec<i64> = store
        .due_notifications(200)
        .await
        .unwrap()
        .iter()
        .map(|n| n.resend_time)
        .collect();
    assert_eq!(due, [5, 100, 150, 200], "due at or before the time, earliest first");
    assert!(store.due_notifications(4).await.unwrap().is_empty());

    let of_a: Vec<String> = store
        .notifications_of_object(&a)
        .await
        .unwrap()
        .iter()
        .map(|n| n.remote.dest_id.clone())
        .collect();
    assert_eq!(of_a.len(), 2);
    assert!(of_a.contains(&"n1".to_string()) && of_a.contains(&"n2".to_string()));
}

async fn a_poll_reads_only_the_records_waiting_for_it(store: Arc<dyn Store>) {
    let (n1, n2) = (remote("edge", "n1"), remote("edge", "n2"));
    let with = |object_id: &str, to: &Remote, instance_id: i64, status: NotificationStatus| Notification {
        status,
        ..notification(&key("t", object_id), to, instance_id, 0)
    };
    let mut ops = Vec::new();
    // Every status for n1, each on an object of its own, instance IDs descending.
    for (i, status) in NotificationStatus::ALL.into_iter().enumerate() {
        ops.push(StoreOp::PutNotification(with(
            &format!("o{i}"),
            &n1,
            100 - i as i64,
            status,
        )));
    }
    ops.push(StoreOp::PutNotification(with(
        "o0",
        &n2,
        1,
        NotificationStatus::UpdatePending,
    )));
    store.apply(ops).await.unwrap();

    let waiting = store.notifications_awaiting_poll(ORG, &n1).await.unwrap();
    let statuses: Vec<NotificationStatus> = waiting.iter().map(|n| n.status).collect();
    let mut expected: Vec<NotificationStatus> = NotificationStatus::awaiting_poll().collect();
    expected.reverse();
    assert_eq!(statuses, expected, "the records waiting for a poll, by instance ID");
    assert!(waiting.iter().all(|n| n.remote == n1));

    // Once the update was sent it no longer waits; the record stays.
    let sent = with("o0", &n2, 1, NotificationStatus::Update);
    store.apply(vec![StoreOp::PutNotification(sent)]).await.unwrap();
    assert!(store.notifications_awaiting_poll(ORG, &n2).await.unwrap().is_empty());
    assert_eq!(store.notifications_for_remote(ORG, &n2).await.unwrap().len(), 1);
}

async fn destinations_are_upserted_touched_and_removed(store: Arc<dyn Store>) {
    let (n1, n2) = (remote("edge", "n1"), remote("edge", "n2"));
    store.upsert_destination(destination("edge", "n2"), 100).await.unwrap();
    store.upsert_destination(destination("edge", "n1"), 100).await.unwrap();
    store.upsert_destination(destination("cam", "c1"), 300).await.unwrap();
    let mut other = destination("edge", "n1");
    other.org = "org2".into();
    store.upsert_destination(other.clone(), 50).await.unwrap();
    let mut changed = destination("edge", "n1");
    changed.communication = "mqtt".into();
    changed.code_version = "2.0".into();
    store.upsert_destination(changed.clone(), 200).await.unwrap();

    let listed: Vec<String> = store
        .destinations(ORG)
        .await
        .unwrap()
        .iter()
        .map(|d| format!("{}/{}", d.dest_type, d.dest_id))
        .collect();
    assert_eq!(listed, ["cam/c1", "edge/n1", "edge/n2"]);
    assert_eq!(store.destination(ORG, &n1).await.unwrap(), Some(changed.clone()));
    assert_eq!(store.destination(ORG, &remote("edge", "n9")).await.unwrap(), None);
    assert_eq!(store.count_destinations().await.unwrap(), 4);

    // Last contact: n1 at 200 (re-registered), n2 at 100, org2's n1 at 50.
    let mut inactive: Vec<String> = store
        .inactive_destinations(100)
        .await
        .unwrap()
        .iter()
        .map(|d| format!("{}/{}", d.org, d.dest_id))
        .collect();
    inactive.sort();
    assert_eq!(inactive, ["org/n2", "org2/n1"]);
    assert!(store.touch_destination(ORG, &n2, 250).await.unwrap());
    assert!(!store.touch_destination(ORG, &remote("edge", "n9"), 250).await.unwrap());
    assert_eq!(store.inactive_destinations(100).await.unwrap(), [other]);

    // Removing a node removes its notification records and delivery rows, nobody else's.
    let k = key("t", "o");
    store
        .apply(vec![
            StoreOp::PutNotification(notification(&k, &n1, 1, 1)),
            StoreOp::PutNotification(notification(&k, &n2, 1, 1)),
            StoreOp::SetDelivery {
                key: k.clone(),
                remote: n1.clone(),
                status: DeliveryStatus::Delivered,
                message: String::new(),
                at: 1,
            },
            StoreOp::SetDelivery {
                key: k.clone(),
                remote: n2.clone(),
                status: DeliveryStatus::Delivered,
                message: String::new(),
                at: 1,
            },
        ])
        .await
        .unwrap();
    assert_eq!(store.objects_for_destination(ORG, "edge", "n1").await.unwrap().len(), 1);
    store.remove_destination(ORG, &n1).await.unwrap();
    assert_eq!(store.destination(ORG, &n1).await.unwrap(), None);
    assert!(store.destination("org2", &n1).await.unwrap().is_some());
    assert_eq!(store.notification(&k, &n1).await.unwrap(), None);
    assert!(store.notification(&k, &n2).await.unwrap().is_some());
    assert!(store
        .objects_for_destination(ORG, "edge", "n1")
        .await
        .unwrap()
        .is_empty());
    let left = store.destination_statuses(&k).await.unwrap();
    assert_eq!(left.len(), 1);
    assert_eq!(left[0].dest_id, "n2");
    store.remove_destination(ORG, &n1).await.unwrap();
}

async fn upload_sessions_merge_ranges_and_restart_on_a_new_total(store: Arc<dyn Store>) {
    let k = key("model", "big");
    let session = store.upload_session(&k, 100).await.unwrap();
    assert_eq!(
        (session.total, session.first_chunk_size, session.ranges.clone()),
        (100, None, vec![])
    );
    assert_eq!(
        store.upload_session(&k, 100).await.unwrap(),
        session,
        "the same session"
    );

    let after = store.record_chunk(session.id, 50, 25).await.unwrap();
    assert_eq!(after.ranges, [(50, 75)]);
    assert_eq!(after.first_chunk_size, None);
    let after = store.record_chunk(session.id, 0, 30).await.unwrap();
    assert_eq!(
        (after.ranges.clone(), after.first_chunk_size),
        (vec![(0, 30), (50, 75)], Some(30))
    );
    let after = store.record_chunk(session.id, 30, 20).await.unwrap();
    assert_eq!(after.ranges, [(0, 75)], "touching ranges merge");
    assert!(!after.is_complete());
    let after = store.record_chunk(session.id, 60, 40).await.unwrap();
    assert_eq!(after.ranges, [(0, 100)], "overlapping ranges merge");
    assert!(after.is_complete());
    assert_eq!(
        store.upload_session(&k, 100).await.unwrap(),
        after,
        "stored as returned"
    );

    let other = store.upload_session(&key("model", "other"), 5).await.unwrap();
    let renewed = store.upload_session(&k, 200).await.unwrap();
    assert_ne!(renewed.id, session.id, "a different total starts a new session");
    assert_ne!(renewed.id, other.id);
    assert_eq!((renewed.total, renewed.ranges.clone()), (200, vec![]));
    let mut ids = store.upload_session_ids().await.unwrap();
    ids.sort_unstable();
    let mut expected = vec![renewed.id, other.id];
    expected.sort_unstable();
    assert_eq!(ids, expected);
    let unknown = store.record_chunk(session.id, 0, 1).await;
    assert!(matches!(unknown, Err(StoreError::NotFound)), "{unknown:?}");

    // Completing the object drops its session in the same write.
    write(&store, record("model", "big")).await;
    let mut done = record("model", "big");
    done.blob = Some("data-1".into());
    store.write_object(done, Expect::Revision(1), true).await.unwrap();
    assert_eq!(store.upload_session_ids().await.unwrap(), [other.id]);
}

async fn sent_progress_is_recorded_and_forgotten(store: Arc<dyn Store>) {
    let k = key("model", "sent");
    assert_eq!(store.sent_progress(&k).await.unwrap(), None);
    store.set_sent_progress(&k, Some((7, 1 << 40))).await.unwrap();
    assert_eq!(store.sent_progress(&k).await.unwrap(), Some((7, 1 << 40)));
    store.set_sent_progress(&k, Some((8, 10))).await.unwrap();
    assert_eq!(store.sent_progress(&k).await.unwrap(), Some((8, 10)));
    store.set_sent_progress(&k, None).await.unwrap();
    assert_eq!(store.sent_progress(&k).await.unwrap(), None);
    store.set_sent_progress(&k, None).await.unwrap();
}

async fn acl_changes_put_added_entries_first(store: Arc<dyn Store>) {
    use AclUserType::{Node, User};
    let kind = AclKind::Objects;
    assert!(store.acl(ORG, kind, "model").await.unwrap().is_empty());
    store
        .change_acl(
            ORG,
            kind,
            "model",
            vec![
                entry(User, "alice", AclRole::Writer),
                entry(User, "bob", AclRole::Reader),
            ],
            vec![],
        )
        .await
        .unwrap();
    store
        .change_acl(
            ORG,
            kind,
            "model",
            vec![entry(Node, "n1", AclRole::Reader), entry(User, "bob", AclRole::Writer)],
            vec![],
        )
        .await
        .unwrap();
    // Added entries first, replacing bob; then the surviving old ones.
    assert_eq!(
        store.acl(ORG, kind, "model").await.unwrap(),
        [
            entry(Node, "n1", AclRole::Reader),
            entry(User, "bob", AclRole::Writer),
            entry(User, "alice", AclRole::Writer),
        ]
    );
    // Removal matches user type and name: a node named alice is not the user alice.
    store
        .change_acl(
            ORG,
            kind,
            "model",
            vec![],
            vec![(Node, "alice".into()), (User, "bob".into())],
        )
        .await
        .unwrap();
    assert_eq!(
        store.acl(ORG, kind, "model").await.unwrap(),
        [
            entry(Node, "n1", AclRole::Reader),
            entry(User, "alice", AclRole::Writer)
        ]
    );
    store
        .change_acl(ORG, kind, "*", vec![entry(User, "carol", AclRole::Reader)], vec![])
        .await
        .unwrap();
    store
        .change_acl(
            ORG,
            AclKind::Destinations,
            "edge",
            vec![entry(User, "dan", AclRole::Reader)],
            vec![],
        )
        .await
        .unwrap();
    assert_eq!(store.acl_keys(ORG, kind).await.unwrap(), ["*", "model"]);
    assert_eq!(store.acl_keys(ORG, AclKind::Destinations).await.unwrap(), ["edge"]);
    assert!(store.acl_keys("org2", kind).await.unwrap().is_empty());

    // An ACL without entries ceases to exist.
    store
        .change_acl(
            ORG,
            kind,
            "model",
            vec![],
            vec![(Node, "n1".into()), (User, "alice".into())],
        )
        .await
        .unwrap();
    assert!(store.acl(ORG, kind, "model").await.unwrap().is_empty());
    assert_eq!(store.acl_keys(ORG, kind).await.unwrap(), ["*"]);
}

async fn webhooks_are_removed_case_insensitively(store: Arc<dyn Store>) {
    store.add_webhook(ORG, "model", "https://b.example/hook").await.unwrap();
    store.add_webhook(ORG, "model", "https://A.example/Hook").await.unwrap();
    store.add_webhook(ORG, "model", "https://b.example/hook").await.unwrap();
    store.add_webhook(ORG, "other", "https://c.example/").await.unwrap();
    assert_eq!(
        store.webhooks(ORG, "model").await.unwrap(),
        ["https://A.example/Hook", "https://b.example/hook"]
    );
    store
        .remove_webhook(ORG, "model", "HTTPS://a.EXAMPLE/hook")
        .await
        .unwrap();
    store
        .remove_webhook(ORG, "model", "https://nowhere.example/")
        .await
        .unwrap();
    assert_eq!(store.webhooks(ORG, "model").await.unwrap(), ["https://b.example/hook"]);
    assert_eq!(store.webhooks(ORG, "other").await.unwrap(), ["https://c.example/"]);
    assert!(store.webhooks("org2", "model").await.unwrap().is_empty());
}

async fn deleting_an_organization_removes_everything_of_it(store: Arc<dyn Store>) {
    let organization = |org: &str| Organization {
        org_id: org.into(),
        user: "user".into(),
        password: "pw".into(),
        address: "tcp://broker:1883".into(),
    };
    store.put_organization(organization("org2")).await.unwrap();
    store.put_organization(organization(ORG)).await.unwrap();
    let mut changed = organization(ORG);
    changed.address = "ssl://broker:8883".into();
    store.put_organization(changed.clone()).await.unwrap();
    assert_eq!(store.organizations().await.unwrap(), [changed, organization("org2")]);

    let mut with_data = record("model", "data");
    with_data.blob = Some("blob-a".into());
    write(&store, with_data).await;
    write(&store, record("model", "meta-only")).await;
    let mut kept = record("model", "kept");
    kept.meta.destination_org_id = "org2".into();
    kept.blob = Some("blob-kept".into());
    write(&store, kept).await;
    let k = key("model", "data");
    let n1 = remote("edge", "n1");
    store
        .apply(vec![
            StoreOp::PutNotification(notification(&k, &n1, 1, 1)),
            StoreOp::SetDelivery {
                key: k.clone(),
                remote: n1.clone(),
                status: DeliveryStatus::Pending,
                message: String::new(),
                at: 1,
            },
        ])
        .await
        .unwrap();
    store.upsert_destination(destination("edge", "n1"), 1).await.unwrap();
    store.add_webhook(ORG, "model", "https://a.example/").await.unwrap();
    store.upload_session(&key("model", "meta-only"), 10).await.unwrap();
    store.set_sent_progress(&k, Some((1, 5))).await.unwrap();
    store
        .change_acl(
            ORG,
            AclKind::Objects,
            "*",
            vec![entry(AclUserType::User, "u", AclRole::Reader)],
            vec![],
        )
        .await
        .unwrap();

    let blobs = store.delete_organization(ORG).await.unwrap();
    assert_eq!(blobs, ["blob-a"]);
    assert!(store.objects_of_org(ORG).await.unwrap().is_empty());
    assert!(store.notifications_for_remote(ORG, &n1).await.unwrap().is_empty());
    assert!(store.destination_statuses(&k).await.unwrap().is_empty());
    assert!(store.destinations(ORG).await.unwrap().is_empty());
    assert!(store.webhooks(ORG, "model").await.unwrap().is_empty());
    assert!(store.upload_session_ids().await.unwrap().is_empty());
    assert_eq!(store.sent_progress(&k).await.unwrap(), None);
    assert!(store.acl_keys(ORG, AclKind::Objects).await.unwrap().is_empty());
    assert_eq!(store.organizations().await.unwrap(), [organization("org2")]);
    assert_eq!(ids(&store.objects_of_org("org2").await.unwrap()), ["model/kept"]);
    assert_eq!(store.referenced_blobs().await.unwrap(), ["blob-kept"]);
}

async fn objects_due_by_lifecycle_time(store: Arc<dyn Store>) {
    let at = |secs: i64| edge_sync_service::model::lifecycle::rfc3339_utc(secs);
    let mut expiring = record("t", "expiring");
    expiring.meta.expiration = at(2_000_000_000);
    let mut activating = record("t", "activating");
    activating.meta.inactive = true;
    activating.meta.activation_time = at(1_900_000_000);
    let mut both = record("t", "both");
    both.meta.expiration = at(2_100_000_000);
    both.meta.inactive = true;
    both.meta.activation_time = at(1_950_000_000);
    let mut received = record("t", "received");
    received.sender = false;
    received.meta.expiration = at(1_000_000_000);
    for r in [expiring.clone(), activating, both, received, record("t", "timeless")] {
        write(&store, r).await;
    }
    assert!(store.objects_due(1_899_999_999).await.unwrap().is_empty());
    assert_eq!(
        ids(&store.objects_due(2_000_000_000).await.unwrap()),
        ["t/activating", "t/both", "t/expiring"],
        "earliest first; only origin copies"
    );
    // A write moves the due time with the metadata.
    expiring.meta.expiration = at(1_800_000_000);
    store.write_object(expiring, Expect::Revision(1), false).await.unwrap();
    assert_eq!(ids(&store.objects_due(1_850_000_000).await.unwrap()), ["t/expiring"]);
    let mut deleted = store.object(&key("t", "expiring")).await.unwrap().unwrap();
    deleted.status = ObjectStatus::ObjDeleted;
    let revision = deleted.revision;
    store
        .write_object(deleted, Expect::Revision(revision), false)
        .await
        .unwrap();
    assert!(
        store.objects_due(1_850_000_000).await.unwrap().is_empty(),
        "a deleted object does not expire"
    );
}

async fn counts_and_instance_ids(store: Arc<dyn Store>) {
    assert_eq!(store.count_sender_objects().await.unwrap(), 0);
    assert_eq!(store.count_destinations().await.unwrap(), 0);
    assert_eq!(store.max_instance_id().await.unwrap(), 0);
    assert!(store.referenced_blobs().await.unwrap().is_empty());
    let mut a = record("t", "a");
    a.meta.instance_id = 1_700_000_000_000_000_123;
    a.blob = Some("blob-a".into());
    let mut b = record("t", "b");
    b.sender = false;
    b.meta.instance_id = 42;
    b.blob = Some("blob-b".into());
    write(&store, a).await;
    write(&store, b).await;
    write(&store, record("t", "c")).await;
    assert_eq!(store.count_sender_objects().await.unwrap(), 2);
    assert_eq!(store.max_instance_id().await.unwrap(), 1_700_000_000_000_000_123);
    let mut blobs = store.referenced_blobs().await.unwrap();
    blobs.sort();
    assert_eq!(blobs, ["blob-a", "blob-b"]);
}

async fn totals_and_unacknowledged_messages_for_metrics(store: Arc<dyn Store>) {
    let totals = store.object_totals().await.unwrap();
    assert_eq!((totals.objects, totals.data_bytes), (0, 0));
    let mut with_data = record("t", "a");
    with_data.meta.object_size = 1000;
    with_data.blob = Some("blob-a".into());
    let mut without_data = record("t", "b");
    without_data.meta.object_size = 500;
    write(&store, with_data.clone()).await;
    write(&store, without_data).await;
    let totals = store.object_totals().await.unwrap();
    assert_eq!((totals.objects, totals.data_bytes), (2, 1000));

    let (n1, n2) = (remote("edge", "n1"), remote("edge", "n2"));
    let key = with_data.key();
    let other = record("t", "b").key();
    let mut acknowledged = notification(&key, &n2, 1, 0);
    acknowledged.status = NotificationStatus::ConsumedByDest;
    let ops = vec![
        StoreOp::PutNotification(notification(&key, &n1, 1, 0)),
        StoreOp::PutNotification(notification(&other, &n1, 1, 0)),
        StoreOp::PutNotification(acknowledged),
    ];
    store.apply(ops).await.unwrap();
    let pending = store.unacknowledged_notifications(10).await.unwrap();
    assert_eq!(pending.len(), 1, "{pending:?}");
    assert_eq!((pending[0].remote.clone(), pending[0].count), (n1, 2));
}

async fn concurrent_writers_of_one_revision_one_wins(store: Arc<dyn Store>) {
    const WRITERS: usize = 8;
    let attempt = |expect: Expect, description: String| {
        let store = store.clone();
        tokio::spawn(async move {
            let mut r = record("race", "r");
            r.meta.description = description;
            let batch = vec![
                StoreOp::WriteObject {
                    record: Box::new(r),
                    expect,
                    drop_upload: false,
                },
                StoreOp::PutNotification(notification(&key("race", "r"), &remote("edge", "n1"), 1, 1)),
            ];
            store.apply(batch).await
        })
    };
    for expect in [Expect::Absent, Expect::Revision(1)] {
        let tasks: Vec<_> = (0..WRITERS).map(|i| attempt(expect, format!("writer {i}"))).collect();
        let mut won = Vec::new();
        for (i, task) in tasks.into_iter().enumerate() {
            match task.await.expect("task") {
                Ok(()) => won.push(i),
                Err(StoreError::Conflict) => {}
                Err(e) => panic!("writer {i}: {e}"),
            }
        }
        assert_eq!(won.len(), 1, "exactly one writer of {expect:?} wins: {won:?}");
        let stored = store.object(&key("race", "r")).await.unwrap().unwrap();
        assert_eq!(stored.meta.description, format!("writer {}", won[0]));
    }
    assert_eq!(store.object(&key("race", "r")).await.unwrap().unwrap().revision, 2);
}

async fn concurrent_changes_of_one_acl_and_one_upload_all_count(store: Arc<dyn Store>) {
    const TASKS: u64 = 8;
    let session = store.upload_session(&key("model", "up"), TASKS * 10).await.unwrap();
    let tasks: Vec<_> = (0..TASKS)
        .map(|i| {
            let store = store.clone();
            tokio::spawn(async move {
                let user = entry(AclUserType::User, &format!("user{i}"), AclRole::Reader);
                store
                    .change_acl(ORG, AclKind::Objects, "model", vec![user], vec![])
                    .await?;
                // Every other chunk, so that no two tasks' ranges touch until all have arrived.
                let start = (i * 2 % TASKS + i * 2 / TASKS) * 10;
                store.record_chunk(session.id, start, 10).await
            })
        })
        .collect();
    for task in tasks {
        task.await.expect("task").expect("change");
    }
    assert_eq!(
        store.acl(ORG, AclKind::Objects, "model").await.unwrap().len(),
        TASKS as usize
    );
    let done = store.upload_session(&key("model", "up"), TASKS * 10).await.unwrap();
    assert_eq!(done.ranges, [(0, TASKS * 10)]);
}

/// Instances starting together on a new database: one creates the schema, the others wait
/// for it (advisory lock) and find it made; a schema newer than the program is refused.
#[tokio::test]
async fn postgres_migrations_run_once_and_refuse_a_newer_schema() {
    let url = common::postgres::shared().create_database().await;
    let starts: Vec<_> = (0..4)
        .map(|_| {
            let url = url.clone();
            tokio::spawn(async move { PostgresStore::connect(&url, None, Duration::from_secs(30)).await })
        })
        .collect();
    let mut created = 0;
    for start in starts {
        let (store, made) = start.await.expect("task").expect("connect");
        created += usize::from(made);
        store.close();
    }
    assert_eq!(created, 1, "exactly one instance created the schema");

    let (client, connection) = tokio_postgres::connect(&url, tokio_postgres::NoTls).await.unwrap();
    tokio::spawn(connection);
    let versions: Vec<i32> = client
        .query("SELECT version FROM schema_migrations ORDER BY version", &[])
        .await
        .unwrap()
        .iter()
        .map(|row| row.get(0))
        .collect();
    let latest = edge_sync_service::store::postgres::schema::latest_version();
    assert_eq!(versions, (1..=latest).collect::<Vec<_>>());
    client
        .execute("INSERT INTO schema_migrations (version) VALUES ($1)", &[&(latest + 1)])
        .await
        .unwrap();
    match PostgresStore::connect(&url, None, Duration::from_secs(30)).await {
        Err(StoreError::Corrupt(message)) => assert!(message.contains("newer"), "{message}"),
        Err(other) => panic!("{other}"),
        Ok(_) => panic!("a newer schema was accepted"),
    }
}

async fn a_batch_guarded_by_a_notification_fails_once_it_changed(store: Arc<dyn Store>) {
    let object = key("model", "guarded");
    let node = remote("edge", "n1");
    let queued = notification(&object, &node, 7, 0);
    store
        .apply(vec![StoreOp::PutNotification(queued.clone())])
        .await
        .unwrap();
    let read = store.notification(&object, &node).await.unwrap().expect("stored");

    // Another writer queues a newer message for the node after the read.
    let newer = Notification {
        status: NotificationStatus::ConsumedPending,
        ..queued.clone()
    };
    store
        .apply(vec![StoreOp::PutNotification(newer.clone())])
        .await
        .unwrap();
    let acknowledged = Notification {
        status: NotificationStatus::AckReceived,
        ..read.clone()
    };
    let stale = vec![
        StoreOp::expect_notification(&read),
        StoreOp::PutNotification(acknowledged.clone()),
    ];
    assert!(matches!(store.apply(stale).await, Err(StoreError::Conflict)));
    assert_eq!(store.notification(&object, &node).await.unwrap(), Some(newer.clone()));

    // Guarded by what is stored now, the batch goes through; a missing record fails it.
    let current = vec![
        StoreOp::expect_notification(&newer),
        StoreOp::PutNotification(acknowledged.clone()),
    ];
    store.apply(current).await.unwrap();
    assert_eq!(store.notification(&object, &node).await.unwrap(), Some(acknowledged));
    let other_instance = Notification {
        instance_id: 8,
        ..newer.clone()
    };
    let guarded = vec![StoreOp::expect_notification(&other_instance)];
    assert!(matches!(store.apply(guarded).await, Err(StoreError::Conflict)));
    let missing = Notification {
        remote: remote("edge", "n2"),
        ..newer
    };
    assert!(matches!(
        store.apply(vec![StoreOp::expect_notification(&missing)]).await,
        Err(StoreError::Conflict)
    ));
}

async fn a_batch_guarded_by_an_object_revision_leaves_the_object_as_it_is(store: Arc<dyn Store>) {
    let revision = store
        .write_object(record("model", "checked"), Expect::Absent, false)
        .await
        .unwrap();
    let read = store.object(&key("model", "checked")).await.unwrap().expect("stored");
    assert_eq!(read.revision, revision);
    // Two batches decided on the same read both pass: the guard does not bump the revision.
    for node in ["n1", "n2"] {
        let queued = notification(&read.key(), &remote("edge", node), 1, 0);
        store
            .apply(vec![StoreOp::expect_object(&read), StoreOp::PutNotification(queued)])
            .await
            .unwrap();
    }
    let after = store.object(&read.key()).await.unwrap().expect("stored");
    assert_eq!(after.revision, revision);
    // A change of the object fails a batch decided before it, with none of its writes kept.
    let mut changed = after.clone();
    changed.meta.instance_id = 2;
    store
        .write_object(changed, Expect::Revision(revision), false)
        .await
        .unwrap();
    let late = notification(&read.key(), &remote("edge", "n3"), 1, 0);
    let batch = vec![StoreOp::expect_object(&read), StoreOp::PutNotification(late)];
    assert!(matches!(store.apply(batch).await, Err(StoreError::Conflict)));
    assert_eq!(
        store.notification(&read.key(), &remote("edge", "n3")).await.unwrap(),
        None
    );
    let gone = ObjectRecord {
        revision,
        ..record("model", "never-stored")
    };
    assert!(matches!(
        store.apply(vec![StoreOp::expect_object(&gone)]).await,
        Err(StoreError::Conflict)
    ));
}
