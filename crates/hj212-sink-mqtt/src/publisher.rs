//! The publisher loop: outbox → rumqttc → broker, one connection at a time.
//!
//! How order and completeness are guaranteed (at least once, never reordered):
//!
//! - **One fresh rumqttc `EventLoop` per connection, clean session.** rumqttc keeps its own
//!   copies of unacknowledged publishes and, after an error, moves them and whatever sits in
//!   its request channel to a `pending` queue that it sends *before* new requests on the next
//!   connection (or drops, when the broker has no session). Mixing that queue with our own
//!   re-sends could reorder or duplicate out of order, and some of its state (a pending
//!   packet-id collision, buffered events) survives `clean()`. So no rumqttc state crosses a
//!   connection: when a connection ends, its event loop, request channel and events are
//!   dropped whole, and with `clean_session = true` the broker keeps no session for us either.
//!   The outbox is the only memory that spans connections.
//! - **Within a connection, order is the wire order.** Messages are handed to rumqttc in seq
//!   order through its FIFO request channel; rumqttc writes them in that order (a packet-id
//!   collision, possible only if the broker acked out of order, stalls *all* later requests
//!   until it clears), over one TCP stream, and the broker forwards them in order.
//! - **Resume from the first unacknowledged message.** The [`Window`] turns PUBACKs into the
//!   contiguous acknowledged prefix; only that prefix is reported with `Outbox::delivered`.
//!   A new connection starts reading the outbox right after it, so everything after the
//!   prefix is re-sent in order. Example: PUBACKs for 1, 2 and 4, then the link drops:
//!   `delivered(2)`, and the next connection sends 3, 4, 5 ... (4 twice; duplicates are
//!   allowed, loss and reordering are not).
//! - **The event loop polls in its own task** and is never cancelled mid-poll (a cancelled
//!   `poll` can drop a packet that rumqttc already counted as sent); it is aborted only
//!   when its connection is over and all of its state is discarded anyway.
//!
//! Memory: at most `max_in_flight` messages are handed to rumqttc and not yet acknowledged;
//! the outbox is read in pages of at most that many, when the window is half empty.

use std::time::Duration;

use hj212_config::BrokerUrl;
use rumqttc::{AsyncClient, Event, EventLoop, MqttOptions, Outgoing, Packet, QoS};
use tokio::sync::{mpsc, watch};
use tokio::task::JoinHandle;
use tokio::time::{Instant, sleep, sleep_until, timeout, timeout_at};
use tokio_util::sync::CancellationToken;

use crate::metrics::PublisherMetrics;
use crate::settings::MAX_PACKET_BYTES;
use crate::window::Window;
use crate::{MqttError, MqttSettings, Outbox, OutboxError, OutboxMessage};

/// What the publisher reports, for /readyz and metrics.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct PublisherStatus {
    /// A broker connection is up (CONNACK received).
    pub connected: bool,
    /// Every outbox message up to this seq is acknowledged by the broker and reported to the
    /// outbox (0 until the first acknowledgement of this run).
    pub delivered_seq: u64,
    /// The most recent connection or outbox error, cleared when the publisher recovers.
    pub last_error: Option<String>,
}

/// First reconnect delay; doubled per failure up to `max_backoff_secs`, with jitter.
const INITIAL_BACKOFF: Duration = Duration::from_millis(500);
/// How long PUBACKs are gathered before `Outbox::delivered` is called (one write per burst).
const DELIVERED_DELAY: Duration = Duration::from_millis(100);
/// Pause before the outbox is tried again after an error.
const OUTBOX_RETRY: Duration = Duration::from_secs(2);
/// At shutdown: how long PUBACKs for messages in flight are awaited, then DISCONNECT.
const DRAIN_TIMEOUT: Duration = Duration::from_secs(2);
const DISCONNECT_TIMEOUT: Duration = Duration::from_millis(500);

/// Drains the outbox to the broker until `shutdown`, in seq order, at least once, QoS 1.
/// `newest` carries the newest outbox seq written (a wake-up: when it changes, there is more
/// to send). On shutdown: stops publishing new messages, waits briefly (<= 2 s) for PUBACKs
/// of in-flight ones, disconnects, returns.
///
/// # Errors
/// Invalid settings (checked first, before any connection), or the outbox task panicking.
/// Broker and outbox errors are retried forever.
pub async fn run_publisher(
    settings: MqttSettings,
    outbox: impl Outbox,
    newest: watch::Receiver<u64>,
    status: watch::Sender<PublisherStatus>,
    shutdown: CancellationToken,
) -> Result<(), MqttError> {
    let broker = settings.broker()?;
    let options = settings.options(&broker)?;
    let metrics = PublisherMetrics::default();
    metrics.connected.set(0.0);
    let mut publisher = Publisher {
        settings,
        broker,
        options,
        outbox: Some(outbox),
        newest,
        newest_open: true,
        status,
        shutdown,
        window: Window::default(),
        reported: 0,
        metrics,
    };
    publisher.run().await
}

/// What the event-loop task tells the publisher.
#[derive(Debug)]
enum LoopEvent {
    Connected,
    /// A queued publish went on the wire with this packet id.
    Sent(u16),
    PubAck(u16),
    Disconnected,
    /// The connection failed or ended; the task has stopped.
    Lost(String),
}

/// Polls one connection's event loop until it fails; never cancelled mid-poll.
async fn drive(mut eventloop: EventLoop, events: mpsc::Sender<LoopEvent>) {
    loop {
        let event = match eventloop.poll().await {
            Ok(Event::Incoming(Packet::ConnAck(_))) => LoopEvent::Connected,
            Ok(Event::Incoming(Packet::PubAck(ack))) => LoopEvent::PubAck(ack.pkid),
            Ok(Event::Outgoing(Outgoing::Publish(pkid))) => LoopEvent::Sent(pkid),
            Ok(Event::Outgoing(Outgoing::Disconnect)) => LoopEvent::Disconnected,
            Ok(_) => continue,
            Err(error) => LoopEvent::Lost(error.to_string()),
        };
        let last = matches!(event, LoopEvent::Lost(_) | LoopEvent::Disconnected);
        if events.send(event).await.is_err() || last {
            return;
        }
    }
}

/// Aborts the event-loop task when its connection is over, however that happens.
struct AbortOnDrop(JoinHandle<()>);

impl Drop for AbortOnDrop {
    fn drop(&mut self) {
        self.0.abort();
    }
}

/// What one outbox read found.
enum Fill {
    /// The page was full: there may be more.
    More,
    CaughtUp,
    /// The outbox failed (logged): retry after a pause.
    OutboxFailed,
}

/// How one connection ended.
enum Ended {
    Shutdown,
    Lost { error: String, was_connected: bool },
}

struct Publisher<O> {
    settings: MqttSettings,
    broker: BrokerUrl,
    options: MqttOptions,
    /// `None` only while an outbox call runs on the blocking pool.
    outbox: Option<O>,
    newest: watch::Receiver<u64>,
    newest_open: bool,
    status: watch::Sender<PublisherStatus>,
    shutdown: CancellationToken,
    window: Window,
    /// The last position given to `Outbox::delivered`.
    reported: u64,
    metrics: PublisherMetrics,
}

impl<O: Outbox> Publisher<O> {
    async fn run(&mut self) -> Result<(), MqttError> {
        let max_backoff = Duration::from_secs(self.settings.mqtt.max_backoff_secs);
        let mut backoff = INITIAL_BACKOFF;
        loop {
            let (error, was_connected) = match self.connection().await? {
                Ended::Shutdown => break,
                Ended::Lost { error, was_connected } => (error, was_connected),
            };
            self.metrics.connection_errors.increment(1);
            self.metrics.connected.set(0.0);
            self.set_status(|s| {
                s.connected = false;
                s.last_error = Some(error.clone());
            });
            if was_connected {
                backoff = INITIAL_BACKOFF;
            }
            let wait = jitter(backoff);
            backoff = (backoff * 2).min(max_backoff);
            if was_connected {
                tracing::warn!(broker = %self.broker, %error, retry_in = ?wait, "MQTT broker connection lost");
            } else {
                tracing::warn!(broker = %self.broker, %error, retry_in = ?wait, "MQTT broker connection failed");
            }
            // Whatever was acknowledged before the loss is reported now, not after the outage.
            self.flush_delivered().await?;
            tokio::select! {
                () = sleep(wait) => {},
                () = self.shutdown.cancelled() => break,
            }
        }
        self.flush_delivered().await?;
        self.metrics.connected.set(0.0);
        self.set_status(|s| s.connected = false);
        Ok(())
    }

    /// One connection, from connecting to its loss or shutdown.
    async fn connection(&mut self) -> Result<Ended, MqttError> {
        self.window.reset(self.window.acked());
        let capacity = usize::from(self.settings.mqtt.max_in_flight) + 1;
        let (client, eventloop) = AsyncClient::new(self.options.clone(), capacity);
        let (events_tx, mut events) = mpsc::channel(2 * capacity + 8);
        let _driver = AbortOnDrop(tokio::spawn(drive(eventloop, events_tx)));
        let mut connected = false;
        // The outbox may hold messages after the window's read position.
        let mut more = true;
        let mut outbox_retry: Option<Instant> = None;
        let mut flush_at: Option<Instant> = None;
        let low_water = usize::from(self.settings.mqtt.max_in_flight) / 2;
        loop {
            if connected && more && outbox_retry.is_none() && self.window.len() <= low_water {
                match self.fill(&client).await? {
                    Fill::More => more = true,
                    Fill::CaughtUp => more = false,
                    Fill::OutboxFailed => outbox_retry = Some(Instant::now() + OUTBOX_RETRY),
                }
            }
            if self.window.acked() > self.reported && flush_at.is_none() {
                flush_at = Some(Instant::now() + DELIVERED_DELAY);
            }
            let now = Instant::now();
            tokio::select! {
                biased;
                () = self.shutdown.cancelled() => {
                    self.drain(&client, &mut events, connected).await;
                    return Ok(Ended::Shutdown);
                }
                event = events.recv() => match event {
                    Some(LoopEvent::Connected) => {
                        connected = true;
                        more = true;
                        tracing::info!(broker = %self.broker, "connected to the MQTT broker");
                        self.metrics.connected.set(1.0);
                        self.set_status(|s| {
                            s.connected = true;
                            s.last_error = None;
                        });
                    }
                    Some(event) => {
                        if let Some(error) = self.on_event(event) {
                            return Ok(Ended::Lost { error, was_connected: connected });
                        }
                    }
                    None => return Ok(Ended::Lost { error: "event loop ended".into(), was_connected: connected }),
                },
                changed = self.newest.changed(), if self.newest_open => {
                    if changed.is_ok() {
                        self.newest.borrow_and_update();
                        more = true;
                    } else {
                        // The writer is gone; keep draining what the outbox holds.
                        self.newest_open = false;
                    }
                }
                () = sleep_until(outbox_retry.unwrap_or(now)), if outbox_retry.is_some() => outbox_retry = None,
                () = sleep_until(flush_at.unwrap_or(now)), if flush_at.is_some() => {
                    flush_at = (!self.flush_delivered().await?).then(|| Instant::now() + OUTBOX_RETRY);
                }
            }
        }
    }

    /// A PUBACK or a publish on the wire; returns the error if the connection is over.
    fn on_event(&mut self, event: LoopEvent) -> Option<String> {
        match event {
            LoopEvent::Sent(pkid) => self.window.sent(pkid),
            LoopEvent::PubAck(pkid) => {
                if self.window.puback(pkid) {
                    self.metrics.published.increment(1);
                }
            }
            LoopEvent::Connected => {}
            LoopEvent::Disconnected => return Some("disconnected".into()),
            LoopEvent::Lost(error) => return Some(error),
        }
        None
    }

    /// Reads the next page of the outbox and hands it to rumqttc.
    async fn fill(&mut self, client: &AsyncClient) -> Result<Fill, MqttError> {
        let limit = usize::from(self.settings.mqtt.max_in_flight) - self.window.len();
        let after = self.window.read_position();
        let mut page = match self.with_outbox(move |o| o.pending(after, limit)).await? {
            Ok(page) => {
                self.outbox_recovered();
                page
            }
            Err(error) => {
                self.outbox_failed(&error);
                return Ok(Fill::OutboxFailed);
            }
        };
        let full = page.len() >= limit;
        page.truncate(limit);
        for message in page {
            if message.seq <= self.window.read_position() {
                tracing::error!(
                    seq = message.seq,
                    after = self.window.read_position(),
                    "outbox returned an old seq; ignored"
                );
                continue;
            }
            let seq = message.seq;
            let topic = self.settings.full_topic(&message.topic);
            if let Some(reason) = unpublishable(&topic, &message) {
                tracing::error!(seq, %topic, %reason, "outbox message can never be published; skipped");
                self.metrics.rejected.increment(1);
                self.window.skipped(seq);
                continue;
            }
            if client.try_publish(topic, QoS::AtLeastOnce, message.retain, message.payload).is_err() {
                // The event loop has ended (its Lost event follows): this and the rest of the
                // page go out on the next connection.
                return Ok(Fill::More);
            }
            self.window.queued(seq);
        }
        Ok(if full { Fill::More } else { Fill::CaughtUp })
    }

    /// Reports the acknowledged prefix to the outbox (if it moved); `Ok(false)` if the outbox
    /// failed (logged; not fatal: the same or a later position is reported again).
    async fn flush_delivered(&mut self) -> Result<bool, MqttError> {
        let up_to = self.window.acked();
        if up_to <= self.reported {
            return Ok(true);
        }
        if let Err(error) = self.with_outbox(move |o| o.delivered(up_to)).await? {
            self.outbox_failed(&error);
            return Ok(false);
        }
        self.reported = up_to;
        self.metrics.delivered_seq.set(up_to as f64);
        self.set_status(|s| s.delivered_seq = up_to);
        self.outbox_recovered();
        Ok(true)
    }

    /// At shutdown: no new messages; wait briefly for PUBACKs of those in flight, then DISCONNECT.
    async fn drain(&mut self, client: &AsyncClient, events: &mut mpsc::Receiver<LoopEvent>, connected: bool) {
        if !connected {
            return;
        }
        let deadline = Instant::now() + DRAIN_TIMEOUT;
        while !self.window.is_empty() {
            match timeout_at(deadline, events.recv()).await {
                Ok(Some(event)) => {
                    if self.on_event(event).is_some() {
                        return;
                    }
                }
                Ok(None) | Err(_) => break,
            }
        }
        if !self.window.is_empty() {
            tracing::info!(in_flight = self.window.len(), "MQTT shutdown: unacknowledged messages stay in the outbox");
        }
        if client.try_disconnect().is_ok() {
            let disconnected = async {
                while let Some(event) = events.recv().await {
                    if matches!(event, LoopEvent::Disconnected | LoopEvent::Lost(_)) {
                        break;
                    }
                }
            };
            let _ = timeout(DISCONNECT_TIMEOUT, disconnected).await;
        }
    }

    /// Runs one blocking outbox call on the blocking pool. The outer error is fatal (the
    /// outbox was lost with a panicking task); the inner one is the outbox's own.
    async fn with_outbox<T: Send + 'static>(
        &mut self,
        call: impl FnOnce(&mut O) -> Result<T, OutboxError> + Send + 'static,
    ) -> Result<Result<T, OutboxError>, MqttError> {
        let Some(mut outbox) = self.outbox.take() else {
            return Err(OutboxError("outbox unavailable after an earlier failure".into()).into());
        };
        let task = tokio::task::spawn_blocking(move || {
            let result = call(&mut outbox);
            (outbox, result)
        });
        match task.await {
            Ok((outbox, result)) => {
                self.outbox = Some(outbox);
                Ok(result)
            }
            Err(error) => Err(OutboxError(format!("outbox call failed: {error}")).into()),
        }
    }

    fn outbox_failed(&self, error: &OutboxError) {
        tracing::error!(%error, retry_in = ?OUTBOX_RETRY, "MQTT publisher cannot use the outbox");
        self.metrics.outbox_errors.increment(1);
        self.set_status(|s| s.last_error = Some(error.to_string()));
    }

    /// Clears an outbox error from the status once the outbox works again.
    fn outbox_recovered(&self) {
        self.set_status(|s| {
            if s.last_error.as_deref().is_some_and(|e| e.starts_with("outbox")) {
                s.last_error = None;
            }
        });
    }

    fn set_status(&self, change: impl FnOnce(&mut PublisherStatus)) {
        self.status.send_if_modified(|status| {
            let before = status.clone();
            change(status);
            *status != before
        });
    }
}

/// Why a message can never be published (so it must not block the ones after it).
fn unpublishable(topic: &str, message: &OutboxMessage) -> Option<String> {
    if topic.contains(['+', '#', '\0']) {
        return Some("the topic contains an MQTT wildcard or NUL".into());
    }
    if topic.len() > usize::from(u16::MAX) {
        return Some(format!("the topic is {} bytes, more than 65535", topic.len()));
    }
    // Fixed header (at most 5) + topic length (2) + packet id (2).
    let size = topic.len() + message.payload.len() + 9;
    (size > MAX_PACKET_BYTES).then(|| format!("the packet would be {size} bytes, more than {MAX_PACKET_BYTES}"))
}

/// Between 50 % and 100 % of `delay`, so many daemons do not reconnect in step.
fn jitter(delay: Duration) -> Duration {
    let nanos = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.subsec_nanos());
    delay / 2 + delay.mul_f64(f64::from(nanos % 1000) / 2000.0)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn message(payload: usize) -> OutboxMessage {
        OutboxMessage { seq: 1, topic: String::new(), payload: vec![b'x'; payload], retain: false }
    }

    #[test]
    fn unpublishable_messages_are_recognised() {
        assert_eq!(unpublishable("hj212/alerts/1/exceedance", &message(100)), None);
        assert!(unpublishable("hj212/alerts/+/x", &message(1)).is_some());
        assert!(unpublishable("hj212/alerts/#", &message(1)).is_some());
        assert!(unpublishable("hj212/big", &message(MAX_PACKET_BYTES)).is_some());
    }

    #[test]
    fn jitter_stays_between_half_and_full() {
        let delay = Duration::from_secs(8);
        let j = jitter(delay);
        assert!(j >= delay / 2 && j <= delay, "{j:?}");
    }
}
