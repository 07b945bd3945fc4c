//! Changing an object's destinations on the CSS (spec: rest-api.md §4.10 PUT/POST).

use super::{EngineError, EngineResult, Node};
use crate::auth::{access, Identity, IdentityKind};
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
            // Identities of another org learn nothing, not even that the route is refused.
            if identity.is_shut_out() || (identity.kind != IdentityKind::SyncAdmin && identity.org != key.org) {
                return Err(EngineError::Forbidden);
            }
            return Err(EngineError::Invalid("ESS doesn't support destinations update".into()));
        }
        let record = self.0.store.object(key).await?.ok_or(EngineError::NotFound)?;
        let grants = self.grants_for(identity, &key.org, &record.meta).await?;
        if !access::may_write(self.role(), identity, &key.org, &record.meta, &grants) {
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
        let mut parsed = Vec::with_capacity(entries.len());
        for entry in &entries {
            parsed.push(parse_destination_entry(entry).map_err(|e| EngineError::Invalid(e.0))?);
        }
        // The caller must be granted the destinations it sets, not only those stored before.
        if access::governed_by_acls(self.role(), identity) {
            let mut types: Vec<String> = parsed.iter().map(|(t, _)| t.to_string()).collect();
            types.dedup();
            let mut grants = grants;
            self.add_destination_grants(&key.org, types.clone(), &mut grants)
                .await?;
            if !types.iter().all(|t| access::may_address_type(identity, t, &grants)) {
                return Err(EngineError::Forbidden);
            }
        }
        let registered = self.0.store.destinations(&key.org).await?;
        for (dest_type, dest_id) in parsed {
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
