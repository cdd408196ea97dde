//! The Prometheus recorder.

use std::sync::OnceLock;

use hj212_server::metrics::{ACK_LATENCY, ARCHIVE_FSYNC, LATENCY_BUCKETS, describe};
use metrics_exporter_prometheus::{Matcher, PrometheusBuilder, PrometheusHandle};

/// The process-wide Prometheus recorder (installed on first use). Every documented counter is
/// registered at zero here, so the first scrape shows them all (rate() and absent() need it).
pub fn prometheus() -> PrometheusHandle {
    static HANDLE: OnceLock<PrometheusHandle> = OnceLock::new();
    HANDLE
        .get_or_init(|| {
            let builder = PrometheusBuilder::new()
                .set_buckets_for_metric(Matcher::Full(ACK_LATENCY.into()), LATENCY_BUCKETS)
                .and_then(|b| b.set_buckets_for_metric(Matcher::Full(ARCHIVE_FSYNC.into()), LATENCY_BUCKETS))
                .and_then(|b| {
                    let round_trip = Matcher::Full(hj212_commands::metrics::ROUND_TRIP.into());
                    b.set_buckets_for_metric(round_trip, hj212_commands::metrics::ROUND_TRIP_BUCKETS)
                })
                .and_then(|b| {
                    let ack = Matcher::Full(hj212_forward::metrics::ACK_SECONDS.into());
                    b.set_buckets_for_metric(ack, hj212_forward::metrics::ACK_BUCKETS)
                })
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
            hj212_follow::describe();
            hj212_forward::metrics::describe();
            hj212_cluster::metrics::describe();
            crate::metrics::describe();
            crate::process_metrics::describe();
            handle
        })
        .clone()
}
