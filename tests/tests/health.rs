//! The node's health in the API, end to end: the real `aloft-agent` flies the simulated
//! flight (a simulated u-blox among its sensors) and syncs to the real `aloft-hub`, and
//! `GET /api/v1/nodes/glider-sim` shows `status.health` with the store's fill and the
//! dynamic model the receiver confirmed.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use aloft_api::{Node, NodeHealth};
use aloft_tests::system::{
    Agent, AgentSetup, Flight, Hub, HubData, HubLink, SystemError, wait_until,
};
use rustls::ClientConfig;
use rustls_pki_types::ServerName;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio_rustls::TlsConnector;

/// The simulated flight's node.
mod common;
use common::{other, tls_config};

const NODE: &str = "glider-sim";
/// The simulated flight's store cap (deploy/examples/sim.toml).
const STORE_MAX_BYTES: u64 = 268_435_456;

/// `GET path` with `token`; the status code and the body.
async fn api_get(
    addr: SocketAddr,
    config: &Arc<ClientConfig>,
    token: &str,
    path: &str,
) -> Result<(u16, String), SystemError> {
    let tcp = TcpStream::connect(addr).await.map_err(other)?;
    let name = ServerName::try_from("localhost").map_err(other)?;
    let mut stream = TlsConnector::from(config.clone())
        .connect(name, tcp)
        .await
        .map_err(other)?;
    let request = format!(
        "GET {path} HTTP/1.1\r\nHost: localhost\r\nAuthorization: Bearer {token}\r\nConnection: close\r\n\r\n"
    );
    stream.write_all(request.as_bytes()).await.map_err(other)?;
    let mut answer = Vec::new();
    // The hub may close without a TLS close_notify; what was read is the answer.
    let _ = stream.read_to_end(&mut answer).await;
    let text = String::from_utf8_lossy(&answer);
    let (head, body) = text
        .split_once("\r\n\r\n")
        .ok_or_else(|| other(format!("no HTTP answer: {text}")))?;
    let code = head
        .split(' ')
        .nth(1)
        .and_then(|c| c.parse().ok())
        .ok_or_else(|| other(format!("no status line: {head}")))?;
    Ok((code, body.to_owned()))
}

#[test]
fn a_node_shows_its_health_with_the_store_fill_and_the_receivers_dynamic_model()
-> Result<(), SystemError> {
    let dir = tempfile::tempdir().map_err(other)?;
    let data = HubData::init(&dir.path().join("hub"))?;
    let hub = Hub::start(&data)?;
    let setup = AgentSetup::write(
        dir.path(),
        "agent",
        &dir.path().join("store"),
        &Flight {
            hub: Some(HubLink::through(hub.addr(), &data)),
            ..Flight::default()
        },
    )?;
    let agent = Agent::start(&setup)?;
    let config = tls_config(&data.ca_file)?;
    let admin = data.admin_token()?;
    let runtime = tokio::runtime::Runtime::new().map_err(other)?;
    let path = format!("/api/v1/nodes/{NODE}");
    let mut last = String::new();
    // The receiver is set to its model at open; the store fills from the first commit.
    let health: NodeHealth = wait_until(
        "the node's health with a stored byte and the receiver's model",
        Duration::from_secs(60),
        || {
            let (code, body) = runtime
                .block_on(api_get(hub.addr(), &config, &admin, &path))
                .ok()?;
            last = format!("{code} {body}");
            let node: Node = serde_json::from_str(&body).ok()?;
            let health = node.status.health?;
            (health.store.bytes > 0 && !health.gnss_models.is_empty()).then_some(health)
        },
    )
    .map_err(|e| other(format!("{e}; the hub's last answer: {last}")))?;

    assert_eq!(health.store.max_bytes, STORE_MAX_BYTES, "{health:?}");
    assert_eq!(health.store.full_policy, "decimate", "{health:?}");
    let percent = health
        .store
        .percent
        .ok_or_else(|| other("no store percentage"))?;
    let expected = health.store.bytes as f64 * 100.0 / STORE_MAX_BYTES as f64;
    assert!((percent - expected).abs() <= 0.05, "{health:?}");
    let [gps] = health.gnss_models.as_slice() else {
        return Err(other(format!("one receiver expected: {health:?}")));
    };
    assert_eq!(gps.name.as_deref(), Some("gps"), "{health:?}");
    assert_eq!(gps.model.as_deref(), Some("airborne2g"), "{health:?}");
    assert_eq!(gps.code, 7, "{health:?}");
    assert!(health.received.is_some(), "{health:?}");
    assert!(health.mono_ns > 0, "{health:?}");
    assert!(!health.time_source.is_empty(), "{health:?}");
    eprintln!("health at the hub: {health:?}");

    agent.into_process().terminate()?;
    hub.into_process().terminate()?;
    Ok(())
}
