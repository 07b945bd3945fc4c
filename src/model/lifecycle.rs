//! When an object's timed events fall due (spec: lifecycle.md §6-7): expiration of an origin
//! object and activation of an inactive one. Times are compared as instants, not as strings,
//! so values written with a numeric offset are handled right (the original's flaw).

use super::validate::parse_rfc3339;
use super::{MetaData, ObjectRecord, ObjectStatus};

/// Seconds after the last destination consumed an `autodelete` object before it expires.
pub const AUTODELETE_DELAY_SECS: i64 = 60 * 60;

/// Seconds since the Unix epoch of an RFC 3339 time, rounded up so that an event is never
/// taken as due before its time; `None` when empty or unparsable.
pub fn instant_secs(value: &str) -> Option<i64> {
    if value.is_empty() {
        return None;
    }
    let at = parse_rfc3339(value).ok()?;
    Some(at.unix_timestamp() + i64::from(at.nanosecond() > 0))
}

/// How far a node's clock may trail its CSS's when it decides whether a deletion is an
/// expiration: the CSS expired the object by its own clock.
pub const EXPIRATION_CLOCK_ALLOWANCE_SECS: i64 = 60;

/// True when a deletion of an object with `meta` is its expiration, seen at `now` on a node
/// whose clock may trail the CSS's: the object's expiration time has come, or comes within
/// [`EXPIRATION_CLOCK_ALLOWANCE_SECS`]. The protocol's `delete` does not say why an object
/// went, so its expiration time is the only evidence.
pub fn deleted_by_expiration(meta: &MetaData, now: i64) -> bool {
    instant_secs(&meta.expiration).is_some_and(|at| at <= now + EXPIRATION_CLOCK_ALLOWANCE_SECS)
}

/// The RFC 3339 (UTC, `Z`) form of a Unix time, as the original writes times.
pub fn rfc3339_utc(secs: i64) -> String {
    time::OffsetDateTime::from_unix_timestamp(secs)
        .ok()
        .and_then(|t| t.format(&time::format_description::well_known::Rfc3339).ok())
        .unwrap_or_default()
}

impl ObjectRecord {
    /// When this origin object expires; only objects that are not being deleted expire.
    pub fn expiration_due(&self) -> Option<i64> {
        let expirable = matches!(
            self.status,
            ObjectStatus::NotReady | ObjectStatus::Ready | ObjectStatus::Verifying | ObjectStatus::VerificationFailed
        );
        (self.is_sender_copy() && expirable)
            .then(|| instant_secs(&self.meta.expiration))
            .flatten()
    }

    /// When this inactive origin object is to be activated.
    pub fn activation_due(&self) -> Option<i64> {
        (self.is_sender_copy() && self.meta.inactive)
            .then(|| instant_secs(&self.meta.activation_time))
            .flatten()
    }

    /// The earliest timed event of the object, which the store indexes so that the timers
    /// find due objects without scanning every object.
    pub fn lifecycle_due(&self) -> Option<i64> {
        match (self.expiration_due(), self.activation_due()) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        }
    }

    /// True when the object has expired at `now` and must not be delivered any more.
    pub fn is_expired(&self, now: i64) -> bool {
        self.expiration_due().is_some_and(|due| due <= now)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn origin(meta: MetaData, status: ObjectStatus) -> ObjectRecord {
        ObjectRecord {
            meta,
            status,
            sender: true,
            remaining_consumers: 1,
            remaining_receivers: 1,
            policy_received: false,
            blob: None,
            revision: 1,
        }
    }

    #[test]
    fn offsets_are_compared_as_instants() {
        let utc = instant_secs("2030-01-01T10:00:00Z").unwrap();
        let offset = instant_secs("2030-01-01T12:00:00+02:00").unwrap();
        assert_eq!(utc, offset);
        assert_eq!(instant_secs(""), None);
        assert_eq!(instant_secs("tomorrow"), None);
        assert_eq!(instant_secs(&rfc3339_utc(utc)), Some(utc));
        assert_eq!(instant_secs("2030-01-01T10:00:00.25Z"), Some(utc + 1));
    }

    #[test]
    fn the_earliest_event_of_an_origin_object_is_due() {
        let meta = MetaData {
            expiration: "2030-01-01T10:00:00Z".into(),
            inactive: true,
            activation_time: "2029-01-01T10:00:00Z".into(),
            ..MetaData::default()
        };
        let record = origin(meta.clone(), ObjectStatus::Ready);
        assert_eq!(record.lifecycle_due(), instant_secs("2029-01-01T10:00:00Z"));
        let active = origin(
            MetaData {
                inactive: false,
                ..meta.clone()
            },
            ObjectStatus::Ready,
        );
        assert_eq!(active.lifecycle_due(), instant_secs("2030-01-01T10:00:00Z"));
        assert!(active.is_expired(instant_secs("2030-01-01T10:00:00Z").unwrap()));
        assert!(!active.is_expired(instant_secs("2030-01-01T09:59:59Z").unwrap()));
    }

    #[test]
    fn received_copies_and_deleted_objects_have_no_timed_events() {
        let meta = MetaData {
            expiration: "2030-01-01T10:00:00Z".into(),
            ..MetaData::default()
        };
        let mut copy = origin(meta.clone(), ObjectStatus::CompletelyReceived);
        copy.sender = false;
        assert_eq!(copy.lifecycle_due(), None);
        assert_eq!(origin(meta, ObjectStatus::ObjDeleted).lifecycle_due(), None);
    }

    #[test]
    fn a_deletion_is_an_expiration_once_the_expiration_time_is_near_or_past() {
        let now = 1_700_000_000;
        let expiring_at = |secs: i64| MetaData {
            expiration: rfc3339_utc(secs),
            ..MetaData::default()
        };
        assert!(deleted_by_expiration(&expiring_at(now - 5), now));
        assert!(
            deleted_by_expiration(&expiring_at(now + 30), now),
            "a node whose clock trails the CSS's"
        );
        assert!(!deleted_by_expiration(&expiring_at(now + 3600), now));
        assert!(!deleted_by_expiration(&MetaData::default(), now), "no expiration");
    }
}
