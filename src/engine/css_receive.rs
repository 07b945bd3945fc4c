//! The CSS as the receiver of objects created on an edge node (spec: css-ess-protocol.md
//! §3.5, §3.8 "Upload", §5.3-5.4): the node's `update` stores a received copy, its data
//! arrives whole or in chunks, and the node learns through its poll that the copy is
//! complete (`received`), consumed (`consumed`) or acknowledged deleted (`deleted`). Every
//! change and the message it owes the node commit in one batch.

use super::data::ContentRange;
use super::delivery::now_secs;
use super::objects::{Change, METADATA_SHAPE};
use super::spi::ActionOutcome;
use super::verify::{running_hash, verify_stored};
use super::{EngineError, EngineResult, Node, WRITE_ATTEMPTS};
use crate::auth::edge::NodeAddress;
use crate::model::json::from_lenient;
use crate::model::sync::{Notification, NotificationStatus, Remote};
use crate::model::{MetaData, ObjectKey, ObjectRecord, ObjectStatus};
use crate::store::{Expect, StoreError, StoreOp};
use bytes::Bytes;
use futures_util::Stream;

/// Which unfinished receptions [`Node::unfinished_receptions`] returns.
#[derive(Debug, Clone, Copy)]
pub enum ReceptionScope<'a> {
    /// Those of one node.
    Node(&'a NodeAddress),
    /// All of them.
    All,
    /// Those without progress for 6 x `ResendInterval`.
    Stalled,
}

fn remote_of(node: &NodeAddress) -> Remote {
    Remote {
        dest_type: node.dest_type.clone(),
        dest_id: node.dest_id.clone(),
    }
}

/// The data-less deleted copy of a node's object the CSS no longer holds, for its
/// applications to acknowledge.
fn deleted_copy(node: &NodeAddress, key: &ObjectKey, instance_id: i64) -> ObjectRecord {
    let meta = MetaData {
        object_type: key.object_type.clone(),
        object_id: key.object_id.clone(),
        destination_org_id: key.org.clone(),
        destination_type: node.dest_type.clone(),
        destination_id: node.dest_id.clone(),
        origin_type: node.dest_type.clone(),
        origin_id: node.dest_id.clone(),
        owner_id: format!("{}/{}", key.org, node.dest_id),
        instance_id,
        consumers: 1,
        deleted: true,
        ..MetaData::default()
    };
    ObjectRecord {
        remaining_consumers: 1,
        remaining_receivers: 1,
        meta,
        status: ObjectStatus::ObjDeleted,
        sender: false,
        policy_received: false,
        blob: None,
        revision: 0,
    }
}

impl Node {
    fn node_record(
        &self,
        key: &ObjectKey,
        remote: Remote,
        status: NotificationStatus,
        meta: &MetaData,
    ) -> Notification {
        Notification {
            key: key.clone(),
            remote,
            status,
            instance_id: meta.instance_id,
            data_id: meta.data_id,
            resend_time: now_secs() + self.resend_delay(),
        }
    }

    /// `update` from a node: stores (or refreshes) the received copy of one of its objects.
    /// `Done` asks the node for the data; `Ignored` means nothing is needed.
    pub async fn spi_receive_update(
        &self,
        node: &NodeAddress,
        key: &ObjectKey,
        instance_id: i64,
        body: &[u8],
    ) -> EngineResult<ActionOutcome> {
        let mut meta: MetaData = from_lenient(body, &METADATA_SHAPE)
            .map_err(|e| EngineError::Invalid(format!("Invalid JSON for update. Error: {e}")))?;
        if meta.object_type != key.object_type || meta.object_id != key.object_id {
            return Err(EngineError::Invalid(
                "The metadata does not match the object in the path".into(),
            ));
        }
        let remote = remote_of(node);
        for _ in 0..WRITE_ATTEMPTS {
            let existing = self.0.store.object(key).await?;
            if existing.as_ref().is_some_and(|e| e.is_sender_copy()) {
                // The key belongs to an object of the CSS itself.
                return Ok(ActionOutcome::Ignored);
            }
            let record = self.0.store.notification(key, &remote).await?;
            if let (Some(record), Some(copy)) = (&record, &existing) {
                if record.instance_id > instance_id {
                    return Ok(ActionOutcome::Ignored);
                }
                if record.instance_id == instance_id {
                    // A repeated update: ask for the data again while it is still missing.
                    let missing = copy.status == ObjectStatus::PartiallyReceived;
                    return Ok(if missing {
                        ActionOutcome::Done
                    } else {
                        ActionOutcome::Ignored
                    });
                }
            }
            meta.destination_org_id = key.org.clone();
            meta.instance_id = instance_id;
            meta.destination_type = node.dest_type.clone();
            meta.destination_id = node.dest_id.clone();
            meta.owner_id = format!("{}/{}", key.org, node.dest_id);
            meta.deleted = false;
            let keeps_data = meta.meta_only
                && existing
                    .as_ref()
                    .is_some_and(|e| e.blob.is_some() && e.meta.data_id == meta.data_id);
            let complete = meta.no_data || !meta.link.is_empty() || keeps_data;
            let copy = ObjectRecord {
                remaining_consumers: meta.consumers.max(1),
                remaining_receivers: meta.consumers.max(1),
                meta: meta.clone(),
                status: if complete {
                    ObjectStatus::CompletelyReceived
                } else {
                    ObjectStatus::PartiallyReceived
                },
                sender: false,
                policy_received: false,
                blob: if keeps_data {
                    existing.as_ref().and_then(|e| e.blob.clone())
                } else {
                    None
                },
                revision: existing.as_ref().map_or(0, |e| e.revision),
            };
            let status = if complete {
                NotificationStatus::ReceivedPending
            } else {
                NotificationStatus::HandleUpdate
            };
            let expect = existing
                .as_ref()
                .map_or(Expect::Absent, |e| Expect::Revision(e.revision));
            let ops = vec![
                StoreOp::WriteObject {
                    record: Box::new(copy.clone()),
                    expect,
                    drop_upload: true,
                },
                StoreOp::PutNotification(self.node_record(key, remote.clone(), status, &copy.meta)),
            ];
            match self.commit(key, ops).await {
                Ok(()) => {
                    let replaced = existing
                        .and_then(|e| e.blob)
                        .filter(|old| Some(old) != copy.blob.as_ref());
                    // The replaced data may spare the new version's upload most of its bytes.
                    let replaced = if complete {
                        replaced
                    } else {
                        self.keep_delta_base(key, replaced)
                    };
                    if let Some(old) = replaced {
                        self.0.blobs.remove(&old).await;
                    }
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

    /// Data of a node's object, whole or one chunk. When the last byte is in, the copy is
    /// verified and completed, `received` is queued for the node's poll and the webhook calls are queued.
    pub async fn spi_receive_data<S, E>(
        &self,
        node: &NodeAddress,
        key: &ObjectKey,
        instance_id: i64,
        content_range: Option<ContentRange>,
        body: S,
    ) -> EngineResult<ActionOutcome>
    where
        S: Stream<Item = Result<Bytes, E>> + Unpin + Send,
        E: std::fmt::Display,
    {
        let remote = remote_of(node);
        let copy = self
            .0
            .store
            .object(key)
            .await?
            .filter(|c| !c.is_sender_copy())
            .ok_or_else(|| EngineError::Invalid(format!("Failed to store the data: no object {key} was updated")))?;
        let record = self.0.store.notification(key, &remote).await?;
        if record.as_ref().is_none_or(|r| r.instance_id != instance_id) || copy.meta.instance_id != instance_id {
            return Ok(ActionOutcome::Ignored);
        }
        if copy.status != ObjectStatus::PartiallyReceived {
            return Ok(ActionOutcome::Done);
        }
        let hash = running_hash(&copy.meta);
        let Some(mut stored) = self.store_bytes(key, content_range, body, hash).await? else {
            return Ok(ActionOutcome::Done);
        };
        let name = stored.name.clone();
        let verified = if copy.meta.needs_verification() {
            verify_stored(&copy.meta, &self.0.blobs, &name, stored.hash.take()).await
        } else {
            Ok(())
        };
        let result = self
            .change_object(key, |mut current| {
                if current.meta.instance_id != instance_id || current.is_sender_copy() {
                    return Err(EngineError::Conflict(format!("{key} changed while its data arrived")));
                }
                match &verified {
                    Ok(()) => {
                        current.blob = Some(name.clone());
                        current.meta.object_size = stored.len as i64;
                        current.status = ObjectStatus::CompletelyReceived;
                    }
                    Err(_) => current.status = ObjectStatus::ReceiverVerificationFailed,
                }
                Ok(if stored.session.is_some() {
                    Change::WriteEndingUpload(Box::new(current))
                } else {
                    Change::Write(Box::new(current))
                })
            })
            .await;
        if let Err(e) = result {
            self.0.blobs.remove(&name).await;
            return Err(e);
        }
        if let Some(session) = stored.session {
            self.0.blobs.remove_partial(session).await;
        }
        if let Err(failure) = verified {
            self.0.blobs.remove(&name).await;
            return Err(EngineError::Invalid(format!(
                "Failed to verify and store data, Error: {failure}"
            )));
        }
        self.release_delta_base(key).await;
        let received = self.node_record(key, remote, NotificationStatus::ReceivedPending, &copy.meta);
        self.commit(key, vec![StoreOp::PutNotification(received)]).await?;
        self.call_webhooks(key).await;
        Ok(ActionOutcome::Done)
    }

    /// `delete` from a node: its object was deleted there. The received copy is marked
    /// deleted for the CSS's applications to acknowledge. Without a copy (its applications
    /// consumed it and the node acknowledged, or an application deleted it here) they get a
    /// data-less deleted copy, as an ESS does for a CSS object it no longer holds: an
    /// application that consumed an object still learns that its edge node deleted it,
    /// however quickly the consumption handshake ran.
    pub async fn spi_receive_delete(&self, node: &NodeAddress, key: &ObjectKey, instance_id: i64) -> EngineResult<()> {
        let remote = remote_of(node);
        self.release_delta_base(key).await;
        let result = self
            .change_object(key, |mut copy| {
                if copy.is_sender_copy() {
                    return Err(EngineError::Conflict(format!("{key} is an object of the CSS")));
                }
                if copy.status != ObjectStatus::ObjDeleted {
                    copy.status = ObjectStatus::ObjDeleted;
                    copy.meta.deleted = true;
                    copy.remaining_consumers = copy.meta.consumers.max(1);
                }
                copy.blob = None;
                Ok(Change::Write(Box::new(copy)))
            })
            .await;
        match result {
            Ok(previous) => {
                if let Some(blob) = previous.and_then(|p| p.blob) {
                    self.0.blobs.remove(&blob).await;
                }
                self.commit(
                    key,
                    vec![StoreOp::DeleteNotification {
                        key: key.clone(),
                        remote,
                    }],
                )
                .await?;
                Ok(())
            }
            Err(EngineError::NotFound) => {
                let placeholder = deleted_copy(node, key, instance_id);
                let ops = vec![
                    StoreOp::WriteObject {
                        record: Box::new(placeholder),
                        expect: Expect::Absent,
                        drop_upload: true,
                    },
                    StoreOp::DeleteNotification {
                        key: key.clone(),
                        remote,
                    },
                ];
                match self.commit(key, ops).await {
                    Ok(()) => Ok(()),
                    // An object appeared meanwhile (a new update of the node): it is newer
                    // than the deletion.
                    Err(StoreError::Conflict) => Ok(()),
                    Err(e) => Err(e.into()),
                }
            }
            Err(e) => Err(e),
        }
    }

    /// True when the CSS's copy of instance `instance_id` of a node's object waits for its
    /// data.
    pub async fn awaits_data(&self, key: &ObjectKey, instance_id: i64) -> EngineResult<bool> {
        Ok(matches!(
            self.0.store.object(key).await?,
            Some(copy) if copy.status == ObjectStatus::PartiallyReceived && copy.meta.instance_id == instance_id
        ))
    }

    /// The byte ranges of a node's object data that the CSS already holds (merged, sorted,
    /// end-exclusive), so that fetching it resumes after them.
    pub async fn received_ranges(&self, key: &ObjectKey, total: u64) -> EngineResult<Vec<(u64, u64)>> {
        Ok(self.0.store.upload_session(key, total).await?.ranges)
    }

    /// Copies of nodes' objects whose data the CSS fetches itself (over MQTT it pulls) and
    /// that still miss data: the node and the copy's metadata. `scope` picks which: one
    /// node's (after it registers), every one (after a restart), or those whose transfer
    /// made no progress for 6 x `ResendInterval`; the last are given another period before
    /// they are returned again.
    pub async fn unfinished_receptions(
        &self,
        communication: &str,
        scope: ReceptionScope<'_>,
    ) -> EngineResult<Vec<(NodeAddress, MetaData)>> {
        let now = now_secs();
        let records = match scope {
            ReceptionScope::Node(node) => {
                self.0
                    .store
                    .notifications_for_remote(&node.org, &remote_of(node))
                    .await?
            }
            ReceptionScope::All => self.0.store.due_notifications(i64::MAX).await?,
            ReceptionScope::Stalled => self.0.store.due_notifications(now).await?,
        };
        let mut unfinished = Vec::new();
        for record in records {
            if record.status != NotificationStatus::HandleUpdate {
                continue;
            }
            let node = NodeAddress {
                org: record.key.org.clone(),
                dest_type: record.remote.dest_type.clone(),
                dest_id: record.remote.dest_id.clone(),
            };
            let over = self.0.store.destination(&node.org, &record.remote).await?;
            if over.is_none_or(|d| d.communication != communication) {
                continue;
            }
            let Some(copy) = self.0.store.object(&record.key).await? else {
                continue;
            };
            if copy.is_sender_copy()
                || copy.status != ObjectStatus::PartiallyReceived
                || copy.meta.instance_id != record.instance_id
            {
                continue;
            }
            if matches!(scope, ReceptionScope::Stalled) {
                let later = Notification {
                    resend_time: now + self.resend_delay(),
                    ..record
                };
                self.0.store.apply(vec![StoreOp::PutNotification(later)]).await?;
            }
            unfinished.push((node, copy.meta));
        }
        Ok(unfinished)
    }

    pub(super) async fn receiver_ack_ops(
        &self,
        record: &Notification,
        expected: NotificationStatus,
    ) -> EngineResult<Option<Vec<StoreOp>>> {
        // Over MQTT the record was marked sent (`received` for `receivedpending`, ...).
        if record.status != expected && expected.sent_form() != Some(record.status) {
            return Ok(None);
        }
        let mut ops = vec![StoreOp::DeleteNotification {
            key: record.key.clone(),
            remote: record.remote.clone(),
        }];
        if expected == NotificationStatus::ReceivedPending {
            // The node knows the copy arrived; the record stays until it is consumed.
            return Ok(Some(vec![StoreOp::PutNotification(Notification {
                status: NotificationStatus::AckReceived,
                ..record.clone()
            })]));
        }
        if let Some(copy) = self.0.store.object(&record.key).await?.filter(|c| !c.is_sender_copy()) {
            if let Some(blob) = &copy.blob {
                self.0.blobs.remove(blob).await;
            }
            ops.push(StoreOp::DeleteObject {
                key: record.key.clone(),
                revision: copy.revision,
            });
        }
        Ok(Some(ops))
    }
}
