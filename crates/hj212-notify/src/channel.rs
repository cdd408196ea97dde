//! One channel's loop: the outbox from the channel's own position, in order, at least once.
//!
//! - Each message is decided ([`Route::decide`]): skipped (not an alert, not routed here,
//!   inhibited), held (quiet hours, not critical) or sent.
//! - A send is retried with backoff (1 s doubling to `max_backoff_secs`) until it succeeds:
//!   the channel holds its messages meanwhile, on disk, and other consumers go on. Its position
//!   is recorded every second while messages flow and whenever it is idle or stops, so a
//!   crash resends at most a second's messages.
//! - Bound: at most `max_pending` outbox messages wait for the channel. While it fails, the
//!   oldest beyond that are given up for this channel (counted `given_up`, logged), so the
//!   outbox stays bounded when a robot is gone for good. Example: max_pending 10,000, the
//!   robot down for a week of 2,000 messages a day: the first 4,000 are given up.
//! - Rate: at most `max_per_minute` sends in any 60 s; when the next one is due and none is
//!   free, the channel waits for a free one and then sends everything waiting (up to a page
//!   of 100) as one digest instead of dropping anything.
//! - Quiet hours: held messages stay in the outbox (the persisted position stays before the
//!   first of them) and go as one digest when the quiet hours end; critical ones go at
//!   once. After a restart during quiet hours, critical ones after the first held message
//!   are sent again (at least once).

use std::collections::VecDeque;
use std::time::Duration;

use hj212_alerts::{AlertsError, Queued, SqliteOutbox};
use serde_json::Value;
use tokio::sync::watch;
use tokio::time::{Instant, sleep};
use tokio_util::sync::CancellationToken;

use crate::ChannelStatus;
use crate::metrics::{ChannelMetrics, Outcome};
use crate::render::DigestReason;
use crate::route::{Decision, Route, Skip, beijing_minute};
use crate::sender::{Outgoing, SendError, Sender};

/// Outbox messages read at a time (and the most one rate-limit digest carries).
const PAGE: usize = 100;
const INITIAL_BACKOFF: Duration = Duration::from_secs(1);
/// Pause before the outbox is tried again after an SQLite error.
const OUTBOX_RETRY: Duration = Duration::from_secs(2);
/// How often an idle channel looks at the clock (the end of quiet hours) and its backlog.
const IDLE_TICK: Duration = Duration::from_secs(1);
const RATE_WINDOW: Duration = Duration::from_secs(60);
/// The position is recorded at least this often while messages flow, and whenever the channel
/// is idle or stops: a crash resends at most this long's messages (at least once).
const PERSIST_EVERY: Duration = Duration::from_secs(1);

/// A channel ready to run: its config, route and way to deliver.
#[derive(Debug)]
pub struct Channel {
    pub(crate) config: hj212_config::Notify,
    pub(crate) route: Route,
    pub(crate) sender: Sender,
}

/// What the loop does when it is told to stop.
struct Stopped;

/// Waits `wait`, unless told to stop (a free function: the runner holds an SQLite
/// connection, which must not be shared across an await).
async fn pause(shutdown: &CancellationToken, wait: Duration) -> Result<(), Stopped> {
    tokio::select! {
        () = sleep(wait) => Ok(()),
        () = shutdown.cancelled() => Err(Stopped),
    }
}

pub(crate) struct Runner {
    channel: Channel,
    /// `None` only while an outbox call runs on the blocking pool.
    outbox: Option<SqliteOutbox>,
    /// The last message dealt with (sent, skipped or held).
    cursor: u64,
    /// Messages held for the end of quiet hours, in order.
    held: Vec<(u64, Value)>,
    /// When the last sends went (at most `max_per_minute`).
    sends: VecDeque<Instant>,
    /// The next page goes as one digest (the rate limit was reached).
    digest_next: bool,
    /// When the position was last recorded.
    persisted_at: Instant,
    newest: watch::Receiver<u64>,
    status: watch::Sender<ChannelStatus>,
    shutdown: CancellationToken,
    metrics: ChannelMetrics,
}

impl Runner {
    pub(crate) fn open(
        channel: Channel,
        outbox: SqliteOutbox,
        newest: watch::Receiver<u64>,
        status: watch::Sender<ChannelStatus>,
        shutdown: CancellationToken,
    ) -> Self {
        let metrics = ChannelMetrics::new(&channel.config.name, channel.config.kind.as_str());
        Self {
            cursor: outbox.position(),
            outbox: Some(outbox),
            channel,
            held: Vec::new(),
            sends: VecDeque::new(),
            digest_next: false,
            persisted_at: Instant::now(),
            newest,
            status,
            shutdown,
            metrics,
        }
    }

    fn name(&self) -> &str {
        &self.channel.config.name
    }

    /// Runs an outbox call on the blocking pool (SQLite blocks), retrying SQLite errors.
    async fn db<R: Send + 'static>(
        &mut self,
        f: impl Fn(&mut SqliteOutbox) -> Result<R, AlertsError> + Send + Clone + 'static,
    ) -> Result<R, Stopped> {
        loop {
            let Some(mut outbox) = self.outbox.take() else { return Err(Stopped) };
            let call = f.clone();
            let joined = tokio::task::spawn_blocking(move || {
                let result = call(&mut outbox);
                (outbox, result)
            })
            .await;
            let Ok((outbox, result)) = joined else { return Err(Stopped) };
            self.outbox = Some(outbox);
            match result {
                Ok(value) => return Ok(value),
                Err(error) => {
                    tracing::error!(channel = %self.name(), %error, "notification outbox unusable; retrying");
                    self.metrics.attempt_error("outbox");
                    pause(&self.shutdown, OUTBOX_RETRY).await?;
                }
            }
        }
    }

    pub(crate) async fn run(mut self) {
        tracing::info!(channel = %self.name(), kind = self.channel.config.kind.as_str(), position = self.cursor, "notification channel started");
        while self.step().await.is_ok() {}
        // Whatever was dealt with is recorded, so a restart does not repeat it.
        let _ = self.persist().await;
    }

    /// One page of the outbox, or a wait when there is none.
    async fn step(&mut self) -> Result<(), Stopped> {
        if self.shutdown.is_cancelled() {
            return Err(Stopped);
        }
        self.enforce_bound().await?;
        let quiet = self.channel.route.quiet_at(beijing_minute(hj212_archive::now_ms()));
        if !self.held.is_empty() && !quiet {
            self.flush_held().await?;
        }
        let cursor = self.cursor;
        let page = self.db(move |o| o.pending(cursor, PAGE)).await?;
        if page.is_empty() {
            self.persist().await?;
            self.show_backlog().await?;
            tokio::select! {
                _ = self.newest.changed() => {},
                () = sleep(IDLE_TICK) => {},
                () = self.shutdown.cancelled() => return Err(Stopped),
            }
            return Ok(());
        }
        let minute = beijing_minute(hj212_archive::now_ms());
        let decided: Vec<(u64, Decision, Value)> = page.into_iter().map(|m| self.decide(&m, minute)).collect();
        if std::mem::take(&mut self.digest_next) {
            return self.send_digest(decided).await;
        }
        for (seq, decision, payload) in decided {
            if seq <= self.cursor {
                continue; // given up by the bound while an earlier one was retried
            }
            match decision {
                Decision::Send if !self.rate_room() => {
                    // The rest goes as one digest once a send is free (re-read from here).
                    self.digest_next = true;
                    self.persist().await?;
                    self.wait_for_room().await?;
                    return Ok(());
                }
                Decision::Send => {
                    if self.deliver(Outgoing::One(&payload), seq).await? {
                        self.metrics.messages(Outcome::Sent).increment(1);
                    }
                    self.cursor = self.cursor.max(seq);
                    self.persist_soon().await?;
                }
                other => {
                    self.not_sent(seq, other, payload);
                    self.cursor = self.cursor.max(seq);
                }
            }
        }
        self.persist_soon().await
    }

    fn decide(&self, message: &Queued, minute: u16) -> (u64, Decision, Value) {
        let payload: Value = serde_json::from_slice(&message.payload).unwrap_or(Value::Null);
        (message.seq, self.channel.route.decide(&message.topic, &payload, minute), payload)
    }

    /// A skipped or held message.
    fn not_sent(&mut self, seq: u64, decision: Decision, payload: Value) {
        match decision {
            Decision::Skip(Skip::Route) => self.metrics.messages(Outcome::SkippedRoute).increment(1),
            Decision::Skip(Skip::Inhibited) => self.metrics.messages(Outcome::SkippedInhibited).increment(1),
            Decision::Hold => {
                self.held.push((seq, payload));
                self.status.send_modify(|s| s.held = self.held.len());
            }
            Decision::Skip(Skip::NotAlert) | Decision::Send => {}
        }
    }

    /// Everything sendable in `decided` as one message (one item: as itself).
    async fn send_digest(&mut self, decided: Vec<(u64, Decision, Value)>) -> Result<(), Stopped> {
        let last = decided.last().map_or(self.cursor, |(seq, _, _)| *seq);
        let mut due = Vec::new();
        for (seq, decision, payload) in decided {
            if decision == Decision::Send { due.push(payload) } else { self.not_sent(seq, decision, payload) }
        }
        let delivered = match due.as_slice() {
            [] => false,
            [one] => self.deliver(Outgoing::One(one), last).await?,
            many => self.deliver(Outgoing::Digest { payloads: many, reason: DigestReason::RateLimit }, last).await?,
        };
        if delivered {
            let outcome = if due.len() == 1 { Outcome::Sent } else { Outcome::Digested };
            self.metrics.messages(outcome).increment(due.len() as u64);
        }
        self.cursor = self.cursor.max(last);
        self.persist().await
    }

    /// The quiet hours are over: what was held goes as one digest. The held messages stay held
    /// until it is delivered: a stop meanwhile records the position before them.
    async fn flush_held(&mut self) -> Result<(), Stopped> {
        if !self.rate_room() {
            self.wait_for_room().await?;
        }
        let last = self.held.last().map_or(0, |(seq, _)| *seq);
        let payloads: Vec<Value> = self.held.iter().map(|(_, p)| p.clone()).collect();
        let outgoing = match payloads.as_slice() {
            [one] => Outgoing::One(one),
            many => Outgoing::Digest { payloads: many, reason: DigestReason::QuietHours },
        };
        // false: the bound gave them up meanwhile (counted there).
        if self.deliver(outgoing, last).await? {
            let outcome = if payloads.len() == 1 { Outcome::Sent } else { Outcome::Digested };
            self.metrics.messages(outcome).increment(payloads.len() as u64);
        }
        self.held.clear();
        self.status.send_modify(|s| s.held = 0);
        self.persist().await
    }

    fn rate_room(&mut self) -> bool {
        let now = Instant::now();
        while self.sends.front().is_some_and(|t| now.duration_since(*t) >= RATE_WINDOW) {
            self.sends.pop_front();
        }
        self.sends.len() < self.channel.config.rate_per_minute() as usize
    }

    async fn wait_for_room(&mut self) -> Result<(), Stopped> {
        while !self.rate_room() {
            let oldest = self.sends.front().copied().unwrap_or_else(Instant::now);
            pause(&self.shutdown, (oldest + RATE_WINDOW).saturating_duration_since(Instant::now())).await?;
        }
        Ok(())
    }

    /// Sends until it succeeds (true), or until the bound gives the message up (false).
    async fn deliver(&mut self, outgoing: Outgoing<'_>, last_seq: u64) -> Result<bool, Stopped> {
        let max_backoff = Duration::from_secs(self.channel.config.max_backoff_secs.max(1));
        let mut backoff = INITIAL_BACKOFF;
        loop {
            let attempt = self.channel.sender.send(outgoing, hj212_archive::now_ms()).await;
            match attempt {
                Ok(()) => {
                    self.sends.push_back(Instant::now());
                    self.working();
                    return Ok(true);
                }
                Err(error) => self.failing(&error, backoff),
            }
            pause(&self.shutdown, backoff).await?;
            backoff = (backoff * 2).min(max_backoff);
            self.enforce_bound().await?;
            self.show_backlog().await?;
            if self.outbox.as_ref().is_some_and(|o| o.position() >= last_seq) {
                return Ok(false);
            }
        }
    }

    fn working(&self) {
        self.metrics.up.set(1.0);
        self.status.send_if_modified(|s| {
            let changed = !s.up;
            if changed {
                tracing::info!(channel = %s.name, "notification channel delivers again");
            }
            (s.up, s.failing_since_ms, s.last_error) = (true, None, None);
            changed
        });
    }

    fn failing(&self, error: &SendError, retry_in: Duration) {
        self.metrics.attempt_error(error.kind);
        self.metrics.up.set(0.0);
        tracing::warn!(channel = %self.name(), %error, ?retry_in, "notification not delivered; retrying");
        self.status.send_modify(|s| {
            s.up = false;
            s.failing_since_ms.get_or_insert_with(hj212_archive::now_ms);
            s.last_error = Some(error.to_string());
        });
    }

    /// Updates the pending gauge and status (idle, and between retries while failing).
    async fn show_backlog(&mut self) -> Result<(), Stopped> {
        let backlog = self.db(SqliteOutbox::backlog).await?;
        self.metrics.pending.set(backlog as f64);
        self.status.send_modify(|s| s.pending = backlog);
        Ok(())
    }

    /// Gives up the oldest messages beyond `max_pending` (and any held ones among them).
    async fn enforce_bound(&mut self) -> Result<(), Stopped> {
        let max = self.channel.config.max_pending;
        let given_up = self.db(move |o| o.keep_newest(max)).await?;
        if given_up == 0 {
            return Ok(());
        }
        let position = self.outbox.as_ref().map_or(0, SqliteOutbox::position);
        tracing::warn!(channel = %self.name(), given_up, max_pending = max, "notification channel behind: oldest messages given up");
        self.metrics.messages(Outcome::GivenUp).increment(given_up);
        self.held.retain(|(seq, _)| *seq > position);
        self.cursor = self.cursor.max(position);
        Ok(())
    }

    /// Records the position if the last record is [`PERSIST_EVERY`] old: one SQLite commit
    /// per second under load, not one per message (it would compete with the alert engine's).
    async fn persist_soon(&mut self) -> Result<(), Stopped> {
        if self.persisted_at.elapsed() < PERSIST_EVERY {
            return Ok(());
        }
        self.persist().await
    }

    /// Records the position: the cursor, or just before the first held message.
    async fn persist(&mut self) -> Result<(), Stopped> {
        self.persisted_at = Instant::now();
        let position = self.held.first().map_or(self.cursor, |(seq, _)| seq - 1);
        if self.outbox.as_ref().is_some_and(|o| o.position() >= position) {
            return Ok(());
        }
        self.db(move |o| o.delivered(position)).await?;
        self.status.send_modify(|s| s.position = position);
        Ok(())
    }
}
