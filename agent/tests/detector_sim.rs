//! The detector front end in the simulated flight: the firmware's own logic behind a
//! pseudo-terminal (`SimulatedFrontEnd`), read by the `detector` adapter under the
//! supervisor, as `[simulation]` runs it. Events and housekeeping reach the record stream;
//! the threshold tunable reaches the front end and lowers its hit rate; a hard restart is
//! the front end's own reset; noise on the line is counted and reading goes on. (A stalled
//! loop and its watchdog reset are tested with the firmware in QEMU:
//! tests/tests/detector_firmware.rs.)
//!
//! Every wait is for a record, with a bounded timeout.

mod common;

use std::time::Duration;

use aloft_agent::config::tunables::Tunables;
use aloft_agent::config::{SensorConfig, SimulationConfig};
use aloft_agent::sensor::LatestValues;
use aloft_agent::sensor::simulation::{Simulation, SimulationTuning};
use aloft_agent::supervisor::{RestartKind, Supervisor, SupervisorOptions};
use aloft_protocol::sync::TunableValue;
use aloft_protocol::{
    DescriptorRecord, ParameterValue, Quantity, Reading, Record, SensorId, SensorState,
};
use common::{Unmet, records_until};
use tokio::sync::mpsc;
use tokio::time::Instant;

const PATIENCE: Duration = Duration::from_secs(30);

struct Flight {
    supervisor: Supervisor,
    simulation: Simulation,
    records: mpsc::Receiver<Record>,
    _links: tempfile::TempDir,
}

async fn fly() -> Flight {
    let links = tempfile::tempdir().expect("a temporary directory");
    let latest = LatestValues::new();
    let config: SimulationConfig =
        serde_json::from_value(serde_json::json!({ "seed": 7, "start_at_s": 1800.0 }))
            .expect("a valid simulation table");
    let sensors: Vec<SensorConfig> = vec![
        serde_json::from_value(serde_json::json!({ "name": "muons", "kind": "detector" }))
            .expect("a valid sensor table"),
    ];
    let (simulation, slots) = Simulation::start(
        &config,
        &sensors,
        links.path(),
        &latest,
        SimulationTuning::default(),
    )
    .expect("the simulation starts");
    let (tx, records) = mpsc::channel(4096);
    let supervisor = Supervisor::start(slots, SupervisorOptions::default(), tx, latest)
        .await
        .expect("the supervisor starts");
    Flight {
        supervisor,
        simulation,
        records,
        _links: links,
    }
}

impl Flight {
    async fn until(&mut self, what: &str, done: impl FnMut(&Record) -> bool) -> Vec<Record> {
        let deadline = Instant::now() + PATIENCE;
        match records_until(async || self.records.recv().await, deadline, done).await {
            Ok(seen) => seen,
            Err(Unmet::Closed(_)) => panic!("records channel closed while waiting for {what}"),
            Err(Unmet::TimedOut(seen)) => {
                panic!("timed out waiting for {what}; {} records", seen.len())
            }
        }
    }

    /// Records until `n` more readings of `quantity` came.
    async fn readings(&mut self, quantity: Quantity, n: usize) -> Vec<Record> {
        let mut left = n;
        self.until(&format!("{n} readings of {quantity}"), |r| {
            if matches!(r, Record::Reading(x) if x.quantity == quantity) {
                left -= 1;
            }
            left == 0
        })
        .await
    }

    async fn land(mut self) {
        let drain = tokio::spawn(async move { while self.records.recv().await.is_some() {} });
        self.supervisor.shutdown().await;
        self.simulation.stop();
        drain.abort();
    }
}

fn values(records: &[Record], quantity: Quantity) -> Vec<f64> {
    readings(records)
        .filter(|r| r.quantity == quantity)
        .map(|r| r.value)
        .collect()
}

fn readings(records: &[Record]) -> impl Iterator<Item = &Reading> {
    records.iter().filter_map(|r| match r {
        Record::Reading(x) => Some(x),
        _ => None,
    })
}

fn parameter(d: &DescriptorRecord, name: &str) -> Option<ParameterValue> {
    d.descriptor
        .parameters
        .iter()
        .find(|p| p.name == name)
        .map(|p| p.value.clone())
}

fn boot_of(r: &Record) -> Option<(i64, String)> {
    let Record::Descriptor(d) = r else {
        return None;
    };
    match (parameter(d, "boot_count"), parameter(d, "reset_cause")) {
        (Some(ParameterValue::Integer(n)), Some(ParameterValue::Text(cause))) => Some((n, cause)),
        _ => None,
    }
}

fn mean(values: &[f64]) -> f64 {
    values.iter().sum::<f64>() / values.len().max(1) as f64
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_simulated_front_end_is_read_tuned_reset_and_counts_noise() {
    let mut f = fly().await;
    let first = f
        .until(
            "the front end running",
            |r| matches!(r, Record::Status(s) if s.state == SensorState::Running),
        )
        .await;
    let descriptor = first
        .iter()
        .find_map(|r| match r {
            Record::Descriptor(d) => Some(d.clone()),
            _ => None,
        })
        .expect("described at the open");
    assert_eq!(descriptor.kind, "detector");
    assert_eq!(
        parameter(&descriptor, "threshold_mv"),
        Some(ParameterValue::Integer(40))
    );

    // Events and housekeeping in the stream, stamped through the time sync.
    let seen = f.readings(Quantity::SipmHitRateA, 4).await;
    assert!(!values(&seen, Quantity::MuonEventCount).is_empty());
    assert!(!values(&seen, Quantity::SensorTemperature).is_empty());
    assert!(!values(&seen, Quantity::DetectorTimeUncertainty).is_empty());
    let before = values(&seen, Quantity::SipmHitRateA);
    for r in readings(&seen) {
        assert_eq!(r.sensor, SensorId(0));
        assert!(r.value.is_finite(), "{r:?}");
    }

    // The threshold, taken by the front end and observed.
    let handle = f.supervisor.handle();
    let wanted = Tunables::from([("threshold_mv".to_string(), TunableValue::Integer(150))]);
    let in_force = handle.tune("muons", &wanted).await.expect("taken");
    assert_eq!(
        in_force.get("threshold_mv"),
        Some(&TunableValue::Integer(150))
    );
    f.until("the new threshold described", |r| {
        matches!(r, Record::Descriptor(d) if parameter(d, "threshold_mv") == Some(ParameterValue::Integer(150)))
    })
    .await;
    // The interval under way when it changed is mixed: skip it.
    f.readings(Quantity::SipmHitRateA, 1).await;
    let after = values(
        &f.readings(Quantity::SipmHitRateA, 4).await,
        Quantity::SipmHitRateA,
    );
    assert!(
        mean(&after) * 3.0 < mean(&before),
        "hit rate {before:?} at 40 mV, {after:?} at 150 mV"
    );

    // A hard restart without a power line: the front end's own reset.
    let state = handle
        .restart("muons", RestartKind::Hard, "test")
        .await
        .expect("restarted");
    assert_eq!(state, SensorState::Running);
    let boots: Vec<(i64, String)> = f
        .until("the boot after the reset", |r| boot_of(r).is_some())
        .await
        .iter()
        .filter_map(boot_of)
        .collect();
    assert_eq!(boots.last(), Some(&(2, "software".to_string())));
    assert_eq!(
        handle.tunables("muons").unwrap().get("threshold_mv"),
        Some(&TunableValue::Integer(150)),
        "the tunables survive the reset"
    );

    // Noise between frames: counted, and events go on.
    let front_end = f.simulation.front_end("muons").expect("a front end");
    front_end
        .inject_bytes(vec![0x13, 0x37, 0xfe, 0x42])
        .expect("injected");
    f.until("the corrupt frame counted", |r| {
        matches!(r, Record::Reading(x) if x.quantity == Quantity::DetectorRejectedFrames && x.value >= 1.0)
    })
    .await;
    // Housekeeping goes on after the noise.
    f.readings(Quantity::SensorTemperature, 2).await;
    f.land().await;
}
