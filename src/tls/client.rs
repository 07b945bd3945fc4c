//! Client-side TLS (spec security.md §8.3): the rustls client configurations for the
//! ESS → CSS HTTPS connection ([`css_client_config`]), for the node → MQTT broker
//! connection ([`mqtt_client_config`]) and for webhook calls ([`webhook_client_config`],
//! built when the first call is made). The first two are built once at start-up, so that a
//! misconfigured value stops the node with an error naming the key; the transports connect
//! with them later (the server name is theirs to give: `HTTPCSSHost`, the broker host).
//!
//! CA, certificate and key values are inline PEM (the value holds a `-----BEGIN` block) or
//! a file path, relative paths under the persistence root, as on the server side. For the
//! MQTT values a path must also have an allowed extension (`AllowedCertificateExtensions`,
//! `AllowedKeyExtensions`); the ESS → CSS CA has no extension check (as the original).
//!
//! Differences from the original, on purpose (the flaws of §8.3 and their fixes):
//! - A value that is neither a readable file nor PEM holding at least one usable
//!   certificate is a start-up error naming the key; the original fell back to an empty
//!   trust store that trusted nothing.
//! - When `MQTTCACertificate` is its default `broker/ca/ca.cert.pem` and that file does not
//!   exist, the system roots are used (logged at info) instead of an empty trust store.
//! - `MQTTSSLCert` without `MQTTSSLKey` (or the reverse) is an error naming the missing key;
//!   the original silently connected without a client certificate.
//! - `MQTTAllowInvalidCertificates` on a CSS is ignored with a warning and verification
//!   stays on (the original ignored it too); on an ESS it disables verification, logged as
//!   an error when the configuration is built.
//!
//! `MQTTPinnedCertFingerprints` (hex SHA-256 of a full DER certificate, compared
//! case-insensitively after trimming; colon-separated forms never match, as in the
//! original) is checked in addition to verification: the broker is accepted only if its
//! end-entity certificate or one of the intermediates it sends matches a pin.
//!
//! The PostgreSQL database of a CSS (`StorageProvider postgres`) is reached over TLS unless its
//! URL says `sslmode=disable`; its certificate is always verified, against
//! `PostgresCACertificate` or the system roots (libpq's `require` would not verify it).
//!
//! When no trust is configured, the system roots are loaded with `rustls-native-certs`. If
//! the system has none, start-up goes on with a warning and every handshake fails with an
//! error naming the key to set (the original behaved the same at connect time).

use super::{parse_certificates, parse_key, provider, setting_bytes, TlsError};
use crate::config::{Config, StorageKind};
use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::client::WebPkiServerVerifier;
use rustls::crypto::CryptoProvider;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName, UnixTime};
use rustls::{
    CertificateError, ClientConfig, DigitallySignedStruct, DistinguishedName, OtherError, RootCertStore,
    SignatureScheme,
};
use sha2::{Digest, Sha256};
use std::io::ErrorKind;
use std::path::{Path, PathBuf};
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
/// certificate, pinning and `MQTTAllowInvalidCertificates`.
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
    let verifier = chain_verifier(SYSTEM_ROOTS, system_roots(), "system roots")?;
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
    let verifier = if value.is_empty() {
        chain_verifier(POSTGRES_CA, system_roots(), "system roots")?
    } else {
        let (roots, origin) =
            configured_roots(config, POSTGRES_CA, value, Some(&config.allowed_certificate_extensions))?;
        chain_verifier(POSTGRES_CA, roots, &origin)?
    };
    build_client_config(POSTGRES_CA, verifier, None).map(Some)
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
        .with_protocol_versions(&[&rustls::version::TLS13, &rustls::version::TLS12])
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
    let value = config.http_css_ca_certificate.trim();
    if value.is_empty() {
        return chain_verifier(HTTP_CSS_CA, system_roots(), "system roots");
    }
    let (roots, origin) = configured_roots(config, HTTP_CSS_CA, value, None)?;
    chain_verifier(HTTP_CSS_CA, roots, &origin)
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
        Arc::new(AcceptAnyCertificate { provider: provider() })
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
    if value.is_empty() {
        return chain_verifier(MQTT_CA, system_roots(), "system roots");
    }
    if value == DEFAULT_MQTT_CA_CERTIFICATE {
        let path = config.resolve_path(value);
        if matches!(std::fs::metadata(&path), Err(e) if e.kind() == ErrorKind::NotFound) {
            tracing::info!(
                path = %path.display(),
                "MQTTCACertificate is the default and the file does not exist: trusting the system root certificates for the MQTT broker"
            );
            return chain_verifier(MQTT_CA, system_roots(), "system roots");
        }
    }
    let (roots, origin) = configured_roots(config, MQTT_CA, value, Some(&config.allowed_certificate_extensions))?;
    chain_verifier(MQTT_CA, roots, &origin)
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
    let chain = parse_certificates(&cert_pem).map_err(|detail| TlsError::Setting { key: MQTT_CERT, detail })?;
    let private_key = parse_key(&key_pem).map_err(|detail| TlsError::Setting { key: MQTT_KEY, detail })?;
    Ok(Some((chain, private_key, origin)))
}

/// The PEM text of a setting (inline or from its file), with the extension check for
/// paths when `extensions` is given. Errors say that the value is neither.
fn setting_pem(
    config: &Config,
    key: &'static str,
    value: &str,
    extensions: Option<&[String]>,
) -> Result<(Vec<u8>, String), TlsError> {
    let inline = value.contains("-----BEGIN");
    if let (false, Some(allowed)) = (inline, extensions) {
        check_extension(key, value, allowed)?;
    }
    let resolve = |value: &str| -> PathBuf { config.resolve_path(value) };
    setting_bytes(key, value, &resolve).map_err(|error| match error {
        TlsError::Setting { key, detail } => TlsError::Setting {
            key,
            detail: format!("{detail} (the value is neither a readable file nor inline PEM)"),
        },
        other => other,
    })
}

/// A path's extension must be one of `allowed` (case-insensitive, with or without the dot),
/// as the configuration's path validation requires (spec config.md §5 step 21).
fn check_extension(key: &'static str, value: &str, allowed: &[String]) -> Result<(), TlsError> {
    let extension = Path::new(value)
        .extension()
        .map(|ext| format!(".{}", ext.to_string_lossy().to_lowercase()))
        .unwrap_or_default();
    let ok = allowed.iter().any(|entry| {
        let entry = entry.trim().to_lowercase();
        !extension.is_empty() && entry.trim_start_matches('.') == extension.trim_start_matches('.')
    });
    if ok {
        Ok(())
    } else {
        Err(TlsError::Setting {
            key,
            detail: format!("invalid file path {value}: file extension {extension:?} not allowed"),
        })
    }
}

/// The CA certificates of a setting: at least one must be usable as a trust anchor.
fn configured_roots(
    config: &Config,
    key: &'static str,
    value: &str,
    extensions: Option<&[String]>,
) -> Result<(RootCertStore, String), TlsError> {
    let (pem, origin) = setting_pem(config, key, value, extensions)?;
    let certificates = parse_certificates(&pem).map_err(|detail| TlsError::Setting {
        key,
        detail: format!("{origin}: {detail}"),
    })?;
    let mut roots = RootCertStore::empty();
    let (added, ignored) = roots.add_parsable_certificates(certificates);
    if added == 0 {
        return Err(TlsError::Setting {
            key,
            detail: format!("{origin}: no usable CA certificate ({ignored} could not be parsed)"),
        });
    }
    if ignored > 0 {
        tracing::warn!(setting = key, %origin, ignored, "some CA certificates could not be parsed and are ignored");
    }
    tracing::debug!(setting = key, %origin, certificates = added, "CA certificates loaded");
    Ok((roots, origin))
}

/// The platform's trusted root certificates; possibly none (logged).
fn system_roots() -> RootCertStore {
    let result = rustls_native_certs::load_native_certs();
    for error in &result.errors {
        tracing::warn!(%error, "cannot load some system root certificates");
    }
    let mut roots = RootCertStore::empty();
    let (added, ignored) = roots.add_parsable_certificates(result.certs);
    tracing::debug!(certificates = added, ignored, "system root certificates loaded");
    roots
}

/// Standard chain and name verification against `roots`. An empty store (only possible
/// for the system roots) gives a verifier that refuses every certificate, naming `key`.
fn chain_verifier(
    key: &'static str,
    roots: RootCertStore,
    origin: &str,
) -> Result<Arc<dyn ServerCertVerifier>, TlsError> {
    if roots.is_empty() {
        tracing::warn!(
            setting = key,
            "no trusted root certificates ({origin} are empty): TLS connections will fail until {key} is set"
        );
        return Ok(Arc::new(NoTrustAnchors {
            key,
            provider: provider(),
        }));
    }
    let verifier = WebPkiServerVerifier::builder_with_provider(Arc::new(roots), provider())
        .build()
        .map_err(|e| TlsError::Setting {
            key,
            detail: format!("{origin}: {e}"),
        })?;
    Ok(verifier)
}

/// Pins in canonical form: trimmed, lower case, empty entries dropped. Entries that are not
/// 64 hex digits can never match (as in the original) and are logged.
fn pins(values: &[String]) -> Vec<String> {
    let pins: Vec<String> = values
        .iter()
        .map(|value| value.trim().to_ascii_lowercase())
        .filter(|value| !value.is_empty())
        .collect();
    for pin in &pins {
        if pin.len() != 64 || !pin.bytes().all(|b| b.is_ascii_hexdigit()) {
            tracing::warn!(
                %pin,
                "MQTTPinnedCertFingerprints entry is not 64 hex digits (SHA-256 of the DER certificate, no colons) and can never match"
            );
        }
    }
    pins
}

/// SHA-256 of a DER certificate as lower-case hex without separators.
fn sha256_hex(certificate: &CertificateDer<'_>) -> String {
    Sha256::digest(certificate.as_ref())
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

/// Handshake signatures are checked against the presented certificate's key in every
/// verifier, also when the certificate itself is not verified.
fn verify_signature(
    provider: &CryptoProvider,
    tls13: bool,
    message: &[u8],
    cert: &CertificateDer<'_>,
    dss: &DigitallySignedStruct,
) -> Result<HandshakeSignatureValid, rustls::Error> {
    let algorithms = &provider.signature_verification_algorithms;
    if tls13 {
        rustls::crypto::verify_tls13_signature(message, cert, dss, algorithms)
    } else {
        rustls::crypto::verify_tls12_signature(message, cert, dss, algorithms)
    }
}

/// Runs `inner`, then requires that a presented certificate matches one of `pins`.
#[derive(Debug)]
struct PinnedVerifier {
    inner: Arc<dyn ServerCertVerifier>,
    /// Canonical pins (see [`pins`]).
    pins: Vec<String>,
}

/// The broker's chain matched no pin. rustls shows it with `Debug`, hence the same text.
#[derive(thiserror::Error)]
#[error("no certificate presented by the server matches MQTTPinnedCertFingerprints")]
struct PinMismatch;

impl std::fmt::Debug for PinMismatch {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        std::fmt::Display::fmt(self, f)
    }
}

impl ServerCertVerifier for PinnedVerifier {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        server_name: &ServerName<'_>,
        ocsp_response: &[u8],
        now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        let verified = self
            .inner
            .verify_server_cert(end_entity, intermediates, server_name, ocsp_response, now)?;
        let pinned = std::iter::once(end_entity)
            .chain(intermediates)
            .any(|certificate| self.pins.contains(&sha256_hex(certificate)));
        if pinned {
            Ok(verified)
        } else {
            Err(rustls::Error::InvalidCertificate(CertificateError::Other(OtherError(
                Arc::new(PinMismatch),
            ))))
        }
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        self.inner.verify_tls12_signature(message, cert, dss)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        self.inner.verify_tls13_signature(message, cert, dss)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.inner.supported_verify_schemes()
    }

    fn root_hint_subjects(&self) -> Option<&[DistinguishedName]> {
        self.inner.root_hint_subjects()
    }
}

/// `MQTTAllowInvalidCertificates` on an ESS: any certificate for any name is accepted
/// (handshake signatures are still checked against it).
#[derive(Debug)]
struct AcceptAnyCertificate {
    provider: Arc<CryptoProvider>,
}

impl ServerCertVerifier for AcceptAnyCertificate {
    fn verify_server_cert(
        &self,
        _end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _server_name: &ServerName<'_>,
        _ocsp_response: &[u8],
        _now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        Ok(ServerCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        verify_signature(&self.provider, false, message, cert, dss)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        verify_signature(&self.provider, true, message, cert, dss)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.provider.signature_verification_algorithms.supported_schemes()
    }
}

/// No trust anchors at all (the system has no root certificates): every certificate is
/// refused with an error naming the key to set.
#[derive(Debug)]
struct NoTrustAnchors {
    key: &'static str,
    provider: Arc<CryptoProvider>,
}

impl ServerCertVerifier for NoTrustAnchors {
    fn verify_server_cert(
        &self,
        _end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _server_name: &ServerName<'_>,
        _ocsp_response: &[u8],
        _now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        Err(rustls::Error::General(format!(
            "no trusted root certificates: the system has none; set {}",
            self.key
        )))
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        verify_signature(&self.provider, false, message, cert, dss)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        verify_signature(&self.provider, true, message, cert, dss)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.provider.signature_verification_algorithms.supported_schemes()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::{NodeType, Protocol, Secret};
    use rcgen::{
        BasicConstraints, CertificateParams, CertifiedIssuer, ExtendedKeyUsagePurpose, IsCa, KeyPair, KeyUsagePurpose,
    };
    use std::fs;

    /// A CA, an intermediate signed by it, and a server certificate for `broker.example`
    /// and `css.example` signed by the intermediate; plus an unrelated self-signed one.
    struct Pki {
        ca_pem: String,
        intermediate: CertificateDer<'static>,
        leaf: CertificateDer<'static>,
        leaf_pem: String,
        leaf_key_pem: String,
        self_signed: CertificateDer<'static>,
    }

    fn ca_params(name: &str) -> CertificateParams {
        let mut params = CertificateParams::new(Vec::<String>::new()).unwrap();
        params.distinguished_name.push(rcgen::DnType::CommonName, name);
        params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        params.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
        params
    }

    fn leaf_params(names: &[&str]) -> CertificateParams {
        let names: Vec<String> = names.iter().map(|n| n.to_string()).collect();
        let mut params = CertificateParams::new(names).unwrap();
        params.is_ca = IsCa::ExplicitNoCa;
        params.key_usages = vec![KeyUsagePurpose::DigitalSignature];
        params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth];
        params
    }

    fn pki() -> Pki {
        let ca = CertifiedIssuer::self_signed(ca_params("Test Root CA"), KeyPair::generate().unwrap()).unwrap();
        let intermediate =
            CertifiedIssuer::signed_by(ca_params("Test Intermediate"), KeyPair::generate().unwrap(), &ca).unwrap();
        let leaf_key = KeyPair::generate().unwrap();
        let leaf = leaf_params(&["broker.example", "css.example"])
            .signed_by(&leaf_key, &intermediate)
            .unwrap();
        let other_key = KeyPair::generate().unwrap();
        let self_signed = leaf_params(&["rogue.example"]).self_signed(&other_key).unwrap();
        Pki {
            ca_pem: ca.pem(),
            intermediate: intermediate.der().clone(),
            leaf: leaf.der().clone(),
            leaf_pem: leaf.pem(),
            leaf_key_pem: leaf_key.serialize_pem(),
            self_signed: self_signed.der().clone(),
        }
    }

    /// The default configuration (a CSS using MQTT over TLS) with its persistence root in
    /// `root`.
    fn base_config(root: &Path) -> Config {
        let mut config = Config::load(Path::new("/nonexistent/edge-sync-service/sync.conf"), &|_| None)
            .expect("default configuration");
        config.persistence_root_path = root.to_path_buf();
        config
    }

    /// An ESS polling the CSS over HTTPS.
    fn https_ess(root: &Path) -> Config {
        let mut config = base_config(root);
        config.node_type = NodeType::Ess;
        config.communication_protocol = Protocol::Http;
        config.http_css_host = "css.example".to_string();
        config.http_css_port = 8443;
        config.http_css_use_ssl = true;
        config
    }

    fn check(
        verifier: &dyn ServerCertVerifier,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        name: &str,
    ) -> Result<ServerCertVerified, rustls::Error> {
        let name = ServerName::try_from(name.to_string()).unwrap();
        verifier.verify_server_cert(end_entity, intermediates, &name, &[], UnixTime::now())
    }

    fn error_text<T>(result: Result<T, TlsError>) -> String {
        match result {
            Ok(_) => panic!("expected an error"),
            Err(error) => error.to_string(),
        }
    }

    #[test]
    fn css_config_only_for_an_ess_polling_over_https() {
        let root = tempfile::tempdir().unwrap();
        let mut config = base_config(root.path());
        config.http_css_use_ssl = true;
        assert!(css_client_config(&config).unwrap().is_none(), "CSS");
        config.communication_protocol = Protocol::HybridMqtt;
        assert!(css_client_config(&config).unwrap().is_none(), "hybrid CSS");

        let mut config = https_ess(root.path());
        config.http_css_use_ssl = false;
        assert!(css_client_config(&config).unwrap().is_none(), "plain http");
        config.http_css_use_ssl = true;
        config.communication_protocol = Protocol::Mqtt;
        assert!(css_client_config(&config).unwrap().is_none(), "ESS using MQTT");

        // Empty HTTPCSSCACertificate: the system roots, whatever this machine has.
        let config = https_ess(root.path());
        assert!(css_client_config(&config).unwrap().is_some());
    }

    #[test]
    fn css_trust_from_inline_pem() {
        let pki = pki();
        let root = tempfile::tempdir().unwrap();
        let mut config = https_ess(root.path());
        config.http_css_ca_certificate = pki.ca_pem.clone();
        assert!(css_client_config(&config).unwrap().is_some());
        let verifier = css_verifier(&config).unwrap();
        let chain = [pki.intermediate.clone()];
        check(verifier.as_ref(), &pki.leaf, &chain, "css.example").expect("trusted");
        assert!(check(verifier.as_ref(), &pki.leaf, &chain, "other.example").is_err());
        assert!(
            check(verifier.as_ref(), &pki.leaf, &[], "css.example").is_err(),
            "no intermediate"
        );
        assert!(check(verifier.as_ref(), &pki.self_signed, &[], "rogue.example").is_err());
    }

    #[test]
    fn css_trust_from_a_path_relative_to_the_persistence_root_or_absolute() {
        let pki = pki();
        let root = tempfile::tempdir().unwrap();
        fs::create_dir_all(root.path().join("tls")).unwrap();
        // No extension check for the ESS → CSS CA (as the original).
        fs::write(root.path().join("tls/css-ca.txt"), &pki.ca_pem).unwrap();
        let chain = [pki.intermediate.clone()];
        for value in [
            "tls/css-ca.txt".to_string(),
            root.path().join("tls/css-ca.txt").display().to_string(),
        ] {
            let mut config = https_ess(root.path());
            config.http_css_ca_certificate = value.clone();
            assert!(css_client_config(&config).unwrap().is_some(), "{value}");
            let verifier = css_verifier(&config).unwrap();
            check(verifier.as_ref(), &pki.leaf, &chain, "css.example").expect(&value);
        }
    }

    #[test]
    fn css_ca_that_is_neither_a_file_nor_pem_is_an_error_naming_the_key() {
        let pki = pki();
        let root = tempfile::tempdir().unwrap();
        let mut config = https_ess(root.path());
        for value in [
            "garbage".to_string(),
            "/nonexistent/ca.pem".to_string(),
            "-----BEGIN CERTIFICATE-----\nnot base64 !!!\n-----END CERTIFICATE-----\n".to_string(),
            // PEM without any certificate.
            pki.leaf_key_pem.clone(),
        ] {
            config.http_css_ca_certificate = value.clone();
            let message = error_text(css_client_config(&config));
            assert!(message.contains("HTTPCSSCACertificate"), "{value}: {message}");
        }
        config.http_css_ca_certificate = "garbage".to_string();
        let message = error_text(css_client_config(&config));
        assert!(message.contains("neither a readable file nor inline PEM"), "{message}");
        // A file holding no PEM at all.
        fs::write(root.path().join("empty.pem"), "just text\n").unwrap();
        config.http_css_ca_certificate = "empty.pem".to_string();
        let message = error_text(css_client_config(&config));
        assert!(message.contains("HTTPCSSCACertificate"), "{message}");
    }

    #[test]
    fn mqtt_config_only_with_mqtt_over_tls() {
        let root = tempfile::tempdir().unwrap();
        let mut config = base_config(root.path());
        config.mqtt_use_ssl = false;
        assert!(mqtt_client_config(&config).unwrap().is_none(), "tcp://");
        let mut config = https_ess(root.path());
        config.mqtt_use_ssl = true;
        assert!(mqtt_client_config(&config).unwrap().is_none(), "http protocol");
    }

    #[test]
    fn default_mqtt_ca_absent_uses_the_system_roots() {
        let root = tempfile::tempdir().unwrap();
        let config = base_config(root.path());
        assert_eq!(config.mqtt_ca_certificate, DEFAULT_MQTT_CA_CERTIFICATE);
        assert!(config.mqtt_use_ssl && config.communication_protocol.uses_mqtt());
        assert!(mqtt_client_config(&config).unwrap().is_some());
    }

    #[test]
    fn default_mqtt_ca_present_is_used_and_must_be_valid() {
        let pki = pki();
        let root = tempfile::tempdir().unwrap();
        let path = root.path().join(DEFAULT_MQTT_CA_CERTIFICATE);
        fs::create_dir_all(path.parent().unwrap()).unwrap();
        fs::write(&path, &pki.ca_pem).unwrap();
        let config = base_config(root.path());
        assert!(mqtt_client_config(&config).unwrap().is_some());
        let verifier = mqtt_verifier(&config).unwrap();
        check(
            verifier.as_ref(),
            &pki.leaf,
            std::slice::from_ref(&pki.intermediate),
            "broker.example",
        )
        .expect("trusted");

        fs::write(&path, "not a certificate\n").unwrap();
        let message = error_text(mqtt_client_config(&config));
        assert!(message.contains("MQTTCACertificate"), "{message}");
    }

    #[test]
    fn explicit_mqtt_ca_that_cannot_be_loaded_is_an_error_naming_the_key() {
        let root = tempfile::tempdir().unwrap();
        let mut config = base_config(root.path());
        for value in ["broker/ca/other.pem", "/nonexistent/broker-ca.pem", "garbage.pem"] {
            config.mqtt_ca_certificate = value.to_string();
            let message = error_text(mqtt_client_config(&config));
            assert!(message.contains("MQTTCACertificate"), "{value}: {message}");
        }
        // A path whose extension is not allowed, even if the file exists.
        fs::write(root.path().join("ca.txt"), pki().ca_pem).unwrap();
        config.mqtt_ca_certificate = "ca.txt".to_string();
        let message = error_text(mqtt_client_config(&config));
        assert!(
            message.contains("MQTTCACertificate") && message.contains("extension"),
            "{message}"
        );
    }

    #[test]
    fn mqtt_client_certificate_needs_both_cert_and_key() {
        let pki = pki();
        let root = tempfile::tempdir().unwrap();
        let mut config = base_config(root.path());
        config.mqtt_ssl_cert = pki.leaf_pem.clone();
        let message = error_text(mqtt_client_config(&config));
        assert!(message.contains("MQTTSSLKey"), "{message}");

        config.mqtt_ssl_cert = String::new();
        config.mqtt_ssl_key = Secret::new(pki.leaf_key_pem.clone());
        let message = error_text(mqtt_client_config(&config));
        assert!(message.contains("MQTTSSLCert"), "{message}");

        config.mqtt_ssl_cert = pki.leaf_pem.clone();
        assert!(mqtt_client_config(&config).unwrap().is_some(), "inline pair");

        fs::create_dir_all(root.path().join("client")).unwrap();
        fs::write(root.path().join("client/cert.crt"), &pki.leaf_pem).unwrap();
        fs::write(root.path().join("client/key.key"), &pki.leaf_key_pem).unwrap();
        config.mqtt_ssl_cert = "client/cert.crt".to_string();
        config.mqtt_ssl_key = Secret::new("client/key.key");
        assert!(mqtt_client_config(&config).unwrap().is_some(), "pair from files");

        // A key that is not the certificate's.
        let other = KeyPair::generate().unwrap().serialize_pem();
        config.mqtt_ssl_key = Secret::new(other);
        let message = error_text(mqtt_client_config(&config));
        assert!(message.contains("MQTTSSLKey"), "{message}");

        config.mqtt_ssl_key = Secret::new("client/missing.key");
        let message = error_text(mqtt_client_config(&config));
        assert!(message.contains("MQTTSSLKey"), "{message}");
    }

    #[test]
    fn pinning_is_checked_in_addition_to_chain_verification() {
        let pki = pki();
        let root = tempfile::tempdir().unwrap();
        let chain = [pki.intermediate.clone()];
        let with_pins = |pins: Vec<String>| {
            let mut config = base_config(root.path());
            config.mqtt_ca_certificate = pki.ca_pem.clone();
            config.mqtt_pinned_cert_fingerprints = pins;
            mqtt_verifier(&config).unwrap()
        };
        let leaf_pin = sha256_hex(&pki.leaf);
        let intermediate_pin = sha256_hex(&pki.intermediate);

        // Case-insensitive, trimmed.
        let verifier = with_pins(vec![format!("  {}\t", leaf_pin.to_uppercase())]);
        check(verifier.as_ref(), &pki.leaf, &chain, "broker.example").expect("leaf pin");
        // Right pin, wrong name: chain verification still applies.
        assert!(check(verifier.as_ref(), &pki.leaf, &chain, "other.example").is_err());
        // Right pin, chain not verifiable.
        assert!(check(verifier.as_ref(), &pki.leaf, &[], "broker.example").is_err());

        let verifier = with_pins(vec!["00".repeat(32), intermediate_pin]);
        check(verifier.as_ref(), &pki.leaf, &chain, "broker.example").expect("intermediate pin");

        let verifier = with_pins(vec!["ab".repeat(32)]);
        let error = check(verifier.as_ref(), &pki.leaf, &chain, "broker.example").unwrap_err();
        assert!(error.to_string().contains("MQTTPinnedCertFingerprints"), "{error}");

        // Colon-separated forms do not match (as the original).
        let colons = fingerprint_with_colons(&pki.leaf);
        let verifier = with_pins(vec![colons]);
        assert!(check(verifier.as_ref(), &pki.leaf, &chain, "broker.example").is_err());

        // Empty entries are no pins at all.
        let verifier = with_pins(vec![String::new(), "  ".to_string()]);
        check(verifier.as_ref(), &pki.leaf, &chain, "broker.example").expect("no pins");
    }

    fn fingerprint_with_colons(certificate: &CertificateDer<'_>) -> String {
        super::super::fingerprint(certificate)
    }

    #[test]
    fn allow_invalid_disables_verification_on_an_ess_only() {
        let pki = pki();
        let root = tempfile::tempdir().unwrap();
        let mut config = base_config(root.path());
        config.node_type = NodeType::Ess;
        config.mqtt_allow_invalid_certificates = true;
        // A CA value that cannot be loaded does not matter when nothing is verified.
        config.mqtt_ca_certificate = "broker/ca/missing.pem".to_string();
        assert!(mqtt_client_config(&config).unwrap().is_some());
        let verifier = mqtt_verifier(&config).unwrap();
        check(verifier.as_ref(), &pki.self_signed, &[], "anything.example").expect("accepted on an ESS");

        // Pins still apply.
        config.mqtt_pinned_cert_fingerprints = vec![sha256_hex(&pki.self_signed)];
        let verifier = mqtt_verifier(&config).unwrap();
        check(verifier.as_ref(), &pki.self_signed, &[], "anything.example").expect("pinned");
        assert!(check(verifier.as_ref(), &pki.leaf, &[], "broker.example").is_err());

        // On a CSS the switch is ignored: verification stays on.
        let mut config = base_config(root.path());
        config.mqtt_allow_invalid_certificates = true;
        config.mqtt_ca_certificate = pki.ca_pem.clone();
        let verifier = mqtt_verifier(&config).unwrap();
        assert!(check(verifier.as_ref(), &pki.self_signed, &[], "rogue.example").is_err());
        check(
            verifier.as_ref(),
            &pki.leaf,
            std::slice::from_ref(&pki.intermediate),
            "broker.example",
        )
        .expect("trusted");
        config.mqtt_ca_certificate = "broker/ca/missing.pem".to_string();
        let message = error_text(mqtt_client_config(&config));
        assert!(message.contains("MQTTCACertificate"), "{message}");
    }

    #[test]
    fn empty_trust_store_refuses_every_certificate_naming_the_key() {
        let pki = pki();
        let verifier = chain_verifier(MQTT_CA, RootCertStore::empty(), "system roots").unwrap();
        let error = check(
            verifier.as_ref(),
            &pki.leaf,
            std::slice::from_ref(&pki.intermediate),
            "broker.example",
        )
        .unwrap_err();
        assert!(error.to_string().contains("MQTTCACertificate"), "{error}");
    }
}
