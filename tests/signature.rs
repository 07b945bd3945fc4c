//! Data signature verification on both roles: objects with hashAlgorithm, publicKey and
//! signature become ready only when their data matches the RSA-PSS signature; otherwise
//! the data is discarded and the object is verificationFailed.

mod common;

use base64::Engine as _;
use common::{pattern, Role, TestNode};
use rsa::pkcs8::EncodePublicKey;
use rsa::signature::hazmat::RandomizedPrehashSigner;
use rsa::signature::SignatureEncoding;
use serde_json::json;
use sha2::{Digest, Sha256};

/// A key pair (public key as base64 DER) and a signer with the largest salt, as Go signs.
struct Signer {
    public_key: String,
    key: rsa::RsaPrivateKey,
}

impl Signer {
    fn new() -> Self {
        let key = rsa::RsaPrivateKey::new(&mut rsa::rand_core::OsRng, 1024).expect("key");
        let der = key.to_public_key().to_public_key_der().expect("der");
        Self {
            public_key: base64::engine::general_purpose::STANDARD.encode(der.as_bytes()),
            key,
        }
    }

    fn sign(&self, data: &[u8]) -> String {
        let max_salt = 128 - 32 - 2;
        let signer = rsa::pss::SigningKey::<Sha256>::new_with_salt_len(self.key.clone(), max_salt);
        let signature = signer
            .sign_prehash_with_rng(&mut rsa::rand_core::OsRng, &Sha256::digest(data))
            .expect("sign");
        base64::engine::general_purpose::STANDARD.encode(signature.to_bytes())
    }

    fn meta(&self, signed: &[u8]) -> serde_json::Value {
        json!({"hashAlgorithm": "SHA256", "publicKey": self.public_key, "signature": self.sign(signed)})
    }
}

async fn uploaded_data_matching_its_signature_becomes_ready(role: Role) {
    let node = TestNode::of(role);
    let api = node.api();
    let signer = Signer::new();
    let data = pattern(300_000, 3);
    let path = node.obj("model", "signed");
    api.create(&path, signer.meta(&data), None).await;
    let response = api.put_bytes(&format!("{path}/data"), data.clone()).await;
    assert_eq!(response.status, 204, "{}", response.text());
    assert_eq!(api.status_of(&path).await, "ready");
    assert_eq!(api.data(&path).await, data);
}

async fn uploaded_data_not_matching_is_rejected_and_discarded(role: Role) {
    let node = TestNode::of(role);
    let api = node.api();
    let signer = Signer::new();
    let path = node.obj("model", "tampered");
    api.create(&path, signer.meta(b"the real model"), None).await;
    let response = api
        .put_bytes(&format!("{path}/data"), b"a tampered model".to_vec())
        .await;
    assert_eq!(response.status, 400);
    assert!(
        response.text().contains("Failed to verify and store data"),
        "{}",
        response.text()
    );
    assert_eq!(api.status_of(&path).await, "verificationFailed");
    assert_eq!(api.get(&format!("{path}/data")).await.status, 404);
    assert!(node.files_in("data").is_empty(), "the rejected data must not be kept");
    node.assert_healthy().await;
}

async fn inline_data_is_verified_too(role: Role) {
    let node = TestNode::of(role);
    let api = node.api();
    let signer = Signer::new();
    let good = node.obj("model", "inline-good");
    api.create(&good, signer.meta(b"inline bytes"), Some(b"inline bytes"))
        .await;
    assert_eq!(api.status_of(&good).await, "ready");

    let bad = node.obj("model", "inline-bad");
    let body = common::object_body(&bad, signer.meta(b"inline bytes"), Some(b"other bytes"));
    let response = api.put_json(&bad, &body).await;
    assert_eq!(response.status, 400, "{}", response.text());
    assert_eq!(api.status_of(&bad).await, "verificationFailed");
}

async fn a_key_that_is_not_rsa_is_a_clear_400(role: Role) {
    let node = TestNode::of(role);
    let api = node.api();
    let path = node.obj("model", "badkey");
    let meta = json!({"hashAlgorithm": "SHA256", "publicKey": "AAAA", "signature": "AAAA"});
    api.create(&path, meta, None).await;
    let response = api.put_bytes(&format!("{path}/data"), b"data".to_vec()).await;
    assert_eq!(response.status, 400);
    assert!(response.text().contains("RSA public key"), "{}", response.text());
    node.assert_healthy().await;
}

on_both_roles!(
    uploaded_data_matching_its_signature_becomes_ready,
    uploaded_data_not_matching_is_rejected_and_discarded,
    inline_data_is_verified_too,
    a_key_that_is_not_rsa_is_a_clear_400,
);
