//! What the ESS's synchronization tasks need from a transport to the CSS: requests that end
//! in an [`Outcome`] shaped like the HTTP transport's answers. HTTP implements it with
//! `/spi/v1` requests ([`super::ess_client::EssClient`]); MQTT with messages whose answers
//! are the CSS's acknowledgement messages ([`super::mqtt_link::MqttLink`]). The tasks'
//! decisions (retry, backoff, what to record) are the same for both.

use super::ess_client::{Outcome, PollAnswer};
use crate::model::sync::Action;
use crate::model::{MetaData, ObjectKey};
use async_trait::async_trait;
use bytes::Bytes;
use futures_util::stream::BoxStream;

/// Data received for a download request: the status (`200` whole, `206` partial, or an
/// error status), where the bytes start, and the bytes.
pub struct DataAnswer {
    pub status: u16,
    pub start: Option<u64>,
    pub body: BoxStream<'static, Result<Bytes, String>>,
}

/// A transport from an ESS to its CSS.
#[async_trait]
pub trait EssLink: Send + Sync {
    /// True when the node's store survives restarts (`persistent-storage`).
    fn persistent(&self) -> bool;
    /// True when the ESS pushes its objects' data (HTTP); false when the CSS pulls it with
    /// `getdata` (MQTT), so the ESS only answers requests.
    fn pushes_data(&self) -> bool;
    /// True when the CSS hands out a notification again until it is answered (HTTP polls),
    /// false when it is pushed once (MQTT) and must not be skipped.
    fn notifications_repeat(&self) -> bool;
    /// Resolves when the transport lost the CSS's view of this node (a new broker session):
    /// the node must register again.
    async fn session_lost(&self);
    async fn register(&self, as_new: bool) -> Outcome;
    async fn resend(&self) -> Outcome;
    async fn unregister(&self) -> Outcome;
    async fn ping(&self) -> Outcome;
    /// Notifications for this node, waiting up to `wait_secs` for the first one.
    async fn poll(&self, wait_secs: u16) -> Result<PollAnswer, Outcome>;
    async fn action(
        &self,
        key: &ObjectKey,
        instance_id: i64,
        data_id: i64,
        action: Action,
        body: Option<Vec<u8>>,
    ) -> Outcome;
    /// `deleted` for a copy whose deletion the applications acknowledged.
    async fn deleted(&self, meta: &MetaData) -> Outcome;
    async fn feedback(&self, key: &ObjectKey, instance_id: i64, data_id: i64, code: i32, reason: &str) -> Outcome;
    /// `update` or `delete` of one of the ESS's own objects.
    async fn action_with_meta(&self, key: &ObjectKey, meta: &MetaData, action: Action) -> Outcome;
    /// Pushes data of an own object (only when [`EssLink::pushes_data`]).
    async fn upload(
        &self,
        key: &ObjectKey,
        instance_id: i64,
        data_id: i64,
        range: Option<(u64, u64, u64)>,
        len: u64,
        body: reqwest::Body,
    ) -> Outcome;
    /// Data of a CSS object, whole or one inclusive byte range.
    async fn data(
        &self,
        key: &ObjectKey,
        instance_id: i64,
        data_id: i64,
        range: Option<(u64, u64)>,
    ) -> Result<DataAnswer, Outcome>;
}
