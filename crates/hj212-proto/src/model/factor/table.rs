//! Reads `data/factors.tsv`: UTF-8, tab-separated, one header line, `#` comment lines.
//!
//! `-` stands for "none" in any column. A bad row is reported, never a panic; the caller
//! keeps the good rows.

use super::{Factor, Medium};

/// The header line, column by column.
const COLUMNS: [&str; 11] = [
    "code",
    "code_2005",
    "medium",
    "name_en",
    "name_zh",
    "unit",
    "amount_unit",
    "st_units",
    "source",
    "checked",
    "note",
];

/// A line of the data file that was left out, and why.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) struct RowError {
    /// 1-based line number.
    pub line: usize,
    pub reason: &'static str,
}

#[derive(Debug)]
pub(super) struct Parsed {
    pub rows: Vec<Factor>,
    pub errors: Vec<RowError>,
}

pub(super) fn parse(text: &'static str) -> Parsed {
    let mut parsed = Parsed { rows: Vec::new(), errors: Vec::new() };
    let mut seen_header = false;
    for (i, line) in text.lines().enumerate() {
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        let result = if seen_header {
            row(line).map(Some)
        } else {
            seen_header = true;
            if line.split('\t').eq(COLUMNS) { Ok(None) } else { Err("the header does not name the expected columns") }
        };
        match result {
            Ok(Some(factor)) => parsed.rows.push(factor),
            Ok(None) => {}
            Err(reason) => parsed.errors.push(RowError { line: i + 1, reason }),
        }
    }
    parsed
}

fn row(line: &'static str) -> Result<Factor, &'static str> {
    let fields: Vec<&'static str> = line.split('\t').collect();
    let &[code, code_2005, medium, name, name_zh, unit, amount_unit, st_units, source, checked, _note] =
        fields.as_slice()
    else {
        return Err("wrong number of columns");
    };
    if fields.iter().any(|f| f.is_empty() || f.trim() != *f) {
        return Err("an empty field, or spaces around one (write - for none)");
    }
    if !is_code(code) {
        return Err("bad code");
    }
    let code_2005 = optional(code_2005);
    if code_2005.is_some_and(|c| !is_code(c)) {
        return Err("bad 2005 code");
    }
    let medium = match medium {
        "gas" => Medium::Gas,
        "water" => Medium::Water,
        "noise" => Medium::Noise,
        _ => return Err("medium is not gas, water or noise"),
    };
    if [name, name_zh, source, checked].contains(&"-") {
        return Err("name_en, name_zh, source and checked are required");
    }
    let st_units = optional(st_units).unwrap_or("");
    if !st_units.is_empty() && !st_units.split(',').all(is_st_unit) {
        return Err("st_units is not ST=unit[,ST=unit...]");
    }
    Ok(Factor {
        code,
        code_2005,
        name,
        name_zh,
        unit: optional(unit).unwrap_or(""),
        amount_unit: optional(amount_unit),
        medium,
        source,
        st_units,
    })
}

fn optional(field: &'static str) -> Option<&'static str> {
    (field != "-").then_some(field)
}

fn is_code(code: &str) -> bool {
    (1..=8).contains(&code.len()) && code.bytes().all(|b| b.is_ascii_alphanumeric())
}

fn is_st_unit(pair: &str) -> bool {
    pair.split_once('=').is_some_and(|(st, unit)| {
        (1..=3).contains(&st.len())
            && st.bytes().all(|b| b.is_ascii_alphanumeric())
            && !unit.is_empty()
            && unit.trim() == unit
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    const HEADER: &str =
        "code\tcode_2005\tmedium\tname_en\tname_zh\tunit\tamount_unit\tst_units\tsource\tchecked\tnote\n";

    #[test]
    fn the_data_file_has_no_bad_row() {
        let parsed = parse(super::super::DATA);
        assert_eq!(parsed.errors, []);
        assert!(parsed.rows.len() > 190, "{} rows", parsed.rows.len());
    }

    #[test]
    fn bad_rows_are_counted_and_skipped() {
        let text: &'static str = String::leak(format!(
            "# comment\n{HEADER}\
             a21026\t02\tgas\tsulphur dioxide\t二氧化硫\tmg/m3\tkg\t22=µg/m3\tHJ 212-2017 Table B.2\tLUA\t-\n\
             a21027\t-\tair\tx\tx\tmg/m3\tkg\t-\ts\tT\t-\n\
             a21028\t-\tgas\tx\tx\tmg/m3\tkg\t22µg/m3\ts\tT\t-\n\
             a21029\t-\tgas\tx\tx\tmg/m3\tkg\t-\ts\tT\n\
             a21030\t-\tgas\t-\tx\tmg/m3\tkg\t-\ts\tT\t-\n\
             a21031\t-\tgas\t x\tx\tmg/m3\tkg\t-\ts\tT\t-\n\
             w01001\t001\twater\tpH\tpH值\t-\t-\t-\tHJ 212-2017 Table B.1\tLUA\tdimensionless\n"
        ));
        let parsed = parse(text);
        let lines: Vec<usize> = parsed.errors.iter().map(|e| e.line).collect();
        assert_eq!(lines, [4, 5, 6, 7, 8]);
        let codes: Vec<&str> = parsed.rows.iter().map(|f| f.code).collect();
        assert_eq!(codes, ["a21026", "w01001"]);
        assert_eq!(parsed.rows[1].unit, "");
        assert_eq!(parsed.rows[1].amount_unit, None);
        assert_eq!(parsed.rows[0].unit_for(Some("22")), "µg/m3");
    }

    #[test]
    fn a_wrong_header_is_reported() {
        let parsed = parse("code\tname\n");
        assert_eq!(parsed.errors, [RowError { line: 1, reason: "the header does not name the expected columns" }]);
    }
}
