//! The connection to the NATS servers and the stream, made from `[cluster]`.

use std::path::PathBuf;
use std::time::Duration;

use async_nats::jetstream::{self, stream};
use hj212_follow::FollowError;

use crate::message::{Numbering, Subjects};

/// What the publisher needs of `[cluster]`, with paths resolved.
#[derive(Debug, Clone)]
pub struct Settings {
    pub urls: Vec<String>,
    pub node: String,
    pub stream: String,
    pub subject_prefix: String,
    pub replicas: usize,
    pub duplicate_window: Duration,
    /// Zero: no limit.
    pub max_age: Duration,
    pub credentials_file: Option<PathBuf>,
    pub ca_file: Option<PathBuf>,
    pub max_in_flight: usize,
    /// Records per batch the runner feeds (`[followers] batch_records`).
    pub batch_records: usize,
    pub publish_timeout: Duration,
    /// `data_dir/cluster.cursor`.
    pub cursor_path: PathBuf,
    /// How this node's corrections name the records they correct: by stream sequence when its
    /// store follows the stream (its API checks them against that store).
    pub numbering: Numbering,
    /// `[cluster] lease_secs`: how long a lease outlives its last renewal.
    pub lease_secs: u64,
}

impl Settings {
    /// The one conversion from the config.
    pub fn from_config(config: &hj212_config::Config, cluster: &hj212_config::Cluster) -> Self {
        let resolve = |file: &Option<PathBuf>| file.as_ref().map(|f| hj212_config::resolve_path(config, f));
        Self {
            urls: cluster.nats_url.clone(),
            node: cluster.node.clone(),
            stream: cluster.stream.clone(),
            subject_prefix: cluster.subject_prefix.clone(),
            replicas: cluster.replicas,
            duplicate_window: Duration::from_secs(cluster.duplicate_window_secs),
            max_age: Duration::from_secs(cluster.max_age_hours * 3600),
            credentials_file: resolve(&cluster.credentials_file),
            ca_file: resolve(&cluster.ca_file),
            max_in_flight: cluster.max_in_flight,
            batch_records: config.followers.batch_records,
            publish_timeout: Duration::from_secs(cluster.publish_timeout_secs),
            cursor_path: config.data_dir().cluster_cursor(),
            lease_secs: cluster.lease_secs,
            numbering: match cluster.store_from {
                hj212_config::ReadFrom::Archive => Numbering::Archive,
                hj212_config::ReadFrom::Stream => Numbering::Stream,
            },
        }
    }

    pub fn subjects(&self) -> Subjects {
        Subjects::new(&self.subject_prefix, &self.node)
    }

    /// The stream as this node creates it when it does not exist.
    pub fn stream_config(&self) -> stream::Config {
        stream::Config {
            name: self.stream.clone(),
            subjects: self.subjects().filters(),
            num_replicas: self.replicas,
            duplicate_window: self.duplicate_window,
            max_age: self.max_age,
            storage: stream::StorageType::File,
            description: Some("hj212d: every record of every node, each frame once".to_owned()),
            ..stream::Config::default()
        }
    }
}

/// A client connected to the cluster, with the stream checked.
pub(crate) struct Connection {
    pub context: jetstream::Context,
    pub stream: stream::Stream,
    pub subjects: Subjects,
    /// The largest message the servers take (headers included).
    pub max_payload: usize,
}

/// Why the cluster cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum ConnectError {
    #[error("cannot read the NATS credentials file {path}: {source}")]
    Credentials { path: PathBuf, source: std::io::Error },
    #[error("cannot connect to NATS at {urls}: {source}")]
    Connect { urls: String, source: async_nats::ConnectError },
    #[error("cannot create or read the JetStream stream {stream}: {source}")]
    Stream { stream: String, source: jetstream::context::CreateStreamError },
    #[error("the stream {stream} exists without the subject {subject}: add it, or set cluster.stream to another name")]
    Subjects { stream: String, subject: String },
}

impl Connection {
    /// Connects and creates the stream when it does not exist.
    pub(crate) async fn open(settings: &Settings) -> Result<Self, FollowError> {
        let mut options = async_nats::ConnectOptions::new()
            .name(format!("hj212d {}", settings.node))
            .connection_timeout(settings.publish_timeout.min(Duration::from_secs(5)));
        if let Some(path) = &settings.credentials_file {
            options = options
                .credentials_file(path)
                .await
                .map_err(|source| ConnectError::Credentials { path: path.clone(), source })?;
        }
        if let Some(path) = &settings.ca_file {
            options = options.add_root_certificates(path.clone()).require_tls(true);
        }
        let addresses =
            settings.urls.iter().map(|url| url.parse()).collect::<Result<Vec<async_nats::ServerAddr>, _>>()?;
        let client = options
            .connect(addresses)
            .await
            .map_err(|source| ConnectError::Connect { urls: settings.urls.join(","), source })?;
        // Room for every batch in flight and the one being sent: a batch's acknowledgements
        // are awaited only once all of it is sent, so less room would wait forever.
        let acks = (settings.max_in_flight + 1) * settings.batch_records.max(1);
        let max_payload = client.max_payload();
        let context =
            jetstream::ContextBuilder::new().timeout(settings.publish_timeout).max_ack_inflight(acks).build(client);
        let stream = context
            .get_or_create_stream(settings.stream_config())
            .await
            .map_err(|source| ConnectError::Stream { stream: settings.stream.clone(), source })?;
        let subjects = settings.subjects();
        let held = &stream.cached_info().config.subjects;
        for subject in subjects.filters() {
            if !held.contains(&subject) {
                return Err(ConnectError::Subjects { stream: settings.stream.clone(), subject }.into());
            }
        }
        tracing::info!(stream = settings.stream, node = settings.node, "connected to the cluster's stream");
        Ok(Self { context, stream, subjects, max_payload })
    }
}
