//! What a run did, per station and in total, printed as JSON at the end.

use std::collections::BTreeMap;

use serde::Serialize;

use crate::plan::SkipReason;
use crate::station::{Outcome, StationSpec};

/// Counts keyed by command code (2011, 2051, 2061, 2031).
pub type ByCn = BTreeMap<u16, u64>;

/// Defines [`Counters`] and its field-by-field sum.
macro_rules! counters {
    (
        maps { $($(#[$mdoc:meta])* $map:ident,)* }
        scalars { $($(#[$sdoc:meta])* $field:ident,)* }
    ) => {
        /// One station's (or all stations') counters.
        #[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
        pub struct Counters {
            $($(#[$mdoc])* pub $map: ByCn,)*
            $($(#[$sdoc])* pub $field: u64,)*
        }

        impl Counters {
            /// Adds another station's counters.
            pub fn add(&mut self, other: &Self) {
                $(add_map(&mut self.$map, &other.$map);)*
                $(self.$field += other.$field;)*
            }
        }
    };
}

counters! {
    maps {
        /// Records the schedule made due, including those never sent.
        records,
        /// Frames sent (first transmissions; each split packet counts).
        frames,
        /// Frames answered with a 9014 (the daemon accepted them), records sent again for a
        /// history request included.
        acked_frames,
        /// Frames sent with a good CRC that expect no answer (HJ/T 212-2005 stations; uploads
        /// answering 1011, 1061 and 1063). Not the 9011, 9012 and 9013 replies.
        unacked_frames,
    }
    scalars {
        /// Sum of `acked_frames`.
        acked,
        /// Retransmissions (same frame, same QN) after an acknowledgement timeout or a lost connection.
        resent,
        /// Frames given up after the last resend timed out.
        failed,
        /// Frames first sent with a wrong CRC (the daemon drops them; a 2017 logger resends them).
        bad_crc_sent,
        /// Wrong-CRC frames of 2005 stations: nobody notices, the record is lost.
        bad_crc_lost,
        /// Records never sent (`--gap-percent`).
        gaps,
        /// Real-time records due while the link was down (not backfilled).
        outage_lost,
        /// History records of an outage lasting past the end of the run (never backfilled).
        outage_unsent,
        /// History records sent after an outage.
        backfilled,
        /// Real-time records sent as two packets (PNUM=2).
        split_records,
        /// Factor values flagged M, D or C instead of N.
        flagged_values,
        /// Records with an exceedance (SO2 for gas, COD for water).
        exceedances,
        /// Factor rows these frames add to the daemon's store (acked frames, and good 2005 frames).
        /// A record sent again for a history request adds rows only if its first upload was dropped.
        readings,
        /// 2061 and 2031 uploads lost on the wire (`--drop-percent`): never written, never resent
        /// by the station, but held in its history.
        dropped_uploads,
        /// History requests (2031, 2051, 2061) received.
        history_requests,
        /// History requests answered with 9011 QnRtn=1, the records, and 9012.
        history_answered,
        /// History requests answered QnRtn=1 but ExeRtn=100 (no record held in the range) or 3
        /// (no range given).
        history_no_data,
        /// History requests refused with QnRtn=2 (`--refuse-history-percent`).
        history_refused,
        /// History requests not answered at all (`--silent-history-percent`).
        history_ignored,
        /// Held records uploaded again in answer to history requests (`resent`, by contrast,
        /// counts retransmissions after a timeout).
        records_resent,
        /// Other host commands answered (9011 QnRtn=1 ... 9012, or 9013), 1012 included.
        other_commands,
        /// Host commands with a CN the station does not know, answered 9011 QnRtn=8.
        unknown_commands,
        /// Other host commands a silent station did not answer.
        commands_ignored,
        /// 1012 set-time commands answered (the clock is corrected).
        clock_corrections,
        /// Host frames that were neither 9014 nor a command: 9011/9012/9013, heartbeats,
        /// unparsable frames, and commands that came while the station was closing.
        other_host_frames,
        /// 9014s for frames already acknowledged or given up.
        late_acks,
        /// Connections established.
        connects,
        /// Connection attempts that failed.
        connect_failures,
        /// Connections lost without our closing them.
        connections_lost,
        /// Disconnections of `--reconnect-storm`.
        storm_reconnects,
        /// Writes that carried more than one frame (`--sticky`).
        sticky_writes,
        /// Frames not sent because the station could not connect at all.
        unsent,
    }
}

fn add_map(into: &mut ByCn, from: &ByCn) {
    for (cn, n) in from {
        *into.entry(*cn).or_default() += n;
    }
}

impl Counters {
    pub fn bump(map: &mut ByCn, cn: u16, n: u64) {
        *map.entry(cn).or_default() += n;
    }

    pub fn skipped(&mut self, reason: SkipReason) {
        match reason {
            SkipReason::Gap => self.gaps += 1,
            SkipReason::Outage => self.outage_lost += 1,
            SkipReason::OutageUnsent => self.outage_unsent += 1,
        }
    }

    /// Counts a host command by what came of it.
    pub fn command(&mut self, outcome: Outcome) {
        match outcome {
            Outcome::HistoryAnswered { records } => {
                self.history_answered += 1;
                self.history_no_data += u64::from(records == 0);
                self.records_resent += records;
            }
            Outcome::HistoryRefused => self.history_refused += 1,
            Outcome::HistoryIgnored => self.history_ignored += 1,
            Outcome::ClockSet => {
                self.clock_corrections += 1;
                self.other_commands += 1;
            }
            Outcome::Answered => self.other_commands += 1,
            Outcome::Unknown => self.unknown_commands += 1,
            Outcome::Ignored => self.commands_ignored += 1,
        }
        let history =
            matches!(outcome, Outcome::HistoryAnswered { .. } | Outcome::HistoryRefused | Outcome::HistoryIgnored);
        self.history_requests += u64::from(history);
    }
}

/// One station's identity and counters.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct SiteSummary {
    pub index: usize,
    pub mn: String,
    pub profile: &'static str,
    /// "2017" or "2005".
    pub version: &'static str,
    pub crc: &'static str,
    pub clock_drift_secs: i64,
    /// How it answers host commands: "normal", "refuses-history", "silent" or "slow-history".
    pub host_answers: &'static str,
    #[serde(flatten)]
    pub counters: Counters,
}

impl SiteSummary {
    pub fn new(spec: &StationSpec) -> Self {
        Self {
            index: spec.index,
            mn: spec.mn.clone(),
            profile: spec.profile.as_str(),
            version: spec.version.as_str(),
            crc: spec.dialect.as_str(),
            clock_drift_secs: spec.drift_secs,
            host_answers: spec.answers.as_str(),
            counters: Counters::default(),
        }
    }
}

/// The whole run.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Summary {
    pub target: String,
    /// Simulated period, Beijing time `YYYYMMDDhhmmss`.
    pub start: String,
    pub end: String,
    pub stations: usize,
    pub elapsed_secs: f64,
    pub totals: Counters,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub sites: Vec<SiteSummary>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn totals_add_up() {
        let mut a = Counters { acked: 2, unsent: 1, ..Counters::default() };
        Counters::bump(&mut a.frames, 2011, 3);
        let mut b = Counters { acked: 5, sticky_writes: 4, ..Counters::default() };
        Counters::bump(&mut b.frames, 2011, 1);
        Counters::bump(&mut b.frames, 2061, 1);
        a.add(&b);
        assert_eq!((a.acked, a.unsent, a.sticky_writes), (7, 1, 4));
        assert_eq!(a.frames, ByCn::from([(2011, 4), (2061, 1)]));
        let json = serde_json::to_value(&a).unwrap();
        assert_eq!(json["frames"]["2011"], 4);
    }

    #[test]
    fn commands_counted_by_outcome() {
        let mut c = Counters::default();
        for outcome in [
            Outcome::HistoryAnswered { records: 2 },
            Outcome::HistoryAnswered { records: 0 },
            Outcome::HistoryRefused,
            Outcome::HistoryIgnored,
            Outcome::ClockSet,
            Outcome::Answered,
            Outcome::Unknown,
            Outcome::Ignored,
        ] {
            c.command(outcome);
        }
        let history = (c.history_requests, c.history_answered, c.history_no_data, c.history_refused, c.history_ignored);
        assert_eq!(history, (4, 2, 1, 1, 1));
        assert_eq!(c.records_resent, 2);
        assert_eq!((c.other_commands, c.clock_corrections, c.unknown_commands, c.commands_ignored), (2, 1, 1, 1));
    }
}
