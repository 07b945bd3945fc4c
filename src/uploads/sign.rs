//! Signing the data of uploaded objects, when a source names a `signingKey`: RSA-PSS over
//! the SHA-256 digest taken while the file was read, with the largest salt the key allows
//! (what Go signers use), the public key as base64 DER (PKIX). These are the fields the
//! receiving side checks (`engine::verify`); the ESS checks them too when it attaches the
//! data.

use base64::Engine as _;
use rsa::pkcs8::EncodePublicKey;
use rsa::signature::hazmat::RandomizedPrehashSigner;
use rsa::signature::SignatureEncoding;
use sha2::Sha256;
use std::path::Path;

/// A source's signing key and the public key its objects carry.
pub struct Signer {
    key: rsa::pss::SigningKey<Sha256>,
    /// Base64 DER (PKIX) of the public key: the objects' `publicKey`.
    pub public_key: String,
}

/// The service's one source of randomness ([`crate::random`]) as the generator RSA-PSS
/// draws its salt from.
struct ServiceRandom;

impl rsa::rand_core::RngCore for ServiceRandom {
    fn next_u32(&mut self) -> u32 {
        crate::random::u64() as u32
    }

    fn next_u64(&mut self) -> u64 {
        crate::random::u64()
    }

    fn fill_bytes(&mut self, dest: &mut [u8]) {
        for piece in dest.chunks_mut(8) {
            piece.copy_from_slice(&crate::random::u64().to_le_bytes()[..piece.len()]);
        }
    }

    fn try_fill_bytes(&mut self, dest: &mut [u8]) -> Result<(), rsa::rand_core::Error> {
        crate::random::fill(dest).map_err(|e| rsa::rand_core::Error::new(e.to_string()))
    }
}

/// The generator is the operating system's (`random::u64` only falls back without one).
impl rsa::rand_core::CryptoRng for ServiceRandom {}

impl Signer {
    /// Reads the key at `path`.
    pub fn load(path: &Path) -> Result<Self, String> {
        let private = crate::config::upload_sources::read_signing_key(path)?;
        let der = private
            .to_public_key()
            .to_public_key_der()
            .map_err(|e| format!("signingKey {}: {e}", path.display()))?;
        // The largest salt: the encoded message length less the digest and two bytes (the
        // length as `engine::verify` computes it).
        let encoded_len = (rsa::traits::PublicKeyParts::n(&private).bits() + 6) / 8;
        let salt = encoded_len.saturating_sub(32 + 2);
        Ok(Self {
            key: rsa::pss::SigningKey::<Sha256>::new_with_salt_len(private, salt),
            public_key: base64::engine::general_purpose::STANDARD.encode(der.as_bytes()),
        })
    }

    /// The base64 signature of a SHA-256 `digest`.
    pub fn sign(&self, digest: &[u8]) -> Result<String, String> {
        let signature = self
            .key
            .sign_prehash_with_rng(&mut ServiceRandom, digest)
            .map_err(|e| format!("signing failed: {e}"))?;
        Ok(base64::engine::general_purpose::STANDARD.encode(signature.to_bytes()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rsa::pkcs8::EncodePrivateKey;
    use sha2::Digest;

    #[test]
    fn a_signature_verifies_with_the_public_key() {
        let private = rsa::RsaPrivateKey::new(&mut ServiceRandom, 1024).unwrap();
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("key.pem");
        let pem = private.to_pkcs8_pem(rsa::pkcs8::LineEnding::LF).unwrap();
        std::fs::write(&path, pem.as_bytes()).unwrap();
        let signer = Signer::load(&path).unwrap();
        let digest = Sha256::digest(b"a file from the edge");
        let signature = signer.sign(&digest).unwrap();
        crate::engine::verify::verify_digest("SHA256", &signer.public_key, &signature, &digest).unwrap();
        let other = Sha256::digest(b"another file");
        assert!(crate::engine::verify::verify_digest("SHA256", &signer.public_key, &signature, &other).is_err());
    }

    #[test]
    fn a_file_that_is_no_key_is_refused_without_its_contents() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("key.pem");
        std::fs::write(&path, "secret-looking text").unwrap();
        let error = Signer::load(&path).err().unwrap();
        assert!(
            error.contains("not an RSA private key") && !error.contains("secret-looking"),
            "{error}"
        );
    }
}
