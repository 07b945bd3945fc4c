//! The status page's reads: counts per delivery state for the objects of a page, pages of an
//! object's destinations and of an org's nodes with search, and when a state last changed.

use super::{destination, key, remote, ORG};
use edge_sync_service::model::DeliveryStatus;
use edge_sync_service::store::fleet::{DeliveryCount, PageRequest};
use edge_sync_service::store::{Store, StoreOp};
use std::sync::Arc;

fn page(offset: u64, limit: u64, search: &str) -> PageRequest {
    PageRequest {
        offset,
        limit,
        search: search.into(),
    }
}

fn set(object_id: &str, node: &str, status: DeliveryStatus, message: &str, at: i64) -> StoreOp {
    StoreOp::SetDelivery {
        key: key("model", object_id),
        remote: remote("edge", node),
        status,
        message: message.into(),
        at,
    }
}

pub async fn the_status_page_reads_counts_and_pages(store: Arc<dyn Store>) {
    // 30 nodes; m1 addressed to all, in several states; m2 to three; other-org rows apart.
    for i in 0..30 {
        store
            .upsert_destination(destination("edge", &format!("n{i:02}")), 1_000 + i)
            .await
            .unwrap();
    }
    let mut ops = Vec::new();
    for i in 0..30 {
        let status = match i % 3 {
            0 => DeliveryStatus::Delivered,
            1 => DeliveryStatus::Delivering,
            _ => DeliveryStatus::Pending,
        };
        ops.push(set("m1", &format!("n{i:02}"), status, "", 100));
    }
    ops.push(set("m1", "n29", DeliveryStatus::Error, "Disk FULL on node", 200));
    for i in 0..3 {
        ops.push(set("m2", &format!("n{i:02}"), DeliveryStatus::Consumed, "", 100));
    }
    ops.push(StoreOp::SetDelivery {
        key: edge_sync_service::model::ObjectKey::new("other", "model", "m1"),
        remote: remote("edge", "n00"),
        status: DeliveryStatus::Error,
        message: String::new(),
        at: 100,
    });
    store.apply(ops).await.unwrap();

    let mut counts = store
        .delivery_counts(
            ORG,
            vec![
                ("model".into(), "m1".into()),
                ("model".into(), "m2".into()),
                ("model".into(), "absent".into()),
            ],
        )
        .await
        .unwrap();
    counts.sort_by(|a, b| (&a.object_id, a.status.as_str()).cmp(&(&b.object_id, b.status.as_str())));
    let count = |object_id: &str, status: DeliveryStatus, count: u64| DeliveryCount {
        object_type: "model".into(),
        object_id: object_id.into(),
        status,
        count,
    };
    assert_eq!(
        counts,
        vec![
            count("m1", DeliveryStatus::Delivered, 10),
            count("m1", DeliveryStatus::Delivering, 10),
            count("m1", DeliveryStatus::Error, 1),
            count("m1", DeliveryStatus::Pending, 9),
            count("m2", DeliveryStatus::Consumed, 3),
        ]
    );

    // Pages in destination order, the total of every match.
    let first = store
        .delivery_page(&key("model", "m1"), &page(0, 12, ""))
        .await
        .unwrap();
    assert_eq!(first.total, 30);
    let names: Vec<String> = first.rows.iter().map(|r| r.delivery.dest_id.clone()).collect();
    assert_eq!(names, (0..12).map(|i| format!("n{i:02}")).collect::<Vec<_>>());
    let last = store
        .delivery_page(&key("model", "m1"), &page(24, 12, ""))
        .await
        .unwrap();
    assert_eq!(last.rows.len(), 6);
    assert_eq!(last.rows[5].delivery.dest_id, "n29");
    assert_eq!(last.rows[5].delivery.message, "Disk FULL on node");
    assert_eq!(last.rows[5].changed_at, 200);
    // Searched case-insensitively in the name, the state and the message.
    for (search, wanted) in [
        ("N1", 10),
        ("edge/n2", 10),
        ("disk full", 1),
        ("delivering", 10),
        ("zzz", 0),
    ] {
        let found = store
            .delivery_page(&key("model", "m1"), &page(0, 100, search))
            .await
            .unwrap();
        assert_eq!(found.total, wanted, "search {search:?}");
        assert_eq!(found.rows.len() as u64, wanted, "search {search:?}");
    }

    // The time of change moves with the state only.
    store
        .apply(vec![set("m1", "n00", DeliveryStatus::Delivered, "again", 300)])
        .await
        .unwrap();
    store
        .apply(vec![set("m1", "n01", DeliveryStatus::Delivered, "", 400)])
        .await
        .unwrap();
    let changed = store.delivery_page(&key("model", "m1"), &page(0, 2, "")).await.unwrap();
    assert_eq!(
        changed
            .rows
            .iter()
            .map(|r| (r.delivery.message.as_str(), r.changed_at))
            .collect::<Vec<_>>(),
        vec![("again", 100), ("", 400)]
    );

    // Nodes: last seen, and objects on their way (pending or delivering).
    let nodes = store.node_page(ORG, &page(0, 5, "")).await.unwrap();
    assert_eq!(nodes.total, 30);
    let seen: Vec<(String, i64, u64)> = nodes
        .rows
        .iter()
        .map(|n| (n.destination.dest_id.clone(), n.last_seen, n.pending))
        .collect();
    assert_eq!(
        seen,
        vec![
            ("n00".into(), 1_000, 0),
            ("n01".into(), 1_001, 0),
            ("n02".into(), 1_002, 1),
            ("n03".into(), 1_003, 0),
            ("n04".into(), 1_004, 1),
        ]
    );
    let searched = store.node_page(ORG, &page(0, 100, "n2")).await.unwrap();
    assert_eq!(searched.total, 10);
    let beyond = store.node_page(ORG, &page(u64::MAX, 10, "")).await.unwrap();
    assert_eq!((beyond.total, beyond.rows.len()), (30, 0));
    assert_eq!(store.node_page("other", &page(0, 10, "")).await.unwrap().total, 0);
}
