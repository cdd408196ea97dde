//! Admin HTTP metric names (`hj212_http_*`) and descriptions. Labels are bounded sets.

use metrics::{describe_counter, describe_gauge};

/// Error answers, by HTTP status (the fixed set the API answers with).
pub(crate) const ERRORS: &str = "hj212_http_errors_total";
/// Admin connections open now.
pub(crate) const CONNECTIONS_ACTIVE: &str = "hj212_http_connections_active";
/// Connections the server closed on a client: `header_timeout` or `shutdown` (cut at the deadline).
pub(crate) const CONNECTIONS_CUT: &str = "hj212_http_connections_cut_total";

/// Registers the descriptions (idempotent).
pub(crate) fn describe() {
    describe_counter!(ERRORS, "Admin API error answers, by HTTP status");
    describe_gauge!(CONNECTIONS_ACTIVE, "Open admin HTTP connections");
    describe_counter!(
        CONNECTIONS_CUT,
        "Admin HTTP connections closed by the server: header_timeout (headers not sent in time), shutdown (cut at the stop deadline)"
    );
}
