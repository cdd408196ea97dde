//! `hj212d`: the HJ 212 ingest daemon. See `hj212d --help`.

use std::process::ExitCode;

use clap::Parser;

#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() -> ExitCode {
    // mimalloc backs its arenas with transparent huge pages where allowed, so memory it purged
    // and took again came back 2 MiB at a time, zeroed: without them the peak RSS under load is
    // about a quarter lower (README, Performance). Best effort: without the switch it runs as is.
    let _ = rustix::thread::disable_transparent_huge_pages(true);
    let cli = hj212d::Cli::parse();
    match hj212d::main(cli) {
        Ok(code) => code,
        Err(error) => {
            eprintln!("Error: {error:#}");
            ExitCode::from(hj212d::EX_SOFTWARE)
        }
    }
}
