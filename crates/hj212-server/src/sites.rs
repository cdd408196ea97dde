//! The site registry (reloadable on SIGHUP) and each site's live state for the API.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, RwLock};

use hj212_config::{CrcSetting, Encryption, Site};
use hj212_proto::crc::CrcPolicy;
use serde::Serialize;

/// A configured site, as the server needs it.
#[derive(Debug, Clone, PartialEq)]
pub struct SiteEntry {
    pub mn: String,
    pub name: String,
    password: String,
    pub crc: CrcPolicy,
    pub encryption: Encryption,
    /// The site as configured (factors, rate rules).
    pub config: Site,
}

impl SiteEntry {
    /// Compares without an early exit, so response timing does not reveal the password.
    pub fn password_matches(&self, given: Option<&str>) -> bool {
        let given = given.unwrap_or_default().as_bytes();
        let expected = self.password.as_bytes();
        let mut diff = u8::from(given.len() != expected.len());
        for (i, &b) in expected.iter().enumerate() {
            diff |= b ^ given.get(i).copied().unwrap_or(0);
        }
        diff == 0
    }

    /// The password, for commands the host sends to this site.
    pub fn password(&self) -> &str {
        &self.password
    }
}

fn policy(setting: CrcSetting) -> CrcPolicy {
    match setting {
        CrcSetting::Hj212 => CrcPolicy::Hj212,
        CrcSetting::Modbus => CrcPolicy::Modbus,
        CrcSetting::ModbusSwapped => CrcPolicy::ModbusSwapped,
        CrcSetting::Any => CrcPolicy::Any,
    }
}

/// The configured sites, swapped whole on reload so readers never see half a registry.
#[derive(Debug, Default)]
pub struct Registry {
    sites: RwLock<Arc<HashMap<String, SiteEntry>>>,
}

impl Registry {
    pub fn new(sites: &[Site]) -> Self {
        let registry = Self::default();
        registry.replace(sites);
        registry
    }

    /// Installs a new site list; connections pick it up with their next frame.
    pub fn replace(&self, sites: &[Site]) {
        let map = sites
            .iter()
            .map(|s| {
                let entry = SiteEntry {
                    mn: s.mn.clone(),
                    name: s.name.clone(),
                    password: s.password.clone(),
                    crc: policy(s.crc),
                    encryption: s.encryption,
                    config: s.clone(),
                };
                (s.mn.clone(), entry)
            })
            .collect();
        *self.sites.write().unwrap_or_else(std::sync::PoisonError::into_inner) = Arc::new(map);
    }

    pub fn snapshot(&self) -> Arc<HashMap<String, SiteEntry>> {
        self.sites.read().unwrap_or_else(std::sync::PoisonError::into_inner).clone()
    }
}

/// What the API shows about one site.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct SiteState {
    /// Open connections that have carried an accepted frame of this MN.
    pub connections: u32,
    pub peer: Option<String>,
    pub last_frame_ms: Option<i64>,
    pub last_data_time: Option<String>,
    /// Logger clock minus ours, from the last real-time (2011) frame.
    pub clock_offset_ms: Option<i64>,
    /// When the daemon last sent this logger a 1012 set-time.
    pub last_time_set_ms: Option<i64>,
    /// The logger's hardware identity from its last CN 1001 (HJ 212-2025: DataLoggerId, CPUID, MACs).
    pub hardware: Option<String>,
    /// Consecutive real-time frames whose offset was over the threshold and consistent.
    #[serde(skip)]
    pub drift_streak: u32,
    /// The newest real-time DataTime seen (clock supervision ignores older and repeated ones).
    #[serde(skip)]
    pub last_rtd_ms: Option<i64>,
    /// The system code (ST) and protocol version of its last accepted frame: host commands use them.
    #[serde(skip)]
    pub speaks: Option<(String, hj212_proto::model::Version)>,
}

/// Live state of every site that has been seen.
#[derive(Debug, Default)]
pub struct States {
    inner: Mutex<HashMap<String, SiteState>>,
}

impl States {
    pub fn update<R>(&self, mn: &str, f: impl FnOnce(&mut SiteState) -> R) -> R {
        let mut map = self.inner.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        // Look up before inserting: no key allocation on the per-frame path.
        if let Some(state) = map.get_mut(mn) {
            return f(state);
        }
        f(map.entry(mn.to_owned()).or_default())
    }

    pub fn get(&self, mn: &str) -> Option<SiteState> {
        self.inner.lock().unwrap_or_else(std::sync::PoisonError::into_inner).get(mn).cloned()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn password_comparison() {
        let config = Site::new("M", "123456");
        let entry = Registry::new(std::slice::from_ref(&config)).snapshot()["M"].clone();
        assert!(entry.password_matches(Some("123456")));
        assert!(!entry.password_matches(Some("123457")));
        assert!(!entry.password_matches(Some("1234567")));
        assert!(!entry.password_matches(Some("12345")));
        assert!(!entry.password_matches(None));
    }
}
