//! The CSS's limit of ranged downloads at once (`HTTPCSSObjDownloadConcurrencyMultiplier` x
//! CPUs): a ranged download beyond it waits its turn for a moment and is refused with `429`
//! only when no slot frees meanwhile; an ESS refused as busy asks again shortly, not at its
//! next resend pass. The slots are taken by an application's ranged downloads whose bodies
//! the test does not read: each holds its slot until its answer is dropped.

mod common;

use common::metrics;
use common::sync::{css_with, http_ess, listed, wait_for, wait_registered};
use common::{TestNode, ADMIN, SYNC_ADMIN};
use serde_json::json;
use std::time::{Duration, Instant};

/// Bytes of the object whose downloads hold the slots: more than the socket buffers and the
/// CSS's read-ahead take in, so that an unread answer stays in progress.
const HOLDER_SIZE: usize = 16 << 20;
/// How long a ranged download waits for a slot on the CSS (`engine::data::RANGED_SLOT_WAIT`).
const SLOT_WAIT: Duration = Duration::from_secs(1);
/// How long the test waits for the ESS's refusals, and for it to complete the object.
const PATIENCE: Duration = Duration::from_secs(15);

/// The slots of the CSS: one per CPU (the multiplier's default is 1).
fn slots() -> usize {
    std::thread::available_parallelism().map_or(1, |n| n.get())
}

/// Creates `hold/big`, addressed to no node, with `HOLDER_SIZE` bytes; returns its path.
async fn holder_object(css: &TestNode) -> String {
    let api = css.api();
    let path = css.obj("hold", "big");
    api.create(&path, json!({"destinationType": "nobody"}), None).await;
    let response = api
        .put_bytes(&format!("{path}/data"), common::pattern(HOLDER_SIZE, 3))
        .await;
    assert_eq!(response.status, 204, "{}", response.text());
    path
}

/// A ranged download of `path`'s data, answered but its body not read.
async fn ranged(css: &TestNode, path: &str, last: usize) -> reqwest::Response {
    let api = css.api();
    api.request(reqwest::Method::GET, &format!("{path}/data"), Some(ADMIN))
        .header("Range", format!("bytes=0-{last}"))
        .send()
        .await
        .expect("a ranged download")
}

/// Takes every ranged-download slot of the CSS with downloads of `path` left unread.
async fn hold_every_slot(css: &TestNode, path: &str) -> Vec<reqwest::Response> {
    let mut holders = Vec::new();
    for _ in 0..slots() {
        let response = ranged(css, path, HOLDER_SIZE - 2).await;
        assert_eq!(response.status(), 206, "a free slot serves at once");
        holders.push(response);
    }
    holders
}

/// How many times the CSS answered `spiGetData` (edge nodes' data downloads) with `status`.
async fn node_downloads_answered(css: &TestNode, status: &str) -> f64 {
    let text = css.api().get_as(SYNC_ADMIN, "/metrics").await.text();
    let samples = metrics::parse(&text);
    metrics::value(
        &samples,
        "edge_sync_http_requests_total",
        &[("route", "spiGetData"), ("status", status)],
    )
    .unwrap_or(0.0)
}

#[tokio::test]
async fn a_ranged_download_beyond_the_slots_is_refused_only_after_waiting_its_turn() {
    let css = TestNode::css();
    let path = holder_object(&css).await;
    let _holders = hold_every_slot(&css, &path).await;
    let asked = Instant::now();
    let refused = ranged(&css, &path, 99).await;
    let waited = asked.elapsed();
    assert_eq!(refused.status(), 429);
    assert!(
        waited >= SLOT_WAIT - Duration::from_millis(50) && waited < SLOT_WAIT * 10,
        "refused after {waited:?}, not after waiting about {SLOT_WAIT:?}"
    );
}

#[tokio::test]
async fn a_ranged_download_gets_a_slot_freed_while_it_waits() {
    let css = TestNode::css();
    let path = holder_object(&css).await;
    let mut holders = hold_every_slot(&css, &path).await;
    let waiting = {
        let (css_api, path) = (css.api(), path.clone());
        tokio::spawn(async move {
            css_api
                .send(
                    css_api
                        .request(reqwest::Method::GET, &format!("{path}/data"), Some(ADMIN))
                        .header("Range", "bytes=100-199"),
                )
                .await
        })
    };
    // Still waiting a moment later: neither served nor refused.
    let mut waiting = Box::pin(waiting);
    assert!(
        tokio::time::timeout(SLOT_WAIT / 3, &mut waiting).await.is_err(),
        "answered although every slot was taken"
    );
    drop(holders.pop());
    let answer = tokio::time::timeout(SLOT_WAIT * 10, waiting)
        .await
        .expect("answered once a slot freed")
        .expect("the request task");
    assert_eq!(answer.status, 206);
    assert_eq!(answer.body, common::pattern(HOLDER_SIZE, 3)[100..200]);
}

#[tokio::test]
async fn an_ess_refused_as_busy_asks_again_shortly_and_completes_once_a_slot_frees() {
    // 64 KiB chunks; the ESS's resend pass every 60 s, far longer than the test waits, so
    // only asking again within the download can complete it in time.
    let css = css_with(&[("MAX_DATA_CHUNK_SIZE", "65536")]);
    let ess = http_ess(
        css.port(),
        &[("RESEND_INTERVAL", "60"), ("HTTP_POLLING_INTERVAL", "30")],
    );
    wait_registered(&css, &ess, "node1").await;
    let holder = holder_object(&css).await;
    let holders = hold_every_slot(&css, &holder).await;

    let data = common::pattern(256 * 1024, 9);
    let path = css.obj("model", "fleet");
    let api = css.api();
    api.create(&path, json!({"destinationType": "edge"}), None).await;
    assert_eq!(api.put_bytes(&format!("{path}/data"), data.clone()).await.status, 204);

    // Each attempt waits its turn on the CSS and is refused; the ESS asks again shortly.
    wait_for(
        "the CSS to refuse the ESS's data requests three times",
        &[&css, &ess],
        PATIENCE,
        async || node_downloads_answered(&css, "429").await >= 3.0,
    )
    .await;
    assert!(
        listed(&ess, "model", "fleet").await.is_none(),
        "complete without a slot"
    );
    drop(holders);
    let freed = Instant::now();
    wait_for(
        "the ESS to complete the object once slots are free",
        &[&css, &ess],
        PATIENCE,
        async || listed(&ess, "model", "fleet").await.is_some(),
    )
    .await;
    assert!(
        freed.elapsed() < Duration::from_secs(5),
        "completed {:?} after the slots freed",
        freed.elapsed()
    );
    assert_eq!(ess.api().data(&ess.obj("model", "fleet")).await, data);
}
