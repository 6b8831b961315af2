//! The uplink against a real TLS WebSocket peer on loopback: a minimal hub that speaks the
//! protocol (hello, welcome from its watermark, acks after "persisting", pongs), with a CA
//! made here by rcgen. The agent side is the real `HubLink` over a real store.

use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use aloft_agent::metrics::Metrics;
use aloft_agent::metrics::uplink::ReconnectReason;
use aloft_agent::uplink::{HubLink, LiveBoard, SharedStore, UplinkOptions, control_channels, tls};
use aloft_protocol::sync::batch::{DEFAULT_BATCH_LIMITS, decode_batch};
use aloft_protocol::sync::evolution::{V1_QUANTITIES, record_decodable_by};
use aloft_protocol::sync::{
    Command, CommandAction, Downlink, Hello, OLDEST_PROTOCOL_VERSION, PROTOCOL_VERSION, Uplink,
    Welcome,
};
use aloft_protocol::{
    BootId, ExtensionRecord, Quality, Quantity, Reading, Record, SensorId, Timestamp,
};
use aloft_store::{FullPolicy, Outbox, StoreOptions};
use futures_util::{SinkExt, StreamExt};
use rcgen::{BasicConstraints, CertificateParams, DnType, IsCa, Issuer, KeyPair, KeyUsagePurpose};
use rustls_pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer};
use tokio::net::TcpListener;
use tokio::sync::{mpsc, watch};
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::handshake::server::{ErrorResponse, Request, Response};
use tokio_tungstenite::tungstenite::http::StatusCode;

mod common;

const TOKEN: &str = "node-token-for-tests";
const WAIT: Duration = Duration::from_secs(30);

/// A CA (written to `dir/ca.pem`) and a server config for 127.0.0.1 signed by it.
fn pki(dir: &Path) -> Arc<rustls::ServerConfig> {
    let ca_key = KeyPair::generate().expect("ca key");
    let mut ca = CertificateParams::new(Vec::<String>::new()).expect("ca params");
    ca.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    ca.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
    ca.distinguished_name
        .push(DnType::CommonName, "uplink test CA");
    let ca_cert = ca.self_signed(&ca_key).expect("ca cert");
    std::fs::write(dir.join("ca.pem"), ca_cert.pem()).expect("write ca");
    let issuer = Issuer::new(ca, ca_key);
    let key = KeyPair::generate().expect("key");
    let leaf = CertificateParams::new(vec!["127.0.0.1".to_string()]).expect("params");
    let cert = leaf.signed_by(&key, &issuer).expect("leaf");
    let config = rustls::ServerConfig::builder_with_provider(tls::provider())
        .with_safe_default_protocol_versions()
        .expect("versions")
        .with_no_client_auth()
        .with_single_cert(
            vec![CertificateDer::from(cert.der().to_vec())],
            PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(key.serialize_der())),
        )
        .expect("server config");
    Arc::new(config)
}

/// How the peer treats one connection.
#[derive(Debug, Clone, Copy, PartialEq)]
enum Behaviour {
    /// Welcome, store batches, ack, answer pings.
    Sync,
    /// Welcome, then neither read nor write nor close (a half-open link).
    SilentAfterWelcome,
    /// Answer the hello with `Refused { Unavailable }` and close.
    RefuseHello,
    /// Welcome, send a restart command for a sensor name of 1.2 MB (a message over the
    /// protocol's cap that the WebSocket still carries), then sync.
    OversizedAfterWelcome,
    /// Welcome, then send a 5 MiB message, too large for the agent to read, then sync.
    HugeAfterWelcome,
    /// A hub of protocol version 1: refuses a hello of any other version, as such a hub
    /// does, welcomes version 1, and refuses (closes on) a batch holding what version 1
    /// cannot decode.
    VersionOne,
    /// A hub that speaks none of this agent's versions: refuses every hello's version.
    NoCommonVersion,
}

/// What the peer saw.
#[derive(Debug)]
enum Seen {
    Hello(usize, Hello),
    Message(usize, Uplink),
}

/// The peer's persisted state: records by number, and its contiguous watermark.
#[derive(Debug, Default)]
struct Held {
    records: std::collections::BTreeMap<u64, Record>,
    watermark: Option<u64>,
    /// What a version 1 peer got that version 1 cannot decode.
    undecodable: Vec<String>,
}

struct Peer {
    url: String,
    /// Every wait on what the peer saw ends by then: a test that waits for something that
    /// never comes fails instead of hanging on the live updates that keep coming.
    until: Instant,
    seen: mpsc::UnboundedReceiver<Seen>,
    held: Arc<Mutex<Held>>,
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

async fn start_peer(
    tls: Arc<rustls::ServerConfig>,
    script: Vec<Behaviour>,
    held: Held,
    command_after_welcome: Option<Command>,
) -> Peer {
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let port = listener.local_addr().expect("addr").port();
    let (seen_tx, seen) = mpsc::unbounded_channel();
    let held = Arc::new(Mutex::new(held));
    let acceptor = tokio_rustls::TlsAcceptor::from(tls);
    let shared = Arc::clone(&held);
    tokio::spawn(async move {
        let mut n = 0usize;
        while let Ok((tcp, _)) = listener.accept().await {
            let behaviour = script.get(n).copied().unwrap_or(Behaviour::Sync);
            let (acceptor, seen, held, command) = (
                acceptor.clone(),
                seen_tx.clone(),
                Arc::clone(&shared),
                command_after_welcome.clone(),
            );
            let index = n;
            n += 1;
            tokio::spawn(async move {
                let _ = serve(acceptor, tcp, index, behaviour, seen, held, command).await;
            });
        }
    });
    Peer {
        url: format!("wss://127.0.0.1:{port}/v1/nodes/connect"),
        until: Instant::now() + 2 * WAIT,
        seen,
        held,
    }
}

async fn serve(
    acceptor: tokio_rustls::TlsAcceptor,
    tcp: tokio::net::TcpStream,
    index: usize,
    behaviour: Behaviour,
    seen: mpsc::UnboundedSender<Seen>,
    held: Arc<Mutex<Held>>,
    command: Option<Command>,
) -> Result<(), String> {
    let tls = acceptor.accept(tcp).await.map_err(|e| e.to_string())?;
    // tungstenite's callback type fixes the error type: a response, large as it is.
    #[allow(clippy::result_large_err)]
    let check = |request: &Request, response: Response| -> Result<Response, ErrorResponse> {
        let auth = request
            .headers()
            .get("authorization")
            .and_then(|v| v.to_str().ok());
        if auth == Some(&format!("Bearer {TOKEN}")) {
            Ok(response)
        } else {
            let mut refused = ErrorResponse::new(Some("unknown token".into()));
            *refused.status_mut() = StatusCode::UNAUTHORIZED;
            Err(refused)
        }
    };
    let mut ws = tokio_tungstenite::accept_hdr_async(tls, check)
        .await
        .map_err(|e| e.to_string())?;
    let mut epoch = None;
    while let Some(frame) = ws.next().await {
        let Message::Binary(bytes) = frame.map_err(|e| e.to_string())? else {
            continue;
        };
        let message = Uplink::decode(&bytes).map_err(|e| e.to_string())?;
        match message {
            Uplink::Hello(hello) => {
                epoch = Some(hello.epoch);
                let watermark = lock(&held).watermark;
                let _ = seen.send(Seen::Hello(index, hello.clone()));
                if (behaviour == Behaviour::VersionOne && hello.protocol_version != 1)
                    || behaviour == Behaviour::NoCommonVersion
                {
                    let refused = Downlink::Refused {
                        code: aloft_protocol::sync::RefusalCode::ProtocolVersion,
                        message: "this hub speaks 1".into(),
                    };
                    let _ = ws.send(Message::binary(refused.encode())).await;
                    let _ = ws.close(None).await;
                    return Ok(());
                }
                if behaviour == Behaviour::RefuseHello {
                    let refused = Downlink::Refused {
                        code: aloft_protocol::sync::RefusalCode::Unavailable,
                        message: "disk full".into(),
                    };
                    let _ = ws.send(Message::binary(refused.encode())).await;
                    let _ = ws.close(None).await;
                    return Ok(());
                }
                let welcome = Downlink::Welcome(Welcome {
                    protocol_version: hello.protocol_version,
                    epoch: hello.epoch,
                    watermark,
                    server_utc_ns: 0,
                });
                ws.send(Message::binary(welcome.encode()))
                    .await
                    .map_err(|e| e.to_string())?;
                if behaviour == Behaviour::OversizedAfterWelcome {
                    let oversized = Downlink::Command(Command {
                        id: "c-huge".into(),
                        expires_utc_ns: i64::MAX,
                        action: aloft_protocol::sync::CommandAction::RestartSensor {
                            sensor: "s".repeat(1_200_000),
                            hard: false,
                        },
                    });
                    ws.send(Message::binary(oversized.encode()))
                        .await
                        .map_err(|e| e.to_string())?;
                }
                if behaviour == Behaviour::HugeAfterWelcome {
                    ws.send(Message::binary(vec![0u8; 5 << 20]))
                        .await
                        .map_err(|e| e.to_string())?;
                }
                if behaviour == Behaviour::SilentAfterWelcome {
                    // Keep the socket open, read nothing, answer nothing.
                    std::future::pending::<()>().await;
                }
                if let Some(command) = &command {
                    ws.send(Message::binary(Downlink::Command(command.clone()).encode()))
                        .await
                        .map_err(|e| e.to_string())?;
                }
            }
            Uplink::Batch(batch) => {
                let entries = decode_batch(batch.encoding, &batch.payload, &DEFAULT_BATCH_LIMITS)
                    .map_err(|e| e.to_string())?;
                if behaviour == Behaviour::VersionOne
                    && let Some((seq, _)) = entries.iter().find(|(_, r)| !record_decodable_by(r, 1))
                {
                    return Err(format!("record {seq} is not version 1's to decode"));
                }
                let watermark = {
                    let mut held = lock(&held);
                    let next = held.watermark.map_or(0, |w| w + 1);
                    if batch.first > next {
                        return Err(format!("hole: batch from {} at {next}", batch.first));
                    }
                    for (seq, record) in entries {
                        held.records.entry(seq).or_insert(record);
                    }
                    held.watermark = Some(held.watermark.map_or(batch.last, |w| w.max(batch.last)));
                    held.watermark
                };
                let _ = seen.send(Seen::Message(index, Uplink::Batch(batch.clone())));
                if let (Some(epoch), Some(watermark)) = (epoch, watermark) {
                    ws.send(Message::binary(Downlink::Ack { epoch, watermark }.encode()))
                        .await
                        .map_err(|e| e.to_string())?;
                }
            }
            Uplink::Health(_) if behaviour == Behaviour::VersionOne => {
                lock(&held).undecodable.push("a health message".into());
                return Err("a health message is not version 1's to decode".into());
            }
            Uplink::Ping { nonce } => {
                ws.send(Message::binary(Downlink::Pong { nonce }.encode()))
                    .await
                    .map_err(|e| e.to_string())?;
            }
            other => {
                let _ = seen.send(Seen::Message(index, other));
            }
        }
    }
    Ok(())
}

fn reading(i: u64) -> Record {
    Record::Reading(Reading {
        sensor: SensorId(0),
        quantity: Quantity::AirPressure,
        time: Timestamp::monotonic(1_000_000 * i),
        value: 20_000.0 + i as f64,
        quality: Quality::GOOD,
    })
}

fn open_store(dir: &Path) -> Outbox {
    let (outbox, _) = Outbox::open(dir, StoreOptions::new(64 << 20, FullPolicy::DropOldest))
        .expect("store opens");
    outbox
}

struct Agent {
    store: SharedStore,
    metrics: Arc<Metrics>,
    stop: watch::Sender<bool>,
    task: tokio::task::JoinHandle<()>,
    control_down: mpsc::Receiver<Downlink>,
    control_up: mpsc::Sender<Uplink>,
}

fn start_agent(options: UplinkOptions, outbox: Outbox) -> Agent {
    start_agent_with_power(
        options,
        outbox,
        aloft_agent::power::PowerGovernor::inactive(),
    )
}

fn start_agent_with_power(
    options: UplinkOptions,
    outbox: Outbox,
    power: aloft_agent::power::PowerGovernor,
) -> Agent {
    let store = SharedStore::new(outbox);
    let metrics = Metrics::new("glider", std::iter::empty());
    let (channels, control_down, control_up) = control_channels();
    let link = HubLink::new(
        options,
        store.clone(),
        Arc::new(LiveBoard::with_sensors(Vec::new())),
        channels,
        Arc::clone(&metrics),
        BootId([9; 16]),
    )
    .with_power(power);
    let (stop, mut stopped) = watch::channel(false);
    let task = tokio::spawn(link.run(async move {
        let _ = stopped.wait_for(|s| *s).await;
    }));
    Agent {
        store,
        metrics,
        stop,
        task,
        control_down,
        control_up,
    }
}

fn options(dir: &Path, url: &str, token: &str) -> UplinkOptions {
    let tls = tls::client_config(Some(&dir.join("ca.pem")), Arc::new(|| None)).expect("tls");
    UplinkOptions::new(url, token, "glider", tls)
        .with_reconnect_max(Duration::from_millis(500))
        .with_upload_bytes_per_s(50_000_000)
}

async fn next_seen(peer: &mut Peer) -> Seen {
    assert!(
        Instant::now() < peer.until,
        "the peer did not see it in time"
    );
    tokio::time::timeout(WAIT, peer.seen.recv())
        .await
        .expect("the peer saw something in time")
        .expect("peer running")
}

async fn poll_until(what: &str, mut done: impl FnMut() -> bool) {
    let until = Instant::now() + WAIT;
    while !done() {
        assert!(Instant::now() < until, "timed out waiting for {what}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn syncs_from_the_welcome_watermark_live_first_and_acks_advance_the_store_cursor_durably() {
    let dir = tempfile::tempdir().expect("tempdir");
    let store_dir = dir.path().join("store");
    let mut outbox = open_store(&store_dir);
    for i in 0..5_000 {
        outbox.append(&reading(i)).expect("append");
    }
    outbox.commit().expect("commit");
    let epoch = outbox.epoch();
    // The hub already holds 0..=999 of this epoch (an earlier session's).
    let held = Held {
        records: Default::default(),
        watermark: Some(999),
        undecodable: Vec::new(),
    };
    let command = Command {
        id: "c-1".into(),
        expires_utc_ns: i64::MAX,
        action: CommandAction::RestartSensor {
            sensor: "static".into(),
            hard: false,
        },
    };
    let mut peer = start_peer(pki(dir.path()), vec![], held, Some(command.clone())).await;
    let mut agent = start_agent(options(dir.path(), &peer.url, TOKEN), outbox);

    let Seen::Hello(0, hello) = next_seen(&mut peer).await else {
        panic!("a hello first");
    };
    assert_eq!(hello.epoch, epoch);
    assert_eq!(hello.node, "glider");
    assert_eq!(hello.first_unacked, 0);
    assert_eq!(hello.durable_end, 5_000);
    match next_seen(&mut peer).await {
        Seen::Message(0, Uplink::Live(_)) => {}
        other => panic!("the live lane goes before any batch, got {other:?}"),
    }
    // The control seam: the hub's command reaches the control layer, its ack the hub.
    let down = tokio::time::timeout(WAIT, agent.control_down.recv())
        .await
        .expect("command forwarded in time");
    assert_eq!(down, Some(Downlink::Command(command)));
    agent
        .control_up
        .send(Uplink::CommandAck { id: "c-1".into() })
        .await
        .expect("control queue");

    let mut first_batch = None;
    let mut command_ack = false;
    while first_batch.is_none() || !command_ack {
        match next_seen(&mut peer).await {
            Seen::Message(_, Uplink::Batch(b)) if first_batch.is_none() => {
                first_batch = Some(b.first)
            }
            Seen::Message(_, Uplink::CommandAck { id }) => command_ack = id == "c-1",
            _ => {}
        }
    }
    assert_eq!(
        first_batch,
        Some(1_000),
        "resumes after the hub's watermark"
    );

    let store = agent.store.clone();
    poll_until("the store cursor to reach the end", || {
        store.lock().first_unacked() == 5_000
    })
    .await;
    assert_eq!(agent.metrics.uplink.records_acked(), 4_000);
    assert!(agent.metrics.uplink.is_connected());

    // What the hub holds is exactly the store's records 1000..5000, in content.
    {
        let held = lock(&peer.held);
        assert_eq!(held.records.len(), 4_000);
        let outbox = store.lock();
        let mut from = 1_000;
        while from < 5_000 {
            let chunk = outbox.read_from(from, 1_000).expect("read");
            for (seq, record) in &chunk {
                assert_eq!(held.records.get(seq), Some(record), "record {seq}");
            }
            from = chunk.last().map_or(5_000, |(s, _)| s + 1);
        }
    }

    // The cursor is durable: it survives closing and reopening the store.
    let _ = agent.stop.send(true);
    agent.task.await.expect("uplink stops");
    drop(store);
    let outbox = agent.store.into_inner().expect("sole owner");
    outbox.close().expect("close");
    let reopened = open_store(&store_dir);
    assert_eq!(reopened.first_unacked(), 5_000);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_silent_peer_is_dropped_within_the_read_deadline_and_the_agent_reconnects_by_itself() {
    let dir = tempfile::tempdir().expect("tempdir");
    let mut outbox = open_store(&dir.path().join("store"));
    for i in 0..100 {
        outbox.append(&reading(i)).expect("append");
    }
    outbox.commit().expect("commit");
    let mut peer = start_peer(
        pki(dir.path()),
        vec![Behaviour::SilentAfterWelcome],
        Held::default(),
        None,
    )
    .await;
    let options = options(dir.path(), &peer.url, TOKEN)
        .with_keepalive(Duration::from_millis(500), Duration::from_secs(2));
    let agent = start_agent(options, outbox);

    assert!(matches!(next_seen(&mut peer).await, Seen::Hello(0, _)));
    // A command ack written into the silent link is not lost with it.
    agent
        .control_up
        .send(Uplink::CommandAck { id: "c-9".into() })
        .await
        .expect("control queue");
    // The second connection comes by itself once the deadline passed on the first.
    loop {
        if let Seen::Hello(1, hello) = next_seen(&mut peer).await {
            assert_eq!(
                hello.first_unacked, 0,
                "nothing was acked on the silent link"
            );
            break;
        }
    }
    loop {
        if let Seen::Message(n, Uplink::CommandAck { id }) = next_seen(&mut peer).await {
            assert_eq!((n, id.as_str()), (1, "c-9"));
            break;
        }
    }
    assert_eq!(
        agent.metrics.uplink.reconnects(ReconnectReason::Deadline),
        1
    );
    let store = agent.store.clone();
    poll_until("the backlog to be acked on the new link", || {
        store.lock().first_unacked() == 100
    })
    .await;
    let _ = agent.stop.send(true);
    agent.task.await.expect("uplink stops");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_backlog_drains_no_faster_than_the_upload_budget() {
    const RATE: u64 = 20_000;
    let dir = tempfile::tempdir().expect("tempdir");
    let mut outbox = open_store(&dir.path().join("store"));
    // Values with full-entropy mantissas: the batch codec cannot squeeze them below a few
    // bytes each, so the backlog really is well over the bucket's burst.
    let mut noise = 0x9E37_79B9_7F4A_7C15_u64;
    for i in 0..12_000 {
        noise ^= noise << 13;
        noise ^= noise >> 7;
        noise ^= noise << 17;
        let value = 20_000.0 + (noise >> 11) as f64 / (1u64 << 53) as f64;
        let record = Record::Reading(Reading {
            sensor: SensorId(0),
            quantity: Quantity::AirPressure,
            time: Timestamp::monotonic(1_000_000 * i),
            value,
            quality: Quality::GOOD,
        });
        outbox.append(&record).expect("append");
    }
    outbox.commit().expect("commit");
    let end = outbox.durable_end();
    let mut peer = start_peer(pki(dir.path()), vec![], Held::default(), None).await;
    let options = options(dir.path(), &peer.url, TOKEN).with_upload_bytes_per_s(RATE);
    let agent = start_agent(options, outbox);
    assert!(matches!(next_seen(&mut peer).await, Seen::Hello(0, _)));
    let started = Instant::now();
    let store = agent.store.clone();
    poll_until("the backlog to drain", || {
        store.lock().first_unacked() == end
    })
    .await;
    let elapsed = started.elapsed();
    let sent = agent.metrics.uplink.bytes_sent();
    // The bucket starts full (16 KiB) and the hello and first live update go before it
    // counts: whatever is beyond that took at least its time at the budget's rate. A slow
    // machine only makes the drain slower, never faster.
    let free = 16_384 + 4_096;
    assert!(
        sent > 2 * free,
        "the test needs a backlog well over the burst ({sent} bytes)"
    );
    let floor = Duration::from_secs_f64((sent - free) as f64 / RATE as f64);
    assert!(
        elapsed >= floor,
        "{sent} bytes in {elapsed:?}: faster than {RATE} B/s allows ({floor:?})"
    );
    let _ = agent.stop.send(true);
    agent.task.await.expect("uplink stops");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn control_messages_wait_out_a_refused_session_and_go_after_the_next_welcome() {
    let dir = tempfile::tempdir().expect("tempdir");
    let outbox = open_store(&dir.path().join("store"));
    let mut peer = start_peer(
        pki(dir.path()),
        vec![Behaviour::RefuseHello],
        Held::default(),
        None,
    )
    .await;
    let agent = start_agent(options(dir.path(), &peer.url, TOKEN), outbox);
    for id in ["c-1", "c-2"] {
        agent
            .control_up
            .send(Uplink::CommandAck { id: id.into() })
            .await
            .expect("control queue");
    }
    let mut order = Vec::new();
    while order.len() < 4 {
        match next_seen(&mut peer).await {
            Seen::Hello(n, _) => order.push(format!("hello {n}")),
            Seen::Message(n, Uplink::CommandAck { id }) => order.push(format!("{id} on {n}")),
            _ => {}
        }
    }
    assert_eq!(order, ["hello 0", "hello 1", "c-1 on 1", "c-2 on 1"]);
    assert_eq!(agent.metrics.uplink.reconnects(ReconnectReason::Refused), 1);
    let _ = agent.stop.send(true);
    agent.task.await.expect("uplink stops");
}

/// The message of an unsolicited log batch (the agent's report of a refused message).
fn refusal_report(message: &Uplink) -> Option<String> {
    match message {
        Uplink::Logs(batch) if batch.request == aloft_protocol::sync::UNSOLICITED_LOGS => {
            batch.lines.first().map(|l| l.message.clone())
        }
        _ => None,
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_hub_message_over_the_cap_is_refused_reported_and_skipped_and_the_session_goes_on() {
    let dir = tempfile::tempdir().expect("tempdir");
    let mut outbox = open_store(&dir.path().join("store"));
    for i in 0..50 {
        outbox.append(&reading(i)).expect("append");
    }
    outbox.commit().expect("commit");
    let mut peer = start_peer(
        pki(dir.path()),
        vec![Behaviour::OversizedAfterWelcome],
        Held::default(),
        None,
    )
    .await;
    let agent = start_agent(options(dir.path(), &peer.url, TOKEN), outbox);
    let mut report = None;
    let mut synced = false;
    while report.is_none() || !synced {
        match next_seen(&mut peer).await {
            Seen::Hello(n, _) => assert_eq!(n, 0, "the session was not dropped"),
            Seen::Message(0, message) => {
                if let Some(text) = refusal_report(&message) {
                    report = Some(text);
                }
                synced |= matches!(message, Uplink::Batch(ref b) if b.last >= 49);
            }
            Seen::Message(..) => {}
        }
    }
    let report = report.unwrap_or_default();
    assert!(report.contains("over the 1048576-byte cap"), "{report}");
    assert!(report.len() <= 1024, "the report is bounded");
    assert_eq!(agent.metrics.uplink.sessions(), 1);
    let _ = agent.stop.send(true);
    agent.task.await.expect("uplink stops");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_hub_message_too_large_to_read_is_reported_and_backs_off_instead_of_looping() {
    let dir = tempfile::tempdir().expect("tempdir");
    let outbox = open_store(&dir.path().join("store"));
    let mut peer = start_peer(
        pki(dir.path()),
        vec![Behaviour::HugeAfterWelcome; 5],
        Held::default(),
        None,
    )
    .await;
    let tls = tls::client_config(Some(&dir.path().join("ca.pem")), Arc::new(|| None)).expect("tls");
    let options = UplinkOptions::new(&peer.url, TOKEN, "glider", tls)
        .with_reconnect_max(Duration::from_secs(4))
        .with_upload_bytes_per_s(50_000_000);
    let agent = start_agent(options, outbox);
    let mut hellos = Vec::new();
    let mut report = None;
    while hellos.len() < 6 || report.is_none() {
        match next_seen(&mut peer).await {
            Seen::Hello(..) => hellos.push(Instant::now()),
            Seen::Message(_, message) => {
                if let Some(text) = refusal_report(&message) {
                    report = Some(text);
                }
            }
        }
    }
    let report = report.unwrap_or_default();
    assert!(
        report.contains("refused a message from the hub"),
        "{report}"
    );
    // Delays of 250 ms doubling to the 4 s cap, each shortened by at most half its
    // jitter: after four refusals the agent waits at least 1 s. A backoff that the
    // welcome reset would wait at most 250 ms every time.
    let fifth_gap = hellos[5].duration_since(hellos[4]);
    assert!(
        fifth_gap >= Duration::from_millis(900),
        "reconnected after {fifth_gap:?}"
    );
    let _ = agent.stop.send(true);
    agent.task.await.expect("uplink stops");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unknown_token_is_refused_before_the_upgrade_and_retried_with_backoff() {
    let dir = tempfile::tempdir().expect("tempdir");
    let outbox = open_store(&dir.path().join("store"));
    let mut peer = start_peer(pki(dir.path()), vec![], Held::default(), None).await;
    let agent = start_agent(options(dir.path(), &peer.url, "wrong-token"), outbox);
    let metrics = Arc::clone(&agent.metrics);
    poll_until("two refusals", || {
        metrics.uplink.reconnects(ReconnectReason::Refused) >= 2
    })
    .await;
    assert!(peer.seen.try_recv().is_err(), "no hello got through");
    assert_eq!(metrics.uplink.sessions(), 0);
    let _ = agent.stop.send(true);
    agent.task.await.expect("uplink stops");
}

/// deploy/examples/sim.toml with this test's store and endpoint and a `[hub]` of `peer`.
fn daemon_config(dir: &Path, metrics_port: u16, url: &str) -> std::path::PathBuf {
    let text = common::sim_toml(dir, metrics_port);
    std::fs::write(dir.join("token"), format!("{TOKEN}\n")).expect("token");
    let hub = format!(
        "\n[hub]\nurl = \"{url}\"\ntoken_file = \"{}\"\nca_file = \"{}\"\nkeepalive = \"1s\"\n\
         read_deadline = \"5s\"\nreconnect_max = \"1s\"\n",
        dir.join("token").display(),
        dir.join("ca.pem").display()
    );
    let path = dir.join("agent.toml");
    std::fs::write(&path, text + &hub).expect("config");
    path
}

async fn scrape(port: u16) -> String {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let Ok(mut tcp) = tokio::net::TcpStream::connect(("127.0.0.1", port)).await else {
        return String::new();
    };
    let request = "GET /metrics HTTP/1.1\r\nHost: agent\r\nConnection: close\r\n\r\n";
    if tcp.write_all(request.as_bytes()).await.is_err() {
        return String::new();
    }
    let mut text = String::new();
    let _ = tcp.read_to_string(&mut text).await;
    text
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_daemon_syncs_its_store_reports_every_sensor_live_applies_a_command_and_keeps_the_cursor()
 {
    let dir = tempfile::tempdir().expect("tempdir");
    let restart = Command {
        id: "restart-static".into(),
        expires_utc_ns: i64::MAX,
        action: CommandAction::RestartSensor {
            sensor: "static".into(),
            hard: false,
        },
    };
    let mut peer = start_peer(pki(dir.path()), vec![], Held::default(), Some(restart)).await;
    let metrics_port = common::free_port();
    let config = daemon_config(dir.path(), metrics_port, &peer.url);
    let child = std::process::Command::new(env!("CARGO_BIN_EXE_aloft-agent"))
        .args(["run", "--config"])
        .arg(&config)
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .expect("agent starts");
    let mut child = KillOnDrop(child);

    let Seen::Hello(0, hello) = next_seen(&mut peer).await else {
        panic!("a hello first");
    };
    assert_eq!(hello.node, "glider-sim");
    // Live updates until one shows every sensor running with readings and the restart the
    // hub's command asked for; the control layer acks the command and reports its result.
    let (mut batches, mut acked, mut result) = (0, false, None);
    loop {
        match next_seen(&mut peer).await {
            Seen::Message(_, Uplink::Live(live)) => {
                assert_eq!(
                    live.sensors.len(),
                    common::sim_sensor_count(),
                    "every configured sensor is reported"
                );
                let names: Vec<&str> = live.sensors.iter().map(|s| s.name.as_str()).collect();
                assert!(names.contains(&"gps"), "{names:?}");
                let restarted = live
                    .sensors
                    .iter()
                    .any(|s| s.name == "static" && s.restarts > 0);
                if restarted
                    && live
                        .sensors
                        .iter()
                        // The derived wind, without a heading, reads only from full
                        // circles: not on the ground.
                        .filter(|s| s.name != "wind")
                        .all(|s| s.readings > 0 && s.state == aloft_protocol::SensorState::Running)
                    && batches > 0
                    && acked
                    && result.is_some()
                {
                    break;
                }
            }
            Seen::Message(_, Uplink::Batch(_)) => batches += 1,
            Seen::Message(_, Uplink::CommandAck { id }) => acked |= id == "restart-static",
            Seen::Message(_, Uplink::CommandResult { id, outcome }) if id == "restart-static" => {
                result = Some(outcome);
            }
            _ => {}
        }
    }
    assert!(
        matches!(
            result,
            Some(aloft_protocol::sync::CommandOutcome::Succeeded { .. })
        ),
        "{result:?}"
    );
    let metrics = scrape(metrics_port).await;
    assert!(
        metrics.contains("aloft_uplink_connected 1"),
        "connected in /metrics:\n{metrics}"
    );

    let pid = nix::unistd::Pid::from_raw(i32::try_from(child.0.id()).expect("pid"));
    nix::sys::signal::kill(pid, nix::sys::signal::Signal::SIGTERM).expect("SIGTERM");
    let mut exit = None;
    poll_until("the agent to stop", || {
        exit = child.0.try_wait().ok().flatten();
        exit.is_some()
    })
    .await;
    let exit = exit.expect("exited");
    assert!(exit.success(), "a clean exit, not {exit}");

    // The store's cursor is where the hub's acks left it, and what the hub holds is the
    // store's content.
    let watermark = lock(&peer.held).watermark.expect("the hub holds records");
    let outbox = open_store(&dir.path().join("store"));
    assert!(outbox.first_unacked() > 0);
    assert!(outbox.first_unacked() <= watermark + 1);
    let held = lock(&peer.held);
    let mut from = 0;
    while from < outbox.first_unacked() {
        let chunk = outbox.read_from(from, 1_000).expect("read");
        for (seq, record) in chunk
            .iter()
            .take_while(|(s, _)| *s < outbox.first_unacked())
        {
            assert_eq!(held.records.get(seq), Some(record), "record {seq}");
        }
        from = chunk.last().map_or(u64::MAX, |(s, _)| s + 1);
    }
}

/// The agent process, killed if the test fails before it stopped it.
struct KillOnDrop(std::process::Child);

impl Drop for KillOnDrop {
    fn drop(&mut self) {
        if matches!(self.0.try_wait(), Ok(None)) {
            let _ = self.0.kill();
            let _ = self.0.wait();
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_version_one_hub_is_offered_version_one_and_sent_only_what_it_decodes() {
    let dir = tempfile::tempdir().expect("tempdir");
    let mut outbox = open_store(&dir.path().join("store"));
    // What a newer agent's store holds: readings of a quantity version 1 has no code for,
    // a record kind added since, and readings every version knows, interleaved.
    let newer_quantity = Quantity::from_code(V1_QUANTITIES + 3);
    for i in 0..300u64 {
        let record = match i % 3 {
            0 => reading(i),
            1 => Record::Reading(Reading {
                sensor: SensorId(1),
                quantity: newer_quantity,
                time: Timestamp::monotonic(1_000_000 * i),
                value: i as f64,
                quality: Quality::GOOD,
            }),
            _ => Record::Extension(ExtensionRecord {
                kind: 1,
                body: i.to_le_bytes().to_vec(),
            }),
        };
        outbox.append(&record).expect("append");
    }
    outbox.commit().expect("commit");
    let mut peer = start_peer(
        pki(dir.path()),
        vec![Behaviour::VersionOne; 8],
        Held::default(),
        None,
    )
    .await;
    let agent = start_agent(options(dir.path(), &peer.url, TOKEN), outbox);

    // This build's version is offered first, refused, then version 1 at once.
    let mut offers = Vec::new();
    while offers.last() != Some(&OLDEST_PROTOCOL_VERSION) {
        if let Seen::Hello(_, hello) = next_seen(&mut peer).await {
            offers.push(hello.protocol_version);
        }
    }
    assert_eq!(offers, (1..=PROTOCOL_VERSION).rev().collect::<Vec<_>>());

    let store = agent.store.clone();
    poll_until("the version 1 hub to ack the whole store", || {
        store.lock().first_unacked() == 300
    })
    .await;
    {
        let held = lock(&peer.held);
        assert_eq!(
            held.watermark,
            Some(299),
            "the stream went on past what was left out"
        );
        assert_eq!(
            held.records.len(),
            100,
            "only the readings version 1 decodes"
        );
        assert!(held.records.values().all(|r| record_decodable_by(r, 1)));
        assert_eq!(held.undecodable, Vec::<String>::new());
    }
    // No connection ended on a batch the hub refused; every later hello offered version 1.
    assert_eq!(agent.metrics.uplink.reconnects(ReconnectReason::Error), 0);
    while let Ok(seen) = peer.seen.try_recv() {
        if let Seen::Hello(_, hello) = seen {
            assert_eq!(hello.protocol_version, OLDEST_PROTOCOL_VERSION);
        }
    }
    let _ = agent.stop.send(true);
    agent.task.await.expect("uplink stops");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_nodes_health_follows_the_live_update_in_a_version_2_session() {
    let dir = tempfile::tempdir().expect("tempdir");
    let outbox = open_store(&dir.path().join("store"));
    let mut peer = start_peer(pki(dir.path()), vec![], Held::default(), None).await;
    let agent = start_agent(options(dir.path(), &peer.url, TOKEN), outbox);
    let health = loop {
        match next_seen(&mut peer).await {
            Seen::Hello(_, hello) => assert_eq!(hello.protocol_version, PROTOCOL_VERSION),
            Seen::Message(_, Uplink::Live(_)) => match next_seen(&mut peer).await {
                Seen::Message(_, Uplink::Health(health)) => break health,
                other => panic!("the health right after the live update, got {other:?}"),
            },
            Seen::Message(_, Uplink::Health(_)) => panic!("the health before the live update"),
            Seen::Message(..) => {}
        }
    };
    assert_eq!(health.store_policy, "drop-oldest");
    assert_eq!(health.store_max_bytes, 64 << 20);
    // This test's board has no timekeeper to ask, and no receiver confirmed a model.
    assert_eq!(health.clock_trusted, None);
    assert!(health.gnss_models.is_empty());
    let _ = agent.stop.send(true);
    agent.task.await.expect("uplink stops");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_nodes_health_carries_the_power_step_of_a_node_with_a_power_policy() {
    let dir = tempfile::tempdir().expect("tempdir");
    let outbox = open_store(&dir.path().join("store"));
    let mut peer = start_peer(pki(dir.path()), vec![], Held::default(), None).await;
    let example = Path::new(env!("CARGO_MANIFEST_DIR")).join("../deploy/examples/sim.toml");
    let config = aloft_agent::config::load(&example).expect("sim.toml loads");
    assert!(config.power.is_some(), "the sim example has a power policy");
    let power = aloft_agent::power::PowerGovernor::new(&config, ["gps".to_string()]);
    let agent = start_agent_with_power(options(dir.path(), &peer.url, TOKEN), outbox, power);
    let health = loop {
        if let Seen::Message(_, Uplink::Health(health)) = next_seen(&mut peer).await {
            break health;
        }
    };
    let report = health.power.expect("a power report in a version 4 session");
    assert_eq!((report.step.as_str(), report.level), ("full", 0));
    assert_eq!(report.overridden, ["gps"]);
    assert_eq!(report.upload_bytes_per_s, None);
    let _ = agent.stop.send(true);
    agent.task.await.expect("uplink stops");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_hub_refusing_even_the_oldest_version_is_offered_this_builds_version_again() {
    let dir = tempfile::tempdir().expect("tempdir");
    let outbox = open_store(&dir.path().join("store"));
    let mut peer = start_peer(
        pki(dir.path()),
        vec![Behaviour::NoCommonVersion; 16],
        Held::default(),
        None,
    )
    .await;
    let agent = start_agent(options(dir.path(), &peer.url, TOKEN), outbox);
    let mut offers = Vec::new();
    while offers.len() < 2 * usize::from(PROTOCOL_VERSION) {
        if let Seen::Hello(_, hello) = next_seen(&mut peer).await {
            offers.push(hello.protocol_version);
        }
    }
    let round: Vec<u16> = (OLDEST_PROTOCOL_VERSION..=PROTOCOL_VERSION).rev().collect();
    assert_eq!(offers, [round.clone(), round].concat());
    let _ = agent.stop.send(true);
    agent.task.await.expect("uplink stops");
}
