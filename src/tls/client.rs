//! Client-side TLS (spec security.md §8.3): the rustls client configuration of each
//! outgoing connection, and which trust and checks each one gets. The ESS → CSS HTTPS
//! connection ([`css_client_config`]), the node → MQTT broker connection
//! ([`mqtt_client_config`]) and the PostgreSQL connection ([`postgres_client_config`]) are
//! built once at start-up, so that a misconfigured value stops the node with an error naming
//! the key; the transports connect with them later (the server name is theirs to give:
//! `HTTPCSSHost`, the broker host, the URL's host). Webhook calls
//! ([`webhook_client_config`]) build theirs when the first call is made.
//!
//! CA, certificate and key values are inline PEM (the value holds a `-----BEGIN` block) or
//! a file path, relative paths under the persistence root, as on the server side. For the
//! MQTT values a path must also have an allowed extension (`AllowedCertificateExtensions`,
//! `AllowedKeyExtensions`); the ESS → CSS CA has no extension check (as the original).
//! Where trust comes from, and what happens when it cannot be loaded, is in `roots`;
//! pinning and the verifiers without chain verification are in `verifiers`.
//!
//! Differences from the original, on purpose (the flaws of §8.3 and their fixes):
//! - When `MQTTCACertificate` is its default `broker/ca/ca.cert.pem` and that file does not
//!   exist, the system roots are used (logged at info) instead of an empty trust store.
//! - `MQTTSSLCert` without `MQTTSSLKey` (or the reverse) is an error naming the missing key;
//!   the original silently connected without a client certificate.
//! - `MQTTAllowInvalidCertificates` on a CSS is ignored with a warning and verification
//!   stays on (the original ignored it too); on an ESS it disables verification, logged as
//!   an error when the configuration is built.
//!
//! The PostgreSQL database of a CSS (`StorageProvider postgres`) is reached over TLS unless its
//! URL says `sslmode=disable`; its certificate is always verified, against
//! `PostgresCACertificate` or the system roots (libpq's `require` would not verify it).

use super::pem::{parse_certificates, parse_key, setting_pem};
use super::roots::{chain_verifier, system_verifier, trusted};
use super::verifiers::{pins, PinnedVerifier, Verdict, WithoutChain};
use super::{provider, TlsError, PROTOCOL_VERSIONS};
use crate::config::{Config, StorageKind};
use rustls::client::danger::ServerCertVerifier;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use rustls::ClientConfig;
use std::io::ErrorKind;
use std::sync::Arc;

/// The default of `MQTTCACertificate`, relative to the persistence root.
pub const DEFAULT_MQTT_CA_CERTIFICATE: &str = "broker/ca/ca.cert.pem";

const HTTP_CSS_CA: &str = "HTTPCSSCACertificate";
const MQTT_CA: &str = "MQTTCACertificate";
const MQTT_CERT: &str = "MQTTSSLCert";
const MQTT_KEY: &str = "MQTTSSLKey";
const POSTGRES_CA: &str = "PostgresCACertificate";
/// What to set when the system has no roots (read by `rustls-native-certs`).
const SYSTEM_ROOTS: &str = "SSL_CERT_FILE or SSL_CERT_DIR";

/// The client configuration for the ESS → CSS HTTPS connection: `None` unless this node is
/// an ESS whose protocol uses HTTP and `HTTPCSSUseSSL` is true. Trust is
/// `HTTPCSSCACertificate` when set, else the system roots; no client certificate.
pub fn css_client_config(config: &Config) -> Result<Option<Arc<ClientConfig>>, TlsError> {
    if config.is_css() || !config.communication_protocol.uses_http() || !config.http_css_use_ssl {
        return Ok(None);
    }
    let verifier = css_verifier(config)?;
    build_client_config(HTTP_CSS_CA, verifier, None).map(Some)
}

/// The client configuration for the connection to the MQTT broker (also used for the
/// Watson IoT Platform, an MQTT broker too): `None` unless the protocol uses MQTT or WIoTP
/// and `MQTTUseSSL` is true. See the module documentation for trust, the client
/// certificate and `MQTTAllowInvalidCertificates`, and `verifiers` for pinning.
pub fn mqtt_client_config(config: &Config) -> Result<Option<Arc<ClientConfig>>, TlsError> {
    let protocol = config.communication_protocol;
    if !(protocol.uses_mqtt() || protocol.uses_wiotp()) || !config.mqtt_use_ssl {
        return Ok(None);
    }
    let verifier = mqtt_verifier(config)?;
    let client_auth = mqtt_client_certificate(config)?;
    build_client_config(MQTT_CA, verifier, client_auth).map(Some)
}

/// The client configuration for webhook calls. Webhooks have no CA setting of their own, so
/// they are verified against the system roots (which `SSL_CERT_FILE`/`SSL_CERT_DIR` can
/// replace); no client certificate.
pub fn webhook_client_config() -> Result<Arc<ClientConfig>, TlsError> {
    let verifier = system_verifier(SYSTEM_ROOTS)?;
    build_client_config(SYSTEM_ROOTS, verifier, None)
}

/// The client configuration for the connection to the PostgreSQL database: `None` unless the
/// store is PostgreSQL and `PostgresURL` allows TLS (`sslmode` `prefer`, the default, or
/// `require`). Trust is `PostgresCACertificate` when set, else the system roots; the server
/// name is the URL's host. No client certificate.
pub fn postgres_client_config(config: &Config) -> Result<Option<Arc<ClientConfig>>, TlsError> {
    if config.storage_provider != StorageKind::Postgres {
        return Ok(None);
    }
    // The configuration checked that the URL parses.
    let tls_allowed = config
        .postgres_url
        .expose()
        .parse::<tokio_postgres::Config>()
        .is_ok_and(|url| url.get_ssl_mode() != tokio_postgres::config::SslMode::Disable);
    if !tls_allowed {
        return Ok(None);
    }
    let value = config.postgres_ca_certificate.trim();
    let verifier = trusted(config, POSTGRES_CA, value, Some(&config.allowed_certificate_extensions))?;
    build_client_config(POSTGRES_CA, verifier, None).map(Some)
}

/// What the command-line client's CA option is called in its errors.
const CLIENT_CA: &str = "--ca";

/// The client configuration of the command-line client (`edge-sync-service object ...`):
/// trust is the PEM file `ca` when given, else the system roots; no client certificate.
pub fn command_line_client_config(ca: Option<&std::path::Path>) -> Result<Arc<ClientConfig>, TlsError> {
    let verifier = match ca {
        None => system_verifier(CLIENT_CA)?,
        Some(path) => {
            let origin = path.display().to_string();
            let setting = |detail: String| TlsError::Setting {
                key: CLIENT_CA,
                detail: format!("{origin}: {detail}"),
            };
            let pem = std::fs::read(path).map_err(|e| setting(e.to_string()))?;
            let certificates = parse_certificates(&pem).map_err(setting)?;
            let mut roots = rustls::RootCertStore::empty();
            let (added, _) = roots.add_parsable_certificates(certificates);
            if added == 0 {
                return Err(setting("no usable CA certificate".into()));
            }
            chain_verifier(CLIENT_CA, roots, &origin)?
        }
    };
    build_client_config(CLIENT_CA, verifier, None)
}

/// A client certificate chain, its key, and where the certificate came from.
type ClientAuth = (Vec<CertificateDer<'static>>, PrivateKeyDer<'static>, String);

/// TLS 1.2 and 1.3 with the ring provider, the given verifier and optional client
/// certificate. `key` names the setting blamed if the provider cannot be used.
fn build_client_config(
    key: &'static str,
    verifier: Arc<dyn ServerCertVerifier>,
    client_auth: Option<ClientAuth>,
) -> Result<Arc<ClientConfig>, TlsError> {
    let builder = ClientConfig::builder_with_provider(provider())
        .with_protocol_versions(PROTOCOL_VERSIONS)
        .map_err(|e| TlsError::Setting {
            key,
            detail: e.to_string(),
        })?
        .dangerous()
        .with_custom_certificate_verifier(verifier);
    let client = match client_auth {
        None => builder.with_no_client_auth(),
        Some((chain, private_key, origin)) => {
            builder
                .with_client_auth_cert(chain, private_key)
                .map_err(|e| TlsError::Setting {
                    key: MQTT_KEY,
                    detail: format!("cannot be used with {MQTT_CERT} ({origin}): {e}"),
                })?
        }
    };
    Ok(Arc::new(client))
}

/// Chain verification for the CSS certificate.
fn css_verifier(config: &Config) -> Result<Arc<dyn ServerCertVerifier>, TlsError> {
    trusted(config, HTTP_CSS_CA, config.http_css_ca_certificate.trim(), None)
}

/// Verification of the broker certificate: chain verification (or none, see
/// `MQTTAllowInvalidCertificates`), then the pins when there are any.
fn mqtt_verifier(config: &Config) -> Result<Arc<dyn ServerCertVerifier>, TlsError> {
    let skip_verification = match (config.mqtt_allow_invalid_certificates, config.is_css()) {
        (false, _) => false,
        (true, true) => {
            tracing::warn!(
                "MQTTAllowInvalidCertificates is ignored on a CSS: the MQTT broker's certificate is verified"
            );
            false
        }
        (true, false) => {
            tracing::error!(
                "MQTTAllowInvalidCertificates is true: the MQTT broker's certificate is NOT verified; any server can pose as the broker"
            );
            true
        }
    };
    let base: Arc<dyn ServerCertVerifier> = if skip_verification {
        Arc::new(WithoutChain {
            verdict: Verdict::AcceptAny,
            provider: provider(),
        })
    } else {
        mqtt_chain_verifier(config)?
    };
    let pins = pins(&config.mqtt_pinned_cert_fingerprints);
    if pins.is_empty() {
        return Ok(base);
    }
    Ok(Arc::new(PinnedVerifier { inner: base, pins }))
}

/// Chain verification against `MQTTCACertificate` (system roots when empty, or when it is
/// the default and that file does not exist).
fn mqtt_chain_verifier(config: &Config) -> Result<Arc<dyn ServerCertVerifier>, TlsError> {
    let value = config.mqtt_ca_certificate.trim();
    if value == DEFAULT_MQTT_CA_CERTIFICATE {
        let path = config.resolve_path(value);
        if matches!(std::fs::metadata(&path), Err(e) if e.kind() == ErrorKind::NotFound) {
            tracing::info!(
                path = %path.display(),
                "MQTTCACertificate is the default and the file does not exist: trusting the system root certificates for the MQTT broker"
            );
            return system_verifier(MQTT_CA);
        }
    }
    trusted(config, MQTT_CA, value, Some(&config.allowed_certificate_extensions))
}

/// `MQTTSSLCert` and `MQTTSSLKey`: both or neither.
fn mqtt_client_certificate(config: &Config) -> Result<Option<ClientAuth>, TlsError> {
    let certificate = config.mqtt_ssl_cert.trim();
    let key = config.mqtt_ssl_key.expose().trim();
    let missing = |key: &'static str, other: &str| TlsError::Setting {
        key,
        detail: format!("not set, but {other} is; a client certificate needs both {MQTT_CERT} and {MQTT_KEY}"),
    };
    match (certificate.is_empty(), key.is_empty()) {
        (true, true) => return Ok(None),
        (false, true) => return Err(missing(MQTT_KEY, MQTT_CERT)),
        (true, false) => return Err(missing(MQTT_CERT, MQTT_KEY)),
        (false, false) => {}
    }
    let (cert_pem, origin) = setting_pem(
        config,
        MQTT_CERT,
        certificate,
        Some(&config.allowed_certificate_extensions),
    )?;
    let (key_pem, _) = setting_pem(config, MQTT_KEY, key, Some(&config.allowed_key_extensions))?;
    let chain = parse_certificates(&cert_pem).map_err(TlsError::setting(MQTT_CERT))?;
    let private_key = parse_key(&key_pem).map_err(TlsError::setting(MQTT_KEY))?;
    Ok(Some((chain, private_key, origin)))
}

#[cfg(test)]
mod tests;
