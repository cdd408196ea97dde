//! Report speed on the embedded store (issue 16: a daily fleet report for 10,000 sites in
//! < 10 s, a monthly one in < 60 s): every site sends hourly records (CN 2061, 3 factors with
//! Avg and Cou) for a month and a daily record (CN 2031) per day; then the fleet's daily report
//! for the month's last day and the monthly report are timed, as the daemon writes them.
//!
//! Run: `cargo run --release -p hj212-benches --bin report-bench [-- SITES [DAYS]]`
//! (default 10,000 sites, 30 days; filling the store takes a few minutes).

use std::fmt::Write as _;
use std::time::Instant;

use hj212_archive::{Kind, Record, Verdict};
use hj212_config::{FactorLimit, LimitBasis, Service, Site};
use hj212_proto::encode;
use hj212_proto::time::BeijingTime;
use hj212_report::{Period, Sources};
use hj212_store::Store;

const HOUR: i64 = 3_600_000;
const FACTORS: [&str; 3] = ["a21026", "a21002", "a34013"];
/// 2025-11-01T00:00:00+08:00: a 30-day month.
const START: i64 = 1_761_926_400_000;

fn mn(site: usize) -> String {
    format!("REPORT{site:018}")
}

fn record(seq: u64, site: usize, cn: u16, start: i64) -> Record {
    let t = BeijingTime::from_unix_millis(start);
    let mut cp = format!("DataTime={}", t.to_seconds_string());
    for f in FACTORS {
        let _ = write!(cp, ";{f}-Avg=21.5,{f}-Cou=0.125,{f}-Flag=N");
    }
    let segment = format!("QN={};ST=31;CN={cn};PW=1;MN={};Flag=4;CP=&&{cp}&&", t.to_qn_string(), mn(site));
    Record {
        seq,
        kind: Kind::Received,
        verdict: Verdict::Accepted,
        flags: 0,
        time_ms: start + HOUR,
        peer: String::new(),
        data: encode::frame(segment.as_bytes()).expect("fits"),
        hash: [0; 32],
    }
}

fn site(n: usize) -> Site {
    let limit = |factor: &str| FactorLimit {
        factor: factor.into(),
        max: Some(20.0),
        min: None,
        basis: LimitBasis::Hour,
        reference_o2: None,
        max_step: None,
        range: None,
    };
    Site { factors: FACTORS.map(String::from).to_vec(), limits: FACTORS.map(limit).to_vec(), ..Site::new(mn(n), "1") }
}

fn main() {
    let mut args = std::env::args().skip(1).map(|a| a.parse::<usize>().expect("a number"));
    let sites = args.next().unwrap_or(10_000);
    let days = i64::try_from(args.next().unwrap_or(30)).expect("days");
    let dir = tempfile::tempdir().expect("temp dir");
    let mut store = Store::open(&dir.path().join("store.sqlite")).expect("store");
    let filling = Instant::now();
    let (mut seq, mut batch) = (0, Vec::with_capacity(5000));
    for day in 0..days {
        for s in 0..sites {
            for h in 0..24 {
                seq += 1;
                batch.push(hj212_follow::Interpreted::new(record(seq, s, 2061, START + (day * 24 + h) * HOUR)));
            }
            seq += 1;
            batch.push(hj212_follow::Interpreted::new(record(seq, s, 2031, START + day * 24 * HOUR)));
            if batch.len() >= 5000 {
                store.apply(&batch).expect("apply");
                batch.clear();
            }
        }
    }
    store.apply(&batch).expect("apply");
    println!("store filled: {sites} sites x {days} days ({seq} records) in {:.0} s", filling.elapsed().as_secs_f64());

    let fleet: Vec<Site> = (0..sites).map(site).collect();
    let service = Service::default();
    let sources = Sources {
        store: &store,
        alerts: None,
        commands: None,
        archive: None,
        service: &service,
        now_ms: START + (days + 2) * 24 * HOUR,
    };
    let last_day = BeijingTime::from_unix_millis(START + (days - 1) * 24 * HOUR).to_seconds_string();
    for period in [
        Period::day(&format!("{}-{}-{}", &last_day[..4], &last_day[4..6], &last_day[6..8])).expect("day"),
        Period::month("2025-11").expect("month"),
    ] {
        let started = Instant::now();
        let report = hj212_report::fleet_report(&sources, &fleet, &period).expect("report");
        let computed = started.elapsed();
        let html = hj212_report::html(&report);
        let json = report.to_string();
        println!(
            "{} fleet report, {sites} sites: {:.2} s computed, {:.2} s with JSON ({} MB) and HTML ({} MB); emissions of the first site: {}",
            period.kind,
            computed.as_secs_f64(),
            started.elapsed().as_secs_f64(),
            json.len() / 1_000_000,
            html.len() / 1_000_000,
            report["reports"][0]["emissions"][0]["total"],
        );
    }
}
