//! Webhooks, end to end: a real CSS and a real ESS, and webhook receivers served by the test
//! on loopback. A copy completed by a data transfer makes the receiving node POST its
//! metadata to every webhook of the type, in both directions; copies completed without a
//! transfer do not. Dead, hanging and failing webhooks neither hold up the delivery nor keep
//! the healthy ones from being called, and failing ones are retried a bounded number of
//! times. Every wait has a deadline; nothing sleeps blindly.

mod common;

use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::routing::post;
use axum::Router;
use common::sync::{css_with, eventually, http_ess, wait_for, wait_registered, SYNC_DEADLINE};
use common::{pattern, Role, TestNode};
use serde_json::{json, Value};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

/// One POST a receiver got.
#[derive(Debug, Clone)]
struct Call {
    content_type: String,
    body: Value,
}

/// A webhook receiver on loopback answering every POST with a fixed status.
struct Hook {
    url: String,
    calls: Arc<Mutex<Vec<Call>>>,
}

impl Hook {
    async fn answering(status: StatusCode) -> Self {
        let calls: Arc<Mutex<Vec<Call>>> = Arc::default();
        let app = Router::new()
            .route("/hook", post(record))
            .with_state((calls.clone(), status));
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let url = format!("http://{}/hook", listener.local_addr().expect("address"));
        // Ends with the test's runtime.
        tokio::spawn(async move { axum::serve(listener, app).await });
        Self { url, calls }
    }

    fn calls(&self) -> Vec<Call> {
        self.calls.lock().unwrap().clone()
    }

    /// The calls about `object_id`.
    fn calls_for(&self, object_id: &str) -> Vec<Call> {
        self.calls()
            .into_iter()
            .filter(|c| c.body["objectID"] == object_id)
            .collect()
    }
}

async fn record(
    State((calls, status)): State<(Arc<Mutex<Vec<Call>>>, StatusCode)>,
    headers: HeaderMap,
    body: Bytes,
) -> StatusCode {
    let content_type = headers
        .get("content-type")
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
        .to_string();
    let body = serde_json::from_slice(&body).unwrap_or_else(|_| Value::String(String::from_utf8_lossy(&body).into()));
    calls.lock().unwrap().push(Call { content_type, body });
    status
}

/// A URL whose server accepts connections and never answers; counts the connections.
async fn silent_hook() -> (String, Arc<AtomicUsize>) {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let url = format!("http://{}/hook", listener.local_addr().expect("address"));
    let accepted = Arc::new(AtomicUsize::new(0));
    let counter = accepted.clone();
    tokio::spawn(async move {
        // The sockets stay open, unread, until the test's runtime ends.
        let mut held = Vec::new();
        while let Ok((socket, _)) = listener.accept().await {
            counter.fetch_add(1, Ordering::SeqCst);
            held.push(socket);
        }
    });
    (url, accepted)
}

/// A URL nobody listens on (the port was free a moment ago).
fn dead_url() -> String {
    format!("http://127.0.0.1:{}/hook", common::free_port())
}

async fn register(node: &TestNode, object_type: &str, url: &str) {
    let response = node
        .api()
        .put_json(&node.type_path(object_type), &json!({"action": "register", "url": url}))
        .await;
    assert_eq!(response.status, 204, "register {url}: {}", response.text());
}

/// A CSS with 64 KiB chunks and an ESS `edge`/`node1` syncing with it over HTTP.
async fn css_and_ess() -> (TestNode, TestNode) {
    let css = css_with(&[("MAX_DATA_CHUNK_SIZE", "65536")]);
    let ess = http_ess(
        css.port(),
        &[("MAX_DATA_CHUNK_SIZE", "65536"), ("ESS_CALL_SPI_RETRY_INTERVAL", "1")],
    );
    wait_registered(&css, &ess, "node1").await;
    (css, ess)
}

fn for_node1(extra: Value) -> Value {
    let mut meta = json!({"destinationType": "edge", "destinationID": "node1"});
    meta.as_object_mut().unwrap().extend(extra.as_object().unwrap().clone());
    meta
}

async fn status_is(node: &TestNode, path: &str, want: &str) -> bool {
    let response = node.api().get(&format!("{path}/status")).await;
    response.status == 200 && response.text() == want
}

/// Waits for `count` calls about `object_id` at `hook`; returns them.
async fn calls_for(hook: &Hook, object_id: &str, count: usize, nodes: &[&TestNode]) -> Vec<Call> {
    eventually(
        &format!("{count} webhook call(s) about {object_id}"),
        nodes,
        SYNC_DEADLINE,
        async || {
            let calls = hook.calls_for(object_id);
            (calls.len() >= count).then_some(calls)
        },
    )
    .await
}

#[tokio::test]
async fn an_ess_calls_its_webhooks_when_data_from_the_css_is_complete() {
    let (css, ess) = css_and_ess().await;
    let hook = Hook::answering(StatusCode::OK).await;
    register(&ess, "model", &hook.url).await;
    let nodes = [&css, &ess];

    // A copy without data is complete at once, without a transfer: no call.
    css.api()
        .create(&css.obj("model", "empty"), for_node1(json!({"noData": true})), None)
        .await;
    let empty = ess.obj("model", "empty");
    wait_for("the noData copy on the ESS", &nodes, SYNC_DEADLINE, async || {
        status_is(&ess, &empty, "completelyReceived").await
    })
    .await;

    // 200 KiB: four chunks, one call once the last is in.
    let data = pattern(200 << 10, 5);
    css.api()
        .create(&css.obj("model", "full"), for_node1(json!({})), Some(&data))
        .await;
    let calls = calls_for(&hook, "full", 1, &nodes).await;
    let full = ess.obj("model", "full");
    assert_eq!(ess.api().status_of(&full).await, "completelyReceived");
    assert_eq!(calls[0].content_type, "Application/JSON");
    assert_eq!(calls[0].body["objectType"], "model");
    assert_eq!(calls[0].body["objectSize"], data.len());
    assert_eq!(
        calls[0].body,
        ess.api().meta(&full).await,
        "the body is the object route's metadata"
    );
    assert_eq!(ess.api().data(&full).await, data);
    let all = hook.calls();
    assert_eq!(all.len(), 1, "only the transferred object is announced: {all:?}");
}

#[tokio::test]
async fn a_css_calls_its_webhooks_when_an_upload_from_an_ess_is_complete() {
    let (css, ess) = css_and_ess().await;
    let hook = Hook::answering(StatusCode::NO_CONTENT).await;
    register(&css, "report", &hook.url).await;
    let nodes = [&css, &ess];

    // Chunked upload (4 chunks), then a whole one: one call each, not one per chunk.
    let big = pattern(200 << 10, 9);
    ess.api().create(&ess.obj("report", "big"), json!({}), Some(&big)).await;
    let calls = calls_for(&hook, "big", 1, &nodes).await;
    let css_path = css.obj("report", "big");
    assert_eq!(css.api().status_of(&css_path).await, "completelyReceived");
    assert_eq!(calls[0].content_type, "Application/JSON");
    assert_eq!(calls[0].body["objectType"], "report");
    assert_eq!(calls[0].body["originID"], "node1");
    assert_eq!(calls[0].body["objectSize"], big.len());
    assert_eq!(
        calls[0].body,
        css.api().meta(&css_path).await,
        "the body is the object route's metadata"
    );

    ess.api()
        .create(&ess.obj("report", "small"), json!({}), Some(b"small"))
        .await;
    calls_for(&hook, "small", 1, &nodes).await;
    assert_eq!(hook.calls_for("big").len(), 1, "one call for the chunked upload");
    assert_eq!(hook.calls().len(), 2);
}

#[tokio::test]
async fn dead_hanging_and_failing_webhooks_neither_block_delivery_nor_retry_forever() {
    let (css, ess) = css_and_ess().await;
    let nodes = [&css, &ess];
    let healthy = Hook::answering(StatusCode::OK).await;
    let failing = Hook::answering(StatusCode::INTERNAL_SERVER_ERROR).await;
    let (silent, silent_connections) = silent_hook().await;
    let dead = dead_url();
    for url in [&dead, &silent, &failing.url, &healthy.url] {
        register(&ess, "model", url).await;
    }
    register(&ess, "later", &healthy.url).await;

    let data = pattern(100 << 10, 3);
    let css_path = css.obj("model", "first");
    css.api().create(&css_path, for_node1(json!({})), Some(&data)).await;
    wait_for("the CSS to learn of the delivery", &nodes, SYNC_DEADLINE, async || {
        let response = css.api().get(&format!("{css_path}/destinations")).await;
        response.status == 200 && response.json()[0]["status"] == "delivered"
    })
    .await;
    // Had the transfer waited for the hanging webhook, its three 5 s attempts would be over.
    assert!(
        silent_connections.load(Ordering::SeqCst) < 3,
        "the delivery waited for the hanging webhook"
    );
    let ess_path = ess.obj("model", "first");
    assert_eq!(ess.api().status_of(&ess_path).await, "completelyReceived");
    assert_eq!(ess.api().data(&ess_path).await, data, "consumable at once");
    calls_for(&healthy, "first", 1, &nodes).await;

    // 500 is retried: three attempts in all.
    calls_for(&failing, "first", 3, &nodes).await;
    // The hanging webhook is tried three times, each attempt ending at its timeout; that
    // takes longer than further retries of the 500 webhook would, had they not stopped.
    let given_up = |url: &str| {
        let url = url.to_string();
        let ess = &ess;
        async move || {
            ess.log()
                .lines()
                .any(|l| l.contains("webhook call given up") && l.contains(&url))
        }
    };
    wait_for(
        "the hanging webhook to be given up",
        &nodes,
        SYNC_DEADLINE,
        given_up(&silent),
    )
    .await;
    assert_eq!(
        silent_connections.load(Ordering::SeqCst),
        3,
        "three attempts at the hanging webhook"
    );
    // A later call reaches the healthy webhook after all that.
    css.api()
        .create(&css.obj("later", "second"), for_node1(json!({})), Some(b"second"))
        .await;
    calls_for(&healthy, "second", 1, &nodes).await;
    assert_eq!(failing.calls().len(), 3, "no attempt after the third");
    assert_eq!(
        silent_connections.load(Ordering::SeqCst),
        3,
        "no attempt after the third"
    );
    assert_eq!(healthy.calls().len(), 2);

    let log = ess.log();
    assert!(
        log.lines()
            .any(|l| l.contains("WARN") && l.contains(&failing.url) && l.contains("status=500")),
        "the 500 answers are logged with the URL and status"
    );
    assert!(
        given_up(&dead)().await,
        "the refused connections are retried, then given up"
    );
}

#[tokio::test]
async fn a_webhook_must_be_an_absolute_http_url() {
    for role in [Role::Css, Role::Ess] {
        let node = TestNode::of(role);
        let path = node.type_path("model");
        for (url, problem) in [
            ("ftp://x/y", "the scheme must be http or https, not ftp"),
            ("not a url", "not an absolute URL"),
        ] {
            let response = node
                .api()
                .put_json(&path, &json!({"action": "register", "url": url}))
                .await;
            assert_eq!(response.status, 400, "{role:?} {url}: {}", response.text());
            let text = response.text();
            assert!(
                text.contains("Invalid webhook URL") && text.contains(url) && text.contains(problem),
                "{role:?} {url}: {text}"
            );
            assert!(
                response
                    .header("content-type")
                    .is_some_and(|t| t.starts_with("text/plain")),
                "{role:?} {url}: plain text"
            );
        }
    }
}
