use super::*;
use crate::Basis;

const MN: &str = "88888880000001";
// 2026-11-01T00:00:00+08:00
const NOV_1: i64 = 1_793_462_400_000;
const HOUR: i64 = 3_600_000;

fn rules() -> SiteRules {
    let mut rules = SiteRules::default();
    rules
        .factors
        .insert("a21026".into(), FactorRules { max: Some(35.0), reference_o2: Some(6.0), ..FactorRules::default() });
    rules
}

fn hourly(seq: u64, hour: i64, samples: Vec<Sample<'static>>) -> DataRecord<'static> {
    let data_time_ms = NOV_1 + hour * HOUR;
    let cause = Cause { at_ms: data_time_ms + HOUR + 60_000, seq };
    DataRecord { mn: MN, st: None, cn: 2061, data_time_ms, cause, samples, resent: false }
}

fn so2(value: f64, zs: Option<f64>, flag: &'static str) -> Sample<'static> {
    Sample {
        factor: "a21026",
        value: Some(value),
        zs,
        flag: Some(if flag.is_empty() { "N" } else { flag }),
        signed: false,
        text: None,
        zs_text: None,
    }
}

fn o2(value: f64) -> Sample<'static> {
    Sample { factor: "a19001", value: Some(value), zs: None, flag: Some("N"), signed: false, text: None, zs_text: None }
}

fn kinds(transitions: &[Transition]) -> Vec<(AlertKind, AlertState)> {
    transitions.iter().map(|t| (t.kind, t.state)).collect()
}

#[test]
fn exceedance_uses_the_loggers_converted_value_first() {
    let mut engine = Engine::default();
    // Measured 30 is compliant, but the logger's converted 40 is not.
    let raised = engine.data(&hourly(1, 0, vec![so2(30.0, Some(40.0), ""), o2(6.0)]), &rules());
    assert_eq!(kinds(&raised), [(AlertKind::Exceedance, AlertState::Raised)]);
    assert_eq!(
        (raised[0].value, raised[0].limit, raised[0].factor.as_deref()),
        (Some(40.0), Some(35.0), Some("a21026"))
    );
    assert_eq!(raised[0].severity, Severity::Critical);
    assert!(engine.data(&hourly(2, 1, vec![so2(30.0, Some(39.0), "")]), &rules()).is_empty(), "not worse: quiet");
    let cleared = engine.data(&hourly(3, 2, vec![so2(20.0, Some(30.0), "")]), &rules());
    assert_eq!(kinds(&cleared), [(AlertKind::Exceedance, AlertState::Cleared)]);
    assert_eq!(cleared[0].alert_id, raised[0].alert_id);
}

#[test]
fn exceedance_converts_to_the_reference_o2_and_guards_implausible_o2() {
    let mut engine = Engine::default();
    // 25 measured at 11 % O2, reference 6 %: 25 x 15 / 10 = 37.5 > 35.
    let raised = engine.data(&hourly(1, 0, vec![so2(25.0, None, ""), o2(11.0)]), &rules());
    assert_eq!(kinds(&raised), [(AlertKind::Exceedance, AlertState::Raised)]);
    assert!((raised[0].value.unwrap() - 37.5).abs() < 1e-9);
    // O2 at 20.5 %: no conversion, an implausible-O2 alert, and the exceedance stays as it was.
    let guard = engine.data(&hourly(2, 1, vec![so2(1.0, None, ""), o2(20.5)]), &rules());
    assert_eq!(kinds(&guard), [(AlertKind::ImplausibleO2, AlertState::Raised)]);
    assert_eq!((guard[0].value, guard[0].limit), (Some(20.5), Some(20.0)));
    let back = engine.data(&hourly(3, 2, vec![so2(10.0, None, ""), o2(6.0)]), &rules());
    assert_eq!(
        kinds(&back),
        [(AlertKind::ImplausibleO2, AlertState::Cleared), (AlertKind::Exceedance, AlertState::Cleared)]
    );
}

#[test]
fn invalid_averages_are_not_judged_and_real_time_data_only_pre_alerts() {
    let mut engine = Engine::default();
    let mut rules = rules();
    rules.watched = vec!["none".into()];
    assert!(engine.data(&hourly(1, 0, vec![so2(90.0, Some(90.0), "D")]), &rules).is_empty(), "flag D: not 超标");
    let realtime = |seq, value| DataRecord {
        mn: MN,
        st: None,
        cn: 2011,
        data_time_ms: NOV_1,
        cause: Cause { at_ms: NOV_1 + 1000, seq },
        samples: vec![so2(value, Some(value), "")],
        resent: false,
    };
    assert!(engine.data(&realtime(2, 50.0), &rules).is_empty(), "early warning off by default");
    rules.early_warning = true;
    let warning = engine.data(&realtime(3, 50.0), &rules);
    assert_eq!(kinds(&warning), [(AlertKind::ExceedanceWarning, AlertState::Raised)]);
    assert_eq!(warning[0].severity, Severity::Warning);
    // Within the 5 % hysteresis band: still open; below it: cleared.
    assert!(engine.data(&realtime(4, 34.0), &rules).is_empty());
    assert_eq!(kinds(&engine.data(&realtime(5, 33.0), &rules)), [(AlertKind::ExceedanceWarning, AlertState::Cleared)]);
}

#[test]
fn value_rules_run_on_the_sites_series_while_it_runs() {
    let mut engine = Engine::default();
    let mut rules = SiteRules { running_factor: Some("a00000".into()), ..SiteRules::default() };
    rules.flat_line_ms = 3 * HOUR;
    let flow = |v| Sample {
        factor: "a00000",
        value: Some(v),
        zs: None,
        flag: Some("N"),
        signed: false,
        text: None,
        zs_text: None,
    };
    let mut all = Vec::new();
    for hour in 0..3_u8 {
        all.extend(engine.data(
            &hourly(u64::from(hour), i64::from(hour), vec![so2(12.0, None, ""), flow(100.0 + f64::from(hour))]),
            &rules,
        ));
    }
    assert_eq!(kinds(&all), [(AlertKind::FlatLine, AlertState::Raised)]);
    assert_eq!(all[0].factor.as_deref(), Some("a21026"));
    // Negative and flag M on minute data are ignored for an hourly site; on the hourly series they count.
    let minute = DataRecord { cn: 2051, ..hourly(9, 3, vec![so2(-1.0, None, "M")]) };
    assert!(engine.data(&minute, &rules).is_empty());
    let t = engine.data(&hourly(10, 3, vec![so2(-1.0, None, "M"), flow(50.0)]), &rules);
    assert_eq!(
        kinds(&t),
        [
            (AlertKind::Negative, AlertState::Raised),
            (AlertKind::AbnormalFlag, AlertState::Raised),
            (AlertKind::FlatLine, AlertState::Cleared),
        ]
    );
    assert_eq!(t[1].severity, Severity::Info);
}

#[test]
fn offline_after_three_intervals_and_back_on_the_next_frame() {
    let mut engine = Engine::default();
    let rules = SiteRules { offline_after_ms: 900_000, ..SiteRules::default() };
    assert!(engine.tick(MN, NOV_1, &rules).is_empty(), "never seen: the clock starts now");
    assert!(engine.tick(MN, NOV_1 + 900_000, &rules).is_empty());
    let offline = engine.tick(MN, NOV_1 + 900_001, &rules);
    assert_eq!(kinds(&offline), [(AlertKind::Offline, AlertState::Raised)]);
    assert!(engine.tick(MN, NOV_1 + 1_000_000, &rules).is_empty(), "once per incident");
    assert!(!engine.site(MN).unwrap().online());
    let back = engine.seen(MN, Cause { at_ms: NOV_1 + 1_200_000, seq: 5 });
    assert_eq!(kinds(&back), [(AlertKind::Offline, AlertState::Cleared)]);
    assert!(engine.site(MN).unwrap().online());
}

#[test]
fn hourly_record_missing_at_ten_past_and_cleared_by_the_backfill() {
    let mut engine = Engine::default();
    let rules = SiteRules { offline_after_ms: i64::MAX, ..SiteRules::default() };
    engine.tick(MN, NOV_1 + 5 * 60_000, &rules);
    // The 00:00 hour record arrives; the 01:00 one does not.
    engine.data(&hourly(1, 0, vec![so2(1.0, None, "")]), &rules);
    assert!(engine.tick(MN, NOV_1 + HOUR + 10 * 60_000, &rules).is_empty(), "00:00 hour is in");
    assert!(engine.tick(MN, NOV_1 + 2 * HOUR + 10 * 60_000 - 1, &rules).is_empty(), "not yet HH+10");
    let missing = engine.tick(MN, NOV_1 + 2 * HOUR + 10 * 60_000, &rules);
    assert_eq!(kinds(&missing), [(AlertKind::RecordMissing, AlertState::Raised)]);
    assert_eq!((missing[0].value, missing[0].data_time_ms), (Some(1.0), Some(NOV_1 + HOUR)));
    let more = engine.tick(MN, NOV_1 + 3 * HOUR + 10 * 60_000, &rules);
    assert_eq!(kinds(&more), [(AlertKind::RecordMissing, AlertState::Updated)]);
    assert!(engine.data(&hourly(2, 1, vec![so2(1.0, None, "")]), &rules).is_empty(), "one of two in");
    let back = engine.data(&hourly(3, 2, vec![so2(1.0, None, "")]), &rules);
    assert_eq!(kinds(&back), [(AlertKind::RecordMissing, AlertState::Cleared)]);
}

#[test]
fn clock_drift_needs_consistent_offsets_then_clears() {
    let mut engine = Engine::default();
    let rules = SiteRules::default();
    let realtime = |seq: u8, offset_ms: i64| DataRecord {
        mn: MN,
        st: None,
        cn: 2011,
        data_time_ms: NOV_1 + i64::from(seq) * 60_000,
        cause: Cause { at_ms: NOV_1 + i64::from(seq) * 60_000 + offset_ms, seq: u64::from(seq) },
        samples: Vec::new(),
        resent: false,
    };
    // Resent old data: late by varying amounts, never consistent.
    for (seq, offset) in [(1, 600_000), (2, 900_000), (3, 1_300_000)] {
        assert!(engine.data(&realtime(seq, offset), &rules).is_empty());
    }
    assert!(engine.data(&realtime(4, -90_000), &rules).is_empty());
    assert!(engine.data(&realtime(5, -91_000), &rules).is_empty());
    let drift = engine.data(&realtime(6, -90_500), &rules);
    assert_eq!(kinds(&drift), [(AlertKind::ClockDrift, AlertState::Raised)]);
    assert_eq!((drift[0].value, drift[0].limit), (Some(-90.5), Some(60.0)));
    assert_eq!(kinds(&engine.data(&realtime(7, 2_000), &rules)), [(AlertKind::ClockDrift, AlertState::Cleared)]);
}

#[test]
fn wrong_passwords_raise_once_and_clear_after_a_quiet_hour() {
    let mut engine = Engine::default();
    let rules = SiteRules { offline_after_ms: i64::MAX, record_grace_ms: i64::MAX / 2, ..SiteRules::default() };
    let first = engine.auth_failure(MN, Cause { at_ms: NOV_1, seq: 1 });
    assert_eq!(kinds(&first), [(AlertKind::AuthFailure, AlertState::Raised)]);
    assert!(engine.auth_failure(MN, Cause { at_ms: NOV_1 + 1, seq: 2 }).is_empty());
    // A spoofer interleaving with the real logger must not make an incident per frame.
    assert!(engine.seen(MN, Cause { at_ms: NOV_1 + 2, seq: 3 }).is_empty());
    assert!(engine.auth_failure(MN, Cause { at_ms: NOV_1 + 3, seq: 4 }).is_empty());
    assert!(engine.tick(MN, NOV_1 + HOUR, &rules).is_empty());
    let quiet = engine.tick(MN, NOV_1 + HOUR + 4, &rules);
    assert_eq!(kinds(&quiet), [(AlertKind::AuthFailure, AlertState::Cleared)]);
}

#[test]
fn rules_set_to_zero_are_off_and_daily_sites_need_two_equal_days_for_a_flat_line() {
    let mut engine = Engine::default();
    let off = SiteRules { flat_line_ms: 0, zero_ms: 0, flag_run_ms: 0, ..SiteRules::default() };
    for hour in 0..10 {
        assert!(
            engine
                .data(&hourly(hour, i64::try_from(hour).unwrap(), vec![so2(0.0, None, "M")]), &off)
                .iter()
                .all(|t| t.kind == AlertKind::AbnormalFlag)
        );
    }
    let day = SiteRules { basis: Basis::Day, ..SiteRules::default() };
    let daily = |seq: u64, days: i64, value: f64| DataRecord {
        cn: 2031,
        data_time_ms: NOV_1 + days * 24 * HOUR,
        ..hourly(seq, 0, vec![so2(value, None, "")])
    };
    let mut engine = Engine::default();
    assert!(engine.data(&daily(1, 0, 12.0), &day).is_empty(), "one daily value is no flat line");
    assert_eq!(kinds(&engine.data(&daily(2, 1, 12.0), &day)), [(AlertKind::FlatLine, AlertState::Raised)]);
    assert_eq!(kinds(&engine.data(&daily(3, 2, 13.0), &day)), [(AlertKind::FlatLine, AlertState::Cleared)]);
}

#[test]
fn every_conflicting_resend_is_reported_and_the_incident_clears_after_a_quiet_day() {
    let mut engine = Engine::default();
    let rules = SiteRules { offline_after_ms: i64::MAX, ..SiteRules::default() };
    let first = engine.conflict(MN, "a21026", NOV_1, Cause { at_ms: NOV_1 + HOUR, seq: 9 });
    assert_eq!(kinds(&first), [(AlertKind::Tamper, AlertState::Raised)]);
    assert_eq!((first[0].factor.as_deref(), first[0].data_time_ms), (Some("a21026"), Some(NOV_1)));
    let second = engine.conflict(MN, "a21002", NOV_1, Cause { at_ms: NOV_1 + 2 * HOUR, seq: 10 });
    assert_eq!(kinds(&second), [(AlertKind::Tamper, AlertState::Updated)]);
    assert_eq!(second[0].value, Some(2.0));
    let tamper =
        |t: Vec<Transition>| kinds(&t).into_iter().filter(|(k, _)| *k == AlertKind::Tamper).collect::<Vec<_>>();
    assert!(tamper(engine.tick(MN, NOV_1 + 20 * HOUR, &rules)).is_empty());
    assert_eq!(tamper(engine.tick(MN, NOV_1 + 27 * HOUR, &rules)), [(AlertKind::Tamper, AlertState::Cleared)]);
}

#[test]
fn state_survives_a_round_trip_and_only_changed_sites_are_dirty() {
    let mut engine = Engine::default();
    engine.data(&hourly(1, 0, vec![so2(50.0, Some(50.0), "")]), &rules());
    assert_eq!(engine.take_dirty().into_iter().collect::<Vec<_>>(), [MN]);
    assert!(engine.take_dirty().is_empty());
    let json = serde_json::to_string(engine.site(MN).unwrap()).unwrap();
    let mut restored = Engine::default();
    restored.restore(MN.into(), serde_json::from_str(&json).unwrap());
    let cleared = restored.data(&hourly(2, 1, vec![so2(1.0, Some(1.0), "")]), &rules());
    assert_eq!(kinds(&cleared), [(AlertKind::Exceedance, AlertState::Cleared)], "the open incident was restored");
    let day = SiteRules { basis: Basis::Day, ..SiteRules::default() };
    assert_eq!(day.series_cn(), 2031);
}

#[test]
fn missing_hours_older_than_the_horizon_age_out_and_clear() {
    let mut engine = Engine::default();
    let rules = SiteRules { offline_after_ms: i64::MAX, ..SiteRules::default() };
    engine.tick(MN, NOV_1, &rules);
    // Hours 0-2 never arrive; the incident opens at 03:10.
    let raised = engine.tick(MN, NOV_1 + 3 * HOUR + 10 * 60_000, &rules);
    assert_eq!(kinds(&raised), [(AlertKind::RecordMissing, AlertState::Raised)]);
    // From hour 3 on every record arrives, on time.
    let mut cleared = Vec::new();
    for hour in 3..60 {
        engine.data(
            &hourly(
                u64::try_from(hour).unwrap(),
                hour,
                vec![so2(1.0 + f64::from(u8::try_from(hour).unwrap()), None, "")],
            ),
            &rules,
        );
        cleared.extend(engine.tick(MN, NOV_1 + (hour + 1) * HOUR + 10 * 60_000, &rules));
    }
    // Hours 0-2 leave the 48-hour window at about hour 50: the incident clears then.
    assert_eq!(kinds(&cleared), [(AlertKind::RecordMissing, AlertState::Cleared)], "{cleared:?}");
}

#[test]
fn messages_carry_the_precision_sent_and_what_was_compared() {
    let mut engine = Engine::default();
    let sample = Sample { text: Some("30.1"), zs_text: Some("40.52"), ..so2(30.1, Some(40.52), "") };
    let record = DataRecord { st: Some("31"), ..hourly(1, 0, vec![sample, o2(6.0)]) };
    let raised = engine.data(&record, &rules());
    assert_eq!(raised[0].decimals, Some(2));
    assert_eq!(raised[0].compared, Some(Compared::Logger { field: "ZsAvg" }));
    assert_eq!(raised[0].st.as_deref(), Some("31"));
    assert_eq!(raised[0].value_text().as_deref(), Some("40.52"));
    // Converted by hj212d: the measured text's decimals, and the reference O2 named.
    let mut engine = Engine::default();
    let sample = Sample { text: Some("25.0"), ..so2(25.0, None, "") };
    let raised = engine.data(&hourly(1, 0, vec![sample, o2(11.0)]), &rules());
    assert_eq!(raised[0].compared, Some(Compared::ReferenceO2 { reference: 6.0, o2: 11.0, measured: 25.0 }));
    assert_eq!(raised[0].value_text().as_deref(), Some("37.5"));
    // A flag alert keeps the letter.
    let mut engine = Engine::default();
    let flagged = engine.data(&hourly(1, 0, vec![so2(3.0, None, "C")]), &SiteRules::default());
    assert_eq!(kinds(&flagged), [(AlertKind::AbnormalFlag, AlertState::Raised)]);
    assert_eq!(flagged[0].flag.as_deref(), Some("C"));
}

#[test]
fn an_offline_site_raises_no_record_missing_until_it_is_back() {
    let mut engine = Engine::default();
    let rules = SiteRules::default();
    engine.seen(MN, Cause { at_ms: NOV_1, seq: 1 });
    // Silent from 00:00: offline at 00:15, and hours 0 and 1 overdue at 01:10 and 02:10.
    let mut all = Vec::new();
    for minute in (0..=180).step_by(5) {
        all.extend(engine.tick(MN, NOV_1 + minute * 60_000 + 1, &rules));
    }
    assert_eq!(kinds(&all), [(AlertKind::Offline, AlertState::Raised)], "{all:?}");
    // Back at 03:01 with the hour 2 record; hours 0 and 1 are still missing: raised now.
    let back = engine.data(&hourly(2, 2, vec![so2(1.0, None, "")]), &rules);
    assert!(back.is_empty());
    let seen = engine.seen(MN, Cause { at_ms: NOV_1 + 3 * HOUR + 60_000, seq: 2 });
    assert_eq!(kinds(&seen), [(AlertKind::Offline, AlertState::Cleared)]);
    let missing = engine.tick(MN, NOV_1 + 3 * HOUR + 61_000, &rules);
    assert_eq!(kinds(&missing), [(AlertKind::RecordMissing, AlertState::Raised)]);
    assert_eq!(missing[0].value, Some(2.0), "the hours missing while offline were counted");
    assert!(engine.tick(MN, NOV_1 + 3 * HOUR + 62_000, &rules).is_empty(), "once");
}

#[test]
fn a_site_back_with_every_record_raises_nothing_more() {
    let mut engine = Engine::default();
    let rules = SiteRules::default();
    engine.seen(MN, Cause { at_ms: NOV_1, seq: 1 });
    for minute in (0..=130).step_by(5) {
        engine.tick(MN, NOV_1 + minute * 60_000 + 1, &rules);
    }
    // The logger backfills hours 0 and 1 when it is back: nothing is missing any more.
    for hour in 0..2 {
        engine.data(&hourly(10 + u64::try_from(hour).unwrap(), hour, vec![so2(1.0, None, "")]), &rules);
    }
    engine.seen(MN, Cause { at_ms: NOV_1 + 2 * HOUR + 20 * 60_000, seq: 20 });
    assert!(engine.tick(MN, NOV_1 + 2 * HOUR + 21 * 60_000, &rules).is_empty());
}

fn fleet_of(n: usize) -> Vec<String> {
    (0..n).map(|i| format!("MN{i:02}")).collect()
}

/// Every site silent since `from`, ticked at `now`, then grouped as the daemon does.
fn tick_all(engine: &mut Engine, sites: &[String], now: i64, fleet: &FleetRules) -> Vec<Transition> {
    let rules = SiteRules::default();
    let mut out = Vec::new();
    for mn in sites {
        out.extend(engine.tick(mn, now, &rules));
    }
    engine.group(&mut out, Some(now), fleet);
    out
}

#[test]
fn a_fleet_outage_is_one_message_and_the_sites_messages_are_inhibited() {
    let mut engine = Engine::default();
    let fleet = FleetRules { min_sites: 10, window_ms: 300_000 };
    let sites = fleet_of(12);
    for (i, mn) in sites.iter().enumerate() {
        engine.seen(mn, Cause { at_ms: NOV_1, seq: i as u64 });
    }
    assert!(tick_all(&mut engine, &sites, NOV_1 + 1_000, &fleet).is_empty());
    // All twelve go offline on the same tick: twelve offline messages marked, one fleet alert.
    let out = tick_all(&mut engine, &sites, NOV_1 + 900_001, &fleet);
    let fleet_alert = out.iter().find(|t| t.kind == AlertKind::FleetOutage).expect("a fleet alert");
    assert_eq!((fleet_alert.mn.as_str(), fleet_alert.state), (FLEET, AlertState::Raised));
    assert_eq!((fleet_alert.value, fleet_alert.limit), (Some(12.0), Some(10.0)));
    assert_eq!(fleet_alert.sites.len(), LISTED_SITES);
    let id = fleet_alert.alert_id.clone();
    let offline: Vec<_> = out.iter().filter(|t| t.kind == AlertKind::Offline).collect();
    assert_eq!(offline.len(), 12);
    assert!(offline.iter().all(|t| t.inhibited_by.as_deref() == Some(id.as_str())));
    assert!(engine.take_fleet_dirty().is_some(), "to be persisted");
    // The state survives a restart.
    let json = serde_json::to_string(&engine.fleet).unwrap();
    let mut restored = Engine::default();
    for mn in &sites {
        restored.restore(mn.clone(), engine.site(mn).unwrap().clone());
    }
    restored.restore_fleet(serde_json::from_str(&json).unwrap());
    let mut engine = restored;
    // Six come back: still an outage (half), their "back" messages inhibited.
    let mut back = Vec::new();
    for (i, mn) in sites.iter().take(6).enumerate() {
        back.extend(engine.seen(mn, Cause { at_ms: NOV_1 + 1_000_000, seq: 100 + i as u64 }));
    }
    engine.group(&mut back, None, &fleet);
    assert_eq!(back.len(), 6);
    assert!(back.iter().all(|t| t.state == AlertState::Cleared && t.inhibited_by.as_deref() == Some(id.as_str())));
    let now = NOV_1 + 1_001_000;
    assert!(tick_all(&mut engine, &sites[..6], now, &fleet).is_empty());
    assert!(engine.group_tick(now, &fleet).is_empty(), "6 of 12 still offline");
    // A seventh: most are back, the outage clears with one message.
    let mut seventh = engine.seen(&sites[6], Cause { at_ms: now + 1_000, seq: 200 });
    engine.group(&mut seventh, None, &fleet);
    assert_eq!(seventh[0].inhibited_by.as_deref(), Some(id.as_str()));
    let over = engine.group_tick(now + 2_000, &fleet);
    assert_eq!(kinds(&over), [(AlertKind::FleetOutage, AlertState::Cleared)]);
    assert_eq!((over[0].alert_id.as_str(), over[0].still_offline), (id.as_str(), Some(5)));
    // The five still offline come back later as ordinary sites.
    let mut late = engine.seen(&sites[11], Cause { at_ms: now + 3_000, seq: 300 });
    engine.group(&mut late, None, &fleet);
    assert_eq!(late[0].inhibited_by, None);

    // A second outage is a new alert.
    let later = now + 10 * HOUR;
    for (i, mn) in sites.iter().enumerate() {
        engine.seen(mn, Cause { at_ms: later, seq: 400 + i as u64 });
    }
    let out = tick_all(&mut engine, &sites, later + 900_001, &fleet);
    let second = out.iter().find(|t| t.kind == AlertKind::FleetOutage).expect("a second fleet alert");
    assert_ne!(second.alert_id, id);
}

#[test]
fn sites_going_offline_apart_or_too_few_make_no_fleet_outage() {
    let fleet = FleetRules { min_sites: 3, window_ms: 300_000 };
    let mut engine = Engine::default();
    let sites = fleet_of(3);
    // Offline 10 minutes apart: never three within 5 minutes.
    for (i, mn) in sites.iter().enumerate() {
        engine.seen(mn, Cause { at_ms: NOV_1 + i64::try_from(i).unwrap() * 600_000, seq: i as u64 });
    }
    let mut all = Vec::new();
    for second in (0..3_600).step_by(30) {
        all.extend(tick_all(&mut engine, &sites, NOV_1 + second * 1_000 + 1, &fleet));
    }
    assert_eq!(all.iter().filter(|t| t.kind == AlertKind::Offline).count(), 3);
    assert!(all.iter().all(|t| t.kind != AlertKind::FleetOutage && t.inhibited_by.is_none()));
    // Grouping off.
    let mut engine = Engine::default();
    let off = FleetRules { min_sites: 0, ..fleet };
    let out = tick_all(&mut engine, &fleet_of(20), NOV_1 + 2 * HOUR, &off);
    let out2 = tick_all(&mut engine, &fleet_of(20), NOV_1 + 4 * HOUR, &off);
    assert!(out.iter().chain(&out2).all(|t| t.kind != AlertKind::FleetOutage));
}

#[test]
fn engines_whose_clocks_tick_apart_name_an_offline_episode_alike() {
    let rules = SiteRules::default();
    let offline_id = |tick_offset_ms: i64, last_seen_ms: i64| {
        let mut engine = Engine::default();
        engine.seen(MN, Cause { at_ms: last_seen_ms, seq: 1 });
        let raised: Vec<_> = (1..=20)
            .flat_map(|minute| engine.tick(MN, last_seen_ms + minute * 60_000 + tick_offset_ms, &rules))
            .collect();
        assert_eq!(kinds(&raised), [(AlertKind::Offline, AlertState::Raised)]);
        raised[0].alert_id.clone()
    };
    // Two cluster nodes fed the same stream: their ticks fall at other moments.
    assert_eq!(offline_id(1, NOV_1), offline_id(37_000, NOV_1));
    assert_ne!(offline_id(1, NOV_1), offline_id(1, NOV_1 + HOUR), "another episode, another id");
}
