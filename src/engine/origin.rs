//! The ESS as the origin of objects its applications create (spec: css-ess-protocol.md §1,
//! §3.6, §3.7, §3.8 "Upload", §5.2, §5.4, §6; lifecycle.md §3, §5.1): which records such an
//! object owes the CSS (`update`, `delete`), how the answers and the poll's `received`,
//! `consumed` and `deleted` change them, and what the upload reads.
//!
//! Records of the ESS's own objects are keyed by the ESS's **own** type/ID as the remote
//! (§1). Two paths create the `update`/`delete` records:
//! - [`Node::ess_follow_up_ops`], the ESS branch of the store's follow-up operations: the
//!   record commits in the same batch as the application's write (the outbox);
//! - [`Node::origin_reconcile`], run by the sync client on every outbox pass: any own object
//!   that is `ready` and active without a record for its current instance (or `objdeleted`
//!   without a `delete` record) gets one, in a batch checked against the object's revision.
//!   This also resends every own object after a registration as new (§7.3), which wipes the
//!   records, and repairs whatever a crash or an older version left behind.
//!
//! Every record change is committed with a revision-checked write of its object, so the sync
//! client and an application never overwrite each other's changes. Nothing here speaks HTTP.

use super::delivery::{deliverable, now_secs};
use super::DataFile;
use super::{EngineError, EngineResult, Node, WRITE_ATTEMPTS};
use crate::model::sync::{Notification, NotificationStatus, Remote};
use crate::model::{MetaData, ObjectKey, ObjectRecord, ObjectStatus, Role};
use crate::store::{Expect, StoreError, StoreOp};

/// A record of an own object that owes the CSS a message, with its object.
#[derive(Debug, Clone)]
pub struct OriginMessage {
    pub record: Notification,
    pub object: ObjectRecord,
}

/// Where the data of an own object's instance is read from for an upload.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UploadSource {
    /// A stored data file or the `sourceDataUri` file (checked again at each open).
    pub file: DataFile,
    /// `objectSize` of the instance.
    pub total: u64,
    /// `chunkSize` of the instance.
    pub chunk_size: u64,
    pub data_id: i64,
}

/// What the ESS must do after the CSS accepted an `update` (`204`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AfterUpdate {
    /// Upload the data (record `updated`).
    Upload,
    /// No data moves (`noData`, `link`, `metaOnly`): record `data`, wait for `received`.
    Done,
    /// The record or object changed meanwhile.
    Stale,
}

/// True when an instance of an own object moves data to the CSS after its `update`.
pub fn moves_data(meta: &MetaData) -> bool {
    !(meta.no_data || !meta.link.is_empty() || meta.meta_only)
}

/// The record an own object owes the CSS given its current record (pure; `None`: nothing
/// to add). `ready` and active objects need a record for their instance; `objdeleted` ones a
/// `delete` (or `ackDelete`) record for theirs.
pub fn owed_record_status(object: &ObjectRecord, record: Option<&Notification>) -> Option<NotificationStatus> {
    let same_instance = record.filter(|r| r.instance_id == object.meta.instance_id);
    if object.status == ObjectStatus::ObjDeleted {
        let pending = same_instance
            .is_some_and(|r| matches!(r.status, NotificationStatus::Delete | NotificationStatus::AckDelete));
        return (!pending).then_some(NotificationStatus::Delete);
    }
    if deliverable(object) {
        return same_instance.is_none().then_some(NotificationStatus::Update);
    }
    None
}

/// Objects to prune after a consumption (pure; lifecycle.md §3.1): when more than 110 % of
/// `kept` own objects are `consumedByDest`, the oldest go until `kept` remain. Without a
/// stored consumption time, "oldest" is the lowest instance ID (instances are sent, and so
/// consumed, in roughly that order).
pub fn to_prune(mut consumed: Vec<ObjectRecord>, kept: usize) -> Vec<ObjectRecord> {
    let limit = kept.saturating_mul(11) / 10;
    if consumed.len() <= limit {
        return Vec::new();
    }
    consumed.sort_by_key(|o| o.meta.instance_id);
    let excess = consumed.len() - kept;
    consumed.truncate(excess);
    consumed
}

impl Node {
    /// The remote of every record about this ESS's own objects: the ESS itself (§1).
    pub fn own_remote(&self) -> Remote {
        Remote {
            dest_type: self.0.settings.dest_type.clone(),
            dest_id: self.0.settings.dest_id.clone(),
        }
    }

    fn own_record(
        &self,
        key: &ObjectKey,
        status: NotificationStatus,
        meta: &MetaData,
        resend_time: i64,
    ) -> Notification {
        Notification {
            key: key.clone(),
            remote: self.own_remote(),
            status,
            instance_id: meta.instance_id,
            data_id: meta.data_id,
            resend_time,
        }
    }

    /// The ESS branch of the follow-up operations of an application's write of an own
    /// object: a new instance drops the records of the previous one; an instance that is
    /// (or just became) `ready` and active gets an `update` record, due at once; a deletion
    /// gets a `delete` record. Empty on the CSS and for received copies.
    pub fn ess_follow_up_ops(&self, before: Option<&ObjectRecord>, after: &ObjectRecord) -> Vec<StoreOp> {
        if self.role() != Role::Ess || !after.is_sender_copy() {
            return Vec::new();
        }
        let key = after.key();
        let now = now_secs();
        if after.status == ObjectStatus::ObjDeleted {
            if before.is_some_and(|b| b.status == ObjectStatus::ObjDeleted) {
                return Vec::new();
            }
            return vec![
                StoreOp::DeleteNotificationsOf(key.clone()),
                StoreOp::PutNotification(self.own_record(&key, NotificationStatus::Delete, &after.meta, now)),
            ];
        }
        let new_instance = before.is_none_or(|b| b.meta.instance_id != after.meta.instance_id);
        let newly_deliverable = deliverable(after) && !before.is_some_and(deliverable);
        let mut ops = Vec::new();
        if new_instance {
            ops.push(StoreOp::DeleteNotificationsOf(key.clone()));
        }
        if deliverable(after) && (new_instance || newly_deliverable) {
            ops.push(StoreOp::PutNotification(self.own_record(
                &key,
                NotificationStatus::Update,
                &after.meta,
                now,
            )));
        }
        ops
    }

    /// True when deleting an own object must go through the deletion handshake: the CSS
    /// acknowledged the object's update, so it holds a copy, or its applications consumed it
    /// (ESS only). An update still unacknowledged is simply dropped with the object.
    ///
    /// A consumed object is no longer on the CSS, but the original's CSS applications learn
    /// of its deletion when it comes before the CSS's `consumed` reached the node; told always,
    /// they learn of it however quickly that handshake ran.
    pub(super) async fn ess_sent_to_css(&self, key: &ObjectKey) -> EngineResult<bool> {
        if self.role() != Role::Ess {
            return Ok(false);
        }
        let record = self.0.store.notification(key, &self.own_remote()).await?;
        if record.is_some_and(|r| r.status != NotificationStatus::Update) {
            return Ok(true);
        }
        let object = self.0.store.object(key).await?;
        Ok(object.is_some_and(|o| o.is_sender_copy() && o.status == ObjectStatus::ConsumedByDest))
    }

    /// True when an ESS commit changed an own object or queued a message for the CSS, so the
    /// sync client should look at its outbox.
    pub(super) fn origin_outbox_touched(&self, ops: &[StoreOp]) -> bool {
        self.role() == Role::Ess
            && ops.iter().any(|op| match op {
                StoreOp::WriteObject { record, .. } => record.is_sender_copy(),
                // Any message for the CSS: about an own object or a received copy.
                StoreOp::PutNotification(_) => true,
                _ => false,
            })
    }

    /// Wakes the sync client's outbox.
    pub(super) fn signal_outbox(&self) {
        self.0.outbox_signal.notify_one();
    }

    /// Gives every own object the record it is owed (see the module documentation); returns
    /// how many were written.
    pub async fn origin_reconcile(&self) -> EngineResult<usize> {
        if self.role() != Role::Ess {
            return Ok(0);
        }
        let org = self.org_for(None).to_string();
        let own = self.own_remote();
        let mut written = 0;
        for object in self.0.store.objects_of_org(&org).await? {
            if !object.is_sender_copy() {
                continue;
            }
            let key = object.key();
            let record = self.0.store.notification(&key, &own).await?;
            let stale_send = record.as_ref().is_some_and(|r| {
                r.instance_id != object.meta.instance_id
                    && matches!(r.status, NotificationStatus::Update | NotificationStatus::Updated)
            });
            let status = owed_record_status(&object, record.as_ref());
            if status.is_none() && !stale_send {
                continue;
            }
            let mut ops = vec![StoreOp::WriteObject {
                record: Box::new(object.clone()),
                expect: Expect::Revision(object.revision),
                drop_upload: false,
            }];
            match status {
                Some(status) => ops.push(StoreOp::PutNotification(self.own_record(
                    &key,
                    status,
                    &object.meta,
                    now_secs(),
                ))),
                // A send of an older instance that is no longer wanted (the current one is
                // not ready yet).
                None => ops.push(StoreOp::DeleteNotification {
                    key: key.clone(),
                    remote: own.clone(),
                }),
            }
            match self.0.store.apply(ops).await {
                Ok(()) => written += 1,
                // The application changed the object meanwhile; the next pass looks again.
                Err(StoreError::Conflict) => {}
                Err(e) => return Err(e.into()),
            }
        }
        Ok(written)
    }

    /// Records of own objects that owe the CSS something now: `update` and `delete` once
    /// their resend time has come, and every `updated` (an upload that has not finished, the
    /// fix of the upload-retry flaw of §3.8), each with its object of the same instance.
    /// Records whose object is gone or has another instance are skipped.
    pub async fn origin_owed(&self) -> EngineResult<Vec<OriginMessage>> {
        if self.role() != Role::Ess {
            return Ok(Vec::new());
        }
        let org = self.org_for(None).to_string();
        let now = now_secs();
        let mut owed = Vec::new();
        for record in self.0.store.notifications_for_remote(&org, &self.own_remote()).await? {
            let wanted = match record.status {
                NotificationStatus::Update | NotificationStatus::Delete => record.resend_time <= now,
                NotificationStatus::Updated => true,
                _ => false,
            };
            if !wanted {
                continue;
            }
            let Some(object) = self.0.store.object(&record.key).await? else {
                continue;
            };
            if object.is_sender_copy() && object.meta.instance_id == record.instance_id {
                owed.push(OriginMessage { record, object });
            }
        }
        Ok(owed)
    }

    /// Changes the record of an own object's `instance_id` under the object's revision check.
    /// `decide` gets the object and the record (of that instance) and returns the new object
    /// (`None`: remove it) and further operations, or `None` for "nothing to do". Returns the
    /// object as it was when something was written.
    async fn origin_change<F>(&self, key: &ObjectKey, instance_id: i64, decide: F) -> EngineResult<Option<ObjectRecord>>
    where
        F: Fn(&ObjectRecord, Option<&Notification>) -> Option<(Option<ObjectRecord>, Vec<StoreOp>)>,
    {
        let own = self.own_remote();
        for _ in 0..WRITE_ATTEMPTS {
            let Some(object) = self.0.store.object(key).await? else {
                return Ok(None);
            };
            if !object.is_sender_copy() || object.meta.instance_id != instance_id {
                return Ok(None);
            }
            let record = self.0.store.notification(key, &own).await?;
            let record = record.filter(|r| r.instance_id == instance_id);
            let Some((new_object, mut ops)) = decide(&object, record.as_ref()) else {
                return Ok(None);
            };
            let first = match new_object {
                Some(new_object) => StoreOp::WriteObject {
                    record: Box::new(new_object),
                    expect: Expect::Revision(object.revision),
                    drop_upload: false,
                },
                None => StoreOp::DeleteObject {
                    key: key.clone(),
                    revision: object.revision,
                },
            };
            ops.insert(0, first);
            match self.0.store.apply(ops).await {
                Ok(()) => return Ok(Some(object)),
                Err(StoreError::Conflict) => continue,
                Err(e) => return Err(e.into()),
            }
        }
        Err(EngineError::Conflict(format!("{key} is being changed concurrently")))
    }

    /// Moves the record of `instance_id` from one of `from` to `to` (resend time renewed).
    async fn origin_transition(
        &self,
        key: &ObjectKey,
        instance_id: i64,
        from: &[NotificationStatus],
        to: NotificationStatus,
    ) -> EngineResult<bool> {
        let resend = now_secs() + self.resend_delay();
        let changed = self
            .origin_change(key, instance_id, |object, record| {
                let record = record.filter(|r| from.contains(&r.status))?;
                let next = Notification {
                    status: to,
                    resend_time: resend,
                    ..record.clone()
                };
                Some((Some(object.clone()), vec![StoreOp::PutNotification(next)]))
            })
            .await?;
        Ok(changed.is_some())
    }

    /// The CSS ignored a message (`409`) or refused it: send it again only after
    /// 6 x `ResendInterval` (the record keeps its status).
    pub async fn origin_postpone(
        &self,
        key: &ObjectKey,
        instance_id: i64,
        status: NotificationStatus,
    ) -> EngineResult<bool> {
        self.origin_transition(key, instance_id, &[status], status).await
    }

    /// The CSS accepted the `update` (`204`): record `updated` when data must be uploaded,
    /// else `data` (nothing moves; `received` follows through the poll).
    pub async fn origin_update_accepted(&self, key: &ObjectKey, instance_id: i64) -> EngineResult<AfterUpdate> {
        let Some(object) = self.0.store.object(key).await? else {
            return Ok(AfterUpdate::Stale);
        };
        let (to, after) = if moves_data(&object.meta) {
            (NotificationStatus::Updated, AfterUpdate::Upload)
        } else {
            (NotificationStatus::Data, AfterUpdate::Done)
        };
        let changed = self
            .origin_transition(key, instance_id, &[NotificationStatus::Update], to)
            .await?;
        Ok(if changed { after } else { AfterUpdate::Stale })
    }

    /// The whole upload was accepted: record `updated` -> `data`.
    pub async fn origin_uploaded(&self, key: &ObjectKey, instance_id: i64) -> EngineResult<bool> {
        self.origin_transition(
            key,
            instance_id,
            &[NotificationStatus::Updated],
            NotificationStatus::Data,
        )
        .await
    }

    /// The CSS does not take the upload (it lost or never stored the metadata): go back to
    /// `update`, to be sent again after 6 x `ResendInterval`.
    pub async fn origin_upload_refused(&self, key: &ObjectKey, instance_id: i64) -> EngineResult<bool> {
        self.origin_transition(
            key,
            instance_id,
            &[NotificationStatus::Updated],
            NotificationStatus::Update,
        )
        .await
    }

    /// How far the upload of an own object got: its instance and the offset after the last
    /// accepted part. Persisted, so an upload interrupted by a restart continues there.
    pub async fn origin_upload_progress(&self, key: &ObjectKey) -> EngineResult<Option<(i64, u64)>> {
        Ok(self.0.store.sent_progress(key).await?)
    }

    /// Records (or, with `None`, forgets) how far the upload of an own object got.
    pub async fn origin_record_upload_progress(
        &self,
        key: &ObjectKey,
        progress: Option<(i64, u64)>,
    ) -> EngineResult<()> {
        Ok(self.0.store.set_sent_progress(key, progress).await?)
    }

    /// True while the record of `instance_id` is still `updated` (the upload is wanted).
    pub async fn origin_upload_wanted(&self, key: &ObjectKey, instance_id: i64) -> EngineResult<bool> {
        let record = self.0.store.notification(key, &self.own_remote()).await?;
        Ok(record.is_some_and(|r| r.instance_id == instance_id && r.status == NotificationStatus::Updated))
    }

    /// Where the data of `instance_id` of an own object is read from; `None` when the object
    /// changed or has no data to upload.
    pub async fn origin_upload_source(&self, key: &ObjectKey, instance_id: i64) -> EngineResult<Option<UploadSource>> {
        let Some(object) = self.0.store.object(key).await? else {
            return Ok(None);
        };
        if !object.is_sender_copy() || object.meta.instance_id != instance_id || !moves_data(&object.meta) {
            return Ok(None);
        }
        let Some(file) = self.data_file(&object) else {
            return Ok(None);
        };
        Ok(Some(UploadSource {
            file,
            total: u64::try_from(object.meta.object_size).unwrap_or(0),
            chunk_size: u64::try_from(object.meta.chunk_size).unwrap_or(0),
            data_id: object.meta.data_id,
        }))
    }

    /// The CSS acknowledged the `delete` (`204`): the ESS origin removes the object and its
    /// records at once (§5.4 "ackDelete"; a later `deleted` finds nothing and is simply
    /// acknowledged).
    pub async fn origin_delete_acked(&self, key: &ObjectKey, instance_id: i64) -> EngineResult<bool> {
        let removed = self
            .origin_change(key, instance_id, |object, record| {
                let _ = record.filter(|r| r.status == NotificationStatus::Delete)?;
                (object.status == ObjectStatus::ObjDeleted)
                    .then(|| (None, vec![StoreOp::DeleteNotificationsOf(key.clone())]))
            })
            .await?;
        if let Some(blob) = removed.as_ref().and_then(|o| o.blob.clone()) {
            self.0.blobs.remove(&blob).await;
        }
        Ok(removed.is_some())
    }

    fn own_key(&self, meta: &MetaData) -> ObjectKey {
        ObjectKey::new(self.org_for(None), &meta.object_type, &meta.object_id)
    }

    /// Poll element `received` for an own object (§5.4 "received", origin): a record of that
    /// instance in `update`, `updated` or `data` becomes `receivedByDest`. The caller
    /// acknowledges (`ackreceived`) in every case.
    pub async fn origin_received(&self, meta: &MetaData) -> EngineResult<bool> {
        let key = self.own_key(meta);
        self.origin_transition(
            &key,
            meta.instance_id,
            &[
                NotificationStatus::Update,
                NotificationStatus::Updated,
                NotificationStatus::Data,
            ],
            NotificationStatus::ReceivedByDest,
        )
        .await
    }

    /// Poll element `consumed` for an own object (§5.4 "consumed", origin on an ESS): with a
    /// record of that instance in `update`, `updated`, `data` or `receivedByDest`, the object
    /// becomes `consumedByDest` without data and its records go; then consumed objects beyond
    /// `kept` are pruned. The caller acknowledges (`ackconsumed`) in every case.
    pub async fn origin_consumed(&self, meta: &MetaData, kept: usize) -> EngineResult<bool> {
        let key = self.own_key(meta);
        let before = self
            .origin_change(&key, meta.instance_id, |object, record| {
                let _ = record.filter(|r| {
                    matches!(
                        r.status,
                        NotificationStatus::Update
                            | NotificationStatus::Updated
                            | NotificationStatus::Data
                            | NotificationStatus::ReceivedByDest
                    )
                })?;
                let mut consumed = object.clone();
                consumed.status = ObjectStatus::ConsumedByDest;
                consumed.blob = None;
                Some((Some(consumed), vec![StoreOp::DeleteNotificationsOf(key.clone())]))
            })
            .await?;
        let Some(before) = before else {
            return Ok(false);
        };
        if let Some(blob) = before.blob {
            self.0.blobs.remove(&blob).await;
        }
        self.prune_consumed(kept).await?;
        Ok(true)
    }

    /// Removes the oldest `consumedByDest` objects beyond `ESSConsumedObjectsKept`.
    pub async fn prune_consumed(&self, kept: usize) -> EngineResult<usize> {
        let org = self.org_for(None).to_string();
        let consumed: Vec<ObjectRecord> = self
            .0
            .store
            .objects_of_org(&org)
            .await?
            .into_iter()
            .filter(|o| o.is_sender_copy() && o.status == ObjectStatus::ConsumedByDest)
            .collect();
        let mut removed = 0;
        for object in to_prune(consumed, kept) {
            let ops = vec![
                StoreOp::DeleteObject {
                    key: object.key(),
                    revision: object.revision,
                },
                StoreOp::DeleteNotificationsOf(object.key()),
            ];
            match self.0.store.apply(ops).await {
                Ok(()) => removed += 1,
                Err(StoreError::Conflict) => {}
                Err(e) => return Err(e.into()),
            }
        }
        if removed > 0 {
            tracing::info!(removed, kept, "ESS: pruned objects consumed by the CSS");
        }
        Ok(removed)
    }

    /// Poll element `deleted` for an own object (§5.4 "deleted", origin): the record of that
    /// instance in `delete`/`ackDelete` goes (with the object, if it is still waiting in
    /// `objdeleted`). The caller acknowledges (`ackDeleted`) in every case.
    pub async fn origin_deleted(&self, meta: &MetaData) -> EngineResult<bool> {
        let key = self.own_key(meta);
        let own = self.own_remote();
        let removed = self
            .origin_change(&key, meta.instance_id, |object, record| {
                let _ = record
                    .filter(|r| matches!(r.status, NotificationStatus::Delete | NotificationStatus::AckDelete))?;
                (object.status == ObjectStatus::ObjDeleted)
                    .then(|| (None, vec![StoreOp::DeleteNotificationsOf(key.clone())]))
            })
            .await?;
        if removed.is_some() {
            return Ok(true);
        }
        // The object is gone already: drop a leftover record of that instance.
        let record = self.0.store.notification(&key, &own).await?;
        if let Some(record) = record.filter(|r| {
            r.instance_id == meta.instance_id
                && matches!(r.status, NotificationStatus::Delete | NotificationStatus::AckDelete)
        }) {
            if self.0.store.object(&key).await?.is_none() {
                self.0
                    .store
                    .apply(vec![StoreOp::DeleteNotification {
                        key: record.key,
                        remote: record.remote,
                    }])
                    .await?;
                return Ok(true);
            }
        }
        Ok(false)
    }
}

#[cfg(test)]
mod tests;
