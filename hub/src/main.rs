//! `aloft-hub`: parses the command line, sets up tracing, calls the library.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use anyhow::Context;
use clap::{Parser, Subcommand};

#[derive(Debug, Parser)]
#[command(
    name = "aloft-hub",
    version,
    about = "The Aloft hub: node sync over TLS WebSocket and the HTTPS API."
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Create a data directory: CA, server certificate, admin token, first node and its token.
    Init {
        /// The data directory to create.
        #[arg(long)]
        data: PathBuf,
        /// Names the server certificate is valid for (repeat); default localhost and 127.0.0.1.
        #[arg(long = "san")]
        sans: Vec<String>,
        /// The first node's name.
        #[arg(long, default_value = "glider")]
        node: String,
        /// Also write the admin token to this file (mode 0600).
        #[arg(long)]
        admin_token_file: Option<PathBuf>,
        /// Also write the node's token to this file (mode 0600).
        #[arg(long)]
        node_token_file: Option<PathBuf>,
        /// Exit successfully, changing nothing, when the directory already holds a hub (for
        /// init containers and provisioning scripts that run at every start).
        #[arg(long)]
        if_missing: bool,
    },
    /// Serve nodes and the API until SIGTERM or SIGINT.
    Run {
        /// The data directory made by `init`.
        #[arg(long)]
        data: PathBuf,
        /// Address to listen on (port 0 picks a free one).
        #[arg(long, default_value = "127.0.0.1:8443")]
        listen: SocketAddr,
        /// Time allowed for a client's TLS handshake (`500ms`, `10s`, `1m`).
        #[arg(long, default_value = "10s", value_parser = parse_duration)]
        handshake_timeout: Duration,
        /// Time allowed for a complete HTTP request head, from the connection's start or
        /// the end of the previous answer: also how long an idle keep-alive stays open.
        /// Node sessions and watches, past their head, are not bound by it.
        #[arg(long, default_value = "20s", value_parser = parse_duration)]
        header_timeout: Duration,
        /// Connections open at once, all clients.
        #[arg(long, default_value_t = 8192)]
        max_connections: usize,
        /// Connections open at once from one address (a load balancer, or many nodes
        /// behind one NAT, share one).
        #[arg(long, default_value_t = 2048)]
        max_connections_per_peer: usize,
        /// Watches (`?watch=true`) open at once per token; more are refused with 429.
        #[arg(long, default_value_t = 64)]
        max_watches_per_token: usize,
    },
    /// Print every stored record of a node as JSON lines, in (epoch, seq) order.
    Dump {
        /// The data directory.
        #[arg(long)]
        data: PathBuf,
        /// The node.
        #[arg(long)]
        node: String,
    },
}

fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info")),
        )
        .with_writer(std::io::stderr)
        .with_ansi(colour_on_stderr())
        .init();
    match cli.command {
        Command::Init {
            data,
            sans,
            node,
            admin_token_file,
            node_token_file,
            if_missing,
        } => {
            if if_missing && aloft_hub::init::holds_hub(&data) {
                say(&format!(
                    "{} already holds a hub; left as it is.\n",
                    data.display()
                ))?;
                return Ok(());
            }
            let sans = if sans.is_empty() {
                vec!["localhost".to_owned(), "127.0.0.1".to_owned()]
            } else {
                sans
            };
            let done = aloft_hub::init::init(&aloft_hub::init::InitOptions {
                data_dir: data.clone(),
                sans,
                node,
            })?;
            for (file, secret) in [
                (&admin_token_file, &done.admin_token),
                (&node_token_file, &done.node_token),
            ] {
                if let Some(file) = file {
                    aloft_hub::pki::write_private(file, format!("{secret}\n").as_bytes())
                        .with_context(|| format!("writing {}", file.display()))?;
                }
            }
            say(&format!(
                "Hub initialised in {}.\nCA certificate for agents and clients: {}\n\
                 Admin token (shown once): {}\nToken of node {} (shown once): {}\n\
                 Point aloftctl at it: aloftctl config set-context NAME --server https://HOST:8443 \\\n  \
                 --certificate-authority {} --token-file ADMIN_TOKEN_FILE --use\n",
                data.display(),
                done.ca_file.display(),
                done.admin_token,
                done.node,
                done.node_token,
                done.ca_file.display()
            ))
        }
        Command::Run {
            data,
            listen,
            handshake_timeout,
            header_timeout,
            max_connections,
            max_connections_per_peer,
            max_watches_per_token,
        } => {
            let limits = aloft_hub::server::Limits {
                handshake_timeout,
                header_timeout,
                max_connections,
                max_connections_per_peer,
                max_watches_per_token,
            };
            let runtime = tokio::runtime::Builder::new_multi_thread()
                .enable_all()
                .build()
                .context("starting the runtime")?;
            runtime.block_on(async {
                let listener = tokio::net::TcpListener::bind(listen)
                    .await
                    .with_context(|| format!("listening on {listen}"))?;
                // Hub::open and the certificates are checked before announcing the port,
                // so a test reading this line knows the hub is really up.
                let hub = aloft_hub::Hub::open(&data)?;
                aloft_hub::export::clean_temp(&data);
                let tls = aloft_hub::pki::server_config(&data)?;
                // Commands, desired state, audit and their API.
                let options = serve_options(&hub)?;
                say(&format!(
                    "aloft-hub listening on {}\n",
                    listener.local_addr()?
                ))?;
                aloft_hub::server::serve_with(hub, tls, listener, options, limits, stop_signal())
                    .await?;
                Ok(())
            })
        }
        Command::Dump { data, node } => {
            let stdout = std::io::stdout();
            let mut out = std::io::BufWriter::new(stdout.lock());
            let written = match aloft_hub::dump(&data, &node, &mut out) {
                Err(aloft_hub::DumpError::Io(e)) => Err(e),
                Err(e) => return Err(e.into()),
                Ok(_) => std::io::Write::flush(&mut out),
            };
            match written {
                Err(e) if e.kind() != std::io::ErrorKind::BrokenPipe => {
                    Err(anyhow::Error::new(e).context("writing the dump"))
                }
                // A reader that went away (`| head`) has what it wanted: end quietly.
                _ => Ok(()),
            }
        }
    }
}

/// The control layer and extra API routes the hub serves with (commands, desired
/// state, audit). Opened before the port is announced, with the same `Hub` the server uses
/// (its sessions are where commands are pushed).
fn serve_options(hub: &aloft_hub::Hub) -> anyhow::Result<aloft_hub::server::ServeOptions> {
    aloft_hub::server::with_control(hub).context("opening the control layer (control.sqlite)")
}

/// Writes `text` to standard output. A reader that went away (`| head`) is no error:
/// what it read was what it wanted, so nothing more is said.
fn say(text: &str) -> anyhow::Result<()> {
    use std::io::Write as _;
    let mut out = std::io::stdout().lock();
    match out.write_all(text.as_bytes()).and_then(|()| out.flush()) {
        Err(e) if e.kind() != std::io::ErrorKind::BrokenPipe => {
            Err(anyhow::Error::new(e).context("writing to standard output"))
        }
        _ => Ok(()),
    }
}

/// Whether log lines on standard error get ANSI colours: only on a terminal, and not when
/// `NO_COLOR` is set to anything (no-color.org), so a log file or journal holds plain text.
fn colour_on_stderr() -> bool {
    std::io::IsTerminal::is_terminal(&std::io::stderr())
        && std::env::var_os("NO_COLOR").is_none_or(|v| v.is_empty())
}

/// A duration as `NUMBER` and a unit: `ms`, `s` or `m` (`500ms`, `20s`, `2m`); not zero.
fn parse_duration(text: &str) -> Result<Duration, String> {
    let text = text.trim();
    let split = text
        .find(|c: char| !c.is_ascii_digit())
        .unwrap_or(text.len());
    let (number, unit) = text.split_at(split);
    let n: u64 = number
        .parse()
        .map_err(|_| format!("{text:?} is not a duration like 500ms, 20s or 2m"))?;
    let duration = match unit {
        "ms" => Duration::from_millis(n),
        "s" => Duration::from_secs(n),
        "m" => Duration::from_secs(n.saturating_mul(60)),
        _ => return Err(format!("{text:?}: the unit must be ms, s or m")),
    };
    if duration.is_zero() {
        return Err("a timeout of zero would refuse every client".to_owned());
    }
    Ok(duration)
}

/// Resolves at SIGTERM or SIGINT.
async fn stop_signal() {
    use tokio::signal::unix::{SignalKind, signal};
    let (Ok(mut term), Ok(mut int)) = (
        signal(SignalKind::terminate()),
        signal(SignalKind::interrupt()),
    ) else {
        tracing::error!("Cannot listen for signals; stop with SIGKILL.");
        return std::future::pending().await;
    };
    tokio::select! {
        _ = term.recv() => tracing::info!("SIGTERM: stopping."),
        _ = int.recv() => tracing::info!("SIGINT: stopping."),
    }
}
