//! `/api/v1/objects/...`: the original dispatches on the number of path segments after the
//! prefix (spec: rest-api.md §4.1); this module does the same, then hands each shape to
//! the engine. Names are validated before authentication, as the original does.

use super::error::{ApiError, ApiResult};
use super::meta_answers::meta_answer;
use super::request::{identify, invalid_name, segments, Query};
use super::{json_bytes_response, json_response, no_content, AppState};
use crate::engine::{DataStream, Filters, OrgQuery, OrgQueryResult, Report};
use crate::model::names::is_valid_name;
use crate::model::{ObjectKey, Role};
use crate::zero_copy::FileSends;
use axum::body::Body;
use axum::extract::{Request, State};
use axum::http::{header, HeaderValue, Method, StatusCode};
use axum::response::{IntoResponse, Response};
use futures_util::TryStreamExt;

const PREFIX: &str = "/api/v1/objects";

/// Operation segments after `{objectID}`, matched case-insensitively.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Operation {
    Data,
    Status,
    Destinations,
    Consumed,
    Received,
    Deleted,
    Activate,
    PolicyReceived,
}

impl Operation {
    /// Every operation with its path spelling: the one list parsing and the route tests use.
    const ALL: [(&'static str, Self); 8] = [
        ("data", Self::Data),
        ("status", Self::Status),
        ("destinations", Self::Destinations),
        ("consumed", Self::Consumed),
        ("received", Self::Received),
        ("deleted", Self::Deleted),
        ("activate", Self::Activate),
        ("policyreceived", Self::PolicyReceived),
    ];

    fn parse(segment: &str) -> Option<Self> {
        Self::ALL
            .iter()
            .find(|(name, _)| name.eq_ignore_ascii_case(segment))
            .map(|&(_, operation)| operation)
    }
}

/// The operation spellings, for the route table's tests.
#[cfg(test)]
pub(super) fn operation_names() -> impl Iterator<Item = &'static str> {
    Operation::ALL.iter().map(|&(name, _)| name)
}

/// What the path addresses.
enum Target {
    Org(String),
    Type(String, String),
    Object(ObjectKey),
    Operation(ObjectKey, String),
}

/// The path's shape, with names checked (400 before authentication, as the original).
/// `ess_org` stands for the missing org segment on the ESS.
fn parse_target(role: Role, ess_org: &str, parts: Vec<String>) -> ApiResult<Target> {
    let mut parts = parts.into_iter();
    let org = match role {
        Role::Css => parts.next().ok_or_else(|| ApiError::BadRequest(String::new()))?,
        Role::Ess => {
            if parts.len() == 0 {
                return Err(ApiError::BadRequest(String::new()));
            }
            ess_org.to_string()
        }
    };
    if role == Role::Css && !org.is_empty() && !is_valid_name(&org) {
        return Err(invalid_name("organization ID", &org));
    }
    let rest: Vec<String> = parts.collect();
    if let Some(object_type) = rest.first().filter(|t| !t.is_empty() && !is_valid_name(t)) {
        return Err(invalid_name("object type", object_type));
    }
    if let Some(object_id) = rest.get(1).filter(|i| !is_valid_name(i)) {
        return Err(invalid_name("object ID", object_id));
    }
    let mut rest = rest.into_iter();
    Ok(match (rest.next(), rest.next(), rest.next(), rest.next()) {
        (None, ..) => Target::Org(org),
        (Some(t), None, ..) => Target::Type(org, t),
        (Some(t), Some(i), None, _) => Target::Object(ObjectKey::new(org, t, i)),
        (Some(t), Some(i), Some(op), None) => Target::Operation(ObjectKey::new(org, t, i), op),
        _ => return Err(ApiError::BadRequest(String::new())),
    })
}

/// One operation route on an object.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum OpRoute {
    GetData,
    PutData,
    GetStatus,
    GetDestinations,
    PutDestinations,
    PostDestinations,
    Consumed,
    Received,
    Deleted,
    Activate,
    PolicyReceived,
}

/// A served route with what it addresses: the only routes dispatch knows.
enum Route {
    OrgQuery(String),
    ListObjects(String, String),
    UpdateWebhook(String, String),
    GetObject(ObjectKey),
    PutObject(ObjectKey),
    DeleteObject(ObjectKey),
    Operation(OpRoute, ObjectKey),
}

impl Route {
    /// The `operationId` of this route in `openapi.yaml` (checked by the route table's tests).
    fn operation_id(&self) -> &'static str {
        match self {
            Route::OrgQuery(_) => "queryOrgObjects",
            Route::ListObjects(..) => "listObjects",
            Route::UpdateWebhook(..) => "updateWebhook",
            Route::GetObject(_) => "getObject",
            Route::PutObject(_) => "putObject",
            Route::DeleteObject(_) => "deleteObject",
            Route::Operation(op, _) => match op {
                OpRoute::GetData => "getObjectData",
                OpRoute::PutData => "putObjectData",
                OpRoute::GetStatus => "getObjectStatus",
                OpRoute::GetDestinations => "getObjectDestinations",
                OpRoute::PutDestinations => "putObjectDestinations",
                OpRoute::PostDestinations => "postObjectDestinations",
                OpRoute::Consumed => "markObjectConsumed",
                OpRoute::Received => "markObjectReceived",
                OpRoute::Deleted => "markObjectDeleted",
                OpRoute::Activate => "activateObject",
                OpRoute::PolicyReceived => "markPolicyReceived",
            },
        }
    }
}

/// The route a method selects on a target: 405 for a method the shape does not serve, 400
/// for an unknown operation (both after authentication, as the original).
fn route(target: Target, method: &Method) -> ApiResult<Route> {
    Ok(match target {
        Target::Org(org) if method == Method::GET => Route::OrgQuery(org),
        Target::Type(org, t) if method == Method::GET => Route::ListObjects(org, t),
        Target::Type(org, t) if method == Method::PUT => Route::UpdateWebhook(org, t),
        Target::Object(key) => match *method {
            Method::GET => Route::GetObject(key),
            Method::PUT => Route::PutObject(key),
            Method::DELETE => Route::DeleteObject(key),
            _ => return Err(ApiError::MethodNotAllowed),
        },
        Target::Operation(key, op) => {
            let operation = Operation::parse(&op).ok_or_else(|| ApiError::BadRequest(String::new()))?;
            let op_route = match (operation, method.clone()) {
                (Operation::Data, Method::GET) => OpRoute::GetData,
                (Operation::Data, Method::PUT) => OpRoute::PutData,
                (Operation::Status, Method::GET) => OpRoute::GetStatus,
                (Operation::Destinations, Method::GET) => OpRoute::GetDestinations,
                (Operation::Destinations, Method::PUT) => OpRoute::PutDestinations,
                (Operation::Destinations, Method::POST) => OpRoute::PostDestinations,
                (Operation::Consumed, Method::PUT) => OpRoute::Consumed,
                (Operation::Received, Method::PUT) => OpRoute::Received,
                (Operation::Deleted, Method::PUT) => OpRoute::Deleted,
                (Operation::Activate, Method::PUT) => OpRoute::Activate,
                (Operation::PolicyReceived, Method::PUT) => OpRoute::PolicyReceived,
                _ => return Err(ApiError::MethodNotAllowed),
            };
            Route::Operation(op_route, key)
        }
        Target::Org(_) | Target::Type(..) => return Err(ApiError::MethodNotAllowed),
    })
}

/// The `operationId` a request would be served by, without serving it (route table tests).
pub(super) fn recognise(role: Role, method: &Method, path: &str) -> ApiResult<&'static str> {
    let target = parse_target(role, "myorg", segments(path, PREFIX, None)?)?;
    Ok(route(target, method)?.operation_id())
}

/// Entry point for every method and path under `/api/v1/objects`.
pub async fn dispatch(State(state): State<AppState>, request: Request) -> ApiResult<Response> {
    let (parts, body) = request.into_parts();
    let query = Query::parse(parts.uri.query());
    let node = &state.node;
    let target = parse_target(
        node.role(),
        node.org_for(None),
        segments(parts.uri.path(), PREFIX, parts.uri.query())?,
    )?;
    node.count_request();
    let identity = identify(node, &parts);
    if identity.is_shut_out() {
        return Err(crate::engine::EngineError::Forbidden.into());
    }
    match route(target, &parts.method)? {
        Route::OrgQuery(org) => {
            let org_query = org_query(&query)?;
            Ok(match node.org_query(&identity, &org, &org_query).await? {
                OrgQueryResult::Policies(p) => json_response(&p),
                OrgQueryResult::Objects(o) => json_response(&o),
                OrgQueryResult::Types(t) => json_response(&t),
            })
        }
        Route::ListObjects(org, object_type) => {
            if query.flag("all_objects")? {
                Ok(json_response(&node.list_all(&identity, &org, &object_type).await?))
            } else {
                let received = query.flag("received")?;
                Ok(json_response(
                    &node.list_updated(&identity, &org, &object_type, received).await?,
                ))
            }
        }
        Route::UpdateWebhook(org, object_type) => {
            let body = read_small_body(&state, body).await?;
            node.update_webhook(&identity, &org, &object_type, &body).await?;
            Ok(no_content())
        }
        Route::GetObject(key) => Ok(json_bytes_response(meta_answer(
            &node.get_object(&identity, &key).await?,
        ))),
        Route::PutObject(key) => {
            let body = read_small_body(&state, body).await?;
            node.put_object(&identity, &key, &body).await?;
            Ok(no_content())
        }
        Route::DeleteObject(key) => {
            node.delete_object(&identity, &key).await?;
            Ok(no_content())
        }
        Route::Operation(op_route, key) => operation_route(&state, op_route, &parts, key, identity, body).await,
    }
}

async fn operation_route(
    state: &AppState,
    op_route: OpRoute,
    parts: &axum::http::request::Parts,
    key: ObjectKey,
    identity: crate::auth::Identity,
    body: Body,
) -> ApiResult<Response> {
    let node = &state.node;
    let headers = &parts.headers;
    let report = |r: Report| {
        let (identity, key) = (&identity, &key);
        async move {
            node.report(identity, key, r)
                .await
                .map(|_| no_content())
                .map_err(ApiError::from)
        }
    };
    match op_route {
        OpRoute::GetData => {
            let range = super::ranges::range_header(headers)?;
            let sends = parts.extensions.get::<FileSends>();
            Ok(data_response(node.get_data(&identity, &key, range).await?, sends).await)
        }
        OpRoute::PutData => {
            let content_range = super::ranges::content_range_header(headers)?;
            let mut stream = Box::pin(body.into_data_stream().map_err(std::io::Error::other));
            let stored = node.put_data(&identity, &key, content_range, &mut stream).await;
            if stored.is_err() {
                drain_refused_body(&mut stream).await;
            }
            stored?;
            Ok(no_content())
        }
        OpRoute::GetStatus => {
            let status = node.object_status(&identity, &key).await?;
            Ok((
                [(
                    header::CONTENT_TYPE,
                    HeaderValue::from_static("text/plain; charset=utf-8"),
                )],
                status.as_str(),
            )
                .into_response())
        }
        OpRoute::GetDestinations => Ok(json_response(&node.object_destinations(&identity, &key).await?)),
        OpRoute::PutDestinations | OpRoute::PostDestinations => {
            let body = read_small_body(state, body).await?;
            node.update_destinations(&identity, &key, &body, op_route == OpRoute::PostDestinations)
                .await?;
            Ok(no_content())
        }
        OpRoute::Consumed => report(Report::Consumed).await,
        OpRoute::Received => report(Report::Received).await,
        OpRoute::Deleted => report(Report::Deleted).await,
        OpRoute::Activate => {
            node.activate(&identity, &key).await?;
            Ok(no_content())
        }
        OpRoute::PolicyReceived => {
            node.policy_received(&identity, &key).await?;
            Ok(no_content())
        }
    }
}

/// The most of a refused upload's body read and dropped before the answer. A client still
/// sending when the connection closes would get a reset instead of the answer (unread bytes
/// make the kernel reset the connection); the bounds keep a refused client from holding the
/// server longer than this.
const REFUSED_BODY_DRAIN_BYTES: usize = 64 << 20;
const REFUSED_BODY_DRAIN_TIME: std::time::Duration = std::time::Duration::from_secs(2);

/// Reads what is left of a refused upload's body, within the bounds above, so that its
/// client reads the answer.
async fn drain_refused_body<S>(body: &mut S)
where
    S: futures_util::Stream<Item = std::io::Result<bytes::Bytes>> + Unpin,
{
    use futures_util::StreamExt;
    let mut left = REFUSED_BODY_DRAIN_BYTES;
    let drained = async {
        while let Some(Ok(frame)) = body.next().await {
            left = left.saturating_sub(frame.len());
            if left == 0 {
                break;
            }
        }
    };
    let _ = tokio::time::timeout(REFUSED_BODY_DRAIN_TIME, drained).await;
}

/// Reads a JSON body up to the metadata limit; larger bodies get 413.
async fn read_small_body(state: &AppState, body: Body) -> ApiResult<bytes::Bytes> {
    let limit = state.node.settings().max_metadata_body;
    axum::body::to_bytes(body, limit).await.map_err(|_| {
        ApiError::PayloadTooLarge(format!(
            "The request body is larger than {limit} bytes; send large data with PUT .../data instead of inline"
        ))
    })
}

/// An object's data as a download, applications' and nodes' alike: 200, or 206 with
/// `Content-Range` for a partial range; the body streams from the file, sent by the kernel
/// from the page cache where the connection can (`sends`: plain TCP).
pub(crate) async fn data_response(data: DataStream, sends: Option<&FileSends>) -> Response {
    let range = data.range;
    let body = match sends {
        Some(sends) => Body::from_stream(data.into_file_sends(sends).await),
        None => Body::from_stream(data.into_chunks().await),
    };
    let mut response = Response::new(body);
    if range.partial {
        *response.status_mut() = StatusCode::PARTIAL_CONTENT;
    }
    let headers = response.headers_mut();
    headers.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/octet-stream"),
    );
    headers.insert(header::CONTENT_LENGTH, HeaderValue::from(range.len));
    if range.partial {
        let end = range.start + range.len - 1;
        if let Ok(value) = HeaderValue::from_str(&format!("bytes {}-{end}/{}", range.start, range.size)) {
            headers.insert(header::CONTENT_RANGE, value);
        }
    }
    response
}

/// The org-level query selected by the first non-empty of its three switches.
fn org_query(query: &Query) -> ApiResult<OrgQuery> {
    let switch = ["destination_policy", "filters", "list_object_type"]
        .into_iter()
        .find(|name| query.get(name).is_some());
    let Some(switch) = switch else {
        return Err(ApiError::BadRequest(String::new()));
    };
    if query.bool(switch)? != Some(true) {
        return Err(ApiError::BadRequest(String::new()));
    }
    match switch {
        "destination_policy" => destination_policy_query(query),
        "filters" => Ok(OrgQuery::Filters(filters(query)?)),
        _ => Ok(OrgQuery::ObjectTypes),
    }
}

fn destination_policy_query(query: &Query) -> ApiResult<OrgQuery> {
    let since = match query.get("since") {
        Some(text) => {
            let since: i64 = text
                .parse()
                .map_err(|_| ApiError::BadRequest(format!("Invalid since value ({text})")))?;
            if since < 1 {
                return Err(ApiError::BadRequest(format!("Invalid since value ({text})")));
            }
            Some(since)
        }
        None => None,
    };
    let service = query.get("service").map(service_pair).transpose()?;
    let received = query.flag("received")?;
    Ok(OrgQuery::DestinationPolicy {
        since,
        service,
        received,
    })
}

fn service_pair(value: &str) -> ApiResult<(String, String)> {
    match value.split_once('/') {
        Some((org, name)) if is_valid_name(org) && is_valid_name(name) => Ok((org.to_string(), name.to_string())),
        _ => Err(invalid_name("service", value)),
    }
}

fn filters(query: &Query) -> ApiResult<Filters> {
    let destination_part = |name: &str| -> ApiResult<Option<String>> {
        match query.get(name) {
            Some(v) if v.contains(['<', '>']) => Err(invalid_name(name, v)),
            other => Ok(other.map(str::to_string)),
        }
    };
    Ok(Filters {
        destination_policy: query.bool("destinationPolicy")?,
        dp_service: query.get("dpService").map(service_pair).transpose()?,
        dp_property_name: query.name("dpPropertyName", "property name")?,
        since: query.get("since").map(str::to_string),
        object_type: query.name("objectType", "object type")?,
        object_id: query.name("objectID", "object ID")?,
        destination_type: destination_part("destinationType")?,
        destination_id: destination_part("destinationID")?,
        no_data: query.bool("noData")?,
        expiration_time_before: query.get("expirationTimeBefore").map(str::to_string),
        deleted: query.bool("deleted")?,
    })
}

#[cfg(test)]
mod props;
