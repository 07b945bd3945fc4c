//! The HTTPS server identity (spec security.md §8.2): loading `ServerCertificate` and
//! `ServerKey` (inline PEM or a file path, relative paths under the persistence root), or,
//! on an ESS without them, a self-signed pair kept in `sync/certs/` and made once; and the
//! rustls server configuration built from it. The client side (ESS → CSS HTTPS, node →
//! MQTT broker, security.md §8.3) is in [`client`].
//!
//! Only rustls with the ring provider is used. The provider is passed explicitly, so no
//! process-wide default provider is needed.
//!
//! Differences from the original's generated pair, on purpose: the key is ECDSA P-256
//! (ring cannot generate RSA keys) and the certificate is an end-entity certificate
//! (`CA:FALSE`), because rustls/webpki clients refuse a CA certificate presented as the
//! server's own; clients still trust `cert.pem` directly, as before. The pair is
//! regenerated when a file is missing or unparsable, the key does not match, or the
//! certificate has expired (the original never renewed it).

pub mod client;

pub use client::{css_client_config, mqtt_client_config, postgres_client_config, webhook_client_config};

use crate::config::Config;
use rustls::crypto::CryptoProvider;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use rustls::sign::{CertifiedKey, SingleCertAndKey};
use sha2::{Digest, Sha256};
use std::fs;
use std::io::{ErrorKind, Write};
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use time::OffsetDateTime;

/// Where the generated pair lives, relative to the persistence root.
pub const GENERATED_DIR: &str = "sync/certs";
/// Validity of a generated certificate, in days (as the original).
const GENERATED_VALIDITY_DAYS: i64 = 500;

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

/// A certificate chain with its matching private key, and where it came from.
pub struct Identity {
    key: Arc<CertifiedKey>,
    /// For logs: `inline PEM`, a file path, or the generated pair's path.
    pub origin: String,
}

impl Identity {
    /// The end-entity certificate, DER-encoded.
    pub fn certificate(&self) -> &CertificateDer<'static> {
        &self.key.cert[0]
    }

    /// SHA-256 of the end-entity certificate, upper-case hex separated by colons.
    pub fn fingerprint(&self) -> String {
        fingerprint(self.certificate())
    }
}

/// The crypto provider used for every TLS configuration, server and client.
fn provider() -> Arc<CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}

/// The HTTPS server configuration for this node: its identity (see [`identity`]), TLS 1.2
/// and 1.3 only, no client certificates, ALPN `h2` and `http/1.1`. Logs where the
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
        .with_protocol_versions(&[&rustls::version::TLS13, &rustls::version::TLS12])
        .map_err(pair_error)?
        .with_no_client_auth()
        .with_cert_resolver(Arc::new(SingleCertAndKey::from(identity.key.clone())));
    server.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
    Ok(Arc::new(server))
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
fn identity_from(
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
    let chain = parse_certificates(&cert_pem).map_err(|detail| TlsError::Setting {
        key: "ServerCertificate",
        detail,
    })?;
    let private_key = parse_key(&key_pem).map_err(|detail| TlsError::Setting {
        key: "ServerKey",
        detail,
    })?;
    if let Ok(not_after) = not_after(&chain[0]) {
        if not_after <= OffsetDateTime::now_utc() {
            tracing::warn!(certificate = %cert_origin, %not_after, "ServerCertificate has expired");
        }
    }
    let certified = CertifiedKey::from_der(chain, private_key, &provider()).map_err(|source| TlsError::Pair {
        origin: cert_origin.clone(),
        source,
    })?;
    Ok(Identity {
        key: Arc::new(certified),
        origin: cert_origin,
    })
}

/// The PEM text of a setting: the value itself when it holds a PEM block, else the file it
/// names. Also returns a description of the origin for logs.
fn setting_bytes(
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

/// Every `CERTIFICATE` block of `pem`, in order; at least one.
fn parse_certificates(pem: &[u8]) -> Result<Vec<CertificateDer<'static>>, String> {
    let chain = CertificateDer::pem_slice_iter(pem)
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| format!("invalid PEM: {e}"))?;
    if chain.is_empty() {
        return Err("no CERTIFICATE PEM block found".to_string());
    }
    Ok(chain)
}

/// The first private key block of `pem` (PKCS#8, PKCS#1 `RSA PRIVATE KEY` or SEC1).
fn parse_key(pem: &[u8]) -> Result<PrivateKeyDer<'static>, String> {
    PrivateKeyDer::from_pem_slice(pem).map_err(|e| match e {
        rustls::pki_types::pem::Error::NoItemsFound => "no private key PEM block found".to_string(),
        other => format!("invalid PEM: {other}"),
    })
}

/// The end of a certificate's validity period.
fn not_after(certificate: &CertificateDer<'_>) -> Result<OffsetDateTime, String> {
    let (_, parsed) = x509_parser::parse_x509_certificate(certificate.as_ref()).map_err(|e| e.to_string())?;
    Ok(parsed.validity().not_after.to_datetime())
}

/// SHA-256 of a DER certificate as `AB:CD:…`.
pub fn fingerprint(certificate: &CertificateDer<'_>) -> String {
    Sha256::digest(certificate.as_ref())
        .iter()
        .map(|b| format!("{b:02X}"))
        .collect::<Vec<_>>()
        .join(":")
}

/// The generated pair in `dir` (`cert.pem`, `key.pem`): reused when both files parse, match
/// and the certificate has not expired; otherwise made anew. Read errors other than "not
/// found" (permissions, a directory in the way) are errors, so nothing is overwritten that
/// could not be inspected.
fn generated(dir: &Path) -> Result<Identity, TlsError> {
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
        let certified = CertifiedKey::from_der(chain, key, &provider()).map_err(|e| e.to_string())?;
        Ok(Identity {
            key: Arc::new(certified),
            origin: cert_path.display().to_string(),
        })
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
fn self_signed() -> Result<(String, String), rcgen::Error> {
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
mod tests {
    use super::*;
    use std::os::unix::fs::PermissionsExt;

    fn no_paths(value: &str) -> PathBuf {
        PathBuf::from(value)
    }

    fn generate_in(root: &Path) -> Identity {
        identity_from("", "", &no_paths, Some(&root.join(GENERATED_DIR))).expect("generated identity")
    }

    #[test]
    fn generated_pair_is_written_with_private_modes_and_reused() {
        let root = tempfile::tempdir().unwrap();
        let first = generate_in(root.path());
        let dir = root.path().join(GENERATED_DIR);
        let cert_bytes = fs::read(dir.join("cert.pem")).unwrap();
        let key_bytes = fs::read(dir.join("key.pem")).unwrap();
        let mode = |p: &Path| fs::metadata(p).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode(&dir.join("key.pem")), 0o600);
        assert_eq!(
            mode(&dir) & 0o027,
            0,
            "certs directory must not be group-writable or world-accessible"
        );
        let second = generate_in(root.path());
        assert_eq!(fs::read(dir.join("cert.pem")).unwrap(), cert_bytes);
        assert_eq!(fs::read(dir.join("key.pem")).unwrap(), key_bytes);
        assert_eq!(first.fingerprint(), second.fingerprint());
        assert_eq!(first.fingerprint().len(), 32 * 3 - 1);
        build_server_config(&second).expect("server config");
    }

    #[test]
    fn generated_certificate_names_localhost_and_loopback_addresses() {
        let root = tempfile::tempdir().unwrap();
        let identity = generate_in(root.path());
        let (_, parsed) = x509_parser::parse_x509_certificate(identity.certificate().as_ref()).unwrap();
        let san = parsed.subject_alternative_name().unwrap().unwrap().value;
        use x509_parser::extensions::GeneralName;
        let names: Vec<String> = san
            .general_names
            .iter()
            .map(|name| match name {
                GeneralName::DNSName(dns) => (*dns).to_string(),
                GeneralName::IPAddress(&[a, b, c, d]) => std::net::Ipv4Addr::new(a, b, c, d).to_string(),
                GeneralName::IPAddress(bytes) => <[u8; 16]>::try_from(*bytes)
                    .map_or_else(|_| format!("{bytes:?}"), |ip| std::net::Ipv6Addr::from(ip).to_string()),
                other => other.to_string(),
            })
            .collect();
        for wanted in ["localhost", "edge-sync-service", "127.0.0.1", "::1"] {
            assert!(names.iter().any(|n| n == wanted), "{wanted} missing from {names:?}");
        }
        let days = (not_after(identity.certificate()).unwrap() - OffsetDateTime::now_utc()).whole_days();
        assert!(
            (GENERATED_VALIDITY_DAYS - 1..=GENERATED_VALIDITY_DAYS).contains(&days),
            "{days}"
        );
    }

    #[test]
    fn corrupt_or_missing_generated_files_are_regenerated() {
        let root = tempfile::tempdir().unwrap();
        let dir = root.path().join(GENERATED_DIR);
        let first = generate_in(root.path());

        fs::write(dir.join("cert.pem"), "garbage").unwrap();
        let second = generate_in(root.path());
        assert_ne!(first.fingerprint(), second.fingerprint());
        assert!(fs::read_to_string(dir.join("cert.pem"))
            .unwrap()
            .contains("BEGIN CERTIFICATE"));

        fs::remove_file(dir.join("key.pem")).unwrap();
        let third = generate_in(root.path());
        assert_ne!(second.fingerprint(), third.fingerprint());
        assert!(dir.join("key.pem").exists());

        // A key that does not belong to the certificate.
        let (_, other_key) = self_signed().unwrap();
        fs::write(dir.join("key.pem"), other_key).unwrap();
        let fourth = generate_in(root.path());
        assert_ne!(third.fingerprint(), fourth.fingerprint());
    }

    #[test]
    fn expired_generated_certificate_is_regenerated() {
        let root = tempfile::tempdir().unwrap();
        let dir = root.path().join(GENERATED_DIR);
        fs::create_dir_all(&dir).unwrap();
        let key = rcgen::KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256).unwrap();
        let mut params = rcgen::CertificateParams::new(vec!["localhost".to_string()]).unwrap();
        params.not_before = OffsetDateTime::now_utc() - time::Duration::days(10);
        params.not_after = OffsetDateTime::now_utc() - time::Duration::days(1);
        let expired = params.self_signed(&key).unwrap();
        fs::write(dir.join("cert.pem"), expired.pem()).unwrap();
        fs::write(dir.join("key.pem"), key.serialize_pem()).unwrap();
        let identity = generate_in(root.path());
        assert_ne!(identity.certificate(), expired.der());
        assert!(not_after(identity.certificate()).unwrap() > OffsetDateTime::now_utc());
    }

    #[test]
    fn unreadable_generated_location_is_an_error_not_an_overwrite() {
        let root = tempfile::tempdir().unwrap();
        let dir = root.path().join(GENERATED_DIR);
        fs::create_dir_all(dir.join("cert.pem")).unwrap();
        let error = identity_from("", "", &no_paths, Some(&dir)).err().expect("error");
        assert!(error.to_string().contains("cert.pem"), "{error}");
    }

    #[test]
    fn inline_pem_and_file_paths_load() {
        let (cert_pem, key_pem) = self_signed().unwrap();
        let inline = identity_from(&cert_pem, &key_pem, &no_paths, None).expect("inline");
        assert_eq!(inline.origin, "inline PEM");

        let root = tempfile::tempdir().unwrap();
        fs::create_dir_all(root.path().join("tls")).unwrap();
        fs::write(root.path().join("tls/server.crt"), &cert_pem).unwrap();
        fs::write(root.path().join("tls/server.key"), &key_pem).unwrap();
        let under_root = |value: &str| root.path().join(value);
        let relative = identity_from("tls/server.crt", "tls/server.key", &under_root, None).expect("relative");
        assert_eq!(relative.fingerprint(), inline.fingerprint());

        let absolute_cert = root.path().join("tls/server.crt").display().to_string();
        let absolute_key = root.path().join("tls/server.key").display().to_string();
        let absolute = identity_from(&absolute_cert, &absolute_key, &no_paths, Some(root.path())).expect("absolute");
        assert_eq!(absolute.fingerprint(), inline.fingerprint());
        // Configured values win over generation, and nothing is generated.
        assert!(!root.path().join("cert.pem").exists());
    }

    #[test]
    fn bad_values_are_errors_naming_the_key() {
        let (cert_pem, key_pem) = self_signed().unwrap();
        let error = |cert: &str, key: &str| {
            identity_from(cert, key, &no_paths, None)
                .err()
                .expect("an error")
                .to_string()
        };
        let garbage = "-----BEGIN CERTIFICATE-----\nnot base64 !!!\n-----END CERTIFICATE-----\n";
        let message = error(garbage, &key_pem);
        assert!(message.contains("ServerCertificate"), "{message}");
        let message = error(
            &cert_pem,
            "-----BEGIN PRIVATE KEY-----\n%%%\n-----END PRIVATE KEY-----\n",
        );
        assert!(message.contains("ServerKey"), "{message}");
        let message = error(&cert_pem, &cert_pem);
        assert!(
            message.contains("ServerKey") && message.contains("no private key"),
            "{message}"
        );
        let message = error("/nonexistent/server.crt", &key_pem);
        assert!(
            message.contains("ServerCertificate") && message.contains("/nonexistent/server.crt"),
            "{message}"
        );
        let message = error(&cert_pem, "/nonexistent/server.key");
        assert!(message.contains("ServerKey"), "{message}");
        let message = error(&cert_pem, "");
        assert!(message.contains("ServerKey"), "{message}");
        let message = error("", &key_pem);
        assert!(message.contains("ServerCertificate"), "{message}");
        // No generation on a CSS.
        let message = error("", "");
        assert!(message.contains("ServerCertificate"), "{message}");
        // A key that does not belong to the certificate.
        let (_, other_key) = self_signed().unwrap();
        let message = error(&cert_pem, &other_key);
        assert!(message.contains("ServerKey"), "{message}");
    }

    #[test]
    fn pkcs1_rsa_keys_are_accepted() {
        use rsa::pkcs1::EncodeRsaPrivateKey;
        use rsa::pkcs8::EncodePrivateKey;
        // The original generates RSA keys in PKCS#1 form; such pairs must keep working.
        let private = rsa::RsaPrivateKey::new(&mut rsa::rand_core::OsRng, 2048).unwrap();
        let pkcs8 = private.to_pkcs8_der().unwrap();
        let key = rcgen::KeyPair::try_from(pkcs8.as_bytes()).unwrap();
        let params = rcgen::CertificateParams::new(vec!["localhost".to_string()]).unwrap();
        let cert = params.self_signed(&key).unwrap();
        let pkcs1 = private.to_pkcs1_pem(rsa::pkcs1::LineEnding::LF).unwrap();
        assert!(pkcs1.starts_with("-----BEGIN RSA PRIVATE KEY-----"));
        let identity = identity_from(&cert.pem(), &pkcs1, &no_paths, None).expect("PKCS#1 RSA pair");
        build_server_config(&identity).unwrap();
    }
}
