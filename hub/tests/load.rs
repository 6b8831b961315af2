//! A hub run from its binary with small bounds drops slow and idle clients, refuses
//! connections and watches over their bounds and counts each at `GET /metrics`, while a node
//! session and a watch live on past the header deadline.

#![allow(clippy::unwrap_used)] // A test harness: a failed setup step should stop the test loudly.

use std::net::{IpAddr, SocketAddr};
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use aloft_hub::testing::{
    HubProcess, InitTokens, NodeClient, api_get, api_request, client_config, hello,
};
use aloft_protocol::{Quality, Quantity, Reading, Record, SensorId, StoreEpoch, Timestamp};
use rustls::ClientConfig;
use rustls_pki_types::ServerName;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpSocket;
use tokio_rustls::TlsConnector;
use tokio_rustls::client::TlsStream;

const BIN: &str = env!("CARGO_BIN_EXE_aloft-hub");
/// Far above the bounds under test: a closed connection must be seen well before it.
const DEADLINE: Duration = Duration::from_secs(15);

fn start(flags: &[&str]) -> (tempfile::TempDir, HubProcess, InitTokens, Arc<ClientConfig>) {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("hub");
    let tokens = HubProcess::init(Path::new(BIN), &data, "glider").unwrap();
    let hub = HubProcess::start_with(Path::new(BIN), &data, flags).unwrap();
    let tls = client_config(&hub.ca_file()).unwrap();
    (dir, hub, tokens, tls)
}

/// A TCP connection from `source` (any 127.0.0.0/8 address is loopback), not yet TLS.
async fn tcp_from(source: IpAddr, hub: SocketAddr) -> tokio::net::TcpStream {
    let socket = TcpSocket::new_v4().unwrap();
    socket.bind(SocketAddr::new(source, 0)).unwrap();
    socket.connect(hub).await.unwrap()
}

async fn tls_from(
    source: IpAddr,
    hub: SocketAddr,
    config: &Arc<ClientConfig>,
) -> std::io::Result<TlsStream<tokio::net::TcpStream>> {
    let tcp = tcp_from(source, hub).await;
    TlsConnector::from(config.clone())
        .connect(ServerName::try_from("localhost").unwrap(), tcp)
        .await
}

const LOCAL: IpAddr = IpAddr::V4(std::net::Ipv4Addr::new(127, 0, 0, 1));
const OTHER: IpAddr = IpAddr::V4(std::net::Ipv4Addr::new(127, 0, 0, 2));

/// Reads until the hub closes the connection; the bytes read. Panics past [`DEADLINE`].
async fn read_until_closed(stream: &mut TlsStream<tokio::net::TcpStream>) -> Vec<u8> {
    let mut all = Vec::new();
    let mut buf = [0u8; 4096];
    loop {
        match tokio::time::timeout(DEADLINE, stream.read(&mut buf)).await {
            Err(_) => panic!("the hub kept the connection open past {DEADLINE:?}"),
            Ok(Ok(0) | Err(_)) => return all,
            Ok(Ok(n)) => all.extend_from_slice(&buf[..n]),
        }
    }
}

/// Reads until `needle` has arrived; what was read.
async fn read_until(stream: &mut TlsStream<tokio::net::TcpStream>, needle: &str) -> String {
    let mut all = Vec::new();
    let mut buf = [0u8; 4096];
    while !String::from_utf8_lossy(&all).contains(needle) {
        let n = tokio::time::timeout(DEADLINE, stream.read(&mut buf))
            .await
            .expect("no answer in time")
            .unwrap();
        assert!(
            n > 0,
            "closed before {needle:?} arrived: {}",
            String::from_utf8_lossy(&all)
        );
        all.extend_from_slice(&buf[..n]);
    }
    String::from_utf8_lossy(&all).into_owned()
}

async fn metric(hub: SocketAddr, tls: &Arc<ClientConfig>, admin: &str, line: &str) -> u64 {
    let (status, body) = api_get(hub, tls, Some(admin), "/metrics").await.unwrap();
    assert_eq!(status, 200);
    let text = String::from_utf8(body).unwrap();
    text.lines()
        .find_map(|l| l.strip_prefix(line).map(|v| v.trim().parse().unwrap()))
        .unwrap_or_else(|| panic!("no {line} in {text}"))
}

fn watch_request(token: &str) -> String {
    format!(
        "GET /api/v1/events?watch=true&timeoutSeconds=60 HTTP/1.1\r\nHost: localhost\r\nAuthorization: Bearer {token}\r\n\r\n"
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn slow_and_idle_clients_are_dropped_but_sessions_and_watches_live_on() {
    let (_dir, hub, tokens, tls) = start(&["--header-timeout", "1s", "--handshake-timeout", "1s"]);
    let addr = hub.addr;

    // A node session and a watch, open before the slow clients come.
    let mut node = NodeClient::connect(addr, &tls, &tokens.node).await.unwrap();
    let epoch = StoreEpoch([0x10; 16]);
    node.hello(hello("glider", epoch)).await.unwrap();
    let mut watch = tls_from(LOCAL, addr, &tls).await.unwrap();
    watch
        .write_all(watch_request(&tokens.admin).as_bytes())
        .await
        .unwrap();
    read_until(&mut watch, "200 OK").await;

    // A client trickling its request head, one header line at a time.
    let mut slow = tls_from(LOCAL, addr, &tls).await.unwrap();
    slow.write_all(b"GET /healthz HTTP/1.1\r\nHost: localhost\r\n")
        .await
        .unwrap();
    let trickle = async {
        for i in 0.. {
            tokio::time::sleep(Duration::from_millis(200)).await;
            if slow
                .write_all(format!("X-Slow-{i}: y\r\n").as_bytes())
                .await
                .is_err()
            {
                break;
            }
            if i > 100 {
                panic!("the hub kept reading a trickled head for 20 s");
            }
        }
    };
    tokio::time::timeout(DEADLINE * 2, trickle).await.unwrap();

    // A keep-alive that goes idle after one answer.
    let mut idle = tls_from(LOCAL, addr, &tls).await.unwrap();
    idle.write_all(b"GET /healthz HTTP/1.1\r\nHost: localhost\r\n\r\n")
        .await
        .unwrap();
    let answered = String::from_utf8(read_until_closed(&mut idle).await).unwrap();
    assert!(answered.starts_with("HTTP/1.1 200"), "{answered}");

    // A connection that never starts its TLS handshake.
    let mut silent = tcp_from(LOCAL, addr).await;
    let mut buf = [0u8; 16];
    let n = tokio::time::timeout(DEADLINE, silent.read(&mut buf))
        .await
        .expect("the hub kept a silent connection open")
        .unwrap_or(0);
    assert_eq!(n, 0);

    // The session and the watch outlived the deadlines: the node still syncs, and a change
    // still reaches the watch.
    let entries: Vec<(u64, Record)> = (0..5)
        .map(|s| {
            (
                s,
                Record::Reading(Reading {
                    sensor: SensorId(1),
                    quantity: Quantity::AirPressure,
                    time: Timestamp::monotonic(s),
                    value: 1.0,
                    quality: Quality::GOOD,
                }),
            )
        })
        .collect();
    assert_eq!(node.batch(epoch, 0, 4, &entries).await.unwrap(), 4);
    let (status, body) = api_request(
        addr,
        &tls,
        Some(&tokens.admin),
        "POST",
        "/api/v1/tokens",
        Some(&serde_json::json!({"spec": {"role": "viewer", "description": "seen by the watch"}})),
    )
    .await
    .unwrap();
    assert_eq!(status, 201);
    let created: serde_json::Value = serde_json::from_slice(&body).unwrap();
    let id = created["metadata"]["name"].as_str().unwrap();
    read_until(&mut watch, id).await;

    assert!(
        metric(
            addr,
            &tls,
            &tokens.admin,
            "aloft_hub_connections_closed_total{reason=\"header_timeout\"}"
        )
        .await
            >= 2
    );
    assert!(
        metric(
            addr,
            &tls,
            &tokens.admin,
            "aloft_hub_connections_closed_total{reason=\"handshake_timeout\"}"
        )
        .await
            >= 1
    );
    assert_eq!(
        metric(addr, &tls, &tokens.admin, "aloft_hub_sessions_connected").await,
        1
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn connections_and_watches_over_their_bounds_are_refused_and_counted() {
    let (_dir, hub, tokens, tls) = start(&[
        "--max-connections",
        "6",
        "--max-connections-per-peer",
        "4",
        "--max-watches-per-token",
        "2",
    ]);
    let addr = hub.addr;
    let mut held = Vec::new();
    for _ in 0..4 {
        held.push(tls_from(LOCAL, addr, &tls).await.unwrap());
    }
    // The fifth from one address is closed before its handshake.
    assert!(tls_from(LOCAL, addr, &tls).await.is_err());
    // Another address still gets in, up to the total.
    for _ in 0..2 {
        held.push(tls_from(OTHER, addr, &tls).await.unwrap());
    }
    assert!(tls_from(OTHER, addr, &tls).await.is_err());
    // Close them and wait for the hub's end of each; the hub frees a place a moment after
    // it closes, so a connection right after may still be refused: such refusals are
    // counted here and in the totals below.
    for mut stream in held {
        let _ = stream.shutdown().await;
        read_until_closed(&mut stream).await;
    }
    let mut refused_while_freeing = 0;
    let deadline = tokio::time::Instant::now() + DEADLINE;
    let mut first = loop {
        match tls_from(LOCAL, addr, &tls).await {
            Ok(stream) => break Some(stream),
            Err(_) => {
                refused_while_freeing += 1;
                assert!(
                    tokio::time::Instant::now() < deadline,
                    "the closed connections kept their places"
                );
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
        }
    };

    // Watches: two per token; the third is refused with a Status 429.
    let mut watches = Vec::new();
    for _ in 0..2 {
        let mut w = match first.take() {
            Some(stream) => stream,
            None => tls_from(LOCAL, addr, &tls).await.unwrap(),
        };
        w.write_all(watch_request(&tokens.admin).as_bytes())
            .await
            .unwrap();
        read_until(&mut w, "200 OK").await;
        watches.push(w);
    }
    let (status, body) = wait_for_place(addr, &tls, &tokens.admin).await;
    assert_eq!(status, 429, "{}", String::from_utf8_lossy(&body));
    let refusal: serde_json::Value = serde_json::from_slice(&body).unwrap();
    assert_eq!(refusal["kind"], "Status");
    assert_eq!(refusal["reason"], "TooManyRequests");
    // A place comes back when a watch ends.
    drop(watches.pop());
    let deadline = tokio::time::Instant::now() + DEADLINE;
    loop {
        let mut w = tls_from(LOCAL, addr, &tls).await.unwrap();
        w.write_all(watch_request(&tokens.admin).as_bytes())
            .await
            .unwrap();
        let head = read_until(&mut w, "\r\n").await;
        if head.contains("200 OK") {
            break;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "the ended watch kept its place"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }

    let peer_limit = metric(
        addr,
        &tls,
        &tokens.admin,
        "aloft_hub_connections_refused_total{reason=\"peer_limit\"}",
    )
    .await;
    let total_limit = metric(
        addr,
        &tls,
        &tokens.admin,
        "aloft_hub_connections_refused_total{reason=\"total_limit\"}",
    )
    .await;
    assert!(
        peer_limit >= 1 && total_limit >= 1,
        "{peer_limit} {total_limit}"
    );
    assert_eq!(peer_limit + total_limit, 2 + refused_while_freeing);
    assert!(metric(addr, &tls, &tokens.admin, "aloft_hub_watches_refused_total").await >= 1);
}

/// A third watch of the token: (status, body).
async fn wait_for_place(addr: SocketAddr, tls: &Arc<ClientConfig>, token: &str) -> (u16, Vec<u8>) {
    api_get(
        addr,
        tls,
        Some(token),
        "/api/v1/events?watch=true&timeoutSeconds=1",
    )
    .await
    .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn open_watches_read_nothing_while_nothing_changes() {
    let (_dir, hub, tokens, tls) = start(&[]);
    let addr = hub.addr;
    let mut watches = Vec::new();
    for path in ["/api/v1/sensors", "/api/v1/events", "/api/v1/commands"] {
        for _ in 0..10 {
            let mut w = tls_from(LOCAL, addr, &tls).await.unwrap();
            w.write_all(
                format!(
                    "GET {path}?watch=true&timeoutSeconds=60 HTTP/1.1\r\nHost: localhost\r\nAuthorization: Bearer {}\r\n\r\n",
                    tokens.admin
                )
                .as_bytes(),
            )
            .await
            .unwrap();
            read_until(&mut w, "200 OK").await;
            watches.push(w);
        }
    }
    let before = metric(addr, &tls, &tokens.admin, "aloft_hub_watch_reads_total").await;
    // Nothing changes for a while: no node, no command, no event. Waiting is the test.
    tokio::time::sleep(Duration::from_secs(3)).await;
    let after = metric(addr, &tls, &tokens.admin, "aloft_hub_watch_reads_total").await;
    // At most each watch's own first read, if it had not happened yet at `before`.
    assert!(
        after - before <= watches.len() as u64,
        "{} reads by {} idle watches in 3 s",
        after - before,
        watches.len()
    );
    assert_eq!(
        metric(addr, &tls, &tokens.admin, "aloft_hub_watches_open").await,
        30
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_sensor_watch_wakes_on_the_nodes_live_update() {
    use aloft_protocol::SensorState;
    use aloft_protocol::sync::{BacklogReport, LiveUpdate, SensorReport, Uplink};
    let (_dir, hub, tokens, tls) = start(&[]);
    let addr = hub.addr;
    let mut w = tls_from(LOCAL, addr, &tls).await.unwrap();
    w.write_all(
        watch_request(&tokens.admin)
            .replace("/api/v1/events", "/api/v1/sensors")
            .as_bytes(),
    )
    .await
    .unwrap();
    read_until(&mut w, "200 OK").await;
    let mut node = NodeClient::connect(addr, &tls, &tokens.node).await.unwrap();
    node.hello(hello("glider", StoreEpoch([0x11; 16])))
        .await
        .unwrap();
    let update = |state: SensorState, readings: u64| {
        Uplink::Live(LiveUpdate {
            time: Timestamp::monotonic(1),
            readings: Vec::new(),
            sensors: vec![SensorReport {
                sensor: SensorId(1),
                name: "woken-sensor".to_owned(),
                kind: "ms5611".to_owned(),
                state,
                reason: String::new(),
                restarts: 0,
                last_restart: None,
                last_error: None,
                interval_ms: Some(100),
                enabled: true,
                readings,
            }],
            backlog: BacklogReport {
                records: 0,
                bytes: 0,
                oldest_age_s: None,
            },
        })
    };
    node.send(&update(SensorState::Running, 0)).await.unwrap();
    read_until(&mut w, "woken-sensor").await;
    let before = metric(addr, &tls, &tokens.admin, "aloft_hub_watch_reads_total").await;
    // Updates that change only the reading counts show nothing new: they wake no watch.
    // The one after them does, and is read once.
    for readings in 1..=20 {
        node.send(&update(SensorState::Running, readings))
            .await
            .unwrap();
    }
    node.send(&update(SensorState::Degraded, 21)).await.unwrap();
    read_until(&mut w, "Degraded").await;
    let after = metric(addr, &tls, &tokens.admin, "aloft_hub_watch_reads_total").await;
    assert_eq!(
        after - before,
        1,
        "re-reads for one change among 21 updates"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn watches_of_one_query_share_one_read_per_change() {
    let (_dir, hub, tokens, tls) = start(&[]);
    let addr = hub.addr;
    let create_token = || async {
        let body = serde_json::json!({ "spec": { "role": "viewer" } });
        let (status, answer) = api_request(
            addr,
            &tls,
            Some(&tokens.admin),
            "POST",
            "/api/v1/tokens",
            Some(&body),
        )
        .await
        .unwrap();
        assert!((200..300).contains(&status), "{status}");
        let answer: serde_json::Value = serde_json::from_slice(&answer).unwrap();
        answer["metadata"]["name"].as_str().unwrap().to_owned()
    };
    // An event to show, so that each watch's first read is seen to be done.
    let first = create_token().await;
    let mut watches = Vec::new();
    for _ in 0..20 {
        let mut w = tls_from(LOCAL, addr, &tls).await.unwrap();
        w.write_all(watch_request(&tokens.admin).as_bytes())
            .await
            .unwrap();
        read_until(&mut w, &first).await;
        watches.push(w);
    }
    let before = metric(addr, &tls, &tokens.admin, "aloft_hub_watch_reads_total").await;
    let second = create_token().await;
    for w in &mut watches {
        read_until(w, &second).await;
    }
    let after = metric(addr, &tls, &tokens.admin, "aloft_hub_watch_reads_total").await;
    assert_eq!(
        after - before,
        1,
        "re-reads by 20 watches of one query for one change"
    );
}
