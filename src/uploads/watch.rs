//! File-system events for `onChange` sources: a change in a source's folder (a file written
//! and closed, created, renamed in or removed) makes the worker look at that source once the
//! settle time has passed since the last change, instead of at its next `scanSeconds` scan.
//! A file written for a long time thus costs no scans until it is quiet, and is sent about
//! `settleSeconds` after its last write.
//!
//! Events only hasten looks: the periodic scan stays, and a file is still sent only once it
//! has settled. It catches what events miss (folders on network file systems, a watch that
//! could not be placed, an event queue that overflowed). A folder removed and made again is
//! another folder to the kernel: the scan that finds it watches it anew.

use super::Uploads;
use crate::config::UploadSource;
use notify::event::ModifyKind;
use notify::event::{AccessKind, AccessMode};
use notify::{Event, EventKind, RecursiveMode, Watcher};
use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Weak};

/// The watches of the `onChange` sources, kept for as long as events are wanted.
pub(super) struct FolderWatches {
    /// Per source (by index), its watcher and whether its folder went (removed or renamed:
    /// the watch then sees nothing more), or `None` when it has none yet.
    watchers: Vec<Option<(notify::RecommendedWatcher, Arc<AtomicBool>)>>,
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
    /// missing at start may be there now) or its folder went (made again since, perhaps).
    pub(super) fn retry(&mut self, uploads: &Arc<Uploads>, index: usize) {
        let source = &uploads.sources[index];
        if source.on_change.is_none() {
            return;
        }
        if let Some((_, gone)) = &self.watchers[index] {
            if !gone.load(Ordering::Relaxed) {
                return;
            }
            self.watchers[index] = None;
        }
        let gone = Arc::new(AtomicBool::new(false));
        match watch(source, index, Arc::downgrade(uploads), gone.clone()) {
            Ok(watcher) => {
                tracing::debug!(source = %source.name, "uploads: watching the folder for changes");
                self.watchers[index] = Some((watcher, gone));
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

fn watch(
    source: &UploadSource,
    index: usize,
    uploads: Weak<Uploads>,
    gone: Arc<AtomicBool>,
) -> notify::Result<notify::RecommendedWatcher> {
    let folder = source.folder.clone();
    let mut watcher = notify::recommended_watcher(move |event: notify::Result<Event>| {
        if let Ok(event) = &event {
            if takes_the_folder_away(event, &folder) {
                gone.store(true, Ordering::Relaxed);
            }
        }
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

/// True when `event` removes or renames the watched `folder` itself: a folder made again at
/// its path is another one, which the scan that finds it watches anew.
fn takes_the_folder_away(event: &Event, folder: &Path) -> bool {
    matches!(
        event.kind,
        EventKind::Remove(_) | EventKind::Modify(ModifyKind::Name(_))
    ) && event.paths.iter().any(|path| path == folder)
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
    use crate::config::upload_sources::tests::source;
    use notify::event::{CreateKind, ModifyKind, RemoveKind};
    use std::time::{Duration, Instant};

    /// Uploads of one `onChange` source of the folder `folder`.
    fn uploads_of(folder: &Path) -> Arc<Uploads> {
        let json = format!(
            r#"[{{"name":"s","folder":{:?},"patterns":["*"],"objectType":"t","triggers":{{"onChange":{{}}}}}}]"#,
            folder.display().to_string()
        );
        Arc::new(Uploads {
            sources: source(&json).unwrap(),
            board: Default::default(),
            requested: Default::default(),
            wake: tokio::sync::Notify::new(),
            changed: Default::default(),
        })
    }

    /// Writes a file into `folder` until the source is marked changed, for a few seconds.
    fn changes_seen(uploads: &Uploads, folder: &Path) -> bool {
        uploads.take_changed();
        let deadline = Instant::now() + Duration::from_secs(5);
        while Instant::now() < deadline {
            std::fs::write(folder.join("a"), b"x").unwrap();
            if uploads.take_changed().contains(&0) {
                return true;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        false
    }

    #[test]
    fn a_folder_made_again_is_watched_again() {
        let dir = tempfile::tempdir().unwrap();
        let folder = dir.path().join("in");
        std::fs::create_dir(&folder).unwrap();
        let uploads = uploads_of(&folder);
        let mut watches = FolderWatches::start(&uploads);
        assert!(changes_seen(&uploads, &folder), "a write in the folder is a change");
        std::fs::remove_dir_all(&folder).unwrap();
        std::fs::create_dir(&folder).unwrap();
        let gone = watches.watchers[0].as_ref().map(|(_, gone)| gone.clone()).unwrap();
        let deadline = Instant::now() + Duration::from_secs(5);
        while !gone.load(Ordering::Relaxed) {
            assert!(Instant::now() < deadline, "the removal was not seen");
            std::thread::sleep(Duration::from_millis(10));
        }
        watches.retry(&uploads, 0);
        assert!(changes_seen(&uploads, &folder), "the folder made again is watched");
    }

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
