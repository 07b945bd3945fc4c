//! `/spi/v1/...`: the CSS's side of the HTTP transport, the routes an ESS uses (spec:
//! css-ess-protocol.md §3.2). The calling node comes from its credentials and the
//! `X-Sync-Service-Dest` header, never from the path. Served by a CSS whose protocol includes
//! http, from the server's router (`api`), whose request parsing, error mapping and metrics
//! these routes share: the composition root hands [`dispatch`] and [`recognise`] to it.

use crate::api::error::{ApiError, ApiResult};
use crate::api::request::{identify, invalid_name, segments, Query};
use crate::api::{data_response, json_response, no_content, ranges, AppState};
use crate::auth::edge::{NodeAddress, DEST_HEADER};
use crate::engine::spi::ActionOutcome;
use crate::engine::EngineError;
use crate::model::names::is_valid_name;
use crate::model::sync::{Action, LONG_POLL_HEADER, LONG_POLL_PARAM};
use crate::model::ObjectKey;
use crate::transport::compression;
use axum::extract::{Request, State};
use axum::http::{HeaderValue, Method, StatusCode};
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

/// A served node-to-node route with what it addresses.
enum SpiRoute {
    Register {
        as_new: bool,
    },
    Ping,
    Unregister,
    Poll,
    Resend(String),
    /// GET (`put: false`) or PUT of an object's data; `short` for the form without `{dataID}`.
    Data {
        put: bool,
        short: bool,
        key: ObjectKey,
        instance_id: i64,
    },
    Action {
        short: bool,
        key: ObjectKey,
        instance_id: i64,
        action: Action,
    },
}

impl SpiRoute {
    fn operation_id(&self) -> &'static str {
        match self {
            Self::Register { as_new: false } => "spiRegister",
            Self::Register { as_new: true } => "spiRegisterNew",
            Self::Ping => "spiPing",
            Self::Unregister => "spiUnregister",
            Self::Poll => "spiPoll",
            Self::Resend(_) => "spiResend",
            Self::Data {
                put: false,
                short: false,
                ..
            } => "spiGetData",
            Self::Data {
                put: false,
                short: true,
                ..
            } => "spiGetDataShort",
            Self::Data {
                put: true,
                short: false,
                ..
            } => "spiPutData",
            Self::Data {
                put: true, short: true, ..
            } => "spiPutDataShort",
            Self::Action { short: false, .. } => "spiAction",
            Self::Action { short: true, .. } => "spiActionShort",
        }
    }
}

/// The route of the segments after `/spi/v1`. The node-identity segments of register, ping
/// and unregister are ignored (the caller's credentials name the node), as the original.
fn route(method: &Method, words: &[&str]) -> ApiResult<SpiRoute> {
    match (words.first().copied(), method) {
        (Some("register" | "register-new" | "ping" | "unregister"), method) if method != Method::PUT => {
            Err(ApiError::MethodNotAllowed)
        }
        (Some(kind @ ("register" | "register-new")), _) => Ok(SpiRoute::Register {
            as_new: kind == "register-new",
        }),
        (Some("ping"), _) => Ok(SpiRoute::Ping),
        (Some("unregister"), _) => Ok(SpiRoute::Unregister),
        (Some("objects"), _) => object_route(method, &words[1..]),
        _ => Err(ApiError::BadRequest(String::new())),
    }
}

fn object_route(method: &Method, rest: &[&str]) -> ApiResult<SpiRoute> {
    match (rest, method.clone()) {
        ([], Method::GET) => Ok(SpiRoute::Poll),
        ([org, "resend"], Method::PUT) => Ok(SpiRoute::Resend(org.to_string())),
        ([org, object_type, object_id, instance, data_or_action @ ..], method) => {
            let key = object_key(org, object_type, object_id)?;
            let instance_id = number(instance)?;
            let (action_name, short) = match data_or_action {
                [data_id, action] => {
                    number(data_id)?;
                    (*action, false)
                }
                [action] => (*action, true),
                _ => return Err(ApiError::BadRequest(String::new())),
            };
            match method {
                Method::GET | Method::PUT if action_name == "data" => Ok(SpiRoute::Data {
                    put: method == Method::PUT,
                    short,
                    key,
                    instance_id,
                }),
                Method::GET => Err(ApiError::BadRequest(String::new())),
                Method::PUT => {
                    let action = Action::parse(action_name)
                        .ok_or_else(|| ApiError::BadRequest(format!("Unknown action ({action_name})")))?;
                    Ok(SpiRoute::Action {
                        short,
                        key,
                        instance_id,
                        action,
                    })
                }
                _ => Err(ApiError::MethodNotAllowed),
            }
        }
        (_, Method::GET | Method::PUT) => Err(ApiError::BadRequest(String::new())),
        _ => Err(ApiError::MethodNotAllowed),
    }
}

/// The `operationId` a request would be served by, without serving it: the route label of
/// the request's logs and metrics, and the route table's checks
/// (`api::routes::SpiRecogniser`). `serves_spi` is the node's setting: only a CSS speaking
/// HTTP serves these routes.
pub fn recognise(serves_spi: bool, method: &Method, path: &str) -> ApiResult<&'static str> {
    if !serves_spi {
        return Err(ApiError::NoRoute);
    }
    let segments = segments(path, PREFIX, None)?;
    let words: Vec<&str> = segments.iter().map(String::as_str).collect();
    route(method, &words).map(|r| r.operation_id())
}

/// Entry point for every request under `/spi/v1`.
pub async fn dispatch(State(state): State<AppState>, request: Request) -> ApiResult<Response> {
    if !state.node.settings().serves_spi {
        return Err(ApiError::NoRoute);
    }
    let (parts, body) = request.into_parts();
    let query = Query::parse(parts.uri.query());
    let segments = segments(parts.uri.path(), PREFIX, parts.uri.query())?;
    let node = caller(&state, &parts).await?;
    let engine = &state.node;
    let words: Vec<&str> = segments.iter().map(String::as_str).collect();
    match route(&parts.method, &words)? {
        SpiRoute::Register { as_new } => {
            let persistent = query.bool("persistent-storage")?.unwrap_or(true);
            engine.spi_register(&node, persistent, as_new).await?;
            Ok(no_content())
        }
        SpiRoute::Ping => {
            engine.spi_ping(&node).await?;
            Ok(no_content())
        }
        SpiRoute::Unregister => {
            engine.spi_unregister(&node).await?;
            Ok(no_content())
        }
        SpiRoute::Poll => {
            let wait = query
                .get(LONG_POLL_PARAM)
                .map(|v| {
                    v.parse::<u64>()
                        .map_err(|_| ApiError::BadRequest(format!("Invalid {LONG_POLL_PARAM} value ({v})")))
                })
                .transpose()?
                .map(Duration::from_secs);
            let mut response = match engine.spi_poll(&node, wait).await? {
                None => StatusCode::NO_CONTENT.into_response(),
                Some(items) => json_response(&items),
            };
            let headers = response.headers_mut();
            headers.insert(LONG_POLL_HEADER, HeaderValue::from_static("1"));
            if engine.settings().data_compression {
                headers.insert(
                    compression::ACCEPTED_HEADER,
                    HeaderValue::from_static(compression::ZSTD),
                );
            }
            if engine.settings().delta_transfer {
                // Uploads may offer the manifest of their data first (see the PUT below).
                headers.insert(
                    crate::transport::MANIFEST_HEADER,
                    HeaderValue::from_static(crate::delta::FORMAT),
                );
            }
            Ok(response)
        }
        SpiRoute::Resend(org) => {
            engine.spi_resend(&node, &org).await?;
            Ok(no_content())
        }
        SpiRoute::Data {
            put: false,
            key,
            instance_id,
            ..
        } => {
            let wants_manifest = engine.settings().delta_transfer && names_manifest(&parts.headers);
            if wants_manifest {
                let manifest = engine
                    .spi_manifest(&node, &key, instance_id, crate::engine::RangedRead::Limited)
                    .await?;
                let mut response = Response::new(axum::body::Body::from(manifest));
                response.headers_mut().insert(
                    crate::transport::MANIFEST_HEADER,
                    HeaderValue::from_static(crate::delta::FORMAT),
                );
                response.headers_mut().insert(
                    axum::http::header::CONTENT_TYPE,
                    HeaderValue::from_static("application/octet-stream"),
                );
                return Ok(counted_download(response, &state));
            }
            let range = ranges::range_header(&parts.headers)?;
            let data = engine
                .spi_data(&node, &key, instance_id, range, crate::engine::RangedRead::Limited)
                .await?;
            let response = if engine.settings().data_compression
                && compression::names_zstd(parts.headers.get(compression::ENCODING_HEADER))
            {
                compressed_if_worth(data_response(data, None).await).await
            } else {
                let sends = parts.extensions.get::<crate::zero_copy::FileSends>();
                data_response(data, sends).await
            };
            Ok(counted_download(response, &state))
        }
        SpiRoute::Data {
            put: true,
            key,
            instance_id,
            ..
        } => {
            let offers_manifest = engine.settings().delta_transfer && names_manifest(&parts.headers);
            if offers_manifest {
                return receive_manifest(engine, &state, &node, &key, instance_id, body).await;
            }
            let content_range = ranges::content_range_header(&parts.headers)?;
            let metrics = state.metrics.clone();
            let stream = body
                .into_data_stream()
                .map_err(std::io::Error::other)
                .inspect_ok(move |frame| metrics.count_http_received(frame.len() as u64))
                .boxed();
            let stream = if compression::names_zstd(parts.headers.get(compression::ENCODING_HEADER)) {
                compression::decompress(stream)
            } else {
                stream
            };
            // A final chunk may carry padding past its range; exactly the range is kept.
            let limit = content_range.map_or(u64::MAX, |r| r.byte_count());
            let stream = truncated(Box::pin(stream), limit);
            match engine
                .spi_receive_data(&node, &key, instance_id, content_range, Box::pin(stream))
                .await?
            {
                ActionOutcome::Done => Ok(no_content()),
                ActionOutcome::Ignored => Err(EngineError::Conflict(String::new()).into()),
            }
        }
        SpiRoute::Action {
            key,
            instance_id,
            action,
            ..
        } => {
            let body = axum::body::to_bytes(body, MAX_ACTION_BODY)
                .await
                .map_err(|_| ApiError::PayloadTooLarge(format!("The body is larger than {MAX_ACTION_BODY} bytes")))?;
            match engine.spi_action(&node, &key, instance_id, action, &body).await? {
                ActionOutcome::Done if action == crate::model::sync::Action::Update && engine.has_delta_base(&key) => {
                    // The upload of this version may offer its manifest: the CSS holds the
                    // previous version.
                    let mut response = no_content();
                    response.headers_mut().insert(
                        crate::transport::MANIFEST_HEADER,
                        HeaderValue::from_static(crate::delta::FORMAT),
                    );
                    Ok(response)
                }
                ActionOutcome::Done => Ok(no_content()),
                ActionOutcome::Ignored => Err(EngineError::Conflict(String::new()).into()),
            }
        }
    }
}

/// True when a request names the manifest format (it asks for, or offers, a manifest).
fn names_manifest(headers: &axum::http::HeaderMap) -> bool {
    headers
        .get(crate::transport::MANIFEST_HEADER)
        .is_some_and(|v| v.as_bytes() == crate::delta::FORMAT.as_bytes())
}

/// Largest manifest an upload may offer: about 28 GiB of data at the usual chunk size; a
/// larger upload is refused the offer (413) and sends its data whole.
const MAX_MANIFEST: usize = 64 << 20;

/// `PUT .../data` with the manifest of the upload's data (see [`crate::delta`]): the parts
/// the CSS holds from the previous version are copied; the answer lists the byte ranges
/// still to be sent, `{"missing": [[start, end exclusive], ...]}`.
async fn receive_manifest(
    engine: &crate::engine::Node,
    state: &AppState,
    node: &crate::auth::edge::NodeAddress,
    key: &crate::model::ObjectKey,
    instance_id: i64,
    body: axum::body::Body,
) -> Result<Response, ApiError> {
    let manifest = axum::body::to_bytes(body, MAX_MANIFEST)
        .await
        .map_err(|_| ApiError::PayloadTooLarge(format!("A manifest is at most {MAX_MANIFEST} bytes")))?;
    state.metrics.count_http_received(manifest.len() as u64);
    let missing = engine.spi_receive_manifest(node, key, instance_id, &manifest).await?;
    let mut response = json_response(&serde_json::json!({ "missing": missing }));
    response.headers_mut().insert(
        crate::transport::MANIFEST_HEADER,
        HeaderValue::from_static(crate::delta::FORMAT),
    );
    Ok(response)
}

/// A download's answer with its body compressed when a sample of it compresses: the length
/// is then unknown and the answer says how the body is encoded; its range stays that of the
/// data. A read error while sampling ends the answer as the read error would have.
async fn compressed_if_worth(response: Response) -> Response {
    let (mut parts, body) = response.into_parts();
    match compression::compress_if_worth(compression::io_stream(body.into_data_stream())).await {
        Ok((compressed, stream)) => {
            if compressed {
                parts.headers.remove(axum::http::header::CONTENT_LENGTH);
                parts.headers.insert(
                    compression::ENCODING_HEADER,
                    HeaderValue::from_static(compression::ZSTD),
                );
            }
            Response::from_parts(parts, axum::body::Body::from_stream(stream))
        }
        Err(e) => {
            tracing::warn!(error = %e, "reading object data to send failed");
            ApiError::from(EngineError::Io(e)).into_response()
        }
    }
}

/// Counts a download's bytes for `/metrics` as its body is sent (a client that stops
/// reading is counted for what it got).
fn counted_download(response: Response, state: &AppState) -> Response {
    let metrics = state.metrics.clone();
    response.map(|body| {
        axum::body::Body::from_stream(
            body.into_data_stream()
                .inspect_ok(move |chunk| metrics.count_http_sent(chunk.len() as u64)),
        )
    })
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
            return Err(invalid_name(what, value));
        }
    }
    Ok(ObjectKey::new(org, object_type, object_id))
}

fn number(text: &str) -> ApiResult<i64> {
    text.parse::<i64>()
        .map_err(|_| ApiError::BadRequest(format!("Invalid instance or data ID ({text})")))
}

#[cfg(test)]
mod props;

#[cfg(test)]
mod tests {
    //! The route table's checks need every dispatcher's routing function, this one included,
    //! and only a layer above api can name it.

    use super::recognise;
    use crate::api::routes::checks;

    #[test]
    fn every_table_route_is_recognised_on_its_roles_only() {
        checks::every_table_route_is_recognised_on_its_roles_only(recognise);
    }

    #[test]
    fn everything_the_dispatchers_recognise_is_in_the_table() {
        checks::everything_the_dispatchers_recognise_is_in_the_table(recognise);
    }

    #[test]
    fn clearly_unknown_paths_are_not_recognised() {
        checks::clearly_unknown_paths_are_not_recognised(recognise);
    }
}
