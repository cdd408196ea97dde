//! Every error answer is JSON, `{"error": "..."}` naming the problem, axum's own rejections
//! (query string, path, unknown route, wrong method) included.

use axum::Json;
use axum::extract::rejection::{PathRejection, QueryRejection};
use axum::extract::{FromRequestParts, Path, Query};
use axum::http::request::Parts;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde::Deserialize;
use serde::de::DeserializeOwned;

use crate::metrics::ERRORS;

/// An error answer: a status and a message naming the problem.
#[derive(Debug)]
pub(crate) struct ApiError {
    status: StatusCode,
    message: String,
    retry_after_secs: Option<u64>,
}

pub(crate) fn error(status: StatusCode, message: impl Into<String>) -> ApiError {
    ApiError { status, message: message.into(), retry_after_secs: None }
}

impl ApiError {
    /// Tells the client when to try again (503 while busy).
    pub(crate) fn retry_after(self, secs: u64) -> Self {
        Self { retry_after_secs: Some(secs), ..self }
    }

    pub(crate) fn status(&self) -> StatusCode {
        self.status
    }

    /// What went wrong, for a log line.
    pub(crate) fn message(&self) -> &str {
        &self.message
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        metrics::counter!(ERRORS, "status" => self.status.as_str().to_owned()).increment(1);
        let mut response = (self.status, Json(serde_json::json!({ "error": self.message }))).into_response();
        let headers = response.headers_mut();
        if let Some(secs) = self.retry_after_secs {
            headers.insert(header::RETRY_AFTER, HeaderValue::from(secs));
        }
        if self.status == StatusCode::UNAUTHORIZED {
            headers.insert(header::WWW_AUTHENTICATE, HeaderValue::from_static("Bearer"));
        }
        response
    }
}

/// `Query` whose rejection (a malformed value, an unknown parameter) is a JSON 400.
#[derive(Debug)]
pub(crate) struct ApiQuery<T>(pub T);

impl<T: DeserializeOwned, S: Send + Sync> FromRequestParts<S> for ApiQuery<T> {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, ApiError> {
        Query::<T>::from_request_parts(parts, state)
            .await
            .map(|Query(value)| Self(value))
            .map_err(|rejection: QueryRejection| error(StatusCode::BAD_REQUEST, rejection.body_text()))
    }
}

/// `Path` whose rejection is JSON.
#[derive(Debug)]
pub(crate) struct ApiPath<T>(pub T);

impl<T: DeserializeOwned + Send, S: Send + Sync> FromRequestParts<S> for ApiPath<T> {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, ApiError> {
        Path::<T>::from_request_parts(parts, state)
            .await
            .map(|Path(value)| Self(value))
            .map_err(|rejection: PathRejection| error(rejection.status(), rejection.body_text()))
    }
}

/// The query of an endpoint that takes no parameters: any parameter is refused (a typo such
/// as `?form=` must not be silently ignored).
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct NoParams {}

pub(crate) async fn not_found(uri: axum::http::Uri) -> ApiError {
    error(StatusCode::NOT_FOUND, format!("no such endpoint: {}", uri.path()))
}

pub(crate) async fn method_not_allowed(method: axum::http::Method, uri: axum::http::Uri) -> ApiError {
    error(StatusCode::METHOD_NOT_ALLOWED, format!("{method} is not allowed on {} (see the Allow header)", uri.path()))
}
