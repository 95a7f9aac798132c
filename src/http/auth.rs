//! The bearer token: when `http.token_file` or `TUTTI_HTTP_TOKEN` sets
//! one, every API request must carry `Authorization: Bearer <token>`.
//! It is compared in constant time, so the answer's timing does not say
//! how much of a guess was right.

use super::errors::ApiError;
use super::App;
use axum::body::Body;
use axum::extract::State;
use axum::http::{header, HeaderValue, Request, StatusCode};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use subtle::ConstantTimeEq;

/// Whether `header` (an `Authorization` value) carries `token`.
fn carries(header: Option<&HeaderValue>, token: &str) -> bool {
    let Some(given) = header
        .and_then(|h| h.to_str().ok())
        .and_then(|h| h.strip_prefix("Bearer "))
    else {
        return false;
    };
    bool::from(given.trim().as_bytes().ct_eq(token.as_bytes()))
}

/// Lets a request through when no token is set or it carries the token;
/// answers 401 otherwise.
pub async fn require_token(State(app): State<App>, request: Request<Body>, next: Next) -> Response {
    let Some(token) = &app.token else {
        return next.run(request).await;
    };
    let auth = request.headers().get(header::AUTHORIZATION);
    if carries(auth, token.expose()) {
        return next.run(request).await;
    }
    let why = if auth.is_some() {
        "the bearer token is wrong"
    } else {
        "this API needs `Authorization: Bearer <token>` (the token of http.token_file)"
    };
    let mut answer = ApiError::new(StatusCode::UNAUTHORIZED, why).into_response();
    answer.headers_mut().insert(
        header::WWW_AUTHENTICATE,
        HeaderValue::from_static("Bearer realm=\"tutti\""),
    );
    answer
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_the_exact_token_passes() {
        let token = "0123456789abcdef";
        let h = |s: &str| HeaderValue::from_str(s).unwrap();
        assert!(carries(Some(&h("Bearer 0123456789abcdef")), token));
        assert!(!carries(Some(&h("Bearer 0123456789abcde")), token));
        assert!(!carries(Some(&h("Bearer 0123456789abcdefg")), token));
        assert!(!carries(Some(&h("Basic 0123456789abcdef")), token));
        assert!(!carries(Some(&h("0123456789abcdef")), token));
        assert!(!carries(None, token));
    }
}
