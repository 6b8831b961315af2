//! The derived wind in the agent's simulated flight with the whole navigation set: GNSS,
//! static port, outside air, pitot, the ICM-20948 attitude sensor (the heading) and the
//! wind. With a fresh, trustworthy heading the wind triangle is the method: within 1.5 m/s
//! and 15° of the scenario's wind in straight flight (the wave climb), and within 2 m/s
//! while circling (the descent).
//!
//! Needs the ICM-20948 adapter in the simulation (`SensorKind::Icm20948`): until it is
//! there, the attitude sensor fails to open and these tests fail at once, saying so.
//!
//! The flight runs at real time (the simulated u-blox's 10 Hz epochs fill its 115200-baud
//! line at a faster speed); every wait is for records, bounded by [`PATIENCE`].

#![allow(clippy::unwrap_used)] // A test harness: a failed setup step should stop the test loudly.

use std::time::Duration;

use aloft_agent::config::{SensorConfig, SimulationConfig};
use aloft_agent::sensor::LatestValues;
use aloft_agent::sensor::simulation::{Simulation, SimulationTuning};
use aloft_agent::supervisor::{Supervisor, SupervisorOptions};
use aloft_protocol::{ParameterValue, Quality, Quantity, Reading, Record, SensorId, SensorState};
use aloft_sensors::flight::{Phase, Scenario};
use aloft_sensors::wind::{TRIANGLE_AVERAGE_S, Velocity, angle_diff_deg};
use tokio::sync::mpsc;
use tokio::time::{Instant, timeout_at};

/// Seed of the flight.
const SEED: u64 = 7;
/// Seconds into the flight of seed 7: climbing in wave, wings level for minutes.
const STRAIGHT_FROM_S: f64 = 1_800.0;
/// How long the attitude sensor runs before its winds are judged: its heading settles
/// within about a minute of a start while the filter learns the gyroscope's bias (4° off
/// at first, about 1° after), as it would have since the ground on a real flight.
const SETTLE_S: f64 = 90.0;
/// Seconds into the flight of seed 7 where the descent circles for minutes.
const CIRCLING_FROM_S: f64 = 6_484.0;
/// Seconds of wings-level flight before a wind counts as one of straight flight (more than
/// the triangle's averaging window).
const STRAIGHT_FOR_S: i32 = 60;
const _: () = assert!(STRAIGHT_FOR_S as f64 > TRIANGLE_AVERAGE_S);
/// Winds to judge per test.
const WANTED: usize = 15;
/// Bound of one test's flight, on a loaded machine.
const PATIENCE: Duration = Duration::from_secs(330);
/// The attitude sensor's number: the fifth sensor.
const ATTITUDE: SensorId = SensorId(4);
/// The wind's number: the sixth sensor.
const WIND: SensorId = SensorId(5);

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
            "name": "attitude", "kind": "icm20948",
            "airspeed_from": "pitot", "ground_velocity_from": "gps"
        })),
        sensor(serde_json::json!({
            "name": "wind", "kind": "wind", "ground_velocity_from": "gps",
            "airspeed_from": "pitot", "heading_from": "attitude"
        })),
    ]
}

/// One wind the agent derived: where in the flight, speed, from-direction, method.
#[derive(Debug, Clone, Copy)]
struct Derived {
    t_s: f64,
    speed: f64,
    from: f64,
    method: f64,
}

/// Flies from `start_s` until `judge` has accepted [`WANTED`] winds; returns them and the
/// wind's descriptor parameters.
async fn fly(
    start_s: f64,
    judge: impl Fn(&Derived) -> bool,
) -> (Vec<Derived>, aloft_protocol::SensorDescriptor) {
    let simulation: SimulationConfig =
        serde_json::from_value(serde_json::json!({ "seed": SEED, "start_at_s": start_s })).unwrap();
    let links = tempfile::tempdir().unwrap();
    let latest = LatestValues::new();
    let t0_ns = aloft_agent::clock::monotonic_ns();
    let (sim, slots) = match Simulation::start(
        &simulation,
        &sensors(),
        links.path(),
        &latest,
        SimulationTuning::default(),
    ) {
        Ok(started) => started,
        Err(e) => {
            panic!("the simulation with an icm20948 does not start (no attitude adapter?): {e}")
        }
    };
    let (tx, mut records) = mpsc::channel(4096);
    let supervisor = Supervisor::start(slots, SupervisorOptions::default(), tx, latest)
        .await
        .unwrap();
    let deadline = Instant::now() + PATIENCE;
    let mut descriptor = None;
    let mut at_time: Vec<Reading> = Vec::new();
    let mut judged = Vec::new();
    let mut headings = 0usize;
    while judged.len() < WANTED {
        let record = match timeout_at(deadline, records.recv()).await {
            Ok(Some(r)) => r,
            other => panic!(
                "{} winds judged of {WANTED} when the records ended: {other:?}",
                judged.len()
            ),
        };
        match record {
            Record::Status(s) if s.sensor == ATTITUDE && s.state == SensorState::Failed => {
                panic!(
                    "the attitude sensor failed ({}) after {headings} headings: the wind \
                     triangle is what these tests judge",
                    s.reason
                )
            }
            Record::Reading(r) if r.sensor == ATTITUDE && r.quantity == Quantity::PlatformYaw => {
                headings += 1;
            }
            Record::Descriptor(d) if d.sensor == WIND => descriptor = Some(d.descriptor),
            Record::Reading(r) if r.sensor == WIND => {
                at_time.retain(|x| x.time == r.time);
                at_time.push(r);
                if r.quantity != Quantity::WindMethod {
                    continue;
                }
                let value = |q| at_time.iter().find(|x| x.quantity == q).map(|x| x.value);
                if at_time
                    .iter()
                    .any(|x| x.quality != Quality::DERIVED | Quality::SIMULATED)
                {
                    // Flagged inputs (the attitude sensor settling): not what is judged.
                    continue;
                }
                let derived = Derived {
                    t_s: start_s + (r.time.mono_ns - t0_ns) as f64 / 1e9,
                    speed: value(Quantity::WindSpeed).expect("the speed at the method's time"),
                    from: value(Quantity::WindFromDirection).expect("the direction too"),
                    method: r.value,
                };
                if headings > 0 && judge(&derived) {
                    judged.push(derived);
                }
            }
            _ => {}
        }
    }
    let drain = tokio::spawn(async move { while records.recv().await.is_some() {} });
    supervisor.shutdown().await;
    sim.stop();
    drain.abort();
    (
        judged,
        descriptor.expect("the wind's descriptor was recorded"),
    )
}

fn truth(scenario: &Scenario, t_s: f64) -> Velocity {
    let (east, north) = scenario.state_at(t_s).wind.velocity_en();
    Velocity { east, north }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_wind_triangle_recovers_the_wind_in_straight_flight_within_1_5_mps_and_15_degrees() {
    let scenario = Scenario::new(SEED, 0);
    // Straight flight: wings level for the last minute before the judged instant, so the
    // averaging window holds no turn and the heading has settled after the last one (a
    // turn leaves the compass heading a few degrees off for about 40 s, as the attitude
    // filter's magnetometer correction brings it back).
    let straight = |t: f64| {
        (0..=STRAIGHT_FOR_S)
            .all(|s| scenario.state_at(t - f64::from(s)).attitude.roll_deg.abs() < 5.0)
            && scenario.phase_at(t) == Phase::WaveClimb
    };
    let (judged, descriptor) = fly(STRAIGHT_FROM_S - SETTLE_S, |d| {
        d.t_s >= STRAIGHT_FROM_S && straight(d.t_s)
    })
    .await;
    assert_eq!(
        descriptor.parameter("heading_from"),
        Some(&ParameterValue::Text("attitude".into()))
    );
    for d in &judged {
        let want = truth(&scenario, d.t_s);
        assert_eq!(d.method, 1.0, "a trustworthy heading: the triangle: {d:?}");
        assert!(
            (d.speed - want.speed()).abs() <= 1.5,
            "{d:?} vs {:.1} m/s",
            want.speed()
        );
        assert!(
            angle_diff_deg(d.from, want.from_deg()).abs() <= 15.0,
            "{d:?} vs from {:.0}°",
            want.from_deg()
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_derived_wind_recovers_the_wind_while_circling_within_2_mps() {
    let scenario = Scenario::new(SEED, 0);
    let circling = |t: f64| {
        scenario.phase_at(t) == Phase::Descent && scenario.state_at(t).attitude.roll_deg < -25.0
    };
    assert!((0..240).all(|s| circling(CIRCLING_FROM_S + f64::from(s))));
    let (judged, _) = fly(CIRCLING_FROM_S, |d| {
        circling(d.t_s) && d.t_s > CIRCLING_FROM_S + TRIANGLE_AVERAGE_S
    })
    .await;
    for d in &judged {
        let want = truth(&scenario, d.t_s);
        let got = Velocity::towards(d.speed, d.from + 180.0);
        let error = (got.east - want.east).hypot(got.north - want.north);
        assert!(
            error <= 2.0,
            "{d:?} vs {:.1} m/s from {:.0}°: {error:.2} m/s off",
            want.speed(),
            want.from_deg()
        );
    }
}
