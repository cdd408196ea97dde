//! Automatic gap recovery (issue 14): the sweep finds a site's missing hour in the rate
//! ledger, asks the logger for it (2061 with BeginTime/EndTime), the answer fills the gap
//! once, and a logger that refuses is backed off and counted.

mod common;

use std::time::Duration;

use common::{Client, MN, PW, TestDaemon, frame, site};
use hj212_config::{CrcSetting, RecoveryBasis};
use hj212_proto::time::BeijingTime;
use serde_json::Value;

const REFUSING_MN: &str = "REFUSING0000000000000001";
const H: i64 = 3_600_000;

fn hour_start(ms: i64) -> i64 {
    hj212_compliance::Basis::Hour.period_start(ms)
}

/// Now, or the start of the next hour when less than a minute of this one is left: a test that
/// looks back from the current hour must not see it end (the hour it uploaded nothing for
/// would then be a past one).
async fn now_not_near_an_hour_end() -> i64 {
    let now = hj212_archive::now_ms();
    let next = hour_start(now) + H;
    if next - now < 60_000 {
        tokio::time::sleep(Duration::from_millis(u64::try_from(next - now + 100).unwrap_or(0))).await;
        return hj212_archive::now_ms();
    }
    now
}

fn hourly(mn: &str, qn: &str, start_ms: i64) -> Vec<u8> {
    let time = BeijingTime::from_unix_millis(start_ms).to_seconds_string();
    frame(&format!("QN={qn};ST=31;CN=2061;PW={PW};MN={mn};Flag=5;CP=&&DataTime={time};a21026-Avg=35.2,a21026-Flag=N&&"))
}

fn answer(mn: &str, qn: &str, cn: u16, cp: &str) -> Vec<u8> {
    frame(&format!("QN={qn};ST=91;CN={cn};PW={PW};MN={mn};Flag=4;CP=&&{cp}&&"))
}

/// Sends the hourly records of the last three hours but `missing`.
async fn upload_all_but(client: &mut Client, mn: &str, now_ms: i64, missing: i64) {
    for (i, start) in (1..=3).map(|back| hour_start(now_ms) - back * H).enumerate() {
        if start != missing {
            client.send(&hourly(mn, &format!("2026113010000000{i}"), start)).await;
            assert_eq!(client.reply().await.cn, 9014);
        }
    }
}

fn recovery_of(daemon: &TestDaemon, mn: &str) -> Value {
    let (_, body) = daemon.http("/api/v1/sites");
    let sites: Value = serde_json::from_str(&body).unwrap();
    sites.as_array().unwrap().iter().find(|s| s["mn"] == mn).unwrap()["recovery"].clone()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_missing_hour_is_fetched_from_the_logger_and_a_refusing_logger_is_backed_off() {
    let daemon = TestDaemon::start_with(|config| {
        config.sites.push(site(REFUSING_MN, PW, CrcSetting::Hj212));
        for site in &mut config.sites {
            site.factors = vec!["a21026".into()];
        }
        config.recovery.interval_secs = 1;
        config.recovery.lookback_hours = 3;
        config.recovery.grace_minutes = 0;
        config.recovery.bases = vec![RecoveryBasis::Hour];
    })
    .await;
    let now = now_not_near_an_hour_end().await;
    let missing = hour_start(now) - 2 * H;
    let mut logger = daemon.client().await;
    upload_all_but(&mut logger, MN, now, missing).await;
    let mut refusing = daemon.client().await;
    upload_all_but(&mut refusing, REFUSING_MN, now, missing).await;

    let request = logger.reply_within(Duration::from_secs(10)).await.expect("a history request from the sweep");
    let hour = BeijingTime::from_unix_millis(missing).to_seconds_string();
    assert_eq!((request.cn, request.cp.as_str()), (2061, &*format!("BeginTime={hour};EndTime={hour}")));
    let qn = request.qn.unwrap();
    logger.send(&answer(MN, &qn, 9011, "QnRtn=1")).await;
    logger.send(&hourly(MN, &qn, missing)).await;
    assert_eq!(logger.reply().await.cn, 9014);
    logger.send(&answer(MN, &qn, 9012, "ExeRtn=1")).await;

    let refused = refusing.reply_within(Duration::from_secs(10)).await.expect("a request to the other site");
    refusing.send(&answer(REFUSING_MN, refused.qn.as_deref().unwrap(), 9011, "QnRtn=2")).await;

    let mut views = (Value::Null, Value::Null);
    for _ in 0..100 {
        views = (recovery_of(&daemon, MN), recovery_of(&daemon, REFUSING_MN));
        if views.0["records"] == 1 && views.0["missing_periods"] == 0 && views.1["refusals"] == 1 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let (recovered, backed_off) = views;
    assert_eq!(
        (recovered["records"].as_u64(), recovered["missing_periods"].as_u64()),
        (Some(1), Some(0)),
        "{recovered}"
    );
    assert_eq!(recovered["last_outcome"], "completed");
    assert_eq!(backed_off["refusals"].as_u64(), Some(1), "{backed_off}");
    assert!(backed_off["backoff_until_ms"].as_i64().unwrap() > now, "{backed_off}");
    assert!(refusing.reply_within(Duration::from_secs(2)).await.is_none(), "a refusing site is left alone");
    let metrics = daemon.http("/metrics").1;
    assert_eq!(common::metric(&metrics, r#"hj212_recovery_requests_total{outcome="refused"}"#), 1);

    let dir = daemon.stop().await;
    let stored = common::stored(dir.path(), MN);
    let recovered_rows = stored.iter().filter(|r| r.cn == 2061 && r.data_time_ms == missing).count();
    assert_eq!(recovered_rows, 1, "the recovered hour is stored once");
}

/// The issue's scenario at test size: simulated stations whose links silently lose 5 % of their
/// hourly records, two of them refusing history requests. With recovery every gap of the
/// others is filled, each record counted once; what is left is explained by the refusals.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn simulated_lossy_links_are_recovered_except_from_refusing_loggers() {
    use hj212_sim::{Faults, Options, Simulation};
    let options = Options {
        stations: 20,
        seed: 14,
        rtd_interval_secs: 3600,
        min_interval_mins: 30,
        duration_ms: 48 * H,
        accel: 0.0,
        linger: Duration::from_secs(30),
        faults: Faults { drop_percent: 5.0, refuse_history_percent: 10.0, ..Faults::default() },
        ..Options::default()
    };
    // The simulated period ends now; the range checked below is of that period, whenever the run ends.
    let started = hj212_archive::now_ms();
    let sim = Simulation::at(options, started).unwrap();
    let sites = sim.sites();
    let daemon = TestDaemon::start_with(|config| {
        config.sites = sites.clone();
        config.recovery.interval_secs = 1;
        config.recovery.lookback_hours = 72;
        config.recovery.max_requests_per_site_hour = 1000;
    })
    .await;
    let summary = hj212_sim::run(&sim, daemon.running.hj212_addr).await;
    let dir = daemon.stop().await;
    assert!(summary.totals.dropped_uploads > 10, "the links lost records: {}", summary.totals.dropped_uploads);

    let store = hj212_store::Store::open_read_only(&dir.path().join("store.sqlite")).unwrap();
    let now = hj212_archive::now_ms();
    // Whole hours of the simulated period, leaving out its first and last hour: the last may not
    // be asked for (a period is asked for once the logger has sent something newer), and taken
    // from `now` instead of `started` it would be in the range when the run crosses an hour.
    let range = hj212_compliance::Range { from_ms: hour_start(started) - 46 * H, to_ms: hour_start(started) - H };
    for (site, station) in sites.iter().zip(&summary.sites) {
        let rules = hj212_store::rules_for(site);
        let report = store.site_rate(site, &rules, range, now).unwrap().report;
        assert!(report.received <= report.due, "{}: nothing counted twice", site.mn);
        let missing_hours = report.missing.len() / site.factors.len();
        if station.host_answers == "refuses-history" {
            let dropped = station.counters.dropped_uploads;
            assert!(missing_hours as u64 <= dropped, "{}: {missing_hours} hours missing, {dropped} dropped", site.mn);
        } else {
            assert_eq!(report.missing, vec![], "{}: every lost hour recovered", site.mn);
        }
    }
}
