//! The reliability trials of hj212d (issue 12): the release daemon tried as its users and its
//! attackers would, each trial reporting what it tried, what it counted, and whether each
//! promise held. `scripts/reliability` runs them; docs/reliability.md reports a run.

pub mod admin;
pub mod archive_scan;
pub mod cluster;
mod cluster_alerts;
mod cluster_followers;
pub mod configs;
mod configs_corpus;
pub mod daemon;
pub mod forge;
pub mod full_disk;
pub mod hostile;
pub mod http;
pub mod kill_loop;
pub mod logger;
pub mod tamper;
mod tamper_attacks;
pub mod week;

use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::time::Instant;

/// Where the binaries are and where trials keep their data.
#[derive(Debug, Clone)]
pub struct Ctx {
    pub hj212d: PathBuf,
    pub audit: PathBuf,
    /// Each trial makes its folders in here.
    pub work: PathBuf,
    pub seed: u64,
}

impl Ctx {
    /// A fresh folder for `name` in the work folder.
    ///
    /// # Errors
    /// If it cannot be created.
    pub fn dir(&self, name: &str) -> anyhow::Result<PathBuf> {
        let dir = self.work.join(name);
        if dir.exists() {
            std::fs::remove_dir_all(&dir)?;
        }
        std::fs::create_dir_all(&dir)?;
        Ok(dir)
    }
}

/// One promise and whether it held.
#[derive(Debug, Clone)]
pub struct Check {
    pub promise: String,
    pub held: bool,
    /// The figures behind the verdict.
    pub detail: String,
}

/// What a trial did and found.
#[derive(Debug, Clone)]
pub struct Report {
    pub trial: &'static str,
    pub tried: String,
    /// Counts and measurements, in the order printed.
    pub figures: Vec<(String, String)>,
    pub checks: Vec<Check>,
    pub seconds: f64,
}

impl Report {
    pub fn new(trial: &'static str, tried: impl Into<String>) -> Self {
        Self { trial, tried: tried.into(), figures: Vec::new(), checks: Vec::new(), seconds: 0.0 }
    }

    pub fn figure(&mut self, name: impl Into<String>, value: impl std::fmt::Display) {
        self.figures.push((name.into(), value.to_string()));
    }

    pub fn check(&mut self, promise: impl Into<String>, held: bool, detail: impl Into<String>) {
        self.checks.push(Check { promise: promise.into(), held, detail: detail.into() });
    }

    pub fn passed(&self) -> bool {
        !self.checks.is_empty() && self.checks.iter().all(|c| c.held)
    }

    /// A trial that could not be carried out: one failed check naming why.
    pub fn aborted(trial: &'static str, error: &anyhow::Error) -> Self {
        let mut report = Self::new(trial, "aborted");
        report.check("the trial runs to its end", false, format!("{error:#}"));
        report
    }
}

/// Runs `trial`, timing it; an error is a failed report.
pub async fn timed<F>(name: &'static str, trial: F) -> Report
where
    F: std::future::Future<Output = anyhow::Result<Report>>,
{
    let started = Instant::now();
    let mut report = trial.await.unwrap_or_else(|e| Report::aborted(name, &e));
    report.seconds = started.elapsed().as_secs_f64();
    report
}

fn cell(text: &str) -> String {
    text.replace('|', "\\|").replace('\n', "<br>")
}

/// The summary table and each trial's figures and checks, in markdown.
pub fn markdown(reports: &[Report]) -> String {
    let mut out = String::from("| trial | what was tried | result | time |\n|---|---|---|---|\n");
    for r in reports {
        let held = r.checks.iter().filter(|c| c.held).count();
        let verdict = if r.passed() { "**PASS**" } else { "**FAIL**" };
        let _ = writeln!(
            out,
            "| {} | {} | {verdict} ({held}/{} promises held) | {:.0} s |",
            r.trial,
            cell(&r.tried),
            r.checks.len(),
            r.seconds
        );
    }
    for r in reports {
        let _ = write!(out, "\n### {}\n\n{}\n\n| figure | value |\n|---|---|\n", r.trial, r.tried);
        for (name, value) in &r.figures {
            let _ = writeln!(out, "| {} | {} |", cell(name), cell(value));
        }
        out.push_str("\n| promise | held | detail |\n|---|---|---|\n");
        for c in &r.checks {
            let _ = writeln!(
                out,
                "| {} | {} | {} |",
                cell(&c.promise),
                if c.held { "yes" } else { "**NO**" },
                cell(&c.detail)
            );
        }
    }
    out
}

/// The value of one series (`name{labels}` exactly as exposed) in Prometheus text, 0 when absent.
pub fn metric(text: &str, series: &str) -> f64 {
    text.lines()
        .find_map(|l| l.strip_prefix(series).and_then(|r| r.strip_prefix(' ')))
        .and_then(|v| v.trim().parse().ok())
        .unwrap_or(0.0)
}

/// Total size of the files under `dir`.
pub fn dir_bytes(dir: &Path) -> u64 {
    let Ok(entries) = std::fs::read_dir(dir) else { return 0 };
    entries
        .flatten()
        .map(|e| match e.metadata() {
            Ok(m) if m.is_dir() => dir_bytes(&e.path()),
            Ok(m) => m.len(),
            Err(_) => 0,
        })
        .sum()
}

/// Milliseconds of a duration, for figures.
pub fn ms(duration: std::time::Duration) -> String {
    format!("{:.1} ms", duration.as_secs_f64() * 1000.0)
}

/// The `percent`-th percentile of sorted microsecond samples, in ms.
pub fn percentile_ms(sorted_us: &[u32], percent: usize) -> f64 {
    let Some(last) = sorted_us.len().checked_sub(1) else { return 0.0 };
    f64::from(sorted_us[last * percent / 100]) / 1000.0
}

/// The upper bound of the histogram bucket holding quantile `q` of what `name` counted between
/// two scrapes (Prometheus text), in ms; `None` when nothing was counted.
pub fn histogram_quantile_ms(before: &str, after: &str, name: &str, q: f64) -> Option<f64> {
    let prefix = format!("{name}_bucket{{le=\"");
    let buckets = |text: &str| -> Vec<(f64, f64)> {
        text.lines()
            .filter_map(|l| l.strip_prefix(&prefix))
            .filter_map(|rest| {
                let (le, count) = rest.split_once("\"} ")?;
                Some((le.parse().unwrap_or(f64::INFINITY), count.trim().parse().ok()?))
            })
            .collect()
    };
    let (old, new) = (buckets(before), buckets(after));
    let delta: Vec<(f64, f64)> = new
        .iter()
        .map(|&(le, count)| (le, count - old.iter().find(|(l, _)| l.total_cmp(&le).is_eq()).map_or(0.0, |(_, c)| *c)))
        .collect();
    let total = delta.last()?.1;
    if total <= 0.0 {
        return None;
    }
    delta.iter().find(|(_, count)| *count >= q * total).map(|(le, _)| le * 1000.0)
}
