//! What reaches an operator's terminal: text a node sends (kinds, reasons, log lines,
//! command results) or an operator types never drives the terminal or breaks a table; no
//! cell width and no closed pipe panics aloftctl or makes `aloft-hub dump` complain; and
//! the smaller traps of the command line (wait timeouts, TTL 0, unknown names, hub
//! addresses, event limits, watch columns). Real hub binary, real pipes.

#![allow(clippy::unwrap_used)] // Tests: a failed step should stop the test loudly.

mod common;

use std::io::{BufRead, BufReader};
use std::os::fd::{FromRawFd, OwnedFd};
use std::process::{Command, Stdio};
use std::sync::{Arc, Mutex};

use aloft_hub::testing::{NodeClient, api_get, client_config, hello};
use aloft_protocol::{Quality, Quantity, Reading, Record, SensorId, StoreEpoch, Timestamp};
use common::{Agent, AgentLog, Hub, Run, item, report};
use serde_json::Value;

/// What a hostile node sends: screen clear, title change, bell, a line break with a fake
/// row after it, a tab, an 8-bit CSI, a right-to-left override, DEL.
const HOSTILE: &str =
    "\u{1b}[2J\u{1b}]0;owned\u{7}\r\nFAKE ROW   glider   x\t\u{9b}31m\u{202e}gnp.exe\u{7f}";

/// The first character that must not reach a terminal raw (the layout's own newlines
/// excepted).
fn raw_control(text: &str) -> Option<char> {
    text.chars()
        .find(|c| *c != '\n' && aloftctl::output::is_terminal_control(*c))
}

fn assert_clean(run: &Run) {
    assert_eq!(
        raw_control(&run.stdout),
        None,
        "aloftctl {}: stdout {:?}",
        run.args,
        run.stdout
    );
    assert_eq!(
        raw_control(&run.stderr),
        None,
        "aloftctl {}: stderr {:?}",
        run.args,
        run.stderr
    );
}

fn hostile_agent(hub: &Hub, reason: &str) -> Agent {
    let mut gps = report(1, "gps");
    gps.kind = HOSTILE.to_owned();
    gps.reason = reason.to_owned();
    gps.last_error = Some(HOSTILE.to_owned());
    let agent = Agent::start_reporting(
        hub,
        "glider",
        &hub.tokens.node,
        vec![gps, report(2, "outside-air")],
        HOSTILE,
        Arc::new(Mutex::new(AgentLog::default())),
    );
    hub.wait_json(&["get", "sensors"], "sensors reported", |v| {
        item(v, "gps").is_some()
    });
    agent
}

#[test]
fn text_from_a_node_or_an_operator_never_reaches_the_terminal_raw_and_rows_stay_one_line() {
    let hub = Hub::start();
    let _agent = hostile_agent(&hub, HOSTILE);
    let restart = hub.ctl(&["restart", "sensor", "gps", "--wait"]).ok();
    assert_clean(&restart);

    // Tables: a header and one line per object, whatever the cells hold.
    let events = hub.json(&["get", "events", "--limit", "0"]);
    let event_count = events["items"].as_array().unwrap().len();
    for (args, lines) in [
        (&["get", "sensors"][..], Some(3)),
        (&["get", "sensors", "-o", "wide"], Some(3)),
        (&["get", "sensors", "gps"], Some(2)),
        (&["get", "commands"], Some(2)),
        (&["get", "commands", "-o", "wide"], Some(2)),
        (&["get", "events", "--limit", "0"], Some(event_count + 1)),
        (
            &["get", "events", "-o", "wide", "--limit", "0"],
            Some(event_count + 1),
        ),
        (&["logs", "node", "glider"], Some(1)),
        (&["logs", "sensor", "gps"], Some(1)),
        (&["get", "sensors", "-o", "name"], Some(2)),
        (&["top"], None),
        (&["describe", "sensor", "gps"], None),
        (&["describe", "node", "glider"], None),
        (&["get", "sensors", "-o", "yaml"], None),
        (&["logs", "sensor", "gps", "-o", "yaml"], None),
    ] {
        let run = hub.ctl(args).ok();
        assert_clean(&run);
        if let Some(lines) = lines {
            assert_eq!(
                run.stdout.lines().count(),
                lines,
                "aloftctl {}: {}",
                run.args,
                run.stdout
            );
        }
        assert!(
            !run.stdout.lines().any(|l| l.starts_with("FAKE ROW")),
            "aloftctl {}: a forged line: {}",
            run.args,
            run.stdout
        );
    }

    // JSON carries the node's words exactly, escaped.
    let run = hub.ctl(&["get", "sensors", "gps", "-o", "json"]).ok();
    assert_clean(&run);
    let sensor: Value = serde_json::from_str(&run.stdout).unwrap();
    assert_eq!(sensor.pointer("/status/kind").unwrap(), HOSTILE);

    // Names an operator typed come back in errors, escaped too.
    for args in [
        &["describe", "node", HOSTILE][..],
        &["get", "sensors", HOSTILE],
        &["restart", "sensor", HOSTILE],
    ] {
        let run = hub.ctl(args);
        assert_ne!(run.code, 0, "aloftctl {}: {}", run.args, run.stdout);
        assert_clean(&run);
    }
}

#[test]
fn a_reason_wider_than_65535_characters_shows_in_a_wide_table() {
    let hub = Hub::start();
    let reason = "r".repeat(70_000);
    let _agent = hostile_agent(&hub, &reason);
    let run = hub.ctl(&["get", "sensors", "-o", "wide"]).ok();
    assert!(run.stdout.contains(&reason));
    assert_eq!(run.stdout.lines().count(), 3);
}

/// A pipe whose reading end is already closed, as after `| head -1` has read its line.
fn closed_pipe() -> OwnedFd {
    let mut fds = [0; 2];
    // SAFETY: pipe(2) fills two descriptors we then own.
    let rc = unsafe { libc::pipe(fds.as_mut_ptr()) };
    assert_eq!(rc, 0, "pipe: {}", std::io::Error::last_os_error());
    // SAFETY: both descriptors are open and owned by nothing else.
    let (read, write) = unsafe { (OwnedFd::from_raw_fd(fds[0]), OwnedFd::from_raw_fd(fds[1])) };
    drop(read);
    write
}

/// Runs `command` with its standard output into a closed pipe: (exit code, stderr).
fn into_closed_pipe(mut command: Command) -> (Option<i32>, String) {
    let output = command
        .stdout(Stdio::from(closed_pipe()))
        .stderr(Stdio::piped())
        .output()
        .unwrap();
    (
        output.status.code(),
        String::from_utf8_lossy(&output.stderr).into_owned(),
    )
}

fn ctl_against(hub: &Hub, args: &[&str]) -> Command {
    let mut command = common::ctl_command(hub.dir.path());
    command
        .env("ALOFT_HUB", hub.url())
        .env("ALOFT_CA", hub.ca())
        .env("ALOFT_TOKEN", &hub.tokens.admin)
        .args(args);
    command
}

#[test]
fn a_closed_pipe_ends_aloftctl_quietly_and_successfully() {
    let hub = Hub::start();
    let reason = "r".repeat(200_000);
    let _agent = hostile_agent(&hub, &reason);
    for args in [
        &["completion", "bash"][..],
        &["version"],
        &["get", "sensors", "-o", "wide"],
        &["get", "sensors", "-o", "json"],
        &["describe", "sensor", "gps"],
    ] {
        let (code, stderr) = into_closed_pipe(ctl_against(&hub, args));
        assert_eq!(code, Some(0), "aloftctl {args:?}: {stderr}");
        assert_eq!(stderr, "", "aloftctl {args:?}");
    }
    let mut check = Command::new(common::workspace_bin("aloft-agent", "aloft-agent"));
    check
        .arg("check-config")
        .arg(std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../deploy/examples/sim.toml"));
    let (code, stderr) = into_closed_pipe(check);
    assert_eq!(code, Some(0), "aloft-agent check-config: {stderr}");
    assert_eq!(stderr, "", "aloft-agent check-config");
    // As `| head -1`: the reader takes one line of a long output, then goes away.
    let mut child = ctl_against(&hub, &["get", "sensors", "-o", "wide"])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut first = String::new();
    BufReader::new(child.stdout.take().unwrap())
        .read_line(&mut first)
        .unwrap();
    assert!(first.starts_with("NODE"), "{first}");
    let output = child.wait_with_output().unwrap();
    assert_eq!(
        output.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    assert!(output.stderr.is_empty());
}

fn reading(seq: u64) -> Record {
    Record::Reading(Reading {
        sensor: SensorId(1),
        quantity: Quantity::AirPressure,
        time: Timestamp::monotonic(seq * 1_000_000_000),
        value: 19_400.0 + seq as f64,
        quality: Quality::GOOD,
    })
}

fn dump(hub: &Hub, node: &str) -> Command {
    let mut command = Command::new(common::hub_bin());
    command
        .arg("dump")
        .arg("--data")
        .arg(&hub.data)
        .args(["--node", node]);
    command
}

#[test]
fn hub_dump_ends_quietly_on_a_closed_pipe_and_refuses_an_unknown_node() {
    let hub = Hub::start();
    let tls = client_config(&hub.ca()).unwrap();
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    runtime.block_on(async {
        let mut node = NodeClient::connect(hub.addr(), &tls, &hub.tokens.node)
            .await
            .unwrap();
        node.hello(hello("glider", StoreEpoch([3; 16])))
            .await
            .unwrap();
        let entries: Vec<(u64, Record)> = (0..2000).map(|seq| (seq, reading(seq))).collect();
        node.batch(StoreEpoch([3; 16]), 0, 1999, &entries)
            .await
            .unwrap();
    });
    let all = dump(&hub, "glider").output().unwrap();
    assert!(all.status.success());
    assert_eq!(String::from_utf8_lossy(&all.stdout).lines().count(), 2000);

    let (code, stderr) = into_closed_pipe(dump(&hub, "glider"));
    assert_eq!(code, Some(0), "{stderr}");
    assert_eq!(stderr, "");

    let unknown = dump(&hub, "nosuch").output().unwrap();
    assert!(!unknown.status.success());
    let stderr = String::from_utf8_lossy(&unknown.stderr);
    assert!(stderr.contains("no node nosuch"), "{stderr}");
    assert!(
        stderr.contains("glider"),
        "names the nodes there are: {stderr}"
    );
}

#[test]
fn logs_of_a_sensor_the_node_does_not_have_say_so_and_fail() {
    let hub = Hub::start();
    let _agent = Agent::start(&hub, "glider", &hub.tokens.node, &["gps"]);
    hub.wait_json(&["get", "sensors"], "sensors reported", |v| {
        item(v, "gps").is_some()
    });
    hub.ctl(&["logs", "sensor", "gps"]).ok();
    hub.ctl(&["logs", "sensor", "nosuch"])
        .fails(1, "node glider has no sensor nosuch; it reported: gps");
    hub.ctl(&["logs", "node", "nosuch"]).fails(1, "nosuch");
}

#[test]
fn a_hub_address_without_scheme_is_https_and_http_is_refused_as_such() {
    let hub = Hub::start();
    let bare = format!("127.0.0.1:{}", hub.addr().port());
    let run = common::ctl_command(hub.dir.path())
        .env("ALOFT_CA", hub.ca())
        .env("ALOFT_TOKEN", &hub.tokens.admin)
        .args(["get", "nodes", "--hub", &bare])
        .output()
        .unwrap();
    Run::of(&["get", "nodes", "--hub", &bare], run).ok();
    let http = format!("http://{bare}");
    let run = common::ctl_command(hub.dir.path())
        .env("ALOFT_CA", hub.ca())
        .env("ALOFT_TOKEN", &hub.tokens.admin)
        .args(["get", "nodes", "--hub", &http])
        .output()
        .unwrap();
    Run::of(&["get", "nodes", "--hub", &http], run)
        .fails(1, "speaks HTTPS only")
        .fails(1, &format!("https://{bare}"));
}

#[test]
fn limit_zero_lists_every_event_and_a_bad_parameter_is_a_status_400() {
    let hub = Hub::start();
    for _ in 0..3 {
        hub.ctl(&["create", "token", "--role", "viewer"]).ok();
    }
    let all = hub.json(&["get", "events", "--limit", "0"]);
    let count = all["items"].as_array().unwrap().len();
    assert!(count >= 3, "{all:#}");
    let one = hub.json(&["get", "events", "--limit", "1"]);
    assert_eq!(one["items"].as_array().unwrap().len(), 1);

    let tls = client_config(&hub.ca()).unwrap();
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    for path in [
        "/api/v1/events?limit=-1",
        "/api/v1/events?limit=lots",
        "/api/v1/sensors?watch=maybe",
        "/api/v1/nodes/glider/logs?lines=-5",
        "/api/v1/commands?timeoutSeconds=soon",
    ] {
        let (status, body) = runtime
            .block_on(api_get(hub.addr(), &tls, Some(&hub.tokens.admin), path))
            .unwrap();
        assert_eq!(status, 400, "{path}: {}", String::from_utf8_lossy(&body));
        let status: Value = serde_json::from_slice(&body)
            .unwrap_or_else(|e| panic!("{path}: not JSON ({e}): {body:?}"));
        assert_eq!(status["kind"], "Status", "{path}");
        assert_eq!(status["reason"], "BadRequest", "{path}");
        assert_eq!(status["code"], 400, "{path}");
    }
}

#[test]
fn a_zero_ttl_is_refused_and_a_wait_that_times_out_exits_4() {
    let hub = Hub::start();
    let _agent = Agent::start(&hub, "glider", &hub.tokens.node, &["gps"]);
    hub.wait_json(&["get", "sensors"], "sensors reported", |v| {
        item(v, "gps").is_some()
    });
    hub.ctl(&["restart", "sensor", "gps", "--ttl", "0s"])
        .fails(2, "--ttl");
    hub.ctl(&["restart", "sensor", "gps", "--wait", "--timeout", "1ms"])
        .fails(4, "after 1ms");
    hub.ctl(&[
        "set",
        "sensor",
        "gps",
        "--interval",
        "2s",
        "--wait",
        "--timeout",
        "1ms",
    ])
    .fails(4, "has not observed generation");
    // With time enough, both end well.
    hub.ctl(&["restart", "sensor", "gps", "--wait"]).ok();
    let set = hub
        .ctl(&["set", "sensor", "gps", "--interval", "3s", "--wait"])
        .ok();
    assert!(
        set.stdout.contains("observed generation 2"),
        "{}",
        set.stdout
    );
}

#[test]
fn a_set_the_agent_refuses_is_shown_refused_and_fails_with_its_reason() {
    let hub = Hub::start();
    let _agent = Agent::start(&hub, "glider", &hub.tokens.node, &["gps"]);
    hub.wait_json(&["get", "sensors"], "sensors reported", |v| {
        item(v, "gps").is_some()
    });
    let refused = hub
        .ctl(&["set", "sensor", "gps", "--interval", "1ms", "--wait"])
        .fails(
            3,
            "the agent refused generation 1: interval: 1ms is shorter than gps can do",
        );
    assert!(
        refused.stdout.contains("generation 1"),
        "{}",
        refused.stdout
    );
    let table = hub.ctl(&["get", "sensors", "gps"]).ok();
    assert!(table.stdout.contains("1/1 refused"), "{}", table.stdout);
    let wide = hub.ctl(&["get", "sensors", "gps", "-o", "wide"]).ok();
    assert!(
        wide.stdout
            .contains("interval: 1ms is shorter than gps can do"),
        "{}",
        wide.stdout
    );

    // apply --wait says the same of a file's spec, and a good one clears it.
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("spec.yaml");
    let spec = |interval: &str| {
        format!(
            "apiVersion: aloft.dev/v1\nkind: Sensor\nmetadata: {{name: gps, node: glider}}\nspec: {{interval: {interval}}}\n"
        )
    };
    std::fs::write(&file, spec("2ms")).unwrap();
    hub.ctl(&["apply", "-f", file.to_str().unwrap(), "--wait"])
        .fails(3, "the agent refused generation 2");
    std::fs::write(&file, spec("2s")).unwrap();
    let applied = hub
        .ctl(&["apply", "-f", file.to_str().unwrap(), "--wait"])
        .ok();
    assert!(
        applied.stdout.contains("observed generation 3"),
        "{}",
        applied.stdout
    );
    let table = hub.ctl(&["get", "sensors", "gps"]).ok();
    assert!(table.stdout.contains("3/3"), "{}", table.stdout);
    assert!(!table.stdout.contains("refused"), "{}", table.stdout);
}

/// The column starts of a table line: where each run of non-spaces after 3 spaces begins.
fn column_starts(header: &str) -> Vec<usize> {
    let chars: Vec<char> = header.chars().collect();
    let mut starts = vec![0];
    for i in 3..chars.len() {
        if chars[i] != ' ' && chars[i - 1] == ' ' && chars[i - 2] == ' ' && chars[i - 3] == ' ' {
            starts.push(i);
        }
    }
    starts
}

#[test]
fn watch_rows_line_up_with_the_header() {
    let hub = Hub::start();
    let _agent = Agent::start(
        &hub,
        "glider",
        &hub.tokens.node,
        &["gps", "outside-air-temperature"],
    );
    hub.wait_json(&["get", "sensors"], "sensors reported", |v| {
        item(v, "gps").is_some()
    });
    let mut child = ctl_against(&hub, &["get", "sensors", "-w"])
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let stdout = child.stdout.take().unwrap();
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines().map_while(Result::ok) {
            if tx.send(line).is_err() {
                break;
            }
        }
    });
    let next = || rx.recv_timeout(common::DEADLINE).unwrap();
    let header = next();
    assert!(header.starts_with("NODE"), "{header}");
    let listed = [next(), next()];
    hub.ctl(&["restart", "sensor", "gps"]).ok();
    let changed = loop {
        let line = next();
        if line.split_whitespace().nth(4) == Some("1") {
            break line;
        }
    };
    let _ = child.kill();
    let _ = child.wait();
    let starts = column_starts(&header);
    for line in listed.iter().chain([&changed]) {
        assert_eq!(
            column_starts(line),
            starts,
            "\n{header}\n{}\n{}\n{changed}",
            listed[0],
            listed[1]
        );
    }
}

#[test]
fn hub_logs_written_to_a_file_carry_no_colour_codes() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("hub");
    let tokens = aloft_hub::testing::HubProcess::init(&common::hub_bin(), &data, "glider").unwrap();
    let log = dir.path().join("hub.log");
    let mut child = Command::new(common::hub_bin())
        .args(["run", "--listen", "127.0.0.1:0", "--data"])
        .arg(&data)
        .env("RUST_LOG", "debug")
        .env_remove("NO_COLOR")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::from(std::fs::File::create(&log).unwrap()))
        .spawn()
        .unwrap();
    let mut line = String::new();
    BufReader::new(child.stdout.take().unwrap())
        .read_line(&mut line)
        .unwrap();
    let addr: std::net::SocketAddr = line
        .trim()
        .strip_prefix("aloft-hub listening on ")
        .and_then(|a| a.parse().ok())
        .unwrap_or_else(|| panic!("{line}"));
    // A node session: the hub logs it, and is serving (its signal handler is set).
    let tls = client_config(&data.join("ca.pem")).unwrap();
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap()
        .block_on(async {
            let mut node = NodeClient::connect(addr, &tls, &tokens.node).await.unwrap();
            node.hello(hello("glider", StoreEpoch([5; 16])))
                .await
                .unwrap();
        });
    let pid = libc::pid_t::try_from(child.id()).unwrap();
    // SAFETY: kill(2) on our own child with a valid signal number.
    unsafe {
        libc::kill(pid, libc::SIGTERM);
    }
    let status = child.wait().unwrap();
    assert!(status.success(), "{status}");
    let text = std::fs::read_to_string(&log).unwrap();
    assert!(text.contains("SIGTERM"), "the hub logged nothing: {text}");
    assert!(
        !text.contains('\u{1b}'),
        "ANSI codes in the log file: {text:?}"
    );
}

/// Standard error of `command` when it is a terminal (a pseudo-terminal), as text.
fn stderr_on_a_terminal(mut command: Command) -> String {
    let (mut master, mut slave) = (0, 0);
    // SAFETY: openpty(3) fills two descriptors we then own; no name, termios or size.
    let rc = unsafe {
        libc::openpty(
            &mut master,
            &mut slave,
            std::ptr::null_mut(),
            std::ptr::null(),
            std::ptr::null(),
        )
    };
    assert_eq!(rc, 0, "openpty: {}", std::io::Error::last_os_error());
    // SAFETY: both descriptors are open and owned by nothing else.
    let (master, slave) = unsafe { (OwnedFd::from_raw_fd(master), OwnedFd::from_raw_fd(slave)) };
    command
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::from(slave));
    let status = command.status().unwrap();
    // The terminal's last writer closes with the command.
    drop(command);
    let mut text = Vec::new();
    let mut master = std::fs::File::from(master);
    let mut chunk = [0u8; 4096];
    // Linux answers EIO once the other side is closed and everything was read.
    while let Ok(n) = std::io::Read::read(&mut master, &mut chunk) {
        if n == 0 {
            break;
        }
        text.extend_from_slice(&chunk[..n]);
    }
    assert!(
        status.success(),
        "{status}: {}",
        String::from_utf8_lossy(&text)
    );
    String::from_utf8_lossy(&text).into_owned()
}

#[test]
fn logs_on_a_terminal_are_coloured_unless_no_color_is_set() {
    let example =
        std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../deploy/examples/sim.toml");
    for no_color in [false, true] {
        let dir = tempfile::tempdir().unwrap();
        let mut hub = Command::new(common::hub_bin());
        hub.args(["init", "--data"])
            .arg(dir.path().join("hub"))
            .env("RUST_LOG", "info");
        let mut agent = Command::new(common::workspace_bin("aloft-agent", "aloft-agent"));
        agent
            .arg("check-config")
            .arg(&example)
            .env("RUST_LOG", "debug");
        for (what, mut command) in [("aloft-hub init", hub), ("aloft-agent check-config", agent)] {
            if no_color {
                command.env("NO_COLOR", "1");
            } else {
                command.env_remove("NO_COLOR");
            }
            let text = stderr_on_a_terminal(command);
            assert!(!text.trim().is_empty(), "{what} logged nothing");
            assert_eq!(
                text.contains('\u{1b}'),
                !no_color,
                "{what}, NO_COLOR {}: {text:?}",
                if no_color { "set" } else { "unset" }
            );
        }
    }
}
