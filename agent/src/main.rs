//! `aloft-agent`: the edge daemon's command line. Thin: it parses arguments, sets up
//! tracing and calls the library.

use std::io::Write as _;
use std::path::PathBuf;
use std::process::ExitCode;

use aloft_agent::replay::{self, CaptureKind};
use anyhow::Context;
use clap::{Parser, Subcommand};
use tracing_subscriber::EnvFilter;
use tracing_subscriber::Layer;
use tracing_subscriber::filter::FilterExt;
use tracing_subscriber::fmt::MakeWriter;
use tracing_subscriber::layer::SubscriberExt;
use tracing_subscriber::util::SubscriberInitExt;

#[derive(Parser)]
#[command(name = "aloft-agent", version, about = "The Aloft edge agent")]
struct Cli {
    /// Log filter (RUST_LOG syntax: `info`, `aloft_sensors=debug`, ...); RUST_LOG wins if set.
    #[arg(long, global = true, default_value = "warn")]
    log_level: String,

    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Decode a capture from a real device and print one JSON object per fix or event.
    ///
    /// Lines that cannot be decoded are reported on stderr with their line number and
    /// skipped; the exit code is 0 whenever the file could be read.
    Replay {
        /// What device the capture is from.
        #[arg(long, value_enum)]
        kind: CaptureKind,
        /// The capture file (`#` comment lines of recorders are skipped).
        file: PathBuf,
    },
    /// Run the agent: read the sensors, keep every reading, serve metrics and status.
    Run {
        /// The configuration file.
        #[arg(long, default_value = "/etc/aloft/agent.toml")]
        config: PathBuf,
        /// The store's directory, instead of the one in the config.
        #[arg(long)]
        store: Option<PathBuf>,
    },
    /// Host the simulated flight's devices of a config with [simulation] for an agent in
    /// another process (serial ones on pseudo-terminals, I2C ones on bridge sockets), and
    /// write DIR/agent.toml, the config that agent runs. Runs until SIGTERM or Ctrl-C.
    Simulate {
        /// The config with the [simulation] table (`deploy/examples/sim.toml`).
        #[arg(long)]
        config: PathBuf,
        /// Where the devices and DIR/agent.toml go.
        #[arg(long, value_name = "DIR")]
        devices: PathBuf,
    },
    /// Look at the local store.
    Store {
        #[command(subcommand)]
        command: StoreCommand,
    },
    /// Check a configuration file and report every problem with its key and line.
    CheckConfig {
        /// The file (`/etc/aloft/agent.toml`).
        file: PathBuf,
        /// Check the file alone, not the files it names (the hub token). The systemd unit
        /// checks this way before `run`: the agent samples without its token (it only cannot
        /// sync), so a missing token must not keep it from starting.
        #[arg(long)]
        file_only: bool,
    },
    /// Print the running agent's local picture: sensors, time, store.
    Status {
        /// The agent's config, to find its local endpoint.
        #[arg(long, default_value = "/etc/aloft/agent.toml")]
        config: PathBuf,
        /// The local endpoint's address, instead of the one in the config.
        #[arg(long)]
        address: Option<std::net::SocketAddr>,
    },
}

#[derive(Subcommand)]
enum StoreCommand {
    /// Print the store's records as JSON lines. Read-only: changes no file, takes no lock
    /// (a running agent's newest records may not be in the dump yet).
    Dump {
        /// The store's directory.
        #[arg(long)]
        store: PathBuf,
        /// The first sequence number to print.
        #[arg(long, default_value_t = 0)]
        from: u64,
        /// Print at most this many records.
        #[arg(long)]
        limit: Option<u64>,
    },
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let filter = EnvFilter::try_from_default_env()
        .or_else(|_| EnvFilter::try_new(&cli.log_level))
        .unwrap_or_else(|_| EnvFilter::new("warn"));
    // The log ring keeps the newest lines for the hub's `aloftctl logs` (FetchLogs).
    let (ring_layer, logs) = aloft_agent::control::log_ring(aloft_agent::run::LOG_LINES);
    // The ring keeps INFO and above whatever stderr shows: an operator fetching lines
    // from the ground wants the agent's story, not only its warnings.
    // Whatever the filter asks for, the crates that trace a connection's raw headers (the
    // node's bearer token among them) are capped below TRACE, and what is written still
    // passes a redaction of bearer tokens.
    let no_raw_headers = tracing_subscriber::filter::filter_fn(|meta| {
        *meta.level() != tracing::Level::TRACE || !traces_raw_headers(meta.target())
    });
    tracing_subscriber::registry()
        .with(
            tracing_subscriber::fmt::layer()
                .with_writer(RedactedStderr)
                .with_ansi(colour_on_stderr())
                .with_filter(filter.and(no_raw_headers)),
        )
        .with(ring_layer.with_filter(tracing_subscriber::filter::LevelFilter::INFO))
        .init();

    let result = match cli.command {
        Command::Replay { kind, file } => replay_file(kind, &file),
        Command::Run { config, store } => run(&config, store, logs),
        Command::Simulate { config, devices } => simulate(&config, &devices),
        Command::Store {
            command: StoreCommand::Dump { store, from, limit },
        } => {
            let mut out = std::io::BufWriter::new(std::io::stdout().lock());
            match aloft_agent::inspect::dump(&store, from, limit, &mut out) {
                Ok(n) => {
                    tracing::info!(records = n, "Store dumped.");
                    Ok(())
                }
                // A reader that went away (`| head`) has what it wanted: end quietly.
                Err(aloft_agent::inspect::DumpError::Output(e))
                    if e.kind() == std::io::ErrorKind::BrokenPipe =>
                {
                    Ok(())
                }
                // The error names the store and the cause; its sources would repeat it.
                Err(e) => Err(anyhow::anyhow!("{e}")),
            }
        }
        Command::CheckConfig { file, file_only } => {
            let report = if file_only {
                aloft_agent::config::check(&file)
            } else {
                aloft_agent::config::check_installed(&file)
            };
            // A reader that went away (`| head`) is no error; the exit code still tells.
            let _ = writeln!(std::io::stdout(), "{}", report.text.trim_end());
            if !report.valid {
                return ExitCode::FAILURE;
            }
            Ok(())
        }
        Command::Status { config, address } => status(&config, address),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("aloft-agent: error: {e:#}");
            ExitCode::FAILURE
        }
    }
}

fn run(
    config: &std::path::Path,
    store: Option<PathBuf>,
    logs: aloft_agent::control::LogRing,
) -> anyhow::Result<()> {
    // The config error's text is the full report, one problem a line.
    let mut config = aloft_agent::config::load(config).map_err(|e| anyhow::anyhow!("{e}"))?;
    if let Some(dir) = store {
        config = config.with_store_dir(dir);
    }
    // One worker for the writer, the endpoint and the watchdog (the sensors have their own
    // threads); the group commit's fsync hands the worker over to another thread. The agent
    // runs as a task on that worker, not on this thread: a timer tick then wakes one thread,
    // not the worker and this one (each wake-up costs battery on the board).
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()?;
    runtime.block_on(async {
        tokio::spawn(aloft_agent::run::run_with_logs(
            config,
            logs,
            shutdown_signal(),
        ))
        .await
    })??;
    Ok(())
}

fn simulate(config_file: &std::path::Path, dir: &std::path::Path) -> anyhow::Result<()> {
    let config = aloft_agent::config::load(config_file).map_err(|e| anyhow::anyhow!("{e}"))?;
    let hosted = aloft_agent::sensor::hosted::HostedDevices::start(&config, config_file, dir)?;
    // One line on stdout, for people and for scripts waiting for the devices.
    println!(
        "aloft-agent: devices ready; run: aloft-agent run --config {}",
        hosted.agent_config().display()
    );
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    runtime.block_on(shutdown_signal());
    hosted.stop();
    Ok(())
}

/// Completes at SIGTERM (systemd's stop) or SIGINT (Ctrl-C).
async fn shutdown_signal() {
    use tokio::signal::unix::{SignalKind, signal};
    let mut term = match signal(SignalKind::terminate()) {
        Ok(s) => s,
        Err(e) => {
            tracing::warn!(error = %e, "No SIGTERM handler; stopping on Ctrl-C only.");
            let _ = tokio::signal::ctrl_c().await;
            return;
        }
    };
    tokio::select! {
        _ = term.recv() => tracing::info!("SIGTERM: stopping."),
        _ = tokio::signal::ctrl_c() => tracing::info!("Interrupted: stopping."),
    }
}

/// Crates (log targets) whose TRACE events print HTTP requests or responses as sent:
/// the WebSocket handshake's `Authorization: Bearer` header.
const RAW_HEADER_TARGETS: &[&str] = &["tungstenite", "tokio_tungstenite", "hyper", "h2", "http"];

fn traces_raw_headers(target: &str) -> bool {
    RAW_HEADER_TARGETS.iter().any(|crate_name| {
        target
            .strip_prefix(crate_name)
            .is_some_and(|rest| rest.is_empty() || rest.starts_with("::"))
    })
}

/// Whether log lines on standard error get ANSI colours: only on a terminal, and not when
/// `NO_COLOR` is set to anything (no-color.org), so a log file or journal holds plain text.
fn colour_on_stderr() -> bool {
    std::io::IsTerminal::is_terminal(&std::io::stderr())
        && std::env::var_os("NO_COLOR").is_none_or(|v| v.is_empty())
}

/// Standard error with every bearer token in a line replaced by `<redacted>`: the last
/// guard, should a dependency trace a request at a level or target not capped above.
struct RedactedStderr;

/// One log line's writer (the fmt layer writes each event with one `write_all`).
struct RedactedLine;

impl<'a> MakeWriter<'a> for RedactedStderr {
    type Writer = RedactedLine;

    fn make_writer(&'a self) -> Self::Writer {
        RedactedLine
    }
}

impl std::io::Write for RedactedLine {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        let text = String::from_utf8_lossy(buf);
        std::io::stderr().write_all(redact_bearer(&text).as_bytes())?;
        Ok(buf.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        std::io::stderr().flush()
    }
}

/// `text` with what follows each `Bearer ` (any case) up to the end of the token
/// replaced by `<redacted>`.
fn redact_bearer(text: &str) -> std::borrow::Cow<'_, str> {
    const WORD: &str = "bearer ";
    let lower = text.to_ascii_lowercase();
    if !lower.contains(WORD) {
        return std::borrow::Cow::Borrowed(text);
    }
    let mut out = String::with_capacity(text.len());
    let mut rest = 0;
    while let Some(found) = lower[rest..].find(WORD) {
        let start = rest + found + WORD.len();
        out.push_str(&text[rest..start]);
        let token_len = text[start..]
            .find(|c: char| {
                !(c.is_ascii_alphanumeric() || matches!(c, '-' | '.' | '_' | '~' | '+' | '/' | '='))
            })
            .unwrap_or(text.len() - start);
        if token_len > 0 {
            out.push_str("<redacted>");
        }
        rest = start + token_len;
    }
    out.push_str(&text[rest..]);
    std::borrow::Cow::Owned(out)
}

fn status(config: &std::path::Path, address: Option<std::net::SocketAddr>) -> anyhow::Result<()> {
    let address = match address {
        Some(a) => a,
        None => {
            aloft_agent::config::load(config)
                .with_context(|| "cannot find the agent's endpoint; give --address".to_string())?
                .metrics
                .listen
        }
    };
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    let report = runtime
        .block_on(aloft_agent::status::fetch(address))
        // The error names the address and the cause; its source would repeat the cause.
        .map_err(|e| anyhow::anyhow!("{e}; is `aloft-agent run` running?"))?;
    let mut out = std::io::stdout().lock();
    match std::io::Write::write_all(&mut out, report.render().as_bytes()) {
        // A reader that went away (`| head`) has what it wanted.
        Err(e) if e.kind() != std::io::ErrorKind::BrokenPipe => Err(e.into()),
        _ => Ok(()),
    }
}

fn replay_file(kind: CaptureKind, file: &std::path::Path) -> anyhow::Result<()> {
    let bytes =
        std::fs::read(file).with_context(|| format!("cannot read capture {}", file.display()))?;
    let summary = replay::run(
        kind,
        &bytes,
        &mut std::io::stdout().lock(),
        &mut std::io::stderr().lock(),
    )
    .with_context(|| format!("cannot write the decode of {}", file.display()))?;
    eprintln!(
        "aloft-agent: {}: {} records, {} lines skipped",
        file.display(),
        summary.records,
        summary.skipped
    );
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bearer_tokens_are_redacted_wherever_they_are_in_a_line() {
        let line = "Request: \"GET / HTTP/1.1\\r\\nauthorization: Bearer aloft_3d1f+/=x\\r\\n\" BEARER b.c-d~e done";
        let shown = redact_bearer(line);
        assert!(!shown.contains("aloft_3d1f"), "{shown}");
        assert!(!shown.contains("b.c-d~e"), "{shown}");
        assert_eq!(shown.matches("<redacted>").count(), 2, "{shown}");
        assert!(shown.ends_with(" done"), "{shown}");
        assert_eq!(redact_bearer("no token here"), "no token here");
        assert_eq!(redact_bearer("ends with bearer "), "ends with bearer ");
    }

    #[test]
    fn only_the_header_tracing_crates_are_capped() {
        assert!(traces_raw_headers("tungstenite::handshake::client"));
        assert!(traces_raw_headers("tungstenite"));
        assert!(traces_raw_headers("hyper::proto::h1::role"));
        assert!(!traces_raw_headers("hyperion"));
        assert!(!traces_raw_headers("aloft_agent::uplink"));
    }
}
