//! The CSS <-> ESS wire vocabulary (spec: css-ess-protocol.md §2, §3.5, §3.7) and the
//! notification record each side keeps per object and remote node (§1, §5).

use super::{MetaData, ObjectKey};
use serde::{Deserialize, Serialize};

/// Status of a notification record; the `*Pending` forms are messages an HTTP CSS holds for
/// the node's next poll. Spellings are the original's internal names.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum NotificationStatus {
    Update,
    UpdatePending,
    Updated,
    Data,
    ReceivedByDest,
    ConsumedByDest,
    Error,
    Delete,
    DeletePending,
    AckDelete,
    HandleUpdate,
    GetData,
    ReceiverError,
    Received,
    ReceivedPending,
    AckReceived,
    Consumed,
    ConsumedPending,
    Deleted,
    DeletedPending,
}

impl NotificationStatus {
    /// Every status.
    pub const ALL: [Self; 20] = [
        Self::Update,
        Self::UpdatePending,
        Self::Updated,
        Self::Data,
        Self::ReceivedByDest,
        Self::ConsumedByDest,
        Self::Error,
        Self::Delete,
        Self::DeletePending,
        Self::AckDelete,
        Self::HandleUpdate,
        Self::GetData,
        Self::ReceiverError,
        Self::Received,
        Self::ReceivedPending,
        Self::AckReceived,
        Self::Consumed,
        Self::ConsumedPending,
        Self::Deleted,
        Self::DeletedPending,
    ];

    /// The stored spelling.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Update => "update",
            Self::UpdatePending => "updatePending",
            Self::Updated => "updated",
            Self::Data => "data",
            Self::ReceivedByDest => "receivedByDest",
            Self::ConsumedByDest => "consumedByDest",
            Self::Error => "error",
            Self::Delete => "delete",
            Self::DeletePending => "deletePending",
            Self::AckDelete => "ackDelete",
            Self::HandleUpdate => "handleUpdate",
            Self::GetData => "getdata",
            Self::ReceiverError => "receiverError",
            Self::Received => "received",
            Self::ReceivedPending => "receivedpending",
            Self::AckReceived => "ackreceived",
            Self::Consumed => "consumed",
            Self::ConsumedPending => "consumedPending",
            Self::Deleted => "deleted",
            Self::DeletedPending => "deletedPending",
        }
    }

    /// Parses the stored spelling.
    pub fn parse(value: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|s| s.as_str() == value)
    }

    /// For a record waiting for the node's poll: the `Type` the poll answer carries.
    /// The status a queued (`*Pending`) record takes once its message was sent to a node
    /// that is pushed its messages (MQTT).
    pub fn sent_form(self) -> Option<Self> {
        match self {
            Self::UpdatePending => Some(Self::Update),
            Self::ConsumedPending => Some(Self::Consumed),
            Self::DeletePending => Some(Self::Delete),
            Self::DeletedPending => Some(Self::Deleted),
            Self::ReceivedPending => Some(Self::Received),
            _ => None,
        }
    }

    /// Statuses of messages owed to the remote node and not acknowledged by it yet: queued
    /// (`*Pending`) or sent and awaiting the acknowledgement (for `/metrics`).
    pub fn unacknowledged() -> impl Iterator<Item = Self> {
        Self::ALL
            .into_iter()
            .filter(|s| s.sent_form().is_some() || s.pending_form().is_some())
    }

    /// Statuses of messages queued for the remote node's next poll (those with a
    /// [`poll_type`](Self::poll_type)).
    pub fn awaiting_poll() -> impl Iterator<Item = Self> {
        Self::ALL.into_iter().filter(|s| s.poll_type().is_some())
    }

    /// The queued form of a sent status: what a resend turns it back into.
    pub fn pending_form(self) -> Option<Self> {
        Self::ALL.into_iter().find(|pending| pending.sent_form() == Some(self))
    }

    pub fn poll_type(self) -> Option<&'static str> {
        match self {
            Self::UpdatePending => Some("update"),
            Self::ConsumedPending => Some("consumed"),
            Self::DeletePending => Some("delete"),
            Self::DeletedPending => Some("deleted"),
            Self::ReceivedPending => Some("received"),
            _ => None,
        }
    }
}

/// A remote node as notification records name it: destination type and ID (`Cloud`/`Cloud`
/// for the CSS).
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Remote {
    pub dest_type: String,
    pub dest_id: String,
}

/// One notification record: what this node last told, or was told by, a remote node about
/// one instance of an object.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Notification {
    pub key: ObjectKey,
    pub remote: Remote,
    pub status: NotificationStatus,
    pub instance_id: i64,
    pub data_id: i64,
    /// Unix seconds after which an unacknowledged message is sent again.
    pub resend_time: i64,
}

/// One element of a poll answer (`GET /spi/v1/objects/`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PollItem {
    #[serde(rename = "Type")]
    pub kind: String,
    #[serde(rename = "MetaData")]
    pub meta: MetaData,
}

/// Body of a `feedback` action.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct Feedback {
    #[serde(rename = "Code")]
    pub code: i32,
    #[serde(rename = "RetryInterval")]
    pub retry_interval: i32,
    #[serde(rename = "Reason")]
    pub reason: String,
}

impl Feedback {
    /// An error report without a retry request (the CSS's own resend cadence applies).
    pub fn error(code: i32, reason: String) -> Self {
        Self {
            code,
            retry_interval: 0,
            reason,
        }
    }
}

/// Object actions an ESS sends with `PUT /spi/v1/objects/{org}/{type}/{id}/{instanceID}/{dataID}/{action}`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Action {
    Update,
    Updated,
    Data,
    Consumed,
    AckConsumed,
    Received,
    AckReceived,
    Delete,
    AckDelete,
    Deleted,
    AckDeleted,
    Feedback,
}

impl Action {
    /// Every action, in the protocol's order.
    pub const ALL: [Self; 12] = [
        Self::Update,
        Self::Updated,
        Self::Data,
        Self::Consumed,
        Self::AckConsumed,
        Self::Received,
        Self::AckReceived,
        Self::Delete,
        Self::AckDelete,
        Self::Deleted,
        Self::AckDeleted,
        Self::Feedback,
    ];

    /// The path spelling.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Update => "update",
            Self::Updated => "updated",
            Self::Data => "data",
            Self::Consumed => "consumed",
            Self::AckConsumed => "ackconsumed",
            Self::Received => "received",
            Self::AckReceived => "ackreceived",
            Self::Delete => "delete",
            Self::AckDelete => "ackDelete",
            Self::Deleted => "deleted",
            Self::AckDeleted => "ackDeleted",
            Self::Feedback => "feedback",
        }
    }

    /// Parses the path spelling (case-sensitive, as the original).
    pub fn parse(value: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|a| a.as_str() == value)
    }
}

/// Query parameter with which our ESS asks the CSS to hold an empty poll open for up to this
/// many seconds (long polling). The original CSS ignores unknown query parameters and answers
/// at once, so the ESS then simply polls at its interval.
pub const LONG_POLL_PARAM: &str = "wait";

/// Response header with which our CSS tells that it honours long polls.
pub const LONG_POLL_HEADER: &str = "X-Sync-Long-Poll";

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn spellings_round_trip() {
        for status in NotificationStatus::ALL {
            assert_eq!(NotificationStatus::parse(status.as_str()), Some(status));
        }
        for action in Action::ALL {
            assert_eq!(Action::parse(action.as_str()), Some(action));
        }
        assert_eq!(Action::parse("AckDelete"), None);
    }

    #[test]
    fn poll_items_use_the_capitalised_keys() {
        let item = PollItem {
            kind: "update".into(),
            meta: MetaData::default(),
        };
        let json = serde_json::to_value(&item).unwrap();
        assert_eq!(json["Type"], "update");
        assert!(json["MetaData"].is_object());
    }
}
