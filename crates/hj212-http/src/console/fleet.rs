//! The fleet page (`/console/`): every site with its online state, last data time, effective
//! rate today and this month against its target, and open alerts, what needs attention first.

use std::collections::HashMap;

use axum::extract::State;
use axum::response::{IntoResponse, Response};
use hj212_alerts::query::{self, Filter};
use hj212_proto::time::BeijingTime;
use maud::{Markup, html};

use super::Visitor;
use super::fleet_rates::SiteRates;
use super::layout::{Nav, percent, time};
use super::text::Text;
use crate::AppState;

/// Open alerts read for the counts (more are counted as this many).
const MAX_OPEN_ALERTS: usize = 10_000;

/// One row of the fleet table.
#[derive(Debug)]
pub(crate) struct Row {
    pub mn: String,
    pub name: String,
    pub online: bool,
    pub last_data_ms: Option<i64>,
    pub rates: Option<SiteRates>,
    /// The site's target, hundredths of a percent (95 % unless its rules say otherwise).
    pub target_bp: u64,
    pub open_alerts: usize,
}

impl Row {
    fn below_target(&self, rate: Option<u64>) -> bool {
        rate.is_some_and(|bp| bp < self.target_bp)
    }

    /// Offline sites first, then those below target today, then by open alerts, then by name.
    fn attention_key(&self) -> (bool, bool, std::cmp::Reverse<usize>, String) {
        let below = self.below_target(self.rates.and_then(|r| r.today));
        (self.online, !below, std::cmp::Reverse(self.open_alerts), self.name.clone())
    }
}

pub(crate) async fn page(State(state): State<AppState>, visitor: Visitor) -> Response {
    let path = state.data_dir.alerts();
    let open = state
        .queries
        .run(move || {
            let filter = Filter { active_only: true, mn: None, from_ms: None, to_ms: None, limit: MAX_OPEN_ALERTS };
            query::list(&query::open(&path)?, &filter)
        })
        .await;
    let open = match open {
        Ok(alerts) => alerts,
        Err(error) => return error.into_response(),
    };
    let mut open_by_mn: HashMap<String, usize> = HashMap::new();
    for alert in &open {
        if let Some(mn) = alert["mn"].as_str() {
            *open_by_mn.entry(mn.to_owned()).or_default() += 1;
        }
    }
    let rates = state.console.as_ref().map(|c| c.rates.get(&state));
    let mut rows: Vec<Row> = state
        .shared
        .registry
        .snapshot()
        .values()
        .map(|site| {
            let live = state.shared.states.get(&site.mn).unwrap_or_default();
            Row {
                mn: site.mn.clone(),
                name: site.name.clone(),
                online: live.connections > 0,
                last_data_ms: live.last_data_time.and_then(|t| BeijingTime::parse(&t).ok()).map(|t| t.unix_millis()),
                rates: rates.as_ref().and_then(|r| r.by_mn.get(&site.mn).copied()),
                target_bp: u64::from(hj212_store::rules_for(&site.config).target_bp),
                open_alerts: open_by_mn.get(&site.mn).copied().unwrap_or(0),
            }
        })
        .collect();
    rows.sort_by_cached_key(Row::attention_key);
    let computed_ms = rates.as_ref().map(|r| r.computed_ms).filter(|ms| *ms > 0);
    let text = visitor.lang.text();
    let body = table(text, &rows, computed_ms);
    let markup = super::layout::page(visitor.lang, Some(&visitor.user), Nav::Fleet, text.fleet, "/console/", &body);
    super::html_page(markup, visitor.lang, visitor.lang_asked)
}

/// The page's body: search box and the table (the part refreshed live).
pub(crate) fn table(text: &Text, rows: &[Row], rates_computed_ms: Option<i64>) -> Markup {
    let online = rows.iter().filter(|r| r.online).count();
    html! {
        h1 { (text.fleet) }
        div.toolbar {
            input #filter type="search" placeholder=(text.search) aria-label=(text.search);
        }
        div #live {
            p.muted {
                (rows.len()) " " (text.sites_count) " · " (text.online) " " (online) " · " (text.offline) " " (rows.len() - online)
                @if let Some(ms) = rates_computed_ms { " · " (text.rates_as_of) " " (time(ms)) }
            }
            table #fleet {
                thead { tr {
                    th { (text.site) } th.wide { "MN" } th { (text.state) } th.wide { (text.last_data) }
                    th { (text.rate_today) } th { (text.rate_month) } th { (text.open_alerts) }
                } }
                tbody {
                    @for row in rows { (fleet_row(text, row)) }
                }
            }
        }
    }
}

fn fleet_row(text: &Text, row: &Row) -> Markup {
    let search = format!("{} {}", row.name, row.mn).to_lowercase();
    let (today, month) = (row.rates.and_then(|r| r.today), row.rates.and_then(|r| r.month));
    html! {
        tr data-search=(search) data-mn=(row.mn) {
            td { a href={ "/console/sites/" (row.mn) } { (row.name) } }
            td.wide.num { (row.mn) }
            td {
                @if row.online { span.online { (text.online) } } @else { span.offline { (text.offline) } }
            }
            td.wide.num { (row.last_data_ms.map_or_else(|| "–".to_owned(), time)) }
            td.num class=[row.below_target(today).then_some("below")] { (percent(today)) }
            td.num class=[row.below_target(month).then_some("below")] { (percent(month)) }
            td.num { (row.open_alerts) }
        }
    }
}
