//! `aloftctl`: thin: parses the command line, sets up tracing, calls the library, and turns
//! its outcome into an exit code (docs/ctl.md).

use std::io::Write as _;
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
        // The reader of the output went away (`| head`): it has what it wanted. End quietly
        // and successfully, as after a complete output (docs/ctl.md, "Exit codes").
        Err(e) if e.is_closed_output() => ExitCode::SUCCESS,
        Err(e) => {
            // The hub's words may carry what a node or a user wrote: escaped for the terminal.
            let text = aloftctl::output::terminal_text(&e.to_string(), true).into_owned();
            let _ = writeln!(std::io::stderr(), "error: {text}");
            ExitCode::from(e.exit_code())
        }
    }
}
