//! Layer 1: finds `##` + 4-digit length + data segment + CRC + tail in a byte stream.
//!
//! Framing is strictly by the length field, which counts **bytes**: HJ 212-2025 frames
//! may carry raw SM4 ciphertext (any byte value, CR, LF, `#` and NUL included) in CP, so
//! nothing inside the declared data segment is ever inspected here. `##` is searched for
//! only to resynchronise after an error, so a broken frame costs that frame and no more.

use crate::crc::{self, CrcDialect};

/// The length field's own limit, and the default maximum.
pub const MAX_LENGTH_FIELD: usize = 9999;
/// The data segment limit of HJ 212-2017 Table 2; longer frames are accepted but non-conformant.
pub const STANDARD_MAX_DATA_LEN: usize = 1024;
/// `##` plus the 4-digit length.
pub const HEADER_LEN: usize = 6;
const CRC_LEN: usize = 4;

/// How the framer treats its input.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FramerConfig {
    /// Longest data segment accepted (bytes), at most [`MAX_LENGTH_FIELD`].
    pub max_data_len: usize,
    /// Reject a frame whose CRC matches no known dialect, and resynchronise inside it.
    /// Leave off where CRC is judged later (decryption first, or decode tools that show bad frames).
    pub crc_gate: bool,
}

impl Default for FramerConfig {
    fn default() -> Self {
        Self { max_data_len: MAX_LENGTH_FIELD, crc_gate: false }
    }
}

/// How a frame ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Tail {
    /// `\r\n`, as the standard says.
    CrLf,
    /// A bare `\n` (seen from several vendors).
    Lf,
    /// `\r\r\n` (seen in real device logs).
    CrCrLf,
}

impl Tail {
    fn len(self) -> usize {
        match self {
            Self::CrLf => 2,
            Self::Lf => 1,
            Self::CrCrLf => 3,
        }
    }
}

/// Where the parts of a frame lie, as offsets from the frame's first `#`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FrameLayout {
    /// Bytes in the data segment (the length field's value).
    pub data_len: usize,
    /// The CRC field's value.
    pub declared_crc: u16,
    /// The CRC field was written in lower case (accepted; replies use upper case).
    pub crc_lowercase: bool,
    /// The dialect the CRC matched, when the framer's CRC gate is on.
    pub crc_dialect: Option<CrcDialect>,
    /// How the frame ended.
    pub tail: Tail,
    /// Total frame length, `##` to the end of the tail.
    pub len: usize,
}

impl FrameLayout {
    /// The data segment within `frame` (which starts at the frame's `##`).
    pub fn data<'a>(&self, frame: &'a [u8]) -> &'a [u8] {
        &frame[HEADER_LEN..HEADER_LEN + self.data_len]
    }

    /// Longer than HJ 212-2017 allows (1024 bytes); such frames should have been split.
    pub fn is_oversize(&self) -> bool {
        self.data_len > STANDARD_MAX_DATA_LEN
    }
}

/// Why bytes were skipped.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum FrameError {
    #[error("{len} bytes of garbage before the next \"##\"")]
    Garbage { len: usize },
    #[error("length field {:?} is not 4 ASCII digits", String::from_utf8_lossy(field))]
    LengthNotNumeric { field: [u8; 4] },
    #[error("data segment of {len} bytes exceeds the limit of {max}")]
    TooLong { len: usize, max: usize },
    #[error("no hex CRC where length {len} puts it: found {:?} (length field wrong?)", String::from_utf8_lossy(found))]
    NoCrcAtLength { len: usize, found: [u8; 4] },
    #[error("no CR LF tail after the CRC: found {:?}", String::from_utf8_lossy(found))]
    MissingTail { found: Vec<u8> },
    #[error("bad CRC: frame declares {declared:04X}, HJ 212 CRC of the data segment is {computed:04X}")]
    BadCrc { declared: u16, computed: u16 },
    #[error("stream ended inside a frame after {len} bytes")]
    Truncated { len: usize },
}

impl FrameError {
    /// A stable short name, used as a metric label and in decode output.
    pub fn kind(&self) -> &'static str {
        match self {
            Self::Garbage { .. } => "garbage",
            Self::LengthNotNumeric { .. } => "length_not_numeric",
            Self::TooLong { .. } => "too_long",
            Self::NoCrcAtLength { .. } => "no_crc_at_length",
            Self::MissingTail { .. } => "missing_tail",
            Self::BadCrc { .. } => "bad_crc",
            Self::Truncated { .. } => "truncated",
        }
    }
}

/// The result of looking at the front of a buffer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Scan {
    /// Not enough bytes to decide; read more.
    Incomplete,
    /// This many bytes of whitespace or NUL between frames: drop them, nothing is wrong.
    Skip(usize),
    /// A frame starts at offset 0; it is `layout.len` bytes long.
    Frame(FrameLayout),
    /// These bytes cannot be a frame; drop `consumed` bytes from the front.
    Rejected { error: FrameError, consumed: usize },
}

/// Looks for a frame at the front of `buf`. `eof` says no more bytes will come.
pub fn scan(buf: &[u8], config: &FramerConfig, eof: bool) -> Scan {
    match find_start(buf, 0) {
        Some(0) => scan_frame(buf, config, eof),
        Some(pos) => skip_or_garbage(pos, &buf[..pos]),
        None => {
            // Keep a trailing '#': it may be the first half of the next "##".
            let keep = usize::from(!eof && buf.last() == Some(&b'#'));
            let len = buf.len() - keep;
            if len == 0 { Scan::Incomplete } else { skip_or_garbage(len, &buf[..len]) }
        }
    }
}

fn skip_or_garbage(len: usize, bytes: &[u8]) -> Scan {
    if bytes.iter().all(|b| matches!(b, b'\r' | b'\n' | b' ' | b'\t' | 0)) {
        Scan::Skip(len)
    } else {
        Scan::Rejected { error: FrameError::Garbage { len }, consumed: len }
    }
}

fn scan_frame(buf: &[u8], config: &FramerConfig, eof: bool) -> Scan {
    let incomplete = || {
        if eof { reject(buf, buf.len(), FrameError::Truncated { len: buf.len() }) } else { Scan::Incomplete }
    };
    let Some(field) = buf.get(2..HEADER_LEN) else {
        return incomplete();
    };
    let field: [u8; 4] = field.try_into().expect("slice of 4");
    let Some(data_len) = parse_length(field) else {
        return reject(buf, buf.len(), FrameError::LengthNotNumeric { field });
    };
    let max = config.max_data_len.min(MAX_LENGTH_FIELD);
    if data_len > max {
        return reject(buf, buf.len(), FrameError::TooLong { len: data_len, max });
    }
    let crc_at = HEADER_LEN + data_len;
    let Some(crc_field) = buf.get(crc_at..crc_at + CRC_LEN) else {
        return incomplete();
    };
    let crc_field: [u8; 4] = crc_field.try_into().expect("slice of 4");
    let Some(declared_crc) = crc::parse_field(crc_field) else {
        return reject(buf, buf.len(), FrameError::NoCrcAtLength { len: data_len, found: crc_field });
    };
    let tail = match read_tail(&buf[crc_at + CRC_LEN..]) {
        TailRead::Found(tail) => tail,
        TailRead::NeedMore => return incomplete(),
        TailRead::Missing(found) => {
            return reject(buf, buf.len(), FrameError::MissingTail { found });
        }
    };
    let len = crc_at + CRC_LEN + tail.len();
    let data = &buf[HEADER_LEN..crc_at];
    let crc_dialect = if config.crc_gate {
        let Some(dialect) = crc::identify(data, declared_crc) else {
            let error = FrameError::BadCrc { declared: declared_crc, computed: crc::hj212(data) };
            return reject(buf, len, error);
        };
        Some(dialect)
    } else {
        None
    };
    let crc_lowercase = crc_field.iter().any(u8::is_ascii_lowercase);
    Scan::Frame(FrameLayout { data_len, declared_crc, crc_lowercase, crc_dialect, tail, len })
}

/// Drops a broken frame up to the next `##` inside `buf[..limit]`, or all of it.
fn reject(buf: &[u8], limit: usize, error: FrameError) -> Scan {
    let consumed = match find_start(&buf[..limit], 1) {
        Some(pos) => pos,
        None if limit == buf.len() && limit > 1 && buf[limit - 1] == b'#' => limit - 1,
        None => limit,
    };
    Scan::Rejected { error, consumed }
}

fn parse_length(field: [u8; 4]) -> Option<usize> {
    field.iter().try_fold(0usize, |acc, &c| c.is_ascii_digit().then(|| acc * 10 + usize::from(c - b'0')))
}

enum TailRead {
    Found(Tail),
    NeedMore,
    Missing(Vec<u8>),
}

fn read_tail(rest: &[u8]) -> TailRead {
    match rest {
        [] | [b'\r'] | [b'\r', b'\r'] => TailRead::NeedMore,
        [b'\n', ..] => TailRead::Found(Tail::Lf),
        [b'\r', b'\n', ..] => TailRead::Found(Tail::CrLf),
        [b'\r', b'\r', b'\n', ..] => TailRead::Found(Tail::CrCrLf),
        other => TailRead::Missing(other.iter().take(3).copied().collect()),
    }
}

fn find_start(buf: &[u8], from: usize) -> Option<usize> {
    buf.get(from..)?.windows(2).position(|w| w == b"##").map(|p| p + from)
}

#[cfg(test)]
mod tests {
    use super::*;

    const FRAME: &[u8] = b"##0101QN=20160801085857223;ST=32;CN=1062;PW=100000;MN=010000A8900016F000169DC0;Flag=5;CP=&&RtdInterval=30&&1C80\r\n";

    fn cfg() -> FramerConfig {
        FramerConfig::default()
    }

    fn frame_len(scan: &Scan) -> usize {
        match scan {
            Scan::Frame(layout) => layout.len,
            other => panic!("expected a frame, got {other:?}"),
        }
    }

    #[test]
    fn whole_frame() {
        let Scan::Frame(layout) = scan(FRAME, &cfg(), false) else { panic!() };
        assert_eq!(layout.data_len, 101);
        assert_eq!(layout.declared_crc, 0x1C80);
        assert_eq!(layout.tail, Tail::CrLf);
        assert_eq!(layout.len, FRAME.len());
        assert!(layout.data(FRAME).ends_with(b"RtdInterval=30&&"));
    }

    #[test]
    fn every_prefix_is_incomplete() {
        for cut in 0..FRAME.len() {
            assert_eq!(scan(&FRAME[..cut], &cfg(), false), Scan::Incomplete, "cut at {cut}");
        }
        assert_eq!(frame_len(&scan(FRAME, &cfg(), false)), FRAME.len());
    }

    #[test]
    fn truncated_at_eof() {
        let cut = &FRAME[..50];
        assert_eq!(scan(cut, &cfg(), true), Scan::Rejected { error: FrameError::Truncated { len: 50 }, consumed: 50 });
    }

    #[test]
    fn bare_lf_and_double_cr_tails() {
        let mut lf = FRAME[..FRAME.len() - 2].to_vec();
        lf.push(b'\n');
        let Scan::Frame(layout) = scan(&lf, &cfg(), false) else { panic!() };
        assert_eq!((layout.tail, layout.len), (Tail::Lf, lf.len()));
        let mut crcrlf = FRAME[..FRAME.len() - 2].to_vec();
        crcrlf.extend_from_slice(b"\r\r\n");
        let Scan::Frame(layout) = scan(&crcrlf, &cfg(), false) else { panic!() };
        assert_eq!((layout.tail, layout.len), (Tail::CrCrLf, crcrlf.len()));
    }

    #[test]
    fn whitespace_is_skipped_garbage_is_rejected() {
        assert_eq!(scan(b"\r\n\0##", &cfg(), false), Scan::Skip(3));
        assert_eq!(
            scan(b"AT+OK\r\n##", &cfg(), false),
            Scan::Rejected { error: FrameError::Garbage { len: 7 }, consumed: 7 }
        );
        // A lone trailing '#' is kept: it may start the next "##".
        assert_eq!(
            scan(b"junk#", &cfg(), false),
            Scan::Rejected { error: FrameError::Garbage { len: 4 }, consumed: 4 }
        );
        assert_eq!(scan(b"#", &cfg(), false), Scan::Incomplete);
    }

    #[test]
    fn two_digit_length_resyncs_to_next_frame() {
        let mut buf = b"##81QN=;ST=23;CN=1012&&E381\r\n".to_vec();
        let bad = buf.len();
        buf.extend_from_slice(FRAME);
        let Scan::Rejected { error, consumed } = scan(&buf, &cfg(), false) else { panic!() };
        assert_eq!(error.to_string(), "length field \"81QN\" is not 4 ASCII digits");
        assert_eq!(consumed, bad);
        assert_eq!(frame_len(&scan(&buf[consumed..], &cfg(), false)), FRAME.len());
    }

    #[test]
    fn short_length_resyncs() {
        // Declares 0099 for a 101-byte segment: the CRC field lands on "&&1C".
        let mut buf = FRAME.to_vec();
        buf[2..6].copy_from_slice(b"0099");
        let Scan::Rejected { error, .. } = scan(&buf, &cfg(), false) else { panic!() };
        assert_eq!(error, FrameError::NoCrcAtLength { len: 99, found: *b"&&1C" });
    }

    #[test]
    fn missing_tail_keeps_next_frame() {
        let mut buf = FRAME[..FRAME.len() - 2].to_vec();
        let first = buf.len();
        buf.extend_from_slice(FRAME);
        let Scan::Rejected { error, consumed } = scan(&buf, &cfg(), false) else { panic!() };
        assert_eq!(error.kind(), "missing_tail");
        assert_eq!(consumed, first);
        assert_eq!(frame_len(&scan(&buf[consumed..], &cfg(), false)), FRAME.len());
    }

    #[test]
    fn too_long() {
        let config = FramerConfig { max_data_len: 100, ..cfg() };
        let Scan::Rejected { error, .. } = scan(FRAME, &config, false) else { panic!() };
        assert_eq!(error.to_string(), "data segment of 101 bytes exceeds the limit of 100");
    }

    #[test]
    fn crc_gate_resyncs_inside_the_bad_frame() {
        // A bogus header whose declared length swallows a real frame exactly: the CRC gate
        // rejects it and resumes at the real frame's "##" inside it.
        let mut buf = format!("##{:04}", FRAME.len() - 6).into_bytes();
        buf.extend_from_slice(FRAME);
        let gated = FramerConfig { crc_gate: true, ..cfg() };
        let Scan::Rejected { error, consumed } = scan(&buf, &gated, false) else { panic!() };
        assert_eq!(error.kind(), "bad_crc");
        assert_eq!(consumed, 6);
        let Scan::Frame(layout) = scan(&buf[6..], &gated, false) else { panic!() };
        assert_eq!(layout.crc_dialect, Some(CrcDialect::Hj212));
    }

    #[test]
    fn ciphertext_bytes_inside_the_segment_do_not_matter() {
        let data = b"QN=1;CP=&&\r\n##0001\0&\x0a&&";
        let mut buf = format!("##{:04}", data.len()).into_bytes();
        buf.extend_from_slice(data);
        buf.extend_from_slice(&crc::format_field(crc::hj212(data)));
        buf.extend_from_slice(b"\r\n");
        assert_eq!(frame_len(&scan(&buf, &cfg(), false)), buf.len());
    }
}
