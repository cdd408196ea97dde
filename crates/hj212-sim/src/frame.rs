//! Frames as a data logger writes them (sans-IO): data segment, length, CRC in the station's
//! dialect, and deliberately corrupted copies.

use hj212_proto::crc::{self, CrcDialect};
use hj212_proto::encode::{self, EncodeError};

use crate::profile::Reading;

/// `##` + length + data segment + CRC (in `dialect`) + CR LF.
///
/// # Errors
/// [`EncodeError::TooLong`] beyond 9999 bytes.
pub fn framed(segment: &[u8], dialect: CrcDialect) -> Result<Vec<u8>, EncodeError> {
    let mut frame = encode::frame(segment)?;
    if dialect != CrcDialect::Hj212 {
        let at = frame.len() - 6;
        frame[at..at + 4].copy_from_slice(&crc::format_field(dialect.compute(segment)));
    }
    Ok(frame)
}

/// The data segment of a frame built by [`framed`].
pub fn segment_of(frame: &[u8]) -> &[u8] {
    &frame[6..frame.len() - 6]
}

/// The same frame with a CRC that no dialect accepts (what line noise does to a frame).
pub fn corrupted(frame: &[u8]) -> Vec<u8> {
    let segment = segment_of(frame);
    let at = frame.len() - 6;
    let declared = crc::parse_field([frame[at], frame[at + 1], frame[at + 2], frame[at + 3]]).unwrap_or_default();
    // At most three values match some dialect, so one of the first four candidates is wrong for all.
    let wrong = (1..=4u16)
        .map(|k| declared ^ k.wrapping_mul(0x1357))
        .find(|v| crc::identify(segment, *v).is_none())
        .unwrap_or(declared ^ 0xFFFF);
    let mut bad = frame.to_vec();
    bad[at..at + 4].copy_from_slice(&crc::format_field(wrong));
    bad
}

/// The header fields of an upload.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Header<'a> {
    /// Absent in HJ/T 212-2005 style frames.
    pub qn: Option<&'a str>,
    pub st: &'a str,
    pub cn: u16,
    pub pw: &'a str,
    pub mn: &'a str,
    /// Absent in HJ/T 212-2005 style frames.
    pub flag: Option<u8>,
    /// `(PNUM, PNO)` of a split packet.
    pub packet: Option<(u16, u16)>,
}

/// `QN=..;ST=..;CN=..;PW=..;MN=..;Flag=..;[PNUM=..;PNO=..;]CP=&&<cp>&&`.
pub fn upload_segment(header: &Header<'_>, cp: &str) -> String {
    use std::fmt::Write as _;
    let mut s = String::with_capacity(96 + cp.len());
    if let Some(qn) = header.qn {
        let _ = write!(s, "QN={qn};");
    }
    let _ = write!(s, "ST={};CN={:04};PW={};MN={};", header.st, header.cn, header.pw, header.mn);
    if let Some(flag) = header.flag {
        let _ = write!(s, "Flag={flag};");
    }
    if let Some((pnum, pno)) = header.packet {
        let _ = write!(s, "PNUM={pnum};PNO={pno};");
    }
    let _ = write!(s, "CP=&&{cp}&&");
    s
}

/// The CP content of a data upload: `DataTime=..;code-Rtd=..,code-Flag=N;..`.
pub fn data_cp(data_time: &str, readings: &[Reading], codes_2005: bool) -> String {
    use std::fmt::Write as _;
    let mut s = String::with_capacity(24 + readings.len() * 80);
    let _ = write!(s, "DataTime={data_time}");
    for reading in readings {
        let code = if codes_2005 { reading.spec.code_2005 } else { reading.spec.code };
        s.push(';');
        for (suffix, value) in &reading.fields {
            let _ = write!(s, "{code}-{suffix}={value},");
        }
        let _ = write!(s, "{code}-Flag={}", reading.flag);
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    const SEGMENT: &[u8] =
        b"QN=20160801085857223;ST=32;CN=1062;PW=100000;MN=010000A8900016F000169DC0;Flag=5;CP=&&RtdInterval=30&&";

    #[test]
    fn dialects_verify() {
        let hj = framed(SEGMENT, CrcDialect::Hj212).unwrap();
        assert!(hj.ends_with(b"1C80\r\n"));
        for dialect in [CrcDialect::Hj212, CrcDialect::Modbus, CrcDialect::ModbusSwapped] {
            let frame = framed(SEGMENT, dialect).unwrap();
            assert_eq!(segment_of(&frame), SEGMENT);
            let at = frame.len() - 6;
            let declared = crc::parse_field(frame[at..at + 4].try_into().unwrap()).unwrap();
            assert_eq!(crc::identify(SEGMENT, declared), Some(dialect));
            let bad = corrupted(&frame);
            let declared = crc::parse_field(bad[at..at + 4].try_into().unwrap()).unwrap();
            assert_eq!(crc::identify(SEGMENT, declared), None);
            assert_eq!(bad.len(), frame.len());
        }
        assert!(framed(SEGMENT, CrcDialect::Modbus).unwrap().ends_with(b"0759\r\n"));
        assert!(framed(SEGMENT, CrcDialect::ModbusSwapped).unwrap().ends_with(b"5907\r\n"));
    }
}
