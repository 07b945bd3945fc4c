//! A fleet of edge nodes on one CSS over MQTT, simulated here: each node has its own broker
//! connection and speaks the protocol through the service's codec.
//! - A version published to all of them must reach every node while the CSS's store answers
//!   slowly (a database across a network): taking a node's queued messages is a store write,
//!   and the CSS must not take them one node after the other.
//! - When the whole fleet asks for its chunks at once, the requests waiting to be served
//!   hold no data file open: the files open are bounded by the ranged-download slots,
//!   not by the number of nodes asking.

mod common;

use common::faults::{Fault, FaultProxy};
use common::sync::{eventually, Net, Transport};
use common::{TestNode, ORG};
use edge_sync_service::model::{Destination, MetaData, ObjectKey};
use edge_sync_service::transport::mqtt::codec::{self, Control, Message};
use rumqttc::{AsyncClient, Event, MqttOptions, Packet, QoS};
use serde_json::json;
use std::time::{Duration, Instant};
use tokio::sync::mpsc;

/// Simulated edge nodes.
const NODES: usize = 120;
/// Added to each direction of every exchange between the CSS and its database.
const DB_LATENCY: Duration = Duration::from_millis(5);
/// Longest the fleet may take to hear of a new version: well under what taking the nodes'
/// messages one node after the other costs at this latency (several round trips of 10 ms
/// per node, over 5 s for the fleet).
const NOTIFIED_WITHIN: Duration = Duration::from_secs(3);
/// Longest a registration or a set-up step may take.
const SETUP: Duration = Duration::from_secs(30);

/// A simulated edge node: its broker connection and the messages it got, decoded.
struct EdgeNode {
    id: String,
    client: AsyncClient,
    messages: mpsc::UnboundedReceiver<Message>,
    connection: tokio::task::JoinHandle<()>,
}

impl EdgeNode {
    /// Connects to the broker on `port`, subscribes to the node's topic and registers as a
    /// new node (`registerNew` until `regack`, as the ESS does).
    async fn register(port: u16, id: String) -> EdgeNode {
        let mut options = MqttOptions::new(format!("test-{id}"), "127.0.0.1", port);
        // A chunk of up to the CSS's default 5 MiB.
        options.set_max_packet_size(8 << 20, 8 << 20);
        let (client, mut events) = AsyncClient::new(options, 8);
        // Subscribed before anything is published, so that no answer comes before it.
        loop {
            let event = events.poll().await.expect("connect to the broker");
            if let Event::Incoming(Packet::ConnAck(_)) = event {
                break;
            }
        }
        client
            .subscribe(codec::to_ess_topic("edge", &id), QoS::AtMostOnce)
            .await
            .expect("subscribe");
        let (sender, messages) = mpsc::unbounded_channel();
        let connection = tokio::spawn(async move {
            loop {
                match events.poll().await {
                    Ok(Event::Incoming(Packet::Publish(publish))) => {
                        let message = codec::decode(&publish.payload, usize::MAX).expect("a message the codec reads");
                        if sender.send(message).is_err() {
                            return;
                        }
                    }
                    Ok(_) => {}
                    Err(e) => panic!("the broker connection of a node ended: {e}"),
                }
            }
        });
        let mut node = EdgeNode {
            id,
            client,
            messages,
            connection,
        };
        let me = Destination {
            org: ORG.into(),
            dest_type: "edge".into(),
            dest_id: node.id.clone(),
            communication: "mqtt".into(),
            code_version: "1.0".into(),
        };
        node.publish(&Control::from_node("registerNew", me, false)).await;
        node.next("regack", |m| matches!(m, Message::Control(c) if c.command == "regack"))
            .await;
        node
    }

    /// Waits for the `update` of object `id`; returns its metadata.
    async fn update_of(&mut self, id: &str) -> MetaData {
        let update = self
            .next(
                "the update",
                |m| matches!(m, Message::Control(c) if c.command == "update" && c.meta.object_id == id),
            )
            .await;
        match update {
            Message::Control(control) => control.meta,
            Message::Data(_) => unreachable!("picked a control message"),
        }
    }

    async fn publish(&self, message: &Control) {
        self.client
            .publish_bytes(
                codec::from_ess_topic("edge", &self.id, false),
                QoS::AtMostOnce,
                false,
                codec::encode_control(message),
            )
            .await
            .expect("publish");
    }

    /// Waits for the first message `wanted` picks; other messages are skipped.
    async fn next(&mut self, what: &str, wanted: impl Fn(&Message) -> bool) -> Message {
        let deadline = tokio::time::Instant::now() + SETUP;
        loop {
            match tokio::time::timeout_at(deadline, self.messages.recv()).await {
                Ok(Some(message)) if wanted(&message) => return message,
                Ok(Some(_)) => {}
                Ok(None) => panic!("node {}: the connection ended before {what}", self.id),
                Err(_) => panic!("node {}: no {what} within {SETUP:?}", self.id),
            }
        }
    }
}

impl Drop for EdgeNode {
    fn drop(&mut self) {
        self.connection.abort();
    }
}

/// A CSS on `net` (started with `css`) once its broker connection is up, and a fleet of
/// [`NODES`] registered nodes.
async fn fleet(net: &mut Net, css: &TestNode) -> Vec<EdgeNode> {
    eventually("the CSS's broker connection", &[css], SETUP, async || {
        let health = css.api().get("/api/v1/health").await.json();
        (health["mqttHealth"]["disconnectedFromMQTTBroker"] == json!(false)).then_some(())
    })
    .await;
    let port = net.broker().port();
    futures_util::future::join_all((0..NODES).map(|i| EdgeNode::register(port, format!("n{i}")))).await
}

/// Open file descriptors of a process.
fn open_files(pid: u32) -> usize {
    std::fs::read_dir(format!("/proc/{pid}/fd")).map_or(0, |entries| entries.count())
}

/// The port of a `postgres://user@host:port/db` URL.
fn port_of(url: &str) -> u16 {
    let after_host = url.split('@').nth(1).expect("a host in the URL");
    let port = after_host.split(['/', '?']).next().and_then(|h| h.split(':').nth(1));
    port.and_then(|p| p.parse().ok()).expect("a port in the URL")
}

// Several threads: the database proxy relays while the test waits for the CSS to start.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_version_published_to_many_mqtt_nodes_reaches_them_together() {
    let database = common::postgres::shared().create_database().await;
    let db_port = port_of(&database);
    let proxy = FaultProxy::start(db_port).await;
    let through_proxy = database.replacen(&format!(":{db_port}/"), &format!(":{}/", proxy.port()), 1);
    let mut net = Net::new(Transport::Mqtt);
    let mut options = net.css_options(&[("POSTGRES_URL", &through_proxy)]);
    options.storage = "postgres";
    let css = TestNode::start(options);
    let mut nodes = fleet(&mut net, &css).await;

    proxy.set(Fault::Latency(DB_LATENCY));
    css.api()
        .create(&css.obj("fleet", "v1"), json!({"noData": true}), None)
        .await;
    let published = Instant::now();
    for node in &mut nodes {
        node.update_of("v1").await;
    }
    let took = published.elapsed();
    assert!(
        took < NOTIFIED_WITHIN,
        "{NODES} nodes heard of the new version {took:?} after it was published, with {DB_LATENCY:?} \
         each way to the database\n{}",
        css.log()
    );
}

#[tokio::test]
async fn chunk_requests_of_a_whole_fleet_wait_without_open_files() {
    let mut net = Net::new(Transport::Mqtt);
    let css = net.css(&[("HTTPCSSObjDownloadConcurrencyMultiplier", "1")]);
    let mut nodes = fleet(&mut net, &css).await;
    let data = common::pattern(1 << 20, 7);
    css.api().create(&css.obj("fleet", "big"), json!({}), Some(&data)).await;
    let mut requests = Vec::with_capacity(NODES);
    for node in &mut nodes {
        let meta = node.update_of("big").await;
        let key = ObjectKey::new(ORG, &meta.object_type, &meta.object_id);
        let me = Destination {
            org: ORG.into(),
            dest_type: "edge".into(),
            dest_id: node.id.clone(),
            communication: "mqtt".into(),
            code_version: "1.0".into(),
        };
        requests.push(Control::about(
            "getdata",
            codec::node_meta(&me, &key, meta.instance_id, meta.data_id, false),
        ));
    }

    let before = open_files(css.pid());
    let sampling = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(true));
    let sampler = {
        let (sampling, pid) = (sampling.clone(), css.pid());
        tokio::spawn(async move {
            let mut most = 0;
            while sampling.load(std::sync::atomic::Ordering::Relaxed) {
                most = most.max(open_files(pid));
                tokio::time::sleep(Duration::from_millis(2)).await;
            }
            most
        })
    };
    futures_util::future::join_all(nodes.iter().zip(&requests).map(|(node, request)| node.publish(request))).await;
    for node in &mut nodes {
        let chunk = node
            .next(
                "the chunk",
                |m| matches!(m, Message::Data(chunk) if chunk.object_id == "big"),
            )
            .await;
        let Message::Data(chunk) = chunk else {
            unreachable!("picked a data message")
        };
        assert_eq!((chunk.offset, &chunk.data[..]), (0, &data[..]), "node {}", node.id);
    }
    sampling.store(false, std::sync::atomic::Ordering::Relaxed);
    let most = sampler.await.expect("sampler");
    // A ranged-download slot per CPU, each with its data file; some room for the store.
    let cpus = std::thread::available_parallelism().map_or(1, |n| n.get());
    assert!(
        most <= before + cpus + 8,
        "{NODES} chunk requests at once: up to {most} files open, {before} before"
    );
}
