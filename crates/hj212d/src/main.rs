//! `hj212d`: the HJ 212 ingest daemon. See `hj212d --help`.

use std::process::ExitCode;

use clap::Parser;

#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() -> ExitCode {
    let cli = hj212d::Cli::parse();
    match hj212d::main(cli) {
        Ok(code) => code,
        Err(error) => {
            eprintln!("Error: {error:#}");
            ExitCode::from(hj212d::EX_SOFTWARE)
        }
    }
}
