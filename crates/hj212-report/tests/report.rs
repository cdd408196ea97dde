//! A site's daily report from a store: emission totals equal the sum of the Cou fields to the
//! last digit sent, exceedance hours use the logger's converted value or convert to the
//! reference O2, online time counts the slots the site was heard in; the fleet ranks the site
//! below target first.

use hj212_archive::{Kind, Record, Verdict};
use hj212_config::{FactorLimit, LimitBasis, Service, Site};
use hj212_follow::Interpreted;
use hj212_report::{Period, Sources, fleet_report, site_report};
use hj212_store::Store;

const HOUR: i64 = 3_600_000;

fn hourly(seq: u64, mn: &str, start: i64, cp: &str) -> Record {
    let data_time = hj212_proto::time::BeijingTime::from_unix_millis(start).to_seconds_string();
    let text = format!("QN={data_time}000;ST=31;CN=2061;PW=123456;MN={mn};Flag=5;CP=&&DataTime={data_time};{cp}&&");
    Record {
        seq,
        kind: Kind::Received,
        verdict: Verdict::Accepted,
        flags: 0,
        time_ms: start + HOUR + 30_000,
        peer: "127.0.0.1:40000".into(),
        data: hj212_proto::encode::frame(text.as_bytes()).unwrap(),
        hash: [0; 32],
    }
}

fn site(mn: &str) -> Site {
    let mut site = Site::new(mn, "pw");
    site.factors = vec!["a21026".into()];
    site.limits = vec![FactorLimit {
        factor: "a21026".into(),
        max: Some(35.0),
        min: None,
        basis: LimitBasis::Hour,
        reference_o2: Some(6.0),
        max_step: None,
        range: None,
    }];
    site
}

#[test]
fn a_daily_report_sums_cou_exactly_counts_exceedances_and_ranks_the_fleet() {
    let dir = tempfile::tempdir().unwrap();
    let mut store = Store::open(&dir.path().join("store.sqlite")).unwrap();
    let day = Period::day("2026-11-29").unwrap();
    let start = day.range.from_ms;
    let mut records = Vec::new();
    // Site A: 24 hours, SO2 Cou 0.1 kg each (float sums drift; the report must not), 20.0 mg/m3
    // at 10 % O2 (20 * 15 / 11 = 27.3 converted: under 35), except hour 5 with a Zs value of 40.
    for h in 0..24_i64 {
        let zs = if h == 5 { ",a21026-ZsAvg=40.0" } else { "" };
        let cp = format!("a21026-Avg=20.0,a21026-Cou=0.1{zs},a21026-Flag=N;a19001-Avg=10.0,a19001-Flag=N");
        records.push(hourly(1 + u64::try_from(h).unwrap(), "SITE-A", start + h * HOUR, &cp));
    }
    // Site B: 12 of 24 hours: below the 95 % target.
    for h in 0..12_i64 {
        records.push(hourly(
            100 + u64::try_from(h).unwrap(),
            "SITE-B",
            start + h * HOUR,
            "a21026-Avg=5,a21026-Cou=0.25,a21026-Flag=N",
        ));
    }
    store.apply(&Interpreted::all(records)).unwrap();
    let service = Service::default();
    let sources = Sources {
        store: &store,
        alerts: None,
        commands: None,
        archive: None,
        service: &service,
        now_ms: day.range.to_ms + 2 * HOUR,
    };

    let report = site_report(&sources, &site("SITE-A"), &day).unwrap();
    let so2 = &report["emissions"].as_array().unwrap().iter().find(|e| e["factor"] == "a21026").unwrap().clone();
    assert_eq!(so2["total"], "2.4", "24 x 0.1 exactly: {so2}");
    assert_eq!(
        (so2["unit"].as_str(), so2["records"].as_u64(), so2["records_missing"].as_u64()),
        (Some("kg"), Some(24), Some(0))
    );
    let exceedance = &report["exceedances"][0];
    assert_eq!(
        exceedance["periods_over"], 1,
        "only the hour whose converted value the logger sent as 40: {exceedance}"
    );
    assert_eq!(exceedance["periods_compared"], 24);
    assert_eq!(exceedance["worst"], 40.0);
    assert_eq!(report["rate"]["effective_rate"], "100.00");
    // Each hourly record arrived 30 s after its hour, in a 5-minute slot of its own; the last
    // one arrived the next day: 23 of the day's 288 slots.
    assert_eq!((report["online"]["heard"].as_u64(), report["online"]["slots"].as_u64()), (Some(23), Some(288)));

    let fleet = fleet_report(&sources, &[site("SITE-A"), site("SITE-B")], &day).unwrap();
    assert_eq!(fleet["below_target"], 1);
    assert_eq!(fleet["ranking"][0]["mn"], "SITE-B", "the site below target first: {}", fleet["ranking"]);
    let b = &fleet["reports"][1]["emissions"][0];
    assert_eq!((b["total"].as_str(), b["records_missing"].as_u64()), (Some("3.00"), Some(12)));

    let csv = hj212_report::csv(&fleet["reports"].as_array().unwrap().iter().collect::<Vec<_>>());
    assert!(csv.starts_with('\u{feff}') && csv.lines().count() == 3, "{csv}");
    let html = hj212_report::html(&fleet);
    assert!(
        html.contains("SITE-B") && html.contains("有效传输率") && html.contains("@page{size:A4"),
        "one page, bilingual, A4"
    );
    assert!(!html.contains("<script") && !html.contains("http://") && !html.contains("https://"), "self-contained");
}
