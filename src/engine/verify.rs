//! Data signature verification (spec: metadata.md §12): the data is hashed with SHA-1 or
//! SHA-256 and the RSA-PSS signature over that hash is checked with the object's public key
//! (base64 DER SubjectPublicKeyInfo). Data is hashed while it is written ([`running_hash`],
//! fed by the blob store's writer) when it arrives whole or in order; otherwise the stored
//! data is hashed afterwards, in bounded buffers.

use crate::model::MetaData;
use crate::store::blobs::{BlobStore, RunningHash};
use base64::Engine as _;
use rsa::pkcs8::DecodePublicKey;
use rsa::signature::hazmat::PrehashVerifier;
use rsa::RsaPublicKey;
use sha1::Sha1;
use sha2::{Digest, Sha256};

/// Why data did not verify; the text is shown to the client.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct VerifyError(pub String);

/// A hash in the object's algorithm to feed with its data as it is written, when the data
/// is to be verified.
pub fn running_hash(meta: &MetaData) -> Option<RunningHash> {
    meta.needs_verification().then(|| new_hash(&meta.hash_algorithm))
}

fn new_hash(algorithm: &str) -> RunningHash {
    match algorithm {
        "SHA1" => Box::new(Sha1::new()),
        _ => Box::new(Sha256::new()),
    }
}

/// Checks the signature of the stored data `name`: against `hash` when it was fed the whole
/// data as it was written, else by hashing the stored data.
pub async fn verify_stored(
    meta: &MetaData,
    blobs: &BlobStore,
    name: &str,
    hash: Option<RunningHash>,
) -> Result<(), VerifyError> {
    let digest = match hash {
        Some(hash) => hash.finalize(),
        None => blobs
            .digest(name, new_hash(&meta.hash_algorithm))
            .await
            .map_err(|e| VerifyError(format!("Failed to read the data: {e}")))?,
    };
    // One RSA public-key operation per salt length: microseconds, no need to leave the
    // async runtime for it.
    verify_digest(&meta.hash_algorithm, &meta.public_key, &meta.signature, &digest)
}

/// Checks an RSA-PSS signature over a precomputed digest. The salt length is not part of
/// the wire format: Go signers use the largest possible salt, others the digest size, so
/// both are tried, as an automatic salt-length verifier would accept either.
pub fn verify_digest(algorithm: &str, public_key: &str, signature: &str, digest: &[u8]) -> Result<(), VerifyError> {
    let standard = base64::engine::general_purpose::STANDARD;
    let key_der = standard
        .decode(public_key)
        .map_err(|e| VerifyError(format!("PublicKey is not base64 encoded: {e}")))?;
    let signature = standard
        .decode(signature)
        .map_err(|e| VerifyError(format!("Signature is not base64 encoded: {e}")))?;
    let key = RsaPublicKey::from_public_key_der(&key_der).map_err(|e| {
        VerifyError(format!(
            "The public key is not an RSA public key in DER (PKIX) form: {e}"
        ))
    })?;
    let signature = rsa::pss::Signature::try_from(signature.as_slice())
        .map_err(|e| VerifyError(format!("The signature is malformed: {e}")))?;
    let em_len = (rsa::traits::PublicKeyParts::n(&key).bits() + 6) / 8;
    let max_salt = em_len.saturating_sub(digest.len() + 2);
    let verified = [max_salt, digest.len()].into_iter().any(|salt| match algorithm {
        "SHA1" => rsa::pss::VerifyingKey::<Sha1>::new_with_salt_len(key.clone(), salt)
            .verify_prehash(digest, &signature)
            .is_ok(),
        _ => rsa::pss::VerifyingKey::<Sha256>::new_with_salt_len(key.clone(), salt)
            .verify_prehash(digest, &signature)
            .is_ok(),
    });
    if verified {
        Ok(())
    } else {
        Err(VerifyError("The data does not match its signature".into()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rsa::pkcs8::EncodePublicKey;
    use rsa::signature::hazmat::RandomizedPrehashSigner;
    use rsa::signature::SignatureEncoding;

    fn signed(data: &[u8], salt: Option<usize>) -> (String, String) {
        let mut rng = rand_core_for_tests();
        let private = rsa::RsaPrivateKey::new(&mut rng, 1024).unwrap();
        let public = private.to_public_key().to_public_key_der().unwrap();
        let digest = Sha256::digest(data);
        let signer = match salt {
            Some(len) => rsa::pss::SigningKey::<Sha256>::new_with_salt_len(private, len),
            None => rsa::pss::SigningKey::<Sha256>::new(private),
        };
        let signature = signer.sign_prehash_with_rng(&mut rng, &digest).unwrap();
        let standard = base64::engine::general_purpose::STANDARD;
        (
            standard.encode(public.as_bytes()),
            standard.encode(signature.to_bytes()),
        )
    }

    fn rand_core_for_tests() -> rsa::rand_core::OsRng {
        rsa::rand_core::OsRng
    }

    #[test]
    fn accepts_digest_size_and_maximum_salts_and_rejects_other_data() {
        let data = b"model weights";
        let digest = Sha256::digest(data);
        let (key, signature) = signed(data, None);
        assert_eq!(verify_digest("SHA256", &key, &signature, &digest), Ok(()));
        let (key, signature) = signed(data, Some(128 - 32 - 2));
        assert_eq!(verify_digest("SHA256", &key, &signature, &digest), Ok(()));
        let other = Sha256::digest(b"tampered");
        assert!(verify_digest("SHA256", &key, &signature, &other).is_err());
    }

    fn signed_meta(data: &[u8]) -> MetaData {
        let (public_key, signature) = signed(data, None);
        MetaData {
            hash_algorithm: "SHA256".into(),
            public_key,
            signature,
            ..MetaData::default()
        }
    }

    #[tokio::test]
    async fn stored_data_verifies_from_its_running_hash_or_else_from_its_file() {
        let data = b"model weights, in several pieces".as_slice();
        let meta = signed_meta(data);
        let dir = tempfile::tempdir().unwrap();
        let blobs = BlobStore::open(dir.path()).unwrap();
        let path = blobs.file_path("data").unwrap();
        std::fs::write(&path, data).unwrap();

        let mut hash = running_hash(&meta).expect("signed metadata is verified");
        data.chunks(5).for_each(|piece| hash.update(piece));
        assert_eq!(verify_stored(&meta, &blobs, "data", Some(hash)).await, Ok(()));
        assert_eq!(verify_stored(&meta, &blobs, "data", None).await, Ok(()));

        // The hash speaks for the data it was fed, whatever the file holds, and the reverse.
        let mut other = running_hash(&meta).unwrap();
        other.update(b"tampered in transit");
        assert!(verify_stored(&meta, &blobs, "data", Some(other)).await.is_err());
        std::fs::write(&path, b"tampered on disk").unwrap();
        assert!(verify_stored(&meta, &blobs, "data", None).await.is_err());
    }

    #[test]
    fn only_signed_metadata_gets_a_running_hash() {
        assert!(running_hash(&MetaData::default()).is_none());
        let mut sha1 = signed_meta(b"x");
        sha1.hash_algorithm = "SHA1".into();
        assert_eq!(running_hash(&sha1).unwrap().output_size(), 20);
        assert_eq!(running_hash(&signed_meta(b"x")).unwrap().output_size(), 32);
    }

    #[test]
    fn rejects_keys_that_are_not_rsa() {
        let err = verify_digest("SHA256", "AAAA", "AAAA", &[0; 32]).unwrap_err();
        assert!(err.0.contains("RSA public key"), "{err}");
    }
}
