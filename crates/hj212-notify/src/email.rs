//! E-mail over SMTP with lettre on tokio and rustls (ring): STARTTLS required (never
//! skipped when the server does not offer it), implicit TLS, or none (loopback only, checked
//! in the config). A private CA is added from `ca_file`.

use std::time::Duration;

use hj212_config::{Config, Notify, SmtpTls};
use lettre::message::Mailbox;
use lettre::message::header::ContentType;
use lettre::transport::smtp::authentication::Credentials;
use lettre::transport::smtp::client::{Certificate, Tls, TlsParameters};
use lettre::{AsyncSmtpTransport, AsyncTransport, Message, Tokio1Executor};

use crate::NotifyError;
use crate::render::Rendered;
use crate::sender::{Secret, SendError};

/// An SMTP client for one channel.
pub(crate) struct EmailSender {
    transport: AsyncSmtpTransport<Tokio1Executor>,
    from: Mailbox,
    to: Vec<Mailbox>,
    timeout: Duration,
}

impl std::fmt::Debug for EmailSender {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("EmailSender").field("from", &self.from).field("to", &self.to).finish_non_exhaustive()
    }
}

impl EmailSender {
    pub(crate) fn new(
        config: &Config,
        channel: &Notify,
        password: Option<Secret>,
        timeout: Duration,
    ) -> Result<Self, NotifyError> {
        let invalid = |message: String| NotifyError::Client { channel: channel.name.clone(), message };
        let server = channel.smtp_server.clone().unwrap_or_default();
        let tls = match channel.tls {
            SmtpTls::None => Tls::None,
            SmtpTls::Starttls | SmtpTls::Tls => {
                let _ = rustls::crypto::ring::default_provider().install_default();
                let mut builder = TlsParameters::builder(server.clone());
                if let Some(file) = &channel.ca_file {
                    let path = hj212_config::resolve_path(config, file);
                    let pem = std::fs::read(&path).map_err(|source| NotifyError::Secret {
                        channel: channel.name.clone(),
                        field: "ca_file",
                        path: path.clone(),
                        source,
                    })?;
                    let cert = Certificate::from_pem(&pem).map_err(|e| invalid(format!("ca_file: {e}")))?;
                    builder = builder.add_root_certificate(cert);
                }
                let parameters = builder.build_rustls().map_err(|e| invalid(format!("tls: {e}")))?;
                if channel.tls == SmtpTls::Tls { Tls::Wrapper(parameters) } else { Tls::Required(parameters) }
            }
        };
        let mut builder = AsyncSmtpTransport::<Tokio1Executor>::builder_dangerous(server)
            .port(channel.port())
            .tls(tls)
            .timeout(Some(timeout));
        if let (Some(user), Some(password)) = (&channel.username, password) {
            builder = builder.credentials(Credentials::new(user.clone(), password.0));
        }
        let parse = |field: &str, text: &str| -> Result<Mailbox, NotifyError> {
            text.parse().map_err(|e| invalid(format!("{field} {text:?}: {e}")))
        };
        let from = parse("from", channel.from.as_deref().unwrap_or(""))?;
        let to = channel.to.iter().map(|t| parse("to", t)).collect::<Result<_, _>>()?;
        Ok(Self { transport: builder.build(), from, to, timeout })
    }

    /// Sends the message as plain text (markdown reads well as it is) to every recipient.
    pub(crate) async fn send(&self, rendered: &Rendered) -> Result<(), SendError> {
        let mut message = Message::builder().from(self.from.clone()).subject(rendered.title.clone());
        for to in &self.to {
            message = message.to(to.clone());
        }
        let message = message
            .header(ContentType::TEXT_PLAIN)
            .body(rendered.text.clone())
            .map_err(|e| SendError::new("render", e.to_string()))?;
        // lettre's timeout is per socket operation; this bounds the whole conversation.
        match tokio::time::timeout(self.timeout * 3, self.transport.send(message)).await {
            Ok(Ok(_)) => Ok(()),
            Ok(Err(e)) => Err(SendError::new("smtp", e.to_string())),
            Err(_) => Err(SendError::new("timeout", format!("SMTP conversation over {:?}", self.timeout * 3))),
        }
    }
}
