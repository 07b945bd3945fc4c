//! Where each upload stands, per source and file, as `GET /api/v1/uploads` shows it.

use parking_lot::Mutex;
use serde::Serialize;
use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU64, Ordering};

/// The step an upload is at.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub enum Phase {
    /// Chosen by a trigger, waiting its turn.
    Selected,
    /// Being read into the object's data while its SHA-256 is computed.
    Hashing,
    /// The object exists on the ESS; the CSS has not acknowledged it yet.
    Sending,
    /// The CSS acknowledged the object.
    Delivered,
    /// The last attempt failed (see `reason`); retried at the next trigger.
    Failed,
}

/// One file's upload.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct UploadStatus {
    pub source: String,
    pub path: String,
    pub phase: Phase,
    #[serde(skip_serializing_if = "String::is_empty")]
    pub reason: String,
    #[serde(rename = "objectType")]
    pub object_type: String,
    #[serde(rename = "objectID", skip_serializing_if = "String::is_empty")]
    pub object_id: String,
    pub size: u64,
    #[serde(skip_serializing_if = "String::is_empty")]
    pub sha256: String,
    /// Unix seconds of the last change of phase.
    pub updated: i64,
}

/// Every file's latest status.
#[derive(Debug, Default)]
pub struct StatusBoard {
    entries: Mutex<BTreeMap<(String, String), UploadStatus>>,
    /// Counts the changes, so that a reader can tell whether anything changed since.
    changes: AtomicU64,
}

impl StatusBoard {
    /// Sets (or replaces) the status of a file.
    pub fn put(&self, status: UploadStatus) {
        let key = (status.source.clone(), status.path.clone());
        self.entries.lock().insert(key, status);
        self.changes.fetch_add(1, Ordering::Relaxed);
    }

    /// Changes the phase (and reason) of a file already on the board.
    pub fn phase(&self, source: &str, path: &str, phase: Phase, reason: &str) {
        if let Some(entry) = self.entries.lock().get_mut(&(source.to_string(), path.to_string())) {
            entry.phase = phase;
            entry.reason = reason.to_string();
            entry.updated = crate::clock::now_secs();
            self.changes.fetch_add(1, Ordering::Relaxed);
        }
    }

    /// Takes a file off the board.
    pub fn remove(&self, source: &str, path: &str) {
        if self
            .entries
            .lock()
            .remove(&(source.to_string(), path.to_string()))
            .is_some()
        {
            self.changes.fetch_add(1, Ordering::Relaxed);
        }
    }

    /// Every status, by source then path.
    pub fn all(&self) -> Vec<UploadStatus> {
        self.entries.lock().values().cloned().collect()
    }

    /// How many changes the board has seen.
    pub fn changes(&self) -> u64 {
        self.changes.load(Ordering::Relaxed)
    }
}
