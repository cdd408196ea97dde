//! Sign-in attempts, limited: after `login_max_failures` failures for one name or from one
//! address within `login_lockout_minutes`, further attempts are refused (429) until the window
//! passes, whether or not the password is right: guessing costs a lockout, not a check.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// Names and addresses tracked at once; beyond it the oldest windows are forgotten first.
const MAX_TRACKED: usize = 10_000;

#[derive(Debug, Clone, Copy)]
struct Failures {
    count: u32,
    since: Instant,
}

/// Failures by name and by address.
#[derive(Debug)]
pub(crate) struct LoginLimiter {
    failures: Mutex<HashMap<String, Failures>>,
    max_failures: u32,
    window: Duration,
}

impl LoginLimiter {
    pub(crate) fn new(settings: &hj212_config::Console) -> Self {
        Self {
            failures: Mutex::new(HashMap::new()),
            max_failures: settings.login_max_failures,
            window: Duration::from_secs(u64::from(settings.login_lockout_minutes) * 60),
        }
    }

    /// How long `name` from `address` must wait before trying again; `None`: it may try now.
    pub(crate) fn locked(&self, name: &str, address: IpAddr) -> Option<Duration> {
        let now = Instant::now();
        let failures = self.lock();
        [key_of_name(name), key_of_address(address)]
            .iter()
            .filter_map(|key| failures.get(key))
            .filter(|f| f.count >= self.max_failures)
            .filter_map(|f| self.window.checked_sub(now.duration_since(f.since)))
            .max()
    }

    pub(crate) fn failed(&self, name: &str, address: IpAddr) {
        let now = Instant::now();
        let mut failures = self.lock();
        failures.retain(|_, f| now.duration_since(f.since) < self.window);
        if failures.len() + 2 > MAX_TRACKED {
            let mut oldest: Vec<_> = failures.iter().map(|(k, f)| (f.since, k.clone())).collect();
            oldest.sort();
            for (_, key) in oldest.into_iter().take(MAX_TRACKED / 10) {
                failures.remove(&key);
            }
        }
        for key in [key_of_name(name), key_of_address(address)] {
            let entry = failures.entry(key).or_insert(Failures { count: 0, since: now });
            entry.count += 1;
        }
    }

    /// A right password before the lockout: the name's failures are forgotten (not the address's).
    pub(crate) fn succeeded(&self, name: &str) {
        self.lock().remove(&key_of_name(name));
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<String, Failures>> {
        self.failures.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
    }
}

fn key_of_name(name: &str) -> String {
    format!("name:{name}")
}

fn key_of_address(address: IpAddr) -> String {
    format!("addr:{address}")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_name_is_locked_after_the_failures_and_other_names_are_not() {
        let settings = hj212_config::Console { login_max_failures: 3, ..hj212_config::Console::default() };
        let limiter = LoginLimiter::new(&settings);
        let (here, there) = ("127.0.0.1".parse().unwrap(), "127.0.0.2".parse().unwrap());
        for _ in 0..2 {
            limiter.failed("li", here);
        }
        assert_eq!(limiter.locked("li", there), None);
        limiter.failed("li", there);
        let wait = limiter.locked("li", "127.0.0.3".parse().unwrap()).unwrap();
        assert!(wait > Duration::from_secs(14 * 60), "{wait:?}");
        assert_eq!(limiter.locked("wang", "127.0.0.3".parse().unwrap()), None);
        limiter.failed("a", here);
        assert!(limiter.locked("b", here).is_some(), "the address failed 3 times");
    }
}
