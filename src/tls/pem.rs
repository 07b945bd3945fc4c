//! Certificate and key settings as both sides of TLS read them: the value is inline PEM
//! when it holds a `-----BEGIN` block, else a file path (relative paths under the
//! persistence root). Kept in one place so that the server's `ServerCertificate` and the
//! clients' CA and certificate settings accept the same forms and fail alike.

use super::TlsError;
use crate::config::Config;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use std::fs;
use std::path::{Path, PathBuf};
use time::OffsetDateTime;

/// The PEM text of a setting: the value itself when it holds a PEM block, else the file it
/// names. Also returns a description of the origin for logs.
pub(super) fn setting_bytes(
    key: &'static str,
    value: &str,
    resolve: &dyn Fn(&str) -> PathBuf,
) -> Result<(Vec<u8>, String), TlsError> {
    if value.contains("-----BEGIN") {
        return Ok((value.as_bytes().to_vec(), "inline PEM".to_string()));
    }
    let path = resolve(value);
    let bytes = fs::read(&path).map_err(|e| TlsError::Setting {
        key,
        detail: format!("cannot read {}: {e}", path.display()),
    })?;
    Ok((bytes, path.display().to_string()))
}

/// [`setting_bytes`] for the client settings: a path must also have one of `extensions`
/// when given, and errors say that the value is neither a readable file nor inline PEM.
pub(super) fn setting_pem(
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

/// Every `CERTIFICATE` block of `pem`, in order; at least one.
pub(super) fn parse_certificates(pem: &[u8]) -> Result<Vec<CertificateDer<'static>>, String> {
    let chain = CertificateDer::pem_slice_iter(pem)
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| format!("invalid PEM: {e}"))?;
    if chain.is_empty() {
        return Err("no CERTIFICATE PEM block found".to_string());
    }
    Ok(chain)
}

/// The first private key block of `pem` (PKCS#8, PKCS#1 `RSA PRIVATE KEY` or SEC1).
pub(super) fn parse_key(pem: &[u8]) -> Result<PrivateKeyDer<'static>, String> {
    PrivateKeyDer::from_pem_slice(pem).map_err(|e| match e {
        rustls::pki_types::pem::Error::NoItemsFound => "no private key PEM block found".to_string(),
        other => format!("invalid PEM: {other}"),
    })
}

/// The end of a certificate's validity period.
pub(super) fn not_after(certificate: &CertificateDer<'_>) -> Result<OffsetDateTime, String> {
    let (_, parsed) = x509_parser::parse_x509_certificate(certificate.as_ref()).map_err(|e| e.to_string())?;
    Ok(parsed.validity().not_after.to_datetime())
}
