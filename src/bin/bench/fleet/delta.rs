//! Mode `delta`: one CSS and an ESS on each transport; a 1 GiB object (--quick: 64 MiB) of
//! random bytes reaches the ESS whole, then a new version with 1 % of its bytes changed in
//! 1,024 scattered places (--quick: 64); the same from the ESS to the CSS. Bytes the CSS sent
//! (or received) for each version, time until the receiver holds it, and the peak RSS of both
//! processes meanwhile (sampled), the new version's against the first's: memory must not
//! grow with the object.

use super::{mb, verdict, CssWithBroker, Outcome};
use crate::fanout;
use crate::server::{rss_kb, Server};
use serde_json::json;
use std::fmt::Write as _;
use std::path::Path;
use std::time::{Duration, Instant};

/// Target: the new version crosses in at most this share of its size.
const TARGET_SHARE: f64 = 0.05;

/// Mode `delta` with objects of `size` bytes changed in `places` places.
pub async fn run(binary: &Path, size: usize, places: usize) -> Result<Outcome, String> {
    let cloud = CssWithBroker::start(binary).await?;
    let outcome = measure(binary, &cloud, size, places).await;
    cloud.finish(outcome)
}

/// `data` with `places` runs, together 1 % of it, replaced by other bytes, evenly spread.
fn changed(data: &[u8], places: usize) -> Vec<u8> {
    let run = (data.len() / 100 / places).max(1);
    let fresh = edge_sync_service::random::noise(run * places);
    let step = data.len() / places;
    let mut out = data.to_vec();
    for (i, bytes) in fresh.chunks(run).enumerate() {
        let at = i * step + (step - run) / 2;
        out[at..at + run].copy_from_slice(bytes);
    }
    out
}

/// What one version cost.
struct Delivery {
    wire: u64,
    seconds: f64,
    css_peak_kb: u64,
    ess_peak_kb: u64,
}

async fn measure(binary: &Path, cloud: &CssWithBroker, size: usize, places: usize) -> Result<Outcome, String> {
    let (dir, admin, base) = (cloud.dir.path(), &cloud.admin, cloud.base.as_str());
    let (css_port, broker_port) = (cloud.css.port, cloud.broker.port);
    crate::progress("delta: preparing the versions");
    let first = bytes::Bytes::from(edge_sync_service::random::noise(size));
    let second = bytes::Bytes::from(changed(&first, places));
    let mut table = format!(
        "fleet: delta  (one CSS and one ESS; {} MiB of random bytes, then 1 % of them changed in {places} places)\n",
        size >> 20
    );
    let _ = writeln!(
        table,
        "{:<5} {:<5} {:<18} {:>14} {:>9} {:>9} {:>12} {:>12}",
        "link", "way", "version", "bytes on wire", "of size", "seconds", "CSS peak MB", "ESS peak MB"
    );
    let mut met = true;
    let mut figures = Vec::new();
    for (i, transport) in ["http", "mqtt"].into_iter().enumerate() {
        let ess_dir = dir.join(format!("ess-{transport}"));
        std::fs::create_dir_all(&ess_dir).map_err(|e| e.to_string())?;
        let id = format!("n{i}");
        let mut env: Vec<(String, String)> = [
            ("NODE_TYPE", "ESS".to_string()),
            ("DESTINATION_TYPE", "edge".into()),
            ("DESTINATION_ID", id.clone()),
            ("ORG_ID", fanout::ORG.into()),
            ("COMMUNICATION_PROTOCOL", transport.into()),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_string(), v))
        .collect();
        let link: [(&str, String); 3] = if transport == "http" {
            [
                ("HTTP_CSS_HOST", "127.0.0.1".into()),
                ("HTTP_CSS_PORT", css_port.to_string()),
                ("HTTP_POLLING_INTERVAL", "1".into()),
            ]
        } else {
            [
                ("BROKER_ADDRESS", "127.0.0.1".into()),
                ("BROKER_PORT", broker_port.to_string()),
                ("MQTT_USE_SSL", "false".into()),
            ]
        };
        env.extend(link.into_iter().map(|(k, v)| (k.to_string(), v)));
        let mut ess = Server::start_with(binary, &ess_dir, &env)?;
        let ess_base = format!("http://127.0.0.1:{}", ess.port);
        ess.wait_healthy(admin, &ess_base, Duration::from_secs(30)).await?;
        let directions = [
            Direction {
                label: "down",
                from: format!("{base}/api/v1/objects/{}", fanout::ORG),
                to: format!("{ess_base}/api/v1/objects"),
                meta: json!({"destinationType": "edge", "destinationID": id}),
                metric: "sent",
            },
            Direction {
                label: "up",
                from: format!("{ess_base}/api/v1/objects"),
                to: format!("{base}/api/v1/objects/{}", fanout::ORG),
                meta: json!({}),
                metric: "received",
            },
        ];
        for direction in &directions {
            let object_id = format!("o{i}-{}", direction.label);
            let mut deliveries = Vec::new();
            for (version, data) in [("first (whole)", &first), ("new (1 % changed)", &second)] {
                crate::progress(&format!("delta: {version} {} over {transport}", direction.label));
                let ends = Ends { cloud, ess: &ess };
                let delivery = match deliver(admin, &ends, direction, transport, &object_id, data).await {
                    Ok(delivery) => delivery,
                    Err(e) => {
                        ess.stop();
                        return Err(e);
                    }
                };
                let share = delivery.wire as f64 / data.len() as f64;
                let _ = writeln!(
                    table,
                    "{:<5} {:<5} {:<18} {:>14} {:>8.2}% {:>9.1} {:>12.1} {:>12.1}",
                    transport,
                    direction.label,
                    version,
                    delivery.wire,
                    100.0 * share,
                    delivery.seconds,
                    mb(delivery.css_peak_kb),
                    mb(delivery.ess_peak_kb)
                );
                figures.push(json!({"transport": transport, "direction": direction.label, "version": version, "size": data.len(), "wire_bytes": delivery.wire, "seconds": delivery.seconds, "css_peak_kb": delivery.css_peak_kb, "ess_peak_kb": delivery.ess_peak_kb}));
                deliveries.push(delivery);
            }
            let (whole, new) = (&deliveries[0], &deliveries[1]);
            met &= (new.wire as f64) <= TARGET_SHARE * size as f64;
            // Flat: what the manifest and the chunk index add stays small next to the
            // object (a few MB for 1 GiB), within twice the whole transfer's peak.
            met &= new.ess_peak_kb <= 2 * whole.ess_peak_kb.max(20_000)
                && new.css_peak_kb <= 2 * whole.css_peak_kb.max(20_000);
        }
        ess.stop();
    }
    let _ = writeln!(
        table,
        "checks: the new version crosses in at most 5 % of its size, byte for byte, memory flat (within 2x the whole transfer's) {}",
        verdict(met)
    );
    Ok(Outcome {
        table,
        json: json!({"mode": "delta", "places": places, "cases": figures}),
        failed: !met,
    })
}

/// One way an object goes: its API paths on the sending and the receiving node, the
/// metadata it is created with, and which of the CSS's byte counts measures it.
struct Direction {
    label: &'static str,
    from: String,
    to: String,
    meta: serde_json::Value,
    metric: &'static str,
}

/// The CSS (with its broker) and the ESS.
struct Ends<'a> {
    cloud: &'a CssWithBroker,
    ess: &'a Server,
}

/// Writes `data` as a new version of the object on the sending node and waits until the
/// receiving node holds it; checks its copy byte for byte.
async fn deliver(
    admin: &reqwest::Client,
    ends: &Ends<'_>,
    direction: &Direction,
    transport: &str,
    object_id: &str,
    data: &bytes::Bytes,
) -> Result<Delivery, String> {
    let before = ends.cloud.transport_bytes(transport, direction.metric).await?;
    let copy_url = format!("{}/model/{object_id}", direction.to);
    let previous = complete_instance(admin, &copy_url).await;
    let object = format!("{}/model/{object_id}", direction.from);
    let mut meta = json!({"objectID": object_id, "objectType": "model"});
    if let (Some(meta), Some(extra)) = (meta.as_object_mut(), direction.meta.as_object()) {
        meta.extend(extra.clone());
    }
    let response = admin
        .put(&object)
        .header(reqwest::header::CONTENT_TYPE, "application/json")
        .body(json!({ "meta": meta }).to_string())
        .send()
        .await
        .map_err(|e| e.to_string())?;
    if response.status() != reqwest::StatusCode::NO_CONTENT {
        return Err(format!("PUT {object}: {}", response.status()));
    }
    let response = admin
        .put(format!("{object}/data"))
        .body(data.clone())
        .send()
        .await
        .map_err(|e| e.to_string())?;
    if response.status() != reqwest::StatusCode::NO_CONTENT {
        return Err(format!("PUT {object}/data: {}", response.status()));
    }
    let started = Instant::now();
    let (mut css_peak_kb, mut ess_peak_kb) = (0, 0);
    loop {
        css_peak_kb = css_peak_kb.max(rss_kb(ends.cloud.css.pid()).unwrap_or(0));
        ess_peak_kb = ess_peak_kb.max(rss_kb(ends.ess.pid()).unwrap_or(0));
        if complete_instance(admin, &copy_url)
            .await
            .is_some_and(|i| Some(i) != previous)
        {
            break;
        }
        if started.elapsed() > Duration::from_secs(900) {
            return Err(format!("{object_id} did not arrive over {transport} within 15 minutes"));
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let seconds = started.elapsed().as_secs_f64();
    let copy = fanout::get_bytes(admin, &format!("{copy_url}/data")).await?;
    if copy != *data {
        return Err(format!(
            "{object_id}: the copy over {transport} differs from the object"
        ));
    }
    let wire = ends.cloud.transport_bytes(transport, direction.metric).await? - before;
    Ok(Delivery {
        wire,
        seconds,
        css_peak_kb,
        ess_peak_kb,
    })
}

/// The instance of a node's complete copy of an object, if it has one.
async fn complete_instance(admin: &reqwest::Client, url: &str) -> Option<i64> {
    let meta = fanout::get_json(admin, url).await.ok()??;
    let response = admin.get(format!("{url}/status")).send().await.ok()?;
    let status = response.text().await.ok()?;
    (status.trim() == "completelyReceived")
        .then(|| meta["instanceID"].as_i64())
        .flatten()
}
