//! Interrupted transfers resume: an ESS killed mid-download, or a CSS killed while serving,
//! continues from the chunks already stored instead of starting over. A throttling proxy
//! between the two (`common::faults`) measures the bytes the CSS actually sent. Signed data
//! resumed that way is verified whole, the bytes of before the interruption included.

mod common;

use common::faults::{Fault, FaultProxy};
use common::signing::Signer;
use common::sync::{css_with, http_ess, wait_for};
use common::{pattern, TestNode, ORG};
use serde_json::json;
use std::time::Duration;

const CHUNK: usize = 256 * 1024;
const OBJECT: usize = 16 * 1024 * 1024;
/// Rate of the proxy each way: slow enough to interrupt a transfer halfway.
const BYTES_PER_SECOND: u64 = 12 * 1024 * 1024;

/// A proxy to the CSS that counts and throttles the bytes flowing each way.
async fn throttled_proxy(css: &TestNode) -> FaultProxy {
    let proxy = FaultProxy::start(css.port()).await;
    proxy.set(Fault::Bandwidth(BYTES_PER_SECOND));
    proxy
}

fn css() -> TestNode {
    css_with(&[("MAX_DATA_CHUNK_SIZE", &CHUNK.to_string())])
}

fn ess_through(proxy: &FaultProxy) -> TestNode {
    http_ess(proxy.port(), &[("MAX_DATA_CHUNK_SIZE", &CHUNK.to_string())])
}

/// Publishes a large object for the ESS, signed by `signer` if any, and waits until part of
/// it went through the proxy.
async fn start_transfer(css: &TestNode, ess: &TestNode, proxy: &FaultProxy, signer: Option<&Signer>) -> Vec<u8> {
    let css_api = css.api();
    wait_for(
        "the ESS to register",
        &[css, ess],
        Duration::from_secs(30),
        async || css_api.get(&format!("/api/v1/destinations/{ORG}")).await.status == 200,
    )
    .await;
    let data = pattern(OBJECT, 11);
    let path = css.obj("model", "big");
    let mut meta = signer.map_or_else(|| json!({}), |signer| signer.meta(&data));
    meta["destinationType"] = json!("edge");
    css_api.create(&path, meta, None).await;
    assert_eq!(
        css_api.put_bytes(&format!("{path}/data"), data.clone()).await.status,
        204
    );
    let halfway = (OBJECT / 2) as u64;
    wait_for(
        "half of the object to be sent",
        &[css, ess],
        Duration::from_secs(30),
        async || proxy.bytes_down() >= halfway,
    )
    .await;
    data
}

async fn wait_complete(css: &TestNode, ess: &TestNode, data: &[u8]) {
    let ess_api = ess.api();
    wait_for(
        "the object to arrive complete",
        &[css, ess],
        Duration::from_secs(60),
        async || {
            let response = ess_api.get("/api/v1/objects/model/big/data").await;
            response.status == 200 && response.body == data
        },
    )
    .await;
}

#[tokio::test]
async fn an_ess_killed_mid_download_resumes_where_it_stopped() {
    let css = css();
    let proxy = throttled_proxy(&css).await;
    let mut ess = ess_through(&proxy);
    let data = start_transfer(&css, &ess, &proxy, None).await;
    ess.kill9();
    let at_kill = proxy.bytes_down();
    ess.restart();
    wait_complete(&css, &ess, &data).await;
    let total = proxy.bytes_down();
    // Starting over would send at least the whole object after the kill as well.
    assert!(
        total < at_kill + (OBJECT as u64) * 3 / 4,
        "{total} bytes went to the ESS for a {OBJECT}-byte object ({at_kill} before the kill)"
    );
}

#[tokio::test]
async fn a_signed_download_resumed_after_an_ess_kill_is_verified_whole() {
    let css = css();
    let proxy = throttled_proxy(&css).await;
    let mut ess = ess_through(&proxy);
    let data = start_transfer(&css, &ess, &proxy, Some(&Signer::new())).await;
    ess.kill9();
    ess.restart();
    // Served only once complete, that is verified.
    wait_complete(&css, &ess, &data).await;
}

#[tokio::test]
async fn a_transfer_interrupted_by_a_css_crash_resumes_after_its_restart() {
    let mut css = css();
    let proxy = throttled_proxy(&css).await;
    let ess = ess_through(&proxy);
    let data = start_transfer(&css, &ess, &proxy, None).await;
    css.kill9();
    let at_kill = proxy.bytes_down();
    css.restart();
    wait_complete(&css, &ess, &data).await;
    let total = proxy.bytes_down();
    assert!(
        total < at_kill + (OBJECT as u64) * 3 / 4,
        "{total} bytes went to the ESS for a {OBJECT}-byte object ({at_kill} before the kill)"
    );
}

#[tokio::test]
async fn an_update_while_the_old_instance_is_in_flight_replaces_it_on_the_ess() {
    let css = css();
    let proxy = throttled_proxy(&css).await;
    let ess = ess_through(&proxy);
    start_transfer(&css, &ess, &proxy, None).await;
    let newer = pattern(OBJECT / 4, 99);
    let path = css.obj("model", "big");
    let css_api = css.api();
    assert_eq!(
        css_api.put_bytes(&format!("{path}/data"), newer.clone()).await.status,
        204
    );
    wait_complete(&css, &ess, &newer).await;
    let on_css = css_api.meta(&path).await["instanceID"].clone();
    let on_ess = ess.api().meta("/api/v1/objects/model/big").await["instanceID"].clone();
    assert_eq!(on_ess, on_css, "the ESS holds the newest instance");
    wait_for(
        "the CSS to see the newest instance delivered",
        &[&css, &ess],
        Duration::from_secs(30),
        async || css_api.get(&format!("{path}/destinations")).await.json()[0]["status"] == "delivered",
    )
    .await;
}

#[tokio::test]
async fn an_ess_killed_mid_upload_of_its_own_object_resumes_after_its_restart() {
    let css = css();
    let proxy = throttled_proxy(&css).await;
    let mut ess = ess_through(&proxy);
    let css_api = css.api();
    wait_for(
        "the ESS to register",
        &[&css, &ess],
        Duration::from_secs(30),
        async || css_api.get(&format!("/api/v1/destinations/{ORG}")).await.status == 200,
    )
    .await;
    let data = pattern(OBJECT, 23);
    let ess_api = ess.api();
    ess_api.create("/api/v1/objects/sensor/log", json!({}), None).await;
    assert_eq!(
        ess_api
            .put_bytes("/api/v1/objects/sensor/log/data", data.clone())
            .await
            .status,
        204
    );
    let halfway = (OBJECT / 2) as u64;
    wait_for(
        "half of the upload",
        &[&css, &ess],
        Duration::from_secs(30),
        async || proxy.bytes_up() >= halfway,
    )
    .await;
    ess.kill9();
    let at_kill = proxy.bytes_up();
    ess.restart();
    let path = format!("/api/v1/objects/{ORG}/sensor/log");
    wait_for(
        "the upload to complete on the CSS",
        &[&css, &ess],
        Duration::from_secs(60),
        async || css_api.get(&format!("{path}/status")).await.text() == "completelyReceived",
    )
    .await;
    assert!(css_api.data(&path).await == data, "byte-identical on the CSS");
    let total = proxy.bytes_up();
    assert!(
        total < at_kill + (OBJECT as u64) * 3 / 4,
        "{total} bytes went to the CSS for a {OBJECT}-byte object ({at_kill} before the kill)"
    );
}
