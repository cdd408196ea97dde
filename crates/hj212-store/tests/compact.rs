//! The compact readings (schema versions 5 and 7): a version-4 store migrates with the same
//! answers, and the readings' retention deletes old readings only, leaving the ledger's answers.

mod common;

use std::path::Path;

use hj212_archive::{Record, flags};
use hj212_compliance::{Basis, Range};
use hj212_follow::Interpreted;
use hj212_store::{SCHEMA, Store, rules_for, schema::Schema};

const MN: &str = "COMPACT00000000000000001";
const HOUR: i64 = 3_600_000;
const DAY: i64 = 86_400_000;
/// 2026-11-01T00:00:00+08:00
const START: i64 = 1_793_462_400_000;
/// After every period here ended and every cutoff passed.
const LATER: i64 = START + 60 * DAY;

fn beijing(ms: i64) -> String {
    hj212_proto::time::BeijingTime::from_unix_millis(ms).to_seconds_string()
}

fn record(seq: u64, cn: u16, data_time: i64, received: i64, marks: u8, cp: &str) -> Record {
    let text = format!(
        "QN=20261101000000001;ST=31;CN={cn};PW=123456;MN={MN};Flag=5;CP=&&DataTime={}{cp}&&",
        beijing(data_time)
    );
    common::accepted(seq, received, marks, &text)
}

/// Five days of a gas site: hourly records (one hour flagged D, one missing, one received after
/// the cutoff), real-time records with converted values, a minute record with the rare fields,
/// a backfilled daily record, a resend of an hour with another value (a changed copy) and one
/// with a factor the hour lacked.
fn records() -> Vec<Record> {
    let mut out = Vec::new();
    let mut seq = 0;
    let mut next = || {
        seq += 1;
        seq
    };
    for hour in 0..5 * 24 {
        let t = START + hour * HOUR;
        let rt = format!(
            ";a21026-Rtd=2{}.5,a21026-ZsRtd=3{}.1,a21026-Flag=N;a01012-Rtd=120.{},a01012-Flag=N",
            hour % 10,
            hour % 7,
            hour % 3
        );
        out.push(record(next(), 2011, t + 1_800_000, t + 1_801_000, 0, &rt));
        if hour == 30 {
            continue;
        }
        let flag = if hour == 7 { "D" } else { "N" };
        let received = if hour == 50 { t + 12 * DAY } else { t + HOUR + 65_000 };
        let cp = format!(
            ";a21026-Cou=0.{hour},a21026-Min=10.0,a21026-Avg=2{}.0,a21026-Max=30.0,a21026-Flag={flag};a01012-Avg=121.0,a01012-Flag=N",
            hour % 10
        );
        out.push(record(next(), 2061, t, received, 0, &cp));
    }
    let minute = ";a21026-Avg=22.0,a21026-Flag=N,a21026-EFlag=A01,a21026-SampleTime=20261101080000,a21026-Xyz=7;a01012-Avg=120.0";
    out.push(record(next(), 2051, START, START + 700_000, 0, minute));
    out.push(record(
        next(),
        2031,
        START,
        START + 2 * DAY,
        flags::BACKFILL,
        ";a21026-Avg=24.0,a21026-ZsAvg=26.0,a21026-Flag=N",
    ));
    // 09:00 of the first day again, SO2 changed: the first copy stays, the resend is a changed copy.
    out.push(record(
        next(),
        2061,
        START + 9 * HOUR,
        START + 11 * HOUR,
        flags::RESENT,
        ";a21026-Avg=99.0,a21026-Flag=N",
    ));
    // 10:00 of the first day again with a factor the first copy lacked: added to that hour with
    // its own record and receipt.
    out.push(record(
        next(),
        2061,
        START + 10 * HOUR,
        START + 12 * HOUR,
        flags::RESENT,
        ";a34013-Avg=5.0,a34013-Flag=N",
    ));
    out
}

fn site() -> hj212_config::Site {
    hj212_config::Site { factors: vec!["a21026".into(), "a01012".into()], ..hj212_config::Site::new(MN, "1") }
}

/// Everything the readers answer for the site, as text.
fn answers(store: &Store, days: Range) -> Vec<String> {
    let site = site();
    let rules = rules_for(&site);
    let mut out = vec![format!("{:?}", store.readings(MN).unwrap())];
    out.push(format!("{:?}", store.changed_copies(0, u64::MAX).unwrap()));
    out.push(format!("{:?}", store.site_rate(&site, &rules, days, LATER).unwrap()));
    out.push(format!("{:?}", store.site_summary(&site, &rules, days, LATER).unwrap()));
    let mut daily = rules.clone();
    daily.basis = Basis::Day;
    out.push(format!("{:?}", store.site_rate(&site, &daily, days, LATER).unwrap()));
    for cn in [2011, 2051, 2061, 2031] {
        out.push(format!("{:?}", store.period_values(MN, cn, days).unwrap()));
        out.push(format!("{:?}", store.records_in(MN, cn, days.from_ms, days.to_ms, 1000).unwrap()));
    }
    out.push(format!("{:?}", store.heard_slots(MN, days, 600_000).unwrap()));
    out.push(format!("{:?}", store.newest_data_time(MN).unwrap()));
    out
}

fn applied(path: &Path) -> Store {
    let mut store = Store::open(path).unwrap();
    store.apply(&Interpreted::all(records())).unwrap();
    store
}

/// The readings table with its keys as text, row by row, and how many bytes its factors take
/// (their ids may differ between two files; `answers` compares what they decode to).
fn stored_rows(path: &Path) -> Vec<String> {
    let conn = rusqlite::Connection::open(path).unwrap();
    let mut query = conn
        .prepare(
            "SELECT s.mn, s.cn, r.data_time_ms, r.archive_seq, r.received, length(r.factors)
             FROM readings r JOIN series s ON s.id = r.series WHERE s.mn = ?1 ORDER BY 1, 2, 3",
        )
        .unwrap();
    let rows = query
        .query_map([MN], |row| {
            Ok(format!(
                "{:?}",
                (
                    row.get::<_, String>(0)?,
                    row.get::<_, i64>(1)?,
                    row.get::<_, i64>(2)?,
                    row.get::<_, i64>(3)?,
                    row.get::<_, i64>(4)?,
                    row.get::<_, i64>(5)?
                )
            ))
        })
        .unwrap();
    rows.collect::<Result<_, _>>().unwrap()
}

/// A version-4 store holding what `fresh` holds: the first release's fixture migrated to
/// version 4, then the readings, changed copies and ledger written in the version-4 layout.
fn version_4_copy_of(fresh: &Path, dir: &Path) -> std::path::PathBuf {
    let path = dir.join("store-v4.sqlite");
    std::fs::copy(Path::new(env!("CARGO_MANIFEST_DIR")).join("../../fixtures/sqlite/store-v1.sqlite"), &path).unwrap();
    let version_4 = Schema { migrations: &SCHEMA.migrations[..3], ..SCHEMA };
    let mut conn = rusqlite::Connection::open(&path).unwrap();
    version_4.prepare(&mut conn, &path).unwrap();
    assert_eq!(conn.pragma_query_value(None, "user_version", |row| row.get::<_, i64>(0)).unwrap(), 4);
    let store = Store::open(fresh).unwrap();
    let tx = conn.transaction().unwrap();
    for r in store.readings(MN).unwrap() {
        tx.execute(
            "INSERT INTO readings (mn, cn, data_time, data_time_ms, factor, rtd, min, avg, max, cou, zs_rtd, zs_min,
             zs_avg, zs_max, flag, eflag, sample_time, other, marks, received_ms, archive_seq, st)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14, ?15, ?16, ?17, ?18, ?19, ?20, ?21, '31')",
            rusqlite::params![
                r.mn, r.cn, r.data_time, r.data_time_ms, r.factor, r.rtd, r.min, r.avg, r.max, r.cou, r.zs_rtd,
                r.zs_min, r.zs_avg, r.zs_max, r.flag, r.eflag, r.sample_time, r.other, r.marks, r.received_ms,
                i64::try_from(r.archive_seq).unwrap()
            ],
        )
        .unwrap();
    }
    for (seq, factor) in store.changed_copies(0, u64::MAX).unwrap() {
        let first = store
            .readings(MN)
            .unwrap()
            .into_iter()
            .find(|r| r.factor == factor && r.data_time_ms == START + 9 * 3_600_000 && r.cn == 2061)
            .unwrap();
        tx.execute(
            "INSERT INTO changed_copies (archive_seq, factor, first_seq) VALUES (?1, ?2, ?3)",
            rusqlite::params![i64::try_from(seq).unwrap(), factor, i64::try_from(first.archive_seq).unwrap()],
        )
        .unwrap();
    }
    tx.execute("ATTACH DATABASE ?1 AS fresh", [fresh.to_str().unwrap()]).unwrap();
    tx.execute_batch(
        "INSERT INTO ledger_periods SELECT s.mn, s.cn, f.code, l.period_ms, l.flag, l.received_ms
             FROM fresh.ledger_periods l JOIN fresh.series s ON s.id = l.series JOIN fresh.factors f ON f.id = l.factor;
         INSERT INTO ledger_days SELECT s.mn, s.cn, f.code, l.day_ms, l.late_days, l.received, l.valid
             FROM fresh.ledger_days l JOIN fresh.series s ON s.id = l.series JOIN fresh.factors f ON f.id = l.factor;",
    )
    .unwrap();
    tx.commit().unwrap();
    conn.execute("DETACH DATABASE fresh", []).unwrap();
    path
}

#[test]
fn a_version_4_store_with_rows_migrates_with_the_same_answers() {
    let dir = tempfile::tempdir().unwrap();
    let fresh = dir.path().join("fresh.sqlite");
    let days = Range { from_ms: START, to_ms: START + 5 * DAY };
    let expected = answers(&applied(&fresh), days);
    // The rare fields are kept as sent.
    let minute = Store::open(&fresh)
        .unwrap()
        .readings(MN)
        .unwrap()
        .into_iter()
        .find(|r| r.cn == 2051 && r.factor == "a21026")
        .unwrap();
    assert_eq!(
        (minute.eflag.as_deref(), minute.sample_time.as_deref(), minute.other.as_deref()),
        (Some("A01"), Some("20261101080000"), Some("Xyz=7"))
    );
    let daily = Store::open(&fresh).unwrap().readings(MN).unwrap().into_iter().find(|r| r.cn == 2031).unwrap();
    assert_eq!(
        (daily.marks, daily.zs_avg.as_deref(), daily.data_time.as_str()),
        (flags::BACKFILL, Some("26.0"), "20261101000000")
    );

    // A factor a later record added keeps that record and its receipt; the hour's others keep theirs.
    let ten = |factor: &str| {
        let readings = Store::open(&fresh).unwrap().readings(MN).unwrap();
        let r =
            readings.into_iter().find(|r| r.cn == 2061 && r.data_time_ms == START + 10 * HOUR && r.factor == factor);
        r.map(|r| (r.archive_seq, r.received_ms)).unwrap()
    };
    let last = u64::try_from(records().len()).unwrap();
    assert_eq!(ten("a34013"), (last, START + 12 * HOUR));
    assert_eq!(ten("a21026"), (22, START + 11 * HOUR + 65_000));

    let old = version_4_copy_of(&fresh, dir.path());
    let store = Store::open(&old).unwrap();
    assert_eq!(answers(&store, days), expected);
    assert_eq!(store.count().unwrap(), Store::open(&fresh).unwrap().count().unwrap() + 5, "and the fixture's 5 rows");
    drop(store);
    assert_eq!(stored_rows(&old), stored_rows(&fresh), "a migrated row is stored as a new one is");
}

#[test]
fn retention_deletes_old_readings_in_bounded_steps_and_keeps_the_ledger() {
    let dir = tempfile::tempdir().unwrap();
    let mut store = applied(&dir.path().join("store.sqlite"));
    let site = site();
    let rules = rules_for(&site);
    let old_days = Range { from_ms: START, to_ms: START + 3 * DAY };
    let kept = Range { from_ms: START + 3 * DAY, to_ms: START + 5 * DAY };
    let summary_before = store.site_summary(&site, &rules, old_days, LATER).unwrap().unwrap();
    let kept_before = store.site_rate(&site, &rules, kept, LATER).unwrap();
    let kept_readings: Vec<_> =
        store.readings(MN).unwrap().into_iter().filter(|r| r.data_time_ms >= kept.from_ms).collect();
    let total = store.count().unwrap();
    assert!(!store.changed_copies(0, u64::MAX).unwrap().is_empty());

    // Ten rows (records) a call at most, each with at most three factors, until nothing old is left.
    let mut calls = 0;
    let mut deleted = 0;
    loop {
        let pruned = store.prune_readings(kept.from_ms, 10, LATER).unwrap();
        assert!(pruned.readings <= 10 * 3, "{pruned:?}");
        deleted += pruned.readings;
        calls += 1;
        if pruned.readings == 0 && pruned.changed_copies == 0 && calls > 1 {
            break;
        }
        assert!(calls < 1000);
    }
    assert_eq!(store.count().unwrap(), total - deleted);
    assert_eq!(store.readings(MN).unwrap(), kept_readings, "only the old readings went");
    assert!(store.changed_copies(0, u64::MAX).unwrap().is_empty(), "with their changed copies");
    // The ledger still answers for the deleted days, and the kept days answer as before.
    assert_eq!(store.site_summary(&site, &rules, old_days, LATER).unwrap().unwrap(), summary_before);
    assert_eq!(store.site_rate(&site, &rules, kept, LATER).unwrap(), kept_before);
    // What would rest on deleted readings is refused, saying where the figures are.
    let error = store.site_rate(&site, &rules, old_days, LATER).unwrap_err();
    assert!(matches!(error, hj212_store::StoreError::ReadingsDeleted { before_ms } if before_ms == kept.from_ms));
    for part in ["2026-11-04T00:00:00.000+08:00", "readings_retention_days", "GET /api/v1/rates", "rebuild-ledger"] {
        assert!(error.to_string().contains(part), "{part:?} in {error}");
    }
    assert!(store.period_values(MN, 2061, old_days).is_err());
    // A pass that found nothing waits an hour.
    let later = store.prune_readings(LATER + DAY, 10, LATER + 1).unwrap();
    assert_eq!(later.readings, 0, "nothing swept within the hour");
    assert!(store.prune_readings(LATER + DAY, 1000, LATER + HOUR).unwrap().readings > 0);
}

#[test]
fn the_store_follower_deletes_old_readings_on_its_tick_when_told_to() {
    use hj212_follow::Follower as _;
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("store.sqlite");
    let total = applied(&path).count().unwrap();
    let now = START + 5 * DAY;
    let mut keeping = hj212_store::StoreFollower::new(Store::open(&path).unwrap(), |_| {});
    keeping.tick(now, 0).unwrap();
    assert_eq!(Store::open(&path).unwrap().count().unwrap(), total, "no retention: nothing deleted");
    let deleted = std::sync::Arc::new(std::sync::atomic::AtomicU64::new(0));
    let counted = deleted.clone();
    let mut follower = hj212_store::StoreFollower::new(Store::open(&path).unwrap(), |_| {}).with_readings_retention(
        2,
        move |pruned| {
            counted.fetch_add(pruned.readings, std::sync::atomic::Ordering::SeqCst);
        },
    );
    follower.tick(now, 0).unwrap();
    let left = Store::open(&path).unwrap().readings(MN).unwrap();
    assert!(left.len() < usize::try_from(total).unwrap());
    assert!(left.iter().all(|r| r.data_time_ms >= now - 2 * DAY), "only DataTimes of the last 2 days are left");
    assert_eq!(deleted.load(std::sync::atomic::Ordering::SeqCst), total - Store::open(&path).unwrap().count().unwrap());
}
