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
