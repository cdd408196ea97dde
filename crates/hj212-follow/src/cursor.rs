//! A sink's position in the archive, kept in a small file: the last sequence number whose
//! results are out (the Influx sink's points written, a forwarding target's frames acknowledged).

use std::io;
use std::path::{Path, PathBuf};

#[derive(Debug)]
pub struct Cursor {
    path: PathBuf,
    pub seq: u64,
    /// The last save was not fsynced.
    unsynced: bool,
}

impl Cursor {
    /// The position saved at `path`; 0 when there is none yet.
    ///
    /// # Errors
    /// The file cannot be read or does not hold a number.
    pub fn load(path: &Path) -> io::Result<Self> {
        let seq = match std::fs::read_to_string(path) {
            // Empty after a power cut between create and write: start from the beginning
            // (a replay is idempotent).
            Ok(text) if text.trim().is_empty() => 0,
            Ok(text) => text.trim().parse().map_err(|_| {
                io::Error::new(
                    io::ErrorKind::InvalidData,
                    format!("{} does not hold a sequence number", path.display()),
                )
            })?,
            Err(e) if e.kind() == io::ErrorKind::NotFound => 0,
            Err(e) => return Err(e),
        };
        Ok(Self { path: path.to_path_buf(), seq, unsynced: false })
    }

    /// Moves the cursor and saves it (write to a temp file, then rename: never half-written).
    /// Losing the last save in a crash only means a replay, which is idempotent.
    ///
    /// # Errors
    /// The file cannot be written.
    pub fn advance(&mut self, seq: u64) -> io::Result<()> {
        self.write(seq, true)
    }

    /// As [`Cursor::advance`] without the fsync: it survives the process being killed (the
    /// kernel has the file), not a power cut. For positions saved many times a second, with an
    /// [`Cursor::advance`] now and then.
    ///
    /// # Errors
    /// The file cannot be written.
    pub fn advance_unsynced(&mut self, seq: u64) -> io::Result<()> {
        self.write(seq, false)
    }

    fn write(&mut self, seq: u64, sync: bool) -> io::Result<()> {
        if seq <= self.seq && !(sync && self.unsynced) {
            return Ok(());
        }
        let seq = seq.max(self.seq);
        let tmp = self.path.with_extension("tmp");
        let mut file = std::fs::File::create(&tmp)?;
        std::io::Write::write_all(&mut file, format!("{seq}\n").as_bytes())?;
        if sync {
            file.sync_data()?;
        }
        std::fs::rename(&tmp, &self.path)?;
        self.seq = seq;
        self.unsynced = !sync;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn saves_and_reloads() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("influx.cursor");
        let mut cursor = Cursor::load(&path).unwrap();
        assert_eq!(cursor.seq, 0);
        cursor.advance(42).unwrap();
        cursor.advance(41).unwrap();
        assert_eq!(Cursor::load(&path).unwrap().seq, 42);
        cursor.advance_unsynced(50).unwrap();
        assert_eq!(Cursor::load(&path).unwrap().seq, 50, "a killed process's last save is in the file");
        cursor.advance(50).unwrap();
        assert_eq!(Cursor::load(&path).unwrap().seq, 50);
        std::fs::write(&path, "junk").unwrap();
        assert!(Cursor::load(&path).unwrap_err().to_string().contains("does not hold a sequence number"));
    }
}
