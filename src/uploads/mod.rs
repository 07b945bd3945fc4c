//! Files from the edge: an ESS configured with upload sources (`UploadSources`) turns files
//! of its folders into objects, which it then delivers to the CSS like any object its
//! applications create.
//!
//! - [`sources`]: which files a source (`config::UploadSource`) wants, and their object IDs.
//! - [`scan`]: the folders' matching files and when they have settled.
//! - [`send`]: one file read into an object's data while hashed, checked unchanged after.
//! - [`sign`]: the signature of the data, for sources with a signing key.
//! - [`state`]: what was uploaded, kept across restarts.
//! - [`status`]: where each upload stands, for `GET /api/v1/uploads`;
//!   `report`: the same list sent to the CSS as an object of the node.
//! - [`worker`]: the triggers (periodic, on change, explicit, remote) and the one task that
//!   acts on them; `watch`: the file-system events that hasten the `onChange` looks.
//!
//! Objects are created through the engine directly (not over HTTP), as the ESS's own
//! objects, by an internal identity of the ESS's organization.

mod report;
pub mod scan;
pub mod send;
pub mod sign;
pub mod sources;
pub mod state;
pub mod status;
mod watch;
mod worker;

use crate::auth::{Identity, IdentityKind};
use crate::config::UploadSource;
use crate::engine::Node;
use parking_lot::Mutex;
use status::{StatusBoard, UploadStatus};
use std::collections::HashSet;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

pub use report::UPLOAD_STATUS_TYPE;
pub use sources::UPLOAD_REQUEST_TYPE;

/// The user the ESS creates uploaded objects as (their `ownerID` is `{org}/edge-uploads`).
const UPLOADER: &str = "edge-uploads";

/// Why an explicit trigger was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TriggerError {
    #[error("no upload source is named {0:?}")]
    UnknownSource(String),
    #[error("the upload source {0:?} does not allow explicit triggers (triggers.explicit)")]
    NotExplicit(String),
}

/// The upload sources of a running ESS: what the API reads and triggers.
pub struct Uploads {
    sources: Vec<UploadSource>,
    board: StatusBoard,
    /// Sources asked for through the API, taken by the worker.
    requested: Mutex<HashSet<String>>,
    wake: tokio::sync::Notify,
    /// Sources (by index) whose folder changed since the worker last looked (`watch`).
    changed: Mutex<HashSet<usize>>,
}

impl Uploads {
    /// Every file's latest status.
    pub fn statuses(&self) -> Vec<UploadStatus> {
        self.board.all()
    }

    /// Asks for an upload of the source `name` now (`POST /api/v1/uploads/{name}`).
    pub fn trigger(&self, name: &str) -> Result<(), TriggerError> {
        let source = self
            .sources
            .iter()
            .find(|s| s.name == name)
            .ok_or_else(|| TriggerError::UnknownSource(name.to_string()))?;
        if !source.explicit {
            return Err(TriggerError::NotExplicit(name.to_string()));
        }
        self.requested.lock().insert(name.to_string());
        self.wake.notify_one();
        Ok(())
    }

    fn take_requested(&self) -> HashSet<String> {
        std::mem::take(&mut *self.requested.lock())
    }

    fn take_changed(&self) -> HashSet<usize> {
        std::mem::take(&mut *self.changed.lock())
    }
}

/// Where the state of the uploads is kept under the persistence root.
pub fn state_path(persistence_root: &Path) -> PathBuf {
    persistence_root.join("sync").join("uploads").join("state.json")
}

/// Starts acting on `sources` (checked by the configuration).
pub fn start(
    node: &Node,
    sources: Vec<UploadSource>,
    persistence_root: &Path,
    tracker: &TaskTracker,
    shutdown: CancellationToken,
) -> Arc<Uploads> {
    let uploads = Arc::new(Uploads {
        sources,
        board: StatusBoard::default(),
        requested: Mutex::new(HashSet::new()),
        wake: tokio::sync::Notify::new(),
        changed: Mutex::new(HashSet::new()),
    });
    let identity = Identity {
        kind: IdentityKind::OrgAdmin,
        org: node.org_for(None).to_string(),
        user: UPLOADER.to_string(),
    };
    tracing::info!(
        sources = uploads.sources.len(),
        "uploads: watching the configured sources"
    );
    let worker = worker::Worker::new(node.clone(), identity, uploads.clone(), &state_path(persistence_root));
    tracker.spawn(worker.run(shutdown));
    uploads
}
