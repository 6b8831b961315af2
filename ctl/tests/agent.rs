//! aloftctl and the hub against the real agent (`aloft-agent run` on the simulated flight,
//! syncing over loopback TLS): a restart applied once even when the agent is killed after
//! it acked, and a new interval that changes the sampling rate and the observed generation.

#![allow(clippy::unwrap_used)] // Tests: a failed step should stop the test loudly.

mod common;

use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use common::{DEADLINE, Hub, item, workspace_bin};
use serde_json::Value;

const NODE: &str = "glider-sim";

/// `aloft-agent run` on the simulated sensors, syncing with `hub` as `NODE`.
struct RealAgent {
    child: Child,
}

impl RealAgent {
    fn start(hub: &Hub, token: &str, dir: &Path) -> RealAgent {
        let filter = std::env::var("RUST_LOG").unwrap_or_else(|_| "warn".into());
        RealAgent::start_logging(hub, token, dir, &filter, None)
    }

    /// As [`RealAgent::start`], logging at `filter` (RUST_LOG) into `log` when given.
    fn start_logging(
        hub: &Hub,
        token: &str,
        dir: &Path,
        filter: &str,
        log: Option<&Path>,
    ) -> RealAgent {
        let token_file = dir.join("node.token");
        std::fs::write(&token_file, format!("{token}\n")).unwrap();
        let example = Path::new(env!("CARGO_MANIFEST_DIR")).join("../deploy/examples/sim.toml");
        let config = std::fs::read_to_string(example)
            .unwrap()
            .replace("/tmp/aloft-sim", dir.to_str().unwrap())
            .replace("127.0.0.1:9464", "127.0.0.1:0");
        let config = format!(
            "{config}\n[hub]\nurl = \"wss://127.0.0.1:{}/v1/nodes/connect\"\ntoken_file = \"{}\"\nca_file = \"{}\"\n",
            hub.addr().port(),
            token_file.display(),
            hub.ca().display()
        );
        let path = dir.join("agent.toml");
        std::fs::write(&path, config).unwrap();
        let stderr = match log {
            Some(file) => Stdio::from(std::fs::File::create(file).unwrap()),
            None => Stdio::inherit(),
        };
        let child = Command::new(workspace_bin("aloft-agent", "aloft-agent"))
            .arg("run")
            .arg("--config")
            .arg(&path)
            .env("RUST_LOG", filter)
            .env_remove("NO_COLOR")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(stderr)
            .spawn()
            .unwrap();
        RealAgent { child }
    }

    /// SIGKILL: no goodbye, as a crash or a power cut.
    fn kill(mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Drop for RealAgent {
    fn drop(&mut self) {
        if let Ok(pid) = libc::pid_t::try_from(self.child.id()) {
            // SAFETY: kill(2) on our own child with a valid signal number.
            unsafe {
                libc::kill(pid, libc::SIGTERM);
            }
        }
        let deadline = Instant::now() + Duration::from_secs(10);
        while Instant::now() < deadline {
            if matches!(self.child.try_wait(), Ok(Some(_))) {
                return;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn hub_with_sim_node() -> (Hub, String) {
    let hub = Hub::start();
    let created = hub.ctl(&["create", "node", NODE]).ok().stdout;
    let token = created.lines().last().unwrap().trim().to_owned();
    (hub, token)
}

fn sensor(hub: &Hub, name: &str) -> Value {
    hub.json(&["get", "sensors", name, "--node", NODE])
}

fn time_at(v: &Value, pointer: &str) -> std::time::SystemTime {
    v.pointer(pointer)
        .and_then(Value::as_str)
        .and_then(|t| humantime::parse_rfc3339_weak(t).ok())
        .unwrap_or(std::time::UNIX_EPOCH)
}

fn u64_at(v: &Value, pointer: &str) -> Option<u64> {
    v.pointer(pointer).and_then(Value::as_u64)
}

#[test]
fn a_restart_acked_by_an_agent_killed_at_once_is_not_applied_again_by_the_next() {
    let (hub, token) = hub_with_sim_node();
    let dir = tempfile::tempdir().unwrap();
    let agent = RealAgent::start(&hub, &token, dir.path());
    hub.wait_json(
        &["get", "sensors", "--node", NODE],
        "cosmic-ray running",
        |v| {
            item(v, "cosmic-ray")
                .and_then(|s| s.pointer("/status/state"))
                .and_then(Value::as_str)
                == Some("Running")
        },
    );

    let out = hub
        .ctl(&["restart", "sensor", "cosmic-ray", "--node", NODE])
        .ok()
        .stdout;
    let id = out
        .split_whitespace()
        .next()
        .unwrap()
        .trim_start_matches("command/")
        .trim_end_matches(':')
        .to_owned();
    // Kill the agent as soon as the hub has its ack: the agent recorded the command durably
    // before acking, and may or may not have acted yet.
    let deadline = Instant::now() + DEADLINE;
    loop {
        let phase = hub.json(&["get", "commands", &id])["status"]["phase"]
            .as_str()
            .unwrap_or("")
            .to_owned();
        if phase != "Pending" {
            break;
        }
        assert!(Instant::now() < deadline, "never delivered");
        std::thread::sleep(Duration::from_millis(5));
    }
    let old_boot = hub.json(&["get", "nodes", NODE])["status"]["bootId"].clone();
    agent.kill();

    let _again = RealAgent::start(&hub, &token, dir.path());
    let done = hub.wait_json(&["get", "commands", &id], "the command ends", |c| {
        matches!(
            c.pointer("/status/phase").and_then(Value::as_str),
            Some("Succeeded" | "Failed")
        )
    });
    let finished = time_at(&done, "/status/finished");
    // A live report of the new agent made after the command ended: its restart counter
    // counts that agent's own restarts, 0 unless it applied the command a second time.
    hub.wait_json(&["get", "nodes", NODE], "the new agent reports", |n| {
        n["status"]["bootId"] != old_boot
            && n["status"]["connected"] == Value::Bool(true)
            && time_at(n, "/status/liveReceived")
                > time_at(n, "/status/sessionStarted").max(finished)
    });
    let fresh = sensor(&hub, "cosmic-ray");
    assert_eq!(
        u64_at(&fresh, "/status/restarts"),
        Some(0),
        "applied twice? command: {done:#}"
    );
    let phase = done
        .pointer("/status/phase")
        .and_then(Value::as_str)
        .unwrap();
    let message = done
        .pointer("/status/message")
        .and_then(Value::as_str)
        .unwrap_or("");
    if phase == "Failed" {
        assert!(message.contains("interrupted"), "{message}");
    }
}

/// Readings the agent reports for `name` over `window` of wall time.
fn readings_over(hub: &Hub, name: &str, window: Duration) -> u64 {
    let start = u64_at(&sensor(hub, name), "/status/readings").unwrap_or(0);
    std::thread::sleep(window);
    let end = u64_at(&sensor(hub, name), "/status/readings").unwrap_or(0);
    end.saturating_sub(start)
}

#[test]
fn applying_a_new_interval_changes_the_sampling_rate_and_the_observed_generation() {
    let (hub, token) = hub_with_sim_node();
    let dir = tempfile::tempdir().unwrap();
    let _agent = RealAgent::start(&hub, &token, dir.path());
    hub.wait_json(
        &["get", "sensors", "--node", NODE],
        "static sampling",
        |v| {
            item(v, "static")
                .and_then(|s| s.pointer("/status/readings"))
                .and_then(Value::as_u64)
                .is_some_and(|r| r > 5)
        },
    );
    let window = Duration::from_secs(3);
    // 100 ms in the config: about 30 in the window (reports come every second, so +-10).
    let before = readings_over(&hub, "static", window);

    let file = dir.path().join("static.yaml");
    std::fs::write(
        &file,
        format!("apiVersion: aloft.dev/v1\nkind: Sensor\nmetadata: {{name: static, node: {NODE}}}\nspec: {{interval: 1s}}\n"),
    )
    .unwrap();
    hub.ctl(&["apply", "-f", file.to_str().unwrap()]).ok();
    let applied = hub.wait_json(
        &["get", "sensors", "static", "--node", NODE],
        "generation 1 observed",
        |s| {
            u64_at(s, "/status/observedGeneration") == Some(1)
                && u64_at(s, "/status/intervalMs") == Some(1000)
        },
    );
    assert_eq!(u64_at(&applied, "/metadata/generation"), Some(1));
    // Let one report go by at the new rate before counting.
    std::thread::sleep(Duration::from_millis(1500));
    let after = readings_over(&hub, "static", window);
    // Ten times slower; each sample is two readings (pressure, temperature), and reports
    // come every second, so the counts are coarse: a ratio of 4 leaves room for that and
    // for a slow machine, which lowers `before` but cannot raise `after`.
    assert!(
        before >= 15,
        "the old rate was not seen: {before} readings in {window:?}"
    );
    assert!(
        after * 4 <= before,
        "still sampling fast: {after} readings in {window:?} (before: {before})"
    );
}

#[test]
fn at_trace_level_the_agent_logs_no_bearer_token_and_no_colour_into_a_file() {
    let (hub, token) = hub_with_sim_node();
    let dir = tempfile::tempdir().unwrap();
    let log = dir.path().join("agent.log");
    let agent = RealAgent::start_logging(&hub, &token, dir.path(), "trace", Some(&log));
    hub.wait_json(&["get", "nodes", NODE], "the agent connected", |n| {
        n.pointer("/status/connected").and_then(Value::as_bool) == Some(true)
    });
    hub.wait_json(&["get", "sensors", "--node", NODE], "a live report", |v| {
        item(v, "static").is_some()
    });
    drop(agent);
    let text = std::fs::read_to_string(&log).unwrap();
    // The handshake was traced (the request line itself is what carried the token).
    assert!(text.contains(" TRACE "), "no trace lines at all");
    assert!(
        text.contains("/v1/nodes/connect"),
        "the connection is not in the log"
    );
    let secret = token.trim();
    assert!(!secret.is_empty());
    if let Some(line) = text.lines().find(|l| l.contains(secret)) {
        panic!("the token is in the agent's log: {line}");
    }
    assert!(!text.contains('\u{1b}'), "ANSI colour codes in a log file");
}

#[test]
fn an_interval_the_part_cannot_do_is_shown_refused_and_set_wait_exits_3_with_the_reason() {
    let (hub, token) = hub_with_sim_node();
    let dir = tempfile::tempdir().unwrap();
    let _agent = RealAgent::start(&hub, &token, dir.path());
    hub.wait_json(
        &["get", "sensors", "--node", NODE],
        "static reported",
        |v| item(v, "static").is_some(),
    );
    let run = hub
        .ctl(&[
            "set",
            "sensor",
            "static",
            "--node",
            NODE,
            "--interval",
            "1ms",
            "--wait",
        ])
        .fails(3, "the agent refused generation 1: ");
    assert!(
        run.stderr.contains("1ms"),
        "the agent's reason: {}",
        run.stderr
    );
    let table = hub.ctl(&["get", "sensors", "static", "--node", NODE]).ok();
    assert!(table.stdout.contains("1/1 refused"), "{}", table.stdout);
    hub.ctl(&[
        "set",
        "sensor",
        "static",
        "--node",
        NODE,
        "--interval",
        "200ms",
        "--wait",
    ])
    .ok();
    let table = hub.ctl(&["get", "sensors", "static", "--node", NODE]).ok();
    assert!(table.stdout.contains("2/2"), "{}", table.stdout);
    assert!(!table.stdout.contains("refused"), "{}", table.stdout);
}

#[test]
fn unset_sends_the_real_agent_back_to_its_config_files_interval() {
    let (hub, token) = hub_with_sim_node();
    let dir = tempfile::tempdir().unwrap();
    let _agent = RealAgent::start(&hub, &token, dir.path());
    hub.wait_json(
        &["get", "sensors", "--node", NODE],
        "static reported at its config file's 100 ms",
        |v| item(v, "static").is_some_and(|s| u64_at(s, "/status/intervalMs") == Some(100)),
    );
    hub.ctl(&[
        "set",
        "sensor",
        "static",
        "--node",
        NODE,
        "--interval",
        "1s",
    ])
    .ok();
    hub.wait_json(
        &["get", "sensors", "static", "--node", NODE],
        "1 s applied",
        |s| {
            u64_at(s, "/status/observedGeneration") == Some(1)
                && u64_at(s, "/status/intervalMs") == Some(1000)
        },
    );
    let unset = hub.ctl(&["unset", "sensor", "static", "--node", NODE]).ok();
    assert!(unset.stdout.contains("unset"), "{}", unset.stdout);
    let back = hub.wait_json(
        &["get", "sensors", "static", "--node", NODE],
        "back to the config file's 100 ms",
        |s| u64_at(s, "/status/intervalMs") == Some(100),
    );
    assert_eq!(u64_at(&back, "/metadata/generation"), Some(0), "{back}");
}

#[test]
fn describe_node_shows_the_real_agents_health_in_a_section_of_its_own() {
    let (hub, token) = hub_with_sim_node();
    // No report yet: the page is as it always was, with no health anywhere.
    let before = hub.ctl(&["describe", "node", NODE]).ok().stdout;
    assert!(!before.to_lowercase().contains("health"), "{before}");
    let dir = tempfile::tempdir().unwrap();
    let _agent = RealAgent::start(&hub, &token, dir.path());
    hub.wait_json(&["get", "nodes", NODE], "the node's health", |v| {
        v.pointer("/status/health/gnssModels/0/model").is_some()
    });
    let page = hub.ctl(&["describe", "node", NODE]).ok().stdout;
    for expected in [
        "Health:\n",
        "  Received:",
        "  Time:",
        "  Store:",
        "of 256.0 MiB), decimate when full",
        "  GNSS model:   gps: airborne2g (code 7)",
    ] {
        assert!(
            page.contains(expected),
            "describe lacks {expected:?}:\n{page}"
        );
    }
    // Shown once, in its own section, not also in the status dump.
    assert!(!page.contains("gnssModels"), "{page}");
}

#[test]
fn get_nodes_watch_shows_the_node_connecting() {
    let (hub, token) = hub_with_sim_node();
    let mut child = hub
        .ctl_command_as(&hub.tokens.admin)
        .args(["get", "nodes", NODE, "-w"])
        .stdout(Stdio::piped())
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
    let next = || rx.recv_timeout(DEADLINE).unwrap();
    assert!(next().starts_with("NAME"), "a header first");
    // The listing (never connected), then the watch's lines.
    let listed = next();
    assert!(
        listed.contains(NODE) && !listed.contains("Connected"),
        "{listed}"
    );
    let dir = tempfile::tempdir().unwrap();
    let _agent = RealAgent::start(&hub, &token, dir.path());
    let deadline = Instant::now() + DEADLINE;
    loop {
        let line = next();
        if line.contains(NODE) && line.contains("Connected") {
            break;
        }
        assert!(Instant::now() < deadline, "no Connected line");
    }
    let _ = child.kill();
    let _ = child.wait();
}

/// Polls `probe` until it gives a value; fails the test after [`DEADLINE`].
fn wait_for<T>(what: &str, mut probe: impl FnMut() -> Option<T>) -> T {
    let deadline = Instant::now() + DEADLINE;
    loop {
        if let Some(value) = probe() {
            return value;
        }
        assert!(Instant::now() < deadline, "{what}: never happened");
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// The newest descriptor of `device` the hub holds for `NODE` (`aloft-hub dump`): what
/// the agent's driver recorded of the device's settings.
fn newest_descriptor(hub: &Hub, device: &str) -> Option<Value> {
    let output = Command::new(common::hub_bin())
        .arg("dump")
        .arg("--data")
        .arg(&hub.data)
        .args(["--node", NODE])
        .stdin(Stdio::null())
        .output()
        .unwrap();
    // In stream order: the newest is the last one.
    String::from_utf8_lossy(&output.stdout)
        .lines()
        .rev()
        .filter_map(|l| serde_json::from_str::<Value>(l).ok())
        .filter_map(|v| v.pointer("/record/Descriptor/descriptor").cloned())
        .find(|d| d.get("device").and_then(Value::as_str) == Some(device))
}

fn parameter(descriptor: &Value, name: &str) -> Option<Value> {
    descriptor
        .get("parameters")?
        .as_array()?
        .iter()
        .find(|p| p.get("name").and_then(Value::as_str) == Some(name))?
        .get("value")
        .cloned()
}

#[test]
fn a_tunable_set_with_aloftctl_reaches_the_simulated_device_and_a_refused_one_keeps_the_last() {
    let (hub, token) = hub_with_sim_node();
    let dir = tempfile::tempdir().unwrap();
    let _agent = RealAgent::start(&hub, &token, dir.path());
    hub.wait_json(
        &["get", "sensors", "--node", NODE],
        "outside-air reported",
        |v| item(v, "outside-air").is_some(),
    );
    // x4 pressure oversampling by default: register code 3.
    let first = wait_for("the BME280's first descriptor", || {
        newest_descriptor(&hub, "BME280")
    });
    assert_eq!(
        parameter(&first, "osrs_p"),
        Some(serde_json::json!({"Integer": 3}))
    );

    hub.ctl(&[
        "set",
        "sensor",
        "outside-air",
        "--node",
        NODE,
        "--tunable",
        "pressure_oversampling=16",
        "--tunable",
        "humidity_oversampling=2",
        "--wait",
    ])
    .ok();
    let observed = sensor(&hub, "outside-air");
    assert_eq!(
        observed.pointer("/spec/tunables"),
        Some(&serde_json::json!({"pressure_oversampling": 16, "humidity_oversampling": 2}))
    );
    // What the agent reports in force: every key the kind declares.
    let observed = hub.wait_json(
        &["get", "sensors", "outside-air", "--node", NODE],
        "the tunables in force reported",
        |s| s.pointer("/status/tunables/pressure_oversampling") == Some(&serde_json::json!(16)),
    );
    assert_eq!(
        observed.pointer("/status/tunables"),
        Some(&serde_json::json!({
            "humidity_oversampling": 2,
            "pressure_oversampling": 16,
            "temperature_oversampling": 1
        }))
    );
    // The driver took it: its descriptor, synced through the store, says x16 (code 5).
    let changed = wait_for("a descriptor with pressure x16", || {
        newest_descriptor(&hub, "BME280")
            .filter(|d| parameter(d, "osrs_p") == Some(serde_json::json!({"Integer": 5})))
    });
    assert_eq!(
        parameter(&changed, "osrs_h"),
        Some(serde_json::json!({"Integer": 2}))
    );

    // A value the kind does not take: refused with the agent's reason, the last in force.
    let run = hub
        .ctl(&[
            "set",
            "sensor",
            "outside-air",
            "--node",
            NODE,
            "--tunable",
            "pressure_oversampling=3",
            "--wait",
        ])
        .fails(3, "the agent refused generation 2: ");
    assert!(
        run.stderr.contains("pressure_oversampling")
            && run.stderr.contains("one of 1, 2, 4, 8, 16"),
        "the agent's reason: {}",
        run.stderr
    );
    let refused = sensor(&hub, "outside-air");
    assert_eq!(
        refused.pointer("/status/tunables/pressure_oversampling"),
        Some(&serde_json::json!(16))
    );
    let wide = hub
        .ctl(&[
            "get",
            "sensors",
            "outside-air",
            "--node",
            NODE,
            "-o",
            "wide",
        ])
        .ok();
    assert!(wide.stdout.contains("2/2 refused"), "{}", wide.stdout);
    assert!(
        wide.stdout.contains("pressure_oversampling=16->3"),
        "{}",
        wide.stdout
    );
    let described = hub
        .ctl(&["describe", "sensor", "outside-air", "--node", NODE])
        .ok();
    assert!(
        described.stdout.contains("tunables:"),
        "{}",
        described.stdout
    );

    // null removes the key from the desired state: back to the kind's default (x4).
    hub.ctl(&[
        "set",
        "sensor",
        "outside-air",
        "--node",
        NODE,
        "--tunable",
        "pressure_oversampling=null",
        "--wait",
    ])
    .ok();
    let back = sensor(&hub, "outside-air");
    assert_eq!(
        back.pointer("/spec/tunables"),
        Some(&serde_json::json!({"humidity_oversampling": 2}))
    );
    assert_eq!(
        back.pointer("/status/tunables/pressure_oversampling"),
        Some(&serde_json::json!(4))
    );
}
