//! Changing an object's destinations on the CSS (spec: rest-api.md §4.10 PUT/POST).

use super::{EngineError, EngineResult, Node, WRITE_ATTEMPTS};
use crate::auth::{access, Identity, IdentityKind};
use crate::model::json::{from_lenient, Shape};
use crate::model::sync::{Notification, NotificationStatus, Remote};
use crate::model::validate::parse_destination_entry;
use crate::model::{DeliveryStatus, MetaData, ObjectKey, Role};
use crate::store::{StoreError, StoreOp};
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
        let (entries, removing) = if bulk {
            let request: BulkDestinations = from_lenient(body, &BULK_SHAPE)
                .map_err(|e| EngineError::Invalid(format!("Invalid JSON for add/remove destinations. Error: {e}")))?;
            let action = request.action.to_ascii_lowercase();
            if action != "add" && action != "remove" {
                return Err(EngineError::Invalid(format!(
                    "Invalid action ({}) in payload.",
                    request.action
                )));
            }
            (request.destinations, action == "remove")
        } else {
            let entries = serde_json::from_slice::<Vec<String>>(body)
                .map_err(|e| EngineError::Invalid(format!("Invalid JSON for update. Error: {e}")))?;
            (entries, false)
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
        let listed = self.registered_remotes(&key.org, &parsed).await?;
        let change = match (bulk, removing) {
            (false, _) => DestinationChange::Replace(listed),
            (true, false) => DestinationChange::Add(listed),
            (true, true) => DestinationChange::Remove(listed),
        };
        self.change_destinations(key, &change).await
    }

    /// Refuses a `destinationsList` that is malformed or names a node not registered in the
    /// organization: the object would otherwise wait, unseen, for a node that may never come
    /// (the original refuses it too, with 400 or 500 depending on its store).
    pub(super) async fn check_listed_destinations(&self, org: &str, meta: &MetaData) -> EngineResult<()> {
        let Some(list) = &meta.destinations_list else {
            return Ok(());
        };
        let mut parsed = Vec::with_capacity(list.len());
        for entry in list {
            parsed.push(parse_destination_entry(entry).map_err(|e| EngineError::Invalid(e.0))?);
        }
        self.registered_remotes(org, &parsed).await.map(drop)
    }

    /// The listed nodes as remotes, or a 400 naming every one not registered in `org`.
    async fn registered_remotes(&self, org: &str, listed: &[(&str, &str)]) -> EngineResult<Vec<Remote>> {
        if listed.is_empty() {
            return Ok(Vec::new());
        }
        let registered = self.0.store.destinations(org).await?;
        let is_registered = |(dest_type, dest_id): &&(&str, &str)| {
            registered
                .iter()
                .any(|d| d.dest_type == *dest_type && d.dest_id == *dest_id)
        };
        let unknown: Vec<String> = listed
            .iter()
            .filter(|entry| !is_registered(entry))
            .map(|(dest_type, dest_id)| format!("{dest_type}:{dest_id}"))
            .collect();
        if !unknown.is_empty() {
            return Err(EngineError::Invalid(format!(
                "Invalid destination {}: not registered in organization {org}",
                unknown.join(", ")
            )));
        }
        Ok(listed
            .iter()
            .map(|(dest_type, dest_id)| Remote {
                dest_type: dest_type.to_string(),
                dest_id: dest_id.to_string(),
            })
            .collect())
    }

    /// Applies a destination change with what it owes the nodes: added nodes are sent the
    /// object when it is deliverable (an inactive one waits for its activation, unlike the
    /// original); removed nodes that were sent anything get `delete`.
    async fn change_destinations(&self, key: &ObjectKey, change: &DestinationChange) -> EngineResult<()> {
        for _ in 0..WRITE_ATTEMPTS {
            let record = self.0.store.object(key).await?.ok_or(EngineError::NotFound)?;
            let current: Vec<(Remote, DeliveryStatus)> = self
                .0
                .store
                .destination_statuses(key)
                .await?
                .into_iter()
                .map(|d| {
                    let remote = Remote {
                        dest_type: d.dest_type,
                        dest_id: d.dest_id,
                    };
                    (remote, d.status)
                })
                .collect();
            let (added, removed) = change.split(&current);
            // Rewriting the unchanged object makes the batch fail if the object changed
            // since it was read, so the decision is made again on the new state.
            let mut ops = vec![StoreOp::unchanged(&record)];
            for (remote, status) in removed {
                ops.push(StoreOp::DeleteDelivery {
                    key: key.clone(),
                    remote: remote.clone(),
                });
                let was_sent = !matches!(status, DeliveryStatus::Pending | DeliveryStatus::Deleted);
                ops.push(if was_sent && record.is_sender_copy() {
                    StoreOp::PutNotification(Notification {
                        status: NotificationStatus::DeletePending,
                        ..self.update_notification(&record, remote)
                    })
                } else {
                    StoreOp::DeleteNotification {
                        key: key.clone(),
                        remote,
                    }
                });
            }
            for remote in added {
                ops.extend(self.target_ops(&record, remote));
            }
            match self.commit(key, ops).await {
                Ok(()) => return Ok(()),
                Err(StoreError::Conflict) => continue,
                Err(e) => return Err(e.into()),
            }
        }
        Err(EngineError::Conflict(format!(
            "{key} is being changed by other requests; retry"
        )))
    }
}

/// What a destinations request asks for.
enum DestinationChange {
    Replace(Vec<Remote>),
    Add(Vec<Remote>),
    Remove(Vec<Remote>),
}

impl DestinationChange {
    /// The nodes to add and those to remove (with their status), given the current ones.
    fn split(&self, current: &[(Remote, DeliveryStatus)]) -> (Vec<Remote>, Vec<(Remote, DeliveryStatus)>) {
        let is_current = |remote: &Remote| current.iter().any(|(c, _)| c == remote);
        let new_ones = |listed: &[Remote]| {
            let mut added: Vec<Remote> = Vec::new();
            for remote in listed.iter().filter(|r| !is_current(r)) {
                if !added.contains(remote) {
                    added.push(remote.clone());
                }
            }
            added
        };
        let dropped = |keep: &dyn Fn(&Remote) -> bool| {
            current
                .iter()
                .filter(|(remote, _)| !keep(remote))
                .cloned()
                .collect::<Vec<_>>()
        };
        match self {
            Self::Replace(listed) => (new_ones(listed), dropped(&|r| listed.contains(r))),
            Self::Add(listed) => (new_ones(listed), Vec::new()),
            Self::Remove(listed) => (Vec::new(), dropped(&|r| !listed.contains(r))),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn node(id: &str) -> Remote {
        Remote {
            dest_type: "edge".into(),
            dest_id: id.into(),
        }
    }

    #[test]
    fn changes_split_into_added_and_removed_nodes() {
        let current = vec![
            (node("a"), DeliveryStatus::Delivered),
            (node("b"), DeliveryStatus::Pending),
        ];
        let (added, removed) = DestinationChange::Replace(vec![node("b"), node("c"), node("c")]).split(&current);
        assert_eq!(added, vec![node("c")]);
        assert_eq!(removed, vec![(node("a"), DeliveryStatus::Delivered)]);
        let (added, removed) = DestinationChange::Add(vec![node("a"), node("d")]).split(&current);
        assert_eq!((added, removed), (vec![node("d")], vec![]));
        let (added, removed) = DestinationChange::Remove(vec![node("b"), node("x")]).split(&current);
        assert_eq!(added, Vec::<Remote>::new());
        assert_eq!(removed, vec![(node("b"), DeliveryStatus::Pending)]);
    }
}
