//! Sensor tunables through the hub as a process: written with `PUT`/`PATCH` (a `null`
//! removes a key), refused with a `400` `Status` past their bounds or of a type they
//! cannot have, sent in the desired spec to an agent of protocol version 3 and left out for
//! one of version 2, and shown in force (`status.tunables`) once the agent reports them.

#![allow(clippy::unwrap_used)] // A test harness: a failed setup step should stop the test loudly.

use std::path::Path;

use aloft_hub::testing::{HubProcess, NodeClient, api_get, api_request, client_config, hello};
use aloft_protocol::StoreEpoch;
use aloft_protocol::sync::{
    Downlink, Observed, ObservedSensor, SensorTunables, TunableValue, Uplink,
};
use serde_json::{Value, json};

const BIN: &str = env!("CARGO_BIN_EXE_aloft-hub");
const EPOCH: StoreEpoch = StoreEpoch([0xab; 16]);
const SPEC: &str = "/api/v1/nodes/glider/sensors/outside-air/spec";

fn json_of(body: &[u8]) -> Value {
    serde_json::from_slice(body).unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tunables_are_written_bounded_sent_by_version_and_shown_in_force() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("hub");
    let tokens = HubProcess::init(Path::new(BIN), &data, "glider").unwrap();
    let hub = HubProcess::start(Path::new(BIN), &data).unwrap();
    let tls = client_config(&hub.ca_file()).unwrap();
    let admin = Some(tokens.admin.as_str());
    let request = |method: &'static str, body: Value| {
        let tls = tls.clone();
        let addr = hub.addr;
        let admin = admin.map(str::to_owned);
        async move {
            api_request(addr, &tls, admin.as_deref(), method, SPEC, Some(&body))
                .await
                .unwrap()
        }
    };

    let (status, body) = request(
        "PATCH",
        json!({"tunables": {"pressure_oversampling": 16, "humidity_oversampling": 2}}),
    )
    .await;
    assert_eq!(status, 200, "{}", String::from_utf8_lossy(&body));
    let (status, body) = request(
        "PATCH",
        json!({"intervalMs": 2000, "tunables": {"humidity_oversampling": null}}),
    )
    .await;
    assert_eq!(status, 200, "{}", String::from_utf8_lossy(&body));
    let sensor = json_of(&body);
    assert_eq!(
        sensor.pointer("/spec/tunables"),
        Some(&json!({"pressure_oversampling": 16}))
    );
    assert_eq!(sensor.pointer("/spec/intervalMs"), Some(&json!(2000)));
    assert_eq!(sensor.pointer("/metadata/generation"), Some(&json!(2)));

    // Hostile sizes and types: a Status 400 each, nothing written.
    let nine: serde_json::Map<String, Value> =
        (0..9).map(|i| (format!("k{i}"), json!(1))).collect();
    for (what, body) in [
        ("nine keys", json!({"tunables": nine})),
        ("a long key", json!({"tunables": {"k".repeat(33): 1}})),
        (
            "a huge key",
            json!({"tunables": {"k".repeat(1_000_000): 1}}),
        ),
        ("an upper-case key", json!({"tunables": {"Pressure": 1}})),
        ("an empty key", json!({"tunables": {"": 1}})),
        (
            "a long text",
            json!({"tunables": {"dynamic_model": "x".repeat(33)}}),
        ),
        (
            "a fraction",
            json!({"tunables": {"pressure_oversampling": 1.5}}),
        ),
        (
            "an array",
            json!({"tunables": {"pressure_oversampling": [16]}}),
        ),
        (
            "an object",
            json!({"tunables": {"pressure_oversampling": {"x": 1}}}),
        ),
        ("a list of tunables", json!({"tunables": [1, 2]})),
    ] {
        for method in ["PATCH", "PUT"] {
            let (status, body) = request(method, body.clone()).await;
            assert_eq!(
                status,
                400,
                "{what} by {method}: {}",
                String::from_utf8_lossy(&body)
            );
            let refusal = json_of(&body);
            assert_eq!(refusal["kind"], "Status", "{what}");
            assert_eq!(refusal["reason"], "BadRequest", "{what}");
            assert!(
                refusal["message"].as_str().unwrap_or_default().len() < 2000,
                "{what}: the refusal is bounded"
            );
        }
    }
    let (_, body) = api_get(hub.addr, &tls, admin, "/api/v1/nodes/glider/desired")
        .await
        .unwrap();
    let desired = json_of(&body);
    assert_eq!(
        desired.pointer("/spec/sensors/0/tunables"),
        Some(&json!({"pressure_oversampling": 16}))
    );
    assert_eq!(
        desired.pointer("/spec/sensors/0/generation"),
        Some(&json!(2))
    );

    // An agent of version 2 gets the spec without them (it could not apply them).
    let mut old = NodeClient::connect(hub.addr, &tls, &tokens.node)
        .await
        .unwrap();
    let mut v2 = hello("glider", EPOCH);
    v2.protocol_version = 2;
    assert_eq!(old.hello(v2).await.unwrap().protocol_version, 2);
    match old.recv().await.unwrap() {
        Downlink::Desired(spec) => {
            assert_eq!(spec.sensors.len(), 1);
            assert!(spec.tunables.is_empty(), "{spec:?}");
        }
        other => panic!("the desired spec, got {other:?}"),
    }
    drop(old);

    // One of version 3 gets them, and its report of what is in force is shown.
    let mut agent = NodeClient::connect(hub.addr, &tls, &tokens.node)
        .await
        .unwrap();
    agent.hello(hello("glider", EPOCH)).await.unwrap();
    let spec = match agent.recv().await.unwrap() {
        Downlink::Desired(spec) => spec,
        other => panic!("the desired spec, got {other:?}"),
    };
    assert_eq!(
        spec.tunables,
        vec![SensorTunables {
            name: "outside-air".into(),
            tunables: vec![("pressure_oversampling".into(), TunableValue::Integer(16))],
        }]
    );
    agent
        .send(&Uplink::Observed(Observed {
            sensors: vec![ObservedSensor {
                name: "outside-air".into(),
                observed_generation: 2,
                refused: None,
            }],
            tunables: vec![SensorTunables {
                name: "outside-air".into(),
                tunables: vec![
                    ("humidity_oversampling".into(), TunableValue::Integer(1)),
                    ("pressure_oversampling".into(), TunableValue::Integer(16)),
                    ("temperature_oversampling".into(), TunableValue::Integer(1)),
                ],
            }],
        }))
        .await
        .unwrap();
    let deadline = tokio::time::Instant::now() + std::time::Duration::from_secs(15);
    let sensor = loop {
        let (_, body) = api_get(
            hub.addr,
            &tls,
            admin,
            "/api/v1/nodes/glider/sensors/outside-air",
        )
        .await
        .unwrap();
        let sensor = json_of(&body);
        if sensor.pointer("/status/tunables").is_some() {
            break sensor;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "never observed: {sensor}"
        );
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    };
    assert_eq!(
        sensor.pointer("/status/observedGeneration"),
        Some(&json!(2))
    );
    assert_eq!(
        sensor.pointer("/status/tunables"),
        Some(&json!({
            "humidity_oversampling": 1,
            "pressure_oversampling": 16,
            "temperature_oversampling": 1
        }))
    );

    // A PUT without tunables clears them: apply makes the spec exactly the file.
    let (status, body) = request("PUT", json!({"intervalMs": 2000})).await;
    assert_eq!(status, 200, "{}", String::from_utf8_lossy(&body));
    assert_eq!(json_of(&body).pointer("/spec/tunables"), None);
    match agent.recv().await.unwrap() {
        Downlink::Desired(spec) => assert!(spec.tunables.is_empty(), "{spec:?}"),
        other => panic!("the new desired spec, got {other:?}"),
    }
}
