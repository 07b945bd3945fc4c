//! The REST API applications use, `/api/v1` (spec: rest-api.md), and the HTTP plumbing the
//! nodes' `/spi/v1` routes share with it: request parsing, byte ranges, errors mapped once in
//! [`error`], the route table ([`routes`]) and the per-request log span and metrics. Routers
//! per resource, one dispatcher per prefix (the original routes by prefix and splits the
//! rest). This is the only layer that speaks HTTP to applications; the `/spi/v1` routes are
//! the HTTP transport's, above this layer, and are handed to [`router`] at start ([`Spi`]).

mod admin;
mod docs;
pub mod error;
mod link_health;
mod meta_answers;
mod metrics;
mod objects;
mod observe;
pub(crate) mod ranges;
pub mod request;
pub mod routes;
mod security;
mod uploads;

pub(crate) use objects::data_response;

use crate::config::MetricsAccess;
use crate::engine::Node;
use crate::model::json::to_go_json;
use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{any, MethodRouter};
use axum::Router;
use routes::{Mount, SpiRecogniser, MOUNTS};
use serde::Serialize;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use tokio_util::sync::CancellationToken;

/// Lets the shutdown route stop (and optionally restart) the node.
#[derive(Clone)]
pub struct NodeControl {
    stop: CancellationToken,
    restart: Arc<AtomicBool>,
}

impl NodeControl {
    /// Control over `stop`.
    pub fn new(stop: CancellationToken) -> Self {
        Self {
            stop,
            restart: Arc::new(AtomicBool::new(false)),
        }
    }

    /// Stops the node shortly after the answer went out.
    pub fn request_stop(&self, restart: bool) {
        self.restart.store(restart, Ordering::SeqCst);
        let stop = self.stop.clone();
        tokio::spawn(async move {
            // The original answers 204 and stops about a second later.
            tokio::time::sleep(std::time::Duration::from_secs(1)).await;
            stop.cancel();
        });
    }

    /// True when the last stop request asked for a restart.
    pub fn restart_requested(&self) -> bool {
        self.restart.load(Ordering::SeqCst)
    }
}

/// What every handler can reach.
#[derive(Clone)]
pub struct AppState {
    pub node: Node,
    pub control: NodeControl,
    /// Counted per request, served at `/metrics`.
    pub metrics: Arc<crate::metrics::Metrics>,
    /// Who may read `/metrics` (`MetricsAccess`).
    pub metrics_access: MetricsAccess,
    /// The upload sources of an ESS configured with `UploadSources`.
    pub uploads: Option<Arc<crate::uploads::Uploads>>,
}

/// The nodes' `/spi/v1` routes as the HTTP transport serves them: the handler of every
/// request under the prefix, and its routing function, which names the request in its log
/// span and metrics before the handler runs.
#[derive(Clone)]
pub struct Spi {
    pub handler: MethodRouter<AppState>,
    pub recognise: SpiRecogniser,
}

/// The server's router: the mounts of [`routes::MOUNTS`], `/spi/v1` served by `spi`; each
/// dispatcher splits the rest of its path (the served routes are listed in
/// [`routes::ROUTES`]). Every request, unknown paths included, runs in a log span and is
/// counted for `/metrics` ([`observe`]).
pub fn router(state: AppState, spi: Spi) -> Router {
    let mut api = Router::new();
    for &(path, mount, prefix) in MOUNTS {
        let handler = handler(mount, &spi);
        api = api.route(path, handler.clone());
        if prefix {
            api = api
                .route(&format!("{path}/"), handler.clone())
                .route(&format!("{path}/{{*rest}}"), handler);
        }
    }
    let api = api.route_layer(axum::middleware::map_response(common_headers));
    let observed = axum::middleware::from_fn_with_state((state.clone(), spi.recognise), observe::observe);
    api.fallback(|| async { not_found() }).with_state(state).layer(observed)
}

fn handler(mount: Mount, spi: &Spi) -> MethodRouter<AppState> {
    match mount {
        Mount::Objects => any(objects::dispatch),
        Mount::Destinations => any(admin::destinations),
        Mount::Organizations => any(admin::organizations),
        Mount::Security => any(security::dispatch),
        Mount::Spi => spi.handler.clone(),
        Mount::Health => any(admin::health),
        Mount::Resend => any(admin::resend),
        Mount::Shutdown => any(admin::shutdown),
        Mount::Docs => any(docs::openapi),
        Mount::Metrics => any(metrics::serve),
        Mount::Uploads => any(uploads::dispatch),
    }
}

/// Body of the router's 404 for unknown paths (the Go framework's text).
pub(crate) const NOT_FOUND_BODY: &str = "404 page not found\n";

/// The framework's 404 for unknown paths: plain text, without the API's common headers.
pub(crate) fn not_found() -> Response {
    (
        StatusCode::NOT_FOUND,
        [(
            header::CONTENT_TYPE,
            HeaderValue::from_static("text/plain; charset=utf-8"),
        )],
        NOT_FOUND_BODY,
    )
        .into_response()
}

async fn common_headers(mut response: Response) -> Response {
    let headers = response.headers_mut();
    headers.insert(
        header::CACHE_CONTROL,
        HeaderValue::from_static("no-store, no-cache, must-revalidate"),
    );
    headers.insert(header::PRAGMA, HeaderValue::from_static("no-cache"));
    headers.insert(
        header::STRICT_TRANSPORT_SECURITY,
        HeaderValue::from_static("max-age=63072000; includeSubDomains; preload"),
    );
    response
}

/// 200 with Go-style JSON.
pub(crate) fn json_response<T: Serialize + ?Sized>(value: &T) -> Response {
    json_bytes_response(to_go_json(value).into())
}

/// 200 with JSON already serialized.
pub(crate) fn json_bytes_response(json: bytes::Bytes) -> Response {
    (
        [(header::CONTENT_TYPE, HeaderValue::from_static("application/json"))],
        json,
    )
        .into_response()
}

/// 204 with no body.
pub(crate) fn no_content() -> Response {
    StatusCode::NO_CONTENT.into_response()
}
