//! File descriptors: every logger connection holds one, and so do the archive, the SQLite
//! files, the sinks and the admin API. Out of descriptors, `accept` fails (EMFILE) and so
//! would the archive's next segment: check at start that the configured connections fit.

use rustix::process::{Resource, Rlimit, getrlimit, setrlimit};

/// Descriptors the daemon needs besides logger connections: archive segments, SQLite files
/// and their journals, sink and broker sockets, admin HTTP connections, the listeners.
pub const RESERVED: u64 = 256;

/// The descriptor limit is too low for `limits.max_connections`.
#[derive(Debug, thiserror::Error)]
#[error(
    "limits.max_connections = {connections} needs about {needed} file descriptors ({RESERVED} more for the \
     daemon's own files and sockets), but RLIMIT_NOFILE allows {limit}: raise it (systemd: LimitNOFILE=) or \
     lower limits.max_connections"
)]
pub struct FdLimitError {
    pub connections: u64,
    pub needed: u64,
    pub limit: u64,
}

/// Raises the soft descriptor limit to the hard one, and checks that `max_connections` fits.
/// Returns the limit now in force.
///
/// # Errors
/// [`FdLimitError`] naming the numbers when it does not fit.
pub fn raise_and_check(max_connections: usize) -> Result<u64, FdLimitError> {
    let current = getrlimit(Resource::Nofile);
    if current.maximum != current.current {
        // Best effort: the soft limit is ours to raise up to the hard one.
        let _ = setrlimit(Resource::Nofile, Rlimit { current: current.maximum, maximum: current.maximum });
    }
    let limit = getrlimit(Resource::Nofile).current.unwrap_or(u64::MAX);
    let connections = max_connections as u64;
    let needed = connections.saturating_add(RESERVED);
    if needed > limit {
        return Err(FdLimitError { connections, needed, limit });
    }
    Ok(limit)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_soft_limit_is_raised_and_too_many_connections_are_refused_with_the_numbers() {
        let hard = getrlimit(Resource::Nofile).maximum.unwrap_or(u64::MAX);
        assert_eq!(raise_and_check(10).unwrap(), hard);
        let now = getrlimit(Resource::Nofile);
        assert_eq!(now.current, now.maximum, "soft limit raised to the hard one");
        if let Ok(too_many) = usize::try_from(hard) {
            let error = raise_and_check(too_many).unwrap_err();
            assert_eq!(error.limit, hard);
            assert!(error.to_string().contains("limits.max_connections"), "{error}");
        }
    }
}
