//! The status page's reads ([`crate::store::fleet`]): counts per delivery state and pages of
//! destinations and nodes, each a few indexed statements.

use super::nodes::delivery_status;
use crate::model::{DeliveryStatus, Destination, DestinationStatus, ObjectKey};
use crate::store::fleet::{DeliveryCount, DeliveryRow, NodeRow, PageRequest, Paged};
use crate::store::StoreResult;
use rusqlite::{params, Connection};

/// Counts per delivery state of the objects `ids` (type, id) of `org`: one count per object
/// and state, each the length of a range of the index by state, which SQLite counts without
/// reading the rows or sorting them by state.
pub(super) fn delivery_counts(
    conn: &Connection,
    org: &str,
    ids: &[(String, String)],
) -> StoreResult<Vec<DeliveryCount>> {
    let mut statement = conn.prepare_cached(
        "SELECT COUNT(*) FROM object_destinations INDEXED BY object_destinations_by_state
         WHERE org = ?1 AND object_type = ?2 AND object_id = ?3 AND status = ?4",
    )?;
    let mut counts = Vec::new();
    for (object_type, object_id) in ids {
        for status in DeliveryStatus::ALL {
            let count: i64 =
                statement.query_row(params![org, object_type, object_id, status.as_str()], |r| r.get(0))?;
            if count > 0 {
                counts.push(DeliveryCount {
                    object_type: object_type.clone(),
                    object_id: object_id.clone(),
                    status,
                    count: u64::try_from(count).unwrap_or(0),
                });
            }
        }
    }
    Ok(counts)
}

/// SQLite's integers are signed; a page bound beyond them means "all".
fn bound(value: u64) -> i64 {
    i64::try_from(value).unwrap_or(i64::MAX)
}

pub(super) fn delivery_page(conn: &Connection, key: &ObjectKey, page: &PageRequest) -> StoreResult<Paged<DeliveryRow>> {
    const MATCHES: &str = "org = ?1 AND object_type = ?2 AND object_id = ?3
        AND (?4 = '' OR instr(lower(dest_type || '/' || dest_id || ' ' || status || ' ' || message), ?4) > 0)";
    let needle = page.needle();
    let total: i64 = conn
        .prepare_cached(&format!("SELECT COUNT(*) FROM object_destinations WHERE {MATCHES}"))?
        .query_row(params![key.org, key.object_type, key.object_id, needle], |r| r.get(0))?;
    let mut statement = conn.prepare_cached(&format!(
        "SELECT dest_type, dest_id, status, message, changed_at FROM object_destinations WHERE {MATCHES}
         ORDER BY dest_type, dest_id LIMIT ?5 OFFSET ?6"
    ))?;
    let rows = statement.query_map(
        params![
            key.org,
            key.object_type,
            key.object_id,
            needle,
            bound(page.limit),
            bound(page.offset)
        ],
        |r| {
            Ok((
                r.get::<_, String>(0)?,
                r.get::<_, String>(1)?,
                r.get::<_, String>(2)?,
                r.get::<_, String>(3)?,
                r.get::<_, i64>(4)?,
            ))
        },
    )?;
    let mut page_rows = Vec::new();
    for row in rows {
        let (dest_type, dest_id, status, message, changed_at) = row?;
        page_rows.push(DeliveryRow {
            delivery: DestinationStatus {
                dest_type,
                dest_id,
                status: delivery_status(&status)?,
                message,
            },
            changed_at,
        });
    }
    Ok(Paged {
        total: u64::try_from(total).unwrap_or(0),
        rows: page_rows,
    })
}

pub(super) fn nodes_last_seen(conn: &Connection) -> StoreResult<Vec<(Destination, i64)>> {
    let mut statement = conn
        .prepare_cached("SELECT org, dest_type, dest_id, communication, code_version, last_seen FROM destinations")?;
    let rows = statement.query_map([], |r| {
        Ok((
            Destination {
                org: r.get(0)?,
                dest_type: r.get(1)?,
                dest_id: r.get(2)?,
                communication: r.get(3)?,
                code_version: r.get(4)?,
            },
            r.get(5)?,
        ))
    })?;
    Ok(rows.collect::<rusqlite::Result<Vec<_>>>()?)
}

pub(super) fn node_page(conn: &Connection, org: &str, page: &PageRequest) -> StoreResult<Paged<NodeRow>> {
    const MATCHES: &str = "org = ?1
        AND (?2 = '' OR instr(lower(dest_type || '/' || dest_id || ' ' || communication || ' ' || code_version), ?2) > 0)";
    let needle = page.needle();
    let total: i64 = conn
        .prepare_cached(&format!("SELECT COUNT(*) FROM destinations WHERE {MATCHES}"))?
        .query_row(params![org, needle], |r| r.get(0))?;
    let mut statement = conn.prepare_cached(&format!(
        "SELECT d.org, d.dest_type, d.dest_id, d.communication, d.code_version, d.last_seen,
            (SELECT COUNT(*) FROM object_destinations o INDEXED BY object_destinations_by_node
             WHERE o.org = d.org AND o.dest_type = d.dest_type AND o.dest_id = d.dest_id
               AND o.status IN ('pending', 'delivering'))
         FROM destinations d WHERE {MATCHES} ORDER BY d.dest_type, d.dest_id LIMIT ?3 OFFSET ?4"
    ))?;
    let rows = statement.query_map(params![org, needle, bound(page.limit), bound(page.offset)], |r| {
        Ok(NodeRow {
            destination: Destination {
                org: r.get(0)?,
                dest_type: r.get(1)?,
                dest_id: r.get(2)?,
                communication: r.get(3)?,
                code_version: r.get(4)?,
            },
            last_seen: r.get(5)?,
            pending: u64::try_from(r.get::<_, i64>(6)?).unwrap_or(0),
        })
    })?;
    Ok(Paged {
        total: u64::try_from(total).unwrap_or(0),
        rows: rows.collect::<rusqlite::Result<Vec<_>>>()?,
    })
}
