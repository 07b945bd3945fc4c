use super::*;

fn own(status: ObjectStatus, instance: i64) -> ObjectRecord {
    ObjectRecord {
        meta: MetaData {
            object_type: "t".into(),
            object_id: "o".into(),
            destination_org_id: "org".into(),
            instance_id: instance,
            data_id: instance,
            object_size: 10,
            ..MetaData::default()
        },
        status,
        sender: true,
        remaining_consumers: 1,
        remaining_receivers: 1,
        policy_received: false,
        blob: Some("b".into()),
        revision: 1,
    }
}

fn record(status: NotificationStatus, instance: i64) -> Notification {
    Notification {
        key: ObjectKey::new("org", "t", "o"),
        remote: Remote {
            dest_type: "edge".into(),
            dest_id: "node1".into(),
        },
        status,
        instance_id: instance,
        data_id: instance,
        resend_time: 0,
    }
}

#[test]
fn ready_objects_without_a_record_of_their_instance_owe_an_update() {
    let ready = own(ObjectStatus::Ready, 5);
    assert_eq!(owed_record_status(&ready, None), Some(NotificationStatus::Update));
    let old = record(NotificationStatus::ReceivedByDest, 3);
    assert_eq!(owed_record_status(&ready, Some(&old)), Some(NotificationStatus::Update));
    for status in [
        NotificationStatus::Update,
        NotificationStatus::Updated,
        NotificationStatus::Data,
        NotificationStatus::ReceivedByDest,
    ] {
        assert_eq!(owed_record_status(&ready, Some(&record(status, 5))), None);
    }
    let mut inactive = ready.clone();
    inactive.meta.inactive = true;
    assert_eq!(owed_record_status(&inactive, None), None);
    for status in [
        ObjectStatus::NotReady,
        ObjectStatus::ConsumedByDest,
        ObjectStatus::VerificationFailed,
    ] {
        assert_eq!(owed_record_status(&own(status, 5), None), None);
    }
    let mut received = ready;
    received.sender = false;
    received.status = ObjectStatus::CompletelyReceived;
    assert_eq!(owed_record_status(&received, None), None);
}

#[test]
fn deleted_objects_owe_a_delete_until_it_is_recorded() {
    let deleted = own(ObjectStatus::ObjDeleted, 5);
    assert_eq!(owed_record_status(&deleted, None), Some(NotificationStatus::Delete));
    assert_eq!(
        owed_record_status(&deleted, Some(&record(NotificationStatus::Data, 5))),
        Some(NotificationStatus::Delete)
    );
    assert_eq!(
        owed_record_status(&deleted, Some(&record(NotificationStatus::Delete, 5))),
        None
    );
    assert_eq!(
        owed_record_status(&deleted, Some(&record(NotificationStatus::AckDelete, 5))),
        None
    );
}

#[test]
fn only_instances_with_data_upload_it() {
    let data = own(ObjectStatus::Ready, 5).meta;
    assert!(moves_data(&data));
    for meta in [
        MetaData {
            no_data: true,
            ..data.clone()
        },
        MetaData {
            link: "http://x".into(),
            ..data.clone()
        },
        MetaData {
            meta_only: true,
            ..data.clone()
        },
    ] {
        assert!(!moves_data(&meta));
    }
}

#[test]
fn pruning_starts_beyond_110_percent_and_keeps_the_newest() {
    let objects = |n: i64| {
        (1..=n)
            .map(|i| own(ObjectStatus::ConsumedByDest, i))
            .collect::<Vec<_>>()
    };
    assert!(to_prune(objects(11), 10).is_empty());
    let pruned = to_prune(objects(12), 10);
    let ids: Vec<i64> = pruned.iter().map(|o| o.meta.instance_id).collect();
    assert_eq!(ids, vec![1, 2]);
    let mut shuffled = objects(12);
    shuffled.reverse();
    let ids: Vec<i64> = to_prune(shuffled, 10).iter().map(|o| o.meta.instance_id).collect();
    assert_eq!(ids, vec![1, 2]);
    assert_eq!(to_prune(objects(1), 0).len(), 1);
}
