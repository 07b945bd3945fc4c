//! Object data: whole and chunked uploads, full and ranged downloads (spec: rest-api.md §4.8).
//! Data is streamed both ways; an upload becomes visible only once it is complete and durable.

use super::data_stream::{Admission, DataStream};
use super::objects::Change;
use super::verify::{running_hash, verify_stored};
use super::{DataFileError, EngineError, EngineResult, Node, UploadGuard};
use crate::auth::{access, Identity};
use crate::model::{ObjectKey, ObjectRecord, ObjectStatus};
use crate::store::blobs::RunningHash;
use crate::store::StoreError;
use bytes::Bytes;
use futures_util::Stream;

/// The part `start..=end` of `total` bytes that a chunk of an upload carries.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ContentRange {
    pub start: u64,
    pub end: u64,
    pub total: u64,
}

impl ContentRange {
    /// A part that lies within its total: `start <= end`, `start` below `total` (an empty
    /// object's single part excepted).
    pub fn checked(start: u64, end: u64, total: u64) -> Result<Self, String> {
        if start > end {
            return Err(format!("start {start} is after end {end}"));
        }
        if start >= total.max(1) && total > 0 {
            return Err(format!("start {start} is not below the total size {total}"));
        }
        Ok(Self { start, end, total })
    }

    /// How many bytes the part spans. Saturates: `bytes 0-18446744073709551615/...` spans
    /// one byte more than a `u64` holds, and `end - start + 1` would overflow.
    pub fn byte_count(&self) -> u64 {
        (self.end - self.start).saturating_add(1)
    }
}

/// The bytes a download asks for: `start..=end`, from `start` on, or the last `n`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RangeRequest {
    FromTo(u64, u64),
    From(u64),
    Suffix(u64),
}

impl RangeRequest {
    /// `start..=end`, refused when `start` is after `end`.
    pub fn from_to(start: u64, end: u64) -> Result<Self, String> {
        if start > end {
            return Err(format!("range start {start} is after its end {end}"));
        }
        Ok(Self::FromTo(start, end))
    }

    /// The inclusive byte span within `size` bytes, or `None` when nothing of it exists.
    fn resolve(self, size: u64) -> Option<(u64, u64)> {
        let (start, end) = match self {
            Self::FromTo(start, end) => (start, end.min(size.checked_sub(1)?)),
            Self::From(start) => (start, size.checked_sub(1)?),
            Self::Suffix(0) => return None,
            Self::Suffix(len) => (size.saturating_sub(len), size.checked_sub(1)?),
        };
        (start < size).then_some((start, end))
    }
}

/// The part of the data a download returns.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DataRange {
    pub start: u64,
    pub len: u64,
    pub size: u64,
    /// True for a 206 answer with `Content-Range`.
    pub partial: bool,
}

/// A complete data file produced by [`Node::store_bytes`], not yet attached to its object.
pub(super) struct StoredData<'a> {
    pub instance_id: i64,
    pub name: String,
    pub len: u64,
    pub first_chunk_size: Option<u64>,
    /// The upload session it was assembled from, if any: the session ends with the attach,
    /// and its partial file is removed after that commit.
    pub session: Option<i64>,
    /// The hash given to [`Node::store_bytes`], fed with the whole data as it was written;
    /// `None` when the data came in chunks.
    pub hash: Option<RunningHash>,
    /// Keeps other uploads of the object out until the data is attached.
    _guard: UploadGuard<'a>,
}

/// How a ranged read waits for one of the limited slots of concurrent ranged downloads
/// (`HTTPCSSObjDownloadConcurrencyMultiplier`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RangedRead {
    /// A request of an application or of an edge node over HTTP: waits up to
    /// [`RANGED_SLOT_WAIT`] for a slot, then is refused (`Busy`, the original's 429); the
    /// caller asks again.
    Limited,
    /// A chunk the CSS publishes to a node over MQTT: the node takes a refusal for "the
    /// object is gone", so it waits for a slot instead of being refused.
    Queued,
}

/// A range to read that holds a slot of the ranged downloads ([`Node::admit`]).
pub(super) struct AdmittedRange {
    range: RangeRequest,
    permit: tokio::sync::OwnedSemaphorePermit,
}

/// How long a ranged download over HTTP waits for a slot before it is refused as busy.
/// The original refuses at once. But a slot frees as soon as another node's chunk has been
/// sent, and nodes refused at once ask again at whatever moment their own pause ends: with
/// thousands asking every few hundred milliseconds, answering refusals took the CPUs and
/// slots went to whoever asked as one freed. Measured with 3,000 simulated nodes fetching a
/// 16 MiB object at once on a busy 2-CPU machine: refused at once, none had it after a
/// minute; with this wait, all had it within 52 s, served in the order they asked. 20 real
/// ESS fetching a 1 GiB object were refused about 4,000 times, now not at all. A waiting
/// request holds neither a buffer nor the file, about what the node's held long poll costs
/// when it has nothing to fetch; the wait is far below the nodes' data timeouts
/// (`HTTPESSObjClientTimeout`, 600 s by default).
pub const RANGED_SLOT_WAIT: std::time::Duration = std::time::Duration::from_secs(1);

impl Node {
    /// `PUT {obj}/data`: stores the body as the object's data, whole or as one chunk.
    pub async fn put_data<S, E>(
        &self,
        identity: &Identity,
        key: &ObjectKey,
        content_range: Option<ContentRange>,
        body: S,
    ) -> EngineResult<()>
    where
        S: Stream<Item = Result<Bytes, E>> + Unpin + Send,
        E: std::fmt::Display,
    {
        if identity.is_shut_out() {
            return Err(EngineError::Forbidden);
        }
        let record = self.0.store.object(key).await?.ok_or(EngineError::NotFound)?;
        let grants = self.grants_for(identity, &key.org, &record.meta).await?;
        self.check_data_writable(identity, key, &record, &grants)?;
        let hash = running_hash(&record.meta);
        let Some(mut stored) = self.store_bytes(key, content_range, body, hash).await? else {
            return Ok(());
        };
        self.verify_or_reject(key, &record, &stored.name, stored.hash.take())
            .await?;
        let upload_chunk_size = stored.first_chunk_size;
        self.attach_data(
            key,
            stored.instance_id,
            stored.name.clone(),
            stored.len,
            upload_chunk_size,
            stored.session.is_some(),
        )
        .await?;
        if let Some(session) = stored.session {
            self.0.blobs.remove_partial(session).await;
        }
        Ok(())
    }

    fn check_data_writable(
        &self,
        identity: &Identity,
        key: &ObjectKey,
        record: &ObjectRecord,
        grants: &access::Grants,
    ) -> EngineResult<()> {
        let role = self.role();
        let allowed = access::may_change_stored(role, identity, &key.org, &record.meta, grants);
        if !allowed {
            return Err(EngineError::Forbidden);
        }
        if !record.is_sender_copy() {
            return Err(EngineError::Invalid("Can't update data of the receiving side".into()));
        }
        if record.meta.no_data {
            return Err(EngineError::Invalid(
                "Can't update data, the NoData flag is set to true".into(),
            ));
        }
        Ok(())
    }

    /// Writes a whole body, or one chunk of a chunked upload, for `key`. Returns the data file
    /// once the object's data is complete (always for a whole body; for chunks when every
    /// byte has arrived, to exactly one of several concurrent final chunks). A whole body is
    /// fed to `hash` as it is written; chunks may come in any order and over several
    /// requests, so their data is left to be hashed from its file.
    pub(super) async fn store_bytes<S, E>(
        &self,
        key: &ObjectKey,
        content_range: Option<ContentRange>,
        body: S,
        hash: Option<RunningHash>,
    ) -> EngineResult<Option<StoredData<'_>>>
    where
        S: Stream<Item = Result<Bytes, E>> + Unpin + Send,
        E: std::fmt::Display,
    {
        let _receiving = self.receiving();
        let Some(range) = content_range else {
            let guard = UploadGuard::acquire(&self.0.uploads_in_flight, key)?;
            let instance_id = self.0.clock.next();
            let name = self.blob_name(instance_id);
            let limit = self.object_size_limit();
            let written = self
                .0
                .blobs
                .write_whole(&name, body, limit, hash)
                .await
                .map_err(|e| match e {
                    crate::store::blobs::BlobError::TooLong(_) => too_large(limit),
                    other => other.into(),
                })?;
            return Ok(Some(StoredData {
                instance_id,
                name,
                len: written.len,
                first_chunk_size: None,
                session: None,
                hash: written.hash,
                _guard: guard,
            }));
        };
        if range.total > self.object_size_limit() {
            return Err(too_large(self.object_size_limit()));
        }
        let session = self.0.store.upload_session(key, range.total).await?;
        let written = self
            .0
            .blobs
            .write_chunk(session.id, range.total, range.start, body, None)
            .await
            .map_err(|e| match e {
                crate::store::blobs::BlobError::TooLong(_) => EngineError::Invalid(format!(
                    "Failed to parse Content-Range header, Error: the chunk at {} runs past the total size {}",
                    range.start, range.total
                )),
                other => other.into(),
            })?;
        let session = match self.0.store.record_chunk(session.id, range.start, written.len).await {
            Ok(session) => session,
            // A concurrent chunk completed the upload and ended the session.
            Err(StoreError::NotFound) => return Ok(None),
            Err(e) => return Err(e.into()),
        };
        if !session.is_complete() {
            return Ok(None);
        }
        let Ok(guard) = UploadGuard::acquire(&self.0.uploads_in_flight, key) else {
            return Ok(None);
        };
        let instance_id = self.0.clock.next();
        let name = self.blob_name(instance_id);
        self.0.blobs.promote_partial(session.id, &name, session.total).await?;
        Ok(Some(StoredData {
            instance_id,
            name,
            len: session.total,
            first_chunk_size: session.first_chunk_size,
            session: Some(session.id),
            hash: None,
            _guard: guard,
        }))
    }

    /// Largest object data this node accepts (`MaxObjectSize`).
    pub(super) fn object_size_limit(&self) -> u64 {
        self.0.settings.max_object_size.unwrap_or(u64::MAX)
    }

    /// Checks the data file (or the `hash` taken while it was written) against the object's
    /// signature fields, when it has them. On a mismatch the data is discarded and the object
    /// kept as `verificationFailed`; the client gets a 400 with the reason (the original
    /// answers 500).
    async fn verify_or_reject(
        &self,
        key: &ObjectKey,
        record: &ObjectRecord,
        name: &str,
        hash: Option<RunningHash>,
    ) -> EngineResult<()> {
        if !record.meta.needs_verification() {
            return Ok(());
        }
        let Err(failure) = verify_stored(&record.meta, &self.0.blobs, name, hash).await else {
            return Ok(());
        };
        self.0.blobs.remove(name).await;
        let previous = self
            .change_object(key, |mut current| {
                current.status = ObjectStatus::VerificationFailed;
                current.blob = None;
                current.meta.object_size = 0;
                Ok(Change::Write(Box::new(current)))
            })
            .await?;
        if let Some(old) = previous.and_then(|p| p.blob) {
            self.0.blobs.remove(&old).await;
        }
        Err(EngineError::Invalid(format!(
            "Failed to verify and store data, Error: {failure}"
        )))
    }

    /// Makes a durable data file the object's data, replacing any previous one.
    async fn attach_data(
        &self,
        key: &ObjectKey,
        instance_id: i64,
        name: String,
        len: u64,
        upload_chunk_size: Option<u64>,
        ends_upload: bool,
    ) -> EngineResult<()> {
        let attached = name.clone();
        let result = self
            .change_object(key, move |mut record| {
                if !record.is_sender_copy() || record.meta.no_data {
                    return Err(EngineError::Invalid(
                        "The object changed while its data was uploaded".into(),
                    ));
                }
                record.blob = Some(attached.clone());
                record.meta.object_size = len as i64;
                record.meta.instance_id = instance_id;
                record.meta.data_id = instance_id;
                record.meta.source_data_uri.clear();
                record.meta.upload_chunk_size = upload_chunk_size.map_or(0, |s| s as i64);
                record.meta.deleted = false;
                record.status = ObjectStatus::Ready;
                record.remaining_consumers = record.meta.consumers;
                record.remaining_receivers = record.meta.consumers;
                Ok(if ends_upload {
                    Change::WriteEndingUpload(Box::new(record))
                } else {
                    Change::Write(Box::new(record))
                })
            })
            .await;
        match result {
            Ok(previous) => {
                if let Some(old) = previous.and_then(|p| p.blob).filter(|old| *old != name) {
                    self.0.blobs.remove(&old).await;
                }
                Ok(())
            }
            Err(e) => {
                self.0.blobs.remove(&name).await;
                Err(e)
            }
        }
    }

    /// `GET {obj}/data`: opens the data for streaming, whole or the requested range.
    pub async fn get_data(
        &self,
        identity: &Identity,
        key: &ObjectKey,
        range: Option<RangeRequest>,
    ) -> EngineResult<DataStream> {
        let record = match self.readable_object(identity, key).await {
            Err(EngineError::Forbidden) => return Err(EngineError::DataForbidden),
            other => other?.ok_or(EngineError::NotFound)?,
        };
        let range = self.admit(range, RangedRead::Limited).await?;
        self.open_data(&record, range).await
    }

    /// Waits for a free data stream slot.
    async fn stream_slot(&self) -> EngineResult<tokio::sync::OwnedSemaphorePermit> {
        self.0
            .stream_slots
            .clone()
            .acquire_owned()
            .await
            .map_err(|_| EngineError::Busy)
    }

    /// Takes a slot of the ranged downloads for a read of `range` (whole data needs none),
    /// before anything is read for it: reads waiting for a slot hold no record and no open
    /// file, so however many nodes ask at once, the files open and the data being read are
    /// bounded by the slots.
    pub(super) async fn admit(
        &self,
        range: Option<RangeRequest>,
        admission: RangedRead,
    ) -> EngineResult<Option<AdmittedRange>> {
        let Some(range) = range else {
            return Ok(None);
        };
        let permit = self.ranged_slot(admission).await?;
        Ok(Some(AdmittedRange { range, permit }))
    }

    /// Opens the data of a record the caller was allowed to read, whole or the admitted
    /// range of it, once a data stream slot is free.
    pub(super) async fn open_data(
        &self,
        record: &ObjectRecord,
        range: Option<AdmittedRange>,
    ) -> EngineResult<DataStream> {
        let data_file = self.data_file(record).ok_or(EngineError::NotFound)?;
        // Taken before the file is opened, for the same reason as the ranged slots.
        let slot = self.stream_slot().await?;
        let (source, size) = self.open_data_file(&data_file).await.map_err(|e| match e {
            DataFileError::Missing => EngineError::NotFound,
            // A data URI file that left the allowed directories or changed after the PUT.
            DataFileError::Refused(reason) => EngineError::Conflict(reason),
            DataFileError::Io(e) => e.into(),
        })?;
        let (range, ranged) = match range {
            Some(AdmittedRange { range, permit }) => (Some(range), Some(permit)),
            None => (None, None),
        };
        let admission = Admission {
            _ranged: ranged,
            _slot: slot,
        };
        let Some(range) = range else {
            return Ok(DataStream {
                source,
                range: DataRange {
                    start: 0,
                    len: size,
                    size,
                    partial: false,
                },
                admission,
            });
        };
        let (start, end) = range.resolve(size).ok_or(EngineError::RangeNotSatisfiable(size))?;
        let len = end - start + 1;
        let partial = !(start == 0 && len == size);
        Ok(DataStream {
            source,
            range: DataRange {
                start,
                len,
                size,
                partial,
            },
            admission,
        })
    }

    /// One of the limited ranged-download slots, taken in the order the requests came.
    async fn ranged_slot(&self, admission: RangedRead) -> EngineResult<tokio::sync::OwnedSemaphorePermit> {
        let slots = self.0.ranged_downloads.clone();
        let permit = match admission {
            RangedRead::Limited => tokio::time::timeout(RANGED_SLOT_WAIT, slots.acquire_owned())
                .await
                .map_err(|_| EngineError::Busy)?,
            RangedRead::Queued => slots.acquire_owned().await,
        };
        permit.map_err(|_| EngineError::Busy)
    }
}

/// The refusal of data over `MaxObjectSize` (413).
pub(super) fn too_large(limit: u64) -> EngineError {
    EngineError::TooLarge(format!(
        "The object data is larger than the {limit} bytes this node accepts (MaxObjectSize)"
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn upload_parts_lie_within_their_total() {
        assert_eq!(
            ContentRange::checked(0, 9, 20),
            Ok(ContentRange {
                start: 0,
                end: 9,
                total: 20
            })
        );
        assert!(ContentRange::checked(9, 0, 20).is_err());
        assert!(ContentRange::checked(20, 25, 20).is_err());
        assert!(ContentRange::checked(0, 0, 0).is_ok());
    }

    #[test]
    fn ranges_resolve_within_the_data() {
        assert_eq!(RangeRequest::FromTo(0, 9).resolve(100), Some((0, 9)));
        assert_eq!(RangeRequest::FromTo(90, 200).resolve(100), Some((90, 99)));
        assert_eq!(RangeRequest::From(90).resolve(100), Some((90, 99)));
        assert_eq!(RangeRequest::Suffix(10).resolve(100), Some((90, 99)));
        assert_eq!(RangeRequest::FromTo(100, 200).resolve(100), None);
        assert_eq!(RangeRequest::FromTo(0, 0).resolve(0), None);
        assert_eq!(RangeRequest::Suffix(0).resolve(100), None);
        assert!(RangeRequest::from_to(9, 1).is_err());
    }
}
