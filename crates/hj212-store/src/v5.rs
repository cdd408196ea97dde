//! Schema version 5: the compact readings (issue 17). A site's records of one CN (a series)
//! and a factor code become integer keys (`series`, `factors`) in the readings, the ledger and
//! the changed copies; a reading keeps its fields in one tagged text column (see
//! `readings.rs`), its receipt time as the milliseconds after its DataTime, and no longer the
//! frame's ST (the archive has it) nor DataTime as text when it is the formatting of
//! `data_time_ms`. The changed copies also keep their DataTime, so the readings' retention can
//! delete them with their readings.

use crate::schema::Migration;

/// 4 -> 5. The readings table is copied once (the daemon starts serving after it); every value
/// is kept as sent.
pub(crate) const MIGRATION: Migration = Migration {
    change: "compact readings: series (MN and CN) and factors as integer keys, values in tagged columns \
             (the tables are copied)",
    sql: "
CREATE TABLE series (id INTEGER PRIMARY KEY, mn TEXT NOT NULL, cn INTEGER NOT NULL, UNIQUE (mn, cn));
CREATE TABLE factors (id INTEGER PRIMARY KEY, code TEXT NOT NULL UNIQUE);
INSERT INTO series (mn, cn) SELECT mn, cn FROM readings
    UNION SELECT mn, cn FROM ledger_periods UNION SELECT mn, cn FROM ledger_days;
INSERT INTO factors (code) SELECT factor FROM readings UNION SELECT factor FROM ledger_periods
    UNION SELECT factor FROM ledger_days UNION SELECT factor FROM changed_copies;

CREATE TABLE readings_v5 (
    series INTEGER NOT NULL, data_time_ms INTEGER NOT NULL, factor INTEGER NOT NULL,
    flag TEXT, archive_seq INTEGER NOT NULL, received INTEGER NOT NULL, v TEXT,
    PRIMARY KEY (series, data_time_ms, factor)
) WITHOUT ROWID;
INSERT INTO readings_v5 SELECT s.id, r.data_time_ms, f.id, r.flag, r.archive_seq, r.received_ms - r.data_time_ms,
    NULLIF(
        substr(COALESCE(',r' || r.rtd, '') || COALESCE(',n' || r.min, '') || COALESCE(',a' || r.avg, '')
            || COALESCE(',x' || r.max, '') || COALESCE(',c' || r.cou, '') || COALESCE(',R' || r.zs_rtd, '')
            || COALESCE(',N' || r.zs_min, '') || COALESCE(',A' || r.zs_avg, '') || COALESCE(',X' || r.zs_max, ''), 2)
        || COALESCE(';' || NULLIF(substr(COALESCE(',e' || r.eflag, '') || COALESCE(',s' || r.sample_time, '')
            || COALESCE(',o' || replace(r.other, ';', ',o'), '') || iif(r.marks <> 0, ',m' || r.marks, '')
            || iif(r.data_time_ms >= 0
                   AND r.data_time IS strftime('%Y%m%d%H%M%S', r.data_time_ms / 1000 + 28800, 'unixepoch'),
                   '', ',t' || r.data_time), 2), ''), ''),
        '')
    FROM readings r JOIN series s ON s.mn = r.mn AND s.cn = r.cn JOIN factors f ON f.code = r.factor
    ORDER BY s.id, r.data_time_ms, f.id;

CREATE TABLE changed_copies_v5 (
    archive_seq INTEGER NOT NULL, factor INTEGER NOT NULL, first_seq INTEGER NOT NULL, data_time_ms INTEGER NOT NULL,
    PRIMARY KEY (archive_seq, factor)
) WITHOUT ROWID;
INSERT OR IGNORE INTO changed_copies_v5 SELECT c.archive_seq, f.id, c.first_seq, COALESCE(r.data_time_ms, 0)
    FROM changed_copies c JOIN factors f ON f.code = c.factor
    LEFT JOIN readings r ON r.archive_seq = c.first_seq AND r.factor = c.factor;
DROP TABLE changed_copies;
ALTER TABLE changed_copies_v5 RENAME TO changed_copies;
DROP TABLE readings;
ALTER TABLE readings_v5 RENAME TO readings;

CREATE TABLE ledger_periods_v5 (
    series INTEGER NOT NULL, factor INTEGER NOT NULL, period_ms INTEGER NOT NULL,
    flag TEXT, received_ms INTEGER NOT NULL,
    PRIMARY KEY (series, factor, period_ms)
) WITHOUT ROWID;
INSERT INTO ledger_periods_v5 SELECT s.id, f.id, l.period_ms, l.flag, l.received_ms
    FROM ledger_periods l JOIN series s ON s.mn = l.mn AND s.cn = l.cn JOIN factors f ON f.code = l.factor;
DROP TABLE ledger_periods;
ALTER TABLE ledger_periods_v5 RENAME TO ledger_periods;
CREATE TABLE ledger_days_v5 (
    series INTEGER NOT NULL, factor INTEGER NOT NULL, day_ms INTEGER NOT NULL,
    late_days INTEGER NOT NULL, received INTEGER NOT NULL, valid INTEGER NOT NULL,
    PRIMARY KEY (series, factor, day_ms, late_days)
) WITHOUT ROWID;
INSERT INTO ledger_days_v5 SELECT s.id, f.id, l.day_ms, l.late_days, l.received, l.valid
    FROM ledger_days l JOIN series s ON s.mn = l.mn AND s.cn = l.cn JOIN factors f ON f.code = l.factor;
DROP TABLE ledger_days;
ALTER TABLE ledger_days_v5 RENAME TO ledger_days;
",
};
