//! The hub as a process: `init`, `run` on a free loopback port, a test client speaking the
//! protocol over real TLS (trusting the `ca.pem` that `init` made), `dump`, the API, and
//! SIGTERM.

#![allow(clippy::unwrap_used)] // A test harness: a failed setup step should stop the test loudly.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::Arc;

use aloft_hub::testing::{
    ClientError, HubProcess, InitTokens, NodeClient, api_get, client_config, hello,
};
use aloft_protocol::sync::batch::{BatchEncoding, PREFERRED_ENCODING, encode_batch};
use aloft_protocol::sync::{
    BacklogReport, Batch, Downlink, LiveUpdate, MAX_MESSAGE_BYTES, RefusalCode, Uplink,
};
use aloft_protocol::{
    Boot, BootId, DescriptorRecord, Gap, GapReason, Quality, Quantity, Reading, Record,
    SensorDescriptor, SensorId, StoreEpoch, TimeCorrelation, TimeSource, Timestamp,
};
use rustls::ClientConfig;

const BIN: &str = env!("CARGO_BIN_EXE_aloft-hub");

struct Running {
    _dir: tempfile::TempDir,
    data: PathBuf,
    hub: HubProcess,
    tokens: InitTokens,
    tls: Arc<ClientConfig>,
}

/// `init` then `run`, with extra nodes created before the start; their tokens.
fn start(extra_nodes: &[&str]) -> (Running, Vec<String>) {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("hub");
    let tokens = HubProcess::init(Path::new(BIN), &data, "glider").unwrap();
    let extra = {
        let hub = aloft_hub::Hub::open(&data).unwrap();
        extra_nodes
            .iter()
            .map(|n| hub.registry.create_node(n).unwrap().secret)
            .collect()
    };
    let hub = HubProcess::start(Path::new(BIN), &data).unwrap();
    let tls = client_config(&hub.ca_file()).unwrap();
    (
        Running {
            _dir: dir,
            data,
            hub,
            tokens,
            tls,
        },
        extra,
    )
}

fn reading(sensor: u16, mono_s: u64, value: f64) -> Record {
    Record::Reading(Reading {
        sensor: SensorId(sensor),
        quantity: Quantity::AirPressure,
        time: Timestamp::monotonic(mono_s * 1_000_000_000),
        value,
        quality: Quality::GOOD,
    })
}

fn dump(data: &Path, node: &str) -> Vec<serde_json::Value> {
    let output = Command::new(BIN)
        .arg("dump")
        .arg("--data")
        .arg(data)
        .args(["--node", node])
        .output()
        .unwrap();
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    String::from_utf8(output.stdout)
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect()
}

fn seqs(lines: &[serde_json::Value]) -> Vec<(String, u64)> {
    lines
        .iter()
        .map(|l| {
            (
                l["epoch"].as_str().unwrap().to_owned(),
                l["seq"].as_u64().unwrap(),
            )
        })
        .collect()
}

const EPOCH: StoreEpoch = StoreEpoch([0xab; 16]);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn batches_with_holes_and_duplicates_are_stored_once_and_acked_by_watermark() {
    let (run, _) = start(&[]);
    let mut client = NodeClient::connect(run.hub.addr, &run.tls, &run.tokens.node)
        .await
        .unwrap();
    let welcome = client.hello(hello("glider", EPOCH)).await.unwrap();
    assert_eq!(welcome.watermark, None, "a new epoch starts empty");

    // 3 does not exist in the store (a hole the batch declares by its range).
    let first: Vec<_> = [0, 1, 2, 4]
        .iter()
        .map(|&n| (n, reading(1, n, n as f64)))
        .collect();
    assert_eq!(client.batch(EPOCH, 0, 4, &first).await.unwrap(), 4);
    // A resend overlapping what the hub holds changes nothing.
    let resend: Vec<_> = [2, 4].iter().map(|&n| (n, reading(1, n, 999.0))).collect();
    assert_eq!(client.batch(EPOCH, 2, 4, &resend).await.unwrap(), 4);
    // Beyond a hole of unreceived numbers: stored, but the watermark waits.
    let ahead: Vec<_> = [8, 9]
        .iter()
        .map(|&n| (n, reading(1, n, n as f64)))
        .collect();
    assert_eq!(client.batch(EPOCH, 8, 9, &ahead).await.unwrap(), 4);
    let (status, body) = api_get(
        run.hub.addr,
        &run.tls,
        Some(&run.tokens.admin),
        "/api/v1/nodes/glider/gaps",
    )
    .await
    .unwrap();
    assert_eq!(status, 200);
    let gaps: serde_json::Value = serde_json::from_slice(&body).unwrap();
    assert_eq!(gaps["items"][0]["type"], "unsynced");
    assert_eq!(
        gaps["items"][0]["covers"],
        serde_json::json!({"first": 5, "last": 7})
    );
    // Filling the hole moves the watermark over what was held beyond it.
    let fill: Vec<_> = [5, 7]
        .iter()
        .map(|&n| (n, reading(1, n, n as f64)))
        .collect();
    assert_eq!(client.batch(EPOCH, 5, 7, &fill).await.unwrap(), 9);
    drop(client);

    let lines = dump(&run.data, "glider");
    let epoch = "ab".repeat(16);
    assert_eq!(
        seqs(&lines),
        [0, 1, 2, 4, 5, 7, 8, 9]
            .iter()
            .map(|&n| (epoch.clone(), n))
            .collect::<Vec<_>>()
    );
    // The first copy of 2 stays: held records never change.
    assert_eq!(lines[2]["record"]["Reading"]["value"], 2.0);

    // A new session resumes from the persisted watermark.
    let mut again = NodeClient::connect(run.hub.addr, &run.tls, &run.tokens.node)
        .await
        .unwrap();
    assert_eq!(
        again.hello(hello("glider", EPOCH)).await.unwrap().watermark,
        Some(9)
    );
    // SIGTERM with a session open: the hub closes it and exits 0.
    assert!(
        run.hub.stop().unwrap().success(),
        "SIGTERM stops the hub cleanly"
    );
    assert!(matches!(again.recv().await, Err(ClientError::Closed)));
    // `init` never overwrites a hub.
    assert!(HubProcess::init(Path::new(BIN), &run.data, "glider").is_err());

    // A restarted hub resumes from the same watermark.
    let hub = HubProcess::start(Path::new(BIN), &run.data).unwrap();
    let mut after = NodeClient::connect(hub.addr, &run.tls, &run.tokens.node)
        .await
        .unwrap();
    assert_eq!(
        after.hello(hello("glider", EPOCH)).await.unwrap().watermark,
        Some(9)
    );
    assert_eq!(
        after
            .batch(EPOCH, 10, 10, &[(10, reading(1, 10, 10.0))])
            .await
            .unwrap(),
        10
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_second_session_replaces_the_first() {
    let (run, _) = start(&[]);
    let mut old = NodeClient::connect(run.hub.addr, &run.tls, &run.tokens.node)
        .await
        .unwrap();
    old.hello(hello("glider", EPOCH)).await.unwrap();
    let mut new = NodeClient::connect(run.hub.addr, &run.tls, &run.tokens.node)
        .await
        .unwrap();
    new.hello(hello("glider", EPOCH)).await.unwrap();
    assert_eq!(old.refusal().await.unwrap(), RefusalCode::Replaced);
    assert!(matches!(old.recv().await, Err(ClientError::Closed)));
    assert_eq!(
        new.batch(EPOCH, 0, 0, &[(0, reading(1, 0, 1.0))])
            .await
            .unwrap(),
        0
    );
    let (_, body) = api_get(
        run.hub.addr,
        &run.tls,
        Some(&run.tokens.admin),
        "/api/v1/nodes/glider",
    )
    .await
    .unwrap();
    let node: serde_json::Value = serde_json::from_slice(&body).unwrap();
    assert_eq!(node["status"]["connected"], true);
    assert_eq!(node["status"]["link"]["sessions"], 2);
}

fn batch_message(epoch: StoreEpoch, first: u64, last: u64, payload: Vec<u8>) -> Vec<u8> {
    Uplink::Batch(Batch {
        epoch,
        first,
        last,
        encoding: PREFERRED_ENCODING,
        payload,
    })
    .encode()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_input_is_refused_with_its_code_and_nothing_is_stored_while_another_node_syncs() {
    let (run, extra) = start(&["bad"]);
    let bad_token = &extra[0];
    let addr = run.hub.addr;

    // A good node keeps syncing between the bad sessions.
    let mut good = NodeClient::connect(addr, &run.tls, &run.tokens.node)
        .await
        .unwrap();
    good.hello(hello("glider", EPOCH)).await.unwrap();
    let mut next = 0u64;

    let valid_hello = Uplink::Hello(hello("bad", EPOCH)).encode();
    let mut future_hello = hello("bad", EPOCH);
    future_hello.protocol_version = 99;
    let one = encode_batch(PREFERRED_ENCODING, &[(0, reading(1, 0, 1.0))]).unwrap();
    // Declares more records than the cap: what a batch inflating past the cap looks like
    // to the plain codec.
    let too_many = postcard::to_allocvec(&(1_000_000u32,)).unwrap();
    let too_many = Uplink::Batch(Batch {
        epoch: EPOCH,
        first: 0,
        last: 0,
        // Plain postcard, whatever the preferred encoding: the cap is the decoder's.
        encoding: BatchEncoding::Postcard,
        payload: too_many,
    })
    .encode();

    enum Input {
        First(Vec<u8>),
        Text,
        AfterHello(Vec<u8>),
    }
    let cases: Vec<(&str, Input, RefusalCode)> = vec![
        (
            "garbage",
            Input::First(vec![0xff; 40]),
            RefusalCode::Malformed,
        ),
        ("text", Input::Text, RefusalCode::Malformed),
        (
            "oversized",
            Input::First(vec![0; MAX_MESSAGE_BYTES + 1]),
            RefusalCode::TooLarge,
        ),
        (
            "truncated hello",
            Input::First(valid_hello[..valid_hello.len() - 3].to_vec()),
            RefusalCode::Malformed,
        ),
        (
            "wrong version",
            Input::First(Uplink::Hello(future_hello).encode()),
            RefusalCode::ProtocolVersion,
        ),
        (
            "another node's hello",
            Input::First(Uplink::Hello(hello("glider", EPOCH)).encode()),
            RefusalCode::WrongNode,
        ),
        (
            "batch before hello",
            Input::First(batch_message(EPOCH, 0, 0, one.clone())),
            RefusalCode::Unexpected,
        ),
        (
            "batch inflating past the cap",
            Input::AfterHello(too_many),
            RefusalCode::TooLarge,
        ),
        (
            "record outside the batch's range",
            Input::AfterHello(batch_message(EPOCH, 5, 9, one.clone())),
            RefusalCode::Malformed,
        ),
        (
            "batch of another epoch",
            Input::AfterHello(batch_message(StoreEpoch([1; 16]), 0, 0, one.clone())),
            RefusalCode::Unexpected,
        ),
        (
            "truncated batch",
            Input::AfterHello({
                let mut m = batch_message(EPOCH, 0, 0, one.clone());
                m.truncate(m.len() - 4);
                m
            }),
            RefusalCode::Malformed,
        ),
        (
            "second hello",
            Input::AfterHello(valid_hello.clone()),
            RefusalCode::Unexpected,
        ),
    ];
    for (what, input, code) in cases {
        let mut bad = NodeClient::connect(addr, &run.tls, bad_token)
            .await
            .unwrap();
        match input {
            Input::First(bytes) => bad.send_raw(bytes).await.unwrap(),
            Input::Text => bad.send_text("hello?").await.unwrap(),
            Input::AfterHello(bytes) => {
                bad.hello(hello("bad", EPOCH)).await.unwrap();
                bad.send_raw(bytes).await.unwrap();
            }
        }
        assert_eq!(bad.refusal().await.unwrap(), code, "{what}");
        assert!(
            matches!(bad.recv().await, Err(ClientError::Closed)),
            "{what}: closed"
        );
        assert_eq!(
            good.batch(EPOCH, next, next, &[(next, reading(1, next, 1.0))])
                .await
                .unwrap(),
            next,
            "{what}: the good node is still served"
        );
        next += 1;
    }
    assert!(
        dump(&run.data, "bad").is_empty(),
        "nothing stored from bad input"
    );
    assert_eq!(dump(&run.data, "glider").len() as u64, next);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unknown_and_revoked_tokens_get_401_before_the_upgrade() {
    let (run, _) = start(&[]);
    let addr = run.hub.addr;
    assert!(matches!(
        NodeClient::connect(addr, &run.tls, "aloft_not-a-token").await,
        Err(ClientError::Http(401))
    ));
    // Other roles cannot connect as a node: 401 too (docs/protocol.md).
    assert!(matches!(
        NodeClient::connect(addr, &run.tls, &run.tokens.admin).await,
        Err(ClientError::Http(401))
    ));
    // The API: no token 401, node token 403, /healthz open.
    let (status, _) = api_get(addr, &run.tls, None, "/api/v1/nodes")
        .await
        .unwrap();
    assert_eq!(status, 401);
    let (status, _) = api_get(addr, &run.tls, Some(&run.tokens.node), "/api/v1/nodes")
        .await
        .unwrap();
    assert_eq!(status, 403);
    let (status, body) = api_get(addr, &run.tls, None, "/healthz").await.unwrap();
    assert_eq!((status, body.as_slice()), (200, b"ok\n".as_slice()));

    NodeClient::connect(addr, &run.tls, &run.tokens.node)
        .await
        .unwrap();
    // Revoked while the hub runs (the database allows a second writer process).
    let hub = aloft_hub::Hub::open(&run.data).unwrap();
    let id = hub
        .tokens
        .list()
        .unwrap()
        .into_iter()
        .find(|t| t.node.as_deref() == Some("glider"))
        .unwrap()
        .id;
    assert!(hub.tokens.revoke(&id).unwrap());
    assert!(matches!(
        NodeClient::connect(addr, &run.tls, &run.tokens.node).await,
        Err(ClientError::Http(401))
    ));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_new_epoch_is_stored_separately_from_the_old_one() {
    let (run, _) = start(&[]);
    let old = StoreEpoch([0x01; 16]);
    let new = StoreEpoch([0x02; 16]);
    let entries: Vec<_> = (0..3).map(|n| (n, reading(1, n, n as f64))).collect();
    let mut client = NodeClient::connect(run.hub.addr, &run.tls, &run.tokens.node)
        .await
        .unwrap();
    client.hello(hello("glider", old)).await.unwrap();
    assert_eq!(client.batch(old, 0, 2, &entries).await.unwrap(), 2);
    drop(client);
    // A replaced SD card: the same numbers again, in a new epoch.
    let mut client = NodeClient::connect(run.hub.addr, &run.tls, &run.tokens.node)
        .await
        .unwrap();
    assert_eq!(
        client.hello(hello("glider", new)).await.unwrap().watermark,
        None
    );
    assert_eq!(client.batch(new, 0, 2, &entries).await.unwrap(), 2);
    let lines = dump(&run.data, "glider");
    let (a, b) = ("01".repeat(16), "02".repeat(16));
    assert_eq!(
        seqs(&lines),
        vec![
            (a.clone(), 0),
            (a.clone(), 1),
            (a, 2),
            (b.clone(), 0),
            (b.clone(), 1),
            (b, 2)
        ]
    );
}

fn ndjson(body: &[u8]) -> Vec<serde_json::Value> {
    std::str::from_utf8(body)
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_api_returns_readings_with_utc_reconstructed_from_their_boots_correlation() {
    let (run, _) = start(&[]);
    let boot = BootId([5; 16]);
    let other_boot = BootId([6; 16]);
    let t0 = 1_790_000_000_000_000_000i64;
    let descriptor = |sensor: u16, name: &str| {
        Record::Descriptor(DescriptorRecord {
            sensor: SensorId(sensor),
            name: name.into(),
            kind: "ms5611".into(),
            time: Timestamp::monotonic(0),
            descriptor: SensorDescriptor::new("MS5611"),
        })
    };
    let records = vec![
        Record::Boot(Boot {
            boot_id: boot,
            mono_ns: 0,
            utc_ns: None,
            agent_version: "test".into(),
        }),
        descriptor(1, "static"),
        descriptor(2, "pitot"),
        reading(1, 10, 19_000.0),
        reading(2, 10, 19_100.0),
        Record::TimeCorrelation(TimeCorrelation {
            boot_id: boot,
            mono_ns: 20_000_000_000,
            utc_ns: t0,
            source: TimeSource::Gnss,
            uncertainty_ns: None,
        }),
        reading(1, 30, 18_900.0),
        Record::Reading(Reading {
            sensor: SensorId(1),
            quantity: Quantity::AirTemperature,
            time: Timestamp::with_utc(31_000_000_000, t0 + 5, TimeSource::Gnss),
            value: 223.0,
            quality: Quality::SIMULATED,
        }),
        Record::Gap(Gap {
            reason: GapReason::Crash,
            covers: None,
            readings: Some(3),
            sensor: None,
            span: None,
        }),
        // A later boot without a correlation: its readings have no UTC (not the old
        // boot's).
        Record::Boot(Boot {
            boot_id: other_boot,
            mono_ns: 0,
            utc_ns: None,
            agent_version: "test".into(),
        }),
        reading(1, 40, 18_800.0),
        // A later correlation of the first boot, 7 ns of drift on: the reading at 30 s is
        // nearer to it than to the one at 20 s.
        Record::TimeCorrelation(TimeCorrelation {
            boot_id: boot,
            mono_ns: 35_000_000_000,
            utc_ns: t0 + 15_000_000_000 + 7,
            source: TimeSource::Gnss,
            uncertainty_ns: None,
        }),
    ];
    let entries: Vec<_> = records
        .into_iter()
        .enumerate()
        .map(|(n, r)| (n as u64, r))
        .collect();
    let mut client = NodeClient::connect(run.hub.addr, &run.tls, &run.tokens.node)
        .await
        .unwrap();
    client.hello(hello("glider", EPOCH)).await.unwrap();
    let last = entries.len() as u64 - 1;
    // In two batches: the correlation arrives after the first reading was stored.
    assert_eq!(client.batch(EPOCH, 0, 4, &entries[..5]).await.unwrap(), 4);
    assert_eq!(
        client.batch(EPOCH, 5, last, &entries[5..]).await.unwrap(),
        last
    );

    let get = |path: &'static str| api_get(run.hub.addr, &run.tls, Some(&run.tokens.admin), path);
    let (status, body) = get("/api/v1/nodes/glider/readings?sensor=static&quantity=air_pressure")
        .await
        .unwrap();
    assert_eq!(status, 200);
    let lines = ndjson(&body);
    let utc: Vec<_> = lines.iter().map(|l| l["utc_ns"].as_i64()).collect();
    assert_eq!(
        utc,
        vec![
            Some(t0 - 10_000_000_000),
            Some(t0 + 10_000_000_000 + 7),
            None
        ]
    );
    assert_eq!(lines[0]["time_source"], "reconstructed");
    assert_eq!(lines[1]["time_source"], "reconstructed");
    assert_eq!(lines[2]["time_source"], "monotonic");
    assert_eq!(lines[0]["sensor"], "static");
    assert_eq!(lines[0]["unit"], "Pa");
    assert_eq!(lines[0]["seq"], 3);
    assert_eq!(lines[0]["epoch"], "ab".repeat(16));

    // A reading that carried UTC keeps it and its source; quality names.
    let (_, body) = get("/api/v1/nodes/glider/readings?quantity=air_temperature")
        .await
        .unwrap();
    let lines = ndjson(&body);
    assert_eq!(lines.len(), 1);
    assert_eq!(lines[0]["utc_ns"], t0 + 5);
    assert_eq!(lines[0]["time_source"], "gnss");
    assert_eq!(lines[0]["quality"], serde_json::json!(["simulated"]));

    // Time range and limit.
    let (_, body) = get("/api/v1/nodes/glider/readings?since=1790000000000000000")
        .await
        .unwrap();
    assert_eq!(ndjson(&body).len(), 2);
    let (_, body) = get("/api/v1/nodes/glider/readings?limit=2").await.unwrap();
    assert_eq!(ndjson(&body).len(), 2);
    let (_, body) = get("/api/v1/nodes/glider/readings?sensor=pitot")
        .await
        .unwrap();
    assert_eq!(ndjson(&body)[0]["utc_ns"], t0 - 10_000_000_000);
    let (status, _) = get("/api/v1/nodes/glider/readings?quantity=warp_factor")
        .await
        .unwrap();
    assert_eq!(status, 400);
    let (status, _) = get("/api/v1/nodes/nobody/readings").await.unwrap();
    assert_eq!(status, 404);

    // The agent's gap record is listed.
    let (_, body) = get("/api/v1/nodes/glider/gaps").await.unwrap();
    let gaps: serde_json::Value = serde_json::from_slice(&body).unwrap();
    assert_eq!(gaps["items"][0]["type"], "recorded");
    assert_eq!(gaps["items"][0]["reason"], "Crash");
    assert_eq!(gaps["items"][0]["seq"], 8);

    // The live lane: the newest values show on the node at once.
    client
        .send(&Uplink::Live(LiveUpdate {
            time: Timestamp::with_utc(50, t0, TimeSource::Gnss),
            readings: vec![Reading {
                sensor: SensorId(1),
                quantity: Quantity::AirPressure,
                time: Timestamp::with_utc(50, t0, TimeSource::Gnss),
                value: 18_700.0,
                quality: Quality::GOOD,
            }],
            sensors: vec![],
            backlog: BacklogReport {
                records: 12,
                bytes: 240,
                oldest_age_s: Some(3.0),
            },
        }))
        .await
        .unwrap();
    client.send(&Uplink::Ping { nonce: 77 }).await.unwrap();
    assert_eq!(client.recv().await.unwrap(), Downlink::Pong { nonce: 77 });
    let (_, body) = get("/api/v1/nodes").await.unwrap();
    let list: serde_json::Value = serde_json::from_slice(&body).unwrap();
    assert_eq!(list["kind"], "NodeList");
    let node = &list["items"][0];
    assert_eq!(node["apiVersion"], "aloft.dev/v1");
    assert_eq!(node["metadata"]["name"], "glider");
    assert_eq!(node["status"]["latest"][0]["value"], 18_700.0);
    assert_eq!(node["status"]["backlog"]["records"], 12);
    assert_eq!(node["status"]["streams"][0]["watermark"], last);
}
