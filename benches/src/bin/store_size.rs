//! Bytes per reading of the embedded store, and its insert rate, for typical data: half the
//! sites flue gas (ST=31), half wastewater (ST=32), as hj212-sim makes their values; per site a
//! real-time record (CN 2011, every factor's Rtd and Flag, gas pollutants also ZsRtd) every
//! `--realtime-secs`, a 10-minute record (CN 2051) and an hourly one (CN 2061) with
//! Cou/Min/Avg/Max/Flag, and a daily one (CN 2031). Records reach the store as the daemon's store
//! follower applies them: in archive order (time first, sites interleaved), `--batch` per
//! transaction, through `Store::apply`.
//!
//! Run: `cargo run --release -p hj212-benches --bin store-size -- --sites 40 --days 3`

use std::path::Path;
use std::time::{Duration, Instant};

use clap::Parser;
use hj212_archive::{Kind, Record, Verdict};
use hj212_follow::Interpreted;
use hj212_proto::time::BeijingTime;
use hj212_sim::frame::{Header, data_cp, upload_segment};
use hj212_sim::profile::{Profile, ValueFaults, sample};
use hj212_sim::rng::Rng;
use hj212_store::Store;

const MINUTE: i64 = 60_000;
const HOUR: i64 = 3_600_000;
const DAY: i64 = 86_400_000;
/// 2026-11-01T00:00:00+08:00
const START: i64 = 1_793_462_400_000;
/// Gas pollutants whose real-time records also carry the converted (ZsRtd) value.
const CONVERTED: [&str; 3] = ["a21026", "a21002", "a34013"];

#[derive(Debug, Parser)]
struct Args {
    /// Sites (even numbers gas, odd water).
    #[arg(long, default_value_t = 40)]
    sites: usize,
    /// Days of data per site.
    #[arg(long, default_value_t = 3)]
    days: i64,
    /// Interval of the real-time records (CN 2011).
    #[arg(long, default_value_t = 30)]
    realtime_secs: i64,
    /// Archive records per store transaction (`[followers] batch_records`).
    #[arg(long, default_value_t = 1000)]
    batch: usize,
    /// The archive sequence number before the first record (a daemon that has run for years
    /// is past 8,388,607, where SQLite stores a sequence number in 4 bytes instead of 3).
    #[arg(long, default_value_t = 0)]
    first_seq: u64,
    /// Then delete the first day's readings as `[store] readings_retention_days` does (5,000
    /// rows a tick), and say how long each step took.
    #[arg(long)]
    prune: bool,
    /// Only open this existing store (migrating it to this build's schema) and say how long it took.
    #[arg(long)]
    migrate: Option<std::path::PathBuf>,
    /// Keep the store here instead of a temporary directory (must not exist).
    #[arg(long)]
    keep: Option<std::path::PathBuf>,
}

/// One site's record of `cn` for the period starting at `data_time`, received `delay` after.
struct Maker {
    seq: u64,
    faults: ValueFaults,
}

impl Maker {
    fn record(&mut self, site: usize, cn: u16, data_time: i64, received: i64, rng: &mut Rng) -> Interpreted {
        let profile = if site.is_multiple_of(2) { Profile::Gas } else { Profile::Water };
        let period = match cn {
            2051 => Some(600),
            2061 => Some(3600),
            2031 => Some(86_400),
            _ => None,
        };
        let mut values = sample(profile, period, &self.faults, rng);
        if period.is_none() {
            for reading in &mut values.readings {
                if CONVERTED.contains(&reading.spec.code) {
                    let rtd = reading.fields[0].1.clone();
                    reading.fields.push(("ZsRtd", rtd));
                }
            }
        }
        let time = BeijingTime::from_unix_millis(data_time);
        let qn = BeijingTime::from_unix_millis(received).to_qn_string();
        let mn = format!("BENCH{site:019}");
        let header = Header { qn: Some(&qn), st: profile.st(), cn, pw: "123456", mn: &mn, flag: Some(5), packet: None };
        let segment = upload_segment(&header, &data_cp(&time.to_seconds_string(), &values.readings, false));
        self.seq += 1;
        Interpreted::new(Record {
            seq: self.seq,
            kind: Kind::Received,
            verdict: Verdict::Accepted,
            flags: 0,
            time_ms: received,
            peer: "127.0.0.1:40000".into(),
            data: hj212_proto::encode::frame(segment.as_bytes()).expect("a frame fits"),
            hash: [0; 32],
        })
    }
}

fn file_len(path: &Path) -> u64 {
    std::fs::metadata(path).map_or(0, |m| m.len())
}

fn with_suffix(path: &Path, suffix: &str) -> std::path::PathBuf {
    let mut name = path.as_os_str().to_owned();
    name.push(suffix);
    name.into()
}

/// The records of one real-time step `t`: every site's 2011, and each period record that ended.
fn step(maker: &mut Maker, rngs: &mut [Rng], t: i64, out: &mut Vec<Interpreted>) {
    for (site, rng) in rngs.iter_mut().enumerate() {
        // Loggers send a few seconds after the time they report, each at its own offset.
        let offset = 1000 + i64::try_from(site % 20).unwrap_or(0) * 150;
        out.push(maker.record(site, 2011, t, t + offset, rng));
        for (cn, period) in [(2051, 10 * MINUTE), (2061, HOUR), (2031, DAY)] {
            if (t - START) % period == 0 && t > START {
                out.push(maker.record(site, cn, t - period, t + offset + 20_000, rng));
            }
        }
    }
}

fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    if let Some(path) = &args.migrate {
        let (before, started) = (file_len(path), Instant::now());
        let store = Store::open(path)?;
        let took = started.elapsed();
        let rows = store.count()?;
        drop(store);
        println!(
            "opened {} ({before} bytes) in {:.1} s: {rows} readings, {} bytes now",
            path.display(),
            took.as_secs_f64(),
            file_len(path)
        );
        return Ok(());
    }
    let temp = tempfile::tempdir()?;
    let db = args.keep.clone().unwrap_or_else(|| temp.path().join("store.sqlite"));
    anyhow::ensure!(!db.exists(), "{} exists", db.display());
    let mut store = Store::open(&db)?;
    let mut maker = Maker { seq: args.first_seq, faults: ValueFaults { flag_percent: 1.0, exceed_percent: 0.5 } };
    let mut rngs: Vec<Rng> = (0..args.sites).map(|s| Rng::derive(7, s, 1)).collect();
    let (mut applying, mut records, mut rows) = (Duration::ZERO, 0usize, 0usize);
    let mut batch = Vec::with_capacity(args.batch + args.sites * 4);
    let end = START + args.days * DAY;
    let mut t = START;
    while t <= end {
        step(&mut maker, &mut rngs, t, &mut batch);
        t += args.realtime_secs * 1000;
        if batch.len() >= args.batch || t > end {
            let started = Instant::now();
            let applied = store.apply(&batch)?;
            applying += started.elapsed();
            records += applied.records;
            rows += applied.rows;
            batch.clear();
        }
    }
    let count = store.count()?;
    anyhow::ensure!(count == rows as u64, "{count} rows stored, {rows} inserted");
    drop(store);
    let (main, wal) = (file_len(&db), file_len(&with_suffix(&db, "-wal")));
    let conn = rusqlite::Connection::open(&db)?;
    conn.query_row("PRAGMA wal_checkpoint(TRUNCATE)", [], |_| Ok(()))?;
    let checkpointed = file_len(&db);
    let page_size: i64 = conn.pragma_query_value(None, "page_size", |row| row.get(0))?;
    println!(
        "{} sites x {} days: {records} archive records, {rows} readings ({:.1} per record)",
        args.sites,
        args.days,
        rows as f64 / records as f64
    );
    println!(
        "file: {main} bytes main + {wal} bytes WAL; {checkpointed} bytes after a checkpoint (page size {page_size})"
    );
    println!("bytes per reading: {:.1}", checkpointed as f64 / rows as f64);
    println!(
        "insert: {:.0} rows/s, {:.0} records/s ({:.2} s in Store::apply)",
        rows as f64 / applying.as_secs_f64(),
        records as f64 / applying.as_secs_f64(),
        applying.as_secs_f64()
    );
    tables(&conn);
    drop(conn);
    if args.prune {
        prune(&db)?;
    }
    Ok(())
}

/// Deletes the first day's readings in steps of 5,000 rows, as the store follower's tick does.
fn prune(db: &Path) -> anyhow::Result<()> {
    let mut store = Store::open(db)?;
    let (mut steps, mut deleted, mut slowest, mut total) = (0u32, 0u64, Duration::ZERO, Duration::ZERO);
    loop {
        let started = Instant::now();
        let pruned = store.prune_readings(START + DAY, 5000, START + 10 * DAY)?;
        let took = started.elapsed();
        if pruned.readings == 0 {
            break;
        }
        steps += 1;
        deleted += pruned.readings;
        slowest = slowest.max(took);
        total += took;
    }
    println!(
        "retention: {deleted} readings of the first day deleted in {steps} steps of 5,000: {:.1} ms a step on average, \
         {:.1} ms the slowest",
        total.as_secs_f64() * 1000.0 / f64::from(steps.max(1)),
        slowest.as_secs_f64() * 1000.0
    );
    Ok(())
}

/// Bytes per table and index, where this SQLite has the `dbstat` table.
fn tables(conn: &rusqlite::Connection) {
    let Ok(mut query) = conn.prepare("SELECT name, SUM(pgsize), SUM(ncell), SUM(payload), SUM(unused) FROM dbstat GROUP BY name HAVING SUM(ncell) > 0 ORDER BY 2 DESC")
    else {
        return;
    };
    let Ok(rows) = query.query_map([], |row| {
        Ok((
            row.get::<_, String>(0)?,
            row.get::<_, i64>(1)?,
            row.get::<_, i64>(2)?,
            row.get::<_, i64>(3)?,
            row.get::<_, i64>(4)?,
        ))
    }) else {
        return;
    };
    for (name, bytes, cells, payload, unused) in rows.flatten() {
        println!("  {name}: {bytes} bytes, {cells} cells, {payload} bytes payload, {unused} bytes unused");
    }
}
