//! Turning an archived data upload into reading rows.

use hj212_archive::Record;
use hj212_follow::{Factor, Field, Interpreted, Meaning, Upload};
use hj212_proto::model::FieldKind;

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
    /// The frame's system code (ST).
    pub st: Option<String>,
}

impl Reading {
    pub(crate) fn from_row(row: &rusqlite::Row<'_>) -> rusqlite::Result<Self> {
        Ok(Self {
            mn: row.get(0)?,
            cn: row.get(1)?,
            data_time: row.get(2)?,
            data_time_ms: row.get(3)?,
            factor: row.get(4)?,
            rtd: row.get(5)?,
            min: row.get(6)?,
            avg: row.get(7)?,
            max: row.get(8)?,
            cou: row.get(9)?,
            zs_rtd: row.get(10)?,
            zs_min: row.get(11)?,
            zs_avg: row.get(12)?,
            zs_max: row.get(13)?,
            flag: row.get(14)?,
            eflag: row.get(15)?,
            sample_time: row.get(16)?,
            other: row.get(17)?,
            marks: row.get(18)?,
            received_ms: row.get(19)?,
            archive_seq: u64::try_from(row.get::<_, i64>(20)?).unwrap_or(0),
            st: row.get(21)?,
        })
    }
}

/// One row as it is inserted: borrowed from the interpreted record (no copy of its text).
#[derive(Debug, Default)]
pub(crate) struct NewRow<'a> {
    pub mn: &'a str,
    pub cn: u16,
    pub data_time: &'a str,
    pub data_time_ms: i64,
    pub factor: &'a str,
    pub rtd: Option<&'a str>,
    pub min: Option<&'a str>,
    pub avg: Option<&'a str>,
    pub max: Option<&'a str>,
    pub cou: Option<&'a str>,
    pub zs_rtd: Option<&'a str>,
    pub zs_min: Option<&'a str>,
    pub zs_avg: Option<&'a str>,
    pub zs_max: Option<&'a str>,
    pub flag: Option<&'a str>,
    pub eflag: Option<&'a str>,
    pub sample_time: Option<&'a str>,
    pub other: Option<String>,
    pub marks: u8,
    pub received_ms: i64,
    pub archive_seq: u64,
    pub st: Option<&'a str>,
}

impl<'a> NewRow<'a> {
    /// The row of one factor of an upload: each kind's first value, the rest in `other`.
    fn of(upload: &'a Upload, factor: &'a Factor, record: &Record) -> Self {
        let mut row = Self {
            mn: &upload.mn,
            cn: upload.cn,
            data_time: &upload.data_time,
            data_time_ms: upload.data_time_ms,
            factor: &factor.code,
            marks: record.flags,
            received_ms: record.time_ms,
            archive_seq: record.seq,
            st: upload.st.as_deref(),
            ..Self::default()
        };
        for field in &factor.fields {
            row.set(field);
        }
        row
    }

    fn set(&mut self, field: &'a Field) {
        let slot = match field.kind {
            Some(FieldKind::Rtd) => &mut self.rtd,
            Some(FieldKind::Min) => &mut self.min,
            Some(FieldKind::Avg) => &mut self.avg,
            Some(FieldKind::Max) => &mut self.max,
            Some(FieldKind::Cou) => &mut self.cou,
            Some(FieldKind::ZsRtd) => &mut self.zs_rtd,
            Some(FieldKind::ZsMin) => &mut self.zs_min,
            Some(FieldKind::ZsAvg) => &mut self.zs_avg,
            Some(FieldKind::ZsMax) => &mut self.zs_max,
            Some(FieldKind::Flag) => &mut self.flag,
            Some(FieldKind::EFlag) => &mut self.eflag,
            Some(FieldKind::SampleTime) => &mut self.sample_time,
            _ => {
                let other = self.other.get_or_insert_with(String::new);
                if !other.is_empty() {
                    other.push(';');
                }
                other.push_str(field.suffix());
                other.push('=');
                other.push_str(&field.value);
                return;
            }
        };
        // The first value of a kind wins (hj212-follow's meaning).
        if slot.is_none() {
            *slot = Some(&field.value);
        }
    }
}

/// The rows an archived record carries: one per factor of an accepted data upload with a
/// readable DataTime (see `hj212_follow::meaning`).
pub(crate) fn rows_of(archived: &Interpreted) -> impl Iterator<Item = NewRow<'_>> {
    let upload = match &archived.meaning {
        Meaning::Data(upload) => Some(upload),
        _ => None,
    };
    upload
        .into_iter()
        .flat_map(move |upload| upload.factors.iter().map(move |factor| NewRow::of(upload, factor, &archived.record)))
}
