//! Organizations, webhooks and access control lists.

use crate::model::acl::{AclEntry, AclKind, AclRole, AclUserType};
use crate::model::Organization;
use crate::store::{StoreError, StoreResult};
use rusqlite::{params, Connection};

pub(super) fn organizations(conn: &Connection) -> StoreResult<Vec<Organization>> {
    let mut statement = conn.prepare_cached("SELECT org, user, password, address FROM organizations ORDER BY org")?;
    let rows = statement.query_map([], |r| {
        Ok(Organization {
            org_id: r.get(0)?,
            user: r.get(1)?,
            password: r.get(2)?,
            address: r.get(3)?,
        })
    })?;
    Ok(rows.collect::<rusqlite::Result<Vec<_>>>()?)
}

pub(super) fn put_organization(conn: &Connection, org: &Organization) -> StoreResult<()> {
    conn.prepare_cached(
        "INSERT INTO organizations (org, user, password, address) VALUES (?1, ?2, ?3, ?4)
         ON CONFLICT (org) DO UPDATE SET user = excluded.user, password = excluded.password, address = excluded.address",
    )?
    .execute(params![org.org_id, org.user, org.password, org.address])?;
    Ok(())
}

/// Removes everything of `org`; the data files its objects referenced, for the caller to
/// delete once the removal is committed.
pub(super) fn delete_organization(conn: &Connection, org: &str) -> StoreResult<Vec<String>> {
    let mut statement = conn.prepare("SELECT blob FROM objects WHERE org = ?1 AND blob IS NOT NULL")?;
    let blobs = statement
        .query_map(params![org], |r| r.get(0))?
        .collect::<rusqlite::Result<Vec<String>>>()?;
    for table in [
        "objects",
        "object_destinations",
        "notifications",
        "destinations",
        "webhooks",
        "uploads",
        "sent_progress",
        "organizations",
        "acls",
    ] {
        conn.execute(&format!("DELETE FROM {table} WHERE org = ?1"), params![org])?;
    }
    Ok(blobs)
}

pub(super) fn webhooks(conn: &Connection, org: &str, object_type: &str) -> StoreResult<Vec<String>> {
    let mut statement =
        conn.prepare_cached("SELECT url FROM webhooks WHERE org = ?1 AND object_type = ?2 ORDER BY url")?;
    let urls = statement.query_map(params![org, object_type], |r| r.get(0))?;
    Ok(urls.collect::<rusqlite::Result<Vec<String>>>()?)
}

pub(super) fn add_webhook(conn: &Connection, org: &str, object_type: &str, url: &str) -> StoreResult<()> {
    conn.prepare_cached("INSERT INTO webhooks (org, object_type, url) VALUES (?1, ?2, ?3) ON CONFLICT DO NOTHING")?
        .execute(params![org, object_type, url])?;
    Ok(())
}

pub(super) fn remove_webhook(conn: &Connection, org: &str, object_type: &str, url: &str) -> StoreResult<()> {
    conn.prepare_cached("DELETE FROM webhooks WHERE org = ?1 AND object_type = ?2 AND lower(url) = lower(?3)")?
        .execute(params![org, object_type, url])?;
    Ok(())
}

pub(super) fn acl(conn: &Connection, org: &str, kind: AclKind, key: &str) -> StoreResult<Vec<AclEntry>> {
    let mut statement = conn.prepare_cached(
        "SELECT username, user_type, role FROM acls WHERE org = ?1 AND kind = ?2 AND key = ?3 ORDER BY position",
    )?;
    let rows = statement.query_map(params![org, kind.as_str(), key], |r| {
        Ok((r.get::<_, String>(0)?, r.get::<_, String>(1)?, r.get::<_, String>(2)?))
    })?;
    let mut entries = Vec::new();
    for row in rows {
        let (username, user_type, role) = row?;
        let user_type = AclUserType::parse(&user_type)
            .ok_or_else(|| StoreError::Corrupt(format!("ACL user type {user_type:?}")))?;
        let role = AclRole::parse(&role).ok_or_else(|| StoreError::Corrupt(format!("ACL role {role:?}")))?;
        entries.push(AclEntry {
            username,
            user_type,
            role,
        });
    }
    Ok(entries)
}

pub(super) fn acl_keys(conn: &Connection, org: &str, kind: AclKind) -> StoreResult<Vec<String>> {
    let mut statement =
        conn.prepare_cached("SELECT DISTINCT key FROM acls WHERE org = ?1 AND kind = ?2 ORDER BY key")?;
    let keys = statement.query_map(params![org, kind.as_str()], |r| r.get(0))?;
    Ok(keys.collect::<rusqlite::Result<Vec<String>>>()?)
}

/// Puts the entries of `add` first (each replacing the entry of the same user) and drops
/// those of `remove`; every position is rewritten, since the order is what the list means.
pub(super) fn change_acl(
    conn: &Connection,
    org: &str,
    kind: AclKind,
    key: &str,
    add: &[AclEntry],
    remove: &[(AclUserType, String)],
) -> StoreResult<()> {
    let current = acl(conn, org, kind, key)?;
    let replaced = |e: &AclEntry| {
        add.iter()
            .any(|a| a.user_type == e.user_type && a.username == e.username)
            || remove.iter().any(|(t, n)| *t == e.user_type && *n == e.username)
    };
    let survivors: Vec<AclEntry> = current.into_iter().filter(|e| !replaced(e)).collect();
    conn.prepare_cached("DELETE FROM acls WHERE org = ?1 AND kind = ?2 AND key = ?3")?
        .execute(params![org, kind.as_str(), key])?;
    let mut insert = conn.prepare_cached(
        "INSERT OR REPLACE INTO acls (org, kind, key, position, username, user_type, role)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)",
    )?;
    for (position, entry) in add.iter().chain(survivors.iter()).enumerate() {
        insert.execute(params![
            org,
            kind.as_str(),
            key,
            position as i64,
            entry.username,
            entry.user_type.as_str(),
            entry.role.as_str()
        ])?;
    }
    Ok(())
}
