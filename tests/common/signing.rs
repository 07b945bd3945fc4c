//! A publisher that signs object data as the original's clients do: RSA-PSS over the
//! SHA-256 of the data, with the largest salt (Go's `rsa.SignPSS` with automatic salt length).

use base64::Engine as _;
use rsa::pkcs8::EncodePublicKey;
use rsa::signature::hazmat::RandomizedPrehashSigner;
use rsa::signature::SignatureEncoding;
use serde_json::json;
use sha2::{Digest, Sha256};

/// Key size of the tests' publishers: small, so that generating a key is quick.
const KEY_BITS: usize = 1024;

/// A key pair (public key as base64 DER) and a signer with the largest salt, as Go signs.
pub struct Signer {
    public_key: String,
    key: rsa::RsaPrivateKey,
}

impl Signer {
    pub fn new() -> Self {
        let key = rsa::RsaPrivateKey::new(&mut rsa::rand_core::OsRng, KEY_BITS).expect("key");
        let der = key.to_public_key().to_public_key_der().expect("der");
        Self {
            public_key: base64::engine::general_purpose::STANDARD.encode(der.as_bytes()),
            key,
        }
    }

    /// The base64 signature of `data`.
    pub fn sign(&self, data: &[u8]) -> String {
        let max_salt = KEY_BITS / 8 - 32 - 2;
        let signer = rsa::pss::SigningKey::<Sha256>::new_with_salt_len(self.key.clone(), max_salt);
        let signature = signer
            .sign_prehash_with_rng(&mut rsa::rand_core::OsRng, &Sha256::digest(data))
            .expect("sign");
        base64::engine::general_purpose::STANDARD.encode(signature.to_bytes())
    }

    /// The signature fields of metadata for the data `signed`.
    pub fn meta(&self, signed: &[u8]) -> serde_json::Value {
        json!({"hashAlgorithm": "SHA256", "publicKey": self.public_key, "signature": self.sign(signed)})
    }
}
