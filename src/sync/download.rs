//! Downloading a received copy's data from the CSS, chunk by chunk, resuming where an
//! earlier attempt stopped, and reporting a reception that failed.

use super::delta_fetch::{DeltaFetch, Page};
use super::ess_loop::{step_of, EssSync, Step};
use super::link::{DataChunk, Reply};
use crate::engine::receive::{next_request, ChunkRequest, Completion};
use crate::model::sync::Feedback;
use crate::model::ObjectKey;

/// Feedback code for an internal error (spec §5.5).
pub(super) const FEEDBACK_INTERNAL: i32 = 1;
/// Feedback code for an I/O error.
const FEEDBACK_IO: i32 = 2;
/// Feedback code for a security (signature) error.
const FEEDBACK_SECURITY: i32 = 3;

/// Reason reported to the CSS when the data does not fit on this node's disk.
const NO_SPACE: &str = "not enough disk space on the edge node to store the data";

impl EssSync {
    /// Downloads the missing data of a received copy, chunk by chunk in offset order,
    /// resuming where a previous attempt stopped; completes the copy and reports `received`.
    /// A chunk the CSS refuses as busy is asked for again shortly ([`BusyRetry`](super::retry::BusyRetry)).
    #[tracing::instrument(name = "download", skip_all, fields(%key, instance))]
    pub(super) async fn download(&self, key: &ObjectKey, instance: i64, data_id: i64) -> Step {
        let mut download = match self.node.begin_download(key, instance).await {
            Ok(Some(download)) => download,
            Ok(None) => return Step::Nothing,
            Err(e) if e.is_disk_full() => return self.disk_full(key, instance, data_id, None).await,
            Err(e) => {
                tracing::error!(%key, error = %e, "ESS: cannot start a download");
                return Step::Retry(Reply::Invalid(e.to_string()));
            }
        };
        let data_id = download.meta.data_id;
        let chunk_size = i64::from(download.meta.chunk_size);
        let already = covered(&download.session.ranges);
        if already > 0 {
            tracing::info!(%key, instance, bytes = already, "ESS: resuming a download");
        }
        let mut busy = self.settings.retry.busy_retry();
        let from_previous = self.node.settings().delta_transfer && already == 0 && self.node.has_delta_base(key);
        let mut delta = DeltaFetch::new(from_previous, download.session.total);
        while let Some(request) = next_request(&download.session, chunk_size, self.settings.chunking) {
            let range = match request {
                ChunkRequest::Whole => None,
                ChunkRequest::Range { start, end } => Some((start, end)),
            };
            let range = delta.next_range().or(range);
            let mut answer = match self.client.data(key, instance, data_id, range, delta.asking()).await {
                Ok(answer) => {
                    busy.served();
                    answer
                }
                Err(Reply::Busy) if busy.pause().await => continue,
                Err(Reply::UnknownObject) => {
                    tracing::info!(%key, "ESS: the object is gone on the CSS; dropping the local copy");
                    self.node.release_delta_base(key).await;
                    if let Err(e) = self.node.drop_received(key, instance).await {
                        tracing::error!(%key, error = %e, "ESS: dropping a copy failed");
                    }
                    return Step::Progress;
                }
                // The data belongs to another instance by now: a newer update will come.
                Err(Reply::Superseded) => return Step::Nothing,
                Err(Reply::Refused(reason)) => {
                    return self
                        .reception_failed(
                            key,
                            instance,
                            data_id,
                            Feedback::error(FEEDBACK_INTERNAL, format!("data download refused: {reason}")),
                            false,
                        )
                        .await;
                }
                Err(other) => return step_of(other),
            };
            if answer.manifest || delta.asking() {
                match self
                    .start_from_previous_version(key, &mut download, &mut delta, answer)
                    .await
                {
                    Some(data) => answer = data,
                    None => continue,
                }
            }
            let offset = answer.start;
            let before = covered(&download.session.ranges);
            let body = answer.body;
            match self.node.write_download(&mut download, offset, body).await {
                Ok(()) => {}
                Err(e) if e.is_disk_full() => {
                    return self.disk_full(key, instance, data_id, Some(download.session.id)).await;
                }
                Err(e) => return Step::Retry(Reply::RetryLater(format!("storing downloaded data: {e}"))),
            }
            if !download.session.is_complete() && covered(&download.session.ranges) <= before {
                return Step::Retry(Reply::RetryLater("the CSS sent no new data".into()));
            }
        }
        let completion = self.node.complete_download(key, &mut download).await;
        if completion.is_ok() {
            self.node.release_delta_base(key).await;
        }
        match completion {
            Ok(Completion::Done) => {
                tracing::info!(%key, instance, "ESS: object completely received");
                self.send_received(key, instance, data_id).await
            }
            Ok(Completion::Stale) => Step::Nothing,
            Ok(Completion::VerificationFailed(reason)) => {
                self.reception_failed(key, instance, data_id, Feedback::error(FEEDBACK_SECURITY, reason), true)
                    .await
            }
            Ok(Completion::DestinationRefused(reason)) => {
                self.reception_failed(key, instance, data_id, Feedback::error(FEEDBACK_INTERNAL, reason), true)
                    .await
            }
            Err(e) if e.is_disk_full() => self.disk_full(key, instance, data_id, Some(download.session.id)).await,
            Err(e) => Step::Retry(Reply::Invalid(format!("completing the download: {e}"))),
        }
    }

    /// The disk is too full for the download: its partial file is given up so that it holds
    /// no space meanwhile, and the CSS gets an I/O error `feedback` asking it to send the
    /// `update` again after the next backoff delay of this object (the protocol's own retry,
    /// spec §5.5), which starts the download over. A transient failure for the backoff: the
    /// delay grows while the disk stays full and starts again once the download succeeds.
    pub(super) async fn disk_full(&self, key: &ObjectKey, instance: i64, data_id: i64, session: Option<i64>) -> Step {
        // The previous version goes too: the download starts over without it.
        self.node.release_delta_base(key).await;
        if let Some(session) = session {
            if let Err(e) = self.node.abandon_download(key, instance, session).await {
                tracing::warn!(%key, error = %e, "ESS: the partial data of a failed download is kept");
            }
        }
        let retry = self.retry_delay(key);
        let feedback = Feedback {
            retry_interval: i32::try_from(retry.as_secs().max(1)).unwrap_or(i32::MAX),
            ..Feedback::error(FEEDBACK_IO, NO_SPACE.to_string())
        };
        match self.reception_failed(key, instance, data_id, feedback, false).await {
            Step::Final(outcome) => Step::Retry(outcome),
            other => other,
        }
    }

    /// Handles an answer while the manifest is asked for: manifest bytes are gathered and,
    /// once complete, the download is filled from the previous version; data (a CSS that
    /// does not take part) is returned to be written as usual, and the download goes on
    /// without the previous version. `None`: nothing to write, ask again.
    async fn start_from_previous_version(
        &self,
        key: &ObjectKey,
        download: &mut crate::engine::receive::Download,
        delta: &mut DeltaFetch,
        answer: DataChunk,
    ) -> Option<DataChunk> {
        if !answer.manifest {
            tracing::debug!(%key, "ESS: the CSS sends whole data; not using the previous version");
            *delta = DeltaFetch::Off;
            self.node.release_delta_base(key).await;
            return Some(answer);
        }
        let manifest = match delta.take(answer.start, answer.body).await {
            Page::More => return None,
            Page::Complete(manifest) => manifest,
            Page::Unusable(reason) => {
                tracing::warn!(%key, %reason, "ESS: fetching the whole data instead of its changes");
                *delta = DeltaFetch::Off;
                self.node.release_delta_base(key).await;
                return None;
            }
        };
        *delta = DeltaFetch::Off;
        match self.node.fill_from_base(key, download, &manifest).await {
            Ok(copied) => tracing::info!(
                %key,
                copied,
                total = manifest.total,
                "ESS: bytes of the new version copied from the previous one"
            ),
            Err(e) => {
                tracing::warn!(%key, error = %e, "ESS: copying from the previous version failed; fetching the rest");
                self.node.release_delta_base(key).await;
            }
        }
        None
    }

    /// Reports a failed reception: record `receiverError` (unless already done), `feedback`.
    async fn reception_failed(
        &self,
        key: &ObjectKey,
        instance: i64,
        data_id: i64,
        feedback: Feedback,
        already_recorded: bool,
    ) -> Step {
        tracing::warn!(%key, instance, reason = %feedback.reason, "ESS: reception failed");
        if !already_recorded {
            if let Err(e) = self.node.receiver_error(key, instance, None).await {
                tracing::error!(%key, error = %e, "ESS: recording receiverError failed");
            }
        }
        let outcome = self.client.feedback(key, instance, data_id, &feedback).await;
        match step_of(outcome) {
            Step::Progress => Step::Final(Reply::Invalid(feedback.reason)),
            other => other,
        }
    }
}

/// Bytes covered by merged ranges.
fn covered(ranges: &[(u64, u64)]) -> u64 {
    ranges.iter().map(|(start, end)| end - start).sum()
}

#[cfg(test)]
mod tests {
    #[test]
    fn covered_adds_the_merged_ranges() {
        assert_eq!(super::covered(&[(0, 10), (20, 25)]), 15);
    }
}
