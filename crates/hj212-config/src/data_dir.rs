//! The data directory's layout, named once: every file and folder the daemon writes there,
//! and that hj212-audit reads.

use std::path::{Path, PathBuf};

/// A data directory (`server.data_dir`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DataDir(PathBuf);

impl DataDir {
    pub fn new(path: impl Into<PathBuf>) -> Self {
        Self(path.into())
    }

    pub fn path(&self) -> &Path {
        &self.0
    }

    /// The hash-chained archive's segments and `checkpoint.latest`.
    pub fn archive(&self) -> PathBuf {
        self.0.join("archive")
    }

    /// The embedded store: readings, the rate ledger, marks.
    pub fn store(&self) -> PathBuf {
        self.0.join("store.sqlite")
    }

    /// What `hj212-audit rebuild-ledger` writes unless told otherwise.
    pub fn rebuilt_store(&self) -> PathBuf {
        self.0.join("store.rebuilt.sqlite")
    }

    /// The alert engine's database and MQTT outbox.
    pub fn alerts(&self) -> PathBuf {
        self.0.join("alerts.sqlite")
    }

    /// Host commands to loggers and their states (the queue survives a restart).
    pub fn commands(&self) -> PathBuf {
        self.0.join("commands.sqlite")
    }

    /// The Influx sink's position in the archive.
    pub fn influx_cursor(&self) -> PathBuf {
        self.0.join("influx.cursor")
    }

    /// A forwarding target's position in the archive (the last frame the upstream acknowledged).
    pub fn forward_cursor(&self, target: &str) -> PathBuf {
        self.0.join(format!("forward-{target}.cursor"))
    }

    /// A follower's own position in the cluster's stream (`[cluster] sinks_from = "stream"`:
    /// `influx`, `forward-NAME`), beside the one the cluster keeps: never mixed with a
    /// position in the archive.
    pub fn stream_cursor(&self, follower: &str) -> PathBuf {
        self.0.join(format!("stream-{follower}.cursor"))
    }

    /// The cluster publisher's position in the archive (the last record the stream stored).
    pub fn cluster_cursor(&self) -> PathBuf {
        self.0.join("cluster.cursor")
    }

    /// Batches the time-series database refused (4xx).
    pub fn influx_dead_letter(&self) -> PathBuf {
        self.0.join("influx-dead-letter.lp")
    }

    /// The daily and monthly reports the daemon writes.
    pub fn reports(&self) -> PathBuf {
        self.0.join("reports")
    }

    /// HJ 212-2025 SM4 keys, one file per site once rotated.
    pub fn sm4_keys(&self) -> PathBuf {
        self.0.join("keys")
    }

    /// The checkpoint signing key when `archive.signing_key_file` is not set.
    pub fn default_signing_key(&self) -> PathBuf {
        self.0.join("archive-signing.key")
    }

    /// The lock one daemon holds on the directory, with its PID.
    pub fn lock(&self) -> PathBuf {
        self.0.join("hj212d.lock")
    }

    /// The files in the directory the daemon writes, which must stay writable for it.
    pub fn written(&self) -> [PathBuf; 6] {
        [self.archive(), self.sm4_keys(), self.store(), self.alerts(), self.commands(), self.influx_cursor()]
    }
}
