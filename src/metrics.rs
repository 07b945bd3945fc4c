//! The node's Prometheus metrics, served by `GET /metrics` in the Prometheus text format
//! (0.0.4). Two kinds:
//! - counted as things happen and kept for the life of the node: HTTP requests per route
//!   (the OpenAPI `operationId`) and status, their latency, and the data bytes of the
//!   node-to-node HTTP routes;
//! - read at each scrape from the store and the engine ([`Snapshot`]): objects and bytes
//!   stored, unacknowledged messages per destination, transfers in flight, registered edge
//!   nodes, the MQTT connection and its byte counts. Nothing is cached between scrapes, so a
//!   value is never stale and nothing needs updating on the write paths.
//!
//! Labels never carry object names or credentials: only route names, statuses and the
//! org/type/ID of destinations (at most [`MAX_DESTINATION_SERIES`] of them).

use crate::engine::BrokerHealth;
use crate::engine::{LinkCondition, LinkReason, LinkReport, LinkState, Node, NodeView, TransfersInFlight};
use crate::model::Role;
use crate::store::{ObjectTotals, UnacknowledgedCount};
use prometheus_client::encoding::{prometheus_text, EncodeLabelSet};
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::Histogram;
use prometheus_client::registry::Registry;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

/// `Content-Type` of the answer.
pub const CONTENT_TYPE: &str = prometheus_text::CONTENT_TYPE;

/// Prefix of every metric name.
const PREFIX: &str = "edge_sync";

/// Route label of requests no route takes: unknown paths cannot each make a series.
pub const UNKNOWN_ROUTE: &str = "unknown";

/// Destinations with their own series of unacknowledged messages: a CSS with more edge nodes
/// shows those with the most, which are the ones worth looking at, and the scrape stays small.
pub const MAX_DESTINATION_SERIES: usize = 1000;

/// Upper bounds of the request latency buckets, in seconds: API calls take milliseconds,
/// long polls and large downloads (timed to their first byte) up to a minute.
const LATENCY_BUCKETS: [f64; 12] = [0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 5.0, 60.0];

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct RequestLabels {
    route: &'static str,
    status: u16,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct RouteLabels {
    route: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct TransportLabels {
    transport: &'static str,
    direction: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct DirectionLabels {
    direction: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct StateLabels {
    state: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ReasonLabels {
    reason: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct NodeLabels {
    org: String,
    dest_type: String,
    dest_id: String,
    protocol: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct DestinationLabels {
    org: String,
    dest_type: String,
    dest_id: String,
}

fn latency_histogram() -> Histogram {
    Histogram::new(LATENCY_BUCKETS)
}

/// What is counted while the node runs; one per node, shared by every request.
pub struct Metrics {
    registry: Registry,
    requests: Family<RequestLabels, Counter>,
    latency: Family<RouteLabels, Histogram, fn() -> Histogram>,
    /// Data bytes of downloads served and uploads received on `/spi/v1`. Plain atomics: they
    /// are reported in one family with the MQTT counts, which are read at scrape time.
    http_sent: AtomicU64,
    http_received: AtomicU64,
}

impl Default for Metrics {
    fn default() -> Self {
        Self::new()
    }
}

impl Metrics {
    pub fn new() -> Self {
        let mut registry = Registry::with_prefix(PREFIX);
        let requests = Family::<RequestLabels, Counter>::default();
        registry.register(
            "http_requests",
            "HTTP requests answered, by route (OpenAPI operationId) and status",
            requests.clone(),
        );
        let latency = Family::<RouteLabels, Histogram, fn() -> Histogram>::new_with_constructor(latency_histogram);
        registry.register(
            "http_request_duration_seconds",
            "Time from receiving an HTTP request to sending the head of its answer, by route",
            latency.clone(),
        );
        Self {
            registry,
            requests,
            latency,
            http_sent: AtomicU64::new(0),
            http_received: AtomicU64::new(0),
        }
    }

    /// Counts an answered request. `route` is an `operationId` or [`UNKNOWN_ROUTE`].
    pub fn record_request(&self, route: &'static str, status: u16, elapsed: Duration) {
        self.requests.get_or_create(&RequestLabels { route, status }).inc();
        self.latency
            .get_or_create(&RouteLabels { route })
            .observe(elapsed.as_secs_f64());
    }

    /// Counts data bytes sent to an edge node over HTTP.
    pub fn count_http_sent(&self, bytes: u64) {
        self.http_sent.fetch_add(bytes, Ordering::Relaxed);
    }

    /// Counts data bytes received from an edge node over HTTP.
    pub fn count_http_received(&self, bytes: u64) {
        self.http_received.fetch_add(bytes, Ordering::Relaxed);
    }

    /// The whole exposition: the counters kept here and a fresh [`Snapshot`] of `node`.
    pub async fn render(&self, node: &Node) -> Result<String, std::fmt::Error> {
        let snapshot = Snapshot::take(node).await;
        self.encode(&snapshot)
    }

    /// The exposition of the kept counters and `snapshot`.
    pub fn encode(&self, snapshot: &Snapshot) -> Result<String, std::fmt::Error> {
        let mut text = String::new();
        prometheus_text::encode(&mut text, &self.registry)?;
        prometheus_text::encode(&mut text, &self.scrape_registry(snapshot))?;
        Ok(text)
    }

    /// The values read at scrape time, as a registry that lives for one scrape.
    fn scrape_registry(&self, snapshot: &Snapshot) -> Registry {
        let mut registry = Registry::with_prefix(PREFIX);
        let gauge = |value: u64| {
            let gauge = Gauge::<i64>::default();
            gauge.set(i64::try_from(value).unwrap_or(i64::MAX));
            gauge
        };

        registry.register(
            "leader",
            "1 while this instance is the leader of the instances sharing its store (always on a store of its own)",
            gauge(u64::from(snapshot.leader)),
        );
        registry.register(
            "store_up",
            "1 when the store answered this scrape's queries, 0 when one failed (their metrics are then missing)",
            gauge(u64::from(snapshot.store_ok)),
        );
        if let Some(totals) = snapshot.objects {
            registry.register("objects_stored", "Object records stored", gauge(totals.objects));
            registry.register(
                "objects_stored_bytes",
                "Data bytes of the stored objects whose data is held by this node",
                gauge(totals.data_bytes),
            );
        }
        if let Some(pending) = &snapshot.pending {
            let family = Family::<DestinationLabels, Gauge>::default();
            for entry in pending {
                let labels = DestinationLabels {
                    org: entry.org.clone(),
                    dest_type: entry.remote.dest_type.clone(),
                    dest_id: entry.remote.dest_id.clone(),
                };
                family
                    .get_or_create(&labels)
                    .set(i64::try_from(entry.count).unwrap_or(i64::MAX));
            }
            registry.register(
                "notifications_pending",
                format!(
                    "Messages to a node that it has not acknowledged yet (queued or sent), per destination; \
                     the {MAX_DESTINATION_SERIES} destinations with the most"
                ),
                family,
            );
        }
        if let Some(registered) = snapshot.registered_ess {
            registry.register(
                "registered_ess",
                "Edge nodes registered with this CSS",
                gauge(registered),
            );
        }

        let transfers = Family::<DirectionLabels, Gauge>::default();
        for (direction, count) in [
            ("sending", snapshot.transfers.sending),
            ("receiving", snapshot.transfers.receiving),
        ] {
            transfers
                .get_or_create(&DirectionLabels { direction })
                .set(i64::try_from(count).unwrap_or(i64::MAX));
        }
        registry.register(
            "transfers_in_flight",
            "Object data streams being sent (downloads served) or received (uploads and downloads being written)",
            transfers,
        );

        let bytes = Family::<TransportLabels, Counter>::default();
        let count = |transport, direction, value: u64| {
            bytes
                .get_or_create(&TransportLabels { transport, direction })
                .inc_by(value);
        };
        if snapshot.serves_spi {
            count("http", "sent", self.http_sent.load(Ordering::Relaxed));
            count("http", "received", self.http_received.load(Ordering::Relaxed));
        }
        if let Some(broker) = &snapshot.broker {
            count("mqtt", "sent", broker.sent_bytes);
            count("mqtt", "received", broker.received_bytes);
        }
        registry.register(
            "transport_bytes",
            "Bytes exchanged with other nodes: object data on the HTTP node-to-node routes, everything on the MQTT connection",
            bytes,
        );
        if let Some(link) = &snapshot.css_link {
            register_css_link(&mut registry, link);
        }
        if let Some(nodes) = &snapshot.node_links {
            register_node_links(&mut registry, nodes);
        }
        if let Some(broker) = &snapshot.broker {
            registry.register(
                "mqtt_broker_connected",
                "1 while the MQTT broker connection is up",
                gauge(u64::from(broker.connected)),
            );
        }
        registry
    }
}

/// An ESS's link to its CSS: its state, its last success and its failures per reason.
fn register_css_link(registry: &mut Registry, link: &LinkReport) {
    let states = Family::<StateLabels, Gauge>::default();
    for state in LinkCondition::ALL {
        states
            .get_or_create(&StateLabels { state: state.as_str() })
            .set(i64::from(link.condition == state));
    }
    registry.register(
        "css_link_state",
        "1 for the state of this ESS's link to its CSS (connected, retrying or offline), 0 for the others",
        states,
    );
    let since = Gauge::<i64>::default();
    since.set(link.since);
    registry.register(
        "css_link_state_since_timestamp_seconds",
        "When the link to the CSS entered its state (Unix time)",
        since,
    );
    if let Some(at) = link.last_success {
        let success = Gauge::<i64>::default();
        success.set(at);
        registry.register(
            "css_link_last_success_timestamp_seconds",
            "When an exchange with the CSS last succeeded (Unix time)",
            success,
        );
    }
    let failures = Family::<ReasonLabels, Counter>::default();
    for (reason, count) in LinkReason::ALL.iter().zip(link.failures) {
        failures
            .get_or_create(&ReasonLabels {
                reason: reason.as_str(),
            })
            .inc_by(count);
    }
    registry.register(
        "css_link_failures",
        "Failed exchanges with the CSS since the start, per reason",
        failures,
    );
}

/// A CSS's nodes: how many are online, late and offline, and when the least recently heard
/// ones (at most [`MAX_DESTINATION_SERIES`]) were last heard from.
fn register_node_links(registry: &mut Registry, nodes: &[NodeView]) {
    let states = Family::<StateLabels, Gauge>::default();
    for state in [LinkState::Online, LinkState::Late, LinkState::Offline] {
        let count = nodes.iter().filter(|n| n.link == state).count();
        states
            .get_or_create(&StateLabels { state: state.as_str() })
            .set(i64::try_from(count).unwrap_or(i64::MAX));
    }
    registry.register(
        "nodes_by_link",
        "Registered edge nodes per link state: online (heard within two poll cycles), late (within two ping intervals), offline",
        states,
    );
    let mut silent: Vec<&NodeView> = nodes.iter().collect();
    silent.sort_by_key(|n| n.last_heard);
    let last_heard = Family::<NodeLabels, Gauge>::default();
    for node in silent.into_iter().take(MAX_DESTINATION_SERIES) {
        let d = &node.destination;
        last_heard
            .get_or_create(&NodeLabels {
                org: d.org.clone(),
                dest_type: d.dest_type.clone(),
                dest_id: d.dest_id.clone(),
                protocol: d.communication.clone(),
            })
            .set(node.last_heard);
    }
    registry.register(
        "node_last_heard_timestamp_seconds",
        format!(
            "When an edge node was last heard from (Unix time); the {MAX_DESTINATION_SERIES} heard from least recently"
        ),
        last_heard,
    );
}

/// The values of one scrape. Store values are `None` when their query failed.
#[derive(Debug, Clone, Default)]
pub struct Snapshot {
    pub store_ok: bool,
    pub objects: Option<ObjectTotals>,
    pub pending: Option<Vec<UnacknowledgedCount>>,
    /// CSS only.
    pub registered_ess: Option<u64>,
    pub transfers: TransfersInFlight,
    /// True on a CSS serving `/spi/v1`: the HTTP byte counts mean something.
    pub serves_spi: bool,
    /// When the node talks MQTT.
    pub broker: Option<BrokerHealth>,
    /// This node does the cluster-wide periodic work (always, alone on its store).
    pub leader: bool,
    /// ESS: its link to the CSS.
    pub css_link: Option<LinkReport>,
    /// CSS: every registered node's last contact and link (`None` when the query failed).
    pub node_links: Option<Vec<NodeView>>,
}

impl Snapshot {
    /// Reads everything from `node`; a failing store query leaves its values out and clears
    /// `store_ok` (it is logged), so the rest is still reported when the store is in trouble.
    pub async fn take(node: &Node) -> Self {
        let logged = |what: &str, e: &dyn std::fmt::Display| {
            tracing::warn!(error = %e, "metrics: reading {what} from the store failed");
        };
        let objects = node
            .object_totals()
            .await
            .inspect_err(|e| logged("object totals", e))
            .ok();
        let pending = node
            .unacknowledged_counts(MAX_DESTINATION_SERIES)
            .await
            .inspect_err(|e| logged("pending notifications", e))
            .ok();
        // CSS: every registered node, which also counts them (one read per scrape).
        let node_links = match node.role() {
            Role::Css => Some(node.node_links().await.inspect_err(|e| logged("node links", e)).ok()),
            Role::Ess => None,
        };
        let registered_ess = node_links
            .as_ref()
            .and_then(|links| links.as_ref())
            .map(|links| links.len() as u64);
        Self {
            store_ok: objects.is_some() && pending.is_some() && node_links.as_ref().is_none_or(|n| n.is_some()),
            objects,
            pending,
            registered_ess,
            transfers: node.transfers_in_flight(),
            serves_spi: node.settings().serves_spi,
            broker: node.broker().map(|b| b.health()),
            leader: node.is_leader(),
            css_link: node.css_link().map(|link| link.report()),
            node_links: node_links.flatten(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::sync::Remote;

    fn snapshot() -> Snapshot {
        Snapshot {
            store_ok: true,
            objects: Some(ObjectTotals {
                objects: 3,
                data_bytes: 1234,
            }),
            pending: Some(vec![UnacknowledgedCount {
                org: "org".into(),
                remote: Remote {
                    dest_type: "edge".into(),
                    dest_id: "node1".into(),
                },
                count: 2,
            }]),
            registered_ess: Some(1),
            transfers: TransfersInFlight {
                sending: 1,
                receiving: 0,
            },
            serves_spi: true,
            broker: None,
            leader: true,
            css_link: None,
            node_links: Some(vec![
                node_view("late1", 100, LinkState::Late),
                node_view("up", 900, LinkState::Online),
                node_view("gone", 50, LinkState::Offline),
            ]),
        }
    }

    fn node_view(id: &str, last_heard: i64, link: LinkState) -> NodeView {
        NodeView {
            destination: crate::model::Destination {
                org: "org".into(),
                dest_type: "edge".into(),
                dest_id: id.into(),
                communication: "http".into(),
                code_version: "1.0".into(),
            },
            last_heard,
            link,
            pending: 0,
        }
    }

    #[test]
    fn an_ess_reports_its_link_to_the_css() {
        let link = crate::engine::LinkMonitor::new(Duration::from_secs(30));
        link.succeeded();
        link.failed(LinkReason::Tls, "unknown issuer");
        link.failed(LinkReason::Tls, "unknown issuer");
        let snapshot = Snapshot {
            css_link: Some(link.report()),
            node_links: None,
            ..snapshot()
        };
        let text = Metrics::new().encode(&snapshot).expect("encoded");
        for line in [
            "edge_sync_css_link_state{state=\"retrying\"} 1",
            "edge_sync_css_link_state{state=\"connected\"} 0",
            "edge_sync_css_link_failures_total{reason=\"tls\"} 2",
            "edge_sync_css_link_failures_total{reason=\"dns\"} 0",
        ] {
            assert!(text.lines().any(|l| l == line), "no line {line:?} in\n{text}");
        }
        assert!(
            text.contains("edge_sync_css_link_last_success_timestamp_seconds "),
            "{text}"
        );
        assert!(!text.contains("nodes_by_link"), "{text}");
    }

    #[test]
    fn the_exposition_has_every_family_with_its_labels() {
        let metrics = Metrics::new();
        metrics.record_request("getObject", 200, Duration::from_millis(3));
        metrics.record_request("getObject", 200, Duration::from_millis(30));
        metrics.record_request(UNKNOWN_ROUTE, 404, Duration::from_millis(1));
        metrics.count_http_sent(11);
        let text = metrics.encode(&snapshot()).expect("encoded");
        for line in [
            "# TYPE edge_sync_http_requests_total counter",
            "edge_sync_http_requests_total{route=\"getObject\",status=\"200\"} 2",
            "edge_sync_http_requests_total{route=\"unknown\",status=\"404\"} 1",
            "# TYPE edge_sync_http_request_duration_seconds histogram",
            "edge_sync_http_request_duration_seconds_count{route=\"getObject\"} 2",
            "edge_sync_http_request_duration_seconds_bucket{route=\"getObject\",le=\"0.005\"} 1",
            "edge_sync_store_up 1",
            "edge_sync_leader 1",
            "edge_sync_objects_stored 3",
            "edge_sync_objects_stored_bytes 1234",
            "edge_sync_notifications_pending{org=\"org\",dest_type=\"edge\",dest_id=\"node1\"} 2",
            "edge_sync_registered_ess 1",
            "edge_sync_transfers_in_flight{direction=\"sending\"} 1",
            "edge_sync_transport_bytes_total{transport=\"http\",direction=\"sent\"} 11",
            "edge_sync_nodes_by_link{state=\"online\"} 1",
            "edge_sync_nodes_by_link{state=\"late\"} 1",
            "edge_sync_nodes_by_link{state=\"offline\"} 1",
            "edge_sync_node_last_heard_timestamp_seconds{org=\"org\",dest_type=\"edge\",dest_id=\"gone\",protocol=\"http\"} 50",
        ] {
            assert!(text.lines().any(|l| l == line), "no line {line:?} in\n{text}");
        }
        assert!(!text.contains("mqtt"), "no MQTT series without a broker:\n{text}");
        assert!(!text.contains("# EOF"), "Prometheus text, not OpenMetrics");
    }

    #[test]
    fn failed_store_queries_leave_their_metrics_out() {
        let snapshot = Snapshot {
            broker: Some(BrokerHealth {
                connected: true,
                subscribe_failures: 0,
                publish_failures: 0,
                disconnected_for_ms: 0,
                since_subscribe_failure: None,
                since_publish_failure: None,
                sent_bytes: 5,
                received_bytes: 7,
            }),
            ..Snapshot::default()
        };
        let text = Metrics::new().encode(&snapshot).expect("encoded");
        assert!(text.contains("edge_sync_store_up 0\n"), "{text}");
        assert!(!text.contains("objects_stored"), "{text}");
        assert!(!text.contains("registered_ess"), "{text}");
        assert!(text.contains("edge_sync_mqtt_broker_connected 1\n"), "{text}");
        assert!(
            text.contains("edge_sync_transport_bytes_total{transport=\"mqtt\",direction=\"received\"} 7\n"),
            "{text}"
        );
    }
}
