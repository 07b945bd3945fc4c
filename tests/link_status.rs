//! The ESS's link status (`cssLink` in its health, `css_link_*` in its metrics, a log line at
//! each change) and the CSS's view of its nodes (`lastSeen`, `linkState` in the destinations
//! listing, `nodes_by_link` in its metrics), with real nodes: a CSS that stops, a CA that does
//! not match, credentials the CSS refuses, a host that does not resolve, a broker that stops.

mod common;

use common::sync::{eventually, http_ess, wait_registered, Net, Transport, SYNC_DEADLINE};
use common::{NodeOptions, Role, TestNode, ORG};
use serde_json::Value;

/// The ESS's `cssLink` once its state is `state` and, when given, its last reason `reason`.
async fn link_when(ess: &TestNode, others: &[&TestNode], state: &str, reason: Option<&str>) -> Value {
    let mut nodes = vec![ess];
    nodes.extend_from_slice(others);
    eventually(
        &format!("the link to be {state} ({reason:?})"),
        &nodes,
        SYNC_DEADLINE,
        async || {
            let health = ess.api().get("/api/v1/health").await;
            let link = health.json()["cssLink"].clone();
            let matches = link["state"] == state && reason.is_none_or(|r| link["lastErrorReason"] == r);
            matches.then_some(link)
        },
    )
    .await
}

fn metric_line(text: &str, line: &str) -> bool {
    text.lines().any(|l| l == line)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stopped_css_shows_as_refused_and_the_css_lists_its_nodes_with_their_link() {
    let mut css = TestNode::css();
    let ess = http_ess(css.port(), &[]);
    wait_registered(&css, &ess, "node1").await;
    let link = link_when(&ess, &[&css], "connected", None).await;
    assert!(link["lastSuccess"].as_str().is_some_and(|t| t.ends_with('Z')), "{link}");
    assert!(link.get("lastError").is_none(), "{link}");

    // The CSS: the original's fields, then when it last heard from the node and its link.
    let listing = css.api().get(&format!("/api/v1/destinations/{ORG}")).await.json();
    let entry = &listing.as_array().unwrap()[0];
    assert_eq!(entry["destinationID"], "node1");
    assert_eq!(entry["communication"], "http");
    assert_eq!(entry["linkState"], "online");
    assert_eq!(entry["objectsPending"], 0);
    assert!(entry["lastSeen"].as_str().is_some_and(|t| t.ends_with('Z')), "{entry}");
    let metrics = css.api().get_as(common::SYNC_ADMIN, "/metrics").await.text();
    assert!(
        metric_line(&metrics, "edge_sync_nodes_by_link{state=\"online\"} 1"),
        "{metrics}"
    );
    assert!(metrics.contains("edge_sync_node_last_heard_timestamp_seconds{org=\"org\",dest_type=\"edge\",dest_id=\"node1\",protocol=\"http\"}"), "{metrics}");

    css.kill9();
    let link = link_when(&ess, &[], "retrying", Some("refused")).await;
    assert!(link["failures"]["refused"].as_u64().unwrap() >= 1, "{link}");
    assert!(link["lastSuccess"].is_string(), "the last success stays known: {link}");
    let metrics = ess.api().get_as(common::SYNC_ADMIN, "/metrics").await.text();
    assert!(
        metric_line(&metrics, "edge_sync_css_link_state{state=\"retrying\"} 1"),
        "{metrics}"
    );
    assert!(ess.log().contains("link to the CSS: retrying"), "{}", ess.log());

    // Back: connected again, the change logged.
    css.restart();
    link_when(&ess, &[&css], "connected", None).await;
    assert!(ess.log().contains("link to the CSS: connected"));
}

#[tokio::test]
async fn a_host_that_does_not_resolve_is_dns() {
    let ess = TestNode::start(NodeOptions {
        env: vec![
            ("COMMUNICATION_PROTOCOL".into(), "http".into()),
            ("HTTP_CSS_HOST".into(), "css.does-not-exist.invalid".into()),
            ("HTTP_CSS_PORT".into(), "8080".into()),
            ("HTTP_POLLING_INTERVAL".into(), "1".into()),
            ("ESS_CALL_SPI_RETRY_INTERVAL".into(), "1".into()),
        ],
        ..NodeOptions::new(Role::Ess)
    });
    let link = link_when(&ess, &[], "offline", Some("dns")).await;
    assert!(link.get("lastSuccess").is_none(), "{link}");
    assert!(link["lastErrorTime"].is_string(), "{link}");
}

#[tokio::test]
async fn a_css_certificate_from_another_ca_is_tls() {
    let key = rcgen::KeyPair::generate().unwrap();
    let params = rcgen::CertificateParams::new(vec!["127.0.0.1".to_string()]).unwrap();
    let cert = params.self_signed(&key).unwrap();
    let other_key = rcgen::KeyPair::generate().unwrap();
    let other = rcgen::CertificateParams::new(vec!["127.0.0.1".to_string()])
        .unwrap()
        .self_signed(&other_key)
        .unwrap();
    let secure_port = common::free_port();
    let css = TestNode::start(NodeOptions {
        env: vec![
            ("LISTENING_TYPE".into(), "both".into()),
            ("SECURE_LISTENING_PORT".into(), secure_port.to_string()),
            ("SERVER_CERTIFICATE".into(), "tls/server.crt".into()),
            ("SERVER_KEY".into(), "tls/server.key".into()),
        ],
        files: vec![
            ("tls/server.crt".into(), cert.pem()),
            ("tls/server.key".into(), key.serialize_pem()),
        ],
        ..NodeOptions::new(Role::Css)
    });
    let ess = TestNode::start(NodeOptions {
        env: vec![
            ("HTTP_CSS_HOST".into(), "127.0.0.1".into()),
            ("HTTP_CSS_PORT".into(), secure_port.to_string()),
            ("HTTP_CSS_USE_SSL".into(), "true".into()),
            ("HTTP_CSS_CA_CERTIFICATE".into(), "tls/css-ca.crt".into()),
            ("HTTP_POLLING_INTERVAL".into(), "1".into()),
            ("ESS_CALL_SPI_RETRY_INTERVAL".into(), "1".into()),
        ],
        files: vec![("tls/css-ca.crt".into(), other.pem())],
        ..NodeOptions::new(Role::Ess)
    });
    link_when(&ess, &[&css], "offline", Some("tls")).await;
}

#[tokio::test]
async fn credentials_the_css_refuses_are_unauthorized() {
    // A CSS that knows only its admin: the ESS's credentials are refused.
    let file = serde_json::json!({
        "credentials": {common::ADMIN: {"secret": "secret", "orgID": ORG, "username": "admin", "type": "admin"}},
    });
    let css = TestNode::start(NodeOptions {
        env: vec![("AUTHENTICATION_HANDLER".into(), "Preset".into())],
        files: vec![("sync/preset-auth.json".into(), file.to_string())],
        ..NodeOptions::new(Role::Css)
    });
    let ess = http_ess(css.port(), &[("ESS_CALL_SPI_RETRY_INTERVAL", "1")]);
    let link = link_when(&ess, &[&css], "offline", Some("unauthorized")).await;
    assert!(link["lastError"].as_str().unwrap().contains("403"), "{link}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn over_mqtt_the_broker_connection_is_the_link() {
    let mut net = Net::new(Transport::Mqtt);
    let css = net.css(&[]);
    let ess = net.ess(&css, &[]);
    link_when(&ess, &[&css], "connected", None).await;
    net.broker().stop();
    link_when(&ess, &[&css], "retrying", Some("refused")).await;
    net.broker().restart();
    link_when(&ess, &[&css], "connected", None).await;
}
