//! hj212d configuration: serde types with documented defaults, `load`, and `check`, which
//! returns every problem at once. This crate never logs and never exits.
//!
//! Precedence: command-line flags > config file > built-in defaults.

mod alerts;
mod broker_url;
mod check;
mod check_alerts;
mod cluster;
mod commands;
mod console;
mod data_dir;
mod forward;
mod host;
mod logging;
mod notify;
mod parse;
mod service;
mod store;
mod types;

use std::path::{Path, PathBuf};

pub use alerts::{AlertRules, FactorLimit, LimitBasis, Mqtt};
pub use broker_url::{BrokerUrl, BrokerUrlError};
pub use check::{Problem, check, warnings};
pub use cluster::{AckAfter, Cluster, ReadFrom};
pub use commands::{Commands, Recovery, RecoveryBasis};
pub use console::{Console, Role, User};
pub use data_dir::DataDir;
pub use forward::{Forward, Rewrite};
pub use logging::{LogFormat, UtcOffset};
pub use notify::{
    ALERT_KINDS, ALERT_SEVERITIES, ALERT_STATES, Notify, NotifyKind, NotifyLanguage, QuietHours, SmtpTls,
};
pub use service::{Reports, Service, ServiceArea};
pub use store::{StoreConfig, readings_needed};
pub use types::*;

/// A config file that cannot be read or parsed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ConfigError {
    #[error("cannot read {path}: {source}")]
    Io { path: PathBuf, source: std::io::Error },
    /// The site registry named by `server.sites_file` cannot be read.
    #[error("server.sites_file: cannot read {path}: {source}")]
    SitesFile { path: PathBuf, source: std::io::Error },
    /// Every TOML error found (syntax errors, or else each table's and each site's errors).
    #[error("{path}: {message}")]
    Parse { path: PathBuf, message: String },
}

/// Reads a config file, and the site registry file it names (relative to the config's folder).
/// Relative paths in it (`data_dir`, key and token files) are relative to the config's folder.
///
/// # Errors
/// [`ConfigError`] naming the file and, for TOML errors, the line and the offending key.
pub fn load(path: &Path) -> Result<Config, ConfigError> {
    let mut config: Config = parse_file(path)?;
    config.source = Some(path.to_path_buf());
    config.sites.extend(load_sites_file(&config)?);
    let dir = path.parent().unwrap_or(Path::new("."));
    // Like every other path in the file, so the daemon, check-config and hj212-audit find the
    // same data whatever their working directory.
    config.server.data_dir = dir.join(&config.server.data_dir);
    // Key files are relative to the config file, wherever their site was listed.
    for site in &mut config.sites {
        for file in [&mut site.key_file, &mut site.previous_key_file].into_iter().flatten() {
            *file = dir.join(&*file);
        }
    }
    for file in config.forward.iter_mut().flat_map(|t| &mut t.rewrite).filter_map(|r| r.key_file.as_mut()) {
        *file = dir.join(&*file);
    }
    Ok(config)
}

/// Parses config text (no sites file is read).
///
/// # Errors
/// [`ConfigError::Parse`] with the TOML error.
pub fn from_str(text: &str) -> Result<Config, ConfigError> {
    parse_text(text, Path::new("<config>"))
}

/// Re-reads the site registry (the config's `[[sites]]` and its `sites_file`), for SIGHUP.
///
/// # Errors
/// As [`load`].
pub fn reload_sites(config: &Config) -> Result<Vec<Site>, ConfigError> {
    match &config.source {
        Some(path) => Ok(load(path)?.sites),
        None => Ok(config.sites.clone()),
    }
}

/// The admin token (for mutating HTTP endpoints), from `server.admin_token_file`.
///
/// # Errors
/// [`ConfigError::Io`] when the file cannot be read.
pub fn admin_token(config: &Config) -> Result<Option<String>, ConfigError> {
    token_in(config, config.server.admin_token_file.as_deref())
}

/// The read token (for `GET /api/v1/*`), from `server.admin_read_token_file`.
///
/// # Errors
/// [`ConfigError::Io`] when the file cannot be read.
pub fn admin_read_token(config: &Config) -> Result<Option<String>, ConfigError> {
    token_in(config, config.server.admin_read_token_file.as_deref())
}

fn token_in(config: &Config, file: Option<&Path>) -> Result<Option<String>, ConfigError> {
    let Some(file) = file else { return Ok(None) };
    let path = resolve(config, file);
    let token = std::fs::read_to_string(&path).map_err(|source| ConfigError::Io { path: path.clone(), source })?;
    Ok(Some(token.trim().to_owned()).filter(|t| !t.is_empty()))
}

/// The Influx token file, resolved against the config file's folder.
pub fn influx_token_path(config: &Config) -> Option<PathBuf> {
    let file = config.influx.as_ref()?.token_file.as_ref()?;
    Some(resolve(config, file))
}

/// The Influx token, from `token` or `token_file`.
///
/// # Errors
/// [`ConfigError::Io`] when the token file cannot be read.
pub fn influx_token(config: &Config) -> Result<Option<String>, ConfigError> {
    let Some(influx) = &config.influx else { return Ok(None) };
    if let Some(token) = &influx.token {
        return Ok(Some(token.clone()));
    }
    match influx_token_path(config) {
        Some(path) => std::fs::read_to_string(&path)
            .map(|t| Some(t.trim_end().to_owned()))
            .map_err(|source| ConfigError::Io { path, source }),
        None => Ok(None),
    }
}

pub(crate) fn resolve(config: &Config, file: &Path) -> PathBuf {
    let base = config.source.as_deref().and_then(Path::parent).unwrap_or(Path::new("."));
    base.join(file)
}

/// The MQTT password, from `mqtt.password_file`.
///
/// # Errors
/// [`ConfigError::Io`] when the file cannot be read.
pub fn mqtt_password(config: &Config) -> Result<Option<String>, ConfigError> {
    let Some(file) = config.mqtt.as_ref().and_then(|m| m.password_file.as_ref()) else { return Ok(None) };
    let path = resolve(config, file);
    std::fs::read_to_string(&path)
        .map(|p| Some(p.trim_end().to_owned()))
        .map_err(|source| ConfigError::Io { path, source })
}

/// A path from the config, resolved against the config file's folder.
pub fn resolve_path(config: &Config, file: &Path) -> PathBuf {
    resolve(config, file)
}

/// The archive's checkpoint signing key: `archive.signing_key_file` resolved against the
/// config file's folder, or `data_dir/archive-signing.key`.
pub fn signing_key_path(config: &Config) -> PathBuf {
    match &config.archive.signing_key_file {
        Some(file) => resolve(config, file),
        None => config.data_dir().default_signing_key(),
    }
}

/// The site registry file, resolved against the config file's folder.
pub fn sites_file_path(config: &Config) -> Option<PathBuf> {
    let file = config.server.sites_file.as_ref()?;
    Some(resolve(config, file))
}

fn load_sites_file(config: &Config) -> Result<Vec<Site>, ConfigError> {
    match sites_file_path(config) {
        Some(path) => {
            let text = std::fs::read_to_string(&path)
                .map_err(|source| ConfigError::SitesFile { path: path.clone(), source })?;
            Ok(parse_text::<SitesFile>(&text, &path)?.sites)
        }
        None => Ok(Vec::new()),
    }
}

fn parse_file<T: serde::de::DeserializeOwned>(path: &Path) -> Result<T, ConfigError> {
    let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Io { path: path.to_path_buf(), source })?;
    parse_text(&text, path)
}

fn parse_text<T: serde::de::DeserializeOwned>(text: &str, path: &Path) -> Result<T, ConfigError> {
    parse::parse(text).map_err(|errors| {
        let count = match errors.len() {
            1 => String::new(),
            n => format!("{n} errors\n"),
        };
        let each: Vec<String> = errors.iter().map(|e| e.to_string().trim_end().to_owned()).collect();
        ConfigError::Parse { path: path.to_path_buf(), message: format!("{count}{}", each.join("\n")) }
    })
}

/// The built-in defaults as TOML, for `hj212d print-default-config`.
///
/// # Errors
/// Only if the defaults could not be serialized, which a test rules out.
pub fn default_toml() -> Result<String, toml::ser::Error> {
    toml::to_string(&Config::default())
}
