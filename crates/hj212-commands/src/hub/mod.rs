//! The command channel: per site, a bounded queue of commands, one in flight, delivered on
//! the connection that last carried the site's MN, followed through 9011 and 9012 with the
//! standard's timeouts (HJ 212-2017 §6.2: resend after OverTime, at most ReCount times).
//!
//! Connections attach themselves as a site's carrier and receive [`Outgoing`] commands in a
//! small [`Mailbox`]; they build the frame (password, ST, version and SM4 keys are theirs), archive it,
//! write it, and report the answers they receive ([`Hub::reply`], [`Hub::upload`]). The timers
//! run in [`Hub::run`].

use std::collections::{HashMap, VecDeque};
use std::path::Path;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::Duration;

mod mailbox;

use hj212_config::Commands as Settings;
use hj212_proto::time::BeijingTime;
use tokio::sync::Notify;
use tokio_util::sync::CancellationToken;

pub use mailbox::{Carrier, MAILBOX_SIZE, Mailbox, Outgoing};

use crate::book::{Book, BookError};
use crate::command::{Command, Origin, State, exe_rtn_meaning, qn_rtn_meaning};
use crate::metrics::CommandMetrics;
use crate::spec::{CommandSpec, Exchange};

/// Why a command cannot be queued.
#[derive(Debug, thiserror::Error)]
pub enum SubmitError {
    #[error("site {mn} already has {queued} commands waiting (commands.queue_per_site)")]
    SiteFull { mn: String, queued: usize },
    #[error("{queued} commands are waiting across all sites (commands.queue_total)")]
    TotalFull { queued: usize },
    #[error(transparent)]
    Book(#[from] BookError),
}

/// Why a command cannot be cancelled.
#[derive(Debug, thiserror::Error)]
pub enum CancelError {
    #[error("no command {0}")]
    NotFound(String),
    #[error("command {id} is {state}: only a queued command can be cancelled")]
    NotQueued { id: String, state: &'static str },
    #[error(transparent)]
    Book(#[from] BookError),
}

/// What an answer from a logger matched.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Matched {
    /// It moved a command on.
    Command,
    /// No command of the site has that QN in flight (late, foreign, or a 1014's answer).
    UnknownQn,
}

#[derive(Debug, Default)]
struct SiteCommands {
    queue: VecDeque<Command>,
    active: Option<Active>,
    /// Places taken by submissions being written to the book.
    reserved: usize,
}

#[derive(Debug)]
struct Active {
    command: Command,
    deadline_ms: i64,
}

#[derive(Debug, Default)]
struct Inner {
    sites: HashMap<String, SiteCommands>,
    carriers: HashMap<String, Carrier>,
    next_id: u64,
    queued_total: usize,
    last_qn_ms: i64,
    finished_since_prune: usize,
}

/// The daemon's command channel.
#[derive(Debug)]
pub struct Hub {
    settings: Settings,
    inner: Mutex<Inner>,
    book: Mutex<Book>,
    wake: Notify,
    /// Commands in flight (sent or accepted): connections skip [`Hub::upload`] while it is 0.
    in_flight: AtomicUsize,
    metrics: CommandMetrics,
}

impl Hub {
    /// Opens `commands.sqlite`; commands left unfinished by the last run are queued again
    /// (one sent or accepted when the daemon stopped is sent again: its answer may be lost).
    ///
    /// # Errors
    /// [`BookError`] naming the file.
    pub fn open(path: &Path, settings: Settings) -> Result<Arc<Self>, BookError> {
        let book = Book::open(path)?;
        let mut inner = Inner { next_id: book.last_id()? + 1, ..Inner::default() };
        let unfinished = book.unfinished()?;
        let requeued = unfinished.len();
        for mut command in unfinished {
            if command.state != State::Queued {
                command.state = State::Queued;
                command.sends = 0;
                command.reason = Some("queued again: the daemon restarted while it was in flight".into());
                book.save(&command)?;
            }
            inner.queued_total += 1;
            inner.sites.entry(command.mn.clone()).or_default().queue.push_back(command);
        }
        if requeued > 0 {
            tracing::info!(commands = requeued, "commands left unfinished by the last run are queued again");
        }
        let hub = Self {
            settings,
            inner: Mutex::new(inner),
            book: Mutex::new(book),
            wake: Notify::new(),
            in_flight: AtomicUsize::new(0),
            metrics: CommandMetrics::default(),
        };
        hub.metrics.queued.set(requeued as f64);
        Ok(Arc::new(hub))
    }

    fn inner(&self) -> MutexGuard<'_, Inner> {
        self.inner.lock().unwrap_or_else(PoisonError::into_inner)
    }

    fn book(&self) -> MutexGuard<'_, Book> {
        self.book.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Queues a command for `mn` (checked by the caller against the site's config). An
    /// operator's command is on disk (fsynced) before this returns; the sweep's are written
    /// without waiting (it asks again after a crash). The book is written outside the hub's
    /// lock, so connections answering commands never wait for that fsync.
    ///
    /// # Errors
    /// [`SubmitError`] when the site's or the daemon's queue is full, or the book cannot be written.
    pub fn submit(
        &self,
        mn: &str,
        spec: CommandSpec,
        origin: Origin,
        ttl_ms: Option<i64>,
        now_ms: i64,
    ) -> Result<Command, SubmitError> {
        let id = self.reserve(mn)?;
        let ttl_ms = ttl_ms.unwrap_or_else(|| secs_ms(self.settings.ttl_secs));
        let command = Command {
            id,
            mn: mn.to_owned(),
            spec,
            origin,
            state: State::Queued,
            qn: None,
            qn_rtn: None,
            exe_rtn: None,
            sends: 0,
            records: 0,
            reason: None,
            created_ms: now_ms,
            sent_ms: None,
            accepted_ms: None,
            finished_ms: None,
            expires_ms: now_ms.saturating_add(ttl_ms),
        };
        let saved = match origin {
            Origin::Api | Origin::Upstream => self.book().insert(&command),
            Origin::Recovery => self.book().save(&command),
        };
        let mut inner = self.inner();
        let site = inner.sites.entry(mn.to_owned()).or_default();
        site.reserved -= 1;
        if let Err(error) = saved {
            inner.queued_total -= 1;
            return Err(error.into());
        }
        site.queue.push_back(command.clone());
        self.metrics.queued.set(inner.queued_total as f64);
        drop(inner);
        self.wake.notify_one();
        Ok(command)
    }

    /// A place in `mn`'s queue and a new id, or why there is none.
    fn reserve(&self, mn: &str) -> Result<u64, SubmitError> {
        let mut inner = self.inner();
        let queued = inner.sites.get(mn).map_or(0, |s| s.queue.len() + s.reserved);
        if queued >= self.settings.queue_per_site {
            CommandMetrics::refused("site_queue_full");
            return Err(SubmitError::SiteFull { mn: mn.to_owned(), queued });
        }
        if inner.queued_total >= self.settings.queue_total {
            CommandMetrics::refused("queue_full");
            return Err(SubmitError::TotalFull { queued: inner.queued_total });
        }
        let id = inner.next_id;
        inner.next_id += 1;
        inner.queued_total += 1;
        inner.sites.entry(mn.to_owned()).or_default().reserved += 1;
        Ok(id)
    }

    /// One command (from the book, so finished ones too).
    ///
    /// # Errors
    /// SQL errors.
    pub fn get(&self, id: u64) -> Result<Option<Command>, BookError> {
        self.book().get(id)
    }

    /// A site's commands, newest first.
    ///
    /// # Errors
    /// SQL errors.
    pub fn of_site(&self, mn: &str, limit: usize) -> Result<Vec<Command>, BookError> {
        self.book().of_site(mn, limit)
    }

    /// Whether `mn` has a command of `origin` queued or in flight.
    pub fn has_pending(&self, mn: &str, origin: Origin) -> bool {
        self.inner().sites.get(mn).is_some_and(|site| {
            site.queue.iter().any(|c| c.origin == origin)
                || site.active.as_ref().is_some_and(|a| a.command.origin == origin)
        })
    }

    /// Whether a connection carries `mn` now.
    pub fn is_connected(&self, mn: &str) -> bool {
        self.inner().carriers.contains_key(mn)
    }

    /// Cancels a queued command.
    ///
    /// # Errors
    /// [`CancelError`] when it does not exist or is no longer queued.
    pub fn cancel(&self, id: u64, now_ms: i64) -> Result<Command, CancelError> {
        let mut inner = self.inner();
        let found = inner.sites.values_mut().find_map(|site| {
            let at = site.queue.iter().position(|c| c.id == id)?;
            site.queue.remove(at)
        });
        let Some(mut command) = found else {
            drop(inner);
            return match self.book().get(id)? {
                Some(command) => Err(CancelError::NotQueued { id: command.public_id(), state: command.state.as_str() }),
                None => Err(CancelError::NotFound(format!("c-{id:06}"))),
            };
        };
        inner.queued_total -= 1;
        command.finish(State::Cancelled, Some("cancelled by an operator".into()), now_ms);
        self.finished(&mut inner, &command);
        Ok(command)
    }

    /// A connection carries `mn` from now on (the latest connection to carry it gets its commands).
    pub fn attach(&self, mn: &str, carrier: Carrier) {
        self.inner().carriers.insert(mn.to_owned(), carrier);
        self.wake.notify_one();
    }

    /// The connection `conn` no longer carries `mn`.
    pub fn detach(&self, mn: &str, conn: u64) {
        let mut inner = self.inner();
        if inner.carriers.get(mn).is_some_and(|c| c.conn == conn) {
            inner.carriers.remove(mn);
        }
    }

    /// A 9011 (QnRtn), 9012 (ExeRtn) or 9013 from `mn` echoing `qn`, once it is archived.
    pub fn reply(&self, mn: &str, qn: &str, cn: u16, code: Option<u16>, now_ms: i64) -> Matched {
        let mut inner = self.inner();
        let Some(site) = inner.sites.get_mut(mn) else { return Self::unknown(cn) };
        let Some(active) = site.active.as_mut().filter(|a| a.command.qn.as_deref() == Some(qn)) else {
            return Self::unknown(cn);
        };
        let command = &mut active.command;
        let outcome = match (cn, command.spec.exchange) {
            (9013, Exchange::Notification) => Some((State::Completed, None)),
            (9011, Exchange::Request) => {
                let code = code.unwrap_or(100);
                command.qn_rtn = Some(code);
                if code == 1 {
                    command.state = State::Accepted;
                    command.accepted_ms = Some(now_ms);
                    let per_record = command.spec.records_asked.saturating_mul(self.settings.execution_ms_per_record);
                    active.deadline_ms = now_ms
                        .saturating_add(secs_ms(self.settings.execution_timeout_secs))
                        .saturating_add(i64::try_from(per_record).unwrap_or(i64::MAX));
                    None
                } else {
                    Some((State::Rejected, Some(format!("QnRtn={code}: {}", qn_rtn_meaning(code)))))
                }
            }
            // A 9012 without a 9011 first (some loggers skip it) still ends the exchange.
            (9012, Exchange::Request) => {
                let code = code.unwrap_or(2);
                command.exe_rtn = Some(code);
                if command.state == State::Sent {
                    CommandMetrics::reply("9012", "before_9011");
                }
                if code == 1 {
                    Some((State::Completed, None))
                } else {
                    Some((State::Failed, Some(format!("ExeRtn={code}: {}", exe_rtn_meaning(code)))))
                }
            }
            _ => {
                CommandMetrics::reply(cn_label(cn), "unexpected");
                return Matched::Command;
            }
        };
        CommandMetrics::reply(cn_label(cn), "matched");
        let Some((state, reason)) = outcome else {
            let command = active.command.clone();
            drop(inner);
            self.save(&command);
            return Matched::Command;
        };
        if let Some(Active { mut command, .. }) = site.active.take() {
            command.finish(state, reason, now_ms);
            self.in_flight.fetch_sub(1, Ordering::Relaxed);
            self.finished(&mut inner, &command);
            drop(inner);
            self.wake.notify_one();
        }
        Matched::Command
    }

    /// The connection could not build the frame of command `id` (a value the site's protocol
    /// cannot carry, a missing SM4 key): it fails at once instead of timing out.
    pub fn undeliverable(&self, mn: &str, id: u64, reason: String, now_ms: i64) {
        let mut inner = self.inner();
        let Some(site) = inner.sites.get_mut(mn) else { return };
        if site.active.as_ref().is_none_or(|a| a.command.id != id) {
            return;
        }
        if let Some(Active { mut command, .. }) = site.active.take() {
            command.finish(State::Failed, Some(reason), now_ms);
            self.in_flight.fetch_sub(1, Ordering::Relaxed);
            self.finished(&mut inner, &command);
        }
    }

    /// Whether any command is in flight (uploads may answer one).
    pub fn expects_answers(&self) -> bool {
        self.in_flight.load(Ordering::Relaxed) > 0
    }

    fn unknown(cn: u16) -> Matched {
        CommandMetrics::reply(cn_label(cn), "unknown_qn");
        Matched::UnknownQn
    }

    /// An accepted upload of `cn` from `mn`: counted as an answer to the site's history
    /// request when its QN matches or its DataTime is in the requested range (loggers in the
    /// wild answer with fresh QNs or none). Cheap when nothing is in flight.
    pub fn upload(&self, mn: &str, cn: u16, qn: Option<&str>, data_time_ms: Option<i64>) {
        if self.in_flight.load(Ordering::Relaxed) == 0 {
            return;
        }
        let mut inner = self.inner();
        let Some(active) = inner.sites.get_mut(mn).and_then(|s| s.active.as_mut()) else { return };
        let command = &mut active.command;
        if command.spec.cn != cn {
            return;
        }
        let in_range = command
            .spec
            .history_range()
            .zip(data_time_ms)
            .is_some_and(|((begin, end), time)| (begin..=end).contains(&time));
        if in_range || (qn.is_some() && command.qn.as_deref() == qn) {
            command.records += 1;
            self.metrics.records.increment(1);
        }
    }

    /// Runs the timers and delivery until `shutdown`.
    pub async fn run(self: Arc<Self>, shutdown: CancellationToken) {
        let tick = Duration::from_millis(200);
        loop {
            self.tick(now_ms());
            tokio::select! {
                () = self.wake.notified() => {}
                () = tokio::time::sleep(tick) => {}
                () = shutdown.cancelled() => return,
            }
        }
    }

    /// Expires, times out, resends and delivers, as of `now_ms`.
    pub fn tick(&self, now_ms: i64) {
        let mut inner = self.inner();
        let mns: Vec<String> = inner.sites.keys().cloned().collect();
        for mn in mns {
            self.tick_site(&mut inner, &mn, now_ms);
        }
        inner.sites.retain(|_, site| site.active.is_some() || !site.queue.is_empty() || site.reserved > 0);
        self.metrics.queued.set(inner.queued_total as f64);
        self.metrics.in_flight.set(self.in_flight.load(Ordering::Relaxed) as f64);
    }

    fn tick_site(&self, inner: &mut Inner, mn: &str, now_ms: i64) {
        let carrier = inner.carriers.get(mn).cloned();
        let Some(site) = inner.sites.get_mut(mn) else { return };
        let mut ended = Vec::new();
        // Queued past their time to live.
        while let Some(at) = site.queue.iter().position(|c| c.expires_ms <= now_ms) {
            let mut command = site.queue.remove(at).expect("position found");
            command.finish(State::Expired, Some("not delivered within its time to live".into()), now_ms);
            ended.push(command);
        }
        inner.queued_total -= ended.len();
        if let Some(active) = site.active.as_mut().filter(|a| a.deadline_ms <= now_ms) {
            let command = &mut active.command;
            let resend = command.state == State::Sent && command.sends < self.settings.sends;
            match (&carrier, resend) {
                (Some(carrier), true) if deliver(carrier, command) => {
                    command.sends += 1;
                    active.deadline_ms = now_ms + secs_ms(self.settings.request_timeout_secs);
                    self.metrics.resends.increment(1);
                    self.save(command);
                }
                // No connection to resend on: the next send waits for one, within the same deadline.
                (None, true) => active.deadline_ms = now_ms + secs_ms(self.settings.request_timeout_secs),
                (Some(_), true) => {}
                (_, false) => {
                    let mut command = site.active.take().expect("deadline passed").command;
                    let reason = if command.state == State::Sent {
                        format!("no 9011 after {} sends, {} s apart", command.sends, self.settings.request_timeout_secs)
                    } else {
                        format!("no 9012 within the execution timeout ({} records asked)", command.spec.records_asked)
                    };
                    command.finish(State::Failed, Some(reason), now_ms);
                    self.in_flight.fetch_sub(1, Ordering::Relaxed);
                    ended.push(command);
                }
            }
        }
        if site.active.is_none()
            && let Some(carrier) = &carrier
            && let Some(mut command) = site.queue.pop_front()
        {
            inner.last_qn_ms = now_ms.max(inner.last_qn_ms + 1);
            command.qn = Some(BeijingTime::from_unix_millis(inner.last_qn_ms).to_qn_string());
            command.state = State::Sent;
            command.sent_ms = Some(now_ms);
            command.sends = 1;
            let qn_ms = inner.last_qn_ms;
            if deliver_as(carrier, &command, qn_ms) {
                inner.queued_total -= 1;
                self.in_flight.fetch_add(1, Ordering::Relaxed);
                self.save(&command);
                let deadline_ms = now_ms + secs_ms(self.settings.request_timeout_secs);
                inner.sites.get_mut(mn).expect("site present").active = Some(Active { command, deadline_ms });
            } else {
                // The connection is busy: its turn comes on the next tick.
                command.state = State::Queued;
                command.qn = None;
                command.sent_ms = None;
                command.sends = 0;
                inner.sites.get_mut(mn).expect("site present").queue.push_front(command);
            }
        }
        for command in ended {
            self.finished(inner, &command);
        }
    }

    /// Records a finished command: book, metrics, log, and now and then the book's pruning.
    fn finished(&self, inner: &mut Inner, command: &Command) {
        CommandMetrics::finished(command);
        tracing::info!(
            id = %command.public_id(),
            mn = %command.mn,
            cn = command.spec.cn,
            state = command.state.as_str(),
            reason = command.reason.as_deref().unwrap_or(""),
            records = command.records,
            "command finished"
        );
        self.save(command);
        inner.finished_since_prune += 1;
        if inner.finished_since_prune >= 256 {
            inner.finished_since_prune = 0;
            if let Err(error) = self.book().prune(&command.mn, self.settings.keep_finished_per_site) {
                tracing::warn!(%error, "cannot prune finished commands");
            }
        }
    }

    fn save(&self, command: &Command) {
        if let Err(error) = self.book().save(command) {
            // The state lives on in memory; the archive holds what was sent and answered.
            tracing::error!(%error, id = %command.public_id(), "cannot save a command's state");
            self.metrics.book_errors.increment(1);
        }
    }
}

fn deliver(carrier: &Carrier, command: &Command) -> bool {
    let qn_ms = command.qn.as_deref().and_then(|qn| BeijingTime::parse(qn).ok()).map_or(0, |time| time.unix_millis());
    deliver_as(carrier, command, qn_ms)
}

fn deliver_as(carrier: &Carrier, command: &Command, qn_ms: i64) -> bool {
    let outgoing =
        Outgoing { id: command.id, mn: command.mn.clone(), cn: command.spec.cn, cp: command.spec.cp_text(), qn_ms };
    carrier.mailbox.post(outgoing)
}

fn cn_label(cn: u16) -> &'static str {
    match cn {
        9011 => "9011",
        9012 => "9012",
        9013 => "9013",
        _ => "other",
    }
}

fn secs_ms(secs: u64) -> i64 {
    i64::try_from(secs.saturating_mul(1000)).unwrap_or(i64::MAX)
}

/// Wall-clock milliseconds since the Unix epoch.
pub fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX))
}

#[cfg(test)]
mod tests;
