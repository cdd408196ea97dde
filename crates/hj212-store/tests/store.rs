//! The store materialises accepted data frames from a real archive, once each.

mod common;

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use hj212_archive::{Archive, Kind, NewRecord, NoObserver, Settings, Verdict, flags};
use hj212_follow::RunnerSettings;
use hj212_store::{Store, StoreFollower};
use tokio_util::sync::CancellationToken;

const MINUTE: &[u8] = b"##0264QN=20160801085857534;ST=32;CN=2061;PW=123456;MN=010000A8900016F000169DC0;Flag=7;PNUM=2;PNO=1;CP=&&DataTime=20160801080000;w00000-Cou=63.0,w00000-Min=16.4,w00000-Avg=17.5,w00000-Max=20.1,w00000-Flag=N;w01001-Min=7.1,w01001-Avg=7.5,w01001-Max=7.8,w01001-Flag=N;\xe2\x80\xa6&&0440\r\n";
const REALTIME_2005: &[u8] = b"##0136ST=32;CN=2011;PW=000000;MN=LD130133000015;CP=&&DataTime=20160824003817;011-Rtd=231.0,011-Flag=N;B01-Rtd=36.91;060-Rtd=1.803,060-Flag=N&&1dc0\r\n";

fn received(verdict: Verdict, data: &[u8], marks: u8) -> NewRecord {
    NewRecord {
        kind: Kind::Received,
        verdict,
        flags: marks,
        time_ms: 1_700_000_000_000,
        peer: "127.0.0.1:1".into(),
        data: data.to_vec(),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn feed_applies_accepted_frames_once_and_resumes() {
    let dir = tempfile::tempdir().unwrap();
    let settings = Settings { segment_max_bytes: 1 << 20, ..Settings::in_dir(dir.path().join("archive")) };
    let (archive, thread, _) = Archive::open(settings.clone(), Arc::new(NoObserver)).unwrap();
    archive.append(received(Verdict::Accepted, MINUTE, flags::BACKFILL)).await.unwrap();
    archive.append(received(Verdict::UnknownMn, REALTIME_2005, 0)).await.unwrap();
    archive.append(received(Verdict::Accepted, REALTIME_2005, 0)).await.unwrap();
    // A resend after a restart is accepted again but stored once.
    let last = archive.append(received(Verdict::Accepted, MINUTE, 0)).await.unwrap();

    let db = dir.path().join("store.sqlite");
    let shutdown = CancellationToken::new();
    let status = Arc::new(hj212_archive::FollowerStatus::default());
    let rows = Arc::new(AtomicU64::new(0));
    let counted = rows.clone();
    let follower = StoreFollower::new(Store::open(&db).unwrap(), move |applied| {
        counted.fetch_add(applied.rows as u64, Ordering::SeqCst);
    });
    let runner = RunnerSettings {
        archive_dir: settings.dir.clone(),
        batch: 2,
        tick: Duration::from_secs(1),
        max_backoff: Duration::from_secs(1),
        after: None,
        shared: None,
        nice: 0,
        feed: None,
    };
    let feed =
        hj212_follow::spawn(Box::new(follower), runner, archive.durable(), status.clone(), shutdown.clone()).unwrap();
    while status.position() < last {
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    shutdown.cancel();
    feed.join().unwrap().unwrap();
    assert_eq!(rows.load(Ordering::SeqCst), 5, "two minute readings and three 2005 ones, each once");

    let store = Store::open(&db).unwrap();
    assert_eq!(store.applied_seq().unwrap(), last);
    let minute = store.readings("010000A8900016F000169DC0").unwrap();
    assert_eq!(minute.len(), 2, "w00000 and w01001, once each");
    let flow = &minute[0];
    assert_eq!((flow.cn, flow.data_time.as_str(), flow.factor.as_str()), (2061, "20160801080000", "w00000"));
    assert_eq!(
        (flow.cou.as_deref(), flow.avg.as_deref(), flow.flag.as_deref()),
        (Some("63.0"), Some("17.5"), Some("N"))
    );
    assert_eq!((flow.marks, flow.archive_seq), (flags::BACKFILL, 1));
    // 2016-08-01 08:00 Beijing = 00:00 UTC
    assert_eq!(flow.data_time_ms, 1_470_009_600_000);
    let legacy = store.readings("LD130133000015").unwrap();
    assert_eq!(legacy.iter().map(|r| r.factor.as_str()).collect::<Vec<_>>(), ["011", "060", "B01"]);
    assert_eq!(legacy.iter().find(|r| r.factor == "011").unwrap().archive_seq, 3, "the unknown-MN copy is not stored");
    assert_eq!(store.count().unwrap(), 5);
    assert!(store.changed_copies(1, last).unwrap().is_empty(), "an identical resend is no changed copy");

    // Resuming applies only what is new.
    drop(store);
    let next = archive.append(received(Verdict::Accepted, REALTIME_2005, 0)).await.unwrap();
    let mut store = Store::open(&db).unwrap();
    let mut follower = hj212_archive::Follower::new(&settings.dir, store.applied_seq().unwrap() + 1);
    let records = follower.read(next, 100).unwrap();
    assert_eq!(records.len(), 1);
    let result = store.apply(&hj212_follow::Interpreted::all(records)).unwrap();
    assert_eq!((result.rows, result.duplicates), (0, 3));

    // A later copy with another value of one factor: listed (the time-series sink shows the first).
    let changed = hj212_proto::encode::frame(
        b"QN=20160801090000000;ST=32;CN=2061;PW=123456;MN=010000A8900016F000169DC0;Flag=5;CP=&&DataTime=20160801080000;\
          w00000-Cou=63.0,w00000-Min=16.4,w00000-Avg=99.5,w00000-Max=20.1,w00000-Flag=N;w01001-Min=7.1,w01001-Avg=7.5,w01001-Max=7.8,w01001-Flag=N&&",
    )
    .unwrap();
    let seq = archive.append(received(Verdict::Accepted, &changed, 0)).await.unwrap();
    let records = follower.read(seq, 100).unwrap();
    assert_eq!(store.apply(&hj212_follow::Interpreted::all(records)).unwrap().duplicates, 2);
    assert_eq!(store.changed_copies(next, seq).unwrap(), [(seq, "w00000".to_owned())]);
    assert_eq!(store.readings("010000A8900016F000169DC0").unwrap()[0].avg.as_deref(), Some("17.5"), "first copy kept");
    drop(archive);
    thread.join();
}

fn listing(dir: &std::path::Path) -> Vec<String> {
    let mut names: Vec<String> =
        std::fs::read_dir(dir).unwrap().map(|e| e.unwrap().file_name().to_string_lossy().into_owned()).collect();
    names.sort();
    names
}

fn record(seq: u64, data: &[u8]) -> hj212_archive::Record {
    hj212_archive::Record {
        seq,
        kind: Kind::Received,
        verdict: Verdict::Accepted,
        flags: 0,
        time_ms: 1_700_000_000_000,
        peer: String::new(),
        data: data.to_vec(),
        hash: [0; 32],
    }
}

/// A reader outside the daemon sees what the daemon committed and leaves nothing behind:
/// no `-wal`, `-shm` or journal file, with the daemon running or not.
#[test]
fn read_only_opening_sees_commits_and_creates_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("store.sqlite");
    drop(Store::open(&db).unwrap());
    let closed = listing(dir.path());
    assert_eq!(closed, ["store.sqlite"]);
    let reader = Store::open_read_only(&db).unwrap();
    assert_eq!(reader.count().unwrap(), 0);
    drop(reader);
    assert_eq!(listing(dir.path()), closed, "nothing created beside a closed store");

    // The daemon running: its writes are seen by a reader opened before and after them.
    let mut writer = Store::open(&db).unwrap();
    writer.apply(&[hj212_follow::Interpreted::new(record(1, MINUTE))]).unwrap();
    let open = listing(dir.path());
    let reader = Store::open_read_only(&db).unwrap();
    assert_eq!(reader.count().unwrap(), 2);
    writer.apply(&[hj212_follow::Interpreted::new(record(2, REALTIME_2005))]).unwrap();
    assert_eq!(reader.count().unwrap(), 5);
    assert_eq!(reader.applied_seq().unwrap(), 2);
    assert_eq!(listing(dir.path()), open);
    drop((reader, writer));
    assert_eq!(listing(dir.path()), closed);
    let reader = Store::open_read_only(&db).unwrap();
    assert_eq!(reader.count().unwrap(), 5);
    assert!(reader.applied_seq().is_ok());
    drop(reader);
    assert_eq!(listing(dir.path()), closed);
    assert!(Store::open_read_only(&dir.path().join("absent.sqlite")).is_err());
    assert_eq!(listing(dir.path()), closed);
}

/// An accepted record built by hand (no archive needed: `Store::apply` takes interpreted records).
fn hourly(seq: u64, received_ms: i64, cp: &str) -> hj212_archive::Record {
    let text = format!(
        "QN=2026110110000000{seq};ST=31;CN=2061;PW=123456;MN=MERGE000000000000000001;Flag=5;CP=&&DataTime=20261101100000{cp}&&"
    );
    common::accepted(seq, received_ms, 0, &text)
}

#[test]
fn later_records_of_an_hour_add_their_new_factors_and_list_their_changed_ones() {
    let dir = tempfile::tempdir().unwrap();
    let mut store = Store::open(&dir.path().join("store.sqlite")).unwrap();
    let records = [
        hourly(1, 1_000, ";a21026-Avg=20.0,a21026-Flag=N"),
        // NOx is new for that hour; SO2 the same: NOx is added with this record's receipt.
        hourly(2, 2_000, ";a21026-Avg=20.0,a21026-Flag=N;a21002-Avg=7.0,a21002-Flag=N"),
        // NOx again with another flag: a changed copy of record 2's NOx, not of the row's record 1.
        hourly(3, 3_000, ";a21002-Avg=7.0,a21002-Flag=D"),
    ];
    let applied = store.apply(&hj212_follow::Interpreted::all(records)).unwrap();
    assert_eq!((applied.rows, applied.duplicates), (2, 2));
    let readings = store.readings("MERGE000000000000000001").unwrap();
    let seen: Vec<_> = readings.iter().map(|r| (r.factor.as_str(), r.archive_seq, r.flag.as_deref())).collect();
    assert_eq!(seen, [("a21002", 2, Some("N")), ("a21026", 1, Some("N"))]);
    assert_eq!(readings.iter().map(|r| r.received_ms).collect::<Vec<_>>(), [2_000, 1_000]);
    assert_eq!(store.changed_copies(0, 10).unwrap(), [(3, "a21002".to_owned())]);
    assert_eq!(store.count().unwrap(), 2);
    drop(store);
    let conn = rusqlite::Connection::open(dir.path().join("store.sqlite")).unwrap();
    let first: i64 = conn.query_row("SELECT first_seq FROM changed_copies", [], |row| row.get(0)).unwrap();
    assert_eq!(first, 2, "the copy it differs from is record 2's");
}
