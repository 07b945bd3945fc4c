//! `/spi/v1/...`: the routes an ESS uses over HTTP (spec: css-ess-protocol.md §3.2). The
//! calling node comes from its credentials and the `X-Sync-Service-Dest` header, never from
//! the path. Served by a CSS whose protocol includes http.

use super::error::{ApiError, ApiResult};
use super::request::{identify, segments, Query};
use super::{json_response, no_content, AppState};
use crate::auth::edge::{NodeAddress, DEST_HEADER};
use crate::engine::spi::ActionOutcome;
use crate::engine::{ContentRange, EngineError, RangeRequest};
use crate::model::names::is_valid_name;
use crate::model::sync::{Action, LONG_POLL_HEADER, LONG_POLL_PARAM};
use crate::model::ObjectKey;
use axum::extract::{Request, State};
use axum::http::{header, HeaderValue, Method, StatusCode};
use axum::response::{IntoResponse, Response};
use futures_util::{StreamExt, TryStreamExt};
use std::time::Duration;

const PREFIX: &str = "/spi/v1";

/// Largest body of an action (metadata or feedback); data uploads are not accepted yet.
const MAX_ACTION_BODY: usize = 4 * 1024 * 1024;

async fn caller(state: &AppState, parts: &axum::http::request::Parts) -> ApiResult<NodeAddress> {
    let identity = identify(&state.node, parts);
    let header = parts
        .headers
        .get(DEST_HEADER)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("");
    Ok(state.node.spi_node(&identity, header).await?)
}

/// Entry point for every request under `/spi/v1`.
pub async fn dispatch(State(state): State<AppState>, request: Request) -> ApiResult<Response> {
    if !state.node.settings().serves_spi {
        return Ok(super::not_found());
    }
    let (parts, body) = request.into_parts();
    let query = Query::parse(parts.uri.query());
    let segments = segments(parts.uri.path(), PREFIX, parts.uri.query())?;
    let node = caller(&state, &parts).await?;
    let engine = &state.node;
    let words: Vec<&str> = segments.iter().map(String::as_str).collect();
    match (words.first().copied(), &parts.method) {
        (Some("register" | "register-new" | "ping" | "unregister"), method) if method != Method::PUT => {
            Err(ApiError::MethodNotAllowed)
        }
        (Some(kind @ ("register" | "register-new")), _) => {
            let persistent = query.bool("persistent-storage")?.unwrap_or(true);
            engine.spi_register(&node, persistent, kind == "register-new").await?;
            Ok(no_content())
        }
        (Some("ping"), _) => {
            engine.spi_ping(&node).await?;
            Ok(no_content())
        }
        (Some("unregister"), _) => {
            engine.spi_unregister(&node).await?;
            Ok(no_content())
        }
        (Some("objects"), _) => {
            objects(
                &state,
                &node,
                &words[1..],
                parts.method.clone(),
                &parts.headers,
                &query,
                body,
            )
            .await
        }
        _ => Err(ApiError::BadRequest(String::new())),
    }
}

async fn objects(
    state: &AppState,
    node: &NodeAddress,
    rest: &[&str],
    method: Method,
    headers: &axum::http::HeaderMap,
    query: &Query,
    body: axum::body::Body,
) -> ApiResult<Response> {
    let engine = &state.node;
    match (rest, method) {
        ([], Method::GET) => {
            let wait = query
                .get(LONG_POLL_PARAM)
                .map(|v| {
                    v.parse::<u64>()
                        .map_err(|_| ApiError::BadRequest(format!("Invalid {LONG_POLL_PARAM} value ({v})")))
                })
                .transpose()?
                .map(Duration::from_secs);
            let mut response = match engine.spi_poll(node, wait).await? {
                None => StatusCode::NO_CONTENT.into_response(),
                Some(items) => json_response(&items),
            };
            response
                .headers_mut()
                .insert(LONG_POLL_HEADER, HeaderValue::from_static("1"));
            Ok(response)
        }
        ([org, "resend"], Method::PUT) => {
            engine.spi_resend(node, org).await?;
            Ok(no_content())
        }
        ([org, object_type, object_id, instance, data_or_action @ ..], method) => {
            let key = object_key(org, object_type, object_id)?;
            let instance_id = number(instance)?;
            let action_name = match data_or_action {
                [data_id, action] => {
                    number(data_id)?;
                    *action
                }
                [action] => *action,
                _ => return Err(ApiError::BadRequest(String::new())),
            };
            match method {
                Method::GET if action_name == "data" => {
                    let range = headers
                        .get(header::RANGE)
                        .map(|v| {
                            let text = v
                                .to_str()
                                .map_err(|_| ApiError::BadRequest("Invalid Range header".into()))?;
                            RangeRequest::parse(text).map_err(ApiError::BadRequest)
                        })
                        .transpose()?;
                    let data = engine.spi_data(node, &key, instance_id, range).await?;
                    Ok(super::objects::data_response(data))
                }
                Method::GET => Err(ApiError::BadRequest(String::new())),
                Method::PUT if action_name == "data" => {
                    let content_range = headers
                        .get(header::CONTENT_RANGE)
                        .map(|v| {
                            let text = v
                                .to_str()
                                .map_err(|_| ApiError::BadRequest("Invalid Content-Range header".into()))?;
                            ContentRange::parse(text).map_err(|e| {
                                ApiError::BadRequest(format!("Failed to parse Content-Range header, Error: {e}"))
                            })
                        })
                        .transpose()?;
                    let stream = body.into_data_stream().map_err(std::io::Error::other);
                    // A final chunk may carry padding past its range; exactly the range is kept.
                    let limit = content_range.map_or(u64::MAX, |r| r.end - r.start + 1);
                    let stream = truncated(Box::pin(stream), limit);
                    match engine
                        .spi_receive_data(node, &key, instance_id, content_range, Box::pin(stream))
                        .await?
                    {
                        ActionOutcome::Done => Ok(no_content()),
                        ActionOutcome::Ignored => Err(EngineError::Conflict(String::new()).into()),
                    }
                }
                Method::PUT => {
                    let action = Action::parse(action_name)
                        .ok_or_else(|| ApiError::BadRequest(format!("Unknown action ({action_name})")))?;
                    let body = axum::body::to_bytes(body, MAX_ACTION_BODY).await.map_err(|_| {
                        ApiError::PayloadTooLarge(format!("The body is larger than {MAX_ACTION_BODY} bytes"))
                    })?;
                    match engine.spi_action(node, &key, instance_id, action, &body).await? {
                        ActionOutcome::Done => Ok(no_content()),
                        ActionOutcome::Ignored => Err(EngineError::Conflict(String::new()).into()),
                    }
                }
                _ => Err(ApiError::MethodNotAllowed),
            }
        }
        (_, Method::GET | Method::PUT) => Err(ApiError::BadRequest(String::new())),
        _ => Err(ApiError::MethodNotAllowed),
    }
}

/// The first `limit` bytes of a body stream; the rest is read and dropped.
fn truncated<S>(body: S, limit: u64) -> impl futures_util::Stream<Item = Result<bytes::Bytes, std::io::Error>>
where
    S: futures_util::Stream<Item = Result<bytes::Bytes, std::io::Error>> + Unpin,
{
    futures_util::stream::unfold((body, limit), |(mut body, left)| async move {
        loop {
            let frame = match body.next().await? {
                Ok(frame) => frame,
                Err(e) => return Some((Err(e), (body, 0))),
            };
            if left == 0 {
                continue;
            }
            let keep = frame.len().min(usize::try_from(left).unwrap_or(usize::MAX));
            return Some((Ok(frame.slice(..keep)), (body, left - keep as u64)));
        }
    })
}

fn object_key(org: &str, object_type: &str, object_id: &str) -> ApiResult<ObjectKey> {
    for (what, value) in [
        ("organization ID", org),
        ("object type", object_type),
        ("object ID", object_id),
    ] {
        if !is_valid_name(value) {
            return Err(super::request::invalid_name(what, value));
        }
    }
    Ok(ObjectKey::new(org, object_type, object_id))
}

fn number(text: &str) -> ApiResult<i64> {
    text.parse::<i64>()
        .map_err(|_| ApiError::BadRequest(format!("Invalid instance or data ID ({text})")))
}
