//! Organizations, registered destinations and webhooks (spec: rest-api.md §4.4, §5, §6).

use super::{EngineError, EngineResult, Node, NodeView};
use crate::auth::{access, Identity, IdentityKind};
use crate::model::json::{from_lenient, Shape};
use crate::model::names::is_valid_name;
use crate::model::{ObjectDeliveryView, Organization, OrganizationEntry, Role, ORGANIZATION_FIELDS};
use crate::store::fleet::PageRequest;
use serde::Deserialize;

static ORGANIZATION_SHAPE: Shape = Shape {
    fields: ORGANIZATION_FIELDS,
    nested: &[],
};
static WEBHOOK_SHAPE: Shape = Shape {
    fields: &["action", "url"],
    nested: &[],
};

/// Body of the webhook route.
#[derive(Debug, Default, Deserialize)]
#[serde(default)]
struct WebhookRequest {
    action: String,
    url: String,
}

impl Node {
    fn require_org_admin(&self, identity: &Identity, org: Option<&str>) -> EngineResult<()> {
        let allowed = match identity.kind {
            IdentityKind::SyncAdmin => true,
            IdentityKind::OrgAdmin => org.is_none_or(|org| identity.org == org),
            _ => false,
        };
        if allowed {
            Ok(())
        } else {
            Err(EngineError::Forbidden)
        }
    }

    fn refuse_on_ess(&self, what: &str) -> EngineResult<()> {
        if self.role() == Role::Ess {
            return Err(EngineError::Invalid(format!(
                "{what}. Error: ESS doesn't have organizations"
            )));
        }
        Ok(())
    }

    /// `GET /api/v1/organizations`.
    pub async fn list_organizations(&self, identity: &Identity) -> EngineResult<Vec<OrganizationEntry>> {
        let own_org = (self.role() == Role::Ess).then(|| self.org_for(None));
        self.require_org_admin(identity, own_org)?;
        self.refuse_on_ess("Failed to fetch the list of organizations")?;
        let orgs: Vec<OrganizationEntry> = match &self.0.settings.org {
            Some(single) => vec![OrganizationEntry {
                org_id: single.clone(),
                address: self.0.settings.broker_address.clone(),
            }],
            None => self
                .0
                .store
                .organizations()
                .await?
                .into_iter()
                .map(|o| OrganizationEntry {
                    org_id: o.org_id,
                    address: o.address,
                })
                .collect(),
        };
        if orgs.is_empty() {
            return Err(EngineError::NotFound);
        }
        Ok(orgs
            .into_iter()
            .filter(|o| identity.kind == IdentityKind::SyncAdmin || o.org_id == identity.org)
            .collect())
    }

    fn refuse_in_single_org_mode(&self, what: &str) -> EngineResult<()> {
        self.refuse_on_ess(what)?;
        if self.0.settings.org.is_some() {
            return Err(EngineError::Invalid(format!(
                "{what}. Error: the CSS serves a single organization (OrgID is set)"
            )));
        }
        Ok(())
    }

    /// `PUT /api/v1/organizations/{org}`.
    pub async fn put_organization(&self, identity: &Identity, org: &str, body: &[u8]) -> EngineResult<()> {
        self.require_org_admin(identity, Some(org))?;
        self.refuse_in_single_org_mode("Failed to update the organization")?;
        let organization: Organization = from_lenient(body, &ORGANIZATION_SHAPE)
            .map_err(|e| EngineError::Invalid(format!("Invalid JSON for update. Error: {e}")))?;
        if organization.org_id != org {
            return Err(EngineError::Invalid(format!(
                "Organization ID ({}) in the payload doesn't match the organization in the URL ({org})",
                organization.org_id
            )));
        }
        if !is_valid_name(org) {
            return Err(EngineError::Invalid(format!(
                "Organization ID ({org}) contains invalid characters"
            )));
        }
        self.0.store.put_organization(organization).await?;
        Ok(())
    }

    /// `DELETE /api/v1/organizations/{org}`: removes the org and everything it owns.
    pub async fn delete_organization(&self, identity: &Identity, org: &str) -> EngineResult<()> {
        self.require_org_admin(identity, Some(org))?;
        self.refuse_in_single_org_mode("Failed to delete the organization")?;
        for blob in self.0.store.delete_organization(org).await? {
            self.0.blobs.remove(&blob).await;
        }
        Ok(())
    }

    pub(super) fn require_destination_reader(&self, identity: &Identity, org: &str) -> EngineResult<()> {
        match identity.kind {
            IdentityKind::SyncAdmin => Ok(()),
            IdentityKind::Failed | IdentityKind::EdgeNode => Err(EngineError::Forbidden),
            _ if identity.org == org => Ok(()),
            _ => Err(EngineError::Forbidden),
        }
    }

    /// `GET /api/v1/destinations/{org}`: registered edge nodes, with when each was last heard
    /// from and its link.
    pub async fn list_destinations(&self, identity: &Identity, org: &str) -> EngineResult<Vec<NodeView>> {
        self.require_destination_reader(identity, org)?;
        if self.role() == Role::Ess {
            // The text tells the caller why, and sets this answer apart from a bad route's 400.
            return Err(EngineError::Invalid(
                "Failed to fetch the list of destinations. Error: ESS doesn't have destinations".into(),
            ));
        }
        let everything = PageRequest {
            offset: 0,
            limit: u64::MAX,
            search: String::new(),
        };
        let nodes = self.fleet_nodes(identity, org, &everything).await?;
        if nodes.rows.is_empty() {
            return Err(EngineError::NotFound);
        }
        Ok(nodes.rows)
    }

    /// `GET /api/v1/destinations/{org}/{type}/{id}/objects`.
    pub async fn destination_objects(
        &self,
        identity: &Identity,
        org: &str,
        dest_type: &str,
        dest_id: &str,
    ) -> EngineResult<Vec<ObjectDeliveryView>> {
        self.require_destination_reader(identity, org)?;
        let views = self.0.store.objects_for_destination(org, dest_type, dest_id).await?;
        if views.is_empty() {
            return Err(EngineError::NotFound);
        }
        Ok(views)
    }

    /// `PUT /api/v1/objects/{org}/{type}`: registers or deletes a webhook.
    pub async fn update_webhook(
        &self,
        identity: &Identity,
        org: &str,
        object_type: &str,
        body: &[u8],
    ) -> EngineResult<()> {
        let allowed = match identity.kind {
            IdentityKind::Failed | IdentityKind::EdgeNode | IdentityKind::Service => false,
            _ => {
                let grants = self.grants_for_type(identity, org, object_type).await?;
                access::may_write_type(self.role(), identity, org, object_type, &grants)
            }
        };
        if !allowed {
            return Err(EngineError::Forbidden);
        }
        let request: WebhookRequest = from_lenient(body, &WEBHOOK_SHAPE)
            .map_err(|e| EngineError::Invalid(format!("Invalid JSON for update. Error: {e}")))?;
        match request.action.to_ascii_lowercase().as_str() {
            "register" => {
                check_webhook_url(&request.url)?;
                self.0.store.add_webhook(org, object_type, &request.url).await?;
            }
            "delete" => self.0.store.remove_webhook(org, object_type, &request.url).await?,
            other => return Err(EngineError::Invalid(format!("Invalid action ({other}) in payload."))),
        }
        Ok(())
    }
}

/// A webhook URL must be absolute http(s) with a host. The messages say what is wrong
/// (the original answered `Invalid destination data URI` for a wrong scheme).
fn check_webhook_url(url: &str) -> EngineResult<()> {
    let invalid = |why: String| EngineError::Invalid(format!("Invalid webhook URL ({url}): {why}"));
    let parsed = url::Url::parse(url).map_err(|e| invalid(format!("not an absolute URL ({e})")))?;
    // The parser silently drops tabs and line breaks; such a URL is not what was meant.
    if url.chars().any(|c| c.is_whitespace() || c.is_control()) {
        return Err(invalid("it contains spaces or control characters".into()));
    }
    if !matches!(parsed.scheme(), "http" | "https") {
        return Err(invalid(format!(
            "the scheme must be http or https, not {}",
            parsed.scheme()
        )));
    }
    // The parser repairs `http:host` and `http:///host` into URLs with a host; refuse them as
    // the original did.
    let host = url
        .split_once("://")
        .map_or("", |(_, rest)| rest.split(['/', '?', '#']).next().unwrap_or(""));
    if host.is_empty() {
        return Err(invalid("it has no host".into()));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn webhook_urls_need_http_scheme_and_host() {
        assert!(check_webhook_url("http://127.0.0.1:9000/hook").is_ok());
        assert!(check_webhook_url("HTTPS://example.com").is_ok());
        let refusal = |url: &str| match check_webhook_url(url) {
            Err(EngineError::Invalid(message)) => message,
            other => panic!("{url}: {other:?}"),
        };
        assert!(refusal("ftp://x/y").contains("must be http or https, not ftp"));
        assert!(refusal("not a url").contains("not an absolute URL"));
        assert!(refusal("http:///path").contains("no host"));
        assert!(refusal("http:host").contains("no host"));
        assert!(refusal("http://ho\tst/").contains("control characters"));
    }
}
