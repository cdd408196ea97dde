//! Where followers read durable records from, with their meaning: the batches another follower
//! already read (see [`SharedTail`]), else the archive.

use std::path::Path;
use std::sync::Arc;

use hj212_archive::Follower as Reader;

use crate::Interpreted;
use crate::shared::{Batch, SharedTail};

/// Durable records in order from a sequence number, each with its meaning.
#[derive(Debug)]
pub(crate) struct Source {
    reader: Reader,
    shared: Option<Arc<SharedTail>>,
}

impl Source {
    /// Records from `next_seq` on, taken from `shared` where another follower read them
    /// (`None`: from the archive only).
    pub(crate) fn sharing(archive_dir: &Path, next_seq: u64, shared: Option<Arc<SharedTail>>) -> Self {
        Self { reader: Reader::new(archive_dir, next_seq), shared }
    }

    /// The sequence number the next record will have.
    pub(crate) fn next_seq(&self) -> u64 {
        self.reader.next_seq()
    }

    /// Up to `limit` records with sequence numbers up to `durable`.
    ///
    /// # Errors
    /// I/O errors, or a record that does not verify.
    pub(crate) fn read(&mut self, durable: u64, limit: usize) -> std::io::Result<Batch> {
        let next_seq = self.reader.next_seq();
        let shared = self.shared.as_ref().and_then(|shared| shared.take(next_seq, durable, limit));
        if let Some((batch, end)) = shared.and_then(|batch| Some((batch.clone(), batch.end()?.clone()))) {
            self.reader.jump(end);
            return Ok(batch);
        }
        let records = Interpreted::all(self.reader.read(durable, limit)?);
        let batch = Batch::whole(records, self.reader.bookmark());
        if let Some(shared) = &self.shared {
            shared.keep(&batch);
        }
        Ok(batch)
    }
}
