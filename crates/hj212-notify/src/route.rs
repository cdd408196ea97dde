//! Which outbox messages a channel sends, skips or holds: a pure decision from the config,
//! the message and the Beijing time of day, unit-tested beside it.

use hj212_config::{Notify, QuietHours};
use serde_json::Value;

/// What a channel does with one outbox message.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Decision {
    Send,
    /// Quiet hours and not critical: waits for the digest at their end.
    Hold,
    Skip(Skip),
}

/// Why a message is not sent.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Skip {
    /// Not an alert message (a site status, the archive head, a report): not for people.
    NotAlert,
    /// Outside the channel's sites, kinds, severities or states.
    Route,
    /// Grouped under a fleet-wide alert that is sent instead.
    Inhibited,
}

/// A channel's routing, from its config.
#[derive(Debug, Clone, Default)]
pub struct Route {
    sites: Vec<String>,
    kinds: Vec<String>,
    severities: Vec<String>,
    states: Vec<String>,
    quiet: Option<QuietHours>,
}

impl Route {
    pub fn from_config(channel: &Notify) -> Self {
        Self {
            sites: channel.sites.clone(),
            kinds: channel.kinds.clone(),
            severities: channel.severities.clone(),
            states: channel.states.clone(),
            // Checked at start (config check): an invalid value never gets here.
            quiet: channel.quiet_hours.as_deref().and_then(|q| QuietHours::parse(q).ok()),
        }
    }

    /// Whether `minute` of the Beijing day is in the channel's quiet hours.
    pub fn quiet_at(&self, minute: u16) -> bool {
        self.quiet.is_some_and(|q| q.contains(minute))
    }

    /// The decision for the message on `topic` with `payload`, at `minute` of the Beijing day.
    pub fn decide(&self, topic: &str, payload: &Value, minute: u16) -> Decision {
        if !topic.starts_with("alerts/") || !payload.is_object() {
            return Decision::Skip(Skip::NotAlert);
        }
        if payload.get("inhibited_by").is_some_and(|v| !v.is_null()) {
            return Decision::Skip(Skip::Inhibited);
        }
        let field = |key: &str| payload.get(key).and_then(Value::as_str).unwrap_or("");
        let allows = |list: &[String], value: &str| list.is_empty() || list.iter().any(|v| v == value);
        // A fleet-wide outage concerns every site: a channel for some sites gets it too.
        let fleet = field("kind") == "fleet_outage";
        if !((fleet || allows(&self.sites, field("mn")))
            && allows(&self.kinds, field("kind"))
            && allows(&self.severities, field("severity"))
            && allows(&self.states, field("state")))
        {
            return Decision::Skip(Skip::Route);
        }
        if self.quiet_at(minute) && field("severity") != "critical" {
            return Decision::Hold;
        }
        Decision::Send
    }
}

/// The minute of the Beijing day (UTC+8, no daylight saving) at Unix milliseconds `ms`.
pub fn beijing_minute(ms: i64) -> u16 {
    let minutes = ms.div_euclid(60_000) + 8 * 60;
    u16::try_from(minutes.rem_euclid(1440)).unwrap_or(0)
}

#[cfg(test)]
mod tests {
    use super::*;
    use hj212_config::NotifyKind;
    use serde_json::json;

    fn alert(mn: &str, kind: &str, severity: &str, state: &str) -> Value {
        json!({ "id": "a-1", "mn": mn, "kind": kind, "severity": severity, "state": state })
    }

    #[test]
    fn routing_by_site_kind_severity_and_state() {
        let mut channel = Notify::new("duty", NotifyKind::Webhook);
        channel.sites = vec!["A".into()];
        channel.kinds = vec!["exceedance".into(), "offline".into()];
        channel.severities = vec!["critical".into()];
        channel.states = vec!["raised".into(), "cleared".into()];
        let route = Route::from_config(&channel);
        let at = |payload: &Value| route.decide("alerts/A/exceedance", payload, 600);
        assert_eq!(at(&alert("A", "exceedance", "critical", "raised")), Decision::Send);
        assert_eq!(at(&alert("B", "exceedance", "critical", "raised")), Decision::Skip(Skip::Route));
        channel.kinds.push("fleet_outage".into());
        let with_fleet = Route::from_config(&channel);
        let fleet = alert("fleet", "fleet_outage", "critical", "raised");
        assert_eq!(with_fleet.decide("alerts/fleet/fleet_outage", &fleet, 600), Decision::Send, "for every site");
        assert_eq!(at(&alert("A", "zero", "critical", "raised")), Decision::Skip(Skip::Route));
        assert_eq!(at(&alert("A", "exceedance", "warning", "raised")), Decision::Skip(Skip::Route));
        assert_eq!(at(&alert("A", "exceedance", "critical", "updated")), Decision::Skip(Skip::Route));
        assert_eq!(route.decide("status/A", &json!({}), 600), Decision::Skip(Skip::NotAlert));
        let mut inhibited = alert("A", "offline", "critical", "raised");
        inhibited["inhibited_by"] = json!("fleet-1");
        assert_eq!(at(&inhibited), Decision::Skip(Skip::Inhibited));
    }

    #[test]
    fn quiet_hours_hold_all_but_critical() {
        let mut channel = Notify::new("night", NotifyKind::Dingtalk);
        channel.quiet_hours = Some("22:00-07:00".into());
        let route = Route::from_config(&channel);
        let warning = alert("A", "zero", "warning", "raised");
        let critical = alert("A", "offline", "critical", "raised");
        assert_eq!(route.decide("alerts/A/zero", &warning, 23 * 60), Decision::Hold);
        assert_eq!(route.decide("alerts/A/offline", &critical, 23 * 60), Decision::Send);
        assert_eq!(route.decide("alerts/A/zero", &warning, 8 * 60), Decision::Send);
    }

    #[test]
    fn beijing_minute_is_utc_plus_8() {
        // 2026-11-28T15:30:00Z is 23:30 in Beijing.
        assert_eq!(beijing_minute(1_795_879_800_000), 23 * 60 + 30);
        assert_eq!(beijing_minute(0), 8 * 60);
    }
}
