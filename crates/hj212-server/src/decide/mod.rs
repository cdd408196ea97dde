//! The semantic step, as values: a frame (or a rejected chunk) in, a decision out: what to
//! archive with which verdict, what to answer once it is durable, what to count and log, and
//! what the frame means for the connection and its site. Nothing here takes a lock, counts a
//! metric, logs or does I/O: the caller (`apply`) hands in the state the decision needs and
//! carries the decision out.
//!
//! Two answers depend on shared state that only the frame itself names (its resend key and
//! its site), so a frame is decided in three steps:
//! 1. [`check`] (or [`unframed`], [`undecryptable`]): who sent it and whether it is
//!    well-formed. A refusal is a whole [`Decision`].
//! 2. [`Authentic::observe`]: what an authenticated frame tells of its site, written into the
//!    site's plain [`SiteState`], given what claiming its resend key said.
//! 3. [`Authentic::answer`]: the record, replies and command, given the claim and what the
//!    site's state said about its clock.
//!
//! What a frame asks of its site's SM4 keys ([`Authentic::key_step`]) is carried out by the
//! caller's key store, which keeps and saves the keys; [`Authentic::key_command`] builds the
//! 1014 that delivers one.

mod clock;
#[cfg(test)]
mod tests;

use std::collections::HashMap;

use hj212_archive::{Kind, NewRecord, Verdict, flags};
use hj212_config::{Encryption, Limits, TimeSync};
use hj212_proto::codec::Frame;
use hj212_proto::crc::{self, CrcDialect, CrcError};
use hj212_proto::encode::{self, CommandHeader, EncodeError, HostCommand, ReplyTo};
use hj212_proto::encryption::{encrypt_frame, is_encrypted_cn};
use hj212_proto::framer::FrameError;
use hj212_proto::model::Cn;
use hj212_proto::packet::ParseError;
use hj212_proto::time::BeijingTime;
use hj212_proto::{Notes, Packet, SegmentText};

use crate::dedup::Seen;
use crate::keys::Delivery;
use crate::sites::{SiteEntry, SiteState};

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

/// Why a frame was refused: its verdict, its effect on the connection, and what the caller
/// logs (never a password).
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Refusal {
    /// Bytes that are not a frame.
    Unframed(FrameError),
    /// An encrypted frame of this configured site that no key of it opens to a valid CRC.
    Undecryptable {
        mn: String,
    },
    /// No CRC dialect gives the declared value.
    BadCrc {
        declared: u16,
    },
    Unparseable(ParseError),
    UnknownMn {
        mn: String,
    },
    /// The configured MN a wrong-password frame claims (the auth-failure alert reads its record).
    WrongPassword {
        mn: String,
    },
    /// The CRC is of a dialect the site does not accept.
    CrcNotAllowed {
        mn: String,
        error: CrcError,
    },
    /// QN or DataTime is not a real time.
    BadTimestamp {
        mn: String,
        error: String,
    },
    /// A plaintext data command from a site that requires SM4.
    NotEncrypted {
        mn: String,
        cn: u16,
    },
}

impl Refusal {
    pub(crate) fn verdict(&self) -> Verdict {
        match self {
            Self::Unframed(_) => Verdict::Unframed,
            Self::Undecryptable { .. } => Verdict::DecryptOrCrc,
            Self::BadCrc { .. } | Self::CrcNotAllowed { .. } => Verdict::BadCrc,
            Self::Unparseable(_) => Verdict::ParseError,
            Self::UnknownMn { .. } => Verdict::UnknownMn,
            Self::WrongPassword { .. } => Verdict::BadPassword,
            Self::BadTimestamp { .. } => Verdict::BadTimestamp,
            Self::NotEncrypted { .. } => Verdict::NotEncrypted,
        }
    }

    pub(crate) fn effect(&self) -> Effect {
        match self {
            Self::UnknownMn { .. } | Self::WrongPassword { .. } => Effect::AuthFailure,
            _ => Effect::BadFrame,
        }
    }
}

/// Something about an accepted frame for the caller to log.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Notice {
    /// The logger's clock has been this far off (ms), consistently: the 1012 in `command` corrects it.
    ClockOff { offset_ms: i64 },
    /// The 1012 set-time could not be built (its header comes from the frame and the config).
    SetTimeNotBuilt(EncodeError),
}

/// What to count for a frame besides its verdict and marks (which its record carries).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub(crate) struct Counts {
    /// Whether the bytes were opened as a frame: then the CRC dialect it matched, if any, is counted.
    pub opened: bool,
    pub dialect: Option<CrcDialect>,
    /// A data command of a site with encryption on: whether its CP came encrypted.
    pub encryption: Option<bool>,
    /// The tolerated deviations of an authenticated frame.
    pub notes: Notes,
}

/// What an authenticated frame tells the command channel, once it is durable.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Answer {
    /// A 9011 (QnRtn), 9012 (ExeRtn) or 9013 echoing the QN of a command we sent.
    Reply { qn: String, cn: u16, code: Option<u16> },
    /// A new upload, which may answer a history request or a query (1011, 1061, 1063).
    Upload { cn: u16, qn: Option<String>, data_time_ms: Option<i64> },
}

/// A reply or command to send, with its CN for metrics.
pub(crate) type Message = (&'static str, Vec<u8>);

/// What to do with one frame.
#[derive(Debug)]
pub(crate) struct Decision {
    pub record: NewRecord,
    /// Replies to write once `record` is durable.
    pub replies: Vec<Message>,
    /// A host command (1012 set-time, 1014 new key), to archive, then send, after the replies.
    pub command: Option<Message>,
    /// The (MN, CN, QN) key this frame claimed; forgotten again if it cannot be archived.
    pub dedup_key: Option<u64>,
    /// The MN of an authenticated frame.
    pub mn: Option<String>,
    /// Why the frame was refused; `None` for an authenticated frame (accepted or a duplicate).
    pub refusal: Option<Refusal>,
    pub notices: Vec<Notice>,
    pub counts: Counts,
    /// Daemon events to archive once the frame is durable (SM4 key rotation steps, which the
    /// caller's key store reports).
    pub events: Vec<String>,
    /// A resend whose original record is already on disk (so the copy may be summarised).
    pub copy_of_durable: bool,
    /// For the command channel (answers to our commands).
    pub answer: Option<Answer>,
}

impl Decision {
    pub(crate) fn effect(&self) -> Effect {
        self.refusal.as_ref().map_or(Effect::Good, Refusal::effect)
    }

    /// The configured MN a wrong-password frame claims.
    pub(crate) fn claimed_mn(&self) -> Option<&str> {
        match &self.refusal {
            Some(Refusal::WrongPassword { mn }) => Some(mn),
            _ => None,
        }
    }

    /// Whether `command` is a 1012 set-time (the site's state keeps when one was sent).
    pub(crate) fn sets_time(&self) -> bool {
        self.command.as_ref().is_some_and(|(cn, _)| *cn == "1012")
    }
}

/// What a decision reads besides the frame, taken by the caller from the shared state.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Inputs<'a> {
    /// The configured sites (a registry snapshot).
    pub sites: &'a HashMap<String, SiteEntry>,
    pub limits: &'a Limits,
    pub time_sync: &'a TimeSync,
    pub peer: &'a str,
    pub now_ms: i64,
    /// A host command is in flight somewhere: uploads may answer it (see [`Answer::Upload`]).
    pub commands_in_flight: bool,
}

/// A well-framed frame as the caller opened it (`decrypt::open_frame`).
#[derive(Debug, Clone, Copy)]
pub(crate) struct Plain<'a> {
    /// The frame in plaintext: decrypted if its CP came SM4-encrypted.
    pub frame: &'a Frame,
    pub decrypted: bool,
    /// The CRC dialect it matched, if any.
    pub dialect: Option<CrcDialect>,
}

fn record(verdict: Verdict, flags: u8, inputs: &Inputs<'_>, data: &[u8]) -> NewRecord {
    NewRecord {
        kind: Kind::Received,
        verdict,
        flags,
        time_ms: inputs.now_ms,
        peer: inputs.peer.to_owned(),
        data: data.to_vec(),
    }
}

fn refused(refusal: Refusal, counts: Counts, data: &[u8], inputs: &Inputs<'_>) -> Decision {
    Decision {
        record: record(refusal.verdict(), 0, inputs, data),
        replies: Vec::new(),
        command: None,
        dedup_key: None,
        mn: None,
        refusal: Some(refusal),
        notices: Vec::new(),
        counts,
        events: Vec::new(),
        copy_of_durable: false,
        answer: None,
    }
}

/// Bytes the framer could not make a frame of.
pub(crate) fn unframed(error: &FrameError, bytes: &[u8], inputs: &Inputs<'_>) -> Decision {
    refused(Refusal::Unframed(error.clone()), Counts::default(), bytes, inputs)
}

/// An encrypted frame of site `mn` that no key of the site opens to a valid CRC.
pub(crate) fn undecryptable(mn: String, frame: &Frame, inputs: &Inputs<'_>) -> Decision {
    refused(Refusal::Undecryptable { mn }, Counts::default(), &frame.bytes, inputs)
}

/// A frame [`check`] refused.
pub(crate) fn refuse(refusal: Refusal, plain: &Plain<'_>, inputs: &Inputs<'_>) -> Decision {
    let counts = Counts { opened: true, dialect: plain.dialect, ..Counts::default() };
    refused(refusal, counts, &plain.frame.bytes, inputs)
}

/// Who sent the frame and whether it is well-formed: the authenticated frame, or why it is
/// refused (see [`refuse`]). `text` is `SegmentText::new(plain.frame.data())`, which the
/// caller keeps while the result is used.
pub(crate) fn check<'a>(
    plain: &Plain<'a>,
    text: &'a SegmentText<'_>,
    inputs: &Inputs<'a>,
) -> Result<Authentic<'a>, Refusal> {
    let frame = plain.frame;
    if plain.dialect.is_none() {
        return Err(Refusal::BadCrc { declared: frame.layout.declared_crc });
    }
    let packet = Packet::parse_text(text).map_err(Refusal::Unparseable)?;
    let Some(site) = inputs.sites.get(packet.mn) else {
        return Err(Refusal::UnknownMn { mn: packet.mn.to_owned() });
    };
    if !site.password_matches(packet.pw) {
        // Only the MN it claims: never the password, right or wrong.
        return Err(Refusal::WrongPassword { mn: packet.mn.to_owned() });
    }
    let mn = || packet.mn.to_owned();
    if let Err(error) = crc::verify(frame.data(), frame.layout.declared_crc, site.crc) {
        return Err(Refusal::CrcNotAllowed { mn: mn(), error });
    }
    let data_time = check_times(&packet).map_err(|error| Refusal::BadTimestamp { mn: mn(), error })?;
    let encryption = encryption(&packet, site, plain.decrypted).map_err(|cn| Refusal::NotEncrypted { mn: mn(), cn })?;
    let mut notes = Notes::of_layout(&frame.layout);
    notes.extend(packet.notes);
    let mut flags = marks(&packet, data_time, inputs.now_ms, inputs.limits);
    if plain.decrypted {
        flags |= flags::DECRYPTED;
    }
    Ok(Authentic {
        dedup_key: dedup_key(&packet),
        packet,
        site,
        data_time,
        flags,
        bytes: &frame.bytes,
        counts: Counts { opened: true, dialect: plain.dialect, encryption, notes },
    })
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

/// For a data command of a site with encryption on, whether its CP came encrypted (`None`
/// for other frames); `Err(cn)` for plaintext where the site requires SM4.
fn encryption(packet: &Packet<'_>, site: &SiteEntry, decrypted: bool) -> Result<Option<bool>, u16> {
    let cn = packet.cn.code();
    if site.encryption == Encryption::Off || !is_encrypted_cn(cn) {
        return Ok(None);
    }
    if !decrypted && site.encryption == Encryption::Required {
        return Err(cn);
    }
    Ok(Some(decrypted))
}

/// What a frame asks of its site's SM4 keys, for the caller's key store.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum KeyStep<'a> {
    /// A 1014 from the logger: it asks for a new key (HJ 212-2025 App. C C7).
    Request,
    /// A 9011 / 9012 that may answer the 1014 carrying a new key; `success` when its QnRtn
    /// (9011) or ExeRtn (9012) is 1.
    Reply { qn: &'a str, cn: u16, success: bool },
}

/// A frame from a configured site with the right password, well-formed, with real times.
#[derive(Debug)]
pub(crate) struct Authentic<'a> {
    pub packet: Packet<'a>,
    site: &'a SiteEntry,
    data_time: Option<BeijingTime>,
    /// Its marks (FUTURE_TIME, BACKFILL, RESENT) and DECRYPTED, for the record.
    flags: u8,
    /// The resend key for the caller to claim before `observe` and `answer` (see [`dedup_key`]).
    pub dedup_key: Option<u64>,
    /// The frame as archived (in plaintext).
    bytes: &'a [u8],
    counts: Counts,
}

impl Authentic<'_> {
    pub(crate) fn mn(&self) -> &str {
        self.packet.mn
    }

    /// Writes what the frame tells of its site into `state` (the caller holds its lock), given
    /// what claiming the resend key said (`None`: the frame has none). Returns the logger's
    /// clock offset (ms) when the clock is due a correction.
    pub(crate) fn observe(&self, seen: Option<Seen>, state: &mut SiteState, inputs: &Inputs<'_>) -> Option<i64> {
        if state.peer.as_deref() != Some(inputs.peer) {
            state.peer = Some(inputs.peer.to_owned());
        }
        state.last_frame_ms = Some(inputs.now_ms);
        let (st, version) = (self.own_st(), self.packet.version());
        if state.speaks.as_ref().is_none_or(|(s, v)| s != st || *v != version) {
            state.speaks = Some((st.to_owned(), version));
        }
        // The newest DataTime, not the last one: hourly records and backfill carry older
        // times, and a future (clock-wrong) time must not hide a silent logger.
        let newest = self
            .data_time
            .filter(|_| self.flags & flags::FUTURE_TIME == 0)
            .map(|t| t.to_seconds_string())
            .filter(|t| state.last_data_time.as_deref().is_none_or(|last| t.as_str() > last));
        if let Some(time) = newest {
            state.last_data_time = Some(time);
        }
        if self.packet.cn == Cn::UploadLoggerSerial {
            // HJ 212-2025: the logger's hardware identity, kept per MN.
            state.hardware = Some(self.packet.cp.trim_matches('&').to_owned());
        }
        // Only fresh real-time data tells the logger's clock: not a copy, nor a re-send (RF).
        if self.packet.cn != Cn::RealTimeData || is_copy(seen) || self.packet.rf.is_some() {
            return None;
        }
        clock::observe(state, self.data_time?.unix_millis(), inputs.now_ms, inputs.time_sync)
    }

    /// The decision, given what claiming the resend key said and the clock offset when
    /// [`observe`](Self::observe) found the clock due a correction.
    pub(crate) fn answer(&self, seen: Option<Seen>, clock_off: Option<i64>, inputs: &Inputs<'_>) -> Decision {
        let duplicate = is_copy(seen);
        let verdict = if duplicate { Verdict::Duplicate } else { Verdict::Accepted };
        let mut notices = Vec::new();
        let (replies, mut command) = self.replies(inputs.now_ms, &mut notices);
        if let Some(offset_ms) = clock_off
            && command.is_none()
        {
            notices.push(Notice::ClockOff { offset_ms });
            command = self.set_time(inputs.now_ms, &mut notices);
        }
        Decision {
            record: record(verdict, self.flags, inputs, self.bytes),
            replies,
            command,
            dedup_key: if duplicate { None } else { self.dedup_key },
            mn: Some(self.packet.mn.to_owned()),
            refusal: None,
            notices,
            counts: self.counts,
            events: Vec::new(),
            copy_of_durable: seen == Some(Seen::Durable),
            answer: if duplicate { None } else { self.command_answer(inputs.commands_in_flight) },
        }
    }

    /// What the frame tells the command channel: an answer to one of our commands, or (while
    /// a command is in flight) an upload that may answer one.
    fn command_answer(&self, in_flight: bool) -> Option<Answer> {
        let packet = &self.packet;
        let code = |field| packet.get(field).and_then(|v| v.parse().ok());
        let cn = packet.cn.code();
        match packet.cn {
            Cn::RequestResponse | Cn::ExecutionResult | Cn::NotificationResponse => {
                let code = match packet.cn {
                    Cn::RequestResponse => code("QnRtn"),
                    Cn::ExecutionResult => code("ExeRtn"),
                    _ => None,
                };
                Some(Answer::Reply { qn: packet.qn?.to_owned(), cn, code })
            }
            _ if in_flight && (packet.cn.is_data_upload() || matches!(cn, 1011 | 1061 | 1063)) => {
                Some(Answer::Upload {
                    cn,
                    qn: packet.qn.map(str::to_owned),
                    data_time_ms: self.data_time.map(|t| t.unix_millis()),
                })
            }
            _ => None,
        }
    }

    /// The replies the frame's CN and Flag ask for, and the 1012 that answers a 1013.
    fn replies(&self, now_ms: i64, notices: &mut Vec<Notice>) -> (Vec<Message>, Option<Message>) {
        let to = ReplyTo::from(&self.packet);
        let notification = || encode::notification_response(&to).ok().map(|r| ("9013", r)).into_iter().collect();
        match self.packet.cn {
            // HJ 212-2017 App. C table C.4: a 9013, then the 1012 with our time.
            Cn::TimeCalibrationRequest => (notification(), self.set_time(now_ms, notices)),
            // 9013 to a logger asking for a new SM4 key (HJ 212-2025 App. C C7; the key store
            // sends it), to its hardware identity (1001) and to a heartbeat (9015).
            Cn::NewKey | Cn::UploadLoggerSerial | Cn::Heartbeat => (notification(), None),
            // Answers to us are not answered (a 9011 / 9012 may confirm a new key: `key_step`).
            Cn::RequestResponse | Cn::ExecutionResult | Cn::NotificationResponse | Cn::DataResponse => {
                (Vec::new(), None)
            }
            _ if self.packet.wants_ack() => {
                (encode::data_response(&to).ok().map(|r| ("9014", r)).into_iter().collect(), None)
            }
            _ => (Vec::new(), None),
        }
    }

    /// The 1012 set-time with our time (HJ 212-2017 App. C table C.4).
    fn set_time(&self, now_ms: i64, notices: &mut Vec<Notice>) -> Option<Message> {
        let now = BeijingTime::from_unix_millis(now_ms);
        let command = HostCommand::SetFieldTime { time: now, pol_id: None }.encode(&self.command_header(now));
        match command {
            Ok(bytes) => Some(("1012", bytes)),
            Err(error) => {
                notices.push(Notice::SetTimeNotBuilt(error));
                None
            }
        }
    }

    /// The header of a command to the logger that sent the frame: its own ST (not the reply
    /// ST 91) and protocol version.
    fn command_header(&self, qn: BeijingTime) -> CommandHeader<'_> {
        CommandHeader {
            qn,
            st: self.own_st(),
            pw: self.site.password(),
            mn: self.packet.mn,
            version: self.packet.version(),
        }
    }

    /// The logger's own system code, for commands to it (not the reply ST 91; 32 when absent).
    fn own_st(&self) -> &str {
        self.packet.st.filter(|st| *st != "91").unwrap_or("32")
    }

    /// What the frame asks of its site's SM4 keys.
    pub(crate) fn key_step(&self) -> Option<KeyStep<'_>> {
        let field = match self.packet.cn {
            Cn::NewKey => return Some(KeyStep::Request),
            Cn::RequestResponse => "QnRtn",
            Cn::ExecutionResult => "ExeRtn",
            _ => return None,
        };
        let success = self.packet.get(field) == Some("1");
        Some(KeyStep::Reply { qn: self.packet.qn?, cn: self.packet.cn.code(), success })
    }

    /// The 1014 carrying a pending key (App. C C8), its CP encrypted with the current key, with
    /// QN `now_ms`; `Ok(None)` if it cannot be encrypted.
    ///
    /// # Errors
    /// [`EncodeError`] when the key or the header cannot be carried.
    pub(crate) fn key_command(&self, delivery: Delivery, now_ms: i64) -> Result<Option<Vec<u8>>, EncodeError> {
        let header = self.command_header(BeijingTime::from_unix_millis(now_ms));
        let plain = HostCommand::SetNewKey { created: delivery.created, key: delivery.key }.encode(&header)?;
        Ok(match &delivery.encrypt_with {
            Some(key) => encrypt_frame(&plain, key),
            None => Some(plain),
        })
    }
}

/// Whether claiming a resend key found a copy of a frame already claimed.
fn is_copy(seen: Option<Seen>) -> bool {
    matches!(seen, Some(Seen::Durable | Seen::Pending))
}

/// The same (MN, CN, QN), or for frames without QN (HJ/T 212-2005) the same (MN, CN, DataTime).
/// The content hash tells a true resend (byte-identical) from a different frame that reuses
/// the QN or, without QN, the DataTime (e.g. factors spread over two 2005-style frames).
/// Keyed at random once per process (keys never leave it; the archive's tail is keyed again at
/// start), so that peers cannot craft frames whose keys collide in the dedup map.
pub(crate) fn dedup_key(packet: &Packet<'_>) -> Option<u64> {
    use std::hash::{BuildHasher, RandomState};
    static KEYED: std::sync::OnceLock<RandomState> = std::sync::OnceLock::new();
    let id = packet.qn.or_else(|| packet.data_time())?;
    Some(KEYED.get_or_init(RandomState::new).hash_one((packet.mn, packet.cn.code(), id, packet.cp, packet.pno)))
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

/// FUTURE_TIME, BACKFILL and RESENT, as the frame's times and RF say.
fn marks(packet: &Packet<'_>, data_time: Option<BeijingTime>, now_ms: i64, limits: &Limits) -> u8 {
    let mut marks = 0;
    if packet.rf.is_some() {
        // HJ 212-2025 Table 3: RF=1 marks a re-send (补传); any other value is noted, still a re-send.
        marks |= flags::BACKFILL | flags::RESENT;
    }
    if let Some(time) = data_time {
        let age = now_ms - time.unix_millis();
        let skew = i64::try_from(limits.future_skew_secs.saturating_mul(1000)).unwrap_or(i64::MAX);
        let grace = i64::try_from(limits.backfill_grace_secs.saturating_mul(1000)).unwrap_or(i64::MAX);
        if -age > skew {
            marks |= flags::FUTURE_TIME;
        }
        if age > period_ms(packet.cn).saturating_add(grace) {
            marks |= flags::BACKFILL;
        }
    }
    marks
}
