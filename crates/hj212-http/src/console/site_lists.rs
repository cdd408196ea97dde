//! The lists and forms of a site's page: missing periods, downtime marks, service visits,
//! commands (each with the form that records one) and the site's reports.

use hj212_proto::time::BeijingTime;
use hj212_store::{MarkRecord, VisitRecord};
use maud::{Markup, html};

use super::layout::time;
use super::site_views;
use super::text::Text;

const HOUR_MS: i64 = 3_600_000;
const DAY_MS: i64 = 86_400_000;
/// Missing runs listed.
const MAX_MISSING_RUNS: usize = 50;

pub(crate) fn marks_table(text: &Text, marks: &[MarkRecord]) -> Markup {
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

pub(crate) fn missing_table(text: &Text, report: &hj212_compliance::Report) -> Markup {
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

pub(crate) fn visits_table(text: &Text, visits: &[VisitRecord]) -> Markup {
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

pub(crate) fn commands_table(text: &Text, commands: &[serde_json::Value]) -> Markup {
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
pub(crate) fn report_links(text: &Text, mn: &str) -> Markup {
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
pub(crate) fn mark_form(text: &Text, mn: &str, csrf: &str) -> Markup {
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
pub(crate) fn visit_form(text: &Text, mn: &str, csrf: &str, alert: Option<&str>) -> Markup {
    html! {
        form.record #visit-form method="post" action={ "/console/sites/" (mn) "/visits" } {
            input type="hidden" name="csrf" value=(csrf);
            label { (text.arrived) input type="datetime-local" name="arrived" required; }
            label { (text.left) input type="datetime-local" name="left" required; }
            label { (text.work) input type="text" name="work" required maxlength="1000"; }
            label { (text.result) input type="text" name="result" required maxlength="1000"; }
            label { (text.alert_id) input type="text" name="alert_id" maxlength="64" value=[alert]; }
            button type="submit" { (text.record) }
        }
    }
}

/// A command to the site's logger (CN and CP as in the standard), queued as the API queues it.
pub(crate) fn command_form(text: &Text, mn: &str, csrf: &str) -> Markup {
    html! {
        form.record #command-form method="post" action={ "/console/sites/" (mn) "/commands" } {
            input type="hidden" name="csrf" value=(csrf);
            label { "CN" input type="text" name="cn" required maxlength="4" size="5" placeholder="2061"; }
            label { "CP (KEY=VALUE)" textarea name="cp" rows="2" cols="36" placeholder="BeginTime=20261201000000\nEndTime=20261201230000" {} }
            button type="submit" { (text.send_command) }
        }
    }
}
