//! Where followers read durable records from, with their meaning.

use std::path::Path;

use hj212_archive::Follower as Reader;

use crate::Interpreted;

/// Durable records in order from a sequence number, each with its meaning.
#[derive(Debug)]
pub struct Source {
    reader: Reader,
}

impl Source {
    /// Records from `next_seq` on.
    pub fn new(archive_dir: &Path, next_seq: u64) -> Self {
        Self { reader: Reader::new(archive_dir, next_seq) }
    }

    /// The sequence number the next record will have.
    pub fn next_seq(&self) -> u64 {
        self.reader.next_seq()
    }

    /// Up to `limit` records with sequence numbers up to `durable`.
    ///
    /// # Errors
    /// I/O errors, or a record that does not verify.
    pub fn read(&mut self, durable: u64, limit: usize) -> std::io::Result<Vec<Interpreted>> {
        Ok(Interpreted::all(self.reader.read(durable, limit)?))
    }
}
