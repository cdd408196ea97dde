//! Trial 2: copies of a real archive, each with one change, must each be detected by
//! `hj212-audit verify --public-key ... --expect-head ...` or by the daemon's start (exit 65):
//! random one-byte edits anywhere in any segment (headers included) and named attacks.

use hj212_config::DataDir;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use anyhow::{Context as _, Result, bail};
use hj212_sim::rng::Rng;

use super::archive_scan::audit_verify;
use super::daemon::{Config, Daemon, describe_exit};
use super::forge::{self, HEADER_LEN, Segment};
use super::logger::{self, Control, Spec};
use super::{Ctx, Report};

/// How one tampered copy fared.
#[derive(Debug, Clone)]
struct Outcome {
    verify_code: i32,
    verify_line: String,
    /// The daemon's start on the copy (`exit 65`, `started` ...), when it was tried.
    start: Option<String>,
}

impl Outcome {
    fn detected(&self) -> bool {
        self.verify_code != 0 || self.start.as_deref() == Some("exit 65")
    }

    fn describe(&self) -> String {
        let start = self.start.as_ref().map(|s| format!("; start: {s}")).unwrap_or_default();
        format!("verify exit {} ({}){start}", self.verify_code, self.verify_line)
    }
}

/// The archive under attack and what an auditor holds.
struct Original {
    data: PathBuf,
    public_key: PathBuf,
    head: String,
    segments: usize,
    bytes: u64,
}

/// Runs the trial.
///
/// # Errors
/// If the archive cannot be made or copied, or the forger's layout does not match it.
pub async fn run(ctx: &Ctx, edits: usize) -> Result<Report> {
    let dir = ctx.dir("tamper")?;
    let original = make_archive(ctx, &dir).await?;
    let mut report = Report::new(
        "tamper",
        format!(
            "an archive of {} segments ({} bytes, 64 KiB segments, checkpoints every second, signing key in \
             data_dir as by default) written by the daemon under load and stopped cleanly; {edits} copies with one \
             random one-byte edit each (one in ten in a segment header), and one copy per named attack; each checked \
             by `hj212-audit verify --public-key archive-signing.pub --expect-head <the head at the stop>` and, \
             for the named attacks (and any edit verify missed), by starting the daemon on it",
            original.segments, original.bytes
        ),
    );
    report.figure("published head (the stop's checkpoint)", &original.head);
    let pristine = attempt(ctx, &dir, &original, "pristine", true, |_| Ok(())).await?;
    report.check(
        "control: the untouched copy verifies and starts",
        pristine.verify_code == 0 && pristine.start.as_deref() == Some("started"),
        pristine.describe(),
    );
    random_edits(ctx, &dir, &original, edits, &mut report).await?;
    named_attacks(ctx, &dir, &original, &mut report).await?;
    Ok(report)
}

async fn make_archive(ctx: &Ctx, dir: &Path) -> Result<Original> {
    let data = dir.join("data");
    let mut config = Config::new(&data)?;
    config.archive.extend(["segment_max_bytes = 65536".into(), "checkpoint_interval_secs = 1".into()]);
    let mut daemon = Daemon::start(&ctx.hj212d, dir, &config).await?;
    let control = Arc::new(Control::default());
    let base = logger::base_ms();
    let spec =
        |c| Spec { addr: config.addr, c, base, window: 4, per_second: Some(150.0), ack_timeout: None, bind: None };
    let loggers = logger::spawn_all(8, spec, &control);
    tokio::time::sleep(Duration::from_secs(4)).await;
    control.stop_new.store(true, Ordering::Relaxed);
    tokio::time::sleep(Duration::from_secs(1)).await;
    control.give_up.store(true, Ordering::Relaxed);
    let _ = logger::join_all(loggers).await;
    let stopped = daemon.terminate(Duration::from_secs(30))?;
    if stopped.code() != Some(0) {
        bail!("the daemon making the archive stopped with {}", describe_exit(stopped));
    }
    let archive = DataDir::new(&data).archive();
    let head = hj212_archive::checkpoint::read_latest(&archive).context("no checkpoint.latest after the stop")?;
    let segments = forge::read_all(&archive)?;
    if !forge::chain_holds(&segments) {
        bail!("the forger's reading of the archive layout does not reproduce its hashes");
    }
    Ok(Original {
        public_key: data.join("archive-signing.pub"),
        head: head.expect_head(),
        segments: segments.len(),
        bytes: super::dir_bytes(&archive),
        data,
    })
}

fn copy_dir(from: &Path, to: &Path) -> Result<()> {
    std::fs::create_dir_all(to)?;
    for entry in std::fs::read_dir(from)? {
        let entry = entry?;
        let target = to.join(entry.file_name());
        if entry.file_type()?.is_dir() {
            copy_dir(&entry.path(), &target)?;
        } else {
            std::fs::copy(entry.path(), &target)?;
        }
    }
    Ok(())
}

/// Copies the original, applies `change` to the copy's data dir, and checks it.
async fn attempt(
    ctx: &Ctx,
    dir: &Path,
    original: &Original,
    name: &str,
    always_start: bool,
    change: impl FnOnce(&Path) -> Result<()>,
) -> Result<Outcome> {
    let case = dir.join("case");
    if case.exists() {
        std::fs::remove_dir_all(&case)?;
    }
    let data = case.join("data");
    copy_dir(&original.data, &data)?;
    change(&data).with_context(|| format!("apply {name}"))?;
    let (verify_code, text) = audit_verify(&ctx.audit, &data, &original.public_key, Some(&original.head))?;
    let verify_line = text.lines().last().unwrap_or("").to_owned();
    let mut outcome = Outcome { verify_code, verify_line, start: None };
    if always_start || verify_code == 0 {
        outcome.start = Some(start_on(ctx, &case, &data).await?);
    }
    Ok(outcome)
}

/// Starts the daemon on a copy: its exit code, or `started` (then stopped).
async fn start_on(ctx: &Ctx, case: &Path, data: &Path) -> Result<String> {
    let config = Config::new(data)?;
    let path = case.join("hj212d.toml");
    config.write(&path)?;
    let mut daemon = Daemon::spawn(&ctx.hj212d, &path, &config, &case.join("hj212d.log"))?;
    let deadline = Instant::now() + Duration::from_secs(30);
    while Instant::now() < deadline {
        if let Some(status) = daemon.exited()? {
            return Ok(describe_exit(status));
        }
        if tokio::net::TcpStream::connect(config.addr).await.is_ok() {
            daemon.terminate(Duration::from_secs(30))?;
            return Ok("started".into());
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    Ok("neither started nor exited in 30 s".into())
}

/// Where a byte of a segment lies: header, or a record's length, body or hash.
fn locate(segment: &Segment, offset: usize) -> &'static str {
    if offset < HEADER_LEN {
        return "header";
    }
    let Some(r) = segment.records.iter().find(|r| offset < r.offset + r.len()) else { return "after the records" };
    match offset - r.offset {
        0..4 => "record length",
        n if n < 4 + r.body.len() => "record body",
        _ => "record hash",
    }
}

async fn random_edits(ctx: &Ctx, dir: &Path, original: &Original, edits: usize, report: &mut Report) -> Result<()> {
    let segments = forge::read_all(&DataDir::new(&original.data).archive())?;
    let sizes: Vec<usize> = segments.iter().map(|s| s.encode().len()).collect();
    let total: usize = sizes.iter().sum();
    let mut rng = Rng::new(ctx.seed ^ 0x7A3);
    let mut by_place: BTreeMap<&str, (u64, u64)> = BTreeMap::new();
    let mut missed = Vec::new();
    for i in 0..edits {
        let (index, offset) = if rng.chance(10.0) {
            (pick(&mut rng, segments.len()), pick(&mut rng, HEADER_LEN))
        } else {
            let mut at = pick(&mut rng, total);
            let index = sizes.iter().position(|&s| {
                at < s || {
                    at -= s;
                    false
                }
            });
            (index.unwrap_or(0), at)
        };
        let xor = u8::try_from(1 + pick(&mut rng, 255)).unwrap_or(1);
        let segment = &segments[index];
        let place = locate(segment, offset);
        let path = segment.path.file_name().map(PathBuf::from).unwrap_or_default();
        let outcome = attempt(ctx, dir, original, &format!("edit {i}"), false, |data| {
            let file = DataDir::new(data).archive().join(&path);
            let mut bytes = std::fs::read(&file)?;
            bytes[offset] ^= xor;
            Ok(std::fs::write(&file, bytes)?)
        })
        .await?;
        let entry = by_place.entry(place).or_default();
        entry.1 += 1;
        if outcome.detected() {
            entry.0 += 1;
        } else {
            missed.push(format!("{} byte {offset} ({place}) ^ {xor:#04x}: {}", path.display(), outcome.describe()));
        }
    }
    let detected: u64 = by_place.values().map(|v| v.0).sum();
    for (place, (found, of)) in &by_place {
        report.figure(format!("random edits in a {place}: detected"), format!("{found} / {of}"));
    }
    report.check(
        "every random one-byte edit is detected",
        missed.is_empty(),
        format!(
            "{detected} / {edits} detected{}",
            missed.first().map(|m| format!("; missed: {m}")).unwrap_or_default()
        ),
    );
    Ok(())
}

fn pick(rng: &mut Rng, below: usize) -> usize {
    usize::try_from(rng.next_u64() % below.max(1) as u64).unwrap_or(0)
}

async fn named_attacks(ctx: &Ctx, dir: &Path, original: &Original, report: &mut Report) -> Result<()> {
    let mut outcomes = Vec::new();
    for (name, attack) in super::tamper_attacks::ATTACKS {
        let outcome = attempt(ctx, dir, original, name, true, attack).await?;
        report.figure(format!("attack: {name}"), outcome.describe());
        outcomes.push((*name, outcome));
    }
    let missed: Vec<&str> = outcomes.iter().filter(|(_, o)| !o.detected()).map(|(n, _)| *n).collect();
    report.check(
        "every named attack is detected (verify, or the daemon's start with exit 65)",
        missed.is_empty(),
        format!(
            "{} / {} detected{}",
            outcomes.len() - missed.len(),
            outcomes.len(),
            if missed.is_empty() { String::new() } else { format!("; not detected: {}", missed.join(", ")) }
        ),
    );
    Ok(())
}
