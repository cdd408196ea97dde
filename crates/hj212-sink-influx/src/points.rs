//! Archive records → InfluxDB line protocol.
//!
//! Data model: measurement `hj212`; tags `mn`, `st`, `cn`, `factor` (the code as sent),
//! `factor_2017` (when a 2005 code maps to a 2017 one) and `flag`; numeric fields `rtd`,
//! `min`, `avg`, `max`, `cou`, `zs_rtd`, `zs_min`, `zs_avg`, `zs_max` (whichever the frame
//! carries); timestamp = DataTime in ms. A point is keyed by series and timestamp, so a
//! replay after a crash overwrites instead of duplicating.
//!
//! First copy wins, as in the store and the rate evidence: a later accepted record with the
//! same (MN, CN, DataTime, factor) but other values would overwrite the first in the TSDB,
//! so its points go to measurement `hj212_resend` instead (same tags and fields), where they
//! can be charted against the values that count.
//!
//! The encoder is our own: InfluxData's `influxdb-line-protocol` builder formats through
//! `fmt::Write` char by char, which was a quarter of the sink's CPU in
//! `benches/src/bin/influx_replay.rs`. Escaping follows the line-protocol reference.

use hj212_follow::{Factor, Interpreted, Meaning, Upload};
use hj212_proto::model::{DataFlag, FieldKind, factor_for_code};

pub const MEASUREMENT: &str = "hj212";
/// Later copies of readings with other values or flag (first copy wins in `hj212`).
pub const RESEND_MEASUREMENT: &str = "hj212_resend";
/// Low-volume site metadata, kept out of the tags of every point.
pub const SITE_MEASUREMENT: &str = "hj212_site";

/// The numeric fields, in the order they are written.
const FIELDS: [(FieldKind, &str); 9] = [
    (FieldKind::Rtd, "rtd"),
    (FieldKind::Min, "min"),
    (FieldKind::Avg, "avg"),
    (FieldKind::Max, "max"),
    (FieldKind::Cou, "cou"),
    (FieldKind::ZsRtd, "zs_rtd"),
    (FieldKind::ZsMin, "zs_min"),
    (FieldKind::ZsAvg, "zs_avg"),
    (FieldKind::ZsMax, "zs_max"),
];

/// Tag keys and values: backslash before comma, equals sign, space and backslash. Line
/// breaks cannot be escaped in line protocol; they become escaped spaces.
fn push_tag_text(out: &mut Vec<u8>, text: &str) {
    for &b in text.as_bytes() {
        match b {
            b',' | b'=' | b' ' | b'\\' => out.extend_from_slice(&[b'\\', b]),
            b'\n' | b'\r' | b'\t' => out.extend_from_slice(b"\\ "),
            _ => out.push(b),
        }
    }
}

/// Appends the points of an archived data upload to `out`; returns how many. Factors named in
/// `changed_copies` (the store holds other values for them from an earlier record) go to
/// [`RESEND_MEASUREMENT`].
pub fn append_points(archived: &Interpreted, changed_copies: &[&str], out: &mut Vec<u8>) -> usize {
    let Meaning::Data(upload) = &archived.meaning else { return 0 };
    let series = Series { upload, cn: upload.cn.to_string(), timestamp: upload.data_time_ms.to_string() };
    // An empty code (`-Rtd=1`) would be an empty tag value, which line protocol refuses.
    upload
        .factors()
        .filter(|factor| {
            let measurement = if changed_copies.contains(&factor.code) { RESEND_MEASUREMENT } else { MEASUREMENT };
            !factor.code.is_empty() && series.append(measurement, factor, out)
        })
        .count()
}

struct Series<'u> {
    upload: &'u Upload,
    cn: String,
    timestamp: String,
}

impl Series<'_> {
    /// Appends one factor's point; false when it has no numeric field.
    fn append(&self, measurement: &str, factor: &Factor<'_>, out: &mut Vec<u8>) -> bool {
        let start = out.len();
        self.push_series(measurement, factor.code, factor.get(FieldKind::Flag), out);
        let mut separator = b' ';
        for (kind, name) in FIELDS {
            // The first value of each kind wins (hj212-follow's meaning), as in the store.
            if let Some(value) = factor.get(kind).map(str::trim).filter(|v| v.parse::<f64>().is_ok_and(f64::is_finite))
            {
                out.push(separator);
                out.extend_from_slice(name.as_bytes());
                out.push(b'=');
                push_number(out, value);
                separator = b',';
            }
        }
        if separator == b' ' {
            out.truncate(start);
            return false;
        }
        out.push(b' ');
        out.extend_from_slice(self.timestamp.as_bytes());
        out.push(b'\n');
        true
    }

    fn push_series(&self, measurement: &str, code: &str, flag: Option<&str>, out: &mut Vec<u8>) {
        let upload = self.upload;
        out.extend_from_slice(measurement.as_bytes());
        let mut tag = |key: &str, value: &str| {
            out.push(b',');
            out.extend_from_slice(key.as_bytes());
            out.push(b'=');
            push_tag_text(out, value);
        };
        tag("mn", &upload.mn);
        if let Some(st) = upload.st.as_deref().filter(|st| !st.is_empty()) {
            tag("st", st);
        }
        tag("cn", &self.cn);
        tag("factor", code);
        if let Some(mapped) = factor_for_code(code, upload.medium).map(|f| f.code).filter(|c| *c != code) {
            tag("factor_2017", mapped);
        }
        if let Some(flag) = flag.map(str::trim).filter(|f| !f.is_empty()) {
            // A tag value from the wire must not add series without bound: the HJ 212-2017
            // Table 8 flags as sent, anything else `other` (the store keeps the exact flag).
            tag("flag", DataFlag::from_wire(flag).as_str().unwrap_or("other"));
        }
    }
}

/// A plain decimal is written as sent (exactly what the logger reported); anything else
/// that parses (exponents, a leading `+`) is written as Rust formats the float.
fn push_number(out: &mut Vec<u8>, value: &str) {
    let digits = value.strip_prefix('-').unwrap_or(value);
    let plain = match digits.split_once('.') {
        Some((whole, fraction)) => {
            !whole.is_empty()
                && !fraction.is_empty()
                && whole.bytes().chain(fraction.bytes()).all(|b| b.is_ascii_digit())
        }
        None => !digits.is_empty() && digits.bytes().all(|b| b.is_ascii_digit()),
    };
    if plain {
        out.extend_from_slice(value.as_bytes());
    } else if let Ok(number) = value.parse::<f64>() {
        out.extend_from_slice(number.to_string().as_bytes());
    }
}

/// One `hj212_site` point per configured site: its name, at `time_ms`.
pub fn site_points(sites: &[(String, String)], time_ms: i64) -> Vec<u8> {
    let mut out = Vec::new();
    for (mn, name) in sites {
        out.extend_from_slice(SITE_MEASUREMENT.as_bytes());
        out.extend_from_slice(b",mn=");
        push_tag_text(&mut out, mn);
        out.extend_from_slice(b" name=\"");
        for &b in name.as_bytes() {
            if b == b'"' || b == b'\\' {
                out.push(b'\\');
            }
            out.push(b);
        }
        out.extend_from_slice(format!("\" {time_ms}\n").as_bytes());
    }
    out
}

#[cfg(test)]
mod tests {
    use hj212_archive::{Kind, Record, Verdict};

    use super::*;

    fn record(frame: &[u8]) -> Interpreted {
        Interpreted::new(Record {
            seq: 7,
            kind: Kind::Received,
            verdict: Verdict::Accepted,
            flags: 0,
            time_ms: 0,
            peer: String::new(),
            data: frame.to_vec(),
            hash: [0; 32],
        })
    }

    #[test]
    fn legacy_codes_get_their_2017_code_and_flags_become_tags() {
        let frame = b"##0136ST=32;CN=2011;PW=000000;MN=LD130133000015;CP=&&DataTime=20160824003817;011-Rtd=231.0,011-Flag=N;B01-Rtd=36.91;060-Rtd=1.803,060-Flag=N&&1dc0\r\n";
        let mut out = Vec::new();
        assert_eq!(append_points(&record(frame), &[], &mut out), 3);
        let text = String::from_utf8(out).unwrap();
        let lines: Vec<&str> = text.lines().collect();
        // 2016-08-24 00:38:17 Beijing = 2016-08-23T16:38:17Z
        assert_eq!(
            lines[0],
            "hj212,mn=LD130133000015,st=32,cn=2011,factor=011,factor_2017=w01018,flag=N rtd=231.0 1471970297000"
        );
        assert_eq!(
            lines[1],
            "hj212,mn=LD130133000015,st=32,cn=2011,factor=B01,factor_2017=w00000 rtd=36.91 1471970297000"
        );
        assert_eq!(
            lines[2],
            "hj212,mn=LD130133000015,st=32,cn=2011,factor=060,factor_2017=w21003,flag=N rtd=1.803 1471970297000"
        );
    }

    #[test]
    fn minute_fields_and_escaping() {
        let segment = "QN=20160801085000001;ST=32;CN=2051;PW=1;MN=A B=C;Flag=4;CP=&&DataTime=20160801084000;w00000-Cou=10.5,w00000-Min=16.4,w00000-Avg=17.5,w00000-Max=20.1,w00000-Flag=N;w01001-Avg=x&&";
        let frame = hj212_proto::encode::frame(segment.as_bytes()).unwrap();
        let mut out = Vec::new();
        assert_eq!(append_points(&record(&frame), &[], &mut out), 1, "a factor without numbers has no point");
        assert_eq!(
            String::from_utf8(out).unwrap(),
            "hj212,mn=A\\ B\\=C,st=32,cn=2051,factor=w00000,flag=N min=16.4,avg=17.5,max=20.1,cou=10.5 1470012000000\n"
        );
    }

    #[test]
    fn refused_frames_have_no_points() {
        let frame = b"##0136ST=32;CN=2011;PW=000000;MN=LD130133000015;CP=&&DataTime=20160824003817;011-Rtd=231.0,011-Flag=N;B01-Rtd=36.91;060-Rtd=1.803,060-Flag=N&&1dc0\r\n";
        let mut refused = record(frame).record;
        refused.verdict = Verdict::BadPassword;
        let refused = Interpreted::new(refused);
        let mut out = Vec::new();
        assert_eq!(append_points(&refused, &[], &mut out), 0);
        assert!(out.is_empty());
    }

    #[test]
    fn changed_copies_go_to_the_resend_measurement() {
        let frame = b"##0136ST=32;CN=2011;PW=000000;MN=LD130133000015;CP=&&DataTime=20160824003817;011-Rtd=231.0,011-Flag=N;B01-Rtd=36.91;060-Rtd=1.803,060-Flag=N&&1dc0\r\n";
        let mut out = Vec::new();
        assert_eq!(append_points(&record(frame), &["B01"], &mut out), 3);
        let text = String::from_utf8(out).unwrap();
        let measurements: Vec<&str> = text.lines().map(|l| l.split(',').next().unwrap()).collect();
        assert_eq!(measurements, ["hj212", "hj212_resend", "hj212"]);
    }

    #[test]
    fn unknown_flags_share_one_tag_value() {
        let segment = "QN=20160801085000001;ST=32;CN=2051;PW=1;MN=M1;Flag=4;CP=&&DataTime=20160801084000;\
                       a01-Avg=1,a01-Flag=C;a02-Avg=2,a02-Flag=x7;a03-Avg=3,a03-Flag=n";
        let frame = hj212_proto::encode::frame(format!("{segment}&&").as_bytes()).unwrap();
        let mut out = Vec::new();
        assert_eq!(append_points(&record(&frame), &[], &mut out), 3);
        let text = String::from_utf8(out).unwrap();
        let flags: Vec<&str> =
            text.lines().map(|l| l.split(",flag=").nth(1).unwrap().split(' ').next().unwrap()).collect();
        assert_eq!(flags, ["C", "other", "other"]);
    }

    #[test]
    fn numbers_are_written_as_sent_or_normalised() {
        let write = |v: &str| {
            let mut out = Vec::new();
            push_number(&mut out, v);
            String::from_utf8(out).unwrap()
        };
        assert_eq!(write("231.0"), "231.0");
        assert_eq!(write("-0.50"), "-0.50");
        assert_eq!(write("7"), "7");
        assert_eq!(write("+7"), "7");
        assert_eq!(write("1e3"), "1000");
        assert_eq!(write(".5"), "0.5");
    }

    #[test]
    fn tags_cannot_break_lines() {
        let mut out = Vec::new();
        push_tag_text(&mut out, "a b,c=d\ne\\");
        assert_eq!(out, b"a\\ b\\,c\\=d\\ e\\\\");
    }

    #[test]
    fn site_metadata() {
        let text = String::from_utf8(site_points(&[("M1".into(), "Plant \"1\"".into())], 5)).unwrap();
        assert_eq!(text, "hj212_site,mn=M1 name=\"Plant \\\"1\\\"\" 5\n");
    }
}
