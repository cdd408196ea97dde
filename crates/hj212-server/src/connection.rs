//! One data-logger connection: read, frame, decide, archive, and reply only after the
//! archive has fsynced. Frames read together are submitted together, so they share one
//! fsync (pipelining), bounded by `max_in_flight_per_connection`.

use std::collections::VecDeque;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::BytesMut;
use hj212_archive::{Kind, NewRecord, Pending, Verdict, now_ms};
use hj212_proto::codec::{FrameEvent, Hj212Codec};
use hj212_proto::framer::FramerConfig;
use tokio::io::AsyncWriteExt;
use tokio::net::TcpStream;
use tokio::net::tcp::OwnedWriteHalf;
use tokio::sync::OwnedSemaphorePermit;
use tokio_util::codec::Decoder;
use tokio_util::sync::CancellationToken;
use tracing::Instrument;

use crate::Shared;
use crate::decide::{Context, Decision, Effect, decide};
use crate::metrics::IngestMetrics;

/// Bytes asked of the socket per read.
const READ_CHUNK: usize = 4096;

/// What is left of a decision while its record is being made durable.
struct InFlight {
    pending: Pending,
    replies: Vec<(&'static str, Vec<u8>)>,
    command: Option<(&'static str, Vec<u8>)>,
    dedup_key: Option<u64>,
    read_at: Instant,
    /// Daemon events to archive after the frame (key rotation steps).
    events: Vec<String>,
}

struct Session {
    peer: String,
    shared: Arc<Shared>,
    codec: Hj212Codec,
    auth_failures: u32,
    bad_frames: u32,
    mns: Vec<String>,
    in_flight: VecDeque<InFlight>,
}

/// Why a connection ended (a metric label).
#[derive(Debug, Clone, Copy)]
enum Close {
    Eof,
    Idle,
    AuthFailures,
    BadFrames,
    Io,
    Archive,
    Shutdown,
}

impl Close {
    fn as_str(self) -> &'static str {
        match self {
            Self::Eof => "eof",
            Self::Idle => "idle",
            Self::AuthFailures => "auth_failures",
            Self::BadFrames => "bad_frames",
            Self::Io => "io_error",
            Self::Archive => "archive_error",
            Self::Shutdown => "shutdown",
        }
    }
}

pub(crate) async fn run(
    stream: TcpStream,
    peer: SocketAddr,
    shared: Arc<Shared>,
    shutdown: CancellationToken,
    _permit: OwnedSemaphorePermit,
) {
    let span = tracing::info_span!("conn", peer = %peer, mn = tracing::field::Empty);
    async move {
        shared.metrics.connections_active.increment(1.0);
        let _ = stream.set_nodelay(true);
        let config = FramerConfig { max_data_len: shared.limits.max_frame_len, crc_gate: false };
        let mut session = Session {
            peer: peer.to_string(),
            shared: shared.clone(),
            codec: Hj212Codec::new(config),
            auth_failures: 0,
            bad_frames: 0,
            mns: Vec::new(),
            in_flight: VecDeque::new(),
        };
        let reason = session.serve(stream, &shutdown).await;
        tracing::debug!(reason = reason.as_str(), "connection closed");
        IngestMetrics::closed(reason.as_str());
        session.leave();
        shared.metrics.connections_active.decrement(1.0);
    }
    .instrument(span)
    .await;
}

impl Session {
    async fn serve(&mut self, stream: TcpStream, shutdown: &CancellationToken) -> Close {
        let idle = Duration::from_secs(self.shared.limits.idle_timeout_secs);
        let (reader, mut writer) = stream.into_split();
        let mut buf = BytesMut::new();
        loop {
            // An idle connection holds no read buffer: 10,000 quiet loggers cost little.
            if buf.is_empty() {
                buf = BytesMut::new();
            }
            let ready = tokio::select! {
                ready = tokio::time::timeout(idle, reader.readable()) => ready,
                () = shutdown.cancelled() => return self.keep_partial(&buf, Close::Shutdown).await,
            };
            match ready {
                Err(_) => return self.keep_partial(&buf, Close::Idle).await,
                Ok(Err(_)) => return self.keep_partial(&buf, Close::Io).await,
                Ok(Ok(())) => {}
            }
            buf.reserve(READ_CHUNK);
            let eof = match reader.try_read_buf(&mut buf) {
                Ok(0) => true,
                Ok(n) => {
                    self.shared.metrics.received_bytes.increment(n as u64);
                    false
                }
                Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => continue,
                Err(_) => return self.keep_partial(&buf, Close::Io).await,
            };
            // Boxed: the processing state exists only while frames are handled, so an
            // idle connection's task stays small.
            if let Some(close) = Box::pin(self.process(&mut buf, eof, &mut writer)).await {
                return close;
            }
            if eof {
                return Close::Eof;
            }
        }
    }

    /// Decides on every complete frame in `buf`, archives them, and answers.
    async fn process(&mut self, buf: &mut BytesMut, eof: bool, writer: &mut OwnedWriteHalf) -> Option<Close> {
        let read_at = Instant::now();
        loop {
            let event = if eof { self.codec.decode_eof(buf) } else { self.codec.decode(buf) };
            let Ok(Some(event)) = event else { break };
            let decision = self.decide(&event);
            if let Some(close) = self.count(decision.effect) {
                // Archive the frame that tipped it, then close.
                let _ = self.submit(decision, read_at).await;
                let _ = self.flush(writer).await;
                return Some(close);
            }
            if let Err(close) = self.submit(decision, read_at).await {
                return Some(close);
            }
            if self.in_flight.len() >= self.shared.limits.max_in_flight_per_connection
                && let Err(close) = self.flush(writer).await
            {
                return Some(close);
            }
        }
        self.flush(writer).await.err()
    }

    fn decide(&mut self, event: &FrameEvent) -> Decision {
        let now_ms = now_ms();
        let ctx = Context { shared: &self.shared, peer: &self.peer, now_ms };
        let decision = decide(event, &ctx);
        if let Some(mn) = &decision.mn
            && !self.mns.contains(mn)
        {
            if self.mns.is_empty() {
                tracing::Span::current().record("mn", mn.as_str());
            }
            self.shared.states.update(mn, |s| s.connections += 1);
            self.mns.push(mn.clone());
        }
        decision
    }

    /// Updates the consecutive-failure counters; returns a reason to close when a limit is hit.
    fn count(&mut self, effect: Effect) -> Option<Close> {
        let limits = &self.shared.limits;
        match effect {
            Effect::Good => {
                self.auth_failures = 0;
                self.bad_frames = 0;
            }
            Effect::AuthFailure => {
                self.auth_failures += 1;
                if self.auth_failures >= limits.max_auth_failures {
                    return Some(Close::AuthFailures);
                }
            }
            Effect::BadFrame => {
                self.bad_frames += 1;
                if self.bad_frames >= limits.max_bad_frames {
                    return Some(Close::BadFrames);
                }
            }
        }
        None
    }

    async fn submit(&mut self, decision: Decision, read_at: Instant) -> Result<(), Close> {
        let Decision { record, replies, command, dedup_key, events, .. } = decision;
        let pending = self.shared.archive.submit(record).await.map_err(|_| Close::Archive)?;
        self.in_flight.push_back(InFlight { pending, replies, command, dedup_key, read_at, events });
        Ok(())
    }

    /// Waits for each in-flight record to be durable, in order, then writes its replies.
    async fn flush(&mut self, writer: &mut OwnedWriteHalf) -> Result<(), Close> {
        let write_timeout = Duration::from_secs(self.shared.limits.write_timeout_secs);
        let mut out = Vec::new();
        let mut latencies = Vec::new();
        while let Some(InFlight { pending, replies, command, dedup_key, read_at, events }) = self.in_flight.pop_front()
        {
            if let Err(error) = pending.durable().await {
                // Not on disk: no acknowledgement, and the logger's resend is not a duplicate.
                tracing::error!(%error, "archive append failed; frame not acknowledged");
                self.forget_claims(dedup_key);
                return Err(Close::Archive);
            }
            for text in events {
                self.archive_own(Kind::Event, Verdict::Info, text.into_bytes()).await?;
            }
            for (cn, reply) in &replies {
                IngestMetrics::reply(cn);
                out.extend_from_slice(reply);
            }
            if let Some((cn, command)) = command {
                // Queued for the write below, which happens only once this is archived.
                out.extend_from_slice(&command);
                self.archive_own(Kind::Sent, Verdict::Command, command).await?;
                IngestMetrics::reply(cn);
            }
            if !replies.is_empty() {
                latencies.push(read_at);
            }
        }
        // Give back what a burst used; idle connections hold no queue.
        self.in_flight.shrink_to(0);
        if out.is_empty() {
            return Ok(());
        }
        match tokio::time::timeout(write_timeout, writer.write_all(&out)).await {
            Ok(Ok(())) => {
                for read_at in latencies {
                    self.shared.metrics.ack_latency.record(read_at.elapsed().as_secs_f64());
                }
                Ok(())
            }
            _ => Err(Close::Io),
        }
    }

    /// Bytes of an unfinished frame when the connection ends are archived too (everything
    /// received is in the archive), as unframed.
    async fn keep_partial(&self, buf: &BytesMut, close: Close) -> Close {
        if !buf.is_empty() {
            IngestMetrics::unframed("truncated");
            let record = NewRecord {
                kind: Kind::Received,
                verdict: Verdict::Unframed,
                flags: 0,
                time_ms: now_ms(),
                peer: self.peer.clone(),
                data: buf.to_vec(),
            };
            let _ = self.shared.archive.append(record).await;
        }
        close
    }

    /// Commands the daemon sends are part of the audit trail: archived before they go out.
    /// Archives something the daemon did (an event, or a command it sends), before it counts as done.
    async fn archive_own(&self, kind: Kind, verdict: Verdict, data: Vec<u8>) -> Result<(), Close> {
        let record = NewRecord { kind, verdict, flags: 0, time_ms: now_ms(), peer: self.peer.clone(), data };
        self.shared.archive.append(record).await.map(|_| ()).map_err(|_| Close::Archive)
    }

    fn forget_claims(&mut self, first: Option<u64>) {
        let later: Vec<u64> = self.in_flight.drain(..).filter_map(|f| f.dedup_key).collect();
        for key in first.into_iter().chain(later) {
            self.shared.dedup.remove(key);
        }
    }

    fn leave(&self) {
        for mn in &self.mns {
            self.shared.states.update(mn, |s| s.connections = s.connections.saturating_sub(1));
        }
    }
}
