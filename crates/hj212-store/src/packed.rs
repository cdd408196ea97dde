//! A record's readings in one row (schema 7): the `factors` column of a `readings` row holds
//! every factor reported for that series and DataTime, one entry after another. One row per
//! record instead of one per factor: the store inserts a sixth of the rows, and the key, the
//! archive sequence number and the receipt time are written once per record.
//!
//! An entry is the factor's id (varint), a header byte, then what the header says is there:
//! - bits 0-1, the flag: 0 none, 1 `N` (the usual one, kept in the header), 2 a text follows;
//! - bit 2: the fields (`readings.rs`'s tagged text) follow;
//! - bit 3: the entry's own archive record and receipt time follow (varint, then zigzag varint
//!   of milliseconds after DataTime): a factor a later record added to the row, whose copy
//!   is not the row's first record's.
//!
//! Texts are a varint length and their bytes. Nothing is compressed or reordered: a factor's
//! fields are kept as sent.

use std::fmt;

/// The record and receipt of a factor's first copy.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Receipt {
    /// The archive record.
    pub seq: i64,
    /// Receipt time minus DataTime, milliseconds.
    pub received: i64,
}

/// One factor of a row.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Entry<'a> {
    /// `factors.id`.
    pub factor: i64,
    pub flag: Option<&'a str>,
    /// The fields as `readings.rs` writes them.
    pub v: Option<&'a str>,
    /// Set when this factor's copy came from another record than the row's.
    pub own: Option<Receipt>,
}

impl Entry<'_> {
    /// The record and receipt of this factor's copy, given the row's.
    pub(crate) fn receipt(&self, row: Receipt) -> Receipt {
        self.own.unwrap_or(row)
    }
}

const FLAG_N: u8 = 1;
const FLAG_TEXT: u8 = 2;
const FLAG_BITS: u8 = 3;
const HAS_FIELDS: u8 = 4;
const HAS_OWN: u8 = 8;

/// Appends `entry` to `out`.
pub(crate) fn push(out: &mut Vec<u8>, entry: &Entry<'_>) {
    push_varint(out, zigzag(entry.factor));
    let flag = match entry.flag {
        None => 0,
        Some("N") => FLAG_N,
        Some(_) => FLAG_TEXT,
    };
    let header = flag | if entry.v.is_some() { HAS_FIELDS } else { 0 } | if entry.own.is_some() { HAS_OWN } else { 0 };
    out.push(header);
    if let Some(own) = entry.own {
        push_varint(out, zigzag(own.seq));
        push_varint(out, zigzag(own.received));
    }
    if let (FLAG_TEXT, Some(text)) = (flag, entry.flag) {
        push_text(out, text);
    }
    if let Some(v) = entry.v {
        push_text(out, v);
    }
}

/// A `factors` column that does not decode: the store file was changed outside hj212d.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Corrupt {
    /// Byte offset in the column where decoding failed.
    pub at: usize,
}

impl fmt::Display for Corrupt {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "a readings row's factors column does not decode at byte {}", self.at)
    }
}

impl std::error::Error for Corrupt {}

/// The entries of a `factors` column, in the order they were written.
pub(crate) fn entries(column: &[u8]) -> Entries<'_> {
    Entries { column, at: 0 }
}

/// The entries of a `factors` column at `i` of `row`, decoded.
pub(crate) fn entries_at<'r>(row: &'r rusqlite::Row<'_>, i: usize) -> rusqlite::Result<Vec<Entry<'r>>> {
    let column = row.get_ref(i)?.as_blob()?;
    entries(column)
        .collect::<Result<_, _>>()
        .map_err(|corrupt| rusqlite::Error::FromSqlConversionFailure(i, rusqlite::types::Type::Blob, Box::new(corrupt)))
}

/// Iterator over a column's entries; stops after the first error.
#[derive(Debug)]
pub(crate) struct Entries<'a> {
    column: &'a [u8],
    at: usize,
}

impl<'a> Iterator for Entries<'a> {
    type Item = Result<Entry<'a>, Corrupt>;

    fn next(&mut self) -> Option<Self::Item> {
        if self.at >= self.column.len() {
            return None;
        }
        let entry = self.entry();
        if entry.is_err() {
            self.at = self.column.len();
        }
        Some(entry)
    }
}

impl<'a> Entries<'a> {
    fn entry(&mut self) -> Result<Entry<'a>, Corrupt> {
        let factor = unzigzag(self.varint()?);
        let header = self.byte()?;
        if header & !(FLAG_BITS | HAS_FIELDS | HAS_OWN) != 0 || header & FLAG_BITS == FLAG_BITS {
            return Err(Corrupt { at: self.at - 1 });
        }
        let own = if header & HAS_OWN == 0 {
            None
        } else {
            Some(Receipt { seq: unzigzag(self.varint()?), received: unzigzag(self.varint()?) })
        };
        let flag = match header & FLAG_BITS {
            0 => None,
            FLAG_N => Some("N"),
            _ => Some(self.text()?),
        };
        let v = if header & HAS_FIELDS == 0 { None } else { Some(self.text()?) };
        Ok(Entry { factor, flag, v, own })
    }

    fn byte(&mut self) -> Result<u8, Corrupt> {
        let byte = *self.column.get(self.at).ok_or(Corrupt { at: self.at })?;
        self.at += 1;
        Ok(byte)
    }

    fn varint(&mut self) -> Result<u64, Corrupt> {
        let start = self.at;
        let mut value = 0u64;
        for shift in (0..64).step_by(7) {
            let byte = self.byte()?;
            value |= u64::from(byte & 0x7f) << shift;
            if byte & 0x80 == 0 {
                return Ok(value);
            }
        }
        Err(Corrupt { at: start })
    }

    fn text(&mut self) -> Result<&'a str, Corrupt> {
        let start = self.at;
        let len = usize::try_from(self.varint()?).map_err(|_| Corrupt { at: start })?;
        let end = self.at.checked_add(len).ok_or(Corrupt { at: start })?;
        let bytes = self.column.get(self.at..end).ok_or(Corrupt { at: start })?;
        let text = std::str::from_utf8(bytes).map_err(|_| Corrupt { at: start })?;
        self.at = end;
        Ok(text)
    }
}

fn push_varint(out: &mut Vec<u8>, mut value: u64) {
    while value >= 0x80 {
        out.push(u8::try_from(value & 0x7f).unwrap_or(0) | 0x80);
        value >>= 7;
    }
    out.push(u8::try_from(value).unwrap_or(0));
}

fn push_text(out: &mut Vec<u8>, text: &str) {
    push_varint(out, text.len() as u64);
    out.extend_from_slice(text.as_bytes());
}

/// Small negative numbers in few bytes (a receipt before DataTime is negative).
fn zigzag(value: i64) -> u64 {
    #[expect(clippy::cast_sign_loss, reason = "zigzag encoding reinterprets the bits")]
    let encoded = ((value << 1) ^ (value >> 63)) as u64;
    encoded
}

fn unzigzag(value: u64) -> i64 {
    #[expect(clippy::cast_possible_wrap, reason = "zigzag decoding reinterprets the bits")]
    let decoded = ((value >> 1) as i64) ^ -((value & 1) as i64);
    decoded
}

impl crate::Store {
    /// Calls `each` with every reading of `mn`'s `cn` records with DataTime in `range`, in order
    /// of DataTime: the DataTime, the reading's record and receipt, its entry and factor code.
    pub(crate) fn for_each_reading(
        &self,
        mn: &str,
        cn: u16,
        range: hj212_compliance::Range,
        mut each: impl FnMut(i64, Receipt, &Entry<'_>, &str),
    ) -> Result<(), crate::StoreError> {
        let codes = crate::ids::FactorCodes::read(&self.conn)?;
        let mut query = self.conn.prepare_cached(
            "SELECT data_time_ms, archive_seq, received, factors FROM readings
             WHERE series = (SELECT id FROM series WHERE mn = ?1 AND cn = ?2) AND data_time_ms >= ?3 AND data_time_ms < ?4
             ORDER BY data_time_ms",
        )?;
        let mut rows = query.query(rusqlite::params![mn, cn, range.from_ms, range.to_ms])?;
        while let Some(row) = rows.next()? {
            let data_time_ms = row.get(0)?;
            let receipt = Receipt { seq: row.get(1)?, received: row.get(2)? };
            for entry in entries_at(row, 3)? {
                each(data_time_ms, entry.receipt(receipt), &entry, codes.code(entry.factor)?);
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn round_trip(list: &[Entry<'_>]) -> Vec<u8> {
        let mut out = Vec::new();
        for entry in list {
            push(&mut out, entry);
        }
        let back: Vec<Entry<'_>> = entries(&out).collect::<Result<_, _>>().unwrap();
        assert_eq!(back, list);
        out
    }

    #[test]
    fn entries_round_trip_with_every_header() {
        let own = Some(Receipt { seq: 1 << 40, received: -90_000 });
        let list = [
            Entry { factor: 1, flag: Some("N"), v: Some("r48.1"), own: None },
            Entry { factor: 300, flag: Some("D"), v: None, own },
            Entry { factor: -5, flag: None, v: Some("r1,n2;e9"), own: Some(Receipt { seq: 0, received: 0 }) },
            Entry { factor: i64::MAX, flag: Some(""), v: Some(""), own: None },
        ];
        round_trip(&list);
    }

    #[test]
    fn a_usual_reading_takes_few_bytes() {
        let bytes = round_trip(&[Entry { factor: 7, flag: Some("N"), v: Some("r48.1"), own: None }]);
        assert_eq!(bytes.len(), 8, "id, header, length, 5 bytes of fields");
    }

    #[test]
    fn corrupt_columns_are_errors_not_panics() {
        let mut good = Vec::new();
        push(&mut good, &Entry { factor: 2, flag: Some("T"), v: Some("r1"), own: None });
        for cut in 0..good.len() {
            let decoded: Result<Vec<_>, _> = entries(&good[..cut]).collect();
            assert!(cut == 0 || decoded.is_err(), "truncated at {cut}");
        }
        assert_eq!(entries(&[2, 0xf0]).next(), Some(Err(Corrupt { at: 1 })), "unknown header bits");
        assert_eq!(entries(&[2, 3]).next(), Some(Err(Corrupt { at: 1 })), "flag kind 3");
        assert!(entries(&[0xff; 11]).next().unwrap().is_err(), "varint too long");
        assert!(entries(&[2, FLAG_TEXT, 2, 0xc3, 0x28]).next().unwrap().is_err(), "not UTF-8");
    }
}
