//! The semantic step: one frame (or rejected chunk) in, a decision out: what to archive
//! with which verdict, what to answer once it is durable, and what it means for the
//! connection. No I/O here; the connection task carries the decision out.

use hj212_archive::{Kind, NewRecord, Verdict, flags};
use hj212_config::{Encryption, Limits, TimeSync};
use hj212_proto::codec::FrameEvent;
use hj212_proto::encode::{self, CommandHeader, HostCommand, ReplyTo};
use hj212_proto::encryption::is_encrypted_cn;
use hj212_proto::model::Cn;
use hj212_proto::time::BeijingTime;
use hj212_proto::{Notes, Packet, SegmentText, crc};

use crate::Shared;
use crate::decrypt::Opened;
use crate::dedup::Seen;
use crate::metrics::IngestMetrics;

/// How a frame bears on the connection's failure counters.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Effect {
    /// Authenticated: both counters reset.
    Good,
    /// Unknown MN or wrong password.
    AuthFailure,
    /// Unframed bytes, bad CRC, unparseable or bad timestamps.
    BadFrame,
}

/// What to do with one frame.
#[derive(Debug)]
pub(crate) struct Decision {
    pub record: NewRecord,
    /// Replies to write once `record` is durable, with their CN for metrics.
    pub replies: Vec<(&'static str, Vec<u8>)>,
    /// A host command (1012 set-time, 1014 new key) with its CN, to archive, then send, after the replies.
    pub command: Option<(&'static str, Vec<u8>)>,
    /// The (MN, CN, QN) key this frame claimed; forgotten again if it cannot be archived.
    pub dedup_key: Option<u64>,
    pub effect: Effect,
    /// The MN of an authenticated frame.
    pub mn: Option<String>,
    /// Daemon events to archive once the frame is durable (SM4 key rotation steps).
    pub events: Vec<String>,
    /// The configured MN a wrong-password frame claims (the auth-failure alert reads the record).
    pub claimed_mn: Option<String>,
    /// A resend whose original record is already on disk (so the copy may be summarised).
    pub copy_of_durable: bool,
}

pub(crate) struct Context<'a> {
    pub shared: &'a Shared,
    pub peer: &'a str,
    pub now_ms: i64,
}

fn record(verdict: Verdict, flags: u8, ctx: &Context<'_>, data: &[u8]) -> NewRecord {
    NewRecord {
        kind: Kind::Received,
        verdict,
        flags,
        time_ms: ctx.now_ms,
        peer: ctx.peer.to_owned(),
        data: data.to_vec(),
    }
}

fn refuse(verdict: Verdict, effect: Effect, ctx: &Context<'_>, data: &[u8]) -> Decision {
    ctx.shared.metrics.verdict(verdict);
    Decision {
        record: record(verdict, 0, ctx, data),
        replies: Vec::new(),
        command: None,
        dedup_key: None,
        effect,
        mn: None,
        events: Vec::new(),
        claimed_mn: None,
        copy_of_durable: false,
    }
}

pub(crate) fn decide(event: &FrameEvent, ctx: &Context<'_>) -> Decision {
    let frame = match event {
        FrameEvent::Rejected { error, bytes } => {
            IngestMetrics::unframed(error.kind());
            tracing::debug!(%error, "bytes rejected");
            return refuse(Verdict::Unframed, Effect::BadFrame, ctx, bytes);
        }
        FrameEvent::Frame(frame) => frame,
    };
    let sites = ctx.shared.registry.snapshot();
    let decrypted;
    let (frame, key_role, dialect) = match crate::decrypt::open_frame(frame, &sites, &ctx.shared.keys) {
        Opened::AsIs(dialect) => (frame, None, dialect),
        Opened::Decrypted(plain, role, dialect) => {
            decrypted = plain;
            (&decrypted, Some(role), Some(dialect))
        }
        Opened::KeyOrCrcFailed { mn } => {
            IngestMetrics::decrypt_failure(&mn);
            tracing::warn!(mn, "encrypted frame: no key of the site gives a valid CRC; refused");
            return refuse(Verdict::DecryptOrCrc, Effect::BadFrame, ctx, &frame.bytes);
        }
    };
    let was_encrypted = key_role.is_some();
    let data = frame.data();
    ctx.shared.metrics.dialect(dialect);
    if dialect.is_none() {
        tracing::debug!(declared = format_args!("{:04X}", frame.layout.declared_crc), "bad CRC: frame dropped");
        return refuse(Verdict::BadCrc, Effect::BadFrame, ctx, &frame.bytes);
    }
    let text = SegmentText::new(data);
    let packet = match Packet::parse_text(&text) {
        Ok(packet) => packet,
        Err(error) => {
            tracing::debug!(%error, "unparseable frame");
            return refuse(Verdict::ParseError, Effect::BadFrame, ctx, &frame.bytes);
        }
    };
    let Some(site) = sites.get(packet.mn) else {
        // Debug only: a hostile peer would fill the journal; the counter and the archive's
        // refused summaries keep the evidence.
        tracing::debug!(mn = packet.mn, "unknown MN: frame refused");
        return refuse(Verdict::UnknownMn, Effect::AuthFailure, ctx, &frame.bytes);
    };
    if !site.password_matches(packet.pw) {
        // Never log the password, right or wrong. Debug only, as above: the auth_failure alert
        // names the site, and hj212_ingest_auth_failures_total counts.
        tracing::debug!(mn = packet.mn, "wrong password: frame refused");
        let mut decision = refuse(Verdict::BadPassword, Effect::AuthFailure, ctx, &frame.bytes);
        decision.claimed_mn = Some(packet.mn.to_owned());
        return decision;
    }
    if let Err(error) = crc::verify(data, frame.layout.declared_crc, site.crc) {
        tracing::warn!(mn = packet.mn, %error, "CRC dialect not allowed for this site");
        return refuse(Verdict::BadCrc, Effect::BadFrame, ctx, &frame.bytes);
    }
    let data_time = match check_times(&packet) {
        Ok(time) => time,
        Err(error) => {
            tracing::warn!(mn = packet.mn, error, "unreadable timestamp: frame refused");
            return refuse(Verdict::BadTimestamp, Effect::BadFrame, ctx, &frame.bytes);
        }
    };
    if site.encryption != Encryption::Off && is_encrypted_cn(packet.cn.code()) {
        if !was_encrypted && site.encryption == Encryption::Required {
            tracing::warn!(
                mn = packet.mn,
                cn = packet.cn.code(),
                "plaintext data command from a site that requires SM4"
            );
            return refuse(Verdict::NotEncrypted, Effect::BadFrame, ctx, &frame.bytes);
        }
        IngestMetrics::encryption(was_encrypted);
    }
    let mut notes = Notes::of_layout(&frame.layout);
    notes.extend(packet.notes);
    notes.iter().for_each(IngestMetrics::note);
    let mut events = Vec::new();
    if let Some(event) = key_role.and_then(|role| ctx.shared.keys.used(packet.mn, role)) {
        // The logger already uses the pending key (its 9012 was lost or is late).
        key_event(&mut events, &event);
    }
    let mut decision = accept(&packet, data_time, site.password(), &frame.bytes, ctx, events);
    if was_encrypted {
        decision.record.flags |= flags::DECRYPTED;
    }
    decision
}

/// QN and DataTime, where present, must be real times.
fn check_times(packet: &Packet<'_>) -> Result<Option<BeijingTime>, String> {
    if let Some(Err(e)) = packet.qn_time() {
        return Err(format!("QN: {e}"));
    }
    match packet.data_time_parsed() {
        Some(Err(e)) => Err(format!("DataTime: {e}")),
        Some(Ok(time)) => Ok(Some(time)),
        None => Ok(None),
    }
}

fn accept(
    packet: &Packet<'_>,
    data_time: Option<BeijingTime>,
    password: &str,
    bytes: &[u8],
    ctx: &Context<'_>,
    mut events: Vec<String>,
) -> Decision {
    let shared = ctx.shared;
    let marks = marks(packet, data_time, ctx.now_ms, &shared.limits);
    // Claimed now, not after the fsync, so copies pipelined in one batch are caught too.
    let dedup_key = dedup_key(packet);
    let seen = dedup_key.map(|k| shared.dedup.insert(k));
    let duplicate = matches!(seen, Some(Seen::Durable | Seen::Pending));
    let verdict = if duplicate { Verdict::Duplicate } else { Verdict::Accepted };
    shared.metrics.verdict(verdict);
    if duplicate {
        shared.metrics.duplicates.increment(1);
    }
    shared.states.update(packet.mn, |state| {
        if state.peer.as_deref() != Some(ctx.peer) {
            state.peer = Some(ctx.peer.to_owned());
        }
        state.last_frame_ms = Some(ctx.now_ms);
        // The newest DataTime, not the last one: hourly records and backfill carry older
        // times, and a future (clock-wrong) time must not hide a silent logger.
        let newest = data_time
            .filter(|_| marks & flags::FUTURE_TIME == 0)
            .map(|t| t.to_seconds_string())
            .filter(|t| state.last_data_time.as_deref().is_none_or(|last| t.as_str() > last));
        if let Some(time) = newest {
            state.last_data_time = Some(time);
        }
    });
    let to = ReplyTo::from(packet);
    let mut replies = Vec::new();
    let mut command = None;
    match packet.cn {
        Cn::TimeCalibrationRequest => {
            replies.extend(encode::notification_response(&to).ok().map(|r| ("9013", r)));
            command = set_time_command(packet, password, ctx).map(|c| ("1012", c));
        }
        Cn::NewKey => {
            // HJ 212-2025 App. C C7: a logger asking for a new SM4 key gets 9013, then the key.
            replies.extend(encode::notification_response(&to).ok().map(|r| ("9013", r)));
            match ctx.shared.keys.requested(packet.mn, ctx.now_ms) {
                Ok(Some(event)) => key_event(&mut events, &event),
                Ok(None) => {}
                Err(error) => tracing::warn!(mn = packet.mn, %error, "logger asks for a new SM4 key"),
            }
        }
        Cn::RequestResponse | Cn::ExecutionResult => key_reply(packet, ctx, &mut events),
        Cn::UploadLoggerSerial => {
            // HJ 212-2025: the logger's hardware identity, kept per MN and answered 9013.
            replies.extend(encode::notification_response(&to).ok().map(|r| ("9013", r)));
            let identity = packet.cp.trim_matches('&').to_owned();
            ctx.shared.states.update(packet.mn, |state| state.hardware = Some(identity));
        }
        Cn::Heartbeat => {
            replies.extend(encode::notification_response(&to).ok().map(|r| ("9013", r)));
        }
        Cn::NotificationResponse | Cn::DataResponse => {}
        _ if packet.wants_ack() => {
            replies.extend(encode::data_response(&to).ok().map(|r| ("9014", r)));
        }
        _ => {}
    }
    if command.is_none() && packet.cn == Cn::RealTimeData && !duplicate && packet.rf.is_none() {
        command = supervise_clock(packet, data_time, password, ctx).map(|c| ("1012", c));
    }
    if command.is_none() {
        command = key_delivery(packet, password, ctx).map(|c| ("1014", c));
    }
    Decision {
        record: record(verdict, marks, ctx, bytes),
        replies,
        command,
        dedup_key: if duplicate { None } else { dedup_key },
        effect: Effect::Good,
        mn: Some(packet.mn.to_owned()),
        events,
        claimed_mn: None,
        copy_of_durable: seen == Some(Seen::Durable),
    }
}

/// The same (MN, CN, QN), or for frames without QN (HJ/T 212-2005) the same (MN, CN, DataTime).
/// The content hash tells a true resend (byte-identical) from a different frame that reuses
/// the QN or, without QN, the DataTime (e.g. factors spread over two 2005-style frames).
pub(crate) fn dedup_key(packet: &Packet<'_>) -> Option<u64> {
    use std::hash::{Hash, Hasher};
    let id = packet.qn.or_else(|| packet.data_time())?;
    let mut hasher = std::collections::hash_map::DefaultHasher::new();
    (packet.mn, packet.cn.code(), id, packet.cp, packet.pno).hash(&mut hasher);
    Some(hasher.finish())
}

/// How long after DataTime a frame of this CN normally arrives (DataTime is the period start).
fn period_ms(cn: Cn) -> i64 {
    // HJ 212-2017 Table 4: for 2051/2061/2031/2041 DataTime is the start of the period; 2051 intervals go up to 30 min.
    match cn {
        Cn::MinuteData => 30 * 60_000,
        Cn::HourlyData => 3_600_000,
        Cn::DailyData | Cn::DailyRunTime => 86_400_000,
        _ => 0,
    }
}

fn marks(packet: &Packet<'_>, data_time: Option<BeijingTime>, now_ms: i64, limits: &Limits) -> u8 {
    let mut marks = 0;
    if packet.rf.is_some() {
        // HJ 212-2025 Table 3: RF=1 marks a re-send (补传); any other value is noted, still a re-send.
        marks |= flags::BACKFILL | flags::RESENT;
        IngestMetrics::mark("resent");
    }
    if let Some(time) = data_time {
        let age = now_ms - time.unix_millis();
        let skew = i64::try_from(limits.future_skew_secs.saturating_mul(1000)).unwrap_or(i64::MAX);
        let grace = i64::try_from(limits.backfill_grace_secs.saturating_mul(1000)).unwrap_or(i64::MAX);
        if -age > skew {
            marks |= flags::FUTURE_TIME;
            IngestMetrics::mark("future_time");
        }
        if age > period_ms(packet.cn).saturating_add(grace) {
            marks |= flags::BACKFILL;
        }
    }
    if marks & flags::BACKFILL != 0 {
        IngestMetrics::mark("backfill");
    }
    marks
}

/// A key-rotation step, for the log and (with the frame, durably, in order) the archive;
/// events name keys by fingerprint, never the key.
fn key_event(events: &mut Vec<String>, event: &crate::keys::KeyEvent) {
    let text = event.to_string();
    tracing::info!(event = %text, "SM4 key rotation");
    events.push(text);
}

/// A 9011 / 9012 that may answer the 1014 carrying a new key.
fn key_reply(packet: &Packet<'_>, ctx: &Context<'_>, events: &mut Vec<String>) {
    let (Some(qn), field) = (packet.qn, if packet.cn == Cn::RequestResponse { "QnRtn" } else { "ExeRtn" }) else {
        return;
    };
    let success = packet.get(field) == Some("1");
    if let Some(event) = ctx.shared.keys.reply(packet.mn, qn, packet.cn.code(), success) {
        key_event(events, &event);
    }
}

/// The 1014 carrying a pending key (App. C C8), its CP encrypted with the current key.
fn key_delivery(packet: &Packet<'_>, password: &str, ctx: &Context<'_>) -> Option<Vec<u8>> {
    let delivery = ctx.shared.keys.delivery(packet.mn, ctx.now_ms)?;
    let qn = BeijingTime::from_unix_millis(ctx.now_ms);
    let header = command_header(packet, password, qn);
    let plain = HostCommand::SetNewKey { created: delivery.created, key: delivery.key }
        .encode(&header)
        .inspect_err(|error| tracing::warn!(mn = packet.mn, %error, "cannot build the 1014 new-key command"))
        .ok()?;
    let bytes = match &delivery.encrypt_with {
        Some(key) => hj212_proto::encryption::encrypt_frame(&plain, key)?,
        None => plain,
    };
    ctx.shared.keys.sent(packet.mn, qn.to_qn_string(), ctx.now_ms);
    Some(bytes)
}

/// The header of a command to the logger that sent `packet`: its own ST (not the reply ST 91)
/// and protocol version.
fn command_header<'a>(packet: &Packet<'a>, password: &'a str, qn: BeijingTime) -> CommandHeader<'a> {
    CommandHeader {
        qn,
        st: packet.st.filter(|st| *st != "91").unwrap_or("32"),
        pw: password,
        mn: packet.mn,
        version: packet.version(),
    }
}

/// The 1012 that follows a 9013 to a 1013 time-calibration request (HJ 212-2017 App. C table C.4).
fn set_time_command(packet: &Packet<'_>, password: &str, ctx: &Context<'_>) -> Option<Vec<u8>> {
    let now = BeijingTime::from_unix_millis(ctx.now_ms);
    let header = command_header(packet, password, now);
    let command = HostCommand::SetFieldTime { time: now, pol_id: None }.encode(&header);
    match command {
        Ok(bytes) => {
            ctx.shared.states.update(packet.mn, |s| s.last_time_set_ms = Some(ctx.now_ms));
            ctx.shared.metrics.time_sets.increment(1);
            Some(bytes)
        }
        Err(error) => {
            tracing::warn!(mn = packet.mn, %error, "cannot build the 1012 set-time command");
            None
        }
    }
}

/// Offsets of successive real-time frames from one wrong clock agree within this.
const CONSISTENT_MS: u64 = 5_000;

/// Records the logger's clock offset from real-time data, and corrects it when it has been
/// off by more than the threshold, consistently, for `confirmations` frames in a row; at most
/// once per `min_interval_secs`.
fn supervise_clock(
    packet: &Packet<'_>,
    data_time: Option<BeijingTime>,
    password: &str,
    ctx: &Context<'_>,
) -> Option<Vec<u8>> {
    let time = data_time?;
    let offset = time.unix_millis() - ctx.now_ms;
    let TimeSync { enabled, max_offset_secs, min_interval_secs, confirmations } = ctx.shared.time_sync;
    let threshold = max_offset_secs.saturating_mul(1000);
    let due = ctx.shared.states.update(packet.mn, |state| {
        let off = offset.unsigned_abs() > threshold;
        // A wrong clock gives the same offset frame after frame (network delay varies by a
        // second or two); resent real-time data comes in bursts whose offsets step by the
        // real-time interval (>= 30 s). Repeats of one DataTime say nothing about the clock.
        let newer = state.last_rtd_ms.is_none_or(|last| time.unix_millis() > last);
        let consistent = state.clock_offset_ms.is_some_and(|last| (offset - last).unsigned_abs() <= CONSISTENT_MS);
        state.last_rtd_ms = Some(state.last_rtd_ms.map_or(time.unix_millis(), |last| last.max(time.unix_millis())));
        state.drift_streak = match (off, consistent) {
            _ if !newer => state.drift_streak,
            (false, _) => 0,
            (true, true) => state.drift_streak.saturating_add(1),
            (true, false) => 1,
        };
        state.clock_offset_ms = Some(offset);
        let since = state.last_time_set_ms.map_or(u64::MAX, |t| (ctx.now_ms - t).unsigned_abs());
        state.drift_streak >= confirmations.max(1) && since >= min_interval_secs.saturating_mul(1000)
    });
    if !(enabled && due) {
        return None;
    }
    tracing::info!(mn = packet.mn, offset_ms = offset, "logger clock is off: sending 1012");
    set_time_command(packet, password, ctx)
}
