//! Loading the ACL entries an access decision needs. Only users and node users of the org
//! on the CSS are governed by ACLs; everyone else gets empty grants without a store access.

use super::{EngineResult, Node};
use crate::auth::access::{self, Grants};
use crate::auth::Identity;
use crate::model::acl::{AclKind, ORG_WIDE_KEY};
use crate::model::MetaData;
use std::collections::HashSet;

/// Which object types an ACL-governed caller may read in an org-wide listing.
pub(super) enum ReadableTypes {
    All,
    Only(HashSet<String>),
}

impl ReadableTypes {
    pub(super) fn contains(&self, object_type: &str) -> bool {
        match self {
            Self::All => true,
            Self::Only(types) => types.contains(object_type),
        }
    }
}

impl Node {
    fn governs(&self, identity: &Identity, org: &str) -> bool {
        access::governed_by_acls(self.role(), identity) && identity.org == org
    }

    /// Grants for reading (and the objects part of writing) objects of one type.
    pub(super) async fn grants_for_type(
        &self,
        identity: &Identity,
        org: &str,
        object_type: &str,
    ) -> EngineResult<Grants> {
        if !self.governs(identity, org) {
            return Ok(Grants::default());
        }
        let store = &self.0.store;
        Ok(Grants {
            type_objects: store.acl(org, AclKind::Objects, object_type).await?,
            org_objects: store.acl(org, AclKind::Objects, ORG_WIDE_KEY).await?,
            ..Grants::default()
        })
    }

    /// Grants for every check on this metadata, including the destinations it addresses.
    pub(super) async fn grants_for(&self, identity: &Identity, org: &str, meta: &MetaData) -> EngineResult<Grants> {
        let mut grants = self.grants_for_type(identity, org, &meta.object_type).await?;
        if self.governs(identity, org) {
            self.add_destination_grants(org, access::addressed_types(meta), &mut grants)
                .await?;
        }
        Ok(grants)
    }

    /// Adds the destinations ACLs of `dest_types` and the org-wide destinations ACL.
    pub(super) async fn add_destination_grants(
        &self,
        org: &str,
        dest_types: Vec<String>,
        grants: &mut Grants,
    ) -> EngineResult<()> {
        let store = &self.0.store;
        grants.org_destinations = store.acl(org, AclKind::Destinations, ORG_WIDE_KEY).await?;
        for dest_type in dest_types {
            let entries = store.acl(org, AclKind::Destinations, &dest_type).await?;
            grants.destinations.insert(dest_type, entries);
        }
        Ok(())
    }

    /// For org-wide listings: the types whose objects ACL names the caller (any role); all
    /// types when the org-wide objects ACL does.
    pub(super) async fn readable_types(&self, identity: &Identity, org: &str) -> EngineResult<ReadableTypes> {
        if !self.governs(identity, org) {
            return Ok(ReadableTypes::Only(HashSet::new()));
        }
        let Some(user_type) = access::acl_user_type(identity) else {
            return Ok(ReadableTypes::Only(HashSet::new()));
        };
        let mut types = HashSet::new();
        for key in self.0.store.acl_keys(org, AclKind::Objects).await? {
            let entries = self.0.store.acl(org, AclKind::Objects, &key).await?;
            if entries.iter().any(|e| e.names(user_type, &identity.user)) {
                if key == ORG_WIDE_KEY {
                    return Ok(ReadableTypes::All);
                }
                types.insert(key);
            }
        }
        Ok(ReadableTypes::Only(types))
    }
}
