//! What an archived record means: decided here once, for every reader.
//!
//! The archive keeps bytes and the verdict given when they arrived, not interpretations. A
//! record is read back as:
//! - [`Meaning::Data`]: an accepted data upload (HJ 212-2017 Table 4's 20xx uploads) with a
//!   readable DataTime: its readings, which the store keeps, the rates count, the alert rules
//!   judge and the time-series sink writes;
//! - [`Meaning::Seen`]: a frame of a site that carries nothing to store (an accepted command
//!   or heartbeat, a data upload without a readable DataTime, or a resend archived as
//!   `duplicate`): the site was there;
//! - [`Meaning::BadPassword`]: a frame refused for its password (the alert engine counts them
//!   per configured MN);
//! - [`Meaning::Mark`], [`Meaning::Visit`], [`Meaning::Config`], [`Meaning::Checkpoint`],
//!   [`Meaning::Sent`], [`Meaning::Acknowledged`], [`Meaning::Event`]: what operators and the
//!   daemon appended;
//! - [`Meaning::Other`]: refused traffic, summaries, replies: nothing for a reader.
//!
//! Within a frame the first value of a field kind wins (`a21026-Rtd=1,a21026-Rtd=2` reads 1),
//! as in the parser: [`Factor::get`].

use hj212_archive::{Checkpoint, Kind, Record, SignedHead, Verdict, flags};
use hj212_proto::framer::{self, FramerConfig, MAX_LENGTH_FIELD, Scan};
use hj212_proto::{Packet, SegmentText};
use serde::{Deserialize, Serialize};
pub use smol_str::SmolStr;
pub use upload::{Factor, Field, Upload};

/// A downtime mark as operators submit it, and as it is archived (JSON, verdict `mark`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MarkRequest {
    pub mn: String,
    /// Start and end of the stop, Unix ms, half-open.
    pub from_ms: i64,
    pub to_ms: i64,
    /// 停产 / 停排 / 停运 and why.
    pub reason: String,
    /// Where the evidence is (document number, file reference).
    pub evidence: String,
    pub author: String,
    /// The archive sequence number of a mark this one replaces (a correction is a new mark).
    #[serde(default)]
    pub supersedes: Option<u64>,
}

/// A service visit (HJ 75-2017 operation records; certification spec 4.3.3.2: every service
/// request and visit recorded) as operators submit it, and as it is archived (JSON, verdict `visit`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct VisitRequest {
    pub mn: String,
    /// The alert the visit answered, if any.
    #[serde(default)]
    pub alert_id: Option<String>,
    /// Arrival on site and departure, Unix ms.
    pub arrived_ms: i64,
    pub left_ms: i64,
    /// Who went.
    pub by: String,
    /// What was done, and what came of it.
    pub work: String,
    pub result: String,
    /// The archive sequence number of a visit record this one replaces (a correction is a new record).
    #[serde(default)]
    pub supersedes: Option<u64>,
}

/// A site's rules in force from a config record on (verdict `config`): the site's config
/// without its password and keys, with the alert rules that apply to it, the service targets,
/// and their hash. One record per site, written when that site's rules changed.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ConfigRecord {
    pub mn: String,
    pub hash: String,
    pub site: serde_json::Value,
    pub service: serde_json::Value,
}

/// An alert acknowledged by an operator, as archived (an `info` event `{"event":
/// "alert_acknowledged", ...}`, from the console or the API): every alert engine that reads it,
/// on any node of a cluster, holds the acknowledgement.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AlertAck {
    pub alert_id: String,
    /// The alert's site (`fleet` for a fleet outage).
    pub mn: String,
    /// The alert's kind, for whoever reads the archive.
    #[serde(default)]
    pub kind: String,
    pub by: String,
    #[serde(default)]
    pub note: String,
    /// Where it was made: `api` or `console`.
    #[serde(default)]
    pub via: String,
}

impl AlertAck {
    /// The `info` event that archives it (what [`Meaning::of`] reads back).
    pub fn event(&self) -> impl Serialize + '_ {
        #[derive(Serialize)]
        struct Event<'a> {
            event: &'static str,
            #[serde(flatten)]
            ack: &'a AlertAck,
        }
        Event { event: ACK_EVENT, ack: self }
    }
}

/// What an archived record means to a reader.
#[derive(Debug, Clone, PartialEq)]
pub enum Meaning {
    Data(Upload),
    Seen {
        mn: String,
        cn: u16,
        duplicate: bool,
    },
    BadPassword {
        mn: String,
    },
    Mark(MarkRequest),
    Visit(VisitRequest),
    Config(ConfigRecord),
    Checkpoint(SignedHead),
    /// A command the daemon sent (1012, 1014), to this MN.
    Sent {
        mn: String,
        cn: u16,
    },
    /// An alert acknowledged (an `info` event), when it was archived (the record's time).
    Acknowledged(AlertAck),
    /// A daemon event (start, stop, recovery, retention, key rotation), as text.
    Event(String),
    Other,
}

/// A record with its meaning, decided once.
#[derive(Debug, Clone)]
pub struct Interpreted {
    pub record: Record,
    pub meaning: Meaning,
}

impl Interpreted {
    pub fn new(record: Record) -> Self {
        let meaning = Meaning::of(&record);
        Self { record, meaning }
    }

    /// Each record with its meaning.
    pub fn all(records: impl IntoIterator<Item = Record>) -> Vec<Self> {
        records.into_iter().map(Self::new).collect()
    }
}

impl Meaning {
    /// What `record` means (see the module documentation).
    pub fn of(record: &Record) -> Self {
        match (record.kind, record.verdict) {
            (Kind::Received, Verdict::Accepted | Verdict::Duplicate | Verdict::BadPassword) => received(record),
            (Kind::Event, Verdict::Mark) => serde_json::from_slice(&record.data).map_or(Self::Other, Self::Mark),
            (Kind::Event, Verdict::Visit) => serde_json::from_slice(&record.data).map_or(Self::Other, Self::Visit),
            (Kind::Event, Verdict::Config) => serde_json::from_slice(&record.data).map_or(Self::Other, Self::Config),
            (Kind::Event, Verdict::Checkpoint) => {
                Checkpoint::parse(&String::from_utf8_lossy(&record.data)).map_or(Self::Other, |checkpoint| {
                    Self::Checkpoint(SignedHead { checkpoint, record_seq: record.seq, record_hash: record.hash })
                })
            }
            (Kind::Event, Verdict::Info) => acknowledged(&record.data)
                .map_or_else(|| Self::Event(String::from_utf8_lossy(&record.data).into_owned()), Self::Acknowledged),
            (Kind::Event, _) => Self::Event(String::from_utf8_lossy(&record.data).into_owned()),
            (Kind::Sent, _) => with_packet(&record.data, |p| Self::Sent { mn: p.mn.to_owned(), cn: p.cn.code() })
                .unwrap_or(Self::Other),
            _ => Self::Other,
        }
    }

    /// The MN of a site this record is about, if any.
    pub fn mn(&self) -> Option<&str> {
        match self {
            Self::Data(upload) => Some(&upload.mn),
            Self::Seen { mn, .. } | Self::BadPassword { mn } | Self::Sent { mn, .. } => Some(mn),
            Self::Mark(mark) => Some(&mark.mn),
            Self::Visit(visit) => Some(&visit.mn),
            Self::Config(config) => Some(&config.mn),
            Self::Acknowledged(ack) => Some(&ack.mn),
            Self::Checkpoint(_) | Self::Event(_) | Self::Other => None,
        }
    }
}

/// The acknowledgement an `info` event records, if it is one.
fn acknowledged(data: &[u8]) -> Option<AlertAck> {
    // Events are rare and small: a cheap look before parsing.
    if !data.windows(ACK_EVENT.len()).any(|w| w == ACK_EVENT.as_bytes()) {
        return None;
    }
    let value: serde_json::Value = serde_json::from_slice(data).ok()?;
    if value.get("event")?.as_str()? != ACK_EVENT {
        return None;
    }
    serde_json::from_value(value).ok()
}

/// The `event` of an acknowledgement's record.
const ACK_EVENT: &str = "alert_acknowledged";

fn received(record: &Record) -> Meaning {
    with_packet(&record.data, |packet| {
        let mn = packet.mn.to_owned();
        match record.verdict {
            Verdict::BadPassword => Meaning::BadPassword { mn },
            Verdict::Accepted if packet.cn.is_data_upload() => upload(packet, record)
                .map_or(Meaning::Seen { mn, cn: packet.cn.code(), duplicate: false }, Meaning::Data),
            verdict => Meaning::Seen { mn, cn: packet.cn.code(), duplicate: verdict == Verdict::Duplicate },
        }
    })
    .unwrap_or(Meaning::Other)
}

/// An accepted data upload's readings; `None` without a readable DataTime.
fn upload(packet: &Packet<'_>, record: &Record) -> Option<Upload> {
    let Some(Ok(time)) = packet.data_time_parsed() else { return None };
    let raw = packet.data_time()?;
    let data_time = if raw.len() == 14 { raw.into() } else { time.to_seconds_string().into() };
    let resent = record.flags & (flags::RESENT | flags::BACKFILL) != 0;
    Some(Upload::new(packet, data_time, time.unix_millis(), resent))
}

/// Frames and parses archived bytes (checked when they arrived; the archive keeps bytes, not
/// interpretations) and hands the packet to `then`.
fn with_packet<T>(data: &[u8], then: impl FnOnce(&Packet<'_>) -> T) -> Option<T> {
    let config = FramerConfig { max_data_len: MAX_LENGTH_FIELD, crc_gate: false };
    let Scan::Frame(layout) = framer::scan(data, &config, true) else { return None };
    let text = SegmentText::new(layout.data(data));
    Packet::parse_text(&text).ok().map(|packet| then(&packet))
}

/// The MN and CN of any archived frame, whatever its verdict (for exports and filters).
pub fn identity(record: &Record) -> Option<(String, u16)> {
    if record.kind == Kind::Event {
        return None;
    }
    with_packet(&record.data, |p| (p.mn.to_owned(), p.cn.code()))
}

#[cfg(test)]
mod tests;
mod upload;
