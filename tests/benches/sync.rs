//! `cargo xtask bench sync`: the release hub and agent syncing a backlog over loopback
//! with TLS, through the link simulator that counts every byte. Prints `NAME.FIGURE VALUE
//! UNIT` lines; asserts nothing (docs/sync.md holds the figures and what they mean).
//!
//! The backlog: 1 000 000 readings written into an agent store with the store crate
//! before the hub is up, from the simulated flight's records as the real agent stored
//! them (protocol/benches/data/sim-flight.postcard.deflate: 150 s of `aloft-agent run` on
//! deploy/examples/sim.toml, every reading with its datasheet-level noise), repeated with
//! the clocks moved on by 150 s each time, until a million readings.
//!
//! Figures:
//! - `sync.drain_per_s`, `sync.bytes_per_reading`: the agent with its sensors off drains
//!   the backlog through an unthrottled link; readings over the time from its connection to
//!   its store saying nothing is unsent; bytes both ways over readings.
//! - `sync.json_bytes_per_reading`, `sync.vs_json`: the same readings as KubeEdge-style JSON
//!   messages (`kubeedge_json_message`), one WebSocket text message each over TLS through
//!   the same kind of link to a sink.
//! - `sync.link_utilisation_pct`, `sync.live_age_s`: a copy of the backlog draining through
//!   the link throttled to 1 Mbit/s (20 ms each way) with the flight's sensors live:
//!   agent-to-hub bytes over what the link could carry in a measured window, and the worst
//!   age of the newest reading at the hub (`GET /api/v1/nodes/{node}`) in that window.
//! - `sync.first_live_after_connect_s`: after a 5 s outage of that link, from the first
//!   connection the link accepts to the hub's first new live update.

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

use aloft_protocol::Record;
use aloft_store::{FullPolicy, Outbox, StoreOptions};
use aloft_tests::link::{Action, Link, Throttle};
use aloft_tests::system::{Agent, AgentSetup, Flight, Hub, HubData, HubLink, NODE, wait_until};
use futures_util::{SinkExt, StreamExt};
use rustls_pki_types::pem::PemObject;
use serde_json::Value;

#[path = "../../protocol/benches/common/kubeedge.rs"]
mod kubeedge;
use kubeedge::kubeedge_json_message;

const BACKLOG_READINGS: u64 = 1_000_000;
/// The flight's clocks move on by this much at each repetition of the fixture.
const FIXTURE_SPAN_NS: u64 = 150_000_000_000;
const LINK_BITS_PER_S: u64 = 1_000_000;
/// The agent's budget on the throttled link, bytes/s: what the operator gives it of 1 Mbit/s.
const THROTTLED_BUDGET: u64 = 120_000;
const WARM_UP: Duration = Duration::from_secs(5);
const WINDOW: Duration = Duration::from_secs(20);
const UNSENT: &str = "aloft_store_unsent_records";

type Failure = Box<dyn std::error::Error + Send + Sync>;

fn main() -> Result<(), Failure> {
    let dir = tempfile::tempdir()?;
    eprintln!("bench sync: writing a {BACKLOG_READINGS}-reading backlog");
    let records = backlog_records()?;
    let drained_store = dir.path().join("backlog");
    let throttled_store = dir.path().join("backlog-throttled");
    write_store(&drained_store, &records)?;
    write_store(&throttled_store, &records)?;

    let (drain_s, bytes) = drain(dir.path(), &drained_store)?;
    let per_reading = bytes as f64 / BACKLOG_READINGS as f64;
    println!(
        "sync.drain_per_s {:.0} readings/s",
        BACKLOG_READINGS as f64 / drain_s
    );
    println!("sync.bytes_per_reading {per_reading:.2} B");

    let json = json_bytes(&records)? as f64 / BACKLOG_READINGS as f64;
    println!("sync.json_bytes_per_reading {json:.1} B");
    println!("sync.vs_json {:.1} x", json / per_reading);

    throttled(dir.path(), &throttled_store)?;
    Ok(())
}

/// The fixture's records repeated, clocks moved on, until the backlog holds its readings.
fn backlog_records() -> Result<Vec<Record>, Failure> {
    let path = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../protocol/benches/data/sim-flight.postcard.deflate");
    let packed = std::fs::read(&path).map_err(|e| format!("{}: {e}", path.display()))?;
    let bytes = miniz_oxide::inflate::decompress_to_vec(&packed)
        .map_err(|e| format!("inflate {}: {e:?}", path.display()))?;
    let fixture: Vec<(u64, Record)> = postcard::from_bytes(&bytes)?;
    let readings: Vec<&aloft_protocol::Reading> = fixture
        .iter()
        .filter_map(|(_, r)| match r {
            Record::Reading(r) => Some(r),
            _ => None,
        })
        .collect();
    if readings.is_empty() {
        return Err("the fixture holds no readings".into());
    }
    let mut out = Vec::with_capacity(BACKLOG_READINGS as usize);
    let mut round = 0u64;
    while (out.len() as u64) < BACKLOG_READINGS {
        for reading in &readings {
            if out.len() as u64 >= BACKLOG_READINGS {
                break;
            }
            let mut r = **reading;
            let shift = round * FIXTURE_SPAN_NS;
            r.time.mono_ns += shift;
            r.time.utc_ns = r.time.utc_ns.map(|u| u + shift as i64);
            out.push(Record::Reading(r));
        }
        round += 1;
    }
    Ok(out)
}

fn write_store(dir: &Path, records: &[Record]) -> Result<(), Failure> {
    let options = StoreOptions::new(4 * 1024 * 1024 * 1024, FullPolicy::DropOldest);
    let (mut outbox, _) = Outbox::open(dir, options)?;
    for (i, record) in records.iter().enumerate() {
        outbox.append(record)?;
        if i % 10_000 == 9_999 {
            outbox.commit()?;
        }
    }
    outbox.close()?;
    Ok(())
}

/// A hub, a link in front of it, and the agent's config for `store`.
struct Rig {
    data: HubData,
    hub: Hub,
    link: Link,
    setup: AgentSetup,
}

fn rig(dir: &Path, name: &str, store: &Path, flight: Flight, budget: u64) -> Result<Rig, Failure> {
    let data = HubData::init(&dir.join(format!("{name}-hub")))?;
    let hub = Hub::start(&data)?;
    let link = Link::start(hub.addr())?;
    let hub_link = HubLink::through(link.addr(), &data)
        .with("read_deadline", "\"10s\"")
        .with("upload_bytes_per_s", &budget.to_string());
    let setup = AgentSetup::write(
        dir,
        name,
        store,
        &Flight {
            hub: Some(hub_link),
            ..flight
        },
    )?;
    Ok(Rig {
        data,
        hub,
        link,
        setup,
    })
}

fn stop(agent: Agent, hub: Hub) -> Result<(), Failure> {
    agent.into_process().terminate()?;
    hub.into_process().terminate()?;
    Ok(())
}

/// Drains the backlog unthrottled: (seconds, bytes both ways).
fn drain(dir: &Path, store: &Path) -> Result<(f64, u64), Failure> {
    let rig = rig(
        dir,
        "drain",
        store,
        Flight {
            sensors: false,
            ..Flight::default()
        },
        1_000_000_000,
    )?;
    let agent = Agent::start(&rig.setup)?;
    wait_until("the agent to connect", Duration::from_secs(60), || {
        rig.link.last_connection_at()
    })?;
    let started = rig.link.last_connection_at().unwrap_or_else(Instant::now);
    let done = wait_until("the backlog to drain", Duration::from_secs(900), || {
        agent
            .metric(UNSENT)
            .filter(|n| *n == 0.0)
            .map(|_| Instant::now())
    });
    let done = match done {
        Ok(done) => done,
        Err(e) => return Err(format!("{e}{}", agent.log_tail()).into()),
    };
    let bytes = rig.link.bytes().total();
    eprintln!(
        "bench sync: drained in {:.1} s over {} connection(s)",
        (done - started).as_secs_f64(),
        rig.link.connections()
    );
    stop(agent, rig.hub)?;
    Ok(((done - started).as_secs_f64(), bytes))
}

/// Bytes both ways of the backlog's readings sent as KubeEdge-style JSON messages, one
/// WebSocket text message each, over TLS through a link to a sink.
fn json_bytes(records: &[Record]) -> Result<u64, Failure> {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()?;
    runtime.block_on(async {
        let cert = rcgen::generate_simple_self_signed(vec!["localhost".to_owned()])?;
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let server_config = rustls::ServerConfig::builder_with_provider(Arc::clone(&provider))
            .with_safe_default_protocol_versions()?
            .with_no_client_auth()
            .with_single_cert(
                vec![cert.cert.der().clone()],
                rustls_pki_types::PrivateKeyDer::Pkcs8(cert.signing_key.serialize_der().into()),
            )?;
        let acceptor = tokio_rustls::TlsAcceptor::from(Arc::new(server_config));
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
        let sink_addr = listener.local_addr()?;
        let sink = tokio::spawn(async move {
            let (tcp, _) = listener.accept().await?;
            let tls = acceptor.accept(tcp).await?;
            let mut ws = tokio_tungstenite::accept_async(tls).await?;
            let mut messages = 0u64;
            while let Some(message) = ws.next().await {
                match message? {
                    tokio_tungstenite::tungstenite::Message::Text(_) => messages += 1,
                    tokio_tungstenite::tungstenite::Message::Close(_) => break,
                    _ => {}
                }
            }
            Ok::<u64, Failure>(messages)
        });

        let link = Link::start(sink_addr)?;
        let mut roots = rustls::RootCertStore::empty();
        roots.add(cert.cert.der().clone())?;
        let client_config = rustls::ClientConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()?
            .with_root_certificates(roots)
            .with_no_client_auth();
        let connector = tokio_rustls::TlsConnector::from(Arc::new(client_config));
        let tcp = tokio::net::TcpStream::connect(link.addr()).await?;
        let tls = connector
            .connect(rustls_pki_types::ServerName::try_from("localhost")?, tcp)
            .await?;
        let (mut ws, _) = tokio_tungstenite::client_async(
            format!("wss://localhost:{}/", link.addr().port()),
            tls,
        )
        .await?;
        for record in records {
            ws.feed(tokio_tungstenite::tungstenite::Message::text(
                kubeedge_json_message(NODE, record),
            ))
            .await?;
        }
        ws.close(None).await?;
        let received = sink.await??;
        if received != records.len() as u64 {
            return Err(format!("the sink got {received} of {} messages", records.len()).into());
        }
        Ok::<u64, Failure>(link.bytes().total())
    })
}

/// A blocking HTTPS GET of the hub's API with the admin token; the JSON body.
fn api_get(data: &HubData, addr: SocketAddr, path: &str) -> Option<Value> {
    let pem = std::fs::read(&data.ca_file).ok()?;
    let mut roots = rustls::RootCertStore::empty();
    for cert in rustls_pki_types::CertificateDer::pem_slice_iter(&pem) {
        roots.add(cert.ok()?).ok()?;
    }
    let config = rustls::ClientConfig::builder_with_provider(Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .ok()?
    .with_root_certificates(roots)
    .with_no_client_auth();
    let name = rustls_pki_types::ServerName::try_from("127.0.0.1").ok()?;
    let connection = rustls::ClientConnection::new(Arc::new(config), name.to_owned()).ok()?;
    let tcp = TcpStream::connect_timeout(&addr, Duration::from_secs(2)).ok()?;
    tcp.set_read_timeout(Some(Duration::from_secs(5))).ok()?;
    let mut tls = rustls::StreamOwned::new(connection, tcp);
    let token = data.admin_token().ok()?;
    write!(
        tls,
        "GET {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nAuthorization: Bearer {token}\r\nConnection: close\r\n\r\n"
    )
    .ok()?;
    let mut answer = Vec::new();
    // The hub may close without close_notify; what was read is what counts.
    let _ = tls.read_to_end(&mut answer);
    let text = String::from_utf8_lossy(&answer);
    let (head, body) = text.split_once("\r\n\r\n")?;
    if !head.starts_with("HTTP/1.1 200") {
        return None;
    }
    serde_json::from_str(body).ok()
}

/// Age of the newest reading the hub holds live, s.
fn newest_age_s(node: &Value) -> Option<f64> {
    node.pointer("/status/latest")?
        .as_array()?
        .iter()
        .filter_map(|l| l.get("ageSeconds")?.as_f64())
        .min_by(f64::total_cmp)
}

fn throttled(dir: &Path, store: &Path) -> Result<(), Failure> {
    let rig = rig(
        dir,
        "throttled",
        store,
        Flight {
            speed: 1.0,
            ..Flight::default()
        },
        THROTTLED_BUDGET,
    )?;
    rig.link
        .apply(Action::Throttle(Some(Throttle::starlink(LINK_BITS_PER_S))));
    let agent = Agent::start(&rig.setup)?;
    let node_path = format!("/api/v1/nodes/{NODE}");
    let hub_addr = rig.hub.addr();
    wait_until("the agent to connect", Duration::from_secs(60), || {
        rig.link.last_connection_at()
    })?;
    std::thread::sleep(WARM_UP);
    let (bytes0, t0) = (rig.link.bytes().up, Instant::now());
    let mut worst_age: Option<f64> = None;
    let mut samples = 0;
    while t0.elapsed() < WINDOW {
        if let Some(age) = api_get(&rig.data, hub_addr, &node_path).and_then(|n| newest_age_s(&n)) {
            worst_age = Some(worst_age.map_or(age, |w: f64| w.max(age)));
            samples += 1;
        }
        std::thread::sleep(Duration::from_millis(500));
    }
    let (bytes1, elapsed) = (rig.link.bytes().up, t0.elapsed().as_secs_f64());
    let unsent = agent.metric(UNSENT).unwrap_or(0.0);
    eprintln!(
        "bench sync: {samples} live samples; {unsent:.0} records still unsent after the window"
    );
    println!(
        "sync.link_utilisation_pct {:.1} %",
        (bytes1 - bytes0) as f64 * 8.0 / (LINK_BITS_PER_S as f64 * elapsed) * 100.0
    );
    match worst_age {
        Some(age) => println!("sync.live_age_s {age:.2} s"),
        None => eprintln!("bench sync: no live reading seen at the hub"),
    }

    // An outage, then the first live update after the new connection.
    rig.link.apply(Action::Down);
    std::thread::sleep(Duration::from_secs(5));
    let before = api_get(&rig.data, hub_addr, &node_path)
        .and_then(|n| n.pointer("/status/liveReceived").cloned());
    let connections = rig.link.connections();
    rig.link.apply(Action::Heal);
    wait_until("the agent to reconnect", Duration::from_secs(60), || {
        (rig.link.connections() > connections).then_some(())
    })?;
    let connected = rig.link.last_connection_at().unwrap_or_else(Instant::now);
    let seen = wait_until(
        "a live update after the outage",
        Duration::from_secs(60),
        || {
            let now = api_get(&rig.data, hub_addr, &node_path)?
                .pointer("/status/liveReceived")
                .cloned();
            (now.is_some() && now != before).then(Instant::now)
        },
    )?;
    println!(
        "sync.first_live_after_connect_s {:.2} s",
        (seen - connected).as_secs_f64()
    );
    stop(agent, rig.hub)?;
    Ok(())
}
