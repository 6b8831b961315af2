//! Power steps through aloftctl against the real hub binary: `set sensor --power-override`
//! reaches the agent in its desired spec (and `--wait` waits for it like any desired
//! state), `get nodes` shows each node's step in `POWER` (`<unknown>` for a node that
//! reports none), and `describe node` the step's reason, since, budget and exempted
//! sensors, from health reports sent over a real session.

#![allow(clippy::unwrap_used)] // Tests: a failed step should stop the test loudly.

mod common;

use aloft_hub::testing::{NodeClient, client_config, hello};
use aloft_protocol::sync::{Downlink, NodeHealth, Uplink};
use aloft_protocol::{PowerReport, StoreEpoch, TimeSource, Timestamp};
use common::{Hub, created_token};
use serde_json::Value;

#[test]
fn an_override_reaches_the_agent_and_the_power_step_shows_in_get_and_describe() {
    let hub = Hub::start();
    let agent = hub.glider_reported(&["gps", "static"]);

    hub.ctl(&[
        "set",
        "sensor",
        "gps",
        "--node",
        "glider",
        "--power-override",
        "true",
        "--wait",
        "--timeout",
        "20s",
    ])
    .ok();
    let spec = agent.log.lock().unwrap().desired.last().cloned().unwrap();
    assert_eq!(spec.power_overrides, ["gps"]);
    let sensor = hub.json(&["get", "sensors", "gps", "--node", "glider"]);
    assert_eq!(
        sensor.pointer("/spec/powerOverride"),
        Some(&Value::Bool(true)),
        "{sensor}"
    );
    // A value that is not a bool is a usage error before anything is sent.
    let run = hub.ctl(&[
        "set",
        "sensor",
        "gps",
        "--node",
        "glider",
        "--power-override",
        "maybe",
    ]);
    assert_eq!(run.code, 2, "{}", run.stderr);

    // A second node whose agent reports a power step over a real session.
    let created = hub.ctl(&["create", "node", "glider-2"]).ok().stdout;
    let token = created_token(&created);
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let tls = client_config(&hub.ca()).unwrap();
    let client = runtime.block_on(async {
        let mut client = NodeClient::connect(hub.addr(), &tls, &token).await.unwrap();
        client
            .hello(hello("glider-2", StoreEpoch([2; 16])))
            .await
            .unwrap();
        client
            .send(&Uplink::Health(NodeHealth {
                time: Timestamp::with_utc(9, 1_795_525_100_000_000_000, TimeSource::Gnss),
                clock_trusted: Some(true),
                store_bytes: 0,
                store_max_bytes: 1 << 30,
                store_policy: "decimate".into(),
                gnss_models: vec![],
                power: Some(PowerReport {
                    step: "survival".into(),
                    level: 2,
                    reason: "pack temperature -21.0 C below -20.0 C\u{1b}[2J".into(),
                    since: Timestamp::with_utc(8, 1_795_525_000_000_000_000, TimeSource::Gnss),
                    upload_bytes_per_s: Some(5_000),
                    overridden: vec!["gps".into()],
                }),
            }))
            .await
            .unwrap();
        client.send(&Uplink::Ping { nonce: 1 }).await.unwrap();
        loop {
            if client.recv().await.unwrap() == (Downlink::Pong { nonce: 1 }) {
                break;
            }
        }
        client
    });

    let table = hub.ctl(&["get", "nodes"]).ok().stdout;
    let header = table.lines().next().unwrap();
    assert!(header.contains("POWER"), "{table}");
    let row = |name: &str| {
        table
            .lines()
            .find(|l| l.split_whitespace().next() == Some(name))
            .unwrap_or_else(|| panic!("no row {name}: {table}"))
            .to_owned()
    };
    assert!(row("glider-2").contains("survival/2"), "{table}");
    // The stand-in agent of `glider` reports no health: unknown, not full power.
    assert!(row("glider").contains("<unknown>"), "{table}");
    assert!(!row("glider").contains("full"), "{table}");

    let page = hub.ctl(&["describe", "node", "glider-2"]).ok().stdout;
    for expected in [
        "Power:        survival (level 2)",
        "Power reason: pack temperature -21.0 C below -20.0 C",
        "Power since:",
        "Budget:       4.9 KiB/s",
        "Overridden:   gps",
    ] {
        assert!(
            page.contains(expected),
            "describe lacks {expected:?}:\n{page}"
        );
    }
    assert!(!page.contains('\u{1b}'), "{page:?}");
    drop(client);
    drop(agent);
}
