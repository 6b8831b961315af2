//! `aloftctl`: thin: parses the command line, sets up tracing, calls the library, and turns
//! its outcome into an exit code (docs/ctl.md).

use std::process::ExitCode;

use clap::Parser;
use tracing_subscriber::EnvFilter;

fn main() -> ExitCode {
    let cli = aloftctl::Cli::parse();
    let filter = EnvFilter::try_from_default_env()
        .or_else(|_| EnvFilter::try_new(&cli.log_level))
        .unwrap_or_else(|_| EnvFilter::new("warn"));
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .init();
    match aloftctl::run(&cli) {
        Ok(()) => ExitCode::SUCCESS,
        // `diff` found changes: its output said so; nothing to add.
        Err(aloftctl::CtlError::ChangesFound) => ExitCode::from(5),
        Err(e) => {
            eprintln!("error: {e}");
            ExitCode::from(e.exit_code())
        }
    }
}
