//! Trial 4: `data_dir` on a small tmpfs under a paced logger; the disk is filled, then freed.
//! No frame may be acknowledged that is not written; acknowledgements must resume by
//! themselves once `archive.resume_free_bytes` are free; nothing acknowledged may be lost.

use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use anyhow::{Result, bail};

use super::archive_scan::{audit_verify, copies, each_record, first_line, stored_times};
use super::daemon::{Config, Daemon, describe_exit};
use super::logger::{self, Control, Spec};
use super::{Ctx, Report, http};
use crate::load::{SITES, mn};

/// A tmpfs of its own, unmounted (lazily) on drop.
#[derive(Debug)]
struct Mount(PathBuf);

impl Mount {
    fn new(path: &Path, bytes: u64) -> Result<Self> {
        std::fs::create_dir_all(path)?;
        let status =
            Command::new("mount").args(["-t", "tmpfs", "-o", &format!("size={bytes}"), "tmpfs"]).arg(path).status()?;
        if !status.success() {
            bail!("cannot mount a tmpfs on {} (this trial fills a disk of its own and needs root)", path.display());
        }
        Ok(Self(path.to_path_buf()))
    }
}

impl Drop for Mount {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg("-l").arg(&self.0).status();
    }
}

/// Writes zeros to `path` until the file system is full; returns the bytes written.
fn fill(path: &Path) -> u64 {
    let Ok(mut file) = std::fs::File::create(path) else { return 0 };
    let mut written = 0;
    for chunk in [1 << 20, 4096, 512] {
        let zeros = vec![0u8; chunk];
        while file.write_all(&zeros).is_ok() {
            written += chunk as u64;
        }
    }
    let _ = file.sync_all();
    written
}

const DISK: u64 = 256 << 20;

/// When the disk was filled and freed, and what `/readyz` said.
struct Outage {
    filler_bytes: u64,
    filled_at: Instant,
    hold_from: Instant,
    freed_at: Instant,
    readyz_full: Result<http::Answer>,
    readyz_after: Result<http::Answer>,
    ready_in: Option<Duration>,
}

/// Fills the disk, waits until acknowledgements stop (3 s), holds it full 5 s, frees it.
async fn fill_and_free(disk: &Path, http_addr: std::net::SocketAddr) -> Result<Outage> {
    let filler_path = disk.join("filler");
    let filled_at = Instant::now();
    let filler_bytes = tokio::task::spawn_blocking(move || fill(&filler_path)).await.unwrap_or(0);
    tokio::time::sleep(Duration::from_secs(3)).await;
    let readyz_full = tokio::task::spawn_blocking(move || http::get(http_addr, "/readyz")).await?;
    let hold_from = Instant::now();
    tokio::time::sleep(Duration::from_secs(5)).await;
    let freed_at = Instant::now();
    std::fs::remove_file(disk.join("filler"))?;
    let (readyz_after, ready_in) = wait_ready(http_addr, Duration::from_secs(120)).await;
    Ok(Outage { filler_bytes, filled_at, hold_from, freed_at, readyz_full, readyz_after, ready_in })
}

/// Runs the trial.
///
/// # Errors
/// If the tmpfs cannot be mounted or the daemon started.
pub async fn run(ctx: &Ctx) -> Result<Report> {
    let dir = ctx.dir("full-disk")?;
    let mount = Mount::new(&dir.join("disk"), DISK)?;
    let data = mount.0.join("data");
    let config = Config::new(&data)?;
    let mut daemon = Daemon::start(&ctx.hj212d, &dir, &config).await?;
    let mut report = Report::new(
        "full-disk",
        "data_dir on a 256 MiB tmpfs (archive.resume_free_bytes at its default, 64 MiB); a logger sends 100 frames/s \
         (4 in flight, resent after 2 s without a 9014, as a logger does); the disk is filled to the last byte, held \
         full for 5 s, then the filler is removed",
    );
    let control = Arc::new(Control::default());
    let spec = Spec {
        addr: config.addr,
        c: 0,
        base: logger::base_ms(),
        window: 4,
        per_second: Some(100.0),
        ack_timeout: Some(Duration::from_secs(2)),
        bind: None,
    };
    let task = tokio::spawn(logger::run(spec.clone(), control.clone()));
    tokio::time::sleep(Duration::from_secs(2)).await;
    let outage = fill_and_free(&mount.0, config.http).await?;
    tokio::time::sleep(Duration::from_secs(2)).await;
    control.stop_new.store(true, Ordering::Relaxed);
    tokio::time::sleep(Duration::from_secs(5)).await;
    control.give_up.store(true, Ordering::Relaxed);
    let tally = task.await.unwrap_or_default();
    let stop = daemon.terminate(Duration::from_secs(60)).map(describe_exit);
    judge_outage(&mut report, &outage, &tally);
    judge_data(ctx, &mut report, &data, &spec, &tally)?;
    report.check(
        "the daemon never exits; SIGTERM exits 0",
        stop.as_ref().is_ok_and(|s| s == "exit 0"),
        stop.unwrap_or_else(|e| format!("{e:#}")),
    );
    drop(mount);
    Ok(report)
}

fn judge_outage(report: &mut Report, outage: &Outage, tally: &logger::Tally) {
    let acked_in = |from: Instant, to: Instant| tally.ack_times.iter().filter(|t| **t >= from && **t < to).count();
    let after_fill = acked_in(outage.filled_at, outage.hold_from);
    let during_hold = acked_in(outage.hold_from, outage.freed_at);
    let freed_at = outage.freed_at;
    let resumed = tally.ack_times.iter().find(|t| **t >= freed_at).map(|t| t.duration_since(freed_at));
    report.figure("filler written", format!("{} MiB", outage.filler_bytes >> 20));
    report.figure("frames sent / acknowledged", format!("{} / {}", tally.sent, tally.acked.len()));
    report.figure(
        "acknowledged from the start of the fill to 3 s after it (while space was left) / in the 5 s held full after that",
        format!("{after_fill} / {during_hold}"),
    );
    report.figure("resends (2 s without a 9014)", tally.resent.len());
    let status = |a: &Result<http::Answer>| {
        a.as_ref().map_or_else(|e| format!("{e:#}"), |a| format!("{} {}", a.status, a.body.trim()))
    };
    let ready_in =
        outage.ready_in.map_or("not 200 within 120 s".into(), |d| format!("200 after {:.1} s", d.as_secs_f64()));
    report.figure("/readyz while full", status(&outage.readyz_full));
    report.figure("/readyz after freeing", format!("{} ({ready_in})", status(&outage.readyz_after)));
    report.check(
        "no frame is acknowledged while the disk is full",
        during_hold == 0,
        format!("{during_hold} acknowledged in the 5 s held full"),
    );
    report.check(
        "/readyz says 503 naming the archive while full, 200 again once the store and alert engine caught up",
        outage.readyz_full.as_ref().is_ok_and(|a| a.status == 503 && a.body.contains("archive"))
            && outage.readyz_after.as_ref().is_ok_and(|a| a.status == 200),
        format!("{} / {}", status(&outage.readyz_full), status(&outage.readyz_after)),
    );
    report.check(
        "acknowledgements resume by themselves once space is freed",
        resumed.is_some(),
        resumed.map_or("no acknowledgement after freeing".into(), |d| {
            format!("first 9014 {} after the filler was removed", super::ms(d))
        }),
    );
}

fn judge_data(ctx: &Ctx, report: &mut Report, data: &Path, spec: &Spec, tally: &logger::Tally) -> Result<()> {
    let archive = copies(data)?;
    let site = mn(spec.c % SITES);
    let times: Vec<i64> = tally.acked.iter().map(|&n| logger::data_time_ms(spec.base, spec.c, n)).collect();
    let qns: Vec<String> =
        times.iter().map(|&t| hj212_proto::time::BeijingTime::from_unix_millis(t).to_qn_string()).collect();
    let lost =
        qns.iter().filter(|qn| archive.by_key.get(&(site.clone(), (*qn).clone())).is_none_or(|c| c.0 == 0)).count();
    let stored = stored_times(data, std::slice::from_ref(&site))?;
    let rows = stored.get(&site).cloned().unwrap_or_default();
    let unstored = times.iter().filter(|t| rows.get(t).copied().unwrap_or(0) < logger::FACTORS_PER_FRAME).count();
    report.check(
        "every acknowledged frame is in the archive and the store",
        lost == 0 && unstored == 0,
        format!("{} acknowledged; {lost} missing from the archive, {unstored} from the store", tally.acked.len()),
    );
    let mut outage = Vec::new();
    each_record(data, |r| {
        let text = String::from_utf8_lossy(&r.data);
        if r.verdict.as_str() == "info" && text.contains("write failure") {
            outage.push(text.into_owned());
        }
    })?;
    report.check(
        "the outage is recorded in the chain",
        !outage.is_empty(),
        outage.first().cloned().unwrap_or_else(|| "no event naming the write failure".into()),
    );
    let (code, text) = audit_verify(&ctx.audit, data, &data.join("archive-signing.pub"), None)?;
    report.check("the chain verifies with the public key", code == 0, first_line(&text).to_owned());
    Ok(())
}

/// Polls `/readyz` until it answers 200: the last answer and how long it took.
async fn wait_ready(addr: std::net::SocketAddr, limit: Duration) -> (Result<http::Answer>, Option<Duration>) {
    let started = Instant::now();
    loop {
        let answer = tokio::task::spawn_blocking(move || http::get(addr, "/readyz"))
            .await
            .map_err(anyhow::Error::from)
            .and_then(|a| a);
        if answer.as_ref().is_ok_and(|a| a.status == 200) {
            return (answer, Some(started.elapsed()));
        }
        if started.elapsed() > limit {
            return (answer, None);
        }
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
}
