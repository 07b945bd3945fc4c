//! Delta transfer in the engine (see [`crate::delta`]): a received copy's previous data kept
//! as the base of its next version's download, the manifests a sender serves, and the copies
//! that fill a download from its base.
//!
//! A base is known to this process only: after a restart its file is an unreferenced data
//! file, collected at start, and the download fetches what its partial file still lacks.
//! Whatever was copied before is recorded in the download's session like a fetched chunk.

use super::receive_data::Download;
use super::{ContentRange, EngineError, EngineResult, Node, RangedRead};
use crate::auth::edge::NodeAddress;
use crate::delta::{self, Digest, Manifest};
use crate::model::ObjectKey;
use bytes::Bytes;
use futures_util::stream::BoxStream;
use parking_lot::Mutex;
use std::collections::{HashMap, HashSet, VecDeque};

/// Manifests kept for serving: the objects a fleet is fetching right now, not more.
const MANIFESTS_KEPT: usize = 8;

/// The delta state of a node.
#[derive(Default)]
pub(super) struct DeltaState {
    /// Per received copy being downloaded: the data file of its previous version.
    bases: Mutex<HashMap<ObjectKey, String>>,
    /// Recently served manifests, per object instance, newest last.
    manifests: Mutex<VecDeque<((ObjectKey, i64), Bytes)>>,
    /// One manifest is built at a time: a fleet asking for the same new version gets the
    /// one built for the first node, and the CPU cost is bounded.
    building: tokio::sync::Mutex<()>,
}

impl Node {
    /// After an update replaced the copy `key`, whose complete data was `replaced`: keeps it
    /// as the base of the new version's download when delta transfer is on; returns the
    /// data to remove now. A copy replaced before its download completed keeps the base it
    /// had (the last complete version).
    pub(super) fn keep_delta_base(&self, key: &ObjectKey, replaced: Option<String>) -> Option<String> {
        let replaced = replaced?;
        if !self.0.settings.delta_transfer {
            return Some(replaced);
        }
        self.0.delta.bases.lock().insert(key.clone(), replaced)
    }

    /// True when a download of `key` has a previous version to start from.
    pub fn has_delta_base(&self, key: &ObjectKey) -> bool {
        self.0.delta.bases.lock().contains_key(key)
    }

    /// Removes the base of `key`'s download, if any: the download completed, was given up,
    /// or goes without it.
    pub async fn release_delta_base(&self, key: &ObjectKey) {
        let base = self.0.delta.bases.lock().remove(key);
        if let Some(base) = base {
            self.0.blobs.remove(&base).await;
        }
    }

    /// The manifest of the data of `instance_id` of the CSS's object `key` for an edge node,
    /// with the checks of a data request.
    pub async fn spi_manifest(
        &self,
        node: &NodeAddress,
        key: &ObjectKey,
        instance_id: i64,
        admission: RangedRead,
    ) -> EngineResult<Bytes> {
        self.manifest_of((key.clone(), instance_id), async {
            let served = self.spi_data(node, key, instance_id, None, admission).await?;
            Ok(served.source.range_stream(0, served.range.size).await?)
        })
        .await
    }

    /// The manifest of the data of `instance_id` of an object the ESS created, for its CSS.
    pub async fn own_manifest(&self, key: &ObjectKey, instance_id: i64) -> EngineResult<Bytes> {
        self.manifest_of((key.clone(), instance_id), async {
            let source = self
                .origin_upload_source(key, instance_id)
                .await?
                .ok_or(EngineError::NotFound)?;
            let (data, on_disk) = self
                .open_data_file(&source.file)
                .await
                .map_err(|e| EngineError::Io(std::io::Error::other(e.to_string())))?;
            if on_disk < source.total {
                return Err(EngineError::Io(std::io::Error::other(
                    "the data file is shorter than its object",
                )));
            }
            Ok(data.range_stream(0, source.total).await?)
        })
        .await
    }

    /// The manifest of an instance's data: kept from an earlier request, or built from
    /// `data` (one build at a time).
    async fn manifest_of<F>(&self, cache_key: (ObjectKey, i64), data: F) -> EngineResult<Bytes>
    where
        F: std::future::Future<Output = EngineResult<BoxStream<'static, std::io::Result<Bytes>>>>,
    {
        if let Some(found) = self.cached_manifest(&cache_key) {
            return Ok(found);
        }
        let _building = self.0.delta.building.lock().await;
        if let Some(found) = self.cached_manifest(&cache_key) {
            return Ok(found);
        }
        let manifest = Bytes::from(delta::build_from_stream(data.await?).await?.encode());
        let mut kept = self.0.delta.manifests.lock();
        if kept.len() == MANIFESTS_KEPT {
            kept.pop_front();
        }
        kept.push_back((cache_key, manifest.clone()));
        Ok(manifest)
    }

    fn cached_manifest(&self, cache_key: &(ObjectKey, i64)) -> Option<Bytes> {
        let kept = self.0.delta.manifests.lock();
        kept.iter().find(|(k, _)| k == cache_key).map(|(_, m)| m.clone())
    }

    /// Fills a download that has not started from its base: every chunk of `manifest` found
    /// in the base is copied into the partial file and recorded; the download then fetches
    /// the rest, and its data is checked against the manifest's hash once complete. Returns
    /// the bytes copied (0 without a usable base).
    pub async fn fill_from_base(
        &self,
        key: &ObjectKey,
        download: &mut Download,
        manifest: &Manifest,
    ) -> EngineResult<u64> {
        if manifest.total != download.session.total {
            return Err(EngineError::Io(std::io::Error::new(
                std::io::ErrorKind::InvalidData,
                "the manifest does not describe data of the object's size",
            )));
        }
        let Some((base, runs)) = self.runs_from_base(key, manifest).await? else {
            return Ok(0);
        };
        download.expect_whole(manifest.whole);
        let mut copied = 0;
        for run in runs {
            let Some((source, _)) = self.0.blobs.open_data(&base).await? else {
                break;
            };
            let bytes = source.range_stream(run.from, run.len).await?;
            self.write_download(download, run.to, bytes).await?;
            copied += run.len;
        }
        Ok(copied)
    }

    /// CSS: fills the reception of `instance_id` of a node's object that has not started
    /// from the previous version's data, given the manifest of the new data the node sent;
    /// returns the ranges (start, end exclusive) still to be received. A copied part that
    /// completes the data completes the copy as a received chunk would.
    pub async fn spi_receive_manifest(
        &self,
        node: &NodeAddress,
        key: &ObjectKey,
        instance_id: i64,
        manifest: &[u8],
    ) -> EngineResult<Vec<(u64, u64)>> {
        let manifest = Manifest::decode(manifest).map_err(|e| EngineError::Invalid(e.to_string()))?;
        if self.awaits_data(key, instance_id).await? {
            let received = self.received_ranges(key, manifest.total).await?;
            if received.is_empty() {
                if let Err(e) = self.fill_reception(node, key, instance_id, &manifest).await {
                    tracing::warn!(%key, error = %e, "copying from the previous version failed; receiving the rest");
                    self.release_delta_base(key).await;
                }
            }
        }
        if !self.awaits_data(key, instance_id).await? {
            return Ok(Vec::new());
        }
        let received = self.received_ranges(key, manifest.total).await?;
        Ok(missing(&received, manifest.total))
    }

    /// The base of `key` (its data file) and the copies from it that fill the new data of
    /// `manifest`; `None` when `key` has no base or its file is gone.
    async fn runs_from_base(
        &self,
        key: &ObjectKey,
        manifest: &Manifest,
    ) -> EngineResult<Option<(String, Vec<delta::CopyRun>)>> {
        let Some(base) = self.0.delta.bases.lock().get(key).cloned() else {
            return Ok(None);
        };
        let Some((source, len)) = self.0.blobs.open_data(&base).await? else {
            return Ok(None);
        };
        let wanted: HashSet<Digest> = manifest.chunks.iter().map(|(_, hash)| *hash).collect();
        let found = delta::locate_in_stream(source.range_stream(0, len).await?, wanted).await?;
        Ok(Some((base, delta::copy_runs(manifest, &found))))
    }

    /// Copies the chunks of `manifest` found in the base of `key` into its reception.
    async fn fill_reception(
        &self,
        node: &NodeAddress,
        key: &ObjectKey,
        instance_id: i64,
        manifest: &Manifest,
    ) -> EngineResult<()> {
        let Some((base, runs)) = self.runs_from_base(key, manifest).await? else {
            return Ok(());
        };
        let mut copied = 0;
        for run in runs {
            let Some((source, _)) = self.0.blobs.open_data(&base).await? else {
                break;
            };
            let range = ContentRange {
                start: run.to,
                end: run.to + run.len - 1,
                total: manifest.total,
            };
            let bytes = source.range_stream(run.from, run.len).await?;
            self.spi_receive_data(node, key, instance_id, Some(range), bytes)
                .await?;
            copied += run.len;
        }
        tracing::info!(%key, copied, total = manifest.total, "bytes of the new version copied from the previous one");
        Ok(())
    }
}

/// The parts of `[0, total)` not in `received` (sorted, merged, end exclusive).
fn missing(received: &[(u64, u64)], total: u64) -> Vec<(u64, u64)> {
    let mut holes = Vec::new();
    let mut at = 0;
    for &(start, end) in received {
        if start > at {
            holes.push((at, start.min(total)));
        }
        at = at.max(end);
    }
    if at < total {
        holes.push((at, total));
    }
    holes
}

#[cfg(test)]
mod tests {
    #[test]
    fn holes_are_the_complement_of_what_arrived() {
        assert_eq!(super::missing(&[], 10), vec![(0, 10)]);
        assert_eq!(super::missing(&[(0, 10)], 10), vec![]);
        assert_eq!(super::missing(&[(2, 4), (6, 8)], 10), vec![(0, 2), (4, 6), (8, 10)]);
        assert_eq!(super::missing(&[(0, 4), (8, 10)], 10), vec![(4, 8)]);
    }
}
