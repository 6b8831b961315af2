//! A protocol-speaking test client for the hub (feature `testing`): TLS trusting the hub's
//! `ca.pem`, the node WebSocket with a bearer token, the API over HTTPS, and a hub process
//! started from its binary. For this crate's tests and other crates' end-to-end tests.
//!
//! Invariants: every wait has a deadline (a broken hub fails a test, never hangs it); a
//! [`HubProcess`] is killed when dropped, so a failed test leaves no server behind.

use std::io::BufRead;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::Duration;

use aloft_protocol::sync::batch::{PREFERRED_ENCODING, encode_batch};
use aloft_protocol::sync::{
    Batch, Downlink, Hello, NODE_PATH, PROTOCOL_VERSION, RefusalCode, Uplink, Welcome,
};
use aloft_protocol::{BootId, Record, StoreEpoch};
use futures_util::{SinkExt, StreamExt};
use http_body_util::BodyExt;
use hyper_util::rt::TokioIo;
use rustls::ClientConfig;
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, ServerName};
use tokio::net::TcpStream;
use tokio_rustls::TlsConnector;
use tokio_rustls::client::TlsStream;
use tokio_tungstenite::WebSocketStream;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::{self, Message};

/// How long the client waits for any one answer by default.
pub const DEADLINE: Duration = Duration::from_secs(10);

/// Why a test client operation failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ClientError {
    /// The upgrade was answered with this HTTP status instead of 101.
    #[error("HTTP {0} instead of a WebSocket upgrade")]
    Http(u16),
    /// No answer within the deadline.
    #[error("no answer within {0:?}")]
    Deadline(Duration),
    /// The hub closed the connection.
    #[error("connection closed")]
    Closed,
    /// Anything else.
    #[error("{0}")]
    Other(String),
}

fn other(e: impl std::fmt::Display) -> ClientError {
    ClientError::Other(e.to_string())
}

/// A TLS client config trusting only the CA in `ca_pem` (`ring` provider).
pub fn client_config(ca_pem: &Path) -> Result<Arc<ClientConfig>, ClientError> {
    let pem = std::fs::read(ca_pem).map_err(other)?;
    let mut roots = rustls::RootCertStore::empty();
    for cert in CertificateDer::pem_slice_iter(&pem) {
        roots.add(cert.map_err(other)?).map_err(other)?;
    }
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let mut config = ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(other)?
        .with_root_certificates(roots)
        .with_no_client_auth();
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    Ok(Arc::new(config))
}

async fn tls(
    addr: SocketAddr,
    config: &Arc<ClientConfig>,
) -> Result<TlsStream<TcpStream>, ClientError> {
    let tcp = TcpStream::connect(addr).await.map_err(other)?;
    tcp.set_nodelay(true).map_err(other)?;
    let name = ServerName::try_from("localhost").map_err(other)?;
    TlsConnector::from(config.clone())
        .connect(name, tcp)
        .await
        .map_err(other)
}

/// A node's connection to the hub, speaking the sync protocol.
#[derive(Debug)]
pub struct NodeClient {
    ws: WebSocketStream<TlsStream<TcpStream>>,
}

impl NodeClient {
    /// Connects and upgrades with `token`; [`ClientError::Http`] when refused before the
    /// upgrade.
    pub async fn connect(
        addr: SocketAddr,
        config: &Arc<ClientConfig>,
        token: &str,
    ) -> Result<NodeClient, ClientError> {
        let stream = tls(addr, config).await?;
        let mut request = format!("wss://localhost:{}{NODE_PATH}", addr.port())
            .into_client_request()
            .map_err(other)?;
        request.headers_mut().insert(
            "authorization",
            format!("Bearer {token}").parse().map_err(other)?,
        );
        match tokio::time::timeout(DEADLINE, tokio_tungstenite::client_async(request, stream)).await
        {
            Err(_) => Err(ClientError::Deadline(DEADLINE)),
            Ok(Ok((ws, _))) => Ok(NodeClient { ws }),
            Ok(Err(tungstenite::Error::Http(response))) => {
                Err(ClientError::Http(response.status().as_u16()))
            }
            Ok(Err(e)) => Err(other(e)),
        }
    }

    /// Sends one message.
    pub async fn send(&mut self, message: &Uplink) -> Result<(), ClientError> {
        self.send_raw(message.encode()).await
    }

    /// Sends raw bytes as one binary message (for bad input).
    pub async fn send_raw(&mut self, bytes: Vec<u8>) -> Result<(), ClientError> {
        self.ws
            .send(Message::Binary(bytes.into()))
            .await
            .map_err(other)
    }

    /// Sends a text message (the protocol refuses them).
    pub async fn send_text(&mut self, text: &str) -> Result<(), ClientError> {
        self.ws
            .send(Message::Text(text.into()))
            .await
            .map_err(other)
    }

    /// The next protocol message; [`ClientError::Closed`] when the hub closed.
    pub async fn recv(&mut self) -> Result<Downlink, ClientError> {
        loop {
            let message = match tokio::time::timeout(DEADLINE, self.ws.next()).await {
                Err(_) => return Err(ClientError::Deadline(DEADLINE)),
                Ok(None) => return Err(ClientError::Closed),
                Ok(Some(Err(_))) => return Err(ClientError::Closed),
                Ok(Some(Ok(m))) => m,
            };
            match message {
                Message::Binary(bytes) => return Downlink::decode(&bytes).map_err(other),
                Message::Close(_) => return Err(ClientError::Closed),
                _ => continue,
            }
        }
    }

    /// Says hello and returns the welcome.
    pub async fn hello(&mut self, hello: Hello) -> Result<Welcome, ClientError> {
        self.send(&Uplink::Hello(hello)).await?;
        match self.recv().await? {
            Downlink::Welcome(w) => Ok(w),
            other_message => Err(other(format!("expected a welcome, got {other_message:?}"))),
        }
    }

    /// Sends a batch of `entries` covering `first..=last` and returns the acked watermark
    /// (skipping other messages, which are returned in `also`).
    pub async fn batch(
        &mut self,
        epoch: StoreEpoch,
        first: u64,
        last: u64,
        entries: &[(u64, Record)],
    ) -> Result<u64, ClientError> {
        let payload = encode_batch(PREFERRED_ENCODING, entries).map_err(other)?;
        self.send(&Uplink::Batch(Batch {
            epoch,
            first,
            last,
            encoding: PREFERRED_ENCODING,
            payload,
        }))
        .await?;
        loop {
            match self.recv().await? {
                Downlink::Ack { watermark, .. } => return Ok(watermark),
                Downlink::Refused { code, message } => {
                    return Err(other(format!("refused: {code:?}: {message}")));
                }
                _ => continue,
            }
        }
    }

    /// Reads until a refusal and returns its code; then the hub must close.
    pub async fn refusal(&mut self) -> Result<RefusalCode, ClientError> {
        loop {
            if let Downlink::Refused { code, .. } = self.recv().await? {
                return Ok(code);
            }
        }
    }
}

/// A hello of this protocol version for `node` and `epoch`.
pub fn hello(node: &str, epoch: StoreEpoch) -> Hello {
    Hello {
        protocol_version: PROTOCOL_VERSION,
        node: node.to_owned(),
        epoch,
        boot: BootId([9; 16]),
        agent_version: "test".to_owned(),
        first_unacked: 0,
        durable_end: 0,
    }
}

/// `GET path` over HTTPS with an optional bearer token: (status, body).
pub async fn api_get(
    addr: SocketAddr,
    config: &Arc<ClientConfig>,
    token: Option<&str>,
    path: &str,
) -> Result<(u16, Vec<u8>), ClientError> {
    api_request(addr, config, token, "GET", path, None).await
}

/// `METHOD path` over HTTPS with an optional bearer token and JSON body: (status, body).
pub async fn api_request(
    addr: SocketAddr,
    config: &Arc<ClientConfig>,
    token: Option<&str>,
    method: &str,
    path: &str,
    body: Option<&serde_json::Value>,
) -> Result<(u16, Vec<u8>), ClientError> {
    let stream = tls(addr, config).await?;
    let (mut sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(stream))
        .await
        .map_err(other)?;
    tokio::spawn(conn);
    let mut request = hyper::Request::builder()
        .method(method)
        .uri(path)
        .header("host", format!("localhost:{}", addr.port()));
    if let Some(token) = token {
        request = request.header("authorization", format!("Bearer {token}"));
    }
    if body.is_some() {
        request = request.header("content-type", "application/json");
    }
    let bytes = body.map(|b| b.to_string().into_bytes()).unwrap_or_default();
    let request = request
        .body(http_body_util::Full::new(hyper::body::Bytes::from(bytes)))
        .map_err(other)?;
    let exchange = async {
        let response = sender.send_request(request).await.map_err(other)?;
        let status = response.status().as_u16();
        let body = response
            .into_body()
            .collect()
            .await
            .map_err(other)?
            .to_bytes();
        Ok::<_, ClientError>((status, body.to_vec()))
    };
    tokio::time::timeout(DEADLINE, exchange)
        .await
        .map_err(|_| ClientError::Deadline(DEADLINE))?
}

/// `GET path` over HTTPS with a bearer token, answered as soon as the head arrives: the
/// response with its body still streaming (to read slowly, or to drop part way).
pub async fn api_get_streaming(
    addr: SocketAddr,
    config: &Arc<ClientConfig>,
    token: &str,
    path: &str,
) -> Result<hyper::Response<hyper::body::Incoming>, ClientError> {
    let stream = tls(addr, config).await?;
    let (mut sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(stream))
        .await
        .map_err(other)?;
    tokio::spawn(conn);
    let request = hyper::Request::builder()
        .method("GET")
        .uri(path)
        .header("host", format!("localhost:{}", addr.port()))
        .header("authorization", format!("Bearer {token}"))
        .body(http_body_util::Empty::<hyper::body::Bytes>::new())
        .map_err(other)?;
    tokio::time::timeout(DEADLINE, sender.send_request(request))
        .await
        .map_err(|_| ClientError::Deadline(DEADLINE))?
        .map_err(other)
}

/// A hub started from its binary (`aloft-hub run --listen 127.0.0.1:0`).
#[derive(Debug)]
pub struct HubProcess {
    child: Option<Child>,
    /// Where it listens.
    pub addr: SocketAddr,
    /// Its data directory.
    pub data: PathBuf,
}

/// The secrets `aloft-hub init` wrote to files.
#[derive(Debug, Clone)]
pub struct InitTokens {
    /// The admin token.
    pub admin: String,
    /// The first node's token.
    pub node: String,
}

impl HubProcess {
    /// Runs `aloft-hub init --data DATA --node NODE` with token files; returns the tokens.
    pub fn init(bin: &Path, data: &Path, node: &str) -> Result<InitTokens, ClientError> {
        let parent = data.parent().unwrap_or(data);
        let admin_file = parent.join(format!("{node}.admin.token"));
        let node_file = parent.join(format!("{node}.node.token"));
        let output = Command::new(bin)
            .arg("init")
            .arg("--data")
            .arg(data)
            .args(["--node", node])
            .arg("--admin-token-file")
            .arg(&admin_file)
            .arg("--node-token-file")
            .arg(&node_file)
            .stdin(Stdio::null())
            .output()
            .map_err(other)?;
        if !output.status.success() {
            return Err(other(format!(
                "init failed: {}",
                String::from_utf8_lossy(&output.stderr)
            )));
        }
        let read = |p: &Path| {
            std::fs::read_to_string(p)
                .map(|s| s.trim().to_owned())
                .map_err(other)
        };
        Ok(InitTokens {
            admin: read(&admin_file)?,
            node: read(&node_file)?,
        })
    }

    /// Starts `aloft-hub run` on a free loopback port and waits for its listening line.
    pub fn start(bin: &Path, data: &Path) -> Result<HubProcess, ClientError> {
        HubProcess::start_with(bin, data, &[])
    }

    /// [`HubProcess::start`] with more `run` flags (`--header-timeout 1s`, ...).
    pub fn start_with(bin: &Path, data: &Path, flags: &[&str]) -> Result<HubProcess, ClientError> {
        let mut child = Command::new(bin)
            .arg("run")
            .arg("--data")
            .arg(data)
            .args(["--listen", "127.0.0.1:0"])
            .args(flags)
            // Quiet unless asked: tests print the hub's log only when RUST_LOG says so.
            .env(
                "RUST_LOG",
                std::env::var("RUST_LOG").unwrap_or_else(|_| "warn".to_owned()),
            )
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .spawn()
            .map_err(other)?;
        let stdout = child.stdout.take().ok_or_else(|| other("no stdout"))?;
        let (tx, rx) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            let mut lines = std::io::BufReader::new(stdout).lines();
            let first = lines.next();
            let _ = tx.send(first);
            // Keep draining so the hub never blocks on a full pipe.
            for _ in lines {}
        });
        let mut process = HubProcess {
            child: Some(child),
            addr: SocketAddr::from(([127, 0, 0, 1], 0)),
            data: data.to_owned(),
        };
        let line = match rx.recv_timeout(DEADLINE) {
            Ok(Some(Ok(line))) => line,
            Ok(_) => return Err(other("the hub exited before listening")),
            Err(_) => return Err(ClientError::Deadline(DEADLINE)),
        };
        process.addr = line
            .strip_prefix("aloft-hub listening on ")
            .and_then(|a| a.trim().parse().ok())
            .ok_or_else(|| other(format!("unexpected first line {line:?}")))?;
        Ok(process)
    }

    /// The process id, while it runs.
    pub fn pid(&self) -> Option<u32> {
        self.child.as_ref().map(Child::id)
    }

    /// The CA certificate file.
    pub fn ca_file(&self) -> PathBuf {
        self.data.join(crate::pki::CA_CERT)
    }

    /// Sends SIGTERM and waits (with a deadline) for the exit; its status.
    pub fn stop(mut self) -> Result<std::process::ExitStatus, ClientError> {
        let Some(mut child) = self.child.take() else {
            return Err(other("already stopped"));
        };
        let pid = libc::pid_t::try_from(child.id()).map_err(other)?;
        // SAFETY: kill(2) with a pid of our own child and a valid signal number.
        unsafe {
            libc::kill(pid, libc::SIGTERM);
        }
        let deadline = std::time::Instant::now() + DEADLINE;
        loop {
            if let Some(status) = child.try_wait().map_err(other)? {
                return Ok(status);
            }
            if std::time::Instant::now() > deadline {
                let _ = child.kill();
                return Err(ClientError::Deadline(DEADLINE));
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

impl Drop for HubProcess {
    fn drop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}
