//! Turning an archived data upload into readings, and the compact form of a reading's fields.
//!
//! A reading keeps its factor's fields as sent (text, never numbers) in one text `v` (in its
//! entry of the record's row, `packed.rs`), which
//! costs nothing for the fields a record does not carry: first the fields a changed copy is
//! told by (Rtd, Min, Avg, Max, Cou and their Zs forms), then, after a `;`, the rare ones
//! (EFlag, SampleTime, further fields, the archive's marks, and DataTime as sent when it is not
//! the formatting of `data_time_ms`). Each part is a comma-separated list of a one-letter tag
//! and the value: HJ 212 separates fields with `,` and `;`, so no value holds either.

use hj212_archive::Record;
use hj212_follow::{Factor, Field, Interpreted, Meaning, Upload};
use hj212_proto::model::FieldKind;
use hj212_proto::time::BeijingTime;

use crate::packed::{Entry, Receipt};

/// One row: the fields one factor reported for one DataTime.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Reading {
    pub mn: String,
    pub cn: u16,
    pub data_time: String,
    pub data_time_ms: i64,
    pub factor: String,
    pub rtd: Option<String>,
    pub min: Option<String>,
    pub avg: Option<String>,
    pub max: Option<String>,
    pub cou: Option<String>,
    pub zs_rtd: Option<String>,
    pub zs_min: Option<String>,
    pub zs_avg: Option<String>,
    pub zs_max: Option<String>,
    pub flag: Option<String>,
    pub eflag: Option<String>,
    pub sample_time: Option<String>,
    pub other: Option<String>,
    pub marks: u8,
    pub received_ms: i64,
    pub archive_seq: u64,
}

/// The tags of the values in `v`, in the order they are written.
const VALUE_TAGS: [u8; 9] = *b"rnaxcRNAX";
/// The tags of the rare fields, after the `;`.
const EFLAG: u8 = b'e';
const SAMPLE_TIME: u8 = b's';
const OTHER: u8 = b'o';
const MARKS: u8 = b'm';
const DATA_TIME: u8 = b't';

impl Reading {
    /// The reading of one entry of a row of `mn`'s `cn` records (see `packed.rs`).
    pub(crate) fn of_entry(mn: &str, cn: u16, data_time_ms: i64, row: Receipt, entry: &Entry<'_>, code: &str) -> Self {
        let receipt = entry.receipt(row);
        let mut reading = Self {
            mn: mn.to_owned(),
            cn,
            data_time_ms,
            factor: code.to_owned(),
            flag: entry.flag.map(str::to_owned),
            received_ms: data_time_ms + receipt.received,
            archive_seq: u64::try_from(receipt.seq).unwrap_or(0),
            ..Self::default()
        };
        let (values, rare) = split(entry.v);
        for item in items(values) {
            let value = Some(item.1.to_owned());
            match item.0 {
                b'r' => reading.rtd = value,
                b'n' => reading.min = value,
                b'a' => reading.avg = value,
                b'x' => reading.max = value,
                b'c' => reading.cou = value,
                b'R' => reading.zs_rtd = value,
                b'N' => reading.zs_min = value,
                b'A' => reading.zs_avg = value,
                b'X' => reading.zs_max = value,
                _ => {}
            }
        }
        let mut data_time = None;
        for (tag, value) in items(rare) {
            match tag {
                EFLAG => reading.eflag = Some(value.to_owned()),
                SAMPLE_TIME => reading.sample_time = Some(value.to_owned()),
                OTHER => {
                    let other = reading.other.get_or_insert_with(String::new);
                    if !other.is_empty() {
                        other.push(';');
                    }
                    other.push_str(value);
                }
                MARKS => reading.marks = value.parse().unwrap_or(0),
                DATA_TIME => data_time = Some(value.to_owned()),
                _ => {}
            }
        }
        reading.data_time = data_time.unwrap_or_else(|| canonical(data_time_ms));
        reading
    }
}

/// DataTime as the store writes it when it does not keep the text: 14 digits, Beijing time.
fn canonical(data_time_ms: i64) -> String {
    BeijingTime::from_unix_millis(data_time_ms).to_seconds_string()
}

/// The values and the rare fields of a `v` column.
fn split(v: Option<&str>) -> (Option<&str>, Option<&str>) {
    match v.map(|v| v.split_once(';')) {
        Some(Some((values, rare))) => (Some(values), Some(rare)),
        Some(None) => (v, None),
        None => (None, None),
    }
}

/// The values part of a `v` column, what a changed copy is told by ("" when it has none).
pub(crate) fn values_of(v: Option<&str>) -> &str {
    split(v).0.unwrap_or("")
}

/// The (tag, value) items of one part of a `v` column.
fn items(column: Option<&str>) -> impl Iterator<Item = (u8, &str)> {
    column
        .into_iter()
        .flat_map(|text| text.split(','))
        .filter_map(|item| item.as_bytes().first().map(|tag| (*tag, item.get(1..).unwrap_or(""))))
}

/// Avg, ZsAvg and Cou from a `v` column: what a period record's report shows.
pub(crate) fn period_fields(v: Option<&str>) -> (Option<String>, Option<String>, Option<String>) {
    let (mut avg, mut zs_avg, mut cou) = (None, None, None);
    for (tag, value) in items(split(v).0) {
        match tag {
            b'a' => avg = Some(value.to_owned()),
            b'A' => zs_avg = Some(value.to_owned()),
            b'c' => cou = Some(value.to_owned()),
            _ => {}
        }
    }
    (avg, zs_avg, cou)
}

/// One factor's reading as it is inserted: borrowed from the interpreted record (no copy of its text).
#[derive(Debug, Default)]
pub(crate) struct NewRow<'a> {
    pub mn: &'a str,
    pub cn: u16,
    /// DataTime as sent, when it is not the formatting of `data_time_ms` (else it is not kept).
    pub data_time: Option<&'a str>,
    pub data_time_ms: i64,
    pub factor: &'a str,
    /// Rtd, Min, Avg, Max, Cou, ZsRtd, ZsMin, ZsAvg, ZsMax (the [`VALUE_TAGS`] order).
    pub values: [Option<&'a str>; 9],
    pub flag: Option<&'a str>,
    pub eflag: Option<&'a str>,
    pub sample_time: Option<&'a str>,
    /// Further fields as `Suffix=value`, in the order they came.
    pub other: Vec<Field<'a>>,
    pub marks: u8,
    pub received_ms: i64,
    pub archive_seq: u64,
}

impl<'a> NewRow<'a> {
    /// The row of one factor of an upload: each kind's first value, the rest in `other`.
    fn of(upload: &'a Upload, data_time: Option<&'a str>, factor: &Factor<'a>, record: &Record) -> Self {
        let mut row = Self {
            mn: &upload.mn,
            cn: upload.cn,
            data_time,
            data_time_ms: upload.data_time_ms,
            factor: factor.code,
            marks: record.flags,
            received_ms: record.time_ms,
            archive_seq: record.seq,
            ..Self::default()
        };
        for field in factor.fields() {
            row.set(field);
        }
        row
    }

    fn set(&mut self, field: Field<'a>) {
        let slot = match field.kind {
            Some(FieldKind::Rtd) => &mut self.values[0],
            Some(FieldKind::Min) => &mut self.values[1],
            Some(FieldKind::Avg) => &mut self.values[2],
            Some(FieldKind::Max) => &mut self.values[3],
            Some(FieldKind::Cou) => &mut self.values[4],
            Some(FieldKind::ZsRtd) => &mut self.values[5],
            Some(FieldKind::ZsMin) => &mut self.values[6],
            Some(FieldKind::ZsAvg) => &mut self.values[7],
            Some(FieldKind::ZsMax) => &mut self.values[8],
            Some(FieldKind::Flag) => &mut self.flag,
            Some(FieldKind::EFlag) => &mut self.eflag,
            Some(FieldKind::SampleTime) => &mut self.sample_time,
            _ => {
                self.other.push(field);
                return;
            }
        };
        // The first value of a kind wins (hj212-follow's meaning).
        if slot.is_none() {
            *slot = Some(field.value);
        }
    }

    /// The fields (`v`) into `out` (cleared first): false when the reading has none of them.
    pub(crate) fn write(&self, out: &mut String) -> bool {
        out.clear();
        for (tag, value) in VALUE_TAGS.iter().zip(self.values) {
            if let Some(value) = value {
                push_item(out, *tag, value);
            }
        }
        let values = out.len();
        out.push(';');
        for (tag, value) in [(EFLAG, self.eflag), (SAMPLE_TIME, self.sample_time)] {
            if let Some(value) = value {
                push_item(out, tag, value);
            }
        }
        for field in &self.other {
            push_item(out, OTHER, field.suffix());
            out.push('=');
            out.push_str(field.value);
        }
        if self.marks != 0 {
            push_item(out, MARKS, &self.marks.to_string());
        }
        if let Some(data_time) = self.data_time {
            push_item(out, DATA_TIME, data_time);
        }
        if out.len() == values + 1 {
            out.truncate(values);
        }
        !out.is_empty()
    }
}

fn push_item(out: &mut String, tag: u8, value: &str) {
    if !out.is_empty() && !out.ends_with(';') {
        out.push(',');
    }
    out.push(char::from(tag));
    out.push_str(value);
}

/// The readings an archived record carries: one per factor of an accepted data upload with a
/// readable DataTime (see `hj212_follow::meaning`).
pub(crate) fn rows_of(archived: &Interpreted) -> impl Iterator<Item = NewRow<'_>> {
    let upload = match &archived.meaning {
        Meaning::Data(upload) => Some(upload),
        _ => None,
    };
    upload.into_iter().flat_map(move |upload| {
        let canonical = BeijingTime::from_unix_millis(upload.data_time_ms).is_written_as(&upload.data_time);
        let kept = (!canonical).then_some(upload.data_time.as_str());
        upload.factors().map(move |factor| NewRow::of(upload, kept, &factor, &archived.record))
    })
}
