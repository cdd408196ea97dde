//! A small file system of its own (tmpfs), to fill up in tests of a full disk.

use std::path::Path;
use std::process::Command;

/// A tmpfs mounted on a temp dir, unmounted on drop. Mounting needs root (CI runs as root);
/// without it the test fails with that explanation rather than being skipped.
#[derive(Debug)]
pub struct Tmpfs {
    dir: tempfile::TempDir,
}

impl Tmpfs {
    /// Mounts a tmpfs of `bytes` bytes.
    ///
    /// # Panics
    /// If it cannot be mounted (not root, or no `mount`).
    pub fn mount(bytes: u64) -> Self {
        let dir = tempfile::tempdir().expect("temp dir");
        let status = Command::new("mount")
            .args(["-t", "tmpfs", "-o", &format!("size={bytes}"), "tmpfs"])
            .arg(dir.path())
            .status()
            .expect("run mount");
        assert!(
            status.success(),
            "cannot mount a tmpfs on {}: this test fills a disk and needs root",
            dir.path().display()
        );
        Self { dir }
    }

    pub fn path(&self) -> &Path {
        self.dir.path()
    }

    /// Fills the file system with `name` until a write fails (no space left).
    ///
    /// # Panics
    /// If the filler file cannot be created.
    pub fn fill(&self, name: &str) {
        use std::io::Write;
        let mut file = std::fs::File::create(self.path().join(name)).expect("create filler");
        let chunk = vec![0u8; 4096];
        while file.write_all(&chunk).and_then(|()| file.sync_all()).is_ok() {}
    }
}

impl Drop for Tmpfs {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg("-l").arg(self.dir.path()).status();
    }
}
