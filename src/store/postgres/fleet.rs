//! The status page's reads ([`crate::store::fleet`]), as in the embedded store: aggregates
//! and pages computed by the database.

use super::nodes::{delivery_status, destination_from_row, DESTINATION_COLUMNS};
use super::{count, query};
use crate::model::{Destination, DestinationStatus, ObjectKey};
use crate::store::fleet::{DeliveryCount, DeliveryRow, NodeRow, PageRequest, Paged};
use crate::store::StoreResult;
use deadpool_postgres::GenericClient;

/// PostgreSQL's integers are signed; a page bound beyond them means "all".
fn bound(value: u64) -> i64 {
    i64::try_from(value).unwrap_or(i64::MAX)
}

/// Counts per delivery state of the objects `ids` (type, id) of `org`, in one statement.
pub(super) async fn delivery_counts(
    client: &impl GenericClient,
    org: &str,
    ids: &[(String, String)],
) -> StoreResult<Vec<DeliveryCount>> {
    let types: Vec<&str> = ids.iter().map(|(t, _)| t.as_str()).collect();
    let objects: Vec<&str> = ids.iter().map(|(_, i)| i.as_str()).collect();
    let rows = query(
        client,
        "SELECT d.object_type, d.object_id, d.status, COUNT(*) FROM object_destinations d
         JOIN unnest($2::text[], $3::text[]) AS wanted (object_type, object_id)
           ON d.object_type = wanted.object_type AND d.object_id = wanted.object_id
         WHERE d.org = $1 GROUP BY d.object_type, d.object_id, d.status",
        &[&org, &types, &objects],
    )
    .await?;
    rows.iter()
        .map(|row| {
            Ok(DeliveryCount {
                object_type: row.try_get(0)?,
                object_id: row.try_get(1)?,
                status: delivery_status(row.try_get(2)?)?,
                count: u64::try_from(row.try_get::<_, i64>(3)?).unwrap_or(0),
            })
        })
        .collect()
}

pub(super) async fn delivery_page(
    client: &impl GenericClient,
    key: &ObjectKey,
    page: &PageRequest,
) -> StoreResult<Paged<DeliveryRow>> {
    const MATCHES: &str = "org = $1 AND object_type = $2 AND object_id = $3
        AND ($4 = '' OR strpos(lower(dest_type || '/' || dest_id || ' ' || status || ' ' || message), $4) > 0)";
    let needle = page.needle();
    let total = count(
        &query(
            client,
            &format!("SELECT COUNT(*) FROM object_destinations WHERE {MATCHES}"),
            &[&key.org, &key.object_type, &key.object_id, &needle],
        )
        .await?,
    )?;
    let rows = query(
        client,
        &format!(
            "SELECT dest_type, dest_id, status, message, changed_at FROM object_destinations WHERE {MATCHES}
             ORDER BY dest_type, dest_id LIMIT $5 OFFSET $6"
        ),
        &[
            &key.org,
            &key.object_type,
            &key.object_id,
            &needle,
            &bound(page.limit),
            &bound(page.offset),
        ],
    )
    .await?;
    let rows = rows
        .iter()
        .map(|row| {
            Ok(DeliveryRow {
                delivery: DestinationStatus {
                    dest_type: row.try_get(0)?,
                    dest_id: row.try_get(1)?,
                    status: delivery_status(row.try_get(2)?)?,
                    message: row.try_get(3)?,
                },
                changed_at: row.try_get(4)?,
            })
        })
        .collect::<StoreResult<Vec<_>>>()?;
    Ok(Paged { total, rows })
}

pub(super) async fn nodes_last_seen(client: &impl GenericClient) -> StoreResult<Vec<(Destination, i64)>> {
    let rows = query(
        client,
        &format!("SELECT {DESTINATION_COLUMNS}, last_seen FROM destinations"),
        &[],
    )
    .await?;
    rows.iter()
        .map(|row| Ok((destination_from_row(row)?, row.try_get(5)?)))
        .collect()
}

pub(super) async fn node_page(
    client: &impl GenericClient,
    org: &str,
    page: &PageRequest,
) -> StoreResult<Paged<NodeRow>> {
    const MATCHES: &str = "org = $1
        AND ($2 = '' OR strpos(lower(dest_type || '/' || dest_id || ' ' || communication || ' ' || code_version), $2) > 0)";
    let needle = page.needle();
    let total = count(
        &query(
            client,
            &format!("SELECT COUNT(*) FROM destinations WHERE {MATCHES}"),
            &[&org, &needle],
        )
        .await?,
    )?;
    let rows = query(
        client,
        &format!(
            "SELECT {DESTINATION_COLUMNS}, last_seen,
                (SELECT COUNT(*) FROM object_destinations o
                 WHERE o.org = d.org AND o.dest_type = d.dest_type AND o.dest_id = d.dest_id
                   AND o.status IN ('pending', 'delivering'))
             FROM destinations d WHERE {MATCHES} ORDER BY dest_type, dest_id LIMIT $3 OFFSET $4"
        ),
        &[&org, &needle, &bound(page.limit), &bound(page.offset)],
    )
    .await?;
    let rows = rows
        .iter()
        .map(|row| {
            Ok(NodeRow {
                destination: destination_from_row(row)?,
                last_seen: row.try_get(5)?,
                pending: u64::try_from(row.try_get::<_, i64>(6)?).unwrap_or(0),
            })
        })
        .collect::<StoreResult<Vec<_>>>()?;
    Ok(Paged { total, rows })
}
