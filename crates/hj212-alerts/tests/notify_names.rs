//! The names a `[[notify]]` channel may route on (checked by hj212-config, which does not
//! depend on the rule engine) are the engine's own.

use hj212_compliance::alert::{AlertKind, AlertState, Severity};

#[test]
fn notify_routing_names_are_the_engines() {
    let kinds: Vec<&str> = AlertKind::ALL.iter().map(|k| k.as_str()).collect();
    assert_eq!(kinds, hj212_config::ALERT_KINDS);
    let states: Vec<&str> = AlertState::ALL.iter().map(|s| s.as_str()).collect();
    assert_eq!(states, hj212_config::ALERT_STATES);
    let severities = [Severity::Critical, Severity::Warning, Severity::Info].map(Severity::as_str);
    assert_eq!(severities, hj212_config::ALERT_SEVERITIES);
}
