//! A client of the daemon's admin HTTP API (`server.http_listen`). Each answer becomes a body or a
//! [`Failure`] whose sysexits code tells a script whether to fix its request (65), retry later (69)
//! or report a daemon bug (70).

use std::path::Path;
use std::time::Duration;

use reqwest::header::{AUTHORIZATION, CONTENT_TYPE, HeaderValue};
use reqwest::{Method, StatusCode, Url};

use crate::{EX_DATAERR, EX_NOINPUT, EX_PROTOCOL, EX_SOFTWARE, EX_UNAVAILABLE, EX_USAGE, Failure};

/// Longest wait for one answer. The admin API answers from memory, so a slower answer means a
/// stuck daemon, and an operator at a terminal should hear so rather than wait forever.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(10);

/// Longest part of a non-JSON error body quoted back (a proxy's HTML page says little more).
const MAX_QUOTED_BODY: usize = 300;

/// One daemon, called one request at a time from synchronous code.
#[derive(Debug)]
pub struct AdminClient {
    runtime: tokio::runtime::Runtime,
    http: reqwest::Client,
    base: Url,
    /// `Bearer <token>`, marked sensitive so that no Debug output shows it.
    authorization: Option<HeaderValue>,
}

impl AdminClient {
    /// # Errors
    /// 64 for a URL that is not http(s), 66 for an unreadable or unusable token file.
    pub fn new(url: &str, token_file: Option<&Path>) -> Result<Self, Failure> {
        let base = Url::parse(url).ok().filter(|u| matches!(u.scheme(), "http" | "https")).ok_or_else(|| Failure {
            message: format!("--url {url:?} must be http://HOST:PORT (the daemon's server.http_listen)"),
            exit_code: EX_USAGE,
        })?;
        let authorization = token_file.map(read_token).transpose()?;
        let software =
            |what: &str, e: &dyn std::error::Error| Failure { message: format!("{what}: {e}"), exit_code: EX_SOFTWARE };
        // One request at a time needs no worker threads; the timer drives the request timeout.
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .map_err(|e| software("starting the I/O runtime", &e))?;
        // reqwest is built without a default TLS provider: https uses rustls with ring.
        let _ = rustls::crypto::ring::default_provider().install_default();
        let http = reqwest::Client::builder()
            .timeout(REQUEST_TIMEOUT)
            // The bearer token goes to the daemon itself, never through an HTTP_PROXY meant for
            // the internet (which would also fail to reach a loopback listener).
            .no_proxy()
            .build()
            .map_err(|e| software("building the HTTP client", &e))?;
        Ok(Self { runtime, http, base, authorization })
    }

    /// Calls `method` on the base URL extended by `path` (each segment percent-encoded);
    /// `json` is sent as the request body.
    ///
    /// # Errors
    /// 69 when the daemon cannot be reached, 65 for a 4xx answer, 70 for a 5xx answer,
    /// 76 for any other non-2xx answer; the message carries the daemon's `error`.
    pub fn call(&self, method: Method, path: &[&str], json: Option<String>) -> Result<String, Failure> {
        let url = endpoint(&self.base, path);
        let mut request = self.http.request(method, url);
        if let Some(authorization) = &self.authorization {
            request = request.header(AUTHORIZATION, authorization.clone());
        }
        if let Some(json) = json {
            request = request.header(CONTENT_TYPE, "application/json").body(json);
        }
        let (status, body) = self
            .runtime
            .block_on(async {
                let response = request.send().await?;
                let status = response.status();
                Ok((status, response.text().await?))
            })
            .map_err(|e: reqwest::Error| unreachable_daemon(&e))?;
        if status.is_success() { Ok(body) } else { Err(refusal(status, &body)) }
    }
}

fn read_token(path: &Path) -> Result<HeaderValue, Failure> {
    let unusable =
        |why: &str| Failure { message: format!("--token-file {}: {why}", path.display()), exit_code: EX_NOINPUT };
    let text = std::fs::read_to_string(path).map_err(|e| unusable(&e.to_string()))?;
    let token = text.trim();
    if token.is_empty() {
        return Err(unusable("the file is empty"));
    }
    // The parse error is not quoted: it could only echo the token.
    let mut value = HeaderValue::from_str(&format!("Bearer {token}"))
        .map_err(|_| unusable("holds characters an HTTP header cannot carry"))?;
    value.set_sensitive(true);
    Ok(value)
}

/// `base` with `path` appended, so a daemon behind a reverse-proxy prefix (`https://host/hj212/`)
/// works as well as a bare listener.
fn endpoint(base: &Url, path: &[&str]) -> Url {
    let mut url = base.clone();
    // Every http(s) URL (checked in `new`) has a path to extend, so this never falls through.
    if let Ok(mut segments) = url.path_segments_mut() {
        segments.pop_if_empty().extend(path);
    }
    url
}

fn unreachable_daemon(e: &reqwest::Error) -> Failure {
    // reqwest says only "error sending request for url (...)"; refused, timed out or no route is
    // in the chain of sources.
    let mut message = e.to_string();
    let mut source = std::error::Error::source(e);
    while let Some(cause) = source {
        message.push_str(": ");
        message.push_str(&cause.to_string());
        source = cause.source();
    }
    Failure { message, exit_code: EX_UNAVAILABLE }
}

#[derive(serde::Deserialize)]
struct ErrorAnswer {
    error: String,
}

fn refusal(status: StatusCode, body: &str) -> Failure {
    let exit_code = if status.is_client_error() {
        EX_DATAERR
    } else if status.is_server_error() {
        EX_SOFTWARE
    } else {
        EX_PROTOCOL
    };
    let why = serde_json::from_str::<ErrorAnswer>(body)
        .map_or_else(|_| body.trim().chars().take(MAX_QUOTED_BODY).collect(), |answer| answer.error);
    Failure { message: format!("the daemon answered {status}: {why}"), exit_code }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn endpoint_appends_escaped_segments_to_any_base_path() {
        let bare = Url::parse("http://127.0.0.1:9213").unwrap();
        assert_eq!(
            endpoint(&bare, &["api", "v1", "commands", "c-1"]).as_str(),
            "http://127.0.0.1:9213/api/v1/commands/c-1"
        );
        let prefixed = Url::parse("https://host/hj212/").unwrap();
        assert_eq!(endpoint(&prefixed, &["sites", "a/b c"]).as_str(), "https://host/hj212/sites/a%2Fb%20c");
    }

    #[test]
    fn refusals_carry_the_daemons_error_and_a_code_by_status_class() {
        let conflict = refusal(StatusCode::CONFLICT, r#"{"error": "c-1 is sent, no longer queued"}"#);
        assert_eq!(conflict.exit_code, EX_DATAERR);
        assert_eq!(conflict.message, "the daemon answered 409 Conflict: c-1 is sent, no longer queued");
        let crashed = refusal(StatusCode::INTERNAL_SERVER_ERROR, "oops\n");
        assert_eq!(
            (crashed.exit_code, crashed.message.as_str()),
            (EX_SOFTWARE, "the daemon answered 500 Internal Server Error: oops")
        );
        assert_eq!(refusal(StatusCode::MOVED_PERMANENTLY, "").exit_code, EX_PROTOCOL);
    }

    #[test]
    fn bad_urls_and_token_files_have_their_own_codes() {
        assert_eq!(AdminClient::new("127.0.0.1:9213", None).unwrap_err().exit_code, EX_USAGE);
        let missing = AdminClient::new("http://127.0.0.1:9213", Some(Path::new("/nonexistent/token"))).unwrap_err();
        assert_eq!(missing.exit_code, EX_NOINPUT);
        let dir = tempfile::tempdir().unwrap();
        let empty = dir.path().join("token");
        std::fs::write(&empty, "\n").unwrap();
        assert_eq!(AdminClient::new("http://127.0.0.1:9213", Some(&empty)).unwrap_err().exit_code, EX_NOINPUT);
    }

    #[test]
    fn a_closed_port_means_the_daemon_is_unavailable() {
        let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
        let client = AdminClient::new(&format!("http://127.0.0.1:{port}"), None).unwrap();
        let failure = client.call(Method::GET, &["api", "v1", "commands", "c-1"], None).unwrap_err();
        assert_eq!(failure.exit_code, EX_UNAVAILABLE, "{}", failure.message);
    }

    #[test]
    fn the_token_never_shows_in_debug_output() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("token");
        std::fs::write(&file, "s3cret-token\n").unwrap();
        let client = AdminClient::new("http://127.0.0.1:9213", Some(&file)).unwrap();
        assert!(!format!("{client:?}").contains("s3cret"));
    }
}
