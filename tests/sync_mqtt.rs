//! What only the MQTT transport has, end to end with real CSS and ESS processes and a real
//! mosquitto on loopback: a broker outage in the middle of a large transfer (both
//! directions), TLS to the broker, and user/password authentication at the broker. The
//! scenarios MQTT shares with HTTP run on both transports in `sync_http.rs` and
//! `sync_ess_origin.rs`. Every wait has a deadline; processes are killed by pid on drop.

mod common;

use common::broker::{BrokerOptions, BrokerTls};
use common::sync::{eventually, wait_for, wait_registered, Net, Transport, SYNC_DEADLINE};
use common::{pattern, TestNode, ORG};
use serde_json::json;
use std::time::{Duration, Instant};

/// Logs of the nodes' broker connection at debug level: every failed connection attempt is
/// logged with its count, so a test can wait for reconnection attempts.
const CONNECTION_DEBUG: (&str, &str) = ("RUST_LOG", "info,edge_sync_service::transport::mqtt::connection=debug");
/// 64 KiB chunks: a 16 MiB object travels in 256 data messages.
const CHUNK: (&str, &str) = ("MAX_DATA_CHUNK_SIZE", "65536");
const BIG: usize = 16 << 20;

/// Failed broker connection attempts the node logged since it last lost the broker.
fn failures_since_loss(node: &TestNode) -> u32 {
    let log = node.log();
    let since = log.rfind("connection to the broker lost").map_or("", |i| &log[i..]);
    since
        .lines()
        .filter(|l| l.contains("MQTT: no broker connection"))
        .filter_map(|l| l.split("failures=").nth(1)?.split_whitespace().next()?.parse().ok())
        .max()
        .unwrap_or(0)
}

async fn status(node: &TestNode, path: &str) -> Option<String> {
    let response = node.api().get(&format!("{path}/status")).await;
    (response.status == 200).then(|| response.text())
}

/// Stops the broker while `nodes` use it; once they noticed, waits until each of them tried
/// to reconnect four times (at least 0.7 s with the connection's backoff, usually about 2 s),
/// and checks they stayed up and did not spin meanwhile; then starts the broker again on
/// the same port.
async fn broker_outage(net: &mut Net, nodes: &[&TestNode]) {
    net.broker().stop();
    let stopped = Instant::now();
    wait_for(
        "the nodes to notice the broker is gone",
        nodes,
        SYNC_DEADLINE,
        async || {
            nodes
                .iter()
                .all(|n| n.log().contains("MQTT: connection to the broker lost"))
        },
    )
    .await;
    let before: Vec<Duration> = nodes.iter().map(|n| n.cpu_time()).collect();
    let noticed = Instant::now();
    wait_for(
        "four reconnection attempts by each node",
        nodes,
        SYNC_DEADLINE,
        async || nodes.iter().all(|n| failures_since_loss(n) >= 4),
    )
    .await;
    let down = noticed.elapsed();
    assert!(
        stopped.elapsed() >= Duration::from_millis(500),
        "reconnection attempts back off (four in {:?})",
        stopped.elapsed()
    );
    for (node, before) in nodes.iter().zip(before) {
        node.assert_healthy().await;
        let used = node.cpu_time() - before;
        println!("{:?} used {used:?} of CPU in {down:?} without the broker", node.role);
        assert!(
            used <= Duration::from_millis(100).max(down / 4),
            "{:?} used {used:?} of CPU in {down:?} without the broker:\n{}",
            node.role,
            node.log()
        );
    }
    net.broker().restart();
}

#[tokio::test]
async fn a_large_download_survives_a_broker_restart() {
    let mut net = Net::new(Transport::Mqtt);
    let css = net.css(&[CHUNK, CONNECTION_DEBUG]);
    let ess = net.ess(&css, &[CONNECTION_DEBUG]);
    wait_registered(&css, &ess, "node1").await;
    let data = pattern(BIG, 21);
    let path = css.obj("model", "big");
    let css_api = css.api();
    css_api
        .create(
            &path,
            json!({"destinationType": "edge", "destinationID": "node1"}),
            None,
        )
        .await;
    let response = css_api.put_bytes(&format!("{path}/data"), data.clone()).await;
    assert_eq!(response.status, 204, "{}", response.text());

    // Stop the broker once part of the data is on the ESS's disk.
    let ess_path = ess.obj("model", "big");
    eventually(
        "a partial download on the ESS",
        &[&css, &ess],
        SYNC_DEADLINE,
        async || {
            let partial = ess.files_in("partial");
            if partial.iter().any(|p| p.metadata().map_or(0, |m| m.len()) > 0) {
                return Some(());
            }
            let done = status(&ess, &ess_path).await.as_deref() == Some("completelyReceived");
            assert!(!done, "the download ended before the broker could be stopped");
            None
        },
    )
    .await;
    broker_outage(&mut net, &[&css, &ess]).await;

    eventually(
        "the object on the ESS after the outage",
        &[&css, &ess],
        SYNC_DEADLINE,
        async || (status(&ess, &ess_path).await.as_deref() == Some("completelyReceived")).then_some(()),
    )
    .await;
    assert!(ess.api().data(&ess_path).await == data, "identical data on the ESS");
    eventually("the delivery on the CSS", &[&css, &ess], SYNC_DEADLINE, async || {
        let response = css_api.get(&format!("{path}/destinations")).await;
        (response.status == 200 && response.json()[0]["status"] == "delivered").then_some(())
    })
    .await;
    for node in [&css, &ess] {
        node.assert_healthy().await;
        assert!(node.log().matches("MQTT: connected to the broker").count() >= 2);
    }
}

#[tokio::test]
async fn a_large_upload_survives_a_broker_restart() {
    let mut net = Net::new(Transport::Mqtt);
    let css = net.css(&[CONNECTION_DEBUG]);
    let ess = net.ess(&css, &[CHUNK, CONNECTION_DEBUG]);
    wait_registered(&css, &ess, "node1").await;
    let data = pattern(BIG, 23);
    let ess_path = ess.obj("report", "big");
    let ess_api = ess.api();
    ess_api.create(&ess_path, json!({}), None).await;
    let response = ess_api.put_bytes(&format!("{ess_path}/data"), data.clone()).await;
    assert_eq!(response.status, 204, "{}", response.text());

    // Stop the broker once part of the data is on the CSS's disk.
    let css_path = css.obj("report", "big");
    eventually(
        "a partial upload on the CSS",
        &[&css, &ess],
        SYNC_DEADLINE,
        async || {
            let partial = css.files_in("partial");
            if partial.iter().any(|p| p.metadata().map_or(0, |m| m.len()) > 0) {
                return Some(());
            }
            let done = status(&css, &css_path).await.as_deref() == Some("completelyReceived");
            assert!(!done, "the upload ended before the broker could be stopped");
            None
        },
    )
    .await;
    broker_outage(&mut net, &[&css, &ess]).await;

    eventually(
        "the object on the CSS after the outage",
        &[&css, &ess],
        SYNC_DEADLINE,
        async || (status(&css, &css_path).await.as_deref() == Some("completelyReceived")).then_some(()),
    )
    .await;
    assert!(css.api().data(&css_path).await == data, "identical data on the CSS");
    for node in [&css, &ess] {
        node.assert_healthy().await;
        assert!(node.log().matches("MQTT: connected to the broker").count() >= 2);
    }
}

/// A CA and a server certificate it signed for 127.0.0.1 and localhost: (CA PEM, server
/// certificate PEM, server key PEM).
fn certificates(ca_name: &str) -> (String, String, String) {
    use rcgen::{BasicConstraints, CertificateParams, DnType, IsCa, Issuer, KeyPair};
    let ca_key = KeyPair::generate().unwrap();
    let mut ca_params = CertificateParams::new(Vec::<String>::new()).unwrap();
    ca_params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    ca_params.distinguished_name.push(DnType::CommonName, ca_name);
    let ca = ca_params.self_signed(&ca_key).unwrap();
    let key = KeyPair::generate().unwrap();
    let mut params = CertificateParams::new(vec!["127.0.0.1".to_string(), "localhost".to_string()]).unwrap();
    params.distinguished_name.push(DnType::CommonName, "broker");
    let cert = params.signed_by(&key, &Issuer::new(ca_params, ca_key)).unwrap();
    (ca.pem(), cert.pem(), key.serialize_pem())
}

/// Objects travel both ways between `css` and `ess` (`edge`/`id`): a multi-chunk one from
/// the CSS, one from the ESS.
async fn objects_travel_both_ways(css: &TestNode, ess: &TestNode, id: &str) {
    let down = pattern(300_000, 31);
    let path = css.obj("model", "down");
    css.api()
        .create(
            &path,
            json!({"destinationType": "edge", "destinationID": id}),
            Some(&down),
        )
        .await;
    let ess_path = ess.obj("model", "down");
    eventually("the CSS object on the ESS", &[css, ess], SYNC_DEADLINE, async || {
        (status(ess, &ess_path).await.as_deref() == Some("completelyReceived")).then_some(())
    })
    .await;
    assert!(ess.api().data(&ess_path).await == down, "identical data on the ESS");

    let up = pattern(200_000, 37);
    let own = ess.obj("report", "up");
    ess.api().create(&own, json!({}), Some(&up)).await;
    let css_copy = css.obj("report", "up");
    eventually("the ESS object on the CSS", &[css, ess], SYNC_DEADLINE, async || {
        (status(css, &css_copy).await.as_deref() == Some("completelyReceived")).then_some(())
    })
    .await;
    assert!(css.api().data(&css_copy).await == up, "identical data on the CSS");
}

#[tokio::test]
async fn nodes_sync_through_a_tls_broker() {
    let (ca, cert, key) = certificates("test broker CA");
    let net = Net::mqtt_with(BrokerOptions {
        tls: Some(BrokerTls {
            ca: ca.clone(),
            cert,
            key,
        }),
        user: None,
    });
    let tls_port = net.broker.as_ref().unwrap().tls_port().to_string();
    // The CSS names its CA by an absolute path, the ESS by a path relative to its
    // persistence root (both with an allowed extension, `.pem` and `.crt`).
    let ca_dir = tempfile::tempdir().unwrap();
    let ca_path = ca_dir.path().join("broker-ca.pem");
    std::fs::write(&ca_path, &ca).unwrap();
    let ca_path = ca_path.display().to_string();
    let css = net.css(&[
        ("BROKER_PORT", &tls_port),
        ("MQTT_USE_SSL", "true"),
        ("MQTT_CA_CERTIFICATE", &ca_path),
        CHUNK,
    ]);
    let tls_env = [
        ("BROKER_PORT", tls_port.as_str()),
        ("MQTT_USE_SSL", "true"),
        ("MQTT_CA_CERTIFICATE", "broker/ca/test-ca.crt"),
    ];
    let mut options = net.ess_options(&css, &tls_env);
    options.files.push(("broker/ca/test-ca.crt".into(), ca));
    let ess = TestNode::start(options);
    wait_registered(&css, &ess, "node1").await;
    objects_travel_both_ways(&css, &ess, "node1").await;

    // A node trusting another CA refuses the broker: it stays up and does not register.
    let (other_ca, _, _) = certificates("another CA");
    let mut options = net.ess_options(&css, &[("DESTINATION_ID", "stranger")]);
    options
        .env
        .extend(tls_env.iter().map(|(k, v)| (k.to_string(), v.to_string())));
    options.files.push(("broker/ca/test-ca.crt".into(), other_ca));
    let stranger = TestNode::start(options);
    wait_for(
        "the stranger to fail the handshake",
        &[&stranger],
        SYNC_DEADLINE,
        async || stranger.log().contains("MQTT: cannot reach the broker"),
    )
    .await;
    stranger.assert_healthy().await;
    assert!(!stranger.log().contains("MQTT: connected to the broker"));
    let nodes = css.api().get(&format!("/api/v1/destinations/{ORG}")).await.json();
    assert!(
        !nodes
            .as_array()
            .unwrap()
            .iter()
            .any(|d| d["destinationID"] == "stranger"),
        "{nodes}"
    );
}

#[tokio::test]
async fn only_nodes_with_the_right_password_sync() {
    let net = Net::mqtt_with(BrokerOptions {
        tls: None,
        user: Some(("sync".into(), "s3cret".into())),
    });
    let right = [("MQTT_USER_NAME", "sync"), ("MQTT_PASSWORD", "s3cret")];
    let wrong = [("MQTT_USER_NAME", "sync"), ("MQTT_PASSWORD", "wrong")];
    let css = net.css(&right);
    let good = net.ess(&css, &[right[0], right[1], ("DESTINATION_ID", "node1")]);
    let bad = net.ess(&css, &[wrong[0], wrong[1], ("DESTINATION_ID", "node2")]);
    let bad_css = net.css(&wrong);
    wait_registered(&css, &good, "node1").await;
    objects_travel_both_ways(&css, &good, "node1").await;

    // Broadcast: a node of the type that could connect would get it too.
    let path = css.obj("model", "everyone");
    css.api()
        .create(&path, json!({"destinationType": "edge"}), Some(b"broadcast"))
        .await;
    let good_path = good.obj("model", "everyone");
    eventually(
        "the broadcast on the good node",
        &[&css, &good],
        SYNC_DEADLINE,
        async || (status(&good, &good_path).await.as_deref() == Some("completelyReceived")).then_some(()),
    )
    .await;
    for node in [&bad, &bad_css] {
        wait_for(
            "the broker to refuse the wrong password",
            &[node],
            SYNC_DEADLINE,
            async || node.log().contains("MQTT: cannot reach the broker"),
        )
        .await;
        node.assert_healthy().await;
        assert!(!node.log().contains("MQTT: connected to the broker"), "{}", node.log());
        println!(
            "{:?}: {}",
            node.role,
            node.log()
                .lines()
                .find(|l| l.contains("cannot reach the broker"))
                .unwrap()
        );
    }
    assert_eq!(bad.api().get(&bad.obj("model", "everyone")).await.status, 404);
    let nodes = css.api().get(&format!("/api/v1/destinations/{ORG}")).await.json();
    assert!(
        !nodes.as_array().unwrap().iter().any(|d| d["destinationID"] == "node2"),
        "{nodes}"
    );
}
