//! The object model shared by both roles: metadata, statuses, keys, identifiers and the
//! wire types of the REST API. Nothing here performs I/O.

pub mod acl;
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

    /// True when GET data may return bytes for this object.
    pub fn has_readable_data(&self) -> bool {
        self.status.data_readable()
            && !self.meta.no_data
            && (self.blob.is_some() || !self.meta.source_data_uri.is_empty())
    }
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
