//! The one place where failures become HTTP answers (spec: rest-api.md §1.5): plain-text
//! bodies, 403 never 401, empty 404s, and no internal detail in 5xx bodies.

use crate::engine::EngineError;
use crate::store::StoreError;
use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};

/// Everything a handler can answer with instead of success.
#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    #[error(transparent)]
    Engine(#[from] EngineError),
    /// 400 with this text (empty text: empty body, as the original's route-shape errors).
    #[error("{0}")]
    BadRequest(String),
    #[error("method not allowed")]
    MethodNotAllowed,
    /// 301 to this location.
    #[error("moved to {0}")]
    Redirect(String),
    #[error("{0}")]
    PayloadTooLarge(String),
    /// The path names no route: the router's own plain 404, whatever prefix it fell under.
    #[error("no such route")]
    NoRoute,
}

impl ApiError {
    fn status(&self) -> StatusCode {
        match self {
            ApiError::Engine(e) => match e {
                EngineError::Forbidden | EngineError::DataForbidden => StatusCode::FORBIDDEN,
                EngineError::NotFound => StatusCode::NOT_FOUND,
                EngineError::Invalid(_) => StatusCode::BAD_REQUEST,
                EngineError::Conflict(_) => StatusCode::CONFLICT,
                EngineError::TooLarge(_) => StatusCode::PAYLOAD_TOO_LARGE,
                EngineError::RangeNotSatisfiable(_) => StatusCode::RANGE_NOT_SATISFIABLE,
                EngineError::Busy => StatusCode::TOO_MANY_REQUESTS,
                EngineError::NotRegistered => StatusCode::FAILED_DEPENDENCY,
                EngineError::Store(StoreError::Closed | StoreError::Unavailable(_)) => StatusCode::SERVICE_UNAVAILABLE,
                EngineError::Store(StoreError::Full) => StatusCode::INSUFFICIENT_STORAGE,
                EngineError::Store(_) | EngineError::Io(_) => StatusCode::INTERNAL_SERVER_ERROR,
            },
            ApiError::BadRequest(_) => StatusCode::BAD_REQUEST,
            ApiError::MethodNotAllowed => StatusCode::METHOD_NOT_ALLOWED,
            ApiError::Redirect(_) => StatusCode::MOVED_PERMANENTLY,
            ApiError::PayloadTooLarge(_) => StatusCode::PAYLOAD_TOO_LARGE,
            ApiError::NoRoute => StatusCode::NOT_FOUND,
        }
    }

    /// The body clients see; never internal detail.
    fn public_message(&self) -> String {
        let line = |text: &str| {
            if text.is_empty() {
                String::new()
            } else {
                format!("{text}\n")
            }
        };
        match self {
            // The original's texts, which its clients and tests know.
            ApiError::Engine(EngineError::Forbidden) => "Unauthorized".into(),
            ApiError::Engine(EngineError::DataForbidden) => {
                "Unauthorized. The object may not exist or be public.\n".into()
            }
            ApiError::Engine(EngineError::Busy) => {
                "Error in handleObjects: Unable to acquire object semaphore.\n".into()
            }
            ApiError::Engine(EngineError::NotFound) => String::new(),
            ApiError::Engine(EngineError::Store(StoreError::Closed)) => String::new(),
            ApiError::Engine(EngineError::Store(StoreError::Unavailable(_))) => {
                "The database is not reachable right now; retry later\n".into()
            }
            // Nothing of the write is kept; the client may retry once space is freed.
            ApiError::Engine(EngineError::Store(StoreError::Full)) => {
                "Not enough disk space to store the data; retry after space is freed\n".into()
            }
            ApiError::Engine(EngineError::Store(_) | EngineError::Io(_)) => {
                "Internal error: the request could not be completed; see the service log\n".into()
            }
            ApiError::Engine(e) => line(&e.to_string()),
            ApiError::BadRequest(text) | ApiError::PayloadTooLarge(text) => line(text),
            ApiError::MethodNotAllowed | ApiError::Redirect(_) => String::new(),
            ApiError::NoRoute => super::NOT_FOUND_BODY.into(),
        }
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let status = self.status();
        if status.is_server_error() {
            tracing::error!(error = %self, "request failed");
        }
        let body = self.public_message();
        let mut response = if body.is_empty() {
            status.into_response()
        } else {
            (
                status,
                [(
                    header::CONTENT_TYPE,
                    HeaderValue::from_static("text/plain; charset=utf-8"),
                )],
                body,
            )
                .into_response()
        };
        match &self {
            ApiError::Redirect(location) => {
                if let Ok(value) = HeaderValue::from_str(location) {
                    response.headers_mut().insert(header::LOCATION, value);
                }
            }
            ApiError::Engine(EngineError::RangeNotSatisfiable(size)) => {
                if let Ok(value) = HeaderValue::from_str(&format!("bytes */{size}")) {
                    response.headers_mut().insert(header::CONTENT_RANGE, value);
                }
            }
            _ => {}
        }
        response
    }
}

/// Result of handlers.
pub type ApiResult<T> = Result<T, ApiError>;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_full_disk_is_507_with_a_plain_text_reason() {
        let full = ApiError::Engine(EngineError::Store(StoreError::Full));
        assert_eq!(full.status(), StatusCode::INSUFFICIENT_STORAGE);
        assert!(full.public_message().contains("Not enough disk space"));
        let no_space = ApiError::Engine(std::io::Error::from_raw_os_error(28).into());
        assert_eq!(no_space.status(), StatusCode::INSUFFICIENT_STORAGE);
        let other = ApiError::Engine(std::io::Error::from_raw_os_error(5).into());
        assert_eq!(other.status(), StatusCode::INTERNAL_SERVER_ERROR);
    }

    #[test]
    fn data_larger_than_the_disk_is_413_not_507() {
        // EFBIG, or a declared size beyond the file system: freeing space would not help.
        let too_big = ApiError::Engine(std::io::Error::from_raw_os_error(27).into());
        assert_eq!(too_big.status(), StatusCode::PAYLOAD_TOO_LARGE);
        let beyond = std::io::Error::new(std::io::ErrorKind::FileTooLarge, "more than the node holds");
        let beyond = ApiError::Engine(beyond.into());
        assert_eq!(beyond.status(), StatusCode::PAYLOAD_TOO_LARGE);
        assert_eq!(beyond.public_message(), "more than the node holds\n");
    }
}
