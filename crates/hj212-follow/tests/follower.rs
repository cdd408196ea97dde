//! A new reader of the archive is one type: here a follower that writes every sequence number
//! it is fed to a file (its results and its position in one write), run by the runtime over a
//! real archive, across a restart: it sees every durable record exactly once, in order.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use hj212_archive::{Archive, FollowerStatus, Kind, NewRecord, NoObserver, Settings, Verdict};
use hj212_follow::{FollowError, Follower, Interpreted, Meaning, RunnerSettings};
use tokio_util::sync::CancellationToken;

/// The fifth follower: the sequence numbers it saw, one per line, appended and fsynced.
struct Ledger {
    path: PathBuf,
}

impl Follower for Ledger {
    fn name(&self) -> &'static str {
        "ledger"
    }

    fn position(&mut self) -> Result<u64, FollowError> {
        let text = std::fs::read_to_string(&self.path).unwrap_or_default();
        Ok(text.lines().last().map_or(Ok(0), str::parse)?)
    }

    fn apply(&mut self, records: &[Interpreted]) -> Result<u64, FollowError> {
        let mut file = std::fs::OpenOptions::new().create(true).append(true).open(&self.path)?;
        for archived in records {
            assert!(matches!(archived.meaning, Meaning::Data(_) | Meaning::Event(_)), "{:?}", archived.meaning);
            writeln!(file, "{}", archived.record.seq)?;
        }
        file.sync_data()?;
        self.position()
    }
}

fn settings(dir: &Path) -> Settings {
    Settings::in_dir(dir.join("archive"))
}

fn frame(i: u64) -> NewRecord {
    let segment = format!(
        "QN=20260101120000{i:03};ST=22;CN=2011;PW=1;MN=M1;Flag=4;CP=&&DataTime=20260101120000;a21026-Rtd={i}&&"
    );
    NewRecord {
        kind: Kind::Received,
        verdict: Verdict::Accepted,
        flags: 0,
        time_ms: 1,
        peer: "p".into(),
        data: hj212_proto::encode::frame(segment.as_bytes()).unwrap(),
    }
}

/// Appends `range`, runs the ledger until it has applied everything durable, stops it.
async fn run(dir: &Path, range: std::ops::Range<u64>) {
    run_follower(dir, range, Box::new(Ledger { path: dir.join("ledger") })).await;
}

/// Appends `range`, runs `follower` until it has applied everything durable, stops it.
async fn run_follower(dir: &Path, range: std::ops::Range<u64>, follower: Box<dyn Follower>) {
    let (archive, writer, _) = Archive::open(settings(dir), Arc::new(NoObserver)).unwrap();
    let status = Arc::new(FollowerStatus::default());
    let shutdown = CancellationToken::new();
    let runner = RunnerSettings {
        archive_dir: dir.join("archive"),
        batch: 7,
        tick: Duration::from_millis(100),
        max_backoff: Duration::from_secs(1),
        after: None,
        shared: None,
        nice: 0,
        feed: None,
    };
    let thread = hj212_follow::spawn(follower, runner, archive.durable(), status.clone(), shutdown.clone()).unwrap();
    let mut last = 0;
    for i in range {
        last = archive.append(frame(i)).await.unwrap();
    }
    while status.position() < last {
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    shutdown.cancel();
    thread.join().unwrap().unwrap();
    drop(archive);
    writer.join();
}

#[tokio::test]
async fn a_new_follower_sees_every_durable_record_once_across_a_restart() {
    let dir = tempfile::tempdir().unwrap();
    run(dir.path(), 0..100).await;
    run(dir.path(), 100..250).await;
    let seen: Vec<u64> =
        std::fs::read_to_string(dir.path().join("ledger")).unwrap().lines().map(|l| l.parse().unwrap()).collect();
    assert_eq!(seen, (1..=250).collect::<Vec<u64>>());
}

/// The ledger, failing the applies numbered in `failing` (counted from 1) before writing anything.
struct Flaky {
    ledger: Ledger,
    applies: usize,
    failing: &'static [usize],
}

impl Follower for Flaky {
    fn name(&self) -> &'static str {
        "flaky"
    }

    fn position(&mut self) -> Result<u64, FollowError> {
        self.ledger.position()
    }

    fn apply(&mut self, records: &[Interpreted]) -> Result<u64, FollowError> {
        self.applies += 1;
        if self.failing.contains(&self.applies) {
            return Err("the disk said no".into());
        }
        self.ledger.apply(records)
    }
}

#[tokio::test]
async fn after_a_failed_batch_the_follower_is_fed_again_from_its_position() {
    let dir = tempfile::tempdir().unwrap();
    let ledger = Ledger { path: dir.path().join("ledger") };
    run_follower(dir.path(), 0..60, Box::new(Flaky { ledger, applies: 0, failing: &[2, 4] })).await;
    let seen: Vec<u64> =
        std::fs::read_to_string(dir.path().join("ledger")).unwrap().lines().map(|l| l.parse().unwrap()).collect();
    assert_eq!(seen, (1..=60).collect::<Vec<u64>>());
}

/// Records where each batch's first record lay in memory, by sequence number.
type Seen = Arc<std::sync::Mutex<Vec<(u64, usize)>>>;

/// A follower that notes where each batch it is fed lies in memory.
struct Noting {
    name: &'static str,
    seen: Seen,
    position: u64,
}

impl Follower for Noting {
    fn name(&self) -> &'static str {
        self.name
    }

    fn position(&mut self) -> Result<u64, FollowError> {
        Ok(self.position)
    }

    fn apply(&mut self, records: &[Interpreted]) -> Result<u64, FollowError> {
        for archived in records {
            assert_eq!(archived.record.seq, self.position + 1, "in order, each once");
            self.position = archived.record.seq;
        }
        self.seen.lock().unwrap().push((records[0].record.seq, std::ptr::from_ref(&records[0]) as usize));
        Ok(self.position)
    }
}

#[tokio::test]
async fn followers_at_the_same_position_share_one_read_of_each_batch() {
    let dir = tempfile::tempdir().unwrap();
    let (archive, writer, _) = Archive::open(settings(dir.path()), Arc::new(NoObserver)).unwrap();
    let shared = Arc::new(hj212_follow::SharedTail::new(64));
    let shutdown = CancellationToken::new();
    let mut running = Vec::new();
    for name in ["first", "second"] {
        let runner = RunnerSettings {
            archive_dir: dir.path().join("archive"),
            batch: 16,
            tick: Duration::from_secs(60),
            max_backoff: Duration::from_secs(1),
            after: None,
            shared: Some(shared.clone()),
            nice: 0,
            feed: None,
        };
        let (seen, status) = (Seen::default(), Arc::new(FollowerStatus::default()));
        let follower = Box::new(Noting { name, seen: seen.clone(), position: 0 });
        let thread =
            hj212_follow::spawn(follower, runner, archive.durable(), status.clone(), shutdown.clone()).unwrap();
        running.push((thread, status, seen));
    }
    let mut last = 0;
    for i in 0..400 {
        last = archive.append(frame(i)).await.unwrap();
    }
    while running.iter().any(|(_, status, _)| status.position() < last) {
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    shutdown.cancel();
    let mut batches = Vec::new();
    for (thread, status, seen) in running {
        thread.join().unwrap().unwrap();
        assert_eq!(status.position(), last, "every record applied");
        batches.push(std::mem::take(&mut *seen.lock().unwrap()));
    }
    let shared_batches = batches[0].iter().filter(|batch| batches[1].contains(batch)).count();
    assert!(shared_batches > 0, "none of {} batches was read once for both followers", batches[0].len());
    drop(archive);
    writer.join();
}

/// A follower that takes 20 ms per batch of one record.
struct Slow {
    position: u64,
}

impl Follower for Slow {
    fn name(&self) -> &'static str {
        "slow"
    }

    fn position(&mut self) -> Result<u64, FollowError> {
        Ok(self.position)
    }

    fn apply(&mut self, records: &[Interpreted]) -> Result<u64, FollowError> {
        std::thread::sleep(Duration::from_millis(20));
        self.position = records.last().map_or(self.position, |r| r.record.seq);
        Ok(self.position)
    }
}

#[tokio::test]
async fn a_follower_far_behind_stops_within_the_catch_up_bound_at_its_position() {
    let dir = tempfile::tempdir().unwrap();
    let (archive, writer, _) = Archive::open(settings(dir.path()), Arc::new(NoObserver)).unwrap();
    let mut pending = Vec::new();
    for i in 0..2000 {
        pending.push(archive.submit(frame(i)).await.unwrap());
    }
    for p in pending {
        p.durable().await.unwrap();
    }
    let status = Arc::new(FollowerStatus::default());
    let shutdown = CancellationToken::new();
    let runner = RunnerSettings {
        archive_dir: dir.path().join("archive"),
        batch: 1,
        tick: Duration::from_secs(60),
        max_backoff: Duration::from_secs(1),
        after: None,
        shared: None,
        nice: 0,
        feed: None,
    };
    let thread = hj212_follow::spawn(
        Box::new(Slow { position: 0 }),
        runner,
        archive.durable(),
        status.clone(),
        shutdown.clone(),
    )
    .unwrap();
    tokio::time::sleep(Duration::from_millis(200)).await;
    let stopping = std::time::Instant::now();
    shutdown.cancel();
    // 2,000 batches of 20 ms would take 40 s.
    tokio::task::spawn_blocking(move || thread.join().unwrap().unwrap()).await.unwrap();
    let took = stopping.elapsed();
    assert!(took < hj212_follow::STOP_CATCH_UP + Duration::from_secs(2), "the stop took {took:?}");
    assert!(took >= hj212_follow::STOP_CATCH_UP, "it caught up for the bound first: {took:?}");
    let position = status.position();
    assert!(position > 100 && position < 2000, "stopped at its position {position}");
    drop(archive);
    writer.join();
}
