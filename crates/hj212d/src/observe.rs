//! Logging and the Prometheus recorder.

use std::sync::OnceLock;

use hj212_server::metrics::{ACK_LATENCY, ARCHIVE_FSYNC, LATENCY_BUCKETS, describe};
use metrics_exporter_prometheus::{Matcher, PrometheusBuilder, PrometheusHandle};
use tracing_subscriber::EnvFilter;
use tracing_subscriber::layer::SubscriberExt;
use tracing_subscriber::util::SubscriberInitExt;

/// Installs the log subscriber once per process (later calls keep the first).
pub fn init_logging(filter: &str) {
    let filter = EnvFilter::try_new(filter).unwrap_or_else(|error| {
        eprintln!("warning: log filter {filter:?} is invalid ({error}); using \"info\"");
        EnvFilter::new("info")
    });
    let _ = tracing_subscriber::registry().with(tracing_subscriber::fmt::layer()).with(filter).try_init();
}

/// The process-wide Prometheus recorder (installed on first use).
pub fn prometheus() -> PrometheusHandle {
    static HANDLE: OnceLock<PrometheusHandle> = OnceLock::new();
    HANDLE
        .get_or_init(|| {
            let builder = PrometheusBuilder::new()
                .set_buckets_for_metric(Matcher::Full(ACK_LATENCY.into()), LATENCY_BUCKETS)
                .and_then(|b| b.set_buckets_for_metric(Matcher::Full(ARCHIVE_FSYNC.into()), LATENCY_BUCKETS))
                .and_then(|b| {
                    let detection = Matcher::Full(hj212_alerts::metrics::DETECTION.into());
                    b.set_buckets_for_metric(detection, hj212_alerts::metrics::DETECTION_BUCKETS)
                })
                .expect("bucket lists are not empty");
            let recorder = builder.build_recorder();
            let handle = recorder.handle();
            let _ = metrics::set_global_recorder(recorder);
            describe();
            hj212_sink_influx::metrics::describe();
            hj212_alerts::metrics::describe();
            hj212_sink_mqtt::metrics::describe();
            crate::followers::describe();
            handle
        })
        .clone()
}
