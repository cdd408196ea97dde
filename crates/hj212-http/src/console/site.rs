//! A site's page (`/console/sites/{mn}`): online state, its latest values with factor names,
//! units and flags, its rates today and this month, open alerts and downtime marks.

use axum::extract::{Path, State};
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
use super::site_views;
use super::text::{Lang, Text};
use crate::AppState;

/// Open alerts and marks shown on a site's page, newest first.
const MAX_LISTED: usize = 200;

/// Days in the heat map; hours in the chart; days of visits listed.
const HEAT_DAYS: i64 = 7;
const CHART_HOURS: i64 = 48;
const VISIT_DAYS: i64 = 90;
/// Commands and missing runs listed.
const MAX_COMMANDS: usize = 20;
const MAX_MISSING_RUNS: usize = 50;

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

pub(crate) async fn page(State(state): State<AppState>, visitor: Visitor, Path(mn): Path<String>) -> Response {
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
            (super::alerts_page::alert_table(text, &data.alerts, &visitor))
        }
        h2 { (text.hourly_chart) }
        (charts(visitor.lang, &site.config, &data.hourly))
        @if let Some((report, range)) = &data.hours {
            h2 { (text.heat_map) }
            (site_views::heat_map(text, report, *range, &data.marks))
            h2 { (text.missing_periods) }
            (missing_table(text, report))
        }
        h2 { (text.marks) }
        (marks_table(text, &data.marks))
        @if visitor.operates() { (mark_form(text, &mn, &visitor.user.csrf)) }
        h2 { (text.visits) }
        (visits_table(text, &data.visits))
        @if visitor.operates() { (visit_form(text, &mn, &visitor.user.csrf)) }
        h2 { (text.commands) }
        (commands_table(text, &data.commands))
        @if visitor.operates() { (command_form(text, &mn, &visitor.user.csrf)) }
        h2 { (text.reports) }
        (report_links(text, &mn))
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

fn marks_table(text: &Text, marks: &[MarkRecord]) -> Markup {
    if marks.is_empty() {
        return html! { p.muted { (text.none) } };
    }
    html! {
        table #marks {
            tbody {
                @for record in marks {
                    tr {
                        td.num { (time(record.mark.from_ms)) " – " (time(record.mark.to_ms)) }
                        td { (record.mark.reason) }
                        td { (record.mark.evidence) }
                        td.muted { (record.mark.author) }
                    }
                }
            }
        }
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

fn missing_table(text: &Text, report: &hj212_compliance::Report) -> Markup {
    let runs = site_views::missing_runs(report, MAX_MISSING_RUNS);
    if runs.is_empty() {
        return html! { p.muted { (text.none) } };
    }
    html! {
        table #missing {
            tbody {
                @for (factor, first, last) in runs {
                    tr {
                        td { (factor) }
                        td.num { (time(first)) " – " (time(last + HOUR_MS)) }
                        td.num { ((last - first) / HOUR_MS + 1) " h" }
                    }
                }
            }
        }
    }
}

fn visits_table(text: &Text, visits: &[VisitRecord]) -> Markup {
    if visits.is_empty() {
        return html! { p.muted { (text.none) } };
    }
    html! {
        table #visits {
            tbody {
                @for record in visits {
                    tr {
                        td.num { (time(record.visit.arrived_ms)) " – " (time(record.visit.left_ms)) }
                        td { (record.visit.by) }
                        td { (record.visit.work) " · " (record.visit.result) }
                    }
                }
            }
        }
    }
}

fn commands_table(text: &Text, commands: &[serde_json::Value]) -> Markup {
    if commands.is_empty() {
        return html! { p.muted { (text.none) } };
    }
    let field = |c: &serde_json::Value, key: &str| c[key].as_str().unwrap_or("–").to_owned();
    html! {
        table #commands {
            tbody {
                @for command in commands {
                    tr {
                        td.num { (field(command, "id")) }
                        td.num { "CN " (field(command, "cn")) }
                        td { (field(command, "state")) }
                        td.num { (field(command, "created").get(..16).unwrap_or_default().replacen('T', " ", 1)) }
                        td.muted { (field(command, "origin")) }
                    }
                }
            }
        }
    }
}

/// Yesterday's daily report and this and last month's monthly report of this site, as the
/// report API gives them (the console's session opens the API's reads).
fn report_links(text: &Text, mn: &str) -> Markup {
    let now = BeijingTime::from_unix_millis(hj212_archive::now_ms() - DAY_MS);
    let yesterday = format!("{:04}-{:02}-{:02}", now.year, now.month, now.day);
    let this_month = BeijingTime::from_unix_millis(hj212_archive::now_ms());
    let (year, month) = (this_month.year, this_month.month);
    let (last_year, last_month) = if month == 1 { (year - 1, 12) } else { (year, month - 1) };
    let months = [format!("{year:04}-{month:02}"), format!("{last_year:04}-{last_month:02}")];
    html! {
        ul.reports {
            li {
                (text.daily_report) " " (yesterday) ": "
                a href={ "/api/v1/reports/daily?date=" (yesterday) "&mn=" (mn) "&format=html" } { "HTML" } " · "
                a href={ "/api/v1/reports/daily?date=" (yesterday) "&mn=" (mn) "&format=csv" } { "CSV" }
            }
            @for month in &months {
                li {
                    (text.monthly_report) " " (month) ": "
                    a href={ "/api/v1/reports/monthly?month=" (month) "&mn=" (mn) "&format=html" } { "HTML" } " · "
                    a href={ "/api/v1/reports/monthly?month=" (month) "&mn=" (mn) "&format=csv" } { "CSV" }
                }
            }
        }
    }
}

/// A downtime mark (停产 / 停排 / 停运) from the page, authored by the signed-in operator.
fn mark_form(text: &Text, mn: &str, csrf: &str) -> Markup {
    html! {
        form.record #mark-form method="post" action={ "/console/sites/" (mn) "/marks" } {
            input type="hidden" name="csrf" value=(csrf);
            label { (text.from) input type="datetime-local" name="from" required; }
            label { (text.to) input type="datetime-local" name="to" required; }
            label { (text.reason) input type="text" name="reason" required maxlength="500"; }
            label { (text.evidence) input type="text" name="evidence" required maxlength="500"; }
            button type="submit" { (text.record) }
        }
    }
}

/// A service visit from the page, recorded as made by the signed-in operator.
fn visit_form(text: &Text, mn: &str, csrf: &str) -> Markup {
    html! {
        form.record #visit-form method="post" action={ "/console/sites/" (mn) "/visits" } {
            input type="hidden" name="csrf" value=(csrf);
            label { (text.arrived) input type="datetime-local" name="arrived" required; }
            label { (text.left) input type="datetime-local" name="left" required; }
            label { (text.work) input type="text" name="work" required maxlength="1000"; }
            label { (text.result) input type="text" name="result" required maxlength="1000"; }
            label { (text.alert_id) input type="text" name="alert_id" maxlength="64"; }
            button type="submit" { (text.record) }
        }
    }
}

/// A command to the site's logger (CN and CP as in the standard), queued as the API queues it.
fn command_form(text: &Text, mn: &str, csrf: &str) -> Markup {
    html! {
        form.record #command-form method="post" action={ "/console/sites/" (mn) "/commands" } {
            input type="hidden" name="csrf" value=(csrf);
            label { "CN" input type="text" name="cn" required maxlength="4" size="5" placeholder="2061"; }
            label { "CP (KEY=VALUE)" textarea name="cp" rows="2" cols="36" placeholder="BeginTime=20261201000000\nEndTime=20261201230000" {} }
            button type="submit" { (text.send_command) }
        }
    }
}
