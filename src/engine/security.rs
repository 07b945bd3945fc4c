//! ACL management on the CSS (spec: rest-api.md §7, security.md §6.2): bulk add/remove,
//! removal of one entry, and listings. Only org admins of the org and sync admins may use
//! it. ACL kinds, user types and entries are checked after the caller, as the original
//! does; names in paths are checked by the API layer before.
//!
//! Fixes over the original: removing from an ACL that does not exist succeeds; an empty
//! add creates nothing; roles of destinations ACLs are always `na`; an entry with the same
//! user type and name replaces the old one; every entry is checked before anything is
//! stored. Extensions (documented in rest-api.md §7): a `usernames` list of plain names in
//! bulk bodies means `user` entries (role `aclWriter` for objects ACLs).

use super::{EngineError, EngineResult, Node};
use crate::auth::{Identity, IdentityKind};
use crate::model::acl::{AclEntry, AclKind, AclRole, AclUserType, ORG_WIDE_KEY};
use crate::model::json::{fold, Nested, Shape};
use crate::model::Role;
use serde::Deserialize;
use serde_json::Value;

static ENTRY_SHAPE: Shape = Shape {
    fields: &["Username", "ACLUserType", "ACLRole"],
    nested: &[],
};
static UPDATE_SHAPE: Shape = Shape {
    fields: &["action", "users", "usernames"],
    nested: &[
        ("users", Nested::ArrayOf(&ENTRY_SHAPE)),
        ("usernames", Nested::ArrayOf(&ENTRY_SHAPE)),
    ],
};

/// Body of the bulk update.
#[derive(Debug, Default, Deserialize)]
#[serde(default)]
struct UpdateRequest {
    action: String,
    users: Vec<RawEntry>,
    /// The name the original's SDKs and management tool send their entries under (the
    /// original's server ignores it, so their ACL changes were lost): entries as in `users`,
    /// or plain names, taken as `user` entries.
    usernames: Vec<UsernameItem>,
}

/// One item of `usernames`.
#[derive(Debug, Deserialize)]
#[serde(untagged)]
enum UsernameItem {
    Name(String),
    Entry(RawEntry),
}

/// An entry as sent, checked field by field so that a bad value is an entry error and not
/// a JSON error.
#[derive(Debug, Default, Deserialize)]
#[serde(default)]
struct RawEntry {
    #[serde(rename = "Username")]
    username: String,
    #[serde(rename = "ACLUserType")]
    user_type: String,
    #[serde(rename = "ACLRole")]
    role: String,
}

/// What `GET /api/v1/security/{aclType}/{org}` asks for.
#[derive(Debug, Clone, Default)]
pub struct AclQuery {
    /// List the keys that have an ACL instead of entries.
    pub all_keys: bool,
    /// The ACL to read; `None` (or `*`) is the org-wide ACL.
    pub key: Option<String>,
    /// `acl_usertype`: only entries of this user type (`user` or `node`).
    pub user_type: Option<String>,
}

/// Answer of an ACL listing.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AclListing {
    Keys(Vec<String>),
    Entries(Vec<AclEntry>),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Action {
    Add,
    Remove,
}

impl Node {
    /// Refuses everybody but org admins of `org` and sync admins, and every caller on an ESS.
    pub fn require_acl_admin(&self, identity: &Identity, org: &str) -> EngineResult<()> {
        let allowed = match identity.kind {
            IdentityKind::SyncAdmin => true,
            IdentityKind::OrgAdmin => identity.org == org,
            _ => false,
        };
        if !allowed {
            return Err(EngineError::Forbidden);
        }
        if self.role() == Role::Ess {
            return Err(EngineError::Invalid("ACLs exist only on the CSS".into()));
        }
        Ok(())
    }

    /// `PUT /api/v1/security/{aclType}/{org}[/{key}]` with `{"action", "users"}`.
    pub async fn acl_update(
        &self,
        identity: &Identity,
        kind: &str,
        org: &str,
        key: Option<&str>,
        body: &[u8],
    ) -> EngineResult<()> {
        self.require_acl_admin(identity, org)?;
        let kind = parse_kind(kind)?;
        let request =
            decode_update(body).map_err(|e| EngineError::Invalid(format!("Invalid JSON for update. Error: {e}")))?;
        let action = match request.action.to_ascii_lowercase().as_str() {
            "add" => Action::Add,
            "remove" => Action::Remove,
            _ => {
                return Err(EngineError::Invalid(format!(
                    "Invalid action ({}) in payload.",
                    request.action
                )))
            }
        };
        let entries = checked_entries(kind, action, request)?;
        if entries.is_empty() {
            return Ok(());
        }
        let key = acl_key(key);
        match action {
            Action::Add => self.0.store.change_acl(org, kind, key, entries, Vec::new()).await?,
            Action::Remove => {
                let remove = entries.into_iter().map(|e| (e.user_type, e.username)).collect();
                self.0.store.change_acl(org, kind, key, Vec::new(), remove).await?
            }
        }
        Ok(())
    }

    /// `DELETE /api/v1/security/{aclType}/{org}/{key}/{aclUserType}/{username}`.
    pub async fn acl_remove_entry(
        &self,
        identity: &Identity,
        kind: &str,
        org: &str,
        key: &str,
        user_type: &str,
        username: &str,
    ) -> EngineResult<()> {
        self.require_acl_admin(identity, org)?;
        let kind = parse_kind(kind)?;
        let user_type = parse_user_type(user_type)?;
        self.0
            .store
            .change_acl(
                org,
                kind,
                acl_key(Some(key)),
                Vec::new(),
                vec![(user_type, username.to_string())],
            )
            .await?;
        Ok(())
    }

    /// `GET /api/v1/security/{aclType}/{org}[?all_keys=..&key=..&acl_usertype=..]`; an empty
    /// result is `NotFound`.
    pub async fn acl_list(
        &self,
        identity: &Identity,
        kind: &str,
        org: &str,
        query: &AclQuery,
    ) -> EngineResult<AclListing> {
        self.require_acl_admin(identity, org)?;
        let kind = parse_kind(kind)?;
        let user_type = query.user_type.as_deref().map(parse_user_type).transpose()?;
        let listing = if query.all_keys {
            let keys = self.0.store.acl_keys(org, kind).await?;
            if keys.is_empty() {
                return Err(EngineError::NotFound);
            }
            AclListing::Keys(keys)
        } else {
            let entries: Vec<AclEntry> = self
                .0
                .store
                .acl(org, kind, acl_key(query.key.as_deref()))
                .await?
                .into_iter()
                .filter(|e| user_type.is_none_or(|t| e.user_type == t))
                .collect();
            if entries.is_empty() {
                return Err(EngineError::NotFound);
            }
            AclListing::Entries(entries)
        };
        Ok(listing)
    }
}

/// Decodes a bulk body leniently; the body and every `users` item must be JSON objects (serde
/// would also fill a struct from an array, which Go's decoder refuses).
fn decode_update(body: &[u8]) -> Result<UpdateRequest, String> {
    let mut value: Value = serde_json::from_slice(body).map_err(|e| e.to_string())?;
    if !value.is_object() {
        return Err("the payload must be a JSON object".into());
    }
    fold(&mut value, &UPDATE_SHAPE);
    if let Some(Value::Array(users)) = value.get("users") {
        if users.iter().any(|u| !u.is_object()) {
            return Err("every item of users must be a JSON object".into());
        }
    }
    if let Some(Value::Array(usernames)) = value.get("usernames") {
        if usernames.iter().any(|u| !u.is_object() && !u.is_string()) {
            return Err("every item of usernames must be a name or a JSON object".into());
        }
    }
    serde_json::from_value(value).map_err(|e| e.to_string())
}

/// The stored key: an absent or empty key is the org-wide ACL.
fn acl_key(key: Option<&str>) -> &str {
    match key {
        Some(key) if !key.is_empty() => key,
        _ => ORG_WIDE_KEY,
    }
}

fn parse_kind(kind: &str) -> EngineResult<AclKind> {
    AclKind::parse(kind)
        .ok_or_else(|| EngineError::Invalid(format!("Invalid ACL type ({kind}); it must be objects or destinations")))
}

fn parse_user_type(user_type: &str) -> EngineResult<AclUserType> {
    AclUserType::parse(user_type)
        .ok_or_else(|| EngineError::Invalid(format!("Invalid ACL user type ({user_type}); it must be user or node")))
}

fn entry_error(index: usize, problem: &str) -> EngineError {
    EngineError::Invalid(format!(
        "Invalid ACL entry for update. Error: entry {}: {problem}",
        index + 1
    ))
}

/// Usernames in bodies are not names: they only must not be blank, and are kept free of
/// markup and control characters.
fn check_username(username: &str) -> Result<(), String> {
    if username.trim().is_empty() {
        return Err("the Username is empty".into());
    }
    if username.chars().any(|c| c == '<' || c == '>' || c.is_control()) {
        return Err("the Username contains <, > or control characters".into());
    }
    Ok(())
}

/// Checks every entry of the request (the `users` list, then the `usernames` list) and
/// returns them ready to store: roles forced to `na` for destinations ACLs, ignored for
/// removals, and one entry per (user type, name), a later duplicate replacing an earlier one.
fn checked_entries(kind: AclKind, action: Action, request: UpdateRequest) -> EngineResult<Vec<AclEntry>> {
    let default_role = match kind {
        AclKind::Objects => AclRole::Writer,
        AclKind::Destinations => AclRole::NotApplicable,
    };
    let mut entries: Vec<AclEntry> = Vec::with_capacity(request.users.len() + request.usernames.len());
    let items = request
        .users
        .into_iter()
        .map(UsernameItem::Entry)
        .chain(request.usernames);
    for (index, item) in items.enumerate() {
        let raw = match item {
            UsernameItem::Entry(raw) => raw,
            UsernameItem::Name(username) => {
                check_username(&username).map_err(|e| entry_error(index, &e))?;
                entries.push(AclEntry {
                    username,
                    user_type: AclUserType::User,
                    role: default_role,
                });
                continue;
            }
        };
        check_username(&raw.username).map_err(|e| entry_error(index, &e))?;
        let user_type = AclUserType::parse(&raw.user_type).ok_or_else(|| {
            entry_error(
                index,
                &format!("the ACLUserType ({}) must be user or node", raw.user_type),
            )
        })?;
        let role = match (kind, action) {
            (AclKind::Destinations, _) | (_, Action::Remove) => AclRole::NotApplicable,
            (AclKind::Objects, Action::Add) => match AclRole::parse(&raw.role) {
                Some(role @ (AclRole::Writer | AclRole::Reader)) => role,
                _ => {
                    return Err(entry_error(
                        index,
                        &format!("the ACLRole ({}) must be aclWriter or aclReader", raw.role),
                    ))
                }
            },
        };
        entries.push(AclEntry {
            username: raw.username,
            user_type,
            role,
        });
    }
    let mut unique: Vec<AclEntry> = Vec::with_capacity(entries.len());
    for entry in entries {
        match unique
            .iter_mut()
            .find(|u| u.user_type == entry.user_type && u.username == entry.username)
        {
            Some(existing) => *existing = entry,
            None => unique.push(entry),
        }
    }
    Ok(unique)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn request(body: &str) -> UpdateRequest {
        decode_update(body.as_bytes()).unwrap()
    }

    #[test]
    fn bodies_must_be_objects() {
        for bad in [
            "[]",
            "null",
            "\"add\"",
            r#"{"users":[["a","user","aclWriter"]]}"#,
            r#"{"users":[null]}"#,
        ] {
            assert!(decode_update(bad.as_bytes()).is_err(), "{bad}");
        }
        assert!(decode_update(br#"{"users":null,"usernames":null}"#).is_ok());
    }

    #[test]
    fn entry_keys_are_case_insensitive_and_roles_checked_per_kind() {
        let body = r#"{"action":"add","users":[{"username":"bob","aclUserType":"user","aclrole":"aclReader"}]}"#;
        let entries = checked_entries(AclKind::Objects, Action::Add, request(body)).unwrap();
        assert_eq!(
            entries,
            vec![AclEntry {
                username: "bob".into(),
                user_type: AclUserType::User,
                role: AclRole::Reader
            }]
        );
        let body = r#"{"action":"add","users":[{"Username":"n1","ACLUserType":"node","ACLRole":"whatever"}]}"#;
        let entries = checked_entries(AclKind::Destinations, Action::Add, request(body)).unwrap();
        assert_eq!(entries[0].role, AclRole::NotApplicable);
        assert!(checked_entries(AclKind::Objects, Action::Add, request(body)).is_err());
        assert!(checked_entries(AclKind::Objects, Action::Remove, request(body)).is_ok());
    }

    #[test]
    fn one_bad_entry_rejects_the_request() {
        for bad in [
            r#"{"Username":" ","ACLUserType":"user","ACLRole":"aclWriter"}"#,
            r#"{"Username":"a","ACLUserType":"admin","ACLRole":"aclWriter"}"#,
            r#"{"Username":"a","ACLUserType":"user","ACLRole":"na"}"#,
            r#"{"Username":"a<b","ACLUserType":"user","ACLRole":"aclWriter"}"#,
            r#"{"Username":"a\u0000","ACLUserType":"user","ACLRole":"aclWriter"}"#,
        ] {
            let body = format!(
                r#"{{"action":"add","users":[{{"Username":"ok","ACLUserType":"user","ACLRole":"aclWriter"}},{bad}]}}"#
            );
            let result = checked_entries(AclKind::Objects, Action::Add, request(&body));
            assert!(
                matches!(&result, Err(EngineError::Invalid(m)) if m.starts_with("Invalid ACL entry for update. Error: ")),
                "{bad}: {result:?}"
            );
        }
    }

    #[test]
    fn usernames_extension_and_duplicates() {
        let body = r#"{"action":"add","users":[{"Username":"a","ACLUserType":"user","ACLRole":"aclReader"}],
                       "usernames":["b","a"]}"#;
        let entries = checked_entries(AclKind::Objects, Action::Add, request(body)).unwrap();
        let names: Vec<(&str, AclRole)> = entries.iter().map(|e| (e.username.as_str(), e.role)).collect();
        assert_eq!(names, vec![("a", AclRole::Writer), ("b", AclRole::Writer)]);
        assert!(checked_entries(AclKind::Objects, Action::Add, request(r#"{"usernames":[""]}"#)).is_err());
    }

    #[test]
    fn entries_sent_under_usernames_as_the_sdks_send_them() {
        let body = r#"{"action":"add","usernames":[{"Username":"bob","ACLUserType":"node","ACLRole":"aclReader"},
                       {"username":"carol","aclusertype":"user","aclrole":"aclWriter"}]}"#;
        let entries = checked_entries(AclKind::Objects, Action::Add, request(body)).unwrap();
        let found: Vec<(&str, AclUserType, AclRole)> = entries
            .iter()
            .map(|e| (e.username.as_str(), e.user_type, e.role))
            .collect();
        assert_eq!(
            found,
            vec![
                ("bob", AclUserType::Node, AclRole::Reader),
                ("carol", AclUserType::User, AclRole::Writer)
            ]
        );
        let bad = r#"{"action":"add","usernames":[{"Username":"x","ACLUserType":"admin"}]}"#;
        assert!(checked_entries(AclKind::Objects, Action::Add, request(bad)).is_err());
        assert!(decode_update(br#"{"usernames":[1]}"#).is_err());
    }

    #[test]
    fn missing_key_is_org_wide() {
        assert_eq!(acl_key(None), "*");
        assert_eq!(acl_key(Some("")), "*");
        assert_eq!(acl_key(Some("model")), "model");
    }
}
