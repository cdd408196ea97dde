//! One write request: line protocol, optionally gzipped, to the configured endpoint.

use std::io::Write as _;
use std::time::Duration;

use flate2::Compression;
use flate2::write::GzEncoder;

/// Which write API.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Api {
    /// `/api/v2/write?org=&bucket=&precision=ms`
    V2 { org: String, bucket: String },
    /// `/write?db=&precision=ms`
    V1 { db: String },
}

/// Where and how to write. `Debug` never shows the token.
#[derive(Clone)]
pub struct Endpoint {
    pub base_url: String,
    pub api: Api,
    pub token: Option<String>,
    pub gzip: bool,
    pub timeout: Duration,
}

impl std::fmt::Debug for Endpoint {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Endpoint")
            .field("base_url", &self.base_url)
            .field("api", &self.api)
            .field("token", &self.token.as_ref().map(|_| "***"))
            .field("gzip", &self.gzip)
            .finish_non_exhaustive()
    }
}

/// Why a write did not succeed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum WriteError {
    /// Worth retrying: connection failure, timeout, 5xx or 429.
    #[error("{kind}: {message}")]
    Retryable { kind: &'static str, message: String },
    /// The server refused the data itself (4xx other than 429): retrying cannot help.
    #[error("HTTP {status}: {message}")]
    Rejected { status: u16, message: String },
}

impl WriteError {
    /// A stable short name, used as a metric label.
    pub fn kind(&self) -> &'static str {
        match self {
            Self::Retryable { kind, .. } => kind,
            Self::Rejected { .. } => "rejected",
        }
    }
}

/// The longest server message kept for logs and the dead-letter file.
const MAX_MESSAGE: usize = 1000;

fn install_crypto_provider() {
    // reqwest is built without a default TLS provider: https uses rustls with ring.
    let _ = rustls::crypto::ring::default_provider().install_default();
}

/// An HTTP client bound to one endpoint.
#[derive(Debug, Clone)]
pub struct Client {
    http: reqwest::Client,
    url: String,
    endpoint: Endpoint,
}

fn query_escape(value: &str) -> String {
    value
        .bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => char::from(b).to_string(),
            _ => format!("%{b:02X}"),
        })
        .collect()
}

impl Client {
    /// # Errors
    /// When the HTTP client cannot be built (TLS set-up).
    pub fn new(endpoint: Endpoint) -> Result<Self, reqwest::Error> {
        install_crypto_provider();
        let http = reqwest::Client::builder().timeout(endpoint.timeout).build()?;
        let base = endpoint.base_url.trim_end_matches('/');
        let url = match &endpoint.api {
            Api::V2 { org, bucket } => {
                format!("{base}/api/v2/write?org={}&bucket={}&precision=ms", query_escape(org), query_escape(bucket))
            }
            Api::V1 { db } => format!("{base}/write?db={}&precision=ms", query_escape(db)),
        };
        Ok(Self { http, url, endpoint })
    }

    /// The body as it will be sent (gzipped when configured).
    pub fn encode(&self, lines: &[u8]) -> Vec<u8> {
        if !self.endpoint.gzip {
            return lines.to_vec();
        }
        // Level 1: most of the size win for a fraction of the CPU.
        let mut gz = GzEncoder::new(Vec::with_capacity(lines.len() / 4), Compression::fast());
        gz.write_all(lines).and_then(|()| gz.finish()).unwrap_or_else(|_| lines.to_vec())
    }

    /// Sends one encoded body.
    ///
    /// # Errors
    /// [`WriteError`], classified for the retry policy.
    pub async fn send(&self, body: Vec<u8>) -> Result<(), WriteError> {
        let mut request = self.http.post(&self.url).header("Content-Type", "text/plain; charset=utf-8").body(body);
        if self.endpoint.gzip {
            request = request.header("Content-Encoding", "gzip");
        }
        if let Some(token) = &self.endpoint.token {
            request = request.header("Authorization", format!("Token {token}"));
        }
        let response = request.send().await.map_err(|e| WriteError::Retryable {
            kind: if e.is_timeout() { "timeout" } else { "connect" },
            message: without_url(&e),
        })?;
        let status = response.status();
        if status.is_success() {
            return Ok(());
        }
        let mut message = response.text().await.unwrap_or_default();
        if message.len() > MAX_MESSAGE {
            let mut end = MAX_MESSAGE;
            while !message.is_char_boundary(end) {
                end -= 1;
            }
            message.truncate(end);
        }
        let code = status.as_u16();
        // 401/403/404/413 say the sink is misconfigured (token, bucket, size), not that the
        // data is bad: retry (and alert on the failures metric) rather than park every point.
        if status.is_server_error() || matches!(code, 401 | 403 | 404 | 413 | 429) {
            let kind = match code {
                429 => "throttled",
                401 | 403 => "unauthorized",
                404 | 413 => "misconfigured",
                _ => "server_error",
            };
            Err(WriteError::Retryable { kind, message: format!("HTTP {code}: {message}") })
        } else {
            Err(WriteError::Rejected { status: code, message })
        }
    }
}

/// reqwest's messages include the URL; ours has no secrets, but keep logs short.
fn without_url(error: &reqwest::Error) -> String {
    let text = error.to_string();
    let mut source = std::error::Error::source(error);
    let mut detail = String::new();
    while let Some(cause) = source {
        detail = cause.to_string();
        source = cause.source();
    }
    if detail.is_empty() { text } else { detail }
}
