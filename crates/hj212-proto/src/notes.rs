//! Conformance notes: deviations from the standard that were tolerated, not rejected.

use crate::framer::{FrameLayout, Tail};

macro_rules! notes {
    ($($variant:ident = $bit:literal => $name:literal, $doc:literal;)*) => {
        /// One tolerated deviation.
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
        #[non_exhaustive]
        pub enum Note {
            $(#[doc = $doc] $variant,)*
        }

        impl Note {
            /// Every note, in bit order.
            pub const ALL: &'static [Note] = &[$(Note::$variant,)*];

            fn bit(self) -> u32 {
                match self { $(Self::$variant => 1 << $bit,)* }
            }

            /// A stable snake_case name, used as a metric label and in decode output.
            pub fn as_str(self) -> &'static str {
                match self { $(Self::$variant => $name,)* }
            }
        }
    };
}

notes! {
    Oversize = 0 => "oversize", "data segment longer than the 1024 bytes HJ 212-2017 allows";
    BareLfTail = 1 => "bare_lf_tail", "frame ends in LF without CR";
    DoubleCrTail = 2 => "double_cr_tail", "frame ends in CR CR LF";
    LowercaseCrc = 3 => "lowercase_crc", "CRC written in lower-case hex";
    NoQn = 4 => "no_qn", "no QN field (HJ/T 212-2005 style)";
    NoFlag = 5 => "no_flag", "no Flag field (HJ/T 212-2005 style)";
    CommaInHeader = 6 => "comma_in_header", "header fields separated by ',' instead of ';'";
    NoSemicolonBeforeCp = 7 => "no_semicolon_before_cp", "no ';' before CP=";
    MalformedHeaderField = 8 => "malformed_header_field", "a header part without '=' was skipped";
    DuplicateHeaderField = 9 => "duplicate_header_field", "a header field appears twice; the first is used";
    UnknownHeaderField = 10 => "unknown_header_field", "a header field no standard defines (kept)";
    NonStandardSt = 11 => "non_standard_st", "ST is not 2 characters";
    NonStandardMn = 12 => "non_standard_mn", "MN is not 24 characters of 0-9/A-F";
    DataTimeWithMillis = 13 => "datatime_with_millis", "DataTime has 17 digits instead of 14";
    CpItemWithoutValue = 14 => "cp_item_without_value", "a CP item without '=' (kept with an empty value)";
    SpacesInCp = 15 => "spaces_in_cp", "stray spaces around CP keys or values";
    SplitWithoutFlag = 16 => "split_without_flag", "PNUM/PNO present but the Flag D bit is not set";
    SplitFieldsMissing = 17 => "split_fields_missing", "Flag D bit set but PNUM or PNO missing";
    InvalidUtf8 = 18 => "invalid_utf8", "bytes that are not UTF-8 were replaced by U+FFFD";
}

/// A set of [`Note`]s (a bit set: no allocation per frame).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Hash)]
pub struct Notes(u32);

impl Notes {
    pub fn insert(&mut self, note: Note) {
        self.0 |= note.bit();
    }

    pub fn contains(self, note: Note) -> bool {
        self.0 & note.bit() != 0
    }

    pub fn is_empty(self) -> bool {
        self.0 == 0
    }

    /// Adds every note in `other`.
    pub fn extend(&mut self, other: Notes) {
        self.0 |= other.0;
    }

    /// The notes in a stable order.
    pub fn iter(self) -> impl Iterator<Item = Note> {
        Note::ALL.iter().copied().filter(move |n| self.contains(*n))
    }

    /// The framing-level deviations of a frame.
    pub fn of_layout(layout: &FrameLayout) -> Self {
        let mut notes = Self::default();
        if layout.is_oversize() {
            notes.insert(Note::Oversize);
        }
        if layout.crc_lowercase {
            notes.insert(Note::LowercaseCrc);
        }
        match layout.tail {
            Tail::CrLf => {}
            Tail::Lf => notes.insert(Note::BareLfTail),
            Tail::CrCrLf => notes.insert(Note::DoubleCrTail),
        }
        notes
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn set_operations() {
        let mut notes = Notes::default();
        assert!(notes.is_empty());
        notes.insert(Note::NoQn);
        notes.insert(Note::InvalidUtf8);
        assert!(notes.contains(Note::NoQn));
        assert!(!notes.contains(Note::NoFlag));
        let names: Vec<_> = notes.iter().map(Note::as_str).collect();
        assert_eq!(names, ["no_qn", "invalid_utf8"]);
    }
}
