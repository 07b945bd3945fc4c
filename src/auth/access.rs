//! Access decisions (spec: rest-api.md §2.3-2.4, security.md §4 and §6.3): plain functions
//! from an identity, the object at stake and the relevant ACL entries ([`Grants`]) to allowed
//! or not. The engine loads the grants; nothing here does I/O.

use super::{Identity, IdentityKind};
use crate::model::acl::{AclEntry, AclRole, AclUserType};
use crate::model::version::{Version, VersionRange};
use crate::model::{MetaData, Role};
use std::collections::HashMap;

/// Object type reserved for agent upgrade manifests; object admins may not write it.
pub const MANIFEST_TYPE: &str = "agent_upgrade_manifests";

/// The ACL entries one decision needs. Empty for every identity that ACLs do not govern
/// (admins, and everyone on the ESS), so those decisions cost no store access.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Grants {
    /// The objects ACL of the object type.
    pub type_objects: Vec<AclEntry>,
    /// The org-wide objects ACL.
    pub org_objects: Vec<AclEntry>,
    /// Destinations ACLs of the destination types the object addresses.
    pub destinations: HashMap<String, Vec<AclEntry>>,
    /// The org-wide destinations ACL.
    pub org_destinations: Vec<AclEntry>,
}

/// True for identities whose object access on the CSS is governed by ACLs.
pub fn governed_by_acls(role: Role, identity: &Identity) -> bool {
    role == Role::Css && acl_user_type(identity).is_some()
}

/// The ACL user type entries must have to apply to this identity.
pub fn acl_user_type(identity: &Identity) -> Option<AclUserType> {
    match identity.kind {
        IdentityKind::User => Some(AclUserType::User),
        IdentityKind::NodeUser => Some(AclUserType::Node),
        _ => None,
    }
}

fn named_in(entries: &[AclEntry], identity: &Identity) -> bool {
    acl_user_type(identity).is_some_and(|t| entries.iter().any(|e| e.names(t, &identity.user)))
}

/// First-match walk of an objects ACL for writing: the first entry naming the caller decides
/// (writer grants, reader denies); entries with another role are skipped. The order
/// dependence is the original's observable behaviour (security.md §6.3).
fn write_walk(entries: &[AclEntry], identity: &Identity) -> Option<bool> {
    let user_type = acl_user_type(identity)?;
    entries
        .iter()
        .filter(|e| e.names(user_type, &identity.user))
        .find_map(|e| match e.role {
            AclRole::Writer => Some(true),
            AclRole::Reader => Some(false),
            AclRole::NotApplicable => None,
        })
}

/// Read-all(type): may read every object of `object_type` in `org`.
pub fn may_read_all(role: Role, identity: &Identity, org: &str, object_type: &str, grants: &Grants) -> bool {
    use IdentityKind::*;
    match identity.kind {
        SyncAdmin => true,
        Failed | EdgeNode => false,
        _ if identity.org != org => false,
        kind => match role {
            Role::Ess => kind != Service,
            Role::Css => match kind {
                OrgAdmin | ObjectAdmin => true,
                User | NodeUser => {
                    (kind == NodeUser && object_type == MANIFEST_TYPE)
                        || named_in(&grants.type_objects, identity)
                        || named_in(&grants.org_objects, identity)
                }
                _ => false,
            },
        },
    }
}

/// May read this particular object: Read-all, public read, or (ESS services) the object's
/// destination policy admits the service.
pub fn may_read(role: Role, identity: &Identity, org: &str, meta: &MetaData, grants: &Grants) -> bool {
    if identity.is_shut_out() {
        return false;
    }
    // Services have no read path on the CSS, and an ESS serves only its own org (no public
    // reads across orgs there): security.md §4.1, §4.2, §6.4.
    match role {
        Role::Css if identity.kind == IdentityKind::Service => return false,
        Role::Ess if identity.kind != IdentityKind::SyncAdmin && identity.org != org => return false,
        _ => {}
    }
    if role == Role::Ess && identity.kind == IdentityKind::Service {
        return identity.org == org && (service_admitted(identity, meta) || meta.public);
    }
    may_read_all(role, identity, org, &meta.object_type, grants) || meta.public
}

/// Full access for the consumer routes (consumed, received, deleted, policyreceived):
/// Read-all, or on the ESS a service admitted by the policy.
pub fn may_act_as_consumer(role: Role, identity: &Identity, org: &str, meta: &MetaData, grants: &Grants) -> bool {
    if role == Role::Ess && identity.kind == IdentityKind::Service {
        return identity.org == org && service_admitted(identity, meta);
    }
    may_read_all(role, identity, org, &meta.object_type, grants)
}

/// The objects part of Write: may write objects of `object_type` in `org` (without the
/// destination checks; this alone governs webhooks).
pub fn may_write_type(role: Role, identity: &Identity, org: &str, object_type: &str, grants: &Grants) -> bool {
    use IdentityKind::*;
    match identity.kind {
        SyncAdmin => true,
        Failed | EdgeNode => false,
        _ if identity.org != org => false,
        kind => match role {
            Role::Ess => true,
            Role::Css => match kind {
                OrgAdmin => true,
                ObjectAdmin => object_type != MANIFEST_TYPE,
                User | NodeUser => write_walk(&grants.type_objects, identity)
                    .or_else(|| write_walk(&grants.org_objects, identity))
                    .unwrap_or(false),
                // Services fall through to `*` entries in the original; refusing them is the
                // safer equivalent the spec allows (security.md §6.4).
                _ => false,
            },
        },
    }
}

/// Write(object): may create, modify or delete an object with this metadata in `org`. Users
/// and node users also need destination grants for what the object addresses.
pub fn may_write(role: Role, identity: &Identity, org: &str, meta: &MetaData, grants: &Grants) -> bool {
    may_write_type(role, identity, org, &meta.object_type, grants)
        && (!governed_by_acls(role, identity) || may_address(identity, meta, grants))
}

/// Destination part of Write for ACL-governed callers (security.md §6.3).
fn may_address(identity: &Identity, meta: &MetaData, grants: &Grants) -> bool {
    if meta.is_broadcast() {
        return named_in(&grants.org_destinations, identity);
    }
    addressed_types(meta)
        .iter()
        .all(|dest_type| may_address_type(identity, dest_type, grants))
}

/// May address destinations of `dest_type`: named in its destinations ACL or the org-wide one.
pub fn may_address_type(identity: &Identity, dest_type: &str, grants: &Grants) -> bool {
    grants
        .destinations
        .get(dest_type)
        .is_some_and(|entries| named_in(entries, identity))
        || named_in(&grants.org_destinations, identity)
}

/// Distinct destination types an object names directly or in its destinations list.
pub fn addressed_types(meta: &MetaData) -> Vec<String> {
    let mut types: Vec<String> = Vec::new();
    let listed = meta
        .destinations_list
        .iter()
        .flatten()
        .filter_map(|e| e.split_once(':').map(|(t, _)| t));
    for dest_type in std::iter::once(meta.destination_type.as_str())
        .filter(|t| !t.is_empty())
        .chain(listed)
    {
        if !types.iter().any(|t| t == dest_type) {
            types.push(dest_type.to_string());
        }
    }
    types
}

/// May change or delete an object that is already stored: Write on its stored metadata; on
/// the ESS a service needs only the read access its policy gives (spec: security.md §4.2).
pub fn may_change_stored(role: Role, identity: &Identity, org: &str, stored: &MetaData, grants: &Grants) -> bool {
    match (role, identity.kind) {
        (Role::Ess, IdentityKind::Service) => may_read(role, identity, org, stored, grants),
        _ => may_write(role, identity, org, stored, grants),
    }
}

/// True when the object's destination policy admits the calling service (spec: rest-api.md
/// §2.4): no policy or no services listed admits everyone; otherwise org, name and version
/// range must match one entry.
pub fn service_admitted(identity: &Identity, meta: &MetaData) -> bool {
    let Some((service_org, version, name)) = identity.service_parts() else {
        return false;
    };
    let services = meta.destination_policy.as_ref().and_then(|p| p.services.as_ref());
    let Some(services) = services.filter(|s| !s.is_empty()) else {
        return true;
    };
    let Some(version) = Version::parse(version) else {
        return false;
    };
    services.iter().any(|service| {
        service.org_id == service_org
            && service.service_name == name
            && VersionRange::parse(&service.version).is_some_and(|range| range.contains(&version))
    })
}

#[cfg(test)]
mod tests;
