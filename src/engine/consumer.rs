//! What applications on the receiving side report: received, consumed, deleted; and the
//! sender's activate and policy-received marks (spec: rest-api.md §4.11-4.14, metadata.md §10).

use super::delivery::now_secs;
use super::objects::Change;
use super::{EngineError, EngineResult, Node, WRITE_ATTEMPTS};
use crate::auth::{access, Identity};
use crate::model::sync::{Notification, NotificationStatus, Remote};
use crate::model::{MetaData, ObjectKey, ObjectRecord, ObjectStatus, Role};
use crate::store::{Expect, StoreError, StoreOp};

/// A report from a receiving application.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Report {
    Received,
    Consumed,
    Deleted,
}

impl Report {
    fn verb(self) -> &'static str {
        match self {
            Self::Received => "received",
            Self::Consumed => "consumed",
            Self::Deleted => "deleted",
        }
    }
}

/// Applies a report to a record: the new record, or removal when the last consumer
/// acknowledged a deletion. Errors carry the original's texts.
pub fn apply_report(report: Report, mut record: ObjectRecord) -> EngineResult<Change> {
    match report {
        Report::Received | Report::Consumed => {
            if !matches!(
                record.status,
                ObjectStatus::CompletelyReceived | ObjectStatus::ObjReceived
            ) {
                return Err(EngineError::Invalid(format!(
                    "Failed to mark the object as {verb}. Error: Invalid attempt to mark object in status {status} as {verb}",
                    verb = report.verb(),
                    status = record.status
                )));
            }
            if report == Report::Received {
                record.remaining_receivers = (record.remaining_receivers - 1).max(0);
                if record.remaining_receivers == 0 {
                    record.status = ObjectStatus::ObjReceived;
                }
            } else {
                record.remaining_consumers = (record.remaining_consumers - 1).max(0);
                if record.remaining_consumers == 0 {
                    record.status = ObjectStatus::ObjConsumed;
                }
            }
            Ok(Change::Write(Box::new(record)))
        }
        Report::Deleted => {
            if !record.meta.deleted {
                return Err(EngineError::Invalid(
                    "Failed to confirm object's deletion. Error: The object is not marked as deleted".into(),
                ));
            }
            if record.status != ObjectStatus::ObjDeleted {
                return Err(EngineError::Invalid(format!(
                    "Failed to confirm object's deletion. Error: Invalid attempt to confirm deletion of an object in status {}",
                    record.status
                )));
            }
            record.remaining_consumers = (record.remaining_consumers - 1).max(0);
            if record.remaining_consumers == 0 {
                return Ok(Change::Delete);
            }
            Ok(Change::Write(Box::new(record)))
        }
    }
}

impl Node {
    /// `PUT {obj}/received`, `/consumed`, `/deleted`.
    pub async fn report(&self, identity: &Identity, key: &ObjectKey, report: Report) -> EngineResult<()> {
        let result = match self.require_consumer(identity, key).await {
            // A received copy: its sender learns of `consumed` and `deleted`.
            Ok(record) if !record.is_sender_copy() && report != Report::Received => {
                self.report_to_sender(key, report).await
            }
            Ok(_) => self.change_object(key, |record| apply_report(report, record)).await,
            Err(e) => Err(e),
        };
        match result {
            Ok(previous) => {
                if let Some(blob) = previous.filter(|_| report == Report::Deleted).and_then(|p| p.blob) {
                    self.0.blobs.remove(&blob).await;
                }
                Ok(())
            }
            Err(EngineError::NotFound) if report == Report::Deleted => Err(EngineError::Invalid(
                "Failed to confirm object's deletion. Error: Failed to find object to confirm deletion".into(),
            )),
            Err(e) => Err(e),
        }
    }

    /// A `consumed` or `deleted` report on a received copy: when the last consumer reported,
    /// the message for the copy's sender is recorded in the same batch as the change, and the
    /// copy is removed only once the sender acknowledged. Returns the record as it was before.
    async fn report_to_sender(&self, key: &ObjectKey, report: Report) -> EngineResult<Option<ObjectRecord>> {
        for _ in 0..WRITE_ATTEMPTS {
            let Some(current) = self.0.store.object(key).await? else {
                return Err(EngineError::NotFound);
            };
            let revision = current.revision;
            let (record, message) = match apply_report(report, current.clone())? {
                Change::Write(record) | Change::WriteEndingUpload(record) => {
                    let newly_consumed = report == Report::Consumed
                        && record.status == ObjectStatus::ObjConsumed
                        && current.status != ObjectStatus::ObjConsumed;
                    (*record, newly_consumed.then_some(Report::Consumed))
                }
                // The last consumer acknowledged the deletion: keep the copy until the sender
                // acknowledges.
                Change::Delete => {
                    let mut record = current.clone();
                    record.remaining_consumers = 0;
                    (record, Some(Report::Deleted))
                }
                Change::Keep => return Ok(Some(current)),
            };
            let mut ops = vec![StoreOp::WriteObject {
                record: Box::new(record.clone()),
                expect: Expect::Revision(revision),
                drop_upload: false,
            }];
            if let Some(kind) = message {
                ops.push(StoreOp::PutNotification(self.message_to_sender(
                    key,
                    kind,
                    &record.meta,
                )));
            }
            match self.commit(key, ops).await {
                Ok(()) => return Ok(Some(current)),
                Err(StoreError::Conflict) => continue,
                Err(e) => return Err(e.into()),
            }
        }
        Err(EngineError::Conflict(format!(
            "{key} is being changed by other requests; retry"
        )))
    }

    /// The message telling a copy's sender of a report. An ESS sends it to the CSS at once
    /// (its outbox); a CSS holds it for the sending node's next poll. The CSS recorded that
    /// node in the copy's destination fields when it stored the copy.
    fn message_to_sender(&self, key: &ObjectKey, report: Report, meta: &MetaData) -> Notification {
        let (remote, status, resend_time) = match self.role() {
            Role::Ess => (
                super::receive::cloud(),
                if report == Report::Consumed {
                    NotificationStatus::Consumed
                } else {
                    NotificationStatus::Deleted
                },
                now_secs(),
            ),
            Role::Css => (
                Remote {
                    dest_type: meta.destination_type.clone(),
                    dest_id: meta.destination_id.clone(),
                },
                if report == Report::Consumed {
                    NotificationStatus::ConsumedPending
                } else {
                    NotificationStatus::DeletedPending
                },
                now_secs() + self.resend_delay(),
            ),
        };
        Notification {
            key: key.clone(),
            remote,
            status,
            instance_id: meta.instance_id,
            data_id: meta.data_id,
            resend_time,
        }
    }

    /// Consumer routes need full access: 403 when the caller lacks it, 404 when the object
    /// is absent and the caller could have seen it.
    async fn require_consumer(&self, identity: &Identity, key: &ObjectKey) -> EngineResult<ObjectRecord> {
        if identity.is_shut_out() {
            return Err(EngineError::Forbidden);
        }
        let record = self.0.store.object(key).await?;
        let grants = self.grants_for_type(identity, &key.org, &key.object_type).await?;
        match record {
            Some(record) if access::may_act_as_consumer(self.role(), identity, &key.org, &record.meta, &grants) => {
                Ok(record)
            }
            None if access::may_read_all(self.role(), identity, &key.org, &key.object_type, &grants) => {
                Err(EngineError::NotFound)
            }
            _ => Err(EngineError::Forbidden),
        }
    }

    /// `PUT {obj}/activate`: clears `inactive` on a sender copy.
    pub async fn activate(&self, identity: &Identity, key: &ObjectKey) -> EngineResult<()> {
        let role = self.role();
        let stored = self.0.store.object(key).await?;
        let grants = match &stored {
            Some(stored) => self.grants_for(identity, &key.org, &stored.meta).await?,
            None => Default::default(),
        };
        let result = self
            .change_object(key, |mut record| {
                // Activation starts delivery, so it needs write access, not just read access.
                if !access::may_write(role, identity, &key.org, &record.meta, &grants) {
                    return Err(EngineError::Forbidden);
                }
                if !record.is_sender_copy() {
                    return Err(EngineError::Invalid(
                        "Can't activate object on the receiving side".into(),
                    ));
                }
                record.meta.inactive = false;
                Ok(Change::Write(Box::new(record)))
            })
            .await;
        match result {
            Err(EngineError::NotFound) if !identity.is_shut_out() => Err(EngineError::Invalid(
                "Failed to activate the object. Error: Object not found".into(),
            )),
            Err(EngineError::NotFound) => Err(EngineError::Forbidden),
            other => other.map(|_| ()),
        }
    }

    /// `PUT {obj}/policyreceived` (CSS): marks the destination policy as seen.
    pub async fn policy_received(&self, identity: &Identity, key: &ObjectKey) -> EngineResult<()> {
        if self.role() == Role::Ess {
            return Err(EngineError::Invalid(
                "ESS doesn't support policy received updates".into(),
            ));
        }
        self.require_consumer(identity, key).await?;
        self.change_object(key, |mut record| {
            record.policy_received = true;
            Ok(Change::Write(Box::new(record)))
        })
        .await
        .map(|_| ())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::MetaData;

    fn received_copy(consumers: i32) -> ObjectRecord {
        ObjectRecord {
            meta: MetaData {
                consumers,
                ..MetaData::default()
            },
            status: ObjectStatus::CompletelyReceived,
            sender: false,
            remaining_consumers: consumers,
            remaining_receivers: consumers,
            policy_received: false,
            blob: None,
            revision: 1,
        }
    }

    fn written(change: Change) -> ObjectRecord {
        match change {
            Change::Write(record) | Change::WriteEndingUpload(record) => *record,
            Change::Delete | Change::Keep => panic!("expected a write"),
        }
    }

    #[test]
    fn consumed_by_the_last_consumer_becomes_objconsumed() {
        let once = written(apply_report(Report::Consumed, received_copy(2)).unwrap());
        assert_eq!(
            (once.status, once.remaining_consumers),
            (ObjectStatus::CompletelyReceived, 1)
        );
        let twice = written(apply_report(Report::Consumed, once).unwrap());
        assert_eq!(twice.status, ObjectStatus::ObjConsumed);
        assert!(
            apply_report(Report::Consumed, twice).is_err(),
            "a consumed copy cannot be consumed again"
        );
    }

    #[test]
    fn received_hides_the_object_without_consuming_it() {
        let record = written(apply_report(Report::Received, received_copy(1)).unwrap());
        assert_eq!(
            (record.status, record.remaining_consumers),
            (ObjectStatus::ObjReceived, 1)
        );
        let consumed = written(apply_report(Report::Consumed, record).unwrap());
        assert_eq!(consumed.status, ObjectStatus::ObjConsumed);
    }

    #[test]
    fn deletion_acknowledged_by_every_consumer_removes_the_copy() {
        let mut record = received_copy(2);
        assert!(
            apply_report(Report::Deleted, record.clone()).is_err(),
            "not deleted yet"
        );
        record.meta.deleted = true;
        record.status = ObjectStatus::ObjDeleted;
        let once = written(apply_report(Report::Deleted, record).unwrap());
        assert!(matches!(apply_report(Report::Deleted, once).unwrap(), Change::Delete));
    }
}
