//! Delivery of one outgoing message (an alert, or a digest of several) on one channel:
//! HTTP for the webhook and the robots, SMTP for e-mail. One attempt per call, bounded by the
//! channel's timeout; the caller retries. Errors never carry the URL (it holds the token).

use std::time::Duration;

use hj212_config::{Config, Notify, NotifyKind, NotifyLanguage};
use serde_json::{Value, json};

use crate::NotifyError;
use crate::email::EmailSender;
use crate::render::{self, DigestReason};
use crate::robot;

/// What one send carries.
#[derive(Debug, Clone, Copy)]
pub enum Outgoing<'a> {
    One(&'a Value),
    Digest { payloads: &'a [Value], reason: DigestReason },
}

/// One failed attempt: a bounded label for the metric and a message for the log and status.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{kind}: {message}")]
pub struct SendError {
    pub kind: &'static str,
    pub message: String,
}

impl SendError {
    pub(crate) fn new(kind: &'static str, message: impl Into<String>) -> Self {
        Self { kind, message: message.into() }
    }
}

/// A robot's answer is a few hundred bytes; more is not a robot (a proxy's error page, a
/// misrouted URL): read at most this much.
const MAX_ANSWER_BYTES: usize = 64 * 1024;

/// A secret read from a file: never printed.
#[derive(Clone)]
pub(crate) struct Secret(pub String);

impl std::fmt::Debug for Secret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("***")
    }
}

fn read_secret(
    config: &Config,
    channel: &Notify,
    field: &'static str,
    file: Option<&std::path::PathBuf>,
) -> Result<Option<Secret>, NotifyError> {
    let Some(file) = file else { return Ok(None) };
    let path = hj212_config::resolve_path(config, file);
    let text = std::fs::read_to_string(&path).map_err(|source| NotifyError::Secret {
        channel: channel.name.clone(),
        field,
        path: path.clone(),
        source,
    })?;
    Ok(Some(Secret(text.trim().to_owned())))
}

#[derive(Debug)]
enum Transport {
    Http { client: reqwest::Client, url: Secret, token: Option<Secret>, secret: Option<Secret> },
    Email(Box<EmailSender>),
}

/// A channel's way to deliver.
#[derive(Debug)]
pub struct Sender {
    name: String,
    kind: NotifyKind,
    language: NotifyLanguage,
    transport: Transport,
}

impl Sender {
    /// Reads the channel's secret files and builds its client.
    ///
    /// # Errors
    /// [`NotifyError`] naming the channel and the field.
    pub fn open(config: &Config, channel: &Notify) -> Result<Self, NotifyError> {
        let timeout = Duration::from_secs(channel.timeout_secs.max(1));
        let transport = if channel.kind == NotifyKind::Email {
            let password = read_secret(config, channel, "password_file", channel.password_file.as_ref())?;
            Transport::Email(Box::new(EmailSender::new(config, channel, password, timeout)?))
        } else {
            // reqwest is built without a default TLS provider: https uses rustls with ring.
            let _ = rustls::crypto::ring::default_provider().install_default();
            let client = reqwest::Client::builder()
                .timeout(timeout)
                .connect_timeout(timeout)
                // A redirect would resend the alert (and the token) elsewhere.
                .redirect(reqwest::redirect::Policy::none())
                .build()
                .map_err(|e| NotifyError::Client {
                    channel: channel.name.clone(),
                    message: e.without_url().to_string(),
                })?;
            let url = read_secret(config, channel, "url_file", channel.url_file.as_ref())?
                .ok_or_else(|| NotifyError::Client { channel: channel.name.clone(), message: "no url_file".into() })?;
            Transport::Http {
                client,
                url,
                token: read_secret(config, channel, "token_file", channel.token_file.as_ref())?,
                secret: read_secret(config, channel, "secret_file", channel.secret_file.as_ref())?,
            }
        };
        Ok(Self { name: channel.name.clone(), kind: channel.kind, language: channel.language, transport })
    }

    /// One attempt to deliver `outgoing`.
    ///
    /// # Errors
    /// [`SendError`]: connect, timeout, status (non-2xx), answer (robot errcode, garbage, too
    /// large), smtp.
    pub async fn send(&self, outgoing: Outgoing<'_>, now_ms: i64) -> Result<(), SendError> {
        let rendered = || match outgoing {
            Outgoing::One(payload) => render::render(payload, self.language),
            Outgoing::Digest { payloads, reason } => render::digest(payloads, reason, self.language),
        };
        match &self.transport {
            Transport::Email(email) => email.send(&rendered()).await,
            Transport::Http { client, url, token, secret } => {
                let (body, url) = match self.kind {
                    NotifyKind::Webhook => (self.webhook_body(outgoing), url.0.clone()),
                    NotifyKind::Dingtalk => {
                        let url = match secret {
                            Some(secret) => robot::dingtalk_signed_url(&url.0, &secret.0, now_ms),
                            None => url.0.clone(),
                        };
                        (robot::robot_body(self.kind, &rendered()), url)
                    }
                    NotifyKind::Wecom | NotifyKind::Email => (robot::robot_body(self.kind, &rendered()), url.0.clone()),
                };
                let body = serde_json::to_vec(&body).map_err(|e| SendError::new("render", e.to_string()))?;
                let mut request = client.post(url).header("content-type", "application/json").body(body);
                if let Some(token) = token {
                    request = request.bearer_auth(&token.0);
                }
                let response = request.send().await.map_err(request_error)?;
                self.check_answer(response).await
            }
        }
    }

    /// The generic webhook posts the alert JSON as it is, with the channel's name; a digest
    /// posts the alerts in a list.
    fn webhook_body(&self, outgoing: Outgoing<'_>) -> Value {
        match outgoing {
            Outgoing::One(payload) => {
                let mut body = payload.clone();
                if let Some(object) = body.as_object_mut() {
                    object.insert("channel".to_owned(), Value::String(self.name.clone()));
                }
                body
            }
            Outgoing::Digest { payloads, reason } => {
                json!({ "channel": self.name, "digest": reason.as_str(), "messages": payloads })
            }
        }
    }

    async fn check_answer(&self, mut response: reqwest::Response) -> Result<(), SendError> {
        let status = response.status();
        let webhook = self.kind == NotifyKind::Webhook;
        if status.is_success() && webhook {
            return Ok(()); // The status is the answer; the body is not read.
        }
        let mut body = Vec::new();
        while let Some(chunk) = response.chunk().await.map_err(request_error)? {
            if body.len() + chunk.len() > MAX_ANSWER_BYTES {
                return Err(SendError::new(
                    "answer",
                    format!("HTTP {status}, answer larger than {MAX_ANSWER_BYTES} bytes"),
                ));
            }
            body.extend_from_slice(&chunk);
        }
        if !status.is_success() {
            let start = String::from_utf8_lossy(&body[..body.len().min(300)]).into_owned();
            return Err(SendError::new("status", format!("HTTP {status}: {start:?}")));
        }
        robot::robot_accepted(&body).map_err(|message| SendError::new("answer", message))
    }
}

/// reqwest's errors, without the URL (it carries the token), with their innermost cause.
fn request_error(error: reqwest::Error) -> SendError {
    let kind = if error.is_timeout() { "timeout" } else { "connect" };
    let error = error.without_url();
    let mut message = error.to_string();
    let mut source = std::error::Error::source(&error);
    let mut innermost = None;
    while let Some(cause) = source {
        innermost = Some(cause.to_string());
        source = cause.source();
    }
    if let Some(cause) = innermost {
        message = format!("{message}: {cause}");
    }
    SendError::new(kind, message)
}
