//! The self-signed server certificate of an ESS that has no `ServerCertificate` and
//! `ServerKey`: made with rcgen once, kept in `{PersistenceRootPath}/sync/certs/` and
//! reused, so that clients can trust its `cert.pem` across restarts.
//!
//! Differences from the original's generated pair, on purpose: the key is ECDSA P-256
//! (ring cannot generate RSA keys) and the certificate is an end-entity certificate
//! (`CA:FALSE`), because rustls/webpki clients refuse a CA certificate presented as the
//! server's own; clients still trust `cert.pem` directly, as before. The pair is
//! regenerated when a file is missing or unparsable, the key does not match, or the
//! certificate has expired (the original never renewed it).

use super::identity::Identity;
use super::pem::{not_after, parse_certificates, parse_key};
use super::TlsError;
use std::fs;
use std::io::{ErrorKind, Write};
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt};
use std::path::{Path, PathBuf};
use time::OffsetDateTime;

/// Where the generated pair lives, relative to the persistence root.
pub const GENERATED_DIR: &str = "sync/certs";
/// Validity of a generated certificate, in days (as the original).
const GENERATED_VALIDITY_DAYS: i64 = 500;

/// The generated pair in `dir` (`cert.pem`, `key.pem`): reused when both files parse, match
/// and the certificate has not expired; otherwise made anew. Read errors other than "not
/// found" (permissions, a directory in the way) are errors, so nothing is overwritten that
/// could not be inspected.
pub(super) fn generated(dir: &Path) -> Result<Identity, TlsError> {
    let cert_path = dir.join("cert.pem");
    let key_path = dir.join("key.pem");
    match existing_generated(&cert_path, &key_path)? {
        Ok(identity) => return Ok(identity),
        Err(reason) => tracing::info!(
            certificate = %cert_path.display(),
            %reason,
            "generating a self-signed HTTPS certificate"
        ),
    }
    generate(dir, &cert_path, &key_path)?;
    match existing_generated(&cert_path, &key_path)? {
        Ok(identity) => Ok(identity),
        Err(reason) => Err(TlsError::Generated {
            path: cert_path,
            detail: format!("the certificate just written cannot be used: {reason}"),
        }),
    }
}

/// Reads the generated pair. `Ok(Err(reason))` when it must be (re)generated.
fn existing_generated(cert_path: &Path, key_path: &Path) -> Result<Result<Identity, String>, TlsError> {
    let read = |path: &Path| match fs::read(path) {
        Ok(bytes) => Ok(Some(bytes)),
        Err(e) if e.kind() == ErrorKind::NotFound => Ok(None),
        Err(e) => Err(TlsError::Generated {
            path: path.to_path_buf(),
            detail: e.to_string(),
        }),
    };
    let (Some(cert_pem), Some(key_pem)) = (read(cert_path)?, read(key_path)?) else {
        return Ok(Err("certificate or key file missing".to_string()));
    };
    let usable = || -> Result<Identity, String> {
        let chain = parse_certificates(&cert_pem).map_err(|e| format!("certificate: {e}"))?;
        let key = parse_key(&key_pem).map_err(|e| format!("key: {e}"))?;
        let not_after = not_after(&chain[0]).map_err(|e| format!("certificate: {e}"))?;
        if not_after <= OffsetDateTime::now_utc() {
            return Err(format!("certificate expired at {not_after}"));
        }
        Identity::new(chain, key, cert_path.display().to_string()).map_err(|e| e.to_string())
    };
    Ok(usable())
}

/// Makes a self-signed certificate and key and writes them to `dir` (created 0750), the key
/// with mode 0600. Each file is written to a temporary name and renamed into place.
fn generate(dir: &Path, cert_path: &Path, key_path: &Path) -> Result<(), TlsError> {
    let failed = |path: &Path, detail: String| TlsError::Generated {
        path: path.to_path_buf(),
        detail,
    };
    let (cert_pem, key_pem) = self_signed().map_err(|e| failed(cert_path, e.to_string()))?;
    fs::DirBuilder::new()
        .recursive(true)
        .mode(0o750)
        .create(dir)
        .map_err(|e| failed(dir, e.to_string()))?;
    write_atomically(key_path, key_pem.as_bytes(), 0o600).map_err(|e| failed(key_path, e.to_string()))?;
    write_atomically(cert_path, cert_pem.as_bytes(), 0o644).map_err(|e| failed(cert_path, e.to_string()))?;
    Ok(())
}

fn write_atomically(path: &Path, contents: &[u8], mode: u32) -> std::io::Result<()> {
    let mut temporary = path.as_os_str().to_owned();
    temporary.push(".tmp");
    let temporary = PathBuf::from(temporary);
    let _ = fs::remove_file(&temporary);
    let mut file = fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(mode)
        .open(&temporary)?;
    file.write_all(contents)?;
    file.sync_all()?;
    drop(file);
    fs::rename(&temporary, path)
}

/// A new self-signed server certificate and its key, as PEM: subject `O=SomeOrg, OU=Edge
/// Node, CN=localhost`, names `edge-sync-service`, `localhost`, the host name (when it is a
/// plain DNS name), `127.0.0.1` and `::1`, valid from now for 500 days.
pub(super) fn self_signed() -> Result<(String, String), rcgen::Error> {
    use rcgen::{CertificateParams, DnType, ExtendedKeyUsagePurpose, IsCa, KeyPair, KeyUsagePurpose};
    let mut names = vec!["edge-sync-service".to_string(), "localhost".to_string()];
    if let Some(host) = host_name().filter(|h| !names.contains(h)) {
        names.push(host);
    }
    names.extend(["127.0.0.1".to_string(), "::1".to_string()]);
    let mut params = CertificateParams::new(names)?;
    params.distinguished_name = rcgen::DistinguishedName::new();
    params.distinguished_name.push(DnType::OrganizationName, "SomeOrg");
    params
        .distinguished_name
        .push(DnType::OrganizationalUnitName, "Edge Node");
    params.distinguished_name.push(DnType::CommonName, "localhost");
    params.is_ca = IsCa::ExplicitNoCa;
    params.key_usages = vec![KeyUsagePurpose::DigitalSignature];
    params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth];
    let now = OffsetDateTime::now_utc();
    // A little slack for clients whose clock is slightly behind.
    params.not_before = now - time::Duration::minutes(5);
    params.not_after = now + time::Duration::days(GENERATED_VALIDITY_DAYS);
    let key = KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256)?;
    let certificate = params.self_signed(&key)?;
    Ok((certificate.pem(), key.serialize_pem()))
}

/// This machine's host name, when it is a usable DNS name.
fn host_name() -> Option<String> {
    let name = fs::read_to_string("/proc/sys/kernel/hostname").ok()?;
    let name = name.trim().to_ascii_lowercase();
    let valid = !name.is_empty()
        && name.len() <= 253
        && name.split('.').all(|label| {
            !label.is_empty() && label.len() <= 63 && label.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-')
        });
    valid.then_some(name)
}

#[cfg(test)]
mod tests;
