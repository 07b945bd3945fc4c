//! Creating, reading, updating and deleting objects (spec: rest-api.md §4.5-4.7, §4.9-4.10,
//! metadata.md §3-4, §8.1).

use super::{EngineError, EngineResult, Node, WRITE_ATTEMPTS};
use crate::auth::{access, Identity, IdentityKind};
use crate::clock::now_nanos;
use crate::model::json::{from_lenient, Nested, Shape};
use crate::model::metadata::{METADATA_FIELDS, POLICY_FIELDS, PROPERTY_FIELDS, SERVICE_FIELDS};
use crate::model::validate::{validate_put, PutContext};
use crate::model::{DeliveryStatus, DestinationStatus, MetaData, ObjectKey, ObjectRecord, ObjectStatus, Role};
use crate::store::{Expect, StoreError, StoreOp};
use base64::Engine as _;
use serde::Deserialize;
use std::sync::Arc;

static PROPERTY_SHAPE: Shape = Shape {
    fields: PROPERTY_FIELDS,
    nested: &[],
};
static SERVICE_SHAPE: Shape = Shape {
    fields: SERVICE_FIELDS,
    nested: &[],
};
static POLICY_SHAPE: Shape = Shape {
    fields: POLICY_FIELDS,
    nested: &[
        ("properties", Nested::ArrayOf(&PROPERTY_SHAPE)),
        ("services", Nested::ArrayOf(&SERVICE_SHAPE)),
    ],
};
/// Shape of MetaData for lenient decoding.
pub(crate) static METADATA_SHAPE: Shape = Shape {
    fields: METADATA_FIELDS,
    nested: &[("destinationPolicy", Nested::Object(&POLICY_SHAPE))],
};
static PUT_BODY_SHAPE: Shape = Shape {
    fields: &["meta", "data"],
    nested: &[("meta", Nested::Object(&METADATA_SHAPE))],
};

/// Body of `PUT {obj}`.
#[derive(Debug, Default, Deserialize)]
#[serde(default)]
struct PutObjectBody {
    meta: MetaData,
    data: Option<String>,
}

/// Reads the body of `PUT {obj}` with the original's lenient key rules; a body that is not
/// such JSON (or has a field of the wrong type) is a 400 naming the problem.
fn read_put_body(body: &[u8]) -> EngineResult<PutObjectBody> {
    from_lenient(body, &PUT_BODY_SHAPE)
        .map_err(|e| EngineError::Invalid(format!("Invalid JSON for update. Error: {e}")))
}

/// The inline `data` of a `PUT {obj}` body, base64-decoded; empty counts as none.
fn inline_data(encoded: Option<&str>) -> EngineResult<Option<Vec<u8>>> {
    match encoded {
        Some(encoded) if !encoded.is_empty() => {
            Some(base64::engine::general_purpose::STANDARD.decode(encoded).map_err(|e| {
                EngineError::Invalid(format!("Invalid JSON for update. Error: data is not valid base64: {e}"))
            }))
            .transpose()
        }
        _ => Ok(None),
    }
}

/// What a read-decide-write step wants done with the record it was given.
pub(super) enum Change {
    Write(Box<ObjectRecord>),
    /// Write, and end the chunked upload of the object in the same transaction.
    WriteEndingUpload(Box<ObjectRecord>),
    Delete,
    /// Leave the record as it is.
    Keep,
}

/// How an own object leaves: at once when no node was sent anything about it, otherwise
/// marked deleted (data dropped) so that the deletion handshake tells the nodes.
pub(super) fn retirement(mut record: ObjectRecord, sent: bool) -> Change {
    if !sent {
        return Change::Delete;
    }
    record.status = ObjectStatus::ObjDeleted;
    record.meta.deleted = true;
    record.blob = None;
    Change::Write(Box::new(record))
}

/// Maximum consumers value, standing for "unlimited" (`consumers: -1`).
const UNLIMITED_CONSUMERS: i32 = i32::MAX;

impl Node {
    /// `PUT {obj}`: creates or replaces an object, with optional inline data.
    pub async fn put_object(&self, identity: &Identity, key: &ObjectKey, body: &[u8]) -> EngineResult<()> {
        let request = read_put_body(body)?;
        self.write_object(identity, key, request.meta, request.data.as_deref(), None)
            .await
    }

    /// Creates or replaces an object with its data given as base64 (`encoded_inline`), as
    /// a data file already written (`stored`, which is removed when the write fails), or
    /// none.
    pub(super) async fn write_object(
        &self,
        identity: &Identity,
        key: &ObjectKey,
        meta: MetaData,
        encoded_inline: Option<&str>,
        stored: Option<(String, u64)>,
    ) -> EngineResult<()> {
        let mut stored_blob: Option<(String, u64)> = stored;
        let grants = self.grants_for(identity, &key.org, &meta).await?;
        if !access::may_write(self.role(), identity, &key.org, &meta, &grants) {
            self.discard_blob(stored_blob.take()).await;
            return Err(EngineError::Forbidden);
        }
        let inline = match inline_data(encoded_inline) {
            Ok(inline) => inline,
            Err(e) => {
                self.discard_blob(stored_blob.take()).await;
                return Err(e);
            }
        };
        let has_data = inline.is_some() || stored_blob.is_some();
        if inline
            .as_ref()
            .is_some_and(|bytes| bytes.len() as u64 > self.object_size_limit())
        {
            return Err(super::data::too_large(self.object_size_limit()));
        }
        if self.role() == Role::Css {
            if let Err(e) = self.check_listed_destinations(&key.org, &meta).await {
                self.discard_blob(stored_blob.take()).await;
                return Err(e);
            }
        }
        for _ in 0..WRITE_ATTEMPTS {
            let existing = self.0.store.object(key).await?;
            // The caller must also be allowed to change what is stored now (a service only an
            // object whose stored policy admits it; a user what the old version addressed).
            if let Some(stored) = existing.as_ref() {
                let stored_grants = self.grants_for(identity, &key.org, &stored.meta).await?;
                if !access::may_change_stored(self.role(), identity, &key.org, &stored.meta, &stored_grants) {
                    self.discard_blob(stored_blob.take()).await;
                    return Err(EngineError::Forbidden);
                }
            }
            if let Err(e) = self.validate(&meta, key, has_data, existing.as_ref()) {
                self.discard_blob(stored_blob.take()).await;
                return Err(EngineError::Invalid(e.0));
            }
            let instance_id = self.0.clock.next();
            if let Err(refusal) = self.check_put_data_uris(&meta, instance_id) {
                self.discard_blob(stored_blob.take()).await;
                return Err(EngineError::Invalid(refusal));
            }
            if let (Some(bytes), None) = (&inline, &stored_blob) {
                let name = self.blob_name(instance_id);
                let body = futures_util::stream::iter([Ok::<_, std::io::Error>(bytes::Bytes::copy_from_slice(bytes))]);
                // Inline data is small: verified from its file (`verify_inline`).
                let len = self.0.blobs.write_whole(&name, body, u64::MAX, None).await?.len;
                stored_blob = Some((name, len));
            }
            let mut record = self.normalize(
                identity,
                key,
                meta.clone(),
                existing.as_ref(),
                instance_id,
                stored_blob.clone(),
            );
            let verification = self.verify_inline(&record).await;
            if verification.is_err() {
                record.status = ObjectStatus::VerificationFailed;
                record.blob = None;
                record.meta.object_size = 0;
            }
            let expect = existing
                .as_ref()
                .map_or(Expect::Absent, |e| Expect::Revision(e.revision));
            let drop_upload = !record.meta.meta_only;
            let mut ops = vec![StoreOp::WriteObject {
                record: Box::new(record.clone()),
                expect,
                drop_upload,
            }];
            ops.extend(self.follow_up_ops(existing.as_ref(), &record).await?);
            match self.commit(&key.clone(), ops).await {
                Ok(_) => {
                    if let Some(old) = existing
                        .and_then(|e| e.blob)
                        .filter(|old| Some(old) != record.blob.as_ref())
                    {
                        self.0.blobs.remove(&old).await;
                    }
                    if let Err(failure) = verification {
                        self.discard_blob(stored_blob).await;
                        return Err(EngineError::Invalid(format!(
                            "Failed to verify and store data, Error: {failure}"
                        )));
                    }
                    return Ok(());
                }
                Err(StoreError::Conflict) => continue,
                Err(e) => {
                    self.discard_blob(stored_blob).await;
                    return Err(e.into());
                }
            }
        }
        self.discard_blob(stored_blob).await;
        Err(EngineError::Conflict(format!(
            "{key} is being changed by other requests; retry"
        )))
    }

    fn validate(
        &self,
        meta: &MetaData,
        key: &ObjectKey,
        has_inline_data: bool,
        existing: Option<&ObjectRecord>,
    ) -> Result<(), crate::model::validate::ValidationError> {
        let file_exists = |path: &std::path::Path| path.is_file();
        let context = PutContext {
            role: self.role(),
            path_org: &key.org,
            path_type: &key.object_type,
            path_id: &key.object_id,
            has_inline_data,
            existing,
            now: time::OffsetDateTime::now_utc(),
            file_exists: &file_exists,
        };
        validate_put(meta, &context)
    }

    /// Verifies inline data against the signature fields, when both are present.
    async fn verify_inline(&self, record: &ObjectRecord) -> Result<(), super::verify::VerifyError> {
        match &record.blob {
            Some(name) if record.meta.needs_verification() && record.meta.data_id == record.meta.instance_id => {
                super::verify::verify_stored(&record.meta, &self.0.blobs, name, None).await
            }
            _ => Ok(()),
        }
    }

    async fn discard_blob(&self, blob: Option<(String, u64)>) {
        if let Some((name, _)) = blob {
            self.0.blobs.remove(&name).await;
        }
    }

    /// Applies metadata.md §4 to a validated request.
    fn normalize(
        &self,
        identity: &Identity,
        key: &ObjectKey,
        mut meta: MetaData,
        existing: Option<&ObjectRecord>,
        instance_id: i64,
        inline_blob: Option<(String, u64)>,
    ) -> ObjectRecord {
        let settings = &self.0.settings;
        meta.destination_org_id = key.org.clone();
        // The origin and owner are the node and the caller, never what the client claims.
        meta.origin_type = settings.dest_type.clone();
        meta.origin_id = settings.dest_id.clone();
        meta.owner_id = identity.owner_id();
        meta.consumers = match meta.consumers {
            0 => 1,
            -1 => UNLIMITED_CONSUMERS,
            n => n,
        };
        meta.chunk_size = settings.chunk_size;
        meta.instance_id = instance_id;
        meta.deleted = false;
        meta.data_id = 0;
        meta.object_size = 0;
        meta.upload_chunk_size = 0;
        if let Some(policy) = meta.destination_policy.as_mut() {
            policy.timestamp = now_nanos();
        }
        if meta.no_data {
            meta.link.clear();
            meta.source_data_uri.clear();
            meta.public_key.clear();
            meta.signature.clear();
        }
        let mut blob = None;
        let status;
        if let Some((name, len)) = inline_blob.filter(|_| !meta.no_data) {
            meta.object_size = len as i64;
            meta.data_id = instance_id;
            blob = Some(name);
            status = ObjectStatus::Ready;
        } else if let Some(stored) = existing.filter(|_| meta.meta_only) {
            let (old, old_blob, old_status) = (&stored.meta, stored.blob.clone(), stored.status);
            meta.data_id = old.data_id;
            meta.object_size = old.object_size;
            meta.chunk_size = old.chunk_size;
            meta.upload_chunk_size = old.upload_chunk_size;
            meta.hash_algorithm = old.hash_algorithm.clone();
            meta.public_key = old.public_key.clone();
            meta.signature = old.signature.clone();
            let had_data = old_blob.is_some() && old_status == ObjectStatus::Ready;
            blob = old_blob;
            status = if had_data || meta.no_data || !meta.link.is_empty() {
                ObjectStatus::Ready
            } else {
                ObjectStatus::NotReady
            };
        } else if meta.no_data || !meta.link.is_empty() {
            status = ObjectStatus::Ready;
        } else if !meta.source_data_uri.is_empty() {
            meta.object_size = i64::try_from(self.source_len(&meta.source_data_uri)).unwrap_or(i64::MAX);
            meta.data_id = instance_id;
            status = ObjectStatus::Ready;
        } else {
            status = ObjectStatus::NotReady;
        }
        ObjectRecord {
            remaining_consumers: meta.consumers,
            remaining_receivers: meta.consumers,
            meta,
            status,
            sender: true,
            policy_received: false,
            blob,
            revision: existing.map_or(0, |e| e.revision),
        }
    }

    /// Reads an object the caller may see; `None` when it does not exist and the caller could
    /// have seen it. Callers without read-all access get `Forbidden` for absent objects, so
    /// they cannot probe for names.
    pub(super) async fn readable_object(
        &self,
        identity: &Identity,
        key: &ObjectKey,
    ) -> EngineResult<Option<Arc<ObjectRecord>>> {
        if identity.is_shut_out() {
            return Err(EngineError::Forbidden);
        }
        let record = self.0.store.shared_object(key).await?;
        let grants = self.grants_for_type(identity, &key.org, &key.object_type).await?;
        let full = access::may_read_all(self.role(), identity, &key.org, &key.object_type, &grants)
            && !(self.role() == Role::Ess && identity.kind == IdentityKind::Service);
        match record {
            Some(record) if full || access::may_read(self.role(), identity, &key.org, &record.meta, &grants) => {
                Ok(Some(record))
            }
            None if full => Ok(None),
            _ => Err(EngineError::Forbidden),
        }
    }

    /// `GET {obj}`: the stored record, whose metadata is the answer.
    pub async fn get_object(&self, identity: &Identity, key: &ObjectKey) -> EngineResult<Arc<ObjectRecord>> {
        self.readable_object(identity, key).await?.ok_or(EngineError::NotFound)
    }

    /// `GET {obj}/status`.
    pub async fn object_status(&self, identity: &Identity, key: &ObjectKey) -> EngineResult<ObjectStatus> {
        self.readable_object(identity, key)
            .await?
            .map(|r| r.status)
            .ok_or(EngineError::NotFound)
    }

    /// `GET {obj}/destinations`: delivery state per destination (the ESS tracks none).
    pub async fn object_destinations(
        &self,
        identity: &Identity,
        key: &ObjectKey,
    ) -> EngineResult<Vec<DestinationStatus>> {
        self.readable_object(identity, key)
            .await?
            .ok_or(EngineError::NotFound)?;
        if self.role() == Role::Ess {
            return Err(EngineError::NotFound);
        }
        let statuses = self.0.store.destination_statuses(key).await?;
        if statuses.is_empty() {
            return Err(EngineError::NotFound);
        }
        Ok(statuses)
    }

    /// `DELETE {obj}`.
    pub async fn delete_object(&self, identity: &Identity, key: &ObjectKey) -> EngineResult<()> {
        if identity.is_shut_out() {
            return Err(EngineError::Forbidden);
        }
        let role = self.role();
        let stored = self.0.store.object(key).await?.ok_or(EngineError::NotFound)?;
        let grants = self.grants_for(identity, &key.org, &stored.meta).await?;
        let sent = self.was_sent(key).await?;
        let removed = self
            .change_object(key, move |record| {
                let allowed = access::may_change_stored(role, identity, &key.org, &record.meta, &grants);
                if !allowed {
                    return Err(EngineError::Forbidden);
                }
                if !record.is_sender_copy() {
                    return match role {
                        Role::Ess => Err(EngineError::Invalid(
                            "Can't delete object on the receiving side for ESS".into(),
                        )),
                        Role::Css => Ok(Change::Delete),
                    };
                }
                Ok(retirement(record, sent))
            })
            .await?;
        if let Some(blob) = removed.and_then(|r| r.blob) {
            self.0.blobs.remove(&blob).await;
        }
        Ok(())
    }

    /// True when a node was sent something about one of this node's objects, so that it
    /// must learn of the object's deletion.
    pub(super) async fn was_sent(&self, key: &ObjectKey) -> EngineResult<bool> {
        let css_sent = self
            .0
            .store
            .destination_statuses(key)
            .await?
            .iter()
            .any(|d| !matches!(d.status, DeliveryStatus::Pending | DeliveryStatus::Deleted));
        // ESS origin (engine/origin.rs): an object the CSS was sent goes through the handshake.
        Ok(css_sent || self.ess_sent_to_css(key).await?)
    }

    /// Read-decide-write on one object with the store's revision check, retried when another
    /// request changed the object in between. Returns the record as it was before the change
    /// (`None` when the decision was to keep it as it is).
    pub(super) async fn change_object<F>(&self, key: &ObjectKey, mut decide: F) -> EngineResult<Option<ObjectRecord>>
    where
        F: FnMut(ObjectRecord) -> EngineResult<Change>,
    {
        for _ in 0..WRITE_ATTEMPTS {
            let Some(current) = self.0.store.object(key).await? else {
                return Err(EngineError::NotFound);
            };
            let revision = current.revision;
            let ops = match decide(current.clone())? {
                Change::Write(record) => {
                    let mut ops = self.follow_up_ops(Some(&current), &record).await?;
                    ops.insert(0, record_op(*record, revision, false));
                    ops
                }
                Change::WriteEndingUpload(record) => {
                    let mut ops = self.follow_up_ops(Some(&current), &record).await?;
                    ops.insert(0, record_op(*record, revision, true));
                    ops
                }
                Change::Delete => vec![StoreOp::DeleteObject {
                    key: key.clone(),
                    revision,
                }],
                Change::Keep => return Ok(None),
            };
            let result = self.commit(key, ops).await;
            match result {
                Ok(()) => return Ok(Some(current)),
                Err(StoreError::Conflict) => continue,
                Err(e) => return Err(e.into()),
            }
        }
        Err(EngineError::Conflict(format!(
            "{key} is being changed by other requests; retry"
        )))
    }
}

fn record_op(record: ObjectRecord, revision: i64, drop_upload: bool) -> StoreOp {
    StoreOp::WriteObject {
        record: Box::new(record),
        expect: Expect::Revision(revision),
        drop_upload,
    }
}

impl Node {
    /// Applies an object change with what it owes other nodes, then wakes the long polls of
    /// the nodes that got new messages.
    pub(super) async fn commit(&self, key: &ObjectKey, ops: Vec<StoreOp>) -> Result<(), StoreError> {
        let wakes: Vec<StoreOp> = ops
            .iter()
            .filter(|op| matches!(op, StoreOp::PutNotification(_)))
            .cloned()
            .collect();
        // ESS origin (engine/origin.rs): own objects changed, the sync client's outbox looks.
        let origin_outbox = self.origin_outbox_touched(&ops);
        self.0.store.apply(ops).await?;
        self.wake_pollers_of(key, &wakes);
        if origin_outbox {
            self.signal_outbox();
        }
        Ok(())
    }
}

impl Node {
    /// Data file name for data stored by the change with this instance ID. Instance IDs are
    /// unique per process; when several processes share the data folder, the name also
    /// carries this process's number, which no other process ever gets, so names stay
    /// unique even if two processes' IDs met.
    pub(super) fn blob_name(&self, instance_id: i64) -> String {
        match self.0.settings.instance_slot {
            Some(process) => format!("{instance_id}-{process}.bin"),
            None => format!("{instance_id}.bin"),
        }
    }
}

#[cfg(test)]
mod props;
