//! hj212d notifications to people: alert messages from the alert engine's persistent outbox
//! to `[[notify]]` channels (a JSON webhook, DingTalk and WeCom group robots, e-mail), each
//! from its own position (ordered, at least once, held while the channel is down), routed by
//! site, kind, severity and state, with quiet hours and a rate limit that merges rather than
//! drops. No MQTT here: the MQTT publisher is another consumer of the same outbox.

mod channel;
mod email;
pub mod metrics;
pub mod render;
pub mod robot;
pub mod route;
mod sender;

use std::path::PathBuf;

use hj212_alerts::{AlertsError, SqliteOutbox};

pub use channel::Channel;
pub use route::{Decision, Route, Skip};
pub use sender::{Outgoing, SendError, Sender};
use tokio::sync::watch;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

/// A channel cannot be set up.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum NotifyError {
    /// A secret file (URL, token, signing secret, password, CA) cannot be read.
    #[error("notify {channel}: {field}: cannot read {path}: {source}")]
    Secret { channel: String, field: &'static str, path: PathBuf, source: std::io::Error },
    #[error("notify {channel}: {message}")]
    Client { channel: String, message: String },
    #[error("notify: {0}")]
    Outbox(#[from] hj212_alerts::AlertsError),
}

/// A channel as `/readyz` and `/api/v1/notify` show it (never its URL or tokens).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ChannelStatus {
    pub name: String,
    pub kind: &'static str,
    /// The last attempt succeeded (or none was needed yet).
    pub up: bool,
    /// Every attempt failing since (Unix ms), with the last error.
    pub failing_since_ms: Option<i64>,
    pub last_error: Option<String>,
    /// The outbox position recorded for the channel.
    pub position: u64,
    /// Outbox messages after it (updated while idle).
    pub pending: u64,
    /// Messages held for the end of quiet hours.
    pub held: usize,
}

impl Channel {
    /// Reads the channel's secret files and builds its client.
    ///
    /// # Errors
    /// [`NotifyError`] naming the channel and the field.
    pub fn open(config: &hj212_config::Config, channel: &hj212_config::Notify) -> Result<Self, NotifyError> {
        Ok(Self { config: channel.clone(), route: Route::from_config(channel), sender: Sender::open(config, channel)? })
    }
}

/// The consumer names the channels take in the outbox (their config names).
pub fn consumers(config: &hj212_config::Config) -> Vec<&str> {
    config.notify.iter().map(|n| n.name.as_str()).collect()
}

/// A running channel: its task and status.
#[derive(Debug)]
pub struct Running {
    pub task: JoinHandle<()>,
    pub status: watch::Receiver<ChannelStatus>,
}

/// Starts every `[[notify]]` channel on its outbox, as `open_outbox` opens it for the
/// channel's name (the consumers must be registered). `newest` wakes them when the engine queues a message. They stop on `shutdown`,
/// recording their positions.
///
/// # Errors
/// [`NotifyError`] when a channel's secrets or its outbox position cannot be read.
pub fn spawn(
    config: &hj212_config::Config,
    open_outbox: &dyn Fn(&str) -> Result<SqliteOutbox, AlertsError>,
    newest: &watch::Receiver<u64>,
    shutdown: &CancellationToken,
) -> Result<Vec<Running>, NotifyError> {
    metrics::describe();
    let mut running = Vec::new();
    for notify in &config.notify {
        let channel = Channel::open(config, notify)?;
        let initial = ChannelStatus {
            name: notify.name.clone(),
            kind: notify.kind.as_str(),
            up: true,
            ..ChannelStatus::default()
        };
        let (status_tx, status) = watch::channel(initial);
        let outbox = open_outbox(&notify.name).map_err(NotifyError::Outbox)?;
        let runner = channel::Runner::open(channel, outbox, newest.clone(), status_tx, shutdown.clone());
        running.push(Running { task: tokio::spawn(runner.run()), status });
    }
    Ok(running)
}
