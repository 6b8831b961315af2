//! aloftctl: kubectl-style operations against aloft-hub.
//!
//! # Layout
//!
//! - [`cli`]: the command line's shape (clap): verbs, kinds, flags.
//! - [`config`]: the config file's contexts and how flags, environment and file combine.
//! - [`client`]: the blocking HTTPS JSON client (ureq, rustls with ring).
//! - [`manifest`]: YAML files of desired sensor state for `apply` and `diff`.
//! - [`views`] and [`output`]: tables, JSON, YAML and `kind/name` output.
//! - [`export`]: `export`, from the hub's stream or offline from a store directory.
//! - [`verbs`]: what each verb asks the hub and prints; [`run`] is the binary's whole job.

pub mod cli;
pub mod client;
pub mod config;
pub mod export;
pub mod manifest;
pub mod output;
pub mod verbs;
pub mod views;

pub use cli::Cli;
pub use verbs::CtlError;

/// Runs a parsed command line, printing results to standard output; the error carries the
/// exit code.
pub fn run(cli: &Cli) -> Result<(), CtlError> {
    let stdout = std::io::stdout();
    let mut out = stdout.lock();
    verbs::run(cli, &mut out)
}
