//! Listings: objects of a type for receiving applications, the policy view, and the CSS's
//! org-wide queries (spec: rest-api.md §4.2-4.4, §4.15-4.17).

use super::{EngineError, EngineResult, Node};
use crate::auth::{access, Identity, IdentityKind};
use crate::model::validate::parse_rfc3339;
use crate::model::{MetaData, ObjectDestinationPolicy, ObjectRecord, ObjectStatus, Role};

/// The org-level query routes of the CSS (`GET /api/v1/objects/{orgID}?...`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum OrgQuery {
    /// `destination_policy=true`, narrowed by `since` (ns), else `service`, else `received`.
    DestinationPolicy {
        since: Option<i64>,
        service: Option<(String, String)>,
        received: bool,
    },
    /// `filters=true`.
    Filters(Filters),
    /// `list_object_type=true`.
    ObjectTypes,
}

/// Criteria of the filtered object search (rest-api.md §4.16); `None` means "any".
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Filters {
    pub destination_policy: Option<bool>,
    pub dp_service: Option<(String, String)>,
    pub dp_property_name: Option<String>,
    pub since: Option<String>,
    pub object_type: Option<String>,
    pub object_id: Option<String>,
    pub destination_type: Option<String>,
    pub destination_id: Option<String>,
    pub no_data: Option<bool>,
    pub expiration_time_before: Option<String>,
    pub deleted: Option<bool>,
}

/// What an org-level query answers with.
#[derive(Debug)]
pub enum OrgQueryResult {
    Policies(Vec<ObjectDestinationPolicy>),
    Objects(Vec<MetaData>),
    Types(Vec<String>),
}

impl Node {
    /// Filters records to those the caller may read, in the listing's sense: read-all gets
    /// everything; an ESS service what its policy admits; anyone else the public ones.
    pub(super) async fn visible_to(
        &self,
        identity: &Identity,
        org: &str,
        object_type: &str,
        records: Vec<ObjectRecord>,
    ) -> EngineResult<Vec<ObjectRecord>> {
        let role = self.role();
        let grants = self.grants_for_type(identity, org, object_type).await?;
        let service_on_ess = role == Role::Ess && identity.kind == IdentityKind::Service;
        if !service_on_ess && access::may_read_all(role, identity, org, object_type, &grants) {
            return Ok(records);
        }
        Ok(records
            .into_iter()
            .filter(|r| access::may_read(role, identity, org, &r.meta, &grants))
            .collect())
    }

    /// Listings refuse edge nodes and failed callers, services on the CSS (they have no read
    /// path there), and on the ESS identities of another org.
    fn require_listing_caller(&self, identity: &Identity, org: &str) -> EngineResult<()> {
        let refused = match self.role() {
            Role::Css => identity.kind == IdentityKind::Service,
            Role::Ess => identity.kind != IdentityKind::SyncAdmin && identity.org != org,
        };
        if identity.is_shut_out() || refused {
            return Err(EngineError::Forbidden);
        }
        Ok(())
    }

    /// `GET /api/v1/objects/{org}/{type}`: objects received from the other side that
    /// applications still have to process.
    pub async fn list_updated(
        &self,
        identity: &Identity,
        org: &str,
        object_type: &str,
        include_received: bool,
    ) -> EngineResult<Vec<MetaData>> {
        self.require_listing_caller(identity, org)?;
        let records = self.0.store.objects_of_type(org, object_type).await?;
        let pending: Vec<ObjectRecord> = records
            .into_iter()
            .filter(|r| !r.is_sender_copy())
            .filter(|r| match r.status {
                ObjectStatus::CompletelyReceived => true,
                // Once every consumer acknowledged the deletion the copy only waits for its
                // sender's acknowledgement: the applications are done with it.
                ObjectStatus::ObjDeleted => r.remaining_consumers > 0,
                ObjectStatus::ObjReceived => include_received,
                _ => false,
            })
            .collect();
        let visible: Vec<MetaData> = self
            .visible_to(identity, org, object_type, pending)
            .await?
            .into_iter()
            .map(|r| r.meta)
            .collect();
        if visible.is_empty() {
            return Err(EngineError::NotFound);
        }
        Ok(visible)
    }

    /// `GET /api/v1/objects/{org}/{type}?all_objects=true`: every object of the type.
    pub async fn list_all(
        &self,
        identity: &Identity,
        org: &str,
        object_type: &str,
    ) -> EngineResult<Vec<ObjectDestinationPolicy>> {
        self.require_listing_caller(identity, org)?;
        let records = self.0.store.objects_of_type(org, object_type).await?;
        let visible = self.visible_to(identity, org, object_type, records).await?;
        if visible.is_empty() {
            return Err(EngineError::NotFound);
        }
        self.policy_views(visible).await
    }

    async fn policy_views(&self, records: Vec<ObjectRecord>) -> EngineResult<Vec<ObjectDestinationPolicy>> {
        let mut views = Vec::with_capacity(records.len());
        for record in records {
            let destinations = match self.role() {
                Role::Css => Some(self.0.store.destination_statuses(&record.key()).await?),
                Role::Ess => None,
            };
            views.push(ObjectDestinationPolicy {
                org: record.meta.destination_org_id,
                object_type: record.meta.object_type,
                object_id: record.meta.object_id,
                destination_policy: record.meta.destination_policy,
                destinations,
            });
        }
        Ok(views)
    }

    /// The org-level queries of the CSS. 404 when nothing matched at all, `[]` when matches
    /// exist but none is visible to the caller.
    pub async fn org_query(&self, identity: &Identity, org: &str, query: &OrgQuery) -> EngineResult<OrgQueryResult> {
        use IdentityKind::*;
        if !matches!(identity.kind, SyncAdmin | OrgAdmin | ObjectAdmin | User | NodeUser) {
            return Err(EngineError::Forbidden);
        }
        let records = self.0.store.objects_of_org(org).await?;
        let matched: Vec<ObjectRecord> = match query {
            OrgQuery::DestinationPolicy {
                since,
                service,
                received,
            } => records
                .into_iter()
                .filter(|r| r.meta.destination_policy.is_some())
                .filter(|r| policy_matches(r, *since, service.as_ref(), *received))
                .collect(),
            OrgQuery::Filters(filters) => {
                let filters = CompiledFilters::new(filters)?;
                records.into_iter().filter(|r| filters.matches(r)).collect()
            }
            OrgQuery::ObjectTypes => records,
        };
        if matched.is_empty() {
            return Err(EngineError::NotFound);
        }
        let readable_types = self.readable_types(identity, org).await?;
        // Node users read manifests by role, but the policy listing shows them only by ACL.
        let manifests_by_role = !matches!(query, OrgQuery::DestinationPolicy { .. });
        let no_grants = access::Grants::default();
        let visible: Vec<ObjectRecord> = matched
            .into_iter()
            .filter(|r| {
                let object_type = r.meta.object_type.as_str();
                let by_role = access::may_read(self.role(), identity, org, &r.meta, &no_grants)
                    && (manifests_by_role || identity.kind != IdentityKind::NodeUser || r.meta.public);
                by_role || readable_types.contains(object_type)
            })
            .collect();
        Ok(match query {
            OrgQuery::DestinationPolicy { .. } => OrgQueryResult::Policies(self.policy_views(visible).await?),
            OrgQuery::Filters(_) => OrgQueryResult::Objects(visible.into_iter().map(|r| r.meta).collect()),
            OrgQuery::ObjectTypes => {
                let mut types: Vec<String> = Vec::new();
                for record in visible {
                    if !types.contains(&record.meta.object_type) {
                        types.push(record.meta.object_type);
                    }
                }
                OrgQueryResult::Types(types)
            }
        })
    }
}

fn policy_matches(
    record: &ObjectRecord,
    since: Option<i64>,
    service: Option<&(String, String)>,
    received: bool,
) -> bool {
    let Some(policy) = record.meta.destination_policy.as_ref() else {
        return false;
    };
    if let Some(since) = since {
        return policy.timestamp >= since;
    }
    if let Some((service_org, service_name)) = service {
        return policy
            .services
            .iter()
            .flatten()
            .any(|s| &s.org_id == service_org && &s.service_name == service_name);
    }
    record.status != ObjectStatus::ObjDeleted && (received || !record.policy_received)
}

/// [`Filters`] with timestamps parsed once.
struct CompiledFilters<'a> {
    filters: &'a Filters,
    since_ns: Option<i64>,
    expiration_before: Option<time::OffsetDateTime>,
}

impl<'a> CompiledFilters<'a> {
    fn new(filters: &'a Filters) -> EngineResult<Self> {
        let invalid = |e: crate::model::validate::ValidationError| EngineError::Invalid(e.0);
        let since_ns = match filters
            .since
            .as_deref()
            .filter(|_| filters.destination_policy == Some(true))
        {
            Some(text) => {
                let instant = parse_rfc3339(text).map_err(invalid)?;
                let ns = i64::try_from(instant.unix_timestamp_nanos()).unwrap_or(i64::MAX);
                if ns <= 0 {
                    return Err(EngineError::Invalid(format!(
                        "Invalid since value ({text}): it must be after 1970"
                    )));
                }
                Some(ns)
            }
            None => None,
        };
        let expiration_before = filters
            .expiration_time_before
            .as_deref()
            .map(parse_rfc3339)
            .transpose()
            .map_err(invalid)?;
        Ok(Self {
            filters,
            since_ns,
            expiration_before,
        })
    }

    fn matches(&self, record: &ObjectRecord) -> bool {
        let f = self.filters;
        let meta = &record.meta;
        if let Some(wanted) = f.destination_policy {
            if meta.destination_policy.is_some() != wanted {
                return false;
            }
            if wanted && !self.policy_criteria_match(meta) {
                return false;
            }
        }
        if let Some(object_type) = &f.object_type {
            if &meta.object_type != object_type {
                return false;
            }
            if f.object_id.as_ref().is_some_and(|id| &meta.object_id != id) {
                return false;
            }
        }
        if let Some(dest_type) = &f.destination_type {
            if !addresses(meta, dest_type, f.destination_id.as_deref()) {
                return false;
            }
        }
        if f.no_data.is_some_and(|v| v != meta.no_data) || f.deleted.is_some_and(|v| v != meta.deleted) {
            return false;
        }
        if let Some(before) = self.expiration_before {
            let expires = parse_rfc3339(&meta.expiration).ok();
            if expires.is_none_or(|e| e > before) {
                return false;
            }
        }
        true
    }

    fn policy_criteria_match(&self, meta: &MetaData) -> bool {
        let Some(policy) = meta.destination_policy.as_ref() else {
            return false;
        };
        let f = self.filters;
        if let Some((org, name)) = &f.dp_service {
            if !policy
                .services
                .iter()
                .flatten()
                .any(|s| &s.org_id == org && &s.service_name == name)
            {
                return false;
            }
        }
        if let Some(property) = &f.dp_property_name {
            if !policy.properties.iter().flatten().any(|p| &p.name == property) {
                return false;
            }
        }
        self.since_ns.is_none_or(|since| policy.timestamp >= since)
    }
}

/// True when the metadata addresses `dest_type` (and `dest_id`, when given) directly or
/// through its destinations list. Names are compared literally.
fn addresses(meta: &MetaData, dest_type: &str, dest_id: Option<&str>) -> bool {
    let direct = meta.destination_type == dest_type && dest_id.is_none_or(|id| meta.destination_id == id);
    direct
        || meta
            .destinations_list
            .iter()
            .flatten()
            .any(|entry| match entry.split_once(':') {
                Some((t, i)) => t == dest_type && dest_id.is_none_or(|id| i == id),
                None => false,
            })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn destination_filter_matches_exact_list_entries_only() {
        let meta = MetaData {
            destinations_list: Some(vec!["mydevice:x".into(), "dev:n1".into()]),
            ..MetaData::default()
        };
        assert!(addresses(&meta, "dev", None));
        assert!(addresses(&meta, "dev", Some("n1")));
        assert!(!addresses(&meta, "dev", Some("x")));
        assert!(!addresses(&meta, "de", None), "no prefix or regex matching");
        assert!(!addresses(&meta, "d.v", None));
    }
}
