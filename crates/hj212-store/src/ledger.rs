//! The rate ledger, kept up to date as records are applied: the first copy received of each
//! (factor, period) of hourly (CN 2061) and daily (CN 2031) records, and per-day counts by
//! lateness, so a month of many sites is summed from a few rows each instead of recounted.
//! It is part of the store: `hj212-audit rebuild-ledger` rebuilds it from the archive.

use hj212_compliance::{Basis, Range, Rate, Report, Rules};
use rusqlite::{CachedStatement, Transaction, params};

use crate::{Reading, Store, StoreError};

pub(crate) const SCHEMA: &str = "
CREATE TABLE IF NOT EXISTS ledger_periods (
    mn TEXT NOT NULL, cn INTEGER NOT NULL, factor TEXT NOT NULL, period_ms INTEGER NOT NULL,
    flag TEXT, received_ms INTEGER NOT NULL,
    PRIMARY KEY (mn, cn, factor, period_ms)
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS ledger_days (
    mn TEXT NOT NULL, cn INTEGER NOT NULL, factor TEXT NOT NULL, day_ms INTEGER NOT NULL,
    late_days INTEGER NOT NULL,     -- whole days between period end and receipt (-1 = before the end), capped
    received INTEGER NOT NULL, valid INTEGER NOT NULL,
    PRIMARY KEY (mn, cn, factor, day_ms, late_days)
) WITHOUT ROWID;
";

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
                "INSERT OR IGNORE INTO ledger_periods (mn, cn, factor, period_ms, flag, received_ms) VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
            )?,
            day: tx.prepare_cached(
                "INSERT INTO ledger_days (mn, cn, factor, day_ms, late_days, received, valid) VALUES (?1, ?2, ?3, ?4, ?5, 1, ?6)
                 ON CONFLICT DO UPDATE SET received = received + 1, valid = valid + excluded.valid",
            )?,
        })
    }

    /// Counts a reading if it is the first copy of its (factor, period).
    pub(crate) fn add(&mut self, r: &Reading) -> Result<(), StoreError> {
        let Some(basis) = basis_of(r.cn) else { return Ok(()) };
        let period = basis.period_start(r.data_time_ms);
        let first = self.period.execute(params![r.mn, r.cn, r.factor, period, r.flag, r.received_ms])? == 1;
        if first {
            let late = (r.received_ms - (period + basis.period_ms())).div_euclid(DAY_MS).clamp(-1, MAX_LATE_DAYS);
            let valid = i64::from(r.flag.as_deref().unwrap_or("N") == "N");
            self.day.execute(params![r.mn, r.cn, r.factor, Basis::Day.period_start(period), late, valid])?;
        }
        Ok(())
    }
}

fn whole_days(range: Range) -> bool {
    Basis::Day.period_start(range.from_ms) == range.from_ms && Basis::Day.period_start(range.to_ms) == range.to_ms
}

impl Store {
    /// The counts and rates of one site from the ledger, without the lists of missing and
    /// invalid periods; `None` when the ledger cannot answer exactly (minute basis, the
    /// 45-minute rule, a range that is not whole Beijing days, a very long cutoff): use
    /// [`Store::site_rate`] then. The figures equal `site_rate`'s (a test checks it).
    ///
    /// # Errors
    /// SQL errors.
    pub fn site_summary(
        &self,
        site: &hj212_config::Site,
        rules: &Rules,
        range: Range,
    ) -> Result<Option<Report>, StoreError> {
        let cn = match rules.basis {
            Basis::Hour => 2061,
            Basis::Day => 2031,
            Basis::Minute { .. } => return Ok(None),
        };
        let cutoff_days = rules.cutoff_ms / DAY_MS;
        if rules.min_valid_minutes.is_some()
            || !whole_days(range)
            || rules.cutoff_ms % DAY_MS != 0
            || cutoff_days > MAX_LATE_DAYS
        {
            return Ok(None);
        }
        let step = rules.basis.period_ms();
        let marks = self.marks_in_force(&site.mn, range)?;
        let marked: Vec<i64> = range
            .periods(rules.basis)
            .filter(|p| marks.iter().any(|m| m.mark.from_ms <= *p && p + step <= m.mark.to_ms))
            .collect();
        let periods = range.periods(rules.basis).count();
        let mut sums = self.conn.prepare_cached(
            "SELECT COALESCE(SUM(received), 0), COALESCE(SUM(valid), 0) FROM ledger_days
             WHERE mn = ?1 AND cn = ?2 AND factor = ?3 AND day_ms >= ?4 AND day_ms < ?5 AND late_days < ?6",
        )?;
        let mut in_marks = self.conn.prepare_cached(
            "SELECT COUNT(*), COALESCE(SUM(COALESCE(flag, 'N') = 'N'), 0) FROM ledger_periods
             WHERE mn = ?1 AND cn = ?2 AND factor = ?3 AND period_ms >= ?4 AND period_ms < ?5 AND received_ms < period_ms + ?6",
        )?;
        let (mut received, mut valid) = (0i64, 0i64);
        for factor in &site.factors {
            let (r, v): (i64, i64) = sums
                .query_row(params![site.mn, cn, factor, range.from_ms, range.to_ms, cutoff_days], |row| {
                    Ok((row.get(0)?, row.get(1)?))
                })?;
            received += r;
            valid += v;
            for (from, to) in runs(&marked, step) {
                let (r, v): (i64, i64) = in_marks
                    .query_row(params![site.mn, cn, factor, from, to, step + rules.cutoff_ms], |row| {
                        Ok((row.get(0)?, row.get(1)?))
                    })?;
                received -= r;
                valid -= v;
            }
        }
        let count = |n: i64| u64::try_from(n).unwrap_or(0);
        let due = (site.factors.len() * (periods - marked.len())) as u64;
        let (received, valid) = (count(received), count(valid));
        let effective = Rate { numerator: valid, denominator: due };
        Ok(Some(Report {
            due,
            received,
            valid,
            transmission: Rate { numerator: received, denominator: due },
            validity: Rate { numerator: valid, denominator: received },
            effective,
            meets_target: effective.basis_points().is_some_and(|bp| bp >= u64::from(rules.target_bp)),
            missing: Vec::new(),
            invalid: Vec::new(),
        }))
    }
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
