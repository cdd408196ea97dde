//! One data-logger connection: read, frame, decide, archive, and reply only after the
//! archive has fsynced. Frames read together are submitted together, so they share one
//! fsync (pipelining), bounded by `max_in_flight_per_connection`. Refused chunks and resends
//! are archived in full only within the peer's budget (`refused`); a connection without an
//! authenticated frame by the first-frame deadline is closed, and it may be evicted
//! (`admission`) until it has one.

use std::collections::VecDeque;
use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use bytes::BytesMut;
use hj212_archive::{Kind, NewRecord, Pending, Verdict, now_ms};
use hj212_proto::codec::{FrameEvent, Hj212Codec};
use hj212_proto::framer::FramerConfig;
use tokio::io::AsyncWriteExt;
use tokio::net::TcpStream;
use tokio::net::tcp::OwnedWriteHalf;
use tokio_util::codec::Decoder;
use tokio_util::sync::CancellationToken;
use tracing::Instrument;

use crate::Shared;
use crate::admission::Ticket;
use crate::decide::{Answer, Decision, Effect};
use crate::metrics::IngestMetrics;
use crate::refused::Rule;

/// Bytes asked of the socket per read ...
const READ_CHUNK: usize = 4096;
/// ... doubling up to this while each read fills what was asked: a peer that pipelines (a
/// relay forwarding thousands of frames) gets more frames per fsync, a logger sending one
/// frame at a time never grows its buffer.
const MAX_READ_CHUNK: usize = 64 * 1024;

/// Numbers connections for the command channel (which connection carries a site).
static NEXT_CONNECTION: AtomicU64 = AtomicU64::new(1);

/// What is left of a decision while its record is being made durable.
struct InFlight {
    /// `None` for a resend counted in a summary instead of archived (its original is on disk).
    pending: Option<Pending>,
    replies: Vec<(&'static str, Vec<u8>)>,
    command: Option<(&'static str, Vec<u8>)>,
    dedup_key: Option<u64>,
    read_at: Instant,
    /// Daemon events to archive after the frame (key rotation steps).
    events: Vec<String>,
    /// For the command channel, with the frame's MN.
    answer: Option<(String, Answer)>,
}

struct Session {
    peer: String,
    /// The peer's address, which refused-traffic budgets and connection limits are kept by.
    ip: IpAddr,
    shared: Arc<Shared>,
    ticket: Ticket,
    /// Until the first authenticated frame: the connection is closed if none has come by then.
    first_frame_deadline: Option<Instant>,
    codec: Hj212Codec,
    auth_failures: u32,
    bad_frames: u32,
    mns: Vec<String>,
    in_flight: VecDeque<InFlight>,
    /// This connection's number for the command channel.
    number: u64,
    /// Host commands for the sites it carries (made at its first authenticated frame).
    downlink: Option<Arc<hj212_commands::Mailbox>>,
}

/// Why a connection ended (a metric label).
#[derive(Debug, Clone, Copy)]
enum Close {
    Eof,
    Idle,
    FirstFrame,
    Evicted,
    AuthFailures,
    BadFrames,
    Io,
    Archive,
    /// `ack_after = "cluster"`: the stream did not store a frame in time.
    Cluster,
    Shutdown,
}

impl Close {
    fn as_str(self) -> &'static str {
        match self {
            Self::Eof => "eof",
            Self::Idle => "idle",
            Self::FirstFrame => "first_frame_timeout",
            Self::Evicted => "evicted",
            Self::AuthFailures => "auth_failures",
            Self::BadFrames => "bad_frames",
            Self::Io => "io_error",
            Self::Archive => "archive_error",
            Self::Cluster => "cluster_timeout",
            Self::Shutdown => "shutdown",
        }
    }
}

pub(crate) async fn run(
    stream: TcpStream,
    peer: SocketAddr,
    shared: Arc<Shared>,
    shutdown: CancellationToken,
    ticket: Ticket,
) {
    let span = tracing::info_span!("conn", peer = %peer, mn = tracing::field::Empty);
    async move {
        shared.metrics.connections_active.increment(1.0);
        let _ = stream.set_nodelay(true);
        let config = FramerConfig { max_data_len: shared.limits.max_frame_len, crc_gate: false };
        let first_frame = Duration::from_secs(shared.limits.first_frame_timeout_secs);
        let mut session = Session {
            peer: peer.to_string(),
            ip: crate::peer_key(peer.ip()),
            shared: shared.clone(),
            ticket,
            first_frame_deadline: Some(Instant::now() + first_frame),
            codec: Hj212Codec::new(config),
            auth_failures: 0,
            bad_frames: 0,
            mns: Vec::new(),
            in_flight: VecDeque::new(),
            number: NEXT_CONNECTION.fetch_add(1, Ordering::Relaxed),
            downlink: None,
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
        let evicted = self.ticket.evicted().clone();
        let (reader, mut writer) = stream.into_split();
        let mut buf = BytesMut::new();
        let mut chunk = READ_CHUNK;
        loop {
            release_spare(&mut buf);
            let wait = match self.wait_limit() {
                Ok(wait) => wait,
                Err(close) => return self.keep_partial(&buf, close).await,
            };
            let ready = tokio::select! {
                ready = tokio::time::timeout(wait, reader.readable()) => ready,
                () = shutdown.cancelled() => return self.keep_partial(&buf, Close::Shutdown).await,
                () = evicted.cancelled() => return self.keep_partial(&buf, Close::Evicted).await,
                commands = next_commands(self.downlink.as_deref()) => {
                    for outgoing in commands {
                        if let Err(close) = self.send_command(outgoing, &mut writer).await {
                            return self.keep_partial(&buf, close).await;
                        }
                    }
                    continue;
                }
            };
            match ready {
                Err(_) => {
                    let close = self.wait_limit().err().unwrap_or(Close::Idle);
                    return self.keep_partial(&buf, close).await;
                }
                Ok(Err(_)) => return self.keep_partial(&buf, Close::Io).await,
                Ok(Ok(())) => {}
            }
            buf.reserve(chunk);
            let room = buf.capacity() - buf.len();
            let eof = match reader.try_read_buf(&mut buf) {
                Ok(0) => true,
                Ok(n) => {
                    self.shared.metrics.received_bytes.increment(n as u64);
                    chunk = if n == room { (chunk * 2).min(MAX_READ_CHUNK) } else { READ_CHUNK };
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

    /// How long to wait for bytes: the idle timeout, or less until the first-frame deadline;
    /// the reason to close once that deadline has passed.
    fn wait_limit(&self) -> Result<Duration, Close> {
        let idle = Duration::from_secs(self.shared.limits.idle_timeout_secs);
        let Some(deadline) = self.first_frame_deadline else { return Ok(idle) };
        match deadline.checked_duration_since(Instant::now()) {
            Some(left) if !left.is_zero() => Ok(idle.min(left)),
            _ => Err(Close::FirstFrame),
        }
    }

    /// Decides on every complete frame in `buf`, archives them, and answers.
    async fn process(&mut self, buf: &mut BytesMut, eof: bool, writer: &mut OwnedWriteHalf) -> Option<Close> {
        let read_at = Instant::now();
        loop {
            let event = if eof { self.codec.decode_eof(buf) } else { self.codec.decode(buf) };
            let Ok(Some(event)) = event else { break };
            let decision = self.decide(&event);
            if let Some(close) = self.count(decision.effect()) {
                // Archive the frame that tipped it, then close.
                let _ = self.submit(decision, read_at).await;
                let _ = self.flush(writer).await;
                return Some(close);
            }
            if let Err(close) = self.submit(decision, read_at).await {
                // What is already on its way is answered (or forgotten) as usual.
                let _ = self.flush(writer).await;
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
        let decision = crate::apply::decide(&self.shared, event, &self.peer, now_ms());
        if let Some(mn) = &decision.mn
            && !self.mns.contains(mn)
        {
            if self.mns.is_empty() {
                tracing::Span::current().record("mn", mn.as_str());
            }
            self.shared.states.update(mn, |s| s.connections += 1);
            self.mns.push(mn.clone());
            let mailbox = self.downlink.get_or_insert_with(Arc::default).clone();
            self.shared.commands.attach(mn, hj212_commands::Carrier { conn: self.number, mailbox });
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
                if self.first_frame_deadline.take().is_some() {
                    self.ticket.authenticated();
                }
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
        let pending = if self.archived_in_full(&decision) {
            let Ok(pending) = self.shared.archive.submit(decision.record).await else {
                // Never archived: a resend of this frame is not a duplicate.
                if let Some(key) = decision.dedup_key {
                    self.shared.dedup.remove(key);
                }
                return Err(Close::Archive);
            };
            Some(pending)
        } else if decision.replies.is_empty() {
            return Ok(());
        } else {
            None
        };
        let Decision { replies, command, dedup_key, events, answer, mn, .. } = decision;
        let answer = answer.zip(mn).map(|(answer, mn)| (mn, answer));
        self.in_flight.push_back(InFlight { pending, replies, command, dedup_key, read_at, events, answer });
        Ok(())
    }

    /// Good frames always; refused ones and resends within the peer's budget (see `refused`).
    fn archived_in_full(&self, decision: &Decision) -> bool {
        let record = &decision.record;
        let rule = match record.verdict {
            Verdict::Accepted => return true,
            // A copy is only left out once its original is on disk, and never when it
            // carries a command or event of its own.
            Verdict::Duplicate
                if !decision.copy_of_durable || decision.command.is_some() || !decision.events.is_empty() =>
            {
                Rule::Keep
            }
            Verdict::BadPassword => decision.claimed_mn().map_or(Rule::Budget, Rule::WrongPassword),
            _ => Rule::Budget,
        };
        self.shared.refused.admit(self.ip, record.verdict, &record.data, rule, record.time_ms)
    }

    /// Waits for each in-flight record to be durable, in order, then writes its replies.
    /// Whatever the outcome, every claimed resend key ends up either marked durable (its frame
    /// is on disk) or forgotten (it is not: the logger's resend is a new frame).
    async fn flush(&mut self, writer: &mut OwnedWriteHalf) -> Result<(), Close> {
        let write_timeout = Duration::from_secs(self.shared.limits.write_timeout_secs);
        let mut out = Vec::new();
        let mut latencies = Vec::new();
        let mut durable_keys = Vec::new();
        let settled = self.settle(&mut out, &mut latencies, &mut durable_keys).await;
        self.shared.dedup.durable(&durable_keys);
        if let Err(close) = settled {
            self.forget_claims(None);
            return Err(close);
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

    /// Waits for the in-flight records in order and collects their replies; stops at the first
    /// that is not durable (its key forgotten; the rest are left for the caller to forget).
    async fn settle(
        &mut self,
        out: &mut Vec<u8>,
        latencies: &mut Vec<Instant>,
        durable_keys: &mut Vec<u64>,
    ) -> Result<(), Close> {
        while let Some(InFlight { pending, replies, command, dedup_key, read_at, events, answer }) =
            self.in_flight.pop_front()
        {
            let seq = match pending {
                Some(pending) => match pending.durable().await {
                    Ok(seq) => seq,
                    Err(error) => {
                        // Not on disk: no acknowledgement, and the logger's resend is not a duplicate.
                        tracing::error!(%error, "archive append failed; frame not acknowledged");
                        self.forget_claims(dedup_key);
                        return Err(Close::Archive);
                    }
                },
                // A summarised resend is answered only while the archive works.
                None if !self.shared.archive.is_healthy() => return Err(Close::Archive),
                // Its original is durable, at most at the archive's head.
                None => *self.shared.archive.durable().borrow(),
            };
            durable_keys.extend(dedup_key);
            if let Some(cluster) = &self.shared.cluster_ack
                && !cluster.stored(seq).await
            {
                // On disk here, not yet in the stream: no acknowledgement; the resend is a
                // copy of a durable frame, acknowledged once the stream has the original.
                tracing::warn!(seq, "the cluster's stream did not store the frame in time; not acknowledged");
                return Err(Close::Cluster);
            }
            if let Some((mn, answer)) = answer {
                crate::downlink::tell(&self.shared, &mn, answer);
            }
            for text in events {
                self.archive_own(Kind::Event, Verdict::Info, text.into_bytes()).await?;
            }
            for (cn, reply) in &replies {
                self.shared.metrics.reply(cn);
                out.extend_from_slice(reply);
            }
            if let Some((cn, command)) = command {
                // Queued for the write below, which happens only once this is archived.
                out.extend_from_slice(&command);
                self.archive_own(Kind::Sent, Verdict::Command, command).await?;
                self.shared.metrics.reply(cn);
            }
            if !replies.is_empty() {
                latencies.push(read_at);
            }
        }
        Ok(())
    }

    /// Archives a host command, then writes it (commands are evidence before they go out).
    async fn send_command(&self, outgoing: hj212_commands::Outgoing, writer: &mut OwnedWriteHalf) -> Result<(), Close> {
        let bytes = match crate::downlink::frame_of(&self.shared, &outgoing) {
            Ok(bytes) => bytes,
            Err(reason) => {
                tracing::warn!(mn = outgoing.mn, cn = outgoing.cn, reason, "host command cannot be sent");
                self.shared.commands.undeliverable(&outgoing.mn, outgoing.id, reason, now_ms());
                return Ok(());
            }
        };
        self.archive_own(Kind::Sent, Verdict::Command, bytes.clone()).await?;
        let write_timeout = Duration::from_secs(self.shared.limits.write_timeout_secs);
        match tokio::time::timeout(write_timeout, writer.write_all(&bytes)).await {
            Ok(Ok(())) => Ok(()),
            _ => Err(Close::Io),
        }
    }

    /// Bytes of an unfinished frame when the connection ends are archived too (everything
    /// received is in the archive), as unframed.
    async fn keep_partial(&self, buf: &BytesMut, close: Close) -> Close {
        let now_ms = now_ms();
        if !buf.is_empty() {
            IngestMetrics::unframed("truncated");
            if !self.shared.refused.admit(self.ip, Verdict::Unframed, buf, Rule::Budget, now_ms) {
                return close;
            }
            let record = NewRecord {
                kind: Kind::Received,
                verdict: Verdict::Unframed,
                flags: 0,
                time_ms: now_ms,
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
            self.shared.commands.detach(mn, self.number);
        }
    }
}

/// The next host commands for this connection; never ready before its first authenticated frame.
async fn next_commands(mailbox: Option<&hj212_commands::Mailbox>) -> Vec<hj212_commands::Outgoing> {
    match mailbox {
        Some(mailbox) => mailbox.next().await,
        None => std::future::pending().await,
    }
}

/// Before waiting for bytes: an idle connection holds no read buffer, and one waiting for the
/// rest of a frame only about what it has (a 1-byte remainder must not pin a 4 KiB read
/// buffer or a maximum frame), so 10,000 quiet or slow peers cost little. Copies at most as
/// many bytes as it frees.
fn release_spare(buf: &mut BytesMut) {
    if buf.is_empty() {
        *buf = BytesMut::new();
    } else if buf.capacity() - buf.len() > buf.len() {
        *buf = BytesMut::from(&buf[..]);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_small_remainder_does_not_keep_the_read_buffer() {
        let mut empty = BytesMut::with_capacity(READ_CHUNK);
        release_spare(&mut empty);
        assert_eq!(empty.capacity(), 0);
        let mut buf = BytesMut::with_capacity(READ_CHUNK);
        buf.extend_from_slice(b"#");
        release_spare(&mut buf);
        assert_eq!((&buf[..], buf.capacity() < 64), (&b"#"[..], true), "capacity {}", buf.capacity());
        // Most of a large frame: kept as it is (no copy for little gain).
        let mut big = BytesMut::with_capacity(2 * READ_CHUNK);
        big.extend_from_slice(&[b'#'; READ_CHUNK + 10]);
        let before = big.as_ptr();
        release_spare(&mut big);
        assert_eq!(big.as_ptr(), before);
    }
}
