//! The `handoff` binary: parse the command line, set up logging, dispatch.

use std::process::ExitCode;

use clap::Parser;
use handoff::cli::{self, Cli};

fn main() -> ExitCode {
    let cli = Cli::parse();
    // Logs go to stderr through the redactor, so command output on stdout
    // stays clean and no secret reaches a log line.
    handoff::logging::init(cli.log_format, matches!(cli.command, cli::Command::Run(_)));
    if let Err(e) = handoff::failpoints::arm_from_env() {
        eprintln!("error: {e}");
        return ExitCode::from(cli::EXIT_INVALID);
    }
    match cli::run(cli) {
        Ok(code) => code,
        // `handoff report | head`: the reader had what it wanted.
        Err(e) if handoff::output::is_closed_pipe(&e) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {}", handoff_model::redact(&format!("{e:#}")));
            ExitCode::from(cli::EXIT_INVALID)
        }
    }
}

/// See the note on `tikv-jemallocator` in Cargo.toml.
#[cfg(not(target_env = "msvc"))]
#[global_allocator]
static ALLOCATOR: tikv_jemallocator::Jemalloc = tikv_jemallocator::Jemalloc;
