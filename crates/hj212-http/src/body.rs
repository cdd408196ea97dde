//! Request bodies: read only after the token was checked (the guard runs first), bounded by
//! the archive's record limit, within the request timeout, and parsed as JSON whatever the
//! Content-Type (`curl -d` sends `application/x-www-form-urlencoded`).

use std::time::Duration;

use axum::extract::{FromRequest, Request};
use axum::http::{StatusCode, header};
use hj212_archive::MAX_DATA;
use serde::de::DeserializeOwned;

use crate::AppState;
use crate::error::{ApiError, error};

/// The largest request body: a mark is archived as one record, and readers accept records of
/// at most `MAX_DATA` bytes, so nothing larger could be kept.
pub(crate) const MAX_BODY_BYTES: usize = MAX_DATA;

/// A JSON body, deserialised into `T` (an empty body reads as `null`, so `Option<T>` makes
/// the body optional).
#[derive(Debug)]
pub(crate) struct JsonBody<T>(pub T);

pub(crate) fn too_large(what: &str) -> ApiError {
    error(
        StatusCode::PAYLOAD_TOO_LARGE,
        format!("{what} is over {MAX_BODY_BYTES} bytes, the most one archive record holds"),
    )
}

impl<T: DeserializeOwned> FromRequest<AppState> for JsonBody<T> {
    type Rejection = ApiError;

    async fn from_request(request: Request, state: &AppState) -> Result<Self, ApiError> {
        let declared = request.headers().get(header::CONTENT_LENGTH).and_then(|v| v.to_str().ok()?.parse::<u64>().ok());
        if declared.is_some_and(|len| len > MAX_BODY_BYTES as u64) {
            return Err(too_large("the request body"));
        }
        let wait = Duration::from_secs(state.limits.request_timeout_secs);
        let read = tokio::time::timeout(wait, axum::body::to_bytes(request.into_body(), MAX_BODY_BYTES)).await;
        let bytes = match read {
            Err(_) => {
                return Err(error(
                    StatusCode::REQUEST_TIMEOUT,
                    format!("the request body did not arrive within {} s (http.request_timeout_secs)", wait.as_secs()),
                ));
            }
            Ok(Err(e)) if is_length_limit(&e) => return Err(too_large("the request body")),
            Ok(Err(e)) => return Err(error(StatusCode::BAD_REQUEST, format!("cannot read the request body: {e}"))),
            Ok(Ok(bytes)) => bytes,
        };
        let empty = bytes.iter().all(u8::is_ascii_whitespace);
        let text: &[u8] = if empty { b"null" } else { &bytes };
        serde_json::from_slice(text).map(Self).map_err(|e| {
            let problem = if empty { "a JSON body is required".to_owned() } else { e.to_string() };
            error(StatusCode::BAD_REQUEST, format!("request body: {problem}"))
        })
    }
}

fn is_length_limit(e: &axum::Error) -> bool {
    std::error::Error::source(e).is_some_and(<dyn std::error::Error>::is::<http_body_util::LengthLimitError>)
}
