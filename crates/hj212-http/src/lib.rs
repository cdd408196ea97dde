//! The admin HTTP API, bounded (`[http]` in the config): a connection cap, header-read and
//! request timeouts, a stop deadline, bounded ranges, pages and bodies, and a bounded pool for
//! the queries. Every `/api/v1` error is JSON. Mutating endpoints require the bearer token from
//! `server.admin_token_file`; reads require `server.admin_read_token_file`'s when it is set.

mod alerts;
mod appended;
mod archive;
mod body;
mod commands;
mod console;
mod error;
mod forward;
mod guard;
mod keys;
mod marks;
mod metrics;
mod notify;
mod pool;
mod rates;
mod reports;
mod serve;
mod visits;

use std::fmt::Write as _;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use hj212_archive::FollowerStatus;
use hj212_proto::time::BeijingTime;
use hj212_server::Shared;
use metrics_exporter_prometheus::PrometheusHandle;
use serde::Serialize;

pub use serve::serve;

use crate::error::{ApiQuery, NoParams};
use crate::pool::QueryPool;

/// What `/readyz` checks besides the archive.
#[derive(Debug, Default)]
pub struct Readiness {
    /// The HJ 212 listener is accepting.
    pub listening: AtomicBool,
    /// The archive's readers (store, alert engine, sinks).
    pub followers: Vec<Watched>,
    /// The MQTT publisher's status, when a broker is configured.
    pub mqtt: Option<tokio::sync::watch::Receiver<hj212_sink_mqtt::PublisherStatus>>,
    /// Each `[[notify]]` channel's status: a failing one makes the daemon degraded.
    pub notify: Vec<tokio::sync::watch::Receiver<hj212_notify::ChannelStatus>>,
    /// A follower failing this long makes the daemon not ready (a required one) or degraded.
    pub failing_grace: std::time::Duration,
}

/// A follower as `/readyz` sees it.
#[derive(Debug)]
pub struct Watched {
    pub name: &'static str,
    pub status: Arc<FollowerStatus>,
    /// Failing makes the daemon not ready (503); otherwise only degraded (an optional sink).
    pub required: bool,
    /// Records behind from which it counts as degraded.
    pub degraded_lag: u64,
    /// The head of what it follows when that is not this node's archive (the cluster's stream).
    pub head: Option<tokio::sync::watch::Receiver<u64>>,
}

#[derive(Clone)]
struct AppState {
    prometheus: PrometheusHandle,
    shared: Arc<Shared>,
    readiness: Arc<Readiness>,
    data_dir: hj212_config::DataDir,
    admin_token: Option<String>,
    read_token: Option<String>,
    limits: hj212_config::Http,
    queries: QueryPool,
    /// Forwarding targets: name and address.
    forward: Arc<Vec<(String, String)>>,
    /// Service targets, for visits.
    service: hj212_config::Service,
    /// The web console; `None` without `[[users]]`.
    console: Option<Arc<console::Console>>,
}

/// What the admin API needs besides the server's shared state.
#[derive(Debug, Clone)]
pub struct Admin {
    /// The data directory: its store, alerts database and archive answer the queries.
    pub data_dir: hj212_config::DataDir,
    /// Bearer token for mutating endpoints; `None` turns them off.
    pub admin_token: Option<String>,
    /// Bearer token `GET /api/v1/*` require (the admin token also works); `None` leaves them open.
    pub read_token: Option<String>,
    /// The `[http]` bounds.
    pub limits: hj212_config::Http,
    /// Forwarding targets (`[[forward]]`): name and address.
    pub forward: Vec<(String, String)>,
    /// Service targets (`[service]`).
    pub service: hj212_config::Service,
    /// Console accounts (`[[users]]`); none turns the console off.
    pub users: Vec<hj212_config::User>,
    /// Console sessions and sign-in limits (`[console]`).
    pub console: hj212_config::Console,
}

/// The admin routes. `/metrics`, `/healthz` and `/readyz` are always open (Prometheus and
/// probes); `/api/v1/*` go through the token guard.
pub fn router(prometheus: PrometheusHandle, shared: Arc<Shared>, readiness: Arc<Readiness>, admin: Admin) -> Router {
    metrics::describe();
    let limits = admin.limits;
    let state = AppState {
        prometheus,
        shared,
        readiness,
        data_dir: admin.data_dir,
        admin_token: admin.admin_token,
        read_token: admin.read_token,
        queries: QueryPool::new(limits.max_concurrent_queries, Duration::from_secs(limits.query_wait_secs)),
        limits,
        forward: Arc::new(admin.forward),
        service: admin.service,
        console: console::Console::new(&admin.users, &admin.console),
    };
    let api = Router::new()
        .route("/api/v1/sites", get(sites))
        .route("/api/v1/sites/{mn}/rate", get(rates::site_rate))
        .route("/api/v1/sites/{mn}/marks", get(marks::list_marks).post(marks::add_mark))
        .route("/api/v1/sites/{mn}/visits", get(visits::list).post(visits::add))
        .route("/api/v1/rates", get(rates::all_rates))
        .route("/api/v1/reports/daily", get(reports::daily))
        .route("/api/v1/reports/monthly", get(reports::monthly))
        .route("/api/v1/sites/{mn}/key", post(keys::rotate_key))
        .route("/api/v1/sites/{mn}/commands", get(commands::list).post(commands::submit))
        .route("/api/v1/commands/{id}", get(commands::show).delete(commands::cancel))
        .route("/api/v1/alerts", get(alerts::list))
        .route("/api/v1/alerts/{id}/ack", post(alerts::ack))
        .route("/api/v1/archive/head", get(archive::head))
        .route("/api/v1/forward", get(forward::targets))
        .route("/api/v1/notify", get(notify::channels))
        .route_layer(axum::middleware::from_fn_with_state(state.clone(), guard::guard));
    Router::new()
        .route("/metrics", get(prometheus_text))
        .route("/healthz", get(|| async { "ok\n" }))
        .route("/readyz", get(readyz))
        .merge(api)
        .merge(console::routes())
        .method_not_allowed_fallback(error::method_not_allowed)
        .fallback(error::not_found)
        .with_state(state)
}

async fn prometheus_text(State(state): State<AppState>) -> Response {
    ([("content-type", "text/plain; version=0.0.4")], state.prometheus.render()).into_response()
}

async fn readyz(State(state): State<AppState>) -> Response {
    let mut problems = Vec::new();
    let mut degraded = Vec::new();
    if !state.readiness.listening.load(Ordering::Relaxed) {
        problems.push("HJ 212 listener not accepting".to_owned());
    }
    if !state.shared.archive.is_healthy() {
        problems.push("archive failed: frames are not being acknowledged (retrying)".to_owned());
    }
    let durable = *state.shared.archive.durable().borrow();
    let now = hj212_archive::now_ms();
    for follower in &state.readiness.followers {
        let (head, log) = follower.head.as_ref().map_or((durable, "archive"), |head| (*head.borrow(), "stream"));
        let lag = head.saturating_sub(follower.status.position());
        let grace_ms = i64::try_from(state.readiness.failing_grace.as_millis()).unwrap_or(i64::MAX);
        match follower.status.failing().filter(|f| now - f.since_ms >= grace_ms) {
            Some(failing) => {
                let secs = (now - failing.since_ms) / 1000;
                let line =
                    format!("{} failing for {secs} s, {lag} {log} records behind: {}", follower.name, failing.error);
                if follower.required { problems.push(line) } else { degraded.push(line) }
            }
            None if lag >= follower.degraded_lag => {
                degraded.push(format!("{} is {lag} {log} records behind", follower.name));
            }
            None => {}
        }
    }
    if let Some(mqtt) = &state.readiness.mqtt {
        let status = mqtt.borrow();
        if !status.connected {
            // Alerts wait in the outbox and are delivered when the broker is back.
            let error = status.last_error.as_deref().unwrap_or("not connected yet");
            degraded.push(format!("MQTT broker unreachable ({error}); alerts wait in the outbox"));
        }
    }
    for channel in &state.readiness.notify {
        let status = channel.borrow();
        if let Some(since) = status.failing_since_ms {
            // Its messages wait in the outbox (up to its max_pending); the others go on.
            let error = status.last_error.as_deref().unwrap_or("");
            let secs = (now - since) / 1000;
            degraded
                .push(format!("notify {} failing for {secs} s ({error}); its alerts wait in the outbox", status.name));
        }
    }
    let mut body = if problems.is_empty() { "ready\n".to_owned() } else { problems.join("\n") + "\n" };
    for line in degraded {
        let _ = writeln!(body, "degraded: {line}");
    }
    let status = if problems.is_empty() { StatusCode::OK } else { StatusCode::SERVICE_UNAVAILABLE };
    (status, body).into_response()
}

#[derive(Serialize)]
struct SiteView {
    mn: String,
    name: String,
    online: bool,
    connections: u32,
    peer: Option<String>,
    last_frame_time: Option<String>,
    last_data_time: Option<String>,
    clock_offset_ms: Option<i64>,
    last_time_set: Option<String>,
    /// HJ 212-2025 CN 1001: DataLoggerId, CPUID and MACs as the logger sent them.
    hardware: Option<String>,
    /// Gap recovery: requests, refusals, records recovered, periods missing (absent before the first sweep).
    recovery: Option<hj212_commands::recovery::SiteRecovery>,
}

fn beijing(ms: Option<i64>) -> Option<String> {
    ms.map(beijing_time)
}

/// A time as the API shows it: RFC 3339, Beijing time.
fn beijing_time(ms: i64) -> String {
    BeijingTime::from_unix_millis(ms).to_rfc3339()
}

async fn sites(State(state): State<AppState>, ApiQuery(NoParams {}): ApiQuery<NoParams>) -> Json<Vec<SiteView>> {
    let registry = state.shared.registry.snapshot();
    let mut views: Vec<SiteView> = registry
        .values()
        .map(|site| {
            let live = state.shared.states.get(&site.mn).unwrap_or_default();
            SiteView {
                mn: site.mn.clone(),
                name: site.name.clone(),
                online: live.connections > 0,
                connections: live.connections,
                peer: live.peer,
                last_frame_time: beijing(live.last_frame_ms),
                // Kept as the logger wrote it (YYYYMMDDhhmmss); shown like every other time.
                last_data_time: live.last_data_time.and_then(|t| BeijingTime::parse(&t).ok()).map(|t| t.to_rfc3339()),
                clock_offset_ms: live.clock_offset_ms,
                last_time_set: beijing(live.last_time_set_ms),
                hardware: live.hardware,
                recovery: state.shared.recovery.view(&site.mn),
            }
        })
        .collect();
    views.sort_by(|a, b| a.mn.cmp(&b.mn));
    Json(views)
}
