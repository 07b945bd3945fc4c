//! Organizations and access control lists.

use super::{column, execute, query};
use crate::model::acl::{AclEntry, AclKind, AclRole, AclUserType};
use crate::model::Organization;
use crate::store::{StoreError, StoreResult};
use deadpool_postgres::{GenericClient, Transaction};

/// First key of the advisory locks that serialize changes of one ACL (ASCII `acl`); the
/// second is a hash of the ACL's org, kind and key. Two-key locks never collide with the
/// single-key migration lock.
const ACL_LOCK: i32 = 0x0061_636c;

pub(super) async fn organizations(client: &impl GenericClient) -> StoreResult<Vec<Organization>> {
    let rows = query(
        client,
        "SELECT org, username, password, address FROM organizations ORDER BY org",
        &[],
    )
    .await?;
    rows.iter()
        .map(|row| {
            Ok(Organization {
                org_id: row.try_get(0)?,
                user: row.try_get(1)?,
                password: row.try_get(2)?,
                address: row.try_get(3)?,
            })
        })
        .collect()
}

pub(super) async fn put_organization(client: &impl GenericClient, org: &Organization) -> StoreResult<()> {
    execute(
        client,
        "INSERT INTO organizations (org, username, password, address) VALUES ($1, $2, $3, $4)
         ON CONFLICT (org) DO UPDATE SET username = excluded.username, password = excluded.password,
            address = excluded.address",
        &[&org.org_id, &org.user, &org.password, &org.address],
    )
    .await?;
    Ok(())
}

/// Removes everything of an org; returns the data files its objects referenced.
pub(super) async fn delete_organization(tx: &Transaction<'_>, org: &str) -> StoreResult<Vec<String>> {
    let blobs = column(
        &query(
            tx,
            "DELETE FROM objects WHERE org = $1 AND blob IS NOT NULL RETURNING blob",
            &[&org],
        )
        .await?,
    )?;
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
        execute(tx, &format!("DELETE FROM {table} WHERE org = $1"), &[&org]).await?;
    }
    Ok(blobs)
}

/// The entries of one ACL in order.
pub(super) async fn acl(
    client: &impl GenericClient,
    org: &str,
    kind: AclKind,
    key: &str,
) -> StoreResult<Vec<AclEntry>> {
    let rows = query(
        client,
        "SELECT username, user_type, role FROM acls WHERE org = $1 AND kind = $2 AND key = $3 ORDER BY position",
        &[&org, &kind.as_str(), &key],
    )
    .await?;
    rows.iter()
        .map(|row| {
            let user_type: &str = row.try_get(1)?;
            let role: &str = row.try_get(2)?;
            Ok(AclEntry {
                username: row.try_get(0)?,
                user_type: AclUserType::parse(user_type)
                    .ok_or_else(|| StoreError::Corrupt(format!("ACL user type {user_type:?}")))?,
                role: AclRole::parse(role).ok_or_else(|| StoreError::Corrupt(format!("ACL role {role:?}")))?,
            })
        })
        .collect()
}

/// Rewrites one ACL: the added entries first (replacing entries of the same user), then the
/// surviving old ones, without the removed users. Concurrent changes of the same ACL wait for
/// each other, so none is lost.
pub(super) async fn change_acl(
    tx: &Transaction<'_>,
    org: &str,
    kind: AclKind,
    key: &str,
    add: &[AclEntry],
    remove: &[(AclUserType, String)],
) -> StoreResult<()> {
    let name = format!("{org}/{}/{key}", kind.as_str());
    execute(
        tx,
        "SELECT pg_advisory_xact_lock($1, hashtext($2))",
        &[&ACL_LOCK, &name],
    )
    .await?;
    let current = acl(tx, org, kind, key).await?;
    let replaced = |e: &AclEntry| {
        add.iter()
            .any(|a| a.user_type == e.user_type && a.username == e.username)
            || remove.iter().any(|(t, n)| *t == e.user_type && *n == e.username)
    };
    let survivors: Vec<&AclEntry> = current.iter().filter(|e| !replaced(e)).collect();
    execute(
        tx,
        "DELETE FROM acls WHERE org = $1 AND kind = $2 AND key = $3",
        &[&org, &kind.as_str(), &key],
    )
    .await?;
    for (position, entry) in add.iter().chain(survivors).enumerate() {
        let position = i32::try_from(position).unwrap_or(i32::MAX);
        execute(
            tx,
            "INSERT INTO acls (org, kind, key, position, username, user_type, role)
             VALUES ($1, $2, $3, $4, $5, $6, $7)
             ON CONFLICT (org, kind, key, user_type, username) DO UPDATE SET
                position = excluded.position, role = excluded.role",
            &[
                &org,
                &kind.as_str(),
                &key,
                &position,
                &entry.username,
                &entry.user_type.as_str(),
                &entry.role.as_str(),
            ],
        )
        .await?;
    }
    Ok(())
}
