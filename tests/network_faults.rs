//! Network faults between the nodes, on both transports, with real processes and a real
//! mosquitto on loopback. A fault-injecting proxy (`common::faults`) sits between the ESS and
//! the CSS (HTTP), or between both nodes and the broker (MQTT, where data chunks travel as
//! broker messages too). Each trial publishes objects of several chunks for the ESS, applies
//! one fault for a while, heals it, and checks that delivery completes soon after the heal,
//! that the ESS's application sees each object once with its data intact (SHA-256), that
//! neither node answered a 5xx, and, during a blackhole, that neither node spins. A last
//! trial restarts the broker, which keeps nothing (no persistence, mosquitto's default),
//! while objects wait for an ESS that is down.
//!
//! The blackhole lasts `FAULT_BLACKHOLE_SECS` seconds: 8 by default, to keep the suite fast;
//! `scripts/faults.sh` runs the 30 s of the original issue.

mod common;

use common::app::ReceivingApp;
use common::faults::{Ending, Fault, FaultProxy};
use common::metrics::parse;
use common::sync::{eventually, wait_for, wait_registered, Net, Transport, SYNC_DEADLINE};
use common::{pattern, TestNode, SYNC_ADMIN};
use serde_json::json;
use sha2::{Digest, Sha256};
use std::time::{Duration, Instant};

/// Data chunk size of both nodes: small, so that objects span several chunks.
const CHUNK: usize = 64 * 1024;
/// Five and a half chunks: the last chunk is a partial one.
const OBJECT_SIZE: usize = 5 * CHUNK + CHUNK / 2;
/// Objects published in each trial.
const OBJECTS: usize = 3;
/// `HTTP_POLLING_INTERVAL` of the ESS (`Net`'s setting). Over MQTT nothing polls: the CSS
/// pushes, and what is lost is asked for again every `RESEND_INTERVAL` (1 s in `Net`), so
/// the HTTP bound holds there too.
const POLLING_INTERVAL: Duration = Duration::from_secs(2);
/// Room beyond two polling intervals for what follows the first poll after the heal: the
/// downloads of the objects' chunks, the application's own polling (every 100 ms), and
/// starting processes competing for two cores with the other trials.
const ALLOWANCE: Duration = Duration::from_secs(2);
/// How long a message lost with a cut connection may go unnoticed. Over HTTP nothing is
/// lost unnoticed: a cut exchange fails at once and the next poll hands the notification
/// out again. Over MQTT messages go with QoS 0: a node that loses its broker session sends
/// again what is unacknowledged as it reconnects, and a CSS serves again the chunks it sent
/// just before its session ended, but a `getdata` lost on its way to the CSS is noticed by
/// the ESS only when its wait for the chunk ends, twice its answer time of max(5 s,
/// `ResendInterval`).
fn unnoticed_loss(transport: Transport) -> Duration {
    match transport {
        Transport::Http => Duration::ZERO,
        Transport::Mqtt => Duration::from_secs(10),
    }
}
/// How long latency and the bandwidth limit last.
const FAULT_TIME: Duration = Duration::from_secs(4);
/// How long cuts and resets go on: long enough for the ESS's retries of a download to fail
/// several times over (2, 4 and 8 s apart with a doubling backoff), so that the trial sees
/// when the next attempt comes after the heal.
const CUT_TIME: Duration = Duration::from_secs(16);
/// A connection carries half a chunk before a cut: each one is cut in the middle of the
/// first data chunk it carries, so that no object can arrive before the heal.
const CUT_AFTER: u64 = (CHUNK / 2) as u64;
/// Latency of each direction in the latency trial.
const LATENCY: Duration = Duration::from_secs(2);
/// Bandwidth of each direction of each connection in the bandwidth trial.
const BANDWIDTH: u64 = 64 * 1024;
/// Share of one core a node may use while it cannot reach its peer. Waiting nodes wake only
/// for their timers (resends every second, the application's listings), well under 5 %; a
/// node retrying in a tight loop takes a whole core. CPU time counts only while the process
/// runs, so other tests sharing the cores do not inflate it.
const MAX_IDLE_CPU_SHARE: f64 = 0.2;

/// How long the blackhole lasts: `FAULT_BLACKHOLE_SECS`, or 8 s.
fn blackhole_time() -> Duration {
    let seconds = std::env::var("FAULT_BLACKHOLE_SECS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(8);
    Duration::from_secs(seconds)
}

/// One trial's nodes, with the proxy on their link and the ESS's application running.
struct Trial {
    transport: Transport,
    // Keeps the broker (MQTT) running as long as the trial.
    _net: Net,
    proxy: FaultProxy,
    css: TestNode,
    ess: TestNode,
    app: ReceivingApp,
}

impl Trial {
    /// A CSS and an ESS registered through a clean proxy.
    async fn start(transport: Transport) -> Self {
        let net = Net::new(transport);
        let chunk = CHUNK.to_string();
        let chunking = ("MAX_DATA_CHUNK_SIZE", chunk.as_str());
        let (proxy, css, ess) = match transport {
            Transport::Http => {
                let css = net.css(&[chunking]);
                let proxy = FaultProxy::start(css.port()).await;
                let port = proxy.port().to_string();
                let ess = net.ess(&css, &[chunking, ("HTTP_CSS_PORT", &port)]);
                (proxy, css, ess)
            }
            Transport::Mqtt => {
                let proxy = FaultProxy::start(net.broker.as_ref().expect("broker").port()).await;
                let port = proxy.port().to_string();
                let through_proxy = ("BROKER_PORT", port.as_str());
                let css = net.css(&[chunking, through_proxy]);
                let ess = net.ess(&css, &[chunking, through_proxy]);
                (proxy, css, ess)
            }
        };
        wait_registered(&css, &ess, "node1").await;
        let app = ReceivingApp::start(&ess, "model");
        Self {
            transport,
            _net: net,
            proxy,
            css,
            ess,
            app,
        }
    }

    fn nodes(&self) -> [&TestNode; 2] {
        [&self.css, &self.ess]
    }

    /// Publishes [`OBJECTS`] objects of [`OBJECT_SIZE`] bytes for the ESS, marked
    /// `received` by its application once taken; returns their IDs and data.
    async fn publish(&self) -> Vec<(String, Vec<u8>)> {
        let api = self.css.api();
        let mut objects = Vec::new();
        for i in 0..OBJECTS {
            let id = format!("o{i}");
            let data = pattern(OBJECT_SIZE, i as u8 + 1);
            let path = self.css.obj("model", &id);
            self.app.only_receive(&id);
            api.create(
                &path,
                json!({"destinationType": "edge", "destinationID": "node1"}),
                None,
            )
            .await;
            let response = api.put_bytes(&format!("{path}/data"), data.clone()).await;
            assert_eq!(response.status, 204, "{}", response.text());
            objects.push((id, data));
        }
        objects
    }

    /// IDs the application took so far.
    fn taken(&self) -> Vec<String> {
        self.app.seen().into_iter().map(|s| s.object_id).collect()
    }

    /// After the heal of `fault` at `healed`: waits for every object to reach the
    /// application within the bound (plus `allowance`), then checks the deliveries on the
    /// CSS, each object taken once with its data, and no 5xx.
    async fn check_recovery(&self, fault: &str, objects: &[(String, Vec<u8>)], healed: Instant, allowance: Duration) {
        let nodes = self.nodes();
        wait_for("every object at the application", &nodes, SYNC_DEADLINE, async || {
            self.taken().len() >= objects.len()
        })
        .await;
        let recovery = healed.elapsed();
        let bound = POLLING_INTERVAL * 2 + ALLOWANCE + allowance;
        println!(
            "{:?}, {fault}: delivered {recovery:?} after the heal (bound {bound:?})",
            self.transport
        );
        assert!(
            recovery <= bound,
            "{:?}, {fault}: delivery completed {recovery:?} after the heal, more than {bound:?}\n--- CSS ---\n{}\n--- ESS ---\n{}",
            self.transport,
            self.css.log(),
            self.ess.log()
        );
        let api = self.css.api();
        for (id, _) in objects {
            let path = format!("{}/destinations", self.css.obj("model", id));
            wait_for("the CSS to record the delivery", &nodes, SYNC_DEADLINE, async || {
                api.get(&path).await.json()[0]["status"] == "delivered"
            })
            .await;
        }
        // Anything the ESS would list again after the application marked it received has
        // been listed by the end of these polls.
        self.app.wait_polls(3, &nodes, SYNC_DEADLINE).await;
        assert_taken_once(&self.app, objects);
        for node in nodes {
            assert_no_server_errors(node).await;
        }
    }
}

/// Each object taken exactly once, without failure, with its data; none listed again.
fn assert_taken_once(app: &ReceivingApp, objects: &[(String, Vec<u8>)]) {
    let seen = app.seen();
    let taken: Vec<(&str, i64, Option<&str>)> = seen
        .iter()
        .map(|s| (s.object_id.as_str(), s.instance_id, s.failure.as_deref()))
        .collect();
    assert!(
        seen.iter().all(|s| s.failure.is_none()),
        "the application met failures: {taken:?}"
    );
    assert_eq!(seen.len(), objects.len(), "each object once: {taken:?}");
    for (id, data) in objects {
        let taken = seen.iter().find(|s| &s.object_id == id).expect("taken");
        let got = taken.data.as_deref().map(|d| Sha256::digest(d).to_vec());
        assert_eq!(got, Some(Sha256::digest(data).to_vec()), "SHA-256 of {id}'s data");
    }
    assert!(app.relisted().is_empty(), "listed again: {:?}", app.relisted());
}

/// No request `node` answered was a 5xx, by its metrics.
async fn assert_no_server_errors(node: &TestNode) {
    let response = node.api().get_as(SYNC_ADMIN, "/metrics").await;
    assert_eq!(response.status, 200, "{}", response.text());
    let errors: Vec<String> = parse(&response.text())
        .into_iter()
        .filter(|s| s.name == "edge_sync_http_requests_total" && s.value > 0.0)
        .filter(|s| s.labels.get("status").is_some_and(|status| status.starts_with('5')))
        .map(|s| format!("{:?} {}", s.labels, s.value))
        .collect();
    assert!(errors.is_empty(), "the {:?} answered 5xx: {errors:?}", node.role);
}

/// The link goes dark in the middle of the transfers for [`blackhole_time`]: nothing gets
/// through, and the nodes stay nearly idle; after the heal everything arrives.
async fn blackhole(transport: Transport) {
    let trial = Trial::start(transport).await;
    // Throttled until the transfers are under way, so that the blackhole falls amid them.
    trial.proxy.set(Fault::Bandwidth(BANDWIDTH));
    let objects = trial.publish().await;
    wait_for("the transfers to start", &trial.nodes(), SYNC_DEADLINE, async || {
        trial.proxy.bytes_down() >= CHUNK as u64
    })
    .await;
    trial.proxy.set(Fault::Blackhole);
    let relayed = (trial.proxy.bytes_up(), trial.proxy.bytes_down());
    let cpu_before: Vec<Duration> = trial.nodes().iter().map(|n| n.cpu_time()).collect();
    let started = Instant::now();
    tokio::time::sleep(blackhole_time()).await;
    let window = started.elapsed();
    let cpu: Vec<Duration> = trial
        .nodes()
        .iter()
        .zip(cpu_before)
        .map(|(n, before)| n.cpu_time() - before)
        .collect();
    assert_eq!(
        (trial.proxy.bytes_up(), trial.proxy.bytes_down()),
        relayed,
        "the blackhole relayed nothing"
    );
    assert!(
        trial.taken().len() < OBJECTS,
        "the transfers ended before the blackhole"
    );
    trial.proxy.heal();
    trial
        .check_recovery("blackhole", &objects, Instant::now(), Duration::ZERO)
        .await;
    for (node, used) in trial.nodes().iter().zip(cpu) {
        let share = used.as_secs_f64() / window.as_secs_f64();
        println!(
            "{transport:?}: the {:?} used {used:?} of CPU in a {window:?} blackhole ({:.1} % of a core)",
            node.role,
            share * 100.0
        );
        assert!(
            share < MAX_IDLE_CPU_SHARE,
            "{transport:?}: the {:?} used {used:?} of CPU during a {window:?} blackhole",
            node.role
        );
    }
}

/// Applies `fault` (`name`) while objects travel, for `lasting`; `hit` checks that the
/// fault did get in the way; after the heal everything arrives within the bound plus
/// `allowance`.
async fn fault_then_heal(
    transport: Transport,
    (fault, name, lasting): (Fault, &str, Duration),
    allowance: Duration,
    hit: impl FnOnce(&Trial, usize),
) {
    let trial = Trial::start(transport).await;
    trial.proxy.set(fault);
    let objects = trial.publish().await;
    tokio::time::sleep(lasting).await;
    hit(&trial, trial.taken().len());
    trial.proxy.heal();
    trial.check_recovery(name, &objects, Instant::now(), allowance).await;
}

/// Checks that connections were cut and no object got through.
fn cut_every_transfer(trial: &Trial, taken: usize) {
    assert!(trial.proxy.cuts() > 0, "no connection was cut");
    assert_eq!(taken, 0, "an object got through the cuts");
}

/// Every connection is ended once it carried half a chunk, with `ending`.
async fn cut_every_connection(transport: Transport, ending: Ending, name: &str) {
    let fault = Fault::Cut {
        after: CUT_AFTER,
        ending,
    };
    fault_then_heal(
        transport,
        (fault, name, CUT_TIME),
        unnoticed_loss(transport),
        cut_every_transfer,
    )
    .await;
}

/// Every connection is closed (FIN) once it carried half a chunk.
async fn cut_mid_chunk(transport: Transport) {
    cut_every_connection(transport, Ending::Fin, "cut (FIN)").await;
}

/// Every connection is reset (RST) once it carried half a chunk.
async fn reset_mid_chunk(transport: Transport) {
    cut_every_connection(transport, Ending::Reset, "reset (RST)").await;
}

/// Every byte takes [`LATENCY`] more each way. Bytes already delayed when the latency heals
/// still arrive late, hence the allowance of one more round trip.
async fn latency(transport: Transport) {
    fault_then_heal(
        transport,
        (Fault::Latency(LATENCY), "latency", FAULT_TIME),
        LATENCY * 2,
        |_, taken| assert!(taken < OBJECTS, "the latency slowed nothing down"),
    )
    .await;
}

/// Each direction of each connection carries [`BANDWIDTH`] bytes per second at most: far
/// less than the objects need in [`FAULT_TIME`].
async fn bandwidth_limit(transport: Transport) {
    fault_then_heal(
        transport,
        (Fault::Bandwidth(BANDWIDTH), "bandwidth limit", FAULT_TIME),
        Duration::ZERO,
        |_, taken| assert!(taken < OBJECTS, "the bandwidth limit slowed nothing down"),
    )
    .await;
}

on_both_transports!(blackhole, cut_mid_chunk, reset_mid_chunk, latency, bandwidth_limit);

/// Objects queued for an ESS that is down survive a restart of a broker that keeps nothing:
/// all of them reach the ESS once it is back, each once.
#[tokio::test]
async fn objects_queued_for_an_offline_ess_survive_a_broker_restart() {
    const QUEUED: usize = 50;
    let mut net = Net::new(Transport::Mqtt);
    let css = net.css(&[]);
    let mut ess = net.ess(&css, &[]);
    wait_registered(&css, &ess, "node1").await;
    ess.kill9();
    let api = css.api();
    let mut objects = Vec::new();
    for i in 0..QUEUED {
        let id = format!("q{i}");
        let data = pattern(1000 + i, i as u8);
        api.create(
            &css.obj("model", &id),
            json!({"destinationType": "edge", "destinationID": "node1"}),
            Some(&data),
        )
        .await;
        objects.push((id, data));
    }
    let connected = || css.log().matches("MQTT: connected to the broker").count();
    let before = connected();
    net.broker().restart();
    wait_for(
        "the CSS to reconnect to the broker",
        &[&css],
        SYNC_DEADLINE,
        async || connected() > before,
    )
    .await;
    ess.restart();
    let back = Instant::now();
    let app = ReceivingApp::start(&ess, "model");
    for (id, _) in &objects {
        app.only_receive(id);
    }
    eventually(
        "all queued objects at the application",
        &[&css, &ess],
        SYNC_DEADLINE,
        async || (app.seen().len() >= QUEUED).then_some(()),
    )
    .await;
    println!(
        "Mqtt, broker restart: {QUEUED} queued objects arrived {:?} after the ESS was back",
        back.elapsed()
    );
    app.wait_polls(3, &[&css, &ess], SYNC_DEADLINE).await;
    assert_taken_once(&app, &objects);
    for node in [&css, &ess] {
        assert_no_server_errors(node).await;
    }
}
