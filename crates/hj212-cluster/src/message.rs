//! An archived record as a stream message: its subject, its message id (which makes the
//! stream keep one copy of a frame however many nodes received it) and headers that carry
//! the record's fields, so that a reader of the stream can rebuild the record.

use async_nats::HeaderMap;
use async_nats::jetstream::message::PublishMessage as Publish;
use bytes::Bytes;
use hj212_archive::{Kind, Record, Verdict, hex, unhex};
use hj212_follow::{Interpreted, Meaning};
use sha2::{Digest, Sha256};

/// The node that received the record.
pub const NODE: &str = "Hj212-Node";
/// Its sequence number in that node's archive.
pub const SEQ: &str = "Hj212-Seq";
/// `received`, `sent` or `event` (the archive's record kinds).
pub const KIND: &str = "Hj212-Kind";
/// The verdict's name (`accepted`, `duplicate`, `bad_password`, `mark`, ...).
pub const VERDICT: &str = "Hj212-Verdict";
/// The archive's flag bits (future time, resent, backfill), in decimal.
pub const FLAGS: &str = "Hj212-Flags";
/// When the node archived it, Unix ms.
pub const TIME_MS: &str = "Hj212-Time-Ms";
/// The peer address it came from.
pub const PEER: &str = "Hj212-Peer";
/// Its hash in that node's chain (hex), the evidence a reader of the stream cites.
pub const HASH: &str = "Hj212-Hash";
/// For a record larger than the servers take: its length; the payload is left out, the
/// record stays in the node's archive (its SHA-256 in [`SHA256`]).
pub const OMITTED_BYTES: &str = "Hj212-Omitted-Bytes";
pub const SHA256: &str = "Hj212-Sha256";

/// On a mark or a visit: how its `supersedes` names the record it corrects: `stream` (a
/// stream sequence: the publishing node's store follows the stream, and its API took that
/// number) or `archive` (a number in the publishing node's archive; also when absent).
pub const NUMBERED: &str = "Hj212-Numbered";

/// How the publishing node numbers the records a correction names (see [`NUMBERED`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Numbering {
    Archive,
    Stream,
}

impl Numbering {
    fn as_str(self) -> &'static str {
        match self {
            Self::Archive => "archive",
            Self::Stream => "stream",
        }
    }
}

/// Room kept for the headers below the servers' `max_payload`, which counts them too.
const HEADER_ROOM: usize = 4096;

/// Where a node's records go in the stream.
#[derive(Debug, Clone)]
pub struct Subjects {
    prefix: String,
    node: String,
}

impl Subjects {
    pub fn new(prefix: &str, node: &str) -> Self {
        Self { prefix: prefix.to_owned(), node: node.to_owned() }
    }

    /// The stream's subjects: every site's and every node's.
    pub fn filters(&self) -> Vec<String> {
        vec![format!("{}.records.>", self.prefix), format!("{}.nodes.>", self.prefix)]
    }

    /// A site's frames, marks and visits.
    pub fn site(&self, mn: &str) -> String {
        format!("{}.records.{}", self.prefix, token(mn))
    }

    /// What is this node's own: its events, checkpoints, refused traffic without a site.
    pub fn node(&self) -> String {
        format!("{}.nodes.{}", self.prefix, self.node)
    }
}

/// A subject token for `text`: the characters NATS gives a meaning (`.`, `*`, `>`, blanks)
/// and anything else outside letters, digits, `_` and `-` become `_`.
fn token(text: &str) -> String {
    let token: String =
        text.chars().map(|c| if c.is_ascii_alphanumeric() || c == '-' || c == '_' { c } else { '_' }).collect();
    if token.is_empty() { "_".to_owned() } else { token }
}

/// The message id: a frame a site sent is the same message whichever node received it
/// ([`hj212_follow::frame_key`]: a resend archived as `duplicate` is the accepted frame again);
/// anything else is the node's own (node name and sequence number), so that only a
/// republication by the same node is dropped.
pub fn message_id(interpreted: &Interpreted, node: &str) -> String {
    hj212_follow::frame_key(interpreted).unwrap_or_else(|| format!("{node}:{}", interpreted.record.seq))
}

/// The subject and message that publish `interpreted` as node `node`. A record the servers
/// would refuse (over `max_payload`) goes without its bytes, so that it cannot hold up every
/// record after it; none that large is written today (frames are at most 10 KB).
pub fn message(
    interpreted: &Interpreted,
    subjects: &Subjects,
    max_payload: usize,
    numbering: Numbering,
) -> (String, Publish) {
    let record = &interpreted.record;
    let subject = interpreted.meaning.mn().map_or_else(|| subjects.node(), |mn| subjects.site(mn));
    let mut headers = HeaderMap::new();
    headers.insert(NODE, subjects.node.as_str());
    headers.insert(SEQ, record.seq.to_string());
    headers.insert(KIND, record.kind.as_str());
    headers.insert(VERDICT, record.verdict.as_str());
    headers.insert(FLAGS, record.flags.to_string());
    headers.insert(TIME_MS, record.time_ms.to_string());
    headers.insert(PEER, record.peer.as_str());
    headers.insert(HASH, hex(&record.hash));
    if matches!(interpreted.meaning, Meaning::Mark(_) | Meaning::Visit(_)) {
        headers.insert(NUMBERED, numbering.as_str());
    }
    let payload = if record.data.len() + HEADER_ROOM > max_payload {
        tracing::warn!(
            seq = record.seq,
            bytes = record.data.len(),
            max_payload,
            "record too large for the stream: published without its bytes"
        );
        headers.insert(OMITTED_BYTES, record.data.len().to_string());
        headers.insert(SHA256, hex(&Sha256::digest(&record.data)));
        Bytes::new()
    } else {
        Bytes::copy_from_slice(&record.data)
    };
    let publish =
        Publish::build().headers(headers).message_id(message_id(interpreted, &subjects.node)).payload(payload);
    (subject, publish)
}

/// Why a stream message is not a record hj212d published.
#[derive(Debug, thiserror::Error)]
#[error("stream message {seq} on {subject}: {problem}")]
pub struct NotARecord {
    pub seq: u64,
    pub subject: String,
    pub problem: String,
}

/// The record a stream message carries, numbered with its stream sequence `seq` (its number
/// in the publishing node's archive stays in the [`SEQ`] header). A record published without
/// its bytes (too large) comes with none.
///
/// # Errors
/// A header hj212d writes is missing or unreadable (the message was not published by hj212d).
pub fn record(seq: u64, subject: &str, headers: Option<&HeaderMap>, payload: &[u8]) -> Result<Record, NotARecord> {
    let problem = |problem: String| NotARecord { seq, subject: subject.to_owned(), problem };
    let header = |name: &str| {
        headers
            .and_then(|h| h.get(name))
            .map(async_nats::HeaderValue::as_str)
            .ok_or_else(|| problem(format!("no {name} header")))
    };
    let number = |name: &str| header(name)?.parse::<i64>().map_err(|_| problem(format!("{name} is not a number")));
    let kind = Kind::from_name(header(KIND)?).ok_or_else(|| problem(format!("unknown {KIND}")))?;
    let verdict = Verdict::from_name(header(VERDICT)?).ok_or_else(|| problem(format!("unknown {VERDICT}")))?;
    let flags = u8::try_from(number(FLAGS)?).map_err(|_| problem(format!("{FLAGS} out of range")))?;
    // Published before the hash header existed: no chain hash to cite.
    let hash = headers.and_then(|h| h.get(HASH)).and_then(|v| unhex(v.as_str())).unwrap_or([0; 32]);
    Ok(Record {
        seq,
        kind,
        verdict,
        flags,
        time_ms: number(TIME_MS)?,
        peer: header(PEER)?.to_owned(),
        data: payload.to_vec(),
        hash,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    // fixtures/frames/real.txt, a 2011 upload.
    const FRAME: &[u8] = b"##0136ST=32;CN=2011;PW=000000;MN=LD130133000015;CP=&&DataTime=20160824003817;011-Rtd=231.0,011-Flag=N;B01-Rtd=36.91;060-Rtd=1.803,060-Flag=N&&1dc0\r\n";

    fn interpreted(seq: u64, kind: Kind, verdict: Verdict, data: &[u8]) -> Interpreted {
        Interpreted::new(Record {
            seq,
            kind,
            verdict,
            flags: 0,
            time_ms: 1_470_000_000_000,
            peer: "127.0.0.1:5000".to_owned(),
            data: data.to_vec(),
            hash: [0; 32],
        })
    }

    #[test]
    fn a_frame_has_one_id_on_every_node_and_as_a_resend() {
        let on_a = interpreted(7, Kind::Received, Verdict::Accepted, FRAME);
        let on_b = interpreted(90, Kind::Received, Verdict::Accepted, FRAME);
        let resent = interpreted(91, Kind::Received, Verdict::Duplicate, FRAME);
        let id = message_id(&on_a, "a");
        assert!(id.starts_with("frame:LD130133000015:"), "{id}");
        assert_eq!(id, message_id(&on_b, "b"));
        assert_eq!(id, message_id(&resent, "b"));
        let refused = interpreted(92, Kind::Received, Verdict::BadPassword, FRAME);
        assert!(message_id(&refused, "b").starts_with("bad_password:"));
    }

    #[test]
    fn a_nodes_own_records_are_its_own() {
        let event = interpreted(3, Kind::Event, Verdict::Info, b"started");
        assert_eq!(message_id(&event, "a"), "a:3");
        let garbage = interpreted(4, Kind::Received, Verdict::Unframed, b"\x00\x01junk");
        assert_eq!(message_id(&garbage, "b"), "b:4");
        let subjects = Subjects::new("hj212", "a");
        assert_eq!(message(&event, &subjects, 1 << 20, Numbering::Archive).0, "hj212.nodes.a");
        assert_eq!(subjects.site("MN.1 *>"), "hj212.records.MN_1___");
    }

    #[test]
    fn a_record_too_large_for_the_servers_goes_without_its_bytes() {
        let subjects = Subjects::new("hj212", "a");
        let big = interpreted(8, Kind::Event, Verdict::Info, &[b'x'; 10_000]);
        let (_, fits) = message(&big, &subjects, 1 << 20, Numbering::Archive);
        let (_, omitted) = message(&big, &subjects, 8192, Numbering::Archive);
        let (fits, omitted) = (fits.outbound_message("s"), omitted.outbound_message("s"));
        assert_eq!(fits.payload.len(), 10_000);
        assert!(omitted.payload.is_empty());
        let headers = omitted.headers.expect("headers");
        assert_eq!(headers.get(OMITTED_BYTES).map(|v| v.as_str().to_owned()).as_deref(), Some("10000"));
        assert_eq!(headers.get(SHA256).map(|v| v.as_str().len()), Some(64));
    }

    #[test]
    fn headers_carry_the_record() {
        let subjects = Subjects::new("hj212", "a");
        let mut original = interpreted(7, Kind::Received, Verdict::Accepted, FRAME);
        original.record.hash = [7; 32];
        original.record.flags = 2;
        let (subject, publish) = message(&original, &subjects, 1 << 20, Numbering::Archive);
        assert_eq!(subject, "hj212.records.LD130133000015");
        assert_eq!(subjects.filters(), ["hj212.records.>", "hj212.nodes.>"]);
        let published = publish.outbound_message(subject.clone());
        let read = record(901, &subject, published.headers.as_ref(), &published.payload).expect("a record");
        assert_eq!(read, Record { seq: 901, ..original.record.clone() }, "the stream's number, the node's record");
        let headers = published.headers.expect("headers");
        assert_eq!(headers.get(SEQ).map(|v| v.as_str().to_owned()).as_deref(), Some("7"));
    }

    #[test]
    fn a_message_hj212d_did_not_publish_is_named() {
        let error = record(5, "hj212.records.X", None, b"hello").expect_err("no headers");
        assert_eq!(error.to_string(), "stream message 5 on hj212.records.X: no Hj212-Kind header");
        let mut headers = HeaderMap::new();
        headers.insert(KIND, "received");
        headers.insert(VERDICT, "nonsense");
        let error = record(6, "s", Some(&headers), b"").expect_err("bad verdict");
        assert!(error.to_string().ends_with("unknown Hj212-Verdict"), "{error}");
    }
}
