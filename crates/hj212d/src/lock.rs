//! One daemon per data directory. A second instance started on the same `data_dir` (an
//! operator's mistake, a unit started twice) would append to the running daemon's archive
//! and break its hash chain; it must stop before writing anything.

use std::fs::{File, OpenOptions, TryLockError};
use std::io::{Read, Seek, SeekFrom, Write};
use std::path::PathBuf;

use hj212_config::DataDir;

/// Another process holds the data directory, or the lock cannot be taken.
#[derive(Debug, thiserror::Error)]
pub enum LockError {
    #[error(
        "data_dir {dir} is in use by another hj212d (PID {pid}, lock {lock}); stop it first, or give this \
         instance its own server.data_dir"
    )]
    Held { dir: PathBuf, pid: String, lock: PathBuf },
    #[error("cannot lock data_dir {dir} ({lock}): {source}")]
    Io { dir: PathBuf, lock: PathBuf, source: std::io::Error },
}

/// The exclusive lock on a data directory, held until dropped (or the process ends: the
/// kernel releases it, so a SIGKILLed daemon never leaves a stale lock).
#[derive(Debug)]
pub struct DataDirLock {
    _file: File,
}

impl DataDirLock {
    /// Takes the lock without waiting, creating `data_dir` if needed; writes nothing else.
    ///
    /// # Errors
    /// [`LockError::Held`] naming the PID of the holder; [`LockError::Io`] otherwise.
    pub fn acquire(data_dir: &DataDir) -> Result<Self, LockError> {
        let (dir, lock) = (data_dir.path(), data_dir.lock());
        let io = |source| LockError::Io { dir: dir.to_path_buf(), lock: lock.clone(), source };
        std::fs::create_dir_all(dir).map_err(io)?;
        // No truncation on open: the holder's PID stays readable for the message below.
        let mut file =
            OpenOptions::new().read(true).write(true).create(true).truncate(false).open(&lock).map_err(io)?;
        match file.try_lock() {
            Ok(()) => {}
            Err(TryLockError::WouldBlock) => {
                let mut pid = String::new();
                let _ = file.read_to_string(&mut pid);
                let pid = Some(pid.trim().to_owned()).filter(|p| !p.is_empty()).unwrap_or_else(|| "unknown".into());
                return Err(LockError::Held { dir: dir.to_path_buf(), pid, lock });
            }
            Err(TryLockError::Error(source)) => return Err(io(source)),
        }
        file.set_len(0).map_err(io)?;
        file.seek(SeekFrom::Start(0)).map_err(io)?;
        writeln!(file, "{}", std::process::id()).map_err(io)?;
        Ok(Self { _file: file })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_second_lock_names_the_holder_and_the_first_release_frees_it() {
        let temp = tempfile::tempdir().unwrap();
        let dir = DataDir::new(temp.path());
        let first = DataDirLock::acquire(&dir).unwrap();
        let error = DataDirLock::acquire(&dir).unwrap_err();
        let LockError::Held { pid, .. } = &error else { panic!("{error}") };
        assert_eq!(*pid, std::process::id().to_string());
        assert!(error.to_string().contains("in use by another hj212d"), "{error}");
        drop(first);
        DataDirLock::acquire(&dir).unwrap();
    }
}
