//! Sink throughput: points/s from the archive into a local VictoriaMetrics, the whole
//! pipeline: follow the archive, parse, line protocol, (gzip,) HTTP. VictoriaMetrics runs on
//! the same 2-core machine. Each point carries two fields (rtd, zs_rtd) and a flag tag.
//!
//! Run: `cargo run --release -p hj212-benches --bin influx-replay -- [FRAMES] [--gzip]`

use std::fmt::Write as _;
use std::sync::Arc;
use std::time::{Duration, Instant};

use hj212_archive::FollowerStatus;
use hj212_archive::{Archive, Kind, NewRecord, NoObserver, Settings, Verdict};
use hj212_follow::RunnerSettings;
use hj212_proto::encode;
use hj212_proto::time::BeijingTime;
use hj212_sink_influx::{Api, Endpoint, InfluxFollower};
use test_support::VictoriaMetrics;
use tokio_util::sync::CancellationToken;

const FACTORS: &[&str] = &["a21026", "a21002", "a34013", "a19001", "a01012", "a01013", "a01014", "a01011"];

fn frame(n: usize) -> Vec<u8> {
    let time = BeijingTime::from_unix_millis(1_767_225_600_000 + i64::try_from(n).unwrap_or(0) * 1000);
    let mut segment = format!(
        "QN={};ST=31;CN=2011;PW=123456;MN=BENCH{:019};Flag=5;CP=&&DataTime={}",
        time.to_qn_string(),
        n % 50,
        time.to_seconds_string()
    );
    for (i, code) in FACTORS.iter().enumerate() {
        let _ = write!(segment, ";{code}-Rtd={}.{i},{code}-ZsRtd={}.5,{code}-Flag=N", n % 97, n % 89);
    }
    segment += "&&";
    encode::frame(segment.as_bytes()).expect("fits")
}

fn main() {
    let frames: usize = std::env::args().nth(1).and_then(|a| a.parse().ok()).unwrap_or(125_000);
    // gzip costs CPU on both ends; on a database beside the daemon it buys nothing.
    let gzip = std::env::args().any(|a| a == "--gzip");
    let runtime = tokio::runtime::Builder::new_multi_thread().enable_all().build().expect("runtime");
    runtime.block_on(async {
        let dir = tempfile::tempdir().expect("temp dir");
        let settings = Settings {
            segment_max_bytes: 64 << 20,
            segment_max_age: Duration::from_secs(86_400),
            queue: 65_536,
            ..Settings::in_dir(dir.path().join("archive"))
        };
        let (archive, writer, _) = Archive::open(settings.clone(), Arc::new(NoObserver)).expect("archive");
        let mut last = 0;
        for chunk in (0..frames).collect::<Vec<_>>().chunks(10_000) {
            let mut pending = Vec::new();
            for n in chunk {
                let record = NewRecord {
                    kind: Kind::Received,
                    verdict: Verdict::Accepted,
                    flags: 0,
                    time_ms: 0,
                    peer: "127.0.0.1:1".into(),
                    data: frame(*n),
                };
                pending.push(archive.submit(record).await.expect("submit"));
            }
            for p in pending {
                last = p.durable().await.expect("durable");
            }
        }
        let points = frames * FACTORS.len();
        println!("archive: {frames} frames, {points} points");
        // The sink writes what the store has applied (first copy wins): apply it all first.
        let store_path = dir.path().join("store.sqlite");
        let mut store = hj212_store::Store::open(&store_path).expect("store");
        let mut follower = hj212_archive::Follower::new(&settings.dir, 1);
        loop {
            let records = follower.read(last, 10_000).expect("archive");
            if records.is_empty() {
                break;
            }
            store.apply(&hj212_follow::Interpreted::all(records)).expect("apply");
        }
        drop(store);

        let vm = VictoriaMetrics::start();
        let sink = hj212_sink_influx::Settings {
            endpoint: Endpoint {
                base_url: vm.url(),
                api: Api::V2 { org: "ops".into(), bucket: "hj212".into() },
                token: None,
                gzip,
                timeout: Duration::from_secs(30),
            },
            store_path,
            cursor_path: dir.path().join("influx.cursor"),
            dead_letter_path: dir.path().join("dead-letter.lp"),
            batch_points: 5000,
            max_in_flight: hj212_config::Influx::default().max_in_flight,
            batch_interval: Duration::from_secs(1),
            sites: Vec::new(),
        };
        let shutdown = CancellationToken::new();
        let status = Arc::new(FollowerStatus::default());
        let started = Instant::now();
        let follower = InfluxFollower::open(sink, tokio::runtime::Handle::current()).expect("sink");
        let runner = RunnerSettings {
            archive_dir: settings.dir.clone(),
            batch: 10_000,
            tick: Duration::from_millis(200),
            max_backoff: Duration::from_secs(5),
            after: None,
            shared: None,
            nice: 0,
            feed: None,
        };
        let thread = hj212_follow::spawn(Box::new(follower), runner, archive.durable(), status.clone(), shutdown.clone())
            .expect("runner");
        while status.position() < last {
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        let elapsed = started.elapsed();
        shutdown.cancel();
        tokio::task::spawn_blocking(move || thread.join()).await.expect("join").expect("thread").expect("sink");
        vm.flush();
        let stored: usize = vm
            .export(r#"{__name__="hj212_rtd"}"#)
            .iter()
            .map(|s| s["timestamps"].as_array().map_or(0, Vec::len))
            .sum();
        let rate = points as f64 / elapsed.as_secs_f64();
        println!(
            "sink (gzip {}): {points} points (up to seq {last}) written in {:.2} s = {:.0} points/s; VictoriaMetrics holds {stored} rtd samples",
            if gzip { "on" } else { "off" },
            elapsed.as_secs_f64(),
            rate
        );
        drop(archive);
        writer.join();
    });
}
