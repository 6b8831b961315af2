//! The derived wind in the agent's simulated flight, circling drift: GNSS, static port,
//! outside air, pitot and the wind sensor, no heading. The descent circles at 30° of bank,
//! so the wind comes from full circles of GNSS velocities, and must be within 2 m/s of the
//! scenario's wind while circling.
//!
//! The flight runs at real time (the simulated u-blox's 10 Hz epochs fill its 115200-baud
//! line at a faster speed), from a point in the descent where the glider circles for
//! minutes; every wait is for records, bounded by [`PATIENCE`].

#![allow(clippy::unwrap_used)] // A test harness: a failed setup step should stop the test loudly.

use std::time::Duration;

use aloft_agent::config::{SensorConfig, SimulationConfig};
use aloft_agent::sensor::LatestValues;
use aloft_agent::sensor::simulation::{Simulation, SimulationTuning};
use aloft_agent::supervisor::{Supervisor, SupervisorOptions};
use aloft_protocol::{ParameterValue, Quality, Quantity, Reading, Record, SensorId};
use aloft_sensors::flight::{Phase, Scenario};
use aloft_sensors::wind::Velocity;
use tokio::sync::mpsc;
use tokio::time::{Instant, timeout_at};

/// Seed of the flight.
const SEED: u64 = 7;
/// Seconds into the flight of seed 7 where the descent circles, at 40 m/s TAS (a circle
/// every 45 s), for over four minutes.
const CIRCLING_FROM_S: f64 = 6_484.0;
/// Circling winds to judge.
const WANTED: usize = 15;
/// Bound of the whole flight: the first circle, then the judged winds, on a loaded machine.
const PATIENCE: Duration = Duration::from_secs(240);

fn sensor(json: serde_json::Value) -> SensorConfig {
    serde_json::from_value(json).unwrap()
}

fn sensors() -> Vec<SensorConfig> {
    vec![
        sensor(serde_json::json!({ "name": "gps", "kind": "ublox" })),
        sensor(serde_json::json!({ "name": "static", "kind": "ms5611", "interval": "100ms" })),
        sensor(serde_json::json!({ "name": "outside-air", "kind": "bme280", "interval": "1s" })),
        sensor(serde_json::json!({
            "name": "pitot", "kind": "ms4525do", "interval": "100ms",
            "static_pressure_from": "static", "outside_air_from": "outside-air"
        })),
        sensor(serde_json::json!({
            "name": "wind", "kind": "wind",
            "ground_velocity_from": "gps", "airspeed_from": "pitot"
        })),
    ]
}

/// The glider circles in the descent at `t_s`.
fn circling(scenario: &Scenario, t_s: f64) -> bool {
    scenario.phase_at(t_s) == Phase::Descent && scenario.state_at(t_s).attitude.roll_deg < -25.0
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn circling_drift_recovers_the_simulated_flights_wind_within_2_mps() {
    let scenario = Scenario::new(SEED, 0);
    assert!(
        (0..240).all(|s| circling(&scenario, CIRCLING_FROM_S + f64::from(s))),
        "the flight of seed {SEED} circles from {CIRCLING_FROM_S} s for four minutes"
    );
    let simulation: SimulationConfig =
        serde_json::from_value(serde_json::json!({ "seed": SEED, "start_at_s": CIRCLING_FROM_S }))
            .unwrap();
    let links = tempfile::tempdir().unwrap();
    let latest = LatestValues::new();
    let sensors = sensors();
    // The flight's clock starts within Simulation::start: readings are placed in the
    // flight by their monotonic time since just before it.
    let t0_ns = aloft_agent::clock::monotonic_ns();
    let (sim, slots) = Simulation::start(
        &simulation,
        &sensors,
        links.path(),
        &latest,
        SimulationTuning::default(),
    )
    .unwrap();
    let (tx, mut records) = mpsc::channel(4096);
    let supervisor = Supervisor::start(slots, SupervisorOptions::default(), tx, latest)
        .await
        .unwrap();
    let wind_id = SensorId(4);
    let flight_t = |r: &Reading| CIRCLING_FROM_S + (r.time.mono_ns - t0_ns) as f64 / 1e9;

    let deadline = Instant::now() + PATIENCE;
    let mut descriptor = None;
    let mut at_time: Vec<Reading> = Vec::new();
    let mut judged = Vec::new();
    while judged.len() < WANTED {
        let record = match timeout_at(deadline, records.recv()).await {
            Ok(Some(r)) => r,
            other => panic!(
                "{} circling winds judged of {WANTED} when the records ended: {other:?}",
                judged.len()
            ),
        };
        match record {
            Record::Descriptor(d) if d.sensor == wind_id => descriptor = Some(d),
            Record::Reading(r) if r.sensor == wind_id => {
                at_time.retain(|x| x.time == r.time);
                at_time.push(r);
                if r.quantity != Quantity::WindMethod {
                    continue;
                }
                let value = |q| at_time.iter().find(|x| x.quantity == q).map(|x| x.value);
                let speed = value(Quantity::WindSpeed).expect("the speed at the method's time");
                let from = value(Quantity::WindFromDirection).expect("the direction too");
                assert_eq!(r.value, 2.0, "no heading: circling drift");
                assert!(
                    at_time
                        .iter()
                        .all(|x| x.quality == Quality::DERIVED | Quality::SIMULATED),
                    "fresh inputs, simulated: {at_time:?}"
                );
                let t = flight_t(&r);
                if !circling(&scenario, t) {
                    continue;
                }
                let truth = scenario.state_at(t).wind;
                let (east, north) = truth.velocity_en();
                let estimate = Velocity::towards(speed, from + 180.0);
                let error = (estimate.east - east).hypot(estimate.north - north);
                judged.push((t, speed, from, truth.speed_mps, truth.from_deg, error));
            }
            _ => {}
        }
    }
    let descriptor = descriptor.expect("the wind's descriptor was recorded at its start");
    for (name, value) in [
        ("ground_velocity_from", "gps"),
        ("airspeed_from", "pitot"),
        ("method", "auto"),
    ] {
        assert_eq!(
            descriptor.descriptor.parameter(name),
            Some(&ParameterValue::Text(value.into())),
            "{name}"
        );
    }
    assert_eq!(descriptor.descriptor.parameter("heading_from"), None);
    for (t, speed, from, true_speed, true_from, error) in &judged {
        assert!(
            *error <= 2.0,
            "at {t:.0} s: {speed:.1} m/s from {from:.0}° vs {true_speed:.1} m/s from \
             {true_from:.0}°: {error:.2} m/s off; all: {judged:?}"
        );
    }
    let worst = judged.iter().map(|j| j.5).fold(0.0, f64::max);
    eprintln!(
        "{} circling winds, worst vector error {worst:.2} m/s",
        judged.len()
    );

    let drain = tokio::spawn(async move { while records.recv().await.is_some() {} });
    supervisor.shutdown().await;
    sim.stop();
    drain.abort();
}
