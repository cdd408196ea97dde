//! `hj212-audit`: the auditor's tool. See `hj212-audit --help`.

use std::process::ExitCode;

use clap::Parser;

fn main() -> ExitCode {
    let cli = hj212_audit::Cli::parse();
    match hj212_audit::run(cli) {
        Ok(()) => ExitCode::SUCCESS,
        Err(failure) => {
            eprintln!("Error: {}", failure.message);
            ExitCode::from(failure.exit_code)
        }
    }
}
