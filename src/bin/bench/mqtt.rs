//! The MQTT transport: a real mosquitto broker, a CSS and one ESS process talking through it.
//! Measures the propagation latency CSS -> ESS (noData objects, from the PUT's 204 until the
//! ESS's API lists the object) and the time a large object takes to arrive complete on the
//! ESS after its data was stored on the CSS.

use crate::fanout::{self, ORG};
use crate::propagation::Latencies;
use crate::server::{Server, TempDir};
use std::net::TcpListener;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// Where Debian installs the broker.
const MOSQUITTO: &str = "/usr/sbin/mosquitto";
const ARRIVAL_TIMEOUT: Duration = Duration::from_secs(600);

/// Results of the MQTT phase.
pub struct MqttStats {
    pub latencies: Latencies,
    /// Size of the large object and seconds from its data PUT's 204 to complete on the ESS.
    pub large_bytes: u64,
    pub large_secs: f64,
}

impl MqttStats {
    pub fn large_mb_per_s(&self) -> f64 {
        self.large_bytes as f64 / 1e6 / self.large_secs
    }
}

/// A broker on a free port, killed on drop. It publishes its `$SYS` counters every second.
pub(crate) struct Broker {
    child: Child,
    pub(crate) port: u16,
}

impl Broker {
    /// Starts mosquitto with its configuration in `dir`; returns once it listens.
    pub(crate) fn start(dir: &Path) -> Result<Self, String> {
        let port = TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .map(|a| a.port())
            .map_err(|e| format!("cannot find a free port: {e}"))?;
        let config = dir.join("mosquitto.conf");
        std::fs::write(
            &config,
            format!(
                "listener {port} 127.0.0.1\nallow_anonymous true\nmax_packet_size 268435456\npersistence false\nset_tcp_nodelay true\nsys_interval 1\n"
            ),
        )
        .map_err(|e| format!("cannot write the broker configuration: {e}"))?;
        let child = Command::new(MOSQUITTO)
            .arg("-c")
            .arg(&config)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .map_err(|e| format!("cannot start {MOSQUITTO} (Debian package mosquitto): {e}"))?;
        let broker = Broker { child, port };
        let deadline = Instant::now() + Duration::from_secs(10);
        while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
            if Instant::now() > deadline {
                return Err("mosquitto did not start listening".into());
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        Ok(broker)
    }

    /// The broker's process, for its memory and CPU.
    pub(crate) fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Environment that points a node at this broker over plain MQTT.
    pub(crate) fn transport_env(&self) -> Vec<(String, String)> {
        env(&[
            ("COMMUNICATION_PROTOCOL", "mqtt".to_string()),
            ("BROKER_ADDRESS", "127.0.0.1".to_string()),
            ("BROKER_PORT", self.port.to_string()),
            ("MQTT_USE_SSL", "false".to_string()),
        ])
    }
}

impl Drop for Broker {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn env(pairs: &[(&str, String)]) -> Vec<(String, String)> {
    pairs.iter().map(|(k, v)| (k.to_string(), v.clone())).collect()
}

/// Runs the MQTT phase: `objects` propagation samples and a `large_bytes` object.
pub async fn run(binary: &Path, objects: usize, large_bytes: u64) -> Result<MqttStats, String> {
    let dir = TempDir::create()?;
    let broker = Broker::start(dir.path())?;
    let transport = broker.transport_env();
    let css_dir = dir.path().join("css");
    let ess_dir = dir.path().join("ess");
    for sub in [&css_dir, &ess_dir] {
        std::fs::create_dir_all(sub).map_err(|e| format!("cannot create {}: {e}", sub.display()))?;
    }
    let mut css = Server::start_with(binary, &css_dir, &transport)?;
    let mut ess_env = transport;
    ess_env.extend(env(&[
        ("NODE_TYPE", "ESS".into()),
        ("ORG_ID", ORG.into()),
        ("DESTINATION_TYPE", "edge".into()),
        ("DESTINATION_ID", "m0".into()),
    ]));
    let mut ess = Server::start_with(binary, &ess_dir, &ess_env)?;
    let admin = crate::http_client()?;
    let css_base = format!("http://127.0.0.1:{}", css.port);
    let ess_base = format!("http://127.0.0.1:{}", ess.port);
    css.wait_healthy(&admin, &css_base, Duration::from_secs(30)).await?;
    ess.wait_healthy(&admin, &ess_base, Duration::from_secs(30)).await?;
    let result = measure(&admin, &css_base, &ess_base, objects, large_bytes).await;
    let tails = format!("{}{}", css.log_tail(), ess.log_tail());
    ess.stop();
    css.stop();
    drop(broker);
    result.map_err(|e| format!("{e}{tails}"))
}

async fn measure(
    admin: &reqwest::Client,
    css_base: &str,
    ess_base: &str,
    objects: usize,
    large_bytes: u64,
) -> Result<MqttStats, String> {
    // The first object also waits for the ESS to register over the broker.
    let mut samples = Vec::with_capacity(objects);
    for k in 0..=objects {
        let object_type = format!("mqtt{k}");
        let id = format!("o{k}");
        let meta = serde_json::json!({"destinationType": "edge", "destinationID": "m0", "noData": true});
        fanout::put_object(admin, css_base, &object_type, &id, meta).await?;
        let published = Instant::now();
        while !fanout::ess_lists(admin, ess_base, &object_type, &id).await {
            if published.elapsed() > Duration::from_secs(60) {
                return Err(format!("{object_type}/{id} did not reach the ESS over MQTT"));
            }
            tokio::time::sleep(Duration::from_millis(1)).await;
        }
        if k > 0 {
            samples.push(published.elapsed());
        }
    }
    crate::progress(&format!("MQTT: a {} MB object CSS -> ESS", large_bytes / 1_000_000));
    let meta = serde_json::json!({"destinationType": "edge", "destinationID": "m0"});
    fanout::put_object(admin, css_base, "large", "big", meta).await?;
    let data = bytes::Bytes::from(vec![0x5a_u8; usize::try_from(large_bytes).unwrap_or(0)]);
    fanout::put_data(admin, css_base, "large", "big", data).await?;
    let stored = Instant::now();
    // The ESS names objects without the organization (it has one).
    let status_url = format!("{ess_base}/api/v1/objects/large/big/status");
    loop {
        if let Ok(response) = admin.get(&status_url).send().await {
            if response.status() == reqwest::StatusCode::OK
                && response.text().await.unwrap_or_default() == "completelyReceived"
            {
                break;
            }
        }
        if stored.elapsed() > ARRIVAL_TIMEOUT {
            return Err("the large object did not arrive on the ESS".into());
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    Ok(MqttStats {
        latencies: Latencies::new("MQTT, real ESS".into(), 1, samples),
        large_bytes,
        large_secs: stored.elapsed().as_secs_f64(),
    })
}
