//! Fleet-wide outages: when many sites go offline together the cause is the platform's link
//! (or a carrier's), not the sites, and duty staff need one message, not one per site. The
//! per-site offline messages of the outage still go out (machines want each site's state),
//! marked `inhibited_by` the fleet alert so notification channels skip them.

use std::collections::{BTreeMap, BTreeSet};

use super::incident::{Cause, Facts, Incidents, Transition, Update};
use super::kind::{AlertKind, AlertState};

/// The `mn` of fleet alerts (their topic is `alerts/fleet/fleet_outage`).
pub const FLEET: &str = "fleet";
/// A fleet message lists at most this many sites (its `value` counts them all).
pub const LISTED_SITES: usize = 10;

/// When offline sites make a fleet outage (`[alerts] fleet_outage_*`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FleetRules {
    /// At least this many sites going offline within `window_ms` make an outage; 0 = off.
    pub min_sites: usize,
    pub window_ms: i64,
}

impl Default for FleetRules {
    fn default() -> Self {
        Self { min_sites: 10, window_ms: 300_000 }
    }
}

/// What the fleet rule remembers (persisted with the site states).
#[derive(Debug, Clone, Default, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct FleetState {
    /// Sites offline now whose offline alert opened within the window: MN -> opened ms.
    recent: BTreeMap<String, i64>,
    /// The open outage's sites, in the order they went offline (MN -> opened ms)...
    members: BTreeMap<String, i64>,
    /// ...and those of them still offline.
    offline: BTreeSet<String>,
    incidents: Incidents,
}

impl FleetState {
    /// The open outage's alert id.
    pub fn open_id(&self) -> Option<&str> {
        self.incidents.ids().next().map(|(_, id)| id)
    }

    /// Groups one step's transitions: notes offline sites, marks the messages of an open
    /// outage's sites `inhibited_by` it, and on a clock tick (`now_ms`) raises or clears the
    /// outage (appended to `transitions`). Returns whether the state changed (to persist).
    pub fn group(&mut self, transitions: &mut Vec<Transition>, now_ms: Option<i64>, rules: &FleetRules) -> bool {
        let mut changed = false;
        let open = self.open_id().map(str::to_owned);
        for t in transitions.iter_mut() {
            match (t.kind, t.state) {
                (AlertKind::Offline, AlertState::Raised) => {
                    self.recent.insert(t.mn.clone(), t.opened_ms);
                    if let Some(id) = &open {
                        self.members.insert(t.mn.clone(), t.opened_ms);
                        self.offline.insert(t.mn.clone());
                        t.inhibited_by = Some(id.clone());
                    }
                }
                (AlertKind::Offline, AlertState::Cleared) => {
                    self.recent.remove(&t.mn);
                    if self.offline.remove(&t.mn) {
                        t.inhibited_by.clone_from(&open);
                    }
                }
                // A member back with records missing: part of the same outage.
                (AlertKind::RecordMissing, _) if open.is_some() && self.members.contains_key(&t.mn) => {
                    t.inhibited_by.clone_from(&open);
                }
                _ => continue,
            }
            changed = true;
        }
        let Some(now) = now_ms else { return changed };
        let horizon = now.saturating_sub(rules.window_ms);
        let before = self.recent.len();
        self.recent.retain(|_, opened| *opened >= horizon);
        changed |= before != self.recent.len();
        match open {
            None if rules.min_sites > 0 && self.recent.len() >= rules.min_sites => {
                let raised = self.raise(transitions, now, rules);
                transitions.extend(raised);
                true
            }
            // Platform rule: the outage is over once more than half of its sites are back;
            // the rest are then ordinary offline sites.
            Some(_) if self.offline.len() * 2 < self.members.len() => {
                let cleared = self.clear(now);
                transitions.extend(cleared);
                true
            }
            _ => changed,
        }
    }

    fn raise(&mut self, transitions: &mut [Transition], now: i64, rules: &FleetRules) -> Option<Transition> {
        self.members = std::mem::take(&mut self.recent);
        self.offline = self.members.keys().cloned().collect();
        let facts = Facts {
            value: Some(self.members.len() as f64),
            limit: Some(rules.min_sites as f64),
            // When its first site went offline: what names the outage (see `incident_id`).
            data_time_ms: self.members.values().min().copied(),
            ..Facts::default()
        };
        let mut raised =
            self.incidents.raise(FLEET, AlertKind::FleetOutage, facts, Cause { at_ms: now, seq: 0 }, Update::Never)?;
        // This step's offline messages of its sites are part of it.
        for t in transitions.iter_mut() {
            if t.kind == AlertKind::Offline && t.state == AlertState::Raised && self.members.contains_key(&t.mn) {
                t.inhibited_by = Some(raised.alert_id.clone());
            }
        }
        self.describe(&mut raised);
        Some(raised)
    }

    fn clear(&mut self, now: i64) -> Option<Transition> {
        let facts = Facts { value: Some(self.members.len() as f64), ..Facts::default() };
        let mut cleared = self.incidents.clear(FLEET, AlertKind::FleetOutage, facts, Cause { at_ms: now, seq: 0 })?;
        self.describe(&mut cleared);
        self.members.clear();
        self.offline.clear();
        Some(cleared)
    }

    /// The first sites of the outage, in the order they went offline, and how many are still offline.
    fn describe(&self, t: &mut Transition) {
        let mut order: Vec<(&i64, &String)> = self.members.iter().map(|(mn, at)| (at, mn)).collect();
        order.sort();
        t.sites = order.into_iter().take(LISTED_SITES).map(|(_, mn)| mn.clone()).collect();
        t.still_offline = Some(u32::try_from(self.offline.len()).unwrap_or(u32::MAX));
    }
}
