//! aloftctl against the real hub binary over loopback TLS, with a stand-in agent speaking
//! the real protocol (the hub's test client): commands while connected and across an
//! outage, desired state set while offline and applied, nodes and tokens, roles, refusals,
//! and the errors operators meet.

#![allow(clippy::unwrap_used)] // Tests: a failed step should stop the test loudly.

mod common;

use common::{Agent, Hub, created_token, item};
use serde_json::Value;

fn phase(hub: &Hub, id: &str) -> String {
    hub.json(&["get", "commands", id])
        .pointer("/status/phase")
        .and_then(Value::as_str)
        .unwrap_or_default()
        .to_owned()
}

fn created_id(stdout: &str) -> String {
    stdout
        .split_whitespace()
        .next()
        .and_then(|w| w.strip_prefix("command/"))
        .map(|w| w.trim_end_matches(':').to_owned())
        .unwrap_or_else(|| panic!("no command id in {stdout:?}"))
}

#[test]
fn restart_while_connected_waits_for_the_agent_and_shows_the_restart() {
    let hub = Hub::start();
    let agent = hub.glider_reported(&["cosmic-ray", "gps"]);

    let run = hub
        .ctl(&[
            "restart",
            "sensor",
            "cosmic-ray",
            "--node",
            "glider",
            "--wait",
            "--timeout",
            "20s",
        ])
        .ok();
    assert!(
        run.stdout.contains("succeeded: cosmic-ray restarted"),
        "{}",
        run.stdout
    );
    let id = created_id(&run.stdout);
    assert_eq!(agent.log.lock().unwrap().applied, vec![id.clone()]);
    let sensor = hub.wait_json(
        &["get", "sensors", "cosmic-ray", "--node", "glider"],
        "restart count",
        |s| s.pointer("/status/restarts").and_then(Value::as_u64) == Some(1),
    );
    assert_eq!(
        sensor.pointer("/status/state").and_then(Value::as_str),
        Some("Running")
    );

    // The audit trail says who did it and how it ended.
    let events = hub.json(&["get", "events", "--node", "glider"]);
    let about: Vec<(String, String)> = events["items"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|e| e.pointer("/spec/object/name").and_then(Value::as_str) == Some(id.as_str()))
        .map(|e| {
            (
                e.pointer("/spec/action")
                    .and_then(Value::as_str)
                    .unwrap()
                    .to_owned(),
                e.pointer("/status/outcome")
                    .and_then(Value::as_str)
                    .unwrap()
                    .to_owned(),
            )
        })
        .collect();
    assert_eq!(
        about,
        vec![
            ("create".to_owned(), "ok".to_owned()),
            ("deliver".to_owned(), "Delivered".to_owned()),
            ("complete".to_owned(), "Succeeded".to_owned()),
        ]
    );
    let creator = events["items"][0]
        .pointer("/spec/actor/role")
        .and_then(Value::as_str);
    assert_eq!(creator, Some("admin"));

    // describe gathers the sensor, its commands and their events in one page.
    let page = hub.ctl(&["describe", "sensor", "cosmic-ray"]).ok().stdout;
    for expected in [
        "Name:         cosmic-ray",
        "Node:         glider",
        "restarts: 1",
        "Commands:",
        id.as_str(),
        "Events:",
        "complete",
    ] {
        assert!(
            page.contains(expected),
            "describe lacks {expected:?}:\n{page}"
        );
    }
    let page = hub.ctl(&["describe", "node", "glider"]).ok().stdout;
    assert!(
        page.contains("Sensors:") && page.contains("cosmic-ray") && page.contains("gps"),
        "{page}"
    );
    // The stand-in agent sends no readings: top says so rather than print an empty table.
    assert_eq!(hub.ctl(&["top"]).ok().stdout, "No values yet.\n");
}

#[test]
fn a_restart_given_while_offline_is_delivered_on_reconnect_and_applied_once() {
    let hub = Hub::start();
    // The node reported its sensors once, then the link dropped.
    let log = hub.glider(&["cosmic-ray"]).stop();
    hub.wait_json(&["get", "nodes", "glider"], "node offline", |n| {
        n.pointer("/status/connected") == Some(&Value::Bool(false))
    });

    let run = hub
        .ctl(&[
            "restart",
            "sensor",
            "cosmic-ray",
            "--node",
            "glider",
            "--ttl",
            "10m",
        ])
        .ok();
    assert!(run.stdout.contains("pending"), "{}", run.stdout);
    let id = created_id(&run.stdout);
    assert_eq!(phase(&hub, &id), "Pending");
    // Waiting ends at the timeout with its own exit code while the node is away.
    hub.ctl(&["get", "commands", &id]).ok();
    let waited = hub.ctl(&[
        "restart",
        "sensor",
        "cosmic-ray",
        "--node",
        "glider",
        "--wait",
        "--timeout",
        "1s",
    ]);
    waited.fails(4, "still Pending");

    let agent = hub.glider_again(&["cosmic-ray"], log);
    hub.wait_json(&["get", "commands", &id], "delivered and done", |c| {
        c.pointer("/status/phase").and_then(Value::as_str) == Some("Succeeded")
    });
    // A second reconnect does not bring it again: it was acked.
    let log = agent.stop();
    let agent = hub.glider_again(&["cosmic-ray"], log);
    agent.wait("second session", |l| l.sessions == 3);
    let log = agent.log.lock().unwrap();
    assert_eq!(log.applied.iter().filter(|a| **a == id).count(), 1);
    assert_eq!(
        log.received.iter().filter(|a| **a == id).count(),
        1,
        "{log:?}"
    );
}

#[test]
fn a_set_made_while_offline_takes_effect_on_reconnect() {
    let hub = Hub::start();
    let log = hub.glider(&["gps", "static"]).stop();
    hub.ctl(&[
        "set",
        "sensor",
        "gps",
        "--node",
        "glider",
        "--interval",
        "200ms",
    ])
    .ok();
    let sensor = hub.json(&["get", "sensors", "gps", "--node", "glider"]);
    assert_eq!(
        sensor
            .pointer("/metadata/generation")
            .and_then(Value::as_u64),
        Some(1)
    );
    assert_eq!(
        sensor.pointer("/status/observedGeneration"),
        Some(&Value::Null)
    );

    let _agent = hub.glider_again(&["gps", "static"], log);
    // The observed generation and the interval in force come on different lanes (the
    // agent's report of the spec, its live status): wait for both.
    let sensor = hub.wait_json(
        &["get", "sensors", "gps", "--node", "glider"],
        "observed",
        |s| {
            s.pointer("/status/observedGeneration")
                .and_then(Value::as_u64)
                == Some(1)
                && s.pointer("/status/intervalMs").is_some_and(|i| i == 200)
        },
    );
    assert_eq!(
        sensor.pointer("/status/intervalMs").and_then(Value::as_u64),
        Some(200)
    );
    let table = hub.ctl(&["get", "sensors", "--node", "glider"]).ok().stdout;
    let gps = table
        .lines()
        .find(|l| l.contains(" gps "))
        .unwrap_or_default();
    assert!(gps.contains("200ms") && gps.contains("1/1"), "{table}");
}

#[test]
fn apply_bumps_the_generation_the_agent_observes_and_diff_tells_what_would_change() {
    let hub = Hub::start();
    let _agent = hub.glider_reported(&["cosmic-ray", "gps"]);
    let file = hub.write(
        "sensors.yaml",
        "apiVersion: aloft.dev/v1\nkind: Sensor\nmetadata: {name: gps, node: glider}\nspec: {interval: 500ms}\n---\napiVersion: aloft.dev/v1\nkind: Sensor\nmetadata: {name: cosmic-ray, node: glider}\nspec: {enabled: false}\n",
    );
    let f = file.to_str().unwrap();
    let diff = hub.ctl(&["diff", "-f", f]);
    assert_eq!(diff.code, 5, "{diff:?}");
    assert!(
        diff.stdout.contains("+  intervalMs: 500"),
        "{}",
        diff.stdout
    );

    let applied = hub.ctl(&["apply", "-f", f]).ok();
    assert!(
        applied
            .stdout
            .contains("sensor/gps on glider configured (generation 1)"),
        "{}",
        applied.stdout
    );
    let list = hub.wait_json(
        &["get", "sensors", "--node", "glider"],
        "both observed",
        |v| {
            ["gps", "cosmic-ray"].iter().all(|n| {
                item(v, n)
                    .and_then(|s| s.pointer("/status/observedGeneration"))
                    .and_then(Value::as_u64)
                    == Some(1)
            })
        },
    );
    assert_eq!(
        item(&list, "gps")
            .and_then(|s| s.pointer("/status/intervalMs"))
            .and_then(Value::as_u64),
        Some(500)
    );
    assert_eq!(
        item(&list, "cosmic-ray")
            .and_then(|s| s.pointer("/status/state"))
            .and_then(Value::as_str),
        Some("Disabled")
    );

    // Applying the same file again changes nothing, and diff says so with exit 0.
    let again = hub.ctl(&["apply", "-f", f]).ok();
    assert!(
        again.stdout.contains("unchanged (generation 1)"),
        "{}",
        again.stdout
    );
    assert_eq!(hub.ctl(&["diff", "-f", f]).ok().stdout, "");

    // A new interval is a new generation, observed again.
    std::fs::write(&file, "apiVersion: aloft.dev/v1\nkind: Sensor\nmetadata: {name: gps, node: glider}\nspec: {intervalMs: 100}\n").unwrap();
    hub.ctl(&["apply", "-f", f]).ok();
    hub.wait_json(
        &["get", "sensors", "gps", "--node", "glider"],
        "generation 2 observed",
        |s| {
            s.pointer("/status/observedGeneration")
                .and_then(Value::as_u64)
                == Some(2)
                && s.pointer("/status/intervalMs").and_then(Value::as_u64) == Some(100)
        },
    );
}

#[test]
fn a_node_created_through_aloftctl_connects_until_its_token_is_revoked() {
    let hub = Hub::start();
    let created = hub.ctl(&["create", "node", "glider-2"]).ok().stdout;
    let token = created_token(&created);
    assert!(token.starts_with("aloft_"), "{created}");

    let agent = Agent::start(&hub, "glider-2", &token, &["gps"]);
    agent.wait("connected", |l| l.sessions == 1);
    drop(agent);

    let tokens = hub.json(&["get", "tokens"]);
    let id = tokens["items"]
        .as_array()
        .unwrap()
        .iter()
        .find(|t| t.pointer("/spec/node").and_then(Value::as_str) == Some("glider-2"))
        .and_then(|t| t.pointer("/metadata/name").and_then(Value::as_str))
        .unwrap()
        .to_owned();
    hub.ctl(&["revoke", "token", &id]).ok();
    let refused = Agent::start(&hub, "glider-2", &token, &["gps"]);
    refused.wait("refused", |l| l.refused.is_some());
    assert_eq!(
        refused.log.lock().unwrap().refused.as_deref(),
        Some("HTTP 401")
    );

    hub.ctl(&["delete", "node", "glider-2"]).ok();
    hub.ctl(&["get", "nodes", "glider-2"]).fails(1, "no node");
    let events = hub.ctl(&["get", "events"]).ok().stdout;
    assert!(
        events.contains("node/glider-2") && events.contains("revoke"),
        "{events}"
    );
}

#[test]
fn roles_and_tokens_are_enforced_with_words_that_say_what_to_do() {
    let hub = Hub::start();
    let viewer = hub
        .ctl(&["create", "token", "--role", "viewer"])
        .ok()
        .stdout;
    let viewer = created_token(&viewer);
    hub.ctl_as(&viewer, &["get", "nodes"]).ok();
    hub.ctl_as(&viewer, &["restart", "sensor", "gps", "--node", "glider"])
        .fails(1, "role viewer, which cannot restart sensors");
    hub.ctl_as(
        &viewer,
        &["set", "sensor", "gps", "--node", "glider", "--enable"],
    )
    .fails(1, "needs role operator");
    hub.ctl_as(&viewer, &["create", "node", "x"])
        .fails(1, "needs role admin");
    let denied = hub.json(&["get", "events"]);
    assert!(
        denied["items"].as_array().unwrap().iter().any(|e| {
            e.pointer("/status/outcome").and_then(Value::as_str) == Some("denied")
                && e.pointer("/spec/actor/role").and_then(Value::as_str) == Some("viewer")
        }),
        "{denied:#}"
    );

    let operator = hub
        .ctl(&["create", "token", "--role", "operator"])
        .ok()
        .stdout;
    let operator = created_token(&operator);
    hub.ctl_as(&operator, &["restart", "sensor", "gps", "--node", "glider"])
        .ok();
    hub.ctl_as(&operator, &["get", "tokens"])
        .fails(1, "needs role admin");

    hub.ctl_as("aloft_not-a-token", &["get", "nodes"])
        .fails(1, "refused the token");
    hub.ctl(&["create", "token", "--role", "pilot"])
        .fails(1, "use viewer, operator or admin");
}

#[test]
fn malformed_files_unknown_sensors_and_usage_errors_are_clear() {
    let hub = Hub::start();
    let _agent = hub.glider_reported(&["cosmic-ray", "gps"]);

    let bad = hub.write(
        "bad.yaml",
        "apiVersion: aloft.dev/v1\nkind: Sensor\nmetadata: {name: gps, node: glider\nspec: {}\n",
    );
    hub.ctl(&["apply", "-f", bad.to_str().unwrap()])
        .fails(1, "bad.yaml: document 1");
    std::fs::write(&bad, "apiVersion: aloft.dev/v1\nkind: Sensor\nmetadata: {name: gsp, node: glider}\nspec: {intervalMs: 100}\n").unwrap();
    hub.ctl(&["apply", "-f", bad.to_str().unwrap()]).fails(
        1,
        "node \"glider\" has no sensor \"gsp\"; its sensors are: cosmic-ray, gps",
    );
    hub.ctl(&["restart", "sensor", "cosmic", "--node", "glider"])
        .fails(1, "has no sensor \"cosmic\"");
    hub.ctl(&["restart", "sensor", "gps", "--node", "nowhere"])
        .fails(1, "node \"nowhere\" does not exist");
    hub.ctl(&["set", "sensor", "gps", "--node", "glider"])
        .fails(2, "give --interval");
    hub.ctl(&["restart", "sensor"]).fails(2, "required");
    hub.ctl(&["restart", "sensor", "gps", "--ttl", "soon"])
        .fails(2, "write e.g. 100ms");
    hub.ctl(&["cancel", "command", "cmd-000000000000"])
        .fails(1, "does not exist");

    // Without any hub given, the error says how to give one.
    let run = hub.ctl_plain(&["get", "nodes"]);
    run.fails(1, "no hub given: pass --hub");
    // A wrong CA is a TLS error that names the fix.
    let wrong = hub.dir.path().join("wrong-ca");
    HubProcessInit::init(&wrong);
    let run = common::ctl_command(hub.dir.path())
        .args(["get", "nodes", "--hub", &hub.url(), "--ca"])
        .arg(wrong.join("ca.pem"))
        .args(["--token", &hub.tokens.admin])
        .output()
        .unwrap();
    common::Run::of(&["get", "nodes", "(wrong CA)"], run).fails(1, "--ca");
}

struct HubProcessInit;

impl HubProcessInit {
    /// Another hub's data directory: a CA that did not sign this hub's certificate.
    fn init(data: &std::path::Path) {
        aloft_hub::testing::HubProcess::init(&common::hub_bin(), data, "other").unwrap();
    }
}

#[test]
fn cancel_stops_an_undelivered_command_and_logs_come_from_the_node() {
    let hub = Hub::start();
    let log = hub.glider(&["gps"]).stop();
    let id = created_id(
        &hub.ctl(&["restart", "sensor", "gps", "--node", "glider"])
            .ok()
            .stdout,
    );
    let cancelled = hub.ctl(&["cancel", "command", &id]).ok();
    assert!(
        cancelled.stdout.contains("cancelled"),
        "{}",
        cancelled.stdout
    );
    hub.ctl(&["cancel", "command", &id])
        .fails(1, "already ended: Cancelled");

    hub.ctl(&["logs", "node", "glider"])
        .fails(1, "not connected");
    let agent = hub.glider_again(&["gps"], log);
    agent.wait("connected", |l| l.sessions == 2);
    let logs = hub
        .ctl(&["logs", "sensor", "gps", "--node", "glider"])
        .ok()
        .stdout;
    assert!(logs.contains("WARN  [gps] stale fix"), "{logs}");
    assert!(
        agent.log.lock().unwrap().received.is_empty(),
        "a cancelled command was delivered"
    );
}

#[test]
fn a_context_written_by_aloftctl_config_is_used_without_flags() {
    let hub = Hub::start();
    let token_file = hub.write("admin.token", &format!("{}\n", hub.tokens.admin));
    let config = |args: &[&str]| hub.ctl_plain(args);
    config(&[
        "config",
        "set-context",
        "local",
        "--server",
        &hub.url(),
        "--certificate-authority",
        hub.ca().to_str().unwrap(),
        "--token-file",
        token_file.to_str().unwrap(),
        "--use",
    ])
    .ok();
    let nodes = config(&["get", "nodes", "-o", "name"]).ok();
    assert_eq!(nodes.stdout, "node/glider\n");
    config(&["get", "nodes", "--context", "field"]).fails(1, "no context `field`");
    let version = config(&["version"]).ok().stdout;
    assert!(
        version.starts_with("aloftctl 0.") && version.contains("aloft-hub 0."),
        "{version}"
    );
    let completion = config(&["completion", "bash"]).ok().stdout;
    assert!(
        completion.contains("_aloftctl()") && completion.contains("restart"),
        "bash completion"
    );
    let contexts = config(&["config", "get-contexts"]).ok().stdout;
    assert!(contexts.contains("*         local"), "{contexts}");
}

#[test]
fn get_sensors_watch_shows_a_restart_as_it_happens() {
    let hub = Hub::start();
    let _agent = hub.glider_reported(&["cosmic-ray", "gps"]);
    let mut child = hub
        .ctl_command_as(&hub.tokens.admin)
        .args(["get", "sensors", "--node", "glider", "-w"])
        .stdout(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let stdout = child.stdout.take().unwrap();
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        use std::io::BufRead;
        for line in std::io::BufReader::new(stdout)
            .lines()
            .map_while(Result::ok)
        {
            if tx.send(line).is_err() {
                break;
            }
        }
    });
    let restarts_of = |line: &str| -> Option<String> {
        let cells: Vec<&str> = line.split_whitespace().collect();
        (cells.get(1) == Some(&"cosmic-ray"))
            .then(|| cells.get(4).map(|c| (*c).to_owned()))
            .flatten()
    };
    let next = || rx.recv_timeout(common::DEADLINE).unwrap();
    assert!(next().starts_with("NODE"), "a header first");
    // The listing, then the restart's change as its own line.
    let mut seen = Vec::new();
    while seen.len() < 2 {
        seen.push(next());
    }
    assert!(
        seen.iter().any(|l| restarts_of(l).as_deref() == Some("0")),
        "{seen:?}"
    );
    hub.ctl(&["restart", "sensor", "cosmic-ray", "--node", "glider"])
        .ok();
    let deadline = std::time::Instant::now() + common::DEADLINE;
    loop {
        let line = next();
        if restarts_of(&line).as_deref() == Some("1") {
            break;
        }
        assert!(std::time::Instant::now() < deadline, "no restart line");
    }
    let _ = child.kill();
    let _ = child.wait();
}

#[test]
fn unset_deletes_a_sensors_desired_state_and_the_agent_is_sent_the_spec_without_it() {
    let hub = Hub::start();
    let agent = hub.glider_reported(&["gps", "static"]);
    for sensor in ["gps", "static"] {
        hub.ctl(&[
            "set",
            "sensor",
            sensor,
            "--node",
            "glider",
            "--interval",
            "200ms",
        ])
        .ok();
    }
    agent.wait("both entries sent", |l| {
        l.desired.last().is_some_and(|s| s.sensors.len() == 2)
    });

    let unset = hub
        .ctl(&["unset", "sensor", "gps", "--node", "glider"])
        .ok();
    assert!(
        unset.stdout.contains("sensor/gps on glider unset"),
        "{}",
        unset.stdout
    );
    agent.wait("the spec without gps", |l| {
        l.desired
            .last()
            .is_some_and(|s| s.sensors.len() == 1 && s.sensors.iter().all(|e| e.name == "static"))
    });
    let sensor = hub.json(&["get", "sensors", "gps", "--node", "glider"]);
    assert_eq!(
        sensor
            .pointer("/metadata/generation")
            .and_then(Value::as_u64),
        Some(0),
        "{sensor}"
    );
    let events = hub.ctl(&["get", "events", "--node", "glider"]).ok().stdout;
    assert!(events.contains("delete"), "{events}");

    let again = hub.ctl(&["unset", "sensor", "gps", "--node", "glider"]);
    assert_ne!(again.code, 0, "{again:?}");
    assert!(again.stderr.contains("no desired state"), "{again:?}");

    let bad = hub.ctl(&[
        "set",
        "sensor",
        "gps_2",
        "--node",
        "glider",
        "--interval",
        "1s",
    ]);
    assert_ne!(bad.code, 0, "{bad:?}");
    assert!(bad.stderr.contains("'_' at position 4"), "{bad:?}");
}
