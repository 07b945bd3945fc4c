//! Access decisions (spec: rest-api.md §2.3-2.4, security.md §4): plain functions from an
//! identity and the object at stake to allowed or not. ACL lists are not consulted yet, so
//! users and node users on the CSS have only what an empty ACL grants them.

use super::{Identity, IdentityKind};
use crate::model::version::{Version, VersionRange};
use crate::model::{MetaData, Role};

/// Object type reserved for agent upgrade manifests; object admins may not write it.
pub const MANIFEST_TYPE: &str = "agent_upgrade_manifests";

/// Read-all(type): may read every object of `object_type` in `org`.
pub fn may_read_all(role: Role, identity: &Identity, org: &str, object_type: &str) -> bool {
    use IdentityKind::*;
    match identity.kind {
        SyncAdmin => true,
        Failed | EdgeNode => false,
        _ if identity.org != org => false,
        kind => match role {
            Role::Ess => kind != Service,
            Role::Css => match kind {
                OrgAdmin | ObjectAdmin => true,
                NodeUser => object_type == MANIFEST_TYPE,
                _ => false,
            },
        },
    }
}

/// May read this particular object: Read-all, public read, or (ESS services) the object's
/// destination policy admits the service.
pub fn may_read(role: Role, identity: &Identity, org: &str, meta: &MetaData) -> bool {
    if identity.is_shut_out() {
        return false;
    }
    if role == Role::Ess && identity.kind == IdentityKind::Service {
        return identity.org == org && (service_admitted(identity, meta) || meta.public);
    }
    may_read_all(role, identity, org, &meta.object_type) || meta.public
}

/// Full access for the consumer routes (consumed, received, deleted, activate): Read-all, or
/// on the ESS a service admitted by the policy.
pub fn may_act_as_consumer(role: Role, identity: &Identity, org: &str, meta: &MetaData) -> bool {
    if role == Role::Ess && identity.kind == IdentityKind::Service {
        return identity.org == org && service_admitted(identity, meta);
    }
    may_read_all(role, identity, org, &meta.object_type)
}

/// Write(object): may create, modify or delete an object with this metadata in `org`.
pub fn may_write(role: Role, identity: &Identity, org: &str, meta: &MetaData) -> bool {
    use IdentityKind::*;
    match identity.kind {
        SyncAdmin => true,
        Failed | EdgeNode => false,
        _ if identity.org != org => false,
        kind => match role {
            Role::Ess => true,
            Role::Css => match kind {
                OrgAdmin => true,
                ObjectAdmin => meta.object_type != MANIFEST_TYPE,
                _ => false,
            },
        },
    }
}

/// May change or delete an object that is already stored: Write on its stored metadata; on
/// the ESS a service needs only the read access its policy gives (spec: security.md §4.2).
pub fn may_change_stored(role: Role, identity: &Identity, org: &str, stored: &MetaData) -> bool {
    match (role, identity.kind) {
        (Role::Ess, IdentityKind::Service) => may_read(role, identity, org, stored),
        _ => may_write(role, identity, org, stored),
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
mod tests {
    use super::*;
    use crate::model::{Policy, ServiceID};

    fn id(kind: IdentityKind, org: &str) -> Identity {
        Identity {
            kind,
            org: org.into(),
            user: "u".into(),
        }
    }

    fn meta(object_type: &str) -> MetaData {
        MetaData {
            object_type: object_type.into(),
            object_id: "o".into(),
            ..MetaData::default()
        }
    }

    #[test]
    fn css_admins_of_the_org_read_and_write_others_do_not() {
        let m = meta("model");
        assert!(may_write(Role::Css, &id(IdentityKind::OrgAdmin, "a"), "a", &m));
        assert!(may_write(Role::Css, &id(IdentityKind::ObjectAdmin, "a"), "a", &m));
        assert!(!may_write(Role::Css, &id(IdentityKind::OrgAdmin, "b"), "a", &m));
        assert!(!may_write(Role::Css, &id(IdentityKind::User, "a"), "a", &m));
        assert!(!may_write(Role::Css, &id(IdentityKind::EdgeNode, "a"), "a", &m));
        assert!(may_write(Role::Css, &id(IdentityKind::SyncAdmin, ""), "a", &m));
        assert!(!may_write(
            Role::Css,
            &id(IdentityKind::ObjectAdmin, "a"),
            "a",
            &meta(MANIFEST_TYPE)
        ));
        assert!(may_read_all(
            Role::Css,
            &id(IdentityKind::NodeUser, "a"),
            "a",
            MANIFEST_TYPE
        ));
    }

    #[test]
    fn public_objects_are_readable_across_orgs_but_not_by_edge_nodes() {
        let mut m = meta("model");
        m.public = true;
        assert!(may_read(Role::Css, &id(IdentityKind::User, "b"), "a", &m));
        assert!(!may_read(Role::Css, &id(IdentityKind::EdgeNode, "a"), "a", &m));
        m.public = false;
        assert!(!may_read(Role::Css, &id(IdentityKind::User, "b"), "a", &m));
    }

    #[test]
    fn ess_services_follow_the_destination_policy() {
        let service = Identity {
            kind: IdentityKind::Service,
            org: "a".into(),
            user: "sorg/1.5.0/svc".into(),
        };
        let mut m = meta("model");
        assert!(may_read(Role::Ess, &service, "a", &m), "no policy admits every service");
        m.destination_policy = Some(Policy {
            services: Some(vec![ServiceID {
                org_id: "sorg".into(),
                arch: "amd64".into(),
                service_name: "svc".into(),
                version: "[1.0.0,2.0.0)".into(),
            }]),
            ..Policy::default()
        });
        assert!(may_read(Role::Ess, &service, "a", &m));
        let old = Identity {
            user: "sorg/0.9/svc".into(),
            ..service.clone()
        };
        assert!(!may_read(Role::Ess, &old, "a", &m));
        assert!(!may_act_as_consumer(Role::Ess, &old, "a", &m));
    }
}
