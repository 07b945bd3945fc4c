//! The upload statuses of the node, sent to the CSS as an object of its own, so that the
//! cloud sees where each file of each node stands: type [`UPLOAD_STATUS_TYPE`], ID the node's
//! `{destinationType}~{destinationID}`, data the JSON list of `GET /api/v1/uploads`. A new
//! instance replaces the previous one when the list changed, at most every
//! [`REPORT_INTERVAL`], so a busy folder does not become a stream of objects.

use super::sources::safe_id;
use super::status::StatusBoard;
use crate::auth::Identity;
use crate::clock::Instant;
use crate::engine::Node;
use crate::model::{MetaData, ObjectKey};
use bytes::Bytes;
use std::time::Duration;

/// The object type of the status objects nodes send.
pub const UPLOAD_STATUS_TYPE: &str = "edge-sync-upload-status";
/// The shortest time between two status objects of a node.
const REPORT_INTERVAL: Duration = Duration::from_secs(5);

/// When the statuses were last sent.
pub(super) struct StatusReport {
    sent_changes: Option<u64>,
    next: Instant,
}

impl StatusReport {
    pub(super) fn new() -> Self {
        Self {
            sent_changes: None,
            next: Instant::now(),
        }
    }

    /// Sends the statuses when they changed since the last send and the interval is over.
    pub(super) async fn send_if_due(&mut self, node: &Node, identity: &Identity, board: &StatusBoard) {
        let changes = board.changes();
        let now = Instant::now();
        if self.sent_changes == Some(changes) || now < self.next {
            return;
        }
        self.next = now + REPORT_INTERVAL;
        let json = match serde_json::to_vec(&board.all()) {
            Ok(json) => json,
            Err(e) => {
                tracing::error!(error = %e, "uploads: the status list could not be written");
                return;
            }
        };
        let settings = node.settings();
        let object_id = safe_id(&format!("{}/{}", settings.dest_type, settings.dest_id));
        let meta = MetaData {
            object_id: object_id.clone(),
            object_type: UPLOAD_STATUS_TYPE.to_string(),
            description: format!("upload statuses of {}/{}", settings.dest_type, settings.dest_id),
            ..MetaData::default()
        };
        let key = ObjectKey::new(node.org_for(None), UPLOAD_STATUS_TYPE, object_id);
        let body = futures_util::stream::iter([Ok::<_, std::io::Error>(Bytes::from(json))]);
        let written = match node.stage_data(body).await {
            Ok(staged) => node.put_object_with_staged(identity, &key, meta, staged).await,
            Err(e) => Err(e),
        };
        match written {
            Ok(_) => self.sent_changes = Some(changes),
            Err(e) => tracing::warn!(error = %e, "uploads: the status object could not be written"),
        }
    }
}
