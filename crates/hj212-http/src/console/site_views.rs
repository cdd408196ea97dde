//! Parts of a site's page drawn on the server: the 48-hour chart of hourly values against the
//! limit (SVG, no script), and the heat map of the last days' hours as the rate counts them.

use std::collections::HashMap;
use std::fmt::Write as _;

use hj212_compliance::{Range, Report};
use hj212_store::MarkRecord;
use maud::{Markup, PreEscaped, html};

use super::layout::time;
use super::text::Text;

const HOUR_MS: i64 = 3_600_000;
const CHART_WIDTH: f64 = 640.0;
const CHART_HEIGHT: f64 = 140.0;
/// Room for the axis labels.
const MARGIN: f64 = 36.0;

/// One factor's hourly values over `range` with its upper limit, as an SVG line chart.
pub(crate) fn hourly_chart(title: &str, values: &[(i64, f64)], limit: Option<f64>, range: Range) -> Markup {
    let top = values.iter().map(|(_, v)| *v).chain(limit).fold(0.0_f64, f64::max) * 1.1;
    let top = if top > 0.0 { top } else { 1.0 };
    let span = (range.to_ms - range.from_ms).max(1) as f64;
    let x = |ms: i64| MARGIN + (ms - range.from_ms) as f64 / span * (CHART_WIDTH - MARGIN - 8.0);
    let y = |v: f64| 8.0 + (1.0 - v.max(0.0) / top) * (CHART_HEIGHT - 28.0);
    let mut points = String::new();
    for (ms, value) in values {
        let _ = write!(points, "{:.1},{:.1} ", x(*ms + HOUR_MS / 2), y(*value));
    }
    let label = |v: f64| if top < 10.0 { format!("{v:.2}") } else { format!("{v:.0}") };
    let ticks = (0..=4).map(|i| range.from_ms + (range.to_ms - range.from_ms) * i / 4);
    html! {
        figure.chart {
            figcaption { (title) }
            svg viewBox={ "0 0 " (CHART_WIDTH) " " (CHART_HEIGHT) } role="img" aria-label=(title) {
                line.axis x1=(MARGIN) y1=(y(0.0)) x2=(CHART_WIDTH - 8.0) y2=(y(0.0)) {}
                text.tick x="2" y=(y(top / 1.1) + 4.0) { (label(top / 1.1)) }
                text.tick x="2" y=(y(0.0)) { "0" }
                @for tick in ticks {
                    text.tick x=(x(tick) - 16.0) y=(CHART_HEIGHT - 4.0) { (time(tick).get(11..).unwrap_or_default()) }
                }
                @if let Some(limit) = limit {
                    line.limit x1=(MARGIN) y1=(y(limit)) x2=(CHART_WIDTH - 8.0) y2=(y(limit)) {}
                }
                @if values.len() > 1 {
                    polyline.values points=(points.trim_end()) {}
                }
                @for (ms, value) in values {
                    @let class = if limit.is_some_and(|l| *value > l) { "value over" } else { "value" };
                    circle class=(class) cx=(format!("{:.1}", x(*ms + HOUR_MS / 2))) cy=(format!("{:.1}", y(*value))) r="2" {
                        title { (time(*ms)) " " (value) }
                    }
                }
            }
        }
    }
}

/// How one hour counts for the rate.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Hour {
    Valid,
    Missing,
    Late,
    Invalid,
    Marked,
    NotDue,
}

impl Hour {
    fn class(self) -> &'static str {
        match self {
            Self::Valid => "h-valid",
            Self::Missing => "h-missing",
            Self::Late => "h-late",
            Self::Invalid => "h-invalid",
            Self::Marked => "h-marked",
            Self::NotDue => "h-later",
        }
    }

    fn label(self, text: &Text) -> &'static str {
        match self {
            Self::Valid => text.hour_valid,
            Self::Missing => text.hour_missing,
            Self::Late => text.hour_late,
            Self::Invalid => text.hour_invalid,
            Self::Marked => text.hour_marked,
            Self::NotDue => text.hour_later,
        }
    }
}

/// The hours of `range` (whole days) as rows of 24 cells, each coloured by how it counts:
/// a period is missing, late or invalid when any assessed factor's is; a mark covers it.
pub(crate) fn heat_map(text: &Text, report: &Report, range: Range, marks: &[MarkRecord]) -> Markup {
    let mut worst: HashMap<i64, Hour> = HashMap::new();
    let mut note = |start: i64, hour: Hour| {
        let cell = worst.entry(start).or_insert(hour);
        // Missing outranks late, late outranks invalid.
        if hour == Hour::Missing || (hour == Hour::Late && *cell == Hour::Invalid) {
            *cell = hour;
        }
    };
    for (_, start) in &report.missing {
        note(*start, Hour::Missing);
    }
    for (_, start, _) in &report.late_periods {
        note(*start, Hour::Late);
    }
    for (_, start, _) in &report.invalid {
        note(*start, Hour::Invalid);
    }
    let of = |start: i64| {
        if start + HOUR_MS > report.evaluated_to_ms {
            Hour::NotDue
        } else if marks.iter().any(|m| m.mark.from_ms <= start && start + HOUR_MS <= m.mark.to_ms) {
            Hour::Marked
        } else {
            worst.get(&start).copied().unwrap_or(Hour::Valid)
        }
    };
    let days = (range.from_ms..range.to_ms).step_by(usize::try_from(24 * HOUR_MS).unwrap_or(usize::MAX));
    html! {
        table.heat {
            thead { tr { th {} @for h in 0..24 { th { (h) } } } }
            tbody {
                @for day in days {
                    tr {
                        th { (time(day).get(5..10).unwrap_or_default()) }
                        @for h in 0..24 {
                            @let start = day + h * HOUR_MS;
                            @let hour = of(start);
                            td class=(hour.class()) title={ (time(start)) " " (hour.label(text)) } {}
                        }
                    }
                }
            }
        }
        p.legend {
            @for hour in [Hour::Valid, Hour::Missing, Hour::Late, Hour::Invalid, Hour::Marked, Hour::NotDue] {
                span class=(hour.class()) { (PreEscaped("&nbsp;&nbsp;")) } " " (hour.label(text)) " "
            }
        }
    }
}

/// Missing periods as runs: `(factor, first period, last period)`, newest first, at most `max`.
pub(crate) fn missing_runs(report: &Report, max: usize) -> Vec<(String, i64, i64)> {
    let mut sorted: Vec<&(String, i64)> = report.missing.iter().collect();
    sorted.sort();
    let mut runs: Vec<(String, i64, i64)> = Vec::new();
    for (factor, start) in sorted {
        match runs.last_mut() {
            Some((f, _, last)) if f == factor && *last + HOUR_MS == *start => *last = *start,
            _ => runs.push((factor.clone(), *start, *start)),
        }
    }
    runs.sort_by_key(|(_, first, _)| std::cmp::Reverse(*first));
    runs.truncate(max);
    runs
}
