//! Object data in files named by data URIs, on an ESS (spec: lifecycle.md §10): the
//! `sourceDataUri` file of an own object, read for the upload to the CSS and for GET data,
//! and the `destinationDataUri` file a received copy's data is written to, served from and
//! removed with the copy. Every use confines the path again (`data_uri`), because the file
//! system may have changed since the URI was accepted.
//!
//! The source file must still be what the PUT described (the flaw fix of §10): the same size
//! as `objectSize` and not modified after the instance was stored. Instance IDs are taken
//! from the clock in nanoseconds (`InstanceClock`), so `dataID` is the moment the file was
//! measured; a file modified later is refused instead of sending other bytes than announced.

use super::data_uri::{self, checked_path, confined_file, confined_target, open_confined, DataUriError, Field};
use super::Node;
use crate::model::{DataLocation, MetaData, ObjectRecord, Role};
use crate::store::blobs::{BlobError, DataSource};
use std::fs::Metadata;
use std::path::Path;

/// Where to read an object's data, owned so that it can be kept across an upload; files named
/// by data URIs are checked again on every open.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DataFile {
    /// Data of the node's store, by name.
    Stored(String),
    /// An own object's `sourceDataUri` file, with the size and data ID recorded at PUT.
    Source { uri: String, size: u64, data_id: i64 },
    /// A received copy's `destinationDataUri` file.
    Destination { uri: String },
}

/// Why a data file could not be opened.
#[derive(Debug, thiserror::Error)]
pub enum DataFileError {
    #[error("the data file does not exist")]
    Missing,
    /// The file breaks a data URI rule or changed after the object was stored.
    #[error("{0}")]
    Refused(String),
    #[error("cannot read the data: {0}")]
    Io(#[from] std::io::Error),
}

impl From<DataUriError> for DataFileError {
    fn from(e: DataUriError) -> Self {
        match e {
            DataUriError::Missing { .. } => Self::Missing,
            refused => Self::Refused(refused.to_string()),
        }
    }
}

impl Node {
    /// Where the data of `record` is read from on this node; `None` when it has none.
    pub fn data_file(&self, record: &ObjectRecord) -> Option<DataFile> {
        Some(match record.data_location(self.role())? {
            DataLocation::Stored(name) => DataFile::Stored(name.to_string()),
            DataLocation::SourceFile(uri) => DataFile::Source {
                uri: uri.to_string(),
                size: u64::try_from(record.meta.object_size).unwrap_or(0),
                data_id: record.meta.data_id,
            },
            DataLocation::DestinationFile(uri) => DataFile::Destination { uri: uri.to_string() },
        })
    }

    /// Opens data for reading; returns it with its length.
    pub async fn open_data_file(&self, file: &DataFile) -> Result<(DataSource, u64), DataFileError> {
        if let DataFile::Stored(name) = file {
            return match self.0.blobs.open_data(name).await {
                Ok(Some(opened)) => Ok(opened),
                Ok(None) => Err(DataFileError::Missing),
                Err(BlobError::Io(e)) => Err(DataFileError::Io(e)),
                Err(e) => Err(DataFileError::Io(std::io::Error::other(e))),
            };
        }
        let (rules, file) = (self.0.data_uri_rules.clone(), file.clone());
        let (file, meta) = tokio::task::spawn_blocking(move || open_blocking(&rules, &file))
            .await
            .map_err(|e| DataFileError::Io(std::io::Error::other(e)))??;
        Ok((DataSource::File(tokio::fs::File::from_std(file)), meta.len()))
    }

    /// The data URI rules of a PUT object request that passed validation, as the 400 text on
    /// failure. A CSS checks only the syntax of `destinationDataUri`, whose file is on the
    /// receiving edge nodes; an ESS confines its `sourceDataUri` file and requires it not to
    /// be newer than the instance being stored (else later changes would go unnoticed).
    pub(super) fn check_put_data_uris(&self, meta: &MetaData, instance_id: i64) -> Result<(), String> {
        let rules = &self.0.data_uri_rules;
        match self.role() {
            Role::Css if !meta.destination_data_uri.is_empty() => {
                checked_path(&meta.destination_data_uri, Field::Destination, &rules.extensions)
                    .map(drop)
                    .map_err(|e| e.to_string())
            }
            Role::Ess if !meta.source_data_uri.is_empty() => {
                let path = confined_file(&meta.source_data_uri, Field::Source, rules).map_err(|e| e.to_string())?;
                let modified = std::fs::metadata(&path).map(|m| modified_nanos(&m)).unwrap_or(0);
                if modified > instance_id {
                    return Err(format!(
                        "Invalid source data URI: {} has a modification time in the future, so later changes could not be detected",
                        path.display()
                    ));
                }
                Ok(())
            }
            _ => Ok(()),
        }
    }

    /// The size of the file a `sourceDataUri` names (0 when it cannot be used).
    pub(super) fn source_len(&self, uri: &str) -> u64 {
        confined_file(uri, Field::Source, &self.0.data_uri_rules)
            .ok()
            .and_then(|path| std::fs::metadata(path).ok())
            .map_or(0, |m| m.len())
    }

    /// ESS: the reason an incoming copy's `destinationDataUri` cannot be used here, if any,
    /// so the CSS learns of it before any data moves.
    pub(super) fn refused_destination(&self, meta: &MetaData) -> Option<String> {
        if !writes_destination_file(meta) {
            return None;
        }
        confined_target(&meta.destination_data_uri, Field::Destination, &self.0.data_uri_rules)
            .err()
            .map(|e| e.to_string())
    }

    /// Moves the complete, verified data file `name` of a received copy to its destination
    /// file: renamed (or, across file systems, copied) to `{path}.tmp`, then renamed to
    /// `{path}`, both durable. The data file is gone afterwards whatever the outcome; on
    /// failure no `{path}.tmp` is left.
    pub(super) async fn place_destination_file(&self, uri: &str, name: &str) -> Result<(), String> {
        let Some(data) = self.0.blobs.file_path(name) else {
            // Only an ESS places destination files, and an ESS keeps its data in files.
            return Err("data kept in a database cannot be placed in a destination file".into());
        };
        let (rules, uri) = (self.0.data_uri_rules.clone(), uri.to_string());
        tokio::task::spawn_blocking(move || place(&rules, &uri, &data))
            .await
            .unwrap_or_else(|e| Err(e.to_string()))
    }

    /// Removes a copy's destination file and its temporary file, when the copy kept its data
    /// there. The directory is confined again first, so that a directory swapped for a symlink
    /// cannot make the removal reach outside the roots.
    pub(super) async fn discard_destination_file(&self, copy: Option<&ObjectRecord>) {
        let Some(copy) = copy.filter(|c| self.role() == Role::Ess && c.data_in_destination_file()) else {
            return;
        };
        self.remove_destination_file(&copy.meta.destination_data_uri).await;
    }

    /// Removes `{path}` and `{path}.tmp` of a destination URI.
    pub(super) async fn remove_destination_file(&self, uri: &str) {
        match confined_target(uri, Field::Destination, &self.0.data_uri_rules) {
            Ok(target) => {
                for path in [target.path(), target.tmp_path()] {
                    remove_quietly(&path).await;
                }
            }
            Err(e) => tracing::warn!(error = %e, "not removing a destination data file"),
        }
    }
}

/// Opens a data URI file (stored data is opened by the blob store).
fn open_blocking(rules: &data_uri::Rules, file: &DataFile) -> Result<(std::fs::File, Metadata), DataFileError> {
    match file {
        DataFile::Stored(_) => Err(DataFileError::Missing),
        DataFile::Source { uri, size, data_id } => {
            let (file, meta) = open_confined(uri, Field::Source, rules)?;
            check_unchanged(&meta, *size, *data_id).map_err(DataFileError::Refused)?;
            Ok((file, meta))
        }
        DataFile::Destination { uri } => Ok(open_confined(uri, Field::Destination, rules)?),
    }
}

/// True when a received copy's data goes to its `destinationDataUri` file.
pub(super) fn writes_destination_file(meta: &MetaData) -> bool {
    !meta.destination_data_uri.is_empty() && !meta.no_data && meta.link.is_empty()
}

/// The source file must be what the PUT measured.
fn check_unchanged(meta: &Metadata, size: u64, data_id: i64) -> Result<(), String> {
    if meta.len() != size {
        return Err(format!(
            "The source data file changed after the object was stored: it has {} bytes, objectSize is {size}",
            meta.len()
        ));
    }
    if modified_nanos(meta) > data_id {
        return Err("The source data file was modified after the object was stored".into());
    }
    Ok(())
}

/// Modification time in nanoseconds since the epoch, comparable with instance IDs.
fn modified_nanos(meta: &Metadata) -> i64 {
    meta.modified()
        .ok()
        .and_then(|t| t.duration_since(std::time::UNIX_EPOCH).ok())
        .map_or(0, |d| i64::try_from(d.as_nanos()).unwrap_or(i64::MAX))
}

fn place(rules: &data_uri::Rules, uri: &str, data: &Path) -> Result<(), String> {
    let result = confined_target(uri, Field::Destination, rules)
        .map_err(|e| e.to_string())
        .and_then(|target| {
            let tmp = target.tmp_path();
            let placed = write_tmp(data, &tmp)
                .map_err(|e| format!("cannot write {}: {e}", tmp.display()))
                .and_then(|()| rename_into_place(&target));
            if placed.is_err() {
                let _ = std::fs::remove_file(&tmp);
            }
            placed
        });
    match std::fs::remove_file(data) {
        Err(e) if e.kind() != std::io::ErrorKind::NotFound => {
            tracing::warn!(error = %e, "could not remove a data file")
        }
        _ => {}
    }
    result
}

/// Puts the data at `tmp`: a rename when both are on one file system (the data file is
/// durable already), else a streamed copy made durable.
fn write_tmp(data: &Path, tmp: &Path) -> std::io::Result<()> {
    // A leftover `.tmp` (even a symlink planted there) goes; the rename or the exclusive
    // create below then never writes through a link.
    match std::fs::remove_file(tmp) {
        Err(e) if e.kind() != std::io::ErrorKind::NotFound => return Err(e),
        _ => {}
    }
    if std::fs::rename(data, tmp).is_ok() {
        return Ok(());
    }
    copy_durably(data, tmp)
}

/// Streams `data` into a new file `tmp` (never through an existing link) and syncs it.
fn copy_durably(data: &Path, tmp: &Path) -> std::io::Result<()> {
    let mut from = std::fs::File::open(data)?;
    let mut to = std::fs::OpenOptions::new().write(true).create_new(true).open(tmp)?;
    std::io::copy(&mut from, &mut to)?;
    to.sync_all()
}

fn rename_into_place(target: &data_uri::Target) -> Result<(), String> {
    let path = target.path();
    if !target.still_in_place() {
        return Err(format!(
            "Invalid destination data URI: the directory of {} changed while the data was written",
            path.display()
        ));
    }
    std::fs::rename(target.tmp_path(), &path)
        .and_then(|()| std::fs::File::open(&target.dir)?.sync_all())
        .map_err(|e| format!("cannot write {}: {e}", path.display()))
}

async fn remove_quietly(path: &Path) {
    if let Err(e) = tokio::fs::remove_file(path).await {
        if e.kind() != std::io::ErrorKind::NotFound {
            tracing::warn!(error = %e, path = %path.display(), "could not remove a destination data file");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::path::PathBuf;

    struct Fixture {
        _dir: tempfile::TempDir,
        root: PathBuf,
        outside: PathBuf,
        rules: data_uri::Rules,
    }

    fn fixture() -> Fixture {
        let dir = tempfile::tempdir().unwrap();
        let (root, outside) = (dir.path().join("root"), dir.path().join("outside"));
        for d in [&root, &outside, &dir.path().join("store")] {
            std::fs::create_dir_all(d).unwrap();
        }
        let rules = data_uri::Rules {
            roots: vec![root.clone()],
            ..Default::default()
        };
        Fixture {
            root,
            outside,
            rules,
            _dir: dir,
        }
    }

    fn data_file(f: &Fixture, contents: &[u8]) -> PathBuf {
        let path = f.root.parent().unwrap().join("store/1.bin");
        std::fs::write(&path, contents).unwrap();
        path
    }

    #[test]
    fn placing_renames_the_data_into_the_destination_file() {
        let f = fixture();
        let data = data_file(&f, b"payload");
        std::fs::write(f.root.join("out.bin"), b"previous").unwrap();
        let uri = format!("file://{}", f.root.join("out.bin").display());
        place(&f.rules, &uri, &data).unwrap();
        assert_eq!(std::fs::read(f.root.join("out.bin")).unwrap(), b"payload");
        assert!(!f.root.join("out.bin.tmp").exists());
        assert!(!data.exists());
    }

    #[test]
    fn a_planted_tmp_link_is_replaced_not_written_through() {
        let f = fixture();
        let victim = f.outside.join("victim.bin");
        std::fs::write(&victim, b"untouched").unwrap();
        std::os::unix::fs::symlink(&victim, f.root.join("out.bin.tmp")).unwrap();
        let data = data_file(&f, b"payload");
        let uri = format!("file://{}", f.root.join("out.bin").display());
        place(&f.rules, &uri, &data).unwrap();
        assert_eq!(std::fs::read(&victim).unwrap(), b"untouched");
        assert_eq!(std::fs::read(f.root.join("out.bin")).unwrap(), b"payload");
    }

    #[test]
    fn a_refused_destination_leaves_nothing_behind() {
        let f = fixture();
        let data = data_file(&f, b"payload");
        let uri = format!("file://{}", f.outside.join("out.bin").display());
        let refusal = place(&f.rules, &uri, &data).unwrap_err();
        assert!(refusal.contains("outside the allowed data directories"), "{refusal}");
        assert!(!f.outside.join("out.bin").exists() && !f.outside.join("out.bin.tmp").exists());
        assert!(!data.exists(), "the downloaded data is discarded");
    }

    #[test]
    fn the_copy_fallback_streams_and_refuses_existing_files() {
        let f = fixture();
        let data = data_file(&f, &[7u8; 200_000]);
        let tmp = f.root.join("copy.bin.tmp");
        copy_durably(&data, &tmp).unwrap();
        assert_eq!(std::fs::read(&tmp).unwrap(), vec![7u8; 200_000]);
        assert!(copy_durably(&data, &tmp).is_err(), "never opens an existing path");
    }

    #[test]
    fn a_source_file_must_keep_its_size_and_age() {
        let f = fixture();
        let path = f.root.join("in.bin");
        std::fs::write(&path, b"12345").unwrap();
        let meta = std::fs::metadata(&path).unwrap();
        let stored_at = modified_nanos(&meta) + 1;
        assert_eq!(check_unchanged(&meta, 5, stored_at), Ok(()));
        assert!(check_unchanged(&meta, 4, stored_at)
            .unwrap_err()
            .contains("it has 5 bytes, objectSize is 4"));
        assert!(check_unchanged(&meta, 5, stored_at - 2)
            .unwrap_err()
            .contains("modified after the object was stored"));
    }
}
