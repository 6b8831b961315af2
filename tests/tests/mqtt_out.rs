//! The agent's MQTT bus, outward: the real `aloft-agent` flying the simulated flight
//! (deploy/examples/sim.toml, sped up) with an `[mqtt]` section, a real Mosquitto from
//! Debian started on a free loopback port with its own config, and the real
//! `mosquitto_sub` as the subscriber (docs/mqtt.md).
//!
//! What is checked: the newest values and the sensors' statuses are retained under
//! `aloft/<node>/...` in the documented JSON; `online` is retained while the agent runs and
//! `offline` after it stops or dies (the last will); TLS with a password over MQTT 5; a
//! broker killed and restarted mid-flight gets its retained state back while the store and
//! the hub lose nothing; a frozen broker (SIGSTOP) neither grows the agent's memory nor slows
//! its sensors; the documented ACL lets only the named programs publish to the ingest topics;
//! no `[mqtt]`, no bus.
//!
//! The tests skip (with a line on stderr) when Mosquitto is not installed; `cargo xtask
//! test` installs it.

#![allow(clippy::unwrap_used)]

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::time::Duration;

use aloft_test_support::mosquitto::{self, BrokerOptions, Mosquitto, Received, Subscription};
use aloft_tests::system::{
    Agent, AgentSetup, Flight, Hub, HubData, HubLink, NODE, SystemError, compare, store_dump,
    store_epoch, wait_until,
};
use serde_json::Value;

/// Unsent records metric of the agent's store.
const UNSENT: &str = "aloft_store_unsent_records";
/// Readings the agent stored since it started.
const READINGS: &str = "aloft_readings_total";
/// Long enough for anything the bus does after a (re)connection.
const BUS: Duration = Duration::from_secs(30);

fn skip() -> bool {
    if mosquitto::available() {
        return false;
    }
    // `cargo xtask test` installed the tools: their absence is a failure, not a skip.
    assert!(
        std::env::var_os("ALOFT_REQUIRE_TOOLS").is_none(),
        "mosquitto and mosquitto-clients are required (ALOFT_REQUIRE_TOOLS) but not installed"
    );
    eprintln!(
        "skipping: mosquitto and mosquitto-clients are not installed (cargo xtask test installs them)"
    );
    true
}

fn other(e: impl std::fmt::Display) -> SystemError {
    SystemError::Mismatch(e.to_string())
}

fn tempdir() -> Result<tempfile::TempDir, SystemError> {
    let mut dir = tempfile::tempdir().map_err(|source| SystemError::Io {
        what: "make a temporary directory".into(),
        source,
    })?;
    if std::env::var_os("ALOFT_TEST_KEEP").is_some() {
        dir.disable_cleanup(true);
        eprintln!("keeping {}", dir.path().display());
    }
    Ok(dir)
}

/// Appends an `[mqtt]` section to the agent's config.
fn with_mqtt(setup: &AgentSetup, section: &str) -> Result<(), SystemError> {
    let mut text = std::fs::read_to_string(&setup.config).map_err(other)?;
    text.push_str("\n[mqtt]\n");
    text.push_str(section);
    std::fs::write(&setup.config, text).map_err(other)
}

/// The retained messages under the node's topics, by topic.
fn retained_state(
    broker: &Mosquitto,
    user: Option<(&str, &str)>,
) -> Result<BTreeMap<String, String>, SystemError> {
    Ok(
        mosquitto::retained(broker, &format!("aloft/{NODE}/#"), user)
            .map_err(other)?
            .into_iter()
            .filter(|r| r.retained)
            .map(|r| (r.topic, r.payload))
            .collect(),
    )
}

/// Checks one reading payload against the documented schema.
fn check_reading(topic: &str, payload: &str) -> Result<(), SystemError> {
    let json: Value = serde_json::from_str(payload)
        .map_err(|e| other(format!("{topic}: {payload:?} is not JSON: {e}")))?;
    let object = json
        .as_object()
        .ok_or_else(|| other(format!("{topic}: not an object")))?;
    let keys: BTreeSet<&str> = object.keys().map(String::as_str).collect();
    if keys != BTreeSet::from(["value", "unit", "time", "quality"]) {
        return Err(other(format!("{topic}: keys {keys:?}")));
    }
    let ok = (json["value"].is_number() || json["value"].is_null())
        && json["unit"].is_string()
        && (json["time"].is_string() || json["time"].is_null())
        && json["quality"]
            .as_array()
            .is_some_and(|q| q.iter().any(|f| f == "simulated"));
    if ok {
        Ok(())
    } else {
        Err(other(format!("{topic}: {payload} is not a reading")))
    }
}

/// The retained state holds `online`, a status for every sensor and newest values of
/// several sensors, all in the documented form.
fn check_retained_state(state: &BTreeMap<String, String>) -> Result<(), SystemError> {
    let status = state.get(&format!("aloft/{NODE}/status"));
    if status.map(String::as_str) != Some("online") {
        return Err(other(format!(
            "node status {status:?}; retained: {state:#?}"
        )));
    }
    for sensor in ["gps", "static", "outside-air", "pitot", "attitude"] {
        let topic = format!("aloft/{NODE}/{sensor}/status");
        let payload = state
            .get(&topic)
            .ok_or_else(|| other(format!("no retained {topic}")))?;
        let json: Value = serde_json::from_str(payload).map_err(other)?;
        if !(json["state"].is_string()
            && json["reason"].is_string()
            && json["enabled"].is_boolean())
        {
            return Err(other(format!("{topic}: {payload}")));
        }
    }
    for topic in [
        format!("aloft/{NODE}/static/air_pressure"),
        format!("aloft/{NODE}/outside-air/air_temperature"),
        format!("aloft/{NODE}/gps/latitude"),
    ] {
        let payload = state.get(&topic).ok_or_else(|| {
            other(format!(
                "no retained {topic}; retained: {:#?}",
                state.keys()
            ))
        })?;
        check_reading(&topic, payload)?;
    }
    let readings = state
        .iter()
        .filter(|(t, _)| !t.ends_with("/status"))
        .inspect(|(t, p)| {
            if let Err(e) = check_reading(t, p) {
                panic!("{e}");
            }
        })
        .count();
    if readings < 10 {
        return Err(other(format!("only {readings} retained readings")));
    }
    Ok(())
}

fn rss_kib(pid: u32) -> Option<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))?
        .split_whitespace()
        .next()?
        .parse()
        .ok()
}

/// Readings stored over `window` (by the agent's counter).
fn readings_over(agent: &Agent, window: Duration) -> Result<f64, SystemError> {
    let before = agent
        .metric(READINGS)
        .ok_or_else(|| other("no readings metric"))?;
    std::thread::sleep(window);
    let after = agent
        .metric(READINGS)
        .ok_or_else(|| other("no readings metric"))?;
    Ok(after - before)
}

fn with_logs(error: SystemError, agent: &Agent, broker: &Mosquitto) -> SystemError {
    SystemError::Mismatch(format!(
        "{error}{}\n--- broker ---\n{}",
        agent.log_tail(),
        broker
            .log_text()
            .lines()
            .rev()
            .take(20)
            .collect::<Vec<_>>()
            .join("\n")
    ))
}

/// The flight with a hub and a bus: retained state, the per-topic rate bound, a broker
/// killed and restarted (state republished, nothing lost), a frozen broker (memory bounded,
/// sensors at their rates), a graceful stop (`offline`), and the hub holding exactly what
/// the store holds.
#[test]
fn a_broker_restarted_or_frozen_mid_flight_costs_the_store_and_the_hub_nothing()
-> Result<(), SystemError> {
    if skip() {
        return Ok(());
    }
    let dir = tempdir()?;
    let mut broker = Mosquitto::start(&dir.path().join("broker")).map_err(other)?;
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
    with_mqtt(
        &setup,
        &format!(
            "broker = {:?}\nkeepalive = \"5s\"\nreconnect_max = \"1s\"\nmax_rate_per_topic = 2.0\n",
            broker.addr()
        ),
    )?;
    let live = Subscription::start(&broker, &format!("aloft/{NODE}/#"), None).map_err(other)?;
    let agent = Agent::start(&setup)?;
    let run = (|| -> Result<(), SystemError> {
        // Retained state, as a new subscriber gets it.
        let state = wait_until("the retained state", BUS, || {
            let state = retained_state(&broker, None).ok()?;
            check_retained_state(&state).ok().map(|()| state)
        })?;
        check_retained_state(&state)?;

        // Coalescing: the pitot samples at 50 Hz, its topic carries at most 2 a second.
        let pitot = format!("aloft/{NODE}/pitot/differential_pressure");
        let count = |r: &[Received]| r.iter().filter(|m| m.topic == pitot).count();
        let start = count(&live.received());
        std::thread::sleep(Duration::from_secs(5));
        let published = count(&live.received()) - start;
        if !(1..=12).contains(&published) {
            return Err(other(format!(
                "{published} publishes on {pitot} in 5 s; at most 2 a second (+ timer slack) expected"
            )));
        }

        // The broker crashes and comes back empty: the agent reconnects and publishes its
        // retained state again; the store goes on meanwhile.
        let stored_before = agent.metric(READINGS).unwrap_or(0.0);
        broker.kill();
        wait_until("readings stored while the broker is down", BUS, || {
            agent
                .metric(READINGS)
                .filter(|n| *n > stored_before + 500.0)
        })?;
        broker.restart().map_err(other)?;
        let state = wait_until("the retained state after the restart", BUS, || {
            let state = retained_state(&broker, None).ok()?;
            check_retained_state(&state).ok().map(|()| state)
        })?;
        check_retained_state(&state)?;
        // The outage is not replayed: after the reconnection the pitot's topic carries its
        // live rate, not the 50 Hz of the seconds the broker was away.
        let after = Subscription::start(&broker, &pitot, None).map_err(other)?;
        std::thread::sleep(Duration::from_secs(5));
        let published = after.count();
        if published > 14 {
            return Err(other(format!(
                "{published} publishes on {pitot} in 5 s after the reconnection: the outage was replayed"
            )));
        }
        if !agent
            .log_tail()
            .contains("MQTT broker lost; readings stay in the store.")
        {
            return Err(other("the agent did not notice the broker's loss"));
        }
        let connections = agent.metric("aloft_mqtt_connections_total").unwrap_or(0.0);
        if connections < 2.0 || agent.metric("aloft_mqtt_connected") != Some(1.0) {
            return Err(other(format!(
                "the metrics show {connections} sessions and connected {:?}",
                agent.metric("aloft_mqtt_connected")
            )));
        }

        // A frozen broker: connections stay open and nothing is read. Memory stays
        // bounded and the sensors keep their rates.
        let window = Duration::from_secs(8);
        let pid = agent.pid();
        let rss_before = rss_kib(pid).ok_or_else(|| other("no VmRSS"))?;
        let rate_before = readings_over(&agent, window)?;
        broker.freeze();
        let rate_frozen = readings_over(&agent, window)?;
        let mut rss_max = rss_kib(pid).unwrap_or(0);
        for _ in 0..4 {
            std::thread::sleep(Duration::from_secs(1));
            rss_max = rss_max.max(rss_kib(pid).unwrap_or(0));
        }
        broker.thaw();
        eprintln!(
            "frozen broker: readings {rate_before} then {rate_frozen} per {window:?}; RSS {rss_before} KiB then at most {rss_max} KiB"
        );
        if rate_frozen < 0.8 * rate_before {
            return Err(other(format!(
                "the sensors slowed with the broker frozen: {rate_before} then {rate_frozen} readings per {window:?}"
            )));
        }
        if rss_max > rss_before + 16 * 1024 {
            return Err(other(format!(
                "the agent grew from {rss_before} KiB to {rss_max} KiB with the broker frozen"
            )));
        }
        wait_until("the retained state after the thaw", BUS, || {
            let state = retained_state(&broker, None).ok()?;
            check_retained_state(&state).ok()
        })?;
        Ok(())
    })();
    if let Err(e) = run {
        return Err(with_logs(e, &agent, &broker));
    }

    // A graceful stop says `offline`.
    agent.into_process().terminate()?;
    let state = retained_state(&broker, None)?;
    let status = state.get(&format!("aloft/{NODE}/status")).cloned();
    if status.as_deref() != Some("offline") {
        return Err(other(format!(
            "node status after a graceful stop: {status:?}"
        )));
    }
    let records = store_dump(&store)?;
    let gaps = records
        .iter()
        .filter(|r| r.record.get("Gap").is_some())
        .count();
    if gaps != 0 {
        return Err(other(format!("the store holds {gaps} gap records")));
    }
    // What is still unsent goes to the hub with an agent whose sensors are off (one with
    // sensors never has nothing unsent), then the hub must hold exactly what was flown.
    let drainer = Agent::start_draining(dir.path(), &store, HubLink::through(hub.addr(), &data))?;
    let drained = wait_until("the agent's store to have nothing unsent", BUS * 2, || {
        drainer.metric(UNSENT).filter(|n| *n == 0.0)
    });
    if let Err(e) = drained {
        return Err(with_logs(e, &drainer, &broker));
    }
    drainer.into_process().terminate()?;
    hub.into_process().terminate()?;
    // The flown records and the drainer's own (its boot), one store, one numbering.
    let mut merged: BTreeMap<u64, _> = records.into_iter().map(|r| (r.seq, r)).collect();
    for r in store_dump(&store)? {
        if let Some(held) = merged.get(&r.seq)
            && held != &r
        {
            return Err(other(format!("record {} changed in the store", r.seq)));
        }
        merged.insert(r.seq, r);
    }
    let records: Vec<_> = merged.into_values().collect();
    let synced = compare(&data.dump()?, &store_epoch(&store)?, &records)?;
    eprintln!("synced: {synced:?}");
    if synced.readings < 2_000 {
        return Err(other(format!(
            "too little flown to prove anything: {synced:?}"
        )));
    }
    Ok(())
}

/// TLS (a CA from rcgen, a client certificate) and a password from a file, over MQTT 5 at
/// QoS 1; when the agent is killed the broker publishes its last will, `offline`.
#[test]
fn tls_with_a_password_over_mqtt_5_and_the_last_will_when_the_agent_dies() -> Result<(), SystemError>
{
    if skip() {
        return Ok(());
    }
    let dir = tempdir()?;
    let user = ("aloft-agent", "s3cret-password");
    let reader = ("cockpit", "cockpit-password");
    let broker = Mosquitto::start_with(
        &dir.path().join("broker"),
        &BrokerOptions {
            tls: true,
            users: vec![
                (user.0.into(), user.1.into()),
                (reader.0.into(), reader.1.into()),
            ],
            acl: None,
        },
    )
    .map_err(other)?;
    let tls = broker.tls().cloned().ok_or_else(|| other("no TLS files"))?;
    let password_file = dir.path().join("mqtt-password");
    std::fs::write(&password_file, format!("{}\n", user.1)).map_err(other)?;
    let setup = AgentSetup::write(
        dir.path(),
        "agent",
        &dir.path().join("store"),
        &Flight::default(),
    )?;
    with_mqtt(
        &setup,
        &format!(
            "broker = \"localhost:{}\"\nversion = \"5\"\nqos = 1\nusername = {:?}\npassword_file = {:?}\ntls = true\nca_file = {:?}\ncert_file = {:?}\nkey_file = {:?}\nkeepalive = \"5s\"\n",
            broker.port(),
            user.0,
            path(&password_file),
            path(&tls.ca),
            path(&tls.client_cert),
            path(&tls.client_key),
        ),
    )?;
    let agent = Agent::start(&setup)?;
    let state = wait_until("the retained state over TLS", BUS, || {
        let state = retained_state(&broker, Some(reader)).ok()?;
        check_retained_state(&state).ok().map(|()| state)
    });
    let state = match state {
        Ok(state) => state,
        Err(e) => return Err(with_logs(e, &agent, &broker)),
    };
    check_retained_state(&state)?;
    if agent.log_tail().contains(user.1) {
        return Err(other("the password is in the agent's log"));
    }
    // Without credentials the broker refuses: nothing retained is readable.
    if !retained_state(&broker, None)?.is_empty() {
        return Err(other("the broker let an anonymous client read"));
    }
    let watcher = Subscription::start(&broker, &format!("aloft/{NODE}/status"), Some(reader))
        .map_err(other)?;
    watcher
        .wait_for("online", BUS, |r| {
            r.iter().any(|m| m.payload == "online").then_some(())
        })
        .map_err(other)?;
    agent.into_process().kill()?;
    watcher
        .wait_for("the last will", BUS, |r| {
            r.iter().any(|m| m.payload == "offline").then_some(())
        })
        .map_err(other)?;
    let state = retained_state(&broker, Some(reader))?;
    if state
        .get(&format!("aloft/{NODE}/status"))
        .map(String::as_str)
        != Some("offline")
    {
        return Err(other(format!(
            "retained node status after the kill: {state:?}"
        )));
    }
    Ok(())
}

/// With `replay_outage`, the readings taken while the broker was away are published after
/// the reconnection, not retained: the retained value stays the newest one.
#[test]
fn with_replay_outage_the_outage_is_published_after_the_reconnection() -> Result<(), SystemError> {
    if skip() {
        return Ok(());
    }
    let dir = tempdir()?;
    let mut broker = Mosquitto::start(&dir.path().join("broker")).map_err(other)?;
    let setup = AgentSetup::write(
        dir.path(),
        "agent",
        &dir.path().join("store"),
        &Flight::default(),
    )?;
    with_mqtt(
        &setup,
        &format!(
            "broker = {:?}\nreconnect_max = \"1s\"\nreplay_outage = true\n",
            broker.addr()
        ),
    )?;
    let agent = Agent::start(&setup)?;
    let pitot = format!("aloft/{NODE}/pitot/differential_pressure");
    let run = (|| -> Result<(), SystemError> {
        wait_until("the retained state", BUS, || {
            let state = retained_state(&broker, None).ok()?;
            check_retained_state(&state).ok()
        })?;
        let stored = agent.metric(READINGS).unwrap_or(0.0);
        broker.kill();
        wait_until("readings stored while the broker is down", BUS, || {
            agent.metric(READINGS).filter(|n| *n > stored + 3_000.0)
        })?;
        broker.restart().map_err(other)?;
        let after = Subscription::start(&broker, &pitot, None).map_err(other)?;
        // Live, the topic carries 2 a second; the outage's 50 Hz readings come on top.
        after
            .wait_for("the outage's pitot readings", BUS, |r| {
                (r.len() > 100).then_some(())
            })
            .map_err(other)?;
        let newest_replayed = after
            .received()
            .iter()
            .filter_map(|m| serde_json::from_str::<Value>(&m.payload).ok())
            .filter_map(|v| v["time"].as_str().map(str::to_string))
            .max()
            .ok_or_else(|| other("no time in the pitot's publishes"))?;
        let state = retained_state(&broker, None)?;
        let retained: Value = serde_json::from_str(
            state
                .get(&pitot)
                .ok_or_else(|| other(format!("no retained {pitot}")))?,
        )
        .map_err(other)?;
        let retained_time = retained["time"].as_str().unwrap_or_default().to_string();
        // RFC 3339 with microseconds and `Z`: the text orders as the time does.
        if retained_time < newest_replayed {
            return Err(other(format!(
                "the retained pitot value ({retained_time}) is older than a publish seen ({newest_replayed})"
            )));
        }
        Ok(())
    })();
    if let Err(e) = run {
        return Err(with_logs(e, &agent, &broker));
    }
    agent.into_process().terminate()
}

fn path(p: &Path) -> String {
    p.display().to_string()
}

/// Without `[mqtt]` the agent starts no bus: not a line about one in its log, not a
/// connection to the broker that is right there.
#[test]
fn without_an_mqtt_section_the_agent_starts_no_bus() -> Result<(), SystemError> {
    if skip() {
        return Ok(());
    }
    let dir = tempdir()?;
    let broker = Mosquitto::start(&dir.path().join("broker")).map_err(other)?;
    let setup = AgentSetup::write(
        dir.path(),
        "agent",
        &dir.path().join("store"),
        &Flight::default(),
    )?;
    let agent = Agent::start(&setup)?;
    wait_until("readings stored", BUS, || {
        agent.metric(READINGS).filter(|n| *n > 200.0)
    })?;
    let log = agent.log_tail();
    let metrics = agent.metrics_text().unwrap_or_default();
    agent.into_process().terminate()?;
    if metrics.contains("aloft_mqtt_") {
        return Err(other("the agent serves MQTT metrics without [mqtt]"));
    }
    if log.contains("MQTT") {
        return Err(other(format!(
            "the agent speaks of MQTT without [mqtt]:{log}"
        )));
    }
    if broker.log_text().contains("New client connected") {
        return Err(other("a client connected to the broker"));
    }
    Ok(())
}

/// The ACL of docs/mqtt.md, in a real Mosquitto: the named programs publish to their ingest
/// topics, the agent publishes under its node, anyone else is refused (Mosquitto drops a
/// refused publish silently, so what arrives at a subscriber is what was allowed).
#[test]
fn the_documented_acl_lets_only_the_named_programs_publish_to_ingest() -> Result<(), SystemError> {
    if skip() {
        return Ok(());
    }
    let docs = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../docs/mqtt.md");
    let text = std::fs::read_to_string(&docs).map_err(other)?;
    let acl = text
        .split("<!-- acl begin -->")
        .nth(1)
        .and_then(|rest| rest.split("<!-- acl end -->").next())
        .and_then(|block| block.split("```").nth(1))
        .map(|body| body.trim_start_matches("text").trim_start().to_string())
        .ok_or_else(|| other("docs/mqtt.md has no ACL block between the markers"))?;
    let acl = acl.replace("glider-d-kmwp", NODE);
    let users = [
        ("aloft-agent", "a"),
        ("particle-sampler", "p"),
        ("cockpit", "c"),
        ("intruder", "i"),
    ];
    let dir = tempdir()?;
    let broker = Mosquitto::start_with(
        &dir.path().join("broker"),
        &BrokerOptions {
            tls: false,
            users: users
                .iter()
                .map(|(u, p)| (u.to_string(), p.to_string()))
                .collect(),
            acl: Some(acl),
        },
    )
    .map_err(other)?;
    // The agent reads the ingest topics.
    let ingest = Subscription::start(&broker, &format!("aloft/{NODE}/ingest/#"), Some(users[0]))
        .map_err(other)?;
    // The cockpit reads what the agent publishes.
    let out =
        Subscription::start(&broker, &format!("aloft/{NODE}/#"), Some(users[2])).map_err(other)?;
    std::thread::sleep(Duration::from_millis(300));
    let sampler_topic = format!("aloft/{NODE}/ingest/particle-sampler");
    for (who, topic, payload) in [
        (users[3], sampler_topic.clone(), "intruder"),
        (users[2], sampler_topic.clone(), "cockpit"),
        (
            users[1],
            format!("aloft/{NODE}/ingest/other-sensor"),
            "elsewhere",
        ),
        (
            users[1],
            format!("aloft/{NODE}/static/air_pressure"),
            "forged",
        ),
        (
            users[3],
            format!("aloft/{NODE}/static/air_pressure"),
            "forged",
        ),
        (users[1], sampler_topic.clone(), "sampler"),
        (
            users[0],
            format!("aloft/{NODE}/static/air_pressure"),
            "agent",
        ),
    ] {
        mosquitto::publish(&broker, &topic, payload, Some(who)).map_err(other)?;
    }
    // The last publishes of each subscriber's stream are allowed ones: once they arrived,
    // anything refused before them would have arrived too.
    ingest
        .wait_for("the sampler's reading", BUS, |r| {
            r.iter().any(|m| m.payload == "sampler").then_some(())
        })
        .map_err(other)?;
    out.wait_for("the agent's reading", BUS, |r| {
        r.iter().any(|m| m.payload == "agent").then_some(())
    })
    .map_err(other)?;
    let got: Vec<String> = ingest.received().into_iter().map(|m| m.payload).collect();
    if got != ["sampler"] {
        return Err(other(format!(
            "ingest received {got:?}; only the sampler's was allowed"
        )));
    }
    let got: Vec<String> = out
        .received()
        .into_iter()
        .filter(|m| !m.topic.contains("/ingest/"))
        .map(|m| m.payload)
        .collect();
    if got != ["agent"] {
        return Err(other(format!(
            "the node's topics received {got:?}; only the agent's was allowed"
        )));
    }
    Ok(())
}
