//! The hub as a process against agents of other protocol versions (docs/protocol.md,
//! "Evolution"): one a version ahead, whose hello is refused until it offers this hub's
//! version and whose newer quantity, record kind and trailing fields are then kept and
//! shown by code; and one of version 1, welcomed as such.

#![allow(clippy::unwrap_used)] // A test harness: a failed setup step should stop the test loudly.

use std::path::Path;
use std::process::Command;

use aloft_hub::testing::{HubProcess, NodeClient, api_get, client_config, hello};
use aloft_protocol::sync::{
    BacklogReport, GnssModel, LiveUpdate, NodeHealth, OLDEST_PROTOCOL_VERSION, PROTOCOL_VERSION,
    RefusalCode, Uplink,
};
use aloft_protocol::{
    DescriptorRecord, ExtensionRecord, Quality, Quantity, Reading, Record, SensorDescriptor,
    SensorId, StoreEpoch, TimeSource, Timestamp,
};

const BIN: &str = env!("CARGO_BIN_EXE_aloft-hub");
const EPOCH: StoreEpoch = StoreEpoch([0xcd; 16]);
/// A quantity this build has no name for: one a newer agent knows.
const NEWER: Quantity = Quantity::from_code(900);
const T0: i64 = 1_790_000_000_000_000_000;

fn reading(quantity: Quantity, value: f64) -> Reading {
    Reading {
        sensor: SensorId(1),
        quantity,
        time: Timestamp::with_utc(5, T0, TimeSource::Gnss),
        value,
        quality: Quality::GOOD,
    }
}

fn ndjson(body: &[u8]) -> Vec<serde_json::Value> {
    String::from_utf8_lossy(body)
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_agent_a_version_ahead_syncs_and_its_newer_quantity_and_record_are_kept() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("hub");
    let tokens = HubProcess::init(Path::new(BIN), &data, "glider").unwrap();
    let hub = HubProcess::start(Path::new(BIN), &data).unwrap();
    let tls = client_config(&hub.ca_file()).unwrap();

    // Its own version first: refused, as a hub refuses any version newer than its own.
    let mut ahead = hello("glider", EPOCH);
    ahead.protocol_version = PROTOCOL_VERSION + 1;
    let mut client = NodeClient::connect(hub.addr, &tls, &tokens.node)
        .await
        .unwrap();
    client.send(&Uplink::Hello(ahead)).await.unwrap();
    assert_eq!(
        client.refusal().await.unwrap(),
        RefusalCode::ProtocolVersion
    );

    // Then this hub's version, with a field added after this version at the end of its
    // hello (a newer agent's types): welcomed at the version offered.
    let mut client = NodeClient::connect(hub.addr, &tls, &tokens.node)
        .await
        .unwrap();
    let mut bytes = Uplink::Hello(hello("glider", EPOCH)).encode();
    bytes.extend([1, 42]);
    client.send_raw(bytes).await.unwrap();
    let welcome = match client.recv().await.unwrap() {
        aloft_protocol::sync::Downlink::Welcome(w) => w,
        other => panic!("a welcome, got {other:?}"),
    };
    assert_eq!(welcome.protocol_version, PROTOCOL_VERSION);

    let entries = vec![
        (
            0,
            Record::Descriptor(DescriptorRecord {
                sensor: SensorId(1),
                name: "solar".into(),
                kind: "ina219".into(),
                time: Timestamp::monotonic(0),
                descriptor: SensorDescriptor::new("INA219"),
            }),
        ),
        (1, Record::Reading(reading(Quantity::AirPressure, 19_000.0))),
        (2, Record::Reading(reading(NEWER, 13.25))),
        (
            3,
            Record::Extension(ExtensionRecord {
                kind: 7,
                body: vec![1, 2, 3, 250],
            }),
        ),
        // Another quantity this build does not know: kept apart from the first.
        (4, Record::Reading(reading(Quantity::from_code(901), -1.0))),
    ];
    assert_eq!(client.batch(EPOCH, 0, 4, &entries).await.unwrap(), 4);

    // The live lane, with a field added at the end of the update.
    let mut live = Uplink::Live(LiveUpdate {
        time: Timestamp::with_utc(6, T0, TimeSource::Gnss),
        readings: vec![reading(NEWER, 13.5)],
        sensors: vec![],
        backlog: BacklogReport {
            records: 0,
            bytes: 0,
            oldest_age_s: None,
        },
    })
    .encode();
    live.extend([1, 0x3f, 0x80, 0, 0]);
    client.send_raw(live).await.unwrap();
    // The node's health, which this version added to the live lane, is taken in stride.
    client
        .send(&Uplink::Health(NodeHealth {
            time: Timestamp::with_utc(6, T0, TimeSource::Gnss),
            clock_trusted: Some(false),
            store_bytes: 1 << 20,
            store_max_bytes: 1 << 30,
            store_policy: "decimate".into(),
            gnss_models: vec![GnssModel {
                sensor: SensorId(0),
                code: 7,
            }],
            power: None,
        }))
        .await
        .unwrap();
    client.send(&Uplink::Ping { nonce: 5 }).await.unwrap();
    loop {
        if client.recv().await.unwrap() == (aloft_protocol::sync::Downlink::Pong { nonce: 5 }) {
            break;
        }
    }

    let get = |path: &'static str| api_get(hub.addr, &tls, Some(&tokens.admin), path);
    // Stored and shown by its code; queried by the same label.
    let (status, body) = get("/api/v1/nodes/glider/readings").await.unwrap();
    assert_eq!(status, 200);
    let lines = ndjson(&body);
    let shown: Vec<_> = lines
        .iter()
        .map(|l| (l["quantity"].clone(), l["unit"].clone(), l["value"].clone()))
        .collect();
    assert_eq!(
        shown,
        vec![
            ("air_pressure".into(), "Pa".into(), 19_000.0.into()),
            ("quantity_900".into(), serde_json::Value::Null, 13.25.into()),
            (
                "quantity_901".into(),
                serde_json::Value::Null,
                (-1.0).into()
            ),
        ]
    );
    let (status, body) = get("/api/v1/nodes/glider/readings?quantity=quantity_900")
        .await
        .unwrap();
    assert_eq!(status, 200);
    let lines = ndjson(&body);
    assert_eq!(lines.len(), 1);
    assert_eq!(lines[0]["seq"], 2);
    assert_eq!(lines[0]["sensor"], "solar");

    // The live lane's newest value of it shows on the node.
    let (_, body) = get("/api/v1/nodes").await.unwrap();
    let list: serde_json::Value = serde_json::from_slice(&body).unwrap();
    let latest = &list["items"][0]["status"]["latest"];
    assert_eq!(latest[0]["quantity"], "quantity_900", "{latest}");
    assert_eq!(latest[0]["value"], 13.5);

    // The dump keeps the record kind it does not know, whole, and the quantity's code.
    let output = Command::new(BIN)
        .arg("dump")
        .arg("--data")
        .arg(&data)
        .args(["--node", "glider"])
        .output()
        .unwrap();
    assert!(output.status.success());
    let dumped = ndjson(&output.stdout);
    assert_eq!(dumped.len(), 5);
    assert_eq!(dumped[1]["record"]["Reading"]["quantity"], "AirPressure");
    assert_eq!(dumped[2]["record"]["Reading"]["quantity"], 900);
    assert_eq!(
        dumped[3]["record"],
        serde_json::json!({ "Extension": { "kind": 7, "body": [1, 2, 3, 250] } })
    );
    drop(client);

    // An agent of the oldest version is welcomed at its version.
    let mut old = NodeClient::connect(hub.addr, &tls, &tokens.node)
        .await
        .unwrap();
    let mut oldest = hello("glider", EPOCH);
    oldest.protocol_version = OLDEST_PROTOCOL_VERSION;
    let welcome = old.hello(oldest).await.unwrap();
    assert_eq!(welcome.protocol_version, OLDEST_PROTOCOL_VERSION);
    assert_eq!(welcome.watermark, Some(4));
}
