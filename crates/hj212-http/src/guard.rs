//! Runs before every `/api/v1` handler, so before any body is read: reads (GET, HEAD) need the
//! read token when `server.admin_read_token_file` is set (the admin token or a console session
//! also works), every other method needs the admin token. Reads are also cut at
//! `http.request_timeout_secs` (writes bound their body read instead: an archive append in
//! progress is never abandoned).

use std::time::Duration;

use axum::extract::{Request, State};
use axum::http::{HeaderMap, Method, StatusCode};
use axum::middleware::Next;
use axum::response::Response;

use crate::AppState;
use crate::error::{ApiError, error};

pub(crate) async fn guard(State(state): State<AppState>, request: Request, next: Next) -> Result<Response, ApiError> {
    let given = bearer(request.headers());
    if !matches!(*request.method(), Method::GET | Method::HEAD) {
        authorise_admin(&state, given)?;
        return Ok(next.run(request).await);
    }
    if let Some(read_token) = &state.read_token {
        let admin = state.admin_token.as_deref();
        let token_ok = given.is_some_and(|g| same(g, read_token) || admin.is_some_and(|a| same(g, a)));
        if !token_ok && !signed_in(&state, request.headers()) {
            return Err(error(
                StatusCode::UNAUTHORIZED,
                "a valid bearer token is required (server.admin_read_token_file, or the admin token)",
            ));
        }
    }
    read_deadline(Duration::from_secs(state.limits.request_timeout_secs), request, next).await
}

/// A read answered within `limit`, else 503.
async fn read_deadline(limit: Duration, request: Request, next: Next) -> Result<Response, ApiError> {
    tokio::time::timeout(limit, next.run(request)).await.map_err(|_| {
        error(
            StatusCode::SERVICE_UNAVAILABLE,
            format!(
                "the query did not finish within {} s (http.request_timeout_secs); ask for a shorter range",
                limit.as_secs()
            ),
        )
    })
}

fn authorise_admin(state: &AppState, given: Option<&str>) -> Result<(), ApiError> {
    let Some(expected) = &state.admin_token else {
        return Err(error(StatusCode::FORBIDDEN, "mutating endpoints are off: set server.admin_token_file"));
    };
    if given.is_some_and(|g| same(g, expected)) {
        Ok(())
    } else {
        Err(error(StatusCode::UNAUTHORIZED, "a valid bearer token is required (server.admin_token_file)"))
    }
}

/// A console user's session also opens the reads (report downloads from the console); the
/// console's own forms change things, never the API.
fn signed_in(state: &AppState, headers: &HeaderMap) -> bool {
    let console = state.console.as_ref();
    crate::console::session::token_of(headers).is_some_and(|token| console.is_some_and(|c| c.signed_in(token)))
}

fn bearer(headers: &HeaderMap) -> Option<&str> {
    headers.get("authorization").and_then(|v| v.to_str().ok()).and_then(|v| v.strip_prefix("Bearer "))
}

/// Compared without an early exit, like site passwords.
pub(crate) fn same(given: &str, expected: &str) -> bool {
    given.len() == expected.len() && given.bytes().zip(expected.bytes()).fold(0u8, |acc, (a, b)| acc | (a ^ b)) == 0
}

#[cfg(test)]
mod tests {
    use axum::Router;
    use axum::routing::get;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    use super::*;

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_read_that_takes_too_long_gets_a_json_503() {
        let slow = || async {
            tokio::time::sleep(Duration::from_secs(30)).await;
            "late"
        };
        let router =
            Router::new().route("/slow", get(slow)).layer(axum::middleware::from_fn(|request: Request, next: Next| {
                read_deadline(Duration::from_secs(1), request, next)
            }));
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let shutdown = tokio_util::sync::CancellationToken::new();
        let server = tokio::spawn(crate::serve(listener, router, shutdown.clone(), hj212_config::Http::default()));
        let mut client = tokio::net::TcpStream::connect(addr).await.unwrap();
        client.write_all(b"GET /slow HTTP/1.0\r\n\r\n").await.unwrap();
        let mut answer = String::new();
        let started = std::time::Instant::now();
        client.read_to_string(&mut answer).await.unwrap();
        assert!(started.elapsed() < Duration::from_secs(5), "{:?}", started.elapsed());
        assert!(answer.starts_with("HTTP/1.0 503"), "{answer}");
        assert!(answer.ends_with(r#"{"error":"the query did not finish within 1 s (http.request_timeout_secs); ask for a shorter range"}"#), "{answer}");
        shutdown.cancel();
        server.await.unwrap().unwrap();
    }
}
