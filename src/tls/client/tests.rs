//! The client configurations through the settings that shape them: when each is built,
//! where trust comes from, client certificates, pinning and `MQTTAllowInvalidCertificates`.

use super::*;
use crate::config::{NodeType, Protocol, Secret};
use crate::tls::fingerprint;
use crate::tls::roots::chain_verifier;
use crate::tls::verifiers::sha256_hex;
use rcgen::{
    BasicConstraints, CertificateParams, CertifiedIssuer, ExtendedKeyUsagePurpose, IsCa, KeyPair, KeyUsagePurpose,
};
use rustls::client::danger::ServerCertVerified;
use rustls::pki_types::{ServerName, UnixTime};
use rustls::RootCertStore;
use std::fs;
use std::path::Path;

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
    let mut config =
        Config::load(Path::new("/nonexistent/edge-sync-service/sync.conf"), &|_| None).expect("default configuration");
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

/// [`check`] of the broker's certificate for its own name, sent with its intermediate.
fn check_broker(verifier: &dyn ServerCertVerifier, pki: &Pki) -> Result<ServerCertVerified, rustls::Error> {
    check(
        verifier,
        &pki.leaf,
        std::slice::from_ref(&pki.intermediate),
        "broker.example",
    )
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
    check_broker(verifier.as_ref(), &pki).expect("trusted");

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
    check_broker(verifier.as_ref(), &pki).expect("leaf pin");
    // Right pin, wrong name: chain verification still applies.
    assert!(check(verifier.as_ref(), &pki.leaf, &chain, "other.example").is_err());
    // Right pin, chain not verifiable.
    assert!(check(verifier.as_ref(), &pki.leaf, &[], "broker.example").is_err());

    let verifier = with_pins(vec!["00".repeat(32), intermediate_pin]);
    check_broker(verifier.as_ref(), &pki).expect("intermediate pin");

    let verifier = with_pins(vec!["ab".repeat(32)]);
    let error = check_broker(verifier.as_ref(), &pki).unwrap_err();
    assert!(error.to_string().contains("MQTTPinnedCertFingerprints"), "{error}");

    // Colon-separated forms do not match (as the original).
    let colons = fingerprint(&pki.leaf);
    let verifier = with_pins(vec![colons]);
    assert!(check_broker(verifier.as_ref(), &pki).is_err());

    // Empty entries are no pins at all.
    let verifier = with_pins(vec![String::new(), "  ".to_string()]);
    check_broker(verifier.as_ref(), &pki).expect("no pins");
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
    check_broker(verifier.as_ref(), &pki).expect("trusted");
    config.mqtt_ca_certificate = "broker/ca/missing.pem".to_string();
    let message = error_text(mqtt_client_config(&config));
    assert!(message.contains("MQTTCACertificate"), "{message}");
}

#[test]
fn empty_trust_store_refuses_every_certificate_naming_the_key() {
    let pki = pki();
    let verifier = chain_verifier(MQTT_CA, RootCertStore::empty(), "system roots").unwrap();
    let error = check_broker(verifier.as_ref(), &pki).unwrap_err();
    assert!(error.to_string().contains("MQTTCACertificate"), "{error}");
}
