//! The first steps of a download that may start from the previous version (see
//! [`crate::delta`]): its first data request also asks for the manifest of the new data; a
//! CSS that takes part answers with it (over MQTT in pages, one per request), another with
//! the data asked for, which the download then uses as usual.

use crate::delta::{self, Manifest};
use bytes::Bytes;
use futures_util::stream::BoxStream;
use futures_util::StreamExt;

/// Bytes of a manifest asked for in one request after the first (the sender answers with
/// at most a chunk of them).
const PAGE: u64 = 1 << 30;

/// How the manifest of a download is being fetched.
pub(super) enum DeltaFetch {
    /// Not asked for (no previous version, or the download already started).
    Off,
    /// Asked for, with the bytes of it received so far.
    Asking { received: Vec<u8>, limit: u64 },
}

/// What a manifest answer gave.
pub(super) enum Page {
    /// More pages to ask for.
    More,
    /// The whole manifest.
    Complete(Manifest),
    /// Unusable: the download goes on without its previous version.
    Unusable(String),
}

impl DeltaFetch {
    /// A fetch for data of `total` bytes, asking for the manifest when `asking`.
    pub(super) fn new(asking: bool, total: u64) -> Self {
        if asking {
            Self::Asking {
                received: Vec::new(),
                limit: delta::largest_manifest(total),
            }
        } else {
            Self::Off
        }
    }

    /// True while the manifest is asked for.
    pub(super) fn asking(&self) -> bool {
        matches!(self, Self::Asking { .. })
    }

    /// The range of the next request, when it asks for more of the manifest than its first
    /// page (the first request is the data request the download would make anyway).
    pub(super) fn next_range(&self) -> Option<(u64, u64)> {
        match self {
            Self::Asking { received, .. } if !received.is_empty() => {
                let at = received.len() as u64;
                Some((at, at + PAGE - 1))
            }
            _ => None,
        }
    }

    /// Takes an answer carrying manifest bytes from `start`.
    pub(super) async fn take(&mut self, start: u64, mut body: BoxStream<'static, Result<Bytes, String>>) -> Page {
        let Self::Asking { received, limit } = self else {
            return Page::Unusable("a manifest nobody asked for".into());
        };
        if start == 0 {
            received.clear();
        } else if start != received.len() as u64 {
            return Page::Unusable(format!("manifest bytes at {start}, expected {}", received.len()));
        }
        while let Some(bytes) = body.next().await {
            match bytes {
                Ok(bytes) if (received.len() + bytes.len()) as u64 <= *limit => received.extend_from_slice(&bytes),
                Ok(_) => return Page::Unusable("the manifest is larger than the data's could be".into()),
                Err(e) => return Page::Unusable(format!("reading the manifest: {e}")),
            }
        }
        match delta::manifest_len(received) {
            Some(len) if (received.len() as u64) < len => Page::More,
            Some(len) if received.len() as u64 == len => match Manifest::decode(received) {
                Ok(manifest) => Page::Complete(manifest),
                Err(e) => Page::Unusable(e.to_string()),
            },
            Some(_) => Page::Unusable("the manifest is longer than it says".into()),
            None if received.is_empty() => Page::Unusable("an empty manifest".into()),
            None => Page::More,
        }
    }
}
