//! ESS side of CSS -> ESS synchronization (spec: css-ess-protocol.md §5.3-5.4, §5.6, §7.3;
//! lifecycle.md §2, §5): what the edge node stores when its CSS sends an `update` or a
//! `delete`, the data download (`receive_data`), and the records
//! (`getdata`, `received`, `consumed`, `deleted`) that drive what the node tells the CSS.
//!
//! Every record change is committed in one store batch together with a revision-checked write
//! of the object it belongs to, so that two writers (the sync client, an application report)
//! never overwrite each other's record: one of them gets a conflict and re-reads. The exchange
//! with the CSS lives in `crate::sync`, whatever the transport.

pub use super::receive_data::{Completion, Download};
use super::receive_plan::{decide_update, UpdateDecision};
pub use super::receive_plan::{next_request, ChunkRequest};
use super::{EngineError, EngineResult, Node, WRITE_ATTEMPTS};
use crate::clock::now_secs;
use crate::model::lifecycle::deleted_by_expiration;
use crate::model::sync::{Notification, NotificationStatus, Remote};
use crate::model::{MetaData, ObjectKey, ObjectRecord, ObjectStatus};
use crate::store::{Expect, StoreError, StoreOp, UploadSession};

/// The CSS's destination type and ID, as records on the ESS name it.
pub const CLOUD: &str = "Cloud";

/// The remote of every record the ESS keeps about CSS objects.
pub fn cloud() -> Remote {
    Remote {
        dest_type: CLOUD.into(),
        dest_id: CLOUD.into(),
    }
}

/// What the ESS must tell the CSS after handling an `update`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum UpdateReply {
    /// Nothing (stale message).
    Nothing,
    /// `updated`, then download the data.
    Fetch,
    /// `received`: the copy is complete.
    Received,
    /// `feedback` with this reason: the update cannot be stored.
    Feedback(String),
}

/// A record the ESS still owes the CSS something for, with the object it is about.
#[derive(Debug, Clone)]
pub struct OwedMessage {
    pub record: Notification,
    pub object: Option<ObjectRecord>,
}

impl Node {
    /// The Basic credentials this node presents on a request to `url` (its CSS).
    pub fn credentials_for(&self, url: &str) -> Option<(String, String)> {
        self.0.authenticator.credentials_for(url)
    }

    /// Signalled when an application report committed a message for the CSS.
    pub fn outbox_signal(&self) -> &tokio::sync::Notify {
        &self.0.outbox_signal
    }

    fn resend_after(&self) -> i64 {
        now_secs() + 6 * self.0.settings.resend_interval_secs.max(1)
    }

    pub(super) fn cloud_record(&self, key: &ObjectKey, status: NotificationStatus, meta: &MetaData) -> Notification {
        Notification {
            key: key.clone(),
            remote: cloud(),
            status,
            instance_id: meta.instance_id,
            data_id: meta.data_id,
            resend_time: self.resend_after(),
        }
    }

    /// The key of a CSS object as this ESS stores it (its own org).
    fn received_key(&self, meta: &MetaData) -> ObjectKey {
        ObjectKey::new(self.org_for(None), &meta.object_type, &meta.object_id)
    }

    /// Handles an `update` from the CSS: stores the received copy and its record.
    pub async fn receive_update(&self, mut meta: MetaData) -> EngineResult<UpdateReply> {
        let key = self.received_key(&meta);
        if !meta.destination_org_id.is_empty() && meta.destination_org_id != key.org {
            return Ok(UpdateReply::Feedback(format!(
                "the object belongs to organization {}, not {}",
                meta.destination_org_id, key.org
            )));
        }
        meta.destination_org_id = key.org.clone();
        if let Some(reason) = self.refused_destination(&meta) {
            return Ok(UpdateReply::Feedback(reason));
        }
        for _ in 0..WRITE_ATTEMPTS {
            let local = self.0.store.object(&key).await?;
            let record = self.0.store.notification(&key, &cloud()).await?;
            let (complete, keep_data) = match decide_update(record.as_ref(), local.as_ref(), &meta) {
                UpdateDecision::Ignore => return Ok(UpdateReply::Nothing),
                UpdateDecision::Resume => return Ok(UpdateReply::Fetch),
                UpdateDecision::ReplyReceived => return Ok(UpdateReply::Received),
                UpdateDecision::OwnObject => {
                    return Ok(UpdateReply::Feedback(format!(
                        "{key} exists on the ESS as an object created there"
                    )))
                }
                UpdateDecision::Store { complete, keep_data } => (complete, keep_data),
            };
            let blob = local.as_ref().and_then(|l| l.blob.clone()).filter(|_| keep_data);
            let copy = ObjectRecord {
                remaining_consumers: meta.consumers,
                remaining_receivers: meta.consumers,
                meta: meta.clone(),
                status: if complete {
                    ObjectStatus::CompletelyReceived
                } else {
                    ObjectStatus::PartiallyReceived
                },
                sender: false,
                policy_received: false,
                blob: blob.clone(),
                revision: local.as_ref().map_or(0, |l| l.revision),
            };
            let status = if complete {
                NotificationStatus::Received
            } else {
                NotificationStatus::GetData
            };
            // The partial file of an abandoned download, removed once the new copy is in.
            let abandoned = self.partial_session(&key, local.as_ref()).await?;
            let ops = vec![
                StoreOp::WriteObject {
                    record: Box::new(copy),
                    expect: local.as_ref().map_or(Expect::Absent, |l| Expect::Revision(l.revision)),
                    drop_upload: true,
                },
                StoreOp::PutNotification(self.cloud_record(&key, status, &meta)),
            ];
            match self.0.store.apply(ops).await {
                Ok(()) => {
                    if !keep_data {
                        self.discard_destination_file(local.as_ref()).await;
                    }
                    let replaced = local.and_then(|l| l.blob).filter(|old| Some(old) != blob.as_ref());
                    // The replaced data may spare the new version's download most of its bytes.
                    let replaced = if complete {
                        replaced
                    } else {
                        self.keep_delta_base(&key, replaced)
                    };
                    self.discard_files(replaced, abandoned).await;
                    return Ok(if complete {
                        UpdateReply::Received
                    } else {
                        UpdateReply::Fetch
                    });
                }
                Err(StoreError::Conflict) => continue,
                Err(e) => return Err(e.into()),
            }
        }
        Err(EngineError::Conflict(format!("{key} is being changed concurrently")))
    }

    pub(super) async fn session_of(&self, key: &ObjectKey, meta: &MetaData) -> EngineResult<UploadSession> {
        let total = u64::try_from(meta.object_size).unwrap_or(0);
        Ok(self.0.store.upload_session(key, total).await?)
    }

    /// The upload session of a copy still being received: its partial file must go when the
    /// copy is replaced or removed.
    async fn partial_session(&self, key: &ObjectKey, local: Option<&ObjectRecord>) -> EngineResult<Option<i64>> {
        match local.filter(|l| l.status == ObjectStatus::PartiallyReceived) {
            Some(l) => Ok(Some(self.session_of(key, &l.meta).await?.id)),
            None => Ok(None),
        }
    }

    /// Removes the files of a replaced or removed copy, once the change committed.
    async fn discard_files(&self, old_blob: Option<String>, partial: Option<i64>) {
        if let Some(blob) = old_blob {
            self.0.blobs.remove(&blob).await;
        }
        if let Some(session) = partial {
            self.0.blobs.remove_partial(session).await;
        }
    }

    /// Marks a reception failed: record `receiverError` (and the copy `status`, if given).
    pub async fn receiver_error(
        &self,
        key: &ObjectKey,
        instance_id: i64,
        status: Option<ObjectStatus>,
    ) -> EngineResult<()> {
        let node = self.clone();
        self.guarded_change_object(key, instance_id, move |local, record| {
            let mut record = record?.clone();
            record.status = NotificationStatus::ReceiverError;
            record.resend_time = node.resend_after();
            let mut object = local.clone();
            if let Some(status) = status {
                object.status = status;
                object.blob = None;
            }
            Some((object, vec![StoreOp::PutNotification(record)]))
        })
        .await
        .map(|_| ())
    }

    /// The CSS acknowledged `received` (`204`/`409`): record `ackreceived`.
    pub async fn ack_received(&self, key: &ObjectKey, instance_id: i64) -> EngineResult<bool> {
        self.guarded_change(key, instance_id, |_, record| {
            let record = record.filter(|r| r.status == NotificationStatus::Received)?;
            let mut acked = record.clone();
            acked.status = NotificationStatus::AckReceived;
            Some(vec![StoreOp::PutNotification(acked)])
        })
        .await
    }

    /// The CSS acknowledged `consumed` (or `deleted`): the copy and its records go.
    pub async fn finish_handshake(
        &self,
        key: &ObjectKey,
        instance_id: i64,
        expected: NotificationStatus,
    ) -> EngineResult<bool> {
        let removed = self
            .remove_copy(key, |_, record| {
                record.is_some_and(|r| r.instance_id == instance_id && r.status == expected)
            })
            .await?;
        Ok(removed)
    }

    /// The CSS answered a data request with `404`: the object is gone there, so the local
    /// copy and its records go too.
    pub async fn drop_received(&self, key: &ObjectKey, instance_id: i64) -> EngineResult<bool> {
        self.remove_copy(key, |local, _| {
            local.is_some_and(|l| !l.is_sender_copy() && l.meta.instance_id == instance_id)
        })
        .await
    }

    /// Removes a received copy (if `condition` holds for it and its record) with all its
    /// records and files.
    async fn remove_copy<F>(&self, key: &ObjectKey, condition: F) -> EngineResult<bool>
    where
        F: Fn(Option<&ObjectRecord>, Option<&Notification>) -> bool,
    {
        for _ in 0..WRITE_ATTEMPTS {
            let local = self.0.store.object(key).await?;
            let record = self.0.store.notification(key, &cloud()).await?;
            if !condition(local.as_ref(), record.as_ref()) || local.as_ref().is_some_and(ObjectRecord::is_sender_copy) {
                return Ok(false);
            }
            let partial = self.partial_session(key, local.as_ref()).await?;
            let mut ops = vec![StoreOp::DeleteNotificationsOf(key.clone())];
            if let Some(local) = &local {
                ops.push(StoreOp::DeleteObject {
                    key: key.clone(),
                    revision: local.revision,
                });
            }
            match self.0.store.apply(ops).await {
                Ok(()) => {
                    self.discard_destination_file(local.as_ref()).await;
                    self.discard_files(local.and_then(|l| l.blob), partial).await;
                    self.release_delta_base(key).await;
                    return Ok(true);
                }
                Err(StoreError::Conflict) => continue,
                Err(e) => return Err(e.into()),
            }
        }
        Err(EngineError::Conflict(format!("{key} is being changed concurrently")))
    }

    /// Changes records of a received copy of `instance_id` under the copy's revision check.
    /// `decide` gets the copy and the record and returns the operations (`None`: nothing to
    /// do). Returns whether something was written.
    async fn guarded_change<F>(&self, key: &ObjectKey, instance_id: i64, decide: F) -> EngineResult<bool>
    where
        F: Fn(&ObjectRecord, Option<&Notification>) -> Option<Vec<StoreOp>>,
    {
        self.guarded_change_object(key, instance_id, |local, record| {
            decide(local, record).map(|ops| (local.clone(), ops))
        })
        .await
    }

    /// Like [`Self::guarded_change`], but `decide` may also change the copy.
    async fn guarded_change_object<F>(&self, key: &ObjectKey, instance_id: i64, decide: F) -> EngineResult<bool>
    where
        F: Fn(&ObjectRecord, Option<&Notification>) -> Option<(ObjectRecord, Vec<StoreOp>)>,
    {
        for _ in 0..WRITE_ATTEMPTS {
            let Some(local) = self.0.store.object(key).await? else {
                return Ok(false);
            };
            if local.is_sender_copy() || local.meta.instance_id != instance_id {
                return Ok(false);
            }
            let record = self.0.store.notification(key, &cloud()).await?;
            let record = record.filter(|r| r.instance_id == instance_id);
            let Some((object, mut ops)) = decide(&local, record.as_ref()) else {
                return Ok(false);
            };
            let removed_blob = local.blob.clone().filter(|b| object.blob.as_ref() != Some(b));
            ops.insert(
                0,
                StoreOp::WriteObject {
                    record: Box::new(object),
                    expect: Expect::Revision(local.revision),
                    drop_upload: false,
                },
            );
            match self.0.store.apply(ops).await {
                Ok(()) => {
                    if let Some(blob) = removed_blob {
                        self.0.blobs.remove(&blob).await;
                    }
                    return Ok(true);
                }
                Err(StoreError::Conflict) => continue,
                Err(e) => return Err(e.into()),
            }
        }
        Err(EngineError::Conflict(format!("{key} is being changed concurrently")))
    }

    /// Handles a `delete` from the CSS (spec §5.4 "delete", receiver): the copy becomes
    /// `objdeleted` with `deleted: true`, without data and with a reset consumer counter (a
    /// data-less deleted copy when there was none, so applications learn of the deletion);
    /// all its records go. Returns false when the key is an object this node created.
    ///
    /// An expired object goes quietly: the original's applications are never shown the
    /// expiration of an object (the original's CSS does not tell its nodes), so the copy is
    /// hidden from them at once, as if they had acknowledged the deletion, and the CSS is
    /// told `deleted` right away.
    pub async fn receive_delete(&self, mut meta: MetaData) -> EngineResult<bool> {
        let key = self.received_key(&meta);
        meta.destination_org_id = key.org.clone();
        meta.deleted = true;
        let expired = deleted_by_expiration(&meta, now_secs());
        for _ in 0..WRITE_ATTEMPTS {
            let local = self.0.store.object(&key).await?;
            if local.as_ref().is_some_and(ObjectRecord::is_sender_copy) {
                return Ok(false);
            }
            // The same deletion again (our acknowledgement was lost): already handled; the
            // applications' progress and a recorded `deleted` must survive.
            if local
                .as_ref()
                .is_some_and(|l| l.status == ObjectStatus::ObjDeleted && l.meta.instance_id == meta.instance_id)
            {
                return Ok(true);
            }
            let partial = self.partial_session(&key, local.as_ref()).await?;
            let consumers = if expired { 0 } else { meta.consumers.max(1) };
            let copy = ObjectRecord {
                remaining_consumers: consumers,
                remaining_receivers: consumers,
                meta: meta.clone(),
                status: ObjectStatus::ObjDeleted,
                sender: false,
                policy_received: false,
                blob: None,
                revision: local.as_ref().map_or(0, |l| l.revision),
            };
            let mut ops = vec![
                StoreOp::WriteObject {
                    record: Box::new(copy),
                    expect: local.as_ref().map_or(Expect::Absent, |l| Expect::Revision(l.revision)),
                    drop_upload: true,
                },
                StoreOp::DeleteNotificationsOf(key.clone()),
            ];
            if expired {
                ops.push(StoreOp::PutNotification(self.cloud_record(
                    &key,
                    NotificationStatus::Deleted,
                    &meta,
                )));
            }
            match self.0.store.apply(ops).await {
                Ok(()) => {
                    self.discard_destination_file(local.as_ref()).await;
                    self.discard_files(local.and_then(|l| l.blob), partial).await;
                    return Ok(true);
                }
                Err(StoreError::Conflict) => continue,
                Err(e) => return Err(e.into()),
            }
        }
        Err(EngineError::Conflict(format!("{key} is being changed concurrently")))
    }

    /// Records about CSS objects that still owe the CSS a message (`getdata` downloads,
    /// `received`, `consumed`, `deleted`), with their objects.
    pub async fn owed_messages(&self) -> EngineResult<Vec<OwedMessage>> {
        let org = self.org_for(None).to_string();
        let records = self.0.store.notifications_for_remote(&org, &cloud()).await?;
        let mut owed = Vec::new();
        for record in records {
            if matches!(
                record.status,
                NotificationStatus::GetData
                    | NotificationStatus::Received
                    | NotificationStatus::Consumed
                    | NotificationStatus::Deleted
            ) {
                let object = self.0.store.object(&record.key).await?;
                owed.push(OwedMessage { record, object });
            }
        }
        Ok(owed)
    }

    /// Cleans up for a registration from scratch (spec §7.3): every record goes; received
    /// copies that cannot be trusted go too (all of them on a volatile store, the incomplete
    /// ones on a persistent store).
    pub async fn reset_for_new_registration(&self, persistent: bool) -> EngineResult<()> {
        let org = self.org_for(None).to_string();
        let own = Remote {
            dest_type: self.0.settings.dest_type.clone(),
            dest_id: self.0.settings.dest_id.clone(),
        };
        let mut ops = Vec::new();
        for remote in [cloud(), own] {
            for record in self.0.store.notifications_for_remote(&org, &remote).await? {
                ops.push(StoreOp::DeleteNotification {
                    key: record.key,
                    remote: record.remote,
                });
            }
        }
        if !ops.is_empty() {
            self.0.store.apply(ops).await?;
        }
        for object in self.0.store.objects_of_org(&org).await? {
            let untrusted = !object.is_sender_copy()
                && match object.status {
                    ObjectStatus::PartiallyReceived | ObjectStatus::ReceiverVerifying => true,
                    ObjectStatus::CompletelyReceived | ObjectStatus::ObjReceived | ObjectStatus::ObjConsumed => {
                        !persistent
                    }
                    _ => false,
                };
            if untrusted {
                let instance = object.meta.instance_id;
                self.remove_copy(&object.key(), |local, _| {
                    local.is_some_and(|l| l.meta.instance_id == instance)
                })
                .await?;
            }
        }
        Ok(())
    }
}
