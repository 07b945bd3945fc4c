//! Mode `slow-link`: one CSS and an ESS over a link limited to 10 Mbit/s each way (a proxy
//! in this process, in front of the CSS for HTTP and of the broker for MQTT), and a 100 MB
//! object (--quick: 10 MB) sent through it on each transport: log lines (JSON) with
//! compression negotiated, the same with the ESS not taking part (`DataCompression false`,
//! as an original ESS), and random bytes. Bytes on the wire and time to arrival.

use super::{verdict, CssWithBroker, Outcome};
use crate::fanout;
use crate::server::Server;
use serde_json::json;
use std::fmt::Write as _;
use std::path::Path;
use std::time::{Duration, Instant};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

/// The link's rate each way, bytes per second (10 Mbit/s).
const LINK_BYTES_PER_SECOND: u64 = 10_000_000 / 8;
/// The proxy's write size: small enough to pace evenly.
const SLICE: usize = 16 * 1024;

/// Mode `slow-link` with objects of `size` bytes.
pub async fn run(binary: &Path, size: usize) -> Result<Outcome, String> {
    let cloud = CssWithBroker::start(binary).await?;
    let links = Links {
        http: slow_link(cloud.css.port).await?,
        mqtt: slow_link(cloud.broker.port).await?,
    };
    let outcome = measure(binary, &cloud, &links, size).await;
    cloud.finish(outcome)
}

/// The slow links' ports: to the CSS's HTTP port and to the broker.
struct Links {
    http: u16,
    mqtt: u16,
}

#[derive(Clone, Copy, PartialEq)]
enum Transport {
    Http,
    Mqtt,
}

impl Transport {
    fn label(self) -> &'static str {
        match self {
            Transport::Http => "http",
            Transport::Mqtt => "mqtt",
        }
    }

    /// The environment of an ESS whose link to the CSS goes through `links`.
    fn ess_env(self, links: &Links) -> Vec<(&'static str, String)> {
        match self {
            Transport::Http => vec![
                ("COMMUNICATION_PROTOCOL", "http".into()),
                ("HTTP_CSS_HOST", "127.0.0.1".into()),
                ("HTTP_CSS_PORT", links.http.to_string()),
                ("HTTP_POLLING_INTERVAL", "2".into()),
            ],
            Transport::Mqtt => vec![
                ("COMMUNICATION_PROTOCOL", "mqtt".into()),
                ("BROKER_ADDRESS", "127.0.0.1".into()),
                ("BROKER_PORT", links.mqtt.to_string()),
                ("MQTT_USE_SSL", "false".into()),
            ],
        }
    }
}

struct Case {
    transport: Transport,
    label: &'static str,
    compression: bool,
    data: bytes::Bytes,
}

const JSON_ON: &str = "log lines (JSON), compression negotiated";
const JSON_OFF: &str = "log lines (JSON), ESS not taking part";
const RANDOM: &str = "random bytes, compression negotiated";

async fn measure(binary: &Path, cloud: &CssWithBroker, links: &Links, size: usize) -> Result<Outcome, String> {
    let (dir, admin, base) = (cloud.dir.path(), &cloud.admin, cloud.base.as_str());
    let logs = bytes::Bytes::from(log_lines(size));
    let noise = bytes::Bytes::from(edge_sync_service::random::noise(size));
    let mut cases = Vec::new();
    for transport in [Transport::Http, Transport::Mqtt] {
        for (label, compression, data) in [(JSON_ON, true, &logs), (JSON_OFF, false, &logs), (RANDOM, true, &noise)] {
            cases.push(Case {
                transport,
                label,
                compression,
                data: data.clone(),
            });
        }
    }
    let mut table = format!(
        "fleet: slow-link  (one CSS and one ESS over a 10 Mbit/s link each way; {} MB objects)\n",
        size / 1_000_000
    );
    let _ = writeln!(
        table,
        "{:<5} {:<42} {:>14} {:>9} {:>9}",
        "link", "object", "bytes on wire", "of size", "seconds"
    );
    let mut figures = Vec::new();
    let mut met = true;
    for (i, case) in cases.iter().enumerate() {
        let ess_dir = dir.join(format!("ess-{i}"));
        std::fs::create_dir_all(&ess_dir).map_err(|e| e.to_string())?;
        let id = format!("n{i}");
        let mut env: Vec<(&str, String)> = vec![
            ("NODE_TYPE", "ESS".into()),
            ("DESTINATION_TYPE", "edge".into()),
            ("DESTINATION_ID", id.clone()),
            ("ORG_ID", fanout::ORG.into()),
            ("DATA_COMPRESSION", case.compression.to_string()),
        ];
        env.extend(case.transport.ess_env(links));
        let env: Vec<(String, String)> = env.into_iter().map(|(k, v)| (k.to_string(), v)).collect();
        let mut ess = Server::start_with(binary, &ess_dir, &env)?;
        let ess_base = format!("http://127.0.0.1:{}", ess.port);
        ess.wait_healthy(admin, &ess_base, Duration::from_secs(30)).await?;
        wait_registered(admin, base, &id, Duration::from_secs(30)).await?;
        crate::progress(&format!("slow-link: {} over {}", case.label, case.transport.label()));
        let object_id = format!("o{i}");
        fanout::put_object(
            admin,
            base,
            "logs",
            &object_id,
            json!({"destinationType": "edge", "destinationID": id}),
        )
        .await?;
        let before = cloud.transport_bytes(case.transport.label(), "sent").await?;
        fanout::put_data(admin, base, "logs", &object_id, case.data.clone()).await?;
        let started = Instant::now();
        let arrived = wait_arrived(admin, &ess_base, &object_id, Duration::from_secs(900)).await;
        let elapsed = started.elapsed();
        let copy = fanout::get_bytes(admin, &format!("{ess_base}/api/v1/objects/logs/{object_id}/data")).await?;
        ess.stop();
        arrived?;
        if copy != case.data {
            return Err(format!("{}: the ESS's copy differs from the object", case.label));
        }
        let wire = cloud.transport_bytes(case.transport.label(), "sent").await? - before;
        let share = wire as f64 / case.data.len() as f64;
        let _ = writeln!(
            table,
            "{:<5} {:<42} {:>14} {:>8.1}% {:>9.1}",
            case.transport.label(),
            case.label,
            wire,
            100.0 * share,
            elapsed.as_secs_f64()
        );
        met &= match case.label {
            JSON_ON => share < 0.25,
            // Over MQTT the count holds every message: a few headers per chunk.
            _ => share <= 1.02,
        };
        figures.push(json!({"transport": case.transport.label(), "case": case.label, "size": case.data.len(), "wire_bytes": wire, "seconds": elapsed.as_secs_f64()}));
    }
    let _ = writeln!(
        table,
        "checks: log lines cross in under a quarter of their size, the rest as it is (within 2 %) {}",
        verdict(met)
    );
    Ok(Outcome {
        table,
        json: json!({"mode": "slow-link", "cases": figures}),
        failed: !met,
    })
}

/// Waits until the CSS lists node `id` among its destinations.
async fn wait_registered(admin: &reqwest::Client, base: &str, id: &str, deadline: Duration) -> Result<(), String> {
    let started = Instant::now();
    while !fanout::registered_ids(admin, base).await?.iter().any(|n| n == id) {
        if started.elapsed() > deadline {
            return Err(format!("node {id} did not register within {deadline:?}"));
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    Ok(())
}

/// Waits until the ESS lists the object (its data complete).
async fn wait_arrived(admin: &reqwest::Client, ess_base: &str, id: &str, deadline: Duration) -> Result<(), String> {
    let started = Instant::now();
    while !fanout::ess_lists(admin, ess_base, "logs", id).await {
        if started.elapsed() > deadline {
            return Err(format!("{id} did not reach the ESS within {deadline:?}"));
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    Ok(())
}

/// A proxy on a free loopback port to `target`, each direction paced to the link's rate.
async fn slow_link(target: u16) -> Result<u16, String> {
    let listener = TcpListener::bind("127.0.0.1:0").await.map_err(|e| e.to_string())?;
    let port = listener.local_addr().map_err(|e| e.to_string())?.port();
    tokio::spawn(async move {
        while let Ok((client, _)) = listener.accept().await {
            tokio::spawn(async move {
                let Ok(server) = TcpStream::connect(("127.0.0.1", target)).await else {
                    return;
                };
                let _ = client.set_nodelay(true);
                let _ = server.set_nodelay(true);
                let (client_read, client_write) = client.into_split();
                let (server_read, server_write) = server.into_split();
                tokio::spawn(paced(client_read, server_write));
                paced(server_read, client_write).await;
            });
        }
    });
    Ok(port)
}

/// Copies `from` to `to` at no more than the link's rate.
async fn paced(mut from: tokio::net::tcp::OwnedReadHalf, mut to: tokio::net::tcp::OwnedWriteHalf) {
    let started = Instant::now();
    let mut sent = 0u64;
    let mut buffer = vec![0u8; SLICE];
    loop {
        let n = match from.read(&mut buffer).await {
            Ok(0) | Err(_) => break,
            Ok(n) => n,
        };
        sent += n as u64;
        let due = Duration::from_secs_f64(sent as f64 / LINK_BYTES_PER_SECOND as f64);
        if let Some(wait) = due.checked_sub(started.elapsed()) {
            tokio::time::sleep(wait).await;
        }
        if to.write_all(&buffer[..n]).await.is_err() {
            break;
        }
    }
    let _ = to.shutdown().await;
}

fn log_lines(size: usize) -> Vec<u8> {
    let mut out = Vec::with_capacity(size + 256);
    let mut i = 0u64;
    while out.len() < size {
        let _ = writeln!(
            VecWriter(&mut out),
            "{{\"ts\":\"2026-12-04T19:{:02}:{:02}.{:03}Z\",\"node\":\"edge-{}\",\"level\":\"{}\",\"msg\":\"sensor reading\",\"temp\":{}.{},\"seq\":{i}}}",
            (i / 60_000) % 60,
            (i / 1000) % 60,
            i % 1000,
            i % 37,
            ["info", "debug", "warn"][(i % 3) as usize],
            18 + i % 11,
            i % 10
        );
        i += 1;
    }
    out.truncate(size);
    out
}

/// `write!` into a byte vector.
struct VecWriter<'a>(&'a mut Vec<u8>);

impl std::fmt::Write for VecWriter<'_> {
    fn write_str(&mut self, s: &str) -> std::fmt::Result {
        self.0.extend_from_slice(s.as_bytes());
        Ok(())
    }
}
