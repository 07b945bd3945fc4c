//! The server-certificate checks that rustls's own chain verifier does not provide:
//!
//! - Pinning (`MQTTPinnedCertFingerprints`): hex SHA-256 of a full DER certificate,
//!   compared case-insensitively after trimming; colon-separated forms never match, as in
//!   the original. It runs after another verifier, never instead of it: the broker is
//!   accepted only if that verifier accepts it and its end-entity certificate or one of the
//!   intermediates it sends matches a pin.
//! - No chain verification at all: accepting any certificate (`MQTTAllowInvalidCertificates`
//!   on an ESS) or refusing every one with an error naming the key to set (no trust anchors).
//!
//! Every verifier here still checks handshake signatures against the presented
//! certificate's key, so a server must at least hold the key of what it presents.

use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::crypto::CryptoProvider;
use rustls::pki_types::{CertificateDer, ServerName, UnixTime};
use rustls::{CertificateError, DigitallySignedStruct, DistinguishedName, OtherError, SignatureScheme};
use sha2::{Digest, Sha256};
use std::sync::Arc;

/// Pins in canonical form: trimmed, lower case, empty entries dropped. Entries that are not
/// 64 hex digits can never match (as in the original) and are logged.
pub(super) fn pins(values: &[String]) -> Vec<String> {
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
pub(super) fn sha256_hex(certificate: &CertificateDer<'_>) -> String {
    Sha256::digest(certificate.as_ref())
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

/// Runs `inner`, then requires that a presented certificate matches one of `pins`.
#[derive(Debug)]
pub(super) struct PinnedVerifier {
    pub(super) inner: Arc<dyn ServerCertVerifier>,
    /// Canonical pins (see [`pins`]).
    pub(super) pins: Vec<String>,
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

/// What [`WithoutChain`] answers for every certificate.
#[derive(Debug)]
pub(super) enum Verdict {
    /// `MQTTAllowInvalidCertificates` on an ESS: any certificate for any name is accepted.
    AcceptAny,
    /// No trust anchors at all (the system has no root certificates): every certificate is
    /// refused with an error naming `key`, the setting that would supply them.
    RefuseAll { key: &'static str },
}

/// A verifier that decides without chain verification (see [`Verdict`]); handshake
/// signatures are still checked against the presented certificate.
#[derive(Debug)]
pub(super) struct WithoutChain {
    pub(super) verdict: Verdict,
    pub(super) provider: Arc<CryptoProvider>,
}

impl ServerCertVerifier for WithoutChain {
    fn verify_server_cert(
        &self,
        _end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _server_name: &ServerName<'_>,
        _ocsp_response: &[u8],
        _now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        match self.verdict {
            Verdict::AcceptAny => Ok(ServerCertVerified::assertion()),
            Verdict::RefuseAll { key } => Err(rustls::Error::General(format!(
                "no trusted root certificates: the system has none; set {key}"
            ))),
        }
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(message, cert, dss, &self.provider.signature_verification_algorithms)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(message, cert, dss, &self.provider.signature_verification_algorithms)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.provider.signature_verification_algorithms.supported_schemes()
    }
}
