//! Replies and host commands, framed with length and HJ 212 CRC (upper-case hex, CR LF).

use crate::crc;
use crate::framer::MAX_LENGTH_FIELD;
use crate::model::{Cn, Flag, Version};
use crate::packet::Packet;
use crate::time::BeijingTime;

/// A reply or command that cannot be written.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum EncodeError {
    #[error("data segment of {len} bytes does not fit the 4-digit length field")]
    TooLong { len: usize },
    #[error("{field} value {value:?} is outside {allowed}")]
    OutOfRange { field: &'static str, value: String, allowed: &'static str },
    #[error("{field} value {value:?} contains a character HJ 212 cannot carry (';' ',' '=' '&' CR LF)")]
    Unencodable { field: &'static str, value: String },
}

/// Wraps a data segment in `##`, length, CRC and CR LF.
///
/// # Errors
/// [`EncodeError::TooLong`] beyond 9999 bytes.
pub fn frame(data: &[u8]) -> Result<Vec<u8>, EncodeError> {
    if data.len() > MAX_LENGTH_FIELD {
        return Err(EncodeError::TooLong { len: data.len() });
    }
    let mut out = Vec::with_capacity(data.len() + 12);
    out.extend_from_slice(format!("##{:04}", data.len()).as_bytes());
    out.extend_from_slice(data);
    out.extend_from_slice(&crc::format_field(crc::hj212(data)));
    out.extend_from_slice(b"\r\n");
    Ok(out)
}

/// What a reply copies from the frame it answers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ReplyTo<'a> {
    pub qn: Option<&'a str>,
    pub pw: Option<&'a str>,
    pub mn: &'a str,
    /// The request's version, or `None` when it carried no Flag (the reply then has none).
    pub version: Option<Version>,
}

impl<'a> From<&Packet<'a>> for ReplyTo<'a> {
    fn from(packet: &Packet<'a>) -> Self {
        Self { qn: packet.qn, pw: packet.pw, mn: packet.mn, version: packet.flag.map(Flag::version) }
    }
}

/// A reply: same QN, PW and MN as the request, ST=91, Flag = version bits with A=0.
///
/// `cp` is the CP content (empty for 9013/9014, `QnRtn=1` for 9011, ...).
///
/// # Errors
/// [`EncodeError::TooLong`] if the echoed fields make the frame too long.
pub fn reply(to: &ReplyTo<'_>, cn: Cn, cp: &str) -> Result<Vec<u8>, EncodeError> {
    let mut data = String::with_capacity(96 + cp.len());
    if let Some(qn) = to.qn {
        push_field(&mut data, "QN", qn);
    }
    push_field(&mut data, "ST", "91");
    push_field(&mut data, "CN", &format!("{:04}", cn.code()));
    if let Some(pw) = to.pw {
        push_field(&mut data, "PW", pw);
    }
    push_field(&mut data, "MN", to.mn);
    if let Some(version) = to.version {
        push_field(&mut data, "Flag", &Flag::for_version(version).0.to_string());
    }
    push_cp(&mut data, cp);
    frame(data.as_bytes())
}

/// 9014 data response (uploads with the A bit set; each split packet on its own).
///
/// # Errors
/// As [`reply`].
pub fn data_response(to: &ReplyTo<'_>) -> Result<Vec<u8>, EncodeError> {
    reply(to, Cn::DataResponse, "")
}

/// 9013 notification response (1013 time-calibration requests, 9015 heartbeats).
///
/// # Errors
/// As [`reply`].
pub fn notification_response(to: &ReplyTo<'_>) -> Result<Vec<u8>, EncodeError> {
    reply(to, Cn::NotificationResponse, "")
}

/// 9011 request response with a QnRtn code (HJ 212-2017 Table 7).
///
/// # Errors
/// As [`reply`].
pub fn request_response(to: &ReplyTo<'_>, qn_rtn: u16) -> Result<Vec<u8>, EncodeError> {
    reply(to, Cn::RequestResponse, &format!("QnRtn={qn_rtn}"))
}

/// 9012 execution result with an ExeRtn code (HJ 212-2017 Table 6).
///
/// # Errors
/// As [`reply`].
pub fn execution_result(to: &ReplyTo<'_>, exe_rtn: u16) -> Result<Vec<u8>, EncodeError> {
    reply(to, Cn::ExecutionResult, &format!("ExeRtn={exe_rtn}"))
}

/// Which history a 2031/2051/2061 request asks for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum History {
    Daily,
    Minute,
    Hourly,
}

/// A command the host (上位机) sends to a field unit.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum HostCommand {
    /// 1000: OverTime (1-99 s) and ReCount (1-99).
    SetTimeoutRetry { over_time: u8, re_count: u8 },
    /// 1011: ask for the field time, optionally of one instrument.
    GetFieldTime { pol_id: Option<String> },
    /// 1012: set the field time.
    SetFieldTime { time: BeijingTime, pol_id: Option<String> },
    /// 1062: real-time upload interval in seconds (30-3600).
    SetRtdInterval { seconds: u16 },
    /// 1064: minute-data interval in minutes (1,2,3,4,5,6,10,12,15,20,30).
    SetMinInterval { minutes: u8 },
    /// 2031 / 2051 / 2061: re-send history between BeginTime and EndTime.
    History { kind: History, begin: BeijingTime, end: BeijingTime },
    /// 1014 (HJ 212-2025 App. C C8): a new SM4 key and when it was made (SKCreateTime, 17 digits).
    /// The caller encrypts the CP with the current key ([`crate::encryption::encrypt_frame`]).
    SetNewKey { created: BeijingTime, key: String },
}

/// The header of a host command.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CommandHeader<'a> {
    /// Becomes QN; the field unit's replies echo it.
    pub qn: BeijingTime,
    /// The site's system code (e.g. "32").
    pub st: &'a str,
    pub pw: &'a str,
    pub mn: &'a str,
    pub version: Version,
}

impl HostCommand {
    pub fn cn(&self) -> Cn {
        match self {
            Self::SetTimeoutRetry { .. } => Cn::SetTimeoutRetry,
            Self::GetFieldTime { .. } => Cn::FieldTime,
            Self::SetFieldTime { .. } => Cn::SetFieldTime,
            Self::SetRtdInterval { .. } => Cn::SetRtdInterval,
            Self::SetMinInterval { .. } => Cn::SetMinInterval,
            Self::History { kind: History::Daily, .. } => Cn::DailyData,
            Self::History { kind: History::Minute, .. } => Cn::MinuteData,
            Self::History { kind: History::Hourly, .. } => Cn::HourlyData,
            Self::SetNewKey { .. } => Cn::NewKey,
        }
    }

    fn cp(&self) -> Result<String, EncodeError> {
        Ok(match self {
            Self::SetTimeoutRetry { over_time, re_count } => {
                in_range("OverTime", *over_time, 1..=99, "1..=99")?;
                in_range("ReCount", *re_count, 1..=99, "1..=99")?;
                format!("OverTime={over_time};ReCount={re_count}")
            }
            Self::GetFieldTime { pol_id } => pol_id_cp(pol_id.as_deref())?,
            Self::SetFieldTime { time, pol_id } => {
                let mut cp = pol_id_cp(pol_id.as_deref())?;
                if !cp.is_empty() {
                    cp.push(';');
                }
                cp + "SystemTime=" + &time.to_seconds_string()
            }
            Self::SetRtdInterval { seconds } => {
                in_range("RtdInterval", *seconds, 30..=3600, "30..=3600")?;
                format!("RtdInterval={seconds}")
            }
            Self::SetMinInterval { minutes } => {
                if ![1, 2, 3, 4, 5, 6, 10, 12, 15, 20, 30].contains(minutes) {
                    return Err(EncodeError::OutOfRange {
                        field: "MinInterval",
                        value: minutes.to_string(),
                        allowed: "{1,2,3,4,5,6,10,12,15,20,30}",
                    });
                }
                format!("MinInterval={minutes}")
            }
            Self::History { begin, end, .. } => {
                format!("BeginTime={};EndTime={}", begin.to_seconds_string(), end.to_seconds_string())
            }
            Self::SetNewKey { created, key } => {
                // Checked without echoing the key into an error message.
                if key.is_empty() || key.contains([';', ',', '=', '&', '\r', '\n']) {
                    return Err(EncodeError::OutOfRange {
                        field: "NewSK",
                        value: "(not shown)".to_owned(),
                        allowed: "a key without ; , = & CR LF",
                    });
                }
                format!("SKCreateTime={};NewSK={key}", created.to_qn_string())
            }
        })
    }

    /// The framed command; Flag asks for an answer (A=1) in the site's protocol version.
    ///
    /// # Errors
    /// [`EncodeError`] when a value is outside what the standard allows or cannot be carried.
    pub fn encode(&self, header: &CommandHeader<'_>) -> Result<Vec<u8>, EncodeError> {
        command(header, self.cn().code(), &self.cp()?)
    }
}

/// A host command of any CN with a CP the caller has checked (`Key=Value;...`); Flag asks for
/// an answer (A=1) in the site's protocol version.
///
/// # Errors
/// [`EncodeError`] when a header field cannot be carried or the frame is too long.
pub fn command(header: &CommandHeader<'_>, cn: u16, cp: &str) -> Result<Vec<u8>, EncodeError> {
    for (field, value) in [("ST", header.st), ("PW", header.pw), ("MN", header.mn)] {
        check_encodable(field, value)?;
    }
    let mut data = String::with_capacity(96 + cp.len());
    push_field(&mut data, "QN", &header.qn.to_qn_string());
    push_field(&mut data, "ST", header.st);
    push_field(&mut data, "CN", &format!("{cn:04}"));
    push_field(&mut data, "PW", header.pw);
    push_field(&mut data, "MN", header.mn);
    push_field(&mut data, "Flag", &Flag::for_version(header.version).with_ack(true).0.to_string());
    push_cp(&mut data, cp);
    frame(data.as_bytes())
}

fn pol_id_cp(pol_id: Option<&str>) -> Result<String, EncodeError> {
    match pol_id {
        Some(id) => {
            check_encodable("PolId", id)?;
            Ok(format!("PolId={id}"))
        }
        None => Ok(String::new()),
    }
}

fn in_range<T: PartialOrd + ToString + Copy>(
    field: &'static str,
    value: T,
    range: std::ops::RangeInclusive<T>,
    allowed: &'static str,
) -> Result<(), EncodeError> {
    if range.contains(&value) {
        Ok(())
    } else {
        Err(EncodeError::OutOfRange { field, value: value.to_string(), allowed })
    }
}

fn check_encodable(field: &'static str, value: &str) -> Result<(), EncodeError> {
    if value.is_empty() || value.contains([';', ',', '=', '&', '\r', '\n']) {
        return Err(EncodeError::Unencodable { field, value: value.to_owned() });
    }
    Ok(())
}

fn push_field(data: &mut String, key: &str, value: &str) {
    data.push_str(key);
    data.push('=');
    data.push_str(value);
    data.push(';');
}

fn push_cp(data: &mut String, cp: &str) {
    data.push_str("CP=&&");
    data.push_str(cp);
    data.push_str("&&");
}

#[cfg(test)]
mod tests {
    use super::*;

    const REQUEST_2061: &str = "QN=20190925181031464;ST=22;CN=2061;PW=BF470F88957588DE902D1A52;MN=Z13401000010301;Flag=5;CP=&&DataTime=20190925170000&&";

    #[test]
    fn data_response_vector() {
        let packet = Packet::parse(REQUEST_2061).unwrap();
        let bytes = data_response(&ReplyTo::from(&packet)).unwrap();
        assert_eq!(
            bytes,
            b"##0096QN=20190925181031464;ST=91;CN=9014;PW=BF470F88957588DE902D1A52;MN=Z13401000010301;Flag=4;CP=&&&&CE81\r\n"
        );
    }

    #[test]
    fn standard_9014_and_9013() {
        let to = ReplyTo {
            qn: Some("20160801085857223"),
            pw: Some("123456"),
            mn: "010000A8900016F000169DC0",
            version: Some(Version::Hj212_2017),
        };
        assert!(data_response(&to).unwrap().ends_with(b"Flag=4;CP=&&&&3240\r\n"));
        assert!(notification_response(&to).unwrap().ends_with(b"CP=&&&&2A80\r\n"));
        assert!(request_response(&to, 1).unwrap().ends_with(b"CP=&&QnRtn=1&&1B00\r\n"));
        assert!(execution_result(&to, 1).unwrap().ends_with(b"CP=&&ExeRtn=1&&6240\r\n"));
    }

    #[test]
    fn reply_to_2025_and_2005() {
        let to = ReplyTo { qn: None, pw: Some("1"), mn: "M", version: Some(Version::Hj212_2025) };
        assert!(String::from_utf8(data_response(&to).unwrap()).unwrap().contains(";Flag=8;"));
        let to = ReplyTo { version: None, ..to };
        let text = String::from_utf8(data_response(&to).unwrap()).unwrap();
        assert!(text.starts_with("##0031ST=91;CN=9014;PW=1;MN=M;CP=&&&&"), "{text}");
    }

    fn header() -> CommandHeader<'static> {
        CommandHeader {
            qn: BeijingTime::parse("20160801085857223").unwrap(),
            st: "32",
            pw: "123456",
            mn: "010000A8900016F000169DC0",
            version: Version::Hj212_2017,
        }
    }

    #[test]
    fn commands_match_the_standard_examples() {
        let cases: [(HostCommand, &[u8]); 3] = [
            (HostCommand::SetTimeoutRetry { over_time: 5, re_count: 3 }, b"CP=&&OverTime=5;ReCount=3&&CAC1\r\n"),
            (HostCommand::GetFieldTime { pol_id: Some("w01018".into()) }, b"CP=&&PolId=w01018&&5A00\r\n"),
            (
                HostCommand::SetFieldTime {
                    time: BeijingTime::parse("20160801085857").unwrap(),
                    pol_id: Some("w01018".into()),
                },
                b"CP=&&PolId=w01018;SystemTime=20160801085857&&0880\r\n",
            ),
        ];
        for (command, tail) in cases {
            let bytes = command.encode(&header()).unwrap();
            assert!(bytes.ends_with(tail), "{}", String::from_utf8_lossy(&bytes));
        }
    }

    #[test]
    fn appendix_a_command() {
        let header = CommandHeader { pw: "100000", ..header() };
        let bytes = HostCommand::SetRtdInterval { seconds: 30 }.encode(&header).unwrap();
        assert_eq!(
            bytes,
            b"##0101QN=20160801085857223;ST=32;CN=1062;PW=100000;MN=010000A8900016F000169DC0;Flag=5;CP=&&RtdInterval=30&&1C80\r\n"
        );
    }

    #[test]
    fn history_request() {
        let command = HostCommand::History {
            kind: History::Minute,
            begin: BeijingTime::parse("20160801084000").unwrap(),
            end: BeijingTime::parse("20160801084000").unwrap(),
        };
        let bytes = command.encode(&header()).unwrap();
        assert_eq!(
            bytes,
            b"##0134QN=20160801085857223;ST=32;CN=2051;PW=123456;MN=010000A8900016F000169DC0;Flag=5;CP=&&BeginTime=20160801084000;EndTime=20160801084000&&56C0\r\n"
        );
    }

    #[test]
    fn rejects_bad_values() {
        let err = HostCommand::SetMinInterval { minutes: 7 }.encode(&header()).unwrap_err();
        assert_eq!(err.to_string(), "MinInterval value \"7\" is outside {1,2,3,4,5,6,10,12,15,20,30}");
        let err = HostCommand::SetRtdInterval { seconds: 10 }.encode(&header()).unwrap_err();
        assert_eq!(err.to_string(), "RtdInterval value \"10\" is outside 30..=3600");
        let bad = CommandHeader { pw: "1;2", ..header() };
        assert!(matches!(
            HostCommand::SetRtdInterval { seconds: 30 }.encode(&bad),
            Err(EncodeError::Unencodable { field: "PW", .. })
        ));
        assert_eq!(frame(&vec![b'a'; 10_000]).unwrap_err(), EncodeError::TooLong { len: 10_000 });
    }
}
