//! The ESS's HTTP client for its CSS (spec: css-ess-protocol.md §3): registration, ping,
//! poll, object actions and data downloads under `/spi/v1`. Every request carries the Basic
//! credentials the authenticator gives for the CSS URL and `X-Sync-Service-Dest`. Status codes
//! become protocol-neutral [`Reply`]s here, once per kind of request; retrying is the sync
//! tasks' decision.

use crate::config::Config;
use crate::engine::Node;
use crate::model::sync::{Action, Feedback, PollItem, LONG_POLL_HEADER, LONG_POLL_PARAM};
use crate::model::{MetaData, ObjectKey};
use crate::sync::link::{
    DataChunk, DataPush, EssLink, NotificationDelivery, PollAnswer, Reply, Unregistration, UploadBody,
};
use crate::transport::compression;
use crate::transport::link_reason::{reason_of_request, reason_of_status};
use async_trait::async_trait;
use futures_util::{StreamExt, TryStreamExt};
use percent_encoding::{utf8_percent_encode, AsciiSet, NON_ALPHANUMERIC};
use reqwest::{Method, StatusCode};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

/// Characters escaped in a path segment: everything but RFC 3986 unreserved characters.
const SEGMENT: &AsciiSet = &NON_ALPHANUMERIC.remove(b'-').remove(b'.').remove(b'_').remove(b'~');

/// Header naming the calling node.
pub const DEST_HEADER: &str = "X-Sync-Service-Dest";

/// Longest long poll the ESS asks for, seconds.
pub const MAX_LONG_POLL_SECS: u16 = 60;

/// Percent-escapes one path segment.
pub fn segment(value: &str) -> String {
    utf8_percent_encode(value, SEGMENT).to_string()
}

/// What a status means for the kind of request it answers; the rest is the same for all.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Route {
    /// `register`, `ping`, `unregister`: `404` is a node the CSS does not know.
    Node,
    /// A poll: `424` is a node the CSS does not know.
    Poll,
    /// An object's action or data: `404` is an unknown object; a data upload's `400` too
    /// (the CSS has no metadata for it).
    Object,
    /// `resend`.
    Other,
}

fn reply_of(route: Route, status: u16) -> Reply {
    match (route, status) {
        (_, 200 | 204) => Reply::Accepted,
        (_, 409) => Reply::Superseded,
        (Route::Node, 404) | (Route::Poll, 424) => Reply::UnknownNode,
        (Route::Object, 400 | 404) => Reply::UnknownObject,
        // The spec's transient answers (§3.4); 429 only ever answers a ranged download.
        (_, 429) => Reply::Busy,
        (_, 502 | 503 | 504 | 408 | 307) => Reply::RetryLater(format!("status {status}")),
        // The CSS's disk is full: the same request succeeds once space is freed there.
        (_, 507) => Reply::RetryLater("status 507: the CSS has not enough disk space".into()),
        _ => Reply::Refused(format!("status {status}")),
    }
}

/// A request that got no answer: retried, unless it could not even be built.
fn failed(e: &reqwest::Error) -> Reply {
    if e.is_builder() {
        Reply::Invalid(e.to_string())
    } else {
        Reply::RetryLater(error_chain(e))
    }
}

fn error_chain(e: &dyn std::error::Error) -> String {
    let mut text = e.to_string();
    let mut source = e.source();
    while let Some(inner) = source {
        text.push_str(": ");
        text.push_str(&inner.to_string());
        source = inner.source();
    }
    text
}

/// The HTTP client of one ESS.
#[derive(Clone)]
pub struct EssClient {
    http: reqwest::Client,
    node: Node,
    base: String,
    dest: String,
    org: String,
    persistent: bool,
    control_timeout: Duration,
    data_timeout: Duration,
    /// `DataCompression`: ask for compressed downloads, compress uploads the CSS takes so.
    compression: bool,
    /// The CSS said (on a poll answer) that it takes compressed uploads.
    css_takes_compressed: Arc<AtomicBool>,
    /// The CSS said (on a poll answer) that uploads may offer it their manifest first.
    css_takes_manifests: Arc<AtomicBool>,
    /// Own objects' versions whose `update` the CSS answered saying it holds the previous
    /// version: their uploads offer their manifest first.
    css_holds_previous: Arc<parking_lot::Mutex<std::collections::HashSet<(ObjectKey, i64)>>>,
}

/// Versions remembered in `css_holds_previous`, at most.
const HOLDING_KEPT: usize = 1024;

impl EssClient {
    /// A client for the CSS of `config`; `tls` is the preconfigured client TLS for https.
    pub fn new(config: &Config, node: Node, tls: Option<rustls::ClientConfig>) -> Result<Self, reqwest::Error> {
        let store_created = node.settings().store_created;
        let mut builder = reqwest::Client::builder()
            .redirect(reqwest::redirect::Policy::none())
            .connect_timeout(Duration::from_secs(30))
            .pool_idle_timeout(Duration::from_secs(90));
        if let Some(tls) = tls {
            builder = builder.use_preconfigured_tls(tls);
        }
        let seconds = |value: i64, default: u64| {
            Duration::from_secs(u64::try_from(value).ok().filter(|v| *v > 0).unwrap_or(default))
        };
        Ok(Self {
            http: builder.build()?,
            node,
            base: config.css_base_url(),
            dest: format!(
                "{}/{}/{}",
                config.org_id, config.destination_type, config.destination_id
            ),
            org: config.org_id.clone(),
            // A store created at this start holds nothing of what the CSS delivered before:
            // saying so makes the CSS send it again (css-ess-protocol.md §7.2).
            persistent: config.storage_provider == crate::config::StorageKind::Sqlite && !store_created,
            control_timeout: seconds(config.http_ess_client_timeout, 120),
            data_timeout: seconds(config.http_ess_obj_client_timeout, 600),
            compression: config.data_compression,
            css_takes_compressed: Arc::new(AtomicBool::new(false)),
            css_takes_manifests: Arc::new(AtomicBool::new(false)),
            css_holds_previous: Arc::new(parking_lot::Mutex::new(std::collections::HashSet::new())),
        })
    }

    fn request(&self, method: Method, url: &str, timeout: Duration) -> reqwest::RequestBuilder {
        let mut builder = self
            .http
            .request(method, url)
            .timeout(timeout)
            .header(DEST_HEADER, &self.dest);
        if let Some((user, secret)) = self.node.credentials_for(url) {
            builder = builder.basic_auth(user, Some(secret));
        }
        builder
    }

    async fn send(&self, route: Route, builder: reqwest::RequestBuilder) -> Reply {
        match self.exchange(builder).await {
            Ok(response) => {
                let status = response.status().as_u16();
                // Read (and drop) the body so the connection can be reused.
                let _ = response.bytes().await;
                reply_of(route, status)
            }
            Err(reply) => reply,
        }
    }

    /// Sends a request and records in the node's link status whether the CSS answered (a
    /// server error or refused credentials count as failures of the link).
    async fn exchange(&self, builder: reqwest::RequestBuilder) -> Result<reqwest::Response, Reply> {
        let link = self.node.css_link();
        match builder.send().await {
            Ok(response) => {
                if compression::names_zstd(response.headers().get(compression::ACCEPTED_HEADER)) {
                    self.css_takes_compressed.store(true, Ordering::Relaxed);
                }
                if is_format(response.headers().get(crate::transport::MANIFEST_HEADER)) {
                    self.css_takes_manifests.store(true, Ordering::Relaxed);
                }
                if let Some(link) = link {
                    let status = response.status().as_u16();
                    match reason_of_status(status) {
                        Some(reason) => link.failed(reason, &format!("the CSS answered {status}")),
                        None => link.succeeded(),
                    }
                }
                Ok(response)
            }
            Err(e) => {
                if let Some(link) = link {
                    if !e.is_builder() {
                        link.failed(reason_of_request(&e), &error_chain(&e));
                    }
                }
                Err(failed(&e))
            }
        }
    }

    fn node_path(&self, route: &str) -> String {
        let mut parts = self.dest.splitn(3, '/');
        let (org, dest_type, dest_id) = (
            parts.next().unwrap_or_default(),
            parts.next().unwrap_or_default(),
            parts.next().unwrap_or_default(),
        );
        format!(
            "{}/spi/v1/{route}/{}/{}/{}",
            self.base,
            segment(org),
            segment(dest_type),
            segment(dest_id)
        )
    }

    fn object_url(&self, key: &ObjectKey, instance_id: i64, data_id: i64, last: &str) -> String {
        format!(
            "{}/spi/v1/objects/{}/{}/{}/{instance_id}/{data_id}/{last}",
            self.base,
            segment(&key.org),
            segment(&key.object_type),
            segment(&key.object_id)
        )
    }
}

#[async_trait]
impl EssLink for EssClient {
    fn persistent(&self) -> bool {
        self.persistent
    }

    fn notification_delivery(&self) -> NotificationDelivery {
        NotificationDelivery::RepeatedUntilAnswered
    }

    fn data_push(&self) -> Option<&dyn DataPush> {
        Some(self)
    }

    fn unregistration(&self) -> Option<&dyn Unregistration> {
        Some(self)
    }

    async fn session_lost(&self) {
        // Each HTTP request stands alone; there is no session to lose.
        std::future::pending().await
    }

    /// `PUT /spi/v1/register[-new]/...` (single attempt).
    async fn register(&self, as_new: bool) -> Reply {
        let route = if as_new { "register-new" } else { "register" };
        let url = format!("{}?persistent-storage={}", self.node_path(route), self.persistent);
        self.send(Route::Node, self.request(Method::PUT, &url, self.control_timeout))
            .await
    }

    /// `PUT /spi/v1/objects/{org}/resend`: asks the CSS to send everything again (single
    /// attempt).
    async fn resend(&self) -> Reply {
        let url = format!("{}/spi/v1/objects/{}/resend", self.base, segment(&self.org));
        self.send(Route::Other, self.request(Method::PUT, &url, self.control_timeout))
            .await
    }

    /// `PUT /spi/v1/ping/...` (single attempt).
    async fn ping(&self) -> Reply {
        let url = format!("{}?persistent-storage={}", self.node_path("ping"), self.persistent);
        self.send(Route::Node, self.request(Method::PUT, &url, self.control_timeout))
            .await
    }

    /// `GET /spi/v1/objects/?wait=N`: pending notifications; `Err` for failures and
    /// statuses other than 200/204.
    async fn poll(&self, wait_secs: u16) -> Result<PollAnswer, Reply> {
        let wait = wait_secs.min(MAX_LONG_POLL_SECS);
        let url = format!("{}/spi/v1/objects/?{LONG_POLL_PARAM}={wait}", self.base);
        let timeout = self.control_timeout + Duration::from_secs(u64::from(wait));
        let response = self.exchange(self.request(Method::GET, &url, timeout)).await?;
        let long_poll = response.headers().contains_key(LONG_POLL_HEADER);
        match response.status() {
            StatusCode::NO_CONTENT => {
                let _ = response.bytes().await;
                Ok(PollAnswer {
                    items: Vec::new(),
                    long_poll,
                })
            }
            StatusCode::OK => {
                let body = response.bytes().await.map_err(|e| failed(&e))?;
                let items: Vec<PollItem> = serde_json::from_slice(&body)
                    .map_err(|e| Reply::Invalid(format!("the poll answer is not a notification list: {e}")))?;
                Ok(PollAnswer { items, long_poll })
            }
            other => {
                let _ = response.bytes().await;
                Err(reply_of(Route::Poll, other.as_u16()))
            }
        }
    }

    /// `PUT .../{instanceID}/{dataID}/{action}` with an optional JSON body (single attempt).
    async fn action(
        &self,
        key: &ObjectKey,
        instance_id: i64,
        data_id: i64,
        action: Action,
        body: Option<Vec<u8>>,
    ) -> Reply {
        let url = self.object_url(key, instance_id, data_id, action.as_str());
        let mut builder = self.request(Method::PUT, &url, self.control_timeout);
        if let Some(body) = body {
            builder = builder
                .header(reqwest::header::CONTENT_TYPE, "application/json")
                .body(body);
        }
        if action != Action::Update {
            return self.send(Route::Object, builder).await;
        }
        match self.exchange(builder).await {
            Ok(response) => {
                let status = response.status().as_u16();
                if status == 204 && is_format(response.headers().get(crate::transport::MANIFEST_HEADER)) {
                    let mut holding = self.css_holds_previous.lock();
                    // Versions whose upload never came (deleted meanwhile) are not kept forever.
                    if holding.len() >= HOLDING_KEPT {
                        holding.clear();
                    }
                    holding.insert((key.clone(), instance_id));
                }
                let _ = response.bytes().await;
                reply_of(Route::Object, status)
            }
            Err(reply) => reply,
        }
    }

    /// `PUT .../deleted` with the metadata as body; the destination is this node (so that a
    /// broadcast object's empty type does not hide the CSS's record, spec §3.7).
    async fn deleted(&self, meta: &MetaData) -> Reply {
        let mut meta = meta.clone();
        let mut parts = self.dest.splitn(3, '/').skip(1);
        meta.destination_type = parts.next().unwrap_or_default().to_string();
        meta.destination_id = parts.next().unwrap_or_default().to_string();
        let key = ObjectKey::new(&self.org, &meta.object_type, &meta.object_id);
        match serde_json::to_vec(&meta) {
            Ok(body) => {
                self.action(&key, meta.instance_id, meta.data_id, Action::Deleted, Some(body))
                    .await
            }
            Err(e) => Reply::Invalid(e.to_string()),
        }
    }

    /// `PUT .../feedback` (single attempt).
    async fn feedback(&self, key: &ObjectKey, instance_id: i64, data_id: i64, feedback: &Feedback) -> Reply {
        let body = serde_json::to_vec(feedback).unwrap_or_default();
        self.action(key, instance_id, data_id, Action::Feedback, Some(body))
            .await
    }

    /// `PUT .../{action}` with the object's metadata as body (`update`, `delete`).
    async fn action_with_meta(&self, key: &ObjectKey, meta: &MetaData, action: Action) -> Reply {
        match serde_json::to_vec(meta) {
            Ok(body) => {
                self.action(key, meta.instance_id, meta.data_id, action, Some(body))
                    .await
            }
            Err(e) => Reply::Invalid(e.to_string()),
        }
    }

    /// `GET .../data`, whole or one inclusive byte range; the body is streamed to the caller.
    async fn data(
        &self,
        key: &ObjectKey,
        instance_id: i64,
        data_id: i64,
        range: Option<(u64, u64)>,
        manifest: bool,
    ) -> Result<DataChunk, Reply> {
        let url = self.object_url(key, instance_id, data_id, "data");
        let mut builder = self.request(Method::GET, &url, self.data_timeout);
        if let Some((start, end)) = range {
            builder = builder.header(reqwest::header::RANGE, format!("bytes={start}-{end}"));
        }
        if self.compression {
            builder = builder.header(compression::ENCODING_HEADER, compression::ZSTD);
        }
        if manifest {
            builder = builder.header(crate::transport::MANIFEST_HEADER, crate::delta::FORMAT);
        }
        let response = self.exchange(builder).await?;
        let manifest = is_format(response.headers().get(crate::transport::MANIFEST_HEADER));
        let start = match response.status() {
            StatusCode::OK => 0,
            StatusCode::PARTIAL_CONTENT => response
                .headers()
                .get(reqwest::header::CONTENT_RANGE)
                .and_then(|v| v.to_str().ok())
                .and_then(content_range_start)
                .or(range.map(|(start, _)| start))
                .unwrap_or(0),
            other => {
                let _ = response.bytes().await;
                return Err(reply_of(Route::Object, other.as_u16()));
            }
        };
        let body = if compression::names_zstd(response.headers().get(compression::ENCODING_HEADER)) {
            compression::decompress(compression::io_stream(response.bytes_stream()))
                .map_err(|e| error_chain(&e))
                .boxed()
        } else {
            response.bytes_stream().map_err(|e| error_chain(&e)).boxed()
        };
        Ok(DataChunk { start, body, manifest })
    }
}

/// True when a header names the manifest format.
fn is_format(value: Option<&reqwest::header::HeaderValue>) -> bool {
    value.is_some_and(|v| v.as_bytes() == crate::delta::FORMAT.as_bytes())
}

/// The answer to a manifest offer.
#[derive(serde::Deserialize)]
struct MissingRanges {
    missing: Vec<(u64, u64)>,
}

#[async_trait]
impl DataPush for EssClient {
    fn takes_manifest(&self, key: &ObjectKey, instance_id: i64) -> bool {
        self.node.settings().delta_transfer
            && self.css_takes_manifests.load(Ordering::Relaxed)
            && self.css_holds_previous.lock().remove(&(key.clone(), instance_id))
    }

    /// `PUT .../data` with the manifest as body and its header; a CSS that takes part
    /// answers `200` with the ranges it still needs.
    async fn offer_manifest(
        &self,
        key: &ObjectKey,
        instance_id: i64,
        data_id: i64,
        manifest: bytes::Bytes,
    ) -> Option<Vec<(u64, u64)>> {
        let url = self.object_url(key, instance_id, data_id, "data");
        let builder = self
            .request(Method::PUT, &url, self.data_timeout)
            .header(reqwest::header::CONTENT_TYPE, "application/octet-stream")
            .header(crate::transport::MANIFEST_HEADER, crate::delta::FORMAT)
            .body(manifest);
        let response = self.exchange(builder).await.ok()?;
        if response.status() != StatusCode::OK || !is_format(response.headers().get(crate::transport::MANIFEST_HEADER))
        {
            let _ = response.bytes().await;
            return None;
        }
        let answer: MissingRanges = serde_json::from_slice(&response.bytes().await.ok()?).ok()?;
        Some(answer.missing)
    }

    /// `PUT .../data`: the whole data (`range` `None`) or one chunk with
    /// `Content-Range: bytes {start}-{end}/{total}`; `len` bytes streamed from `body`. Uses
    /// the data timeout (the flaw fix of §3.8).
    async fn upload(
        &self,
        key: &ObjectKey,
        instance_id: i64,
        data_id: i64,
        range: Option<(u64, u64, u64)>,
        len: u64,
        body: UploadBody,
    ) -> Reply {
        let url = self.object_url(key, instance_id, data_id, "data");
        let mut builder = self
            .request(Method::PUT, &url, self.data_timeout)
            .header(reqwest::header::CONTENT_TYPE, "application/octet-stream");
        let (compressed, body) = if self.compression && self.css_takes_compressed.load(Ordering::Relaxed) {
            match compression::compress_if_worth(body).await {
                Ok(sampled) => sampled,
                Err(e) => return Reply::Invalid(format!("reading the data to send: {e}")),
            }
        } else {
            (false, body)
        };
        // A compressed body's length is known once sent: it goes in chunks.
        builder = if compressed {
            builder.header(compression::ENCODING_HEADER, compression::ZSTD)
        } else {
            builder.header(reqwest::header::CONTENT_LENGTH, len)
        };
        if let Some((start, end, total)) = range {
            builder = builder.header(reqwest::header::CONTENT_RANGE, format!("bytes {start}-{end}/{total}"));
        }
        self.send(Route::Object, builder.body(reqwest::Body::wrap_stream(body)))
            .await
    }
}

#[async_trait]
impl Unregistration for EssClient {
    /// `PUT /spi/v1/unregister/...` (single attempt).
    async fn unregister(&self) -> Reply {
        self.send(
            Route::Node,
            self.request(Method::PUT, &self.node_path("unregister"), self.control_timeout),
        )
        .await
    }
}

/// The start offset of a `Content-Range: bytes {start}-{end}/{total}` answer header.
pub fn content_range_start(header: &str) -> Option<u64> {
    let spec = header.trim().strip_prefix("bytes ")?;
    let (range, _) = spec.split_once('/')?;
    let (start, _) = range.split_once('-')?;
    start.trim().parse().ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn statuses_become_replies_by_kind_of_request() {
        for status in [502, 503, 504, 408, 429, 307, 507] {
            for route in [Route::Node, Route::Poll, Route::Object, Route::Other] {
                assert!(reply_of(route, status).is_transient(), "{status}");
            }
        }
        for status in [400, 403, 404, 424, 500] {
            assert!(!reply_of(Route::Other, status).is_transient(), "{status}");
            assert!(!reply_of(Route::Other, status).acknowledged(), "{status}");
        }
        assert_eq!(reply_of(Route::Node, 404), Reply::UnknownNode);
        assert_eq!(reply_of(Route::Poll, 424), Reply::UnknownNode);
        assert_eq!(reply_of(Route::Poll, 404), Reply::Refused("status 404".into()));
        assert_eq!(reply_of(Route::Object, 404), Reply::UnknownObject);
        assert_eq!(reply_of(Route::Object, 429), Reply::Busy);
        assert_eq!(reply_of(Route::Object, 400), Reply::UnknownObject);
        assert_eq!(reply_of(Route::Node, 400), Reply::Refused("status 400".into()));
        assert!(reply_of(Route::Object, 204).acknowledged() && reply_of(Route::Object, 409).acknowledged());
        assert!(!reply_of(Route::Object, 500).acknowledged());
    }

    #[test]
    fn path_segments_are_escaped() {
        assert_eq!(segment("a b/c?d#e%"), "a%20b%2Fc%3Fd%23e%25");
        assert_eq!(segment("ok-1.2_x~"), "ok-1.2_x~");
        assert_eq!(segment("é"), "%C3%A9");
    }

    #[test]
    fn content_range_start_is_read() {
        assert_eq!(content_range_start("bytes 65536-131071/1048576"), Some(65536));
        assert_eq!(content_range_start("bytes */10"), None);
    }
}
