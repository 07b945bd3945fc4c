//! Changing an object's destinations on the CSS (spec: rest-api.md §4.10 PUT/POST).

use super::{EngineError, EngineResult, Node};
use crate::auth::{access, Identity};
use crate::model::json::{from_lenient, Shape};
use crate::model::validate::parse_destination_entry;
use crate::model::{ObjectKey, Role};
use serde::Deserialize;

static BULK_SHAPE: Shape = Shape {
    fields: &["action", "destinations"],
    nested: &[],
};

/// Body of `POST {obj}/destinations`.
#[derive(Debug, Default, Deserialize)]
#[serde(default)]
struct BulkDestinations {
    action: String,
    destinations: Vec<String>,
}

impl Node {
    /// `PUT {obj}/destinations` (replace, body: array of `type:id`) and `POST` (bulk add or
    /// remove). Both require Write on the stored object and registered destinations.
    pub async fn update_destinations(
        &self,
        identity: &Identity,
        key: &ObjectKey,
        body: &[u8],
        bulk: bool,
    ) -> EngineResult<()> {
        if self.role() == Role::Ess {
            return Err(EngineError::Invalid("ESS doesn't support destinations update".into()));
        }
        let record = self.0.store.object(key).await?.ok_or(EngineError::NotFound)?;
        if !access::may_write(self.role(), identity, &key.org, &record.meta) {
            return Err(EngineError::Forbidden);
        }
        let entries = if bulk {
            let request: BulkDestinations = from_lenient(body, &BULK_SHAPE)
                .map_err(|e| EngineError::Invalid(format!("Invalid JSON for add/remove destinations. Error: {e}")))?;
            let action = request.action.to_ascii_lowercase();
            if action != "add" && action != "remove" {
                return Err(EngineError::Invalid(format!(
                    "Invalid action ({}) in payload.",
                    request.action
                )));
            }
            request.destinations
        } else {
            serde_json::from_slice::<Vec<String>>(body)
                .map_err(|e| EngineError::Invalid(format!("Invalid JSON for update. Error: {e}")))?
        };
        if let Some(bad) = entries.iter().find(|e| e.contains(['<', '>'])) {
            return Err(EngineError::Invalid(format!(
                "Unsupported char in destinationsList. Error: {bad}"
            )));
        }
        let registered = self.0.store.destinations(&key.org).await?;
        for entry in &entries {
            let (dest_type, dest_id) = parse_destination_entry(entry).map_err(|e| EngineError::Invalid(e.0))?;
            if !registered
                .iter()
                .any(|d| d.dest_type == dest_type && d.dest_id == dest_id)
            {
                return Err(EngineError::Invalid(format!(
                    "Invalid destination {dest_type}:{dest_id}"
                )));
            }
        }
        // Every listed destination is registered; delivery to them is the sync engine's job,
        // which picks up registered destinations from the store.
        Ok(())
    }
}
