//! Schema versions of the daemon's SQLite files (`store.sqlite`, `alerts.sqlite`).
//!
//! Each file records its layout in `PRAGMA user_version`. A new file is created directly at
//! the newest version; an older one is brought up to it at start, one migration per version,
//! each in its own transaction, with a log line; a newer one (written by a later release) is
//! refused: nothing in it is changed. The first release recorded no version: a file with
//! `user_version` 0 and the schema's marker table is version 1.
//!
//! Readers that must not write (`hj212-audit`) accept only the version this build knows and
//! say what to do otherwise.

use std::path::Path;

use rusqlite::{Connection, OptionalExtension, TransactionBehavior};

/// The layout of one SQLite file and how to reach it from every earlier version.
#[derive(Debug)]
pub struct Schema {
    /// What the file is, for messages: "store database".
    pub file: &'static str,
    /// A table every version has: with `user_version` 0 it marks a file of the first release.
    pub marker_table: &'static str,
    /// The newest layout, executed in a new (empty) file.
    pub create: &'static [&'static str],
    /// `migrations[i]` takes version `i + 1` to `i + 2`. Never edit one that was released:
    /// a later change is a new migration.
    pub migrations: &'static [Migration],
    /// The oldest version a reader of this build reads as it is ([`Schema::check`]): what
    /// readers query has not changed since (1 accepts every version).
    pub readable_since: u32,
}

/// One step from a version to the next.
#[derive(Debug)]
pub struct Migration {
    /// What it changes, for the log line.
    pub change: &'static str,
    /// Executed in one transaction with the new `user_version`.
    pub sql: &'static str,
}

/// What [`Schema::prepare`] did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Prepared {
    /// The file was already at the newest version.
    Current,
    /// The file was empty: created at the newest version.
    Created,
    /// The file was brought from version `from` to the newest.
    Migrated { from: u32, to: u32 },
}

/// A file this build cannot use as it is.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum SchemaError {
    #[error(
        "{file} {path} has schema version {found}, newer than this build of hj212d supports ({supported}): \
         it was written by a later release; run that release, or restore a copy of the file made before the upgrade"
    )]
    TooNew { file: &'static str, path: String, found: u32, supported: u32 },
    #[error(
        "{file} {path} has schema version {found}, older than this build reads ({supported}): start hj212d of \
         this release on its data directory once (it migrates the file at start), or use the hj212-audit of the \
         release that wrote it"
    )]
    TooOld { file: &'static str, path: String, found: u32, supported: u32 },
    #[error("{file} {path} was not written by hj212d: {why}")]
    Foreign { file: &'static str, path: String, why: String },
    #[error("{file} {path}: migrating it from schema version {from} to {to}: {source}")]
    Migration { file: &'static str, path: String, from: u32, to: u32, source: rusqlite::Error },
    #[error("{file} {path}: reading or creating its schema: {source}")]
    Sql { file: &'static str, path: String, source: rusqlite::Error },
}

/// What a file holds, by its `user_version` and tables.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Found {
    /// No tables: a new file.
    Empty,
    /// A file of the first release: the marker table, no version recorded.
    Unversioned,
    Version(u32),
}

impl Schema {
    /// The newest version, the one this build writes.
    #[must_use]
    pub fn version(&self) -> u32 {
        u32::try_from(self.migrations.len()).map_or(u32::MAX, |n| n.saturating_add(1))
    }

    /// Brings the file open on `conn` to the newest version: creates it when empty, migrates
    /// it when older (each step in its own transaction, logged), refuses it when newer or
    /// not one of ours, changing nothing then. Cheap when the file is current (one read).
    ///
    /// # Errors
    /// [`SchemaError`] naming the file.
    pub fn prepare(&self, conn: &mut Connection, path: &Path) -> Result<Prepared, SchemaError> {
        let first = self.found(conn, path)?;
        if first == Found::Version(self.version()) {
            return Ok(Prepared::Current);
        }
        let from = match first {
            Found::Empty => 0,
            Found::Unversioned => 1,
            Found::Version(v) => v,
        };
        loop {
            // Immediate: a second opener waits here, then sees the version this one wrote.
            let tx = conn
                .transaction_with_behavior(TransactionBehavior::Immediate)
                .map_err(|source| self.sql_error(path, source))?;
            let step = match self.found(&tx, path)? {
                Found::Version(v) if v == self.version() => {
                    return Ok(if from == 0 { Prepared::Created } else { Prepared::Migrated { from, to: v } });
                }
                Found::Empty => self.create(&tx, path)?,
                Found::Unversioned => {
                    Step { from: 0, to: 1, change: "recorded version 1 (the first release recorded none)" }
                }
                Found::Version(v) => self.migrate(&tx, path, v)?,
            };
            tx.pragma_update(None, "user_version", step.to)
                .and_then(|()| tx.commit())
                .map_err(|source| self.sql_error(path, source))?;
            if from != 0 {
                tracing::info!(
                    file = %path.display(),
                    from_version = step.from,
                    to_version = step.to,
                    change = step.change,
                    "schema migrated"
                );
            }
        }
    }

    /// For a reader that must not write: the file must be at a version this build reads
    /// ([`Schema::readable_since`] up to the newest).
    ///
    /// # Errors
    /// [`SchemaError::TooNew`], [`SchemaError::TooOld`] or [`SchemaError::Foreign`] naming the file.
    pub fn check(&self, conn: &Connection, path: &Path) -> Result<(), SchemaError> {
        // The oldest version read, for the message. A newer version is refused by `found` itself.
        let supported = self.readable_since;
        let found = match self.found(conn, path)? {
            Found::Version(v) => v,
            Found::Unversioned => 1,
            Found::Empty => return Err(self.foreign(path, "it has no tables".into())),
        };
        if found >= supported {
            return Ok(());
        }
        Err(SchemaError::TooOld { file: self.file, path: path.display().to_string(), found, supported })
    }

    fn found(&self, conn: &Connection, path: &Path) -> Result<Found, SchemaError> {
        let sql = |source| self.sql_error(path, source);
        let stored: i64 = conn.pragma_query_value(None, "user_version", |row| row.get(0)).map_err(sql)?;
        if stored != 0 {
            let version = u32::try_from(stored)
                .map_err(|_| self.foreign(path, format!("its schema version {stored} is not one hj212d writes")))?;
            return if version > self.version() {
                Err(SchemaError::TooNew {
                    file: self.file,
                    path: path.display().to_string(),
                    found: version,
                    supported: self.version(),
                })
            } else {
                Ok(Found::Version(version))
            };
        }
        let table = |name: Option<&str>| {
            conn.query_row(
                "SELECT name FROM sqlite_master WHERE type = 'table' AND name NOT LIKE 'sqlite\\_%' ESCAPE '\\'
                 AND (?1 IS NULL OR name = ?1) LIMIT 1",
                [name],
                |row| row.get::<_, String>(0),
            )
            .optional()
        };
        if table(Some(self.marker_table)).map_err(sql)?.is_some() {
            return Ok(Found::Unversioned);
        }
        match table(None).map_err(sql)? {
            None => Ok(Found::Empty),
            Some(other) => Err(self.foreign(
                path,
                format!("it has a table {other} but no table {} and no schema version", self.marker_table),
            )),
        }
    }

    fn create(&self, conn: &Connection, path: &Path) -> Result<Step, SchemaError> {
        for sql in self.create {
            conn.execute_batch(sql).map_err(|source| self.sql_error(path, source))?;
        }
        Ok(Step { from: 0, to: self.version(), change: "created" })
    }

    fn migrate(&self, conn: &Connection, path: &Path, from: u32) -> Result<Step, SchemaError> {
        let to = from + 1;
        let migration = usize::try_from(from - 1).ok().and_then(|i| self.migrations.get(i));
        let Some(migration) = migration else {
            return Err(self.foreign(path, format!("no migration from schema version {from}")));
        };
        conn.execute_batch(migration.sql).map_err(|source| SchemaError::Migration {
            file: self.file,
            path: path.display().to_string(),
            from,
            to,
            source,
        })?;
        Ok(Step { from, to, change: migration.change })
    }

    fn sql_error(&self, path: &Path, source: rusqlite::Error) -> SchemaError {
        SchemaError::Sql { file: self.file, path: path.display().to_string(), source }
    }

    fn foreign(&self, path: &Path, why: String) -> SchemaError {
        SchemaError::Foreign { file: self.file, path: path.display().to_string(), why }
    }
}

/// One committed step: the versions (`user_version`) before and after, and what changed.
struct Step {
    from: u32,
    to: u32,
    change: &'static str,
}

/// The tables, columns and indexes of a database, one line each, sorted: a migrated file
/// and a new one must describe alike (the migration tests compare them).
///
/// # Errors
/// SQL errors.
pub fn describe(conn: &Connection) -> rusqlite::Result<Vec<String>> {
    let mut lines = Vec::new();
    let mut tables = conn.prepare(
        "SELECT name, wr, strict FROM pragma_table_list WHERE schema = 'main' AND type = 'table'
         AND name NOT LIKE 'sqlite\\_%' ESCAPE '\\' ORDER BY name",
    )?;
    let tables: Vec<(String, i64, i64)> =
        tables.query_map([], |row| Ok((row.get(0)?, row.get(1)?, row.get(2)?)))?.collect::<Result<_, _>>()?;
    for (table, without_rowid, strict) in tables {
        lines.push(format!("table {table} without_rowid={without_rowid} strict={strict}"));
        let mut columns = conn.prepare("SELECT name, type, \"notnull\", dflt_value, pk FROM pragma_table_info(?1)")?;
        for column in columns.query_map([&table], |row| {
            Ok(format!(
                "column {table}.{} {} notnull={} default={:?} pk={}",
                row.get::<_, String>(0)?,
                row.get::<_, String>(1)?,
                row.get::<_, i64>(2)?,
                row.get::<_, Option<String>>(3)?,
                row.get::<_, i64>(4)?
            ))
        })? {
            lines.push(column?);
        }
        let mut indexes = conn.prepare(
            "SELECT il.name, il.\"unique\",
                    (SELECT group_concat(name, ',') FROM (SELECT name FROM pragma_index_info(il.name) ORDER BY seqno))
             FROM pragma_index_list(?1) AS il ORDER BY il.name",
        )?;
        for index in indexes.query_map([&table], |row| {
            Ok(format!(
                "index {table}.{} unique={} ({})",
                row.get::<_, String>(0)?,
                row.get::<_, i64>(1)?,
                row.get::<_, Option<String>>(2)?.unwrap_or_default()
            ))
        })? {
            lines.push(index?);
        }
    }
    lines.sort();
    Ok(lines)
}

#[cfg(test)]
mod tests {
    use super::*;

    const TEST: Schema = Schema {
        file: "test database",
        marker_table: "t",
        create: &["CREATE TABLE t (a INTEGER, b TEXT, c REAL);"],
        migrations: &[
            Migration { change: "b added", sql: "ALTER TABLE t ADD COLUMN b TEXT;" },
            // Not idempotent: run twice, it fails ("duplicate column").
            Migration { change: "c added", sql: "ALTER TABLE t ADD COLUMN c REAL;" },
        ],
        readable_since: 3,
    };

    /// A file as the first release of `TEST` wrote it: no version, one row.
    fn first_release(dir: &Path) -> std::path::PathBuf {
        let path = dir.join("test.sqlite");
        Connection::open(&path)
            .unwrap()
            .execute_batch("CREATE TABLE t (a INTEGER); INSERT INTO t VALUES (1);")
            .unwrap();
        path
    }

    fn open(path: &Path) -> Connection {
        let conn = Connection::open(path).unwrap();
        conn.busy_timeout(std::time::Duration::from_secs(10)).unwrap();
        conn
    }

    fn version(conn: &Connection) -> u32 {
        conn.pragma_query_value(None, "user_version", |row| row.get(0)).unwrap()
    }

    #[test]
    fn every_migration_from_the_found_version_runs_once_each() {
        let dir = tempfile::tempdir().unwrap();
        let path = first_release(dir.path());
        let mut conn = open(&path);
        assert_eq!(TEST.prepare(&mut conn, &path).unwrap(), Prepared::Migrated { from: 1, to: 3 });
        assert_eq!(version(&conn), 3);
        assert_eq!(conn.query_row("SELECT a FROM t", [], |row| row.get::<_, i64>(0)).unwrap(), 1);
        assert_eq!(TEST.prepare(&mut conn, &path).unwrap(), Prepared::Current);

        let fresh = dir.path().join("fresh.sqlite");
        let mut new = open(&fresh);
        assert_eq!(TEST.prepare(&mut new, &fresh).unwrap(), Prepared::Created);
        assert_eq!(version(&new), 3);
        assert_eq!(describe(&conn).unwrap(), describe(&new).unwrap());
        TEST.check(&conn, &path).unwrap();
    }

    #[test]
    fn a_failed_migration_keeps_the_steps_before_it_and_names_its_versions() {
        const BROKEN: Schema = Schema {
            migrations: &[
                Migration { change: "b added", sql: "ALTER TABLE t ADD COLUMN b TEXT;" },
                Migration { change: "c added", sql: "ALTER TABLE t ADD COLUMN c REAL; ALTER TABLE missing ADD x;" },
            ],
            ..TEST
        };
        let dir = tempfile::tempdir().unwrap();
        let path = first_release(dir.path());
        let mut conn = open(&path);
        let error = BROKEN.prepare(&mut conn, &path).unwrap_err();
        assert!(matches!(error, SchemaError::Migration { from: 2, to: 3, .. }), "{error:?}");
        assert!(error.to_string().contains("from schema version 2 to 3"), "{error}");
        assert_eq!(version(&conn), 2, "step 1 to 2 is committed, 2 to 3 rolled back whole");
        let columns: i64 = conn.query_row("SELECT COUNT(*) FROM pragma_table_info('t')", [], |row| row.get(0)).unwrap();
        assert_eq!(columns, 2, "no column c from the failed step");
        assert_eq!(TEST.prepare(&mut conn, &path).unwrap(), Prepared::Migrated { from: 2, to: 3 });
    }

    #[test]
    fn openers_at_the_same_time_migrate_once() {
        let dir = tempfile::tempdir().unwrap();
        let path = first_release(dir.path());
        let openers: Vec<_> = (0..4)
            .map(|_| {
                let path = path.clone();
                std::thread::spawn(move || TEST.prepare(&mut open(&path), &path).map(drop))
            })
            .collect();
        for opener in openers {
            opener.join().unwrap().unwrap();
        }
        assert_eq!(version(&open(&path)), 3);
    }

    #[test]
    fn a_reader_accepts_only_this_version() {
        let dir = tempfile::tempdir().unwrap();
        let path = first_release(dir.path());
        let error = TEST.check(&open(&path), &path).unwrap_err();
        assert!(matches!(error, SchemaError::TooOld { found: 1, supported: 3, .. }), "{error:?}");
        let empty = dir.path().join("empty.sqlite");
        let error = TEST.check(&open(&empty), &empty).unwrap_err();
        assert!(matches!(error, SchemaError::Foreign { .. }), "{error:?}");
        let conn = open(&path);
        conn.pragma_update(None, "user_version", -1).unwrap();
        assert!(matches!(TEST.check(&conn, &path).unwrap_err(), SchemaError::Foreign { .. }));
    }
}
