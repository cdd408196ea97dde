//! Reading ahead: a follower's next batch is read, hash-checked and interpreted on a thread of
//! its own while the follower applies the current one, so a follower catching up alone (the
//! store after a burst) uses a second core instead of leaving it idle. At most one batch
//! waits; the follower's spent batches are dropped on the reading thread too.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::mpsc::{Receiver, Sender, SyncSender, TryRecvError, channel, sync_channel};
use std::thread::{JoinHandle, Thread};
use std::time::Duration;

use crate::feed::Feed;
use crate::shared::Batch;
use crate::source::Source;

/// How long the reading thread sleeps when nothing more is wanted before it looks again (it
/// is woken sooner by [`Ahead::read`]).
const IDLE_PAUSE: Duration = Duration::from_millis(100);

/// A [`Source`] read on its own thread, one batch ahead of the follower.
pub(crate) struct Ahead {
    /// The sequence number of the next record the follower is given.
    next_seq: u64,
    batches: Receiver<std::io::Result<Batch>>,
    spent: Sender<Batch>,
    wanted: Arc<Wanted>,
    reader: Option<JoinHandle<()>>,
}

/// What the follower wants read: records up to `up_to`; `stop` ends the reading thread.
struct Wanted {
    up_to: AtomicU64,
    stop: AtomicBool,
}

impl Ahead {
    /// Reads `source` on a thread named after the follower `name`, at `nice` (see [`crate::RunnerSettings::nice`]),
    /// `limit` records a batch.
    ///
    /// # Errors
    /// The thread cannot be started.
    pub(crate) fn start(source: Source, limit: usize, name: &'static str, nice: i32) -> std::io::Result<Self> {
        let next_seq = source.next_seq();
        let wanted = Arc::new(Wanted { up_to: AtomicU64::new(next_seq - 1), stop: AtomicBool::new(false) });
        let (batch_tx, batches) = sync_channel(1);
        let (spent, spent_rx) = channel();
        let reading = Reading { source, limit, wanted: wanted.clone(), batches: batch_tx, spent: spent_rx };
        let reader = std::thread::Builder::new().name(format!("read-{name}")).spawn(move || {
            crate::runner::lower_priority(name, nice);
            reading.run();
        })?;
        Ok(Self { next_seq, batches, spent, wanted, reader: Some(reader) })
    }

    fn reading_thread(&self) -> &Thread {
        self.reader.as_ref().expect("the reading thread runs until drop").thread()
    }
}

impl Feed for Ahead {
    fn fed(&self) -> u64 {
        self.next_seq - 1
    }

    /// The next records, up to `limit` of them with sequence numbers up to `durable`.
    ///
    /// # Errors
    /// I/O errors, or a record that does not verify (the reading thread stops: start anew).
    fn read(&mut self, durable: u64) -> std::io::Result<Batch> {
        self.wanted.up_to.fetch_max(durable, Ordering::AcqRel);
        self.reading_thread().unpark();
        let batch = self.batches.recv().map_err(|_| std::io::Error::other("the archive reading thread stopped"))??;
        if let Some(last) = batch.last() {
            self.next_seq = last.record.seq + 1;
        }
        Ok(batch)
    }

    /// Hands a batch the follower is done with back to be dropped off its thread.
    fn spent(&self, batch: Batch) {
        // The reading thread gone (it failed), the batch is dropped here.
        let _ = self.spent.send(batch);
    }
}

impl Drop for Ahead {
    fn drop(&mut self) {
        self.wanted.stop.store(true, Ordering::Release);
        self.reading_thread().unpark();
        // Unblocks a send of a batch nobody will take.
        while self.batches.try_recv().is_ok() {}
        if let Some(reader) = self.reader.take() {
            let _ = reader.join();
        }
    }
}

/// The reading thread's side.
struct Reading {
    source: Source,
    limit: usize,
    wanted: Arc<Wanted>,
    batches: SyncSender<std::io::Result<Batch>>,
    spent: Receiver<Batch>,
}

impl Reading {
    fn run(mut self) {
        while !self.wanted.stop.load(Ordering::Acquire) {
            self.drop_spent();
            let up_to = self.wanted.up_to.load(Ordering::Acquire);
            if self.source.next_seq() > up_to {
                std::thread::park_timeout(IDLE_PAUSE);
                continue;
            }
            let read = self.source.read(up_to, self.limit);
            let failed = read.is_err();
            let empty = read.as_ref().is_ok_and(|batch| batch.is_empty());
            // Waits while the follower has a batch not taken yet; fails once it is gone.
            if self.batches.send(read).is_err() || failed {
                return;
            }
            if empty {
                std::thread::park_timeout(IDLE_PAUSE);
            }
        }
    }

    fn drop_spent(&self) {
        loop {
            match self.spent.try_recv() {
                Ok(batch) => drop(batch),
                Err(TryRecvError::Empty | TryRecvError::Disconnected) => return,
            }
        }
    }
}
