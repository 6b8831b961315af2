//! The artificial horizon in the simulated flight: the ICM-20948's register model moved by
//! the scenario, the agent's adapter draining its FIFO and fusing on the board, the pitot's
//! true airspeed compensating the turns. Roll, pitch and heading are held against the
//! scenario's truth in straight flight and in the descent's 30° circles, and the sensor
//! survives a NACKing bus.
//!
//! Every wait is for a record with a bounded timeout. The flight runs at real speed (the
//! gyroscope's rates are the scenario's), so each flight takes some seconds.

#![allow(clippy::unwrap_used)]

mod common;

use std::time::Duration;

use aloft_agent::config::{SensorConfig, SimulationConfig};
use aloft_agent::sensor::LatestValues;
use aloft_agent::sensor::simulation::{Simulation, SimulationTuning};
use aloft_agent::sensor::ublox::UbloxOptions;
use aloft_agent::supervisor::backoff::BackoffPolicy;
use aloft_agent::supervisor::{Supervisor, SupervisorOptions};
use aloft_protocol::{Quality, Quantity, Reading, Record, SensorId, SensorState};
use aloft_sensors::flight::{Phase, Scenario};
use common::{Unmet, records_until};
use tokio::sync::mpsc;
use tokio::time::Instant;

const SEED: u64 = 7;
const PATIENCE: Duration = Duration::from_secs(30);
/// The attitude sensor's index in [`sensors`].
const ATTITUDE: u16 = 4;

/// Largest errors allowed against the scenario's truth, degrees.
const ROLL_PITCH_ERROR_DEG: f64 = 3.0;
const HEADING_ERROR_DEG: f64 = 6.0;

fn sensor(json: serde_json::Value) -> SensorConfig {
    serde_json::from_value(json).expect("a valid sensor table")
}

fn sensors() -> Vec<SensorConfig> {
    vec![
        sensor(serde_json::json!({
            "name": "gps", "kind": "ublox", "port": "/dev/serial/by-id/usb-u-blox_GNSS-if00"
        })),
        sensor(serde_json::json!({
            "name": "static", "kind": "ms5611", "bus": "/dev/i2c-1", "interval": "100ms"
        })),
        sensor(serde_json::json!({
            "name": "outside-air", "kind": "bme280", "bus": "/dev/i2c-1", "interval": "100ms"
        })),
        sensor(serde_json::json!({
            "name": "pitot", "kind": "ms4525do", "bus": "/dev/i2c-1", "interval": "50ms",
            "static_pressure_from": "static", "outside_air_from": "outside-air"
        })),
        sensor(serde_json::json!({
            "name": "attitude", "kind": "icm20948", "bus": "/dev/i2c-1",
            "airspeed_from": "pitot", "ground_velocity_from": "gps"
        })),
    ]
}

/// The first time of the flight at which `wanted` holds for the next `for_s` seconds.
fn find(scenario: &Scenario, for_s: f64, wanted: impl Fn(f64) -> bool) -> f64 {
    let mut t = 0.0;
    while t < scenario.duration_s() {
        if (0..=(for_s as usize)).all(|k| wanted(t + k as f64)) {
            return t;
        }
        t += 5.0;
    }
    panic!("the flight has no such stretch");
}

struct Flight {
    supervisor: Supervisor,
    simulation: Option<Simulation>,
    records: mpsc::Receiver<Record>,
    scenario: Scenario,
    start_at_s: f64,
    started_mono_ns: u64,
    _links: tempfile::TempDir,
}

async fn fly(start_at_s: f64) -> Flight {
    let links = tempfile::tempdir().expect("a temporary directory");
    let latest = LatestValues::new();
    let config: SimulationConfig =
        serde_json::from_value(serde_json::json!({ "seed": SEED, "start_at_s": start_at_s }))
            .expect("a valid simulation table");
    let tuning = SimulationTuning::default()
        .with_ublox(UbloxOptions::default().with_command_timeout(Duration::from_millis(200)));
    let started_mono_ns = aloft_agent::clock::AgentClock::new().now().mono_ns;
    let (simulation, slots) = Simulation::start(&config, &sensors(), links.path(), &latest, tuning)
        .expect("the simulation starts");
    let options = SupervisorOptions::default()
        .with_backoff(BackoffPolicy::new(
            Duration::from_millis(50),
            Duration::from_millis(400),
        ))
        .with_recover_after(Duration::from_millis(300))
        .with_seed(11);
    let (tx, records) = mpsc::channel(8192);
    let supervisor = Supervisor::start(slots, options, tx, latest)
        .await
        .expect("the supervisor starts");
    Flight {
        supervisor,
        simulation: Some(simulation),
        records,
        scenario: Scenario::new(SEED, 0),
        start_at_s,
        started_mono_ns,
        _links: links,
    }
}

fn angle_error(a: f64, b: f64) -> f64 {
    ((a - b + 540.0).rem_euclid(360.0) - 180.0).abs()
}

/// The worst errors of a run of attitude readings against the truth.
#[derive(Debug, Default)]
struct Errors {
    roll: f64,
    pitch: f64,
    heading: f64,
    outputs: usize,
    mean_roll_truth: f64,
}

impl Flight {
    async fn until(&mut self, what: &str, done: impl FnMut(&Record) -> bool) -> Vec<Record> {
        let deadline = Instant::now() + PATIENCE;
        match records_until(async || self.records.recv().await, deadline, done).await {
            Ok(seen) => seen,
            Err(Unmet::Closed(_)) => panic!("records channel closed while waiting for {what}"),
            Err(Unmet::TimedOut(_)) => panic!("timed out waiting for {what}"),
        }
    }

    /// Scenario time of a reading.
    fn t_of(&self, r: &Reading) -> f64 {
        self.start_at_s + (r.time.mono_ns.saturating_sub(self.started_mono_ns)) as f64 / 1e9
    }

    /// Waits for converged, turn-compensated outputs, then holds `n` of them against the
    /// truth.
    async fn attitude_errors(&mut self, n: usize) -> Errors {
        let attitude = SensorId(ATTITUDE);
        let mut seen = 0;
        let records = self
            .until("converged attitude outputs", |r| {
                if let Record::Reading(x) = r
                    && x.sensor == attitude
                    && x.quantity == Quantity::PlatformRoll
                    && !x.quality.contains(Quality::INVALID)
                    && !x.quality.contains(Quality::DEGRADED_INPUT)
                {
                    seen += 1;
                }
                seen >= n
            })
            .await;
        let mut e = Errors::default();
        for r in records.iter().filter_map(|r| match r {
            Record::Reading(x)
                if x.sensor == attitude
                    && !x.quality.contains(Quality::INVALID)
                    && !x.quality.contains(Quality::DEGRADED_INPUT) =>
            {
                Some(x)
            }
            _ => None,
        }) {
            assert!(!r.quality.contains(Quality::OUT_OF_RANGE), "{r:?}");
            let truth = self.scenario.state_at(self.t_of(r)).attitude;
            match r.quantity {
                Quantity::PlatformRoll => {
                    e.roll = e.roll.max((r.value - truth.roll_deg).abs());
                    e.mean_roll_truth += truth.roll_deg;
                    e.outputs += 1;
                }
                Quantity::PlatformPitch => e.pitch = e.pitch.max((r.value - truth.pitch_deg).abs()),
                Quantity::PlatformYaw => {
                    e.heading = e.heading.max(angle_error(r.value, truth.heading_deg));
                }
                Quantity::AttitudeAccuracy | Quantity::HeadingAccuracy => {
                    assert!(r.value > 0.0 && r.value < 10.0, "{r:?}");
                }
                _ => {}
            }
        }
        e.mean_roll_truth /= e.outputs.max(1) as f64;
        e
    }

    async fn land(mut self) {
        let drain = tokio::spawn(async move { while self.records.recv().await.is_some() {} });
        self.supervisor.shutdown().await;
        if let Some(sim) = self.simulation.take() {
            sim.stop();
        }
        drain.abort();
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_horizon_follows_straight_flight_in_the_wave_climb() {
    let scenario = Scenario::new(SEED, 0);
    let start = find(&scenario, 40.0, |t| {
        let s = scenario.state_at(t);
        scenario.phase_at(t) == Phase::WaveClimb
            && s.attitude.roll_deg.abs() < 0.5
            && s.attitude.turn_rate_deg_s.abs() < 0.2
    });
    let mut f = fly(start).await;
    let e = f.attitude_errors(40).await;
    println!("straight flight from t = {start} s: {e:?}");
    assert!(e.mean_roll_truth.abs() < 1.0, "{e:?}");
    assert!(e.roll < ROLL_PITCH_ERROR_DEG, "{e:?}");
    assert!(e.pitch < ROLL_PITCH_ERROR_DEG, "{e:?}");
    assert!(e.heading < HEADING_ERROR_DEG, "{e:?}");
    f.land().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_horizon_holds_the_bank_of_the_descent_circles_and_survives_a_nack() {
    let scenario = Scenario::new(SEED, 0);
    let start = find(&scenario, 90.0, |t| {
        scenario.phase_at(t) == Phase::Descent && scenario.state_at(t).attitude.roll_deg <= -29.0
    });
    let mut f = fly(start).await;
    let e = f.attitude_errors(40).await;
    println!("circling from t = {start} s: {e:?}");
    assert!(e.mean_roll_truth < -29.0, "{e:?}");
    assert!(e.roll < ROLL_PITCH_ERROR_DEG, "{e:?}");
    assert!(e.pitch < ROLL_PITCH_ERROR_DEG, "{e:?}");
    assert!(e.heading < HEADING_ERROR_DEG, "{e:?}");

    let model = f
        .simulation
        .as_ref()
        .and_then(|s| s.i2c("attitude"))
        .expect("a register model")
        .clone();
    model.nack_until_cleared();
    let attitude = SensorId(ATTITUDE);
    f.until("the attitude sensor failing", |r| {
        matches!(r, Record::Status(s) if s.sensor == attitude && s.state == SensorState::Failed)
    })
    .await;
    model.clear_faults();
    f.until("the attitude sensor running again", |r| {
        matches!(r, Record::Status(s) if s.sensor == attitude && s.state == SensorState::Running)
    })
    .await;
    // Restarted, the filter converges again before its outputs are trusted.
    let again = f.attitude_errors(12).await;
    println!("after the restart: {again:?}");
    assert!(again.roll < ROLL_PITCH_ERROR_DEG, "{again:?}");
    assert!(again.heading < HEADING_ERROR_DEG, "{again:?}");
    f.land().await;
}
