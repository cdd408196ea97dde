//! Every frame in `fixtures/frames/` with its exact expected outcome (see fixtures/frames/SOURCES.md).

use hj212_proto::crc::{self, CrcDialect};
use hj212_proto::framer::{self, FrameError, FramerConfig, Scan};
use hj212_proto::model::{Cn, FieldKind, Version};
use hj212_proto::{Note, Notes, Packet, SegmentText};

fn fixture_line(file: &str, line: usize) -> Vec<u8> {
    let path = format!("{}/../../fixtures/frames/{file}", env!("CARGO_MANIFEST_DIR"));
    let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{path}: {e}"));
    let mut bytes = text.lines().nth(line - 1).expect("line exists").as_bytes().to_vec();
    bytes.extend_from_slice(b"\r\n");
    bytes
}

/// What a well-framed fixture must decode to.
struct Expect {
    crc: Option<CrcDialect>,
    cn: Cn,
    st: &'static str,
    mn: &'static str,
    qn: Option<&'static str>,
    flag: Option<u8>,
    version: Version,
    data_time: Option<&'static str>,
    factors: usize,
    /// One parsed value: (factor code or plain key, kind, value).
    probe: Option<(&'static str, Option<FieldKind>, &'static str)>,
    notes: &'static [Note],
}

fn check(file: &str, line: usize, want: &Expect) {
    let bytes = fixture_line(file, line);
    let Scan::Frame(layout) = framer::scan(&bytes, &FramerConfig::default(), true) else {
        panic!("{file}:{line} did not frame");
    };
    assert_eq!(layout.len, bytes.len(), "{file}:{line} length");
    let data = layout.data(&bytes);
    assert_eq!(crc::identify(data, layout.declared_crc), want.crc, "{file}:{line} CRC");
    let text = SegmentText::new(data);
    let packet = Packet::parse_text(&text).unwrap_or_else(|e| panic!("{file}:{line}: {e}"));
    let context = format!("{file}:{line}");
    assert_eq!(packet.cn, want.cn, "{context}");
    assert_eq!(packet.st, Some(want.st), "{context}");
    assert_eq!(packet.mn, want.mn, "{context}");
    assert_eq!(packet.qn, want.qn, "{context}");
    assert_eq!(packet.flag.map(|f| f.0), want.flag, "{context}");
    assert_eq!(packet.version(), want.version, "{context}");
    assert_eq!(packet.data_time(), want.data_time, "{context}");
    if let Some(Ok(time)) = packet.data_time_parsed() {
        assert!(time.year >= 2016, "{context}");
    } else {
        assert!(want.data_time.is_none(), "{context}: DataTime did not parse");
    }
    assert_eq!(packet.factors().len(), want.factors, "{context}");
    if let Some((key, kind, value)) = want.probe {
        let found = match kind {
            Some(kind) => packet.factors().iter().find(|f| f.code == key).and_then(|f| f.get(kind)),
            None => packet.get(key),
        };
        assert_eq!(found, Some(value), "{context} probe {key}");
    }
    let mut notes = Notes::of_layout(&layout);
    notes.extend(packet.notes);
    let mut expected = Notes::default();
    want.notes.iter().for_each(|n| expected.insert(*n));
    assert_eq!(notes.iter().collect::<Vec<_>>(), expected.iter().collect::<Vec<_>>(), "{context} notes");
}

const STD_MN: &str = "010000A8900016F000169DC0";
const STD_QN: Option<&str> = Some("20160801085857223");

fn v2017(cn: Cn, st: &'static str, flag: u8) -> Expect {
    Expect {
        crc: Some(CrcDialect::Hj212),
        cn,
        st,
        mn: STD_MN,
        qn: STD_QN,
        flag: Some(flag),
        version: Version::Hj212_2017,
        data_time: None,
        factors: 0,
        probe: None,
        notes: &[],
    }
}

fn v2005(mn: &'static str, data_time: &'static str, factors: usize) -> Expect {
    Expect {
        crc: Some(CrcDialect::Hj212),
        cn: Cn::RealTimeData,
        st: "32",
        mn,
        qn: None,
        flag: None,
        version: Version::Hj212_2005,
        data_time: Some(data_time),
        factors,
        probe: None,
        notes: &[Note::NoQn, Note::NoFlag, Note::NonStandardMn],
    }
}

#[test]
#[expect(clippy::too_many_lines, reason = "a table with one row per fixture frame")]
fn real_frames() {
    use FieldKind::{Flag, Rtd};
    let air = |qn, flag, crc, dt, factors, probe, notes| Expect {
        crc,
        cn: Cn::RealTimeData,
        st: "22",
        mn: "Y80110010000010",
        qn: Some(qn),
        flag: Some(flag),
        version: Version::Hj212_2017,
        data_time: Some(dt),
        factors,
        probe: Some(probe),
        notes,
    };
    let hj = Some(CrcDialect::Hj212);
    let lower_mn: &[Note] = &[Note::LowercaseCrc, Note::NonStandardMn];
    let cases = [
        (1, Expect { probe: Some(("RtdInterval", None, "30")), ..v2017(Cn::SetRtdInterval, "32", 5) }),
        (
            2,
            Expect {
                probe: Some(("060", Some(Rtd), "1.803")),
                notes: &[Note::NoQn, Note::NoFlag, Note::NonStandardMn, Note::DataTimeWithMillis],
                ..v2005("LD130133000015", "20160824003817000", 3)
            },
        ),
        (
            3,
            Expect {
                probe: Some(("011", Some(Flag), "N")),
                notes: &[Note::LowercaseCrc, Note::NoQn, Note::NoFlag, Note::NonStandardMn],
                ..v2005("LD130133000015", "20160824003817", 3)
            },
        ),
        (
            4,
            Expect {
                crc: None,
                notes: &[Note::NoQn, Note::NoFlag, Note::NonStandardMn, Note::DataTimeWithMillis],
                ..v2005("LD130133000015", "20160824003817000", 3)
            },
        ),
        (5, air("20191012133710130", 4, hj, "20191012133710", 7, ("a21002", Some(Rtd), "49.20"), lower_mn)),
        (
            6,
            Expect {
                st: "32",
                probe: Some(("O3", Some(Rtd), "63.400")),
                notes: &[Note::NonStandardMn],
                ..air("20190901181526940", 4, None, "20190901181500", 6, ("a34004", Some(Rtd), "4"), &[])
            },
        ),
        (7, air("20191012133710130", 4, hj, "20191012133710", 7, ("a2106", Some(Rtd), "0.036"), lower_mn)),
        (8, air("20191012133710130", 4, hj, "20191012133710", 7, ("a214", Some(Flag), "N"), &[Note::NonStandardMn])),
        (
            9,
            Expect {
                crc: None,
                cn: Cn::MinuteData,
                st: "31",
                mn: "14513567846884",
                qn: Some("20191112091100598"),
                flag: None,
                version: Version::Hj212_2005,
                data_time: Some("20230327090000"),
                factors: 1,
                probe: Some(("a01006", Some(FieldKind::ValidNum), "10")),
                notes: &[Note::NoFlag, Note::NonStandardMn, Note::SplitWithoutFlag],
            },
        ),
        (
            10,
            Expect {
                probe: Some(("ele02", Some(Rtd), "0")),
                notes: &[Note::LowercaseCrc, Note::NoQn, Note::NoFlag, Note::NonStandardMn, Note::DataTimeWithMillis],
                ..v2005("NJGDKYYC202101q0001w0001", "20210305003817000", 2)
            },
        ),
        (
            11,
            Expect {
                qn: Some("20231008123340461"),
                data_time: Some("20231008123340"),
                factors: 1,
                probe: Some(("w01008", Some(FieldKind::SampleTime), "20231008123340")),
                ..v2017(Cn::RealTimeData, "22", 5)
            },
        ),
        (
            12,
            Expect {
                qn: Some("20231008125115215"),
                probe: Some(("QnRtn", None, "1")),
                ..v2017(Cn::RequestResponse, "22", 4)
            },
        ),
        (
            13,
            Expect {
                qn: Some("20231008132300648"),
                data_time: Some("20231008132300"),
                factors: 1,
                probe: Some(("w01008", Some(Rtd), "123.456")),
                ..v2017(Cn::RealTimeData, "22", 5)
            },
        ),
        (
            14,
            Expect {
                st: "101",
                probe: Some(("ua19004", Some(Rtd), "2.017")),
                notes: &[Note::NoQn, Note::NoFlag, Note::NonStandardSt, Note::NonStandardMn],
                ..v2005("41050022000017", "20200922110000", 5)
            },
        ),
        (
            15,
            Expect {
                crc: Some(CrcDialect::ModbusSwapped),
                st: "31",
                probe: Some(("a99949", Some(Rtd), "786.913")),
                ..v2005("4201003", "20200923111707", 31)
            },
        ),
        (
            16,
            Expect {
                mn: "0507A010003242",
                qn: Some("20250131202809340"),
                data_time: Some("20250131202809"),
                factors: 1,
                probe: Some(("Flag", None, "N")),
                notes: &[Note::NonStandardMn],
                ..v2017(Cn::RealTimeData, "39", 4)
            },
        ),
    ];
    for (line, want) in &cases {
        check("real.txt", *line, want);
    }
}

#[test]
fn real_frames_with_broken_framing() {
    let reject = |line| match framer::scan(&fixture_line("real.txt", line), &FramerConfig::default(), true) {
        Scan::Rejected { error, .. } => error,
        other => panic!("real.txt:{line} should be rejected, got {other:?}"),
    };
    // Declares 121 bytes but carries 119 (CP rewritten without "&&").
    assert_eq!(reject(17), FrameError::NoCrcAtLength { len: 121, found: *b"C0\r\n" });
    // A 2-digit length field.
    assert_eq!(reject(18), FrameError::LengthNotNumeric { field: *b"81QN" });
}

#[test]
fn standard_derived_frames() {
    let file = "standard-derived.txt";
    let noise = |cn, qn, dt, factors, probe| Expect {
        qn: Some(qn),
        data_time: Some(dt),
        factors,
        probe: Some(probe),
        ..v2017(cn, "23", 5)
    };
    let cases = [
        (1, Expect { probe: Some(("QnRtn", None, "1")), ..v2017(Cn::RequestResponse, "91", 4) }),
        (2, Expect { probe: Some(("ExeRtn", None, "1")), ..v2017(Cn::ExecutionResult, "91", 4) }),
        (3, Expect { probe: Some(("ReCount", None, "3")), ..v2017(Cn::SetTimeoutRetry, "32", 5) }),
        (4, Expect { probe: Some(("PolId", None, "w01018")), ..v2017(Cn::FieldTime, "32", 5) }),
        (
            5,
            Expect {
                probe: Some(("SystemTime", None, "20160801085857")),
                notes: &[Note::SpacesInCp],
                ..v2017(Cn::FieldTime, "32", 4)
            },
        ),
        (6, Expect { probe: Some(("SystemTime", None, "20160801085857")), ..v2017(Cn::SetFieldTime, "32", 5) }),
        (7, v2017(Cn::NotificationResponse, "91", 4)),
        (8, v2017(Cn::DataResponse, "91", 4)),
        (9, Expect { qn: Some("20160801085000001"), ..v2017(Cn::DataResponse, "91", 4) }),
        (
            10,
            Expect {
                data_time: Some("20160801085857"),
                probe: Some(("RestartTime", None, "20160801085624")),
                ..v2017(Cn::RestartTime, "32", 5)
            },
        ),
        (
            11,
            Expect {
                notes: &[Note::SpacesInCp],
                ..noise(
                    Cn::RealTimeData,
                    "20160801085857223",
                    "20160801085857",
                    1,
                    ("LA", Some(FieldKind::Rtd), "50.1"),
                )
            },
        ),
        (12, noise(Cn::MinuteData, "20160801085000001", "20160801084000", 8, ("Leq", Some(FieldKind::Data), "50.0"))),
        (13, noise(Cn::HourlyData, "20160801090000001", "20160801080000", 8, ("LMn", Some(FieldKind::Data), "42.0"))),
        (14, Expect { probe: Some(("EndTime", None, "20160801084000")), ..v2017(Cn::MinuteData, "32", 5) }),
        (15, Expect { qn: Some("20160801085857534"), ..v2017(Cn::DataResponse, "91", 4) }),
        (
            16,
            Expect {
                qn: Some("20160801085857534"),
                data_time: Some("20160801080000"),
                factors: 2,
                probe: Some(("w00000", Some(FieldKind::Cou), "63.0")),
                notes: &[Note::CpItemWithoutValue],
                ..v2017(Cn::HourlyData, "32", 7)
            },
        ),
        (
            17,
            Expect {
                qn: Some("20160802000000001"),
                data_time: Some("20160801000000"),
                factors: 2,
                probe: Some(("SB1", Some(FieldKind::Rt), "1.1")),
                notes: &[Note::NoSemicolonBeforeCp],
                ..v2017(Cn::DailyRunTime, "32", 5)
            },
        ),
        (
            18,
            Expect {
                qn: Some("20160801085857534"),
                data_time: Some("20160801000000"),
                factors: 3,
                probe: Some(("w01018", Some(FieldKind::Cou), "2142.0")),
                notes: &[Note::CommaInHeader, Note::CpItemWithoutValue],
                ..v2017(Cn::DailyData, "32", 5)
            },
        ),
    ];
    for (line, want) in &cases {
        check(file, *line, want);
    }
}

#[test]
fn split_packet_fixture_carries_pnum_and_pno() {
    let bytes = fixture_line("standard-derived.txt", 16);
    let Scan::Frame(layout) = framer::scan(&bytes, &FramerConfig::default(), true) else { panic!() };
    let text = SegmentText::new(layout.data(&bytes));
    let packet = Packet::parse_text(&text).unwrap();
    assert!(packet.is_split() && packet.wants_ack());
    assert_eq!((packet.pnum, packet.pno), (Some(2), Some(1)));
}
