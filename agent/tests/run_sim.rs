//! `aloft-agent run` end to end, as the real binary, on the simulated flight: it samples
//! every sensor, serves its status, stops cleanly on SIGTERM with everything in the store,
//! and after a SIGKILL the store opens again and numbering goes on.

#![allow(clippy::unwrap_used)] // A test harness: a failed setup step should stop the test loudly.

use std::collections::BTreeSet;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use aloft_protocol::{GapReason, Record, SensorState};
use aloft_store::{Outbox, StoreOptions};

mod common;
use common::free_port;

/// Bound of every wait: generous for a loaded 2-core machine.
const PATIENCE: Duration = Duration::from_secs(30);

/// deploy/examples/sim.toml with this test's store, capture directory and endpoint.
fn config(dir: &Path, port: u16) -> std::path::PathBuf {
    common::write_sim_config(dir, "agent.toml", port)
}

fn start(config: &Path) -> Child {
    Command::new(env!("CARGO_BIN_EXE_aloft-agent"))
        .args(["run", "--config"])
        .arg(config)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap()
}

/// `aloft-agent status` until every sensor has readings, or the patience runs out.
fn wait_until_every_sensor_reads(port: u16) -> String {
    common::wait_for_status(port, PATIENCE, "reading from every sensor", None, |text| {
        let sensors: Vec<&str> = text.lines().filter(|l| l.contains(" running ")).collect();
        sensors.len() == common::sim_sensor_count() && sensors.iter().all(|l| !l.contains("never"))
    })
}

fn stop(child: &mut Child, signal: nix::sys::signal::Signal) -> std::process::ExitStatus {
    let pid = nix::unistd::Pid::from_raw(i32::try_from(child.id()).unwrap());
    nix::sys::signal::kill(pid, signal).unwrap();
    let deadline = Instant::now() + PATIENCE;
    loop {
        if let Some(status) = child.try_wait().unwrap() {
            return status;
        }
        assert!(
            Instant::now() < deadline,
            "the agent did not stop within {PATIENCE:?}"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// Every record of the store, checking that numbers are contiguous.
fn records(store: &Path) -> Vec<Record> {
    let (outbox, _) = Outbox::open(store, StoreOptions::default()).unwrap();
    let mut all = Vec::new();
    let mut next = 0;
    loop {
        let batch = outbox.read_from(next, 4096).unwrap();
        if batch.is_empty() {
            break;
        }
        for (seq, record) in batch {
            // A crash skips the numbers the store had reserved and not used, and the crash
            // gap record that follows them accounts for them.
            if seq != next {
                assert!(
                    matches!(&record, Record::Gap(g)
                        if g.reason == GapReason::Crash && g.covers == Some((next, seq - 1))),
                    "sequence numbers {next}..{seq} are neither held nor covered by a crash gap"
                );
            }
            next = seq + 1;
            all.push(record);
        }
    }
    outbox.close().unwrap();
    all
}

#[test]
fn the_agent_samples_every_sensor_and_a_graceful_stop_keeps_everything() {
    let dir = tempfile::tempdir().unwrap();
    let port = free_port();
    let config = config(dir.path(), port);
    let mut agent = start(&config);
    let status = wait_until_every_sensor_reads(port);
    assert!(status.contains("glider-sim"), "{status}");

    let exit = stop(&mut agent, nix::sys::signal::Signal::SIGTERM);
    assert!(exit.success(), "SIGTERM gives a clean exit, not {exit}");

    let records = records(&dir.path().join("store"));
    assert!(
        matches!(records.first(), Some(Record::Boot(_))),
        "the stream starts with the boot"
    );
    let read_by: BTreeSet<u16> = records
        .iter()
        .filter_map(|r| match r {
            Record::Reading(r) => Some(r.sensor.0),
            _ => None,
        })
        .collect();
    assert_eq!(
        read_by,
        (0..u16::try_from(common::sim_sensor_count()).unwrap()).collect(),
        "readings of every sensor are in the store"
    );
    let described: BTreeSet<&str> = records
        .iter()
        .filter_map(|r| match r {
            Record::Descriptor(d) => Some(d.name.as_str()),
            _ => None,
        })
        .collect();
    assert_eq!(
        described.len(),
        common::sim_sensor_count(),
        "a descriptor for every sensor: {described:?}"
    );
    assert!(
        records
            .iter()
            .any(|r| matches!(r, Record::Status(s) if s.state == SensorState::Running))
    );
    assert!(
        records
            .iter()
            .any(|r| matches!(r, Record::TimeCorrelation(_))),
        "GNSS time was correlated"
    );
    // The capture the config asks for replays.
    let captured = std::fs::read_dir(dir.path().join("capture/gps"))
        .unwrap()
        .count();
    assert!(captured >= 1, "the GPS's bytes were captured");
}

#[test]
fn after_a_sigkill_the_store_opens_and_numbering_goes_on() {
    let dir = tempfile::tempdir().unwrap();
    let port = free_port();
    let config = config(dir.path(), port);
    let mut agent = start(&config);
    wait_until_every_sensor_reads(port);
    stop(&mut agent, nix::sys::signal::Signal::SIGKILL);
    let before = records(&dir.path().join("store")).len();
    assert!(before > 0, "records committed before the kill survive it");

    let mut agent = start(&config);
    wait_until_every_sensor_reads(port);
    let exit = stop(&mut agent, nix::sys::signal::Signal::SIGTERM);
    assert!(exit.success());
    let after = records(&dir.path().join("store"));
    assert!(
        after.len() > before,
        "the second run appended after the first"
    );
    let boots = after
        .iter()
        .filter(|r| matches!(r, Record::Boot(_)))
        .count();
    assert_eq!(boots, 2, "one boot record per run");
}

#[test]
fn with_no_hub_the_agent_samples_with_the_last_desired_state() {
    use aloft_agent::state::{AgentState, DesiredSensor, DesiredState, save};
    let dir = tempfile::tempdir().unwrap();
    let port = free_port();
    let config = config(dir.path(), port);
    std::fs::create_dir_all(dir.path().join("store")).unwrap();
    let state = AgentState {
        desired: Some(DesiredState {
            generation: 7,
            sensors: vec![DesiredSensor {
                name: "co2".into(),
                interval: None,
                enabled: Some(false),
                tunables: Default::default(),
            }],
        }),
        ..AgentState::default()
    };
    save(&dir.path().join("store/state.json"), &state).unwrap();

    let mut agent = start(&config);
    // Five sensors run; the one the hub switched off stays off.
    common::wait_for_status(
        port,
        PATIENCE,
        "desired state applied (five sensors running, co2 disabled)",
        None,
        |text| {
            text.lines().filter(|l| l.contains(" running ")).count() == 5
                && text
                    .lines()
                    .any(|l| l.starts_with("co2") && l.contains("disabled"))
        },
    );
    assert!(stop(&mut agent, nix::sys::signal::Signal::SIGTERM).success());
    let records = records(&dir.path().join("store"));
    assert!(
        records.iter().any(|r| matches!(r, Record::Status(s) if s.sensor.0 == 4 && s.state == SensorState::Disabled)),
        "the store says why co2 is silent"
    );
    let co2_readings = records
        .iter()
        .filter(|r| matches!(r, Record::Reading(r) if r.sensor.0 == 4))
        .count();
    assert_eq!(co2_readings, 0, "a disabled sensor takes no readings");
}
