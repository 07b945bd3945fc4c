//! Registered edge nodes, the delivery state of objects per node, and the notification
//! records (the outbox) addressed to nodes.

use super::{execute, query, Params};
use crate::model::sync::{Notification, NotificationStatus, Remote};
use crate::model::{DeliveryStatus, Destination, DestinationStatus, ObjectDeliveryView, ObjectKey};
use crate::store::{StoreError, StoreResult};
use deadpool_postgres::{GenericClient, Transaction};
use tokio_postgres::Row;

pub(super) const DESTINATION_COLUMNS: &str = "org, dest_type, dest_id, communication, code_version";

pub(super) fn destination_from_row(row: &Row) -> StoreResult<Destination> {
    Ok(Destination {
        org: row.try_get(0)?,
        dest_type: row.try_get(1)?,
        dest_id: row.try_get(2)?,
        communication: row.try_get(3)?,
        code_version: row.try_get(4)?,
    })
}

async fn destinations_where(
    client: &impl GenericClient,
    condition: &str,
    params: &Params<'_>,
) -> StoreResult<Vec<Destination>> {
    let sql = format!("SELECT {DESTINATION_COLUMNS} FROM destinations WHERE {condition}");
    query(client, &sql, params)
        .await?
        .iter()
        .map(destination_from_row)
        .collect()
}

pub(super) async fn destinations(client: &impl GenericClient, org: &str) -> StoreResult<Vec<Destination>> {
    destinations_where(client, "org = $1 ORDER BY dest_type, dest_id", &[&org]).await
}

pub(super) async fn destination(
    client: &impl GenericClient,
    org: &str,
    remote: &Remote,
) -> StoreResult<Option<Destination>> {
    let condition = "org = $1 AND dest_type = $2 AND dest_id = $3";
    Ok(
        destinations_where(client, condition, &[&org, &remote.dest_type, &remote.dest_id])
            .await?
            .pop(),
    )
}

pub(super) async fn inactive_destinations(client: &impl GenericClient, before: i64) -> StoreResult<Vec<Destination>> {
    destinations_where(client, "last_seen <= $1 ORDER BY org, dest_type, dest_id", &[&before]).await
}

pub(super) async fn upsert_destination(client: &impl GenericClient, d: &Destination, now: i64) -> StoreResult<()> {
    execute(
        client,
        "INSERT INTO destinations (org, dest_type, dest_id, communication, code_version, last_seen)
         VALUES ($1, $2, $3, $4, $5, $6)
         ON CONFLICT (org, dest_type, dest_id) DO UPDATE SET communication = excluded.communication,
            code_version = excluded.code_version, last_seen = excluded.last_seen",
        &[
            &d.org,
            &d.dest_type,
            &d.dest_id,
            &d.communication,
            &d.code_version,
            &now,
        ],
    )
    .await?;
    Ok(())
}

/// Removes a node with its notification records and delivery rows.
pub(super) async fn remove_destination(tx: &Transaction<'_>, org: &str, remote: &Remote) -> StoreResult<()> {
    let params: &Params<'_> = &[&org, &remote.dest_type, &remote.dest_id];
    for sql in [
        "DELETE FROM destinations WHERE org = $1 AND dest_type = $2 AND dest_id = $3",
        "DELETE FROM notifications WHERE org = $1 AND remote_type = $2 AND remote_id = $3",
        "DELETE FROM object_destinations WHERE org = $1 AND dest_type = $2 AND dest_id = $3",
    ] {
        execute(tx, sql, params).await?;
    }
    Ok(())
}

pub(super) fn delivery_status(text: &str) -> StoreResult<DeliveryStatus> {
    DeliveryStatus::parse(text).ok_or_else(|| StoreError::Corrupt(format!("delivery status {text:?}")))
}

pub(super) async fn destination_statuses(
    client: &impl GenericClient,
    key: &ObjectKey,
) -> StoreResult<Vec<DestinationStatus>> {
    let rows = query(
        client,
        "SELECT dest_type, dest_id, status, message FROM object_destinations
         WHERE org = $1 AND object_type = $2 AND object_id = $3 ORDER BY dest_type, dest_id",
        &[&key.org, &key.object_type, &key.object_id],
    )
    .await?;
    rows.iter()
        .map(|row| {
            Ok(DestinationStatus {
                dest_type: row.try_get(0)?,
                dest_id: row.try_get(1)?,
                status: delivery_status(row.try_get(2)?)?,
                message: row.try_get(3)?,
            })
        })
        .collect()
}

pub(super) async fn objects_for_destination(
    client: &impl GenericClient,
    org: &str,
    dest_type: &str,
    dest_id: &str,
) -> StoreResult<Vec<ObjectDeliveryView>> {
    let rows = query(
        client,
        "SELECT object_type, object_id, status FROM object_destinations
         WHERE org = $1 AND dest_type = $2 AND dest_id = $3
           AND status IN ('delivering', 'delivered', 'consumed', 'error')
         ORDER BY object_type, object_id",
        &[&org, &dest_type, &dest_id],
    )
    .await?;
    rows.iter()
        .map(|row| {
            Ok(ObjectDeliveryView {
                org: org.to_string(),
                object_type: row.try_get(0)?,
                object_id: row.try_get(1)?,
                status: delivery_status(row.try_get(2)?)?,
            })
        })
        .collect()
}

const NOTIFICATION_COLUMNS: &str =
    "org, object_type, object_id, remote_type, remote_id, status, instance_id, data_id, resend_time";

fn notification_from_row(row: &Row) -> StoreResult<Notification> {
    let status: &str = row.try_get(5)?;
    Ok(Notification {
        key: ObjectKey::new(
            row.try_get::<_, &str>(0)?,
            row.try_get::<_, &str>(1)?,
            row.try_get::<_, &str>(2)?,
        ),
        remote: Remote {
            dest_type: row.try_get(3)?,
            dest_id: row.try_get(4)?,
        },
        status: NotificationStatus::parse(status)
            .ok_or_else(|| StoreError::Corrupt(format!("notification status {status:?}")))?,
        instance_id: row.try_get(6)?,
        data_id: row.try_get(7)?,
        resend_time: row.try_get(8)?,
    })
}

async fn notifications_where(
    client: &impl GenericClient,
    condition: &str,
    params: &Params<'_>,
) -> StoreResult<Vec<Notification>> {
    let sql = format!("SELECT {NOTIFICATION_COLUMNS} FROM notifications WHERE {condition}");
    query(client, &sql, params)
        .await?
        .iter()
        .map(notification_from_row)
        .collect()
}

pub(super) async fn notification(
    client: &impl GenericClient,
    key: &ObjectKey,
    remote: &Remote,
) -> StoreResult<Option<Notification>> {
    let condition = "org = $1 AND object_type = $2 AND object_id = $3 AND remote_type = $4 AND remote_id = $5";
    let params: &Params<'_> = &[
        &key.org,
        &key.object_type,
        &key.object_id,
        &remote.dest_type,
        &remote.dest_id,
    ];
    Ok(notifications_where(client, condition, params).await?.pop())
}

pub(super) async fn notifications_of_object(
    client: &impl GenericClient,
    key: &ObjectKey,
) -> StoreResult<Vec<Notification>> {
    let condition = "org = $1 AND object_type = $2 AND object_id = $3 ORDER BY remote_type, remote_id";
    notifications_where(client, condition, &[&key.org, &key.object_type, &key.object_id]).await
}

pub(super) async fn notifications_for_remote(
    client: &impl GenericClient,
    org: &str,
    remote: &Remote,
) -> StoreResult<Vec<Notification>> {
    let condition = "org = $1 AND remote_type = $2 AND remote_id = $3 ORDER BY instance_id";
    notifications_where(client, condition, &[&org, &remote.dest_type, &remote.dest_id]).await
}

pub(super) async fn notifications_awaiting_poll(
    client: &impl GenericClient,
    org: &str,
    remote: &Remote,
) -> StoreResult<Vec<Notification>> {
    let statuses: Vec<&str> = NotificationStatus::awaiting_poll().map(|s| s.as_str()).collect();
    let condition = "org = $1 AND remote_type = $2 AND remote_id = $3 AND status = ANY($4) ORDER BY instance_id";
    notifications_where(
        client,
        condition,
        &[&org, &remote.dest_type, &remote.dest_id, &statuses],
    )
    .await
}

pub(super) async fn due_notifications(client: &impl GenericClient, now: i64) -> StoreResult<Vec<Notification>> {
    notifications_where(client, "resend_time <= $1 ORDER BY resend_time", &[&now]).await
}
