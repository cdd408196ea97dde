//! Trial 1: SIGKILL the release daemon under load at random moments, restart it, many times;
//! then every acknowledged frame must be in the archive (once `accepted`) and in the store,
//! the chain must verify with the public key and the published heads, and a frame resent after
//! a restart must be archived as `duplicate`, never as a second `accepted`.

use std::collections::{BTreeMap, HashSet};
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use anyhow::Result;
use hj212_proto::time::BeijingTime;
use hj212_sim::rng::Rng;

use super::archive_scan::{audit_verify, copies, first_line, stored_times};
use super::daemon::{Config, Daemon, describe_exit};
use super::logger::{self, Control, Spec, Tally};
use super::{Ctx, Report, http};
use crate::load::{SITES, mn};

#[derive(Debug, Clone)]
pub struct Options {
    pub kills: usize,
    pub connections: usize,
    pub window: usize,
    /// Frames per second offered by all connections together.
    pub rate: f64,
    /// Longest run between a restart and its kill, seconds.
    pub cycle_secs: f64,
}

/// What the kill cycles saw.
#[derive(Debug, Default)]
struct Cycles {
    kills: u64,
    /// Kills during the start (before the listener accepted).
    early: u64,
    startups_ms: Vec<u64>,
    heads: Vec<String>,
    /// Starts that failed or exits nobody asked for.
    failures: Vec<String>,
}

/// Runs the trial.
///
/// # Errors
/// If the trial cannot be set up; what the daemon does wrong is a failed check instead.
pub async fn run(ctx: &Ctx, o: &Options) -> Result<Report> {
    let dir = ctx.dir("kill-loop")?;
    let data = dir.join("data");
    let mut config = Config::new(&data)?;
    // Resends are budgeted like refused traffic; this trial counts each one, so all are kept.
    config.limits.extend(["refused_bytes_per_peer = 1073741824".into(), "refused_bytes_total = 1073741824".into()]);
    config.archive.push("checkpoint_interval_secs = 1".into());
    let config_path = dir.join("hj212d.toml");
    config.write(&config_path)?;
    let base = logger::base_ms();
    let control = Arc::new(Control::default());
    let per_logger = o.rate / o.connections.max(1) as f64;
    let spec = |c| Spec {
        addr: config.addr,
        c,
        base,
        window: o.window,
        per_second: Some(per_logger),
        ack_timeout: None,
        bind: None,
    };
    let loggers = logger::spawn_all(o.connections, spec, &control);
    let started = Instant::now();
    let mut cycles = kill_cycles(ctx, &config, o).await;
    let load_secs = started.elapsed().as_secs_f64();

    // The last start: let the loggers resend and finish, then a clean stop.
    let log = dir.join("hj212d.log");
    let mut daemon = Daemon::spawn(&ctx.hj212d, &config_path, &config, &log)?;
    let ready = daemon.wait_ready(Duration::from_secs(120)).await;
    if let Err(e) = &ready {
        cycles.failures.push(format!("final start: {e:#}"));
    }
    tokio::time::sleep(Duration::from_secs(1)).await;
    control.stop_new.store(true, Ordering::Relaxed);
    let drain = Instant::now();
    while drain.elapsed() < Duration::from_secs(30) && loggers.iter().any(|t| !t.is_finished()) {
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    control.give_up.store(true, Ordering::Relaxed);
    let tallies = logger::join_all(loggers).await;
    tokio::time::sleep(Duration::from_millis(1500)).await;
    let http_addr = config.http;
    if let Ok(Some(head)) = tokio::task::spawn_blocking(move || http::published_head(http_addr)).await {
        cycles.heads.push(head);
    }
    let stop = daemon.terminate(Duration::from_secs(60)).map(describe_exit);
    let mut report = Report::new(
        "kill-loop",
        format!(
            "{} SIGKILLs of the release daemon at random moments ({} of them during its start) under load from {} \
             connections ({} frames in flight each, {} frames/s offered in all; each frame acknowledged only by its \
             9014; unacknowledged frames resent after reconnecting), restarted each time on the same data_dir; then a \
             clean stop and the archive, the store and the chain checked",
            cycles.kills, cycles.early, o.connections, o.window, o.rate
        ),
    );
    report.figure("load time (kill cycles)", format!("{load_secs:.0} s"));
    judge(ctx, &mut report, &data, base, &tallies, &cycles, stop)?;
    Ok(report)
}

async fn kill_cycles(ctx: &Ctx, config: &Config, o: &Options) -> Cycles {
    let dir = config.data_dir.parent().map(std::path::Path::to_path_buf).unwrap_or_default();
    let mut rng = Rng::new(ctx.seed);
    let mut cycles = Cycles::default();
    for i in 0..o.kills {
        let mut daemon = match Daemon::spawn(&ctx.hj212d, &dir.join("hj212d.toml"), config, &dir.join("hj212d.log")) {
            Ok(d) => d,
            Err(e) => {
                cycles.failures.push(format!("cycle {i}: {e:#}"));
                break;
            }
        };
        let spawned = Instant::now();
        // One kill in eight lands while the daemon starts (recovery, store catch-up).
        if rng.chance(12.5) {
            tokio::time::sleep(Duration::from_millis(rng.next_u64() % 300)).await;
            cycles.early += 1;
        } else {
            if let Err(e) = daemon.wait_ready(Duration::from_secs(120)).await {
                cycles.failures.push(format!("cycle {i}: {e:#}"));
                break;
            }
            cycles.startups_ms.push(u64::try_from(spawned.elapsed().as_millis()).unwrap_or(u64::MAX));
            let run = 0.2 + rng.unit() * (o.cycle_secs - 0.2).max(0.0);
            tokio::time::sleep(Duration::from_secs_f64(run)).await;
            if rng.chance(25.0) {
                let http_addr = config.http;
                if let Ok(Some(head)) = tokio::task::spawn_blocking(move || http::published_head(http_addr)).await {
                    cycles.heads.push(head);
                }
            }
        }
        match daemon.exited() {
            Ok(Some(status)) => {
                cycles.failures.push(format!("cycle {i}: exited by itself ({})", describe_exit(status)));
                break;
            }
            Ok(None) => {}
            Err(e) => cycles.failures.push(format!("cycle {i}: {e:#}")),
        }
        if daemon.kill().is_ok() {
            cycles.kills += 1;
        }
    }
    cycles
}

/// Every acknowledged frame as (MN, QN, DataTime ms).
fn acknowledged(base: i64, tallies: &[Tally]) -> Vec<(String, String, i64)> {
    let mut out = Vec::new();
    for (c, tally) in tallies.iter().enumerate() {
        for &n in &tally.acked {
            let time = logger::data_time_ms(base, c, n);
            out.push((mn(c % SITES), BeijingTime::from_unix_millis(time).to_qn_string(), time));
        }
    }
    out
}

fn judge(
    ctx: &Ctx,
    report: &mut Report,
    data: &std::path::Path,
    base: i64,
    tallies: &[Tally],
    cycles: &Cycles,
    stop: Result<String>,
) -> Result<()> {
    let acked = acknowledged(base, tallies);
    let mut startups = cycles.startups_ms.clone();
    startups.sort_unstable();
    report.figure("kills (during start)", format!("{} ({})", cycles.kills, cycles.early));
    report.figure(
        "restart to accepting: median / max",
        format!(
            "{} ms / {} ms",
            startups.get(startups.len() / 2).copied().unwrap_or(0),
            startups.last().copied().unwrap_or(0)
        ),
    );
    report.figure("frames sent (first sendings)", tallies.iter().map(|t| t.sent).sum::<u64>());
    report.figure("frames acknowledged (9014 received)", acked.len());
    report.figure("unacknowledged at the end", tallies.iter().map(|t| t.unacked.len()).sum::<usize>());
    judge_archive(report, data, base, tallies, &acked)?;
    judge_store(report, data, &acked)?;
    judge_chain(ctx, report, data, cycles)?;
    let clean = stop.as_ref().is_ok_and(|s| s == "exit 0");
    report.check(
        "every restart starts (no exit 65/75/other) and the final SIGTERM exits 0",
        cycles.failures.is_empty() && clean,
        format!(
            "{} start failures or unasked exits{}; final stop: {}",
            cycles.failures.len(),
            cycles.failures.first().map(|f| format!(" (first: {f})")).unwrap_or_default(),
            stop.unwrap_or_else(|e| format!("{e:#}"))
        ),
    );
    Ok(())
}

fn judge_archive(
    report: &mut Report,
    data: &std::path::Path,
    base: i64,
    tallies: &[Tally],
    acked: &[(String, String, i64)],
) -> Result<()> {
    let archive = copies(data)?;
    let lost: Vec<_> =
        acked.iter().filter(|(m, q, _)| archive.by_key.get(&(m.clone(), q.clone())).is_none_or(|c| c.0 == 0)).collect();
    let twice = archive.by_key.values().filter(|c| c.0 > 1).count();
    let accepted: u64 = archive.by_key.values().map(|c| u64::from(c.0)).sum();
    let duplicates: u64 = archive.by_key.values().map(|c| u64::from(c.1)).sum();
    let resends: usize = tallies.iter().map(|t| t.resent.len()).sum();
    let resent_frames: HashSet<(usize, u64)> =
        tallies.iter().enumerate().flat_map(|(c, t)| t.resent.iter().map(move |&n| (c, n))).collect();
    let (mut recognised, mut first_copy) = (0, 0);
    for &(c, n) in &resent_frames {
        let qn = BeijingTime::from_unix_millis(logger::data_time_ms(base, c, n)).to_qn_string();
        match archive.by_key.get(&(mn(c % SITES), qn)) {
            Some((1, d)) if *d > 0 => recognised += 1,
            Some((1, 0)) => first_copy += 1,
            _ => {}
        }
    }
    report.figure(
        "resends after reconnecting (frames whose 9014 had not arrived) / distinct frames resent",
        format!("{resends} / {}", resent_frames.len()),
    );
    report.figure("archive records", archive.records);
    report.figure("archived `accepted` / `duplicate` frames", format!("{accepted} / {duplicates}"));
    report.figure(
        "resent frames: archived once `accepted` plus `duplicate` / original lost in the kill, resend `accepted`",
        format!("{recognised} / {first_copy}"),
    );
    report.figure("`refused_summary` records (resends only counted)", archive.summaries.len());
    report.check(
        "every acknowledged frame is in the archive",
        lost.is_empty(),
        format!("{} acknowledged, {} missing{}", acked.len(), lost.len(), sample(&lost)),
    );
    report.check(
        "a resend after a restart is archived as `duplicate`, not a second `accepted`",
        twice == 0,
        format!("{twice} frames archived `accepted` more than once; {duplicates} `duplicate` records"),
    );
    Ok(())
}

fn sample(lost: &[&(String, String, i64)]) -> String {
    lost.first().map(|(m, q, _)| format!(" (first: MN {m} QN {q})")).unwrap_or_default()
}

fn judge_store(report: &mut Report, data: &std::path::Path, acked: &[(String, String, i64)]) -> Result<()> {
    let mns: Vec<String> = (0..SITES).map(mn).collect();
    let stored = stored_times(data, &mns)?;
    let rows: u64 = stored.values().flat_map(|m| m.values()).map(|&n| u64::from(n)).sum();
    let missing = acked
        .iter()
        .filter(|(m, _, t)| {
            stored.get(m).and_then(|rows| rows.get(t)).copied().unwrap_or(0) < logger::FACTORS_PER_FRAME
        })
        .count();
    let doubled = stored.values().flat_map(|m| m.values()).filter(|&&n| n > logger::FACTORS_PER_FRAME).count();
    report.figure("store rows", rows);
    report.check(
        "every acknowledged frame is in the store, once",
        missing == 0 && doubled == 0,
        format!(
            "{} acknowledged frames x {} factors; {missing} frames missing rows, {doubled} DataTimes with extra rows",
            acked.len(),
            logger::FACTORS.len()
        ),
    );
    Ok(())
}

fn judge_chain(ctx: &Ctx, report: &mut Report, data: &std::path::Path, cycles: &Cycles) -> Result<()> {
    let key = data.join("archive-signing.pub");
    let mut results = BTreeMap::new();
    // The newest published head, and the oldest one seen during the kills.
    let heads: Vec<Option<&str>> = match (cycles.heads.first(), cycles.heads.last()) {
        (Some(first), Some(last)) if first != last => vec![Some(first), Some(last)],
        (_, Some(last)) => vec![Some(last)],
        _ => vec![None],
    };
    for head in heads {
        let (code, text) = audit_verify(&ctx.audit, data, &key, head)?;
        results.insert(head.unwrap_or("none").to_owned(), (code, first_line(&text).to_owned()));
    }
    let ok = results.values().all(|(code, _)| *code == 0);
    let detail: Vec<String> =
        results.iter().map(|(head, (code, line))| format!("--expect-head {head}: exit {code}, {line}")).collect();
    report.figure("published heads collected during the run", cycles.heads.len());
    report.check(
        "`hj212-audit verify --public-key archive-signing.pub --expect-head` passes (oldest and newest published head)",
        ok && !cycles.heads.is_empty(),
        detail.join("; "),
    );
    Ok(())
}
