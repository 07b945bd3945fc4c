//! `GET /swagger`: the OpenAPI document of this API (`openapi.yaml` at the repository top),
//! compiled in so the served document always matches the binary. The original redirects
//! `/swagger` to a bundled Swagger UI (rest-api.md §11); no UI ships here, so the document
//! itself is the answer. No credentials needed, as the original.

use super::error::{ApiError, ApiResult};
use axum::extract::Request;
use axum::http::{header, HeaderValue, Method};
use axum::response::{IntoResponse, Response};

/// The document, as written.
pub const OPENAPI_YAML: &str = include_str!("../../openapi.yaml");

/// The `operationId` of a request on `/swagger` (route table tests).
pub(super) fn recognise(method: &Method) -> ApiResult<&'static str> {
    if method == Method::GET {
        Ok("getOpenApi")
    } else {
        Err(ApiError::MethodNotAllowed)
    }
}

/// `GET /swagger`.
pub async fn openapi(request: Request) -> ApiResult<Response> {
    recognise(request.method())?;
    Ok((
        [(header::CONTENT_TYPE, HeaderValue::from_static("application/yaml"))],
        OPENAPI_YAML,
    )
        .into_response())
}
