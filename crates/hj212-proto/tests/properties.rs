//! Property tests: encode → parse round trips, and stream framing under any chunking and garbage.

use std::fmt::Write;

use bytes::BytesMut;
use hj212_proto::codec::{FrameEvent, Hj212Codec};
use hj212_proto::crc::{self, CrcDialect};
use hj212_proto::encode::{self, CommandHeader, HostCommand, ReplyTo};
use hj212_proto::framer::{FramerConfig, MAX_LENGTH_FIELD};
use hj212_proto::model::{Cn, FieldKind, Flag, Version};
use hj212_proto::time::BeijingTime;
use hj212_proto::{Packet, SegmentText};
use proptest::prelude::*;
use tokio_util::codec::Decoder;

#[derive(Debug, Clone)]
struct Spec {
    qn: Option<String>,
    st: String,
    cn: u16,
    pw: String,
    mn: String,
    flag: Option<u8>,
    data_time: String,
    groups: Vec<Vec<(String, &'static str, String)>>,
}

impl Spec {
    fn data_segment(&self) -> String {
        let mut s = String::new();
        if let Some(qn) = &self.qn {
            write!(s, "QN={qn};").unwrap();
        }
        write!(s, "ST={};CN={:04};PW={};MN={};", self.st, self.cn, self.pw, self.mn).unwrap();
        if let Some(flag) = self.flag {
            write!(s, "Flag={flag};").unwrap();
        }
        let mut groups = vec![format!("DataTime={}", self.data_time)];
        groups.extend(self.groups.iter().map(|g| {
            g.iter().map(|(code, kind, value)| format!("{code}-{kind}={value}")).collect::<Vec<_>>().join(",")
        }));
        s + "CP=&&" + &groups.join(";") + "&&"
    }

    fn frame(&self) -> Vec<u8> {
        encode::frame(self.data_segment().as_bytes()).expect("fits")
    }
}

fn beijing_time() -> impl Strategy<Value = BeijingTime> {
    (946_684_800_000i64..4_102_444_800_000).prop_map(BeijingTime::from_unix_millis)
}

fn item() -> impl Strategy<Value = (String, &'static str, String)> {
    let code = "[a-w][0-9]{5}|[0-9]{3}|B0[12]|S0[1-8]";
    let numeric =
        (code, prop::sample::select(vec!["Rtd", "Min", "Avg", "Max", "Cou", "ZsAvg"]), "-?[0-9]{1,6}(\\.[0-9]{1,3})?");
    let flag = (code, Just("Flag"), "[NFMSDCTB]");
    let info = (code, Just("Info"), "//[a-z 清洗管路维护]{0,12}//");
    prop_oneof![
        6 => numeric.prop_map(|(c, k, v)| (c, k, v)),
        2 => flag.prop_map(|(c, k, v)| (c, k, v)),
        1 => info.prop_map(|(c, k, v)| (c, k, v)),
    ]
}

fn spec() -> impl Strategy<Value = Spec> {
    (
        prop::option::of(beijing_time()),
        "[0-9]{2}",
        1000u16..=9999,
        "[0-9A-Za-z]{1,24}",
        "[0-9A-Za-z_]{1,24}",
        prop::option::of((0u8..=2, 0u8..=1, 0u8..=1)),
        beijing_time(),
        prop::collection::vec(prop::collection::vec(item(), 1..5), 0..12),
    )
        .prop_map(|(qn, st, cn, pw, mn, flag, dt, groups)| Spec {
            qn: qn.map(|t| t.to_qn_string()),
            st,
            cn,
            pw,
            mn,
            // Split frames need PNUM/PNO, which this spec does not generate: D stays 0.
            flag: flag.map(|(v, _, a)| v << 2 | a),
            data_time: dt.to_seconds_string(),
            groups,
        })
}

proptest! {
    #[test]
    fn encode_then_parse_round_trips(spec in spec()) {
        let frame = spec.frame();
        let mut codec = Hj212Codec::new(FramerConfig { crc_gate: true, ..FramerConfig::default() });
        let mut buf = BytesMut::from(&frame[..]);
        let Some(FrameEvent::Frame(f)) = codec.decode(&mut buf).unwrap() else { panic!("not framed") };
        prop_assert!(buf.is_empty());
        prop_assert_eq!(f.layout.crc_dialect, Some(CrcDialect::Hj212));
        prop_assert_eq!(f.layout.data_len, spec.data_segment().len());
        let text = SegmentText::new(f.data());
        let p = Packet::parse_text(&text).unwrap();
        prop_assert_eq!(p.qn, spec.qn.as_deref());
        prop_assert_eq!(p.st, Some(spec.st.as_str()));
        prop_assert_eq!(p.cn.code(), spec.cn);
        prop_assert_eq!(p.pw, Some(spec.pw.as_str()));
        prop_assert_eq!(p.mn, spec.mn.as_str());
        prop_assert_eq!(p.flag.map(|f| f.0), spec.flag);
        prop_assert_eq!(p.data_time(), Some(spec.data_time.as_str()));
        prop_assert_eq!(p.data_time_parsed().unwrap().unwrap().to_seconds_string(), spec.data_time.clone());
        let got: Vec<(u16, &str, Option<FieldKind>, &str)> =
            p.items.iter().skip(1).map(|i| (i.group, i.code.unwrap(), i.kind, i.value)).collect();
        let want: Vec<(u16, &str, Option<FieldKind>, &str)> = spec.groups.iter().enumerate().flat_map(|(g, items)| {
            items.iter().map(move |(c, k, v)| (u16::try_from(g + 1).unwrap(), c.as_str(), Some(FieldKind::from_wire(k)), v.as_str()))
        }).collect();
        prop_assert_eq!(got, want);
    }

    #[test]
    fn replies_and_commands_parse_back(spec in spec(), qn in beijing_time(), seconds in 30u16..=3600) {
        let frame = spec.frame();
        let mut codec = Hj212Codec::default();
        let Some(FrameEvent::Frame(f)) = codec.decode(&mut BytesMut::from(&frame[..])).unwrap() else { panic!() };
        let text = SegmentText::new(f.data());
        let request = Packet::parse_text(&text).unwrap();
        let reply = encode::data_response(&ReplyTo::from(&request)).unwrap();
        let Some(FrameEvent::Frame(r)) = codec.decode(&mut BytesMut::from(&reply[..])).unwrap() else { panic!() };
        prop_assert_eq!(crc::identify(r.data(), r.layout.declared_crc), Some(CrcDialect::Hj212));
        let text = SegmentText::new(r.data());
        let reply = Packet::parse_text(&text).unwrap();
        prop_assert_eq!((reply.qn, reply.pw, reply.mn), (request.qn, request.pw, request.mn));
        prop_assert_eq!((reply.cn, reply.st), (Cn::DataResponse, Some("91")));
        prop_assert_eq!(reply.flag.map(Flag::version), request.flag.map(Flag::version));
        prop_assert!(!reply.wants_ack());

        let header = CommandHeader { qn, st: &spec.st, pw: &spec.pw, mn: &spec.mn, version: Version::Hj212_2017 };
        let command = HostCommand::SetRtdInterval { seconds }.encode(&header).unwrap();
        let Some(FrameEvent::Frame(c)) = codec.decode(&mut BytesMut::from(&command[..])).unwrap() else { panic!() };
        let text = SegmentText::new(c.data());
        let parsed = Packet::parse_text(&text).unwrap();
        let qn_text = qn.to_qn_string();
        prop_assert_eq!(parsed.qn, Some(qn_text.as_str()));
        let rtd = seconds.to_string();
        prop_assert_eq!(parsed.get("RtdInterval"), Some(rtd.as_str()));
        prop_assert!(parsed.wants_ack());
    }
}

/// Decodes `stream` fed in pieces of the given sizes (cycled), returning every event.
fn decode_in_chunks(stream: &[u8], sizes: &[usize], config: FramerConfig) -> Vec<FrameEvent> {
    let mut codec = Hj212Codec::new(config);
    let mut buf = BytesMut::new();
    let mut events = Vec::new();
    let mut at = 0;
    for size in sizes.iter().cycle() {
        if at >= stream.len() {
            break;
        }
        let end = (at + size).min(stream.len());
        buf.extend_from_slice(&stream[at..end]);
        at = end;
        while let Some(event) = codec.decode(&mut buf).unwrap() {
            events.push(event);
        }
        // Bounded memory: never more than one maximum frame plus one chunk is held.
        assert!(buf.len() <= MAX_LENGTH_FIELD + 16 + size, "buffer grew to {}", buf.len());
    }
    while let Some(event) = codec.decode_eof(&mut buf).unwrap() {
        events.push(event);
    }
    assert!(buf.is_empty());
    events
}

fn frames_of(events: &[FrameEvent]) -> Vec<Vec<u8>> {
    events
        .iter()
        .filter_map(|e| match e {
            FrameEvent::Frame(f) => Some(f.bytes.to_vec()),
            FrameEvent::Rejected { .. } => None,
        })
        .collect()
}

fn garbage(alphabet: &'static str) -> impl Strategy<Value = Vec<u8>> {
    prop::collection::vec(prop::sample::select(alphabet.as_bytes().to_vec()), 0..64)
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(128))]

    #[test]
    fn any_chunking_and_garbage_keeps_every_frame(
        frames in prop::collection::vec(spec(), 1..8),
        junk in prop::collection::vec(garbage("#0123456789ABCDEF&=;\r\n\0xyz"), 9),
        sizes in prop::collection::vec(1usize..=65_536, 1..16),
        small in prop::collection::vec(1usize..=16, 1..16),
    ) {
        let frames: Vec<Vec<u8>> = frames.iter().map(Spec::frame).collect();
        let mut stream = Vec::new();
        for (i, frame) in frames.iter().enumerate() {
            stream.extend_from_slice(&junk[i]);
            stream.extend_from_slice(frame);
        }
        stream.extend_from_slice(&junk[8]);
        // With the CRC gate on, garbage that happens to look like a header cannot swallow a frame.
        let gated = FramerConfig { crc_gate: true, ..FramerConfig::default() };
        for chunking in [&sizes, &small] {
            prop_assert_eq!(&frames_of(&decode_in_chunks(&stream, chunking, gated)), &frames);
        }
    }

    #[test]
    fn without_crc_gate_frames_survive_hashless_garbage(
        frames in prop::collection::vec(spec(), 1..8),
        junk in prop::collection::vec(garbage("0123456789ABCDEF&=;\r\n\0xyz"), 9),
        sizes in prop::collection::vec(1usize..=4096, 1..16),
    ) {
        let frames: Vec<Vec<u8>> = frames.iter().map(Spec::frame).collect();
        let mut stream = Vec::new();
        for (i, frame) in frames.iter().enumerate() {
            stream.extend_from_slice(&junk[i]);
            stream.extend_from_slice(frame);
        }
        prop_assert_eq!(&frames_of(&decode_in_chunks(&stream, &sizes, FramerConfig::default())), &frames);
    }

    #[test]
    fn arbitrary_bytes_never_panic(bytes in prop::collection::vec(any::<u8>(), 0..4096), sizes in prop::collection::vec(1usize..=512, 1..8)) {
        for event in decode_in_chunks(&bytes, &sizes, FramerConfig::default()) {
            if let FrameEvent::Frame(f) = event {
                let text = SegmentText::new(f.data());
                let _ = Packet::parse_text(&text);
            }
        }
        let text = SegmentText::new(&bytes);
        if let Ok(p) = Packet::parse_text(&text) {
            let _ = (p.factors(), p.data_time_parsed(), p.qn_time());
        }
    }
}
