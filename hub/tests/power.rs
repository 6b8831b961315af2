//! Power steps through the hub run from its binary: the node's power step arrives in its
//! health on the live lane, is shown on the `Node` (null, unknown, for an agent that sends
//! none) and wakes a node watch when it changes; an operator's exemption of a sensor from
//! power steps is desired state, sent in the spec to an agent of protocol version 4 (at
//! once while it is connected) and left out for one of version 3.

#![allow(clippy::unwrap_used)] // A test harness: a failed setup step should stop the test loudly.

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use aloft_hub::testing::{HubProcess, NodeClient, api_get, api_request, client_config, hello};
use aloft_protocol::sync::{Downlink, NodeHealth, Uplink};
use aloft_protocol::{PowerReport, StoreEpoch, TimeSource, Timestamp};
use rustls::ClientConfig;
use rustls_pki_types::ServerName;
use serde_json::{Value, json};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio_rustls::TlsConnector;
use tokio_rustls::client::TlsStream;

const BIN: &str = env!("CARGO_BIN_EXE_aloft-hub");
const DEADLINE: Duration = Duration::from_secs(15);
const EPOCH: StoreEpoch = StoreEpoch([0x9a; 16]);
const T0: i64 = 1_790_000_000_000_000_000;

fn health(at_s: u64, power: Option<PowerReport>) -> Uplink {
    Uplink::Health(NodeHealth {
        time: Timestamp::with_utc(
            at_s * 1_000_000_000,
            T0 + i64::try_from(at_s).unwrap() * 1_000_000_000,
            TimeSource::Gnss,
        ),
        clock_trusted: Some(true),
        store_bytes: 0,
        store_max_bytes: 1 << 30,
        store_policy: "decimate".into(),
        gnss_models: vec![],
        power,
    })
}

fn step(name: &str, level: u8, reason: &str, budget: Option<u64>) -> PowerReport {
    PowerReport {
        step: name.into(),
        level,
        reason: reason.into(),
        since: Timestamp::with_utc(3_000_000_000, T0 + 3_000_000_000, TimeSource::Gnss),
        upload_bytes_per_s: budget,
        overridden: vec!["gps".into()],
    }
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

async fn open_watch(
    addr: std::net::SocketAddr,
    tls: &Arc<ClientConfig>,
    token: &str,
) -> TlsStream<tokio::net::TcpStream> {
    let tcp = tokio::net::TcpStream::connect(addr).await.unwrap();
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

/// Reads the watch until `needle` has arrived.
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
        assert!(n > 0, "closed before {needle:?}");
        all.extend_from_slice(&buf[..n]);
    }
}

async fn node(addr: std::net::SocketAddr, tls: &Arc<ClientConfig>, token: &str) -> Value {
    let (status, body) = api_get(addr, tls, Some(token), "/api/v1/nodes/glider")
        .await
        .unwrap();
    assert_eq!(status, 200);
    serde_json::from_slice(&body).unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_power_step_of_the_live_lane_is_shown_on_the_node_and_wakes_its_watch() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("hub");
    let tokens = HubProcess::init(Path::new(BIN), &data, "glider").unwrap();
    let hub = HubProcess::start(Path::new(BIN), &data).unwrap();
    let tls = client_config(&hub.ca_file()).unwrap();
    let mut agent = NodeClient::connect(hub.addr, &tls, &tokens.node)
        .await
        .unwrap();
    agent.hello(hello("glider", EPOCH)).await.unwrap();

    // No power step said: unknown (null), never read as full power.
    send_handled(&mut agent, &health(1, None), 1).await;
    let shown = node(hub.addr, &tls, &tokens.admin).await;
    let power = shown.pointer("/status/health/power").unwrap();
    assert_eq!(power, &Value::Null, "{shown}");

    let mut watch = open_watch(hub.addr, &tls, &tokens.admin).await;
    let mut seen = Vec::new();
    read_until(&mut watch, &mut seen, "\"ADDED\"").await;

    let economy = step(
        "economy",
        1,
        "state of charge 0.34 below 0.35",
        Some(20_000),
    );
    send_handled(&mut agent, &health(2, Some(economy.clone())), 2).await;
    read_until(&mut watch, &mut seen, "\"step\":\"economy\"").await;
    let shown = node(hub.addr, &tls, &tokens.admin).await;
    assert_eq!(
        shown.pointer("/status/health/power").unwrap(),
        &json!({
            "step": "economy",
            "level": 1,
            "reason": "state of charge 0.34 below 0.35",
            "since": "2026-09-21T14:13:23Z",
            "sinceMonoNs": 3_000_000_000u64,
            "uploadBytesPerS": 20_000,
            "overridden": ["gps"],
        }),
        "{shown}"
    );

    // The same step reported again later is no change; a deeper step is.
    send_handled(&mut agent, &health(3, Some(economy)), 3).await;
    let survival = step(
        "survival",
        2,
        "pack temperature -21.0 C below -20.0 C",
        None,
    );
    send_handled(&mut agent, &health(4, Some(survival)), 4).await;
    read_until(&mut watch, &mut seen, "\"step\":\"survival\"").await;
    let text = String::from_utf8_lossy(&seen);
    assert_eq!(
        text.matches("\"step\":\"economy\"").count(),
        1,
        "the repeated step woke the watch: {text}"
    );
    // An agent that stops saying (an older one after an update back) is unknown again.
    send_handled(&mut agent, &health(5, None), 5).await;
    read_until(&mut watch, &mut seen, "\"power\":null").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_power_override_is_sent_to_a_version_4_agent_and_withheld_from_version_3() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("hub");
    let tokens = HubProcess::init(Path::new(BIN), &data, "glider").unwrap();
    let hub = HubProcess::start(Path::new(BIN), &data).unwrap();
    let tls = client_config(&hub.ca_file()).unwrap();
    let admin = tokens.admin.clone();
    let patch = |sensor: &'static str, body: Value| {
        let (tls, admin, addr) = (tls.clone(), admin.clone(), hub.addr);
        async move {
            let path = format!("/api/v1/nodes/glider/sensors/{sensor}/spec");
            let (status, body) = api_request(addr, &tls, Some(&admin), "PATCH", &path, Some(&body))
                .await
                .unwrap();
            (status, serde_json::from_slice::<Value>(&body).unwrap())
        }
    };

    let (status, sensor) = patch("gps", json!({"powerOverride": true})).await;
    assert_eq!(status, 200, "{sensor}");
    assert_eq!(sensor.pointer("/spec/powerOverride"), Some(&json!(true)));
    assert_eq!(sensor.pointer("/metadata/generation"), Some(&json!(1)));
    let (status, sensor) = patch("static", json!({"intervalMs": 500})).await;
    assert_eq!(status, 200, "{sensor}");
    assert_eq!(sensor.pointer("/spec/powerOverride"), None);
    // Not a bool: refused, nothing written.
    let (status, refusal) = patch("gps", json!({"powerOverride": "yes"})).await;
    assert_eq!(status, 400, "{refusal}");
    let (_, body) = api_get(hub.addr, &tls, Some(&admin), "/api/v1/nodes/glider/desired")
        .await
        .unwrap();
    let desired: Value = serde_json::from_slice(&body).unwrap();
    assert_eq!(
        desired.pointer("/spec/powerOverrides"),
        Some(&json!(["gps"]))
    );
    // Audited like every desired-state change.
    let (_, body) = api_get(hub.addr, &tls, Some(&admin), "/api/v1/events?node=glider")
        .await
        .unwrap();
    assert!(
        String::from_utf8_lossy(&body).contains("exempt from power steps"),
        "{}",
        String::from_utf8_lossy(&body)
    );

    // Version 3: the spec without the exemption (it has no power steps).
    let mut old = NodeClient::connect(hub.addr, &tls, &tokens.node)
        .await
        .unwrap();
    let mut v3 = hello("glider", EPOCH);
    v3.protocol_version = 3;
    assert_eq!(old.hello(v3).await.unwrap().protocol_version, 3);
    match old.recv().await.unwrap() {
        Downlink::Desired(spec) => {
            assert_eq!(spec.sensors.len(), 2);
            assert!(spec.power_overrides.is_empty(), "{spec:?}");
        }
        other => panic!("the desired spec, got {other:?}"),
    }
    drop(old);

    // Version 4: with it; a change while connected is pushed at once.
    let mut agent = NodeClient::connect(hub.addr, &tls, &tokens.node)
        .await
        .unwrap();
    assert_eq!(
        agent
            .hello(hello("glider", EPOCH))
            .await
            .unwrap()
            .protocol_version,
        aloft_protocol::sync::PROTOCOL_VERSION
    );
    match agent.recv().await.unwrap() {
        Downlink::Desired(spec) => assert_eq!(spec.power_overrides, ["gps"]),
        other => panic!("the desired spec, got {other:?}"),
    }
    let (status, _) = patch("static", json!({"powerOverride": true})).await;
    assert_eq!(status, 200);
    match agent.recv().await.unwrap() {
        Downlink::Desired(spec) => assert_eq!(spec.power_overrides, ["gps", "static"]),
        other => panic!("the new desired spec, got {other:?}"),
    }
    let (status, sensor) = patch("gps", json!({"powerOverride": false})).await;
    assert_eq!(status, 200);
    assert_eq!(sensor.pointer("/metadata/generation"), Some(&json!(2)));
    match agent.recv().await.unwrap() {
        Downlink::Desired(spec) => assert_eq!(spec.power_overrides, ["static"]),
        other => panic!("the new desired spec, got {other:?}"),
    }
    // A replace that desires nothing but "no exemption" removes the entry, as `{}` does.
    let path = "/api/v1/nodes/glider/sensors/static/spec";
    let (status, body) = api_request(
        hub.addr,
        &tls,
        Some(&admin),
        "PUT",
        path,
        Some(&json!({"powerOverride": false})),
    )
    .await
    .unwrap();
    assert_eq!(status, 200);
    let sensor: Value = serde_json::from_slice(&body).unwrap();
    assert_eq!(
        sensor.pointer("/status/deleted"),
        Some(&json!(true)),
        "{sensor}"
    );
    match agent.recv().await.unwrap() {
        Downlink::Desired(spec) => {
            assert!(spec.power_overrides.is_empty(), "{spec:?}");
            assert!(spec.sensors.iter().all(|s| s.name != "static"), "{spec:?}");
        }
        other => panic!("the new desired spec, got {other:?}"),
    }
}

/// The entries of a tar stream: (path, bytes).
fn untar(bytes: &[u8]) -> Vec<(String, Vec<u8>)> {
    use std::io::Read;
    let mut archive = tar::Archive::new(bytes);
    archive
        .entries()
        .unwrap()
        .map(|entry| {
            let mut entry = entry.unwrap();
            let path = entry.path().unwrap().display().to_string();
            let mut content = Vec::new();
            entry.read_to_end(&mut content).unwrap();
            (path, content)
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn power_step_records_are_stored_and_exported_and_damaged_ones_counted_not_fatal() {
    use aloft_protocol::{
        DescriptorRecord, ExtensionRecord, POWER_STEP_RECORD_KIND, PowerEffect, PowerStepRecord,
        Quality, Quantity, Reading, Record, SensorDescriptor, SensorId,
    };
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("hub");
    let tokens = HubProcess::init(Path::new(BIN), &data, "glider").unwrap();
    let hub = HubProcess::start(Path::new(BIN), &data).unwrap();
    let tls = client_config(&hub.ca_file()).unwrap();
    let mut agent = NodeClient::connect(hub.addr, &tls, &tokens.node)
        .await
        .unwrap();
    agent.hello(hello("glider", EPOCH)).await.unwrap();
    let at = |s: i64| {
        Timestamp::with_utc(
            s as u64 * 1_000_000_000,
            T0 + s * 1_000_000_000,
            TimeSource::Gnss,
        )
    };
    let good = PowerStepRecord {
        time: at(2),
        step: "survival".into(),
        level: 2,
        reason: "pack temperature -21.0 C below -20.0 C".into(),
        effects: vec![PowerEffect {
            sensor: SensorId(1),
            interval_ms: None,
            disabled: true,
            overridden: false,
        }],
        upload_bytes_per_s: Some(5_000),
    };
    let mut cut = postcard::to_allocvec(&good).unwrap();
    cut.truncate(cut.len() / 2);
    let entries = vec![
        (
            0,
            Record::Descriptor(DescriptorRecord {
                sensor: SensorId(1),
                name: "cosmic".into(),
                kind: "cosmicwatch".into(),
                time: at(0),
                descriptor: SensorDescriptor::new("CosmicWatch v2"),
            }),
        ),
        (
            1,
            Record::Reading(Reading {
                sensor: SensorId(1),
                quantity: Quantity::MuonEventCount,
                time: at(1),
                value: 1.0,
                quality: Quality::GOOD,
            }),
        ),
        (2, good.to_record().unwrap()),
        (
            3,
            Record::Extension(ExtensionRecord {
                kind: POWER_STEP_RECORD_KIND,
                body: cut,
            }),
        ),
        (
            4,
            Record::Extension(ExtensionRecord {
                kind: POWER_STEP_RECORD_KIND,
                body: vec![0xFF; 40],
            }),
        ),
    ];
    assert_eq!(agent.batch(EPOCH, 0, 4, &entries).await.unwrap(), 4);

    let (status, body) = api_get(
        hub.addr,
        &tls,
        Some(&tokens.admin),
        "/api/v1/nodes/glider/export?format=csv",
    )
    .await
    .unwrap();
    assert_eq!(status, 200, "{}", String::from_utf8_lossy(&body));
    let files = untar(&body);
    let (_, sidecar) = files
        .iter()
        .find(|(p, _)| p.ends_with(".sidecar.json"))
        .unwrap();
    let sidecar: Value = serde_json::from_slice(sidecar).unwrap();
    assert_eq!(sidecar["power_steps_damaged"], 2, "{sidecar}");
    let steps = sidecar["power_steps"].as_array().unwrap();
    assert_eq!(steps.len(), 1, "{sidecar}");
    assert_eq!(steps[0]["step"], "survival");
    assert_eq!(steps[0]["time"], "2026-09-21T14:13:22.000000000Z");
    assert_eq!(
        steps[0]["effects"],
        json!([{"sensor": "cosmic", "interval_ms": null, "disabled": true, "overridden": false}])
    );
    // The hub carries on: the node is served as before.
    let shown = node(hub.addr, &tls, &tokens.admin).await;
    assert_eq!(shown.pointer("/metadata/name"), Some(&json!("glider")));
}
