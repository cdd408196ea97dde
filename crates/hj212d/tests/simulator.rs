//! The station simulator (hj212-sim) against the daemon on 127.0.0.1: one simulated day of five
//! stations with faults, then what the simulator counts must be what the daemon archived and stored.

mod common;

use std::collections::BTreeMap;
use std::time::Duration;

use common::{TestDaemon, archived, stored};
use hj212_sim::{Faults, Options, Outage, ProfileChoice, SimTime, Simulation};

const HOUR_MS: i64 = 3_600_000;
const DATA_CNS: [u16; 4] = [2011, 2051, 2061, 2031];

/// A header field of an archived frame (`MN`, `CN`), read from its text.
fn field<'a>(frame: &'a str, key: &str) -> Option<&'a str> {
    let header = &frame[..frame.find("CP=&&")?];
    header.split(';').find_map(|f| f.strip_prefix(key)?.strip_prefix('='))
}

fn scenario() -> Options {
    let outage = Outage { site: 1, from: SimTime::AfterStart(6 * HOUR_MS), to: SimTime::AfterStart(9 * HOUR_MS) };
    Options {
        stations: 5,
        profile: ProfileChoice::Mixed,
        seed: 212,
        rtd_interval_secs: 120,
        duration_ms: 24 * HOUR_MS,
        accel: 0.0,
        ack_timeout: Duration::from_millis(1500),
        window: 4,
        faults: Faults {
            gap_percent: 2.0,
            bad_crc_percent: 2.0,
            outages: vec![outage],
            crc_dialect_sites: 1,
            v2005_sites: 1,
            flag_percent: 5.0,
            split_percent: 5.0,
            exceed_percent: 1.0,
            clock_drift_secs: 20,
            clock_drift_sites: Some(3),
            ..Faults::default()
        },
        ..Options::default()
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn simulated_day_with_faults_matches_the_archive_and_the_store() {
    let sim = Simulation::new(scenario()).unwrap();
    let sites = sim.sites();
    let daemon = TestDaemon::start_with(|config| {
        config.sites = sites;
        config.limits.max_bad_frames = 1000;
    })
    .await;
    let summary = hj212_sim::run(&sim, daemon.running.hj212_addr).await;
    let dir = daemon.stop().await;

    // (MN, verdict, CN) → archived frames.
    let mut archive: BTreeMap<(String, String, u16), u64> = BTreeMap::new();
    for (verdict, _, frame) in archived(dir.path()) {
        let mn = field(&frame, "MN").unwrap_or_default().to_owned();
        let cn = field(&frame, "CN").and_then(|cn| cn.parse().ok()).unwrap_or_default();
        *archive.entry((mn, verdict, cn)).or_default() += 1;
    }
    let count = |mn: &str, verdict: &str, cns: &[u16]| -> u64 {
        cns.iter().map(|cn| archive.get(&(mn.to_owned(), verdict.to_owned(), *cn)).copied().unwrap_or(0)).sum()
    };

    for site in &summary.sites {
        let (mn, c) = (site.mn.as_str(), &site.counters);
        assert_eq!(DATA_CNS.map(|cn| c.records[&cn]), [720, 144, 24, 1], "{mn}: records due in a day");
        assert_eq!((c.failed, c.unsent), (0, 0), "{mn}: every frame answered or not expecting an answer");
        for cn in DATA_CNS {
            let sent = c.acked_frames.get(&cn).copied().unwrap_or(0) + c.unacked_frames.get(&cn).copied().unwrap_or(0);
            assert_eq!(count(mn, "accepted", &[cn]), sent, "{mn} CN {cn}: accepted frames = acked + sent without ack");
        }
        assert_eq!(count(mn, "bad_crc", &DATA_CNS), c.bad_crc_sent, "{mn}: bad-CRC frames archived");
        assert!(count(mn, "duplicate", &DATA_CNS) <= c.resent, "{mn}: duplicates only come from resends");
        let rows = stored(dir.path(), mn);
        assert_eq!(rows.len() as u64, c.readings, "{mn}: store rows = factors of the delivered frames");
        let flagged = rows.iter().filter(|r| r.flag.as_deref().is_some_and(|f| f != "N")).count() as u64;
        assert!(flagged > 0 && flagged <= c.flagged_values, "{mn}: {flagged} flagged rows");
    }

    let [modbus, outage, _, _, v2005] = &summary.sites[..] else { panic!("five stations") };
    assert_eq!((modbus.crc, modbus.counters.acked > 800), ("modbus", true));
    assert!(outage.counters.outage_lost >= 80 && outage.counters.backfilled >= 15, "{:?}", outage.counters);
    let history = [2051, 2061];
    assert_eq!(count(&outage.mn, "accepted", &history), stored_records(&dir, &outage.mn, &history), "backfill stored");
    assert_eq!((v2005.version, v2005.counters.acked), ("2005", 0));
    assert!(v2005.counters.unacked_frames[&2011] > 600);
    let totals = &summary.totals;
    assert!(totals.gaps > 0 && totals.bad_crc_sent > 0 && totals.split_records > 0, "{totals:?}");
    assert!(totals.exceedances > 0 && totals.resent >= totals.bad_crc_sent - totals.bad_crc_lost, "{totals:?}");
}

/// Distinct (CN, DataTime) records of a site in the store.
fn stored_records(dir: &tempfile::TempDir, mn: &str, cns: &[u16]) -> u64 {
    let rows = stored(dir.path(), mn);
    let keys: std::collections::BTreeSet<(u16, String)> =
        rows.into_iter().filter(|r| cns.contains(&r.cn)).map(|r| (r.cn, r.data_time)).collect();
    keys.len() as u64
}
