//! Names against the hub as a process: a node an older hub created under a name that
//! breaks today's rule keeps its sessions and its stream and is reported on its `Node`,
//! and what its agent reports unasked (a downlink message it refused) becomes an event.

#![allow(clippy::unwrap_used)] // A test harness: a failed setup step should stop the test loudly.

use std::path::Path;
use std::time::{Duration, Instant};

use aloft_hub::Role;
use aloft_hub::testing::{HubProcess, NodeClient, api_get, client_config, hello};
use aloft_protocol::sync::{LogBatch, LogLine, UNSOLICITED_LOGS, Uplink};
use aloft_protocol::{Quality, Quantity, Reading, Record, SensorId, StoreEpoch, Timestamp};

const BIN: &str = env!("CARGO_BIN_EXE_aloft-hub");
const EPOCH: StoreEpoch = StoreEpoch([0xcd; 16]);
const LEGACY: &str = "glider_2.alps";

fn reading(n: u64) -> Record {
    Record::Reading(Reading {
        sensor: SensorId(1),
        quantity: Quantity::AirPressure,
        time: Timestamp::monotonic(n * 1_000_000_000),
        value: 19_400.0 + n as f64,
        quality: Quality::GOOD,
    })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_node_named_before_the_rule_keeps_syncing_is_reported_and_its_agents_reports_are_events()
{
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("hub");
    let tokens = HubProcess::init(Path::new(BIN), &data, "glider").unwrap();
    // What an older hub, which let '_' and '.' through, left behind.
    let secret = {
        let db = aloft_hub::storage::sqlite::Db::open(&data).unwrap();
        db.write(|conn| {
            conn.execute(
                "INSERT INTO nodes(name, created_utc_ns) VALUES (?1, 1)",
                [LEGACY],
            )
        })
        .unwrap();
        let hub = aloft_hub::Hub::open(&data).unwrap();
        assert!(hub.registry.create_node(LEGACY).is_err(), "not any more");
        hub.tokens
            .create(Role::Node, Some(LEGACY), "made by an older hub")
            .unwrap()
            .1
    };
    let hub = HubProcess::start(Path::new(BIN), &data).unwrap();
    let tls = client_config(&hub.ca_file()).unwrap();

    let mut client = NodeClient::connect(hub.addr, &tls, &secret).await.unwrap();
    client.hello(hello(LEGACY, EPOCH)).await.unwrap();
    let entries: Vec<_> = (0..3).map(|n| (n, reading(n))).collect();
    assert_eq!(client.batch(EPOCH, 0, 2, &entries).await.unwrap(), 2);
    client
        .send(&Uplink::Logs(LogBatch {
            request: UNSOLICITED_LOGS,
            lines: vec![LogLine {
                time: Timestamp::monotonic(5),
                level: "ERROR".into(),
                sensor: None,
                message: "refused a message from the hub: message of 1200042 bytes is over the 1048576-byte cap".into(),
            }],
        }))
        .await
        .unwrap();

    let (status, body) = api_get(
        hub.addr,
        &tls,
        Some(&tokens.admin),
        "/api/v1/nodes/glider_2.alps",
    )
    .await
    .unwrap();
    assert_eq!(status, 200);
    let node: serde_json::Value = serde_json::from_slice(&body).unwrap();
    let name_valid = node["status"]["conditions"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["type"] == "NameValid")
        .cloned()
        .unwrap();
    assert_eq!(name_valid["status"], "False", "{node}");
    assert!(
        name_valid["message"]
            .as_str()
            .unwrap()
            .contains("'_' at position 7"),
        "{name_valid}"
    );
    assert_eq!(node["status"]["streams"][0]["watermark"], 2, "{node}");

    // The report reaches the control layer after the send returns: wait for it.
    let until = Instant::now() + Duration::from_secs(10);
    loop {
        let (status, body) = api_get(
            hub.addr,
            &tls,
            Some(&tokens.admin),
            "/api/v1/events?node=glider_2.alps",
        )
        .await
        .unwrap();
        assert_eq!(status, 200);
        let text = String::from_utf8_lossy(&body).into_owned();
        if text.contains("1200042 bytes") {
            assert!(text.contains("\"report\""), "{text}");
            break;
        }
        assert!(Instant::now() < until, "no report event: {text}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    drop(client);
    assert!(hub.stop().unwrap().success());
}
