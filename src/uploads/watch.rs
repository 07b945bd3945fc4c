//! File-system events for `onChange` sources: a change in a source's folder (a file written
//! and closed, created, renamed in or removed) makes the worker look at that source once the
//! settle time has passed since the last change, instead of at its next `scanSeconds` scan.
//! A file written for a long time thus costs no scans until it is quiet, and is sent about
//! `settleSeconds` after its last write.
//!
//! Events only hasten looks: the periodic scan stays, and a file is still sent only once it
//! has settled. It catches what events miss (folders on network file systems, a folder
//! removed and made again, a watch that could not be placed, an event queue that overflowed).

use super::Uploads;
use crate::config::UploadSource;
use notify::event::{AccessKind, AccessMode};
use notify::{Event, EventKind, RecursiveMode, Watcher};
use std::sync::{Arc, Weak};

/// The watches of the `onChange` sources, kept for as long as events are wanted.
pub(super) struct FolderWatches {
    /// Per source (by index), its watcher, or `None` when it has none yet.
    watchers: Vec<Option<notify::RecommendedWatcher>>,
    /// Why the last attempt to watch each source failed, logged once per new reason.
    failures: Vec<Option<String>>,
}

impl FolderWatches {
    /// Watches the folder of every `onChange` source it can; the others are tried again by
    /// [`FolderWatches::retry`].
    pub(super) fn start(uploads: &Arc<Uploads>) -> Self {
        let count = uploads.sources.len();
        let mut watches = Self {
            watchers: (0..count).map(|_| None).collect(),
            failures: vec![None; count],
        };
        for index in 0..count {
            watches.retry(uploads, index);
        }
        watches
    }

    /// Places the watch of the source at `index` when it wants one and has none (a folder
    /// missing at start may be there now).
    pub(super) fn retry(&mut self, uploads: &Arc<Uploads>, index: usize) {
        let source = &uploads.sources[index];
        if source.on_change.is_none() || self.watchers[index].is_some() {
            return;
        }
        match watch(source, index, Arc::downgrade(uploads)) {
            Ok(watcher) => {
                tracing::debug!(source = %source.name, "uploads: watching the folder for changes");
                self.watchers[index] = Some(watcher);
                self.failures[index] = None;
            }
            Err(e) => {
                let reason = e.to_string();
                if self.failures[index].as_ref() != Some(&reason) {
                    tracing::info!(source = %source.name, folder = %source.folder.display(), error = %reason,
                        "uploads: no change events for the folder; its periodic scan finds the changes");
                    self.failures[index] = Some(reason);
                }
            }
        }
    }
}

fn watch(source: &UploadSource, index: usize, uploads: Weak<Uploads>) -> notify::Result<notify::RecommendedWatcher> {
    let mut watcher = notify::recommended_watcher(move |event: notify::Result<Event>| {
        // An error (such as an overflowed queue) may hide a change: look as for one.
        let relevant = event.as_ref().map_or(true, |e| is_change(&e.kind));
        // Taken at the worker's next tick, so a burst of events costs one look.
        if let (true, Some(uploads)) = (relevant, uploads.upgrade()) {
            uploads.changed.lock().insert(index);
        }
    })?;
    // Subfolders too: the scan walks them.
    watcher.watch(&source.folder, RecursiveMode::Recursive)?;
    Ok(watcher)
}

/// True for events that may change what the folder holds; reads (including the worker's
/// own, while it hashes a file) are not changes.
fn is_change(kind: &EventKind) -> bool {
    match kind {
        EventKind::Access(AccessKind::Close(AccessMode::Write)) => true,
        EventKind::Access(_) => false,
        _ => true,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use notify::event::{CreateKind, ModifyKind, RemoveKind};

    #[test]
    fn reads_are_not_changes_but_writes_and_renames_are() {
        assert!(!is_change(&EventKind::Access(AccessKind::Open(AccessMode::Read))));
        assert!(!is_change(&EventKind::Access(AccessKind::Close(AccessMode::Read))));
        assert!(is_change(&EventKind::Access(AccessKind::Close(AccessMode::Write))));
        assert!(is_change(&EventKind::Create(CreateKind::File)));
        assert!(is_change(&EventKind::Modify(ModifyKind::Any)));
        assert!(is_change(&EventKind::Remove(RemoveKind::File)));
    }
}
