//! The data download of a received copy (ESS side, spec: css-ess-protocol.md §5.4): into a
//! resumable partial file, then verified and completed in one batch with the `received`
//! record, or restarted when the partial file cannot be used. Signed data is hashed as its
//! chunks are written, so that verifying it needs no second pass over the file.

use super::data_files::writes_destination_file;
use super::verify::{running_hash, verify_stored};
use super::{EngineError, EngineResult, Node, WRITE_ATTEMPTS};
use crate::model::sync::NotificationStatus;
use crate::model::{MetaData, ObjectKey, ObjectStatus};
use crate::store::blobs::RunningHash;
use crate::store::{Expect, StoreError, StoreOp, UploadSession};
use bytes::Bytes;
use futures_util::Stream;

/// A download in progress: the metadata of the instance and its partial file.
pub struct Download {
    pub meta: MetaData,
    pub session: UploadSession,
    /// For signed data: the hash of the bytes this download wrote from the first byte on,
    /// with the offset it reached. Kept only while every chunk continues where the previous
    /// one ended; a download resumed from an earlier attempt has none, and its file is
    /// hashed once complete.
    hashed: Option<(RunningHash, u64)>,
    /// SHA-256 of the whole data, for a download filled from a previous version: checked
    /// before completion, since an unsigned object has no other hash.
    whole: Option<crate::delta::Digest>,
}

impl Download {
    /// Checks the completed data against `whole` (see [`Node::fill_from_base`]).
    pub(super) fn expect_whole(&mut self, whole: crate::delta::Digest) {
        self.whole = Some(whole);
    }
}

/// How completing a download ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Completion {
    /// The copy is `completelyReceived` and the `received` record written.
    Done,
    /// The object changed meanwhile (new instance, deleted): nothing to report.
    Stale,
    /// The data does not match the signature (copy `receiverVerificationFailed`, record
    /// `receiverError`).
    VerificationFailed(String),
    /// The data cannot be written to the copy's `destinationDataUri` file (record
    /// `receiverError`; the copy stays incomplete).
    DestinationRefused(String),
}

impl Node {
    /// The download of `instance_id` of a received copy, or `None` when there is nothing to
    /// download (the copy is gone, complete, or another instance).
    pub async fn begin_download(&self, key: &ObjectKey, instance_id: i64) -> EngineResult<Option<Download>> {
        let Some(local) = self.0.store.object(key).await? else {
            return Ok(None);
        };
        if local.is_sender_copy()
            || local.meta.instance_id != instance_id
            || local.status != ObjectStatus::PartiallyReceived
        {
            return Ok(None);
        }
        let session = self.session_of(key, &local.meta).await?;
        let hashed = if session.ranges.is_empty() {
            running_hash(&local.meta).map(|hash| (hash, 0))
        } else {
            None
        };
        Ok(Some(Download {
            meta: local.meta,
            session,
            hashed,
            whole: None,
        }))
    }

    /// Writes downloaded bytes at `offset` of a download's partial file; updates the
    /// download's session with the range recorded once the bytes are durable.
    pub async fn write_download<S, E>(&self, download: &mut Download, offset: u64, body: S) -> EngineResult<()>
    where
        S: Stream<Item = Result<Bytes, E>> + Unpin + Send,
        E: std::fmt::Display,
    {
        let _receiving = self.receiving();
        // Taken for the write: a write or record that fails leaves the hash unsure of what
        // the file holds, so it is not put back.
        let hash = match download.hashed.take() {
            Some((hash, end)) if end == offset => Some(hash),
            _ => None,
        };
        let session = &download.session;
        let written = self
            .0
            .blobs
            .write_chunk(session.id, session.total, offset, body, hash)
            .await?;
        download.session = self.0.store.record_chunk(session.id, offset, written.len).await?;
        download.hashed = written.hash.map(|hash| (hash, offset + written.len));
        Ok(())
    }

    /// Makes a fully downloaded partial file the copy's data: verifies it when the metadata
    /// is signed, marks the copy `completelyReceived`, records `received` and queues the webhook calls.
    pub async fn complete_download(&self, key: &ObjectKey, download: &mut Download) -> EngineResult<Completion> {
        let total = download.session.total;
        let hash = match download.hashed.take() {
            Some((hash, end)) if end == total => Some(hash),
            _ => None,
        };
        let meta = &download.meta;
        let name = self.blob_name(self.0.clock.next());
        if let Err(e) = self.0.blobs.promote_partial(download.session.id, &name, total).await {
            // The partial file is unusable (e.g. lost in a crash): start the download over.
            self.restart_download(key, meta.instance_id).await?;
            return Err(e.into());
        }
        if let Some(whole) = download.whole {
            let matches = self.matches_whole(&name, whole).await;
            if !matches.as_ref().is_ok_and(|m| *m) {
                self.0.blobs.remove(&name).await;
            }
            if !matches? {
                // A damaged previous version: the download starts over without it.
                self.release_delta_base(key).await;
                if self.restart_download(key, meta.instance_id).await? {
                    self.0.blobs.remove_partial(download.session.id).await;
                }
                return Err(EngineError::Io(std::io::Error::new(
                    std::io::ErrorKind::InvalidData,
                    "the data rebuilt from the previous version does not match its hash; fetching all of it",
                )));
            }
        }
        let settled = self.settle_download(key, meta, name, total, hash).await;
        // Kept until now so that a crash before the commit loses no downloaded byte; settled
        // either way, the download has no further use for it.
        if settled.is_ok() {
            self.0.blobs.remove_partial(download.session.id).await;
        }
        settled
    }

    /// True when the data `name` has the SHA-256 `whole` (data rebuilt from a previous
    /// version, whose object may have no hash of its own).
    async fn matches_whole(&self, name: &str, whole: crate::delta::Digest) -> EngineResult<bool> {
        use sha2::Digest as _;
        let digest = self.0.blobs.digest(name, Box::new(sha2::Sha256::new())).await?;
        Ok(digest.as_ref() == whole.as_slice())
    }

    /// Verifies the complete data file `name` of a download (from `hash` when the download
    /// hashed all of it), places it, and commits the copy.
    async fn settle_download(
        &self,
        key: &ObjectKey,
        meta: &MetaData,
        name: String,
        total: u64,
        hash: Option<RunningHash>,
    ) -> EngineResult<Completion> {
        if meta.needs_verification() {
            if let Err(failure) = verify_stored(meta, &self.0.blobs, &name, hash).await {
                self.0.blobs.remove(&name).await;
                self.receiver_error(key, meta.instance_id, Some(ObjectStatus::ReceiverVerificationFailed))
                    .await?;
                return Ok(Completion::VerificationFailed(failure.to_string()));
            }
        }
        // The verified data goes to the destination file instead of the store; the copy then
        // has no stored data and is read from that file.
        let to_destination = writes_destination_file(meta);
        if to_destination {
            let placed = self.place_destination_file(&meta.destination_data_uri, &name).await;
            if let Err(reason) = placed {
                self.receiver_error(key, meta.instance_id, None).await?;
                return Ok(Completion::DestinationRefused(reason));
            }
        }
        let stored = (!to_destination).then_some(name);
        let completed = self.commit_completion(key, meta, stored.clone(), total).await;
        if !matches!(completed, Ok(Completion::Done)) {
            self.discard_completed_data(meta, stored).await;
        }
        completed
    }

    /// Removes the data of a completion that was not recorded.
    async fn discard_completed_data(&self, meta: &MetaData, stored: Option<String>) {
        match stored {
            Some(name) => self.0.blobs.remove(&name).await,
            None => self.remove_destination_file(&meta.destination_data_uri).await,
        }
    }

    /// Marks a downloaded copy `completelyReceived` with its data (`stored` in the store, or
    /// in its destination file when `None`) and records `received`.
    async fn commit_completion(
        &self,
        key: &ObjectKey,
        meta: &MetaData,
        stored: Option<String>,
        total: u64,
    ) -> EngineResult<Completion> {
        for _ in 0..WRITE_ATTEMPTS {
            let local = self.0.store.object(key).await?;
            let Some(mut local) = local.filter(|l| {
                !l.is_sender_copy()
                    && l.meta.instance_id == meta.instance_id
                    && l.status == ObjectStatus::PartiallyReceived
            }) else {
                return Ok(Completion::Stale);
            };
            let revision = local.revision;
            local.blob = stored.clone();
            local.meta.object_size = i64::try_from(total).unwrap_or(i64::MAX);
            local.status = ObjectStatus::CompletelyReceived;
            let record = self.cloud_record(key, NotificationStatus::Received, &local.meta);
            let ops = vec![
                StoreOp::WriteObject {
                    record: Box::new(local),
                    expect: Expect::Revision(revision),
                    drop_upload: true,
                },
                StoreOp::PutNotification(record),
            ];
            match self.0.store.apply(ops).await {
                Ok(()) => {
                    self.call_webhooks(key).await;
                    return Ok(Completion::Done);
                }
                Err(StoreError::Conflict) => continue,
                Err(e) => return Err(e.into()),
            }
        }
        Err(EngineError::Conflict(format!("{key} is being changed concurrently")))
    }

    /// Gives up the partial file of a download that the disk cannot hold, so that it holds no
    /// space while the download waits for its retry, which starts from the first byte. The
    /// file goes only once its session is gone: a session must never claim bytes its file
    /// lost.
    pub async fn abandon_download(&self, key: &ObjectKey, instance_id: i64, session: i64) -> EngineResult<()> {
        if self.restart_download(key, instance_id).await? {
            self.0.blobs.remove_partial(session).await;
        }
        Ok(())
    }

    /// Drops the partial file's progress so the download starts again from the first byte;
    /// false when the copy is gone or another instance by now (nothing dropped).
    async fn restart_download(&self, key: &ObjectKey, instance_id: i64) -> EngineResult<bool> {
        for _ in 0..WRITE_ATTEMPTS {
            let Some(local) = self.0.store.object(key).await? else {
                return Ok(false);
            };
            if local.meta.instance_id != instance_id || local.is_sender_copy() {
                return Ok(false);
            }
            let revision = local.revision;
            let op = StoreOp::WriteObject {
                record: Box::new(local),
                expect: Expect::Revision(revision),
                drop_upload: true,
            };
            match self.0.store.apply(vec![op]).await {
                Ok(()) => return Ok(true),
                Err(StoreError::Conflict) => continue,
                Err(e) => return Err(e.into()),
            }
        }
        Err(EngineError::Conflict(format!("{key} is being changed concurrently")))
    }
}
