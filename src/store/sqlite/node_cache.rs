//! What a long poll asks the store about its node, kept in memory: the node's registration,
//! and that no notification record awaits its poll. Every edge node polls every
//! `HTTPPollingInterval`, nearly always to find nothing; answered from here, such a poll
//! costs no SQLite statement and no hop to a reader thread (10,000 nodes make 1,000 polls a
//! second, each of which read the store two or three times).
//!
//! Coherence, as for [`super::cache::ObjectCache`]: this process is the only writer of its
//! database file, and every write that changes a node's registration or may queue a message
//! for a node reports the node on the writer thread after the commit and before the write is
//! acknowledged. A reader that missed tags its read with the generation it saw before
//! reading; the result is refused when any report happened since, because the read may
//! predate that write's commit. Both run under one lock, so a stale answer is never stored
//! after the report that should have removed it. Removing notification records needs no
//! report: a removal never makes a message await a poll.

use super::cache::Generation;
use crate::model::sync::Remote;
use crate::model::Destination;
use parking_lot::Mutex;
use std::collections::HashMap;

/// Most nodes kept. About 200 bytes each: well below what a node's long poll holds in its
/// connection (about 25 kB), so a fleet this large is kept whole.
const MAX_NODES: usize = 1 << 18;

/// What is known of one node.
#[derive(Default)]
struct Known {
    /// The registration as read; `None` when unknown.
    registration: Option<Registration>,
    /// True when the records awaiting the node's poll were read and there were none.
    nothing_awaiting: bool,
}

/// A registration as read, without the names the node is kept under.
enum Registration {
    Absent,
    Present {
        communication: Box<str>,
        code_version: Box<str>,
    },
}

impl Registration {
    fn of(read: Option<Destination>) -> Self {
        match read {
            None => Self::Absent,
            Some(d) => Self::Present {
                communication: d.communication.into(),
                code_version: d.code_version.into(),
            },
        }
    }

    fn destination(&self, org: &str, remote: &Remote) -> Option<Destination> {
        match self {
            Self::Absent => None,
            Self::Present {
                communication,
                code_version,
            } => Some(Destination {
                org: org.to_string(),
                dest_type: remote.dest_type.clone(),
                dest_id: remote.dest_id.clone(),
                communication: communication.to_string(),
                code_version: code_version.to_string(),
            }),
        }
    }
}

/// Nodes by organization, destination type and ID: nested so that a lookup borrows the
/// caller's names instead of building an owned key for every poll.
type Nodes = HashMap<Box<str>, HashMap<Box<str>, HashMap<Box<str>, Known>>>;

#[derive(Default)]
struct Entries {
    nodes: Nodes,
    count: usize,
    generation: u64,
}

impl Entries {
    fn get(&self, org: &str, remote: &Remote) -> Option<&Known> {
        self.nodes
            .get(org)?
            .get(remote.dest_type.as_str())?
            .get(remote.dest_id.as_str())
    }

    fn get_mut(&mut self, org: &str, remote: &Remote) -> Option<&mut Known> {
        self.nodes
            .get_mut(org)?
            .get_mut(remote.dest_type.as_str())?
            .get_mut(remote.dest_id.as_str())
    }

    /// The node's entry, created when missing (making room first).
    fn get_or_insert(&mut self, org: &str, remote: &Remote) -> &mut Known {
        if self.get(org, remote).is_none() {
            if self.count >= MAX_NODES {
                // Cleared whole rather than by victims chosen one by one: a fleet larger than
                // this is read from the store again, as without the cache.
                self.nodes.clear();
                self.count = 0;
            }
            self.count += 1;
        }
        self.nodes
            .entry(org.into())
            .or_default()
            .entry(remote.dest_type.as_str().into())
            .or_default()
            .entry(remote.dest_id.as_str().into())
            .or_default()
    }

    fn remove(&mut self, org: &str, remote: &Remote) {
        let Some(types) = self.nodes.get_mut(org) else {
            return;
        };
        let Some(ids) = types.get_mut(remote.dest_type.as_str()) else {
            return;
        };
        if ids.remove(remote.dest_id.as_str()).is_some() {
            self.count -= 1;
        }
        if ids.is_empty() {
            types.remove(remote.dest_type.as_str());
            if types.is_empty() {
                self.nodes.remove(org);
            }
        }
    }
}

/// Bounded map of nodes' registrations and idleness, coherent with the writes of this process.
#[derive(Default)]
pub(super) struct NodeCache {
    entries: Mutex<Entries>,
}

impl NodeCache {
    /// The kept registration of the node, or the generation to tag a read of it with.
    pub(super) fn registration(&self, org: &str, remote: &Remote) -> Result<Option<Destination>, Generation> {
        let entries = self.entries.lock();
        match entries.get(org, remote).and_then(|known| known.registration.as_ref()) {
            Some(registration) => Ok(registration.destination(org, remote)),
            None => Err(Generation(entries.generation)),
        }
    }

    /// Keeps the registration read under `seen`, unless a report happened since.
    pub(super) fn keep_registration(&self, org: &str, remote: &Remote, read: Option<Destination>, seen: Generation) {
        let mut entries = self.entries.lock();
        if entries.generation == seen.0 {
            entries.get_or_insert(org, remote).registration = Some(Registration::of(read));
        }
    }

    /// `Ok` when nothing is known to await the node's poll; otherwise the generation to tag a
    /// read of its records with.
    pub(super) fn nothing_awaiting(&self, org: &str, remote: &Remote) -> Result<(), Generation> {
        let entries = self.entries.lock();
        match entries.get(org, remote) {
            Some(known) if known.nothing_awaiting => Ok(()),
            _ => Err(Generation(entries.generation)),
        }
    }

    /// Keeps that a read under `seen` found nothing awaiting the node's poll, unless a
    /// report happened since.
    pub(super) fn keep_nothing_awaiting(&self, org: &str, remote: &Remote, seen: Generation) {
        let mut entries = self.entries.lock();
        if entries.generation == seen.0 {
            entries.get_or_insert(org, remote).nothing_awaiting = true;
        }
    }

    /// Forgets everything of the node: its registration was written or removed.
    pub(super) fn forget(&self, org: &str, remote: &Remote) {
        let mut entries = self.entries.lock();
        entries.generation += 1;
        entries.remove(org, remote);
    }

    /// Forgets that nothing awaits these nodes: records were written for them.
    pub(super) fn records_written<'a>(&self, nodes: impl IntoIterator<Item = (&'a str, &'a Remote)>) {
        let mut entries = self.entries.lock();
        entries.generation += 1;
        for (org, remote) in nodes {
            if let Some(known) = entries.get_mut(org, remote) {
                known.nothing_awaiting = false;
            }
        }
    }

    /// Forgets everything: rows were written that are not named one by one.
    pub(super) fn clear(&self) {
        let mut entries = self.entries.lock();
        entries.generation += 1;
        entries.nodes.clear();
        entries.count = 0;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn remote(id: &str) -> Remote {
        Remote {
            dest_type: "edge".into(),
            dest_id: id.into(),
        }
    }

    fn destination(id: &str) -> Destination {
        Destination {
            org: "org".into(),
            dest_type: "edge".into(),
            dest_id: id.into(),
            communication: "http".into(),
            code_version: "1.0".into(),
        }
    }

    fn seen_registration(cache: &NodeCache, id: &str) -> Generation {
        cache.registration("org", &remote(id)).expect_err("not kept yet")
    }

    #[test]
    fn a_read_before_a_report_is_refused() {
        let cache = NodeCache::default();
        let before = seen_registration(&cache, "a");
        cache.forget("org", &remote("a"));
        cache.keep_registration("org", &remote("a"), None, before);
        assert!(cache.registration("org", &remote("a")).is_err());

        let before = cache.nothing_awaiting("org", &remote("a")).expect_err("unknown");
        cache.records_written([("org", &remote("b"))]);
        cache.keep_nothing_awaiting("org", &remote("a"), before);
        assert!(cache.nothing_awaiting("org", &remote("a")).is_err());

        let after = seen_registration(&cache, "a");
        cache.keep_registration("org", &remote("a"), Some(destination("a")), after);
        assert_eq!(cache.registration("org", &remote("a")), Ok(Some(destination("a"))));
    }

    #[test]
    fn reports_forget_what_they_change() {
        let cache = NodeCache::default();
        for id in ["a", "b"] {
            let seen = seen_registration(&cache, id);
            cache.keep_registration("org", &remote(id), Some(destination(id)), seen);
            let seen = cache.nothing_awaiting("org", &remote(id)).expect_err("unknown");
            cache.keep_nothing_awaiting("org", &remote(id), seen);
        }
        cache.records_written([("org", &remote("a"))]);
        assert!(cache.nothing_awaiting("org", &remote("a")).is_err());
        assert!(cache.registration("org", &remote("a")).is_ok());
        assert!(cache.nothing_awaiting("org", &remote("b")).is_ok());

        cache.forget("org", &remote("b"));
        assert!(cache.registration("org", &remote("b")).is_err());
        assert!(cache.nothing_awaiting("org", &remote("b")).is_err());
        assert_eq!(cache.entries.lock().count, 1);

        cache.clear();
        assert!(cache.registration("org", &remote("a")).is_err());
        assert_eq!(cache.entries.lock().count, 0);
    }

    #[test]
    fn a_node_of_another_organization_is_another_node() {
        let cache = NodeCache::default();
        let seen = seen_registration(&cache, "a");
        cache.keep_registration("org", &remote("a"), Some(destination("a")), seen);
        assert!(cache.registration("other", &remote("a")).is_err());
    }
}
