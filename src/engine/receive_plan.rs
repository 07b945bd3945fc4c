//! What a receiving ESS decides, with no store, file or clock: how it takes an `update` from
//! its CSS given its record of the object and its local copy (spec: css-ess-protocol.md
//! §5.4 "update", lifecycle.md §5), and which part of the data it asks for next (§3.8).
//! `engine::receive` carries the decisions out.

use crate::model::sync::{Notification, NotificationStatus};
use crate::model::{MetaData, ObjectRecord, ObjectStatus};
use crate::store::UploadSession;

/// What the receiver does with an `update` (spec §5.4 "update"), decided from its record of
/// the object, its local copy and the incoming metadata.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum UpdateDecision {
    /// A stale or already answered instance: no change, no reply.
    Ignore,
    /// The same instance is being downloaded (e.g. interrupted by a restart): answer
    /// `updated` again and continue the download where it stopped.
    Resume,
    /// The same instance is already complete here: answer `received` again.
    ReplyReceived,
    /// Store the metadata as the received copy; `complete` when no data has to move,
    /// `keep_data` when the local copy already holds this data.
    Store { complete: bool, keep_data: bool },
    /// The key belongs to an object this node created: refuse (feedback).
    OwnObject,
}

/// Decides how to handle an `update` (pure; spec §5.4).
pub fn decide_update(record: Option<&Notification>, local: Option<&ObjectRecord>, meta: &MetaData) -> UpdateDecision {
    if local.is_some_and(ObjectRecord::is_sender_copy) {
        return UpdateDecision::OwnObject;
    }
    let local_same_instance = local.filter(|l| l.meta.instance_id == meta.instance_id);
    let mut remembered_data_id = -1;
    if let Some(record) = record {
        if record.instance_id > meta.instance_id {
            return UpdateDecision::Ignore;
        }
        if record.instance_id == meta.instance_id {
            match record.status {
                NotificationStatus::ReceiverError => {}
                NotificationStatus::GetData | NotificationStatus::HandleUpdate => {
                    if local_same_instance.is_some_and(|l| l.status == ObjectStatus::PartiallyReceived) {
                        return UpdateDecision::Resume;
                    }
                }
                NotificationStatus::Received | NotificationStatus::AckReceived => {
                    let complete = local_same_instance.is_some_and(|l| {
                        matches!(l.status, ObjectStatus::CompletelyReceived | ObjectStatus::ObjReceived)
                    });
                    return if complete {
                        UpdateDecision::ReplyReceived
                    } else {
                        UpdateDecision::Ignore
                    };
                }
                _ => return UpdateDecision::Ignore,
            }
        } else {
            remembered_data_id = record.data_id;
        }
    }
    let moves_no_data = meta.no_data || !meta.link.is_empty();
    let has_local_data = !moves_no_data
        && meta.data_id != 0
        && local.is_some_and(|l| {
            // Data kept in a destination file stays only when the new instance names it too.
            let data_here = l.blob.is_some()
                || (l.data_in_destination_file() && l.meta.destination_data_uri == meta.destination_data_uri);
            data_here
                && l.meta.data_id == meta.data_id
                && matches!(l.status, ObjectStatus::CompletelyReceived | ObjectStatus::ObjReceived)
        });
    // Data kept in one destination file is not where a metaOnly update naming another one
    // expects it: download it again.
    let destination_moved =
        local.is_some_and(|l| l.data_in_destination_file() && l.meta.destination_data_uri != meta.destination_data_uri);
    let complete = moves_no_data
        || (meta.meta_only && (meta.data_id == remembered_data_id || meta.data_id == 0) && !destination_moved)
        || has_local_data;
    UpdateDecision::Store {
        complete,
        keep_data: has_local_data,
    }
}

/// How the next data request of a download looks.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ChunkRequest {
    /// The whole object in one request (no `Range`).
    Whole,
    /// `Range: bytes={start}-{end}` (inclusive).
    Range { start: u64, end: u64 },
}

/// The next request of a download (pure; spec §3.8): `None` when every byte is in; the whole
/// object when chunking is off or the object fits one chunk; else the chunk holding the first
/// missing byte, aligned to the chunk size, so a resumed download continues where the
/// previous one stopped (the restart flaw fix of §5.6). When bytes past a hole are in
/// (copied from the previous version by a delta transfer), exactly the hole is asked for, a
/// chunk at most at a time.
pub fn next_request(session: &UploadSession, chunk_size: i64, chunking: bool) -> Option<ChunkRequest> {
    if session.is_complete() {
        return None;
    }
    let total = session.total;
    let chunk = u64::try_from(chunk_size).unwrap_or(0);
    let first_missing = match session.ranges.first() {
        Some(&(0, end)) => end,
        _ => 0,
    };
    if let Some(hole_end) = session.ranges.iter().map(|r| r.0).find(|start| *start > first_missing) {
        let limit = if chunking && chunk > 0 {
            first_missing.saturating_add(chunk)
        } else {
            u64::MAX
        };
        return Some(ChunkRequest::Range {
            start: first_missing,
            end: hole_end.min(limit) - 1,
        });
    }
    if !chunking || chunk == 0 || total <= chunk {
        return Some(ChunkRequest::Whole);
    }
    let start = first_missing / chunk * chunk;
    let end = (start + chunk - 1).min(total - 1);
    Some(ChunkRequest::Range { start, end })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::engine::receive::cloud;
    use crate::model::ObjectKey;

    fn meta(instance: i64, data: i64) -> MetaData {
        MetaData {
            object_type: "t".into(),
            object_id: "o".into(),
            instance_id: instance,
            data_id: data,
            object_size: 10,
            consumers: 1,
            ..MetaData::default()
        }
    }

    fn record(status: NotificationStatus, instance: i64, data: i64) -> Notification {
        Notification {
            key: ObjectKey::new("org", "t", "o"),
            remote: cloud(),
            status,
            instance_id: instance,
            data_id: data,
            resend_time: 0,
        }
    }

    fn copy(status: ObjectStatus, instance: i64, data: i64, blob: bool) -> ObjectRecord {
        ObjectRecord {
            meta: meta(instance, data),
            status,
            sender: false,
            remaining_consumers: 1,
            remaining_receivers: 1,
            policy_received: false,
            blob: blob.then(|| "b".into()),
            revision: 1,
        }
    }

    #[test]
    fn a_new_object_is_stored_for_download() {
        assert_eq!(
            decide_update(None, None, &meta(5, 5)),
            UpdateDecision::Store {
                complete: false,
                keep_data: false
            }
        );
    }

    #[test]
    fn objects_without_data_transfer_are_complete_at_once() {
        let no_data = MetaData {
            no_data: true,
            ..meta(5, 0)
        };
        let link = MetaData {
            link: "http://x".into(),
            ..meta(5, 0)
        };
        for m in [no_data, link] {
            assert_eq!(
                decide_update(None, None, &m),
                UpdateDecision::Store {
                    complete: true,
                    keep_data: false
                }
            );
        }
        // metaOnly with the data ID recorded for the previous instance keeps the data.
        let meta_only = MetaData {
            meta_only: true,
            ..meta(7, 5)
        };
        let old = record(NotificationStatus::AckReceived, 5, 5);
        let local = copy(ObjectStatus::CompletelyReceived, 5, 5, true);
        assert_eq!(
            decide_update(Some(&old), Some(&local), &meta_only),
            UpdateDecision::Store {
                complete: true,
                keep_data: true
            }
        );
        // Without any record, a metaOnly update fetches the data (remembered dataID is -1).
        assert_eq!(
            decide_update(None, None, &meta_only),
            UpdateDecision::Store {
                complete: false,
                keep_data: false
            }
        );
    }

    #[test]
    fn stale_and_duplicate_updates_are_not_stored_again() {
        let newer = record(NotificationStatus::GetData, 9, 9);
        assert_eq!(decide_update(Some(&newer), None, &meta(5, 5)), UpdateDecision::Ignore);
        let downloading = record(NotificationStatus::GetData, 5, 5);
        let partial = copy(ObjectStatus::PartiallyReceived, 5, 5, false);
        assert_eq!(
            decide_update(Some(&downloading), Some(&partial), &meta(5, 5)),
            UpdateDecision::Resume
        );
        let received = record(NotificationStatus::Received, 5, 5);
        let complete = copy(ObjectStatus::CompletelyReceived, 5, 5, true);
        assert_eq!(
            decide_update(Some(&received), Some(&complete), &meta(5, 5)),
            UpdateDecision::ReplyReceived
        );
        let consumed = record(NotificationStatus::Consumed, 5, 5);
        assert_eq!(
            decide_update(Some(&consumed), Some(&complete), &meta(5, 5)),
            UpdateDecision::Ignore
        );
    }

    #[test]
    fn a_failed_reception_or_an_older_record_is_replaced() {
        let failed = record(NotificationStatus::ReceiverError, 5, 5);
        let partial = copy(ObjectStatus::ReceiverVerificationFailed, 5, 5, false);
        assert_eq!(
            decide_update(Some(&failed), Some(&partial), &meta(5, 5)),
            UpdateDecision::Store {
                complete: false,
                keep_data: false
            }
        );
        let older = record(NotificationStatus::AckReceived, 3, 3);
        let complete = copy(ObjectStatus::CompletelyReceived, 3, 3, true);
        assert_eq!(
            decide_update(Some(&older), Some(&complete), &meta(5, 5)),
            UpdateDecision::Store {
                complete: false,
                keep_data: false
            }
        );
    }

    #[test]
    fn a_meta_only_update_keeps_data_in_the_same_destination_file() {
        let mut local = copy(ObjectStatus::CompletelyReceived, 5, 5, false);
        local.meta.destination_data_uri = "file:///data/out.bin".into();
        let old = record(NotificationStatus::AckReceived, 5, 5);
        let mut update = MetaData {
            meta_only: true,
            destination_data_uri: "file:///data/out.bin".into(),
            ..meta(7, 5)
        };
        assert_eq!(
            decide_update(Some(&old), Some(&local), &update),
            UpdateDecision::Store {
                complete: true,
                keep_data: true
            }
        );
        // Another file: the data is not there, so it is downloaded again.
        update.destination_data_uri = "file:///data/elsewhere.bin".into();
        assert_eq!(
            decide_update(Some(&old), Some(&local), &update),
            UpdateDecision::Store {
                complete: false,
                keep_data: false
            }
        );
    }

    #[test]
    fn an_own_object_is_refused() {
        let mut own = copy(ObjectStatus::Ready, 5, 5, true);
        own.sender = true;
        assert_eq!(decide_update(None, Some(&own), &meta(6, 6)), UpdateDecision::OwnObject);
    }

    fn session(total: u64, ranges: Vec<(u64, u64)>) -> UploadSession {
        UploadSession {
            id: 1,
            total,
            first_chunk_size: None,
            ranges,
        }
    }

    #[test]
    fn downloads_resume_at_the_first_missing_chunk() {
        assert_eq!(
            next_request(&session(100, vec![]), 30, false),
            Some(ChunkRequest::Whole)
        );
        assert_eq!(next_request(&session(30, vec![]), 30, true), Some(ChunkRequest::Whole));
        assert_eq!(next_request(&session(100, vec![]), 0, true), Some(ChunkRequest::Whole));
        assert_eq!(
            next_request(&session(100, vec![]), 30, true),
            Some(ChunkRequest::Range { start: 0, end: 29 })
        );
        assert_eq!(
            next_request(&session(100, vec![(0, 60)]), 30, true),
            Some(ChunkRequest::Range { start: 60, end: 89 })
        );
        // A short chunk: ask again from its chunk boundary.
        assert_eq!(
            next_request(&session(100, vec![(0, 75)]), 30, true),
            Some(ChunkRequest::Range { start: 60, end: 89 })
        );
        assert_eq!(
            next_request(&session(100, vec![(0, 90)]), 30, true),
            Some(ChunkRequest::Range { start: 90, end: 99 })
        );
        // A hole at the start is filled first.
        assert_eq!(
            next_request(&session(100, vec![(30, 100)]), 30, true),
            Some(ChunkRequest::Range { start: 0, end: 29 })
        );
        assert_eq!(next_request(&session(100, vec![(0, 100)]), 30, true), None);
        assert_eq!(next_request(&session(0, vec![]), 30, true), None);
    }

    #[test]
    fn holes_between_copied_parts_are_asked_for_exactly() {
        let copied = session(100, vec![(0, 10), (15, 50), (95, 100)]);
        assert_eq!(
            next_request(&copied, 30, true),
            Some(ChunkRequest::Range { start: 10, end: 14 })
        );
        // Without chunking (or for an object of one chunk) too: never the whole object.
        assert_eq!(
            next_request(&copied, 30, false),
            Some(ChunkRequest::Range { start: 10, end: 14 })
        );
        assert_eq!(
            next_request(&session(100, vec![(0, 50), (95, 100)]), 30, true),
            Some(ChunkRequest::Range { start: 50, end: 79 })
        );
        assert_eq!(
            next_request(&session(100, vec![(0, 50), (95, 100)]), 0, true),
            Some(ChunkRequest::Range { start: 50, end: 94 })
        );
        // The last hole, at the end, goes by the usual rule.
        assert_eq!(
            next_request(&session(100, vec![(0, 90)]), 30, true),
            Some(ChunkRequest::Range { start: 90, end: 99 })
        );
    }
}
