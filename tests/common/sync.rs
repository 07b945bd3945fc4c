//! Helpers of the synchronization tests: an ESS that syncs with a CSS over HTTP, and waiting
//! for a condition with a deadline (printing the nodes' logs when it does not come).

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

    fn transport_env(&self) -> Vec<(String, String)> {
        self.broker.as_ref().map(|b| b.env()).unwrap_or_default()
    }

    /// A CSS on this network with extra settings.
    pub fn css(&self, env: &[(&str, &str)]) -> TestNode {
        let mut options = NodeOptions::new(Role::Css);
        options.env.extend(self.transport_env());
        options
            .env
            .extend(env.iter().map(|(k, v)| (k.to_string(), v.to_string())));
        TestNode::start(options)
    }

    /// An ESS (`edge`/`node1` unless `env` says otherwise) of `css` on this network.
    pub fn ess(&self, css: &TestNode, env: &[(&str, &str)]) -> TestNode {
        match self.transport {
            Transport::Http => http_ess(css.port(), env),
            Transport::Mqtt => {
                let mut options = NodeOptions::new(Role::Ess);
                options.env.extend(self.transport_env());
                options.env.push(("RESEND_INTERVAL".into(), "1".into()));
                options
                    .env
                    .extend(env.iter().map(|(k, v)| (k.to_string(), v.to_string())));
                TestNode::start(options)
            }
        }
    }
}
