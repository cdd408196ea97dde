//! Metric names (`hj212_<subsystem>_<thing>_<unit>`), descriptions, and handles created
//! once. Labels only for bounded sets: never MN, station or peer.

use std::time::Duration;

use crate::admission::Refusal;
use crate::refused::SUMMARISABLE;
use hj212_archive::{ArchiveError, Observer, Verdict};
use hj212_proto::Note;
use hj212_proto::crc::CrcDialect;
use metrics::{
    Counter, Gauge, Histogram, counter, describe_counter, describe_gauge, describe_histogram, gauge, histogram,
};

pub const FRAMES: &str = "hj212_ingest_frames_total";
pub const UNFRAMED: &str = "hj212_ingest_unframed_total";
pub const RECEIVED_BYTES: &str = "hj212_ingest_received_bytes_total";
pub const CRC_DIALECT: &str = "hj212_ingest_crc_dialect_total";
pub const NOTES: &str = "hj212_ingest_conformance_notes_total";
pub const MARKS: &str = "hj212_ingest_marked_frames_total";
pub const AUTH_FAILURES: &str = "hj212_ingest_auth_failures_total";
pub const DUPLICATES: &str = "hj212_ingest_duplicates_total";
pub const REPLIES: &str = "hj212_ingest_replies_total";
pub const TIME_SETS: &str = "hj212_ingest_time_sets_total";
pub const ENCRYPTION: &str = "hj212_ingest_encryption_total";
pub const SITE_DECRYPT_FAILURES: &str = "hj212_site_decrypt_failures_total";
pub const ACK_LATENCY: &str = "hj212_ingest_ack_latency_seconds";
pub const CONNECTIONS_ACTIVE: &str = "hj212_connections_active";
pub const CONNECTIONS: &str = "hj212_connections_total";
pub const CONNECTIONS_CLOSED: &str = "hj212_connections_closed_total";
pub const CONNECTIONS_REFUSED: &str = "hj212_connections_refused_total";
pub const CONNECTIONS_UNAUTHENTICATED: &str = "hj212_connections_unauthenticated";
pub const REFUSED_KEPT_BYTES: &str = "hj212_ingest_refused_kept_bytes_total";
pub const REFUSED_SUMMARISED: &str = "hj212_ingest_refused_summarised_total";
pub const REFUSED_SUMMARISED_BYTES: &str = "hj212_ingest_refused_summarised_bytes_total";
pub const REFUSED_UNTRACKED: &str = "hj212_ingest_refused_untracked_total";
pub const REFUSED_SUMMARIES: &str = "hj212_ingest_refused_summaries_total";
pub const ARCHIVE_FSYNC: &str = "hj212_archive_fsync_seconds";
pub const ARCHIVE_RECORDS: &str = "hj212_archive_records_total";
pub const ARCHIVE_BYTES: &str = "hj212_archive_written_bytes_total";
pub const ARCHIVE_QUEUE: &str = "hj212_archive_queue_depth";
pub const ARCHIVE_FAILED: &str = "hj212_archive_failed";
pub const ARCHIVE_FAILURES: &str = "hj212_archive_write_failures_total";
pub const ARCHIVE_CHECKPOINTS: &str = "hj212_archive_checkpoints_total";
pub const ARCHIVE_CHECKPOINT_SEQ: &str = "hj212_archive_checkpoint_seq";
pub const ARCHIVE_COMPRESSED: &str = "hj212_archive_segments_compressed_total";
pub const ARCHIVE_COMPRESSED_BYTES: &str = "hj212_archive_compressed_bytes_total";
pub const STORE_ROWS: &str = "hj212_store_rows_total";
pub const STORE_DUPLICATES: &str = "hj212_store_duplicate_rows_total";
pub const STORE_DELETED: &str = "hj212_store_deleted_rows_total";
pub const SITES_CONFIGURED: &str = "hj212_sites_configured";
pub const BUILD_INFO: &str = "hj212_build_info";
pub const SITE_EFFECTIVE_RATE: &str = "hj212_site_effective_rate_ratio";
pub const SITE_LAST_DATA_TIME: &str = "hj212_site_last_data_time_seconds";

/// Histogram buckets for the archive fsync and the frame-to-ack latency (seconds).
pub const LATENCY_BUCKETS: &[f64] = &[0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 1.0];

/// Registers descriptions and the build info; call once at startup.
pub fn describe() {
    crate::cluster_ack::describe();
    describe_counter!(
        FRAMES,
        "Frames received, by outcome (accepted, duplicate, unknown_mn, bad_password, bad_crc, parse_error, bad_timestamp)"
    );
    describe_counter!(UNFRAMED, "Byte chunks that could not be framed, by reason");
    describe_counter!(RECEIVED_BYTES, "Bytes read from data loggers");
    describe_counter!(
        CRC_DIALECT,
        "Well-framed frames by the CRC dialect they matched (hj212, modbus, modbus_swapped, none)"
    );
    describe_counter!(NOTES, "Tolerated deviations from the standard, by note");
    describe_counter!(MARKS, "Accepted frames marked future_time or backfill");
    describe_counter!(AUTH_FAILURES, "Frames refused for an unknown MN or a wrong password, by reason");
    describe_counter!(DUPLICATES, "Resent frames (same MN, CN, QN) answered but not stored again");
    describe_counter!(REPLIES, "Replies and commands sent, by CN");
    describe_counter!(TIME_SETS, "1012 set-time commands sent to correct a logger clock");
    describe_counter!(ENCRYPTION, "Data commands from sites with encryption on, by whether the CP was SM4-encrypted");
    describe_counter!(SITE_DECRYPT_FAILURES, "Frames of a configured site that no key of it decrypts to a valid CRC");
    describe_histogram!(ACK_LATENCY, "From a frame being read to its reply being written (includes the archive fsync)");
    describe_gauge!(CONNECTIONS_ACTIVE, "Open HJ 212 connections");
    describe_counter!(CONNECTIONS, "HJ 212 connections accepted");
    describe_counter!(CONNECTIONS_CLOSED, "HJ 212 connections closed, by reason");
    describe_counter!(
        CONNECTIONS_REFUSED,
        "HJ 212 connections closed right after accept, by reason (per_peer, max_connections)"
    );
    describe_gauge!(CONNECTIONS_UNAUTHENTICATED, "Open HJ 212 connections that have not sent an authenticated frame");
    describe_counter!(REFUSED_KEPT_BYTES, "Refused and resent bytes archived in full (within the per-peer budgets)");
    describe_counter!(
        REFUSED_SUMMARISED,
        "Refused and resent chunks over the per-peer budget, counted in a summary instead of archived, by outcome"
    );
    describe_counter!(REFUSED_SUMMARISED_BYTES, "Bytes of the chunks counted in summaries instead of archived");
    describe_counter!(
        REFUSED_UNTRACKED,
        "Refused chunks from addresses beyond limits.refused_peers, tallied together as peer `other`"
    );
    describe_counter!(REFUSED_SUMMARIES, "Refused-traffic summary records appended to the archive");
    describe_histogram!(ARCHIVE_FSYNC, "Archive batch write + fsync duration");
    describe_counter!(ARCHIVE_RECORDS, "Records appended to the archive");
    describe_counter!(ARCHIVE_BYTES, "Bytes appended to the archive");
    describe_gauge!(ARCHIVE_QUEUE, "Appends waiting for the archive writer");
    describe_gauge!(
        ARCHIVE_FAILED,
        "1 from a failed archive write or fsync until the writer resumes (nothing is acknowledged meanwhile)"
    );
    describe_counter!(
        ARCHIVE_FAILURES,
        "Archive writes or fsyncs that failed (each starts an outage: appends refused until resumed)"
    );
    describe_counter!(ARCHIVE_CHECKPOINTS, "Signed checkpoints of the archive's head");
    describe_gauge!(ARCHIVE_CHECKPOINT_SEQ, "The sequence number the newest signed checkpoint covers");
    describe_counter!(ARCHIVE_COMPRESSED, "Sealed archive segments replaced by their compressed form");
    describe_counter!(
        ARCHIVE_COMPRESSED_BYTES,
        "Bytes of the segments compressed, before (form=plain) and after (form=packed)"
    );
    describe_counter!(STORE_ROWS, "Reading rows written to the embedded store");
    describe_counter!(STORE_DUPLICATES, "Reading rows already present in the embedded store");
    describe_counter!(STORE_DELETED, "Reading rows deleted past [store] readings_retention_days");
    describe_gauge!(SITES_CONFIGURED, "Sites in the registry");
    describe_gauge!(BUILD_INFO, "Build information");
    describe_gauge!(
        SITE_EFFECTIVE_RATE,
        "有效传输率 of each configured site, period today or month (so far, whole periods)"
    );
    describe_gauge!(SITE_LAST_DATA_TIME, "Newest DataTime received from each configured site (Unix seconds)");
    gauge!(BUILD_INFO, "version" => env!("CARGO_PKG_VERSION")).set(1.0);
    zero_counters();
}

/// Every counter and its documented label values at zero (docs/metrics.md), so the first scrape
/// lists them all. `hj212_site_decrypt_failures_total` is per configured site: the daemon zeroes it.
fn zero_counters() {
    let plain = [
        RECEIVED_BYTES,
        DUPLICATES,
        TIME_SETS,
        CONNECTIONS,
        ARCHIVE_RECORDS,
        ARCHIVE_BYTES,
        ARCHIVE_FAILURES,
        ARCHIVE_CHECKPOINTS,
        ARCHIVE_COMPRESSED,
        STORE_ROWS,
        STORE_DUPLICATES,
        STORE_DELETED,
        REFUSED_KEPT_BYTES,
        REFUSED_SUMMARISED_BYTES,
        REFUSED_UNTRACKED,
        REFUSED_SUMMARIES,
    ];
    for name in plain {
        counter!(name).increment(0);
    }
    let outcomes = [
        Verdict::Accepted,
        Verdict::Duplicate,
        Verdict::UnknownMn,
        Verdict::BadPassword,
        Verdict::BadCrc,
        Verdict::ParseError,
        Verdict::BadTimestamp,
        Verdict::DecryptOrCrc,
        Verdict::NotEncrypted,
    ];
    for verdict in outcomes {
        counter!(FRAMES, "outcome" => verdict.as_str()).increment(0);
        if verdict != Verdict::Accepted {
            counter!(REFUSED_SUMMARISED, "outcome" => verdict.as_str()).increment(0);
        }
    }
    counter!(REFUSED_SUMMARISED, "outcome" => Verdict::Unframed.as_str()).increment(0);
    let labelled: [(&'static str, &'static str, &[&'static str]); 9] = [
        (ARCHIVE_COMPRESSED_BYTES, "form", &["plain", "packed"]),
        (AUTH_FAILURES, "reason", &["unknown_mn", "bad_password"]),
        (ENCRYPTION, "cp", &["encrypted", "plaintext"]),
        (
            UNFRAMED,
            "reason",
            &["garbage", "length_not_numeric", "too_long", "no_crc_at_length", "missing_tail", "truncated"],
        ),
        (CRC_DIALECT, "dialect", &["hj212", "modbus", "modbus_swapped", "none"]),
        (MARKS, "mark", &["future_time", "backfill", "resent"]),
        (REPLIES, "cn", &["9013", "9014", "1012", "1014"]),
        (
            CONNECTIONS_CLOSED,
            "reason",
            &[
                "eof",
                "idle",
                "auth_failures",
                "bad_frames",
                "io_error",
                "archive_error",
                "cluster_timeout",
                "shutdown",
                "first_frame_timeout",
                "evicted",
            ],
        ),
        (CONNECTIONS_REFUSED, "reason", &["per_peer", "max_connections"]),
    ];
    for (name, label, values) in labelled {
        for &value in values {
            counter!(name, label => value).increment(0);
        }
    }
    for note in Note::ALL {
        counter!(NOTES, "note" => note.as_str()).increment(0);
    }
}

/// Counter handles for the per-frame path, created once.
#[derive(Debug, Clone)]
pub struct IngestMetrics {
    pub received_bytes: Counter,
    pub duplicates: Counter,
    pub time_sets: Counter,
    pub ack_latency: Histogram,
    pub connections_active: Gauge,
    pub connections: Counter,
    /// Replies with 9014, the reply to almost every frame: looked up once, not per frame.
    replies_9014: Counter,
    verdicts: [Counter; 9],
    dialects: [Counter; 4],
}

impl Default for IngestMetrics {
    fn default() -> Self {
        let verdict = |v: Verdict| counter!(FRAMES, "outcome" => v.as_str());
        Self {
            received_bytes: counter!(RECEIVED_BYTES),
            duplicates: counter!(DUPLICATES),
            time_sets: counter!(TIME_SETS),
            ack_latency: histogram!(ACK_LATENCY),
            connections_active: gauge!(CONNECTIONS_ACTIVE),
            connections: counter!(CONNECTIONS),
            replies_9014: counter!(REPLIES, "cn" => "9014"),
            verdicts: [
                verdict(Verdict::Accepted),
                verdict(Verdict::Duplicate),
                verdict(Verdict::UnknownMn),
                verdict(Verdict::BadPassword),
                verdict(Verdict::BadCrc),
                verdict(Verdict::ParseError),
                verdict(Verdict::BadTimestamp),
                verdict(Verdict::DecryptOrCrc),
                verdict(Verdict::NotEncrypted),
            ],
            dialects: [
                counter!(CRC_DIALECT, "dialect" => "hj212"),
                counter!(CRC_DIALECT, "dialect" => "modbus"),
                counter!(CRC_DIALECT, "dialect" => "modbus_swapped"),
                counter!(CRC_DIALECT, "dialect" => "none"),
            ],
        }
    }
}

impl IngestMetrics {
    pub fn verdict(&self, verdict: Verdict) {
        let index = match verdict {
            Verdict::Accepted => 0,
            Verdict::Duplicate => 1,
            Verdict::UnknownMn => 2,
            Verdict::BadPassword => 3,
            Verdict::BadCrc => 4,
            Verdict::ParseError => 5,
            Verdict::BadTimestamp => 6,
            Verdict::DecryptOrCrc => 7,
            Verdict::NotEncrypted => 8,
            _ => return,
        };
        self.verdicts[index].increment(1);
        if matches!(verdict, Verdict::UnknownMn | Verdict::BadPassword) {
            counter!(AUTH_FAILURES, "reason" => verdict.as_str()).increment(1);
        }
    }

    pub fn dialect(&self, dialect: Option<CrcDialect>) {
        let index = match dialect {
            Some(CrcDialect::Hj212) => 0,
            Some(CrcDialect::Modbus) => 1,
            Some(CrcDialect::ModbusSwapped) => 2,
            None => 3,
        };
        self.dialects[index].increment(1);
    }

    pub fn note(note: Note) {
        counter!(NOTES, "note" => note.as_str()).increment(1);
    }

    pub fn unframed(reason: &'static str) {
        counter!(UNFRAMED, "reason" => reason).increment(1);
    }

    /// A data command from a site with encryption on: SM4-encrypted or plaintext.
    pub fn encryption(encrypted: bool) {
        counter!(ENCRYPTION, "cp" => if encrypted { "encrypted" } else { "plaintext" }).increment(1);
    }

    /// A configured site's frame that no key decrypts to a valid CRC (configured MNs only: bounded).
    pub fn decrypt_failure(mn: &str) {
        counter!(SITE_DECRYPT_FAILURES, "mn" => mn.to_owned()).increment(1);
    }

    pub fn mark(mark: &'static str) {
        counter!(MARKS, "mark" => mark).increment(1);
    }

    pub fn reply(&self, cn: &'static str) {
        if cn == "9014" {
            self.replies_9014.increment(1);
        } else {
            counter!(REPLIES, "cn" => cn).increment(1);
        }
    }

    pub fn closed(reason: &'static str) {
        counter!(CONNECTIONS_CLOSED, "reason" => reason).increment(1);
    }
}

/// Connection admission: refusals and the unauthenticated count.
#[derive(Debug, Clone)]
pub(crate) struct AdmissionMetrics {
    refused: [Counter; 2],
    unauthenticated: Gauge,
}

impl Default for AdmissionMetrics {
    fn default() -> Self {
        Self {
            refused: [Refusal::PerPeer, Refusal::Full].map(|r| counter!(CONNECTIONS_REFUSED, "reason" => r.as_str())),
            unauthenticated: gauge!(CONNECTIONS_UNAUTHENTICATED),
        }
    }
}

impl AdmissionMetrics {
    pub(crate) fn refused(&self, refusal: Refusal) {
        self.refused[usize::from(refusal == Refusal::Full)].increment(1);
    }

    pub(crate) fn set_unauthenticated(&self, count: usize) {
        #[expect(clippy::cast_precision_loss, reason = "a connection count is far below 2^52")]
        self.unauthenticated.set(count as f64);
    }
}

/// The refused-traffic budgets: what was kept, what only counted.
#[derive(Debug, Clone)]
pub(crate) struct RefusedMetrics {
    pub kept_bytes: Counter,
    pub summarised_bytes: Counter,
    pub untracked: Counter,
    pub summaries: Counter,
    /// By verdict, in the order of [`crate::refused::SUMMARISABLE`].
    summarised: [Counter; SUMMARISABLE.len()],
}

impl Default for RefusedMetrics {
    fn default() -> Self {
        Self {
            kept_bytes: counter!(REFUSED_KEPT_BYTES),
            summarised_bytes: counter!(REFUSED_SUMMARISED_BYTES),
            untracked: counter!(REFUSED_UNTRACKED),
            summaries: counter!(REFUSED_SUMMARIES),
            summarised: SUMMARISABLE.map(|v| counter!(REFUSED_SUMMARISED, "outcome" => v.as_str())),
        }
    }
}

impl RefusedMetrics {
    pub(crate) fn summarised(&self, index: usize, bytes: u64) {
        if let Some(counter) = self.summarised.get(index) {
            counter.increment(1);
        }
        self.summarised_bytes.increment(bytes);
    }
}

/// Turns archive measurements into metrics.
#[derive(Debug, Clone)]
pub struct ArchiveMetrics {
    fsync: Histogram,
    records: Counter,
    bytes: Counter,
    queue: Gauge,
    failed: Gauge,
    failures: Counter,
    checkpoints: Counter,
    checkpoint_seq: Gauge,
    compressed: Counter,
    plain_bytes: Counter,
    packed_bytes: Counter,
}

impl Default for ArchiveMetrics {
    fn default() -> Self {
        Self {
            fsync: histogram!(ARCHIVE_FSYNC),
            records: counter!(ARCHIVE_RECORDS),
            bytes: counter!(ARCHIVE_BYTES),
            queue: gauge!(ARCHIVE_QUEUE),
            failed: gauge!(ARCHIVE_FAILED),
            failures: counter!(ARCHIVE_FAILURES),
            checkpoints: counter!(ARCHIVE_CHECKPOINTS),
            checkpoint_seq: gauge!(ARCHIVE_CHECKPOINT_SEQ),
            compressed: counter!(ARCHIVE_COMPRESSED),
            plain_bytes: counter!(ARCHIVE_COMPRESSED_BYTES, "form" => "plain"),
            packed_bytes: counter!(ARCHIVE_COMPRESSED_BYTES, "form" => "packed"),
        }
    }
}

impl Observer for ArchiveMetrics {
    fn committed(&self, records: usize, bytes: usize, took: Duration) {
        self.fsync.record(took.as_secs_f64());
        self.records.increment(records as u64);
        self.bytes.increment(bytes as u64);
    }

    fn queue_depth(&self, depth: usize) {
        #[expect(clippy::cast_precision_loss, reason = "a queue depth is far below 2^52")]
        self.queue.set(depth as f64);
    }

    fn failed(&self, error: &ArchiveError) {
        self.failed.set(1.0);
        self.failures.increment(1);
        tracing::error!(%error, "archive write failed: no frame is acknowledged until it resumes (retrying)");
    }

    fn resumed(&self, outage: Duration) {
        self.failed.set(0.0);
        tracing::warn!(outage_secs = outage.as_secs_f64(), "archive resumed: frames are acknowledged again");
    }

    fn warning(&self, error: &ArchiveError) {
        tracing::warn!(%error, "archive: retrying later");
    }

    fn checkpointed(&self, head: &hj212_archive::SignedHead) {
        self.checkpoints.increment(1);
        #[expect(clippy::cast_precision_loss, reason = "a sequence number is far below 2^52")]
        self.checkpoint_seq.set(head.checkpoint.seq as f64);
    }

    fn compressed(&self, segment: &std::path::Path, done: hj212_archive::Compressed) {
        self.compressed.increment(1);
        self.plain_bytes.increment(done.plain_bytes);
        self.packed_bytes.increment(done.packed_bytes);
        tracing::debug!(segment = %segment.display(), plain = done.plain_bytes, packed = done.packed_bytes,
            took_ms = done.took.as_millis(), "archive: segment compressed");
    }
}
