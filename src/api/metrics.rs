//! `GET /metrics`: the node's Prometheus metrics ([`crate::metrics`]). Who may read them is
//! the `MetricsAccess` setting: sync admins (the default, with the usual Basic credentials,
//! which Prometheus scrapers can send), anyone who reaches the listener (`open`), or nobody
//! (`off`: the route is not served). The metrics name no objects; destinations appear by
//! org, type and ID.

use super::error::{ApiError, ApiResult};
use super::request::identify;
use super::AppState;
use crate::auth::IdentityKind;
use crate::config::MetricsAccess;
use crate::engine::EngineError;
use axum::extract::{Request, State};
use axum::http::{header, HeaderValue, Method};
use axum::response::{IntoResponse, Response};

/// The `operationId` of a request on `/metrics` (route table tests).
pub(super) fn recognise(method: &Method) -> ApiResult<&'static str> {
    if method == Method::GET {
        Ok("getMetrics")
    } else {
        Err(ApiError::MethodNotAllowed)
    }
}

/// `GET /metrics`.
pub async fn serve(State(state): State<AppState>, request: Request) -> ApiResult<Response> {
    let (parts, _) = request.into_parts();
    match state.metrics_access {
        MetricsAccess::Off => return Err(ApiError::NoRoute),
        MetricsAccess::Admin if identify(&state.node, &parts).kind != IdentityKind::SyncAdmin => {
            return Err(EngineError::Forbidden.into())
        }
        MetricsAccess::Admin | MetricsAccess::Open => {}
    }
    recognise(&parts.method)?;
    let text = state
        .metrics
        .render(&state.node)
        .await
        .map_err(|e| EngineError::Io(std::io::Error::other(e)))?;
    Ok((
        [(
            header::CONTENT_TYPE,
            HeaderValue::from_static(crate::metrics::CONTENT_TYPE),
        )],
        text,
    )
        .into_response())
}
