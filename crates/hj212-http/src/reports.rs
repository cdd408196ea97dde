//! `GET /api/v1/reports/daily?date=YYYY-MM-DD[&mn=MN][&format=json|csv|html]` and
//! `GET /api/v1/reports/monthly?month=YYYY-MM[...]`: the daily and monthly reports (日报 / 月报),
//! computed by hj212-report as `hj212-audit report` computes them.

use axum::extract::State;
use axum::http::StatusCode;
use axum::http::header::{CONTENT_DISPOSITION, CONTENT_TYPE};
use axum::response::{IntoResponse, Response};
use hj212_report::{Opened, Period};
use serde::Deserialize;

use crate::AppState;
use crate::error::{ApiError, ApiQuery, error};

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct DailyQuery {
    date: String,
    mn: Option<String>,
    format: Option<String>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct MonthlyQuery {
    month: String,
    mn: Option<String>,
    format: Option<String>,
}

pub(crate) async fn daily(
    State(state): State<AppState>,
    ApiQuery(q): ApiQuery<DailyQuery>,
) -> Result<Response, ApiError> {
    let period = Period::day(&q.date).map_err(|e| error(StatusCode::BAD_REQUEST, format!("date: {e}")))?;
    answer(state, period, q.mn, q.format).await
}

pub(crate) async fn monthly(
    State(state): State<AppState>,
    ApiQuery(q): ApiQuery<MonthlyQuery>,
) -> Result<Response, ApiError> {
    let period = Period::month(&q.month).map_err(|e| error(StatusCode::BAD_REQUEST, format!("month: {e}")))?;
    answer(state, period, q.mn, q.format).await
}

async fn answer(
    state: AppState,
    period: Period,
    mn: Option<String>,
    format: Option<String>,
) -> Result<Response, ApiError> {
    let format = format.unwrap_or_else(|| "json".to_owned());
    let content_type = match format.as_str() {
        "json" => "application/json",
        "csv" => "text/csv; charset=utf-8",
        "html" => "text/html; charset=utf-8",
        other => return Err(error(StatusCode::BAD_REQUEST, format!("format={other:?}: use json, csv or html"))),
    };
    let registry = state.shared.registry.snapshot();
    let sites: Vec<_> = if let Some(mn) = &mn {
        let entry =
            registry.get(mn).ok_or_else(|| error(StatusCode::NOT_FOUND, format!("no configured site with MN {mn}")))?;
        vec![entry.config.clone()]
    } else {
        let mut sites: Vec<_> = registry.values().map(|entry| entry.config.clone()).collect();
        sites.sort_by(|a, b| a.mn.cmp(&b.mn));
        sites
    };
    let (data_dir, service) = (state.data_dir.clone(), state.service.clone());
    let file = format!(
        "{}-{}{}.{format}",
        period.kind,
        period.label,
        mn.as_ref().map(|m| format!("-{m}")).unwrap_or_default()
    );
    let body = state
        .queries
        .run(move || {
            let opened = Opened::read(&data_dir)?;
            let sources = opened.sources(&service, hj212_archive::now_ms());
            let report = match mn {
                Some(_) => hj212_report::site_report(&sources, &sites[0], &period)?,
                None => hj212_report::fleet_report(&sources, &sites, &period)?,
            };
            Ok::<_, String>(match format.as_str() {
                "html" => hj212_report::html(&report).into_bytes(),
                "csv" => match report["reports"].as_array() {
                    Some(reports) => hj212_report::csv(&reports.iter().collect::<Vec<_>>()),
                    None => hj212_report::csv(&[&report]),
                }
                .into_bytes(),
                _ => serde_json::to_vec(&report).map_err(|e| e.to_string())?,
            })
        })
        .await?;
    let disposition = format!("inline; filename=\"{file}\"");
    Ok(([(CONTENT_TYPE, content_type.to_owned()), (CONTENT_DISPOSITION, disposition)], body).into_response())
}
