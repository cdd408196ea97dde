//! Log lines on stderr: one line per event, as text or JSON, with RFC 3339 timestamps at the
//! configured offset, and ANSI colour only on a terminal (never in journald or a log file).

use std::io::{IsTerminal as _, Write};

use hj212_config::{LogFormat, UtcOffset};
use hj212_proto::time::BeijingTime;
use tracing_subscriber::EnvFilter;
use tracing_subscriber::fmt::MakeWriter;
use tracing_subscriber::fmt::format::Writer;
use tracing_subscriber::fmt::time::FormatTime;
use tracing_subscriber::layer::SubscriberExt;
use tracing_subscriber::util::SubscriberInitExt;

/// How to log: `server.log_level` (or `--log-level`), `server.log_format`, `server.log_utc_offset`.
#[derive(Debug, Clone)]
pub struct LogSettings {
    pub filter: String,
    pub format: LogFormat,
    pub offset: UtcOffset,
}

/// Installs the log subscriber once per process (later calls keep the first).
pub fn init_logging(settings: &LogSettings) {
    let filter = EnvFilter::try_new(&settings.filter).unwrap_or_else(|error| {
        eprintln!("warning: log filter {:?} is invalid ({error}); using \"info\"", settings.filter);
        EnvFilter::new("info")
    });
    let timer = Clock(settings.offset);
    let layer = tracing_subscriber::fmt::layer().with_writer(OneLine).with_timer(timer);
    let _ = match settings.format {
        LogFormat::Text => {
            let ansi = std::io::stderr().is_terminal() && std::env::var_os("NO_COLOR").is_none();
            tracing_subscriber::registry().with(layer.with_ansi(ansi)).with(filter).try_init()
        }
        LogFormat::Json => {
            let json = layer.json().flatten_event(true).with_current_span(false).with_span_list(false);
            tracing_subscriber::registry().with(json).with(filter).try_init()
        }
    };
}

/// RFC 3339 timestamps with milliseconds at a fixed offset: `2026-01-01T08:00:00.000+08:00`.
#[derive(Debug, Clone, Copy)]
struct Clock(UtcOffset);

impl FormatTime for Clock {
    fn format_time(&self, w: &mut Writer<'_>) -> std::fmt::Result {
        write!(w, "{}", rfc3339(hj212_archive::now_ms(), self.0))
    }
}

fn rfc3339(unix_ms: i64, offset: UtcOffset) -> String {
    // BeijingTime does the calendar arithmetic at +08:00; shifting the instant by the
    // difference to the wanted offset gives the civil time at that offset.
    let shift_ms = (i64::from(offset.seconds()) - 8 * 3600) * 1000;
    let t = BeijingTime::from_unix_millis(unix_ms + shift_ms);
    format!(
        "{:04}-{:02}-{:02}T{:02}:{:02}:{:02}.{:03}{offset}",
        t.year, t.month, t.day, t.hour, t.minute, t.second, t.millis
    )
}

/// stderr, with line breaks inside an event written as `\n` so each event stays one line for
/// journald and log shippers (a TOML error or an error chain spans several lines).
#[derive(Debug, Clone, Copy)]
struct OneLine;

impl MakeWriter<'_> for OneLine {
    type Writer = OneLineWriter;

    fn make_writer(&self) -> Self::Writer {
        OneLineWriter
    }
}

#[derive(Debug)]
struct OneLineWriter;

impl Write for OneLineWriter {
    /// The formatter hands over each event whole, ending in its one newline.
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        std::io::stderr().lock().write_all(&one_line(buf))?;
        Ok(buf.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        std::io::stderr().flush()
    }
}

fn one_line(event: &[u8]) -> Vec<u8> {
    let (body, end) = match event.strip_suffix(b"\n") {
        Some(body) => (body, &b"\n"[..]),
        None => (event, &b""[..]),
    };
    let mut line = Vec::with_capacity(event.len() + 8);
    for &byte in body {
        match byte {
            b'\n' => line.extend_from_slice(b"\\n"),
            b'\r' => line.extend_from_slice(b"\\r"),
            _ => line.push(byte),
        }
    }
    line.extend_from_slice(end);
    line
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn timestamps_carry_the_configured_offset() {
        let ms = 1_767_225_600_123; // 2026-01-01T00:00:00.123Z
        assert_eq!(rfc3339(ms, UtcOffset::BEIJING), "2026-01-01T08:00:00.123+08:00");
        assert_eq!(rfc3339(ms, UtcOffset::UTC), "2026-01-01T00:00:00.123+00:00");
        assert_eq!(rfc3339(ms, UtcOffset::parse("-05:30").unwrap()), "2025-12-31T18:30:00.123-05:30");
    }

    #[test]
    fn an_event_with_line_breaks_stays_on_one_line() {
        assert_eq!(one_line(b"a\nb\r\nc\n"), b"a\\nb\\r\\nc\n");
        assert_eq!(one_line(b"plain\n"), b"plain\n");
    }
}
