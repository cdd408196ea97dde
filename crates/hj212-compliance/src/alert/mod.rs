//! The alert rule engine (docs/compliance.md §3-5), with no I/O: fed what the archive
//! holds (data, authenticated frames, wrong passwords, conflicting resends) and the clock, it
//! returns alert transitions, once per incident: raised, updated only when worse, cleared.
//! Its state is per site and serialisable, so the daemon persists it with its progress.

mod fleet;
mod incident;
mod kind;
mod rules;
mod site;
mod text;

use std::collections::{BTreeSet, HashMap};

pub use fleet::{FLEET, FleetRules, FleetState, LISTED_SITES};
pub use incident::{Cause, Compared, Incidents, Transition};
pub use kind::{AlertKind, AlertState, Severity};
pub use rules::{FactorRules, LimitBasis, SiteRules};
pub use site::{DataRecord, Sample, SiteState};
pub use text::{MAX_DECIMALS, MessageContext, decimals, flag_meaning, number};

/// Every site's alert state.
#[derive(Debug, Default)]
pub struct Engine {
    sites: HashMap<String, SiteState>,
    /// Sites whose state changed since the last [`Engine::take_dirty`].
    dirty: BTreeSet<String>,
    fleet: FleetState,
    /// The fleet state changed since the last [`Engine::take_fleet_dirty`].
    fleet_dirty: bool,
}

impl Engine {
    /// Puts back a site's persisted state.
    pub fn restore(&mut self, mn: String, state: SiteState) {
        self.sites.insert(mn, state);
    }

    /// Puts back the persisted fleet state.
    pub fn restore_fleet(&mut self, state: FleetState) {
        self.fleet = state;
    }

    /// The fleet state when it changed since the last call (to persist).
    pub fn take_fleet_dirty(&mut self) -> Option<&FleetState> {
        std::mem::take(&mut self.fleet_dirty).then_some(&self.fleet)
    }

    /// Groups one step's transitions into fleet outages ([`FleetState::group`]); `now_ms` is
    /// the clock tick's time when the step ran the clock rules.
    pub fn group(&mut self, transitions: &mut Vec<Transition>, now_ms: Option<i64>, rules: &FleetRules) {
        if transitions.is_empty() && now_ms.is_none() {
            return;
        }
        self.fleet_dirty |= self.fleet.group(transitions, now_ms, rules);
    }

    /// The fleet rule on a clock tick with no site transitions (raises or clears the outage).
    pub fn group_tick(&mut self, now_ms: i64, rules: &FleetRules) -> Vec<Transition> {
        let mut out = Vec::new();
        self.group(&mut out, Some(now_ms), rules);
        out
    }

    pub fn site(&self, mn: &str) -> Option<&SiteState> {
        self.sites.get(mn)
    }

    /// The sites changed since the last call (to persist).
    pub fn take_dirty(&mut self) -> BTreeSet<String> {
        std::mem::take(&mut self.dirty)
    }

    fn state(&mut self, mn: &str) -> &mut SiteState {
        self.mark(mn);
        self.site_mut(mn)
    }

    fn site_mut(&mut self, mn: &str) -> &mut SiteState {
        if !self.sites.contains_key(mn) {
            self.sites.insert(mn.to_owned(), SiteState::default());
        }
        self.sites.get_mut(mn).expect("inserted above")
    }

    fn mark(&mut self, mn: &str) {
        if !self.dirty.contains(mn) {
            self.dirty.insert(mn.to_owned());
        }
    }

    /// Any authenticated frame from the site. Its time alone is persisted at most once a
    /// minute (after a crash, offline is then judged from a time up to a minute early).
    pub fn seen(&mut self, mn: &str, cause: Cause) -> Vec<Transition> {
        let (transitions, save) = self.site_mut(mn).seen(mn, cause);
        if save || !transitions.is_empty() {
            self.mark(mn);
        }
        transitions
    }

    /// A frame with a configured MN and a wrong password.
    pub fn auth_failure(&mut self, mn: &str, cause: Cause) -> Vec<Transition> {
        self.state(mn).auth_failure(mn, cause).into_iter().collect()
    }

    /// A resend of a stored (MN, CN, DataTime) record with a different value for `factor`.
    pub fn conflict(&mut self, mn: &str, factor: &str, data_time_ms: i64, cause: Cause) -> Vec<Transition> {
        self.state(mn).conflict(mn, factor, data_time_ms, cause).into_iter().collect()
    }

    /// An accepted data upload.
    pub fn data(&mut self, record: &DataRecord<'_>, rules: &SiteRules) -> Vec<Transition> {
        let (transitions, changed) = self.site_mut(record.mn).data(record, rules);
        if changed || !transitions.is_empty() {
            self.mark(record.mn);
        }
        transitions
    }

    /// Time passing at one configured site.
    pub fn tick(&mut self, mn: &str, now_ms: i64, rules: &SiteRules) -> Vec<Transition> {
        let state = self.sites.entry(mn.to_owned()).or_default();
        let (changed, transitions) = state.tick(mn, now_ms, rules);
        if changed && !self.dirty.contains(mn) {
            self.dirty.insert(mn.to_owned());
        }
        transitions
    }
}

#[cfg(test)]
mod tests;
