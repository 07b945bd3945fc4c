//! Batches whose operations write the same records more than once, with other operations in
//! between: whatever a store groups to write faster, the result is that of applying every
//! operation in order, the last write of a record winning.

use super::{key, notification, remote};
use edge_sync_service::model::sync::{Notification, NotificationStatus, Remote};
use edge_sync_service::model::{DeliveryStatus, ObjectKey};
use edge_sync_service::store::{Store, StoreOp};
use std::sync::Arc;

fn put(object: &ObjectKey, to: &Remote, instance_id: i64, status: NotificationStatus) -> Notification {
    Notification {
        status,
        ..notification(object, to, instance_id, 100 + instance_id)
    }
}

fn delivery(object: &ObjectKey, to: &Remote, status: DeliveryStatus, message: &str) -> StoreOp {
    StoreOp::SetDelivery {
        key: object.clone(),
        remote: to.clone(),
        status,
        message: message.into(),
        at: 1,
    }
}

async fn deliveries(store: &Arc<dyn Store>, object: &ObjectKey) -> Vec<(String, DeliveryStatus, String)> {
    let mut all: Vec<_> = store
        .destination_statuses(object)
        .await
        .unwrap()
        .into_iter()
        .map(|d| (d.dest_id, d.status, d.message))
        .collect();
    all.sort_by(|x, y| x.0.cmp(&y.0));
    all
}

pub async fn a_batch_writes_repeated_records_in_order_the_last_winning(store: Arc<dyn Store>) {
    use NotificationStatus::{Data, Received, Update};
    let a = key("model", "a");
    let [n1, n2, n3, n4] = ["n1", "n2", "n3", "n4"].map(|id| remote("edge", id));
    store
        .apply(vec![
            StoreOp::PutNotification(put(&a, &n1, 1, Update)),
            StoreOp::PutNotification(put(&a, &n2, 1, Update)),
            delivery(&a, &n1, DeliveryStatus::Delivering, ""),
            StoreOp::PutNotification(put(&a, &n1, 2, Update)),
            delivery(&a, &n1, DeliveryStatus::Error, "first"),
            delivery(&a, &n1, DeliveryStatus::Delivered, ""),
            // Removes what was written before it, not what comes after.
            StoreOp::DeleteNotification {
                key: a.clone(),
                remote: n1.clone(),
            },
            StoreOp::PutNotification(put(&a, &n1, 3, Data)),
            StoreOp::PutNotification(put(&a, &n3, 1, Update)),
            StoreOp::DeleteDelivery {
                key: a.clone(),
                remote: n1.clone(),
            },
            delivery(&a, &n2, DeliveryStatus::Pending, ""),
            StoreOp::PutNotification(put(&a, &n3, 2, Received)),
            StoreOp::PutNotification(put(&a, &n4, 1, Update)),
            StoreOp::PutNotification(put(&a, &n3, 4, Update)),
            delivery(&a, &n2, DeliveryStatus::Consumed, "again"),
            StoreOp::DeleteNotification {
                key: a.clone(),
                remote: n4.clone(),
            },
            delivery(&a, &n1, DeliveryStatus::Consumed, "after the delete"),
        ])
        .await
        .unwrap();
    assert_eq!(store.notification(&a, &n1).await.unwrap(), Some(put(&a, &n1, 3, Data)));
    assert_eq!(
        store.notification(&a, &n2).await.unwrap(),
        Some(put(&a, &n2, 1, Update))
    );
    assert_eq!(
        store.notification(&a, &n3).await.unwrap(),
        Some(put(&a, &n3, 4, Update))
    );
    assert_eq!(store.notification(&a, &n4).await.unwrap(), None);
    assert_eq!(store.notifications_of_object(&a).await.unwrap().len(), 3);
    assert_eq!(
        deliveries(&store, &a).await,
        [
            ("n1".into(), DeliveryStatus::Consumed, "after the delete".into()),
            ("n2".into(), DeliveryStatus::Consumed, "again".into()),
        ]
    );

    // A fleet's worth in one run, every record written twice, the second time with other
    // values: more rows than one statement of the PostgreSQL store takes.
    let b = key("model", "b");
    let fleet: Vec<Remote> = (0..6_000).map(|i| remote("edge", &format!("node{i:05}"))).collect();
    let mut ops = vec![StoreOp::DeleteNotificationsOf(b.clone())];
    for (instance_id, status) in [(1, DeliveryStatus::Delivering), (2, DeliveryStatus::Delivered)] {
        for to in &fleet {
            ops.push(delivery(&b, to, status, ""));
            ops.push(StoreOp::PutNotification(put(&b, to, instance_id, Update)));
        }
    }
    store.apply(ops).await.unwrap();
    let written = store.notifications_of_object(&b).await.unwrap();
    assert_eq!(written.len(), fleet.len());
    assert!(
        written.iter().all(|n| n.instance_id == 2 && n.resend_time == 102),
        "the later values"
    );
    let statuses = deliveries(&store, &b).await;
    assert_eq!(statuses.len(), fleet.len());
    assert!(statuses
        .iter()
        .all(|(_, status, _)| *status == DeliveryStatus::Delivered));
}
