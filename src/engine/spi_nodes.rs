//! The CSS's edge nodes (spec: css-ess-protocol.md §7, §8): who a transport request acts
//! for, registration (with the dispatch of everything a new node should have), pings,
//! unregistration and the removal of nodes gone silent.

use super::delivery::{addresses, deliverable, now_secs};
use super::spi::remote_of;
use super::{EngineError, EngineResult, Node, WRITE_ATTEMPTS};
use crate::auth::edge::{self, NodeAddress};
use crate::auth::{access, Identity, IdentityKind};
use crate::model::acl::{AclKind, ORG_WIDE_KEY};
use crate::model::sync::{NotificationStatus, Remote};
use crate::model::{DeliveryStatus, Destination, ObjectKey};
use crate::store::{StoreError, StoreOp};
use std::collections::HashMap;

/// Objects queued for a registering node per transaction.
const DISPATCH_BATCH: usize = 256;

impl Node {
    /// The node a transport request acts for (security.md §5.1), or 403.
    pub async fn spi_node(&self, identity: &Identity, dest_header: &str) -> EngineResult<NodeAddress> {
        self.require_css()?;
        let may_address = match identity.kind {
            IdentityKind::User => {
                let dest_type = dest_header.split('/').nth(1).unwrap_or("");
                let mut grants = access::Grants::default();
                grants.destinations.insert(
                    dest_type.to_string(),
                    self.0
                        .store
                        .acl(&identity.org, AclKind::Destinations, dest_type)
                        .await?,
                );
                grants.org_destinations = self
                    .0
                    .store
                    .acl(&identity.org, AclKind::Destinations, ORG_WIDE_KEY)
                    .await?;
                access::may_address_type(identity, dest_type, &grants)
            }
            _ => false,
        };
        let node = edge::node_for_request(identity, dest_header, may_address).ok_or(EngineError::Forbidden)?;
        self.note_heard(&node);
        Ok(node)
    }

    /// How a registered node is sent its messages (`http` or `mqtt`); `None` for a node that
    /// is not registered.
    pub async fn node_communication(&self, node: &NodeAddress) -> EngineResult<Option<String>> {
        let destination = self.0.store.destination(&node.org, &remote_of(node)).await?;
        Ok(destination.map(|d| d.communication))
    }

    /// `register` (a known node reconnects; 404 for an unknown one) and `register-new`.
    pub async fn spi_register(&self, node: &NodeAddress, persistent: bool, as_new: bool) -> EngineResult<()> {
        self.register_node(node, persistent, as_new, "http").await
    }

    /// Registration over the transport named by `communication` (`http` or `mqtt`), which
    /// decides how the node is sent its messages.
    pub async fn register_node(
        &self,
        node: &NodeAddress,
        persistent: bool,
        as_new: bool,
        communication: &str,
    ) -> EngineResult<()> {
        let remote = remote_of(node);
        let known = self.0.store.destination(&node.org, &remote).await?.is_some();
        if !as_new && !known {
            return Err(EngineError::NotFound);
        }
        let destination = Destination {
            org: node.org.clone(),
            dest_type: node.dest_type.clone(),
            dest_id: node.dest_id.clone(),
            communication: communication.into(),
            code_version: "1.0".into(),
        };
        self.0.store.upsert_destination(destination.clone(), now_secs()).await?;
        tracing::info!(org = %node.org, dest_type = %node.dest_type, dest_id = %node.dest_id, as_new, persistent, "edge node registered");
        if as_new {
            self.dispatch_to_new_node(&destination, persistent).await?;
        } else if !persistent {
            self.redeliver_lost_copies(node).await?;
        }
        self.0.pollers.wake(&node.org, &remote);
        Ok(())
    }

    /// A node registering from scratch gets every deliverable object that addresses it,
    /// except what it already has (persistent store) or consumed. Objects are queued in
    /// batches, each one transaction guarded by the revisions read; a batch that meets a
    /// concurrent change is decided again object by object.
    async fn dispatch_to_new_node(&self, destination: &Destination, persistent: bool) -> EngineResult<()> {
        let remote = Remote {
            dest_type: destination.dest_type.clone(),
            dest_id: destination.dest_id.clone(),
        };
        let delivered: HashMap<(String, String), DeliveryStatus> = self
            .0
            .store
            .objects_for_destination(&destination.org, &remote.dest_type, &remote.dest_id)
            .await?
            .into_iter()
            .map(|view| ((view.object_type, view.object_id), view.status))
            .collect();
        let wanted = |record: &crate::model::ObjectRecord| {
            record.is_sender_copy()
                && record.status != crate::model::ObjectStatus::ObjDeleted
                && addresses(&record.meta, destination)
        };
        let owed: Vec<_> = self
            .0
            .store
            .objects_of_org(&destination.org)
            .await?
            .into_iter()
            .filter(|record| wanted(record))
            .filter(|record| {
                let id = (record.meta.object_type.clone(), record.meta.object_id.clone());
                match delivered.get(&id) {
                    Some(DeliveryStatus::Consumed) => false,
                    Some(DeliveryStatus::Delivered) => !persistent,
                    _ => true,
                }
            })
            .collect();
        let fresh = |key: &ObjectKey| StoreOp::DeleteNotification {
            key: key.clone(),
            remote: remote.clone(),
        };
        for batch in owed.chunks(DISPATCH_BATCH) {
            let mut ops = Vec::new();
            for record in batch {
                ops.push(StoreOp::expect_object(record));
                ops.push(fresh(&record.key()));
                ops.extend(self.target_ops(record, remote.clone()));
            }
            match self.0.store.apply(ops).await {
                Ok(()) => continue,
                Err(StoreError::Conflict) => {}
                Err(e) => return Err(e.into()),
            }
            for record in batch {
                let key = record.key();
                self.target_unless_changed(&key, &remote, vec![fresh(&key)], wanted)
                    .await?;
            }
        }
        Ok(())
    }

    /// Queues the current instance of `key` for `remote` (after `first`), if `wanted` holds
    /// for the object as it is now. The batch is guarded by the object's revision, so a
    /// concurrent change (a deletion's `delete`, a new instance) is never overwritten by a
    /// decision made on the state before it: the decision is made again instead. The guard
    /// does not change the object, so nodes registering together do not fail each other.
    pub(super) async fn target_unless_changed<F>(
        &self,
        key: &ObjectKey,
        remote: &Remote,
        first: Vec<StoreOp>,
        wanted: F,
    ) -> EngineResult<()>
    where
        F: Fn(&crate::model::ObjectRecord) -> bool,
    {
        for _ in 0..WRITE_ATTEMPTS {
            let Some(current) = self.0.store.object(key).await? else {
                return Ok(());
            };
            if !wanted(&current) {
                return Ok(());
            }
            let mut ops = vec![StoreOp::expect_object(&current)];
            ops.extend(first.iter().cloned());
            ops.extend(self.target_ops(&current, remote.clone()));
            match self.0.store.apply(ops).await {
                Ok(()) => return Ok(()),
                Err(StoreError::Conflict) => continue,
                Err(e) => return Err(e.into()),
            }
        }
        Err(EngineError::Conflict(format!(
            "{key} is being changed by other requests; retry"
        )))
    }

    /// A node that lost its store gets again what it had received or was fetching.
    async fn redeliver_lost_copies(&self, node: &NodeAddress) -> EngineResult<()> {
        let remote = remote_of(node);
        for n in self.0.store.notifications_for_remote(&node.org, &remote).await? {
            if !matches!(
                n.status,
                NotificationStatus::Updated | NotificationStatus::ReceivedByDest
            ) {
                continue;
            }
            self.target_unless_changed(&n.key, &remote, Vec::new(), deliverable)
                .await?;
        }
        Ok(())
    }

    /// Sends again, now, every message sent over MQTT to `node` (to every node when `None`)
    /// and not acknowledged yet, rather than at its resend time: messages are published with
    /// QoS 0 on clean sessions, so those in flight are lost when either side's broker
    /// session ends (spec §7.2 for a node that registers again). Returns how many.
    pub async fn resend_unacknowledged(&self, node: Option<&NodeAddress>) -> EngineResult<usize> {
        let records = match node {
            Some(node) => {
                self.0
                    .store
                    .notifications_for_remote(&node.org, &remote_of(node))
                    .await?
            }
            None => self.0.store.due_notifications(i64::MAX).await?,
        };
        let mut queued = 0;
        for record in records {
            if self.requeue_sent(&record).await? {
                queued += 1;
            }
        }
        Ok(queued)
    }

    /// `ping`: 404 for an unknown node (it then registers as new).
    pub async fn spi_ping(&self, node: &NodeAddress) -> EngineResult<()> {
        if self
            .0
            .store
            .touch_destination(&node.org, &remote_of(node), now_secs())
            .await?
        {
            Ok(())
        } else {
            Err(EngineError::NotFound)
        }
    }

    /// `unregister`: removes the node with its records and delivery rows.
    pub async fn spi_unregister(&self, node: &NodeAddress) -> EngineResult<()> {
        let remote = remote_of(node);
        self.0.store.remove_destination(&node.org, &remote).await?;
        self.0.pollers.forget(&node.org, &remote);
        self.0.last_heard.forget(&node.org, &remote);
        Ok(())
    }

    /// Removes every node whose last registration or ping is not after `since`; returns
    /// how many were removed.
    pub async fn remove_inactive_nodes(&self, since: i64) -> EngineResult<usize> {
        let stale = self.0.store.inactive_destinations(since).await?;
        for destination in &stale {
            let remote = Remote {
                dest_type: destination.dest_type.clone(),
                dest_id: destination.dest_id.clone(),
            };
            self.0.store.remove_destination(&destination.org, &remote).await?;
            self.0.pollers.forget(&destination.org, &remote);
            self.0.last_heard.forget(&destination.org, &remote);
            tracing::info!(org = %destination.org, dest_type = %remote.dest_type, dest_id = %remote.dest_id, "removed an inactive edge node");
        }
        Ok(stale.len())
    }
}
