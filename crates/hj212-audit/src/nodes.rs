//! The archives of a cluster's nodes read together, oldest record first across them (by
//! archive time), each record checked against its own node's chain as it is read.

use std::collections::VecDeque;

use hj212_archive::{Follower as Reader, Record, list_segments};
use hj212_config::DataDir;

use crate::{EX_DATAERR, EX_NOINPUT, Failure};

/// Records read from one archive at a time (memory: about this x 3 KiB per data dir).
const READ_BATCH: usize = 5_000;

/// One node's archive, read in order.
struct NodeArchive {
    reader: Reader,
    buffered: VecDeque<Record>,
    /// The archive is read to its end.
    done: bool,
    name: String,
}

impl NodeArchive {
    fn open(data_dir: &DataDir) -> Result<Self, Failure> {
        let dir = data_dir.archive();
        let name = data_dir.path().display().to_string();
        let first = list_segments(&dir)
            .map_err(|e| Failure { message: format!("{name}: cannot list the archive: {e}"), exit_code: EX_NOINPUT })?
            .first()
            .map(|(seq, _)| *seq)
            .ok_or_else(|| Failure { message: format!("{name}: no archive segments"), exit_code: EX_NOINPUT })?;
        Ok(Self { reader: Reader::new(&dir, first), buffered: VecDeque::new(), done: false, name })
    }

    /// The next record's archive time, reading on when the buffer is empty.
    fn peek_time(&mut self) -> Result<Option<i64>, Failure> {
        if self.buffered.is_empty() && !self.done {
            let records = self.reader.read(u64::MAX, READ_BATCH).map_err(|e| Failure {
                message: format!("{}: the archive does not verify or cannot be read: {e}", self.name),
                exit_code: EX_DATAERR,
            })?;
            self.done = records.is_empty();
            self.buffered.extend(records);
        }
        Ok(self.buffered.front().map(|r| r.time_ms))
    }
}

/// The nodes' archives, merged.
pub(crate) struct Nodes {
    archives: Vec<NodeArchive>,
}

impl Nodes {
    /// # Errors
    /// A data dir without an archive (exit 66).
    pub(crate) fn open(data_dirs: &[DataDir]) -> Result<Self, Failure> {
        Ok(Self { archives: data_dirs.iter().map(NodeArchive::open).collect::<Result<_, _>>()? })
    }

    /// The oldest record not read yet across the nodes, with the index of its node. Records of
    /// the same millisecond on several nodes have no order: the first node given goes first.
    ///
    /// # Errors
    /// An archive that cannot be read or does not verify (exit 65).
    pub(crate) fn next(&mut self) -> Result<Option<(usize, Record)>, Failure> {
        let mut oldest: Option<(usize, i64)> = None;
        for (index, node) in self.archives.iter_mut().enumerate() {
            if let Some(time) = node.peek_time()?
                && oldest.is_none_or(|(_, t)| time < t)
            {
                oldest = Some((index, time));
            }
        }
        Ok(oldest.and_then(|(index, _)| Some((index, self.archives[index].buffered.pop_front()?))))
    }

    /// The data dir of node `index`, as given.
    pub(crate) fn name(&self, index: usize) -> &str {
        &self.archives[index].name
    }
}
