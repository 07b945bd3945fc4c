use super::*;
use crate::model::sync::NotificationStatus;
use crate::model::{MetaData, ObjectStatus};

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
