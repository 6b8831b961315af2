//! A node watch (`GET /api/v1/nodes/{node}?watch=true`) against the hub run from its binary
//! and a node session sending health reports: a report that says something new (the GNSS
//! dynamic model, the store's fill by a whole percent) is a `MODIFIED`; one that only moves
//! the time or the store's bytes within a percent is not.

#![allow(clippy::unwrap_used)] // A test harness: a failed setup step should stop the test loudly.

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use aloft_hub::testing::{HubProcess, NodeClient, api_get, api_request, client_config, hello};
use aloft_protocol::sync::{Downlink, GnssModel, NodeHealth, Uplink};
use aloft_protocol::{SensorId, StoreEpoch, TimeSource, Timestamp};
use rustls::ClientConfig;
use rustls_pki_types::ServerName;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio_rustls::TlsConnector;
use tokio_rustls::client::TlsStream;

const BIN: &str = env!("CARGO_BIN_EXE_aloft-hub");
const DEADLINE: Duration = Duration::from_secs(15);
const T0: i64 = 1_790_000_000_000_000_000;
const CAP: u64 = 1 << 30;

fn health(at_s: u64, store_bytes: u64, code: u8) -> Uplink {
    Uplink::Health(NodeHealth {
        time: Timestamp::with_utc(
            at_s * 1_000_000_000,
            T0 + i64::try_from(at_s).unwrap() * 1_000_000_000,
            TimeSource::Gnss,
        ),
        clock_trusted: Some(true),
        store_bytes,
        store_max_bytes: CAP,
        store_policy: "decimate".into(),
        gnss_models: vec![GnssModel {
            sensor: SensorId(0),
            code,
        }],
        power: None,
    })
}

/// Sends `message` and waits until the hub has handled it (it answers a ping after it).
async fn send_handled(client: &mut NodeClient, message: &Uplink, nonce: u64) {
    client.send(message).await.unwrap();
    client.send(&Uplink::Ping { nonce }).await.unwrap();
    loop {
        if client.recv().await.unwrap() == (Downlink::Pong { nonce }) {
            return;
        }
    }
}

/// Reads the watch until `needle` has arrived; everything read so far.
async fn read_until(
    stream: &mut TlsStream<tokio::net::TcpStream>,
    all: &mut Vec<u8>,
    needle: &str,
) {
    let mut buf = [0u8; 4096];
    while !String::from_utf8_lossy(all).contains(needle) {
        let n = tokio::time::timeout(DEADLINE, stream.read(&mut buf))
            .await
            .unwrap_or_else(|_| panic!("no {needle:?} in time: {}", String::from_utf8_lossy(all)))
            .unwrap();
        assert!(
            n > 0,
            "closed before {needle:?}: {}",
            String::from_utf8_lossy(all)
        );
        all.extend_from_slice(&buf[..n]);
    }
}

/// The hub's count of watch re-reads.
async fn watch_reads(hub: &HubProcess, tls: &Arc<ClientConfig>, token: &str) -> u64 {
    let (status, body) = api_get(hub.addr, tls, Some(token), "/metrics")
        .await
        .unwrap();
    assert_eq!(status, 200);
    let text = String::from_utf8(body).unwrap();
    text.lines()
        .find_map(|l| l.strip_prefix("aloft_hub_watch_reads_total "))
        .and_then(|v| v.trim().parse().ok())
        .unwrap_or_else(|| panic!("no aloft_hub_watch_reads_total in {text}"))
}

/// Makes the node watch re-read now (another node created wakes node watches) and waits
/// until it has: whatever the watched node's state then differs in is reported.
async fn reread(hub: &HubProcess, tls: &Arc<ClientConfig>, token: &str, other: &str) {
    let before = watch_reads(hub, tls, token).await;
    let body = serde_json::json!({"metadata": {"name": other}});
    let (status, _) = api_request(
        hub.addr,
        tls,
        Some(token),
        "POST",
        "/api/v1/nodes",
        Some(&body),
    )
    .await
    .unwrap();
    assert_eq!(status, 201);
    let deadline = tokio::time::Instant::now() + DEADLINE;
    while watch_reads(hub, tls, token).await <= before {
        assert!(
            tokio::time::Instant::now() < deadline,
            "no watch re-read in time"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

async fn open_watch(
    hub: &HubProcess,
    tls: &Arc<ClientConfig>,
    token: &str,
) -> TlsStream<tokio::net::TcpStream> {
    let tcp = tokio::net::TcpStream::connect(hub.addr).await.unwrap();
    let mut stream = TlsConnector::from(tls.clone())
        .connect(ServerName::try_from("localhost").unwrap(), tcp)
        .await
        .unwrap();
    let request = format!(
        "GET /api/v1/nodes/glider?watch=true&timeoutSeconds=60 HTTP/1.1\r\nHost: localhost\r\nAuthorization: Bearer {token}\r\n\r\n"
    );
    stream.write_all(request.as_bytes()).await.unwrap();
    stream
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_node_watch_reports_health_that_says_something_new_and_not_the_time_alone() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("hub");
    let tokens = HubProcess::init(Path::new(BIN), &data, "glider").unwrap();
    let hub = HubProcess::start(Path::new(BIN), &data).unwrap();
    let tls = client_config(&hub.ca_file()).unwrap();

    let mut node = NodeClient::connect(hub.addr, &tls, &tokens.node)
        .await
        .unwrap();
    node.hello(hello("glider", StoreEpoch([0x42; 16])))
        .await
        .unwrap();
    // 10.2 % full, airborne < 2 g.
    send_handled(&mut node, &health(1, CAP / 1000 * 102, 7), 1).await;
    let (status, body) = api_get(hub.addr, &tls, Some(&tokens.admin), "/api/v1/nodes/glider")
        .await
        .unwrap();
    assert_eq!(status, 200);
    let shown: aloft_api::Node = serde_json::from_slice(&body).unwrap();
    let shown = shown.status.health.unwrap();
    assert_eq!(shown.store.percent, Some(10.2));
    assert_eq!(shown.gnss_models[0].model.as_deref(), Some("airborne2g"));

    let mut watch = open_watch(&hub, &tls, &tokens.admin).await;
    let mut seen = Vec::new();
    read_until(&mut watch, &mut seen, "\"type\":\"ADDED\"").await;
    read_until(&mut watch, &mut seen, "\"model\":\"airborne2g\"").await;

    // Later, fuller within the same whole percent: nothing new for a watch.
    send_handled(&mut node, &health(2, CAP / 1000 * 105, 7), 2).await;
    reread(&hub, &tls, &tokens.admin, "other-1").await;
    // The receiver fell back to portable: new.
    send_handled(&mut node, &health(3, CAP / 1000 * 106, 0), 3).await;
    read_until(&mut watch, &mut seen, "\"model\":\"portable\"").await;
    // Later again, same fill percent and model: nothing new.
    send_handled(&mut node, &health(4, CAP / 1000 * 107, 0), 4).await;
    reread(&hub, &tls, &tokens.admin, "other-2").await;
    // Past 11 %: new.
    send_handled(&mut node, &health(5, CAP / 1000 * 113, 0), 5).await;
    read_until(&mut watch, &mut seen, "\"percent\":11.3").await;

    let text = String::from_utf8_lossy(&seen);
    assert_eq!(text.matches("\"type\":\"ADDED\"").count(), 1, "{text}");
    assert_eq!(text.matches("\"type\":\"MODIFIED\"").count(), 2, "{text}");
    assert!(!text.contains("\"percent\":10.5"), "{text}");
    assert!(!text.contains("\"percent\":10.7"), "{text}");
    drop(watch);
    hub.stop().unwrap();
}
