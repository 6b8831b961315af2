//! `aloft-hub`: parses the command line, sets up tracing, calls the library.

use std::net::SocketAddr;
use std::path::PathBuf;

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
    },
    /// Serve nodes and the API until SIGTERM or SIGINT.
    Run {
        /// The data directory made by `init`.
        #[arg(long)]
        data: PathBuf,
        /// Address to listen on (port 0 picks a free one).
        #[arg(long, default_value = "127.0.0.1:8443")]
        listen: SocketAddr,
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
        .init();
    match cli.command {
        Command::Init {
            data,
            sans,
            node,
            admin_token_file,
            node_token_file,
        } => {
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
            println!("Hub initialised in {}.", data.display());
            println!(
                "CA certificate for agents and clients: {}",
                done.ca_file.display()
            );
            println!("Admin token (shown once): {}", done.admin_token);
            println!(
                "Token of node {} (shown once): {}",
                done.node, done.node_token
            );
            Ok(())
        }
        Command::Run { data, listen } => {
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
                aloft_hub::Hub::open(&data)?;
                aloft_hub::pki::server_config(&data)?;
                println!("aloft-hub listening on {}", listener.local_addr()?);
                aloft_hub::server::run(&data, listener, serve_options, stop_signal()).await?;
                Ok(())
            })
        }
        Command::Dump { data, node } => {
            let stdout = std::io::stdout();
            let mut out = std::io::BufWriter::new(stdout.lock());
            aloft_hub::dump(&data, &node, &mut out)?;
            std::io::Write::flush(&mut out)?;
            Ok(())
        }
    }
}

/// The control layer and extra API routes the hub serves with.
fn serve_options(_hub: &aloft_hub::Hub) -> aloft_hub::server::ServeOptions {
    aloft_hub::server::ServeOptions::default()
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
