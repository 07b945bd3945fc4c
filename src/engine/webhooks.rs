//! Webhook calls (spec: lifecycle.md §12, rest-api.md §4.4): when a received copy becomes
//! completely received after a data transfer, every URL registered for its (org, type) gets
//! a `POST` of the object's metadata, as the object route returns it.
//!
//! Differences from the original, on purpose (the flaw of lifecycle.md §12): the original
//! called webhooks in the transfer path with no timeout, so a hanging endpoint stalled
//! deliveries. Here the receiving path only queues the calls; a few workers make them, each
//! attempt bounded by a timeout. A full queue drops calls (logged) rather than slow a
//! transfer down. Connection failures, timeouts and 5xx answers are retried a bounded number
//! of times; other answers are final. The HTTP call itself is the transport's
//! ([`WebhookPoster`], handed to the node at start).

use super::Node;
use crate::backoff::Backoff;
use crate::model::json::to_go_json;
use crate::model::ObjectKey;
use bytes::Bytes;
use std::sync::{Arc, OnceLock};
use std::time::Duration;
use tokio::sync::mpsc::error::TrySendError;
use tokio::sync::{mpsc, Mutex};
use tokio_util::sync::CancellationToken;

/// Calls waiting for a worker; beyond this, calls are dropped.
const QUEUE_CAPACITY: usize = 1024;
/// Calls made at once, so that a few dead endpoints cannot hold up the others.
const WORKERS: usize = 4;
/// Attempts per call, the first included.
const ATTEMPTS: u32 = 3;
/// Waits between attempts: 500 ms, then doubling.
const RETRY: Backoff = Backoff::new(Duration::from_millis(500), Duration::from_secs(60));

/// How one attempt at a webhook call ended; `retry` says whether another attempt may end
/// otherwise (the endpoint failed on its side, or no answer came in time).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PostResult {
    Delivered,
    /// The endpoint answered with this status code, not a success.
    Answered {
        status: u16,
        retry: bool,
    },
    /// No answer.
    NotSent {
        error: String,
        retry: bool,
    },
}

/// Makes one attempt at a webhook call: a `POST` of `body` (the object's metadata) to `url`.
#[async_trait::async_trait]
pub trait WebhookPoster: Send + Sync {
    async fn post(&self, url: &str, body: Bytes) -> PostResult;
}

type SharedPoster = Arc<OnceLock<Arc<dyn WebhookPoster>>>;

/// One `POST` to make.
struct Call {
    url: String,
    /// The URL without its password, for logs.
    shown: String,
    key: ObjectKey,
    body: Bytes,
}

/// The queue of webhook calls and the workers that drain it. Workers stop when
/// [`Notifier::stop`] is called or when the notifier (the only sender) is dropped.
pub(super) struct Notifier {
    queue: mpsc::Sender<Call>,
    poster: SharedPoster,
    stop: CancellationToken,
}

impl Notifier {
    /// Spawns the workers on the current runtime; they call through the poster set with
    /// [`Notifier::set_poster`].
    pub(super) fn start() -> Self {
        let (queue, receiver) = mpsc::channel(QUEUE_CAPACITY);
        let stop = CancellationToken::new();
        let poster = SharedPoster::default();
        let workers = Arc::new(Workers {
            receiver: Mutex::new(receiver),
            poster: poster.clone(),
            stop: stop.clone(),
        });
        for _ in 0..WORKERS {
            tokio::spawn(workers.clone().run());
        }
        Self { queue, poster, stop }
    }

    fn set_poster(&self, poster: Arc<dyn WebhookPoster>) {
        let _ = self.poster.set(poster);
    }

    fn enqueue(&self, key: &ObjectKey, urls: Vec<String>, body: Bytes) {
        for url in urls {
            let call = Call {
                shown: without_password(&url),
                url,
                key: key.clone(),
                body: body.clone(),
            };
            match self.queue.try_send(call) {
                Ok(()) => {}
                Err(TrySendError::Full(call)) => {
                    tracing::warn!(url = %call.shown, key = %call.key, "webhook queue full; the call is dropped");
                }
                Err(TrySendError::Closed(call)) => {
                    tracing::debug!(url = %call.shown, key = %call.key, "webhooks stopped; the call is dropped");
                }
            }
        }
    }

    fn stop(&self) {
        self.stop.cancel();
    }
}

struct Workers {
    receiver: Mutex<mpsc::Receiver<Call>>,
    poster: SharedPoster,
    stop: CancellationToken,
}

impl Workers {
    async fn run(self: Arc<Self>) {
        loop {
            let next = tokio::select! {
                biased;
                _ = self.stop.cancelled() => return,
                call = async { self.receiver.lock().await.recv().await } => call,
            };
            let Some(call) = next else { return };
            let Some(poster) = self.poster.get() else {
                tracing::warn!(url = %call.shown, key = %call.key, "no webhook caller; the call is dropped");
                continue;
            };
            tokio::select! {
                biased;
                _ = self.stop.cancelled() => return,
                _ = call_webhook(poster.as_ref(), &call) => {}
            }
        }
    }
}

/// Makes one call with its retries; every outcome but success is logged.
async fn call_webhook(poster: &dyn WebhookPoster, call: &Call) {
    for attempt in 1..=ATTEMPTS {
        let retry = match poster.post(&call.url, call.body.clone()).await {
            PostResult::Delivered => {
                tracing::debug!(url = %call.shown, key = %call.key, attempt, "webhook called");
                return;
            }
            PostResult::Answered { status, retry } => {
                tracing::warn!(url = %call.shown, key = %call.key, status, attempt, "webhook answered with an unexpected status");
                retry
            }
            PostResult::NotSent { error, retry } => {
                tracing::warn!(url = %call.shown, key = %call.key, attempt, %error, "webhook call failed");
                retry
            }
        };
        if !retry {
            return;
        }
        if attempt < ATTEMPTS {
            tokio::time::sleep(RETRY.delay(attempt)).await;
        }
    }
    tracing::warn!(url = %call.shown, key = %call.key, attempts = ATTEMPTS, "webhook call given up");
}

/// Webhook URLs may carry credentials; logs must not.
fn without_password(url: &str) -> String {
    match url::Url::parse(url) {
        Ok(mut parsed) => {
            if parsed.password().is_some() {
                // Only URLs that cannot have a password refuse this, and this one has one.
                let _ = parsed.set_password(Some("redacted"));
            }
            parsed.to_string()
        }
        Err(_) => url.to_string(),
    }
}

impl Node {
    /// Queues the webhook calls owed for `key`, a received copy that has just become
    /// completely received through a data transfer. The metadata is read back after the
    /// commit so that the body holds the final values (`objectSize`). Failures are logged:
    /// a webhook never fails a reception.
    pub(super) async fn call_webhooks(&self, key: &ObjectKey) {
        let urls = match self.0.store.webhooks(&key.org, &key.object_type).await {
            Ok(urls) if urls.is_empty() => return,
            Ok(urls) => urls,
            Err(e) => {
                tracing::warn!(%key, error = %e, "cannot read the webhooks; none are called");
                return;
            }
        };
        let record = match self.0.store.object(key).await {
            Ok(Some(record)) => record,
            // Removed in the meantime: there is nothing left to announce.
            Ok(None) => return,
            Err(e) => {
                tracing::warn!(%key, error = %e, "cannot read the received object; its webhooks are not called");
                return;
            }
        };
        self.0
            .webhooks
            .enqueue(key, urls, Bytes::from(to_go_json(&record.meta)));
    }

    /// The webhook calls are made through `poster` (the HTTP transport's).
    pub fn set_webhook_poster(&self, poster: Arc<dyn WebhookPoster>) {
        self.0.webhooks.set_poster(poster);
    }

    /// Stops the webhook workers; queued and running calls are abandoned.
    pub fn stop_webhooks(&self) {
        self.0.webhooks.stop();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn passwords_are_kept_out_of_logs() {
        assert_eq!(
            without_password("https://user:secret@hooks.example/h?x=1"),
            "https://user:redacted@hooks.example/h?x=1"
        );
        assert_eq!(without_password("http://127.0.0.1:9/hook"), "http://127.0.0.1:9/hook");
        assert_eq!(without_password("http://user@host:8/h"), "http://user@host:8/h");
        assert_eq!(without_password("http://a:b@host/x@y"), "http://a:redacted@host/x@y");
        assert_eq!(without_password("not a url"), "not a url");
    }
}
