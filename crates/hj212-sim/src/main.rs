//! `hj212-sim`: simulated HJ 212 data loggers. See `hj212-sim --help`.

use std::process::ExitCode;

use clap::Parser;

fn main() -> ExitCode {
    let cli = hj212_sim::Cli::parse();
    match hj212_sim::run_cli(&cli) {
        Ok(()) => ExitCode::SUCCESS,
        Err(failure) => {
            eprintln!("Error: {}", failure.message);
            ExitCode::from(failure.exit_code)
        }
    }
}
