//! Archive records → InfluxDB line protocol.
//!
//! Data model: measurement `hj212`; tags `mn`, `st`, `cn`, `factor` (the code as sent),
//! `factor_2017` (when a 2005 code maps to a 2017 one) and `flag`; numeric fields `rtd`,
//! `min`, `avg`, `max`, `cou`, `zs_rtd`, `zs_min`, `zs_avg`, `zs_max` (whichever the frame
//! carries); timestamp = DataTime in ms. A point is keyed by series and timestamp, so a
//! replay after a crash overwrites instead of duplicating.

use hj212_archive::Record;
use hj212_proto::model::{SystemType, factor_for_code};
use hj212_store::{Reading, readings_of};
use influxdb_line_protocol::LineProtocolBuilder;

pub const MEASUREMENT: &str = "hj212";
/// Low-volume site metadata, kept out of the tags of every point.
pub const SITE_MEASUREMENT: &str = "hj212_site";

fn numeric_fields(r: &Reading) -> Vec<(&'static str, f64)> {
    [
        ("rtd", &r.rtd),
        ("min", &r.min),
        ("avg", &r.avg),
        ("max", &r.max),
        ("cou", &r.cou),
        ("zs_rtd", &r.zs_rtd),
        ("zs_min", &r.zs_min),
        ("zs_avg", &r.zs_avg),
        ("zs_max", &r.zs_max),
    ]
    .into_iter()
    .filter_map(|(name, value)| {
        value.as_deref()?.trim().parse::<f64>().ok().filter(|v| v.is_finite()).map(|v| (name, v))
    })
    .collect()
}

/// Appends the points of `record` to `out`; returns how many.
pub fn append_points(record: &Record, out: &mut Vec<u8>) -> usize {
    let mut count = 0;
    for reading in readings_of(record) {
        let fields = numeric_fields(&reading);
        let Some(((first_key, first_value), rest)) = fields.split_first() else { continue };
        let st = reading.st.as_deref().unwrap_or("");
        let mapped = factor_for_code(&reading.factor, SystemType::from_wire(st).medium())
            .map(|f| f.code)
            .filter(|code| *code != reading.factor);
        let cn = reading.cn.to_string();
        let mut line =
            LineProtocolBuilder::new_with(std::mem::take(out)).measurement(MEASUREMENT).tag("mn", &reading.mn);
        if !st.is_empty() {
            line = line.tag("st", st);
        }
        line = line.tag("cn", &cn).tag("factor", &reading.factor);
        if let Some(code) = mapped {
            line = line.tag("factor_2017", code);
        }
        if let Some(flag) = reading.flag.as_deref().filter(|f| !f.is_empty()) {
            line = line.tag("flag", flag);
        }
        let mut line = line.field(first_key, *first_value);
        for (key, value) in rest {
            line = line.field(key, *value);
        }
        *out = line.timestamp(reading.data_time_ms).close_line().build();
        count += 1;
    }
    count
}

/// One `hj212_site` point per configured site: its name, at `time_ms`.
pub fn site_points(sites: &[(String, String)], time_ms: i64) -> Vec<u8> {
    let mut builder = LineProtocolBuilder::new();
    for (mn, name) in sites {
        builder = builder
            .measurement(SITE_MEASUREMENT)
            .tag("mn", mn)
            .field("name", name.as_str())
            .timestamp(time_ms)
            .close_line();
    }
    builder.build()
}

#[cfg(test)]
mod tests {
    use hj212_archive::{Kind, Verdict};

    use super::*;

    fn record(frame: &[u8]) -> Record {
        Record {
            seq: 7,
            kind: Kind::Received,
            verdict: Verdict::Accepted,
            flags: 0,
            time_ms: 0,
            peer: String::new(),
            data: frame.to_vec(),
            hash: [0; 32],
        }
    }

    #[test]
    fn legacy_codes_get_their_2017_code_and_flags_become_tags() {
        let frame = b"##0136ST=32;CN=2011;PW=000000;MN=LD130133000015;CP=&&DataTime=20160824003817;011-Rtd=231.0,011-Flag=N;B01-Rtd=36.91;060-Rtd=1.803,060-Flag=N&&1dc0\r\n";
        let mut out = Vec::new();
        assert_eq!(append_points(&record(frame), &mut out), 3);
        let text = String::from_utf8(out).unwrap();
        let lines: Vec<&str> = text.lines().collect();
        // 2016-08-24 00:38:17 Beijing = 2016-08-23T16:38:17Z
        assert_eq!(
            lines[0],
            "hj212,mn=LD130133000015,st=32,cn=2011,factor=011,factor_2017=w01018,flag=N rtd=231 1471970297000"
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
        assert_eq!(append_points(&record(&frame), &mut out), 1, "a factor without numbers has no point");
        assert_eq!(
            String::from_utf8(out).unwrap(),
            "hj212,mn=A\\ B\\=C,st=32,cn=2051,factor=w00000,flag=N min=16.4,avg=17.5,max=20.1,cou=10.5 1470012000000\n"
        );
    }

    #[test]
    fn refused_frames_have_no_points() {
        let frame = b"##0136ST=32;CN=2011;PW=000000;MN=LD130133000015;CP=&&DataTime=20160824003817;011-Rtd=231.0,011-Flag=N;B01-Rtd=36.91;060-Rtd=1.803,060-Flag=N&&1dc0\r\n";
        let mut refused = record(frame);
        refused.verdict = Verdict::BadPassword;
        let mut out = Vec::new();
        assert_eq!(append_points(&refused, &mut out), 0);
        assert!(out.is_empty());
    }

    #[test]
    fn site_metadata() {
        let text = String::from_utf8(site_points(&[("M1".into(), "Plant \"1\"".into())], 5)).unwrap();
        assert_eq!(text, "hj212_site,mn=M1 name=\"Plant \\\"1\\\"\" 5\n");
    }
}
