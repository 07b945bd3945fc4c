//! `edge-sync-service -c sync.conf --copy-data-into-database`: moves a CSS on PostgreSQL that
//! kept object data in files (a folder shared by its instances, `ObjectDataStorage files`)
//! to data in the database.
//!
//! Every data file an object names is copied into the database in one transaction of its
//! own, hashed (SHA-256) as it is read, and then read back from the database and hashed
//! again: the copy counts only when both hashes and both sizes agree. Data already in the
//! database is not copied again but verified the same way against its file, so the command
//! may be run again after an interruption (it continues with what is left) or as a check
//! before switching. A difference between a file and the database's copy is reported, not
//! overwritten: a copy is atomic, so a difference means one of them changed since.

use crate::config::{Config, StorageKind};
use crate::store::blobs::{BlobStore, RunningHash};
use crate::store::postgres::PostgresStore;
use crate::store::Store;
use sha2::Digest;
use std::path::{Path, PathBuf};
use std::time::Duration;

/// What the copy found, object data by object data.
#[derive(Debug, Default)]
pub struct CopySummary {
    /// Copied now and verified.
    pub copied: Vec<String>,
    /// In the database already, and equal to its file.
    pub verified: Vec<String>,
    /// Named by an object, but the file is not in the folder.
    pub missing: Vec<String>,
    /// The file and the database's copy differ (with what differs).
    pub differing: Vec<(String, String)>,
    /// Bytes copied now.
    pub bytes: u64,
}

impl CopySummary {
    /// True when every object's data is in the database and equal to its file.
    pub fn complete(&self) -> bool {
        self.missing.is_empty() && self.differing.is_empty()
    }
}

impl std::fmt::Display for CopySummary {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        writeln!(
            f,
            "copied {} ({} bytes), already in the database and verified {}, missing files {}, differing {}",
            self.copied.len(),
            self.bytes,
            self.verified.len(),
            self.missing.len(),
            self.differing.len()
        )?;
        for name in &self.missing {
            writeln!(f, "missing: {name} (an object names it; no such file)")?;
        }
        for (name, why) in &self.differing {
            writeln!(f, "differs: {name}: {why}")?;
        }
        Ok(())
    }
}

/// The folder of the data files of a CSS on PostgreSQL that keeps them in files.
pub fn data_folder(config: &Config) -> PathBuf {
    config.persistence_root_path.join("sync").join("objects")
}

/// Copies the data files of the configuration's CSS into its database; `progress` is told
/// of each data as it is done.
pub async fn copy_into_database(config: &Config, progress: &dyn Fn(&str)) -> Result<CopySummary, String> {
    if config.storage_provider != StorageKind::Postgres {
        return Err("copying object data into the database needs StorageProvider postgres and its PostgresURL".into());
    }
    let folder = data_folder(config);
    if !folder.join("data").is_dir() {
        return Err(format!("there is no data folder at {}", folder.join("data").display()));
    }
    let tls = crate::tls::postgres_client_config(config).map_err(|e| e.to_string())?;
    let budget = Duration::from_secs(u64::try_from(config.database_connect_timeout).unwrap_or(0));
    let (store, _) = PostgresStore::connect(config.postgres_url.expose(), tls, budget)
        .await
        .map_err(|e| format!("cannot open the database: {e}"))?;
    let database = BlobStore::in_database(store.data().map_err(|e| e.to_string())?);
    let files = BlobStore::open(&folder).map_err(|e| format!("cannot open {}: {e}", folder.display()))?;
    let mut names = store.referenced_blobs().await.map_err(|e| e.to_string())?;
    names.sort_unstable();
    names.dedup();
    let mut summary = CopySummary::default();
    for name in names {
        let Some(path) = files.file_path(&name) else {
            continue;
        };
        match copy_one(&files, &database, &name, &path).await {
            Ok(Outcome::Copied(bytes)) => {
                progress(&format!("copied {name} ({bytes} bytes)"));
                summary.bytes += bytes;
                summary.copied.push(name);
            }
            Ok(Outcome::Verified) => {
                progress(&format!("verified {name}"));
                summary.verified.push(name);
            }
            Ok(Outcome::Missing) => {
                progress(&format!("missing {name}"));
                summary.missing.push(name);
            }
            Ok(Outcome::Differs(why)) => {
                progress(&format!("differs {name}: {why}"));
                summary.differing.push((name, why));
            }
            Err(e) => return Err(format!("copying {name} failed: {e}")),
        }
    }
    store.close();
    Ok(summary)
}

enum Outcome {
    Copied(u64),
    Verified,
    Missing,
    Differs(String),
}

fn sha256() -> RunningHash {
    Box::new(sha2::Sha256::new())
}

/// Copies (or, when present, verifies) one data.
async fn copy_one(files: &BlobStore, database: &BlobStore, name: &str, path: &Path) -> Result<Outcome, String> {
    let Some((source, file_len)) = files.open_data(name).await.map_err(|e| e.to_string())? else {
        return Ok(Outcome::Missing);
    };
    let present = database.open_data(name).await.map_err(|e| e.to_string())?;
    if let Some((_, stored_len)) = present {
        drop(source);
        if stored_len != file_len {
            return Ok(Outcome::Differs(format!(
                "the file has {file_len} bytes, the database {stored_len}"
            )));
        }
        let file_hash = files.digest(name, sha256()).await.map_err(|e| e.to_string())?;
        let stored_hash = database.digest(name, sha256()).await.map_err(|e| e.to_string())?;
        if file_hash != stored_hash {
            return Ok(Outcome::Differs("same size, different SHA-256".into()));
        }
        return Ok(Outcome::Verified);
    }
    let body = source.range_stream(0, file_len).await.map_err(|e| e.to_string())?;
    let written = database
        .write_whole(name, body, u64::MAX, Some(sha256()))
        .await
        .map_err(|e| e.to_string())?;
    let read_hash = written.hash.map(|hash| hash.finalize()).unwrap_or_default();
    let stored_hash = database.digest(name, sha256()).await.map_err(|e| e.to_string())?;
    let now_len = std::fs::metadata(path).map(|m| m.len()).unwrap_or(0);
    if written.len != file_len || now_len != file_len {
        return Ok(Outcome::Differs(format!(
            "the file changed while it was copied ({file_len} bytes, then {} read, {now_len} now)",
            written.len
        )));
    }
    if read_hash != stored_hash {
        return Ok(Outcome::Differs(
            "the database's copy does not hash as the bytes sent".into(),
        ));
    }
    Ok(Outcome::Copied(file_len))
}
