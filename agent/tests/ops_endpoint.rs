//! The local endpoint over loopback: Prometheus text, the status JSON, and clients that
//! misbehave.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use aloft_agent::endpoint::{self as http, StatusSource};
use aloft_agent::metrics::{Metrics, SensorErrorKind, SensorLabel};
use aloft_agent::status::{self, StatusReport};
use aloft_agent::timekeeping::{ManualClocks, SyncStatus, TimePolicy, Timekeeper};
use aloft_protocol::{Quantity, SensorId, SensorState, TimeSource};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

const WAIT: Duration = Duration::from_secs(10);
const SEC: u64 = 1_000_000_000;

/// 2026-01-01 as the build floor, whatever SOURCE_DATE_EPOCH this build had.
fn policy() -> TimePolicy {
    TimePolicy::default().with_build_floor(1_767_225_600 * SEC as i64)
}

fn registry() -> Arc<Metrics> {
    Metrics::new(
        "glider-d-kmwp",
        ["gps:ublox", "static:ms5611", "co2:scd41"].map(|s| {
            let (name, kind) = s.split_once(':').expect("test setup");
            SensorLabel {
                name: name.into(),
                kind: kind.into(),
            }
        }),
    )
}

struct Agent {
    addr: SocketAddr,
    metrics: Arc<Metrics>,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    server: tokio::task::JoinHandle<()>,
}

async fn start() -> Agent {
    let metrics = registry();
    let clocks = Arc::new(ManualClocks::new(
        aloft_agent::clock::monotonic_ns(),
        Some(0),
        SyncStatus::Unsynchronised,
    ));
    let (tk, _) = Timekeeper::start(Arc::clone(&clocks), None, policy()).expect("test setup");
    tk.gnss_time(
        1_780_272_000 * SEC as i64,
        clocks_now(&clocks),
        Some(SEC / 10),
    );
    let tk = Arc::new(tk);
    let m = Arc::clone(&metrics);
    let source: StatusSource = Arc::new(move || {
        StatusReport::gather(&m, &tk.status(), aloft_agent::clock::monotonic_ns())
    });
    let listener = http::bind("127.0.0.1:0".parse().expect("test setup"))
        .await
        .expect("test setup");
    let addr = listener.local_addr().expect("test setup");
    let (tx, rx) = tokio::sync::oneshot::channel::<()>();
    let server = tokio::spawn(http::serve(listener, Arc::clone(&metrics), source, async {
        let _ = rx.await;
    }));
    Agent {
        addr,
        metrics,
        stop: Some(tx),
        server,
    }
}

fn clocks_now(c: &ManualClocks) -> u64 {
    use aloft_agent::timekeeping::Clocks as _;
    c.mono_ns()
}

impl Agent {
    async fn stop(mut self) {
        if let Some(tx) = self.stop.take() {
            let _ = tx.send(());
        }
        tokio::time::timeout(WAIT, self.server)
            .await
            .expect("server stops within the wait")
            .expect("server task ends cleanly");
    }
}

/// One request; returns the status code and body.
async fn request(addr: SocketAddr, raw: &str) -> (u16, String) {
    tokio::time::timeout(WAIT, async {
        let mut s = TcpStream::connect(addr).await.expect("connect");
        s.write_all(raw.as_bytes()).await.expect("send");
        let mut answer = String::new();
        s.read_to_string(&mut answer).await.expect("answer");
        let (head, body) = answer.split_once("\r\n\r\n").expect("HTTP head");
        let code = head
            .split(' ')
            .nth(1)
            .and_then(|c| c.parse().ok())
            .expect("status code");
        (code, body.to_owned())
    })
    .await
    .expect("answer within the wait")
}

async fn scrape(addr: SocketAddr) -> HashMap<String, f64> {
    let (code, body) = request(addr, "GET /metrics HTTP/1.1\r\nHost: x\r\n\r\n").await;
    assert_eq!(code, 200);
    parse_exposition(&body)
}

/// Series name with labels -> value; panics on a line that is not the text format.
fn parse_exposition(text: &str) -> HashMap<String, f64> {
    let mut series = HashMap::new();
    for line in text.lines() {
        if line.starts_with("# HELP ") || line.starts_with("# TYPE ") || line.is_empty() {
            continue;
        }
        let (key, value) = line.rsplit_once(' ').expect("name and value");
        let value: f64 = value.parse().expect("numeric value");
        if let Some(open) = key.find('{') {
            assert!(key.ends_with('}'), "labels close: {line}");
            assert!(
                key[..open]
                    .chars()
                    .all(|c| c.is_ascii_alphanumeric() || c == '_'),
                "metric name: {line}"
            );
        }
        assert!(
            series.insert(key.to_owned(), value).is_none(),
            "duplicate {key}"
        );
    }
    series
}

#[tokio::test]
async fn a_scrape_shows_what_the_sensors_and_store_reported() {
    let agent = start().await;
    let m = &agent.metrics;
    let gps = m.sensor(SensorId(0)).unwrap();
    for i in 0..7 {
        gps.reading(Quantity::Latitude, 1 + i);
    }
    gps.error(SensorErrorKind::BadLine);
    gps.error(SensorErrorKind::BadLine);
    let co2 = m.sensor(SensorId(2)).unwrap();
    co2.set_state(SensorState::Failed, "NACK at 0x62");
    co2.restarted();
    m.store.set_bytes(123_456);
    m.store.set_unsent(42, Some(Duration::from_secs(30)));
    m.store.committed(40, Duration::from_millis(3));
    // A blocking sleep is one voluntary context switch of this (live) thread: the wake-up
    // counter then has something to count however the runtime's threads were scheduled.
    std::thread::sleep(Duration::from_millis(2));

    let s = scrape(agent.addr).await;
    assert_eq!(
        s["aloft_readings_total{sensor=\"gps\",quantity=\"latitude\"}"],
        7.0
    );
    assert_eq!(
        s["aloft_sensor_errors_total{sensor=\"gps\",kind=\"bad_line\"}"],
        2.0
    );
    assert_eq!(
        s["aloft_sensor_errors_total{sensor=\"gps\",kind=\"nack\"}"],
        0.0
    );
    assert_eq!(
        s["aloft_sensor_state{sensor=\"co2\",kind=\"scd41\",state=\"failed\"}"],
        1.0
    );
    assert_eq!(s["aloft_sensor_restarts_total{sensor=\"co2\"}"], 1.0);
    assert_eq!(s["aloft_store_bytes"], 123_456.0);
    assert_eq!(s["aloft_store_unsent_records"], 42.0);
    assert!(s["aloft_store_oldest_unsent_age_seconds"] >= 30.0);
    assert_eq!(s["aloft_store_records_committed_total"], 40.0);
    assert!((s["aloft_store_last_commit_seconds"] - 0.003).abs() < 1e-9);
    // This thread has blocked at least once (the sleep above).
    assert!(s["aloft_agent_voluntary_context_switches_total"] > 0.0);
    // Each sensor has one state set.
    let set_states = s
        .iter()
        .filter(|(k, v)| k.starts_with("aloft_sensor_state{") && **v == 1.0)
        .count();
    assert_eq!(set_states, 3);
    agent.stop().await;
}

#[tokio::test]
async fn other_paths_and_methods_are_refused() {
    let agent = start().await;
    assert_eq!(
        request(agent.addr, "GET /secrets HTTP/1.1\r\n\r\n").await.0,
        404
    );
    assert_eq!(
        request(agent.addr, "POST /metrics HTTP/1.1\r\n\r\n")
            .await
            .0,
        405
    );
    assert_eq!(request(agent.addr, "garbage\r\n\r\n").await.0, 400);
    assert_eq!(
        request(agent.addr, "GET /metrics?x=1 HTTP/1.0\r\n\r\n")
            .await
            .0,
        200
    );
    agent.stop().await;
}

#[tokio::test]
async fn an_oversized_request_is_cut_off_and_others_are_still_served() {
    let agent = start().await;
    let huge = format!("GET /metrics HTTP/1.1\r\nX: {}\r\n\r\n", "a".repeat(20_000));
    let mut s = TcpStream::connect(agent.addr).await.unwrap();
    // The server may close before taking it all; what matters is its answer.
    let _ = s.write_all(huge.as_bytes()).await;
    let mut answer = Vec::new();
    let _ = tokio::time::timeout(WAIT, s.read_to_end(&mut answer))
        .await
        .unwrap();
    let answer = String::from_utf8_lossy(&answer);
    assert!(answer.starts_with("HTTP/1.1 431 "), "{answer}");
    assert!(!scrape(agent.addr).await.is_empty());
    agent.stop().await;
}

#[tokio::test]
async fn clients_that_never_finish_their_request_do_not_block_a_scrape() {
    let agent = start().await;
    let mut stalled = Vec::new();
    for _ in 0..8 {
        let mut s = TcpStream::connect(agent.addr).await.unwrap();
        s.write_all(b"GET /metr").await.unwrap();
        stalled.push(s);
    }
    let silent = TcpStream::connect(agent.addr).await.unwrap();
    let s = scrape(agent.addr).await;
    assert!(s.contains_key("aloft_store_bytes"));
    drop((stalled, silent));
    agent.stop().await;
}

#[tokio::test]
async fn status_fetches_the_local_picture_and_renders_it() {
    let agent = start().await;
    let gps = agent.metrics.sensor(SensorId(0)).unwrap();
    gps.set_state(SensorState::Running, "fix 3D");
    gps.reading(Quantity::Latitude, aloft_agent::clock::monotonic_ns());
    agent
        .metrics
        .sensor(SensorId(1))
        .unwrap()
        .set_state(SensorState::Degraded, "stale value");
    agent
        .metrics
        .store
        .set_unsent(9, Some(Duration::from_secs(5)));

    let report = status::fetch(agent.addr).await.unwrap();
    assert_eq!(report.node, "glider-d-kmwp");
    assert_eq!(report.boot_id.len(), 32);
    assert_eq!(report.time.source, TimeSource::Reconstructed);
    assert_eq!(report.time.last_correlation_source, Some(TimeSource::Gnss));
    assert_eq!(report.time.ntp_synchronised, Some(false));
    let names: Vec<_> = report.sensors.iter().map(|s| s.name.as_str()).collect();
    assert_eq!(names, ["gps", "static", "co2"]);
    assert_eq!(report.sensors[0].state, Some(SensorState::Running));
    assert_eq!(report.sensors[0].readings, 1);
    assert!(report.sensors[0].last_reading_age_s.unwrap() < 60.0);
    assert_eq!(report.sensors[2].last_reading_age_s, None);
    assert_eq!(report.store.unsent, 9);

    let text = report.render();
    assert!(text.contains("node glider-d-kmwp"), "{text}");
    assert!(text.contains("time gnss-correlated"), "{text}");
    assert!(text.contains("2026-06-01T00:00:00Z"), "{text}");
    let static_line = text.lines().find(|l| l.starts_with("static ")).unwrap();
    assert!(static_line.contains("degraded") && static_line.contains("stale value"));
    assert!(text.contains("unsent 9 records"), "{text}");
    agent.stop().await;
}

#[tokio::test]
async fn status_from_a_port_where_no_agent_listens_is_a_connect_error() {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    drop(listener);
    assert!(matches!(
        status::fetch(addr).await,
        Err(status::StatusError::Connect { .. })
    ));
}
