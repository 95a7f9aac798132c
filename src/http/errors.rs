//! Errors as the API answers them: `{"error": "<one line>"}` with the
//! status that fits, whoever made the error (a handler, axum's routing or a
//! tower-http layer).

use axum::body::Body;
use axum::http::{header, Request, StatusCode};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use axum::Json;

/// An error a handler answers with.
#[derive(Debug)]
pub struct ApiError {
    pub status: StatusCode,
    pub message: String,
}

impl ApiError {
    pub fn new(status: StatusCode, message: impl Into<String>) -> Self {
        ApiError {
            status,
            message: message.into(),
        }
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        (
            self.status,
            Json(serde_json::json!({ "error": self.message })),
        )
            .into_response()
    }
}

/// Any route that does not exist.
pub async fn not_found(request: Request<Body>) -> ApiError {
    ApiError::new(
        StatusCode::NOT_FOUND,
        format!(
            "no such endpoint: {} {} (see /v1/status, /v1/predict, /v1/events, /metrics)",
            request.method(),
            request.uri().path()
        ),
    )
}

/// Rewrites error answers that are not JSON (axum's 405, tower-http's 408
/// and 413) into the API's error object, keeping their status, headers and
/// extensions.
pub async fn as_json(request: Request<Body>, next: Next) -> Response {
    let (method, path) = (request.method().clone(), request.uri().path().to_string());
    let response = next.run(request).await;
    let status = response.status();
    let is_json = response
        .headers()
        .get(header::CONTENT_TYPE)
        .is_some_and(|v| v.as_bytes().starts_with(b"application/json"));
    if !(status.is_client_error() || status.is_server_error()) || is_json {
        return response;
    }
    let message = match status {
        StatusCode::METHOD_NOT_ALLOWED => {
            // axum adds its `Allow` header outside this layer, so the one
            // route that is not GET is named here.
            let allow = if path == "/v1/predict" { "POST" } else { "GET" };
            format!("{method} is not allowed on {path}; use {allow}")
        }
        StatusCode::PAYLOAD_TOO_LARGE => {
            format!("{path}: the request body is over the limit set by http.max_body_mb")
        }
        StatusCode::REQUEST_TIMEOUT => format!("{path}: the request took too long"),
        other => format!(
            "{path}: {}",
            other.canonical_reason().unwrap_or("the request failed")
        ),
    };
    let (mut parts, _) = response.into_parts();
    parts.headers.remove(header::CONTENT_LENGTH);
    let mut answer = ApiError::new(status, message).into_response();
    for (name, value) in &parts.headers {
        if name != header::CONTENT_TYPE {
            answer.headers_mut().insert(name, value.clone());
        }
    }
    // The route it matched, for the request counter outside.
    answer.extensions_mut().extend(parts.extensions);
    answer
}
