//! Frame checksums: the HJ 212 algorithm and the vendor CRC-16/MODBUS dialects.
//!
//! HJ 212-2017 Appendix A is *not* CRC-16/MODBUS: each step XORs the data byte into
//! the register's **high** byte and discards the low byte (`reg = (reg >> 8) ^ b`),
//! so the state is 8 bits and only 256 results exist. No `crc::Algorithm` can express
//! it, so it is a hand-built table here. MODBUS (and its byte-swapped form) appear in
//! the field from vendors who got it wrong; sites may be configured to accept them.
//!
//! Speed: the 8-bit state evolves as `h' = H(h ^ b)` with `H(x) = TABLE[x] >> 8`, and
//! `H` is linear over GF(2) (every CRC table is). So 8 bytes fold into
//! `h' = H^8(h ^ b1) ^ H^7(b2) ^ ... ^ H(b8)`, and likewise 16 bytes: independent lookups
//! in small derived tables instead of a chain of dependent ones (`benches/benches/proto.rs`).

use crc::{CRC_16_MODBUS, Crc, Table};

/// The reflected 0xA001 byte table. HJ 212 indexes it with `high_byte ^ data_byte`.
const TABLE: [u16; 256] = build_table();

const fn build_table() -> [u16; 256] {
    let mut table = [0u16; 256];
    let mut i = 0;
    while i < 256 {
        #[expect(clippy::cast_possible_truncation, reason = "i < 256")]
        let mut reg = i as u16;
        let mut bit = 0;
        while bit < 8 {
            reg = if reg & 1 == 1 { (reg >> 1) ^ 0xA001 } else { reg >> 1 };
            bit += 1;
        }
        table[i] = reg;
        i += 1;
    }
    table
}

/// Bytes folded per step of the fast loop.
const STRIDE: usize = 16;

/// `POWERS[j][x]` is `H` applied `j + 1` times to `x`, where `H(x) = TABLE[x] >> 8`.
const POWERS: [[u8; 256]; STRIDE] = build_powers();

const fn build_powers() -> [[u8; 256]; STRIDE] {
    let mut powers = [[0u8; 256]; STRIDE];
    let mut x = 0;
    while x < 256 {
        let mut h = x;
        let mut j = 0;
        while j < STRIDE {
            h = (TABLE[h] >> 8) as usize;
            #[expect(clippy::cast_possible_truncation, reason = "h < 256")]
            let byte = h as u8;
            powers[j][x] = byte;
            j += 1;
        }
        x += 1;
    }
    powers
}

const MODBUS: Crc<u16, Table<16>> = Crc::<u16, Table<16>>::new(&CRC_16_MODBUS);

/// The HJ 212-2017 Appendix A checksum of a data segment.
pub fn hj212(data: &[u8]) -> u16 {
    let Some((&last, body)) = data.split_last() else {
        return 0xFFFF;
    };
    let mut h: u8 = 0xFF;
    let mut blocks = body.chunks_exact(STRIDE);
    for block in &mut blocks {
        let folded = block[1..]
            .iter()
            .zip(POWERS[..STRIDE - 1].iter().rev())
            .fold(0, |acc, (&b, power)| acc ^ power[usize::from(b)]);
        h = POWERS[STRIDE - 1][usize::from(h ^ block[0])] ^ folded;
    }
    for &b in blocks.remainder() {
        h = POWERS[0][usize::from(h ^ b)];
    }
    // The last step keeps all 16 bits of the table entry.
    TABLE[usize::from(h ^ last)]
}

/// CRC-16/MODBUS, as some vendors send it.
pub fn modbus(data: &[u8]) -> u16 {
    MODBUS.checksum(data)
}

/// A checksum algorithm a frame can be found to match.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum CrcDialect {
    /// HJ 212-2017 Appendix A (the standard).
    Hj212,
    /// CRC-16/MODBUS printed high byte first.
    Modbus,
    /// CRC-16/MODBUS with its two bytes swapped (seen in real device captures).
    ModbusSwapped,
}

impl CrcDialect {
    /// Stable lower-case name, also used as a metric label.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Hj212 => "hj212",
            Self::Modbus => "modbus",
            Self::ModbusSwapped => "modbus_swapped",
        }
    }

    /// The checksum this dialect gives for `data`.
    pub fn compute(self, data: &[u8]) -> u16 {
        match self {
            Self::Hj212 => hj212(data),
            Self::Modbus => modbus(data),
            Self::ModbusSwapped => modbus(data).swap_bytes(),
        }
    }
}

/// Which dialects a site accepts.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum CrcPolicy {
    /// Only the standard algorithm.
    #[default]
    Hj212,
    /// Only CRC-16/MODBUS.
    Modbus,
    /// Only byte-swapped CRC-16/MODBUS.
    ModbusSwapped,
    /// Any of the three.
    Any,
}

impl CrcPolicy {
    /// Whether a frame matching `dialect` is acceptable under this policy.
    pub fn allows(self, dialect: CrcDialect) -> bool {
        match self {
            Self::Any => true,
            Self::Hj212 => dialect == CrcDialect::Hj212,
            Self::Modbus => dialect == CrcDialect::Modbus,
            Self::ModbusSwapped => dialect == CrcDialect::ModbusSwapped,
        }
    }
}

/// The checksum check failed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum CrcError {
    /// No known dialect produces the declared value.
    #[error("bad CRC: frame declares {declared:04X}, HJ 212 CRC of the data segment is {computed:04X}")]
    Mismatch { declared: u16, computed: u16 },
    /// The value matches a dialect this site is not configured to accept.
    #[error("CRC {declared:04X} is {} but the site accepts {policy:?}", dialect.as_str())]
    DialectNotAllowed { declared: u16, dialect: CrcDialect, policy: CrcPolicy },
}

/// The dialect whose checksum of `data` equals `declared`, trying the standard first.
pub fn identify(data: &[u8], declared: u16) -> Option<CrcDialect> {
    if hj212(data) == declared {
        return Some(CrcDialect::Hj212);
    }
    let modbus = modbus(data);
    if modbus == declared {
        Some(CrcDialect::Modbus)
    } else if modbus.swap_bytes() == declared {
        Some(CrcDialect::ModbusSwapped)
    } else {
        None
    }
}

/// Checks `declared` against `data` under `policy`, returning the dialect it matched.
///
/// # Errors
/// [`CrcError::Mismatch`] when no dialect matches, [`CrcError::DialectNotAllowed`]
/// when one does but the policy excludes it.
pub fn verify(data: &[u8], declared: u16, policy: CrcPolicy) -> Result<CrcDialect, CrcError> {
    // Every allowed dialect is tried: one value can match two dialects (a MODBUS CRC with
    // two equal bytes is also its own swap), and the first match need not be the allowed one.
    let allowed = [CrcDialect::Hj212, CrcDialect::Modbus, CrcDialect::ModbusSwapped]
        .into_iter()
        .filter(|d| policy.allows(*d))
        .find(|d| d.compute(data) == declared);
    match (allowed, identify(data, declared)) {
        (Some(dialect), _) => Ok(dialect),
        (None, Some(dialect)) => Err(CrcError::DialectNotAllowed { declared, dialect, policy }),
        (None, None) => Err(CrcError::Mismatch { declared, computed: hj212(data) }),
    }
}

/// Parses the 4-character CRC field in either case.
pub fn parse_field(field: [u8; 4]) -> Option<u16> {
    field.iter().try_fold(0u16, |acc, &c| {
        let digit = char::from(c).to_digit(16)?;
        #[expect(clippy::cast_possible_truncation, reason = "a hex digit is < 16")]
        Some(acc << 4 | digit as u16)
    })
}

/// Formats a CRC as the 4 upper-case hex digits the wire carries.
pub fn format_field(crc: u16) -> [u8; 4] {
    const HEX: &[u8; 16] = b"0123456789ABCDEF";
    [
        HEX[usize::from(crc >> 12)],
        HEX[usize::from((crc >> 8) & 0xF)],
        HEX[usize::from((crc >> 4) & 0xF)],
        HEX[usize::from(crc & 0xF)],
    ]
}

#[cfg(test)]
mod tests {
    use super::*;

    const APPENDIX_A: &[u8] =
        b"QN=20160801085857223;ST=32;CN=1062;PW=100000;MN=010000A8900016F000169DC0;Flag=5;CP=&&RtdInterval=30&&";

    #[test]
    fn appendix_a_vector() {
        assert_eq!(hj212(APPENDIX_A), 0x1C80);
        assert_eq!(modbus(APPENDIX_A), 0x0759);
    }

    #[test]
    fn check_string() {
        assert_eq!(hj212(b"123456789"), 0x2F80);
        assert_eq!(modbus(b"123456789"), 0x4B37);
    }

    #[test]
    fn table_matches_bitwise_definition() {
        // The appendix's ten steps, bit by bit, as the oracle for the table.
        let bitwise = |data: &[u8]| {
            let mut reg: u16 = 0xFFFF;
            for &b in data {
                reg = (reg >> 8) ^ u16::from(b);
                for _ in 0..8 {
                    let lsb = reg & 1;
                    reg >>= 1;
                    if lsb == 1 {
                        reg ^= 0xA001;
                    }
                }
            }
            reg
        };
        for len in 0..300usize {
            let data: Vec<u8> = (0..len).map(|i| ((i * 37 + len * 11 + i * i) % 256).to_le_bytes()[0]).collect();
            assert_eq!(hj212(&data), bitwise(&data), "length {len}");
        }
        assert_eq!(hj212(&[0xFF; 1000]), bitwise(&[0xFF; 1000]));
    }

    #[test]
    fn identify_dialects() {
        assert_eq!(identify(b"123456789", 0x2F80), Some(CrcDialect::Hj212));
        assert_eq!(identify(b"123456789", 0x4B37), Some(CrcDialect::Modbus));
        assert_eq!(identify(b"123456789", 0x374B), Some(CrcDialect::ModbusSwapped));
        assert_eq!(identify(b"123456789", 0x1234), None);
    }

    #[test]
    fn policy_rejects_other_dialect() {
        let err = verify(b"123456789", 0x4B37, CrcPolicy::Hj212).unwrap_err();
        assert_eq!(err.to_string(), "CRC 4B37 is modbus but the site accepts Hj212");
        let err = verify(b"123456789", 0x0001, CrcPolicy::Any).unwrap_err();
        assert_eq!(err.to_string(), "bad CRC: frame declares 0001, HJ 212 CRC of the data segment is 2F80");
    }

    #[test]
    fn a_value_matching_two_dialects_passes_either_policy() {
        // MODBUS CRC 0x0202 reads the same swapped (found by the code review).
        let data = b"QN=20240101120000283;ST=32;CN=2011;PW=123456;MN=010000A8900016F000169DC0;Flag=5;CP=&&DataTime=20240101120000;a01012-Rtd=21.0,a01012-Flag=N&&";
        assert_eq!(modbus(data), 0x0202);
        assert_eq!(verify(data, 0x0202, CrcPolicy::ModbusSwapped), Ok(CrcDialect::ModbusSwapped));
        assert_eq!(verify(data, 0x0202, CrcPolicy::Modbus), Ok(CrcDialect::Modbus));
    }

    #[test]
    fn field_case_and_format() {
        assert_eq!(parse_field(*b"1dc0"), Some(0x1DC0));
        assert_eq!(parse_field(*b"1DC0"), Some(0x1DC0));
        assert_eq!(parse_field(*b"1DG0"), None);
        assert_eq!(&format_field(0x1dc0), b"1DC0");
    }
}
