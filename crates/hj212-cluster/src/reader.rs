//! The cluster's stream as a follower's feed (`[cluster] store_from = "stream"`): the store
//! of every node follows the stream, which holds every node's records with each frame once, so
//! each node's rates, reports and console show what the nodes received together. Positions
//! are the stream's sequence numbers.

use std::time::Duration;

use async_nats::jetstream::consumer::DeliverPolicy;
use async_nats::jetstream::consumer::pull::OrderedConfig;
use async_nats::jetstream::stream::Stream;
use futures_util::StreamExt as _;
use hj212_follow::{Batch, Feed, FollowError, Interpreted, OpenFeed};
use tokio::runtime::Handle;
use tokio::sync::{mpsc, watch};
use tokio::task::JoinHandle;

use crate::connect::{Connection, Settings};
use crate::message::{NODE, NUMBERED};
use crate::metrics::FOREIGN;

/// How long a read waits for the stream before it returns nothing (the runner then ticks,
/// or sees the stop).
const READ_WAIT: Duration = Duration::from_secs(1);
/// Batches read from the stream ahead of the follower.
const AHEAD: usize = 2;

/// Opens feeds of the stream, one per (re)start of a follower.
#[derive(Debug)]
pub struct StreamFeeds {
    settings: Settings,
    runtime: Handle,
    /// The newest sequence number the stream is known to hold.
    head: watch::Sender<u64>,
}

impl StreamFeeds {
    pub fn new(settings: Settings, runtime: Handle) -> Self {
        Self { settings, runtime, head: watch::Sender::new(0) }
    }

    /// `stream:{name}`: what a store fed from this stream was built from.
    pub fn source_name(&self) -> String {
        format!("stream:{}", self.settings.stream)
    }
}

impl OpenFeed for StreamFeeds {
    fn open(&self, position: u64, limit: usize, name: &'static str) -> std::io::Result<Box<dyn Feed>> {
        let stream = self.runtime.block_on(async {
            let connection = Connection::open(&self.settings).await?;
            let mut stream = connection.stream;
            let last = stream.info().await?.state.last_sequence;
            raise(&self.head, last);
            Ok::<_, FollowError>(stream)
        });
        let stream = stream.map_err(std::io::Error::other)?;
        let (batches, receiver) = mpsc::channel(AHEAD);
        let task = self.runtime.spawn(deliver(stream, position, limit.max(1), batches, self.head.clone()));
        tracing::info!(
            follower = name,
            after = position,
            stream = self.settings.stream,
            "following the cluster's stream"
        );
        Ok(Box::new(StreamFeed { fed: position, batches: receiver, task, runtime: self.runtime.clone() }))
    }

    fn head(&self) -> watch::Receiver<u64> {
        self.head.subscribe()
    }
}

/// The newest sequence number the stream holds (0: empty).
///
/// # Errors
/// The stream cannot be reached.
pub async fn newest_seq(settings: &Settings) -> Result<u64, FollowError> {
    let mut stream = Connection::open(settings).await?.stream;
    Ok(stream.info().await?.state.last_sequence)
}

fn raise(head: &watch::Sender<u64>, seq: u64) {
    head.send_if_modified(|at| {
        let moved = seq > *at;
        *at = (*at).max(seq);
        moved
    });
}

/// Records after a position, delivered by an ordered consumer of the stream.
struct StreamFeed {
    fed: u64,
    /// Each batch with the sequence number of the last message it covers (a message that is
    /// not a record is left out of the batch, not out of the position).
    batches: mpsc::Receiver<Result<(Batch, u64), FollowError>>,
    task: JoinHandle<()>,
    runtime: Handle,
}

impl Feed for StreamFeed {
    fn fed(&self) -> u64 {
        self.fed
    }

    fn read(&mut self, _up_to: u64) -> std::io::Result<Batch> {
        // The timer is made inside the daemon's runtime (this thread has none of its own).
        let batches = &mut self.batches;
        match self.runtime.block_on(async { tokio::time::timeout(READ_WAIT, batches.recv()).await }) {
            Err(_waited) => Ok(Batch::detached(Vec::new())),
            Ok(None) => Err(std::io::Error::other("the stream's reader stopped")),
            Ok(Some(Err(error))) => Err(std::io::Error::other(error)),
            Ok(Some(Ok((batch, last)))) => {
                self.fed = self.fed.max(last);
                Ok(batch)
            }
        }
    }
}

impl Drop for StreamFeed {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// Reads the stream after `position` into batches of up to `limit` records, sent as soon as
/// the stream has nothing more pending; ends with the error that stopped it.
async fn deliver(
    stream: Stream,
    position: u64,
    limit: usize,
    batches: mpsc::Sender<Result<(Batch, u64), FollowError>>,
    head: watch::Sender<u64>,
) {
    let read = async {
        let deliver_policy = if position == 0 {
            DeliverPolicy::All
        } else {
            DeliverPolicy::ByStartSequence { start_sequence: position + 1 }
        };
        let consumer = stream.create_consumer(OrderedConfig { deliver_policy, ..OrderedConfig::default() }).await?;
        let mut messages = consumer.messages().await?;
        let mut records = Vec::with_capacity(limit);
        while let Some(message) = messages.next().await {
            let message = message?;
            let info = message.info()?;
            let (seq, pending) = (info.stream_sequence, info.pending);
            match crate::message::record(seq, &message.subject, message.headers.as_ref(), &message.payload) {
                Ok(record) => {
                    let mut interpreted = Interpreted::new(record);
                    let header =
                        |name| message.headers.as_ref().and_then(|h| h.get(name)).map(async_nats::HeaderValue::as_str);
                    if header(NUMBERED) != Some("stream") {
                        let node = header(NODE).unwrap_or_default();
                        crate::corrections::renumber(&stream, &mut interpreted, &message.subject, node).await?;
                    }
                    records.push(interpreted);
                }
                Err(foreign) => {
                    metrics::counter!(FOREIGN).increment(1);
                    tracing::warn!(%foreign, "skipped: not a record published by hj212d");
                }
            }
            raise(&head, seq + pending);
            if records.len() >= limit || pending == 0 {
                let batch = Batch::detached(std::mem::replace(&mut records, Vec::with_capacity(limit)));
                if batches.send(Ok((batch, seq))).await.is_err() {
                    return Ok(());
                }
            }
        }
        Err::<(), FollowError>("the stream's consumer ended".into())
    };
    if let Err(error) = read.await {
        let _ = batches.send(Err(error)).await;
    }
}
