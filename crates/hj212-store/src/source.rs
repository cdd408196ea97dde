//! What the store was built from: this node's archive or a cluster's stream. Positions in
//! one mean nothing in the other, so a store is never fed from the other without a rebuild.

use rusqlite::OptionalExtension as _;

use crate::{Store, StoreError};

/// A store built from this node's archive (every store made before clusters was).
pub const ARCHIVE_SOURCE: &str = "archive";

impl Store {
    /// Records that the store is fed from `source` ([`ARCHIVE_SOURCE`], or `stream:{name}`); a store
    /// that is empty, or that has no source yet and is fed from the archive, takes it.
    ///
    /// # Errors
    /// [`StoreError::OtherSource`] when the store was built from another; SQL errors.
    pub fn claim_source(&self, source: &str) -> Result<(), StoreError> {
        let held = self.source()?;
        if held == source {
            return self.set_source(source);
        }
        if self.applied_seq()? == 0 {
            return self.set_source(source);
        }
        Err(StoreError::OtherSource { held, wanted: source.to_owned() })
    }

    /// What the store was built from: [`ARCHIVE_SOURCE`] unless a cluster's stream claimed it.
    ///
    /// # Errors
    /// SQL errors.
    pub fn source(&self) -> Result<String, StoreError> {
        let held: Option<String> = self
            .conn
            .query_row("SELECT value FROM store_state WHERE key = 'source'", [], |row| row.get(0))
            .optional()?;
        Ok(held.unwrap_or_else(|| ARCHIVE_SOURCE.to_owned()))
    }

    fn set_source(&self, source: &str) -> Result<(), StoreError> {
        self.conn.execute(
            "INSERT INTO store_state (key, value) VALUES ('source', ?1)
             ON CONFLICT (key) DO UPDATE SET value = excluded.value",
            [source],
        )?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_store_is_fed_from_one_source() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(&dir.path().join("store.sqlite")).unwrap();
        store.claim_source("stream:HJ212").expect("an empty store takes any source");
        store.claim_source("stream:HJ212").expect("and keeps it");
        store.conn.execute("INSERT INTO store_state (key, value) VALUES ('applied_seq', 5)", []).unwrap();
        let error = store.claim_source(ARCHIVE_SOURCE).expect_err("built from the stream");
        assert!(error.to_string().contains("built from stream:HJ212"), "{error}");
        store.claim_source("stream:HJ212").expect("its own source");
    }
}
