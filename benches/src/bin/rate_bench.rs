//! Rate query speed on the embedded store: one site over a year of hourly data, and many
//! sites over a month.
//!
//! Run: `cargo run --release -p hj212-benches --bin rate-bench [-- SITES]` (default 1,000 sites).

use std::fmt::Write as _;
use std::time::{Duration, Instant};

use hj212_archive::{Kind, Record, Verdict};
use hj212_compliance::Range;
use hj212_proto::encode;
use hj212_proto::time::BeijingTime;
use hj212_store::{Store, rules_for};

const HOUR: i64 = 3_600_000;
/// 2025-11-01T00:00:00+08:00
const START: i64 = 1_761_926_400_000;
/// Evaluated as of a time after every range here (the ranges are in the past).
const AFTER: i64 = START + 2 * 8760 * HOUR;
const FACTORS: [&str; 3] = ["a21026", "a21002", "a34013"];

fn mn(site: usize) -> String {
    format!("RATE{site:020}")
}

fn record(seq: u64, site: usize, hour: i64) -> Record {
    let t = BeijingTime::from_unix_millis(START + hour * HOUR);
    let mut cp = format!("DataTime={}", t.to_seconds_string());
    for f in FACTORS {
        let flag = if hour % 97 == 0 { "D" } else { "N" };
        let _ = write!(cp, ";{f}-Avg=1.5,{f}-Flag={flag}");
    }
    let segment = format!("QN={};ST=31;CN=2061;PW=1;MN={};Flag=4;CP=&&{cp}&&", t.to_qn_string(), mn(site));
    Record {
        seq,
        kind: Kind::Received,
        verdict: Verdict::Accepted,
        flags: 0,
        time_ms: START + (hour + 1) * HOUR,
        peer: String::new(),
        data: encode::frame(segment.as_bytes()).expect("fits"),
        hash: [0; 32],
    }
}

fn site(n: usize) -> hj212_config::Site {
    hj212_config::Site { factors: FACTORS.map(String::from).to_vec(), ..hj212_config::Site::new(mn(n), "1") }
}

fn fill(store: &mut Store, sites: usize, hours: i64, seq: &mut u64) {
    let mut batch = Vec::with_capacity(5000);
    for s in 0..sites {
        for h in 0..hours {
            *seq += 1;
            batch.push(hj212_follow::Interpreted::new(record(*seq, s, h)));
            if batch.len() == 5000 {
                store.apply(&batch).expect("apply");
                batch.clear();
            }
        }
    }
    store.apply(&batch).expect("apply");
}

fn median(mut samples: Vec<Duration>) -> Duration {
    samples.sort();
    samples[samples.len() / 2]
}

fn main() {
    let sites: usize = std::env::args().nth(1).and_then(|a| a.parse().ok()).unwrap_or(1000);
    let dir = tempfile::tempdir().expect("temp dir");
    let mut store = Store::open(&dir.path().join("store.sqlite")).expect("store");
    let mut seq = 0;

    // One site, one year of hourly data (8,760 hours x 3 factors).
    fill(&mut store, 1, 8760, &mut seq);
    let one = site(0);
    let rules = rules_for(&one);
    let year = Range { from_ms: START, to_ms: START + 8760 * HOUR };
    let times: Vec<Duration> = (0..11)
        .map(|_| {
            let t = Instant::now();
            let evidence = store.site_rate(&one, &rules, year, AFTER).expect("rate");
            assert_eq!(evidence.report.due, 8760 * 3);
            t.elapsed()
        })
        .collect();
    println!(
        "1 site, 1 year hourly ({} readings): {:.1} ms (median of 11)",
        8760 * 3,
        median(times).as_secs_f64() * 1000.0
    );

    // Many sites, one month (720 hours each).
    let filled = Instant::now();
    let mut store = Store::open(&dir.path().join("many.sqlite")).expect("store");
    fill(&mut store, sites, 720, &mut seq);
    println!("filled {} readings in {:.1} s", sites * 720 * 3, filled.elapsed().as_secs_f64());
    let month = Range { from_ms: START, to_ms: START + 720 * HOUR };
    let all: Vec<_> = (0..sites).map(site).collect();
    let t = Instant::now();
    for s in &all {
        let evidence = store.site_rate(s, &rules_for(s), month, AFTER).expect("rate");
        assert_eq!(evidence.report.due, 720 * 3);
    }
    println!("{sites} sites, 1 month hourly, with missing/invalid lists: {:.2} s", t.elapsed().as_secs_f64());
    let t = Instant::now();
    for s in &all {
        let summary = store.site_summary(s, &rules_for(s), month, AFTER).expect("rate").expect("the ledger answers");
        assert_eq!(summary.due, 720 * 3);
    }
    println!("{sites} sites, 1 month hourly, counts from the ledger: {:.2} s", t.elapsed().as_secs_f64());
}
