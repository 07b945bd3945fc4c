//! The object model shared by both roles: metadata, statuses, keys, identifiers and the
//! wire types of the REST API. Nothing here performs I/O.

pub mod acl;
/// Hostile JSON texts for the property tests of the body readers.
#[cfg(test)]
pub mod hostile_json;
pub mod json;
pub mod lifecycle;
pub mod metadata;
pub mod names;
pub mod status;
pub mod sync;
pub mod validate;
pub mod version;

pub use metadata::{MetaData, Policy, PolicyProperty, ServiceID};
pub use status::{DeliveryStatus, ObjectStatus};

use serde::{Deserialize, Serialize};

/// Which side of the synchronization this node plays.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Role {
    /// Cloud Sync Service: many organizations and edge nodes.
    Css,
    /// Edge Sync Service: one node of one organization.
    Ess,
}

/// Identifies an object within a node: organization, type and ID.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ObjectKey {
    pub org: String,
    pub object_type: String,
    pub object_id: String,
}

impl ObjectKey {
    /// Builds a key from its three parts.
    pub fn new(org: impl Into<String>, object_type: impl Into<String>, object_id: impl Into<String>) -> Self {
        Self {
            org: org.into(),
            object_type: object_type.into(),
            object_id: object_id.into(),
        }
    }
}

impl std::fmt::Display for ObjectKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}/{}/{}", self.org, self.object_type, self.object_id)
    }
}

/// An object as the store keeps it: the wire metadata plus the node's own bookkeeping.
#[derive(Debug, Clone, PartialEq)]
pub struct ObjectRecord {
    pub meta: MetaData,
    pub status: ObjectStatus,
    /// True for a copy that an application created on this node; false for a copy received
    /// from the other side.
    pub sender: bool,
    pub remaining_consumers: i32,
    pub remaining_receivers: i32,
    pub policy_received: bool,
    /// Name of the data file in the blob store, when data is stored.
    pub blob: Option<String>,
    /// Optimistic-concurrency token: changes on every write of the record.
    pub revision: i64,
}

impl ObjectRecord {
    /// The object's key; the org is the metadata's owning organization.
    pub fn key(&self) -> ObjectKey {
        ObjectKey::new(
            &self.meta.destination_org_id,
            &self.meta.object_type,
            &self.meta.object_id,
        )
    }

    /// True for a copy that an application created on this node.
    pub fn is_sender_copy(&self) -> bool {
        self.sender
    }

    /// Where GET data reads this object's data on a node of `role`; `None` when it has none.
    /// Files named by data URIs are used on an ESS only, where they are local: the source
    /// file of an own object, the destination file a received copy's data was written to.
    /// On a CSS such fields are just metadata (they name files on some edge node).
    pub fn data_location(&self, role: Role) -> Option<DataLocation<'_>> {
        if !self.status.data_readable() || self.meta.no_data {
            return None;
        }
        if let Some(blob) = &self.blob {
            return Some(DataLocation::Stored(blob));
        }
        let (source, destination) = (&self.meta.source_data_uri, &self.meta.destination_data_uri);
        match (role, self.sender) {
            (Role::Ess, true) if !source.is_empty() => Some(DataLocation::SourceFile(source)),
            (Role::Ess, false) if !destination.is_empty() && self.meta.link.is_empty() => {
                Some(DataLocation::DestinationFile(destination))
            }
            _ => None,
        }
    }

    /// True for a received copy on an ESS whose data lives in its `destinationDataUri` file.
    pub fn data_in_destination_file(&self) -> bool {
        matches!(self.data_location(Role::Ess), Some(DataLocation::DestinationFile(_)))
    }
}

/// Where an object's data is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DataLocation<'a> {
    /// A data file of the node's store, by name.
    Stored(&'a str),
    /// The file named by `sourceDataUri` (an ESS's own object).
    SourceFile(&'a str),
    /// The file named by `destinationDataUri` (a copy received by an ESS).
    DestinationFile(&'a str),
}

/// A registered edge node (spec: metadata.md §13).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Destination {
    #[serde(rename = "destinationOrgID")]
    pub org: String,
    #[serde(rename = "destinationType")]
    pub dest_type: String,
    #[serde(rename = "destinationID")]
    pub dest_id: String,
    pub communication: String,
    #[serde(rename = "codeVersion")]
    pub code_version: String,
}

/// Delivery state of an object at one destination, as listed by `GET .../destinations`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DestinationStatus {
    #[serde(rename = "destinationType")]
    pub dest_type: String,
    #[serde(rename = "destinationID")]
    pub dest_id: String,
    pub status: DeliveryStatus,
    pub message: String,
}

/// Per-node view of an object's delivery (`GET /api/v1/destinations/{org}/{type}/{id}/objects`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ObjectDeliveryView {
    #[serde(rename = "orgID")]
    pub org: String,
    #[serde(rename = "objectType")]
    pub object_type: String,
    #[serde(rename = "objectID")]
    pub object_id: String,
    pub status: DeliveryStatus,
}

/// Policy view of an object (`all_objects=true`, `destination_policy=true` listings).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ObjectDestinationPolicy {
    #[serde(rename = "orgID")]
    pub org: String,
    #[serde(rename = "objectType")]
    pub object_type: String,
    #[serde(rename = "objectID")]
    pub object_id: String,
    #[serde(rename = "destinationPolicy", skip_serializing_if = "Option::is_none")]
    pub destination_policy: Option<Policy>,
    pub destinations: Option<Vec<DestinationStatus>>,
}

/// An organization stored on the CSS (PUT body of `/api/v1/organizations/{org}`).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct Organization {
    #[serde(rename = "orgID")]
    pub org_id: String,
    pub user: String,
    pub password: String,
    pub address: String,
}

/// Field names of [`Organization`] on the wire.
pub const ORGANIZATION_FIELDS: &[&str] = &["orgID", "user", "password", "address"];

/// One entry of the organization listing.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct OrganizationEntry {
    #[serde(rename = "org-id")]
    pub org_id: String,
    pub address: String,
}

#[cfg(test)]
mod props;

#[cfg(test)]
mod tests {
    use super::*;

    fn record(sender: bool, status: ObjectStatus, blob: Option<&str>) -> ObjectRecord {
        ObjectRecord {
            meta: MetaData {
                source_data_uri: "file:///data/in.bin".into(),
                destination_data_uri: "file:///data/out.bin".into(),
                ..MetaData::default()
            },
            status,
            sender,
            remaining_consumers: 1,
            remaining_receivers: 1,
            policy_received: false,
            blob: blob.map(str::to_string),
            revision: 1,
        }
    }

    #[test]
    fn stored_data_wins_and_data_uri_files_are_used_on_an_ess_only() {
        let stored = record(true, ObjectStatus::Ready, Some("1.bin"));
        assert_eq!(stored.data_location(Role::Css), Some(DataLocation::Stored("1.bin")));
        let own = record(true, ObjectStatus::Ready, None);
        assert_eq!(
            own.data_location(Role::Ess),
            Some(DataLocation::SourceFile("file:///data/in.bin"))
        );
        let received = record(false, ObjectStatus::CompletelyReceived, None);
        assert_eq!(
            received.data_location(Role::Ess),
            Some(DataLocation::DestinationFile("file:///data/out.bin"))
        );
        assert!(received.data_in_destination_file());
        // On a CSS the fields name files of an edge node: never read locally.
        assert_eq!(own.data_location(Role::Css), None);
        assert_eq!(received.data_location(Role::Css), None);
    }

    #[test]
    fn copies_without_data_have_no_location() {
        let partial = record(false, ObjectStatus::PartiallyReceived, None);
        assert_eq!(partial.data_location(Role::Ess), None);
        let mut link = record(false, ObjectStatus::CompletelyReceived, None);
        link.meta.link = "http://x".into();
        assert_eq!(link.data_location(Role::Ess), None);
        let mut no_data = record(true, ObjectStatus::Ready, Some("1.bin"));
        no_data.meta.no_data = true;
        assert_eq!(no_data.data_location(Role::Ess), None);
        assert_eq!(
            record(true, ObjectStatus::ConsumedByDest, None).data_location(Role::Ess),
            None
        );
    }
}
