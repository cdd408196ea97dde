//! The auditor CLI: reads what devices sent and what the daemon wrote, with the daemon's
//! own parser, so an auditor's figure is the daemon's figure.

mod admin;
mod archive;
mod command;
mod decode;
mod html;
mod mask;
mod nodes;
mod rate;
mod receipts;
mod report;
mod union;

use std::fs::File;
use std::io::{self, BufWriter, Read, Write};
use std::path::PathBuf;

use clap::{Parser, Subcommand};
use hj212_config::DataDir;

/// sysexits: cannot open the input.
const EX_NOINPUT: u8 = 66;
/// sysexits: I/O error while reading or writing.
const EX_IOERR: u8 = 74;
/// sysexits: the data is bad (the archive chain is broken, or the daemon refused a request: 4xx).
const EX_DATAERR: u8 = 65;
/// sysexits: the daemon cannot be reached (connection refused, no route, timed out).
const EX_UNAVAILABLE: u8 = 69;
/// sysexits: the daemon failed (a 5xx answer), or this program could not start its HTTP client.
const EX_SOFTWARE: u8 = 70;
/// sysexits: the daemon answered something other than its API's JSON.
const EX_PROTOCOL: u8 = 76;
/// `command send --wait`: the command ended other than completed, or was still running.
const EXIT_NOT_COMPLETED: u8 = 1;
/// sysexits: bad command-line arguments.
const EX_USAGE: u8 = 64;
/// sysexits: configuration error.
const EX_CONFIG: u8 = 78;

#[derive(Debug, Parser)]
#[command(name = "hj212-audit", version, about = "Audit HJ 212 captures and hj212d archives")]
pub struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Decode a byte stream of HJ 212 frames: one JSON object per frame or rejected chunk.
    Decode {
        /// Capture file; `-` or nothing reads standard input.
        file: Option<PathBuf>,
        /// Print PW values instead of masking them.
        #[arg(long)]
        show_passwords: bool,
        /// Largest data segment accepted, in bytes (the length field allows 9999).
        #[arg(long, default_value_t = hj212_proto::framer::MAX_LENGTH_FIELD)]
        max_data_len: usize,
        /// HJ 212-2025: a file holding the site's SM4 key (16 characters or 32 hex digits);
        /// frames whose CRC fails are decrypted with it and shown in plaintext.
        #[arg(long)]
        key_file: Option<PathBuf>,
    },
    /// Walk the archive's hash chain and its signed checkpoints; name the first break and exit 65.
    Verify {
        /// The daemon's data_dir (the archive is its `archive/` folder).
        #[arg(long)]
        data_dir: PathBuf,
        /// The daemon's checkpoint public key (`archive-signing.pub`); every checkpoint must be
        /// signed by it (or by another --public-key, across a key change).
        #[arg(long, value_name = "FILE")]
        public_key: Vec<PathBuf>,
        /// A head published elsewhere (MQTT, GET /api/v1/archive/head): the archive must still
        /// hold record SEQ with this hash.
        #[arg(long, value_name = "SEQ:HASH")]
        expect_head: Option<String>,
    },
    /// A site's or the fleet's daily (日报) or monthly (月报) report, from the data dir alone.
    Report {
        #[arg(long)]
        data_dir: PathBuf,
        /// The Beijing day, YYYY-MM-DD.
        #[arg(long, conflicts_with = "month", required_unless_present = "month")]
        date: Option<String>,
        /// The Beijing month, YYYY-MM.
        #[arg(long)]
        month: Option<String>,
        /// One site; without it, the fleet (ranked: below target and service misses first).
        #[arg(long)]
        mn: Option<String>,
        /// json, csv (UTF-8 with BOM) or html (one self-contained page).
        #[arg(long, default_value = "json")]
        format: String,
    },
    /// Transmission rate (传输率 / 有效率 / 有效传输率) of a site, or of every site, from the data dir.
    Rate {
        /// A config whose sites and rules replace the archived ones (and whose data_dir is
        /// read unless --data-dir is given). Without it, the rules in force in each stretch of
        /// the range come from the data dir's archived config history.
        #[arg(long, required_unless_present = "data_dir")]
        config: Option<PathBuf>,
        /// The data dir (needed without --config; overrides the config's data_dir). Given more
        /// than once (the nodes of a cluster): the rates of what the nodes received together,
        /// from their archives.
        #[arg(long)]
        data_dir: Vec<PathBuf>,
        /// Read this store instead of DATA_DIR/store.sqlite (e.g. one made by rebuild-ledger).
        #[arg(long)]
        store: Option<PathBuf>,
        /// One site; without it, every configured site.
        #[arg(long)]
        mn: Option<String>,
        /// Start, Beijing time: YYYY-MM-DD or YYYYMMDDhhmmss.
        #[arg(long)]
        from: String,
        /// End (exclusive), Beijing time: YYYY-MM-DD or YYYYMMDDhhmmss.
        #[arg(long)]
        to: String,
        /// hour (CN 2061), day (CN 2031) or minute (CN 2051); default: the site's rule.
        #[arg(long)]
        basis: Option<String>,
        /// json, csv, or html (one site: a self-contained page to file).
        #[arg(long, default_value = "json")]
        format: String,
    },
    /// Which nodes of a cluster received each frame a site sent, from the nodes' archives (each
    /// checked against its chain): one JSON line per frame as the cluster's stream holds it,
    /// then a summary line.
    Receipts {
        /// A node's data dir; give each node's.
        #[arg(long, required = true)]
        data_dir: Vec<PathBuf>,
        /// One site; without it, every site.
        #[arg(long)]
        mn: Option<String>,
        /// Copies of a frame within this many seconds of the first are one frame (the
        /// stream's `[cluster] duplicate_window_secs`).
        #[arg(long, default_value_t = 600)]
        window_secs: u64,
    },
    /// Rebuild the readings ledger (the embedded store) from the archive alone, into a new file.
    RebuildLedger {
        #[arg(long)]
        data_dir: PathBuf,
        /// Where to write it (must not exist); default DATA_DIR/store.rebuilt.sqlite.
        #[arg(long)]
        out: Option<PathBuf>,
    },
    /// Downtime marks (停产 / 停排 / 停运 with evidence), added through the running daemon.
    Mark {
        #[command(subcommand)]
        action: MarkAction,
    },
    /// Commands to a site's data logger (e.g. CN 2061, send the hourly data of a period), queued
    /// and followed through the running daemon.
    // Named `command` on the command line; the plural keeps the variant from repeating its enum's name.
    #[command(name = "command")]
    Commands {
        #[command(subcommand)]
        action: command::CommandAction,
    },
    /// HJ 212-2025 SM4 keys, managed through the running daemon.
    Key {
        #[command(subcommand)]
        action: KeyAction,
    },
    /// Print the alerts the daemon raised (data_dir/alerts.sqlite) as JSON lines, newest first.
    Alerts {
        #[arg(long)]
        data_dir: PathBuf,
        /// active or all.
        #[arg(long, default_value = "all")]
        state: String,
        /// Only this site's alerts.
        #[arg(long)]
        mn: Option<String>,
        /// Alerts open at some time at or after this Beijing time (YYYY-MM-DD or YYYYMMDDhhmmss).
        #[arg(long)]
        from: Option<String>,
        /// Alerts opened before this Beijing time.
        #[arg(long)]
        to: Option<String>,
        /// At most this many.
        #[arg(long, default_value_t = 100_000)]
        limit: usize,
    },
    /// Print archived records as JSON lines (receive time, peer, verdict, raw frame) for evidence requests;
    /// at a break in the hash chain, the records before it are printed, then exit 65 naming the break.
    Export {
        #[arg(long)]
        data_dir: PathBuf,
        /// Only frames of this MN.
        #[arg(long)]
        mn: Option<String>,
        /// Only records received at or after this Beijing time (YYYY-MM-DD or YYYYMMDDhhmmss).
        #[arg(long)]
        from: Option<String>,
        /// Only records received before this Beijing time (YYYY-MM-DD or YYYYMMDDhhmmss).
        #[arg(long)]
        to: Option<String>,
        /// Print PW values instead of masking them.
        #[arg(long)]
        show_passwords: bool,
    },
}

#[derive(Debug, Subcommand)]
enum KeyAction {
    /// Schedule a new key for a site: it is sent to the logger (CN 1014, encrypted with the
    /// current key) with its next frame and used once the logger confirms it (9012).
    Rotate {
        /// The daemon's admin URL (server.http_listen), e.g. http://127.0.0.1:9213.
        #[arg(long)]
        url: String,
        /// File holding the admin bearer token (server.admin_token_file).
        #[arg(long)]
        token_file: PathBuf,
        #[arg(long)]
        mn: String,
    },
}

#[derive(Debug, Subcommand)]
enum MarkAction {
    /// Append a mark (a correction is a new mark that supersedes an old one).
    Add {
        /// The daemon's admin URL (server.http_listen), e.g. http://127.0.0.1:9213.
        #[arg(long)]
        url: String,
        /// File holding the admin bearer token (server.admin_token_file).
        #[arg(long)]
        token_file: PathBuf,
        #[arg(long)]
        mn: String,
        #[arg(long)]
        from: String,
        #[arg(long)]
        to: String,
        #[arg(long)]
        reason: String,
        #[arg(long)]
        evidence: String,
        #[arg(long)]
        author: String,
        /// Archive sequence number of the mark this one replaces.
        #[arg(long)]
        supersedes: Option<u64>,
    },
}

/// Why the command failed, and the exit code to leave with.
#[derive(Debug)]
pub struct Failure {
    pub message: String,
    pub exit_code: u8,
}

/// Runs one command.
///
/// # Errors
/// A [`Failure`] naming what could not be read or written.
pub fn run(cli: Cli) -> Result<(), Failure> {
    match cli.command {
        Command::Decode { file, show_passwords, max_data_len, key_file } => {
            let key = match &key_file {
                Some(path) => Some(
                    std::fs::read_to_string(path)
                        .map_err(|e| e.to_string())
                        .and_then(|text| hj212_proto::encryption::Sm4Key::parse(&text).map_err(|e| e.to_string()))
                        .map_err(|e| Failure {
                            message: format!("--key-file {}: {e}", path.display()),
                            exit_code: EX_NOINPUT,
                        })?,
                ),
                None => None,
            };
            let input: Box<dyn Read> = match &file {
                Some(path) if path.as_os_str() != "-" => Box::new(File::open(path).map_err(|e| Failure {
                    message: format!("cannot open {}: {e}", path.display()),
                    exit_code: EX_NOINPUT,
                })?),
                _ => Box::new(io::stdin().lock()),
            };
            let options = decode::Options { show_passwords, max_data_len, key };
            let mut out = BufWriter::new(io::stdout().lock());
            finish("decode", decode::decode_stream(input, &mut out, &options).and_then(|()| out.flush()))
        }
        Command::Verify { data_dir, public_key, expect_head } => {
            archive::verify(&DataDir::new(data_dir), &archive::VerifyArgs { public_keys: public_key, expect_head })
        }
        Command::Receipts { data_dir, mn, window_secs } => {
            let data_dirs: Vec<DataDir> = data_dir.into_iter().map(DataDir::new).collect();
            let window_ms = i64::try_from(window_secs.saturating_mul(1000)).unwrap_or(i64::MAX);
            let mut out = std::io::BufWriter::new(std::io::stdout().lock());
            receipts::receipts(&data_dirs, mn.as_deref(), window_ms, &mut out)?;
            std::io::Write::flush(&mut out)
                .map_err(|e| Failure { message: format!("cannot write the output: {e}"), exit_code: EX_IOERR })
        }
        Command::RebuildLedger { data_dir, out } => {
            let data_dir = DataDir::new(data_dir);
            let out = out.unwrap_or_else(|| data_dir.rebuilt_store());
            println!("{}", rate::rebuild(&data_dir, &out)?);
            Ok(())
        }
        Command::Report { data_dir, date, month, mn, format } => {
            let data_dir = DataDir::new(data_dir);
            // CSV and HTML end with their own line break; JSON gets one.
            print!("{}", report::report(&report::ReportArgs { data_dir, date, month, mn, format })?);
            Ok(())
        }
        Command::Rate { config, data_dir, store, mn, from, to, basis, format } => {
            let format = match format.as_str() {
                "json" => rate::Format::Json,
                "csv" => rate::Format::Csv,
                "html" => rate::Format::Html,
                other => {
                    let message = format!("--format {other:?} is not json, csv or html");
                    return Err(Failure { message, exit_code: EX_USAGE });
                }
            };
            let output = rate::rate(&rate::RateArgs { config, data_dir, store, mn, from, to, basis, format })?;
            println!("{output}");
            Ok(())
        }
        Command::Mark {
            action: MarkAction::Add { url, token_file, mn, from, to, reason, evidence, author, supersedes },
        } => {
            let args = rate::MarkArgs { url, token_file, mn, from, to, reason, evidence, author, supersedes };
            println!("{}", rate::add_mark(&args)?);
            Ok(())
        }
        Command::Commands { action } => command::run(action),
        Command::Key { action: KeyAction::Rotate { url, token_file, mn } } => {
            println!("{}", rate::rotate_key(&url, &token_file, &mn)?);
            Ok(())
        }
        Command::Alerts { data_dir, state, mn, from, to, limit } => {
            alerts(&DataDir::new(data_dir), &state, mn, from, to, limit)
        }
        Command::Export { data_dir, mn, from, to, show_passwords } => {
            let filter = archive::Filter::new(mn, from.as_deref(), to.as_deref())
                .map_err(|message| Failure { message, exit_code: EX_USAGE })?;
            let mut out = BufWriter::new(io::stdout().lock());
            match archive::export(&DataDir::new(data_dir), &filter, show_passwords, &mut out) {
                Err(archive::ExportError::Write(e)) => finish("export", Err(e)),
                Err(archive::ExportError::Broken(message)) => {
                    finish("export", out.flush())?;
                    Err(Failure { message, exit_code: EX_DATAERR })
                }
                Ok(()) => finish("export", out.flush()),
            }
        }
    }
}

/// `hj212-audit alerts`: the alerts database opened read-only, as JSON lines.
fn alerts(
    data_dir: &DataDir,
    state: &str,
    mn: Option<String>,
    from: Option<String>,
    to: Option<String>,
    limit: usize,
) -> Result<(), Failure> {
    let active_only = match state {
        "active" => true,
        "all" => false,
        other => {
            let message = format!("--state {other:?} is not active or all");
            return Err(Failure { message, exit_code: EX_USAGE });
        }
    };
    let bound = |value: Option<String>, name: &str| {
        value
            .map(|v| hj212_store::parse_bound(&v))
            .transpose()
            .map_err(|e| Failure { message: format!("--{name}: {e}"), exit_code: EX_USAGE })
    };
    let filter =
        hj212_alerts::query::Filter { active_only, mn, from_ms: bound(from, "from")?, to_ms: bound(to, "to")?, limit };
    let path = data_dir.alerts();
    let conn = hj212_alerts::query::open_read_only(&path)
        .map_err(|e| Failure { message: e.to_string(), exit_code: EX_NOINPUT })?;
    let alerts = hj212_alerts::query::list(&conn, &filter)
        .map_err(|e| Failure { message: e.to_string(), exit_code: EX_NOINPUT })?;
    let mut out = BufWriter::new(io::stdout().lock());
    let written = alerts.iter().try_for_each(|alert| writeln!(out, "{alert}"));
    finish("alerts", written.and_then(|()| out.flush()))
}

fn finish(what: &str, result: io::Result<()>) -> Result<(), Failure> {
    match result {
        // A closed pipe (`| head`) is the reader saying it has enough.
        Err(e) if e.kind() == io::ErrorKind::BrokenPipe => Ok(()),
        other => other.map_err(|e| Failure { message: format!("{what}: {e}"), exit_code: EX_IOERR }),
    }
}
