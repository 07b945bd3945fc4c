//! Turning one file into an object: its bytes are streamed into a data file of the node
//! while their SHA-256 is computed (memory bounded by one read buffer, whatever the file's
//! size); the file is looked at again afterwards, and only when it is still what was read is
//! the object created, data attached, with the size and SHA-256 in its metadata. A file
//! that changed is not sent half old, half new: its data file is dropped and it waits to
//! settle again.

use super::scan::{look, Seen};
use super::sign::Signer;
use crate::auth::Identity;
use crate::config::UploadSource as Source;
use crate::engine::Node;
use crate::model::{MetaData, ObjectKey};
use bytes::Bytes;
use futures_util::{Stream, StreamExt};
use sha2::{Digest, Sha256};
use std::pin::Pin;
use std::task::{Context, Poll};

/// Read size of the file: the only buffer an upload holds.
const READ_BUFFER: usize = 64 * 1024;

/// An object made of a file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Sent {
    pub object_id: String,
    pub instance_id: i64,
    pub size: u64,
    pub sha256: String,
}

/// Why a file did not become an object.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SendError {
    /// The file changed (or went) while it was read.
    #[error("the file changed while it was read; it is sent again once it settles")]
    Changed,
    #[error("{0}")]
    Failed(String),
}

/// The bytes of a file, hashed as they pass.
struct HashingStream {
    inner: tokio_util::io::ReaderStream<tokio::fs::File>,
    hasher: Sha256,
    len: u64,
}

impl Stream for HashingStream {
    type Item = std::io::Result<Bytes>;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        let polled = self.inner.poll_next_unpin(cx);
        if let Poll::Ready(Some(Ok(bytes))) = &polled {
            let bytes = bytes.clone();
            self.hasher.update(&bytes);
            self.len += bytes.len() as u64;
        }
        polled
    }
}

/// The metadata of the object a file becomes: the source's type and destination, and in
/// `description` the SHA-256 and size of the data and where it came from. The signature
/// fields are filled only with a signing key ([`sign_meta`]): `hashAlgorithm` alone would
/// announce a signature that is not there.
pub fn object_meta(source: &Source, relpath: &str, object_id: &str, size: u64, sha256: &str) -> MetaData {
    MetaData {
        object_id: object_id.to_string(),
        object_type: source.object_type.clone(),
        destination_type: source.destination_type.clone(),
        destination_id: source.destination_id.clone(),
        description: format!("sha256={sha256} size={size} source={} file={relpath}", source.name),
        ..MetaData::default()
    }
}

/// Fills the signature fields of `meta` with `signer`'s signature of the SHA-256 `digest`.
pub fn sign_meta(meta: &mut MetaData, signer: &Signer, digest: &[u8]) -> Result<(), SendError> {
    meta.signature = signer.sign(digest).map_err(SendError::Failed)?;
    meta.hash_algorithm = "SHA256".to_string();
    meta.public_key = signer.public_key.clone();
    Ok(())
}

/// Sends the file `relpath` of `source`, expected to look like `seen`, as the object it
/// names, created on this node by `identity`, its data signed by `signer` when given.
pub async fn send_file(
    node: &Node,
    identity: &Identity,
    source: &Source,
    (relpath, seen): (&str, Seen),
    signer: Option<&Signer>,
) -> Result<Sent, SendError> {
    let path = source.folder.join(relpath);
    let file = tokio::fs::File::open(&path).await.map_err(|e| match e.kind() {
        std::io::ErrorKind::NotFound => SendError::Changed,
        _ => SendError::Failed(format!("cannot open the file: {e}")),
    })?;
    let mut stream = HashingStream {
        inner: tokio_util::io::ReaderStream::with_capacity(file, READ_BUFFER),
        hasher: Sha256::new(),
        len: 0,
    };
    let staged = node
        .stage_data(&mut stream)
        .await
        .map_err(|e| SendError::Failed(format!("cannot store the data: {e}")))?;
    let after = tokio::task::spawn_blocking({
        let path = path.clone();
        move || look(&path)
    })
    .await
    .ok()
    .flatten();
    if after != Some(seen) || stream.len != seen.size {
        node.discard_staged(staged).await;
        return Err(SendError::Changed);
    }
    let digest = stream.hasher.finalize();
    let sha256 = hex(&digest);
    let mtime_secs = seen.mtime_nanos.div_euclid(1_000_000_000);
    let object_id = source.object_id(relpath, mtime_secs);
    let mut meta = object_meta(source, relpath, &object_id, seen.size, &sha256);
    if let Some(signer) = signer {
        if let Err(e) = sign_meta(&mut meta, signer, &digest) {
            node.discard_staged(staged).await;
            return Err(e);
        }
    }
    let key = ObjectKey::new(node.org_for(None), &source.object_type, &object_id);
    let instance_id = node
        .put_object_with_staged(identity, &key, meta, staged)
        .await
        .map_err(|e| SendError::Failed(format!("cannot create the object: {e}")))?;
    Ok(Sent {
        object_id,
        instance_id,
        size: seen.size,
        sha256,
    })
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hex_is_lowercase_two_digits_a_byte() {
        assert_eq!(hex(&[0, 15, 255]), "000fff");
    }
}
