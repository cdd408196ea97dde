//! Transmission-rate evidence.
//!
//! `GET /api/v1/sites/{mn}/rate?from=&to=[&basis=]` and
//! `GET /api/v1/rates?from=&to=[&basis=][&details=true][&limit=][&offset=]`. Figures come from
//! the same `Store::site_rate` that `hj212-audit rate` uses. A range covers at most
//! `http.max_range_days` (`http.max_minute_range_days` on the minute basis), so one answer's
//! size and memory are bounded; `/api/v1/rates` answers a page of sites at a time.

use std::borrow::Cow;

use axum::extract::State;
use axum::http::StatusCode;
use axum::response::Response;
use hj212_compliance::{Basis, Range};
use hj212_proto::time::BeijingTime;
use hj212_store::{Store, parse_bound};
use serde::Deserialize;

use crate::AppState;
use crate::error::{ApiError, ApiPath, ApiQuery, error};

const DAY_MS: i64 = 86_400_000;
/// Sites per `/api/v1/rates` page: counts only, and with `details=true` (each site's lists).
const MAX_SITES: usize = 10_000;
const MAX_DETAILED_SITES: usize = 20;

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct SiteRateQuery {
    from: String,
    to: String,
    basis: Option<String>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RatesQuery {
    from: String,
    to: String,
    basis: Option<String>,
    /// Every site's full evidence (with the lists), slower and in smaller pages.
    details: Option<bool>,
    /// Sites per page (in MN order) and where the page starts.
    limit: Option<usize>,
    offset: Option<usize>,
}

/// A bound from a query string. There `+` means a space, so an RFC 3339 time pasted from an
/// answer (`...T08:00:00.000+08:00`) arrives as `...T08:00:00.000 08:00`: its offset sign is restored.
pub(crate) fn query_bound(name: &str, value: &str) -> Result<i64, ApiError> {
    let at = value.len().saturating_sub(6);
    let value: Cow<'_, str> = if value.contains(':') && value.get(at..).is_some_and(|tail| tail.starts_with(' ')) {
        Cow::Owned(format!("{}+{}", &value[..at], &value[at + 1..]))
    } else {
        Cow::Borrowed(value)
    };
    parse_bound(&value).map_err(|e| error(StatusCode::BAD_REQUEST, format!("{name}: {e}")))
}

/// `from` < `to`, both readable.
pub(crate) fn range_of(from: i64, to: i64) -> Result<Range, ApiError> {
    if to <= from {
        return Err(error(StatusCode::BAD_REQUEST, "to must be after from"));
    }
    Ok(Range { from_ms: from, to_ms: to })
}

fn query_range(from: &str, to: &str) -> Result<Range, ApiError> {
    range_of(query_bound("from", from)?, query_bound("to", to)?)
}

/// The range is within what one query may cover on `basis`.
fn check_span(state: &AppState, range: Range, basis: Basis, mn: &str) -> Result<(), ApiError> {
    let (max_days, key) = match basis {
        Basis::Minute { .. } => (state.limits.max_minute_range_days, "http.max_minute_range_days"),
        Basis::Hour | Basis::Day => (state.limits.max_range_days, "http.max_range_days"),
    };
    let span = range.to_ms - range.from_ms;
    if span <= i64::from(max_days) * DAY_MS {
        return Ok(());
    }
    let days = (span + DAY_MS - 1) / DAY_MS;
    Err(error(
        StatusCode::BAD_REQUEST,
        format!(
            "the range covers {days} days; a rate query on the {} basis (site {mn}) covers at most {max_days} days \
             ({key}): ask period by period",
            basis.as_str()
        ),
    ))
}

fn rules_with_basis(site: &hj212_config::Site, basis: Option<&str>) -> Result<hj212_compliance::Rules, ApiError> {
    hj212_store::rules_with_basis(site, basis).map_err(|e| error(StatusCode::BAD_REQUEST, e))
}

pub(crate) async fn site_rate(
    State(state): State<AppState>,
    ApiPath(mn): ApiPath<String>,
    ApiQuery(query): ApiQuery<SiteRateQuery>,
) -> Result<Response, ApiError> {
    let Some(entry) = state.shared.registry.snapshot().get(&mn).cloned() else {
        return Err(error(StatusCode::NOT_FOUND, format!("no configured site with MN {mn}")));
    };
    let range = query_range(&query.from, &query.to)?;
    let rules = rules_with_basis(&entry.config, query.basis.as_deref())?;
    check_span(&state, range, rules.basis, &mn)?;
    let as_configured = query.basis.is_none();
    let data_dir = state.data_dir.clone();
    state
        .queries
        .run_json(move || {
            let store = Store::open(&data_dir.store())?;
            let now = hj212_archive::now_ms();
            // The rules in force in each stretch of the range (the archived history), unless a
            // basis is asked for: then the current rules with that basis.
            let archived = if as_configured { store.site_rate_as_configured(&entry.mn, range, now)? } else { None };
            let mut evidence = match archived {
                Some(evidence) => evidence,
                None => store.site_rate(&entry.config, &rules, range, now)?,
            };
            evidence.attach_archive_hashes(&data_dir.archive())?;
            Ok::<_, hj212_store::StoreError>(evidence.to_json(&entry.mn))
        })
        .await
}

/// The page of sites asked for: `(offset, limit)`.
fn page_of(query: &RatesQuery, details: bool) -> Result<(usize, usize), ApiError> {
    let max = if details { MAX_DETAILED_SITES } else { MAX_SITES };
    let limit = query.limit.unwrap_or(max);
    if !(1..=max).contains(&limit) {
        let with = if details { " with details=true" } else { "" };
        return Err(error(StatusCode::BAD_REQUEST, format!("limit={limit}: use 1 to {max} sites per page{with}")));
    }
    Ok((query.offset.unwrap_or(0), limit))
}

pub(crate) async fn all_rates(
    State(state): State<AppState>,
    ApiQuery(query): ApiQuery<RatesQuery>,
) -> Result<Response, ApiError> {
    let range = query_range(&query.from, &query.to)?;
    let details = query.details.unwrap_or(false);
    let (offset, limit) = page_of(&query, details)?;
    let mut sites: Vec<_> = state.shared.registry.snapshot().values().cloned().collect();
    sites.sort_by(|a, b| a.mn.cmp(&b.mn));
    let total = sites.len();
    let mut plan = Vec::with_capacity(limit.min(total));
    for entry in sites.into_iter().skip(offset).take(limit) {
        let rules = rules_with_basis(&entry.config, query.basis.as_deref())?;
        check_span(&state, range, rules.basis, &entry.mn)?;
        plan.push((entry, rules));
    }
    let data_dir = state.data_dir.clone();
    state
        .queries
        .run_json(move || {
            let rates = page_rates(&data_dir, &plan, range, details)?;
            let end = offset.saturating_add(rates.len());
            let time = |ms: i64| BeijingTime::from_unix_millis(ms).to_rfc3339();
            Ok::<_, hj212_store::StoreError>(serde_json::json!({
                "from": time(range.from_ms),
                "to": time(range.to_ms),
                "total": total,
                "offset": offset,
                "count": rates.len(),
                "next_offset": (end < total).then_some(end),
                "rates": rates,
            }))
        })
        .await
}

type Plan = [(hj212_server::SiteEntry, hj212_compliance::Rules)];

fn page_rates(
    data_dir: &hj212_config::DataDir,
    plan: &Plan,
    range: Range,
    details: bool,
) -> Result<Vec<serde_json::Value>, hj212_store::StoreError> {
    let store = Store::open(&data_dir.store())?;
    plan.iter()
        .map(|(entry, rules)| {
            if details {
                let mut evidence = store.site_rate(&entry.config, rules, range, hj212_archive::now_ms())?;
                evidence.attach_archive_hashes(&data_dir.archive())?;
                return Ok(evidence.to_json(&entry.mn));
            }
            // The ledger answers whole-day hourly and daily ranges; the details the rest.
            let (report, source) = match store.site_summary(&entry.config, rules, range, hj212_archive::now_ms())? {
                Some(report) => (report, "ledger"),
                None => (store.site_rate(&entry.config, rules, range, hj212_archive::now_ms())?.report, "details"),
            };
            Ok(hj212_store::summary_json(&entry.mn, rules, &entry.config.factors, range, &report, source))
        })
        .collect()
}
