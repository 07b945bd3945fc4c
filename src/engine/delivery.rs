//! Delivery: on the CSS, which registered nodes an object addresses (spec: metadata.md §5),
//! and the store operations that queue it for them. The operations are applied in the same
//! transaction as the object change, so a notification is never lost or sent for a change
//! that did not commit (the outbox).

use super::{EngineResult, Node};
pub use crate::clock::now_secs;
use crate::model::sync::{Notification, NotificationStatus, Remote};
use crate::model::{DeliveryStatus, Destination, MetaData, ObjectKey, ObjectRecord, ObjectStatus, Role};
use crate::store::StoreOp;

/// True when `destination` is addressed by the metadata (policy objects address nobody
/// automatically; their policy agent sets destinations).
pub fn addresses(meta: &MetaData, destination: &Destination) -> bool {
    if meta.destination_policy.is_some() {
        return false;
    }
    if let Some(list) = &meta.destinations_list {
        return list.iter().any(|entry| {
            entry.split_once(':') == Some((destination.dest_type.as_str(), destination.dest_id.as_str()))
        });
    }
    if meta.destination_type.is_empty() {
        return true;
    }
    meta.destination_type == destination.dest_type
        && (meta.destination_id.is_empty() || meta.destination_id == destination.dest_id)
}

/// True when the object should be sent now: an expired object is never sent, even before
/// the expiration pass removes it.
pub fn deliverable(record: &ObjectRecord) -> bool {
    record.is_sender_copy()
        && record.status == ObjectStatus::Ready
        && !record.meta.inactive
        && !record.is_expired(now_secs())
}

fn remote_of(destination: &Destination) -> Remote {
    Remote {
        dest_type: destination.dest_type.clone(),
        dest_id: destination.dest_id.clone(),
    }
}

impl Node {
    /// Seconds before an unacknowledged message is sent again (6 x ResendInterval).
    pub(super) fn resend_delay(&self) -> i64 {
        6 * self.0.settings.resend_interval_secs.max(1)
    }

    /// The queued message telling `remote` about the current instance of `record`.
    pub(super) fn update_notification(&self, record: &ObjectRecord, remote: Remote) -> Notification {
        Notification {
            key: record.key(),
            remote,
            status: NotificationStatus::UpdatePending,
            instance_id: record.meta.instance_id,
            data_id: record.meta.data_id,
            resend_time: now_secs() + self.resend_delay(),
        }
    }

    /// Operations that (re)target a newly stored instance: previous notifications are
    /// abandoned, every addressed node gets the new instance queued (or `pending` while the
    /// object is not deliverable), and nodes no longer addressed are dropped.
    pub(super) async fn dispatch_ops(&self, record: &ObjectRecord) -> EngineResult<Vec<StoreOp>> {
        if self.role() != Role::Css || !record.is_sender_copy() {
            return Ok(Vec::new());
        }
        let key = record.key();
        let registered = self.0.store.destinations(&key.org).await?;
        let mut ops = vec![StoreOp::DeleteNotificationsOf(key.clone())];
        let previous = self.0.store.destination_statuses(&key).await?;
        // A policy object keeps the destinations its agent set; each instance goes to them all.
        if record.meta.destination_policy.is_some() {
            for old in previous {
                let remote = Remote {
                    dest_type: old.dest_type,
                    dest_id: old.dest_id,
                };
                ops.extend(self.target_ops(record, remote));
            }
            return Ok(ops);
        }
        // A set, not a search of the registered nodes for each previous one: with thousands
        // of nodes that search made publishing a version take seconds.
        let addressed: std::collections::HashSet<(&str, &str)> = registered
            .iter()
            .filter(|d| addresses(&record.meta, d))
            .map(|d| (d.dest_type.as_str(), d.dest_id.as_str()))
            .collect();
        for old in previous {
            if !addressed.contains(&(old.dest_type.as_str(), old.dest_id.as_str())) {
                let remote = Remote {
                    dest_type: old.dest_type,
                    dest_id: old.dest_id,
                };
                ops.push(StoreOp::DeleteDelivery {
                    key: key.clone(),
                    remote,
                });
            }
        }
        for destination in registered.iter().filter(|d| addresses(&record.meta, d)) {
            ops.extend(self.target_ops(record, remote_of(destination)));
        }
        Ok(ops)
    }

    /// What a change of a stored object owes other nodes: a new instance, or an object that
    /// just became deliverable, is dispatched; a sender copy that was just deleted tells every
    /// node that had been sent anything.
    pub(super) async fn follow_up_ops(
        &self,
        before: Option<&ObjectRecord>,
        after: &ObjectRecord,
    ) -> EngineResult<Vec<StoreOp>> {
        if self.role() == Role::Ess {
            return Ok(self.ess_follow_up_ops(before, after));
        }
        if !after.is_sender_copy() {
            return Ok(Vec::new());
        }
        let Some(before) = before else {
            return self.dispatch_ops(after).await;
        };
        if after.status == ObjectStatus::ObjDeleted {
            return if before.status == ObjectStatus::ObjDeleted {
                Ok(Vec::new())
            } else {
                self.deletion_ops(after).await
            };
        }
        let new_instance = after.meta.instance_id != before.meta.instance_id;
        if new_instance || (deliverable(after) && !deliverable(before)) {
            return self.dispatch_ops(after).await;
        }
        Ok(Vec::new())
    }

    /// A deleted sender copy: every node that was sent something gets a `delete`; nodes
    /// still `pending` are simply dropped.
    async fn deletion_ops(&self, record: &ObjectRecord) -> EngineResult<Vec<StoreOp>> {
        let key = record.key();
        let mut ops = vec![StoreOp::DeleteNotificationsOf(key.clone())];
        for delivery in self.0.store.destination_statuses(&key).await? {
            let remote = Remote {
                dest_type: delivery.dest_type,
                dest_id: delivery.dest_id,
            };
            if delivery.status == DeliveryStatus::Pending || delivery.status == DeliveryStatus::Deleted {
                ops.push(StoreOp::DeleteDelivery {
                    key: key.clone(),
                    remote,
                });
                continue;
            }
            ops.push(StoreOp::PutNotification(Notification {
                status: NotificationStatus::DeletePending,
                ..self.update_notification(record, remote)
            }));
        }
        Ok(ops)
    }

    /// Operations that queue `record` for one node, or mark it pending there.
    pub(super) fn target_ops(&self, record: &ObjectRecord, remote: Remote) -> Vec<StoreOp> {
        let key = record.key();
        if deliverable(record) {
            vec![
                StoreOp::SetDelivery {
                    key,
                    remote: remote.clone(),
                    status: DeliveryStatus::Delivering,
                    message: String::new(),
                    at: crate::clock::now_secs(),
                },
                StoreOp::PutNotification(self.update_notification(record, remote)),
            ]
        } else {
            vec![StoreOp::SetDelivery {
                key,
                remote,
                status: DeliveryStatus::Pending,
                message: String::new(),
                at: crate::clock::now_secs(),
            }]
        }
    }

    /// Wakes the long polls of every node that has new messages for `key`.
    pub(super) fn wake_pollers_of(&self, key: &ObjectKey, ops: &[StoreOp]) {
        for op in ops {
            if let StoreOp::PutNotification(n) = op {
                if n.key == *key && n.status.poll_type().is_some() {
                    self.0.pollers.wake(&n.key.org, &n.remote);
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn node(dest_type: &str, dest_id: &str) -> Destination {
        Destination {
            org: "o".into(),
            dest_type: dest_type.into(),
            dest_id: dest_id.into(),
            communication: "http".into(),
            code_version: "1.0".into(),
        }
    }

    #[test]
    fn addressing_modes_select_the_right_nodes() {
        let (a1, a2, b1) = (node("a", "1"), node("a", "2"), node("b", "1"));
        let broadcast = MetaData::default();
        assert!([&a1, &a2, &b1].iter().all(|d| addresses(&broadcast, d)));
        let by_type = MetaData {
            destination_type: "a".into(),
            ..MetaData::default()
        };
        assert!(addresses(&by_type, &a1) && addresses(&by_type, &a2) && !addresses(&by_type, &b1));
        let one = MetaData {
            destination_type: "a".into(),
            destination_id: "2".into(),
            ..MetaData::default()
        };
        assert!(!addresses(&one, &a1) && addresses(&one, &a2));
        let list = MetaData {
            destinations_list: Some(vec!["b:1".into(), "a:1".into()]),
            ..MetaData::default()
        };
        assert!(addresses(&list, &a1) && !addresses(&list, &a2) && addresses(&list, &b1));
        let policy = MetaData {
            destination_policy: Some(Default::default()),
            ..MetaData::default()
        };
        assert!(!addresses(&policy, &a1));
    }
}
