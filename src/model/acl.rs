//! Access control lists of the CSS (spec: security.md §6): per org, kind and key (an object
//! type, a destination type, or `*` for the org-wide list), an ordered list of entries.

use serde::{Deserialize, Serialize};

/// The two kinds of ACL, as named in `/api/v1/security/{aclType}/...`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum AclKind {
    /// Protects object types.
    Objects,
    /// Protects destination types.
    Destinations,
}

impl AclKind {
    /// The path and storage spelling.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Objects => "objects",
            Self::Destinations => "destinations",
        }
    }

    /// Parses the path spelling.
    pub fn parse(value: &str) -> Option<Self> {
        match value {
            "objects" => Some(Self::Objects),
            "destinations" => Some(Self::Destinations),
            _ => None,
        }
    }
}

/// Key of the org-wide ACL of a kind.
pub const ORG_WIDE_KEY: &str = "*";

/// Which identities an entry applies to.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum AclUserType {
    #[serde(rename = "user")]
    User,
    #[serde(rename = "node")]
    Node,
}

impl AclUserType {
    /// The wire spelling.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::User => "user",
            Self::Node => "node",
        }
    }

    /// Parses the wire spelling.
    pub fn parse(value: &str) -> Option<Self> {
        match value {
            "user" => Some(Self::User),
            "node" => Some(Self::Node),
            _ => None,
        }
    }
}

/// What an entry grants; destinations ACLs always store `na`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum AclRole {
    #[serde(rename = "aclWriter")]
    Writer,
    #[serde(rename = "aclReader")]
    Reader,
    #[serde(rename = "na")]
    NotApplicable,
}

impl AclRole {
    /// The wire spelling.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Writer => "aclWriter",
            Self::Reader => "aclReader",
            Self::NotApplicable => "na",
        }
    }

    /// Parses the wire spelling.
    pub fn parse(value: &str) -> Option<Self> {
        match value {
            "aclWriter" => Some(Self::Writer),
            "aclReader" => Some(Self::Reader),
            "na" => Some(Self::NotApplicable),
            _ => None,
        }
    }
}

/// One ACL entry; the capitalised keys are the original's wire names.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AclEntry {
    #[serde(rename = "Username")]
    pub username: String,
    #[serde(rename = "ACLUserType")]
    pub user_type: AclUserType,
    #[serde(rename = "ACLRole")]
    pub role: AclRole,
}

impl AclEntry {
    /// True when the entry names `user` (or everyone, `*`) of `user_type`.
    pub fn names(&self, user_type: AclUserType, user: &str) -> bool {
        self.user_type == user_type && (self.username == user || self.username == "*")
    }
}
