//! Trial 7: a simulated week of a fleet (hj212-sim, time accelerated, faults on) against the
//! release daemon; the simulator's counts must be what the daemon archived and stored, and the
//! fleet's rates from the API must be the auditor's (`hj212-audit rate`).

use hj212_config::DataDir;
use std::collections::{BTreeMap, HashMap};
use std::process::Command;
use std::time::{Duration, Instant};

use anyhow::{Context as _, Result};
use hj212_proto::time::BeijingTime;
use hj212_sim::{Faults, Options as SimOptions, Outage, ProfileChoice, SimTime, Simulation, Summary};

use super::archive_scan::{audit_verify, each_record, first_line, header_field};
use super::daemon::{Config, Daemon, describe_exit};
use super::{Ctx, Report, http};

const DAY_MS: i64 = 86_400_000;
const HOUR_MS: i64 = 3_600_000;
const DATA_CNS: [u16; 4] = [2011, 2051, 2061, 2031];

#[derive(Debug, Clone)]
pub struct Options {
    pub stations: usize,
    pub days: i64,
    pub accel: f64,
}

fn scenario(o: &Options, seed: u64) -> SimOptions {
    let outage = |site, from_h, to_h| Outage {
        site,
        from: SimTime::AfterStart(from_h * HOUR_MS),
        to: SimTime::AfterStart(to_h * HOUR_MS),
    };
    SimOptions {
        stations: o.stations,
        profile: ProfileChoice::Mixed,
        seed,
        rtd_interval_secs: 60,
        duration_ms: o.days * DAY_MS,
        accel: o.accel,
        ack_timeout: Duration::from_secs(2),
        window: 4,
        faults: Faults {
            gap_percent: 1.0,
            bad_crc_percent: 1.0,
            // A 6-hour outage on day 2 (backfilled), and one that outlasts the run.
            outages: vec![outage(3, 30, 36), outage(4, o.days * 24 - 5, o.days * 24 + 1)],
            crc_dialect_sites: 2,
            v2005_sites: 2,
            split_percent: 2.0,
            flag_percent: 2.0,
            exceed_percent: 0.5,
            reconnect_storm: true,
            sticky: true,
            ..Faults::default()
        },
        ..SimOptions::default()
    }
}

/// The whole hour at or after `ms` (`up`) or at or before it, as `YYYYMMDDhhmmss`.
fn hour_bound(ms: i64, up: bool) -> String {
    let hour = ms.div_euclid(HOUR_MS) + i64::from(up && ms.rem_euclid(HOUR_MS) != 0);
    BeijingTime::from_unix_millis(hour * HOUR_MS).to_seconds_string()
}

/// Runs the trial.
///
/// # Errors
/// If the daemon cannot be started or the archive read.
pub async fn run(ctx: &Ctx, o: &Options) -> Result<Report> {
    let dir = ctx.dir("week")?;
    let sim = Simulation::new(scenario(o, ctx.seed)).context("simulation options")?;
    std::fs::write(dir.join("sites.toml"), sim.sites_toml()?)?;
    let mut config = Config::new(&dir.join("data"))?;
    config.server.push("sites_file = \"sites.toml\"".into());
    config.sites.clear();
    let mut daemon = Daemon::start(&ctx.hj212d, &dir, &config).await?;
    let mut report = Report::new(
        "week",
        format!(
            "hj212-sim: {} stations (gas and water, 2 with MODBUS CRC, 2 speaking HJ/T 212-2005) x {} simulated days \
             at {}x (2011 every 60 s, 2051 every 10 min, 2061 hourly, 2031 daily; nothing thinned), 4 frames in flight, \
             faults on: 1 % gaps, 1 % bad CRC, 2 % split packets, 2 % flagged values, 0.5 % exceedances, a 6-hour \
             outage (backfilled) and one outlasting the run, every station reconnecting \
             at each simulated hour, sticky writes",
            o.stations, o.days, o.accel
        ),
    );
    let started = Instant::now();
    let summary = hj212_sim::run(&sim, daemon.addr).await;
    let elapsed = started.elapsed();
    let t = &summary.totals;
    report.figure("simulated period (Beijing time)", format!("{} to {}", summary.start, summary.end));
    report.figure("run time", format!("{:.0} s", elapsed.as_secs_f64()));
    report.figure(
        "frames acknowledged / sent without an answer expected (2005) / resent / failed",
        format!("{} / {} / {} / {}", t.acked, t.unacked_frames.values().sum::<u64>(), t.resent, t.failed),
    );
    report.figure(
        "faults: gaps / bad CRC sent / split records / outage records lost, backfilled, unsent / storm reconnects",
        format!(
            "{} / {} / {} / {}, {}, {} / {}",
            t.gaps, t.bad_crc_sent, t.split_records, t.outage_lost, t.backfilled, t.outage_unsent, t.storm_reconnects
        ),
    );
    let (from, to) = (hour_bound(sim.start_ms, true), hour_bound(sim.end_ms, false));
    let http_addr = daemon.http;
    let path = format!("/api/v1/rates?from={from}&to={to}");
    let api = tokio::task::spawn_blocking(move || http::request(http_addr, "GET", &path, "", Duration::from_secs(120)))
        .await??;
    let stop = daemon.terminate(Duration::from_secs(120)).map(describe_exit);
    report.check(
        "every frame is answered or needs no answer (failed 0, unsent 0)",
        t.failed == 0 && t.unsent == 0,
        format!("failed {}, unsent {}", t.failed, t.unsent),
    );
    let data = dir.join("data");
    judge_counts(&mut report, &data, &summary)?;
    judge_rates(ctx, &mut report, &dir, &api.body, &from, &to)?;
    let (code, text) = audit_verify(&ctx.audit, &data, &data.join("archive-signing.pub"), None)?;
    report.check("the chain verifies with the public key", code == 0, first_line(&text).to_owned());
    report.check(
        "SIGTERM exits 0",
        stop.as_ref().is_ok_and(|s| s == "exit 0"),
        stop.unwrap_or_else(|e| format!("{e:#}")),
    );
    Ok(report)
}

fn judge_counts(report: &mut Report, data: &std::path::Path, summary: &Summary) -> Result<()> {
    let mut archive: HashMap<(String, String, u16), u64> = HashMap::new();
    let mut summarised_bad_crc = 0;
    each_record(data, |r| {
        if r.kind != hj212_archive::Kind::Received {
            return;
        }
        let text = String::from_utf8_lossy(&r.data);
        if r.verdict.as_str() == "refused_summary" {
            let summary: serde_json::Value = serde_json::from_str(&text).unwrap_or_default();
            summarised_bad_crc += summary["summarised"]["bad_crc"].as_u64().unwrap_or(0);
            return;
        }
        let mn = header_field(&text, "MN").unwrap_or_default().to_owned();
        let cn = header_field(&text, "CN").and_then(|c| c.parse().ok()).unwrap_or_default();
        *archive.entry((mn, r.verdict.as_str().to_owned(), cn)).or_default() += 1;
    })?;
    let count = |mn: &str, verdict: &str, cns: &[u16]| -> u64 {
        cns.iter().map(|cn| archive.get(&(mn.to_owned(), verdict.to_owned(), *cn)).copied().unwrap_or(0)).sum()
    };
    let store = hj212_store::Store::open_read_only(&DataDir::new(data).store()).context("open the store")?;
    let (mut mismatches, mut rows_total) = (Vec::new(), 0u64);
    for site in &summary.sites {
        let (mn, c) = (site.mn.as_str(), &site.counters);
        for cn in DATA_CNS {
            let sent = c.acked_frames.get(&cn).copied().unwrap_or(0) + c.unacked_frames.get(&cn).copied().unwrap_or(0);
            let archived = count(mn, "accepted", &[cn]);
            if archived != sent {
                mismatches.push(format!("{mn} CN {cn}: {archived} accepted, simulator {sent}"));
            }
        }
        if count(mn, "duplicate", &DATA_CNS) > c.resent {
            mismatches.push(format!("{mn}: more duplicates than resends"));
        }
        let rows = store.readings(mn).context("read the store")?.len() as u64;
        rows_total += rows;
        if rows != c.readings {
            mismatches.push(format!("{mn}: {rows} store rows, simulator {}", c.readings));
        }
    }
    let total = |verdict: &str| -> u64 { archive.iter().filter(|((_, v, _), _)| v == verdict).map(|(_, n)| n).sum() };
    report.figure("archived `accepted` frames / store rows", format!("{} / {rows_total}", total("accepted")));
    report.check(
        "per station and CN the daemon archived what the simulator delivered and stored its readings",
        mismatches.is_empty(),
        if mismatches.is_empty() {
            format!("{} stations x 4 CNs match", summary.sites.len())
        } else {
            mismatches.join("; ")
        },
    );
    // Every station connects from 127.0.0.1, so their refused traffic shares one address's
    // budget: beyond it, bad-CRC frames are counted in `refused_summary` records.
    let (kept, sent) = (total("bad_crc"), summary.totals.bad_crc_sent);
    report.figure(
        "bad-CRC frames: archived in full / counted in `refused_summary` records / sent by the simulator",
        format!("{kept} / {summarised_bad_crc} / {sent}"),
    );
    report.check(
        "every bad-CRC frame is archived, in full within the address's budget or counted in a summary beyond it",
        kept + summarised_bad_crc == sent,
        format!("{kept} + {summarised_bad_crc} = {} of {sent}", kept + summarised_bad_crc),
    );
    Ok(())
}

/// Per MN: (due, received, valid, late, missing) from a list of rate objects.
fn counts(rates: &[serde_json::Value]) -> BTreeMap<String, [u64; 5]> {
    rates
        .iter()
        .map(|r| {
            let n = |k: &str| r[k].as_u64().unwrap_or(u64::MAX);
            let mn = r["mn"].as_str().unwrap_or_default().to_owned();
            (mn, [n("due"), n("received"), n("valid"), n("late_count"), n("missing_count")])
        })
        .collect()
}

fn judge_rates(ctx: &Ctx, report: &mut Report, dir: &std::path::Path, api: &str, from: &str, to: &str) -> Result<()> {
    let api: serde_json::Value = serde_json::from_str(api).context("the API's rates")?;
    let api_rates = api["rates"].as_array().cloned().unwrap_or_default();
    let output = Command::new(&ctx.audit)
        .args(["rate", "--config"])
        .arg(dir.join("hj212d.toml"))
        .args(["--from", from, "--to", to])
        .output()?;
    let text = String::from_utf8_lossy(&output.stdout);
    let cli_rates: Vec<serde_json::Value> = match serde_json::from_str::<serde_json::Value>(&text) {
        Ok(serde_json::Value::Array(items)) => items,
        Ok(one) => vec![one],
        Err(_) => text.lines().filter_map(|l| serde_json::from_str(l).ok()).collect(),
    };
    let effective: Vec<f64> = api_rates.iter().filter_map(|r| r["effective_rate"].as_str()?.parse().ok()).collect();
    let meets = api_rates.iter().filter(|r| r["meets_target"].as_bool() == Some(true)).count();
    let totals = counts(&api_rates).values().fold([0u64; 5], |mut acc, c| {
        acc.iter_mut().zip(c).for_each(|(a, b)| *a += b);
        acc
    });
    report.figure(
        "rates over the whole hours simulated",
        format!("{from} to {to} (Beijing time), hourly records (2061)"),
    );
    report.figure(
        "fleet: due / received / valid / late / missing (factor-hours)",
        format!("{} / {} / {} / {} / {}", totals[0], totals[1], totals[2], totals[3], totals[4]),
    );
    report.figure(
        "fleet: 有效传输率 (effective rate) min / mean; stations meeting the 95 % target",
        format!(
            "{:.2} % / {:.2} %; {meets} of {}",
            effective.iter().copied().fold(f64::INFINITY, f64::min),
            effective.iter().sum::<f64>() / effective.len().max(1) as f64,
            api_rates.len()
        ),
    );
    let (api_counts, cli_counts) = (counts(&api_rates), counts(&cli_rates));
    report.check(
        "the API's rates are the auditor's (`hj212-audit rate`), station by station",
        !api_counts.is_empty() && api_counts == cli_counts,
        format!(
            "{} stations from the API, {} from hj212-audit (exit {})",
            api_counts.len(),
            cli_counts.len(),
            output.status.code().unwrap_or(-1)
        ),
    );
    Ok(())
}
