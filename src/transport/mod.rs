//! The transports between CSS and ESS, one module per protocol, each on both roles:
//! [`http`] (the CSS's `/spi/v1` routes and the ESS's client of them) and
//! [`mqtt`] (messages through a broker). Each turns its wire format into calls of the engine
//! and of the ESS's protocol-neutral sync tasks ([`crate::sync::link::EssLink`]), and back.

pub mod compression;
pub mod http;
pub mod link_reason;
pub mod mqtt;

use crate::config::Config;
use crate::engine::Node;
use crate::model::Destination;
use crate::sync::link::EssLink;
use std::sync::Arc;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

/// Header of a data request asking for the manifest of the data instead of its bytes (the
/// format's name, [`crate::delta::FORMAT`]), and of the answer that carries one. A node that
/// does not know it answers with the data asked for.
pub const MANIFEST_HEADER: &str = "x-sync-delta-manifest";

/// Why the sync client could not start.
#[derive(Debug, thiserror::Error)]
pub enum SyncStartError {
    #[error("cannot build the HTTP client: {0}")]
    Client(#[from] reqwest::Error),
}

/// Client TLS settings of the two transports.
pub struct TransportTls {
    pub css: Option<Arc<rustls::ClientConfig>>,
    pub mqtt: Option<Arc<rustls::ClientConfig>>,
}

/// Starts the ESS's synchronization with its CSS over the configured transport (HTTP when
/// the protocol includes it, else MQTT).
pub fn start_ess(
    node: Node,
    config: &Config,
    tls: &TransportTls,
    tracker: &TaskTracker,
    shutdown: CancellationToken,
) -> Result<(), SyncStartError> {
    let link: Arc<dyn EssLink> = if config.communication_protocol.uses_http() {
        tracing::info!(css = %config.css_base_url(), "ESS: synchronizing with the CSS over HTTP");
        let tls = tls.css.as_ref().map(|c| (**c).clone());
        Arc::new(http::ess::EssClient::new(config, node.clone(), tls)?)
    } else {
        tracing::info!(broker = %format!("{}:{}", config.broker_address, config.broker_port), "ESS: synchronizing with the CSS over MQTT");
        mqtt_ess_link(node.clone(), config, tls.mqtt.clone(), tracker, shutdown.clone())
    };
    crate::sync::spawn(node, config, link, tracker, shutdown);
    Ok(())
}

fn mqtt_ess_link(
    node: Node,
    config: &Config,
    tls: Option<Arc<rustls::ClientConfig>>,
    tracker: &TaskTracker,
    shutdown: CancellationToken,
) -> Arc<dyn EssLink> {
    let settings = mqtt::broker_settings(config, tls);
    let topics = vec![mqtt::codec::to_ess_topic(
        &config.destination_type,
        &config.destination_id,
    )];
    let (incoming_tx, incoming) = tokio::sync::mpsc::channel(64);
    let connection = mqtt::connection::Connection::start(
        &settings,
        topics,
        incoming_tx,
        Some(node.clone()),
        tracker,
        shutdown.clone(),
    );
    node.set_broker(connection.state());
    let me = Destination {
        org: config.org_id.clone(),
        dest_type: config.destination_type.clone(),
        dest_id: config.destination_id.clone(),
        communication: "mqtt".into(),
        code_version: "1.0".into(),
    };
    let persistent = config.storage_provider == crate::config::StorageKind::Sqlite && !node.settings().store_created;
    let max_chunk = u64::try_from(config.max_data_chunk_size).unwrap_or(u64::MAX);
    // An answer normally comes in milliseconds; a busy CSS or broker gets a few seconds
    // before the request counts as lost (a new broker session ends the wait at once).
    let answer_timeout =
        std::time::Duration::from_secs(u64::try_from(config.resend_interval).unwrap_or(10).clamp(5, 60));
    let link = mqtt::ess::MqttLink::new(connection, node, me, persistent, max_chunk, answer_timeout);
    let runner = link.clone();
    tracker.spawn(async move {
        tokio::select! {
            _ = shutdown.cancelled() => {}
            _ = runner.run(incoming) => {}
        }
    });
    link
}
