//! An accepted data upload's readings. Every follower reads every upload, so its factors and
//! fields are kept as spans of one copy of their text (two vectors and one string per upload)
//! rather than as a vector and a string per field: interpreting an upload cost about twice
//! the parse itself before (`cargo bench -p hj212-benches --bench proto -- follow_`).

use std::ops::Range;

use hj212_proto::Packet;
use hj212_proto::model::{DataFlag, FieldKind, Medium};
use smol_str::SmolStr;

/// An accepted data upload: where, when, and each factor's fields.
#[derive(Debug, Clone, PartialEq)]
pub struct Upload {
    pub mn: SmolStr,
    /// The system code (ST), which names the factor table of HJ/T 212-2005 codes.
    pub st: Option<SmolStr>,
    pub cn: u16,
    /// DataTime as 14 digits (17-digit and space-padded forms are tolerated on the wire).
    pub data_time: SmolStr,
    pub data_time_ms: i64,
    pub medium: Option<Medium>,
    /// The record was marked `resent` (RF=1) or `backfill` when it arrived.
    pub resent: bool,
    readings: Readings,
}

/// Factor codes, keys and values, each a span of `text`; a factor's fields are consecutive.
#[derive(Debug, Clone, PartialEq)]
struct Readings {
    text: String,
    factors: Vec<FactorSpans>,
    fields: Vec<FieldSpans>,
}

#[derive(Debug, Clone, PartialEq)]
struct FactorSpans {
    code: Span,
    fields: Range<u32>,
}

#[derive(Debug, Clone, PartialEq)]
struct FieldSpans {
    key: Span,
    kind: Option<FieldKind>,
    value: Span,
}

#[derive(Debug, Clone, Copy, PartialEq)]
struct Span {
    start: u32,
    end: u32,
}

/// Spans are `u32`: the text is one frame's, at most 9999 bytes (HJ 212's length field).
fn to_u32(at: usize) -> u32 {
    u32::try_from(at).unwrap_or(u32::MAX)
}

impl Readings {
    fn of(packet: &Packet<'_>) -> Self {
        Self::contiguous(packet).unwrap_or_else(|| Self::grouped(packet))
    }

    /// One pass, when each factor's fields come together (as loggers send them): a code is
    /// compared with the factor before it, and with the others only where it changes.
    /// `None` when a factor comes back after another (its fields spread over groups).
    fn contiguous(packet: &Packet<'_>) -> Option<Self> {
        let mut readings = Self::with_capacity(packet);
        let mut current: Option<&str> = None;
        for item in &packet.items {
            let Some(code) = item.code else { continue };
            if current != Some(code) {
                if readings.factors.iter().any(|factor| readings.str(factor.code) == code) {
                    return None;
                }
                let (code_span, at) = (readings.push(code), to_u32(readings.fields.len()));
                readings.factors.push(FactorSpans { code: code_span, fields: at..at });
                current = Some(code);
            }
            readings.push_field(item.key, item.kind, item.value);
            if let Some(factor) = readings.factors.last_mut() {
                factor.fields.end += 1;
            }
        }
        Some(readings)
    }

    /// Factors in order of first appearance, each with all its fields wherever they came.
    fn grouped(packet: &Packet<'_>) -> Self {
        let mut readings = Self::with_capacity(packet);
        for factor in packet.factors() {
            let code = readings.push(factor.code);
            let first = to_u32(readings.fields.len());
            for item in factor.items() {
                readings.push_field(item.key, item.kind, item.value);
            }
            readings.factors.push(FactorSpans { code, fields: first..to_u32(readings.fields.len()) });
        }
        readings
    }

    fn with_capacity(packet: &Packet<'_>) -> Self {
        Self { text: String::with_capacity(packet.cp.len()), factors: Vec::new(), fields: Vec::new() }
    }

    fn push_field(&mut self, key: &str, kind: Option<FieldKind>, value: &str) {
        let (key, value) = (self.push(key), self.push(value));
        self.fields.push(FieldSpans { key, kind, value });
    }

    fn push(&mut self, part: &str) -> Span {
        let start = to_u32(self.text.len());
        self.text.push_str(part);
        Span { start, end: to_u32(self.text.len()) }
    }

    fn str(&self, span: Span) -> &str {
        self.text.get(span.start as usize..span.end as usize).unwrap_or_default()
    }
}

impl Upload {
    /// The upload of `packet`, with what the caller read from its header and record.
    pub(super) fn new(packet: &Packet<'_>, data_time: SmolStr, data_time_ms: i64, resent: bool) -> Self {
        Self {
            mn: packet.mn.into(),
            st: packet.st.map(SmolStr::new),
            cn: packet.cn.code(),
            data_time,
            data_time_ms,
            medium: packet.medium(),
            resent,
            readings: Readings::of(packet),
        }
    }

    /// Factors in order of first appearance; a factor's fields may be spread over groups.
    pub fn factors(&self) -> impl ExactSizeIterator<Item = Factor<'_>> {
        let readings = &self.readings;
        readings.factors.iter().map(move |factor| Factor {
            code: readings.str(factor.code),
            fields: readings.fields.get(factor.fields.start as usize..factor.fields.end as usize).unwrap_or_default(),
            readings,
        })
    }
}

/// One factor's fields, in the order they came.
#[derive(Debug, Clone, Copy)]
pub struct Factor<'a> {
    pub code: &'a str,
    fields: &'a [FieldSpans],
    readings: &'a Readings,
}

/// One `code-Suffix=value` field of a factor.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Field<'a> {
    /// The whole key as sent (`a21026-Rtd`).
    pub key: &'a str,
    pub kind: Option<FieldKind>,
    pub value: &'a str,
}

impl<'a> Field<'a> {
    /// The part of the key after the factor code (`Rtd`).
    pub fn suffix(&self) -> &'a str {
        self.key.split_once('-').map_or("", |(_, suffix)| suffix)
    }
}

impl<'a> Factor<'a> {
    /// The fields, in the order they came.
    pub fn fields(&self) -> impl ExactSizeIterator<Item = Field<'a>> + use<'a> {
        let readings = self.readings;
        self.fields.iter().map(move |field| Field {
            key: readings.str(field.key),
            kind: field.kind,
            value: readings.str(field.value),
        })
    }

    /// The first value of this kind (the first value of a kind wins, as in the parser).
    pub fn get(&self, kind: FieldKind) -> Option<&'a str> {
        let field = self.fields.iter().find(|f| f.kind == Some(kind))?;
        Some(self.readings.str(field.value))
    }

    /// The data flag (`-Flag`), if sent.
    pub fn flag(&self) -> Option<DataFlag> {
        self.get(FieldKind::Flag).map(DataFlag::from_wire)
    }

    /// A number of this kind, if it is one (finite; surrounding blanks ignored).
    pub fn number(&self, kind: FieldKind) -> Option<f64> {
        self.get(kind).and_then(|v| v.trim().parse::<f64>().ok()).filter(|v| v.is_finite())
    }
}
