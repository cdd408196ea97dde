//! Config types. Every field has a default; the defaults are the documented ones in
//! `config/hj212d.toml` and docs/config.md.

use std::net::SocketAddr;
use std::path::PathBuf;

use serde::{Deserialize, Serialize};

use crate::{
    AlertRules, Commands, Console, FactorLimit, Forward, LogFormat, Mqtt, Recovery, Reports, Service, ServiceArea,
    UtcOffset,
};

/// The whole configuration.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Config {
    pub server: Server,
    pub limits: Limits,
    pub http: Http,
    pub time_sync: TimeSync,
    pub archive: Archive,
    /// The embedded store: how long it keeps readings.
    pub store: crate::StoreConfig,
    pub followers: Followers,
    /// The InfluxDB / VictoriaMetrics sink; absent = off.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub influx: Option<Influx>,
    /// Alerts published over MQTT; absent = alerts are still evaluated, stored and served by the API.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub mqtt: Option<Mqtt>,
    /// Alert rule defaults for every site (a site's own `[sites.alerts]` replaces them).
    pub alerts: AlertRules,
    /// Host commands to connected loggers.
    pub commands: Commands,
    /// Automatic gap recovery (history requests for missing records).
    pub recovery: Recovery,
    /// Upstream platforms accepted frames are relayed to.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub forward: Vec<Forward>,
    /// Channels that bring alert messages to people (webhook, DingTalk, WeCom, e-mail).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub notify: Vec<crate::Notify>,
    /// Nodes sharing one replicated stream (NATS JetStream); absent = a single node.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub cluster: Option<crate::Cluster>,
    /// Service targets (response and on-site times).
    pub service: Service,
    /// The daily and monthly reports written to the data dir.
    pub reports: Reports,
    /// The web console's sessions and sign-in limits.
    pub console: Console,
    /// Console accounts; none: the console is off (the API's bearer tokens still work).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub users: Vec<crate::User>,
    pub sites: Vec<Site>,
    /// The file this config was loaded from (not a config key).
    #[serde(skip)]
    pub source: Option<PathBuf>,
}

impl Config {
    /// The data directory and the files in it.
    pub fn data_dir(&self) -> crate::DataDir {
        crate::DataDir::new(&self.server.data_dir)
    }
}

/// Listeners, data directory and logging.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Server {
    /// HJ 212 TCP listener.
    pub listen: SocketAddr,
    /// Admin HTTP listener (metrics, health, API). Keep it on loopback or behind a proxy.
    pub http_listen: SocketAddr,
    /// Archive segments and the embedded store live here; relative to this file.
    pub data_dir: PathBuf,
    /// A separate site registry (`[[sites]]` only), for thousands of sites; relative to this file.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub sites_file: Option<PathBuf>,
    /// Log filter (`error`, `warn`, `info`, `debug`, `trace`, or an `EnvFilter` directive).
    pub log_level: String,
    /// One line per event, as text or JSON (on stderr; colour only on a terminal).
    pub log_format: LogFormat,
    /// The offset of log timestamps (RFC 3339); Beijing time by default.
    pub log_utc_offset: UtcOffset,
    /// A file holding the bearer token for mutating admin endpoints (marks); relative to this
    /// file. Unset: those endpoints answer 403.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub admin_token_file: Option<PathBuf>,
    /// A file holding a bearer token that `GET /api/v1/*` then require (the admin token also
    /// works); relative to this file. Unset: those reads are open. `/metrics`, `/healthz` and
    /// `/readyz` stay open either way.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub admin_read_token_file: Option<PathBuf>,
}

impl Default for Server {
    fn default() -> Self {
        Self {
            listen: SocketAddr::from(([0, 0, 0, 0], 9212)),
            http_listen: SocketAddr::from(([127, 0, 0, 1], 9213)),
            data_dir: PathBuf::from("./data"),
            sites_file: None,
            log_level: "info".to_owned(),
            log_format: LogFormat::Text,
            log_utc_offset: UtcOffset::BEIJING,
            admin_token_file: None,
            admin_read_token_file: None,
        }
    }
}

/// Every buffer, queue and connection count has a limit here.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Limits {
    /// Concurrent TCP connections. When all are taken, the oldest connection that has not
    /// authenticated yet is closed to admit a new one; when every one has authenticated, new
    /// ones wait in the kernel backlog.
    pub max_connections: usize,
    /// Concurrent connections from one IP address (loggers behind one carrier NAT share one).
    pub max_connections_per_peer: usize,
    /// Connections that have not yet sent an authenticated frame, at most; beyond this the
    /// oldest one of the address holding the most of them is closed to admit a new one.
    pub max_unauthenticated: usize,
    /// A new connection that has not sent an authenticated frame within this time is closed.
    pub first_frame_timeout_secs: u64,
    /// Connections the kernel queues before they are accepted (capped by net.core.somaxconn).
    pub listen_backlog: u32,
    /// Longest data segment accepted, in bytes (the length field allows 9999).
    pub max_frame_len: usize,
    /// A connection with no bytes for this long is closed.
    pub idle_timeout_secs: u64,
    /// Consecutive unknown-MN or wrong-PW frames before the connection is closed.
    pub max_auth_failures: u32,
    /// Consecutive rejected chunks (garbage, bad framing, bad CRC) before the connection is closed.
    pub max_bad_frames: u32,
    /// DataTime more than this far in the future is marked `future_time`.
    pub future_skew_secs: u64,
    /// Data older than its period plus this grace is marked backfill (补传).
    pub backfill_grace_secs: u64,
    /// (MN, CN, QN) keys remembered to answer resends without storing them twice.
    pub dedup_window: usize,
    /// Frames of one connection waiting for the archive at once (pipelining bound).
    pub max_in_flight_per_connection: usize,
    /// A reply that cannot be written within this time closes the connection.
    pub write_timeout_secs: u64,
    /// At a stop, connections get this long to finish the frames they have sent.
    pub stop_drain_secs: u64,
    /// Appends waiting for the archive writer; when full, connections wait (backpressure).
    pub archive_queue: usize,
    /// Bytes of frames waiting for the archive writer, at most (bounds memory whatever the frame sizes).
    pub archive_queue_bytes: usize,
    /// The period over which refused traffic and resends are budgeted and summarised.
    pub refused_interval_secs: u64,
    /// Refused and resent bytes from one IP address archived in full per interval; beyond
    /// them, that address's traffic is archived as one summary record per interval.
    pub refused_bytes_per_peer: u64,
    /// The same budget for all addresses together per interval.
    pub refused_bytes_total: u64,
    /// Addresses whose refused traffic is tallied separately per interval; further ones share
    /// one tally (bounds memory and the number of summaries).
    pub refused_peers: usize,
}

impl Default for Limits {
    fn default() -> Self {
        Self {
            max_connections: 10_000,
            max_connections_per_peer: 1000,
            max_unauthenticated: 5000,
            first_frame_timeout_secs: 60,
            listen_backlog: 4096,
            max_frame_len: 9999,
            idle_timeout_secs: 600,
            max_auth_failures: 5,
            max_bad_frames: 20,
            future_skew_secs: 60,
            backfill_grace_secs: 600,
            dedup_window: 100_000,
            max_in_flight_per_connection: 256,
            write_timeout_secs: 10,
            stop_drain_secs: 10,
            archive_queue: 65_536,
            archive_queue_bytes: 64 * 1024 * 1024,
            refused_interval_secs: 600,
            refused_bytes_per_peer: 256 * 1024,
            refused_bytes_total: 4 * 1024 * 1024,
            refused_peers: 1024,
        }
    }
}

/// Bounds of the admin HTTP listener (`server.http_listen`), so that no request, client or
/// query can exhaust memory, starve ingest or hold up a stop.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Http {
    /// Admin connections served at once; further ones wait in the kernel backlog.
    pub max_connections: usize,
    /// A request's headers, or the next request on a kept-alive connection, must arrive within this.
    pub header_read_timeout_secs: u64,
    /// A request must be read and answered within this (503 after it).
    pub request_timeout_secs: u64,
    /// At a stop, requests in progress get this long; then their connections are closed.
    pub shutdown_grace_secs: u64,
    /// The longest range a rate query may cover, in days (400 beyond it).
    pub max_range_days: u32,
    /// The same on the minute basis (many more periods per day).
    pub max_minute_range_days: u32,
    /// Rate, mark and alert queries running at once (each on a blocking thread); the rest wait.
    pub max_concurrent_queries: usize,
    /// How long a query waits for its turn before 503 with Retry-After.
    pub query_wait_secs: u64,
    /// A connection is closed after this long, however it is used (a client that stops reading
    /// an answer would otherwise hold its slot for good); clients reconnect.
    pub connection_max_secs: u64,
    /// Where people reach the console (`https://hj212.example.cn`): alert messages link to
    /// `{public_url}/console/sites/{mn}` and `{public_url}/console/alerts`. Absent = no links.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub public_url: Option<String>,
}

impl Default for Http {
    fn default() -> Self {
        Self {
            max_connections: 64,
            header_read_timeout_secs: 10,
            request_timeout_secs: 30,
            shutdown_grace_secs: 5,
            max_range_days: 366,
            max_minute_range_days: 31,
            max_concurrent_queries: 2,
            query_wait_secs: 5,
            connection_max_secs: 120,
            public_url: None,
        }
    }
}

/// The archive's followers (the store, the alert engine, the sinks), which read what is
/// durable in batches and retry what fails.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Followers {
    /// Records per batch at most (one transaction of the store or the alert engine): a follower
    /// behind takes this many at once; at pace, what became durable since its last batch.
    pub batch_records: usize,
    /// How often each follower's clock work runs (the alert engine's offline and missing-record
    /// rules; a sink's partial batch).
    pub tick_ms: u64,
    /// A failing follower retries after 0.5 s, doubling up to this.
    pub max_backoff_secs: u64,
    /// A follower failing this long makes `/readyz` 503 (the store, the alert engine) or
    /// degraded (a sink).
    pub failing_grace_secs: u64,
    /// `/readyz` says degraded while the store is this many archive records behind.
    pub store_degraded_lag_records: u64,
    /// `/readyz` says degraded while the alert engine is this many archive records behind.
    pub alerts_degraded_lag_records: u64,
    /// The alert engine's clock rules (offline, record missing) wait while it is further behind
    /// than this: a site is not offline because its frames are still queued in the archive.
    pub alerts_clock_max_lag_records: u64,
    /// A resent record is compared with the first copy (tamper alert) for data this recent;
    /// loggers resend up to the national repair window of 10 days.
    pub alerts_fingerprint_days: u32,
    /// The follower threads' nice value (0-19; 0: the daemon's own): acknowledging frames
    /// comes first, the followers take the CPU left.
    pub nice: i32,
}

impl Default for Followers {
    fn default() -> Self {
        Self {
            // A fleet's backfill spreads each batch over every site's pages: 10,000 per
            // transaction applied 1.5x faster than 1,000 (benches/results/fleet-year.md).
            batch_records: 10_000,
            tick_ms: 1000,
            max_backoff_secs: 30,
            failing_grace_secs: 10,
            store_degraded_lag_records: 100_000,
            alerts_degraded_lag_records: 10_000,
            alerts_clock_max_lag_records: 10_000,
            alerts_fingerprint_days: 40,
            nice: 10,
        }
    }
}

/// Clock supervision of data loggers (CN 1012 set-time).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct TimeSync {
    /// Send 1012 when a logger's clock is off by more than `max_offset_secs`.
    pub enabled: bool,
    /// Water-system specifications (2019): logger synced to Beijing time within 30 s.
    pub max_offset_secs: u64,
    /// At most one correction per site in this period.
    pub min_interval_secs: u64,
    /// Consecutive real-time frames that must show the same offset before a correction
    /// (resent old real-time data also looks "late", but its offsets keep changing).
    pub confirmations: u32,
}

impl Default for TimeSync {
    fn default() -> Self {
        Self { enabled: true, max_offset_secs: 30, min_interval_secs: 3600, confirmations: 3 }
    }
}

/// The raw-frame archive.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Archive {
    /// A segment is closed once it reaches this size.
    pub segment_max_bytes: u64,
    /// A segment is closed once it is this old.
    pub segment_max_age_secs: u64,
    /// Segments older than this are deleted (0 = keep forever; regulations ask for at least 5 years).
    pub retention_days: u32,
    /// The chain's head is signed (ed25519) this often while records arrive, and at every stop.
    pub checkpoint_interval_secs: u64,
    /// The private key checkpoints are signed with (64 hex digits), relative to this file; created
    /// with its `.pub` beside it when missing. Unset: `data_dir/archive-signing.key`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub signing_key_file: Option<PathBuf>,
    /// After a failed write (a full disk), appends resume once the file system has this many bytes free.
    pub resume_free_bytes: u64,
    /// Sealed segments are compressed (zstd) in the background; the open segment stays plain.
    pub compress: bool,
    /// zstd level of that compression (1-19; 3 is zstd's default).
    pub compress_level: i32,
}

impl Default for Archive {
    fn default() -> Self {
        Self {
            segment_max_bytes: 64 * 1024 * 1024,
            segment_max_age_secs: 86_400,
            retention_days: 0,
            checkpoint_interval_secs: 60,
            signing_key_file: None,
            resume_free_bytes: 64 * 1024 * 1024,
            compress: true,
            compress_level: 3,
        }
    }
}

/// Which CRC dialects a site's frames may use.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum CrcSetting {
    /// HJ 212-2017 Appendix A only.
    #[default]
    Hj212,
    /// CRC-16/MODBUS.
    Modbus,
    /// CRC-16/MODBUS with its bytes swapped.
    ModbusSwapped,
    /// Any of the three.
    Any,
}

/// One monitored site (one data logger MN). `Debug` never shows the password.
#[derive(Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Site {
    pub mn: String,
    pub password: String,
    #[serde(default)]
    pub name: String,
    /// Factors assessed for the transmission rate.
    #[serde(default)]
    pub factors: Vec<String>,
    #[serde(default)]
    pub crc: CrcSetting,
    /// How this site's transmission rate is assessed.
    #[serde(default)]
    pub rate: RateRules,
    /// HJ 212-2025 SM4 encryption of data commands' CP.
    #[serde(default)]
    pub encryption: Encryption,
    /// The site's current SM4 key (16 characters or 32 hex digits); relative to the config file.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub key_file: Option<PathBuf>,
    /// The key before the current one, also tried while loggers roll over.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub previous_key_file: Option<PathBuf>,
    /// Also accept the ciphertext written as text (`{0xE4,0x3E,...}` as printed in the standard, or hex).
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub ciphertext_as_text: bool,
    /// This site's alert rules, replacing the top-level `[alerts]` defaults.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub alerts: Option<AlertRules>,
    /// Emission limits and value rules per factor.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub limits: Vec<FactorLimit>,
    /// This site's gap recovery, replacing the top-level `[recovery]`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub recovery: Option<Recovery>,
    /// Commands with a CN the daemon does not know may be sent to this site (raw CP passed through).
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub allow_raw_commands: bool,
    /// Urban or suburban, for the on-site time target (`[service]`).
    #[serde(default)]
    pub service_area: ServiceArea,
}

/// Whether a site's data commands arrive SM4-encrypted (HJ 212-2025 §6.4: required on the
/// internet, recommended on private networks).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Encryption {
    /// Plaintext only (HJ/T 212-2005, HJ 212-2017, 2025 on a private network).
    #[default]
    Off,
    /// Both accepted; plaintext ones are counted (a logger being migrated).
    Optional,
    /// Plaintext data commands are refused (`not_encrypted`).
    Required,
}

/// Which records a site's rate is counted on.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum RateBasis {
    /// Hourly records (CN=2061).
    #[default]
    Hour,
    /// Daily records (CN=2031).
    Day,
    /// Minute records (CN=2051) at `minute_interval`.
    Minute,
}

/// A percentage kept as hundredths (95.00 % = 9500), written as a number in TOML.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Percent(pub u32);

impl Serialize for Percent {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_f64(f64::from(self.0) / 100.0)
    }
}

impl<'de> Deserialize<'de> for Percent {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let value = f64::deserialize(deserializer)?;
        if !(0.0..=100.0).contains(&value) {
            return Err(serde::de::Error::custom(format!("{value} is not a percentage between 0 and 100")));
        }
        #[expect(clippy::cast_possible_truncation, clippy::cast_sign_loss, reason = "0..=10000 after the check")]
        Ok(Self((value * 100.0).round() as u32))
    }
}

/// Transmission-rate rules of one site (docs/compliance.md §1-2).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct RateRules {
    pub basis: RateBasis,
    /// Minutes per period for `basis = "minute"` (HJ 212-2017 MinInterval: 1-30).
    pub minute_interval: u32,
    /// Target for 有效传输率 (certification spec: 95 %).
    pub target_percent: Percent,
    /// Records received later than period end plus this many days do not count (national scheme: 10).
    pub cutoff_days: u32,
    /// HJ 75-2017: an hourly value needs at least this many valid minutes (CEMS sites; unset = rule off).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub min_valid_minutes: Option<u32>,
}

impl Default for RateRules {
    fn default() -> Self {
        Self {
            basis: RateBasis::Hour,
            minute_interval: 10,
            target_percent: Percent(9500),
            cutoff_days: 10,
            min_valid_minutes: None,
        }
    }
}

impl Site {
    /// A site with only its MN and password; every other key at its default.
    pub fn new(mn: impl Into<String>, password: impl Into<String>) -> Self {
        Self {
            mn: mn.into(),
            password: password.into(),
            name: String::new(),
            factors: Vec::new(),
            crc: CrcSetting::default(),
            rate: RateRules::default(),
            encryption: Encryption::default(),
            key_file: None,
            previous_key_file: None,
            ciphertext_as_text: false,
            alerts: None,
            limits: Vec::new(),
            recovery: None,
            allow_raw_commands: false,
            service_area: ServiceArea::default(),
        }
    }
}

impl std::fmt::Debug for Site {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Site")
            .field("mn", &self.mn)
            .field("password", &"***")
            .field("name", &self.name)
            .field("factors", &self.factors)
            .field("crc", &self.crc)
            .field("rate", &self.rate)
            .field("encryption", &self.encryption)
            .field("key_file", &self.key_file)
            .field("previous_key_file", &self.previous_key_file)
            .field("ciphertext_as_text", &self.ciphertext_as_text)
            .field("alerts", &self.alerts)
            .field("limits", &self.limits)
            .field("recovery", &self.recovery)
            .field("allow_raw_commands", &self.allow_raw_commands)
            .field("service_area", &self.service_area)
            .finish()
    }
}

/// Which InfluxDB write API to use.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum InfluxApi {
    /// `/api/v2/write?org=&bucket=&precision=ms` (InfluxDB 2.x/3.x, VictoriaMetrics).
    #[default]
    V2,
    /// `/write?db=&precision=ms` (InfluxDB 1.x, VictoriaMetrics).
    V1,
}

/// The time-series sink. `Debug` never shows the token.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Influx {
    /// Base URL, e.g. `http://127.0.0.1:8086`.
    pub url: String,
    pub api: InfluxApi,
    /// v2 organisation and bucket.
    pub org: String,
    pub bucket: String,
    /// v1 database.
    pub db: String,
    /// API token (`Authorization: Token ...`); prefer `token_file`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub token: Option<String>,
    /// A file holding the token (trailing whitespace ignored); relative to the config file.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub token_file: Option<PathBuf>,
    /// Points per write request at most.
    pub batch_points: usize,
    /// Write requests out at once (each up to `batch_points`).
    pub max_in_flight: usize,
    /// A partial batch is sent after this long.
    pub batch_interval_ms: u64,
    /// Compress request bodies with gzip.
    pub gzip: bool,
    /// One write request may take this long.
    pub timeout_secs: u64,
    /// Retry delays double up to this cap (with jitter).
    pub max_backoff_secs: u64,
    /// `/readyz` reports the sink degraded when it is this many archive records behind.
    pub degraded_lag_records: u64,
}

impl Default for Influx {
    fn default() -> Self {
        Self {
            url: String::new(),
            api: InfluxApi::V2,
            org: String::new(),
            bucket: String::new(),
            db: String::new(),
            token: None,
            token_file: None,
            batch_points: 5000,
            max_in_flight: 4,
            batch_interval_ms: 1000,
            gzip: true,
            timeout_secs: 10,
            max_backoff_secs: 30,
            degraded_lag_records: 10_000,
        }
    }
}

impl std::fmt::Debug for Influx {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Influx")
            .field("url", &self.url)
            .field("api", &self.api)
            .field("org", &self.org)
            .field("bucket", &self.bucket)
            .field("db", &self.db)
            .field("token", &self.token.as_ref().map(|_| "***"))
            .field("token_file", &self.token_file)
            .field("batch_points", &self.batch_points)
            .field("max_in_flight", &self.max_in_flight)
            .field("batch_interval_ms", &self.batch_interval_ms)
            .field("gzip", &self.gzip)
            .field("timeout_secs", &self.timeout_secs)
            .field("max_backoff_secs", &self.max_backoff_secs)
            .field("degraded_lag_records", &self.degraded_lag_records)
            .finish()
    }
}

/// A site registry file: `[[sites]]` tables only.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct SitesFile {
    pub sites: Vec<Site>,
}
