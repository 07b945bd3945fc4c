//! What every HTTP request leaves behind: a log span (method, route) around its handling, a
//! debug line with its status and latency when it is answered, and its count and latency in
//! the node's metrics. The route is the request's OpenAPI `operationId`, found by the same
//! routing functions the dispatchers use (`routes::operation_of`), so it is known before the
//! handler runs and every log line of the request carries it; paths no route takes are
//! `unknown`, so neither logs nor metrics get a series or field per path (paths carry object
//! names).

use super::routes::{operation_of, SpiRecogniser};
use super::AppState;
use crate::clock::Instant;
use crate::metrics::UNKNOWN_ROUTE;
use axum::extract::{Request, State};
use axum::middleware::Next;
use axum::response::Response;
use tracing::Instrument;

/// Middleware over the whole router. The latency is the time to the answer's head: a
/// download's body streams after it.
pub(super) async fn observe(
    State((state, spi)): State<(AppState, SpiRecogniser)>,
    request: Request,
    next: Next,
) -> Response {
    let started = Instant::now();
    let node = &state.node;
    let route = operation_of(
        node.role(),
        node.settings().serves_spi,
        spi,
        request.method(),
        request.uri().path(),
    )
    .unwrap_or(UNKNOWN_ROUTE);
    let span = tracing::info_span!("request", method = %request.method(), route);
    let response = next.run(request).instrument(span.clone()).await;
    let elapsed = started.elapsed();
    let status = response.status().as_u16();
    // Fields of the answer's line, not of the span: a field recorded into a span is
    // formatted at once by every log stream, whether or not a line is ever written, and
    // appended once per stream. Whole microseconds, so the latency prints short.
    tracing::debug!(
        parent: &span,
        status,
        latency_ms = elapsed.as_micros() as f64 / 1000.0,
        "request answered"
    );
    state.metrics.record_request(route, status, elapsed);
    response
}
