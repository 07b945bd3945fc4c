//! Registered edge nodes, the delivery state of objects per node, and the notification
//! records (the outbox) addressed to nodes.

use crate::model::sync::{Notification, NotificationStatus, Remote};
use crate::model::{DeliveryStatus, Destination, DestinationStatus, ObjectDeliveryView, ObjectKey};
use crate::store::{StoreError, StoreResult, UnacknowledgedCount};
use rusqlite::{params, Connection, OptionalExtension, Row};

fn destination_from_row(r: &Row<'_>) -> rusqlite::Result<Destination> {
    Ok(Destination {
        org: r.get(0)?,
        dest_type: r.get(1)?,
        dest_id: r.get(2)?,
        communication: r.get(3)?,
        code_version: r.get(4)?,
    })
}

pub(super) fn destinations(conn: &Connection, org: &str) -> StoreResult<Vec<Destination>> {
    let mut statement = conn.prepare_cached(
        "SELECT org, dest_type, dest_id, communication, code_version FROM destinations
         WHERE org = ?1 ORDER BY dest_type, dest_id",
    )?;
    let rows = statement.query_map(params![org], destination_from_row)?;
    Ok(rows.collect::<rusqlite::Result<Vec<_>>>()?)
}

pub(super) fn count_destinations(conn: &Connection) -> StoreResult<u64> {
    let count: i64 = conn.query_row("SELECT COUNT(*) FROM destinations", [], |r| r.get(0))?;
    Ok(u64::try_from(count).unwrap_or(0))
}

pub(super) fn destination(conn: &Connection, org: &str, remote: &Remote) -> StoreResult<Option<Destination>> {
    Ok(conn
        .prepare_cached(
            "SELECT org, dest_type, dest_id, communication, code_version FROM destinations
             WHERE org = ?1 AND dest_type = ?2 AND dest_id = ?3",
        )?
        .query_row(params![org, remote.dest_type, remote.dest_id], destination_from_row)
        .optional()?)
}

pub(super) fn inactive_destinations(conn: &Connection, before: i64) -> StoreResult<Vec<Destination>> {
    let mut statement = conn.prepare_cached(
        "SELECT org, dest_type, dest_id, communication, code_version FROM destinations WHERE last_seen <= ?1",
    )?;
    let rows = statement.query_map(params![before], destination_from_row)?;
    Ok(rows.collect::<rusqlite::Result<Vec<_>>>()?)
}

pub(super) fn upsert_destination(conn: &Connection, destination: &Destination, now: i64) -> StoreResult<()> {
    conn.prepare_cached(
        "INSERT INTO destinations (org, dest_type, dest_id, communication, code_version, last_seen)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6)
         ON CONFLICT (org, dest_type, dest_id) DO UPDATE SET communication = excluded.communication,
            code_version = excluded.code_version, last_seen = excluded.last_seen",
    )?
    .execute(params![
        destination.org,
        destination.dest_type,
        destination.dest_id,
        destination.communication,
        destination.code_version,
        now
    ])?;
    Ok(())
}

pub(super) fn touch_destination(conn: &Connection, org: &str, remote: &Remote, now: i64) -> StoreResult<bool> {
    let changed = conn
        .prepare_cached("UPDATE destinations SET last_seen = ?4 WHERE org = ?1 AND dest_type = ?2 AND dest_id = ?3")?
        .execute(params![org, remote.dest_type, remote.dest_id, now])?;
    Ok(changed > 0)
}

/// Forgets a node with what is addressed to it: its notification records and delivery rows.
pub(super) fn remove_destination(conn: &Connection, org: &str, remote: &Remote) -> StoreResult<()> {
    conn.prepare_cached("DELETE FROM destinations WHERE org = ?1 AND dest_type = ?2 AND dest_id = ?3")?
        .execute(params![org, remote.dest_type, remote.dest_id])?;
    conn.prepare_cached("DELETE FROM notifications WHERE org = ?1 AND remote_type = ?2 AND remote_id = ?3")?
        .execute(params![org, remote.dest_type, remote.dest_id])?;
    conn.prepare_cached("DELETE FROM object_destinations WHERE org = ?1 AND dest_type = ?2 AND dest_id = ?3")?
        .execute(params![org, remote.dest_type, remote.dest_id])?;
    Ok(())
}

pub(super) fn delivery_status(text: &str) -> StoreResult<DeliveryStatus> {
    DeliveryStatus::parse(text).ok_or_else(|| StoreError::Corrupt(format!("delivery status {text:?}")))
}

pub(super) fn destination_statuses(conn: &Connection, key: &ObjectKey) -> StoreResult<Vec<DestinationStatus>> {
    let mut statement = conn.prepare_cached(
        "SELECT dest_type, dest_id, status, message FROM object_destinations
         WHERE org = ?1 AND object_type = ?2 AND object_id = ?3 ORDER BY dest_type, dest_id",
    )?;
    let rows = statement.query_map(params![key.org, key.object_type, key.object_id], |r| {
        Ok((
            r.get::<_, String>(0)?,
            r.get::<_, String>(1)?,
            r.get::<_, String>(2)?,
            r.get::<_, String>(3)?,
        ))
    })?;
    let mut statuses = Vec::new();
    for row in rows {
        let (dest_type, dest_id, status, message) = row?;
        statuses.push(DestinationStatus {
            dest_type,
            dest_id,
            status: delivery_status(&status)?,
            message,
        });
    }
    Ok(statuses)
}

pub(super) fn objects_for_destination(
    conn: &Connection,
    org: &str,
    dest_type: &str,
    dest_id: &str,
) -> StoreResult<Vec<ObjectDeliveryView>> {
    let mut statement = conn.prepare_cached(
        "SELECT object_type, object_id, status FROM object_destinations INDEXED BY object_destinations_by_node
         WHERE org = ?1 AND dest_type = ?2 AND dest_id = ?3
           AND status IN ('delivering', 'delivered', 'consumed', 'error')
         ORDER BY object_type, object_id",
    )?;
    let rows = statement.query_map(params![org, dest_type, dest_id], |r| {
        Ok((r.get::<_, String>(0)?, r.get::<_, String>(1)?, r.get::<_, String>(2)?))
    })?;
    let mut views = Vec::new();
    for row in rows {
        let (object_type, object_id, status) = row?;
        views.push(ObjectDeliveryView {
            org: org.to_string(),
            object_type,
            object_id,
            status: delivery_status(&status)?,
        });
    }
    Ok(views)
}

pub(super) fn set_delivery(
    conn: &Connection,
    key: &ObjectKey,
    remote: &Remote,
    status: DeliveryStatus,
    message: &str,
    at: i64,
) -> StoreResult<()> {
    // The time of change moves only when the state does: a message rewritten in the same
    // state (a resend, a repeated acknowledgement) is not a change the operator looks for.
    conn.prepare_cached(
        "INSERT INTO object_destinations (org, object_type, object_id, dest_type, dest_id, status, message, changed_at)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)
         ON CONFLICT (org, object_type, object_id, dest_type, dest_id) DO UPDATE SET
            changed_at = CASE WHEN status = excluded.status THEN changed_at ELSE excluded.changed_at END,
            status = excluded.status, message = excluded.message",
    )?
    .execute(params![
        key.org,
        key.object_type,
        key.object_id,
        remote.dest_type,
        remote.dest_id,
        status.as_str(),
        message,
        at
    ])?;
    Ok(())
}

pub(super) fn delete_delivery(conn: &Connection, key: &ObjectKey, remote: &Remote) -> StoreResult<()> {
    conn.prepare_cached(
        "DELETE FROM object_destinations WHERE org = ?1 AND object_type = ?2 AND object_id = ?3
         AND dest_type = ?4 AND dest_id = ?5",
    )?
    .execute(params![
        key.org,
        key.object_type,
        key.object_id,
        remote.dest_type,
        remote.dest_id
    ])?;
    Ok(())
}

const NOTIFICATION_COLUMNS: &str =
    "org, object_type, object_id, remote_type, remote_id, status, instance_id, data_id, resend_time";

fn query_notifications(conn: &Connection, sql: &str, args: &[&dyn rusqlite::ToSql]) -> StoreResult<Vec<Notification>> {
    let mut statement = conn.prepare_cached(sql)?;
    let rows = statement.query_map(args, |r| {
        Ok((
            ObjectKey::new(r.get::<_, String>(0)?, r.get::<_, String>(1)?, r.get::<_, String>(2)?),
            Remote {
                dest_type: r.get(3)?,
                dest_id: r.get(4)?,
            },
            r.get::<_, String>(5)?,
            r.get::<_, i64>(6)?,
            r.get::<_, i64>(7)?,
            r.get::<_, i64>(8)?,
        ))
    })?;
    let mut notifications = Vec::new();
    for row in rows {
        let (key, remote, status, instance_id, data_id, resend_time) = row?;
        let status = NotificationStatus::parse(&status)
            .ok_or_else(|| StoreError::Corrupt(format!("notification status {status:?}")))?;
        notifications.push(Notification {
            key,
            remote,
            status,
            instance_id,
            data_id,
            resend_time,
        });
    }
    Ok(notifications)
}

pub(super) fn notification(conn: &Connection, key: &ObjectKey, remote: &Remote) -> StoreResult<Option<Notification>> {
    let sql = format!(
        "SELECT {NOTIFICATION_COLUMNS} FROM notifications WHERE org = ?1 AND object_type = ?2
         AND object_id = ?3 AND remote_type = ?4 AND remote_id = ?5"
    );
    let args: [&dyn rusqlite::ToSql; 5] = [
        &key.org,
        &key.object_type,
        &key.object_id,
        &remote.dest_type,
        &remote.dest_id,
    ];
    Ok(query_notifications(conn, &sql, &args)?.pop())
}

pub(super) fn notifications_of_object(conn: &Connection, key: &ObjectKey) -> StoreResult<Vec<Notification>> {
    let sql = format!(
        "SELECT {NOTIFICATION_COLUMNS} FROM notifications WHERE org = ?1 AND object_type = ?2 AND object_id = ?3"
    );
    query_notifications(conn, &sql, &[&key.org, &key.object_type, &key.object_id])
}

// Queries by node name their index: without statistics SQLite prefers a range of the primary
// key on `org` alone (every record of the org) to an index that does not cover the columns
// read, which made each poll read the whole org.

pub(super) fn notifications_for_remote(
    conn: &Connection,
    org: &str,
    remote: &Remote,
) -> StoreResult<Vec<Notification>> {
    let sql = format!(
        "SELECT {NOTIFICATION_COLUMNS} FROM notifications INDEXED BY notifications_by_remote_status
         WHERE org = ?1 AND remote_type = ?2 AND remote_id = ?3 ORDER BY instance_id"
    );
    query_notifications(conn, &sql, &[&org, &remote.dest_type, &remote.dest_id])
}

pub(super) fn notifications_awaiting_poll(
    conn: &Connection,
    org: &str,
    remote: &Remote,
) -> StoreResult<Vec<Notification>> {
    // Literals of our own status spellings (no caller input), so the statement stays cached;
    // made once, not at every poll.
    static SQL: std::sync::OnceLock<String> = std::sync::OnceLock::new();
    let sql = SQL.get_or_init(|| {
        let statuses: Vec<String> = NotificationStatus::awaiting_poll()
            .map(|s| format!("'{}'", s.as_str()))
            .collect();
        format!(
            "SELECT {NOTIFICATION_COLUMNS} FROM notifications INDEXED BY notifications_by_remote_status
             WHERE org = ?1 AND remote_type = ?2 AND remote_id = ?3 AND status IN ({}) ORDER BY instance_id",
            statuses.join(", ")
        )
    });
    query_notifications(conn, sql, &[&org, &remote.dest_type, &remote.dest_id])
}

pub(super) fn due_notifications(conn: &Connection, now: i64) -> StoreResult<Vec<Notification>> {
    let sql = format!("SELECT {NOTIFICATION_COLUMNS} FROM notifications WHERE resend_time <= ?1 ORDER BY resend_time");
    query_notifications(conn, &sql, &[&now])
}

/// The statement counting unacknowledged notifications per node, most first.
pub(super) fn unacknowledged_sql() -> String {
    // Literals of our own status spellings (no caller input), so the statement stays cached.
    let statuses: Vec<String> = NotificationStatus::unacknowledged()
        .map(|s| format!("'{}'", s.as_str()))
        .collect();
    format!(
        "SELECT org, remote_type, remote_id, COUNT(*) AS pending FROM notifications
         WHERE status IN ({}) GROUP BY org, remote_type, remote_id ORDER BY pending DESC LIMIT ?1",
        statuses.join(", ")
    )
}

pub(super) fn unacknowledged(conn: &Connection, sql: &str, limit: i64) -> StoreResult<Vec<UnacknowledgedCount>> {
    let mut statement = conn.prepare_cached(sql)?;
    let rows = statement.query_map(params![limit], |r| {
        Ok(UnacknowledgedCount {
            org: r.get(0)?,
            remote: Remote {
                dest_type: r.get(1)?,
                dest_id: r.get(2)?,
            },
            count: u64::try_from(r.get::<_, i64>(3)?).unwrap_or(0),
        })
    })?;
    Ok(rows.collect::<rusqlite::Result<Vec<_>>>()?)
}

pub(super) fn put_notification(conn: &Connection, n: &Notification) -> StoreResult<()> {
    conn.prepare_cached(
        "INSERT OR REPLACE INTO notifications (org, object_type, object_id, remote_type, remote_id, status,
            instance_id, data_id, resend_time) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9)",
    )?
    .execute(params![
        n.key.org,
        n.key.object_type,
        n.key.object_id,
        n.remote.dest_type,
        n.remote.dest_id,
        n.status.as_str(),
        n.instance_id,
        n.data_id,
        n.resend_time
    ])?;
    Ok(())
}

pub(super) fn delete_notification(conn: &Connection, key: &ObjectKey, remote: &Remote) -> StoreResult<()> {
    conn.prepare_cached(
        "DELETE FROM notifications WHERE org = ?1 AND object_type = ?2 AND object_id = ?3
         AND remote_type = ?4 AND remote_id = ?5",
    )?
    .execute(params![
        key.org,
        key.object_type,
        key.object_id,
        remote.dest_type,
        remote.dest_id
    ])?;
    Ok(())
}

pub(super) fn delete_notifications_of(conn: &Connection, key: &ObjectKey) -> StoreResult<()> {
    conn.prepare_cached("DELETE FROM notifications WHERE org = ?1 AND object_type = ?2 AND object_id = ?3")?
        .execute(params![key.org, key.object_type, key.object_id])?;
    Ok(())
}

/// Fails with [`StoreError::Conflict`] unless the notification record is still the one the
/// caller decided on.
pub(super) fn expect_notification(
    conn: &Connection,
    key: &ObjectKey,
    remote: &Remote,
    status: NotificationStatus,
    instance_id: i64,
) -> StoreResult<()> {
    let stored: Option<(String, i64)> = conn
        .prepare_cached(
            "SELECT status, instance_id FROM notifications WHERE org = ?1 AND object_type = ?2
             AND object_id = ?3 AND remote_type = ?4 AND remote_id = ?5",
        )?
        .query_row(
            params![
                key.org,
                key.object_type,
                key.object_id,
                remote.dest_type,
                remote.dest_id
            ],
            |row| Ok((row.get(0)?, row.get(1)?)),
        )
        .optional()?;
    if stored != Some((status.as_str().to_string(), instance_id)) {
        return Err(StoreError::Conflict);
    }
    Ok(())
}
