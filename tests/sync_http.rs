//! CSS <-> ESS synchronization, end to end: a real CSS and a real ESS process, over HTTP and
//! over MQTT through a mosquitto broker (each scenario runs on both, see
//! `on_both_transports!` at the end). The ESS registers, receives (in chunks), reports
//! received/consumed/deleted, and the CSS's delivery statuses follow. Every wait has a
//! deadline; nothing sleeps blindly.
//!
//! HTTP only, because what they test does not exist over MQTT:
//! - `propagation_latency_with_a_ten_second_polling_interval`: the HTTP long-poll schedule
//!   (`HTTPPollingInterval`); an MQTT CSS pushes each message as it commits.
//! - `a_node_the_css_forgot_registers_as_new_and_gets_its_objects`: the `424` answer to the
//!   poll of a removed node; over MQTT the node only learns it from its next `ping`, sent
//!   every `ESSPingInterval` hours. (The MQTT `registerAsNew` answer itself is exercised by
//!   every MQTT scenario: a fresh CSS does not know the node that registers.)
//! - `the_ess_talks_to_the_css_over_https`: HTTPS to the CSS; TLS to the broker is in
//!   `tests/sync_mqtt.rs`.

mod common;

use common::sync::{http_ess, listed, wait_registered, Net, Transport, SYNC_DEADLINE as DEADLINE};
use common::{pattern, NodeOptions, Role, TestNode};
use serde_json::json;
use std::future::Future;
use std::time::Instant;

/// A CSS on `net` with 64 KiB chunks.
fn css(net: &Net) -> TestNode {
    net.css(&[("MAX_DATA_CHUNK_SIZE", "65536")])
}

/// An ESS (`edge`/`id`) of the CSS on `net`; over HTTP it polls with `HTTPPollingInterval`
/// = `interval`.
fn ess(net: &Net, css: &TestNode, id: &str, interval: u16) -> TestNode {
    net.ess(
        css,
        &[("HTTP_POLLING_INTERVAL", &interval.to_string()), ("DESTINATION_ID", id)],
    )
}

/// Polls `probe` until it returns `Some`, within the sync deadline.
async fn eventually<T, F, Fut>(what: &str, nodes: &[&TestNode], mut probe: F) -> T
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Option<T>>,
{
    common::sync::eventually(what, nodes, DEADLINE, async || probe().await).await
}

/// The delivery status of `path` at `edge`/`id` on the CSS.
async fn delivery(css: &TestNode, path: &str, id: &str) -> Option<String> {
    let response = css.api().get(&format!("{path}/destinations")).await;
    if response.status != 200 {
        return None;
    }
    response
        .json()
        .as_array()?
        .iter()
        .find(|d| d["destinationType"] == "edge" && d["destinationID"] == id)
        .and_then(|d| d["status"].as_str().map(str::to_string))
}

async fn wait_delivery(css: &TestNode, ess: &TestNode, path: &str, id: &str, want: &str) {
    eventually(&format!("{path} to become {want} at {id}"), &[css, ess], || async {
        (delivery(css, path, id).await.as_deref() == Some(want)).then_some(())
    })
    .await;
}

async fn wait_gone(css: &TestNode, ess: &TestNode, path: &str) {
    eventually(&format!("{path} to disappear from the ESS"), &[css, ess], || async {
        (ess.api().get(path).await.status == 404).then_some(())
    })
    .await;
}

async fn objects_travel_to_the_ess_and_back_come_the_reports(transport: Transport) {
    let net = Net::new(transport);
    let css = css(&net);
    let ess = ess(&net, &css, "node1", 2);
    wait_registered(&css, &ess, "node1").await;
    let (css_api, ess_api) = (css.api(), ess.api());

    // A 1 MiB object for this node (16 chunks of 64 KiB) and a small broadcast object.
    let big = pattern(1 << 20, 7);
    let big_path = css.obj("model", "big");
    css_api
        .create(
            &big_path,
            json!({"destinationType": "edge", "destinationID": "node1"}),
            None,
        )
        .await;
    let response = css_api.put_bytes(&format!("{big_path}/data"), big.clone()).await;
    assert_eq!(response.status, 204, "{}", response.text());
    let small = b"to everyone".to_vec();
    let all_path = css.obj("model", "all");
    css_api.create(&all_path, json!({}), Some(&small)).await;

    // Both arrive complete, with identical data.
    let meta = eventually("the big object on the ESS", &[&css, &ess], || {
        listed(&ess, "model", "big")
    })
    .await;
    assert_eq!(meta["objectSize"], big.len());
    assert_eq!(meta["chunkSize"], 65536);
    assert_eq!(ess_api.data(&ess.obj("model", "big")).await, big);
    eventually("the broadcast object on the ESS", &[&css, &ess], || {
        listed(&ess, "model", "all")
    })
    .await;
    assert_eq!(ess_api.data(&ess.obj("model", "all")).await, small);
    assert_eq!(ess_api.status_of(&ess.obj("model", "big")).await, "completelyReceived");

    // The CSS learns of the reception, then of the consumption; the ESS copy goes.
    wait_delivery(&css, &ess, &big_path, "node1", "delivered").await;
    wait_delivery(&css, &ess, &all_path, "node1", "delivered").await;
    let response = ess_api
        .put_empty_as(common::ADMIN, &format!("{}/consumed", ess.obj("model", "big")))
        .await;
    assert_eq!(response.status, 204, "{}", response.text());
    wait_delivery(&css, &ess, &big_path, "node1", "consumed").await;
    wait_gone(&css, &ess, &ess.obj("model", "big")).await;
    assert!(
        ess.files_in("data").len() <= 1,
        "only the broadcast object's data remains"
    );

    // A deletion on the CSS marks the ESS copy deleted; the app's acknowledgement removes it.
    let response = css_api.delete_as(common::ADMIN, &all_path).await;
    assert_eq!(response.status, 204, "{}", response.text());
    let meta = eventually("the deletion on the ESS", &[&css, &ess], || async {
        listed(&ess, "model", "all").await.filter(|m| m["deleted"] == true)
    })
    .await;
    assert_eq!(meta["objectID"], "all");
    assert_eq!(ess_api.status_of(&ess.obj("model", "all")).await, "objdeleted");
    let response = ess_api
        .put_empty_as(common::ADMIN, &format!("{}/deleted", ess.obj("model", "all")))
        .await;
    assert_eq!(response.status, 204, "{}", response.text());
    wait_gone(&css, &ess, &ess.obj("model", "all")).await;
    assert!(ess.files_in("data").is_empty(), "no data file is left on the ESS");
    for line in ess.log().lines().filter(|l| l.contains("WARN") || l.contains("ERROR")) {
        println!("ESS: {line}");
    }
}

async fn an_interrupted_download_resumes_after_a_restart(transport: Transport) {
    let net = Net::new(transport);
    let css = css(&net);
    let mut ess = ess(&net, &css, "node1", 2);
    wait_registered(&css, &ess, "node1").await;
    let first = pattern(4 << 20, 3);
    let path = css.obj("model", "resume");
    css.api()
        .create(
            &path,
            json!({"destinationType": "edge", "destinationID": "node1"}),
            None,
        )
        .await;
    assert_eq!(
        css.api().put_bytes(&format!("{path}/data"), first.clone()).await.status,
        204
    );
    // Kill the ESS as soon as part of the data is on disk (if it was quicker, the restart
    // simply finds the object complete).
    eventually("a partial download", &[&css, &ess], || async {
        let partial = ess.files_in("partial");
        let done = listed(&ess, "model", "resume").await.is_some();
        (done || partial.iter().any(|p| p.metadata().map_or(0, |m| m.len()) > 0)).then_some(())
    })
    .await;
    ess.restart();
    eventually("the resumed object on the ESS", &[&css, &ess], || {
        listed(&ess, "model", "resume")
    })
    .await;
    assert_eq!(ess.api().data(&ess.obj("model", "resume")).await, first);
    wait_delivery(&css, &ess, &path, "node1", "delivered").await;
    println!(
        "download after the restart: {}",
        if ess.log().contains("resuming a download") {
            "resumed"
        } else {
            "was already complete or restarted at 0"
        }
    );
    for line in ess.log().lines().filter(|l| l.contains("WARN") || l.contains("ERROR")) {
        println!("ESS: {line}");
    }
}

#[tokio::test]
async fn propagation_latency_with_a_ten_second_polling_interval() {
    let net = Net::new(Transport::Http);
    let css = css(&net);
    let ess = ess(&net, &css, "node7", 10);
    wait_registered(&css, &ess, "node7").await;
    let mut latencies = Vec::new();
    for round in 0..5 {
        let id = format!("lat{round}");
        let path = css.obj("latency", &id);
        let started = Instant::now();
        css.api()
            .create(
                &path,
                json!({"destinationType": "edge", "destinationID": "node7"}),
                Some(b"x"),
            )
            .await;
        eventually(&format!("{id} on the ESS"), &[&css, &ess], || {
            listed(&ess, "latency", &id)
        })
        .await;
        latencies.push(started.elapsed());
    }
    latencies.sort();
    println!(
        "propagation PUT on CSS -> listed on ESS (HTTPPollingInterval 10, 5 objects): min {:?}, median {:?}, max {:?}",
        latencies[0], latencies[2], latencies[4]
    );
}

async fn a_report_made_while_the_css_is_down_is_delivered_when_it_is_back(transport: Transport) {
    let net = Net::new(transport);
    let mut css = css(&net);
    let ess = net.ess(&css, &[("ESS_CALL_SPI_RETRY_INTERVAL", "1")]);
    wait_registered(&css, &ess, "node1").await;
    let path = css.obj("model", "outage");
    css.api()
        .create(
            &path,
            json!({"destinationType": "edge", "destinationID": "node1"}),
            Some(b"payload"),
        )
        .await;
    eventually("the object on the ESS", &[&css, &ess], || {
        listed(&ess, "model", "outage")
    })
    .await;
    wait_delivery(&css, &ess, &path, "node1", "delivered").await;

    css.kill9();
    let response = ess
        .api()
        .put_empty_as(common::ADMIN, &format!("{}/consumed", ess.obj("model", "outage")))
        .await;
    assert_eq!(response.status, 204, "{}", response.text());
    // The copy stays (consumed, unlisted) until the CSS acknowledges.
    assert_eq!(ess.api().status_of(&ess.obj("model", "outage")).await, "objconsumed");
    css.restart();
    wait_delivery(&css, &ess, &path, "node1", "consumed").await;
    wait_gone(&css, &ess, &ess.obj("model", "outage")).await;
}

#[tokio::test]
async fn a_node_the_css_forgot_registers_as_new_and_gets_its_objects() {
    let mut options = NodeOptions::new(Role::Css);
    options.env.push(("REMOVE_ESS_REGISTRATION_SECONDS".into(), "2".into()));
    let css = TestNode::start(options);
    let ess = http_ess(css.port(), &[]);
    wait_registered(&css, &ess, "node1").await;
    // The CSS removes the silent node (it pings hourly); its polls get 424 and it registers
    // from scratch.
    eventually("a registration as new", &[&css, &ess], || async {
        ess.log().contains("registered with the CSS as_new=true").then_some(())
    })
    .await;
    wait_registered(&css, &ess, "node1").await;
    let path = css.obj("model", "after");
    css.api()
        .create(&path, json!({"destinationType": "edge"}), Some(b"again"))
        .await;
    eventually("the object on the re-registered ESS", &[&css, &ess], || {
        listed(&ess, "model", "after")
    })
    .await;
    assert_eq!(ess.api().data(&ess.obj("model", "after")).await, b"again");
}

#[tokio::test]
async fn the_ess_talks_to_the_css_over_https() {
    let key = rcgen::KeyPair::generate().unwrap();
    let params = rcgen::CertificateParams::new(vec!["localhost".to_string(), "127.0.0.1".to_string()]).unwrap();
    let cert = params.self_signed(&key).unwrap();
    let secure_port = common::free_port();
    let mut options = NodeOptions::new(Role::Css);
    options.env.extend([
        ("LISTENING_TYPE".to_string(), "both".to_string()),
        ("SECURE_LISTENING_PORT".to_string(), secure_port.to_string()),
        ("SERVER_CERTIFICATE".to_string(), "tls/server.crt".to_string()),
        ("SERVER_KEY".to_string(), "tls/server.key".to_string()),
    ]);
    options.files.extend([
        ("tls/server.crt".to_string(), cert.pem()),
        ("tls/server.key".to_string(), key.serialize_pem()),
    ]);
    let css = TestNode::start(options);
    let mut options = NodeOptions::new(Role::Ess);
    options.env.extend([
        ("HTTP_CSS_HOST".to_string(), "127.0.0.1".to_string()),
        ("HTTP_CSS_PORT".to_string(), secure_port.to_string()),
        ("HTTP_CSS_USE_SSL".to_string(), "true".to_string()),
        ("HTTP_CSS_CA_CERTIFICATE".to_string(), "tls/css-ca.crt".to_string()),
        ("HTTP_POLLING_INTERVAL".to_string(), "2".to_string()),
        ("RESEND_INTERVAL".to_string(), "1".to_string()),
    ]);
    options.files.push(("tls/css-ca.crt".to_string(), cert.pem()));
    let ess = TestNode::start(options);
    wait_registered(&css, &ess, "node1").await;
    let path = css.obj("model", "secure");
    css.api()
        .create(
            &path,
            json!({"destinationType": "edge", "destinationID": "node1"}),
            Some(b"over tls"),
        )
        .await;
    eventually("the object over https", &[&css, &ess], || {
        listed(&ess, "model", "secure")
    })
    .await;
    assert_eq!(ess.api().data(&ess.obj("model", "secure")).await, b"over tls");
    wait_delivery(&css, &ess, &path, "node1", "delivered").await;
}

on_both_transports!(
    objects_travel_to_the_ess_and_back_come_the_reports,
    an_interrupted_download_resumes_after_a_restart,
    a_report_made_while_the_css_is_down_is_delivered_when_it_is_back,
);
