//! The CSS side of the node-to-node protocol, whatever the transport (spec:
//! css-ess-protocol.md §3, §5, §7, §8): polls (with long polling) and the actions an ESS
//! reports about the CSS's objects; the nodes' registration is in `spi_nodes`. Every state
//! change is one store batch.

use super::delivery::{addresses, deliverable, now_secs};
use super::{EngineError, EngineResult, Node, WRITE_ATTEMPTS};
use crate::auth::edge::{self, NodeAddress};
use crate::model::sync::{Action, Feedback, Notification, NotificationStatus, PollItem, Remote};
use crate::model::{DeliveryStatus, MetaData, ObjectKey, Role};
use crate::store::{StoreError, StoreOp};
use std::time::Duration;

/// Feedback code of a security error: the receiver could not verify the data (spec §5.5).
const FEEDBACK_SECURITY: i32 = 3;
/// Failed verifications of one instance at one node before the CSS stops re-sending it.
pub const MAX_VERIFICATION_FAILURES: u32 = 3;

/// Longest time a poll is held open, well inside the ESS's 120 s request timeout.
pub const MAX_LONG_POLL: Duration = Duration::from_secs(60);

/// How the CSS answers an action.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ActionOutcome {
    /// 204: processed.
    Done,
    /// 409: stale instance or unexpected record state; ignored.
    Ignored,
}

pub(super) fn remote_of(node: &NodeAddress) -> Remote {
    Remote {
        dest_type: node.dest_type.clone(),
        dest_id: node.dest_id.clone(),
    }
}

impl Node {
    pub(super) fn require_css(&self) -> EngineResult<()> {
        match self.role() {
            Role::Css => Ok(()),
            Role::Ess => Err(EngineError::NotFound),
        }
    }

    /// The poll: every message waiting for the node (`None` = nothing pending, 204). With
    /// `wait`, an empty poll is held until a message commits or the time is up.
    pub async fn spi_poll(&self, node: &NodeAddress, wait: Option<Duration>) -> EngineResult<Option<Vec<PollItem>>> {
        let remote = remote_of(node);
        if self.0.store.destination(&node.org, &remote).await?.is_none() {
            return Err(EngineError::NotRegistered);
        }
        let Some(wait) = wait.map(|w| w.min(MAX_LONG_POLL)).filter(|w| !w.is_zero()) else {
            return self.pending_items(node).await;
        };
        let deadline = tokio::time::Instant::now() + wait;
        let signal = self.0.pollers.signal(&node.org, &remote);
        loop {
            let notified = signal.notified();
            tokio::pin!(notified);
            // Registered before the store is read, so a commit in between is not missed.
            notified.as_mut().enable();
            if let Some(items) = self.pending_items(node).await? {
                return Ok(Some(items));
            }
            if self.0.pollers.stopping() {
                return Ok(None);
            }
            tracing::trace!(org = %node.org, dest_type = %node.dest_type, dest_id = %node.dest_id, "long poll waiting for news");
            // A wake-up without news for this node (all polls woken after a lost connection
            // between instances) waits again for the rest of the time.
            if tokio::time::timeout_at(deadline, notified).await.is_err() {
                return self.pending_items(node).await;
            }
        }
    }

    async fn pending_items(&self, node: &NodeAddress) -> EngineResult<Option<Vec<PollItem>>> {
        let records = self
            .0
            .store
            .notifications_awaiting_poll(&node.org, &remote_of(node))
            .await?;
        let pending: Vec<(Notification, &'static str)> = records
            .into_iter()
            .filter_map(|n| n.status.poll_type().map(|kind| (n, kind)))
            .collect();
        if pending.is_empty() {
            return Ok(None);
        }
        let mut items = Vec::with_capacity(pending.len());
        for (record, kind) in pending {
            let Some(object) = self.0.store.object(&record.key).await? else {
                continue;
            };
            if object.meta.instance_id != record.instance_id {
                continue;
            }
            // An update queued before the object expired waits for the expiration pass,
            // which replaces it with a `delete`.
            if kind == "update" && object.is_expired(now_secs()) {
                continue;
            }
            let mut meta = object.meta;
            // Both fields name the polling node, so it can echo them back (spec §3.7 fix).
            meta.destination_type = node.dest_type.clone();
            meta.destination_id = node.dest_id.clone();
            items.push(PollItem {
                kind: kind.to_string(),
                meta,
            });
        }
        Ok(Some(items))
    }

    /// The messages waiting for a node that is sent its messages (MQTT), marked as sent in
    /// the same step so that they go once; the resend timer repeats what stays unanswered.
    pub async fn spi_take_pending(&self, node: &NodeAddress) -> EngineResult<Vec<PollItem>> {
        let remote = remote_of(node);
        for _ in 0..WRITE_ATTEMPTS {
            let records = self.0.store.notifications_awaiting_poll(&node.org, &remote).await?;
            let mut items = Vec::new();
            let mut ops = Vec::new();
            for record in records {
                let (Some(kind), Some(sent)) = (record.status.poll_type(), record.status.sent_form()) else {
                    continue;
                };
                let Some(object) = self.0.store.object(&record.key).await? else {
                    continue;
                };
                if object.meta.instance_id != record.instance_id || (kind == "update" && object.is_expired(now_secs()))
                {
                    continue;
                }
                // The batch fails when the object (and so possibly its records) or the record
                // changed since they were read: another instance took the message first.
                ops.push(StoreOp::expect_object(&object));
                ops.push(StoreOp::expect_notification(&record));
                ops.push(StoreOp::PutNotification(Notification {
                    status: sent,
                    resend_time: now_secs() + self.resend_delay(),
                    ..record
                }));
                let mut meta = object.meta;
                meta.destination_type = node.dest_type.clone();
                meta.destination_id = node.dest_id.clone();
                items.push(PollItem {
                    kind: kind.to_string(),
                    meta,
                });
            }
            if ops.is_empty() {
                return Ok(items);
            }
            match self.0.store.apply(ops).await {
                Ok(()) => return Ok(items),
                Err(StoreError::Conflict) => continue,
                Err(e) => return Err(e.into()),
            }
        }
        Err(EngineError::Conflict("the node's messages are changing; retry".into()))
    }

    fn require_same_org(node: &NodeAddress, path_org: &str) -> EngineResult<()> {
        if edge::path_org_matches(node, path_org) {
            Ok(())
        } else {
            Err(EngineError::Forbidden)
        }
    }

    /// An action about one instance of one of the CSS's objects.
    pub async fn spi_action(
        &self,
        node: &NodeAddress,
        key: &ObjectKey,
        instance_id: i64,
        action: Action,
        body: &[u8],
    ) -> EngineResult<ActionOutcome> {
        Self::require_same_org(node, &key.org)?;
        match action {
            Action::Update => return self.spi_receive_update(node, key, instance_id, body).await,
            Action::Delete => {
                self.spi_receive_delete(node, key, instance_id).await?;
                return Ok(ActionOutcome::Done);
            }
            _ => {}
        }
        let remote = match action {
            // The body names the node that acknowledged; fall back to the caller when the
            // original ESS echoes an empty type (spec §3.7 fix).
            Action::Deleted => deleted_remote(body).unwrap_or_else(|| remote_of(node)),
            _ => remote_of(node),
        };
        // The batch is decided on the record as read and guarded by it: a message queued for
        // the node meanwhile (a `consumed` right after a `received`) makes it decide again
        // instead of being overwritten; so does a change of the object the batch may carry
        // (autodelete, removal after the last deletion).
        for _ in 0..WRITE_ATTEMPTS {
            let Some(record) = self.0.store.notification(key, &remote).await? else {
                return Ok(ActionOutcome::Ignored);
            };
            if record.instance_id != instance_id {
                return Ok(ActionOutcome::Ignored);
            }
            let mut ops = match self.action_ops(action, &record, body).await? {
                Some(ops) => ops,
                None => return Ok(ActionOutcome::Ignored),
            };
            ops.insert(0, StoreOp::expect_notification(&record));
            match self.0.store.apply(ops).await {
                Ok(()) => {
                    self.after_destination_change(action, key).await?;
                    return Ok(ActionOutcome::Done);
                }
                Err(StoreError::Conflict) => continue,
                Err(e) => return Err(e.into()),
            }
        }
        Err(EngineError::Conflict(format!(
            "{key} is being changed by other requests; retry"
        )))
    }

    /// The store batch an action causes, or `None` when it is ignored (spec §5.4).
    async fn action_ops(
        &self,
        action: Action,
        record: &Notification,
        body: &[u8],
    ) -> EngineResult<Option<Vec<StoreOp>>> {
        use NotificationStatus as S;
        let key = &record.key;
        let remote = &record.remote;
        let set = |status: NotificationStatus| {
            StoreOp::PutNotification(Notification {
                status,
                ..record.clone()
            })
        };
        let delivery = |status: DeliveryStatus, message: String| StoreOp::SetDelivery {
            key: key.clone(),
            remote: remote.clone(),
            status,
            message,
            at: crate::clock::now_secs(),
        };
        let object_present = self.0.store.object(key).await?.is_some();
        Ok(match action {
            Action::Updated if matches!(record.status, S::Update | S::UpdatePending) => Some(vec![set(S::Updated)]),
            Action::Received
                if object_present && matches!(record.status, S::Data | S::Updated | S::Update | S::UpdatePending) =>
            {
                Some(vec![
                    set(S::ReceivedByDest),
                    delivery(DeliveryStatus::Delivered, String::new()),
                ])
            }
            Action::Consumed
                if object_present
                    && matches!(
                        record.status,
                        S::Data | S::Updated | S::Update | S::UpdatePending | S::ReceivedByDest
                    ) =>
            {
                Some(vec![
                    set(S::ConsumedByDest),
                    delivery(DeliveryStatus::Consumed, String::new()),
                ])
            }
            Action::AckDelete if matches!(record.status, S::Delete | S::DeletePending | S::Deleted) => Some(vec![
                set(S::AckDelete),
                delivery(DeliveryStatus::Deleted, String::new()),
            ]),
            Action::Deleted if matches!(record.status, S::Delete | S::DeletePending | S::AckDelete) => {
                let mut ops = vec![StoreOp::DeleteNotification {
                    key: key.clone(),
                    remote: remote.clone(),
                }];
                // A node that reports its copy deleted got the `delete`, whether or not its
                // `ackDelete` arrived first (a node deletes an expired copy at once).
                if record.status != S::AckDelete {
                    ops.push(delivery(DeliveryStatus::Deleted, String::new()));
                }
                Some(ops)
            }
            Action::AckReceived => self.receiver_ack_ops(record, S::ReceivedPending).await?,
            Action::AckConsumed => self.receiver_ack_ops(record, S::ConsumedPending).await?,
            Action::AckDeleted => self.receiver_ack_ops(record, S::DeletedPending).await?,
            Action::Feedback if !matches!(record.status, S::ReceivedByDest | S::Error) => {
                let feedback: Feedback = serde_json::from_slice(body).unwrap_or_default();
                if feedback.code == 5 {
                    Some(vec![StoreOp::DeleteNotification {
                        key: key.clone(),
                        remote: remote.clone(),
                    }])
                } else if feedback.code == FEEDBACK_SECURITY && self.verification_failed_too_often(record) {
                    // The node cannot verify this instance: re-sending it would fail the same
                    // way forever (the original retried every minute). It stays in `error`
                    // until the object changes or the node asks for a resend.
                    let reason = format!(
                        "{} (given up after {MAX_VERIFICATION_FAILURES} failed verifications of this instance)",
                        feedback.reason
                    );
                    Some(vec![
                        StoreOp::PutNotification(Notification {
                            status: S::Error,
                            resend_time: i64::MAX,
                            ..record.clone()
                        }),
                        delivery(DeliveryStatus::Error, reason),
                    ])
                } else {
                    // A retry interval asks for the `update` again after that many seconds
                    // (an ESS whose disk is full backs off this way); the resend timer turns
                    // the `error` record into an `update` when it is due.
                    let retry = i64::from(feedback.retry_interval);
                    let error = Notification {
                        status: S::Error,
                        resend_time: if retry > 0 {
                            now_secs() + retry
                        } else {
                            record.resend_time
                        },
                        ..record.clone()
                    };
                    Some(vec![
                        StoreOp::PutNotification(error),
                        delivery(DeliveryStatus::Error, feedback.reason),
                    ])
                }
            }
            _ => None,
        })
    }

    /// Counts a failed verification of `record`'s instance at its node; true once the
    /// count reaches the limit. Counted in memory: a restart of the CSS allows another few
    /// attempts, which still bounds the retries.
    fn verification_failed_too_often(&self, record: &Notification) -> bool {
        let mut failures = self.0.verification_failures.lock();
        // Entries of instances that are gone are dropped as new ones come.
        if failures.len() > 10_000 {
            failures.clear();
        }
        let count = failures
            .entry((record.key.clone(), record.remote.clone(), record.instance_id))
            .or_insert(0);
        *count += 1;
        *count >= MAX_VERIFICATION_FAILURES
    }

    /// Data of one of the CSS's objects for a node that was sent it (404 when the node has no
    /// record of it; 409 for another instance).
    pub async fn spi_data(
        &self,
        node: &NodeAddress,
        key: &ObjectKey,
        instance_id: i64,
        range: Option<super::RangeRequest>,
        admission: super::RangedRead,
    ) -> EngineResult<super::DataStream> {
        Self::require_same_org(node, &key.org)?;
        // The slot first (spec §3.8: 429 before the record checks).
        let range = self.admit(range, admission).await?;
        let record = self
            .0
            .store
            .notification(key, &remote_of(node))
            .await?
            .ok_or(EngineError::NotFound)?;
        if record.instance_id != instance_id {
            return Err(EngineError::Conflict(format!(
                "{key} instance {instance_id} is not current"
            )));
        }
        let object = self.0.store.object(key).await?.ok_or(EngineError::NotFound)?;
        // The object may have changed between the two reads: never serve another
        // instance's bytes for this one (the node's transfer would mix both).
        if object.meta.instance_id != instance_id {
            return Err(EngineError::Conflict(format!(
                "{key} instance {instance_id} is not current"
            )));
        }
        self.open_data(&object, range).await
    }

    /// `resend`: every deliverable object addressed to the node is queued again.
    pub async fn spi_resend(&self, node: &NodeAddress, path_org: &str) -> EngineResult<()> {
        Self::require_same_org(node, path_org)?;
        let remote = remote_of(node);
        let Some(destination) = self.0.store.destination(&node.org, &remote).await? else {
            return Err(EngineError::NotRegistered);
        };
        for record in self.0.store.objects_of_org(&node.org).await? {
            if deliverable(&record) && addresses(&record.meta, &destination) {
                self.target_unless_changed(&record.key(), &remote, Vec::new(), |current| {
                    deliverable(current) && addresses(&current.meta, &destination)
                })
                .await?;
            }
        }
        self.0.pollers.wake(&node.org, &remote);
        Ok(())
    }
}

fn deleted_remote(body: &[u8]) -> Option<Remote> {
    let meta: MetaData = serde_json::from_slice(body).ok()?;
    (!meta.destination_type.is_empty() && !meta.destination_id.is_empty()).then_some(Remote {
        dest_type: meta.destination_type,
        dest_id: meta.destination_id,
    })
}

#[cfg(test)]
mod props;
