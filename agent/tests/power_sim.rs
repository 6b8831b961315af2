//! Sampling that follows the power, end to end with the real binary on the simulated
//! flight: late in the cruise at 12 km the cold pack's charge falls below the first step,
//! its voltage sags below the second in the descent, and it recovers above the second's
//! band as the pack warms lower down. The store shows the sampling rates following each
//! step, records that say why, a sensor switched off and on again, and nothing lost.

#![allow(clippy::unwrap_used)] // A test harness: a failed setup step should stop the test loudly.

use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use aloft_protocol::power::PowerStepRecord;
use aloft_protocol::{Quantity, Record, SensorState};
use aloft_store::{Outbox, StoreOptions};

mod common;
use common::free_port;

/// Bound of every wait: the flight below takes ~30 s at 100 times real time; generous for
/// a loaded 2-core machine.
const PATIENCE: Duration = Duration::from_secs(120);

/// Flight seconds per real second.
const SPEED: f64 = 100.0;

/// The scenario's pack (seed 7, as deploy/examples/sim.toml): from 4000 s its charge falls
/// through 0.6 at ~4400 s, its voltage below 13.5 V at ~4950 s (lowest ~12.7 V at
/// ~5700 s) and back above 13.8 V at ~6650 s, while the charge stays below 0.6.
fn config(dir: &Path, port: u16) -> String {
    format!(
        r#"
[simulation]
seed = 7
speed = {SPEED}
start_at_s = 4000.0

[node]
name = "glider-power"

[store]
path = "{store}"
max_bytes = 268_435_456
full_policy = "decimate"
flush_interval = "1s"
retain_acked = "1h"

[[sensor]]
name = "battery"
kind = "sbs"
interval = "1s"

[[sensor]]
name = "static"
kind = "ms5611"
address = 0x77
interval = "100ms"

[[sensor]]
name = "outside-air"
kind = "bme280"
address = 0x76
interval = "1s"

[[sensor]]
name = "co2"
kind = "scd41"
address = 0x62
interval = "5s"

[metrics]
listen = "127.0.0.1:{port}"

[power]
battery = "battery"
check_interval = "200ms"
dwell = "1s"
stale_after = "5s"
voltage_hysteresis_v = 0.3

[[power.step]]
name = "economy"
soc_below = 0.6
interval_factor = 4.0

[[power.step]]
name = "survival"
voltage_below_v = 13.5
intervals = {{ static = "2s" }}
disable = ["co2"]
upload_bytes_per_s = 20_000
"#,
        store = dir.join("store").display()
    )
}

fn stop(child: &mut Child) {
    let pid = nix::unistd::Pid::from_raw(i32::try_from(child.id()).unwrap());
    nix::sys::signal::kill(pid, nix::sys::signal::Signal::SIGTERM).unwrap();
    let deadline = Instant::now() + PATIENCE;
    loop {
        if let Some(status) = child.try_wait().unwrap() {
            assert!(status.success(), "SIGTERM gives a clean exit, not {status}");
            return;
        }
        assert!(Instant::now() < deadline, "the agent did not stop");
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// Every record of the store with its number, checking that none is missing.
fn records(store: &Path) -> Vec<(u64, Record)> {
    let (outbox, _) = Outbox::open(store, StoreOptions::default()).unwrap();
    let mut all = Vec::new();
    let mut next = 0;
    loop {
        let batch = outbox.read_from(next, 4096).unwrap();
        if batch.is_empty() {
            break;
        }
        for (seq, record) in batch {
            assert_eq!(seq, next, "sequence numbers are contiguous");
            next = seq + 1;
            all.push((seq, record));
        }
    }
    outbox.close().unwrap();
    all
}

/// The READINGS column of `sensor`'s line in the status table.
fn readings_of(status: &str, sensor: &str) -> u64 {
    status
        .lines()
        .find(|l| l.split_whitespace().next() == Some(sensor))
        .and_then(|l| l.split_whitespace().nth(4))
        .and_then(|n| n.parse().ok())
        .unwrap_or(0)
}

/// The metrics text of the agent at `port`.
fn metrics(port: u16) -> String {
    use std::io::{Read, Write};
    let mut s = std::net::TcpStream::connect(("127.0.0.1", port)).unwrap();
    s.write_all(b"GET /metrics HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n")
        .unwrap();
    let mut text = String::new();
    s.read_to_string(&mut text).unwrap();
    text
}

/// The mean interval between `sensor`'s `quantity` readings taken within `from..to`
/// (monotonic ns).
fn mean_interval(
    records: &[(u64, Record)],
    sensor: u16,
    quantity: Quantity,
    from: u64,
    to: u64,
) -> Duration {
    let times: Vec<u64> = records
        .iter()
        .filter_map(|(_, r)| match r {
            Record::Reading(r)
                if r.sensor.0 == sensor
                    && r.quantity == quantity
                    && (from..to).contains(&r.time.mono_ns) =>
            {
                Some(r.time.mono_ns)
            }
            _ => None,
        })
        .collect();
    assert!(
        times.len() >= 3,
        "too few readings of sensor {sensor} within {from}..{to}: {}",
        times.len()
    );
    let span = times.last().unwrap() - times.first().unwrap();
    Duration::from_nanos(span / (times.len() as u64 - 1))
}

#[test]
fn the_battery_crosses_two_steps_and_recovers_and_the_sampling_follows() {
    let dir = tempfile::tempdir().unwrap();
    let port = free_port();
    let path = dir.path().join("agent.toml");
    std::fs::write(&path, config(dir.path(), port)).unwrap();
    let mut agent = Command::new(env!("CARGO_BIN_EXE_aloft-agent"))
        .args(["run", "--config"])
        .arg(&path)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();

    // Economy, survival, back to economy: three changes.
    let status = common::wait_for_status(
        port,
        PATIENCE,
        "the battery's recovery out of survival",
        Some(&mut agent),
        |t| t.contains("power step economy (level 1)") && t.contains("changes 3"),
    );
    assert!(
        status.contains("survival left: battery voltage"),
        "{status}"
    );
    // Sampling goes on under economy for a while (20 more pressure and temperature
    // readings of the static port: some 6 s), so the store shows the rate come back.
    let recovered_at = readings_of(&status, "static");
    common::wait_for_status(
        port,
        PATIENCE,
        "static readings after the recovery",
        Some(&mut agent),
        |t| readings_of(t, "static") >= recovered_at + 20,
    );
    let text = metrics(port);
    assert!(text.contains("aloft_power_step_level 1\n"), "{text}");
    assert!(
        text.contains("aloft_power_step_transitions_total 3\n"),
        "{text}"
    );
    assert!(text.contains("step=\"economy\""), "{text}");
    stop(&mut agent);

    let records = records(&dir.path().join("store"));
    assert!(
        !records.iter().any(|(_, r)| matches!(r, Record::Gap(_))),
        "nothing lost: no gap in the stream"
    );
    let steps: Vec<PowerStepRecord> = records
        .iter()
        .filter_map(|(_, r)| match r {
            Record::Extension(e) => PowerStepRecord::from_extension(e).map(Result::unwrap),
            _ => None,
        })
        .collect();
    let levels: Vec<(u8, &str)> = steps.iter().map(|s| (s.level, s.step.as_str())).collect();
    assert_eq!(levels, [(1, "economy"), (2, "survival"), (1, "economy")]);
    assert!(
        steps[0].reason.starts_with("state of charge 0.5"),
        "{:?}",
        steps[0]
    );
    assert!(
        steps[1].reason.starts_with("battery voltage 13.")
            && steps[1].reason.ends_with("below 13.50 V"),
        "{:?}",
        steps[1]
    );
    assert!(
        steps[2]
            .reason
            .starts_with("survival left: battery voltage 1")
            && steps[2].reason.ends_with("back above 13.80 V"),
        "{:?}",
        steps[2]
    );
    // What each step does, sensor by sensor (ids in config order).
    let effect =
        |step: &PowerStepRecord, id: u16| step.effects.iter().find(|e| e.sensor.0 == id).cloned();
    assert_eq!(effect(&steps[0], 1).unwrap().interval_ms, Some(400));
    assert_eq!(effect(&steps[0], 2).unwrap().interval_ms, Some(4_000));
    assert_eq!(effect(&steps[1], 1).unwrap().interval_ms, Some(2_000));
    let co2 = effect(&steps[1], 3).unwrap();
    assert!(co2.disabled && co2.interval_ms.is_none(), "{co2:?}");
    assert_eq!(steps[1].upload_bytes_per_s, Some(20_000));
    assert!(!effect(&steps[2], 3).unwrap().disabled);
    assert_eq!(steps[2].upload_bytes_per_s, None);

    // The rates follow: the static port's pressure every 100 ms, 400 ms, 2 s, 400 ms.
    let at = |i: usize| steps[i].time.mono_ns;
    let margin = Duration::from_millis(2_500).as_nanos() as u64;
    let first_reading = records
        .iter()
        .find_map(|(_, r)| match r {
            Record::Reading(r) if r.sensor.0 == 1 => Some(r.time.mono_ns),
            _ => None,
        })
        .unwrap();
    let last_reading = records
        .iter()
        .rev()
        .find_map(|(_, r)| match r {
            Record::Reading(r) if r.sensor.0 == 1 => Some(r.time.mono_ns),
            _ => None,
        })
        .unwrap();
    let p = Quantity::AirPressure;
    let full = mean_interval(&records, 1, p, first_reading, at(0));
    let economy = mean_interval(&records, 1, p, at(0) + margin, at(1));
    let survival = mean_interval(&records, 1, p, at(1) + margin, at(2));
    let after = mean_interval(&records, 1, p, at(2) + margin, last_reading + 1);
    assert!(full < Duration::from_millis(200), "full power: {full:?}");
    assert!(
        (Duration::from_millis(300)..Duration::from_millis(600)).contains(&economy),
        "economy: {economy:?}"
    );
    assert!(
        (Duration::from_millis(1_500)..Duration::from_millis(3_000)).contains(&survival),
        "survival: {survival:?}"
    );
    assert!(
        (Duration::from_millis(300)..Duration::from_millis(600)).contains(&after),
        "economy again: {after:?}"
    );

    // co2 went quiet in survival, said so, and came back.
    let co2_readings = |from: u64, to: u64| {
        records
            .iter()
            .filter(|(_, r)| matches!(r, Record::Reading(r) if r.sensor.0 == 3 && (from..to).contains(&r.time.mono_ns)))
            .count()
    };
    assert_eq!(
        co2_readings(at(1) + margin, at(2)),
        0,
        "co2 is off in survival"
    );
    let disabled = records.iter().find_map(|(_, r)| match r {
        Record::Status(s) if s.sensor.0 == 3 && s.state == SensorState::Disabled => Some(s),
        _ => None,
    });
    let disabled = disabled.expect("co2's status says it is disabled");
    assert!(
        disabled.reason.contains("power step survival"),
        "{disabled:?}"
    );
    let step_seq = records
        .iter()
        .position(|(_, r)| matches!(r, Record::Extension(e) if PowerStepRecord::from_extension(e).is_some_and(|s| s.as_ref().is_ok_and(|s| s.level == 2))))
        .unwrap();
    let disabled_seq = records
        .iter()
        .position(|(_, r)| matches!(r, Record::Status(s) if s.sensor.0 == 3 && s.state == SensorState::Disabled))
        .unwrap();
    assert!(
        step_seq < disabled_seq,
        "the stream says why before the sensor goes quiet"
    );
    assert!(
        records
            .iter()
            .any(|(_, r)| matches!(r, Record::Status(s) if s.sensor.0 == 3
            && s.state == SensorState::Running && s.time.mono_ns > at(2))),
        "co2 runs again after survival"
    );
}
