//! The ESS's own objects over HTTP (spec: css-ess-protocol.md §3.6, §3.7, §3.8 "Upload",
//! §6): the outbox sends `update` and `delete` for objects the ESS's applications created,
//! uploads their data (whole, or chunk by chunk with `Content-Range`, streamed from the data
//! file), and the poll's `received`, `consumed` and `deleted` elements about them are
//! handled and acknowledged. What the records become is decided in `engine::origin`.
//!
//! Timing: `update`/`delete` records are sent when due (at once after the application's
//! write, then every 6 x `ResendInterval` while the CSS ignores them); an upload that stopped
//! (transient failure, restart) is resumed by every outbox pass, subject to the per-object
//! exponential backoff. Within a process an upload resumes at the chunk where it stopped;
//! after a restart it starts over.

use super::ess_loop::{step_of, EssSync, Step};
use super::link::{DataPush, Reply};
use crate::engine::origin::{AfterUpdate, OriginMessage, UploadSource};
use crate::model::sync::{Action, NotificationStatus};
use crate::model::{MetaData, ObjectKey};

/// Data shorter than this is uploaded whole: a manifest would save little.
const MIN_DELTA_SIZE: u64 = 1 << 20;

/// The next part of an upload (pure; §3.8): the whole data when chunking is off or the
/// object fits one chunk, else the chunk at `offset`, `None` when everything was sent.
/// Returns `(start, end)` inclusive and whether it is a chunk (with `Content-Range`).
pub fn next_part(total: u64, chunk_size: u64, chunking: bool, offset: u64) -> Option<(u64, u64, bool)> {
    if !chunking || chunk_size == 0 || total <= chunk_size {
        return (offset == 0).then_some((0, total.saturating_sub(1), false));
    }
    if offset >= total {
        return None;
    }
    let start = offset / chunk_size * chunk_size;
    Some((start, (start + chunk_size).min(total) - 1, true))
}

impl EssSync {
    /// Forgets how far an upload got (it completed, or its instance is no longer wanted).
    async fn forget_upload(&self, key: &ObjectKey) {
        if let Err(e) = self.node.origin_record_upload_progress(key, None).await {
            tracing::warn!(%key, error = %e, "ESS: forgetting an upload's progress failed");
        }
    }

    /// Where the upload of `instance` stopped: the progress is persisted, so an upload
    /// interrupted by a restart of the ESS continues at the first unacknowledged chunk.
    async fn upload_offset(&self, key: &ObjectKey, instance: i64) -> u64 {
        match self.node.origin_upload_progress(key).await {
            Ok(Some((recorded, offset))) if recorded == instance => offset,
            _ => 0,
        }
    }

    /// One outbox pass over the ESS's own objects.
    pub(super) async fn origin_pass(&self) {
        match self.node.origin_reconcile().await {
            Ok(0) => {}
            Ok(written) => tracing::debug!(written, "ESS: own objects queued for the CSS"),
            Err(e) => tracing::error!(error = %e, "ESS: reconciling own objects failed"),
        }
        let owed = match self.node.origin_owed().await {
            Ok(owed) => owed,
            Err(e) => {
                tracing::error!(error = %e, "ESS: reading the outbox of own objects failed");
                return;
            }
        };
        for OriginMessage { record, object } in owed {
            let key = record.key.clone();
            if !self.due(&key) {
                continue;
            }
            let Some(_guard) = self.lock(&key) else {
                continue;
            };
            let step = match record.status {
                NotificationStatus::Update => self.send_update(&key, &object.meta).await,
                NotificationStatus::Updated => self.upload(&key, record.instance_id).await,
                NotificationStatus::Delete => self.send_delete(&key, &object.meta).await,
                _ => Step::Nothing,
            };
            self.note(&key, &step);
        }
    }

    /// `update` (§3.6): `204` -> record `updated` and upload; `409` -> ignored by the CSS,
    /// sent again after 6 x `ResendInterval`.
    async fn send_update(&self, key: &ObjectKey, meta: &MetaData) -> Step {
        let instance = meta.instance_id;
        let outcome = self.client.action_with_meta(key, meta, Action::Update).await;
        match outcome {
            Reply::Accepted => match self.node.origin_update_accepted(key, instance).await {
                Ok(AfterUpdate::Upload) => {
                    tracing::info!(%key, instance, "ESS: update accepted by the CSS; uploading the data");
                    self.forget_upload(key).await;
                    self.upload(key, instance).await
                }
                Ok(AfterUpdate::Done) => {
                    tracing::info!(%key, instance, "ESS: update accepted by the CSS (no data to upload)");
                    Step::Progress
                }
                Ok(AfterUpdate::Stale) => Step::Nothing,
                Err(e) => {
                    tracing::error!(%key, error = %e, "ESS: recording updated failed");
                    Step::Retry(Reply::Invalid(e.to_string()))
                }
            },
            Reply::Superseded => {
                tracing::debug!(%key, instance, "ESS: the CSS ignored the update; resending later");
                self.postpone(key, instance, NotificationStatus::Update).await;
                Step::Progress
            }
            other => step_of(other),
        }
    }

    /// `delete` (§3.6): `204` -> the object and its records go at once; `409` -> ignored,
    /// sent again after 6 x `ResendInterval`.
    async fn send_delete(&self, key: &ObjectKey, meta: &MetaData) -> Step {
        let instance = meta.instance_id;
        let outcome = self.client.action_with_meta(key, meta, Action::Delete).await;
        match outcome {
            Reply::Accepted => {
                self.forget_upload(key).await;
                match self.node.origin_delete_acked(key, instance).await {
                    Ok(true) => tracing::info!(%key, "ESS: deletion acknowledged by the CSS; object removed"),
                    Ok(false) => {}
                    Err(e) => tracing::error!(%key, error = %e, "ESS: removing a deleted object failed"),
                }
                Step::Progress
            }
            Reply::Superseded => {
                self.postpone(key, instance, NotificationStatus::Delete).await;
                Step::Progress
            }
            other => step_of(other),
        }
    }

    async fn postpone(&self, key: &ObjectKey, instance: i64, status: NotificationStatus) {
        if let Err(e) = self.node.origin_postpone(key, instance, status).await {
            tracing::error!(%key, error = %e, "ESS: postponing a message failed");
        }
    }

    /// Uploads the data of `instance` (§3.8), from where a previous attempt stopped (also
    /// before a restart); after the last part the record becomes `data`.
    #[tracing::instrument(name = "upload", skip_all, fields(%key, instance))]
    async fn upload(&self, key: &ObjectKey, instance: i64) -> Step {
        let Some(pusher) = self.client.data_push() else {
            // The CSS pulls the data with `getdata`; the link answers those requests.
            return Step::Nothing;
        };
        let source = match self.node.origin_upload_source(key, instance).await {
            Ok(Some(source)) => source,
            Ok(None) => return Step::Nothing,
            Err(e) => return Step::Retry(Reply::Invalid(format!("reading the object: {e}"))),
        };
        let mut offset = self.upload_offset(key, instance).await;
        if offset > 0 {
            tracing::info!(%key, instance, offset, "ESS: resuming an upload");
        }
        let holes = if offset == 0 && source.total >= MIN_DELTA_SIZE && pusher.takes_manifest(key, instance) {
            self.offer_manifest(pusher, key, instance, &source).await
        } else {
            None
        };
        let mut parts = 0u64;
        let mut holes = holes.map(|holes| holes.into_iter());
        let mut hole: Option<(u64, u64)> = None;
        let part_size = if self.settings.chunking && source.chunk_size > 0 {
            source.chunk_size
        } else {
            u64::MAX
        };
        loop {
            let next = match holes.as_mut() {
                // Only the holes the CSS could not fill from the previous version, in parts
                // of at most a chunk, each with its `Content-Range`.
                Some(remaining) => {
                    if hole.is_none_or(|(start, end)| start >= end) {
                        hole = remaining.next();
                    }
                    hole.map(|(start, end)| {
                        let len = (end - start).min(part_size);
                        hole = Some((start + len, end));
                        (start, start + len - 1, true)
                    })
                }
                None => next_part(source.total, source.chunk_size, self.settings.chunking, offset),
            };
            let Some((start, end, chunk)) = next else {
                break;
            };
            match self.node.origin_upload_wanted(key, instance).await {
                Ok(true) => {}
                Ok(false) => {
                    self.forget_upload(key).await;
                    return Step::Nothing;
                }
                Err(e) => return Step::Retry(Reply::Invalid(format!("reading the record: {e}"))),
            }
            let len = if source.total == 0 { 0 } else { end - start + 1 };
            let outcome = self.put_part(pusher, key, instance, &source, start, len, chunk).await;
            if outcome != Reply::Accepted {
                return self.upload_failed(key, instance, outcome).await;
            }
            offset = start + len.max(1);
            parts += 1;
            if let Err(e) = self
                .node
                .origin_record_upload_progress(key, Some((instance, offset)))
                .await
            {
                tracing::warn!(%key, error = %e, "ESS: recording upload progress failed");
            }
        }
        self.forget_upload(key).await;
        match self.node.origin_uploaded(key, instance).await {
            Ok(true) => {
                tracing::info!(%key, instance, bytes = source.total, parts, "ESS: data uploaded to the CSS");
                Step::Progress
            }
            Ok(false) => Step::Nothing,
            Err(e) => Step::Retry(Reply::Invalid(format!("recording the upload: {e}"))),
        }
    }

    /// Offers the CSS the manifest of the data (see [`crate::delta`]): the byte ranges it
    /// still needs after copying what it holds from the previous version, or `None` to send
    /// all of it (no manifest could be built, or the CSS did not take it).
    async fn offer_manifest(
        &self,
        pusher: &dyn DataPush,
        key: &ObjectKey,
        instance: i64,
        source: &UploadSource,
    ) -> Option<Vec<(u64, u64)>> {
        let manifest = match self.node.own_manifest(key, instance).await {
            Ok(manifest) => manifest,
            Err(e) => {
                tracing::warn!(%key, error = %e, "ESS: no manifest of the data; sending all of it");
                return None;
            }
        };
        let holes = pusher.offer_manifest(key, instance, source.data_id, manifest).await?;
        let missing: u64 = holes.iter().map(|(start, end)| end.saturating_sub(*start)).sum();
        tracing::info!(%key, instance, missing, total = source.total, "ESS: the CSS needs only the changed parts");
        Some(
            holes
                .into_iter()
                .filter(|(start, end)| start < end && *end <= source.total)
                .collect(),
        )
    }

    /// One `PUT .../data`, streaming `len` bytes at `start` of the data file.
    #[allow(clippy::too_many_arguments)]
    async fn put_part(
        &self,
        pusher: &dyn DataPush,
        key: &ObjectKey,
        instance: i64,
        source: &UploadSource,
        start: u64,
        len: u64,
        chunk: bool,
    ) -> Reply {
        // A `sourceDataUri` file is confined and compared with what the PUT measured at
        // every part, so a file changed or swapped for a symlink mid-upload stops it.
        let data = match self.node.open_data_file(&source.file).await {
            Ok((data, on_disk)) if on_disk >= start + len => data,
            Ok((_, on_disk)) => {
                return Reply::Invalid(format!(
                    "the data file has {on_disk} bytes, the object {}",
                    source.total
                ))
            }
            Err(e) => return Reply::Invalid(format!("cannot open the data: {e}")),
        };
        let stream = match data.range_stream(start, len).await {
            Ok(stream) => stream,
            Err(e) => return Reply::Invalid(format!("cannot read the data: {e}")),
        };
        let range = chunk.then_some((start, start + len - 1, source.total));
        pusher.upload(key, instance, source.data_id, range, len, stream).await
    }

    /// A part was not accepted: transient failures are retried with backoff (the upload
    /// resumes at that part); a CSS that does not take the data (object unknown, or
    /// another instance) gets the `update` again after 6 x `ResendInterval`.
    async fn upload_failed(&self, key: &ObjectKey, instance: i64, outcome: Reply) -> Step {
        if outcome.is_transient() {
            return Step::Retry(outcome);
        }
        if let Reply::Invalid(reason) = &outcome {
            // The object changed under the upload (new data, deletion), or its file is bad.
            if matches!(self.node.origin_upload_source(key, instance).await, Ok(None)) {
                self.forget_upload(key).await;
                return Step::Nothing;
            }
            tracing::error!(%key, instance, %reason, "ESS: cannot read the data to upload");
            return Step::Final(outcome);
        }
        if matches!(outcome, Reply::UnknownObject | Reply::Superseded) {
            self.forget_upload(key).await;
            if let Err(e) = self.node.origin_upload_refused(key, instance).await {
                tracing::error!(%key, error = %e, "ESS: recording a refused upload failed");
            }
        }
        Step::Final(outcome)
    }

    /// A poll element about an own object: `received`, `consumed` or `deleted` (§3.7,
    /// §5.4 origin side), acknowledged in every case once the local change is stored.
    pub(super) async fn handle_origin_item(&self, key: &ObjectKey, kind: &str, meta: MetaData) -> Step {
        let Some(_guard) = self.lock_for_notification(key).await else {
            return Step::Nothing;
        };
        let (instance, data_id) = (meta.instance_id, meta.data_id);
        let (result, ack) = match kind {
            "received" => (self.node.origin_received(&meta).await, Action::AckReceived),
            "consumed" => (
                self.node
                    .origin_consumed(&meta, self.settings.consumed_objects_kept)
                    .await,
                Action::AckConsumed,
            ),
            _ => (self.node.origin_deleted(&meta).await, Action::AckDeleted),
        };
        match result {
            Ok(true) => tracing::info!(%key, instance, kind, "ESS: the CSS reported on an own object"),
            Ok(false) => tracing::debug!(%key, instance, kind, "ESS: stale report on an own object"),
            Err(e) => {
                // Not acknowledged: the CSS keeps the element for the next poll.
                tracing::error!(%key, kind, error = %e, "ESS: handling a report on an own object failed");
                return Step::Nothing;
            }
        }
        if kind != "received" {
            self.forget_upload(key).await;
        }
        step_of(self.client.action(key, instance, data_id, ack, None).await)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn uploads_are_whole_or_chunks_in_order() {
        // Chunking off, or the object fits a chunk: one whole part.
        assert_eq!(next_part(100, 30, false, 0), Some((0, 99, false)));
        assert_eq!(next_part(100, 30, false, 100), None);
        assert_eq!(next_part(30, 30, true, 0), Some((0, 29, false)));
        assert_eq!(next_part(100, 0, true, 0), Some((0, 99, false)));
        assert_eq!(next_part(0, 30, true, 0), Some((0, 0, false)));
        assert_eq!(next_part(0, 30, true, 1), None);
        // Chunks: aligned, the last one short.
        assert_eq!(next_part(100, 30, true, 0), Some((0, 29, true)));
        assert_eq!(next_part(100, 30, true, 30), Some((30, 59, true)));
        assert_eq!(next_part(100, 30, true, 90), Some((90, 99, true)));
        assert_eq!(next_part(100, 30, true, 100), None);
        // A resume offset inside a chunk starts at its boundary.
        assert_eq!(next_part(100, 30, true, 45), Some((30, 59, true)));
    }
}
