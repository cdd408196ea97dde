//! Checks against this host, as the user running the check: `data_dir` creatable and writable,
//! listen addresses on this host, secret files readable (`unreadable`, used beside each key's
//! other checks). What the daemon would otherwise find out only at start. Nothing is left
//! behind: a probe file is removed at once.

use std::io::ErrorKind;
use std::net::{SocketAddr, TcpListener};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};

use crate::Config;

pub(crate) fn check_host(config: &Config, problem: &mut impl FnMut(&str, String)) {
    if let Some(message) = data_dir_problem(&config.server.data_dir) {
        problem("server.data_dir", message);
    }
    let signing_key = crate::signing_key_path(config);
    if config.archive.signing_key_file.is_some() && !signing_key.exists() {
        // Never invent a key where the operator pointed: a mistyped path would sign with a key
        // no auditor holds. Only the default in data_dir is created.
        problem(
            "archive.signing_key_file",
            format!(
                "{} does not exist: make it with `hj212d generate-signing-key {}` and give the .pub file to auditors",
                signing_key.display(),
                signing_key.display()
            ),
        );
    } else if let Some(message) = signing_key_problem(&signing_key) {
        problem("archive.signing_key_file", message);
    }
    for (key, addr) in [("server.listen", config.server.listen), ("server.http_listen", config.server.http_listen)] {
        if let Some(message) = address_problem(addr) {
            problem(key, message);
        }
    }
}

/// Why `path` cannot be read by this user, if it cannot.
pub(crate) fn unreadable(path: &Path) -> Option<String> {
    std::fs::read(path).err().map(|e| format!("cannot read {}: {e}", path.display()))
}

fn data_dir_problem(dir: &Path) -> Option<String> {
    if dir.as_os_str().is_empty() {
        return Some("must not be empty".to_owned());
    }
    let existing = match nearest_existing(dir) {
        Ok(existing) => existing,
        Err(message) => return Some(message),
    };
    if let Err(e) = probe_dir(&existing) {
        let why = if existing == dir { String::new() } else { format!(" (to create {})", dir.display()) };
        return Some(format!("cannot create files in {}{why}: {e}", existing.display()));
    }
    if existing != dir {
        return None;
    }
    // The files the daemon writes, checked when they already exist (a daemon once run as root
    // leaves them unwritable for the service user).
    crate::DataDir::new(dir).written().into_iter().find_map(|path| {
        let writable = match std::fs::metadata(&path) {
            Ok(meta) if meta.is_dir() => probe_dir(&path),
            Ok(_) => std::fs::OpenOptions::new().append(true).open(&path).map(drop),
            Err(_) => return None,
        };
        writable.err().map(|e| format!("cannot write {}: {e}", path.display()))
    })
}

/// The checkpoint signing key: readable if it exists; else the daemon creates the default one
/// (and its folder), so the nearest existing folder must take a new file.
fn signing_key_problem(path: &Path) -> Option<String> {
    if path.exists() {
        return unreadable(path);
    }
    let folder = path.parent().filter(|p| !p.as_os_str().is_empty()).unwrap_or(Path::new("."));
    let existing = match nearest_existing(folder) {
        Ok(existing) => existing,
        Err(message) => return Some(message),
    };
    probe_dir(&existing).err().map(|e| {
        format!(
            "{} does not exist and cannot be created in {} ({e}): make it with `hj212d generate-signing-key {}` \
             and let the service user read it",
            path.display(),
            existing.display(),
            path.display()
        )
    })
}

/// `dir` or its nearest existing ancestor, which must be a directory.
fn nearest_existing(dir: &Path) -> Result<PathBuf, String> {
    let mut candidate = dir;
    loop {
        match std::fs::metadata(candidate) {
            Ok(meta) if meta.is_dir() => return Ok(candidate.to_path_buf()),
            Ok(_) => return Err(format!("{} is a file, not a directory", candidate.display())),
            Err(e) if matches!(e.kind(), ErrorKind::NotFound | ErrorKind::NotADirectory) => {
                candidate = match candidate.parent() {
                    Some(parent) if !parent.as_os_str().is_empty() => parent,
                    _ => Path::new("."),
                };
            }
            Err(e) => return Err(format!("cannot use {}: {e}", candidate.display())),
        }
    }
}

/// Creates and removes a file in `dir`.
fn probe_dir(dir: &Path) -> std::io::Result<()> {
    // Unique per call: checks may run at once (a reload beside check-config, parallel tests).
    static PROBES: AtomicU64 = AtomicU64::new(0);
    let n = PROBES.fetch_add(1, Ordering::Relaxed);
    let probe = dir.join(format!(".hj212d-check-{}-{n}", std::process::id()));
    std::fs::OpenOptions::new().write(true).create_new(true).open(&probe)?;
    std::fs::remove_file(&probe)
}

/// An address that is not on this host, or a port this user may not bind.
fn address_problem(addr: SocketAddr) -> Option<String> {
    // Port 0: whether the address is assignable, whatever holds the configured port.
    if let Err(e) = TcpListener::bind(SocketAddr::new(addr.ip(), 0)) {
        return Some(match e.kind() {
            ErrorKind::AddrNotAvailable => format!("{} is not an address of this host", addr.ip()),
            _ => format!("cannot listen on {}: {e}", addr.ip()),
        });
    }
    if (1..1024).contains(&addr.port())
        && let Err(e) = TcpListener::bind(addr)
        && e.kind() == ErrorKind::PermissionDenied
    {
        return Some(format!(
            "port {} is below 1024 and needs CAP_NET_BIND_SERVICE ({e}); see deploy/systemd/hj212d.service",
            addr.port()
        ));
    }
    None
}

/// Configured ports already in use (by a running hj212d, or another program): a warning, not a
/// problem, since the daemon whose config is checked may be the one holding them.
pub(crate) fn ports_in_use(config: &Config) -> Vec<(&'static str, SocketAddr)> {
    [("server.listen", config.server.listen), ("server.http_listen", config.server.http_listen)]
        .into_iter()
        .filter(|(_, addr)| addr.port() != 0)
        .filter(|(_, addr)| TcpListener::bind(addr).is_err_and(|e| e.kind() == ErrorKind::AddrInUse))
        .collect()
}
