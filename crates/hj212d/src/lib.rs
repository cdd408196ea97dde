//! Wiring only: config, logging, metrics, archive, store feed, listeners and signals.
//! No business rules live here.

mod daemon;
mod fds;
mod gauges;
mod lock;
mod logging;
mod metrics;
mod observe;
mod open;
mod outbox;
mod password;
mod preflight;
mod process_metrics;
mod relay;
mod reports;
mod rules_archive;
mod spawn;

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};

pub use daemon::{Daemon, Running};

/// sysexits: configuration error, including a listen address in use or not on this host.
/// The systemd unit does not restart on it.
pub const EX_CONFIG: u8 = 78;
/// sysexits: cannot create a needed file (data_dir, archive, store).
pub const EX_CANTCREAT: u8 = 73;
/// sysexits: the archive is damaged (a person must look; restarting does not help).
pub const EX_DATAERR: u8 = 65;
/// sysexits: temporary failure (another daemon holds the data directory).
pub const EX_TEMPFAIL: u8 = 75;
/// sysexits: internal error.
pub const EX_SOFTWARE: u8 = 70;

#[derive(Debug, Parser)]
#[command(name = "hj212d", version, about = "HJ 212 ingest and compliance daemon")]
pub struct Cli {
    /// Config file (TOML). Flags override it; it overrides the built-in defaults.
    #[arg(long, short, value_name = "FILE")]
    config: Option<PathBuf>,
    /// Log filter, overriding `server.log_level` (e.g. `debug`, `hj212_server=trace`).
    #[arg(long, value_name = "FILTER")]
    log_level: Option<String>,
    #[command(subcommand)]
    command: Option<Command>,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Print every problem in a config file; exit 78 if there is any. Run it as the service
    /// user (`sudo -u hj212d hj212d check-config FILE`): files and data_dir are checked as the
    /// user running it.
    CheckConfig { file: PathBuf },
    /// Print the built-in defaults as TOML.
    PrintDefaultConfig,
    /// Create the archive's checkpoint signing key (mode 0600) and its public half (`.pub`,
    /// for auditors) at FILE; refuses to replace an existing key.
    GenerateSigningKey { file: PathBuf },
    /// Turn the compressed archive segments of the config's data_dir back into plain ones, byte
    /// for byte, each checked first: before going back to a release that reads only plain
    /// segments (set `[archive] compress = false` first, or this one compresses them again).
    /// Refuses while hj212d runs on that data_dir.
    UnpackArchive { file: PathBuf },
    /// Read a console password from stdin (one line) and print its Argon2id hash for a
    /// `[[users]]` entry's `password_hash`.
    HashPassword,
}

/// Runs what the command line asks for.
///
/// # Errors
/// Unexpected internal errors (expected failures are reported with their exit codes).
pub fn main(cli: Cli) -> anyhow::Result<ExitCode> {
    match cli.command {
        Some(Command::CheckConfig { file }) => Ok(check_config(&file)),
        Some(Command::PrintDefaultConfig) => {
            print!("{}", hj212_config::default_toml()?);
            Ok(ExitCode::SUCCESS)
        }
        Some(Command::GenerateSigningKey { file }) => Ok(generate_signing_key(&file)),
        Some(Command::UnpackArchive { file }) => Ok(unpack_archive(&file)),
        Some(Command::HashPassword) => Ok(password::hash_from_stdin()),
        None => {
            let Some(path) = cli.config else {
                eprintln!("Error: no config given: run `hj212d --config FILE` (see `hj212d print-default-config`)");
                return Ok(ExitCode::from(EX_CONFIG));
            };
            daemon::run_from_file(&path, cli.log_level.as_deref())
        }
    }
}

fn check_config(path: &std::path::Path) -> ExitCode {
    let config = match hj212_config::load(path) {
        Ok(config) => config,
        Err(error) => {
            eprintln!("Error: {error}");
            return ExitCode::from(EX_CONFIG);
        }
    };
    for warning in hj212_config::warnings(&config) {
        eprintln!("warning: {warning}");
    }
    let problems = preflight::problems(&config);
    for problem in &problems {
        eprintln!("Error: {problem}");
    }
    if !problems.is_empty() {
        return ExitCode::from(EX_CONFIG);
    }
    println!("{}: ok ({} sites, data_dir {})", path.display(), config.sites.len(), config.server.data_dir.display());
    if preflight::running_as_root() {
        eprintln!(
            "note: checked as root, who can read and write what the service user may not: \
             run it as that user too (sudo -u hj212d hj212d check-config FILE)"
        );
    }
    ExitCode::SUCCESS
}

/// `hj212d generate-signing-key FILE`: a new key, never over an existing one (the archive's
/// checkpoints are checked against the public half an auditor already holds).
fn generate_signing_key(path: &std::path::Path) -> ExitCode {
    if path.exists() {
        eprintln!("Error: {} exists; a signing key is never replaced in place", path.display());
        return ExitCode::from(EX_CANTCREAT);
    }
    match hj212_archive::checkpoint::load_or_create_key(path) {
        Ok(key) => {
            let public = hj212_archive::hex(&key.verifying_key().to_bytes());
            println!("{public}\n(public key, also in {}: give it to auditors)", path.with_extension("pub").display());
            ExitCode::SUCCESS
        }
        Err(error) => {
            eprintln!("Error: {error}");
            ExitCode::from(EX_CANTCREAT)
        }
    }
}

/// `hj212d unpack-archive FILE`: every compressed segment back to its plain form.
fn unpack_archive(path: &std::path::Path) -> ExitCode {
    let config = match hj212_config::load(path) {
        Ok(config) => config,
        Err(error) => {
            eprintln!("Error: {error}");
            return ExitCode::from(EX_CONFIG);
        }
    };
    let data_dir = config.data_dir();
    let _lock = match lock::DataDirLock::acquire(&data_dir) {
        Ok(lock) => lock,
        Err(error) => {
            eprintln!("Error: {error}");
            return ExitCode::from(EX_TEMPFAIL);
        }
    };
    match hj212_archive::unpack_all(&data_dir.archive()) {
        Ok(count) => {
            println!("{count} compressed segments unpacked in {}", data_dir.archive().display());
            if config.archive.compress {
                eprintln!("note: [archive] compress is on: this release compresses them again at its next start");
            }
            ExitCode::SUCCESS
        }
        Err(error @ hj212_archive::ArchiveError::Corrupt { .. }) => {
            eprintln!("Error: {error}");
            ExitCode::from(EX_DATAERR)
        }
        Err(error) => {
            eprintln!("Error: {error}");
            ExitCode::from(EX_CANTCREAT)
        }
    }
}
