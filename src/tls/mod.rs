//! TLS for both ends of the service's connections, with rustls and the ring provider only.
//! The provider is passed explicitly to every configuration, so no process-wide default
//! provider is needed.
//!
//! - Serving HTTPS (spec security.md §8.2): `identity` finds the server certificate and key
//!   (configured, or on an ESS the self-signed pair of `generated`); `server` turns it into
//!   the rustls server configuration.
//! - Connecting out (security.md §8.3): [`client`] builds the configuration of each outgoing
//!   connection (CSS, MQTT broker, PostgreSQL, webhooks) from the trust anchors of `roots`
//!   and the certificate checks of `verifiers`.
//! - `pem` reads certificate and key settings (inline PEM or a file) for both sides, so the
//!   two accept values the same way.
//!
//! Every part fails with [`TlsError`], so start-up reports any TLS problem in one form.

pub mod client;
mod generated;
mod identity;
mod pem;
mod roots;
mod server;
mod verifiers;

pub use client::{
    command_line_client_config, css_client_config, mqtt_client_config, postgres_client_config, webhook_client_config,
};
pub use generated::GENERATED_DIR;
pub use identity::{fingerprint, identity, Identity};
pub use server::{build_server_config, server_config};

use rustls::crypto::CryptoProvider;
use rustls::SupportedProtocolVersion;
use std::path::PathBuf;
use std::sync::Arc;

/// Why no TLS server or client configuration could be made. Messages name the configuration key or
/// file at fault and are shown as the start-up error.
#[derive(Debug, thiserror::Error)]
pub enum TlsError {
    /// A configured certificate or key is missing, unreadable or not valid PEM.
    #[error("Failed to setup TLS. Error: {key}: {detail}")]
    Setting { key: &'static str, detail: String },
    /// The certificate and key do not form a usable pair.
    #[error(
        "Failed to setup TLS. Error: ServerCertificate and ServerKey ({origin}) cannot be used together: {source}"
    )]
    Pair { origin: String, source: rustls::Error },
    /// The self-signed pair could not be read or written.
    #[error("Failed to create TLS certificate. Error: {}: {detail}", path.display())]
    Generated { path: PathBuf, detail: String },
}

impl TlsError {
    /// For `map_err`: a problem with the value of the setting `key`.
    fn setting(key: &'static str) -> impl FnOnce(String) -> TlsError {
        move |detail| TlsError::Setting { key, detail }
    }
}

/// The crypto provider used for every TLS configuration, server and client.
fn provider() -> Arc<CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}

/// The protocol versions offered and accepted by every configuration: TLS 1.3 and 1.2.
const PROTOCOL_VERSIONS: &[&SupportedProtocolVersion] = &[&rustls::version::TLS13, &rustls::version::TLS12];
