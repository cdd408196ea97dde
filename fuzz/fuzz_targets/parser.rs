//! Any data segment: parsing never panics, and a reply built from what parsed parses
//! back to the same QN, PW and MN (parse → encode → parse).
#![no_main]

use hj212_proto::encode::{self, ReplyTo};
use hj212_proto::framer::{self, FramerConfig, Scan};
use hj212_proto::{Packet, SegmentText};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let text = SegmentText::new(data);
    let Ok(packet) = Packet::parse_text(&text) else { return };
    let _ = (packet.factors(), packet.data_time_parsed(), packet.qn_time(), packet.version());
    let Ok(reply) = encode::data_response(&ReplyTo::from(&packet)) else { return };
    let Scan::Frame(layout) = framer::scan(&reply, &FramerConfig::default(), true) else {
        panic!("own reply does not frame");
    };
    let reply_text = SegmentText::new(layout.data(&reply));
    let parsed = Packet::parse_text(&reply_text).expect("own reply parses");
    assert_eq!((parsed.qn, parsed.pw, parsed.mn), (packet.qn, packet.pw, packet.mn));
});
