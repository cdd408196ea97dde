//! Framer + CRC + full parse throughput, and a follower's interpretation of an archived upload,
//! in frames per second.
//!
//! Run: `cargo bench -p hj212-benches --bench proto`

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use hj212_archive::{Kind, Record, Verdict};
use hj212_benches::{minute_frame, realtime_frame};
use hj212_follow::Meaning;
use hj212_proto::crc::{self, CrcPolicy};
use hj212_proto::framer::{self, FramerConfig, Scan};
use hj212_proto::{Packet, SegmentText};
use std::hint::black_box;

/// Everything the daemon does to a frame before deciding what to store: frame it, check
/// the CRC, decode the text, parse header and CP, read DataTime and group the factors.
fn decode(frame: &[u8], config: &FramerConfig) -> usize {
    let Scan::Frame(layout) = framer::scan(frame, config, false) else { panic!("bench frame must frame") };
    let data = layout.data(frame);
    crc::verify(data, layout.declared_crc, CrcPolicy::Hj212).expect("bench frame CRC");
    let text = SegmentText::new(data);
    let packet = Packet::parse_text(&text).expect("bench frame parses");
    let data_time = packet.data_time_parsed().expect("has DataTime").expect("valid");
    packet.factors().len() + usize::from(data_time.second)
}

fn bench(c: &mut Criterion) {
    let config = FramerConfig::default();
    let mut group = c.benchmark_group("decode");
    group.throughput(Throughput::Elements(1));
    for (name, frame) in
        [("2011_300B", realtime_frame(300)), ("2051_400B", minute_frame(400)), ("2051_1KiB", minute_frame(1024))]
    {
        group.bench_function(format!("{name} ({} bytes)", frame.len()), |b| {
            b.iter(|| decode(black_box(&frame), &config));
        });
    }
    group.finish();

    let frame = realtime_frame(300);
    let Scan::Frame(layout) = framer::scan(&frame, &config, false) else { unreachable!() };
    let data = layout.data(&frame).to_vec();
    let mut parts = c.benchmark_group("parts_2011_300B");
    parts.throughput(Throughput::Elements(1));
    parts.bench_function("scan", |b| {
        b.iter(|| framer::scan(black_box(&frame), &config, false));
    });
    parts.bench_function("crc_hj212", |b| b.iter(|| crc::hj212(black_box(&data))));
    parts.bench_function("crc_modbus", |b| b.iter(|| crc::modbus(black_box(&data))));
    parts.bench_function("parse", |b| {
        b.iter(|| Packet::parse(std::str::from_utf8(black_box(&data)).unwrap()).unwrap().items.len());
    });
    parts.bench_function("parse_and_group", |b| {
        b.iter(|| Packet::parse(std::str::from_utf8(black_box(&data)).unwrap()).unwrap().factors().len());
    });
    parts.finish();

    // What every follower of the archive does to each accepted upload it reads (and drops).
    let record = Record {
        seq: 1,
        kind: Kind::Received,
        verdict: Verdict::Accepted,
        flags: 0,
        time_ms: 1_767_240_000_000,
        peer: "127.0.0.1:50000".to_owned(),
        data: frame,
        hash: [0; 32],
    };
    let mut follow = c.benchmark_group("follow_2011_300B");
    follow.throughput(Throughput::Elements(1));
    follow.bench_function("interpret", |b| b.iter(|| Meaning::of(black_box(&record))));
    follow.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
