//! Routes beside the objects: destinations and organizations (CSS), health, resend and
//! shutdown (spec: rest-api.md §5, §6, §8-§10).

use super::error::{ApiError, ApiResult};
use super::link_health::{CssLinkHealth, DestinationEntry};
use super::request::{identify, invalid_name, segments, Query};
use super::{json_response, no_content, AppState};
use crate::auth::IdentityKind;
use crate::engine::EngineError;
use crate::model::names::{is_valid_destination_part, is_valid_name};
use crate::model::Role;
use axum::extract::{Request, State};
use axum::http::Method;
use axum::response::Response;
use serde::Serialize;

const DESTINATIONS: &str = "/api/v1/destinations";
const ORGANIZATIONS: &str = "/api/v1/organizations";

/// A served destinations route with what it addresses.
enum DestinationsRoute {
    /// The ESS's bare `/api/v1/destinations`: it has no destinations (400 after the caller check).
    Ess,
    List(String),
    Objects(String, String, String),
}

impl DestinationsRoute {
    fn operation_id(&self) -> &'static str {
        match self {
            Self::Ess => "essDestinations",
            Self::List(_) => "listDestinations",
            Self::Objects(..) => "listDestinationObjects",
        }
    }
}

/// The destinations route of a request. On the ESS only the bare path exists, without a
/// trailing slash: the original's management tool asks for `/api/v1/destinations/` and reads
/// the original's `404` as "no destinations", so that path must stay unknown.
fn destinations_route(role: Role, method: &Method, path: &str, query: Option<&str>) -> ApiResult<DestinationsRoute> {
    if role == Role::Ess {
        if path != DESTINATIONS {
            return Err(ApiError::NoRoute);
        }
        if method != Method::GET {
            return Err(ApiError::MethodNotAllowed);
        }
        return Ok(DestinationsRoute::Ess);
    }
    let segments = segments(path, DESTINATIONS, query)?;
    if let Some(org) = segments.first().filter(|o| !is_valid_name(o)) {
        return Err(invalid_name("organization ID", org));
    }
    if method != Method::GET {
        return Err(ApiError::MethodNotAllowed);
    }
    match segments.as_slice() {
        [org] => Ok(DestinationsRoute::List(org.clone())),
        [org, dest_type, dest_id, objects] if objects == "objects" => {
            for part in [dest_type, dest_id] {
                if !is_valid_destination_part(part) {
                    return Err(invalid_name("destination", part));
                }
            }
            Ok(DestinationsRoute::Objects(
                org.clone(),
                dest_type.clone(),
                dest_id.clone(),
            ))
        }
        _ => Err(ApiError::BadRequest(String::new())),
    }
}

/// `/api/v1/destinations[/...]`.
pub async fn destinations(State(state): State<AppState>, request: Request) -> ApiResult<Response> {
    let (parts, _) = request.into_parts();
    let node = &state.node;
    let identity = identify(node, &parts);
    match destinations_route(node.role(), &parts.method, parts.uri.path(), parts.uri.query())? {
        // Checks the caller like the CSS route, then answers 400: the ESS has no destinations.
        DestinationsRoute::Ess => Err(node
            .list_destinations(&identity, node.org_for(None))
            .await
            .err()
            .unwrap_or(EngineError::NotFound)
            .into()),
        DestinationsRoute::List(org) => {
            let nodes = node.list_destinations(&identity, &org).await?;
            let entries: Vec<DestinationEntry> = nodes.into_iter().map(DestinationEntry::of).collect();
            Ok(json_response(&entries))
        }
        DestinationsRoute::Objects(org, dest_type, dest_id) => Ok(json_response(
            &node.destination_objects(&identity, &org, &dest_type, &dest_id).await?,
        )),
    }
}

/// A served organizations route with the org it names.
enum OrganizationsRoute {
    List,
    Put(String),
    Delete(String),
}

impl OrganizationsRoute {
    fn operation_id(&self) -> &'static str {
        match self {
            Self::List => "listOrganizations",
            Self::Put(_) => "putOrganization",
            Self::Delete(_) => "deleteOrganization",
        }
    }
}

fn organizations_route(method: &Method, path: &str) -> ApiResult<OrganizationsRoute> {
    let path = path.trim_end_matches('/');
    let rest = path.strip_prefix(ORGANIZATIONS).unwrap_or("");
    let segments: Vec<&str> = rest.split('/').filter(|s| !s.is_empty()).collect();
    match (segments.as_slice(), method) {
        ([], &Method::GET) => Ok(OrganizationsRoute::List),
        ([], _) => Err(ApiError::MethodNotAllowed),
        ([org], method) => {
            let org = percent_encoding::percent_decode_str(org)
                .decode_utf8_lossy()
                .into_owned();
            if !is_valid_name(&org) {
                return Err(invalid_name("organization ID", &org));
            }
            match *method {
                Method::PUT => Ok(OrganizationsRoute::Put(org)),
                Method::DELETE => Ok(OrganizationsRoute::Delete(org)),
                _ => Err(ApiError::MethodNotAllowed),
            }
        }
        _ => Err(ApiError::BadRequest(String::new())),
    }
}

/// `/api/v1/organizations[/{org}]`.
pub async fn organizations(State(state): State<AppState>, request: Request) -> ApiResult<Response> {
    let (parts, body) = request.into_parts();
    let node = &state.node;
    let identity = identify(node, &parts);
    match organizations_route(&parts.method, parts.uri.path())? {
        OrganizationsRoute::List => Ok(json_response(&node.list_organizations(&identity).await?)),
        OrganizationsRoute::Put(org) => {
            let limit = node.settings().max_metadata_body;
            let body = axum::body::to_bytes(body, limit)
                .await
                .map_err(|_| ApiError::PayloadTooLarge(format!("The request body is larger than {limit} bytes")))?;
            node.put_organization(&identity, &org, &body).await?;
            Ok(no_content())
        }
        OrganizationsRoute::Delete(org) => {
            node.delete_organization(&identity, &org).await?;
            Ok(no_content())
        }
    }
}

/// The methods of the single-path routes (health, resend, shutdown), each with its
/// `operationId`; anything else on those paths is a 405.
const HEALTH_METHODS: &[(Method, &str)] = &[(Method::GET, "getHealth")];
/// PUT is accepted as the Go SDK sends it (rest-api.md §9).
const RESEND_METHODS: &[(Method, &str)] = &[(Method::POST, "resend"), (Method::PUT, "resendPut")];
const SHUTDOWN_METHODS: &[(Method, &str)] = &[(Method::POST, "shutdown")];

fn single_path_route(methods: &[(Method, &'static str)], method: &Method) -> ApiResult<&'static str> {
    methods
        .iter()
        .find(|(m, _)| m == method)
        .map(|&(_, id)| id)
        .ok_or(ApiError::MethodNotAllowed)
}

/// The `operationId` a request under a path this module serves would get (route table tests).
pub(super) fn recognise(
    mount: super::routes::Mount,
    role: Role,
    method: &Method,
    path: &str,
) -> ApiResult<&'static str> {
    use super::routes::Mount;
    match mount {
        Mount::Destinations => destinations_route(role, method, path, None).map(|r| r.operation_id()),
        Mount::Organizations => organizations_route(method, path).map(|r| r.operation_id()),
        Mount::Health => single_path_route(HEALTH_METHODS, method),
        Mount::Resend => single_path_route(RESEND_METHODS, method),
        Mount::Shutdown => single_path_route(SHUTDOWN_METHODS, method),
        _ => Err(ApiError::NoRoute),
    }
}

/// Health report (spec: rest-api.md §8).
#[derive(Serialize)]
struct HealthReport {
    general: GeneralHealth,
    #[serde(rename = "dbHealth")]
    db_health: DbHealth,
    #[serde(skip_serializing_if = "Option::is_none")]
    usage: Option<Usage>,
    #[serde(rename = "mqttHealth", skip_serializing_if = "Option::is_none")]
    mqtt_health: Option<MqttHealth>,
    /// ESS: how its link to the CSS stands (not in the original's report).
    #[serde(rename = "cssLink", skip_serializing_if = "Option::is_none")]
    css_link: Option<CssLinkHealth>,
}

/// The broker connection in the original's terms (spec rest-api.md §8).
#[derive(Serialize)]
struct MqttHealth {
    #[serde(rename = "mqttConnectionStatus")]
    status: &'static str,
    #[serde(rename = "subscribeFailures")]
    subscribe_failures: u64,
    #[serde(rename = "publishFailures")]
    publish_failures: u64,
    #[serde(rename = "disconnectedFromMQTTBroker")]
    disconnected: bool,
    #[serde(rename = "lastDisconnectFromBrokerDuration", skip_serializing_if = "is_zero")]
    disconnected_for_ms: u64,
    #[serde(rename = "timeSinceLastSubscribeError", skip_serializing_if = "is_zero")]
    since_subscribe_error: u64,
    #[serde(rename = "timeSinceLastPublishError", skip_serializing_if = "is_zero")]
    since_publish_error: u64,
}

fn is_zero(value: &u64) -> bool {
    *value == 0
}

impl MqttHealth {
    /// Red while disconnected or after a recent subscribe failure; yellow after an older
    /// subscribe failure or a recent publish failure (recent = 12, older = 60 resend
    /// intervals).
    fn of(health: crate::engine::BrokerHealth, resend_secs: u64) -> Self {
        let within = |since: Option<u64>, periods: u64| since.is_some_and(|s| s <= periods * resend_secs);
        let status = if !health.connected || within(health.since_subscribe_failure, 12) {
            "red"
        } else if within(health.since_subscribe_failure, 60) || within(health.since_publish_failure, 12) {
            "yellow"
        } else {
            "green"
        };
        Self {
            status,
            subscribe_failures: health.subscribe_failures,
            publish_failures: health.publish_failures,
            disconnected: !health.connected,
            disconnected_for_ms: health.disconnected_for_ms,
            since_subscribe_error: health.since_subscribe_failure.unwrap_or(0),
            since_publish_error: health.since_publish_failure.unwrap_or(0),
        }
    }
}

/// The worse of two colours.
fn worst(a: &'static str, b: &'static str) -> &'static str {
    let rank = |c: &str| match c {
        "red" => 2,
        "yellow" => 1,
        _ => 0,
    };
    if rank(b) > rank(a) {
        b
    } else {
        a
    }
}

#[derive(Serialize)]
struct GeneralHealth {
    #[serde(rename = "nodeType")]
    node_type: &'static str,
    #[serde(rename = "healthStatus")]
    health_status: &'static str,
    #[serde(rename = "upTime")]
    up_time: u64,
}

#[derive(Serialize)]
struct DbHealth {
    #[serde(rename = "dbStatus")]
    db_status: &'static str,
    #[serde(rename = "disconnectedFromDB")]
    disconnected_from_db: bool,
    #[serde(rename = "dbReadFailures")]
    db_read_failures: u64,
    #[serde(rename = "dbWriteFailures")]
    db_write_failures: u64,
}

#[derive(Serialize)]
struct Usage {
    #[serde(rename = "clientRequests")]
    client_requests: u64,
    #[serde(rename = "registeredESS")]
    registered_ess: u64,
    #[serde(rename = "storedObjects")]
    stored_objects: u64,
}

/// `GET /api/v1/health[?details=true]`.
pub async fn health(State(state): State<AppState>, request: Request) -> ApiResult<Response> {
    let (parts, _) = request.into_parts();
    let details = Query::parse(parts.uri.query()).flag("details")?;
    let node = &state.node;
    if identify(node, &parts).is_shut_out() {
        return Err(EngineError::Forbidden.into());
    }
    single_path_route(HEALTH_METHODS, &parts.method)?;
    // A failing store read turns the report red instead of failing the health call itself.
    let (db_status, usage) = if details {
        match node.store_usage().await {
            Ok(counts) => (
                "green",
                Some(Usage {
                    client_requests: node.client_requests(),
                    registered_ess: counts.registered_nodes,
                    stored_objects: counts.stored_objects,
                }),
            ),
            Err(_) => ("red", None),
        }
    } else {
        (if node.store_answers().await { "green" } else { "red" }, None)
    };
    let resend_secs = u64::try_from(node.settings().resend_interval_secs).unwrap_or(10).max(1);
    let mqtt_health = node.broker().map(|broker| MqttHealth::of(broker.health(), resend_secs));
    let report = HealthReport {
        general: GeneralHealth {
            node_type: if node.role() == Role::Css { "CSS" } else { "ESS" },
            health_status: worst(db_status, mqtt_health.as_ref().map_or("green", |m| m.status)),
            up_time: node.uptime_secs(),
        },
        db_health: DbHealth {
            db_status,
            disconnected_from_db: db_status == "red",
            db_read_failures: 0,
            db_write_failures: 0,
        },
        usage,
        mqtt_health,
        css_link: node.css_link().map(|link| CssLinkHealth::of(&link.report())),
    };
    Ok(json_response(&report))
}

/// `POST /api/v1/resend` (PUT accepted too, as the Go SDK sends it).
pub async fn resend(State(state): State<AppState>, request: Request) -> ApiResult<Response> {
    let (parts, _) = request.into_parts();
    let node = &state.node;
    let identity = identify(node, &parts);
    if !matches!(
        identity.kind,
        IdentityKind::OrgAdmin | IdentityKind::User | IdentityKind::SyncAdmin
    ) {
        return Err(EngineError::Forbidden.into());
    }
    single_path_route(RESEND_METHODS, &parts.method)?;
    match node.role() {
        Role::Css => Err(ApiError::BadRequest(
            "Failed to send resend objects request. Error: CSS can't request to resend objects".into(),
        )),
        // The sync client sends it, and repeats it until the CSS acknowledges.
        Role::Ess => {
            node.request_resend();
            Ok(no_content())
        }
    }
}

/// `POST /api/v1/shutdown[?restart=..&quiesce=..&essunregister=..]` (sync admin only).
pub async fn shutdown(State(state): State<AppState>, request: Request) -> ApiResult<Response> {
    let (parts, _) = request.into_parts();
    if identify(&state.node, &parts).kind != IdentityKind::SyncAdmin {
        return Err(EngineError::Forbidden.into());
    }
    single_path_route(SHUTDOWN_METHODS, &parts.method)?;
    let query = Query::parse(parts.uri.query());
    let restart = match query.get("restart") {
        None => false,
        Some(v) if v.eq_ignore_ascii_case("yes") => true,
        Some(v) => {
            super::request::parse_bool(v).ok_or_else(|| ApiError::BadRequest(format!("Invalid restart value ({v})")))?
        }
    };
    let unregister = query
        .bool("essunregister")
        .map_err(|_| ApiError::BadRequest("Invalid essunregister value".into()))?
        .unwrap_or(false);
    if unregister && state.node.role() == Role::Ess {
        state.node.request_unregister();
    }
    state.control.request_stop(restart);
    Ok(no_content())
}
