//! The REST API applications use (spec: rest-api.md). Routers per resource, one dispatcher
//! per prefix (the original routes by prefix and splits the rest), errors mapped once in
//! [`error`]. This is the only layer that speaks HTTP to applications.

mod admin;
pub mod error;
mod objects;
pub mod request;
mod security;
mod spi;

use crate::engine::Node;
use crate::model::json::to_go_json;
use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::any;
use axum::Router;
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
}

/// The application router.
pub fn router(state: AppState) -> Router {
    let api = Router::new()
        .route("/api/v1/objects", any(objects::dispatch))
        .route("/api/v1/objects/", any(objects::dispatch))
        .route("/api/v1/objects/{*rest}", any(objects::dispatch))
        .route("/api/v1/destinations", any(admin::destinations))
        .route("/api/v1/destinations/", any(admin::destinations))
        .route("/api/v1/destinations/{*rest}", any(admin::destinations))
        .route("/api/v1/organizations", any(admin::organizations))
        .route("/api/v1/organizations/", any(admin::organizations))
        .route("/api/v1/organizations/{*rest}", any(admin::organizations))
        .route("/api/v1/security", any(security::dispatch))
        .route("/api/v1/security/", any(security::dispatch))
        .route("/api/v1/security/{*rest}", any(security::dispatch))
        .route("/spi/v1", any(spi::dispatch))
        .route("/spi/v1/", any(spi::dispatch))
        .route("/spi/v1/{*rest}", any(spi::dispatch))
        .route("/api/v1/health", any(admin::health))
        .route("/api/v1/resend", any(admin::resend))
        .route("/api/v1/shutdown", any(admin::shutdown))
        .route_layer(axum::middleware::map_response(common_headers));
    api.fallback(|| async { not_found() }).with_state(state)
}

/// The framework's 404 for unknown paths: plain text, without the API's common headers.
pub(crate) fn not_found() -> Response {
    (
        StatusCode::NOT_FOUND,
        [(
            header::CONTENT_TYPE,
            HeaderValue::from_static("text/plain; charset=utf-8"),
        )],
        "404 page not found\n",
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
    (
        [(header::CONTENT_TYPE, HeaderValue::from_static("application/json"))],
        to_go_json(value),
    )
        .into_response()
}

/// 204 with no body.
pub(crate) fn no_content() -> Response {
    StatusCode::NO_CONTENT.into_response()
}
