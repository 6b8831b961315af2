//! The real `aloft-hub` under hostile clients while the real `aloft-agent` flies the
//! simulated flight and syncs to it over loopback: clients trickling their request heads,
//! idle keep-alives, connections that never start TLS, many watches (more than a token may
//! hold), and a second node's WebSocket sending oversized, malformed, text and raw garbage
//! frames. The node keeps syncing throughout, and at the end the hub's dump equals the
//! agent's store, as in tests/sync.rs.

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use aloft_tests::system::{
    Agent, AgentSetup, Flight, Hub, HubData, HubLink, SystemError, compare, store_dump,
    store_epoch, wait_until,
};
use futures_util::SinkExt;
use rustls::ClientConfig;
use rustls_pki_types::ServerName;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio_rustls::TlsConnector;
use tokio_rustls::client::TlsStream;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;

mod common;
use common::{other, tls_config};

const ACKED: &str = "aloft_uplink_records_acked_total";
const UNSENT: &str = "aloft_store_unsent_records";
/// Each kind of hostile client, this many at once.
const CLIENTS: usize = 40;

async fn tls(
    addr: SocketAddr,
    config: &Arc<ClientConfig>,
) -> std::io::Result<TlsStream<TcpStream>> {
    let tcp = TcpStream::connect(addr).await?;
    let name = ServerName::try_from("localhost").map_err(std::io::Error::other)?;
    TlsConnector::from(config.clone()).connect(name, tcp).await
}

/// Reads until the hub closes; whether it did within `within`.
async fn closed_within(stream: &mut (impl AsyncReadExt + Unpin), within: Duration) -> bool {
    let mut buf = [0u8; 4096];
    tokio::time::timeout(within, async {
        loop {
            match stream.read(&mut buf).await {
                Ok(0) | Err(_) => return,
                Ok(_) => {}
            }
        }
    })
    .await
    .is_ok()
}

/// What the hostile clients saw, counted.
#[derive(Default)]
struct Seen {
    slow_closed: AtomicU64,
    idle_closed: AtomicU64,
    silent_closed: AtomicU64,
    watches_open: AtomicU64,
    watches_refused: AtomicU64,
    frames_refused: AtomicU64,
}

async fn slow_header(addr: SocketAddr, config: Arc<ClientConfig>, seen: Arc<Seen>) {
    let Ok(mut stream) = tls(addr, &config).await else {
        return;
    };
    let _ = stream
        .write_all(b"GET /api/v1/nodes HTTP/1.1\r\nHost: localhost\r\n")
        .await;
    for i in 0..100 {
        tokio::time::sleep(Duration::from_millis(250)).await;
        if stream
            .write_all(format!("X-Trickle-{i}: y\r\n").as_bytes())
            .await
            .is_err()
        {
            seen.slow_closed.fetch_add(1, Ordering::Relaxed);
            return;
        }
    }
}

async fn idle_keep_alive(addr: SocketAddr, config: Arc<ClientConfig>, seen: Arc<Seen>) {
    let Ok(mut stream) = tls(addr, &config).await else {
        return;
    };
    let _ = stream
        .write_all(b"GET /healthz HTTP/1.1\r\nHost: localhost\r\n\r\n")
        .await;
    if closed_within(&mut stream, Duration::from_secs(20)).await {
        seen.idle_closed.fetch_add(1, Ordering::Relaxed);
    }
}

async fn silent(addr: SocketAddr, seen: Arc<Seen>) {
    let Ok(mut stream) = TcpStream::connect(addr).await else {
        return;
    };
    if closed_within(&mut stream, Duration::from_secs(20)).await {
        seen.silent_closed.fetch_add(1, Ordering::Relaxed);
    }
}

/// Opens a watch and holds it for `hold`.
async fn watch(
    addr: SocketAddr,
    config: Arc<ClientConfig>,
    token: String,
    path: &'static str,
    hold: Duration,
    seen: Arc<Seen>,
) {
    let Ok(mut stream) = tls(addr, &config).await else {
        return;
    };
    let request = format!(
        "GET {path}?watch=true&timeoutSeconds=60 HTTP/1.1\r\nHost: localhost\r\nAuthorization: Bearer {token}\r\n\r\n"
    );
    if stream.write_all(request.as_bytes()).await.is_err() {
        return;
    }
    let mut head = Vec::new();
    let mut buf = [0u8; 1024];
    while !head.windows(2).any(|w| w == b"\r\n") {
        match tokio::time::timeout(Duration::from_secs(10), stream.read(&mut buf)).await {
            Ok(Ok(n)) if n > 0 => head.extend_from_slice(&buf[..n]),
            _ => return,
        }
    }
    if head.starts_with(b"HTTP/1.1 200") {
        seen.watches_open.fetch_add(1, Ordering::Relaxed);
        let _ = tokio::time::timeout(hold, async {
            while matches!(stream.read(&mut buf).await, Ok(n) if n > 0) {}
        })
        .await;
    } else if head.starts_with(b"HTTP/1.1 429") {
        seen.watches_refused.fetch_add(1, Ordering::Relaxed);
    }
}

/// A node's WebSocket (the intruder's own token) sending one bad message; counts a refusal
/// or a close by the hub.
async fn bad_frames(
    addr: SocketAddr,
    config: Arc<ClientConfig>,
    token: String,
    which: usize,
    seen: Arc<Seen>,
) {
    let Ok(stream) = tls(addr, &config).await else {
        return;
    };
    let Ok(mut request) =
        format!("wss://localhost:{}/v1/nodes/connect", addr.port()).into_client_request()
    else {
        return;
    };
    let Ok(value) = format!("Bearer {token}").parse() else {
        return;
    };
    request.headers_mut().insert("authorization", value);
    let Ok((mut ws, _)) = tokio_tungstenite::client_async(request, stream).await else {
        return;
    };
    let message = match which % 4 {
        // Over the protocol's 1 MiB message cap.
        0 => Message::Binary(vec![0x5a; (1 << 20) + (256 << 10)].into()),
        // Not a protocol message.
        1 => Message::Binary(vec![0xff; 64].into()),
        // The protocol speaks binary only.
        2 => Message::Text("hello?".into()),
        // A message cut short.
        _ => Message::Binary(vec![0, 1].into()),
    };
    let _ = ws.send(message).await;
    let ended = tokio::time::timeout(Duration::from_secs(10), async {
        use futures_util::StreamExt;
        while let Some(Ok(m)) = ws.next().await {
            if matches!(m, Message::Close(_)) {
                break;
            }
        }
    })
    .await
    .is_ok();
    if ended {
        seen.frames_refused.fetch_add(1, Ordering::Relaxed);
    }
}

/// Raw bytes that are not a WebSocket frame, after a real upgrade.
async fn garbage_after_upgrade(addr: SocketAddr, config: Arc<ClientConfig>, token: String) {
    let Ok(mut stream) = tls(addr, &config).await else {
        return;
    };
    let request = format!(
        "GET /v1/nodes/connect HTTP/1.1\r\nHost: localhost\r\nConnection: Upgrade\r\nUpgrade: websocket\r\nSec-WebSocket-Version: 13\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nAuthorization: Bearer {token}\r\n\r\n"
    );
    let _ = stream.write_all(request.as_bytes()).await;
    let _ = stream.write_all(&[0xff; 4096]).await;
    let _ = closed_within(&mut stream, Duration::from_secs(10)).await;
}

/// Creates the intruder node through the API; its token.
fn create_intruder(
    addr: SocketAddr,
    config: &Arc<ClientConfig>,
    admin: &str,
) -> Result<String, SystemError> {
    let runtime = tokio::runtime::Runtime::new().map_err(other)?;
    runtime.block_on(async {
        let mut stream = tls(addr, config).await.map_err(other)?;
        let body = r#"{"metadata":{"name":"intruder"}}"#;
        let request = format!(
            "POST /api/v1/nodes HTTP/1.1\r\nHost: localhost\r\nAuthorization: Bearer {admin}\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
            body.len()
        );
        stream.write_all(request.as_bytes()).await.map_err(other)?;
        let mut answer = Vec::new();
        let _ = stream.read_to_end(&mut answer).await;
        let text = String::from_utf8_lossy(&answer);
        let json = text.split_once("\r\n\r\n").map(|(_, b)| b).unwrap_or_default();
        let value: serde_json::Value = serde_json::from_str(json).map_err(other)?;
        value
            .pointer("/status/token")
            .and_then(serde_json::Value::as_str)
            .map(str::to_owned)
            .ok_or_else(|| other(format!("no token in {text}")))
    })
}

#[test]
fn the_hub_under_hostile_clients_keeps_syncing_a_real_node() -> Result<(), SystemError> {
    let dir = tempfile::tempdir().map_err(other)?;
    let data = HubData::init(&dir.path().join("hub"))?;
    let hub = Hub::start_with(
        &data,
        "127.0.0.1:0",
        &[
            "--header-timeout",
            "1s",
            "--handshake-timeout",
            "1s",
            "--max-watches-per-token",
            "30",
        ],
    )?;
    let addr = hub.addr();
    let setup = AgentSetup::write(
        dir.path(),
        "agent",
        &dir.path().join("store"),
        &Flight {
            hub: Some(HubLink::through(addr, &data)),
            ..Flight::default()
        },
    )?;
    let agent = Agent::start(&setup)?;
    wait_until(
        "the agent's first acked records",
        Duration::from_secs(30),
        || agent.metric(ACKED).filter(|n| *n > 0.0),
    )?;
    let config = tls_config(&data.ca_file)?;
    let admin = data.admin_token()?;
    let intruder = create_intruder(addr, &config, &admin)?;

    let seen = Arc::new(Seen::default());
    let runtime = tokio::runtime::Runtime::new().map_err(other)?;
    let mut tasks = Vec::new();
    for i in 0..CLIENTS {
        let (c, s) = (config.clone(), seen.clone());
        tasks.push(runtime.spawn(slow_header(addr, c.clone(), s.clone())));
        tasks.push(runtime.spawn(idle_keep_alive(addr, c.clone(), s.clone())));
        tasks.push(runtime.spawn(silent(addr, s.clone())));
        let path = ["/api/v1/events", "/api/v1/commands", "/api/v1/sensors"][i % 3];
        tasks.push(runtime.spawn(watch(
            addr,
            c.clone(),
            admin.clone(),
            path,
            Duration::from_secs(8),
            s.clone(),
        )));
        tasks.push(runtime.spawn(bad_frames(addr, c.clone(), intruder.clone(), i, s)));
        if i % 10 == 0 {
            tasks.push(runtime.spawn(garbage_after_upgrade(addr, c, intruder.clone())));
        }
    }
    // The node keeps syncing while they are at it.
    let acked = agent.metric(ACKED).unwrap_or(0.0);
    wait_until(
        "more records acked under hostile load",
        Duration::from_secs(30),
        || agent.metric(ACKED).filter(|n| *n > acked + 100.0),
    )?;
    runtime.block_on(async {
        for task in tasks {
            let _ = task.await;
        }
    });
    let count = |a: &AtomicU64| a.load(Ordering::Relaxed) as usize;
    assert_eq!(count(&seen.slow_closed), CLIENTS, "slow heads dropped");
    assert_eq!(
        count(&seen.idle_closed),
        CLIENTS,
        "idle keep-alives dropped"
    );
    assert_eq!(
        count(&seen.silent_closed),
        CLIENTS,
        "silent connections dropped"
    );
    assert_eq!(
        count(&seen.watches_open),
        30,
        "watches up to the token's bound"
    );
    assert_eq!(
        count(&seen.watches_refused),
        CLIENTS - 30,
        "watches over it: 429"
    );
    assert_eq!(
        count(&seen.frames_refused),
        CLIENTS,
        "bad frames refused and closed"
    );

    // The end of every sync test: stop, drain what is unsent, compare the dumps.
    let mut agent_process = agent.into_process();
    agent_process.check_running()?;
    agent_process.terminate()?;
    let flown = store_dump(&setup.store)?;
    let drainer = Agent::start_draining(dir.path(), &setup.store, HubLink::through(addr, &data))?;
    wait_until(
        "the store to have nothing unsent",
        Duration::from_secs(30),
        || drainer.metric(UNSENT).filter(|n| *n == 0.0),
    )?;
    drainer.into_process().terminate()?;
    hub.into_process().terminate()?;
    let mut store = flown;
    for record in store_dump(&setup.store)? {
        if !store.iter().any(|r| r.seq == record.seq) {
            store.push(record);
        }
    }
    store.sort_by_key(|r| r.seq);
    let synced = compare(&data.dump()?, &store_epoch(&setup.store)?, &store)?;
    eprintln!("synced under hostile load: {synced:?}");
    Ok(())
}
