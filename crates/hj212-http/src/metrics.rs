//! Admin HTTP metric names (`hj212_http_*`) and descriptions. Labels are bounded sets.

use metrics::{counter, describe_counter, describe_gauge};

/// Error answers, by HTTP status (the fixed set the API answers with).
pub(crate) const ERRORS: &str = "hj212_http_errors_total";
/// Admin connections open now.
pub(crate) const CONNECTIONS_ACTIVE: &str = "hj212_http_connections_active";
/// Connections the server closed on a client: `header_timeout` or `shutdown` (cut at the deadline).
pub(crate) const CONNECTIONS_CUT: &str = "hj212_http_connections_cut_total";

/// Console sign-ins by outcome: `ok`, `wrong` (user name or password), `locked` (too many failures).
pub(crate) const CONSOLE_SIGN_INS: &str = "hj212_console_sign_ins_total";

/// The statuses the API answers errors with (docs/metrics.md).
const ERROR_STATUSES: [&str; 10] = ["400", "401", "403", "404", "405", "408", "409", "413", "500", "503"];

/// Registers the descriptions and the counters at zero (idempotent).
pub(crate) fn describe() {
    for status in ERROR_STATUSES {
        counter!(ERRORS, "status" => status).increment(0);
    }
    for reason in ["header_timeout", "shutdown", "lifetime"] {
        counter!(CONNECTIONS_CUT, "reason" => reason).increment(0);
    }
    for outcome in ["ok", "wrong", "locked"] {
        counter!(CONSOLE_SIGN_INS, "outcome" => outcome).increment(0);
    }
    describe_counter!(
        CONSOLE_SIGN_INS,
        "Console sign-ins: ok, wrong (user name or password), locked (too many failures)"
    );
    describe_counter!(ERRORS, "Admin API error answers, by HTTP status");
    describe_gauge!(CONNECTIONS_ACTIVE, "Open admin HTTP connections");
    describe_counter!(
        CONNECTIONS_CUT,
        "Admin HTTP connections closed by the server: header_timeout (headers not sent in time), shutdown (cut at the stop deadline), lifetime (open longer than http.connection_max_secs)"
    );
}
