//! The factor table (`data/factors.tsv`) through the public API, against the fixture frames.

use hj212_proto::framer::{self, FramerConfig, Scan};
use hj212_proto::model::{Factor, Medium, factor, factor_for_code};
use hj212_proto::{Packet, SegmentText};

/// Codes the fixture frames carry that no source we could find names (see data/SOURCES.md).
const UNNAMED: &[&str] = &[
    "ua19003", "ua19004", "ua19005", "a99948", "a99949", "a34009", "a34010", "a21006", "a21007", "w01008", "O3",
    "ele01", "ele02", "a2101", "a2102", "a2103", "a2104", "a2105", "a2106", "a2107", "a211", "a212", "a213", "a214",
    "a215", "a216", "a217",
];

/// Vendor codes, 3-digit numbers in flue-gas (ST=31) frames (the 2005 gas table has none),
/// and equipment numbers (`SB1-RT`, CN=2041), which are not factors.
fn unnamed(code: &str) -> bool {
    UNNAMED.contains(&code) || (code.len() == 3 && code.bytes().all(|b| b.is_ascii_digit())) || code.starts_with("SB")
}

#[test]
fn every_code_in_the_fixture_frames_is_named_or_known_unnamed() {
    let dir = format!("{}/../../fixtures/frames", env!("CARGO_MANIFEST_DIR"));
    let mut named = 0;
    for file in ["real.txt", "standard-derived.txt"] {
        let text = std::fs::read_to_string(format!("{dir}/{file}")).expect("fixture file");
        for line in text.lines() {
            let mut bytes = line.as_bytes().to_vec();
            bytes.extend_from_slice(b"\r\n");
            let Scan::Frame(layout) = framer::scan(&bytes, &FramerConfig::default(), true) else { continue };
            let segment = SegmentText::new(layout.data(&bytes));
            let Ok(packet) = Packet::parse_text(&segment) else { continue };
            for f in packet.factors() {
                match Factor::lookup(f.code, packet.st) {
                    Some(row) => {
                        named += 1;
                        assert!(!row.name.is_empty() && !row.name_zh.is_empty(), "{}", f.code);
                    }
                    None => assert!(unnamed(f.code), "{file}: {} (ST={:?}) is not in the table", f.code, packet.st),
                }
            }
        }
    }
    assert!(named > 20, "only {named} named factors in the fixtures");
}

#[test]
fn row_counts_per_table() {
    let count = |source: &str, medium: Medium| {
        Factor::all().iter().filter(|f| f.medium == medium && f.source.starts_with(source)).count()
    };
    assert_eq!(count("HJ 212-2017 Table B.1", Medium::Water), 63);
    assert_eq!(count("HJ 212-2017 Table B.2", Medium::Gas), 121);
    assert_eq!(count("HJ 212-2017 Table B.3", Medium::Noise), 12);
    assert_eq!(Factor::skipped_rows(), 0);
}

#[test]
fn public_lookups() {
    let o3 = factor("a05024").expect("ozone");
    assert_eq!((o3.name, o3.name_zh, o3.unit, o3.medium), ("ozone", "臭氧", "µg/m3", Medium::Gas));
    let so2 = Factor::lookup("02", Some("31")).expect("2005 SO2 at a stack");
    assert_eq!(so2.code, "a21026");
    assert_ne!(so2.unit_for(Some("22")), so2.unit_for(Some("31")));
    assert_eq!(factor_for_code("S01", Some(Medium::Gas)).map(|f| f.code), Some("a19001"));
    assert_eq!(factor("w01003").map(|f| (f.name, f.unit)), Some(("turbidity", "NTU")));
}
