//! A minimal HTTP/1.0 client with timeouts, for the admin API (blocking; run it on a thread).

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::time::Duration;

use anyhow::{Context as _, Result};

/// An answer: status, the headers as text, and the body.
#[derive(Debug, Clone)]
pub struct Answer {
    pub status: u16,
    pub headers: String,
    pub body: String,
}

/// `method path` with an optional body; the whole exchange within `timeout`.
///
/// # Errors
/// If the server cannot be reached, times out or answers something that is not HTTP.
pub fn request(addr: SocketAddr, method: &str, path: &str, body: &str, timeout: Duration) -> Result<Answer> {
    request_with(addr, &format!("{method} {path}"), "", body, timeout)
}

/// As [`request`], `line` being `METHOD PATH` and `headers` extra header lines (each ending in CRLF).
///
/// # Errors
/// As [`request`].
pub fn request_with(addr: SocketAddr, line: &str, headers: &str, body: &str, timeout: Duration) -> Result<Answer> {
    let mut stream = TcpStream::connect_timeout(&addr, timeout).with_context(|| format!("connect {addr}"))?;
    stream.set_read_timeout(Some(timeout))?;
    stream.set_write_timeout(Some(timeout))?;
    write!(stream, "{line} HTTP/1.0\r\nHost: localhost\r\n{headers}Content-Length: {}\r\n\r\n", body.len())?;
    // A server may answer (413) before the body is sent, and close.
    let _ = stream.write_all(body.as_bytes());
    let mut raw = Vec::new();
    stream.read_to_end(&mut raw).with_context(|| format!("read the answer to {line}"))?;
    let text = String::from_utf8_lossy(&raw).into_owned();
    let status = text.get(9..12).and_then(|s| s.parse().ok()).with_context(|| format!("not HTTP: {text:.80}"))?;
    let (headers, body) = text.split_once("\r\n\r\n").unwrap_or((text.as_str(), ""));
    Ok(Answer { status, headers: headers.to_owned(), body: body.to_owned() })
}

/// `GET path` within 10 s.
///
/// # Errors
/// As [`request`].
pub fn get(addr: SocketAddr, path: &str) -> Result<Answer> {
    request(addr, "GET", path, "", Duration::from_secs(10))
}

/// The daemon's metrics text ("" when it cannot be had).
pub fn metrics(addr: SocketAddr) -> String {
    get(addr, "/metrics").map(|a| a.body).unwrap_or_default()
}

/// The newest signed checkpoint's `SEQ:HASH` from `GET /api/v1/archive/head`, if any.
pub fn published_head(addr: SocketAddr) -> Option<String> {
    let answer = get(addr, "/api/v1/archive/head").ok()?;
    let value: serde_json::Value = serde_json::from_str(&answer.body).ok()?;
    value["checkpoint"]["expect_head"].as_str().map(str::to_owned)
}

/// `GET path`, reading the body without keeping it (a load generator's client, so that the
/// harness spends little CPU beside the daemon): (status, Retry-After given, body bytes).
///
/// # Errors
/// As [`request`].
pub fn get_discarding(addr: SocketAddr, path: &str, timeout: Duration) -> Result<(u16, bool, u64)> {
    let mut stream = TcpStream::connect_timeout(&addr, timeout).with_context(|| format!("connect {addr}"))?;
    stream.set_read_timeout(Some(timeout))?;
    write!(stream, "GET {path} HTTP/1.0\r\nHost: localhost\r\n\r\n")?;
    let mut head = [0u8; 4096];
    let n = stream.read(&mut head)?;
    let text = String::from_utf8_lossy(&head[..n]).to_ascii_lowercase();
    let status = text.get(9..12).and_then(|s| s.parse().ok()).with_context(|| format!("not HTTP: {text:.80}"))?;
    let rest = std::io::copy(&mut stream, &mut std::io::sink())?;
    Ok((status, text.contains("\r\nretry-after:"), n as u64 + rest))
}
