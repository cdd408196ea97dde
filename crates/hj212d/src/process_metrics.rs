//! Prometheus' standard process metrics (`process_*`, the names every exporter uses), read
//! from /proc/self on Linux: memory, CPU, open file descriptors against their limit.

use std::time::Duration;

use metrics::{describe_gauge, gauge};
use tokio_util::sync::CancellationToken;

pub const RESIDENT_MEMORY: &str = "process_resident_memory_bytes";
pub const VIRTUAL_MEMORY: &str = "process_virtual_memory_bytes";
pub const CPU_SECONDS: &str = "process_cpu_seconds_total";
pub const OPEN_FDS: &str = "process_open_fds";
pub const MAX_FDS: &str = "process_max_fds";
pub const START_TIME: &str = "process_start_time_seconds";

/// How often the values are read again (a scrape every 15 s or more sees fresh ones).
const INTERVAL: Duration = Duration::from_secs(5);

/// /proc reports CPU time in USER_HZ ticks, which the kernel fixes at 100 for user space on
/// every architecture Linux supports today (Prometheus' procfs library assumes the same).
const TICKS_PER_SECOND: f64 = 100.0;

pub fn describe() {
    describe_gauge!(RESIDENT_MEMORY, "Resident memory size in bytes");
    describe_gauge!(VIRTUAL_MEMORY, "Virtual memory size in bytes");
    describe_gauge!(CPU_SECONDS, "User and system CPU time spent, in seconds (a counter kept as a gauge)");
    describe_gauge!(OPEN_FDS, "Open file descriptors (sockets, archive segments, SQLite files)");
    describe_gauge!(MAX_FDS, "The limit of open file descriptors (soft RLIMIT_NOFILE)");
    describe_gauge!(START_TIME, "Start time of the process since the Unix epoch, in seconds");
}

/// Refreshes the values every few seconds until `shutdown` (once at once).
pub async fn run(shutdown: CancellationToken) {
    loop {
        refresh();
        tokio::select! {
            () = tokio::time::sleep(INTERVAL) => {},
            () = shutdown.cancelled() => return,
        }
    }
}

/// Reads /proc/self once; what cannot be read is left as it was.
pub fn refresh() {
    let stat = std::fs::read_to_string("/proc/self/stat").ok();
    if let Some(stat) = stat.as_deref().and_then(Stat::parse) {
        gauge!(CPU_SECONDS).set((stat.utime + stat.stime) as f64 / TICKS_PER_SECOND);
        if let Some(boot) = boot_time() {
            gauge!(START_TIME).set(boot as f64 + stat.start_ticks as f64 / TICKS_PER_SECOND);
        }
    }
    if let Ok(status) = std::fs::read_to_string("/proc/self/status") {
        for (name, key) in [(RESIDENT_MEMORY, "VmRSS:"), (VIRTUAL_MEMORY, "VmSize:")] {
            if let Some(kib) = kib_field(&status, key) {
                gauge!(name).set(kib as f64 * 1024.0);
            }
        }
    }
    if let Ok(entries) = std::fs::read_dir("/proc/self/fd") {
        gauge!(OPEN_FDS).set(entries.count() as f64);
    }
    if let Some(limit) = std::fs::read_to_string("/proc/self/limits").ok().as_deref().and_then(max_open_files) {
        gauge!(MAX_FDS).set(limit as f64);
    }
}

/// The fields of /proc/self/stat this needs (proc(5)).
#[derive(Debug, PartialEq)]
struct Stat {
    utime: u64,
    stime: u64,
    start_ticks: u64,
}

impl Stat {
    fn parse(text: &str) -> Option<Self> {
        // The command name (field 2) is in parentheses and may hold spaces: count after it.
        let after_name = &text[text.rfind(')')? + 1..];
        let fields: Vec<&str> = after_name.split_whitespace().collect();
        // fields[0] is field 3 (state): field n is fields[n - 3].
        let field = |n: usize| fields.get(n - 3)?.parse().ok();
        Some(Self { utime: field(14)?, stime: field(15)?, start_ticks: field(22)? })
    }
}

/// Boot time in Unix seconds (`btime` in /proc/stat).
fn boot_time() -> Option<u64> {
    let stat = std::fs::read_to_string("/proc/stat").ok()?;
    stat.lines().find_map(|line| line.strip_prefix("btime ")?.trim().parse().ok())
}

fn kib_field(status: &str, key: &str) -> Option<u64> {
    let line = status.lines().find(|line| line.starts_with(key))?;
    line[key.len()..].split_whitespace().next()?.parse().ok()
}

/// The soft limit from the `Max open files` line of /proc/self/limits.
fn max_open_files(limits: &str) -> Option<u64> {
    let line = limits.lines().find(|line| line.starts_with("Max open files"))?;
    line["Max open files".len()..].split_whitespace().next()?.parse().ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn proc_files_are_read_as_proc5_describes() {
        let stat = "4242 (hj212d (x) y) S 1 4242 4242 0 -1 4194560 2000 0 0 0 150 75 0 0 20 0 9 0 123456 1000 200";
        assert_eq!(Stat::parse(stat), Some(Stat { utime: 150, stime: 75, start_ticks: 123_456 }));
        assert_eq!(Stat::parse("garbage"), None);
        let limits = "Limit                     Soft Limit           Hard Limit           Units\n\
                      Max open files            65536                524288               files\n";
        assert_eq!(max_open_files(limits), Some(65_536));
        assert_eq!(kib_field("Name:\thj212d\nVmRSS:\t   12345 kB\n", "VmRSS:"), Some(12_345));
    }
}
