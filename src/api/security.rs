//! `/api/v1/security/{aclType}/{orgID}[/{key}[/{aclUserType}/{username}]]`: ACL management,
//! CSS only (spec: rest-api.md §7). On the ESS the routes do not exist (framework 404).
//! Route shape and names are checked before the caller, the ACL type after it.
//!
//! Extension (rest-api.md §7 client notes): `GET .../{orgID}/{key}` reads that key's ACL
//! (the path key wins over a `key` query parameter).

use super::error::{ApiError, ApiResult};
use super::request::{identify, invalid_name, segments, Query};
use super::{json_response, no_content, AppState};
use crate::engine::security::{AclListing, AclQuery};
use crate::model::names::is_valid_name;
use crate::model::Role;
use axum::body::Body;
use axum::extract::{Request, State};
use axum::http::Method;
use axum::response::Response;

const PREFIX: &str = "/api/v1/security";

/// Entry point for every method and path under `/api/v1/security`.
pub async fn dispatch(State(state): State<AppState>, request: Request) -> ApiResult<Response> {
    let node = &state.node;
    if node.role() == Role::Ess {
        return Ok(super::not_found());
    }
    let (parts, body) = request.into_parts();
    let segments = segments(parts.uri.path(), PREFIX, parts.uri.query())?;
    if !(2..=5).contains(&segments.len()) {
        return Err(ApiError::BadRequest(String::new()));
    }
    check_names(&segments)?;
    let query = Query::parse(parts.uri.query());
    let identity = identify(node, &parts);
    let (kind, org) = (segments[0].as_str(), segments[1].as_str());
    let key = segments.get(2).map(String::as_str);
    match parts.method {
        Method::GET => {
            if segments.len() > 3 {
                return Err(ApiError::BadRequest(String::new()));
            }
            let acl_query = AclQuery {
                all_keys: query.flag("all_keys")?,
                key: match key {
                    Some(key) => Some(key.to_string()),
                    None => query.name("key", "ACL key")?,
                },
                user_type: query.get("acl_usertype").map(str::to_string),
            };
            Ok(match node.acl_list(&identity, kind, org, &acl_query).await? {
                AclListing::Keys(keys) => json_response(&keys),
                AclListing::Entries(entries) => json_response(&entries),
            })
        }
        Method::PUT => {
            if segments.len() > 3 {
                return Err(ApiError::BadRequest(String::new()));
            }
            let body = read_body(&state, body).await?;
            node.acl_update(&identity, kind, org, key, &body).await?;
            Ok(no_content())
        }
        Method::DELETE => {
            let [_, _, key, user_type, username] = segments.as_slice() else {
                return Err(ApiError::BadRequest(String::new()));
            };
            node.acl_remove_entry(&identity, kind, org, key, user_type, username)
                .await?;
            Ok(no_content())
        }
        _ => {
            node.require_acl_admin(&identity, org)?;
            Err(ApiError::MethodNotAllowed)
        }
    }
}

/// Org, key, user type and username must be valid names (`*` is one); the ACL type and the
/// user type are checked against their fixed values after the caller.
fn check_names(segments: &[String]) -> ApiResult<()> {
    let named = [
        (1, "organization ID"),
        (2, "ACL key"),
        (3, "ACL user type"),
        (4, "username"),
    ];
    for (index, what) in named {
        if let Some(value) = segments.get(index).filter(|v| !is_valid_name(v)) {
            return Err(invalid_name(what, value));
        }
    }
    Ok(())
}

async fn read_body(state: &AppState, body: Body) -> ApiResult<bytes::Bytes> {
    let limit = state.node.settings().max_metadata_body;
    axum::body::to_bytes(body, limit)
        .await
        .map_err(|_| ApiError::PayloadTooLarge(format!("The request body is larger than {limit} bytes")))
}
