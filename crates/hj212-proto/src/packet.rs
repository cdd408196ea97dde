//! Layer 3: a data segment (CRC already settled, decrypted if it was) → [`Packet`].
//!
//! Tolerant by design: header fields are read by key in any order, unknown keys, CNs,
//! flags and codes are kept, and every deviation that was tolerated is recorded as a
//! [`Note`]. Only what makes a frame unusable (no CP, no CN or MN, unreadable numbers
//! in the header) is an error.

use std::borrow::Cow;

use nom::{
    IResult, Offset, Parser,
    bytes::complete::{tag, take_till},
    combinator::opt,
    sequence::preceded,
};

use crate::model::{Cn, DataFlag, FieldKind, Flag, Medium, SystemType, Version};
use crate::notes::{Note, Notes};
use crate::time::{BeijingTime, TimeError};

const CP_OPEN: &str = "CP=&&";
const CP_CLOSE: &str = "&&";

/// A data segment that cannot be used.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum ParseError {
    #[error("no \"CP=&&\" in the data segment")]
    MissingCp,
    #[error("CP is not closed by \"&&\" at the end of the data segment")]
    CpNotClosed,
    #[error("required header field {0} is missing")]
    MissingField(&'static str),
    #[error("header field {field} has an unusable value {value:?}")]
    BadField { field: &'static str, value: String },
}

impl ParseError {
    /// A stable short name, used as a metric label and in decode output.
    pub fn kind(&self) -> &'static str {
        match self {
            Self::MissingCp => "missing_cp",
            Self::CpNotClosed => "cp_not_closed",
            Self::MissingField(_) => "missing_field",
            Self::BadField { .. } => "bad_field",
        }
    }
}

/// One `key=value` item of CP.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CpItem<'a> {
    /// Index of the `;`-separated group the item is in.
    pub group: u16,
    /// The whole key, e.g. `a21026-Rtd` or `DataTime`.
    pub key: &'a str,
    /// The factor code of a `CODE-Suffix` key (`a21026`).
    pub code: Option<&'a str>,
    /// The field kind of a `CODE-Suffix` key (`Rtd`); `FieldKind::Other` for unknown suffixes.
    pub kind: Option<FieldKind>,
    pub value: &'a str,
}

impl<'a> CpItem<'a> {
    /// The text after `-` in a `CODE-Suffix` key.
    pub fn suffix(&self) -> Option<&'a str> {
        self.code.map(|code| &self.key[code.len() + 1..])
    }

    /// The value as a number, when it is one.
    pub fn number(&self) -> Option<f64> {
        self.value.parse().ok()
    }
}

/// A parsed data segment, borrowing from its text.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Packet<'a> {
    pub qn: Option<&'a str>,
    pub st: Option<&'a str>,
    pub cn: Cn,
    pub pw: Option<&'a str>,
    pub mn: &'a str,
    pub flag: Option<Flag>,
    pub pnum: Option<u16>,
    pub pno: Option<u16>,
    /// HJ 212-2025 re-send marker (`RF=1`).
    pub rf: Option<&'a str>,
    /// Header fields no standard defines, in order.
    pub extra_header: Vec<(&'a str, &'a str)>,
    /// The raw CP content between `CP=&&` and the final `&&`.
    pub cp: &'a str,
    pub items: Vec<CpItem<'a>>,
    pub notes: Notes,
}

/// The fields of one factor code, in the order they came.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FactorFields<'p, 'a> {
    pub code: &'a str,
    items: &'p [CpItem<'a>],
}

impl<'p, 'a> FactorFields<'p, 'a> {
    /// This factor's items (a factor's fields may be spread over several groups).
    pub fn items(&self) -> impl Iterator<Item = &'p CpItem<'a>> + use<'p, 'a> {
        let code = self.code;
        self.items.iter().filter(move |i| i.code == Some(code))
    }

    /// The value of the first field of this kind.
    pub fn get(&self, kind: FieldKind) -> Option<&'a str> {
        self.items().find(|i| i.kind == Some(kind)).map(|i| i.value)
    }

    /// The data flag (`-Flag`), if sent.
    pub fn flag(&self) -> Option<DataFlag> {
        self.get(FieldKind::Flag).map(DataFlag::from_wire)
    }
}

/// Data-segment bytes as text for [`Packet::parse_text`]; made only after CRC and decryption.
///
/// Invalid UTF-8 (a GBK device, say) is replaced rather than rejected; the packet then
/// carries [`Note::InvalidUtf8`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SegmentText<'a>(Cow<'a, str>);

impl<'a> SegmentText<'a> {
    pub fn new(data: &'a [u8]) -> Self {
        // The strict check is SIMD-fast; the lossy path runs only for bad bytes.
        match std::str::from_utf8(data) {
            Ok(text) => Self(Cow::Borrowed(text)),
            Err(_) => Self(String::from_utf8_lossy(data)),
        }
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// Some bytes were not UTF-8 and were replaced by U+FFFD.
    pub fn was_replaced(&self) -> bool {
        matches!(self.0, Cow::Owned(_))
    }
}

/// One `key[=value]` item, up to the next separator (`;` or `,`) or the end.
///
/// Works on bytes: the separators are ASCII, so every split lands on a char boundary,
/// and no UTF-8 decoding happens in the hot loop.
type KeyValue<'a> = (&'a [u8], Option<&'a [u8]>);

fn item(input: &[u8]) -> IResult<&[u8], KeyValue<'_>> {
    let end = |b: u8| b == b';' || b == b',';
    (take_till(move |b| b == b'=' || end(b)), opt(preceded(tag(&b"="[..]), take_till(end)))).parse(input)
}

/// Walks `text` item by item, calling `each(key, value, separator_before, spaced)`.
/// `value` is `None` for an item without `=`; keys and values are trimmed of spaces.
fn for_each_item<'a>(text: &'a str, mut each: impl FnMut(&'a str, Option<&'a str>, Option<u8>, bool)) {
    let bytes = text.as_bytes();
    let slice = |part: &[u8]| {
        let start = bytes.offset(part);
        &text[start..start + part.len()]
    };
    let mut rest = bytes;
    let mut separator = None;
    loop {
        let Ok((after, (key, value))) = item(rest) else {
            return;
        };
        let (key, value) = (slice(key), value.map(slice));
        let (trimmed_key, trimmed_value) = (key.trim_ascii(), value.map(str::trim_ascii));
        let spaced = trimmed_key.len() != key.len() || trimmed_value.map(str::len) != value.map(str::len);
        if !(trimmed_key.is_empty() && value.is_none()) {
            each(trimmed_key, trimmed_value, separator, spaced);
        }
        let Some((&sep, after)) = after.split_first() else {
            return;
        };
        separator = Some(sep);
        rest = after;
    }
}

#[derive(Default)]
struct Header<'a> {
    qn: Option<&'a str>,
    st: Option<&'a str>,
    cn: Option<&'a str>,
    pw: Option<&'a str>,
    mn: Option<&'a str>,
    flag: Option<&'a str>,
    pnum: Option<&'a str>,
    pno: Option<&'a str>,
    rf: Option<&'a str>,
    extra: Vec<(&'a str, &'a str)>,
}

impl<'a> Header<'a> {
    fn parse(text: &'a str, notes: &mut Notes) -> Self {
        let mut header = Self::default();
        for_each_item(text, |key, value, separator, _| {
            if separator == Some(b',') {
                notes.insert(Note::CommaInHeader);
            }
            match value {
                Some(value) => header.set(key, value, notes),
                None => notes.insert(Note::MalformedHeaderField),
            }
        });
        header
    }

    fn set(&mut self, key: &'a str, value: &'a str, notes: &mut Notes) {
        let slot = match key {
            "QN" => &mut self.qn,
            "ST" => &mut self.st,
            "CN" => &mut self.cn,
            "PW" => &mut self.pw,
            "MN" => &mut self.mn,
            "Flag" => &mut self.flag,
            "PNUM" => &mut self.pnum,
            "PNO" => &mut self.pno,
            "RF" => &mut self.rf,
            _ => {
                notes.insert(Note::UnknownHeaderField);
                self.extra.push((key, value));
                return;
            }
        };
        if slot.is_some() {
            notes.insert(Note::DuplicateHeaderField);
        } else {
            *slot = Some(value);
        }
    }
}

fn number<T: std::str::FromStr>(field: &'static str, value: &str) -> Result<T, ParseError> {
    value.parse().map_err(|_| ParseError::BadField { field, value: value.to_owned() })
}

fn optional<T: std::str::FromStr>(field: &'static str, value: Option<&str>) -> Result<Option<T>, ParseError> {
    value.map(|v| number(field, v)).transpose()
}

/// Splits CP into items: `;` between groups, `,` between items, the first `=` splits.
fn parse_cp<'a>(cp: &'a str, notes: &mut Notes) -> Vec<CpItem<'a>> {
    // One allocation for typical CP (an item is rarely under 8 bytes); no counting pass.
    let mut items = Vec::with_capacity(cp.len() / 8 + 1);
    let mut group: u16 = 0;
    for_each_item(cp, |key, value, separator, spaced| {
        if separator == Some(b';') {
            group = group.saturating_add(1);
        }
        if spaced {
            notes.insert(Note::SpacesInCp);
        }
        let value = value.unwrap_or_else(|| {
            notes.insert(Note::CpItemWithoutValue);
            ""
        });
        let (code, kind) = match key.split_once('-') {
            Some((code, suffix)) => (Some(code), Some(FieldKind::from_wire(suffix))),
            None => (None, None),
        };
        if key == "DataTime" && value.len() == 17 {
            notes.insert(Note::DataTimeWithMillis);
        }
        items.push(CpItem { group, key, code, kind, value });
    });
    items
}

fn is_standard_mn(mn: &str) -> bool {
    mn.len() == 24 && mn.bytes().all(|b| b.is_ascii_digit() || (b'A'..=b'F').contains(&b))
}

impl<'a> Packet<'a> {
    /// Parses a data segment (the text between the length field and the CRC).
    ///
    /// # Errors
    /// [`ParseError`] when the segment has no CP, no usable CN or MN, or a header number
    /// (Flag, PNUM, PNO) that is not a number.
    pub fn parse(text: &'a str) -> Result<Self, ParseError> {
        let mut notes = Notes::default();
        let cp_at = text.find(CP_OPEN).ok_or(ParseError::MissingCp)?;
        let cp = text[cp_at + CP_OPEN.len()..].trim_end().strip_suffix(CP_CLOSE).ok_or(ParseError::CpNotClosed)?;
        let header_text = &text[..cp_at];
        if !header_text.is_empty() && !header_text.trim_end().ends_with(';') {
            notes.insert(Note::NoSemicolonBeforeCp);
        }
        let header = Header::parse(header_text, &mut notes);
        let cn_text = header.cn.ok_or(ParseError::MissingField("CN"))?;
        if cn_text.len() != 4 {
            return Err(ParseError::BadField { field: "CN", value: cn_text.to_owned() });
        }
        let cn = Cn::from_code(number("CN", cn_text)?);
        let mn = header.mn.filter(|mn| !mn.is_empty()).ok_or(ParseError::MissingField("MN"))?;
        let flag = optional::<u8>("Flag", header.flag)?.map(Flag);
        let pnum = optional::<u16>("PNUM", header.pnum)?;
        let pno = optional::<u16>("PNO", header.pno)?;
        note_header(&mut notes, &header, flag, mn);
        let items = parse_cp(cp, &mut notes);
        Ok(Self {
            qn: header.qn,
            st: header.st,
            cn,
            pw: header.pw,
            mn,
            flag,
            pnum,
            pno,
            rf: header.rf,
            extra_header: header.extra,
            cp,
            items,
            notes,
        })
    }

    /// [`Packet::parse`] on a [`SegmentText`], noting replaced bytes.
    ///
    /// # Errors
    /// As [`Packet::parse`].
    pub fn parse_text(text: &'a SegmentText<'_>) -> Result<Self, ParseError> {
        let mut packet = Self::parse(text.as_str())?;
        if text.was_replaced() {
            packet.notes.insert(Note::InvalidUtf8);
        }
        Ok(packet)
    }

    /// The protocol generation (no Flag means HJ/T 212-2005).
    pub fn version(&self) -> Version {
        self.flag.map_or(Version::Hj212_2005, Flag::version)
    }

    /// The A bit: the sender expects an answer.
    pub fn wants_ack(&self) -> bool {
        self.flag.is_some_and(Flag::ack)
    }

    /// One packet of a split message (D bit, or PNUM/PNO present without it).
    pub fn is_split(&self) -> bool {
        self.flag.is_some_and(Flag::split) || (self.pnum.is_some() && self.pno.is_some())
    }

    pub fn system_type(&self) -> SystemType {
        self.st.map_or(SystemType::Other, SystemType::from_wire)
    }

    /// Which factor table the ST points to, for HJ/T 212-2005 codes.
    pub fn medium(&self) -> Option<Medium> {
        self.system_type().medium()
    }

    /// The value of the first CP item with this key (`DataTime`, `QnRtn`, ...).
    pub fn get(&self, key: &str) -> Option<&'a str> {
        self.items.iter().find(|i| i.key == key).map(|i| i.value)
    }

    pub fn data_time(&self) -> Option<&'a str> {
        self.get("DataTime")
    }

    /// DataTime as a Beijing time, if present.
    pub fn data_time_parsed(&self) -> Option<Result<BeijingTime, TimeError>> {
        self.data_time().map(BeijingTime::parse)
    }

    /// QN as a Beijing time, if present.
    pub fn qn_time(&self) -> Option<Result<BeijingTime, TimeError>> {
        self.qn.map(BeijingTime::parse)
    }

    /// The CP items grouped by factor code, in order of first appearance.
    pub fn factors(&self) -> Vec<FactorFields<'_, 'a>> {
        let mut factors: Vec<FactorFields<'_, 'a>> = Vec::new();
        for (at, item) in self.items.iter().enumerate() {
            let Some(code) = item.code else { continue };
            if !factors.iter().any(|f| f.code == code) {
                factors.push(FactorFields { code, items: &self.items[at..] });
            }
        }
        factors
    }
}

fn note_header(notes: &mut Notes, header: &Header<'_>, flag: Option<Flag>, mn: &str) {
    if header.qn.is_none() {
        notes.insert(Note::NoQn);
    }
    if flag.is_none() {
        notes.insert(Note::NoFlag);
    }
    if header.st.is_some_and(|st| st.len() != 2) {
        notes.insert(Note::NonStandardSt);
    }
    if !is_standard_mn(mn) {
        notes.insert(Note::NonStandardMn);
    }
    let has_split_fields = header.pnum.is_some() && header.pno.is_some();
    let d_bit = flag.is_some_and(Flag::split);
    if has_split_fields && !d_bit {
        notes.insert(Note::SplitWithoutFlag);
    }
    if d_bit && !has_split_fields {
        notes.insert(Note::SplitFieldsMissing);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const APPENDIX_A: &str =
        "QN=20160801085857223;ST=32;CN=1062;PW=100000;MN=010000A8900016F000169DC0;Flag=5;CP=&&RtdInterval=30&&";

    #[test]
    fn appendix_a() {
        let p = Packet::parse(APPENDIX_A).unwrap();
        assert_eq!(p.qn, Some("20160801085857223"));
        assert_eq!(p.st, Some("32"));
        assert_eq!(p.cn, Cn::SetRtdInterval);
        assert_eq!(p.pw, Some("100000"));
        assert_eq!(p.mn, "010000A8900016F000169DC0");
        assert_eq!(p.version(), Version::Hj212_2017);
        assert!(p.wants_ack() && !p.is_split());
        assert_eq!(p.get("RtdInterval"), Some("30"));
        assert!(p.notes.is_empty(), "{:?}", p.notes.iter().collect::<Vec<_>>());
    }

    #[test]
    fn fields_in_any_order_and_unknown_keys_kept() {
        let p = Packet::parse("MN=X1;Flag=4;XX=1;CN=2011;ST=22;CP=&&&&").unwrap();
        assert_eq!((p.mn, p.cn, p.qn), ("X1", Cn::RealTimeData, None));
        assert_eq!(p.extra_header, [("XX", "1")]);
        assert!(p.notes.contains(Note::UnknownHeaderField));
        assert!(p.notes.contains(Note::NoQn));
        assert!(p.items.is_empty());
    }

    #[test]
    fn cp_grammar() {
        let p = Packet::parse(
            "CN=2051;MN=M;CP=&&DataTime=20160801084000;w00000-Cou=10.5,w00000-Flag=N;w01001-Min=7.1,w01001-Zz=a=b&&",
        )
        .unwrap();
        assert_eq!(p.data_time(), Some("20160801084000"));
        let factors = p.factors();
        assert_eq!(factors.len(), 2);
        assert_eq!(factors[0].code, "w00000");
        assert_eq!(factors[0].get(FieldKind::Cou), Some("10.5"));
        assert_eq!(factors[0].flag(), Some(DataFlag::Normal));
        let odd = factors[1].items().nth(1).unwrap();
        assert_eq!((odd.kind, odd.suffix(), odd.value), (Some(FieldKind::Other), Some("Zz"), "a=b"));
        assert_eq!(odd.group, 2);
    }

    #[test]
    fn tolerated_deviations() {
        let p = Packet::parse("QN=1,ST=32;CN=2041;MN=M;Flag=5CP=&& PolId=w01018;x…&&").unwrap();
        assert_eq!(p.qn, Some("1"));
        assert_eq!(p.flag, Some(Flag(5)));
        for note in [Note::CommaInHeader, Note::NoSemicolonBeforeCp, Note::SpacesInCp, Note::CpItemWithoutValue] {
            assert!(p.notes.contains(note), "{note:?}");
        }
        assert_eq!(p.get("PolId"), Some("w01018"));
    }

    #[test]
    fn errors_name_the_problem() {
        let err = |s| Packet::parse(s).unwrap_err().to_string();
        assert_eq!(err("QN=1;CN=2011;MN=M"), "no \"CP=&&\" in the data segment");
        assert_eq!(err("CN=2011;MN=M;CP=&&a=1"), "CP is not closed by \"&&\" at the end of the data segment");
        assert_eq!(err("MN=M;CP=&&&&"), "required header field CN is missing");
        assert_eq!(err("CN=2011;CP=&&&&"), "required header field MN is missing");
        assert_eq!(err("CN=20x1;MN=M;CP=&&&&"), "header field CN has an unusable value \"20x1\"");
        assert_eq!(err("CN=2011;MN=M;Flag=256;CP=&&&&"), "header field Flag has an unusable value \"256\"");
    }

    #[test]
    fn invalid_utf8_is_replaced_and_noted() {
        let bytes = b"CN=3020;MN=M;CP=&&i11001-Info=//\xc7\xe5//&&";
        let text = SegmentText::new(bytes);
        let p = Packet::parse_text(&text).unwrap();
        assert!(p.notes.contains(Note::InvalidUtf8));
        assert_eq!(p.get("i11001-Info"), Some("//\u{fffd}\u{fffd}//"));
    }
}
