//! The generated pair: written once with private modes, reused, and made anew when it
//! cannot be used.

use super::*;
use crate::tls::build_server_config;
use crate::tls::identity::identity_from;
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
