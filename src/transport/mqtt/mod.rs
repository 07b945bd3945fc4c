//! The MQTT transport between CSS and ESS nodes through a broker (spec:
//! css-ess-protocol.md §4): message encoding, the broker connection, and the CSS's handling
//! of its edge nodes' messages ([`css`]), and the ESS's link to its CSS ([`ess`]).

pub mod codec;
pub mod connection;
pub mod css;
pub mod ess;

use crate::config::Config;
use connection::BrokerSettings;
use std::sync::Arc;

/// Broker settings from the configuration.
pub fn broker_settings(config: &Config, tls: Option<Arc<rustls::ClientConfig>>) -> BrokerSettings {
    BrokerSettings {
        host: config.broker_address.clone(),
        port: config.broker_port,
        client_id: config.mqtt_client_id.clone(),
        user: config.mqtt_user_name.clone(),
        password: config.mqtt_password.expose().to_string(),
        tls,
        max_chunk: usize::try_from(config.max_data_chunk_size).unwrap_or(usize::MAX),
    }
}
