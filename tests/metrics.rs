//! `GET /metrics` and the logs of real nodes: the exposition parses as Prometheus text; the
//! request counters name routes by `operationId` with their statuses; the stored object and
//! byte gauges, registered edge nodes, pending messages and transport bytes follow what a
//! CSS and its ESS did; `MetricsAccess` decides who reads them; `LOG_FORMAT=json` makes every
//! log line a JSON object, request spans included.

mod common;

use common::metrics::{parse, value, Sample};
use common::sync::{eventually, http_ess, wait_registered, Net, Transport, SYNC_DEADLINE};
use common::{channel_body, pattern, NodeOptions, Role, TestNode, ADMIN, ORG, SYNC_ADMIN};
use serde_json::{json, Value};

/// Requests counted for `route` with `status`.
fn requests(samples: &[Sample], route: &str, status: &str) -> f64 {
    value(
        samples,
        "edge_sync_http_requests_total",
        &[("route", route), ("status", status)],
    )
    .unwrap_or(0.0)
}

/// Scrapes `node` as a sync admin; asserts 200 and the content type.
async fn scrape(node: &TestNode) -> Vec<Sample> {
    let response = node.api().get_as(SYNC_ADMIN, "/metrics").await;
    assert_eq!(response.status, 200, "{}", response.text());
    assert_eq!(
        response.header("content-type").as_deref(),
        Some("text/plain; version=0.0.4; charset=utf-8")
    );
    parse(&response.text())
}

#[tokio::test]
async fn metrics_follow_requests_storage_and_a_sync() {
    let css = TestNode::css();
    let ess = http_ess(css.port(), &[]);
    wait_registered(&css, &ess, "node1").await;
    let api = css.api();
    let path = css.obj("model", "m1");
    let data = pattern(200_000, 3);
    api.create(
        &path,
        json!({"destinationType": "edge", "destinationID": "node1"}),
        None,
    )
    .await;
    assert_eq!(api.put_bytes(&format!("{path}/data"), data.clone()).await.status, 204);
    assert_eq!(api.get(&css.obj("model", "missing")).await.status, 404);
    assert_eq!(api.get("/api/v1/nothing").await.status, 404);
    let ess_path = ess.obj("model", "m1");
    eventually("the ESS to hold the data", &[&css, &ess], SYNC_DEADLINE, async || {
        let response = ess.api().get(&format!("{ess_path}/data")).await;
        (response.status == 200 && response.body == data).then_some(())
    })
    .await;

    let size = data.len() as f64;
    let samples = scrape(&css).await;
    assert_eq!(requests(&samples, "putObject", "204"), 1.0);
    assert_eq!(requests(&samples, "putObjectData", "204"), 1.0);
    assert_eq!(requests(&samples, "getObject", "404"), 1.0);
    assert!(requests(&samples, "unknown", "404") >= 1.0);
    let served = ["spiGetData", "spiGetDataShort"]
        .iter()
        .flat_map(|route| ["200", "206"].map(|status| requests(&samples, route, status)))
        .sum::<f64>();
    assert!(served >= 1.0, "the ESS's data download is counted");
    assert!(requests(&samples, "spiRegisterNew", "204") + requests(&samples, "spiRegister", "204") >= 1.0);
    assert_eq!(
        value(
            &samples,
            "edge_sync_http_request_duration_seconds_count",
            &[("route", "putObjectData")]
        ),
        Some(1.0)
    );
    assert_eq!(value(&samples, "edge_sync_store_up", &[]), Some(1.0));
    assert_eq!(value(&samples, "edge_sync_objects_stored", &[]), Some(1.0));
    assert_eq!(value(&samples, "edge_sync_objects_stored_bytes", &[]), Some(size));
    assert_eq!(value(&samples, "edge_sync_registered_ess", &[]), Some(1.0));
    let sent = value(
        &samples,
        "edge_sync_transport_bytes_total",
        &[("transport", "http"), ("direction", "sent")],
    )
    .expect("HTTP bytes sent");
    assert!(sent >= size, "{sent} bytes sent for {size} bytes of data");
    for direction in ["sending", "receiving"] {
        assert!(value(&samples, "edge_sync_transfers_in_flight", &[("direction", direction)]).is_some());
    }
    assert!(
        !samples.iter().any(|s| s.name.contains("mqtt")),
        "no MQTT series on an HTTP node"
    );

    // The scrape itself is counted from the next one on.
    let again = scrape(&css).await;
    assert!(requests(&again, "getMetrics", "200") >= 1.0);

    let ess_samples = scrape(&ess).await;
    assert_eq!(value(&ess_samples, "edge_sync_objects_stored", &[]), Some(1.0));
    assert_eq!(value(&ess_samples, "edge_sync_objects_stored_bytes", &[]), Some(size));
    assert_eq!(value(&ess_samples, "edge_sync_registered_ess", &[]), None);
    assert!(requests(&ess_samples, "getObjectData", "200") >= 1.0);

    // A node that registers and never polls: its message stays pending.
    let node2 = reqwest::Client::new();
    let registered = node2
        .put(format!("{}/spi/v1/register-new/{ORG}/edge/node2", css.base()))
        .basic_auth(format!("{ORG}/edge/node2"), Some(""))
        .header("X-Sync-Service-Dest", format!("{ORG}/edge/node2"))
        .send()
        .await
        .expect("register node2");
    assert_eq!(registered.status().as_u16(), 204);
    api.create(
        &css.obj("model", "m2"),
        json!({"destinationType": "edge", "destinationID": "node2"}),
        Some(b"for node2"),
    )
    .await;
    let samples = scrape(&css).await;
    assert_eq!(
        value(
            &samples,
            "edge_sync_notifications_pending",
            &[("org", ORG), ("dest_type", "edge"), ("dest_id", "node2")]
        ),
        Some(1.0)
    );
    assert_eq!(value(&samples, "edge_sync_registered_ess", &[]), Some(2.0));
    assert_eq!(value(&samples, "edge_sync_objects_stored", &[]), Some(2.0));
    assert_eq!(
        value(&samples, "edge_sync_objects_stored_bytes", &[]),
        Some(size + "for node2".len() as f64)
    );
}

#[tokio::test]
async fn an_upload_in_progress_is_a_transfer_in_flight() {
    let node = TestNode::css();
    let api = node.api();
    let path = node.obj("model", "up");
    api.create(&path, json!({}), None).await;
    let receiving = async || {
        value(
            &scrape(&node).await,
            "edge_sync_transfers_in_flight",
            &[("direction", "receiving")],
        )
    };
    assert_eq!(receiving().await, Some(0.0));
    let (sender, body) = channel_body();
    let upload = tokio::spawn({
        let api = api.clone();
        let url = format!("{path}/data");
        async move {
            api.send(api.request(reqwest::Method::PUT, &url, Some(ADMIN)).body(body))
                .await
        }
    });
    sender
        .send(bytes::Bytes::from_static(b"first part"))
        .await
        .expect("part sent");
    eventually("the upload to be counted", &[&node], SYNC_DEADLINE, async || {
        (receiving().await == Some(1.0)).then_some(())
    })
    .await;
    drop(sender);
    assert_eq!(upload.await.expect("upload task").status, 204);
    assert_eq!(receiving().await, Some(0.0));
}

#[tokio::test]
async fn mqtt_nodes_report_their_broker_and_its_bytes() {
    let net = Net::new(Transport::Mqtt);
    let css = net.css(&[]);
    let ess = net.ess(&css, &[]);
    wait_registered(&css, &ess, "node1").await;
    for node in [&css, &ess] {
        let samples = scrape(node).await;
        assert_eq!(value(&samples, "edge_sync_mqtt_broker_connected", &[]), Some(1.0));
        for direction in ["sent", "received"] {
            let bytes = value(
                &samples,
                "edge_sync_transport_bytes_total",
                &[("transport", "mqtt"), ("direction", direction)],
            );
            assert!(bytes.is_some_and(|b| b > 0.0), "{direction}: {bytes:?}");
        }
        assert_eq!(
            value(
                &samples,
                "edge_sync_transport_bytes_total",
                &[("transport", "http"), ("direction", "sent")]
            ),
            None,
            "no HTTP node-to-node routes on an MQTT node"
        );
    }
}

#[tokio::test]
async fn metrics_access_follows_the_setting() {
    // Default: sync admins only.
    let ess = TestNode::ess();
    for user in [None, Some(ADMIN)] {
        let response = ess
            .api()
            .send(ess.api().request(reqwest::Method::GET, "/metrics", user))
            .await;
        assert_eq!(response.status, 403, "{user:?}");
        assert_eq!(response.text(), "Unauthorized");
    }
    let other = ess
        .api()
        .send(ess.api().request(reqwest::Method::POST, "/metrics", Some(SYNC_ADMIN)))
        .await;
    assert_eq!(other.status, 405);

    let open = start_with(Role::Css, &[("METRICS_ACCESS", "open")]);
    let response = open
        .api()
        .send(open.api().request(reqwest::Method::GET, "/metrics", None))
        .await;
    assert_eq!(response.status, 200);
    assert!(!parse(&response.text()).is_empty());

    let off = start_with(Role::Ess, &[("METRICS_ACCESS", "off")]);
    let response = off.api().get_as(SYNC_ADMIN, "/metrics").await;
    assert_eq!(response.status, 404);
    assert_eq!(response.text(), "404 page not found\n");
}

fn start_with(role: Role, env: &[(&str, &str)]) -> TestNode {
    let mut options = NodeOptions::new(role);
    options
        .env
        .extend(env.iter().map(|(k, v)| (k.to_string(), v.to_string())));
    TestNode::start(options)
}

#[tokio::test]
async fn json_log_lines_carry_level_message_and_the_request_span() {
    let node = start_with(Role::Css, &[("LOG_FORMAT", "json"), ("LOG_LEVEL", "DEBUG")]);
    assert_eq!(node.api().get("/api/v1/health").await.status, 200);
    let lines: Vec<Value> = eventually("the request's log line", &[&node], SYNC_DEADLINE, async || {
        let lines: Vec<Value> = node
            .log()
            .lines()
            .map(|line| serde_json::from_str(line).unwrap_or_else(|e| panic!("not JSON ({e}): {line}")))
            .collect();
        lines
            .iter()
            .any(|l| l["message"] == "request answered" && l["span"]["route"] == "getHealth")
            .then_some(lines)
    })
    .await;
    for line in &lines {
        assert!(line["level"].is_string(), "no level: {line}");
        assert!(line["message"].is_string(), "no message: {line}");
    }
    let answered = lines
        .iter()
        .find(|l| l["message"] == "request answered" && l["span"]["route"] == "getHealth")
        .expect("found above");
    assert_eq!(answered["level"], "DEBUG");
    assert_eq!(answered["span"]["method"], "GET");
    assert_eq!(answered["status"], 200);
    assert!(answered["latency_ms"].is_number(), "{answered}");
    assert!(
        lines.iter().any(|l| l["message"] == "edge-sync-service listening"),
        "the start-up lines are JSON too"
    );
}
