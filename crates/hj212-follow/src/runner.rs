//! The one runtime of the archive's readers: a [`Follower`] says where it stands and applies
//! batches of durable records; [`spawn`] runs it on its own thread, feeding it from the archive
//! in order, retrying failures with one backoff rule, and reporting its position and failures
//! in a [`FollowerStatus`] (which the lag gauges, `/readyz` and retention read).

use std::sync::Arc;
use std::time::{Duration, Instant};

use hj212_archive::{FollowerStatus, now_ms};
use tokio::sync::watch;
use tokio_util::sync::CancellationToken;

use crate::Interpreted;
use crate::ahead::Ahead;
use crate::feed::{Feed, OpenFeed};
use crate::shared::SharedTail;
use crate::source::Source;

/// Whatever a follower's storage or sink reports; the runner logs it, shows it in the status
/// and retries.
pub type FollowError = Box<dyn std::error::Error + Send + Sync>;

/// A reader of the archive that the runner keeps caught up. Positions are archive sequence
/// numbers: the last record whose results are persisted.
pub trait Follower: Send + 'static {
    /// A stable name: the `follower` label of the metrics, `/readyz`, logs.
    fn name(&self) -> &'static str;

    /// Where a restart resumes: the last record whose results are persisted.
    ///
    /// # Errors
    /// The storage cannot be read.
    fn position(&mut self) -> Result<u64, FollowError>;

    /// Applies durable records that follow the ones applied before, persisting the results and
    /// the position together where it can. Returns the position now persisted, which may stay
    /// behind the records fed while writes are in flight (a sink).
    ///
    /// # Errors
    /// Nothing of the batch counts then: the runner backs off and calls [`Follower::recover`].
    fn apply(&mut self, records: &[Interpreted]) -> Result<u64, FollowError>;

    /// Called about every tick with the wall clock and how many durable records are not fed
    /// yet (rules that run on the clock, writes in flight). Returns the position persisted.
    ///
    /// # Errors
    /// As [`Follower::apply`].
    fn tick(&mut self, _now_ms: i64, _behind: u64) -> Result<u64, FollowError> {
        self.position()
    }

    /// After a failed apply or tick: forgets what is not persisted; returns where to resume.
    ///
    /// # Errors
    /// The storage cannot be read (retried).
    fn recover(&mut self) -> Result<u64, FollowError> {
        self.position()
    }

    /// At a stop, once every durable record was fed: finishes what is in flight.
    ///
    /// # Errors
    /// What could not be finished (it is done after the next start).
    fn finish(&mut self) -> Result<u64, FollowError> {
        self.position()
    }
}

/// What a follower returns (from [`Follower::apply`] or [`Follower::tick`]) to be fed again
/// from its [`Follower::position`]: not a failure (no backoff, nothing shown in the status).
/// A cluster follower that one node at a time runs returns it when it takes over (to resume
/// where the previous node stopped) or lets go.
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct Rewind(pub String);

/// How the runner feeds a follower.
#[derive(Debug, Clone)]
pub struct RunnerSettings {
    pub archive_dir: std::path::PathBuf,
    /// Records per batch.
    pub batch: usize,
    /// How often [`Follower::tick`] runs.
    pub tick: Duration,
    /// Failures are retried after 0.5 s, doubling up to this.
    pub max_backoff: Duration,
    /// Feed only records this other follower has applied (a sink that shows what the store
    /// keeps); `None`: everything durable.
    pub after: Option<Arc<FollowerStatus>>,
    /// Batches the daemon's followers share, so that a record is read and parsed once.
    pub shared: Option<Arc<SharedTail>>,
    /// Where the records come from when not from the archive at `archive_dir` (then the
    /// `durable` given to [`spawn`] is this feed's head).
    pub feed: Option<Arc<dyn OpenFeed>>,
    /// The thread's nice value (0: the daemon's): above 0, acknowledging frames takes the
    /// CPU first and the follower the rest, its lag showing what it could not keep up with.
    pub nice: i32,
}

const FIRST_BACKOFF: Duration = Duration::from_millis(500);
/// At a stop a follower applies what is durable for at most this long, then stops at its
/// position (it resumes there at the next start): a follower far behind (hours of catch-up)
/// does not hold the stop past the unit's `TimeoutStopSec` (30 s).
pub const STOP_CATCH_UP: Duration = Duration::from_secs(10);

/// Runs `follower` on its own thread until `shutdown`, then feeds it what is durable (for at
/// most [`STOP_CATCH_UP`]) and calls [`Follower::finish`]. The thread ends with the error that stopped it, if any.
///
/// # Errors
/// The thread cannot be started.
pub fn spawn(
    follower: Box<dyn Follower>,
    settings: RunnerSettings,
    durable: watch::Receiver<u64>,
    status: Arc<FollowerStatus>,
    shutdown: CancellationToken,
) -> std::io::Result<std::thread::JoinHandle<Result<(), FollowError>>> {
    let name = follower.name();
    std::thread::Builder::new().name(format!("follow-{name}")).spawn(move || {
        lower_priority(name, settings.nice);
        let runtime = tokio::runtime::Builder::new_current_thread().enable_time().build()?;
        let status_at_end = status.clone();
        let mut runner = Runner { follower, settings, durable, status, shutdown, runtime, backoff: FIRST_BACKOFF };
        let result = runner.run();
        if let Err(error) = &result {
            // Stays failing (not ready) until a restart.
            status_at_end.failed(error, now_ms());
            tracing::error!(follower = name, %error, "follower stopped; it catches up after a restart");
        }
        result
    })
}

/// Sets this thread's nice value; the follower runs as it is if that is refused.
pub(crate) fn lower_priority(name: &str, nice: i32) {
    if nice == 0 {
        return;
    }
    // Linux keeps the nice value per thread: this one only.
    let thread = Some(rustix::thread::gettid());
    if let Err(error) = rustix::process::setpriority_process(thread, nice) {
        tracing::warn!(follower = name, nice, %error, "cannot set the follower thread's nice value");
    }
}

struct Runner {
    follower: Box<dyn Follower>,
    settings: RunnerSettings,
    durable: watch::Receiver<u64>,
    status: Arc<FollowerStatus>,
    shutdown: CancellationToken,
    /// Only for waiting (on the durable position, the tick, the stop).
    runtime: tokio::runtime::Runtime,
    backoff: Duration,
}

impl Runner {
    fn run(&mut self) -> Result<(), FollowError> {
        let mut source = self.start()?;
        let mut next_tick = Instant::now();
        let mut stop_by = None;
        loop {
            let durable = *self.durable.borrow_and_update();
            let target = self.settings.after.as_ref().map_or(durable, |after| durable.min(after.position()));
            let fed = source.fed();
            if self.shutdown.is_cancelled()
                && Instant::now() >= *stop_by.get_or_insert_with(|| Instant::now() + STOP_CATCH_UP)
            {
                tracing::warn!(
                    follower = self.follower.name(),
                    behind = target.saturating_sub(fed),
                    "stopping before catching up; it resumes from its position at the next start"
                );
                return self.finish();
            }
            // A tick settles the follower's health only when nothing waits to be applied.
            let mut settles = true;
            let stepped = if Instant::now() >= next_tick {
                next_tick = Instant::now() + self.settings.tick;
                settles = fed >= target;
                self.follower.tick(now_ms(), target.saturating_sub(fed))
            } else if fed < target {
                source.read(target).map_err(Into::into).and_then(|records| {
                    let applied =
                        if records.is_empty() { self.follower.position() } else { self.follower.apply(&records) };
                    source.spent(records);
                    applied
                })
            } else if self.shutdown.is_cancelled() || self.wait(next_tick) {
                return self.finish();
            } else {
                continue;
            };
            match stepped {
                Ok(position) if settles => {
                    self.status.applied(position);
                    self.backoff = FIRST_BACKOFF;
                }
                Ok(position) => self.status.moved(position),
                Err(error) if error.is::<Rewind>() => {
                    tracing::info!(follower = self.follower.name(), %error, "fed again from its position");
                    source = self.start()?;
                }
                Err(error) => match self.reopen(error) {
                    Ok(reopened) => source = reopened,
                    Err(error) => return Err(error),
                },
            }
        }
    }

    /// Records from the follower's persisted position, retried until they can be read (or the stop).
    fn start(&mut self) -> Result<Box<dyn Feed>, FollowError> {
        let opened = self.follower.position().and_then(|position| {
            self.status.applied(position);
            Ok(self.source(position + 1)?)
        });
        match opened {
            Ok(source) => Ok(source),
            Err(error) => self.reopen(error),
        }
    }

    /// Records from `next_seq` on: from the feed given, else from the archive, read ahead on
    /// a thread of their own.
    fn source(&self, next_seq: u64) -> std::io::Result<Box<dyn Feed>> {
        if let Some(feed) = &self.settings.feed {
            return feed.open(next_seq - 1, self.settings.batch, self.follower.name());
        }
        let source = Source::sharing(&self.settings.archive_dir, next_seq, self.settings.shared.clone());
        Ok(Box::new(Ahead::start(source, self.settings.batch, self.follower.name(), self.settings.nice)?))
    }

    /// After a failure: pauses, recovers and opens the records from the follower's position,
    /// until that works; the error when the stop comes first.
    fn reopen(&mut self, mut error: FollowError) -> Result<Box<dyn Feed>, FollowError> {
        loop {
            let Some(resume) = self.retry(&*error) else { return Err(error) };
            match self.source(resume + 1) {
                Ok(source) => return Ok(source),
                Err(failed) => error = failed.into(),
            }
        }
    }

    /// After a failure: pause (the status shows it), then recover; `None` when stopping.
    fn retry(&mut self, error: &(dyn std::error::Error + Send + Sync)) -> Option<u64> {
        loop {
            if self.retry_pause(error) {
                return None;
            }
            match self.follower.recover() {
                Ok(position) => return Some(position),
                Err(again) => tracing::error!(follower = self.follower.name(), error = %again, "cannot recover"),
            }
        }
    }

    /// Records the failure and waits out the backoff; true if the stop came meanwhile.
    fn retry_pause(&mut self, error: &(dyn std::error::Error + Send + Sync)) -> bool {
        let name = self.follower.name();
        self.status.failed(&error, now_ms());
        tracing::error!(follower = name, %error, retry_in = ?self.backoff, "follower failed; retrying");
        let pause = self.backoff;
        self.backoff = (self.backoff * 2).min(self.settings.max_backoff);
        let shutdown = self.shutdown.clone();
        self.runtime.block_on(async {
            tokio::select! {
                () = tokio::time::sleep(pause) => false,
                () = shutdown.cancelled() => true,
            }
        })
    }

    /// Until more is durable, the next tick, or the stop; true once the archive has closed
    /// (nothing more will become durable).
    fn wait(&mut self, next_tick: Instant) -> bool {
        let (durable, shutdown) = (&mut self.durable, self.shutdown.clone());
        self.runtime.block_on(async {
            tokio::select! {
                changed = durable.changed() => changed.is_err(),
                () = shutdown.cancelled() => false,
                () = tokio::time::sleep_until(next_tick.into()) => false,
            }
        })
    }

    fn finish(&mut self) -> Result<(), FollowError> {
        let position = self.follower.finish()?;
        self.status.applied(position);
        Ok(())
    }
}
