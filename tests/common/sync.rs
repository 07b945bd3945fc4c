//! Helpers of the synchronization tests: CSS and ESS nodes syncing over HTTP or over MQTT
//! through a mosquitto broker ([`Net`]), scenarios declared once for both transports
//! ([`on_both_transports!`]), and waiting for a condition with a deadline (printing the
//! nodes' logs when it does not come).

use super::{NodeOptions, Role, TestNode, ORG};
use std::time::{Duration, Instant};

/// How long a synchronization step may take before a test gives up.
pub const SYNC_DEADLINE: Duration = Duration::from_secs(30);

/// A CSS with extra settings.
pub fn css_with(env: &[(&str, &str)]) -> TestNode {
    let mut options = NodeOptions::new(Role::Css);
    options
        .env
        .extend(env.iter().map(|(k, v)| (k.to_string(), v.to_string())));
    TestNode::start(options)
}

/// An ESS (`edge`/`node1` of the test org) syncing over HTTP with the CSS on `css_port`,
/// polling every 2 s at most and resending after 1 s; `env` adds or overrides settings.
pub fn http_ess(css_port: u16, env: &[(&str, &str)]) -> TestNode {
    let mut options = NodeOptions::new(Role::Ess);
    let port = css_port.to_string();
    let defaults = [
        ("COMMUNICATION_PROTOCOL", "http"),
        ("HTTP_CSS_HOST", "127.0.0.1"),
        ("HTTP_CSS_PORT", port.as_str()),
        ("HTTP_POLLING_INTERVAL", "2"),
        ("RESEND_INTERVAL", "1"),
    ];
    for (key, value) in defaults.iter().chain(env.iter()) {
        options.env.push((key.to_string(), value.to_string()));
    }
    TestNode::start(options)
}

/// Waits until `probe` returns `Some`; panics with `what` and the nodes' logs after `timeout`.
pub async fn eventually<T>(
    what: &str,
    nodes: &[&TestNode],
    timeout: Duration,
    mut probe: impl AsyncFnMut() -> Option<T>,
) -> T {
    let deadline = Instant::now() + timeout;
    loop {
        if let Some(value) = probe().await {
            return value;
        }
        if Instant::now() >= deadline {
            let logs: Vec<String> = nodes.iter().map(|n| n.log()).collect();
            panic!("timed out waiting for {what}\n--- logs ---\n{}", logs.join("\n---\n"));
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

/// Waits until `probe` holds; panics with `what` and the nodes' logs after `timeout`.
pub async fn wait_for(what: &str, nodes: &[&TestNode], timeout: Duration, mut probe: impl AsyncFnMut() -> bool) {
    eventually(what, nodes, timeout, async || probe().await.then_some(())).await
}

/// The metadata of `id` in `node`'s listing of objects of `object_type` (what its
/// applications see: copies once complete, own objects).
pub async fn listed(node: &TestNode, object_type: &str, id: &str) -> Option<serde_json::Value> {
    let response = node.api().get(&node.type_path(object_type)).await;
    if response.status != 200 {
        return None;
    }
    response
        .json()
        .as_array()?
        .iter()
        .find(|m| m["objectID"] == id)
        .cloned()
}

/// Waits until the CSS lists the ESS `edge`/`id` among its destinations.
pub async fn wait_registered(css: &TestNode, ess: &TestNode, id: &str) {
    let api = css.api();
    wait_for("the ESS to register", &[css, ess], SYNC_DEADLINE, async || {
        let response = api.get(&format!("/api/v1/destinations/{ORG}")).await;
        response.status == 200
            && response.json().as_array().is_some_and(|nodes| {
                nodes
                    .iter()
                    .any(|d| d["destinationType"] == "edge" && d["destinationID"] == id)
            })
    })
    .await;
}

/// The node-to-node transport a scenario runs on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Transport {
    Http,
    Mqtt,
}

/// The nodes' network for one scenario: over MQTT it owns a mosquitto broker that lives as
/// long as the scenario.
pub struct Net {
    pub transport: Transport,
    pub broker: Option<super::broker::Broker>,
}

impl Net {
    pub fn new(transport: Transport) -> Self {
        let broker = (transport == Transport::Mqtt).then(super::broker::Broker::start);
        Self { transport, broker }
    }

    /// An MQTT network whose broker is set up as `options` says.
    pub fn mqtt_with(options: super::broker::BrokerOptions) -> Self {
        Self {
            transport: Transport::Mqtt,
            broker: Some(super::broker::Broker::start_with(options)),
        }
    }

    /// The broker of an MQTT network.
    pub fn broker(&mut self) -> &mut super::broker::Broker {
        self.broker.as_mut().expect("an MQTT network has a broker")
    }

    fn transport_env(&self) -> Vec<(String, String)> {
        self.broker.as_ref().map(|b| b.env()).unwrap_or_default()
    }

    /// How to start a CSS on this network with extra settings (for extra files).
    pub fn css_options(&self, env: &[(&str, &str)]) -> NodeOptions {
        let mut options = NodeOptions::new(Role::Css);
        options.env.extend(self.transport_env());
        options
            .env
            .extend(env.iter().map(|(k, v)| (k.to_string(), v.to_string())));
        options
    }

    /// A CSS on this network with extra settings.
    pub fn css(&self, env: &[(&str, &str)]) -> TestNode {
        TestNode::start(self.css_options(env))
    }

    /// How to start an ESS (`edge`/`node1` unless `env` says otherwise) of `css` on this
    /// network: over HTTP polling every 2 s at most; on both transports resending after 1 s.
    pub fn ess_options(&self, css: &TestNode, env: &[(&str, &str)]) -> NodeOptions {
        let mut options = NodeOptions::new(Role::Ess);
        let port = css.port().to_string();
        match self.transport {
            Transport::Http => {
                for (key, value) in [
                    ("COMMUNICATION_PROTOCOL", "http"),
                    ("HTTP_CSS_HOST", "127.0.0.1"),
                    ("HTTP_CSS_PORT", port.as_str()),
                    ("HTTP_POLLING_INTERVAL", "2"),
                ] {
                    options.env.push((key.to_string(), value.to_string()));
                }
            }
            Transport::Mqtt => options.env.extend(self.transport_env()),
        }
        options.env.push(("RESEND_INTERVAL".into(), "1".into()));
        options
            .env
            .extend(env.iter().map(|(k, v)| (k.to_string(), v.to_string())));
        options
    }

    /// An ESS (`edge`/`node1` unless `env` says otherwise) of `css` on this network.
    pub fn ess(&self, css: &TestNode, env: &[(&str, &str)]) -> TestNode {
        TestNode::start(self.ess_options(css, env))
    }
}

/// Declares each `async fn name(transport: Transport)` as two tests, `http::name` and
/// `mqtt::name`.
#[macro_export]
macro_rules! on_both_transports {
    ($($name:ident),* $(,)?) => {
        mod http {
            $(
                #[tokio::test]
                async fn $name() {
                    super::$name($crate::common::sync::Transport::Http).await
                }
            )*
        }
        mod mqtt {
            $(
                #[tokio::test]
                async fn $name() {
                    super::$name($crate::common::sync::Transport::Mqtt).await
                }
            )*
        }
    };
}

/// Bytes the CSS exchanged with its nodes over `transport`, `direction` `sent` or
/// `received`: object data (and manifests) on the HTTP routes, every message on MQTT.
pub async fn css_transport_bytes(css: &TestNode, transport: Transport, direction: &str) -> f64 {
    let label = match transport {
        Transport::Http => "http",
        Transport::Mqtt => "mqtt",
    };
    let text = css.api().get_as(super::SYNC_ADMIN, "/metrics").await.text();
    super::metrics::value(
        &super::metrics::parse(&text),
        "edge_sync_transport_bytes_total",
        &[("transport", label), ("direction", direction)],
    )
    .unwrap_or(0.0)
}

/// Publishes `data` as the CSS's object `object_type`/`id` for `edge`/node1 and waits until
/// the ESS's copy is exactly it (a new version replaces the one before); the bytes the CSS
/// sent meanwhile.
pub async fn send_to_node1(
    net: &Net,
    css: &TestNode,
    ess: &TestNode,
    (object_type, id): (&str, &str),
    data: &[u8],
) -> f64 {
    let before = css_transport_bytes(css, net.transport, "sent").await;
    let path = css.obj(object_type, id);
    let meta = serde_json::json!({"destinationType": "edge", "destinationID": "node1"});
    css.api().create(&path, meta, Some(data)).await;
    wait_for_copy(ess, &ess.obj(object_type, id), data, &[css, ess]).await;
    css_transport_bytes(css, net.transport, "sent").await - before
}

/// Writes `data` as the ESS's object `object_type`/`id` and waits until the CSS's copy is
/// exactly it; the bytes the CSS received meanwhile.
pub async fn send_to_the_css(
    net: &Net,
    css: &TestNode,
    ess: &TestNode,
    (object_type, id): (&str, &str),
    data: &[u8],
) -> f64 {
    let before = css_transport_bytes(css, net.transport, "received").await;
    let path = ess.obj(object_type, id);
    ess.api().create(&path, serde_json::json!({}), None).await;
    let response = ess.api().put_bytes(&format!("{path}/data"), data.to_vec()).await;
    assert_eq!(response.status, 204, "{}", response.text());
    wait_for_copy(css, &css.obj(object_type, id), data, &[css, ess]).await;
    css_transport_bytes(css, net.transport, "received").await - before
}

/// Waits until the object at `path` on `node` serves exactly `data`.
async fn wait_for_copy(node: &TestNode, path: &str, data: &[u8], nodes: &[&TestNode]) {
    let copy = format!("{path}/data");
    eventually(&format!("{path} with its data"), nodes, SYNC_DEADLINE, async || {
        let response = node.api().get(&copy).await;
        (response.status == 200 && response.body == data).then_some(())
    })
    .await;
}
