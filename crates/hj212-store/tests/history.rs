//! Rates over a range apply the rules in force in each stretch of it (issue 16): a site's
//! factors changed mid-month are assessed as they were configured before and after the change.

mod common;

use hj212_archive::{Kind, Record, Verdict};
use hj212_compliance::{Basis, Range};
use hj212_config::{Config, Site};
use hj212_follow::Interpreted;
use hj212_store::{Store, config_records};

const MN: &str = "010000A8900016F000169DC0";
const HOUR: i64 = 3_600_000;
/// 2026-11-01 00:00 Beijing time.
const NOV_1: i64 = 1_793_462_400_000;

fn config_with(factors: &[&str]) -> Config {
    let mut site = Site::new(MN, "secret-password");
    site.factors = factors.iter().map(|f| (*f).to_owned()).collect();
    Config { sites: vec![site], ..Config::default() }
}

fn config_record(seq: u64, time_ms: i64, factors: &[&str]) -> Record {
    let record = config_records(&config_with(factors)).remove(0);
    Record {
        seq,
        kind: Kind::Event,
        verdict: Verdict::Config,
        flags: 0,
        time_ms,
        peer: "hj212d".into(),
        data: serde_json::to_vec(&record).unwrap(),
        hash: [0; 32],
    }
}

/// An hourly record at `start` carrying SO2 (a21026) only.
fn so2_hour(seq: u64, start: i64) -> Record {
    let data_time = hj212_proto::time::BeijingTime::from_unix_millis(start).to_seconds_string();
    let text = format!(
        "QN={data_time}000;ST=31;CN=2061;PW=123456;MN={MN};Flag=5;CP=&&DataTime={data_time};a21026-Avg=12.0,a21026-Flag=N&&"
    );
    common::accepted(seq, start + HOUR + 60_000, 0, &text)
}

#[test]
fn a_factor_added_mid_month_is_assessed_only_from_the_change_on() {
    let dir = tempfile::tempdir().unwrap();
    let mut store = Store::open(&dir.path().join("store.sqlite")).unwrap();
    // Rules archived at the start; NOx added on the 11th at 10:20 (effective from 11:00).
    let change = NOV_1 + 10 * 24 * HOUR + 10 * HOUR + 20 * 60_000;
    let mut records = vec![config_record(1, NOV_1 - HOUR, &["a21026"])];
    records.push(config_record(2, change, &["a21026", "a21002"]));
    // Every hour of 20 days carries SO2 only.
    let hours: Vec<i64> = (0..20 * 24).map(|h| NOV_1 + h * HOUR).collect();
    records.extend(hours.iter().enumerate().map(|(i, start)| so2_hour(3 + i as u64, *start)));
    store.apply(&Interpreted::all(records)).unwrap();

    let range = Range { from_ms: NOV_1, to_ms: NOV_1 + 20 * 24 * HOUR };
    let now = range.to_ms + 30 * 24 * HOUR;
    let evidence = store.site_rate_as_configured(MN, range, now).unwrap().expect("the site has archived rules");
    let effective_from = NOV_1 + 10 * 24 * HOUR + 11 * HOUR;
    let before = (effective_from - NOV_1) / HOUR;
    let after = (range.to_ms - effective_from) / HOUR;
    let report = &evidence.report;
    // SO2 due every hour; NOx due only from the change on, and never received.
    assert_eq!(report.due, u64::try_from(before + 2 * after).unwrap());
    assert_eq!(report.received, u64::try_from(before + after).unwrap());
    assert_eq!(report.missing.len(), usize::try_from(after).unwrap());
    assert!(report.missing.iter().all(|(factor, period)| factor == "a21002" && *period >= effective_from));
    let stretches: Vec<(i64, i64, usize)> =
        evidence.config.iter().map(|(r, _, f)| (r.from_ms, r.to_ms, f.len())).collect();
    assert_eq!(stretches, vec![(NOV_1, effective_from, 1), (effective_from, range.to_ms, 2)]);

    // With the current rules applied to the whole month instead, NOx would be missing throughout.
    let current = config_with(&["a21026", "a21002"]).sites.remove(0);
    let whole = store.site_rate(&current, &hj212_store::rules_for(&current), range, now).unwrap();
    assert_eq!(whole.report.missing.len(), hours.len());
    assert_eq!(hj212_store::rules_for(&current).basis, Basis::Hour);
}

#[test]
fn the_archived_rules_carry_no_password_and_name_every_site() {
    let record = config_records(&config_with(&["a21026"])).remove(0);
    let text = serde_json::to_string(&record).unwrap();
    assert!(!text.contains("secret-password") && !text.contains("password"), "{text}");
    assert!(text.contains("\"alerts\""), "the alert rules that apply are archived: {text}");
    let dir = tempfile::tempdir().unwrap();
    let mut store = Store::open(&dir.path().join("store.sqlite")).unwrap();
    store.apply(&Interpreted::all([config_record(1, NOV_1, &["a21026"])])).unwrap();
    let sites = store.latest_config_sites().unwrap();
    assert_eq!((sites.len(), sites[0].mn.as_str(), sites[0].factors.clone()), (1, MN, vec!["a21026".to_owned()]));
    assert_eq!(store.latest_config_hashes().unwrap().get(MN), Some(&record.hash));
}

#[test]
fn evidence_from_a_stream_fed_store_names_stream_numbers_and_no_archive_hashes() {
    let dir = tempfile::tempdir().unwrap();
    let mut store = Store::open(&dir.path().join("store.sqlite")).unwrap();
    store.claim_source("stream:HJ212").unwrap();
    let records: Vec<Record> = (0..3).map(|h| so2_hour(10 + h, NOV_1 + i64::try_from(h).unwrap() * HOUR)).collect();
    store.apply(&Interpreted::all(records)).unwrap();
    let site = config_with(&["a21026"]).sites.remove(0);
    let range = Range { from_ms: NOV_1, to_ms: NOV_1 + 3 * HOUR };
    let mut evidence = store.site_rate(&site, &hj212_store::rules_for(&site), range, range.to_ms + HOUR).unwrap();
    assert_eq!(evidence.archive_seqs, Some((10, 12)));
    // This node's archive holds other records under those numbers: none is looked up.
    evidence.attach_archive_hashes(&dir.path().join("no-archive")).expect("nothing read");
    assert_eq!(evidence.archive_hashes, None);
    let json = evidence.to_json(MN);
    assert_eq!(json["archive"]["numbered_in"], "stream:HJ212", "{json}");
}
