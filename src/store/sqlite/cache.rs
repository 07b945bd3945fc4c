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
pub(super) struct Generation(pub(super) u64);

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
    /// The kept record of `key`, or the generation to tag a read of it with.
    pub(super) fn lookup(&self, key: &ObjectKey) -> Result<Arc<ObjectRecord>, Generation> {
        let entries = self.entries.lock();
        match entries.map.get(key) {
            Some(entry) => Ok(Arc::clone(&entry.record)),
            None => Err(Generation(entries.generation)),
        }
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

    /// Forgets `keys`: their rows were written (or the write was attempted).
    pub(super) fn invalidate(&self, keys: &[ObjectKey]) {
        let mut entries = self.entries.lock();
        entries.generation += 1;
        keys.iter().for_each(|key| entries.remove(key));
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

    fn record(id: &str, revision: i64) -> Arc<ObjectRecord> {
        let mut record = super::super::tests::record(id, 0, None);
        record.revision = revision;
        Arc::new(record)
    }

    fn key(id: &str) -> ObjectKey {
        ObjectKey::new("org", "t", id)
    }

    /// The generation a miss hands out.
    fn seen(cache: &ObjectCache, id: &str) -> Generation {
        cache.lookup(&key(id)).expect_err("not kept yet")
    }

    fn kept(cache: &ObjectCache, id: &str) -> Option<Arc<ObjectRecord>> {
        cache.lookup(&key(id)).ok()
    }

    #[test]
    fn a_record_read_before_an_invalidation_is_refused() {
        let cache = ObjectCache::default();
        let before = seen(&cache, "a");
        cache.invalidate(&[key("a")]);
        cache.insert(record("a", 1), 100, before);
        assert!(kept(&cache, "a").is_none());

        let after = seen(&cache, "a");
        cache.insert(record("a", 2), 100, after);
        assert_eq!(kept(&cache, "a").map(|r| r.revision), Some(2));
    }

    #[test]
    fn invalidation_and_clearing_forget_records() {
        let cache = ObjectCache::default();
        for id in ["a", "b", "c", "d"] {
            cache.insert(record(id, 1), 100, seen(&cache, id));
        }
        cache.invalidate(&[key("b"), key("d")]);
        assert!(kept(&cache, "a").is_some());
        assert!(kept(&cache, "b").is_none());
        assert!(kept(&cache, "d").is_none());
        cache.clear();
        assert!(kept(&cache, "a").is_none() && kept(&cache, "c").is_none());
    }

    #[test]
    fn the_byte_budget_bounds_what_is_kept() {
        let cache = ObjectCache::default();
        let weight = MAX_BYTES / 16;
        for index in 0..64 {
            let id = format!("o{index}");
            cache.insert(record(&id, 1), weight, seen(&cache, &id));
            assert!(cache.entries.lock().bytes <= MAX_BYTES);
        }
        let kept_count = cache.entries.lock().map.len();
        assert_eq!(kept_count, 16);
        // Larger than a sixteenth of the budget: never kept.
        cache.insert(record("big", 1), weight + 1, seen(&cache, "big"));
        assert!(kept(&cache, "big").is_none());
    }
}
