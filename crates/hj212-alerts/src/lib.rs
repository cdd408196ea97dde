//! hj212d alerts: the rule engine of `hj212-compliance` fed from the archive, the alerts it
//! raises stored in `data_dir/alerts.sqlite` with their messages, and the outbox the MQTT
//! publisher and the notification channels drain (nothing is lost while one is down).

mod db;
mod fingerprints;
pub mod metrics;
mod observe;
mod outbox;
pub mod payload;
mod process;
pub mod query;
mod rules;
mod run;

pub use db::{ARCHIVE_SOURCE, SCHEMA, claim_source};
pub use outbox::{ClusterDelivery, MQTT_CONSUMER, Queued, Scope, SqliteOutbox, register_consumers};
pub use process::Stepped;
pub use rules::{RulesMap, rules_map, site_rules};
pub use run::{AlertSettings, AlertsFollower, applied_seq};

/// The alerts database cannot be used.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum AlertsError {
    #[error("alerts database {path}: {source}")]
    Open { path: String, source: rusqlite::Error },
    #[error("alerts database: {0}")]
    Sql(#[from] rusqlite::Error),
    #[error("reading the archive: {0}")]
    Archive(#[from] std::io::Error),
    #[error("alert state of site {mn} in the database is unreadable: {message}")]
    State { mn: String, message: String },
    #[error(transparent)]
    Schema(#[from] hj212_store::SchemaError),
    /// The outbox was opened for a consumer that is not registered, or without one.
    #[error("outbox consumer {0:?} is not registered")]
    Consumer(String),
    /// The database was built from another source than the one configured.
    #[error(
        "the alerts database was built from {held}, not {wanted}: its positions and alert ids are that source's; \
         move alerts.sqlite aside to build a new one from {wanted} (it starts at {wanted}'s newest record), or \
         set [cluster] alerts_from back"
    )]
    OtherSource { held: String, wanted: String },
    /// The cluster's nodes could not agree on who delivers the outbox (NATS unreachable).
    #[error("outbox delivery in the cluster: {0}")]
    Cluster(String),
}

impl AlertsError {
    /// The schema problem, when the file's version is not one this build can use.
    #[must_use]
    pub fn schema(&self) -> Option<&hj212_store::SchemaError> {
        match self {
            Self::Schema(e) => Some(e),
            _ => None,
        }
    }
}
