//! The local endpoint: `GET /metrics` (Prometheus text) and `GET /status` (JSON for
//! `aloft-agent status`), a minimal HTTP/1.1 server on tokio written here (two routes do
//! not justify hyper's weight in a 10 MB agent).
//!
//! Invariants: a client can never stall the agent or other clients. Each connection is its
//! own task; the request head is bounded ([`MAX_REQUEST_BYTES`]) and must arrive within
//! [`REQUEST_TIMEOUT`], the answer must be taken within [`RESPONSE_TIMEOUT`]; at most
//! [`MAX_CONNECTIONS`] are served at once and further ones are closed at accept. Every
//! answer closes the connection (no keep-alive state to hold).

use std::future::Future;
use std::io;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::Semaphore;

use crate::metrics::Metrics;
use crate::status::StatusReport;

/// Largest request head accepted, bytes.
pub const MAX_REQUEST_BYTES: usize = 8 * 1024;
/// Time a client has to send its request head.
pub const REQUEST_TIMEOUT: Duration = Duration::from_secs(5);
/// Time a client has to take the answer.
pub const RESPONSE_TIMEOUT: Duration = Duration::from_secs(5);
/// Connections served at once.
pub const MAX_CONNECTIONS: usize = 32;

/// Input still taken from a client whose request was too large, so the refusal reaches it.
const LINGER_BYTES: usize = 64 * 1024;

/// What `GET /status` answers with, made at request time.
pub type StatusSource = Arc<dyn Fn() -> StatusReport + Send + Sync>;

/// Binds the endpoint's listener (`MetricsConfig::listen`, loopback by default).
pub async fn bind(addr: SocketAddr) -> io::Result<TcpListener> {
    TcpListener::bind(addr).await
}

/// Serves `/metrics` and `/status` on `listener` until `shutdown` completes.
pub async fn serve(
    listener: TcpListener,
    metrics: Arc<Metrics>,
    status: StatusSource,
    shutdown: impl Future<Output = ()>,
) {
    let slots = Arc::new(Semaphore::new(MAX_CONNECTIONS));
    tokio::pin!(shutdown);
    if let Ok(addr) = listener.local_addr() {
        tracing::info!(%addr, "Metrics and status endpoint listening.");
    }
    loop {
        let accepted = tokio::select! {
            () = &mut shutdown => return,
            a = listener.accept() => a,
        };
        let (stream, peer) = match accepted {
            Ok(a) => a,
            Err(error) => {
                // Out of descriptors or a reset before accept: the next accept may work;
                // a short pause keeps an EMFILE storm from spinning a core.
                tracing::warn!(%error, "Endpoint accept failed.");
                tokio::time::sleep(Duration::from_millis(100)).await;
                continue;
            }
        };
        let Ok(slot) = Arc::clone(&slots).try_acquire_owned() else {
            tracing::debug!(%peer, "Endpoint busy; connection closed.");
            continue;
        };
        let metrics = Arc::clone(&metrics);
        let status = Arc::clone(&status);
        tokio::spawn(async move {
            if let Err(error) = answer(stream, &metrics, &status).await {
                tracing::debug!(%peer, %error, "Endpoint client dropped.");
            }
            drop(slot);
        });
    }
}

#[derive(Debug, thiserror::Error)]
enum ConnectionError {
    #[error("request not complete within the timeout")]
    Timeout,
    #[error(transparent)]
    Io(#[from] io::Error),
}

async fn answer(
    mut stream: TcpStream,
    metrics: &Metrics,
    status: &StatusSource,
) -> Result<(), ConnectionError> {
    let mut head = Vec::with_capacity(512);
    let complete = tokio::time::timeout(REQUEST_TIMEOUT, read_head(&mut stream, &mut head))
        .await
        .map_err(|_| ConnectionError::Timeout)??;
    let (code, content_type, body) = if !complete {
        (431, "text/plain", "request head too large\n".to_owned())
    } else {
        route(&head, metrics, status)
    };
    let reason = match code {
        200 => "OK",
        400 => "Bad Request",
        404 => "Not Found",
        405 => "Method Not Allowed",
        431 => "Request Header Fields Too Large",
        _ => "Internal Server Error",
    };
    let response = format!(
        "HTTP/1.1 {code} {reason}\r\nContent-Type: {content_type}\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    );
    tokio::time::timeout(RESPONSE_TIMEOUT, async {
        stream.write_all(response.as_bytes()).await?;
        stream.shutdown().await?;
        if !complete {
            // Closing with unread input sends a reset that can destroy the answer before
            // the client reads it: take (boundedly) what it is still sending first.
            let mut sink = [0u8; 4096];
            let mut left = LINGER_BYTES;
            while left > 0 {
                match stream.read(&mut sink).await? {
                    0 => break,
                    n => left = left.saturating_sub(n),
                }
            }
        }
        Ok::<(), io::Error>(())
    })
    .await
    .map_err(|_| ConnectionError::Timeout)??;
    Ok(())
}

/// Reads until the blank line ending the head; `false` when the limit came first.
async fn read_head(stream: &mut TcpStream, head: &mut Vec<u8>) -> io::Result<bool> {
    let mut buf = [0u8; 1024];
    loop {
        let n = stream.read(&mut buf).await?;
        if n == 0 {
            return Err(io::ErrorKind::UnexpectedEof.into());
        }
        let searched_from = head.len().saturating_sub(3);
        head.extend_from_slice(&buf[..n]);
        if head[searched_from..].windows(4).any(|w| w == b"\r\n\r\n") {
            return Ok(true);
        }
        if head.len() > MAX_REQUEST_BYTES {
            return Ok(false);
        }
    }
}

fn route(head: &[u8], metrics: &Metrics, status: &StatusSource) -> (u16, &'static str, String) {
    let line = head.split(|&b| b == b'\r').next().unwrap_or_default();
    let mut parts = line.split(|&b| b == b' ');
    let (Some(method), Some(target), Some(version)) = (parts.next(), parts.next(), parts.next())
    else {
        return (400, "text/plain", "bad request line\n".into());
    };
    if !version.starts_with(b"HTTP/1.") {
        return (400, "text/plain", "HTTP/1.x only\n".into());
    }
    // A query string does not change the answer (Prometheus may add one).
    let path = target.split(|&b| b == b'?').next().unwrap_or_default();
    match (method, path) {
        (b"GET", b"/metrics") => (
            200,
            "text/plain; version=0.0.4; charset=utf-8",
            metrics.render(),
        ),
        (b"GET", b"/status") => match serde_json::to_string(&status()) {
            Ok(json) => (200, "application/json", json),
            // Only non-finite floats could fail; say so rather than serve half a document.
            Err(e) => (500, "text/plain", format!("status not encodable: {e}\n")),
        },
        (b"GET", _) => (404, "text/plain", "not found\n".into()),
        _ => (405, "text/plain", "GET only\n".into()),
    }
}
