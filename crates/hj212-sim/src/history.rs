//! What a data logger keeps of its own aggregates (sans-IO): the 2051, 2061 and 2031 records it
//! made in the last `--history-hours` simulated hours, so that a host's history request (补传 on
//! demand) gets the very values the first upload carried, uploads the link lost included.

use std::collections::VecDeque;

use hj212_proto::Packet;
use hj212_proto::time::BeijingTime;

use crate::schedule::HOUR_MS;

/// The history commands, in the order of [`History`]'s lists.
const HISTORY_CNS: [u16; 3] = [2051, 2061, 2031];

/// Whether a host request with this CN asks for history.
pub fn is_history_cn(cn: u16) -> bool {
    HISTORY_CNS.contains(&cn)
}

/// One record as first made: enough to build the identical data area again.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HeldRecord {
    /// DataTime: the period start.
    pub data_time_ms: i64,
    /// When the period ended and the logger made the record.
    pub made_ms: i64,
    /// The CP content (`DataTime=...;a21026-Cou=...`), exactly as first uploaded.
    pub cp: Box<str>,
    /// Factors it carries.
    pub factors: u64,
    /// Its first upload never reached the daemon (`--drop-percent`): sending it again adds
    /// store rows, sending any other record again does not.
    pub dropped: bool,
}

/// The records made in the last `depth` of simulated time (made in `(newest - depth, newest]`),
/// per CN in DataTime order. The depth bounds the memory: at most `depth / period` records per CN.
#[derive(Debug, Clone)]
pub struct History {
    depth_ms: i64,
    newest_made_ms: i64,
    lists: [VecDeque<HeldRecord>; 3],
}

fn list_index(cn: u16) -> Option<usize> {
    HISTORY_CNS.iter().position(|c| *c == cn)
}

impl History {
    /// Keeps `hours` simulated hours; 0 keeps nothing.
    pub fn new(hours: u32) -> Self {
        Self { depth_ms: i64::from(hours) * HOUR_MS, newest_made_ms: i64::MIN, lists: Default::default() }
    }

    /// Keeps a record of `cn` (other CNs, such as 2011, are not kept), then forgets what is too old.
    pub fn keep(&mut self, cn: u16, record: HeldRecord) {
        let Some(list) = list_index(cn).map(|i| &mut self.lists[i]) else {
            return;
        };
        if self.depth_ms == 0 {
            return;
        }
        // Backfilled records arrive late, so insert in DataTime order rather than append.
        let at = list.partition_point(|r| r.data_time_ms < record.data_time_ms);
        self.newest_made_ms = self.newest_made_ms.max(record.made_ms);
        list.insert(at, record);
        let oldest_kept = self.newest_made_ms - self.depth_ms;
        for list in &mut self.lists {
            // Within one CN every period has the same length, so DataTime order is also made order.
            while list.front().is_some_and(|r| r.made_ms <= oldest_kept) {
                list.pop_front();
            }
        }
    }

    /// The held records of `cn` with DataTime in `[begin_ms, end_ms]`.
    pub fn select(&mut self, cn: u16, begin_ms: i64, end_ms: i64) -> impl Iterator<Item = &mut HeldRecord> {
        let list = list_index(cn).map(|i| &mut self.lists[i]);
        list.into_iter()
            .flat_map(move |list| list.iter_mut().filter(move |r| (begin_ms..=end_ms).contains(&r.data_time_ms)))
    }

    /// Notes that the first upload of the record of `cn` at `data_time_ms` was lost on the wire.
    pub fn mark_dropped(&mut self, cn: u16, data_time_ms: i64) {
        if let Some(record) = self.select(cn, data_time_ms, data_time_ms).next() {
            record.dropped = true;
        }
    }

    /// Records held for `cn`.
    pub fn len(&self, cn: u16) -> usize {
        list_index(cn).map_or(0, |i| self.lists[i].len())
    }
}

/// `BeginTime` and `EndTime` of a history request as Unix ms, both inclusive period starts.
///
/// The CP parser splits items at `;` and `,` alike, so the 2005-era `BeginTime=..,EndTime=..`
/// reads the same as the 2017 `BeginTime=..;EndTime=..`.
pub fn requested_range(packet: &Packet<'_>) -> Option<(i64, i64)> {
    let time = |key| packet.get(key).and_then(|t| BeijingTime::parse(t).ok()).map(|t| t.unix_millis());
    Some((time("BeginTime")?, time("EndTime")?))
}

#[cfg(test)]
mod tests {
    use super::*;

    const START: i64 = 1_772_294_400_000; // 2026-03-01 00:00 Beijing

    fn hour(h: i64) -> HeldRecord {
        let data_time_ms = START + h * HOUR_MS;
        let cp = format!("DataTime={}", BeijingTime::from_unix_millis(data_time_ms).to_seconds_string()).into();
        HeldRecord { data_time_ms, made_ms: data_time_ms + HOUR_MS, cp, factors: 6, dropped: false }
    }

    fn held_hours(history: &mut History, begin: i64, end: i64) -> Vec<i64> {
        let select = history.select(2061, START + begin * HOUR_MS, START + end * HOUR_MS);
        select.map(|r| (r.data_time_ms - START) / HOUR_MS).collect()
    }

    #[test]
    fn keeps_the_last_hours_only() {
        let mut history = History::new(3);
        for h in 0..10 {
            history.keep(2061, hour(h));
        }
        // The newest record was made at 10:00: those made after 07:00 remain.
        assert_eq!(history.len(2061), 3);
        assert_eq!(held_hours(&mut history, 0, 100), [7, 8, 9]);
        history.keep(2011, hour(10));
        assert_eq!((history.len(2011), history.len(2051)), (0, 0));
    }

    #[test]
    fn no_history_at_depth_zero() {
        let mut history = History::new(0);
        history.keep(2061, hour(0));
        assert_eq!(history.len(2061), 0);
    }

    #[test]
    fn bounds_are_inclusive_and_late_records_sorted_in() {
        let mut history = History::new(168);
        for h in [0, 1, 4, 2, 3] {
            history.keep(2061, hour(h));
        }
        assert_eq!(held_hours(&mut history, 1, 3), [1, 2, 3]);
        assert_eq!(held_hours(&mut history, 3, 1), Vec::<i64>::new());
        assert_eq!(held_hours(&mut history, 5, 9), Vec::<i64>::new());
        history.mark_dropped(2061, START + 2 * HOUR_MS);
        let dropped: Vec<bool> = history.select(2061, START, START + 4 * HOUR_MS).map(|r| r.dropped).collect();
        assert_eq!(dropped, [false, false, true, false, false]);
    }

    #[test]
    fn ranges_with_semicolon_or_comma() {
        let begin = BeijingTime::parse("20261129030000").unwrap().unix_millis();
        for cp in ["BeginTime=20261129030000;EndTime=20261129050000", "BeginTime=20261129030000,EndTime=20261129050000"]
        {
            let text = format!("QN=20261130101500123;ST=32;CN=2061;PW=123456;MN=SIM0;Flag=5;CP=&&{cp}&&");
            let packet = Packet::parse(&text).unwrap();
            assert_eq!(requested_range(&packet), Some((begin, begin + 2 * HOUR_MS)), "{cp}");
        }
        let text = "QN=1;ST=32;CN=2061;PW=123456;MN=SIM0;Flag=5;CP=&&BeginTime=20261129030000&&";
        assert_eq!(requested_range(&Packet::parse(text).unwrap()), None);
        let text = "QN=1;ST=32;CN=2061;PW=123456;MN=SIM0;Flag=5;CP=&&BeginTime=2026;EndTime=20261129030000&&";
        assert_eq!(requested_range(&Packet::parse(text).unwrap()), None);
    }
}
