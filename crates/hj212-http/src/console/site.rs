//! A site's page (`/console/sites/{mn}`): online state, its latest values with factor names,
//! units and flags, its rates today and this month, open alerts and downtime marks.

use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use hj212_alerts::query::{self, Filter};
use hj212_compliance::Range;
use hj212_proto::model::Factor;
use hj212_proto::time::BeijingTime;
use hj212_store::{MarkRecord, Reading, Store, VisitRecord};
use maud::{Markup, html};

use super::Visitor;
use super::layout::{Nav, percent, time};
use super::text::Lang;
use super::{site_lists, site_views};
use crate::AppState;

/// Open alerts and marks shown on a site's page, newest first.
const MAX_LISTED: usize = 200;

/// Days in the heat map; hours in the chart; days of visits listed.
const HEAT_DAYS: i64 = 7;
const CHART_HOURS: i64 = 48;
const VISIT_DAYS: i64 = 90;
/// Commands listed.
const MAX_COMMANDS: usize = 20;

const HOUR_MS: i64 = 3_600_000;
const DAY_MS: i64 = 86_400_000;

/// What a site's page shows, read on a query thread.
struct SiteData {
    latest: Vec<Reading>,
    alerts: Vec<serde_json::Value>,
    marks: Vec<MarkRecord>,
    /// The hourly report of the heat map's days, and those days.
    hours: Option<(hj212_compliance::Report, Range)>,
    /// Hourly averages of the last 48 hours, by factor: (period start, value).
    hourly: Vec<(String, Vec<(i64, f64)>)>,
    visits: Vec<VisitRecord>,
    commands: Vec<serde_json::Value>,
}

/// `?alert=ID`: the visit form answers that alert.
#[derive(Debug, serde::Deserialize)]
pub(crate) struct SiteQuery {
    alert: Option<String>,
}

pub(crate) async fn page(
    State(state): State<AppState>,
    visitor: Visitor,
    Path(mn): Path<String>,
    Query(query): Query<SiteQuery>,
) -> Response {
    let Some(site) = state.shared.registry.snapshot().get(&mn).cloned() else {
        return (StatusCode::NOT_FOUND, format!("no configured site with MN {mn}\n")).into_response();
    };
    let data_dir = state.data_dir.clone();
    let hub = state.shared.commands.clone();
    let site_config = site.config.clone();
    let data = state.queries.run(move || read_site(&data_dir, &hub, &site_config)).await;
    let data = match data {
        Ok(data) => data,
        Err(error) => return error.into_response(),
    };
    let live = state.shared.states.get(&mn).unwrap_or_default();
    let rates = state.console.as_ref().and_then(|c| c.rates.get(&state).by_mn.get(&mn).copied());
    let text = visitor.lang.text();
    let title = if site.name.is_empty() { mn.clone() } else { site.name.clone() };
    let body = html! {
        h1 { (title) " " span.muted { (mn) } }
        div #live {
            p {
                @if live.connections > 0 { span.online { (text.online) } } @else { span.offline { (text.offline) } }
                " · " (text.rate_today) " " (percent(rates.and_then(|r| r.today)))
                " · " (text.rate_month) " " (percent(rates.and_then(|r| r.month)))
            }
            h2 { (text.latest_values) }
            (latest_table(visitor.lang, &data.latest))
            h2 { (text.active_alerts) }
            (super::alerts_page::alert_table(&data.alerts, &visitor, &|_: &str| title.clone()))
        }
        h2 { (text.hourly_chart) }
        (charts(visitor.lang, &site.config, &data.hourly))
        @if let Some((report, range)) = &data.hours {
            h2 { (text.heat_map) }
            (site_views::heat_map(text, report, *range, &data.marks))
            h2 { (text.missing_periods) }
            (site_lists::missing_table(text, report))
        }
        h2 { (text.marks) }
        (site_lists::marks_table(text, &data.marks))
        @if visitor.operates() { (site_lists::mark_form(text, &mn, &visitor.user.csrf)) }
        h2 { (text.visits) }
        (site_lists::visits_table(text, &data.visits))
        @if visitor.operates() { (site_lists::visit_form(text, &mn, &visitor.user.csrf, query.alert.as_deref())) }
        h2 { (text.commands) }
        (site_lists::commands_table(text, &data.commands))
        @if visitor.operates() { (site_lists::command_form(text, &mn, &visitor.user.csrf)) }
        h2 { (text.reports) }
        (site_lists::report_links(text, &mn))
    };
    let path = format!("/console/sites/{mn}");
    let markup = super::layout::page(visitor.lang, Some(&visitor.user), Nav::Other, &title, &path, &body);
    super::html_page(markup, visitor.lang, visitor.lang_asked)
}

fn latest_table(lang: Lang, latest: &[Reading]) -> Markup {
    let text = lang.text();
    let Some(first) = latest.first() else {
        return html! { p.muted { (text.no_data) } };
    };
    html! {
        p.muted { (text.data_time) " " (time(first.data_time_ms)) " · CN " (first.cn) }
        table #latest {
            thead { tr { th { (text.factor) } th { (text.value) } th { (text.flag) } } }
            tbody {
                @for reading in latest {
                    @let known = Factor::lookup(&reading.factor, None);
                    tr data-factor=(reading.factor) {
                        td {
                            @match known {
                                Some(f) => { (factor_name(lang, f)) " " span.muted { (reading.factor) } },
                                None => { (reading.factor) },
                            }
                        }
                        td.num {
                            (reading.rtd.as_deref().or(reading.avg.as_deref()).unwrap_or("–"))
                            @if let Some(f) = known { " " (f.unit) }
                        }
                        td { (reading.flag.as_deref().unwrap_or("–")) }
                    }
                }
            }
        }
    }
}

/// A factor's name in the page's language.
fn factor_name(lang: Lang, factor: &Factor) -> &'static str {
    match lang {
        Lang::Zh => factor.name_zh,
        Lang::En => factor.name,
    }
}

/// Everything the page shows from the store, the alerts database and the command book.
fn read_site(
    data_dir: &hj212_config::DataDir,
    hub: &hj212_commands::Hub,
    site: &hj212_config::Site,
) -> Result<SiteData, String> {
    let mn = site.mn.as_str();
    let now = hj212_archive::now_ms();
    let store = Store::open(&data_dir.store()).map_err(|e| e.to_string())?;
    let latest = store.latest_readings(mn).map_err(|e| e.to_string())?;
    let mut marks: Vec<MarkRecord> =
        store.marks_of(mn).map_err(|e| e.to_string())?.into_iter().map(|(m, _)| m).collect();
    marks.reverse();
    marks.truncate(MAX_LISTED);
    let today = BeijingTime { hour: 0, minute: 0, second: 0, millis: 0, ..BeijingTime::from_unix_millis(now) };
    let days = Range { from_ms: today.unix_millis() - (HEAT_DAYS - 1) * DAY_MS, to_ms: today.unix_millis() + DAY_MS };
    let hourly_rules = hj212_store::rules_with_basis(site, Some("hour")).map_err(|e| e.clone())?;
    // Past the readings' retention there is nothing to draw: the map is left out.
    let hours = store.site_rate(site, &hourly_rules, days, now).ok().map(|evidence| (evidence.report, days));
    let chart_range = Range { from_ms: (now / HOUR_MS - CHART_HOURS) * HOUR_MS, to_ms: (now / HOUR_MS + 1) * HOUR_MS };
    let mut hourly: Vec<(String, Vec<(i64, f64)>)> = Vec::new();
    for value in store.period_values(mn, 2061, chart_range).map_err(|e| e.to_string())? {
        let Some(number) = value.avg.as_deref().and_then(|v| v.trim().parse::<f64>().ok()) else { continue };
        match hourly.iter_mut().find(|(f, _)| *f == value.factor) {
            Some((_, points)) => points.push((value.data_time_ms, number)),
            None => hourly.push((value.factor, vec![(value.data_time_ms, number)])),
        }
    }
    let visits = store.visits_of(mn, now - VISIT_DAYS * DAY_MS, now + 1).map_err(|e| e.to_string())?;
    let visits = visits.into_iter().rev().map(|(v, _)| v).take(MAX_LISTED).collect();
    let commands = hub.of_site(mn, MAX_COMMANDS).map_err(|e| e.to_string())?;
    let commands = commands.iter().map(hj212_commands::Command::to_json).collect();
    let filter = Filter { active_only: true, mn: Some(mn.to_owned()), from_ms: None, to_ms: None, limit: MAX_LISTED };
    let alerts =
        query::open(&data_dir.alerts()).and_then(|conn| query::list(&conn, &filter)).map_err(|e| e.to_string())?;
    Ok(SiteData { latest, alerts, marks, hours, hourly, visits, commands })
}

/// One chart per factor with hourly values (assessed factors first), the limit drawn where set.
fn charts(lang: Lang, site: &hj212_config::Site, hourly: &[(String, Vec<(i64, f64)>)]) -> Markup {
    let text = lang.text();
    if hourly.is_empty() {
        return html! { p.muted { (text.no_data) } };
    }
    let now = hj212_archive::now_ms();
    let range = Range { from_ms: (now / HOUR_MS - CHART_HOURS) * HOUR_MS, to_ms: (now / HOUR_MS + 1) * HOUR_MS };
    let mut ordered: Vec<&(String, Vec<(i64, f64)>)> = hourly.iter().collect();
    ordered.sort_by_key(|(factor, _)| (!site.factors.contains(factor), factor.clone()));
    html! {
        @for (factor, values) in ordered {
            @let known = Factor::lookup(factor, None);
            @let limit = site.limits.iter().find(|l| l.factor == *factor).and_then(|l| l.max);
            @let title = match known {
                Some(f) => format!("{} {factor} ({})", factor_name(lang, f), f.unit),
                None => factor.clone(),
            };
            @let title = match limit { Some(l) => format!("{title} · {} {l}", text.limit), None => title };
            (site_views::hourly_chart(&title, values, limit, range))
        }
    }
}
