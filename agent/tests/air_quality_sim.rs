//! The ozone monitor (serial, behind a pseudo-terminal) and the SPS30 particle sensor (a
//! register model behind the real driver) in the simulated flight, under the supervisor:
//! low in the boundary layer and high at the tropopause, their readings against the
//! scenario's truth, and their faults survived.
//!
//! Stated errors: ozone within 8 ppb + 5 % of the truth (the monitor's noise is 1 sigma the
//! greater of 1.5 ppb and 2 %), PM2.5 within 1 µg m-3 + 10 % (the SPS30 model's gain is
//! within 3 % and its noise 0.1 µg m-3 + 2 %), cell pressure within 5 hPa of 99 % of the
//! static pressure. Every wait is for records, bounded by a timeout; nothing sleeps.

#![allow(clippy::unwrap_used)]

mod common;

use std::time::Duration;

use aloft_agent::config::{SensorConfig, SimulationConfig};
use aloft_agent::sensor::LatestValues;
use aloft_agent::sensor::simulation::{SimulatedI2c, Simulation, SimulationTuning};
use aloft_agent::supervisor::backoff::BackoffPolicy;
use aloft_agent::supervisor::{Supervisor, SupervisorOptions};
use aloft_protocol::{Quality, Quantity, Reading, Record, SensorId, SensorState};
use aloft_sensors::flight::Scenario;
use common::{Unmet, records_until};
use tokio::sync::mpsc;
use tokio::time::Instant;

const PATIENCE: Duration = Duration::from_secs(30);
const SEED: u64 = 7;
const OUTSIDE_AIR: u16 = 0;
const OZONE: u16 = 1;
const PARTICLES: u16 = 2;
/// Simulated seconds per real second.
const SPEED: f64 = 2.0;

struct Flight {
    supervisor: Supervisor,
    simulation: Option<Simulation>,
    records: mpsc::Receiver<Record>,
    start_at_s: f64,
    started: std::time::Instant,
    _links: tempfile::TempDir,
}

fn sensor(json: serde_json::Value) -> SensorConfig {
    serde_json::from_value(json).expect("a valid sensor table")
}

fn sensors() -> Vec<SensorConfig> {
    vec![
        sensor(serde_json::json!({
            "name": "outside-air", "kind": "bme280", "bus": "/dev/i2c-1", "interval": "200ms"
        })),
        sensor(serde_json::json!({
            "name": "ozone", "kind": "pom", "port": "/dev/ttyUSB1",
            "tunables": { "temperature_unit": "kelvin", "pressure_unit": "torr" }
        })),
        sensor(serde_json::json!({
            "name": "particles", "kind": "sps30", "bus": "/dev/i2c-1", "interval": "1s",
            "outside_air_from": "outside-air"
        })),
    ]
}

async fn fly(start_at_s: f64) -> Flight {
    fly_with(start_at_s, SimulationTuning::default()).await
}

async fn fly_with(start_at_s: f64, tuning: SimulationTuning) -> Flight {
    let links = tempfile::tempdir().unwrap();
    let config: SimulationConfig = serde_json::from_value(serde_json::json!({
        "seed": SEED, "start_at_s": start_at_s, "speed": SPEED
    }))
    .unwrap();
    let latest = LatestValues::new();
    let (simulation, slots) = Simulation::start(&config, &sensors(), links.path(), &latest, tuning)
        .expect("the simulation starts");
    let (tx, records) = mpsc::channel(4096);
    let options = SupervisorOptions::default()
        .with_backoff(BackoffPolicy::new(
            Duration::from_millis(50),
            Duration::from_millis(400),
        ))
        .with_recover_after(Duration::from_millis(300))
        .with_seed(3);
    let supervisor = Supervisor::start(slots, options, tx, latest)
        .await
        .expect("the supervisor starts");
    Flight {
        supervisor,
        simulation: Some(simulation),
        records,
        start_at_s,
        started: std::time::Instant::now(),
        _links: links,
    }
}

impl Flight {
    fn sim(&self) -> &Simulation {
        self.simulation.as_ref().unwrap()
    }

    async fn until(&mut self, what: &str, done: impl FnMut(&Record) -> bool) -> Vec<Record> {
        let deadline = Instant::now() + PATIENCE;
        match records_until(async || self.records.recv().await, deadline, done).await {
            Ok(seen) => seen,
            Err(Unmet::Closed(_)) => panic!("records closed while waiting for {what}"),
            Err(Unmet::TimedOut(seen)) => panic!(
                "timed out waiting for {what}; statuses: {:?}",
                seen.iter()
                    .filter_map(|r| match r {
                        Record::Status(s) => Some((s.sensor, s.state, s.reason.clone())),
                        _ => None,
                    })
                    .collect::<Vec<_>>()
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

    /// Readings until `n` of `quantity` have come; all readings seen.
    async fn readings(&mut self, quantity: Quantity, n: usize) -> Vec<Reading> {
        let mut count = 0;
        self.until(&format!("{n} readings of {quantity:?}"), |r| {
            if matches!(r, Record::Reading(x) if x.quantity == quantity) {
                count += 1;
            }
            count >= n
        })
        .await
        .into_iter()
        .filter_map(|r| match r {
            Record::Reading(x) => Some(x),
            _ => None,
        })
        .collect()
    }

    /// The flight's truth of `f` over the time flown so far (a margin either side): its
    /// smallest and largest value.
    fn truth_band(&self, f: impl Fn(&aloft_sensors::flight::FlightState) -> f64) -> (f64, f64) {
        let scenario = Scenario::new(SEED, 0);
        let flown = self.started.elapsed().as_secs_f64() * SPEED;
        let (mut lo, mut hi) = (f64::INFINITY, f64::NEG_INFINITY);
        let mut t = self.start_at_s - 5.0;
        while t <= self.start_at_s + flown + 5.0 {
            let v = f(&scenario.state_at(t));
            lo = lo.min(v);
            hi = hi.max(v);
            t += 1.0;
        }
        (lo, hi)
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

fn of(readings: &[Reading], sensor: u16, quantity: Quantity) -> Vec<Reading> {
    readings
        .iter()
        .filter(|r| r.sensor == SensorId(sensor) && r.quantity == quantity)
        .copied()
        .collect()
}

fn mean(readings: &[Reading]) -> f64 {
    readings.iter().map(|r| r.value).sum::<f64>() / readings.len() as f64
}

const BAD: Quality = Quality::OUT_OF_RANGE;

fn flagged(r: &Reading, q: Quality) -> bool {
    r.quality.contains(q)
}

/// Every reading of `readings` within `tolerance(truth)` of the truth band.
fn within(readings: &[Reading], (lo, hi): (f64, f64), tolerance: impl Fn(f64) -> f64, what: &str) {
    assert!(!readings.is_empty(), "no {what}");
    for r in readings {
        assert!(
            r.value >= lo - tolerance(lo) && r.value <= hi + tolerance(hi),
            "{what} {} outside the truth {lo}..{hi}",
            r.value
        );
    }
}

fn ozone_tolerance(truth: f64) -> f64 {
    8e-9 + 0.05 * truth
}

fn pm_tolerance(truth: f64) -> f64 {
    1e-9 + 0.10 * truth
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ozone_rises_and_particles_fall_from_the_boundary_layer_to_the_tropopause() {
    // Ten minutes in: climbing through 2.7 km, still in the valley's hazy boundary layer,
    // the outside air at about 4 °C (inside the SPS30's operating range).
    let mut low = fly(600.0).await;
    let seen = low.readings(Quantity::OzoneMoleFraction, 4).await;
    let mut seen = [
        seen,
        low.readings(Quantity::Pm2p5MassConcentration, 4).await,
    ]
    .concat();
    seen.extend(low.readings(Quantity::OzoneMoleFraction, 1).await);
    let ozone_band = low.truth_band(|s| s.air.ozone_mol_mol);
    let pm_band = low.truth_band(|s| s.air.pm2p5_kg_m3);
    let pressure_band = low.truth_band(|s| s.pressure_pa * 0.99);
    let ozone_low = of(&seen, OZONE, Quantity::OzoneMoleFraction);
    within(&ozone_low, ozone_band, ozone_tolerance, "ozone low");
    within(
        &of(&seen, OZONE, Quantity::CellPressure),
        pressure_band,
        |_| 500.0,
        "cell pressure",
    );
    let pm_low = of(&seen, PARTICLES, Quantity::Pm2p5MassConcentration);
    within(&pm_low, pm_band, pm_tolerance, "PM2.5 low");
    for r in ozone_low.iter().chain(&pm_low) {
        assert!(
            !flagged(r, BAD | Quality::INVALID | Quality::DEGRADED_INPUT),
            "{r:?}"
        );
    }
    // The size channels are there, cumulative, and the typical size in metres.
    let pm10 = of(&seen, PARTICLES, Quantity::Pm10MassConcentration);
    assert!(mean(&pm10) > mean(&pm_low));
    let size = of(&seen, PARTICLES, Quantity::TypicalParticleSize);
    assert!(
        size.iter().all(|r| (0.3e-6..1e-6).contains(&r.value)),
        "{size:?}"
    );
    low.land().await;

    // Over an hour in: at 12 km, above the tropopause, in clean air at -50 °C.
    let mut high = fly(4_000.0).await;
    let seen = high.readings(Quantity::OzoneMoleFraction, 4).await;
    let seen = [
        seen,
        high.readings(Quantity::Pm2p5MassConcentration, 4).await,
    ]
    .concat();
    let ozone_band = high.truth_band(|s| s.air.ozone_mol_mol);
    let pm_band = high.truth_band(|s| s.air.pm2p5_kg_m3);
    let ozone_high = of(&seen, OZONE, Quantity::OzoneMoleFraction);
    within(&ozone_high, ozone_band, ozone_tolerance, "ozone high");
    let pm_high = of(&seen, PARTICLES, Quantity::Pm2p5MassConcentration);
    within(&pm_high, pm_band, pm_tolerance, "PM2.5 high");
    assert!(mean(&ozone_high) > 4.0 * mean(&ozone_low));
    assert!(mean(&pm_high) < mean(&pm_low) / 10.0);
    // The outside air is below the SPS30's -10 °C: every particle reading says so. (The
    // thermometer is below its own -40 °C too, so its value is flagged and the particle
    // readings say their input is degraded; the first ones, before its first reading, say
    // only that.)
    assert!(pm_high.iter().any(|r| flagged(r, BAD)), "{pm_high:?}");
    assert!(
        pm_high
            .iter()
            .all(|r| flagged(r, BAD) || flagged(r, Quality::DEGRADED_INPUT)),
        "{pm_high:?}"
    );
    // The ozone monitor sits in the heated box: its readings stay unflagged.
    assert!(
        ozone_high.iter().all(|r| !flagged(r, BAD)),
        "{ozone_high:?}"
    );
    high.land().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn garbled_lines_a_stopped_pump_and_a_nacking_sps30_are_survived() {
    let mut f = fly(600.0).await;
    f.until_state(OZONE, SensorState::Running).await;
    f.readings(Quantity::OzoneMoleFraction, 2).await;

    // Line noise: degraded, then running again with good readings.
    let faults = f.sim().pom("ozone").unwrap().clone();
    faults.garble_next(2);
    f.until_state(OZONE, SensorState::Degraded).await;
    f.until_state(OZONE, SensorState::Running).await;

    // The pump stops: the flow reads zero, the ozone is flagged and the sensor degraded.
    faults.set_zero_flow(true);
    let seen = f.until_state(OZONE, SensorState::Degraded).await;
    let no_flow: Vec<Reading> = seen
        .iter()
        .filter_map(|r| match r {
            Record::Reading(x) if x.sensor == SensorId(OZONE) => Some(*x),
            _ => None,
        })
        .filter(|r| r.quantity == Quantity::SampleFlowRate && r.value == 0.0)
        .collect();
    assert!(no_flow.iter().all(|r| flagged(r, BAD)));
    faults.set_zero_flow(false);
    f.until_state(OZONE, SensorState::Running).await;
    let after = f.readings(Quantity::OzoneMoleFraction, 1).await;
    let ozone = of(&after, OZONE, Quantity::OzoneMoleFraction);
    assert!(ozone.iter().all(|r| !flagged(r, BAD)), "{ozone:?}");

    // The SPS30 NACKs: failed and restarted until it answers, then measuring again.
    f.readings(Quantity::Pm2p5MassConcentration, 1).await;
    let Some(SimulatedI2c::Sps30(sps30)) = f.sim().i2c("particles").cloned() else {
        panic!("an SPS30 model");
    };
    sps30.nack_until_cleared();
    f.until_state(PARTICLES, SensorState::Failed).await;
    sps30.clear_faults();
    f.until_state(PARTICLES, SensorState::Running).await;
    f.readings(Quantity::Pm2p5MassConcentration, 2).await;
    // A laser failure in the status register: readings flagged, the sensor degraded.
    sps30.laser_error();
    let seen = f.until_state(PARTICLES, SensorState::Degraded).await;
    assert!(seen.iter().any(|r| matches!(r, Record::Status(s)
        if s.sensor == SensorId(PARTICLES) && s.reason.contains("laser error"))));
    sps30.clear_faults();
    f.until_state(PARTICLES, SensorState::Running).await;
    let health = f.supervisor.health();
    assert!(health[usize::from(OUTSIDE_AIR)].restarts == 0);
    f.land().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stalled_monitor_is_noticed_restarted_and_read_again_once_it_talks() {
    // Lines every 2 s of flight, 1 s of real time: 2.5 s of silence is not normal.
    let tuning = SimulationTuning::default().with_pom_silence(Duration::from_millis(2_500));
    let mut f = fly_with(600.0, tuning).await;
    f.readings(Quantity::OzoneMoleFraction, 2).await;
    let faults = f.sim().pom("ozone").unwrap().clone();
    faults.set_stalled(true);
    f.until_state(OZONE, SensorState::Degraded).await;
    f.until_state(OZONE, SensorState::Failed).await;
    faults.set_stalled(false);
    f.until_state(OZONE, SensorState::Running).await;
    let seen = f.readings(Quantity::OzoneMoleFraction, 2).await;
    assert!(!of(&seen, OZONE, Quantity::OzoneMoleFraction).is_empty());
    assert!(f.supervisor.health()[usize::from(OZONE)].restarts >= 1);
    f.land().await;
}
