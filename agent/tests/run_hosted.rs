//! The simulated flight's devices in one process (`aloft-agent simulate`) and the agent in
//! another, reading them through its hardware path: serial sensors on pseudo-terminals
//! named by stable symlinks, I2C sensors on bridge sockets. Every sensor reads; when the
//! device process dies every sensor leaves running, and when it comes back they all
//! recover without the agent being restarted.

#![allow(clippy::unwrap_used)] // A test harness: a failed setup step should stop the test loudly.

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

mod common;
use common::free_port;

/// Bound of every wait: generous for a loaded 2-core machine (a restart backs off for up
/// to a few seconds).
const PATIENCE: Duration = Duration::from_secs(60);

/// deploy/examples/sim.toml with this test's store, capture directory and endpoint.
fn sim_config(dir: &Path, port: u16) -> PathBuf {
    common::write_sim_config(dir, "sim.toml", port)
}

/// Starts `aloft-agent simulate` and waits for its "devices ready" line.
fn simulate(config: &Path, devices: &Path) -> Child {
    let mut child = Command::new(env!("CARGO_BIN_EXE_aloft-agent"))
        .args(["simulate", "--config"])
        .arg(config)
        .arg("--devices")
        .arg(devices)
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let mut line = String::new();
    BufReader::new(child.stdout.take().unwrap())
        .read_line(&mut line)
        .unwrap();
    assert!(line.contains("devices ready"), "{line:?}");
    child
}

fn running(text: &str) -> usize {
    text.lines().filter(|l| l.contains(" running ")).count()
}

fn wait_for(port: u16, what: &str, done: impl Fn(&str) -> bool) -> String {
    common::wait_for_status(port, PATIENCE, what, None, done)
}

fn kill(child: &mut Child, signal: nix::sys::signal::Signal) {
    let pid = nix::unistd::Pid::from_raw(i32::try_from(child.id()).unwrap());
    let _ = nix::sys::signal::kill(pid, signal);
    let _ = child.wait();
}

#[test]
fn an_agent_reads_devices_hosted_by_another_process_and_recovers_when_they_return() {
    let dir = tempfile::tempdir().unwrap();
    let port = free_port();
    let config = sim_config(dir.path(), port);
    let devices = dir.path().join("devices");
    let mut simulator = simulate(&config, &devices);
    let agent_config = devices.join("agent.toml");
    let check = Command::new(env!("CARGO_BIN_EXE_aloft-agent"))
        .arg("check-config")
        .arg(&agent_config)
        .output()
        .unwrap();
    assert!(
        check.status.success(),
        "the written config is valid: {}",
        String::from_utf8_lossy(&check.stdout)
    );
    let mut agent = Command::new(env!("CARGO_BIN_EXE_aloft-agent"))
        .args(["run", "--config"])
        .arg(&agent_config)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();

    let every_sensor_reads = |t: &str| {
        running(t) == common::sim_sensor_count()
            && t.lines().filter(|l| l.contains("never")).count() == 0
    };
    wait_for(port, "every hosted sensor reads", every_sensor_reads);

    // The devices vanish at once: ptys hang up, bridge sockets close.
    kill(&mut simulator, nix::sys::signal::Signal::SIGKILL);
    wait_for(port, "every sensor notices its device is gone", |t| {
        running(t) == 0
    });

    let mut simulator = simulate(&config, &devices);
    let text = wait_for(port, "every sensor recovers", |t| {
        running(t) == common::sim_sensor_count()
    });
    assert!(text.contains("glider-sim"), "{text}");
    assert!(
        agent.try_wait().unwrap().is_none(),
        "the agent itself never stopped"
    );

    kill(&mut agent, nix::sys::signal::Signal::SIGTERM);
    kill(&mut simulator, nix::sys::signal::Signal::SIGTERM);
    let left: Vec<_> = std::fs::read_dir(&devices)
        .unwrap()
        .map(|e| e.unwrap().file_name())
        .collect();
    assert_eq!(
        left,
        ["agent.toml"],
        "a stopped simulator removes its symlinks and sockets"
    );
}

#[test]
fn simulate_refuses_a_config_without_a_simulation() {
    let dir = tempfile::tempdir().unwrap();
    let glider = Path::new(env!("CARGO_MANIFEST_DIR")).join("../deploy/examples/glider.toml");
    let out = Command::new(env!("CARGO_BIN_EXE_aloft-agent"))
        .args(["simulate", "--config"])
        .arg(glider)
        .arg("--devices")
        .arg(dir.path().join("d"))
        .output()
        .unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("no [simulation] table"), "{err}");
}
