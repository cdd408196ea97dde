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
    let (archive, writer, _) = Archive::open(settings(dir), Arc::new(NoObserver)).unwrap();
    let status = Arc::new(FollowerStatus::default());
    let shutdown = CancellationToken::new();
    let runner = RunnerSettings {
        archive_dir: dir.join("archive"),
        batch: 7,
        tick: Duration::from_millis(100),
        max_backoff: Duration::from_secs(1),
        after: None,
    };
    let ledger = Box::new(Ledger { path: dir.join("ledger") });
    let thread = hj212_follow::spawn(ledger, runner, archive.durable(), status.clone(), shutdown.clone()).unwrap();
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
