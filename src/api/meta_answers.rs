//! Metadata answers kept serialized beside the records the store keeps decoded.
//!
//! Serializing an object's metadata in the original's JSON layout is about a quarter of the
//! instructions of a metadata GET. A record the store keeps in its cache is one shared,
//! immutable allocation until the object changes (a change makes a new record), so its
//! answer can be kept by that allocation's identity: a weak reference holds the address, so
//! it cannot be reused by another record while the answer is kept, and a record no longer
//! alive is never answered from here.

use crate::model::json::to_go_json;
use crate::model::ObjectRecord;
use bytes::Bytes;
use parking_lot::Mutex;
use std::collections::HashMap;
use std::sync::{Arc, Weak};

/// Answers kept at most, as many as the SQLite store keeps records.
const MAX_ANSWERS: usize = 4096;
/// Bytes of answers kept at most, as the SQLite store's cache keeps of stored metadata; an
/// answer larger than a sixteenth of it is not kept.
const MAX_BYTES: usize = 2 << 20;

struct Kept {
    record: Weak<ObjectRecord>,
    answer: Bytes,
}

#[derive(Default)]
struct Answers {
    by_record: HashMap<usize, Kept>,
    bytes: usize,
}

/// The serialized metadata of `record`, kept when the record is shared with the store's
/// cache. A record only this request holds (a store that keeps nothing) is serialized and
/// not kept.
pub(crate) fn meta_answer(record: &Arc<ObjectRecord>) -> Bytes {
    static ANSWERS: Mutex<Option<Answers>> = Mutex::new(None);
    let shared = Arc::strong_count(record) > 1;
    let address = Arc::as_ptr(record) as usize;
    if shared {
        let answers = ANSWERS.lock();
        let kept = answers.as_ref().and_then(|a| a.by_record.get(&address));
        if let Some(kept) = kept.filter(|kept| kept.record.strong_count() > 0) {
            return kept.answer.clone();
        }
    }
    let mut serialized = to_go_json(&record.meta);
    if !shared || serialized.len() > MAX_BYTES / 16 {
        return Bytes::from(serialized);
    }
    // Kept in an allocation of its size, not of the serializer's room.
    serialized.shrink_to_fit();
    let answer = Bytes::from(serialized);
    {
        let mut answers = ANSWERS.lock();
        let answers = answers.get_or_insert_with(Answers::default);
        if answers.by_record.len() >= MAX_ANSWERS || answers.bytes + answer.len() > MAX_BYTES {
            answers.forget_dead();
        }
        if answers.by_record.len() >= MAX_ANSWERS || answers.bytes + answer.len() > MAX_BYTES {
            *answers = Answers::default();
        }
        answers.bytes += answer.len();
        let replaced = answers.by_record.insert(
            address,
            Kept {
                record: Arc::downgrade(record),
                answer: answer.clone(),
            },
        );
        if let Some(replaced) = replaced {
            answers.bytes -= replaced.answer.len();
        }
    }
    answer
}

impl Answers {
    /// Drops the answers of records no longer alive.
    fn forget_dead(&mut self) {
        self.by_record.retain(|_, kept| kept.record.strong_count() > 0);
        self.bytes = self.by_record.values().map(|kept| kept.answer.len()).sum();
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::{MetaData, ObjectStatus};

    fn record(id: &str, description: &str) -> Arc<ObjectRecord> {
        let meta: MetaData = serde_json::from_value(serde_json::json!({
            "objectID": id, "objectType": "model", "destinationOrgID": "org",
            "description": description,
        }))
        .expect("metadata");
        Arc::new(ObjectRecord {
            meta,
            status: ObjectStatus::Ready,
            sender: true,
            remaining_consumers: 1,
            remaining_receivers: 1,
            policy_received: false,
            blob: None,
            revision: 1,
        })
    }

    #[test]
    fn a_shared_record_is_answered_from_its_kept_answer() {
        let record = record("kept", "first");
        let _cache = record.clone();
        let answer = meta_answer(&record);
        assert_eq!(answer, Bytes::from(to_go_json(&record.meta)));
        let again = meta_answer(&record);
        assert_eq!(again.as_ptr(), answer.as_ptr(), "the same kept bytes");
    }

    #[test]
    fn a_changed_object_is_a_new_record_and_gets_its_own_answer() {
        let first = record("changed", "first");
        let _cache = first.clone();
        let first_answer = meta_answer(&first);
        let second = record("changed", "second");
        let _cache_second = second.clone();
        let second_answer = meta_answer(&second);
        assert_ne!(first_answer, second_answer);
        assert!(String::from_utf8_lossy(&second_answer).contains("second"));
    }

    #[test]
    fn a_record_only_the_request_holds_is_not_kept() {
        let alone = record("alone", "only here");
        let first = meta_answer(&alone);
        let second = meta_answer(&alone);
        assert_eq!(first, second);
        assert_ne!(first.as_ptr(), second.as_ptr(), "serialized each time");
    }

    #[test]
    fn an_answer_outlives_no_record() {
        let address;
        {
            let record = record("gone", "soon gone");
            let _cache = record.clone();
            meta_answer(&record);
            address = Arc::as_ptr(&record) as usize;
        }
        // The kept weak reference keeps the address from being reused; a new record gets
        // its own answer either way.
        let next = record("next", "a new record");
        let _cache = next.clone();
        assert_ne!(Arc::as_ptr(&next) as usize, address);
        assert!(String::from_utf8_lossy(&meta_answer(&next)).contains("a new record"));
    }
}
