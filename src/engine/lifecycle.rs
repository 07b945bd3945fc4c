//! Timed events of origin objects (spec: lifecycle.md §6-7): activation of inactive objects
//! whose `activationTime` passed, expiration, and the end of an object's life once every
//! destination reached the same state: removal after the last acknowledged deletion, the
//! expiration that `autodelete` sets after the last consumption.

use super::delivery::now_secs;
use super::objects::{retirement, Change};
use super::{EngineError, EngineResult, Node};
use crate::model::lifecycle::{rfc3339_utc, AUTODELETE_DELAY_SECS};
use crate::model::sync::Action;
use crate::model::{DeliveryStatus, ObjectKey, ObjectStatus, Role};

impl Node {
    /// One activation pass: every inactive own object whose activation time has come is
    /// activated, and dispatched when it is ready. Returns how many were activated.
    pub async fn activation_pass(&self) -> EngineResult<usize> {
        let now = now_secs();
        let mut activated = 0;
        for due in self.0.store.objects_due(now).await? {
            if due.activation_due().is_none_or(|at| at > now) {
                continue;
            }
            let seen_time = due.meta.activation_time.clone();
            let changed = self
                .change_object(&due.key(), |mut record| {
                    // An application may have changed the object since the scan; a new
                    // activation time is its decision, not ours to override.
                    if !record.meta.inactive || record.meta.activation_time != seen_time {
                        return Ok(Change::Keep);
                    }
                    record.meta.inactive = false;
                    Ok(Change::Write(Box::new(record)))
                })
                .await;
            match changed {
                Ok(Some(_)) => activated += 1,
                Ok(None) | Err(EngineError::NotFound) => {}
                Err(e) => return Err(e),
            }
        }
        Ok(activated)
    }

    /// One expiration pass (CSS): every own object whose expiration has passed is removed.
    /// Nodes that were sent it are told with `delete`, so their copies go too (the original
    /// removed only the CSS's object and left edge copies behind). Returns how many expired.
    pub async fn expiration_pass(&self) -> EngineResult<usize> {
        if self.role() != Role::Css {
            return Ok(0);
        }
        let now = now_secs();
        let mut expired = 0;
        for due in self.0.store.objects_due(now).await? {
            if !due.is_expired(now) {
                continue;
            }
            let key = due.key();
            let sent = self.was_sent(&key).await?;
            let changed = self
                .change_object(&key, |record| {
                    if !record.is_expired(now) {
                        return Ok(Change::Keep);
                    }
                    Ok(retirement(record, sent))
                })
                .await;
            match changed {
                Ok(Some(before)) => {
                    tracing::info!(%key, expiration = %before.meta.expiration, "object expired");
                    if let Some(blob) = before.blob {
                        self.0.blobs.remove(&blob).await;
                    }
                    expired += 1;
                }
                Ok(None) | Err(EngineError::NotFound) => {}
                Err(e) => return Err(e),
            }
        }
        Ok(expired)
    }

    /// What follows once a node's report is committed and every destination may have
    /// reached the same state: the last consumption sets an `autodelete` object's
    /// expiration, the last acknowledged deletion removes the object. Decided on the
    /// destination statuses read after the commit, so that when nodes report at the same
    /// time the last one to commit sees all the others (deciding inside each node's batch,
    /// every batch saw the others still pending and none acted).
    pub(super) async fn after_destination_change(&self, action: Action, key: &ObjectKey) -> EngineResult<()> {
        match action {
            Action::Consumed => self.autodelete_when_all_consumed(key).await,
            Action::AckDelete | Action::Deleted => self.remove_when_all_deleted(key).await,
            _ => Ok(()),
        }
    }

    /// Once every destination acknowledged a deletion, the CSS's copy goes.
    async fn remove_when_all_deleted(&self, key: &ObjectKey) -> EngineResult<()> {
        let statuses = self.0.store.destination_statuses(key).await?;
        if statuses.iter().any(|d| d.status != DeliveryStatus::Deleted) {
            return Ok(());
        }
        let removed = self
            .change_object(key, |object| {
                Ok(
                    if object.is_sender_copy() && object.status == ObjectStatus::ObjDeleted {
                        Change::Delete
                    } else {
                        Change::Keep
                    },
                )
            })
            .await;
        match removed {
            Ok(previous) => {
                if let Some(blob) = previous.and_then(|p| p.blob) {
                    self.0.blobs.remove(&blob).await;
                }
                Ok(())
            }
            Err(EngineError::NotFound) => Ok(()),
            Err(e) => Err(e),
        }
    }

    /// Once every destination consumed an `autodelete` object without an expiration, it is
    /// set to expire an hour later (the original's delay).
    async fn autodelete_when_all_consumed(&self, key: &ObjectKey) -> EngineResult<()> {
        let statuses = self.0.store.destination_statuses(key).await?;
        if statuses.iter().any(|d| d.status != DeliveryStatus::Consumed) {
            return Ok(());
        }
        let expires = rfc3339_utc(now_secs() + AUTODELETE_DELAY_SECS);
        let changed = self
            .change_object(key, |mut object| {
                if !object.is_sender_copy() || !object.meta.autodelete || !object.meta.expiration.is_empty() {
                    return Ok(Change::Keep);
                }
                object.meta.expiration = expires.clone();
                Ok(Change::Write(Box::new(object)))
            })
            .await;
        match changed {
            Ok(_) | Err(EngineError::NotFound) => Ok(()),
            Err(e) => Err(e),
        }
    }
}
