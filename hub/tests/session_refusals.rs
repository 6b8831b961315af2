//! How a node session ends on the hub's side, through a hub run from its binary: revoking
//! the node's token or deleting the node ends its live session at once (the node is told why,
//! nothing sent afterwards is stored or acked); sequence numbers reaching 2^63 are refused.

#![allow(clippy::unwrap_used)] // A test harness: a failed setup step should stop the test loudly.

use std::path::Path;
use std::process::Command;

use aloft_hub::testing::{
    ClientError, HubProcess, NodeClient, api_get, api_request, client_config, hello,
};
use aloft_protocol::sync::{Downlink, RefusalCode};
use aloft_protocol::{Quality, Quantity, Reading, Record, SensorId, StoreEpoch, Timestamp};

const BIN: &str = env!("CARGO_BIN_EXE_aloft-hub");
const EPOCH: StoreEpoch = StoreEpoch([0x5e; 16]);

fn reading(seq: u64) -> Record {
    Record::Reading(Reading {
        sensor: SensorId(1),
        quantity: Quantity::AirPressure,
        time: Timestamp::monotonic((seq % 1_000_000) * 1_000_000_000),
        value: seq as f64,
        quality: Quality::GOOD,
    })
}

fn entries(first: u64, last: u64) -> Vec<(u64, Record)> {
    (first..=last).map(|s| (s, reading(s))).collect()
}

fn dumped_seqs(data: &Path, node: &str) -> Vec<u64> {
    let output = Command::new(BIN)
        .arg("dump")
        .arg("--data")
        .arg(data)
        .args(["--node", node])
        .output()
        .unwrap();
    assert!(output.status.success());
    String::from_utf8(output.stdout)
        .unwrap()
        .lines()
        .map(|l| {
            serde_json::from_str::<serde_json::Value>(l).unwrap()["seq"]
                .as_u64()
                .unwrap()
        })
        .collect()
}

/// After the end: the hub has said `Refused { WrongNode }` and closed, and a batch sent
/// now gets no ack.
async fn assert_ended_and_nothing_more_acked(node: &mut NodeClient) {
    let refused = loop {
        match node.recv().await {
            Ok(Downlink::Refused { code, message }) => break (code, message),
            Ok(_) => continue,
            Err(e) => panic!("expected a refusal at once, got {e}"),
        }
    };
    assert_eq!(refused.0, RefusalCode::WrongNode, "{}", refused.1);
    // The socket may already be closed (the send fails) or close before any ack.
    if node
        .send(&aloft_protocol::sync::Uplink::Batch(batch(10, 19)))
        .await
        .is_ok()
    {
        loop {
            match node.recv().await {
                Ok(Downlink::Ack { watermark, .. }) => panic!("acked {watermark} after the end"),
                Ok(_) => continue,
                Err(ClientError::Closed) => break,
                Err(e) => panic!("expected the hub to close, got {e}"),
            }
        }
    }
}

fn batch(first: u64, last: u64) -> aloft_protocol::sync::Batch {
    use aloft_protocol::sync::batch::{PREFERRED_ENCODING, encode_batch};
    aloft_protocol::sync::Batch {
        epoch: EPOCH,
        first,
        last,
        encoding: PREFERRED_ENCODING,
        payload: encode_batch(PREFERRED_ENCODING, &entries(first, last)).unwrap(),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn revoking_a_node_token_ends_its_live_session_at_once() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("hub");
    let tokens = HubProcess::init(Path::new(BIN), &data, "glider").unwrap();
    let hub = HubProcess::start(Path::new(BIN), &data).unwrap();
    let tls = client_config(&hub.ca_file()).unwrap();
    let mut node = NodeClient::connect(hub.addr, &tls, &tokens.node)
        .await
        .unwrap();
    node.hello(hello("glider", EPOCH)).await.unwrap();
    assert_eq!(node.batch(EPOCH, 0, 9, &entries(0, 9)).await.unwrap(), 9);

    let (_, body) = api_get(hub.addr, &tls, Some(&tokens.admin), "/api/v1/tokens")
        .await
        .unwrap();
    let list: serde_json::Value = serde_json::from_slice(&body).unwrap();
    let id = list["items"]
        .as_array()
        .unwrap()
        .iter()
        .find(|t| t["spec"]["node"] == "glider")
        .unwrap()["metadata"]["name"]
        .as_str()
        .unwrap()
        .to_owned();
    let (status, body) = api_request(
        hub.addr,
        &tls,
        Some(&tokens.admin),
        "DELETE",
        &format!("/api/v1/tokens/{id}"),
        None,
    )
    .await
    .unwrap();
    assert_eq!(status, 200, "{}", String::from_utf8_lossy(&body));
    assert_ended_and_nothing_more_acked(&mut node).await;
    assert!(matches!(
        NodeClient::connect(hub.addr, &tls, &tokens.node).await,
        Err(ClientError::Http(401))
    ));
    hub.stop().unwrap();
    assert_eq!(dumped_seqs(&data, "glider"), (0..=9).collect::<Vec<_>>());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn deleting_a_node_ends_its_session_and_refuses_its_records() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("hub");
    let tokens = HubProcess::init(Path::new(BIN), &data, "glider").unwrap();
    let hub = HubProcess::start(Path::new(BIN), &data).unwrap();
    let tls = client_config(&hub.ca_file()).unwrap();
    let (status, body) = api_request(
        hub.addr,
        &tls,
        Some(&tokens.admin),
        "POST",
        "/api/v1/nodes",
        Some(&serde_json::json!({"metadata": {"name": "kite"}})),
    )
    .await
    .unwrap();
    assert_eq!(status, 201, "{}", String::from_utf8_lossy(&body));
    let created: serde_json::Value = serde_json::from_slice(&body).unwrap();
    let secret = created["status"]["token"].as_str().unwrap().to_owned();
    let mut kite = NodeClient::connect(hub.addr, &tls, &secret).await.unwrap();
    kite.hello(hello("kite", EPOCH)).await.unwrap();
    assert_eq!(kite.batch(EPOCH, 0, 9, &entries(0, 9)).await.unwrap(), 9);
    // The other node is not disturbed.
    let mut glider = NodeClient::connect(hub.addr, &tls, &tokens.node)
        .await
        .unwrap();
    glider.hello(hello("glider", EPOCH)).await.unwrap();

    let (status, body) = api_request(
        hub.addr,
        &tls,
        Some(&tokens.admin),
        "DELETE",
        "/api/v1/nodes/kite",
        None,
    )
    .await
    .unwrap();
    assert_eq!(status, 200, "{}", String::from_utf8_lossy(&body));
    assert_ended_and_nothing_more_acked(&mut kite).await;
    assert_eq!(glider.batch(EPOCH, 0, 4, &entries(0, 4)).await.unwrap(), 4);
    hub.stop().unwrap();
    assert_eq!(dumped_seqs(&data, "kite"), (0..=9).collect::<Vec<_>>());
    assert_eq!(dumped_seqs(&data, "glider"), (0..=4).collect::<Vec<_>>());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_batch_reaching_2_63_is_refused_and_nothing_of_it_is_stored() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("hub");
    let tokens = HubProcess::init(Path::new(BIN), &data, "glider").unwrap();
    let hub = HubProcess::start(Path::new(BIN), &data).unwrap();
    let tls = client_config(&hub.ca_file()).unwrap();
    let max = i64::MAX as u64;
    // Just below the boundary is stored as it is.
    let mut node = NodeClient::connect(hub.addr, &tls, &tokens.node)
        .await
        .unwrap();
    node.hello(hello("glider", EPOCH)).await.unwrap();
    assert_eq!(
        node.batch(EPOCH, max - 2, max, &entries(max - 2, max))
            .await
            .unwrap(),
        max
    );
    for (first, last) in [(max, max + 1), (max + 1, max + 1), (u64::MAX - 1, u64::MAX)] {
        let mut node = NodeClient::connect(hub.addr, &tls, &tokens.node)
            .await
            .unwrap();
        node.hello(hello("glider", StoreEpoch([0x7f; 16])))
            .await
            .unwrap();
        let mut message = batch(first, last);
        message.epoch = StoreEpoch([0x7f; 16]);
        node.send(&aloft_protocol::sync::Uplink::Batch(message))
            .await
            .unwrap();
        loop {
            match node.recv().await.unwrap() {
                Downlink::Refused { code, message } => {
                    assert_eq!(code, RefusalCode::Malformed);
                    assert!(message.contains("2^63"), "{message}");
                    break;
                }
                Downlink::Ack { watermark, .. } => panic!("acked {watermark}"),
                _ => continue,
            }
        }
    }
    hub.stop().unwrap();
    let stored = dumped_seqs(&data, "glider");
    assert_eq!(stored, vec![max - 2, max - 1, max]);
}
