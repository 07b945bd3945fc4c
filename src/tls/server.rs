//! The rustls settings of the HTTPS listeners (TCP and Unix socket alike): the identity
//! of [`super::identity`] served with TLS 1.2 and 1.3, no client certificates, and ALPN
//! `http/1.1`: the service speaks HTTP/1.1 only, which every client of the original speaks
//! (its HTTP/2 offer over TLS is Go's default, not something its clients rely on), and one
//! HTTP implementation keeps the binary and what a request can reach small.

use super::identity::{identity, Identity};
use super::{provider, TlsError, PROTOCOL_VERSIONS};
use crate::config::Config;
use rustls::sign::SingleCertAndKey;
use std::sync::Arc;

/// The HTTPS server configuration for this node: its identity (see [`identity`]), TLS 1.2
/// and 1.3 only, no client certificates, ALPN `http/1.1`. Logs where the
/// certificate comes from and its fingerprint.
pub fn server_config(config: &Config) -> Result<Arc<rustls::ServerConfig>, TlsError> {
    let identity = identity(config)?;
    tracing::info!(
        certificate = %identity.origin,
        sha256 = %identity.fingerprint(),
        "HTTPS server certificate"
    );
    build_server_config(&identity)
}

/// Builds a rustls server configuration serving `identity`.
pub fn build_server_config(identity: &Identity) -> Result<Arc<rustls::ServerConfig>, TlsError> {
    let pair_error = |source| TlsError::Pair {
        origin: identity.origin.clone(),
        source,
    };
    let mut server = rustls::ServerConfig::builder_with_provider(provider())
        .with_protocol_versions(PROTOCOL_VERSIONS)
        .map_err(pair_error)?
        .with_no_client_auth()
        .with_cert_resolver(Arc::new(SingleCertAndKey::from(identity.key.clone())));
    server.alpn_protocols = vec![b"http/1.1".to_vec()];
    Ok(Arc::new(server))
}
