//! `[service]`: the operations company's service targets, and each site's `service_area`.

use serde::{Deserialize, Serialize};

/// Where a site is, for its on-site time target.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ServiceArea {
    #[default]
    Urban,
    Suburban,
}

/// How fast an alert is answered and a site reached; the reports hold visits against them.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Service {
    /// Certification spec 4.3.3.1: respond (acknowledge) within 1 hour of an alert.
    pub response_minutes: u32,
    /// Certification spec 4.3.3.1: on site within 4 hours of an alert in urban areas ...
    pub on_site_minutes_urban: u32,
    /// ... and within 8 hours in suburban ones.
    pub on_site_minutes_suburban: u32,
}

impl Default for Service {
    fn default() -> Self {
        Self { response_minutes: 60, on_site_minutes_urban: 240, on_site_minutes_suburban: 480 }
    }
}

impl Service {
    /// The on-site target of a site in `area`, minutes.
    pub fn on_site_minutes(&self, area: ServiceArea) -> u32 {
        match area {
            ServiceArea::Urban => self.on_site_minutes_urban,
            ServiceArea::Suburban => self.on_site_minutes_suburban,
        }
    }
}

/// A week: a longer target is a typo.
const MAX_MINUTES: u32 = 7 * 24 * 60;

pub(crate) fn check_service(service: &Service, problem: &mut impl FnMut(&str, String)) {
    for (key, value) in [
        ("service.response_minutes", service.response_minutes),
        ("service.on_site_minutes_urban", service.on_site_minutes_urban),
        ("service.on_site_minutes_suburban", service.on_site_minutes_suburban),
    ] {
        if !(1..=MAX_MINUTES).contains(&value) {
            problem(key, format!("{value} is outside 1..={MAX_MINUTES} minutes"));
        }
    }
}

/// `[reports]`: the daily and monthly reports written to `data_dir/reports/`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Reports {
    /// Write them at all (the API and `hj212-audit report` answer either way).
    pub enabled: bool,
    /// Beijing time `HH:MM` at which the previous day's report is written (and on the 1st, the
    /// previous month's): late enough for the day's last hourly records to have arrived.
    pub daily_at: String,
}

impl Default for Reports {
    fn default() -> Self {
        Self { enabled: true, daily_at: "00:30".to_owned() }
    }
}

impl Reports {
    /// Minutes after Beijing midnight of `daily_at`, if it is a valid `HH:MM`.
    pub fn daily_at_minutes(&self) -> Option<u32> {
        let (hours, minutes) = self.daily_at.split_once(':')?;
        let (hours, minutes): (u32, u32) = (hours.parse().ok()?, minutes.parse().ok()?);
        (hours < 24 && minutes < 60 && self.daily_at.len() == 5).then_some(hours * 60 + minutes)
    }
}

pub(crate) fn check_reports(reports: &Reports, problem: &mut impl FnMut(&str, String)) {
    if reports.daily_at_minutes().is_none() {
        problem("reports.daily_at", format!("{:?} is not a Beijing time HH:MM", reports.daily_at));
    }
}
