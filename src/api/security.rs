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

/// A served ACL route; the segments are checked names.
enum AclRoute {
    /// GET of the org-wide ACL (key from the query) or, with a third segment, of that key's ACL.
    Get {
        by_key: bool,
    },
    /// PUT of the org-wide ACL or, with a third segment, of that key's ACL.
    Put {
        by_key: bool,
    },
    Delete,
}

impl AclRoute {
    fn operation_id(&self) -> &'static str {
        match self {
            Self::Get { by_key: false } => "getAcl",
            Self::Get { by_key: true } => "getAclByKey",
            Self::Put { by_key: false } => "updateOrgAcl",
            Self::Put { by_key: true } => "updateAcl",
            Self::Delete => "deleteAclEntry",
        }
    }
}

/// The ACL route of a request: shape and names first (400), then the method. A 405 is only
/// answered after the caller proved to be an ACL admin, so dispatch checks that first.
fn route(role: Role, method: &Method, path: &str, query: Option<&str>) -> ApiResult<(AclRoute, Vec<String>)> {
    if role == Role::Ess {
        return Err(ApiError::NoRoute);
    }
    let segments = segments(path, PREFIX, query)?;
    if !(2..=5).contains(&segments.len()) {
        return Err(ApiError::BadRequest(String::new()));
    }
    check_names(&segments)?;
    let by_key = segments.len() == 3;
    let route = match *method {
        Method::GET if segments.len() <= 3 => AclRoute::Get { by_key },
        Method::PUT if segments.len() <= 3 => AclRoute::Put { by_key },
        Method::DELETE if segments.len() == 5 => AclRoute::Delete,
        Method::GET | Method::PUT | Method::DELETE => return Err(ApiError::BadRequest(String::new())),
        _ => return Err(ApiError::MethodNotAllowed),
    };
    Ok((route, segments))
}

/// The `operationId` a request would be served by, without serving it (route table tests).
pub(super) fn recognise(role: Role, method: &Method, path: &str) -> ApiResult<&'static str> {
    route(role, method, path, None).map(|(route, _)| route.operation_id())
}

/// Entry point for every method and path under `/api/v1/security`.
pub async fn dispatch(State(state): State<AppState>, request: Request) -> ApiResult<Response> {
    let node = &state.node;
    let (parts, body) = request.into_parts();
    let routed = route(node.role(), &parts.method, parts.uri.path(), parts.uri.query());
    let query = Query::parse(parts.uri.query());
    let identity = identify(node, &parts);
    let (route, segments) = match routed {
        Err(ApiError::MethodNotAllowed) => {
            let org = segments(parts.uri.path(), PREFIX, None)?.swap_remove(1);
            node.require_acl_admin(&identity, &org)?;
            return Err(ApiError::MethodNotAllowed);
        }
        other => other?,
    };
    let (kind, org) = (segments[0].as_str(), segments[1].as_str());
    let key = segments.get(2).map(String::as_str);
    match route {
        AclRoute::Get { .. } => {
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
        AclRoute::Put { .. } => {
            let body = read_body(&state, body).await?;
            node.acl_update(&identity, kind, org, key, &body).await?;
            Ok(no_content())
        }
        AclRoute::Delete => {
            let [_, _, key, user_type, username] = segments.as_slice() else {
                return Err(ApiError::BadRequest(String::new()));
            };
            node.acl_remove_entry(&identity, kind, org, key, user_type, username)
                .await?;
            Ok(no_content())
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
