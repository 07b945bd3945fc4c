//! What the ESS's synchronization tasks need from a transport to the CSS, in terms of
//! neither HTTP nor MQTT: each request ends in a [`Reply`]. The HTTP transport maps status
//! codes to it, the MQTT transport the CSS's answer messages (and their absence); the tasks'
//! decisions (retry, backoff, what to record) are the same for both.

use crate::model::sync::{Action, Feedback, PollItem};
use crate::model::{MetaData, ObjectKey};
use async_trait::async_trait;
use bytes::Bytes;
use futures_util::stream::BoxStream;

/// How the CSS answered a request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Reply {
    /// Taken.
    Accepted,
    /// Ignored because the CSS already holds a later state of the object (a duplicate or
    /// an older instance); where the protocol says so this counts as acknowledged.
    Superseded,
    /// The CSS does not know this node: it must register (again, or as new).
    UnknownNode,
    /// The CSS does not know the object, or no longer has its instance.
    UnknownObject,
    /// No answer, or the CSS asked to come back later; worth another attempt.
    RetryLater(String),
    /// The CSS is serving as many downloads as it allows at once (`429`): a slot frees as
    /// soon as another node's chunk is sent, so asking again shortly is worth it.
    Busy,
    /// Refused for good; the text says what the CSS answered.
    Refused(String),
    /// This node could not make the request (not retryable).
    Invalid(String),
}

impl Reply {
    /// True for answers worth retrying.
    pub fn is_transient(&self) -> bool {
        matches!(self, Self::RetryLater(_) | Self::Busy)
    }

    /// True when the CSS took the request or already had what it says.
    pub fn acknowledged(&self) -> bool {
        matches!(self, Self::Accepted | Self::Superseded)
    }
}

impl std::fmt::Display for Reply {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Accepted => f.write_str("accepted"),
            Self::Superseded => f.write_str("superseded by a later state"),
            Self::UnknownNode => f.write_str("node unknown to the CSS"),
            Self::UnknownObject => f.write_str("object unknown to the CSS"),
            Self::RetryLater(e) => write!(f, "transient failure: {e}"),
            Self::Busy => f.write_str("the CSS is busy serving other downloads"),
            Self::Refused(e) => write!(f, "refused: {e}"),
            Self::Invalid(e) => write!(f, "invalid request: {e}"),
        }
    }
}

/// What a poll returned.
#[derive(Debug)]
pub struct PollAnswer {
    pub items: Vec<PollItem>,
    /// The CSS holds polls until it has news (so polling again at once costs nothing).
    pub long_poll: bool,
}

/// Data bytes of a CSS object, starting at `start`; or, when `manifest` is set, bytes of
/// the manifest of its data from `start` (see [`crate::delta`]).
pub struct DataChunk {
    pub start: u64,
    pub body: BoxStream<'static, Result<Bytes, String>>,
    pub manifest: bool,
}

/// How a transport delivers the CSS's notifications, which decides whether one that arrives
/// while its object is busy may be skipped.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NotificationDelivery {
    /// Handed out again until answered (HTTP polls): a busy object's may be skipped now.
    RepeatedUntilAnswered,
    /// Delivered once (MQTT messages): it must wait for the object, never be skipped.
    Once,
}

/// Bytes of a data file being uploaded.
pub type UploadBody = BoxStream<'static, std::io::Result<Bytes>>;

/// A transport from an ESS to its CSS.
#[async_trait]
pub trait EssLink: Send + Sync {
    /// True when the node's store survives restarts (`persistent-storage`).
    fn persistent(&self) -> bool;
    /// How the CSS's notifications arrive over this transport.
    fn notification_delivery(&self) -> NotificationDelivery;
    /// The upload of own objects' data, for a transport over which the ESS sends it; `None`
    /// where the CSS pulls it instead (the link then answers the CSS's data requests).
    fn data_push(&self) -> Option<&dyn DataPush>;
    /// The unregistration of a stopping node, for a transport whose protocol has one.
    fn unregistration(&self) -> Option<&dyn Unregistration>;
    /// Resolves when the transport lost the CSS's view of this node (a new broker session):
    /// the node must register again.
    async fn session_lost(&self);
    async fn register(&self, as_new: bool) -> Reply;
    async fn resend(&self) -> Reply;
    async fn ping(&self) -> Reply;
    /// Notifications for this node, waiting up to `wait_secs` for the first one.
    async fn poll(&self, wait_secs: u16) -> Result<PollAnswer, Reply>;
    async fn action(
        &self,
        key: &ObjectKey,
        instance_id: i64,
        data_id: i64,
        action: Action,
        body: Option<Vec<u8>>,
    ) -> Reply;
    /// `deleted` for a copy whose deletion the applications acknowledged.
    async fn deleted(&self, meta: &MetaData) -> Reply;
    /// `feedback`: a reception failed (spec §5.5); a non-zero `retry_interval` asks the CSS
    /// to send the `update` again after that many seconds.
    async fn feedback(&self, key: &ObjectKey, instance_id: i64, data_id: i64, feedback: &Feedback) -> Reply;
    /// `update` or `delete` of one of the ESS's own objects.
    async fn action_with_meta(&self, key: &ObjectKey, meta: &MetaData, action: Action) -> Reply;
    /// Data of a CSS object, whole or one inclusive byte range. With `manifest`, the CSS is
    /// asked for the manifest of the data instead, from the range's start: a CSS that takes
    /// part answers with it, another with the data asked for.
    async fn data(
        &self,
        key: &ObjectKey,
        instance_id: i64,
        data_id: i64,
        range: Option<(u64, u64)>,
        manifest: bool,
    ) -> Result<DataChunk, Reply>;
}

/// Sends the data of the ESS's own objects to the CSS.
#[async_trait]
pub trait DataPush: Send + Sync {
    /// True when the CSS takes the manifest of the upload of `instance_id` first (see
    /// [`crate::delta`]): it takes manifests, and said that it holds the previous version
    /// when it accepted the `update`. Asked once per upload.
    fn takes_manifest(&self, key: &ObjectKey, instance_id: i64) -> bool;
    /// Offers the manifest of the data of `instance_id`: the byte ranges (start, end
    /// exclusive) the CSS still needs, or `None` when it did not take the offer.
    async fn offer_manifest(
        &self,
        key: &ObjectKey,
        instance_id: i64,
        data_id: i64,
        manifest: Bytes,
    ) -> Option<Vec<(u64, u64)>>;

    /// The whole data (`range` `None`) or the part `(start, end inclusive, total)`, `len`
    /// bytes from `body`.
    async fn upload(
        &self,
        key: &ObjectKey,
        instance_id: i64,
        data_id: i64,
        range: Option<(u64, u64, u64)>,
        len: u64,
        body: UploadBody,
    ) -> Reply;
}

/// Tells the CSS that this node leaves for good.
#[async_trait]
pub trait Unregistration: Send + Sync {
    async fn unregister(&self) -> Reply;
}
