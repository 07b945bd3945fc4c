//! Which edge node a transport request (`/spi/v1/...`) speaks for (spec: security.md §5.1).
//! The node comes from the authenticated identity and the `X-Sync-Service-Dest` header, never
//! from the URL path; a path org that differs from the node's org is refused (the original
//! let the path org override, a cross-org hole).

use super::{Identity, IdentityKind};

/// Header in which an ESS names itself as `{org}/{destType}/{destID}`.
pub const DEST_HEADER: &str = "X-Sync-Service-Dest";

/// An edge node: organization, destination type and destination ID.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct NodeAddress {
    pub org: String,
    pub dest_type: String,
    pub dest_id: String,
}

/// The node a transport request acts for, or `None` (403). `user_may_address` tells whether
/// a user identity is in the destinations ACL of the header's type (or the org-wide one) in
/// its own org; the caller looks that up only for users.
pub fn node_for_request(identity: &Identity, dest_header: &str, user_may_address: bool) -> Option<NodeAddress> {
    let mut parts = dest_header.split('/');
    let (org, dest_type, dest_id) = (parts.next()?, parts.next()?, parts.next()?);
    if parts.next().is_some() || [org, dest_type, dest_id].iter().any(|p| p.is_empty()) {
        return None;
    }
    let node = |org: &str| NodeAddress {
        org: org.into(),
        dest_type: dest_type.into(),
        dest_id: dest_id.into(),
    };
    match identity.kind {
        IdentityKind::EdgeNode => {
            let (own_type, own_id) = identity.user.split_once('/')?;
            (identity.org == org && own_type == dest_type && own_id == dest_id).then(|| node(org))
        }
        // An org admin may act as any node of its org.
        IdentityKind::OrgAdmin => (identity.org == org).then(|| node(org)),
        IdentityKind::User => user_may_address.then(|| node(&identity.org)),
        _ => None,
    }
}

/// Whether a path org segment is acceptable for a request acting for `node`.
pub fn path_org_matches(node: &NodeAddress, path_org: &str) -> bool {
    node.org == path_org
}

#[cfg(test)]
mod tests {
    use super::*;

    fn id(kind: IdentityKind, org: &str, user: &str) -> Identity {
        Identity {
            kind,
            org: org.into(),
            user: user.into(),
        }
    }

    #[test]
    fn an_edge_node_speaks_only_for_itself() {
        let edge = id(IdentityKind::EdgeNode, "org1", "edge/n1");
        let own = node_for_request(&edge, "org1/edge/n1", false).expect("own node");
        assert_eq!(
            (own.org.as_str(), own.dest_type.as_str(), own.dest_id.as_str()),
            ("org1", "edge", "n1")
        );
        for other in ["org1/edge/n2", "org2/edge/n1", "org1/gpu/n1"] {
            assert_eq!(node_for_request(&edge, other, false), None, "{other}");
        }
    }

    #[test]
    fn org_admins_act_for_nodes_of_their_org_and_users_need_a_destination_grant() {
        let admin = id(IdentityKind::OrgAdmin, "org1", "boss");
        assert!(node_for_request(&admin, "org1/edge/any", false).is_some());
        assert!(node_for_request(&admin, "org2/edge/any", false).is_none());
        let user = id(IdentityKind::User, "org1", "bob");
        assert!(node_for_request(&user, "org1/edge/n1", false).is_none());
        let node = node_for_request(&user, "elsewhere/edge/n1", true).expect("granted user");
        assert_eq!(node.org, "org1", "a user acts in its own org whatever the header says");
    }

    #[test]
    fn malformed_headers_and_other_identities_are_refused() {
        let admin = id(IdentityKind::OrgAdmin, "org1", "boss");
        for header in ["", "org1/edge", "org1/edge/n1/x", "org1//n1", "/edge/n1"] {
            assert_eq!(node_for_request(&admin, header, true), None, "{header:?}");
        }
        for kind in [
            IdentityKind::ObjectAdmin,
            IdentityKind::SyncAdmin,
            IdentityKind::Service,
            IdentityKind::NodeUser,
        ] {
            assert_eq!(
                node_for_request(&id(kind, "org1", "x"), "org1/edge/n1", true),
                None,
                "{kind:?}"
            );
        }
    }

    #[test]
    fn the_path_org_must_be_the_nodes_org() {
        let node = NodeAddress {
            org: "org1".into(),
            dest_type: "edge".into(),
            dest_id: "n1".into(),
        };
        assert!(path_org_matches(&node, "org1"));
        assert!(!path_org_matches(&node, "org2"));
    }
}
