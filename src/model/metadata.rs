//! The MetaData record exchanged with applications and between nodes (spec: metadata.md §2).
//! Field order and names are the wire format; every field is always serialized.

use serde::{Deserialize, Serialize};

/// Object metadata as applications send and receive it.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct MetaData {
    #[serde(rename = "objectID")]
    pub object_id: String,
    #[serde(rename = "objectType")]
    pub object_type: String,
    #[serde(rename = "destinationOrgID")]
    pub destination_org_id: String,
    #[serde(rename = "destinationID")]
    pub destination_id: String,
    #[serde(rename = "destinationType")]
    pub destination_type: String,
    /// `None` when absent or `null`; `Some(vec![])` counts as present (validation rule 13).
    #[serde(rename = "destinationsList")]
    pub destinations_list: Option<Vec<String>>,
    #[serde(rename = "destinationPolicy")]
    pub destination_policy: Option<Policy>,
    pub expiration: String,
    pub version: String,
    pub description: String,
    pub link: String,
    pub inactive: bool,
    #[serde(rename = "activationTime")]
    pub activation_time: String,
    #[serde(rename = "noData")]
    pub no_data: bool,
    #[serde(rename = "metaOnly")]
    pub meta_only: bool,
    #[serde(rename = "destinationDataUri")]
    pub destination_data_uri: String,
    #[serde(rename = "sourceDataUri")]
    pub source_data_uri: String,
    pub consumers: i32,
    pub autodelete: bool,
    #[serde(rename = "originID")]
    pub origin_id: String,
    #[serde(rename = "originType")]
    pub origin_type: String,
    pub deleted: bool,
    #[serde(rename = "instanceID")]
    pub instance_id: i64,
    #[serde(rename = "dataID")]
    pub data_id: i64,
    #[serde(rename = "objectSize")]
    pub object_size: i64,
    #[serde(rename = "chunkSize")]
    pub chunk_size: i32,
    #[serde(rename = "uploadChunkSize")]
    pub upload_chunk_size: i64,
    #[serde(rename = "hashAlgorithm")]
    pub hash_algorithm: String,
    #[serde(rename = "publicKey")]
    pub public_key: String,
    pub signature: String,
    pub public: bool,
    #[serde(rename = "ownerID")]
    pub owner_id: String,
}

/// Field names of [`MetaData`] on the wire, used for case-insensitive key matching.
pub const METADATA_FIELDS: &[&str] = &[
    "objectID",
    "objectType",
    "destinationOrgID",
    "destinationID",
    "destinationType",
    "destinationsList",
    "destinationPolicy",
    "expiration",
    "version",
    "description",
    "link",
    "inactive",
    "activationTime",
    "noData",
    "metaOnly",
    "destinationDataUri",
    "sourceDataUri",
    "consumers",
    "autodelete",
    "originID",
    "originType",
    "deleted",
    "instanceID",
    "dataID",
    "objectSize",
    "chunkSize",
    "uploadChunkSize",
    "hashAlgorithm",
    "publicKey",
    "signature",
    "public",
    "ownerID",
];

/// Policy-based distribution of an object (spec: metadata.md §2.1).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct Policy {
    pub properties: Option<Vec<PolicyProperty>>,
    pub constraints: Option<Vec<String>>,
    pub services: Option<Vec<ServiceID>>,
    pub timestamp: i64,
}

/// Field names of [`Policy`] on the wire.
pub const POLICY_FIELDS: &[&str] = &["properties", "constraints", "services", "timestamp"];

/// One named property of a destination policy; its value is opaque JSON.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct PolicyProperty {
    pub name: String,
    pub value: serde_json::Value,
    #[serde(rename = "type", skip_serializing_if = "String::is_empty")]
    pub kind: String,
}

/// Field names of [`PolicyProperty`] on the wire.
pub const PROPERTY_FIELDS: &[&str] = &["name", "value", "type"];

/// A service admitted by a destination policy.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct ServiceID {
    #[serde(rename = "orgID")]
    pub org_id: String,
    pub arch: String,
    #[serde(rename = "serviceName")]
    pub service_name: String,
    pub version: String,
}

/// Field names of [`ServiceID`] on the wire.
pub const SERVICE_FIELDS: &[&str] = &["orgID", "arch", "serviceName", "version"];

impl MetaData {
    /// True when this metadata addresses no particular destination (broadcast to the org).
    pub fn is_broadcast(&self) -> bool {
        self.destination_type.is_empty() && self.destinations_list.is_none() && self.destination_policy.is_none()
    }

    /// True when the object carries signature fields that require verification.
    pub fn needs_verification(&self) -> bool {
        matches!(self.hash_algorithm.as_str(), "SHA1" | "SHA256")
            && !self.public_key.is_empty()
            && !self.signature.is_empty()
    }
}
