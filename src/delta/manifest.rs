//! The manifest of an object's data: its content-defined chunks with their hashes.
//!
//! Encoded as `ESCDC001`, the data's length (u64), the SHA-256 of the whole, the number of
//! chunks (u32), then per chunk its length (u32) and SHA-256; integers big-endian. The
//! chunk sizes are part of the format's name: both nodes must cut alike.

use super::{AVG_CHUNK, MAX_CHUNK, MIN_CHUNK};
use bytes::Bytes;
use fastcdc::v2020::StreamCDC;
use futures_util::stream::BoxStream;
use sha2::{Digest as _, Sha256};
use std::collections::{HashMap, HashSet};
use std::io::{self, Read};
use tokio_util::io::{StreamReader, SyncIoBridge};

/// A SHA-256 digest.
pub type Digest = [u8; 32];

const MAGIC: &[u8; 8] = b"ESCDC001";
pub(super) const HEADER_LEN: usize = 8 + 8 + 32 + 4;
pub(super) const ENTRY_LEN: usize = 4 + 32;

/// The encoded length of the manifest whose first bytes are `head`.
pub(super) fn encoded_len(head: &[u8]) -> Option<u64> {
    let count = head.get(48..HEADER_LEN)?;
    Some(HEADER_LEN as u64 + u64::from(u32::from_be_bytes(array(count))) * ENTRY_LEN as u64)
}

/// The chunks of some data, in order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Manifest {
    pub total: u64,
    /// SHA-256 of all the data.
    pub whole: Digest,
    /// Length and SHA-256 of each chunk.
    pub chunks: Vec<(u32, Digest)>,
}

/// Why a manifest was refused.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum ManifestError {
    #[error("not a chunk manifest of a known format")]
    UnknownFormat,
    #[error("the chunk manifest is damaged: {0}")]
    Damaged(&'static str),
}

impl Manifest {
    /// The encoded manifest.
    pub fn encode(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(HEADER_LEN + self.chunks.len() * ENTRY_LEN);
        out.extend_from_slice(MAGIC);
        out.extend_from_slice(&self.total.to_be_bytes());
        out.extend_from_slice(&self.whole);
        out.extend_from_slice(&u32::try_from(self.chunks.len()).unwrap_or(u32::MAX).to_be_bytes());
        for (len, hash) in &self.chunks {
            out.extend_from_slice(&len.to_be_bytes());
            out.extend_from_slice(hash);
        }
        out
    }

    /// Reads an encoded manifest, checking that its chunks cover exactly its length within
    /// the chunk sizes of the format (a peer's bytes are not trusted).
    pub fn decode(bytes: &[u8]) -> Result<Self, ManifestError> {
        if bytes.len() < MAGIC.len() || &bytes[..MAGIC.len()] != MAGIC {
            return Err(ManifestError::UnknownFormat);
        }
        if bytes.len() < HEADER_LEN {
            return Err(ManifestError::Damaged("shorter than its header"));
        }
        let total = u64::from_be_bytes(array(&bytes[8..16]));
        let whole: Digest = array(&bytes[16..48]);
        let count = u32::from_be_bytes(array(&bytes[48..52])) as usize;
        let entries = &bytes[HEADER_LEN..];
        if entries.len() != count.saturating_mul(ENTRY_LEN) {
            return Err(ManifestError::Damaged("its length does not match its number of chunks"));
        }
        let mut chunks = Vec::with_capacity(count);
        let mut covered = 0u64;
        for (i, entry) in entries.chunks_exact(ENTRY_LEN).enumerate() {
            let len = u32::from_be_bytes(array(&entry[..4]));
            let last = i + 1 == count;
            if len == 0 || len > MAX_CHUNK || (len < MIN_CHUNK && !last) {
                return Err(ManifestError::Damaged("a chunk length is out of bounds"));
            }
            covered += u64::from(len);
            chunks.push((len, array(&entry[4..])));
        }
        if covered != total {
            return Err(ManifestError::Damaged("its chunks do not cover its length"));
        }
        Ok(Self { total, whole, chunks })
    }

    /// Each chunk with its offset.
    pub fn located(&self) -> impl Iterator<Item = (u64, u32, &Digest)> {
        self.chunks.iter().scan(0u64, |offset, (len, hash)| {
            let at = *offset;
            *offset += u64::from(*len);
            Some((at, *len, hash))
        })
    }
}

fn array<const N: usize>(bytes: &[u8]) -> [u8; N] {
    let mut out = [0u8; N];
    out.copy_from_slice(&bytes[..N]);
    out
}

/// Calls `each` with every content-defined chunk of `reader`, in order, with its offset.
fn for_each_chunk(reader: impl Read, mut each: impl FnMut(u64, &[u8])) -> io::Result<()> {
    let chunker = StreamCDC::new(reader, MIN_CHUNK as usize, AVG_CHUNK as usize, MAX_CHUNK as usize);
    for chunk in chunker {
        let chunk = chunk.map_err(|e| match e {
            fastcdc::v2020::Error::IoError(e) => e,
            other => io::Error::other(other.to_string()),
        })?;
        each(chunk.offset, &chunk.data);
    }
    Ok(())
}

/// The manifest of everything `reader` gives (blocking reads).
pub fn build(reader: impl Read) -> io::Result<Manifest> {
    let mut whole = Sha256::new();
    let mut chunks = Vec::new();
    let mut total = 0u64;
    for_each_chunk(reader, |_, data| {
        whole.update(data);
        total += data.len() as u64;
        chunks.push((data.len() as u32, Sha256::digest(data).into()));
    })?;
    Ok(Manifest {
        total,
        whole: whole.finalize().into(),
        chunks,
    })
}

/// Where the chunks of `reader` whose hash is `wanted` are: hash -> (offset, length), the
/// first place each is found (blocking reads).
pub fn locate(reader: impl Read, wanted: &HashSet<Digest>) -> io::Result<HashMap<Digest, (u64, u32)>> {
    let mut found = HashMap::new();
    for_each_chunk(reader, |offset, data| {
        let hash: Digest = Sha256::digest(data).into();
        if wanted.contains(&hash) {
            found.entry(hash).or_insert((offset, data.len() as u32));
        }
    })?;
    Ok(found)
}

/// [`build`] over an async stream, on a blocking thread (chunking and hashing a large
/// object takes seconds).
pub async fn build_from_stream(data: BoxStream<'static, io::Result<Bytes>>) -> io::Result<Manifest> {
    let reader = SyncIoBridge::new(StreamReader::new(data));
    tokio::task::spawn_blocking(move || build(reader))
        .await
        .map_err(io::Error::other)?
}

/// [`locate`] over an async stream, on a blocking thread.
pub async fn locate_in_stream(
    data: BoxStream<'static, io::Result<Bytes>>,
    wanted: HashSet<Digest>,
) -> io::Result<HashMap<Digest, (u64, u32)>> {
    let reader = SyncIoBridge::new(StreamReader::new(data));
    tokio::task::spawn_blocking(move || locate(reader, &wanted))
        .await
        .map_err(io::Error::other)?
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::delta::noise;

    #[test]
    fn a_manifest_covers_the_data_and_survives_encoding() {
        let data = noise(300_000, 7);
        let manifest = build(&data[..]).unwrap();
        assert_eq!(manifest.total, data.len() as u64);
        assert_eq!(manifest.whole, <[u8; 32]>::from(Sha256::digest(&data)));
        assert!(manifest.chunks.len() >= (300_000 / MAX_CHUNK as usize));
        for (offset, len, hash) in manifest.located() {
            let chunk = &data[offset as usize..offset as usize + len as usize];
            assert_eq!(hash, &<[u8; 32]>::from(Sha256::digest(chunk)));
        }
        assert_eq!(Manifest::decode(&manifest.encode()).unwrap(), manifest);
        assert_eq!(
            encoded_len(&manifest.encode()[..HEADER_LEN]),
            Some(manifest.encode().len() as u64)
        );
        assert!(crate::delta::largest_manifest(manifest.total) >= manifest.encode().len() as u64);
        assert_eq!(MAGIC, crate::delta::FORMAT.as_bytes());
    }

    #[test]
    fn empty_data_has_an_empty_manifest() {
        let manifest = build(&[][..]).unwrap();
        assert_eq!((manifest.total, manifest.chunks.len()), (0, 0));
        assert_eq!(Manifest::decode(&manifest.encode()).unwrap(), manifest);
    }

    #[test]
    fn damaged_manifests_are_refused() {
        let manifest = build(&noise(100_000, 3)[..]).unwrap();
        let encoded = manifest.encode();
        assert_eq!(Manifest::decode(b"something else"), Err(ManifestError::UnknownFormat));
        assert!(matches!(
            Manifest::decode(&encoded[..30]),
            Err(ManifestError::Damaged(_))
        ));
        assert!(matches!(
            Manifest::decode(&encoded[..encoded.len() - 1]),
            Err(ManifestError::Damaged(_))
        ));
        let mut longer = encoded.clone();
        longer[15] ^= 1; // the length no longer matches the chunks
        assert!(matches!(Manifest::decode(&longer), Err(ManifestError::Damaged(_))));
        let mut zero = encoded.clone();
        zero[HEADER_LEN..HEADER_LEN + 4].copy_from_slice(&0u32.to_be_bytes());
        assert!(matches!(Manifest::decode(&zero), Err(ManifestError::Damaged(_))));
    }

    #[test]
    fn chunks_of_unchanged_parts_are_found_after_an_insertion() {
        let old = noise(400_000, 11);
        let mut new = old.clone();
        new.splice(200_000..200_000, noise(1000, 5));
        let manifest = build(&new[..]).unwrap();
        let wanted: HashSet<Digest> = manifest.chunks.iter().map(|(_, h)| *h).collect();
        let found = locate(&old[..], &wanted).unwrap();
        let reused: u64 = manifest
            .chunks
            .iter()
            .filter(|(_, h)| found.contains_key(h))
            .map(|(len, _)| u64::from(*len))
            .sum();
        // Only the chunks around the insertion differ.
        assert!(reused >= new.len() as u64 - 3 * u64::from(MAX_CHUNK), "{reused}");
        for (hash, (offset, len)) in &found {
            let chunk = &old[*offset as usize..*offset as usize + *len as usize];
            assert_eq!(hash, &<[u8; 32]>::from(Sha256::digest(chunk)));
        }
    }
}
