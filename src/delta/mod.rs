//! Delta transfer of a new version of an object's data: a receiver that still holds the
//! previous version fetches only the parts it does not already have.
//!
//! The sender describes the new data by a [`Manifest`]: its content-defined chunks (FastCDC,
//! so that a boundary depends on the bytes around it, not on its offset, and an insertion
//! moves no boundary beyond the next one) with a SHA-256 each, and the SHA-256 of the whole.
//! The receiver chunks its old data the same way, finds which of the new chunks it holds
//! ([`locate`]), copies them into place ([`copy_runs`]) and fetches the rest as byte ranges;
//! the rebuilt data is checked against the whole's hash before anyone sees it.
//!
//! Both steps read their data once, in order, through a bounded buffer: memory grows with
//! the number of chunks (36 bytes each in a manifest, about 0.2 % of the data), not with
//! the data.

mod manifest;
mod plan;

pub use manifest::{build, build_from_stream, locate, locate_in_stream, Digest, Manifest, ManifestError};
pub use plan::{copy_runs, CopyRun};

/// The name of the manifest format, which both nodes name when they ask for and send one.
pub const FORMAT: &str = "ESCDC001";

/// The largest manifest of data of `total` bytes: one entry per smallest chunk, plus one.
pub fn largest_manifest(total: u64) -> u64 {
    manifest::HEADER_LEN as u64 + (total / u64::from(MIN_CHUNK) + 1) * manifest::ENTRY_LEN as u64
}

/// The length of the manifest whose first bytes are `head`, once they hold its header.
pub fn manifest_len(head: &[u8]) -> Option<u64> {
    manifest::encoded_len(head)
}

/// Smallest, usual and largest chunk. Small enough that a change of a few bytes costs a
/// few KiB on the wire, large enough that a manifest is about 0.2 % of the data.
pub const MIN_CHUNK: u32 = 4 * 1024;
pub const AVG_CHUNK: u32 = 16 * 1024;
pub const MAX_CHUNK: u32 = 64 * 1024;

/// Bytes that do not repeat (a xorshift sequence), so that their chunks all differ.
#[cfg(test)]
pub(crate) fn noise(len: usize, seed: u64) -> Vec<u8> {
    let mut state = seed | 1;
    (0..len)
        .map(|_| {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            (state >> 24) as u8
        })
        .collect()
}
