//! Configured server certificates and keys: the accepted forms, and errors naming the key.

use super::*;
use crate::tls::build_server_config;
use crate::tls::generated::self_signed;
use std::fs;

fn no_paths(value: &str) -> PathBuf {
    PathBuf::from(value)
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
