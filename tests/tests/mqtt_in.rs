//! The agent's MQTT bus, inward: the real `aloft-agent` flying the simulated flight
//! (deploy/examples/sim.toml, sped up) with an `[mqtt]` section and an `mqtt` sensor, a real
//! Mosquitto from Debian on a free loopback port, a real hub, and the real `mosquitto_pub`
//! and `mosquitto_sub` as the other programs on the board (docs/mqtt.md, "Ingest (in)" and
//! "KubeEdge device twin and mappers").
//!
//! One test, one broker, one agent, one hub, in phases: ingest from `mosquitto_pub` (a
//! single reading and a batch); a KubeEdge mapper's text push; the twin's get, a reported
//! value taken, a desired value refused, in KubeEdge's format as `mosquitto_sub` sees it;
//! the delta of a desired interval set with `aloftctl` that the mqtt sensor cannot take;
//! malformed, oversized, unknown-sensor and flooding publishers refused with reasons on the
//! error topic and counted, while the simulated sensors keep their rates; then, the agent
//! stopped, the readings are in its store with a descriptor naming topic and client, and
//! the hub holds exactly what the store holds.
//!
//! The test skips (with a line on stderr) when Mosquitto is not installed; `cargo xtask
//! test` installs it.

#![allow(clippy::unwrap_used)]

use std::io::Write;
use std::process::{Command, Stdio};
use std::time::Duration;

use aloft_test_support::mosquitto::{self, Mosquitto, Received, Subscription};
use aloft_tests::system::{
    Agent, AgentSetup, Flight, Hub, HubData, HubLink, NODE, SystemError, compare, store_dump,
    store_epoch, wait_until,
};
use serde_json::{Value, json};

/// Long enough for anything the bus does.
const BUS: Duration = Duration::from_secs(30);
/// The mqtt sensor's rate bound in this test.
const RATE: f64 = 40.0;

fn skip() -> bool {
    if mosquitto::available() {
        return false;
    }
    eprintln!(
        "skipping: mosquitto and mosquitto-clients are not installed (cargo xtask test installs them)"
    );
    true
}

fn other(e: impl std::fmt::Display) -> SystemError {
    SystemError::Mismatch(e.to_string())
}

fn ingest_topic(sensor: &str) -> String {
    format!("aloft/{NODE}/ingest/{sensor}")
}

/// The value of one series of `name` whose labels contain every one of `labels`.
fn series(agent: &Agent, name: &str, labels: &[&str]) -> f64 {
    let Some(text) = agent.metrics_text() else {
        return 0.0;
    };
    text.lines()
        .filter(|l| l.starts_with(&format!("{name}{{")))
        .filter(|l| labels.iter().all(|want| l.contains(want)))
        .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
        .sum()
}

fn refused(agent: &Agent, reason: &str) -> f64 {
    series(
        agent,
        "aloft_agent_ingest_rejected_total",
        &["sensor=\"sampler\"", &format!("reason=\"{reason}\"")],
    )
}

fn taken(agent: &Agent) -> f64 {
    series(
        agent,
        "aloft_agent_ingest_readings_total",
        &["sensor=\"sampler\""],
    )
}

/// Readings of `sensor` the agent counted.
fn readings_of(agent: &Agent, sensor: &str) -> f64 {
    series(
        agent,
        "aloft_readings_total",
        &[&format!("sensor=\"{sensor}\"")],
    )
}

fn publish(broker: &Mosquitto, topic: &str, payload: &str) -> Result<(), SystemError> {
    if mosquitto::publish(broker, topic, payload, None).map_err(other)? {
        Ok(())
    } else {
        Err(other(format!("mosquitto_pub to {topic} failed")))
    }
}

/// The JSON of the first message on `topic` whose payload satisfies `pick`.
fn message_on(
    sub: &Subscription,
    topic: &str,
    pick: impl Fn(&Value) -> bool,
) -> Result<Value, SystemError> {
    sub.wait_for(topic, BUS, |received: &[Received]| {
        received
            .iter()
            .filter(|r| r.topic == topic)
            .filter_map(|r| serde_json::from_str::<Value>(&r.payload).ok())
            .find(|v| pick(v))
    })
    .map_err(other)
}

#[test]
fn other_programs_readings_and_kubeedge_twins_reach_the_store_and_the_hub()
-> Result<(), SystemError> {
    if skip() {
        return Ok(());
    }
    let dir = tempfile::tempdir().map_err(other)?;
    let broker = Mosquitto::start(&dir.path().join("broker")).map_err(other)?;
    let data = HubData::init(&dir.path().join("hub"))?;
    let hub = Hub::start(&data)?;
    let store = dir.path().join("store");
    let setup = AgentSetup::write(
        dir.path(),
        "agent",
        &store,
        &Flight {
            hub: Some(HubLink::through(hub.addr(), &data)),
            ..Flight::default()
        },
    )?;
    let mut text = std::fs::read_to_string(&setup.config).map_err(other)?;
    text.push_str(&format!(
        "\n[mqtt]\nbroker = {:?}\nkeepalive = \"5s\"\nreconnect_max = \"1s\"\n\
         [[sensor]]\nname = \"sampler\"\nkind = \"mqtt\"\nclient_id = \"sampler-tool\"\n\
         max_readings_per_s = {RATE:.1}\nmapper_topic = \"kubeedge/sampler/ozone\"\n\
         mapper_quantity = \"ozone_mole_fraction\"\n\
         [sensor.quantities.air_temperature]\nmin = 150.0\nmax = 350.0\n\
         [sensor.quantities.ozone_mole_fraction]\nmin = 0.0\nmax = 1e-5\n",
        broker.addr()
    ));
    std::fs::write(&setup.config, text).map_err(other)?;

    let errors = Subscription::start(&broker, &format!("aloft/{NODE}/ingest/+/error"), None)
        .map_err(other)?;
    let twins = Subscription::start(&broker, "$hw/events/device/#", None).map_err(other)?;
    let agent = Agent::start(&setup)?;
    let run = (|| -> Result<(), SystemError> {
        // The agent has subscribed once it says it is online (it subscribes first).
        wait_until("the agent online on the bus", BUS, || {
            mosquitto::retained(&broker, &format!("aloft/{NODE}/status"), None)
                .ok()?
                .into_iter()
                .any(|r| r.payload == "online")
                .then_some(())
        })?;

        // Ingest: one reading stamped on arrival, a batch with its own times.
        publish(
            &broker,
            &ingest_topic("sampler"),
            r#"{"quantity":"air_temperature","value":251.25}"#,
        )?;
        let now_s = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_err(other)?
            .as_secs_f64();
        publish(
            &broker,
            &ingest_topic("sampler"),
            &json!({"readings": [
                {"quantity": "air_temperature", "value": 252.5, "time": now_s - 1.0},
                {"quantity": "ozone_mole_fraction", "value": 4.25e-8, "quality": ["stale"]}
            ]})
            .to_string(),
        )?;
        wait_until("three ingested readings", BUS, || {
            (taken(&agent) >= 3.0).then_some(())
        })?;

        // A KubeEdge mapper's MQTT push (the framework's text format).
        publish(
            &broker,
            "kubeedge/sampler/ozone",
            "time is 2026-12-07 22:10:05  kubeedge/sampler/ozone: 5.5e-8",
        )?;
        wait_until("the mapper's push ingested", BUS, || {
            (taken(&agent) >= 4.0).then_some(())
        })?;

        // The twin: get, a reported value taken, a desired value refused. The GNSS twin
        // carries a position once the receiver has one (on a loaded machine the agent may
        // ask before its first fix): wait for it on the bus.
        wait_until("a GNSS position on the bus", BUS, || {
            mosquitto::retained(&broker, &format!("aloft/{NODE}/gps/latitude"), None)
                .ok()?
                .into_iter()
                .next()
                .map(|_| ())
        })?;
        publish(
            &broker,
            "$hw/events/device/gps/twin/get",
            r#"{"event_id":"get-gps","timestamp":1}"#,
        )?;
        let got = message_on(&twins, "$hw/events/device/gps/twin/get/result", |v| {
            v["event_id"] == "get-gps"
        })?;
        let status = &got["twin"]["status"];
        if !(status["actual"]["value"].is_string()
            && status["metadata"]["type"] == "string"
            && got["twin"]["latitude"]["actual"]["value"]
                .as_str()
                .is_some_and(|v| v.parse::<f64>().is_ok())
            && got["twin"]["enabled"]["actual"]["value"] == "true"
            && got["timestamp"].as_i64().is_some_and(|t| t > 0))
        {
            return Err(other(format!("gps twin: {got}")));
        }
        publish(
            &broker,
            "$hw/events/device/sampler/twin/update",
            &json!({"event_id": "upd-1", "timestamp": 1,
                "twin": {"air_temperature": {"actual": {"value": "260.5"},
                                             "metadata": {"type": "float"}}}})
            .to_string(),
        )?;
        let result = message_on(
            &twins,
            "$hw/events/device/sampler/twin/update/result",
            |v| v["event_id"] == "upd-1",
        )?;
        if result["twin"]["air_temperature"]["actual"]["value"] != "260.5"
            || result.get("code").is_some()
        {
            return Err(other(format!("update result: {result}")));
        }
        let document = message_on(
            &twins,
            "$hw/events/device/sampler/twin/update/document",
            |v| v["twin"]["air_temperature"]["current"]["actual"]["value"] == "260.5",
        )?;
        if !document["twin"]["air_temperature"]
            .as_object()
            .is_some_and(|d| d.contains_key("last"))
        {
            return Err(other(format!("document: {document}")));
        }
        wait_until("the twin's reported value ingested", BUS, || {
            (taken(&agent) >= 5.0).then_some(())
        })?;
        publish(
            &broker,
            "$hw/events/device/gps/twin/update",
            r#"{"event_id":"upd-2","twin":{"enabled":{"expected":{"value":"false"}}}}"#,
        )?;
        let refusal = message_on(&twins, "$hw/events/device/gps/twin/update/result", |v| {
            v["event_id"] == "upd-2"
        })?;
        if refusal["code"] != 403
            || !refusal["reason"]
                .as_str()
                .is_some_and(|r| r.contains("hub"))
        {
            return Err(other(format!("desired value not refused: {refusal}")));
        }
        publish(
            &broker,
            "$hw/events/device/sampler/twin/get",
            r#"{"event_id":"get-sampler"}"#,
        )?;
        let sampler = message_on(&twins, "$hw/events/device/sampler/twin/get/result", |v| {
            v["event_id"] == "get-sampler"
        })?;
        if sampler["twin"]["air_temperature"]["actual"]["value"] != "260.5" {
            return Err(other(format!("sampler twin: {sampler}")));
        }

        // The delta: a desired interval the sampler cannot take (an mqtt sensor sends at
        // its own rate) is refused by the agent, stays on the twin as expected without
        // actual, and an update of a reported value answers it on the delta topic.
        let set = Command::new(aloft_tests::system::binary("aloftctl")?)
            .args([
                "set",
                "sensor",
                "sampler",
                "--node",
                NODE,
                "--interval",
                "2s",
            ])
            .args(["--wait", "--timeout", "30s"])
            .env_remove("ALOFT_CONFIG")
            .env("ALOFT_HUB", format!("https://{}", hub.addr()))
            .env("ALOFT_CA", &data.ca_file)
            .env("ALOFT_TOKEN", data.admin_token()?)
            .output()
            .map_err(other)?;
        let said = format!(
            "{}{}",
            String::from_utf8_lossy(&set.stdout),
            String::from_utf8_lossy(&set.stderr)
        );
        // Exit 3: the agent observed the desired state and refused it.
        if set.status.code() != Some(3) || !said.contains("no interval") {
            return Err(other(format!(
                "aloftctl set --interval on the sampler ({}): {said}",
                set.status
            )));
        }
        publish(
            &broker,
            "$hw/events/device/sampler/twin/get",
            r#"{"event_id":"get-desired"}"#,
        )?;
        let desired = message_on(&twins, "$hw/events/device/sampler/twin/get/result", |v| {
            v["event_id"] == "get-desired"
        })?;
        let interval = &desired["twin"]["interval_ms"];
        if interval["expected"]["value"] != "2000" || interval.get("actual").is_some() {
            return Err(other(format!(
                "the desired interval on the twin: {desired}"
            )));
        }
        publish(
            &broker,
            "$hw/events/device/sampler/twin/update",
            &json!({"event_id": "upd-3", "timestamp": 1,
                "twin": {"air_temperature": {"actual": {"value": "261.75"},
                                             "metadata": {"type": "float"}}}})
            .to_string(),
        )?;
        let delta = message_on(&twins, "$hw/events/device/sampler/twin/update/delta", |v| {
            v["delta"].is_object()
        })?;
        if delta["delta"] != json!({"interval_ms": "2000"})
            || delta["twin"]["interval_ms"]["expected"]["value"] != "2000"
            || delta["twin"]["interval_ms"]["metadata"]["type"] != "int"
            || delta["event_id"].as_str().is_none_or(str::is_empty)
            || delta["timestamp"].as_i64().is_none_or(|t| t <= 0)
        {
            return Err(other(format!("delta: {delta}")));
        }
        message_on(
            &twins,
            "$hw/events/device/sampler/twin/update/result",
            |v| {
                v["event_id"] == "upd-3"
                    && v["twin"]["air_temperature"]["actual"]["value"] == "261.75"
            },
        )?;
        message_on(
            &twins,
            "$hw/events/device/sampler/twin/update/document",
            |v| v["twin"]["air_temperature"]["current"]["actual"]["value"] == "261.75",
        )?;
        wait_until("the twin's second reported value ingested", BUS, || {
            (taken(&agent) >= 6.0).then_some(())
        })?;

        // Bad publishers: refused with reasons, counted.
        publish(&broker, &ingest_topic("sampler"), "{not json")?;
        // Above the 128 KiB bound (and the command line's), so from a file.
        let big = dir.path().join("oversized.json");
        std::fs::write(
            &big,
            format!(
                "[{}]",
                vec![r#"{"quantity":"air_temperature","value":250}"#; 5_000].join(",")
            ),
        )
        .map_err(other)?;
        let sent = Command::new("mosquitto_pub")
            .args(broker.client_args(None))
            .args(["-t", &ingest_topic("sampler"), "-q", "1", "-f"])
            .arg(&big)
            .status()
            .map_err(other)?;
        if !sent.success() {
            return Err(other("mosquitto_pub -f failed"));
        }
        publish(
            &broker,
            &ingest_topic("sampler"),
            r#"{"quantity":"air_temperature","value":20}"#,
        )?;
        publish(
            &broker,
            &ingest_topic("nobody"),
            r#"{"quantity":"air_temperature","value":250}"#,
        )?;
        for (topic, reason) in [
            (ingest_topic("sampler") + "/error", "malformed"),
            (ingest_topic("sampler") + "/error", "oversized"),
            (ingest_topic("nobody") + "/error", "unknown_sensor"),
        ] {
            message_on(&errors, &topic, |v| {
                v["reason"] == reason && v["detail"].is_string()
            })?;
        }
        wait_until("the refusals counted", BUS, || {
            (refused(&agent, "malformed") >= 1.0
                && refused(&agent, "oversized") >= 1.0
                && agent.metric("aloft_agent_ingest_unknown_sensor_total")? >= 1.0)
                .then_some(())
        })?;

        // A flood: one publisher as fast as it can for several seconds. The excess is
        // refused, and the simulated sensors keep their rates.
        let window = Duration::from_secs(5);
        let pitot_before = {
            let a = readings_of(&agent, "pitot");
            std::thread::sleep(window);
            readings_of(&agent, "pitot") - a
        };
        let taken_before = taken(&agent);
        let flood_start = std::time::Instant::now();
        let mut flood = Command::new("mosquitto_pub")
            .args(broker.client_args(None))
            .args(["-t", &ingest_topic("sampler"), "-l", "-q", "0"])
            .stdin(Stdio::piped())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .map_err(other)?;
        let mut stdin = flood.stdin.take().ok_or_else(|| other("no stdin"))?;
        let feeder = std::thread::spawn(move || {
            let line = "{\"quantity\":\"air_temperature\",\"value\":250}\n".repeat(1000);
            let end = std::time::Instant::now() + Duration::from_secs(7);
            while std::time::Instant::now() < end {
                if stdin.write_all(line.as_bytes()).is_err() {
                    break;
                }
            }
        });
        std::thread::sleep(Duration::from_secs(1));
        let pitot_flooded = {
            let a = readings_of(&agent, "pitot");
            std::thread::sleep(window);
            readings_of(&agent, "pitot") - a
        };
        feeder
            .join()
            .map_err(|_| other("the flood's feeder panicked"))?;
        let _ = flood.wait();
        let limited = refused(&agent, "rate_limited");
        let taken_flood = taken(&agent) - taken_before;
        let flood_s = flood_start.elapsed().as_secs_f64();
        if limited < 1_000.0 {
            return Err(other(format!("only {limited} flood messages rate-limited")));
        }
        // At most the burst and the rate over the flood (the broker may hand the agent the
        // flood for longer than the publisher took to send it: counted until now), with a
        // second of slack.
        let bound = RATE + RATE * (flood_s + 1.0);
        if taken_flood > bound {
            return Err(other(format!(
                "{taken_flood} flood readings taken, above the bound of {bound}"
            )));
        }
        if pitot_flooded < 0.8 * pitot_before {
            return Err(other(format!(
                "the pitot stored {pitot_flooded} readings in {window:?} during the flood, \
                 {pitot_before} before"
            )));
        }
        message_on(&errors, &(ingest_topic("sampler") + "/error"), |v| {
            v["reason"] == "rate_limited"
        })?;
        Ok(())
    })();
    let logs = agent.log_tail();
    agent.into_process().terminate()?;
    run.map_err(|e| other(format!("{e}{logs}")))?;

    // The store holds the ingested readings, each traceable to its topic and client.
    let records = store_dump(&store)?;
    let text_of = |v: &Value| v.to_string();
    let sampler_id = records
        .iter()
        .find_map(|r| {
            let d = r.record.get("Descriptor")?;
            (d["name"] == "sampler").then(|| d["sensor"].clone())
        })
        .ok_or_else(|| other("no descriptor of the sampler in the store"))?;
    let sampler_readings: Vec<&Value> = records
        .iter()
        .map(|r| &r.record)
        .filter(|r| {
            let t = text_of(r);
            t.contains("Reading") && r.pointer("/Reading/sensor") == Some(&sampler_id)
        })
        .collect();
    let values: Vec<f64> = sampler_readings
        .iter()
        .filter_map(|r| r.pointer("/Reading/value")?.as_f64())
        .collect();
    // Another program's readings are not the simulator's, even in the simulated flight.
    if let Some(flagged) = sampler_readings.iter().find(|r| {
        r.pointer("/Reading/quality")
            .and_then(Value::as_u64)
            .is_some_and(|q| q & 8 != 0)
    }) {
        return Err(other(format!(
            "an ingested reading flagged simulated: {flagged}"
        )));
    }
    // A value outside the declared range is taken, flagged out of range.
    let outside = sampler_readings
        .iter()
        .find(|r| r.pointer("/Reading/value").and_then(Value::as_f64) == Some(20.0))
        .ok_or_else(|| {
            other(format!(
                "the out-of-range value 20 K is not among the sampler's stored values {:?}",
                &values[..values.len().min(20)]
            ))
        })?;
    if outside
        .pointer("/Reading/quality")
        .and_then(Value::as_u64)
        .is_none_or(|q| q & 1 == 0)
    {
        return Err(other(format!(
            "20 K stored without its out-of-range flag: {outside}"
        )));
    }
    for want in [251.25, 252.5, 4.25e-8, 5.5e-8, 260.5, 261.75] {
        if !values
            .iter()
            .any(|v| (v - want).abs() <= want.abs() * 1e-12)
        {
            return Err(other(format!(
                "{want} not among the sampler's stored values {:?}",
                &values[..values.len().min(20)]
            )));
        }
    }
    let descriptor = records
        .iter()
        .map(|r| text_of(&r.record))
        .find(|t| t.contains("MQTT ingest"))
        .ok_or_else(|| other("no descriptor of the sampler in the store"))?;
    for want in [
        &ingest_topic("sampler"),
        "sampler-tool",
        "kubeedge/sampler/ozone",
    ] {
        if !descriptor.contains(want) {
            return Err(other(format!("the descriptor lacks {want}: {descriptor}")));
        }
    }
    // What is still unsent goes to the hub with an agent whose sensors are off (one with
    // sensors never has nothing unsent); then the hub must hold exactly the store.
    let drainer = Agent::start_draining(dir.path(), &store, HubLink::through(hub.addr(), &data))?;
    let drained = wait_until("nothing unsent", BUS * 2, || {
        drainer
            .metric("aloft_store_unsent_records")
            .filter(|n| *n == 0.0)
    });
    let drain_logs = drainer.log_tail();
    drainer.into_process().terminate()?;
    drained.map_err(|e| other(format!("{e}{drain_logs}")))?;
    hub.into_process().terminate()?;
    // The flown records and the drainer's own, one store, one numbering (the drainer may
    // have let go of acked records since the first dump).
    let mut merged: std::collections::BTreeMap<u64, _> =
        records.iter().map(|r| (r.seq, r.clone())).collect();
    for r in store_dump(&store)? {
        if merged.get(&r.seq).is_some_and(|held| held != &r) {
            return Err(other(format!("record {} changed in the store", r.seq)));
        }
        merged.insert(r.seq, r);
    }
    let records: Vec<_> = merged.into_values().collect();
    let synced = compare(&data.dump()?, &store_epoch(&store)?, &records)?;
    if synced.readings < sampler_readings.len() {
        return Err(other(format!("the hub holds {synced:?}")));
    }
    Ok(())
}
