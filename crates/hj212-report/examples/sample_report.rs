//! Prints a sample fleet daily report as HTML (two sites, one below target with an exceedance),
//! the page the docs show: `cargo run -p hj212-report --example sample_report > sample.html`
//! then `chromium --headless --screenshot=docs/images/report-daily.png --window-size=800,1400 file://$PWD/sample.html`.

use hj212_archive::{Kind, Record, Verdict};
use hj212_config::{FactorLimit, LimitBasis, Service, Site};
use hj212_report::{Period, Sources};

const HOUR: i64 = 3_600_000;

fn hourly(seq: u64, mn: &str, start: i64, so2: &str) -> Record {
    let t = hj212_proto::time::BeijingTime::from_unix_millis(start).to_seconds_string();
    let text = format!(
        "QN={t}000;ST=31;CN=2061;PW=1;MN={mn};Flag=5;CP=&&DataTime={t};a21026-Avg={so2},a21026-Cou=0.42,a21026-Flag=N;\
         a21002-Avg=48.1,a21002-Cou=1.05,a21002-Flag=N&&"
    );
    let data = hj212_proto::encode::frame(text.as_bytes()).expect("fits");
    Record {
        seq,
        kind: Kind::Received,
        verdict: Verdict::Accepted,
        flags: 0,
        time_ms: start + HOUR,
        peer: String::new(),
        data,
        hash: [0; 32],
    }
}

fn site(mn: &str, name: &str) -> Site {
    let limit = FactorLimit {
        factor: "a21026".into(),
        max: Some(35.0),
        min: None,
        basis: LimitBasis::Hour,
        reference_o2: None,
        max_step: None,
        range: None,
    };
    Site {
        name: name.into(),
        factors: vec!["a21026".into(), "a21002".into()],
        limits: vec![limit],
        ..Site::new(mn, "1")
    }
}

fn main() {
    let dir = tempfile::tempdir().expect("temp dir");
    let mut store = hj212_store::Store::open(&dir.path().join("store.sqlite")).expect("store");
    let day = Period::day("2026-11-29").expect("day");
    let mut records = Vec::new();
    for h in 0..24_i64 {
        let start = day.range.from_ms + h * HOUR;
        let seq = u64::try_from(h).expect("small");
        records.push(hourly(1 + seq, "010000A8900016F000169DC0", start, if h == 9 { "41.7" } else { "21.4" }));
        if h % 6 != 5 {
            records.push(hourly(100 + seq, "010000A8900016F000169DC1", start, "18.2"));
        }
    }
    store.apply(&hj212_follow::Interpreted::all(records)).expect("apply");
    let service = Service::default();
    let sources = Sources {
        store: &store,
        alerts: None,
        commands: None,
        archive: None,
        service: &service,
        now_ms: day.range.to_ms + HOUR,
    };
    let sites =
        [site("010000A8900016F000169DC0", "1号锅炉 outlet"), site("010000A8900016F000169DC1", "2号锅炉 outlet")];
    let report = hj212_report::fleet_report(&sources, &sites, &day).expect("report");
    print!("{}", hj212_report::html(&report));
}
