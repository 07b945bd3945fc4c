use super::*;
use crate::model::sync::NotificationStatus;
use crate::model::{MetaData, ObjectStatus};

pub(super) fn record(object_id: &str, size: i64, blob: Option<&str>) -> ObjectRecord {
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

/// Reads are served from the kept records; every write, delete and organization removal is
/// seen by the next read, and a batch's object writes too.
#[tokio::test]
async fn kept_records_follow_every_write() {
    let dir = tempfile::tempdir().expect("temp dir");
    let store = SqliteStore::open(&dir.path().join("sync.db"), true).expect("store");
    let key = ObjectKey::new("org", "t", "a");
    let size_of = |record: Option<ObjectRecord>| record.map(|r| r.meta.object_size);

    let revision = store
        .write_object(record("a", 1, None), Expect::Absent, false)
        .await
        .expect("write");
    assert_eq!(size_of(store.object(&key).await.expect("read")), Some(1));
    let first = store.shared_object(&key).await.expect("read").expect("the object");
    let again = store.shared_object(&key).await.expect("read").expect("the object");
    assert!(
        Arc::ptr_eq(&first, &again),
        "a repeated read is served from the kept record"
    );

    let mut changed = record("a", 2, None);
    changed.revision = revision;
    let revision = store
        .write_object(changed, Expect::Revision(revision), false)
        .await
        .expect("write");
    assert_eq!(size_of(store.object(&key).await.expect("read")), Some(2));

    let mut batched = record("a", 3, None);
    batched.revision = revision;
    store
        .apply(vec![StoreOp::WriteObject {
            record: Box::new(batched),
            expect: Expect::Revision(revision),
            drop_upload: false,
        }])
        .await
        .expect("batch");
    let stored = store.object(&key).await.expect("read").expect("the object");
    assert_eq!(stored.meta.object_size, 3);

    store.delete_object(&key, stored.revision).await.expect("delete");
    assert_eq!(size_of(store.object(&key).await.expect("read")), None);

    store
        .write_object(record("a", 4, None), Expect::Absent, false)
        .await
        .expect("write");
    assert_eq!(size_of(store.object(&key).await.expect("read")), Some(4));
    store.delete_organization("org").await.expect("remove org");
    assert_eq!(size_of(store.object(&key).await.expect("read")), None);
    store.close();
}
