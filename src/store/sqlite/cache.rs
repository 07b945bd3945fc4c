//! Recently read object records, kept decoded so that a repeated read of the same object
//! (an application polling its metadata, a node's status checks) costs neither a SQLite
//! statement with its file locks nor a JSON parse.
//!
//! Coherence: this process is the only writer of its database file, and every write of an
//! object row reports the key to [`ObjectCache::invalidate`] on the writer thread after the
//! commit and before the write is acknowledged. A reader that missed tags its read with the
//! generation it saw before reading; [`ObjectCache::insert`] refuses the record when any
//! invalidation happened since, because the read may predate that write's commit. Both run
//! under one lock, so a stale record can never be stored after the invalidation that
//! should have removed it.

use crate::model::{ObjectKey, ObjectRecord};
use parking_lot::Mutex;
use std::collections::HashMap;
use std::sync::Arc;

/// Most records kept.
const MAX_ENTRIES: usize = 4096;
/// Most metadata kept, counted as the JSON text it was decoded from: metadata has no size
/// limit of its own, and the cache must not grow the memory of a node by more than this.
const MAX_BYTES: usize = 2 * 1024 * 1024;

/// A generation number: changes on every invalidation.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) struct Generation(u64);

struct Entry {
    record: Arc<ObjectRecord>,
    weight: usize,
}

#[derive(Default)]
struct Entries {
    map: HashMap<ObjectKey, Entry>,
    bytes: usize,
    generation: u64,
}

impl Entries {
    fn remove(&mut self, key: &ObjectKey) {
        if let Some(entry) = self.map.remove(key) {
            self.bytes -= entry.weight;
        }
    }
}

/// Bounded map of object records, coherent with the writes of this process.
#[derive(Default)]
pub(super) struct ObjectCache {
    entries: Mutex<Entries>,
}

impl ObjectCache {
    pub(super) fn get(&self, key: &ObjectKey) -> Option<Arc<ObjectRecord>> {
        self.entries.lock().map.get(key).map(|entry| Arc::clone(&entry.record))
    }

    /// The generation to tag a read with; taken before the read starts.
    pub(super) fn generation(&self) -> Generation {
        Generation(self.entries.lock().generation)
    }

    /// Keeps `record`, read under `seen`, unless an invalidation happened since. `weight` is
    /// the size of its stored form in bytes. Makes room by dropping arbitrary entries: the
    /// objects read most often come back at once.
    pub(super) fn insert(&self, record: Arc<ObjectRecord>, weight: usize, seen: Generation) {
        if weight > MAX_BYTES / 16 {
            return;
        }
        let mut entries = self.entries.lock();
        if entries.generation != seen.0 {
            return;
        }
        let key = record.key();
        entries.remove(&key);
        while entries.map.len() >= MAX_ENTRIES || entries.bytes + weight > MAX_BYTES {
            let Some(victim) = entries.map.keys().next().cloned() else {
                break;
            };
            entries.remove(&victim);
        }
        entries.bytes += weight;
        entries.map.insert(key, Entry { record, weight });
    }

    /// Forgets `key`: its row was written (or the write was attempted).
    pub(super) fn invalidate(&self, key: &ObjectKey) {
        let mut entries = self.entries.lock();
        entries.generation += 1;
        entries.remove(key);
    }

    /// Forgets everything: rows were written that are not named one by one.
    pub(super) fn clear(&self) {
        let mut entries = self.entries.lock();
        entries.generation += 1;
        entries.map.clear();
        entries.bytes = 0;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::{MetaData, ObjectStatus};

    fn record(id: &str, revision: i64) -> Arc<ObjectRecord> {
        let meta = MetaData {
            object_id: id.into(),
            object_type: "t".into(),
            destination_org_id: "org".into(),
            ..MetaData::default()
        };
        Arc::new(ObjectRecord {
            meta,
            status: ObjectStatus::Ready,
            sender: true,
            remaining_consumers: 0,
            remaining_receivers: 0,
            policy_received: false,
            blob: None,
            revision,
        })
    }

    fn key(id: &str) -> ObjectKey {
        ObjectKey::new("org", "t", id)
    }

    #[test]
    fn a_record_read_before_an_invalidation_is_refused() {
        let cache = ObjectCache::default();
        let seen = cache.generation();
        cache.invalidate(&key("a"));
        cache.insert(record("a", 1), 100, seen);
        assert!(cache.get(&key("a")).is_none());

        let seen = cache.generation();
        cache.insert(record("a", 2), 100, seen);
        assert_eq!(cache.get(&key("a")).map(|r| r.revision), Some(2));
    }

    #[test]
    fn invalidation_and_clearing_forget_records() {
        let cache = ObjectCache::default();
        for id in ["a", "b", "c"] {
            cache.insert(record(id, 1), 100, cache.generation());
        }
        cache.invalidate(&key("b"));
        assert!(cache.get(&key("a")).is_some());
        assert!(cache.get(&key("b")).is_none());
        cache.clear();
        assert!(cache.get(&key("a")).is_none() && cache.get(&key("c")).is_none());
    }

    #[test]
    fn the_byte_budget_bounds_what_is_kept() {
        let cache = ObjectCache::default();
        let weight = MAX_BYTES / 16;
        for index in 0..64 {
            cache.insert(record(&format!("o{index}"), 1), weight, cache.generation());
            assert!(cache.entries.lock().bytes <= MAX_BYTES);
        }
        let kept = cache.entries.lock().map.len();
        assert_eq!(kept, 16);
        // Larger than a sixteenth of the budget: never kept.
        cache.insert(record("big", 1), weight + 1, cache.generation());
        assert!(cache.get(&key("big")).is_none());
    }
}
