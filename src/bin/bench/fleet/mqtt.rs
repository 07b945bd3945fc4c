//! Mode `mqtt`: a CSS serving a fleet of simulated edge nodes over one mosquitto broker,
//! each node with its own connection: how long the fleet takes to register, what each
//! registered node costs the CSS and the broker, then a 1 MiB object to every node: how
//! long until every node's `received` was acknowledged, the CSS's and the broker's peak
//! memory and CPU, whether the CSS lists every node as delivered, and what was lost and
//! sent again on the way.

use super::mqtt_sim::MqttFleet;
use super::sim::{self, FLEET_TYPE};
use super::{mb, verdict, Outcome};
use crate::fanout::{self, quantile_ms};
use crate::mqtt::Broker;
use crate::server::cpu_seconds;
use crate::server::{self, Server, TempDir};
use crate::transfer::RssSampler;
use rumqttc::{AsyncClient, Event, MqttOptions, Packet, QoS};
use serde_json::json;
use std::fmt::Write as _;
use std::path::Path;
use std::time::{Duration, Instant};
use tokio::sync::watch;

/// Size of the object.
const MIB: u64 = 1 << 20;
/// The CSS's `MaxDataChunkSize` here: each node fetches the object in four `getdata` round
/// trips, as objects larger than the default 5 MiB chunk travel.
const CHUNK: u64 = 256 << 10;
/// A delivery during which no node completed for this long has failed: longer than a
/// node's wait for a chunk and its repetition.
const STALL: Duration = Duration::from_secs(90);
/// The object's ID.
const OBJECT: &str = "one-mib-mqtt";

/// Memory of the CSS and the broker, kB.
#[derive(Clone, Copy)]
struct Rss {
    css: u64,
    broker: u64,
}

impl Rss {
    fn of(css: u32, broker: u32) -> Rss {
        Rss {
            css: server::rss_kb(css).unwrap_or(0),
            broker: server::rss_kb(broker).unwrap_or(0),
        }
    }
}

/// Mode `mqtt` with `nodes` simulated nodes.
pub async fn run(binary: &Path, nodes: usize) -> Result<Outcome, String> {
    // This process holds one connection per node, and so does the broker, which inherits
    // its limit.
    sim::make_room(nodes)?;
    let dir = TempDir::create()?;
    let broker = Broker::start(dir.path())?;
    let mut env = broker.transport_env();
    env.push(("MAX_DATA_CHUNK_SIZE".into(), CHUNK.to_string()));
    let css_dir = dir.path().join("css");
    std::fs::create_dir_all(&css_dir).map_err(|e| format!("cannot create {}: {e}", css_dir.display()))?;
    let mut css = Server::start_with(binary, &css_dir, &env)?;
    let admin = crate::http_client()?;
    let base = format!("http://127.0.0.1:{}", css.port);
    css.wait_healthy(&admin, &base, Duration::from_secs(30)).await?;
    let outcome = measure(&admin, &base, css.pid(), &broker, nodes).await;
    css.stop();
    outcome.map_err(|e| format!("{e}{}", css.log_tail()))
}

async fn measure(
    admin: &reqwest::Client,
    base: &str,
    css_pid: u32,
    broker: &Broker,
    nodes: usize,
) -> Result<Outcome, String> {
    wait_for_broker(admin, base).await?;
    let mut sys = BrokerSys::start(broker.port);
    let idle = Rss::of(css_pid, broker.pid());
    crate::progress(&format!(
        "fleet: connecting and registering {nodes} simulated MQTT nodes"
    ));
    let (mut fleet, registration) = MqttFleet::start(broker.port, crate::ORG, nodes).await?;
    let registered = Rss::of(css_pid, broker.pid());
    let [registration_repeated, ..] = fleet.counters.snapshot();

    crate::progress(&format!("fleet: a 1 MiB object to {nodes} nodes over MQTT"));
    let data = sim::content(MIB);
    fleet.deliveries.expect(OBJECT, data.clone());
    let dropped_before = sys.settled().await;
    let counts_before = fleet.counters.snapshot();
    let (css_sampler, broker_sampler) = (RssSampler::start(css_pid), RssSampler::start(broker.pid()));
    let cpu_before = (server::cpu_ticks(css_pid), server::cpu_ticks(broker.pid()));
    let publishing = Instant::now();
    fanout::put_object(admin, base, FLEET_TYPE, OBJECT, json!({})).await?;
    fanout::put_data(admin, base, FLEET_TYPE, OBJECT, data).await?;
    let published = Instant::now();
    let arrivals = fleet.deliveries.all_arrivals(OBJECT, STALL).await;
    let total = published.elapsed();
    let css_cpu = cpu_seconds(cpu_before.0, server::cpu_ticks(css_pid));
    let broker_cpu = cpu_seconds(cpu_before.1, server::cpu_ticks(broker.pid()));
    let ((_, css_peak), (_, broker_peak)) = (css_sampler.finish(), broker_sampler.finish());
    let arrivals = arrivals?;
    let (delivered, _) = fanout::delivered_count(admin, base, FLEET_TYPE, OBJECT).await?;
    let dropped = sys
        .settled()
        .await
        .zip(dropped_before)
        .map(|(after, before)| after - before);
    let counts: Vec<u64> = fleet
        .counters
        .snapshot()
        .iter()
        .zip(counts_before)
        .map(|(after, before)| after - before)
        .collect();
    let [repeated, unasked, disconnects, undecodable] = counts[..] else {
        return Err("the counters changed shape".into());
    };
    fleet.stop();

    let notified = sim::delays(&arrivals, published, |a| a.polled);
    let done = sim::delays(&arrivals, published, |a| a.done);
    let publish_ms = (published - publishing).as_secs_f64() * 1e3;
    let per_node_kb = |before: u64, after: u64| after.saturating_sub(before) as f64 * 1.024 / nodes as f64;
    let dropped_text = dropped.map_or("an unknown number of".to_string(), |d| d.to_string());
    let failed = delivered != nodes || undecodable > 0;
    let mut table = format!(
        "fleet: mqtt  ({nodes} simulated nodes, each its own connection to one mosquitto; CSS chunk size {} KiB; {} CPUs)\n\
         registration of all nodes: {:.2} s (connect, `register`, `registerAsNew`, `registerNew`, `regack`; {registration_repeated} repeated)\n\
         memory, before the nodes -> all registered: CSS {:.1} -> {:.1} MB ({:.1} kB per node), \
         mosquitto {:.1} -> {:.1} MB ({:.1} kB per node)\n\n\
         object   PUT ms  notified s   p50 s   p99 s   all s  CSS peak MB  CSS CPU s  broker peak MB  broker CPU s  delivered\n",
        CHUNK >> 10,
        std::thread::available_parallelism().map(|n| n.get()).unwrap_or(1),
        registration.as_secs_f64(),
        mb(idle.css),
        mb(registered.css),
        per_node_kb(idle.css, registered.css),
        mb(idle.broker),
        mb(registered.broker),
        per_node_kb(idle.broker, registered.broker),
    );
    let _ = writeln!(
        table,
        "{:<8} {:>6.0} {:>11.2} {:>7.2} {:>7.2} {:>7.2} {:>12.1} {:>10.2} {:>15.1} {:>13.2} {:>10}",
        "1 MiB",
        publish_ms,
        quantile_ms(&notified, 1.0) / 1e3,
        quantile_ms(&done, 0.5) / 1e3,
        quantile_ms(&done, 0.99) / 1e3,
        total.as_secs_f64(),
        mb(css_peak),
        css_cpu,
        mb(broker_peak),
        broker_cpu,
        delivered,
    );
    let _ = writeln!(
        table,
        "\nlost and sent again during the delivery: the broker dropped {dropped_text} messages; the nodes repeated \
         {repeated} requests, got {unasked} messages unasked, lost {disconnects} broker connections; \
         {undecodable} payloads undecodable\n\
         PUT ms: object and data PUTs until answered; then from the answer: notified = the last node's `update` came, \
         p50/p99/all = nodes' `received` acknowledged (`ackreceived`); every byte compared with the published ones; \
         delivered = destinations the CSS lists as delivered\n\
         targets: every node delivered {}, no payload undecodable {}",
        verdict(delivered == nodes),
        verdict(undecodable == 0),
    );
    let json = json!({
        "mode": "mqtt",
        "nodes": nodes,
        "chunk_bytes": CHUNK,
        "registration_s": registration.as_secs_f64(),
        "registration_repeated": registration_repeated,
        "css_rss_mb": {"idle": mb(idle.css), "registered": mb(registered.css), "peak": mb(css_peak)},
        "broker_rss_mb": {"idle": mb(idle.broker), "registered": mb(registered.broker), "peak": mb(broker_peak)},
        "publish_ms": publish_ms,
        "all_notified_s": quantile_ms(&notified, 1.0) / 1e3,
        "p50_s": quantile_ms(&done, 0.5) / 1e3,
        "p99_s": quantile_ms(&done, 0.99) / 1e3,
        "total_s": total.as_secs_f64(),
        "css_cpu_s": css_cpu,
        "broker_cpu_s": broker_cpu,
        "delivered": delivered,
        "broker_dropped": dropped,
        "repeated": repeated,
        "unasked": unasked,
        "disconnects": disconnects,
        "undecodable": undecodable,
    });
    Ok(Outcome { table, json, failed })
}

/// Waits until the CSS reports its broker connection up: nodes registering before the CSS
/// subscribed would have to repeat themselves.
async fn wait_for_broker(admin: &reqwest::Client, base: &str) -> Result<(), String> {
    let deadline = Instant::now() + Duration::from_secs(30);
    let url = format!("{base}/api/v1/health");
    loop {
        let health = fanout::get_json(admin, &url).await?.unwrap_or_default();
        if health["mqttHealth"]["disconnectedFromMQTTBroker"] == json!(false) {
            return Ok(());
        }
        if Instant::now() > deadline {
            return Err(format!("the CSS did not connect to the broker: {health}"));
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// The broker's own counters (`$SYS`, published every second): how many messages it
/// dropped (`publish/messages/dropped`: a client's queue was full), and its uptime, which
/// changes at every publication.
struct BrokerSys {
    /// Publications of the uptime seen, and the last count of dropped messages.
    latest: watch::Receiver<(u64, Option<u64>)>,
    task: tokio::task::JoinHandle<()>,
}

const UPTIME: &str = "$SYS/broker/uptime";
const DROPPED: &str = "$SYS/broker/publish/messages/dropped";

impl BrokerSys {
    fn start(port: u16) -> BrokerSys {
        let (sender, latest) = watch::channel((0, None));
        let (client, mut events) = AsyncClient::new(MqttOptions::new("bench-sys", "127.0.0.1", port), 8);
        let task = tokio::spawn(async move {
            loop {
                match events.poll().await {
                    Ok(Event::Incoming(Packet::ConnAck(_))) => {
                        for topic in [UPTIME, DROPPED] {
                            let _ = client.try_subscribe(topic, QoS::AtMostOnce);
                        }
                    }
                    Ok(Event::Incoming(Packet::Publish(publish))) => {
                        let value = String::from_utf8_lossy(&publish.payload)
                            .split_whitespace()
                            .next()
                            .and_then(|n| n.parse::<u64>().ok());
                        sender.send_modify(|(uptimes, dropped)| match publish.topic.as_str() {
                            UPTIME => *uptimes += 1,
                            _ => *dropped = value.or(*dropped),
                        });
                    }
                    Ok(_) => {}
                    Err(_) => tokio::time::sleep(Duration::from_millis(200)).await,
                }
            }
        });
        BrokerSys { latest, task }
    }

    /// The count of dropped messages once the broker published its counters twice more,
    /// so that they include everything until now; `None` if it did not (within 5 s) or
    /// never told that count.
    async fn settled(&mut self) -> Option<u64> {
        let seen = self.latest.borrow().0;
        let caught_up = self.latest.wait_for(|(uptimes, _)| *uptimes >= seen + 2);
        tokio::time::timeout(Duration::from_secs(5), caught_up)
            .await
            .ok()?
            .ok()?
            .1
    }
}

impl Drop for BrokerSys {
    fn drop(&mut self) {
        self.task.abort();
    }
}
