//! The HTTPS server's certificate and key (spec security.md §8.2): `ServerCertificate` and
//! `ServerKey` (inline PEM or a file path, relative paths under the persistence root) when
//! set, or, on an ESS without them, the self-signed pair of [`super::generated`]. Checked
//! as a pair when loaded, so that a mismatch stops start-up with an error naming the keys
//! instead of failing every handshake.

use super::generated::{generated, GENERATED_DIR};
use super::pem::{not_after, parse_certificates, parse_key, setting_bytes};
use super::{provider, TlsError};
use crate::config::Config;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use rustls::sign::CertifiedKey;
use sha2::{Digest, Sha256};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use time::OffsetDateTime;

/// A certificate chain with its matching private key, and where it came from.
pub struct Identity {
    pub(super) key: Arc<CertifiedKey>,
    /// For logs: `inline PEM`, a file path, or the generated pair's path.
    pub origin: String,
}

impl Identity {
    /// Pairs `chain` with `key`; fails when the key does not belong to the certificate.
    pub(super) fn new(
        chain: Vec<CertificateDer<'static>>,
        key: PrivateKeyDer<'static>,
        origin: String,
    ) -> Result<Identity, rustls::Error> {
        let certified = CertifiedKey::from_der(chain, key, &provider())?;
        Ok(Identity {
            key: Arc::new(certified),
            origin,
        })
    }

    /// The end-entity certificate, DER-encoded.
    pub fn certificate(&self) -> &CertificateDer<'static> {
        &self.key.cert[0]
    }

    /// SHA-256 of the end-entity certificate, upper-case hex separated by colons.
    pub fn fingerprint(&self) -> String {
        fingerprint(self.certificate())
    }
}

/// SHA-256 of a DER certificate as `AB:CD:…`.
pub fn fingerprint(certificate: &CertificateDer<'_>) -> String {
    Sha256::digest(certificate.as_ref())
        .iter()
        .map(|b| format!("{b:02X}"))
        .collect::<Vec<_>>()
        .join(":")
}

/// The server certificate and key the configuration asks for: `ServerCertificate` and
/// `ServerKey` when set (both are then required); otherwise, on an ESS, the generated pair
/// under `{PersistenceRootPath}/sync/certs/`, made when needed.
pub fn identity(config: &Config) -> Result<Identity, TlsError> {
    let resolve = |value: &str| config.resolve_path(value);
    let generated_dir = (!config.is_css()).then(|| config.persistence_root_path.join(GENERATED_DIR));
    identity_from(
        &config.server_certificate,
        config.server_key.expose(),
        &resolve,
        generated_dir.as_deref(),
    )
}

/// [`identity`] with its inputs spelled out: `generated_dir` is where a self-signed pair is
/// kept when both values are empty (`None`: not allowed, as on a CSS).
pub(super) fn identity_from(
    certificate: &str,
    key: &str,
    resolve: &dyn Fn(&str) -> PathBuf,
    generated_dir: Option<&Path>,
) -> Result<Identity, TlsError> {
    let (certificate, key) = (certificate.trim(), key.trim());
    let missing = |key| TlsError::Setting {
        key,
        detail: "not set".to_string(),
    };
    match (certificate.is_empty(), key.is_empty(), generated_dir) {
        (true, true, Some(dir)) => return generated(dir),
        (true, _, _) => return Err(missing("ServerCertificate")),
        (_, true, _) => return Err(missing("ServerKey")),
        _ => {}
    }
    let (cert_pem, cert_origin) = setting_bytes("ServerCertificate", certificate, resolve)?;
    let (key_pem, _) = setting_bytes("ServerKey", key, resolve)?;
    let chain = parse_certificates(&cert_pem).map_err(TlsError::setting("ServerCertificate"))?;
    let private_key = parse_key(&key_pem).map_err(TlsError::setting("ServerKey"))?;
    // Only a warning: unlike the generated pair, a configured certificate is not ours to replace.
    if let Ok(not_after) = not_after(&chain[0]) {
        if not_after <= OffsetDateTime::now_utc() {
            tracing::warn!(certificate = %cert_origin, %not_after, "ServerCertificate has expired");
        }
    }
    Identity::new(chain, private_key, cert_origin.clone()).map_err(|source| TlsError::Pair {
        origin: cert_origin,
        source,
    })
}

#[cfg(test)]
mod tests;
