//! The supervisor against the simulated flight's devices: pseudo-terminals for the serial
//! sensors (with their faults), register models for the I2C ones.
//!
//! Every wait is for a record (a status change, a descriptor, readings) with a bounded
//! timeout; durations are configured short so each test takes a few seconds.

mod common;

use std::path::Path;
use std::time::Duration;

use aloft_agent::config::{SensorConfig, SimulationConfig};
use aloft_agent::replay::{self, CaptureKind};
use aloft_agent::sensor::power::Level;
use aloft_agent::sensor::simulation::{SimulatedI2c, Simulation, SimulationTuning};
use aloft_agent::sensor::ublox::UbloxOptions;
use aloft_agent::sensor::{LatestValues, hardware_slots};
use aloft_agent::supervisor::backoff::BackoffPolicy;
use aloft_agent::supervisor::{RestartKind, Supervisor, SupervisorError, SupervisorOptions};
use aloft_protocol::{
    DynamicModel, Quality, Quantity, Record, SensorId, SensorState, StatusRecord,
};
use aloft_sensors::serial::pty::Fault;
use common::{Unmet, records_until};
use tokio::sync::mpsc;
use tokio::time::{Instant, timeout_at};

/// The longest any awaited event may take.
const PATIENCE: Duration = Duration::from_secs(20);

struct Flight {
    supervisor: Supervisor,
    simulation: Option<Simulation>,
    records: mpsc::Receiver<Record>,
    latest: LatestValues,
    _links: tempfile::TempDir,
}

fn sensor(json: serde_json::Value) -> SensorConfig {
    serde_json::from_value(json).expect("a valid sensor table")
}

fn simulation_config() -> SimulationConfig {
    // Half an hour in: climbing in wave, GPS fixed, airspeed well above zero.
    serde_json::from_value(serde_json::json!({ "seed": 7, "start_at_s": 1800.0 }))
        .expect("a valid simulation table")
}

fn options() -> SupervisorOptions {
    SupervisorOptions::default()
        .with_backoff(
            BackoffPolicy::new(Duration::from_millis(50), Duration::from_millis(400))
                .with_reset_after(Duration::from_secs(30)),
        )
        .with_recover_after(Duration::from_millis(300))
        .with_seed(11)
}

fn tuning() -> SimulationTuning {
    SimulationTuning::default().with_ublox(
        UbloxOptions::default()
            .with_command_timeout(Duration::from_millis(200))
            .with_silence_limit(Duration::from_millis(500))
            .with_model_check_every(Duration::from_millis(400)),
    )
}

async fn fly(sensors: Vec<SensorConfig>) -> Flight {
    fly_with(sensors, tuning()).await
}

async fn fly_with(sensors: Vec<SensorConfig>, tuning: SimulationTuning) -> Flight {
    let links = tempfile::tempdir().expect("a temporary directory");
    let latest = LatestValues::new();
    let (simulation, slots) = Simulation::start(
        &simulation_config(),
        &sensors,
        links.path(),
        &latest,
        tuning,
    )
    .expect("the simulation starts");
    let (tx, records) = mpsc::channel(4096);
    let supervisor = Supervisor::start(slots, options(), tx, latest.clone())
        .await
        .expect("the supervisor starts");
    Flight {
        supervisor,
        simulation: Some(simulation),
        records,
        latest,
        _links: links,
    }
}

impl Flight {
    fn sim(&self) -> &Simulation {
        self.simulation.as_ref().expect("running")
    }

    /// Records until `done` accepts one; all of them, in order. Panics after PATIENCE.
    async fn until(&mut self, what: &str, done: impl FnMut(&Record) -> bool) -> Vec<Record> {
        let deadline = Instant::now() + PATIENCE;
        match records_until(async || self.records.recv().await, deadline, done).await {
            Ok(seen) => seen,
            Err(Unmet::Closed(_)) => panic!("records channel closed while waiting for {what}"),
            Err(Unmet::TimedOut(seen)) => panic!(
                "timed out waiting for {what}; statuses seen: {:?}",
                statuses(&seen, None)
            ),
        }
    }

    async fn until_state(&mut self, sensor: u16, state: SensorState) -> Vec<Record> {
        self.until(
            &format!("sensor {sensor} {state:?}"),
            |r| matches!(r, Record::Status(s) if s.sensor == SensorId(sensor) && s.state == state),
        )
        .await
    }

    async fn until_readings(&mut self, sensor: u16, n: usize) -> Vec<Record> {
        let mut count = 0;
        self.until(&format!("{n} readings of sensor {sensor}"), |r| {
            if matches!(r, Record::Reading(x) if x.sensor == SensorId(sensor)) {
                count += 1;
            }
            count >= n
        })
        .await
    }

    async fn land(mut self) {
        // Keep draining while the threads stop: a thread blocked on a full channel would
        // never see its stop command.
        let drain = tokio::spawn(async move { while self.records.recv().await.is_some() {} });
        self.supervisor.shutdown().await;
        if let Some(sim) = self.simulation.take() {
            sim.stop();
        }
        drain.abort();
    }
}

fn statuses(records: &[Record], sensor: Option<u16>) -> Vec<(SensorState, String)> {
    records
        .iter()
        .filter_map(|r| match r {
            Record::Status(StatusRecord {
                sensor: s,
                state,
                reason,
                ..
            }) if sensor.is_none_or(|n| *s == SensorId(n)) => Some((*state, reason.clone())),
            _ => None,
        })
        .collect()
}

fn states(records: &[Record], sensor: u16) -> Vec<SensorState> {
    statuses(records, Some(sensor))
        .into_iter()
        .map(|(s, _)| s)
        .collect()
}

fn static_port(name: &str) -> SensorConfig {
    sensor(serde_json::json!({
        "name": name, "kind": "ms5611", "bus": "/dev/i2c-1", "interval": "20ms"
    }))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_i2c_device_that_nacks_for_a_while_fails_backs_off_and_recovers() {
    let mut f = fly(vec![static_port("static")]).await;
    f.until_state(0, SensorState::Running).await;
    f.until_readings(0, 4).await;

    let model = f.sim().i2c("static").expect("a register model").clone();
    model.nack_until_cleared();
    let failed = f.until_state(0, SensorState::Failed).await;
    let reason = statuses(&failed, Some(0)).last().map(|s| s.1.clone());
    assert!(
        reason.as_deref().is_some_and(|r| r.contains("0x77")),
        "the failure names the address: {reason:?}"
    );
    // While it NACKs, automatic restarts keep failing: at least two more attempts.
    f.until_state(0, SensorState::Restarting).await;
    f.until_state(0, SensorState::Failed).await;
    f.until_state(0, SensorState::Restarting).await;

    model.clear_faults();
    let back = f.until_state(0, SensorState::Running).await;
    assert!(
        back.iter()
            .any(|r| matches!(r, Record::Descriptor(d) if d.sensor == SensorId(0))),
        "a descriptor is recorded at the restart"
    );
    f.until_readings(0, 4).await;
    let health = &f.supervisor.health()[0];
    assert!(
        health.restarts >= 2,
        "restarts counted: {}",
        health.restarts
    );
    assert!(health.last_restart.is_some());
    f.land().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_soft_restart_goes_through_restarting_and_starting_to_running_with_a_descriptor() {
    let mut f = fly(vec![static_port("static")]).await;
    f.until_state(0, SensorState::Running).await;
    f.until_readings(0, 2).await;

    let state = f
        .supervisor
        .restart("static", RestartKind::Soft, "operator asked")
        .await
        .expect("the restart is done");
    assert_eq!(state, SensorState::Running);
    let after = f.until_state(0, SensorState::Running).await;
    assert_eq!(
        states(&after, 0),
        vec![
            SensorState::Restarting,
            SensorState::Starting,
            SensorState::Running
        ]
    );
    let restarting = statuses(&after, Some(0));
    assert!(restarting[0].1.contains("soft restart: operator asked"));
    assert!(after.iter().any(|r| matches!(r, Record::Descriptor(_))));
    let health = &f.supervisor.health()[0];
    assert_eq!(health.restarts, 1);
    assert_eq!(
        health.last_restart.as_ref().map(|r| r.reason.as_str()),
        Some("soft restart: operator asked")
    );
    f.land().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_hard_restart_pulls_the_power_line_off_then_on_and_comes_back_running() {
    let with_power = |name: &str, active_low: bool| {
        sensor(serde_json::json!({
            "name": name, "kind": "bme280", "bus": "/dev/i2c-1", "interval": "50ms",
            "power": { "chip": "/dev/gpiochip0", "line": 5, "active_low": active_low, "off_for": "30ms" }
        }))
    };
    let mut f = fly(vec![
        with_power("outside-air", false),
        with_power("inverted", true),
        static_port("static"),
    ])
    .await;
    let mut running = [false; 2];
    f.until("both powered sensors running", |r| {
        if let Record::Status(s) = r
            && s.state == SensorState::Running
            && let Some(flag) = running.get_mut(usize::from(s.sensor.0))
        {
            *flag = true;
        }
        running == [true, true]
    })
    .await;

    for name in ["outside-air", "inverted"] {
        let state = f
            .supervisor
            .restart(name, RestartKind::Hard, "wedged")
            .await
            .expect("the restart is done");
        assert_eq!(state, SensorState::Running);
    }
    let line = |name| {
        f.sim()
            .power_line(name)
            .expect("a power line")
            .transitions()
    };
    assert_eq!(line("outside-air"), vec![Level::Low, Level::High]);
    assert_eq!(line("inverted"), vec![Level::High, Level::Low]);

    let refused = f
        .supervisor
        .restart("static", RestartKind::Hard, "wedged")
        .await;
    assert_eq!(refused, Err(SupervisorError::NoPowerLine("static".into())));
    let unknown = f.supervisor.restart("pitot", RestartKind::Soft, "x").await;
    assert_eq!(unknown, Err(SupervisorError::UnknownSensor("pitot".into())));
    f.land().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_disabled_sensor_does_not_run_and_cannot_be_restarted() {
    let mut disabled = static_port("spare");
    disabled.enabled = false;
    let mut f = fly(vec![disabled, static_port("static")]).await;
    let first = f.until_readings(1, 20).await;
    assert_eq!(
        statuses(&first, Some(0)),
        vec![(SensorState::Disabled, "disabled in the config".to_string())]
    );
    assert!(
        !first.iter().any(|r| match r {
            Record::Reading(x) => x.sensor == SensorId(0),
            Record::Descriptor(d) => d.sensor == SensorId(0),
            _ => false,
        }),
        "nothing from the disabled sensor"
    );
    assert_eq!(f.supervisor.health()[0].state, SensorState::Disabled);
    let refused = f
        .supervisor
        .restart("spare", RestartKind::Soft, "try")
        .await;
    assert_eq!(refused, Err(SupervisorError::Disabled("spare".into())));
    f.land().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn airspeed_and_co2_use_the_newest_values_of_the_sensors_their_config_names() {
    let mut f = fly(vec![
        static_port("static"),
        sensor(serde_json::json!({
            "name": "outside-air", "kind": "bme280", "bus": "/dev/i2c-1", "interval": "50ms"
        })),
        sensor(serde_json::json!({
            "name": "pitot", "kind": "ms4525do", "bus": "/dev/i2c-1", "interval": "50ms",
            "static_pressure_from": "static", "outside_air_from": "outside-air"
        })),
        sensor(serde_json::json!({
            "name": "co2", "kind": "scd41", "bus": "/dev/i2c-1", "interval": "50ms",
            "ambient_pressure_from": "static"
        })),
    ])
    .await;
    let seen = f
        .until(
            "a true airspeed",
            |r| matches!(r, Record::Reading(x) if x.quantity == Quantity::TrueAirspeed),
        )
        .await;
    let tas = seen.last().and_then(|r| match r {
        Record::Reading(x) => Some(*x),
        _ => None,
    });
    let tas = tas.expect("a reading");
    assert_eq!(tas.sensor, SensorId(2));
    assert!(tas.quality.contains(Quality::SIMULATED));
    // Half an hour into the wave climb the glider flies, and true exceeds indicated aloft.
    assert!(tas.value > 10.0, "true airspeed {} m/s", tas.value);
    let now = aloft_agent::clock::AgentClock::new().now().mono_ns;
    let p = f
        .latest
        .get("static", Quantity::AirPressure, now, Duration::from_secs(5))
        .expect("the static pressure is shared");
    assert!(p.value < 101_325.0, "static pressure {} Pa aloft", p.value);
    // The CO2 sensor polls every 50 ms: a second of static readings spans many polls.
    f.until_readings(0, 50).await;
    let Some(SimulatedI2c::Scd41(co2)) = f.sim().i2c("co2") else {
        panic!("an SCD41 model");
    };
    let fed = co2.ambient_pressure_hpa().expect("compensation was fed");
    // The SCD41 takes 700..1200 hPa; lower pressures are sent as the limit (and flagged).
    let expected = (p.value / 100.0).clamp(700.0, 1200.0);
    assert!(
        (f64::from(fed) - expected).abs() <= 2.0,
        "fed {fed} hPa, static {expected} hPa"
    );
    f.land().await;
}

fn gps() -> SensorConfig {
    sensor(serde_json::json!({
        "name": "gps", "kind": "ublox", "port": "/dev/serial/by-id/usb-u-blox_GNSS-if00"
    }))
}

fn symlink_target(link: &Path) -> Option<std::path::PathBuf> {
    std::fs::read_link(link).ok()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_usb_adapter_that_vanishes_and_reappears_is_reopened_through_its_symlink() {
    let mut f = fly(vec![gps()]).await;
    let opened = f.until_state(0, SensorState::Running).await;
    let descriptor = opened.iter().find_map(|r| match r {
        Record::Descriptor(d) => Some(d.clone()),
        _ => None,
    });
    assert_eq!(
        descriptor.and_then(|d| d.descriptor.dynamic_model),
        Some(DynamicModel::Airborne2g)
    );
    f.until_readings(0, 10).await;
    let port = f.sim().port("gps").expect("a simulated port");
    let link = port.symlink().expect("a symlink").to_path_buf();
    assert!(symlink_target(&link).is_some());

    port.inject(Fault::Vanish(Duration::from_millis(800)))
        .expect("the fault is queued");
    f.until_state(0, SensorState::Failed).await;
    let back = f.until_state(0, SensorState::Running).await;
    assert!(
        states(&back, 0).contains(&SensorState::Restarting),
        "recovered by a restart of the sensor, not of the agent"
    );
    assert!(back.iter().any(|r| matches!(r, Record::Descriptor(_))));
    assert!(symlink_target(&link).is_some(), "the symlink is back");
    let after = f.until_readings(0, 10).await;
    assert!(after.iter().all(|r| match r {
        Record::Reading(x) => x.quality.contains(Quality::SIMULATED),
        _ => true,
    }));
    f.land().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_gps_that_stalls_is_noticed_as_degraded_then_failed_and_recovers() {
    let mut f = fly(vec![gps()]).await;
    f.until_state(0, SensorState::Running).await;
    f.until_readings(0, 10).await;
    f.sim()
        .port("gps")
        .expect("a simulated port")
        .inject(Fault::Stall(Duration::from_millis(2500)))
        .expect("the fault is queued");
    let noticed = f.until_state(0, SensorState::Failed).await;
    let gps_states = states(&noticed, 0);
    assert!(
        gps_states.contains(&SensorState::Degraded),
        "degraded before failed: {gps_states:?}"
    );
    f.until_state(0, SensorState::Running).await;
    f.until_readings(0, 10).await;
    f.land().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_brown_out_that_reverts_the_dynamic_model_is_noticed_and_the_model_restored() {
    let mut f = fly(vec![gps()]).await;
    let mut seen = f.until_state(0, SensorState::Running).await;
    seen.extend(f.until_readings(0, 5).await);
    let receiver = f.sim().ublox("gps").expect("a receiver").clone();
    assert_eq!(receiver.dynamic_model(), DynamicModel::Airborne2g);

    receiver.brown_out();
    assert_eq!(receiver.dynamic_model(), DynamicModel::Portable);
    seen.extend(
        f.until(
            "the model restored",
            |r| matches!(r, Record::Status(s) if s.reason.contains("Airborne <2g restored")),
        )
        .await,
    );
    // Nothing between the open and the notice: sentences cut by the open are not noise.
    let all = statuses(&seen, Some(0));
    assert_eq!(
        all.iter().map(|s| s.0).collect::<Vec<_>>(),
        vec![
            SensorState::Starting,
            SensorState::Running,
            SensorState::Running
        ],
        "{all:?}"
    );
    let notice = all.last().expect("a status");
    assert!(notice.1.contains("Portable"), "{}", notice.1);
    assert_eq!(receiver.dynamic_model(), DynamicModel::Airborne2g);
    // Not a restart: the port stayed open.
    assert_eq!(f.supervisor.health()[0].restarts, 0);
    f.land().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_other_serial_kinds_run_and_their_raw_capture_replays() {
    let captures = tempfile::tempdir().expect("a temporary directory");
    let capture = serde_json::json!({
        "dir": captures.path(), "max_file_bytes": 2048, "max_files": 50
    });
    let f = fly(vec![
        sensor(serde_json::json!({
            "name": "cosmic-ray", "kind": "cosmicwatch", "port": "/dev/ttyACM0", "capture": capture
        })),
        sensor(serde_json::json!({
            "name": "backup-gps", "kind": "nmea", "port": "/dev/ttyS1", "capture": capture
        })),
    ]);
    let mut f = f.await;
    let mut seen = f.until_readings(0, 3).await;
    seen.extend(f.until_readings(1, 3).await);
    assert!(
        seen.iter()
            .any(|r| matches!(r, Record::Descriptor(d) if d.sensor == SensorId(1)))
    );
    f.land().await;

    for (sensor, ext, kind) in [
        ("cosmic-ray", "cosmicwatch", CaptureKind::Cosmicwatch),
        ("backup-gps", "nmea", CaptureKind::Nmea),
    ] {
        let mut files: Vec<_> = std::fs::read_dir(captures.path())
            .expect("the capture directory")
            .filter_map(Result::ok)
            .map(|e| e.path())
            .filter(|p| {
                p.file_name()
                    .and_then(|n| n.to_str())
                    .is_some_and(|n| n.starts_with(&format!("{sensor}.")) && n.ends_with(ext))
            })
            .collect();
        files.sort();
        assert!(!files.is_empty(), "{sensor} was captured");
        let bytes: Vec<u8> = files
            .iter()
            .flat_map(|p| std::fs::read(p).expect("readable"))
            .collect();
        let (mut out, mut diagnostics) = (Vec::new(), Vec::new());
        let summary = replay::run(kind, &bytes, &mut out, &mut diagnostics).expect("replayed");
        assert!(
            summary.records > 0,
            "{sensor}: the capture replays to records"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn missing_hardware_is_reported_failed_with_its_path_and_retried() {
    let sensors = vec![
        sensor(serde_json::json!({
            "name": "static", "kind": "ms5611", "bus": "/dev/i2c-aloft-missing"
        })),
        sensor(serde_json::json!({
            "name": "gps", "kind": "ublox", "port": "/dev/serial/by-id/usb-aloft-missing",
            "power": { "chip": "/dev/gpiochip-aloft-missing", "line": 3 }
        })),
    ];
    let latest = LatestValues::new();
    let slots = hardware_slots(&sensors, &latest).expect("adapters for every kind");
    let (tx, mut records) = mpsc::channel(256);
    let supervisor = Supervisor::start(slots, options(), tx, latest)
        .await
        .expect("the supervisor starts");
    let deadline = Instant::now() + PATIENCE;
    let mut failures = Vec::new();
    // Two failures of each: the first attempt and at least one automatic retry.
    while failures.iter().filter(|(s, _)| *s == SensorId(0)).count() < 2
        || failures.iter().filter(|(s, _)| *s == SensorId(1)).count() < 2
    {
        match timeout_at(deadline, records.recv()).await {
            Ok(Some(Record::Status(s))) if s.state == SensorState::Failed => {
                failures.push((s.sensor, s.reason))
            }
            Ok(Some(_)) => {}
            other => panic!("no failures reported: {other:?} after {failures:?}"),
        }
    }
    assert!(
        failures
            .iter()
            .any(|(s, r)| *s == SensorId(0) && r.contains("/dev/i2c-aloft-missing"))
    );
    assert!(
        failures
            .iter()
            .any(|(s, r)| *s == SensorId(1) && r.contains("usb-aloft-missing"))
    );
    assert!(
        failures
            .iter()
            .all(|(_, r)| r.contains("; next attempt in ")),
        "a failure says when the next attempt comes: {failures:?}"
    );
    // The GPIO chip is missing too: the sensor runs without a power line.
    let refused = supervisor.restart("gps", RestartKind::Hard, "wedged").await;
    assert_eq!(refused, Err(SupervisorError::NoPowerLine("gps".into())));
    let drain = tokio::spawn(async move { while records.recv().await.is_some() {} });
    supervisor.shutdown().await;
    drain.abort();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_ublox_set_to_nav_pvt_takes_its_fixes_from_nav_pvt() {
    let tuning = SimulationTuning::default().with_ublox(
        UbloxOptions::default()
            .with_nav_pvt(true)
            .with_command_timeout(Duration::from_millis(200)),
    );
    let mut f = fly_with(vec![gps()], tuning).await;
    let seen = f.until_readings(0, 20).await;
    let quantities: std::collections::BTreeSet<Quantity> = seen
        .iter()
        .filter_map(|r| match r {
            Record::Reading(x) => Some(x.quantity),
            _ => None,
        })
        .collect();
    assert!(quantities.contains(&Quantity::Latitude), "{quantities:?}");
    assert!(quantities.contains(&Quantity::Longitude), "{quantities:?}");
    // NMEA carries no vertical speed; NAV-PVT's velD does.
    assert!(
        quantities.contains(&Quantity::VerticalSpeed),
        "{quantities:?}"
    );
    f.land().await;
}
