//! The daily report of the previous Beijing day, written at `[reports] daily_at`, and on the
//! 1st the previous month's, into `data_dir/reports/` as the fleet's JSON, CSV and HTML. A
//! report that is missing (the daemon was down at its time) is written at the next start.

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use hj212_alerts::Scope;
use hj212_archive::now_ms;
use hj212_compliance::Basis;
use hj212_config::{Config, DataDir, Service};
use hj212_proto::time::BeijingTime;
use hj212_report::Period;
use hj212_server::Shared;
use tokio_util::sync::CancellationToken;

const DAY_MS: i64 = 86_400_000;

/// `YYYY-MM-DD` of the Beijing day holding `ms`.
fn date_of(ms: i64) -> String {
    let digits = BeijingTime::from_unix_millis(ms).to_seconds_string();
    format!("{}-{}-{}", &digits[..4], &digits[4..6], &digits[6..8])
}

/// What a report waits for: the store to have applied every record durable when it is due.
pub(crate) struct StoreCaughtUp {
    pub store: Arc<hj212_archive::FollowerStatus>,
    pub durable: tokio::sync::watch::Receiver<u64>,
}

impl StoreCaughtUp {
    /// Waits until the store has applied what is durable now (a report written from a store
    /// still catching up after a restart would miss records), or until `shutdown`.
    async fn wait(&self, shutdown: &CancellationToken) -> bool {
        let target = *self.durable.borrow();
        let started = std::time::Instant::now();
        let mut warned = false;
        while self.store.position() < target {
            if !warned && started.elapsed() > Duration::from_secs(60) {
                warned = true;
                tracing::warn!(
                    store = self.store.position(),
                    needed = target,
                    "reports wait for the store to catch up"
                );
            }
            tokio::select! {
                () = tokio::time::sleep(Duration::from_millis(200)) => {}
                () = shutdown.cancelled() => return false,
            }
        }
        true
    }
}

/// Until shutdown: writes each report when due, and announces it on MQTT (`{prefix}/reports/daily`
/// or `.../monthly`, after the alerts queued before it) when `announce` wakes a publisher.
pub(crate) async fn run(
    shared: Arc<Shared>,
    config: Config,
    caught_up: StoreCaughtUp,
    announce: Option<tokio::sync::watch::Sender<u64>>,
    shutdown: CancellationToken,
) {
    if !config.reports.enabled {
        return;
    }
    let at_ms = i64::from(config.reports.daily_at_minutes().unwrap_or(30)) * 60_000;
    let data_dir = config.data_dir();
    // Every node of a cluster whose engines follow the stream writes the same report: one announces it.
    let scope = if config.cluster.as_ref().is_some_and(|c| c.alerts_from == hj212_config::ReadFrom::Stream) {
        Scope::Cluster
    } else {
        Scope::Node
    };
    loop {
        let now = now_ms();
        let today = Basis::Day.period_start(now);
        // The newest day whose report time has passed, and when the next one is due.
        let (due_day, next_at) = if now >= today + at_ms {
            (today - DAY_MS, today + DAY_MS + at_ms)
        } else {
            (today - 2 * DAY_MS, today + at_ms)
        };
        if !caught_up.wait(&shutdown).await {
            return;
        }
        let (shared, data_dir, service) = (shared.clone(), data_dir.clone(), config.service.clone());
        let announcing = announce.is_some().then_some(scope);
        let written =
            tokio::task::spawn_blocking(move || write_due(&shared, &data_dir, &service, due_day, announcing)).await;
        match written {
            Ok(Ok(Some(seq))) => {
                if let Some(wake) = &announce {
                    wake.send_replace(seq);
                }
            }
            Ok(Err(error)) => {
                tracing::error!(%error, "report not written; tried again at the next report time or start");
            }
            _ => {}
        }
        let wait = Duration::from_millis(u64::try_from(next_at - now_ms()).unwrap_or(0).max(1000));
        tokio::select! {
            () = tokio::time::sleep(wait) => {}
            () = shutdown.cancelled() => return,
        }
    }
}

/// The daily report of `day` (its Beijing midnight), and the month's when `day` ends one;
/// with `announce`, each one written is queued on MQTT as that scope says. Returns the last seq queued.
fn write_due(
    shared: &Shared,
    data_dir: &DataDir,
    service: &Service,
    day: i64,
    announce: Option<Scope>,
) -> Result<Option<u64>, String> {
    let date = date_of(day);
    let mut queued = None;
    let mut periods = vec![Period::day(&date)?];
    if date_of(day + DAY_MS).ends_with("-01") {
        periods.push(Period::month(&date[..7])?);
    }
    for period in &periods {
        let Some(summary) = write_missing(shared, data_dir, service, period)? else { continue };
        if let Some(scope) = announce {
            let mut outbox = hj212_alerts::SqliteOutbox::open(&data_dir.alerts()).map_err(|e| e.to_string())?;
            let topic = format!("reports/{}", period.kind);
            let payload = summary.to_string();
            queued = Some(outbox.announce(&topic, payload.as_bytes(), scope).map_err(|e| e.to_string())?);
        }
    }
    Ok(queued)
}

/// Writes `period`'s report unless it is there; returns what an announcement says of it.
fn write_missing(
    shared: &Shared,
    data_dir: &DataDir,
    service: &Service,
    period: &Period,
) -> Result<Option<serde_json::Value>, String> {
    let dir = data_dir.reports();
    let stem = format!("{}-{}", period.kind, period.label);
    if dir.join(format!("{stem}.json")).exists() {
        return Ok(None);
    }
    let started = std::time::Instant::now();
    let mut sites: Vec<_> = shared.registry.snapshot().values().map(|entry| entry.config.clone()).collect();
    sites.sort_by(|a, b| a.mn.cmp(&b.mn));
    let opened = hj212_report::Opened::read(data_dir)?;
    let report = hj212_report::fleet_report(&opened.sources(service, now_ms()), &sites, period)?;
    std::fs::create_dir_all(&dir).map_err(|e| format!("cannot create {}: {e}", dir.display()))?;
    let reports: Vec<_> = report["reports"].as_array().map(|r| r.iter().collect()).unwrap_or_default();
    // JSON last: its presence says the report is complete.
    for (extension, body) in
        [("csv", hj212_report::csv(&reports)), ("html", hj212_report::html(&report)), ("json", report.to_string())]
    {
        write_atomically(&dir.join(format!("{stem}.{extension}")), body.as_bytes())?;
    }
    tracing::info!(
        report = stem,
        sites = sites.len(),
        below_target = report["below_target"].as_u64(),
        service_misses = report["service_misses"].as_u64(),
        seconds = started.elapsed().as_secs_f64(),
        "report written"
    );
    let files = ["json", "csv", "html"].map(|e| dir.join(format!("{stem}.{e}")).display().to_string());
    Ok(Some(serde_json::json!({
        "kind": period.kind,
        "period": period.label,
        "files": files,
        "sites": report["sites"],
        "below_target": report["below_target"],
        "service_misses": report["service_misses"],
        "ranking": report["ranking"].as_array().map(|r| r.iter().take(20).cloned().collect::<Vec<_>>()),
    })))
}

fn write_atomically(path: &Path, bytes: &[u8]) -> Result<(), String> {
    let tmp = path.with_extension("tmp");
    std::fs::write(&tmp, bytes)
        .and_then(|()| std::fs::rename(&tmp, path))
        .map_err(|e| format!("cannot write {}: {e}", path.display()))
}
