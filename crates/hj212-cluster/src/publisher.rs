//! The publisher follower: every durable record of this node's archive goes to the cluster's
//! JetStream stream, in archive order, with the message id of [`crate::message`] (the stream
//! keeps one copy of a frame both nodes received, and of a batch published again after a
//! failure or restart within `duplicate_window_secs`).
//!
//! A batch's messages are handed to the NATS client in order; their acknowledgements are
//! awaited on the daemon's runtime, batch after batch, while the next batches go out (up to
//! `max_in_flight`).
//! `confirmed` moves, strictly in order, past each batch the stream has stored: connections
//! with `ack_after = "cluster"` wait on it. When the stream does not answer (no quorum, a
//! leader election, NATS down) the batch fails, the runner backs off, and the records are
//! published again from the confirmed position; the duplicates are dropped by the stream.

use std::collections::VecDeque;
use std::time::Duration;

use async_nats::jetstream::context::{PublishError, PublishErrorKind};
use async_nats::jetstream::{self, publish::PublishAck};
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

/// Waits for the batch before to be confirmed, then for this batch's acknowledgements, and
/// moves `confirmed` to the batch's last record.
async fn confirm<Ack>(
    acks: Vec<Ack>,
    previous: u64,
    last: u64,
    confirmed: watch::Sender<u64>,
    metrics: PublisherMetrics,
) -> Result<(), FollowError>
where
    Ack: IntoFuture<Output = Result<PublishAck, PublishError>>,
{
    // An acknowledgement's timeout runs from when it is awaited. Awaited only after the batches
    // before it, it measures the stream's answer to this batch, not the queue ahead of it: with
    // `max_in_flight` batches out, a busy stream made healthy batches time out and go out again.
    // A batch before this one that fails leaves this task waiting here until `recover` aborts
    // it; both are then published again.
    let mut waiting = confirmed.subscribe();
    waiting.wait_for(|&at| at >= previous).await?;
    let mut duplicates = 0;
    let published = acks.len() as u64;
    for ack in acks {
        if ack.await.map_err(explained)?.duplicate {
            duplicates += 1;
        }
    }
    metrics.stored.increment(published - duplicates);
    metrics.duplicates.increment(duplicates);
    confirmed.send_if_modified(|at| {
        let moved = last > *at;
        *at = (*at).max(last);
        moved
    });
    Ok(())
}

/// The client's error, with what it means here for the operator who reads it in the log.
fn explained(error: PublishError) -> FollowError {
    let meaning = match error.kind() {
        PublishErrorKind::StreamNotFound => {
            "no server of the stream answered: it has no leader yet (just created, or a server restarted) or it was \
             deleted"
        }
        PublishErrorKind::TimedOut => {
            "the stream did not store the batch within publish_timeout_secs of the batches before it: no quorum, a \
             leader election, or NATS unreachable"
        }
        _ => return error.into(),
    };
    format!("{error} ({meaning}); the batch is published again after the back-off").into()
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

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::time::Instant;

    /// Like the client's: answered at `at`, timing out `TIMEOUT` after it is first awaited.
    fn answered_at(at: Instant) -> std::pin::Pin<Box<dyn Future<Output = Result<PublishAck, PublishError>> + Send>> {
        const TIMEOUT: Duration = Duration::from_secs(1);
        Box::pin(async move {
            let timed_out = tokio::time::timeout(TIMEOUT, tokio::time::sleep_until(at)).await.is_err();
            if timed_out { Err(PublishError::new(PublishErrorKind::TimedOut)) } else { Ok(PublishAck::default()) }
        })
    }

    #[tokio::test(start_paused = true)]
    async fn a_batch_behind_others_is_given_its_time_once_they_are_stored() {
        // Eight batches of three out at once; the stream stores one batch every 400 ms, in order.
        let start = Instant::now();
        let (confirmed, _) = watch::channel(0);
        let tasks: Vec<_> = (1..=8u64)
            .map(|batch| {
                let acks = (0..3).map(|_| answered_at(start + Duration::from_millis(400 * batch))).collect();
                let (previous, last) = ((batch - 1) * 3, batch * 3);
                tokio::spawn(confirm(acks, previous, last, confirmed.clone(), PublisherMetrics::default()))
            })
            .collect();
        for task in tasks {
            task.await.expect("joined").expect("no acknowledgement timed out");
        }
        assert_eq!(*confirmed.borrow(), 24);
    }

    #[tokio::test(start_paused = true)]
    async fn after_a_failed_batch_the_next_does_not_move_the_confirmed_position() {
        let start = Instant::now();
        let (confirmed, _) = watch::channel(0);
        let metrics = PublisherMetrics::default;
        let never = start + Duration::from_secs(3600);
        let failing = tokio::spawn(confirm(vec![answered_at(never)], 0, 1, confirmed.clone(), metrics()));
        let stored = vec![answered_at(start + Duration::from_millis(10))];
        let next = tokio::spawn(confirm(stored, 1, 2, confirmed.clone(), metrics()));
        assert!(failing.await.expect("joined").is_err());
        tokio::time::sleep(Duration::from_secs(60)).await;
        assert!(!next.is_finished(), "it waits for the failed batch to be published again");
        assert_eq!(*confirmed.borrow(), 0);
        next.abort();
    }

    #[tokio::test(start_paused = true)]
    async fn a_stream_that_does_not_answer_fails_the_batch() {
        let (confirmed, _) = watch::channel(0);
        let never = Instant::now() + Duration::from_secs(3600);
        let outcome = confirm(vec![answered_at(never)], 0, 1, confirmed.clone(), PublisherMetrics::default()).await;
        let error = outcome.expect_err("timed out").to_string();
        assert!(error.contains("timed out") && error.contains("publish_timeout_secs"), "{error}");
        assert_eq!(*confirmed.borrow(), 0);
    }
}
