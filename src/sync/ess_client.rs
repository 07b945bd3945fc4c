//! The ESS's HTTP client for its CSS (spec: css-ess-protocol.md §3): registration, ping,
//! poll, object actions and data downloads under `/spi/v1`. Every request carries the Basic
//! credentials the authenticator gives for the CSS URL and `X-Sync-Service-Dest`. Answers are
//! classified once ([`Outcome`]); retrying is the caller's decision ([`RetryPolicy`]).

use super::link::{DataAnswer, EssLink};
use crate::config::Config;
use crate::engine::Node;
use crate::model::sync::{Action, PollItem, LONG_POLL_HEADER, LONG_POLL_PARAM};
use crate::model::{MetaData, ObjectKey};
use async_trait::async_trait;
use futures_util::{StreamExt, TryStreamExt};
use percent_encoding::{utf8_percent_encode, AsciiSet, NON_ALPHANUMERIC};
use reqwest::{Method, StatusCode};
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

/// How a request ended, as far as retrying is concerned.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    /// The CSS answered with this status.
    Status(u16),
    /// The request failed before an answer arrived (refused, reset, timeout, EOF).
    Transport(String),
    /// The request could not even be built (not retryable).
    Invalid(String),
}

impl Outcome {
    /// True for answers worth retrying (spec §3.4): transport failures and 502, 503, 504,
    /// 408, 429, 307. Every other status is final.
    pub fn is_transient(&self) -> bool {
        match self {
            Self::Transport(_) => true,
            Self::Status(status) => matches!(status, 502 | 503 | 504 | 408 | 429 | 307),
            Self::Invalid(_) => false,
        }
    }

    /// True for `204`, and for `409` where the spec treats "ignored" as acknowledged.
    pub fn acknowledged(&self) -> bool {
        matches!(self, Self::Status(204) | Self::Status(409))
    }

    fn from_error(e: &reqwest::Error) -> Self {
        if e.is_builder() {
            Self::Invalid(e.to_string())
        } else {
            Self::Transport(error_chain(e))
        }
    }
}

impl std::fmt::Display for Outcome {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Status(status) => write!(f, "status {status}"),
            Self::Transport(e) => write!(f, "transport error: {e}"),
            Self::Invalid(e) => write!(f, "invalid request: {e}"),
        }
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

/// Exponential backoff for transient failures: `ESSCallSPIRetryInterval x 2^k`, at most
/// 60 s, for at most `ESSSPIMaxRetry` attempts (the spec's fixed 2 s x 1000 with the flaw
/// fixes of §3.4).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RetryPolicy {
    pub base: Duration,
    pub max_attempts: u64,
}

/// Upper bound of one backoff step.
pub const MAX_BACKOFF: Duration = Duration::from_secs(60);

impl RetryPolicy {
    /// From `ESSCallSPIRetryInterval` and `ESSSPIMaxRetry`.
    pub fn from_config(config: &Config) -> Self {
        Self {
            base: Duration::from_secs(u64::try_from(config.ess_call_spi_retry_interval).unwrap_or(0).max(1)),
            max_attempts: u64::try_from(config.ess_spi_max_retry).unwrap_or(0).max(1),
        }
    }

    /// Delay after the `failures`-th consecutive transient failure (1-based).
    pub fn delay(&self, failures: u32) -> Duration {
        let exponent = failures.saturating_sub(1).min(16);
        self.base.saturating_mul(1 << exponent).min(MAX_BACKOFF)
    }

    /// True while another attempt is allowed after `failures` failures.
    pub fn may_retry(&self, failures: u32) -> bool {
        u64::from(failures) < self.max_attempts
    }
}

/// What a poll returned.
#[derive(Debug)]
pub struct PollAnswer {
    pub items: Vec<PollItem>,
    /// The CSS honours `wait` (it sent the long-poll header).
    pub long_poll: bool,
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
}

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

    async fn status_of(&self, builder: reqwest::RequestBuilder) -> Outcome {
        match builder.send().await {
            Ok(response) => {
                let status = response.status().as_u16();
                // Read (and drop) the body so the connection can be reused.
                let _ = response.bytes().await;
                Outcome::Status(status)
            }
            Err(e) => Outcome::from_error(&e),
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

    fn notifications_repeat(&self) -> bool {
        true
    }

    fn pushes_data(&self) -> bool {
        true
    }

    async fn session_lost(&self) {
        // Each HTTP request stands alone; there is no session to lose.
        std::future::pending().await
    }

    /// `PUT /spi/v1/register[-new]/...` (single attempt).
    async fn register(&self, as_new: bool) -> Outcome {
        let route = if as_new { "register-new" } else { "register" };
        let url = format!("{}?persistent-storage={}", self.node_path(route), self.persistent);
        self.status_of(self.request(Method::PUT, &url, self.control_timeout))
            .await
    }

    /// `PUT /spi/v1/objects/{org}/resend`: asks the CSS to send everything again (single
    /// attempt).
    async fn resend(&self) -> Outcome {
        let url = format!("{}/spi/v1/objects/{}/resend", self.base, segment(&self.org));
        self.status_of(self.request(Method::PUT, &url, self.control_timeout))
            .await
    }

    /// `PUT /spi/v1/unregister/...` (single attempt).
    async fn unregister(&self) -> Outcome {
        self.status_of(self.request(Method::PUT, &self.node_path("unregister"), self.control_timeout))
            .await
    }

    /// `PUT /spi/v1/ping/...` (single attempt).
    async fn ping(&self) -> Outcome {
        let url = format!("{}?persistent-storage={}", self.node_path("ping"), self.persistent);
        self.status_of(self.request(Method::PUT, &url, self.control_timeout))
            .await
    }

    /// `GET /spi/v1/objects/?wait=N`: pending notifications; `Err` for failures and
    /// statuses other than 200/204.
    async fn poll(&self, wait_secs: u16) -> Result<PollAnswer, Outcome> {
        let wait = wait_secs.min(MAX_LONG_POLL_SECS);
        let url = format!("{}/spi/v1/objects/?{LONG_POLL_PARAM}={wait}", self.base);
        let timeout = self.control_timeout + Duration::from_secs(u64::from(wait));
        let response = self
            .request(Method::GET, &url, timeout)
            .send()
            .await
            .map_err(|e| Outcome::from_error(&e))?;
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
                let body = response.bytes().await.map_err(|e| Outcome::from_error(&e))?;
                let items: Vec<PollItem> = serde_json::from_slice(&body)
                    .map_err(|e| Outcome::Invalid(format!("the poll answer is not a notification list: {e}")))?;
                Ok(PollAnswer { items, long_poll })
            }
            other => {
                let _ = response.bytes().await;
                Err(Outcome::Status(other.as_u16()))
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
    ) -> Outcome {
        let url = self.object_url(key, instance_id, data_id, action.as_str());
        let mut builder = self.request(Method::PUT, &url, self.control_timeout);
        if let Some(body) = body {
            builder = builder
                .header(reqwest::header::CONTENT_TYPE, "application/json")
                .body(body);
        }
        self.status_of(builder).await
    }

    /// `PUT .../deleted` with the metadata as body; the destination is this node (so that a
    /// broadcast object's empty type does not hide the CSS's record, spec §3.7).
    async fn deleted(&self, meta: &MetaData) -> Outcome {
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
            Err(e) => Outcome::Invalid(e.to_string()),
        }
    }

    /// `PUT .../feedback` (single attempt).
    async fn feedback(&self, key: &ObjectKey, instance_id: i64, data_id: i64, code: i32, reason: &str) -> Outcome {
        let body = crate::model::sync::Feedback {
            code,
            retry_interval: 0,
            reason: reason.to_string(),
        };
        let body = serde_json::to_vec(&body).unwrap_or_default();
        self.action(key, instance_id, data_id, Action::Feedback, Some(body))
            .await
    }

    /// `PUT .../{action}` with the object's metadata as body (`update`, `delete`).
    async fn action_with_meta(&self, key: &ObjectKey, meta: &MetaData, action: Action) -> Outcome {
        match serde_json::to_vec(meta) {
            Ok(body) => {
                self.action(key, meta.instance_id, meta.data_id, action, Some(body))
                    .await
            }
            Err(e) => Outcome::Invalid(e.to_string()),
        }
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
        body: reqwest::Body,
    ) -> Outcome {
        let url = self.object_url(key, instance_id, data_id, "data");
        let mut builder = self
            .request(Method::PUT, &url, self.data_timeout)
            .header(reqwest::header::CONTENT_TYPE, "application/octet-stream")
            .header(reqwest::header::CONTENT_LENGTH, len);
        if let Some((start, end, total)) = range {
            builder = builder.header(reqwest::header::CONTENT_RANGE, format!("bytes {start}-{end}/{total}"));
        }
        self.status_of(builder.body(body)).await
    }

    /// `GET .../data`, whole or one inclusive byte range; the body is streamed to the caller.
    async fn data(
        &self,
        key: &ObjectKey,
        instance_id: i64,
        data_id: i64,
        range: Option<(u64, u64)>,
    ) -> Result<DataAnswer, Outcome> {
        let url = self.object_url(key, instance_id, data_id, "data");
        let mut builder = self.request(Method::GET, &url, self.data_timeout);
        if let Some((start, end)) = range {
            builder = builder.header(reqwest::header::RANGE, format!("bytes={start}-{end}"));
        }
        let response = builder.send().await.map_err(|e| Outcome::from_error(&e))?;
        let start = response
            .headers()
            .get(reqwest::header::CONTENT_RANGE)
            .and_then(|v| v.to_str().ok())
            .and_then(content_range_start);
        Ok(DataAnswer {
            status: response.status().as_u16(),
            start,
            body: response.bytes_stream().map_err(|e| error_chain(&e)).boxed(),
        })
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
    fn transport_errors_and_overload_statuses_are_retried() {
        for status in [502, 503, 504, 408, 429, 307] {
            assert!(Outcome::Status(status).is_transient(), "{status}");
        }
        for status in [200, 204, 400, 403, 404, 409, 424, 500] {
            assert!(!Outcome::Status(status).is_transient(), "{status}");
        }
        assert!(Outcome::Transport("connection refused".into()).is_transient());
        assert!(!Outcome::Invalid("bad url".into()).is_transient());
        assert!(Outcome::Status(204).acknowledged() && Outcome::Status(409).acknowledged());
        assert!(!Outcome::Status(500).acknowledged());
    }

    #[test]
    fn backoff_doubles_up_to_a_minute_and_is_bounded() {
        let policy = RetryPolicy {
            base: Duration::from_secs(2),
            max_attempts: 5,
        };
        let delays: Vec<u64> = (1..=7).map(|k| policy.delay(k).as_secs()).collect();
        assert_eq!(delays, vec![2, 4, 8, 16, 32, 60, 60]);
        assert_eq!(policy.delay(100), MAX_BACKOFF);
        assert!(policy.may_retry(4));
        assert!(!policy.may_retry(5));
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
