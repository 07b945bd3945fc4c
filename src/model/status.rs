//! Object status values (spec: metadata.md §6) and the per-destination delivery status (§9).

use serde::{Deserialize, Serialize};

/// Status of an object on a node, as returned verbatim by `GET .../status`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum ObjectStatus {
    #[serde(rename = "notReady")]
    NotReady,
    #[serde(rename = "verifying")]
    Verifying,
    #[serde(rename = "verificationFailed")]
    VerificationFailed,
    #[serde(rename = "ready")]
    Ready,
    #[serde(rename = "partiallyreceived")]
    PartiallyReceived,
    #[serde(rename = "receiverVerifying")]
    ReceiverVerifying,
    #[serde(rename = "receiverVerificationFailed")]
    ReceiverVerificationFailed,
    #[serde(rename = "completelyReceived")]
    CompletelyReceived,
    #[serde(rename = "objreceived")]
    ObjReceived,
    #[serde(rename = "objconsumed")]
    ObjConsumed,
    #[serde(rename = "objdeleted")]
    ObjDeleted,
    #[serde(rename = "consumedByDest")]
    ConsumedByDest,
}

impl ObjectStatus {
    /// Every status, for parsing stored values.
    pub const ALL: [ObjectStatus; 12] = [
        Self::NotReady,
        Self::Verifying,
        Self::VerificationFailed,
        Self::Ready,
        Self::PartiallyReceived,
        Self::ReceiverVerifying,
        Self::ReceiverVerificationFailed,
        Self::CompletelyReceived,
        Self::ObjReceived,
        Self::ObjConsumed,
        Self::ObjDeleted,
        Self::ConsumedByDest,
    ];

    /// The wire spelling.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::NotReady => "notReady",
            Self::Verifying => "verifying",
            Self::VerificationFailed => "verificationFailed",
            Self::Ready => "ready",
            Self::PartiallyReceived => "partiallyreceived",
            Self::ReceiverVerifying => "receiverVerifying",
            Self::ReceiverVerificationFailed => "receiverVerificationFailed",
            Self::CompletelyReceived => "completelyReceived",
            Self::ObjReceived => "objreceived",
            Self::ObjConsumed => "objconsumed",
            Self::ObjDeleted => "objdeleted",
            Self::ConsumedByDest => "consumedByDest",
        }
    }

    /// Parses the wire spelling.
    pub fn parse(value: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|s| s.as_str() == value)
    }

    /// Statuses of a copy that was created on this node by an application (the sender side).
    /// `objdeleted` is not included: a received copy can be in that status too, so callers
    /// check [`crate::model::ObjectRecord::is_sender_copy`] instead.
    pub fn is_sender_only(self) -> bool {
        matches!(
            self,
            Self::NotReady | Self::Verifying | Self::VerificationFailed | Self::Ready | Self::ConsumedByDest
        )
    }

    /// Statuses in which the object's data can be read.
    pub fn data_readable(self) -> bool {
        matches!(
            self,
            Self::Ready | Self::CompletelyReceived | Self::ObjReceived | Self::ObjConsumed
        )
    }
}

impl std::fmt::Display for ObjectStatus {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Delivery status of an object at one destination (spec: metadata.md §9).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum DeliveryStatus {
    Pending,
    Delivering,
    Delivered,
    Consumed,
    Deleted,
    Error,
}

impl DeliveryStatus {
    /// Every state, in the order a delivery goes through them (deleted and error last).
    pub const ALL: [Self; 6] = [
        Self::Pending,
        Self::Delivering,
        Self::Delivered,
        Self::Consumed,
        Self::Deleted,
        Self::Error,
    ];

    /// The wire spelling.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Pending => "pending",
            Self::Delivering => "delivering",
            Self::Delivered => "delivered",
            Self::Consumed => "consumed",
            Self::Deleted => "deleted",
            Self::Error => "error",
        }
    }

    /// Parses the wire spelling.
    pub fn parse(value: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|s| s.as_str() == value)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn status_spellings_round_trip() {
        for status in ObjectStatus::ALL {
            assert_eq!(ObjectStatus::parse(status.as_str()), Some(status));
            let json = serde_json::to_string(&status).unwrap();
            assert_eq!(json, format!("\"{}\"", status.as_str()));
        }
        assert_eq!(ObjectStatus::parse("Ready"), None);
    }
}
