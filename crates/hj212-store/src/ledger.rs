//! The rate ledger, kept up to date as records are applied: the first copy received of each
//! (factor, period) of hourly (CN 2061) and daily (CN 2031) records, and per-day counts by
//! lateness, so a month of many sites is summed from a few rows each instead of recounted.
//! It is part of the store: `hj212-audit rebuild-ledger` rebuilds it from the archive.

use hj212_compliance::{Basis, Range, Report, Rules};
use rusqlite::{CachedStatement, Transaction, params};

use crate::readings::NewRow;
use crate::{Store, StoreError};

/// The ledger's tables at the newest version (part of [`crate::SCHEMA`]).
pub(crate) const TABLES: &str = "
CREATE TABLE ledger_periods (
    series INTEGER NOT NULL,        -- series.id: the site (MN) and CN
    factor INTEGER NOT NULL,        -- factors.id
    period_ms INTEGER NOT NULL,
    flag TEXT, received_ms INTEGER NOT NULL,
    PRIMARY KEY (series, period_ms, factor)
) WITHOUT ROWID;
CREATE TABLE ledger_days (
    series INTEGER NOT NULL, factor INTEGER NOT NULL, day_ms INTEGER NOT NULL,
    late_days INTEGER NOT NULL,     -- whole days between period end and receipt (-1 = before the end), capped
    received INTEGER NOT NULL, valid INTEGER NOT NULL,
    PRIMARY KEY (series, day_ms, factor, late_days)
) WITHOUT ROWID;
";

/// 5 -> 6: the ledger keyed by time before factor (see [`TABLES`]'s keys): a record's factors
/// land in one page of each table instead of one page per factor. The tables are copied.
pub(crate) const MIGRATION: crate::schema::Migration = crate::schema::Migration {
    change: "rate ledger keyed by series, time, factor (the tables are copied)",
    sql: "
CREATE TABLE ledger_periods_v6 (
    series INTEGER NOT NULL, factor INTEGER NOT NULL, period_ms INTEGER NOT NULL,
    flag TEXT, received_ms INTEGER NOT NULL,
    PRIMARY KEY (series, period_ms, factor)
) WITHOUT ROWID;
INSERT INTO ledger_periods_v6 SELECT series, factor, period_ms, flag, received_ms FROM ledger_periods
    ORDER BY series, period_ms, factor;
DROP TABLE ledger_periods;
ALTER TABLE ledger_periods_v6 RENAME TO ledger_periods;
CREATE TABLE ledger_days_v6 (
    series INTEGER NOT NULL, factor INTEGER NOT NULL, day_ms INTEGER NOT NULL,
    late_days INTEGER NOT NULL, received INTEGER NOT NULL, valid INTEGER NOT NULL,
    PRIMARY KEY (series, day_ms, factor, late_days)
) WITHOUT ROWID;
INSERT INTO ledger_days_v6 SELECT series, factor, day_ms, late_days, received, valid FROM ledger_days
    ORDER BY series, day_ms, factor, late_days;
DROP TABLE ledger_days;
ALTER TABLE ledger_days_v6 RENAME TO ledger_days;
",
};

const DAY_MS: i64 = 86_400_000;
/// Lateness is counted up to this many days; cutoffs beyond it are answered from the details.
const MAX_LATE_DAYS: i64 = 400;

fn basis_of(cn: u16) -> Option<Basis> {
    match cn {
        2061 => Some(Basis::Hour),
        2031 => Some(Basis::Day),
        _ => None,
    }
}

/// Inserts within the apply transaction.
pub(crate) struct LedgerWriter<'t> {
    period: CachedStatement<'t>,
    day: CachedStatement<'t>,
}

impl<'t> LedgerWriter<'t> {
    pub(crate) fn new(tx: &'t Transaction<'_>) -> Result<Self, StoreError> {
        Ok(Self {
            period: tx.prepare_cached(
                "INSERT OR IGNORE INTO ledger_periods (series, factor, period_ms, flag, received_ms) VALUES (?1, ?2, ?3, ?4, ?5)",
            )?,
            day: tx.prepare_cached(
                "INSERT INTO ledger_days (series, factor, day_ms, late_days, received, valid) VALUES (?1, ?2, ?3, ?4, 1, ?5)
                 ON CONFLICT DO UPDATE SET received = received + 1, valid = valid + excluded.valid",
            )?,
        })
    }

    /// Counts a reading (of the series and factor with these ids) if it is the first copy of its
    /// (factor, period).
    pub(crate) fn add(&mut self, r: &NewRow<'_>, series: i64, factor: i64) -> Result<(), StoreError> {
        let Some(basis) = basis_of(r.cn) else { return Ok(()) };
        let period = basis.period_start(r.data_time_ms);
        let first = self.period.execute(params![series, factor, period, r.flag, r.received_ms])? == 1;
        if first {
            let late = (r.received_ms - (period + basis.period_ms())).div_euclid(DAY_MS).clamp(-1, MAX_LATE_DAYS);
            let valid = i64::from(r.flag.unwrap_or("N") == "N");
            self.day.execute(params![series, factor, Basis::Day.period_start(period), late, valid])?;
        }
        Ok(())
    }
}

fn whole_days(range: Range) -> bool {
    Basis::Day.period_start(range.from_ms) == range.from_ms && Basis::Day.period_start(range.to_ms) == range.to_ms
}

/// Counts of one stretch of whole days.
#[derive(Debug, Default, Clone, Copy)]
struct Counts {
    due: u64,
    received: u64,
    valid: u64,
    late: u64,
}

impl Store {
    /// The counts and rates of one site from the ledger as they stand at `now_ms`, without
    /// the lists of missing, late and invalid periods; `None` when the ledger cannot answer
    /// exactly (minute basis, the 45-minute rule, a range that is not whole Beijing days, a
    /// very long cutoff): use [`Store::site_rate`] then. A range reaching past `now_ms` is
    /// summed from the ledger up to today's midnight and counted from the details for today.
    /// The figures equal `site_rate`'s (a test checks it).
    ///
    /// # Errors
    /// SQL errors.
    pub fn site_summary(
        &self,
        site: &hj212_config::Site,
        rules: &Rules,
        range: Range,
        now_ms: i64,
    ) -> Result<Option<Report>, StoreError> {
        let cn = match rules.basis {
            Basis::Hour => 2061,
            Basis::Day => 2031,
            Basis::Minute { .. } => return Ok(None),
        };
        if rules.min_valid_minutes.is_some()
            || !whole_days(range)
            || rules.cutoff_ms % DAY_MS != 0
            || rules.cutoff_ms / DAY_MS > MAX_LATE_DAYS
        {
            return Ok(None);
        }
        let evaluated = hj212_compliance::evaluated(range, rules.basis, now_ms);
        // Whole days from the ledger; the day `now` falls in (if inside the range) from the details.
        let days = Range { from_ms: range.from_ms, to_ms: Basis::Day.period_start(evaluated.to_ms).max(range.from_ms) };
        let days = if evaluated.to_ms == range.to_ms { range } else { days };
        let mut counts = self.ledger_counts(site, cn, rules, days)?;
        if days.to_ms < evaluated.to_ms {
            let today = Range { from_ms: days.to_ms, to_ms: range.to_ms };
            let report = self.site_rate(site, rules, today, now_ms)?.report;
            counts.due += report.due;
            counts.received += report.received;
            counts.valid += report.valid;
            counts.late += report.late;
        }
        let Counts { due, received, valid, late } = counts;
        Ok(Some(Report::from_counts(due, received, valid, late, evaluated.to_ms, rules)))
    }

    /// Sums the ledger over the whole days of `days`, minus the periods wholly inside marks.
    fn ledger_counts(
        &self,
        site: &hj212_config::Site,
        cn: u16,
        rules: &Rules,
        days: Range,
    ) -> Result<Counts, StoreError> {
        let step = rules.basis.period_ms();
        let cutoff_days = rules.cutoff_ms / DAY_MS;
        let marks = self.marks_in_force(&site.mn, days)?;
        let marked: Vec<i64> = days
            .periods(rules.basis)
            .filter(|p| marks.iter().any(|m| m.mark.from_ms <= *p && p + step <= m.mark.to_ms))
            .collect();
        let periods = days.periods(rules.basis).count();
        // Per day and lateness: on time (late_days below the cutoff) or late. Each query reads
        // the site's stretch once for every factor (the ledger is keyed by time before factor).
        let mut sums = self.conn.prepare_cached(
            "SELECT f.code, SUM(received * (late_days < ?5)), SUM(valid * (late_days < ?5)),
                    SUM(received * (late_days >= ?5)) FROM ledger_days JOIN factors f ON f.id = factor
             WHERE series = (SELECT id FROM series WHERE mn = ?1 AND cn = ?2) AND day_ms >= ?3 AND day_ms < ?4
             GROUP BY factor",
        )?;
        let mut in_marks = self.conn.prepare_cached(
            "SELECT f.code, SUM(received_ms < period_ms + ?5),
                    SUM(received_ms < period_ms + ?5 AND COALESCE(flag, 'N') = 'N'),
                    SUM(received_ms >= period_ms + ?5) FROM ledger_periods JOIN factors f ON f.id = factor
             WHERE series = (SELECT id FROM series WHERE mn = ?1 AND cn = ?2) AND period_ms >= ?3 AND period_ms < ?4
             GROUP BY factor",
        )?;
        let (mut received, mut valid, mut late) = (0i64, 0i64, 0i64);
        let rows = sums.query_map(params![site.mn, cn, days.from_ms, days.to_ms, cutoff_days], factor_counts)?;
        for row in rows {
            let (factor, (r, v, l)) = row?;
            if site.factors.contains(&factor) {
                received += r;
                valid += v;
                late += l;
            }
        }
        for (from, to) in runs(&marked, step) {
            let rows = in_marks.query_map(params![site.mn, cn, from, to, step + rules.cutoff_ms], factor_counts)?;
            for row in rows {
                let (factor, (r, v, l)) = row?;
                if site.factors.contains(&factor) {
                    received -= r;
                    valid -= v;
                    late -= l;
                }
            }
        }
        let count = |n: i64| u64::try_from(n).unwrap_or(0);
        let due = (site.factors.len() * (periods - marked.len())) as u64;
        Ok(Counts { due, received: count(received), valid: count(valid), late: count(late) })
    }
}

/// A factor's code and three sums of its rows.
fn factor_counts(row: &rusqlite::Row<'_>) -> rusqlite::Result<(String, (i64, i64, i64))> {
    Ok((row.get(0)?, (row.get(1)?, row.get(2)?, row.get(3)?)))
}

/// Consecutive marked periods merged into [from, to) runs, so overlapping marks count once.
fn runs(marked: &[i64], step: i64) -> Vec<(i64, i64)> {
    let mut runs: Vec<(i64, i64)> = Vec::new();
    for &p in marked {
        match runs.last_mut() {
            Some((_, to)) if *to == p => *to = p + step,
            _ => runs.push((p, p + step)),
        }
    }
    runs
}
