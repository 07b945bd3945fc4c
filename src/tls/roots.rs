//! Trust anchors for the client connections and the chain verification built on them: a
//! configured CA setting, or the system roots when none is set.
//!
//! Differences from the original, on purpose (security.md §8.3): a CA value that is
//! neither a readable file nor PEM holding at least one usable certificate is a start-up
//! error naming the key; the original fell back to an empty trust store that trusted
//! nothing. The system roots are loaded with `rustls-native-certs`; if the system has none,
//! start-up goes on with a warning and every handshake fails with an error naming the key
//! to set (the original behaved the same at connect time).

use super::pem::{parse_certificates, setting_pem};
use super::verifiers::{Verdict, WithoutChain};
use super::{provider, TlsError};
use crate::config::Config;
use rustls::client::danger::ServerCertVerifier;
use rustls::client::WebPkiServerVerifier;
use rustls::RootCertStore;
use std::sync::Arc;

/// Chain verification against the CA setting `key` whose (trimmed) value is `value`, or
/// against the system roots when it is empty. `extensions`: see [`setting_pem`].
pub(super) fn trusted(
    config: &Config,
    key: &'static str,
    value: &str,
    extensions: Option<&[String]>,
) -> Result<Arc<dyn ServerCertVerifier>, TlsError> {
    if value.is_empty() {
        return system_verifier(key);
    }
    let (roots, origin) = configured_roots(config, key, value, extensions)?;
    chain_verifier(key, roots, &origin)
}

/// Chain verification against the system roots; `key` is the setting that would replace
/// them.
pub(super) fn system_verifier(key: &'static str) -> Result<Arc<dyn ServerCertVerifier>, TlsError> {
    chain_verifier(key, system_roots(), "system roots")
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
pub(super) fn chain_verifier(
    key: &'static str,
    roots: RootCertStore,
    origin: &str,
) -> Result<Arc<dyn ServerCertVerifier>, TlsError> {
    if roots.is_empty() {
        tracing::warn!(
            setting = key,
            "no trusted root certificates ({origin} are empty): TLS connections will fail until {key} is set"
        );
        return Ok(Arc::new(WithoutChain {
            verdict: Verdict::RefuseAll { key },
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
