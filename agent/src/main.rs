//! `aloft-agent`: the edge daemon's command line. Thin: it parses arguments, sets up
//! tracing and calls the library.

use std::path::PathBuf;
use std::process::ExitCode;

use aloft_agent::replay::{self, CaptureKind};
use anyhow::Context;
use clap::{Parser, Subcommand};
use tracing_subscriber::EnvFilter;
use tracing_subscriber::Layer;
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
    tracing_subscriber::registry()
        .with(
            tracing_subscriber::fmt::layer()
                .with_writer(std::io::stderr)
                .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
                .with_filter(filter),
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
            aloft_agent::inspect::dump(&store, from, limit, &mut out)
                .map(|n| tracing::info!(records = n, "Store dumped."))
                // The error names the store and the cause; its sources would repeat it.
                .map_err(|e| anyhow::anyhow!("{e}"))
        }
        Command::CheckConfig { file } => {
            let report = aloft_agent::config::check(&file);
            println!("{}", report.text.trim_end());
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
    print!("{}", report.render());
    Ok(())
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
