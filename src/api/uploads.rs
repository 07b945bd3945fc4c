//! The uploads of an ESS (`UploadSources`): `GET /api/v1/uploads` lists where each file's
//! upload stands; `POST /api/v1/uploads/{sourceName}` asks for an upload of a source with
//! the `explicit` trigger now. Organization and object administrators (and sync admins) may
//! trigger; users may also list.

use super::error::{ApiError, ApiResult};
use super::request::identify;
use super::{json_response, AppState};
use crate::auth::IdentityKind;
use crate::engine::EngineError;
use crate::model::Role;
use crate::uploads::TriggerError;
use axum::extract::{Request, State};
use axum::http::{header, HeaderValue, Method, StatusCode};
use axum::response::{IntoResponse, Response};

const PREFIX: &str = "/api/v1/uploads";

/// A request this module serves.
#[derive(Debug, PartialEq, Eq)]
enum Route {
    List,
    Trigger(String),
}

impl Route {
    fn operation_id(&self) -> &'static str {
        match self {
            Route::List => "listUploads",
            Route::Trigger(_) => "triggerUpload",
        }
    }
}

fn route(role: Role, method: &Method, path: &str) -> ApiResult<Route> {
    let rest = path.strip_prefix(PREFIX).ok_or(ApiError::NoRoute)?;
    if role != Role::Ess {
        return Err(ApiError::NoRoute);
    }
    if rest.is_empty() {
        return match *method {
            Method::GET => Ok(Route::List),
            _ => Err(ApiError::MethodNotAllowed),
        };
    }
    let name = rest.strip_prefix('/').unwrap_or_default();
    if name.is_empty() || name.contains('/') {
        return Err(ApiError::NoRoute);
    }
    let name = percent_encoding::percent_decode_str(name)
        .decode_utf8_lossy()
        .into_owned();
    match *method {
        Method::POST => Ok(Route::Trigger(name)),
        _ => Err(ApiError::MethodNotAllowed),
    }
}

/// The `operationId` a request under the prefix would get (route table tests).
pub(super) fn recognise(role: Role, method: &Method, path: &str) -> ApiResult<&'static str> {
    route(role, method, path).map(|r| r.operation_id())
}

/// Serves every request under `/api/v1/uploads`.
pub(super) async fn dispatch(State(state): State<AppState>, request: Request) -> ApiResult<Response> {
    let (parts, _) = request.into_parts();
    let node = &state.node;
    let identity = identify(node, &parts);
    let route = route(node.role(), &parts.method, parts.uri.path())?;
    let own_org = identity.org == node.org_for(None);
    let may_list = match identity.kind {
        IdentityKind::SyncAdmin => true,
        IdentityKind::OrgAdmin | IdentityKind::ObjectAdmin | IdentityKind::User => own_org,
        _ => false,
    };
    let may_trigger = may_list && identity.kind != IdentityKind::User;
    match route {
        Route::List => {
            if !may_list {
                return Err(EngineError::Forbidden.into());
            }
            let statuses = state.uploads.as_ref().map(|u| u.statuses()).unwrap_or_default();
            Ok(json_response(&statuses))
        }
        Route::Trigger(name) => {
            if !may_trigger {
                return Err(EngineError::Forbidden.into());
            }
            let outcome = match state.uploads.as_ref() {
                Some(uploads) => uploads.trigger(&name),
                None => Err(TriggerError::UnknownSource(name)),
            };
            Ok(match outcome {
                Ok(()) => StatusCode::ACCEPTED.into_response(),
                Err(e @ TriggerError::UnknownSource(_)) => plain(StatusCode::NOT_FOUND, &e.to_string()),
                Err(e @ TriggerError::NotExplicit(_)) => plain(StatusCode::CONFLICT, &e.to_string()),
            })
        }
    }
}

fn plain(status: StatusCode, text: &str) -> Response {
    (
        status,
        [(
            header::CONTENT_TYPE,
            HeaderValue::from_static("text/plain; charset=utf-8"),
        )],
        format!("{text}\n"),
    )
        .into_response()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn routes_are_the_ess_list_and_trigger() {
        assert_eq!(route(Role::Ess, &Method::GET, PREFIX).unwrap(), Route::List);
        assert_eq!(
            route(Role::Ess, &Method::POST, "/api/v1/uploads/logs%2Dx").unwrap(),
            Route::Trigger("logs-x".into())
        );
        assert!(matches!(route(Role::Css, &Method::GET, PREFIX), Err(ApiError::NoRoute)));
        assert!(matches!(
            route(Role::Ess, &Method::PUT, PREFIX),
            Err(ApiError::MethodNotAllowed)
        ));
        assert!(matches!(
            route(Role::Ess, &Method::GET, "/api/v1/uploads/logs"),
            Err(ApiError::MethodNotAllowed)
        ));
        for path in ["/api/v1/uploads/", "/api/v1/uploads/a/b"] {
            assert!(
                matches!(route(Role::Ess, &Method::POST, path), Err(ApiError::NoRoute)),
                "{path}"
            );
        }
    }
}
