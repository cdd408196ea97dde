//! The publisher follower: every durable record of this node's archive goes to the cluster's
//! JetStream stream, in archive order, with the message id of [`crate::message`] (the stream
//! keeps one copy of a frame both nodes received, and of a batch published again after a
//! failure or restart within `duplicate_window_secs`).
//!
//! A batch's messages are handed to the NATS client in order; their acknowledgements are
//! awaited on the daemon's runtime while the next batches go out (up to `max_in_flight`).
//! `confirmed` moves, strictly in order, past each batch the stream has stored: connections
//! with `ack_after = "cluster"` wait on it. When the stream does not answer (no quorum, a
//! leader election, NATS down) the batch fails, the runner backs off, and the records are
//! published again from the confirmed position; the duplicates are dropped by the stream.

use std::collections::VecDeque;
use std::time::Duration;

use async_nats::jetstream::{self, context::PublishAckFuture};
use hj212_follow::{Cursor, FollowError, Follower, Interpreted};
use tokio::runtime::Handle;
use tokio::sync::watch;
use tokio::task::JoinHandle;

use crate::connect::{Connection, Settings};
use crate::message::message;
use crate::metrics::PublisherMetrics;

/// Saving the cursor with an fsync at most this often (in between, without: a crash replays
/// a few records, which the stream drops as duplicates).
const SYNC_CURSOR_EVERY: Duration = Duration::from_secs(5);

/// Publishes the archive to the stream.
pub struct Publisher {
    runtime: Handle,
    settings: Settings,
    /// Connected and the stream ensured at first use (NATS may be down when the daemon starts).
    connection: Option<Connection>,
    cursor: Cursor,
    last_sync: std::time::Instant,
    /// The last record the stream holds; also sent to connections that wait for it.
    confirmed: watch::Sender<u64>,
    /// The last record handed to the client.
    sent: u64,
    in_flight: VecDeque<JoinHandle<Result<(), FollowError>>>,
    metrics: PublisherMetrics,
}

impl std::fmt::Debug for Publisher {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Publisher").field("sent", &self.sent).field("cursor", &self.cursor.seq).finish_non_exhaustive()
    }
}

impl Publisher {
    /// The publisher at its saved cursor. `confirmed` starts there.
    ///
    /// # Errors
    /// The cursor file cannot be read.
    pub fn open(settings: Settings, runtime: Handle) -> Result<(Self, watch::Receiver<u64>), FollowError> {
        let cursor = Cursor::load(&settings.cursor_path)?;
        let (confirmed, receiver) = watch::channel(cursor.seq);
        let sent = cursor.seq;
        let publisher = Self {
            runtime,
            settings,
            connection: None,
            cursor,
            last_sync: std::time::Instant::now(),
            confirmed,
            sent,
            in_flight: VecDeque::new(),
            metrics: PublisherMetrics::default(),
        };
        Ok((publisher, receiver))
    }

    fn connection(&mut self) -> Result<&Connection, FollowError> {
        if self.connection.is_none() {
            let connection = self.runtime.block_on(Connection::open(&self.settings))?;
            self.connection = Some(connection);
        }
        Ok(self.connection.as_ref().expect("set above"))
    }

    /// Hands `records` to the client in order and starts waiting for their acknowledgements.
    fn publish(&mut self, records: &[Interpreted]) -> Result<(), FollowError> {
        let Some(last) = records.last().map(|r| r.record.seq) else { return Ok(()) };
        let connection = self.connection()?;
        let (context, subjects, max_payload) =
            (connection.context.clone(), connection.subjects.clone(), connection.max_payload);
        let numbering = self.settings.numbering;
        let acks = self.runtime.block_on(async {
            let mut acks = Vec::with_capacity(records.len());
            for interpreted in records {
                let (subject, publish) = message(interpreted, &subjects, max_payload, numbering);
                acks.push(context.send_publish(subject, publish).await?);
            }
            Ok::<_, jetstream::context::PublishError>(acks)
        })?;
        let (previous, confirmed, metrics) = (self.sent, self.confirmed.clone(), self.metrics.clone());
        self.in_flight.push_back(self.runtime.spawn(confirm(acks, previous, last, confirmed, metrics)));
        self.sent = last;
        Ok(())
    }

    /// Surfaces the failure of a finished batch; waits for the oldest while too many are out.
    fn settle(&mut self, wait: bool) -> Result<(), FollowError> {
        while let Some(oldest) = self.in_flight.front() {
            let too_many = self.in_flight.len() > self.settings.max_in_flight;
            if !(oldest.is_finished() || too_many || wait) {
                break;
            }
            let task = self.in_flight.pop_front().expect("front exists");
            self.runtime.block_on(task)??;
        }
        self.save_cursor()
    }

    fn save_cursor(&mut self) -> Result<(), FollowError> {
        let confirmed = *self.confirmed.borrow();
        if self.last_sync.elapsed() >= SYNC_CURSOR_EVERY {
            self.cursor.advance(confirmed)?;
            self.last_sync = std::time::Instant::now();
        } else {
            self.cursor.advance_unsynced(confirmed)?;
        }
        Ok(())
    }
}

/// Waits for a batch's acknowledgements, then for the batch before it to be confirmed, and
/// moves `confirmed` to the batch's last record.
async fn confirm(
    acks: Vec<PublishAckFuture>,
    previous: u64,
    last: u64,
    confirmed: watch::Sender<u64>,
    metrics: PublisherMetrics,
) -> Result<(), FollowError> {
    let mut duplicates = 0;
    let published = acks.len() as u64;
    for ack in acks {
        if ack.await?.duplicate {
            duplicates += 1;
        }
    }
    metrics.stored.increment(published - duplicates);
    metrics.duplicates.increment(duplicates);
    // A batch before this one failed: this one is published again after it.
    let mut waiting = confirmed.subscribe();
    waiting.wait_for(|&at| at >= previous).await?;
    confirmed.send_if_modified(|at| {
        let moved = last > *at;
        *at = (*at).max(last);
        moved
    });
    Ok(())
}

impl Follower for Publisher {
    fn name(&self) -> &'static str {
        "cluster"
    }

    fn position(&mut self) -> Result<u64, FollowError> {
        Ok(*self.confirmed.borrow())
    }

    fn apply(&mut self, records: &[Interpreted]) -> Result<u64, FollowError> {
        self.publish(records)?;
        self.settle(false)?;
        self.position()
    }

    fn tick(&mut self, _now_ms: i64, _behind: u64) -> Result<u64, FollowError> {
        self.settle(false)?;
        self.position()
    }

    fn recover(&mut self) -> Result<u64, FollowError> {
        for task in self.in_flight.drain(..) {
            task.abort();
        }
        self.metrics.retries.increment(1);
        // A connection that failed is made again: the stream may have been deleted meanwhile.
        self.connection = None;
        self.sent = *self.confirmed.borrow();
        self.position()
    }

    fn finish(&mut self) -> Result<u64, FollowError> {
        self.settle(true)?;
        self.cursor.advance(*self.confirmed.borrow())?;
        self.position()
    }
}
