//! What was uploaded, kept across restarts in one small JSON file: per source and file, the
//! size, modification time and SHA-256 that were sent and the object they became, or that a
//! send was wanted and not finished. Written whole to a temporary file, synced and renamed
//! over the old one, so a crash leaves either the previous state or the new one.

use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::io::Write;
use std::path::{Path, PathBuf};

/// One file of a source, as last recorded.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct FileRecord {
    /// True once the object was created with this file's data; false while a send was
    /// wanted but is not done (redone after a restart).
    pub created: bool,
    /// True once the CSS acknowledged the object.
    #[serde(default)]
    pub delivered: bool,
    pub size: u64,
    pub mtime_nanos: i64,
    #[serde(default)]
    pub sha256: String,
    #[serde(default)]
    pub object_id: String,
    #[serde(default)]
    pub instance_id: i64,
}

/// Every source's files: source name -> path relative to its folder -> record.
pub type Files = BTreeMap<String, BTreeMap<String, FileRecord>>;

#[derive(Debug, Default, Serialize, Deserialize)]
struct StateFile {
    sources: Files,
}

/// The state file and its contents.
#[derive(Debug, Clone)]
pub struct UploadState {
    path: PathBuf,
    pub files: Files,
}

impl UploadState {
    /// Reads `path`; a missing file is an empty state. An unreadable one is set aside
    /// (renamed `.bad`) with a warning and the state starts empty: files are then sent
    /// again, which is better than never again.
    pub fn load(path: &Path) -> Self {
        let files = match std::fs::read(path) {
            Ok(bytes) => match serde_json::from_slice::<StateFile>(&bytes) {
                Ok(state) => state.sources,
                Err(e) => {
                    let aside = path.with_extension("bad");
                    tracing::warn!(path = %path.display(), error = %e, "uploads: the state file is not readable; set aside, starting empty");
                    let _ = std::fs::rename(path, aside);
                    Files::new()
                }
            },
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Files::new(),
            Err(e) => {
                tracing::warn!(path = %path.display(), error = %e, "uploads: cannot read the state file; starting empty");
                Files::new()
            }
        };
        Self {
            path: path.to_path_buf(),
            files,
        }
    }

    /// The record of `relpath` in `source`.
    pub fn get(&self, source: &str, relpath: &str) -> Option<&FileRecord> {
        self.files.get(source)?.get(relpath)
    }

    /// Sets the record of `relpath` in `source`.
    pub fn set(&mut self, source: &str, relpath: &str, record: FileRecord) {
        self.files
            .entry(source.to_string())
            .or_default()
            .insert(relpath.to_string(), record);
    }

    /// Forgets the records of `source` that `keep` refuses; returns the paths forgotten.
    pub fn forget(&mut self, source: &str, keep: impl Fn(&str, &FileRecord) -> bool) -> Vec<String> {
        let Some(files) = self.files.get_mut(source) else {
            return Vec::new();
        };
        let gone: Vec<String> = files
            .iter()
            .filter(|(relpath, record)| !keep(relpath, record))
            .map(|(relpath, _)| relpath.clone())
            .collect();
        for relpath in &gone {
            files.remove(relpath);
        }
        gone
    }

    /// Writes the state: temporary file, fsync, rename, fsync of the folder.
    pub fn save(&self) -> std::io::Result<()> {
        let json = serde_json::to_vec_pretty(&StateFile {
            sources: self.files.clone(),
        })
        .map_err(std::io::Error::other)?;
        let folder = self.path.parent().unwrap_or(Path::new("."));
        std::fs::create_dir_all(folder)?;
        let temporary = folder.join(format!(".uploads-state-{:016x}.tmp", crate::random::u64()));
        let written = (|| {
            let mut file = std::fs::File::create(&temporary)?;
            file.write_all(&json)?;
            file.sync_all()?;
            std::fs::rename(&temporary, &self.path)
        })();
        if written.is_err() {
            let _ = std::fs::remove_file(&temporary);
        }
        written?;
        // The rename is durable once the folder's entry is.
        std::fs::File::open(folder)?.sync_all()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn record(size: u64) -> FileRecord {
        FileRecord {
            created: true,
            delivered: false,
            size,
            mtime_nanos: 5,
            sha256: "ab".into(),
            object_id: "x".into(),
            instance_id: 9,
        }
    }

    #[test]
    fn a_saved_state_is_read_back() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("uploads").join("state.json");
        let mut state = UploadState::load(&path);
        assert!(state.files.is_empty());
        state.set("logs", "a/b.log", record(3));
        state.save().unwrap();
        let again = UploadState::load(&path);
        assert_eq!(again.get("logs", "a/b.log"), Some(&record(3)));
        let leftovers: Vec<_> = std::fs::read_dir(path.parent().unwrap()).unwrap().collect();
        assert_eq!(leftovers.len(), 1, "no temporary file is left");
    }

    #[test]
    fn records_are_forgotten_as_asked() {
        let mut state = UploadState::load(Path::new("unused.json"));
        state.set("logs", "a", record(1));
        state.set("logs", "b", record(2));
        let forgotten = state.forget("logs", |relpath, _| relpath == "b");
        assert_eq!(forgotten, ["a"]);
        assert!(state.get("logs", "a").is_none() && state.get("logs", "b").is_some());
        assert!(state.forget("other", |_, _| false).is_empty());
    }

    #[test]
    fn a_damaged_state_is_set_aside() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("state.json");
        std::fs::write(&path, b"{not json").unwrap();
        let state = UploadState::load(&path);
        assert!(state.files.is_empty());
        assert!(dir.path().join("state.bad").exists());
    }
}
