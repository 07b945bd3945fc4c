//! Objects whose data the node reads itself rather than receiving it in a request: the files
//! an ESS turns into objects (`uploads`). The data is written to a data file first, while the
//! caller hashes it and checks that its source did not change; only then is the object
//! created, data attached, in one write, so the CSS never sees an object whose data does not
//! match what its metadata says.

use super::{EngineResult, Node};
use crate::auth::Identity;
use crate::model::sync::NotificationStatus;
use crate::model::{MetaData, ObjectKey, ObjectStatus};
use crate::store::blobs::BlobError;
use bytes::Bytes;
use futures_util::Stream;

/// A complete data file, written but not yet attached to an object.
#[derive(Debug)]
pub struct StagedData {
    name: String,
    len: u64,
}

impl StagedData {
    /// Bytes written.
    pub fn len(&self) -> u64 {
        self.len
    }

    pub fn is_empty(&self) -> bool {
        self.len == 0
    }
}

/// How far the CSS got with the current instance of an object the ESS created.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OwnDelivery {
    /// The object is no longer there (deleted, or an in-memory store restarted).
    Missing,
    /// The object is another instance now.
    Replaced,
    /// The object was deleted on this node.
    Deleted,
    /// Not yet acknowledged by the CSS.
    Pending,
    /// The CSS holds the data (or already consumed the object).
    Delivered,
}

impl Node {
    /// Writes `body` to a new data file, refused beyond `MaxObjectSize`. The file belongs
    /// to no object until [`Node::put_object_with_staged`]; [`Node::discard_staged`] removes
    /// it (and a crash in between leaves an orphan the start-up cleanup removes).
    pub async fn stage_data<S, E>(&self, body: S) -> EngineResult<StagedData>
    where
        S: Stream<Item = Result<Bytes, E>> + Unpin + Send,
        E: std::fmt::Display,
    {
        let name = self.blob_name(self.0.clock.next());
        let limit = self.object_size_limit();
        match self.0.blobs.write_whole(&name, body, limit, None).await {
            Ok(written) => Ok(StagedData { name, len: written.len }),
            // The limit is the node's, not a length the body announced.
            Err(BlobError::TooLong(_)) => Err(super::data::too_large(limit)),
            Err(e) => Err(e.into()),
        }
    }

    /// Removes a staged data file that will not be used.
    pub async fn discard_staged(&self, staged: StagedData) {
        self.0.blobs.remove(&staged.name).await;
    }

    /// Creates or replaces the object `key` with `meta`, `staged` as its data, with the
    /// checks and follow-up of `PUT {obj}` (on an ESS: queued for the CSS). The staged data
    /// is removed when the write fails.
    pub async fn put_object_with_staged(
        &self,
        identity: &Identity,
        key: &ObjectKey,
        meta: MetaData,
        staged: StagedData,
    ) -> EngineResult<i64> {
        self.write_object(identity, key, meta, None, Some((staged.name, staged.len)))
            .await?;
        let stored = self.0.store.object(key).await?;
        Ok(stored.map_or(0, |record| record.meta.instance_id))
    }

    /// Where the CSS stands with `instance_id` of the own object `key` (ESS).
    pub async fn own_delivery(&self, key: &ObjectKey, instance_id: i64) -> EngineResult<OwnDelivery> {
        let Some(object) = self.0.store.object(key).await? else {
            return Ok(OwnDelivery::Missing);
        };
        if !object.is_sender_copy() || object.meta.instance_id != instance_id {
            return Ok(OwnDelivery::Replaced);
        }
        if object.status == ObjectStatus::ObjDeleted {
            return Ok(OwnDelivery::Deleted);
        }
        if object.status == ObjectStatus::ConsumedByDest {
            return Ok(OwnDelivery::Delivered);
        }
        let record = self.0.store.notification(key, &self.own_remote()).await?;
        let acknowledged = record.is_some_and(|r| {
            r.instance_id == instance_id
                && matches!(r.status, NotificationStatus::Data | NotificationStatus::ReceivedByDest)
        });
        Ok(if acknowledged {
            OwnDelivery::Delivered
        } else {
            OwnDelivery::Pending
        })
    }
}
