//! A station's whole run as a sequence of steps (sans-IO): the schedule's records, minus the
//! gaps, some hourly and daily uploads lost on the wire, with outages (the link is down, then the missed 2051/2061/2031 records are backfilled)
//! and reconnect storms. Times are simulated "true" Unix milliseconds.

use std::collections::VecDeque;
use std::iter::Peekable;

use crate::rng::Rng;
use crate::schedule::{Due, HOUR_MS, RecordKind, Schedule};

/// Why a record is never sent.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SkipReason {
    /// `--gap-percent`: the logger silently never sends it.
    Gap,
    /// Real-time data due while the link was down (loggers backfill only history data).
    Outage,
    /// Due in an outage that lasts past the end of the simulation: the backfill never happens.
    OutageUnsent,
}

/// What a station does next.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Step {
    /// Send a record at `at_ms`; `backfill` when it was held back by an outage; `dropped` when
    /// the link loses the upload (the station makes and keeps the record but nothing arrives).
    Send { at_ms: i64, due: Due, backfill: bool, dropped: bool },
    /// Close the connection at `at_ms`; the next send reconnects.
    Disconnect { at_ms: i64, storm: bool },
    /// A record that is never sent.
    Skip { due: Due, reason: SkipReason },
}

/// The scenario parts that shape a station's plan.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct PlanFaults {
    pub gap_percent: f64,
    /// Chance (percent) that a 2061 or 2031 upload is lost on the wire.
    pub drop_percent: f64,
    /// `(from, to)` simulated times during which this station's link is down.
    pub outages: Vec<(i64, i64)>,
    /// Disconnect and reconnect at every full (simulated) hour.
    pub reconnect_storm: bool,
}

/// Yields a station's steps in time order.
#[derive(Debug)]
pub struct Planner {
    schedule: Peekable<Schedule>,
    outages: VecDeque<(i64, i64)>,
    /// In an outage until this time.
    outage_end: Option<i64>,
    backfill: VecDeque<Due>,
    next_storm: Option<i64>,
    end_ms: i64,
    gap_percent: f64,
    drop_percent: f64,
    rng: Rng,
    queue: VecDeque<Step>,
}

fn merged(mut outages: Vec<(i64, i64)>, start_ms: i64, end_ms: i64) -> VecDeque<(i64, i64)> {
    outages.retain(|&(from, to)| from < to && to > start_ms && from < end_ms);
    outages.sort_unstable();
    let mut out: VecDeque<(i64, i64)> = VecDeque::new();
    for (from, to) in outages {
        match out.back_mut() {
            Some(last) if from <= last.1 => last.1 = last.1.max(to),
            _ => out.push_back((from, to)),
        }
    }
    out
}

impl Planner {
    pub fn new(schedule: Schedule, start_ms: i64, end_ms: i64, faults: PlanFaults, rng: Rng) -> Self {
        let first_storm = (start_ms.div_euclid(HOUR_MS) + 1) * HOUR_MS;
        Self {
            schedule: schedule.peekable(),
            outages: merged(faults.outages, start_ms, end_ms),
            outage_end: None,
            backfill: VecDeque::new(),
            next_storm: (faults.reconnect_storm && first_storm < end_ms).then_some(first_storm),
            end_ms,
            gap_percent: faults.gap_percent,
            drop_percent: faults.drop_percent,
            rng,
            queue: VecDeque::new(),
        }
    }

    fn advance_storm(&mut self, past: i64) {
        while let Some(storm) = self.next_storm.filter(|s| *s <= past) {
            self.next_storm = Some(storm + HOUR_MS).filter(|s| *s < self.end_ms);
        }
    }

    /// Whether the link loses this upload. Only hourly and daily records: the ones a host's
    /// gap recovery fetches again, and few enough that a scenario can count them.
    fn drops(&mut self, due: &Due) -> bool {
        matches!(due.kind, RecordKind::Hour | RecordKind::Day) && self.rng.chance(self.drop_percent)
    }

    /// The outage is over: its history records go out at `until`, or never if that is past the end.
    fn end_outage(&mut self, until: i64) {
        self.outage_end = None;
        self.advance_storm(until);
        let beyond = until > self.end_ms;
        while let Some(due) = self.backfill.pop_front() {
            let step = if beyond {
                Step::Skip { due, reason: SkipReason::OutageUnsent }
            } else {
                Step::Send { at_ms: until, due, backfill: true, dropped: self.drops(&due) }
            };
            self.queue.push_back(step);
        }
    }

    /// The next record: skipped (gap, or real-time data in an outage), held back, or sent.
    fn record(&mut self, due: Due) -> Option<Step> {
        if self.rng.chance(self.gap_percent) {
            return Some(Step::Skip { due, reason: SkipReason::Gap });
        }
        if self.outage_end.is_none() {
            return Some(Step::Send { at_ms: due.send_ms, due, backfill: false, dropped: self.drops(&due) });
        }
        if due.kind == RecordKind::RealTime {
            return Some(Step::Skip { due, reason: SkipReason::Outage });
        }
        self.backfill.push_back(due);
        None
    }

    /// An outage start or a storm that comes before (or with) the next record at `due_at`.
    fn control(&mut self, due_at: Option<i64>) -> Option<Step> {
        let outage = self.outages.front().map(|o| o.0);
        let at = match (outage, self.next_storm) {
            (Some(o), Some(s)) => o.min(s),
            (o, s) => o.or(s)?,
        };
        if due_at.is_some_and(|d| d < at) {
            return None;
        }
        if outage == Some(at) {
            let (from, to) = self.outages.pop_front()?;
            self.outage_end = Some(to);
            return Some(Step::Disconnect { at_ms: from, storm: false });
        }
        self.advance_storm(at);
        Some(Step::Disconnect { at_ms: at, storm: true })
    }
}

impl Iterator for Planner {
    type Item = Step;

    fn next(&mut self) -> Option<Step> {
        loop {
            if let Some(step) = self.queue.pop_front() {
                return Some(step);
            }
            let due_at = self.schedule.peek().map(|d| d.send_ms);
            if let Some(until) = self.outage_end {
                if due_at.is_some_and(|t| t < until) {
                    let due = self.schedule.next()?;
                    if let Some(step) = self.record(due) {
                        return Some(step);
                    }
                } else {
                    self.end_outage(until);
                }
                continue;
            }
            if let Some(step) = self.control(due_at) {
                return Some(step);
            }
            let due = self.schedule.next()?;
            if let Some(step) = self.record(due) {
                return Some(step);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::schedule::DAY_MS;

    const START: i64 = 1_772_294_400_000; // 2026-03-01 00:00 Beijing

    fn plan(faults: PlanFaults) -> Vec<Step> {
        let schedule = Schedule::new(START, START + DAY_MS, 60, 10);
        Planner::new(schedule, START, START + DAY_MS, faults, Rng::new(3)).collect()
    }

    fn count(steps: &[Step], f: impl Fn(&Step) -> bool) -> usize {
        steps.iter().filter(|s| f(s)).count()
    }

    #[test]
    fn no_faults_sends_everything_in_order() {
        let steps = plan(PlanFaults::default());
        assert_eq!(steps.len(), 1440 + 144 + 24 + 1);
        let times: Vec<i64> = steps.iter().map(|s| if let Step::Send { at_ms, .. } = s { *at_ms } else { 0 }).collect();
        assert!(times.is_sorted() && times[0] == START);
    }

    #[test]
    fn gaps_are_skipped() {
        let steps = plan(PlanFaults { gap_percent: 10.0, ..PlanFaults::default() });
        let gaps = count(&steps, |s| matches!(s, Step::Skip { reason: SkipReason::Gap, .. }));
        assert!((100..220).contains(&gaps), "{gaps}");
        assert_eq!(steps.len(), 1609);
    }

    #[test]
    fn outage_holds_history_back_and_drops_real_time_data() {
        let (from, to) = (START + 6 * HOUR_MS + 1, START + 9 * HOUR_MS);
        let steps = plan(PlanFaults { outages: vec![(from, to)], ..PlanFaults::default() });
        let lost = count(&steps, |s| matches!(s, Step::Skip { reason: SkipReason::Outage, .. }));
        assert_eq!(lost, 3 * 60 - 1);
        let backfill: Vec<(u16, i64)> = steps
            .iter()
            .filter_map(|s| match s {
                Step::Send { backfill: true, at_ms, due, .. } => Some((due.kind.cn(), *at_ms)),
                _ => None,
            })
            .collect();
        // Minute records ending 6:10 to 8:50 and the hours ending 7:00 and 8:00 (those ending
        // at 9:00 are due as the link comes back, after the backfill).
        assert_eq!(backfill.len(), 17 + 2);
        assert!(backfill.iter().all(|&(_, at)| at == to));
        assert_eq!(
            steps.iter().position(|s| matches!(s, Step::Disconnect { at_ms, .. } if *at_ms == from)),
            Some(361 + 36 + 6)
        );
        let total = count(&steps, |s| matches!(s, Step::Send { .. } | Step::Skip { .. }));
        assert_eq!(total, 1609);
    }

    #[test]
    fn outage_past_the_end_never_backfills() {
        let steps =
            plan(PlanFaults { outages: vec![(START + DAY_MS - HOUR_MS, START + 2 * DAY_MS)], ..PlanFaults::default() });
        assert_eq!(count(&steps, |s| matches!(s, Step::Skip { reason: SkipReason::OutageUnsent, .. })), 7 + 2 + 1);
    }

    #[test]
    fn drops_only_hourly_and_daily_uploads() {
        let steps = plan(PlanFaults { drop_percent: 50.0, ..PlanFaults::default() });
        let dropped: Vec<RecordKind> = steps
            .iter()
            .filter_map(|s| match s {
                Step::Send { dropped: true, due, .. } => Some(due.kind),
                _ => None,
            })
            .collect();
        assert!(dropped.iter().all(|k| matches!(k, RecordKind::Hour | RecordKind::Day)));
        assert!((5..=20).contains(&dropped.len()), "{}", dropped.len());
        assert_eq!(steps.len(), 1609, "a dropped upload is still a step");
        assert_eq!(plan(PlanFaults::default()), steps.iter().map(|s| undropped(*s)).collect::<Vec<_>>());
    }

    fn undropped(step: Step) -> Step {
        match step {
            Step::Send { at_ms, due, backfill, .. } => Step::Send { at_ms, due, backfill, dropped: false },
            other => other,
        }
    }

    #[test]
    fn storms_every_hour_but_not_in_outages() {
        let steps = plan(PlanFaults { reconnect_storm: true, ..PlanFaults::default() });
        assert_eq!(count(&steps, |s| matches!(s, Step::Disconnect { storm: true, .. })), 23);
        let outage = (START + HOUR_MS / 2, START + 5 * HOUR_MS / 2);
        let steps = plan(PlanFaults { reconnect_storm: true, outages: vec![outage], ..PlanFaults::default() });
        assert_eq!(count(&steps, |s| matches!(s, Step::Disconnect { storm: true, .. })), 21);
    }
}
