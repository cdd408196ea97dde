//! Turning an archived frame into reading rows.

use hj212_archive::{Kind, Record, Verdict};
use hj212_proto::framer::{self, FramerConfig, Scan};
use hj212_proto::model::FieldKind;
use hj212_proto::time::BeijingTime;
use hj212_proto::{Packet, SegmentText};

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

    fn set(&mut self, kind: Option<FieldKind>, suffix: &str, value: &str) {
        let slot = match kind {
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
                other.push_str(suffix);
                other.push('=');
                other.push_str(value);
                return;
            }
        };
        // The first value of a kind wins, as in the parser.
        if slot.is_none() {
            *slot = Some(value.to_owned());
        }
    }
}

/// The readings an archive record carries: only accepted data uploads with a valid
/// DataTime and factor fields produce any. The frame was checked before it was archived;
/// it is parsed again here because the archive keeps bytes, not interpretations.
pub fn readings_of(record: &Record) -> Vec<Reading> {
    if record.kind != Kind::Received || record.verdict != Verdict::Accepted {
        return Vec::new();
    }
    let Scan::Frame(layout) = framer::scan(&record.data, &FramerConfig::default(), true) else {
        return Vec::new();
    };
    let text = SegmentText::new(layout.data(&record.data));
    let Ok(packet) = Packet::parse_text(&text) else {
        return Vec::new();
    };
    if !packet.cn.is_data_upload() {
        return Vec::new();
    }
    let Some(Ok(time)) = packet.data_time_parsed() else {
        return Vec::new();
    };
    let Some(data_time) = packet.data_time() else {
        return Vec::new();
    };
    let data_time = normalise(data_time, time);
    packet
        .factors()
        .iter()
        .map(|factor| {
            let mut reading = Reading {
                mn: packet.mn.to_owned(),
                cn: packet.cn.code(),
                data_time: data_time.clone(),
                data_time_ms: time.unix_millis(),
                factor: factor.code.to_owned(),
                marks: record.flags,
                received_ms: record.time_ms,
                archive_seq: record.seq,
                st: packet.st.map(str::to_owned),
                ..Reading::default()
            };
            for item in factor.items() {
                reading.set(item.kind, item.suffix().unwrap_or_default(), item.value);
            }
            reading
        })
        .collect()
}

/// DataTime as 14 digits (17-digit and space-padded forms are tolerated on the wire).
fn normalise(raw: &str, time: BeijingTime) -> String {
    if raw.len() == 14 { raw.to_owned() } else { time.to_seconds_string() }
}
