//! Looking at a source's folder: the matching files with their size and modification time,
//! and which of them have settled (kept both unchanged for the source's settle time, the
//! sign that whoever writes them is done). The scan decides what is sent; file-system events
//! (`watch`) only bring it early: it needs nothing of the platform, sees files written before
//! the start, and a missed event cannot leave a file behind.

use crate::clock::Instant;
use crate::config::UploadSource as Source;
use std::collections::HashMap;
use std::path::Path;
use std::time::Duration;

/// What a file looked like when it was seen.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Seen {
    pub size: u64,
    pub mtime_nanos: i64,
}

/// Reads a file's size and modification time; `None` when it is not a regular file.
pub fn look(path: &Path) -> Option<Seen> {
    let meta = std::fs::symlink_metadata(path).ok()?;
    if !meta.is_file() {
        return None;
    }
    let mtime = meta.modified().ok()?;
    let nanos = match mtime.duration_since(std::time::UNIX_EPOCH) {
        Ok(after) => i64::try_from(after.as_nanos()).unwrap_or(i64::MAX),
        Err(before) => -i64::try_from(before.duration().as_nanos()).unwrap_or(i64::MAX),
    };
    Some(Seen {
        size: meta.len(),
        mtime_nanos: nanos,
    })
}

/// The files of `source` its patterns want, by path relative to the folder (`/`-separated),
/// sorted. Subfolders are walked; symbolic links are not followed (a link could lead out of
/// the folder or into a loop). An error when the folder itself cannot be read (missing, not
/// mounted): that is not a folder without files. Blocking: run it off the async threads.
pub fn matching_files(source: &Source) -> std::io::Result<Vec<(String, Seen)>> {
    std::fs::read_dir(&source.folder)?;
    let mut found = Vec::new();
    let mut folders = vec![(source.folder.clone(), String::new())];
    while let Some((folder, prefix)) = folders.pop() {
        let Ok(entries) = std::fs::read_dir(&folder) else {
            continue;
        };
        for entry in entries.flatten() {
            let Ok(name) = entry.file_name().into_string() else {
                continue;
            };
            let relpath = format!("{prefix}{name}");
            let Ok(kind) = entry.file_type() else {
                continue;
            };
            if kind.is_dir() {
                folders.push((entry.path(), format!("{relpath}/")));
            } else if kind.is_file() && source.wants(&relpath) {
                if let Some(seen) = look(&entry.path()) {
                    found.push((relpath, seen));
                }
            }
        }
    }
    found.sort_by(|a, b| a.0.cmp(&b.0));
    Ok(found)
}

/// Since when each file of a source has looked the same.
#[derive(Debug, Default)]
pub struct Settling {
    since: HashMap<String, (Seen, Instant)>,
}

impl Settling {
    /// Records this look at the files (files no longer there are forgotten) and returns
    /// those unchanged for at least `settle`: seen alike for that long, or last modified
    /// longer ago than that (wall time `now_nanos`), so that files already complete when
    /// first seen need not wait.
    pub fn observe(
        &mut self,
        files: Vec<(String, Seen)>,
        settle: Duration,
        now: Instant,
        now_nanos: i64,
    ) -> Vec<(String, Seen)> {
        let settle_nanos = i64::try_from(settle.as_nanos()).unwrap_or(i64::MAX);
        let mut next = HashMap::with_capacity(files.len());
        let mut settled = Vec::new();
        for (relpath, seen) in files {
            let since = match self.since.get(&relpath) {
                Some(&(before, since)) if before == seen => since,
                _ => now,
            };
            let old_enough = now_nanos.saturating_sub(seen.mtime_nanos) >= settle_nanos;
            if old_enough || now.duration_since(since) >= settle {
                settled.push((relpath.clone(), seen));
            }
            next.insert(relpath, (seen, since));
        }
        self.since = next;
        settled
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test(start_paused = true)]
    async fn a_file_settles_once_unchanged_for_the_settle_time() {
        let mut settling = Settling::default();
        let settle = Duration::from_secs(2);
        // Wall time: the files were just written, and the clock is not moved on.
        let wall = 1_000_000_000_000;
        let a = Seen {
            size: 1,
            mtime_nanos: wall,
        };
        let grown = Seen {
            size: 2,
            mtime_nanos: wall,
        };
        let start = Instant::now();
        assert!(settling.observe(vec![("a".into(), a)], settle, start, wall).is_empty());
        let later = start + Duration::from_secs(1);
        assert!(settling
            .observe(vec![("a".into(), grown)], settle, later, wall)
            .is_empty());
        let settled = settling.observe(vec![("a".into(), grown)], settle, later + settle, wall);
        assert_eq!(settled, vec![("a".to_string(), grown)]);
        assert!(settling
            .observe(Vec::new(), settle, later + settle * 2, wall)
            .is_empty());
        assert!(settling.since.is_empty(), "a file gone is forgotten");
        // A file last modified longer ago than the settle time is complete at first sight.
        let old = Seen {
            size: 3,
            mtime_nanos: wall - 3_000_000_000,
        };
        let settled = settling.observe(vec![("old".into(), old)], settle, later, wall);
        assert_eq!(settled, vec![("old".to_string(), old)]);
    }

    #[test]
    fn the_walk_finds_matching_files_in_subfolders() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir_all(dir.path().join("sub/deeper")).unwrap();
        for file in ["a.log", "b.txt", "sub/c.log", "sub/deeper/d.log"] {
            std::fs::write(dir.path().join(file), file).unwrap();
        }
        let json = format!(
            r#"[{{"name":"s","folder":{:?},"patterns":["*.log"],"objectType":"t","triggers":{{"explicit":true}}}}]"#,
            dir.path().display().to_string()
        );
        let source = crate::config::upload_sources::parse(json.as_bytes(), Path::new("/"))
            .unwrap()
            .remove(0);
        let names: Vec<String> = matching_files(&source).unwrap().into_iter().map(|(p, _)| p).collect();
        assert_eq!(names, ["a.log", "sub/c.log", "sub/deeper/d.log"]);
        std::fs::remove_dir_all(dir.path()).unwrap();
        assert!(
            matching_files(&source).is_err(),
            "a missing folder is an error, not no files"
        );
    }
}
