//! Sensor tunables against the simulated flight's devices: a tunable the hub or the config
//! file sets reaches the device (the u-blox receiver's dynamic model, the BME280's
//! oversampling registers) without a restart, a refused set changes nothing, and the
//! config file's set is in force from the first open.
//!
//! Every wait is for a record or for the device's state, with a bounded timeout.

mod common;

use std::time::Duration;

use aloft_agent::config::tunables::Tunables;
use aloft_agent::config::{SensorConfig, SimulationConfig};
use aloft_agent::sensor::LatestValues;
use aloft_agent::sensor::simulation::{SimulatedI2c, Simulation, SimulationTuning};
use aloft_agent::sensor::ublox::UbloxOptions;
use aloft_agent::supervisor::{Supervisor, SupervisorError, SupervisorOptions};
use aloft_protocol::sync::TunableValue;
use aloft_protocol::{DynamicModel, ParameterValue, Record, SensorId, SensorState};
use aloft_sensors::bme280::Oversampling;
use common::{Unmet, records_until};
use tokio::sync::mpsc;
use tokio::time::Instant;

const PATIENCE: Duration = Duration::from_secs(20);

struct Flight {
    supervisor: Supervisor,
    simulation: Simulation,
    records: mpsc::Receiver<Record>,
    _links: tempfile::TempDir,
}

fn sensor(json: serde_json::Value) -> SensorConfig {
    serde_json::from_value(json).expect("a valid sensor table")
}

async fn fly(sensors: Vec<SensorConfig>) -> Flight {
    let links = tempfile::tempdir().expect("a temporary directory");
    let latest = LatestValues::new();
    let config: SimulationConfig =
        serde_json::from_value(serde_json::json!({ "seed": 7, "start_at_s": 1800.0 }))
            .expect("a valid simulation table");
    let tuning = SimulationTuning::default().with_ublox(
        UbloxOptions::default()
            .with_command_timeout(Duration::from_millis(200))
            .with_silence_limit(Duration::from_millis(500))
            .with_model_check_every(Duration::from_millis(400)),
    );
    let (simulation, slots) = Simulation::start(&config, &sensors, links.path(), &latest, tuning)
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
            Err(Unmet::TimedOut(_)) => panic!("timed out waiting for {what}"),
        }
    }

    async fn running(&mut self, sensor: u16) {
        self.until(
            "the sensor running",
            |r| matches!(r, Record::Status(s) if s.sensor == SensorId(sensor) && s.state == SensorState::Running),
        )
        .await;
    }

    async fn land(mut self) {
        let drain = tokio::spawn(async move { while self.records.recv().await.is_some() {} });
        self.supervisor.shutdown().await;
        self.simulation.stop();
        drain.abort();
    }
}

fn set(pairs: &[(&str, TunableValue)]) -> Tunables {
    pairs
        .iter()
        .map(|(k, v)| ((*k).to_string(), v.clone()))
        .collect()
}

fn text(t: &str) -> TunableValue {
    TunableValue::Text(t.into())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_dynamic_model_tunable_reaches_the_receiver_live_and_a_refused_one_changes_nothing() {
    let gps = sensor(serde_json::json!({ "name": "gps", "kind": "ublox" }));
    let mut f = fly(vec![gps]).await;
    f.running(0).await;
    let receiver = f.simulation.ublox("gps").expect("a receiver").clone();
    assert_eq!(receiver.dynamic_model(), DynamicModel::Airborne2g);
    let handle = f.supervisor.handle();
    assert_eq!(
        handle.tunables("gps").unwrap(),
        set(&[("dynamic_model", text("airborne2g"))])
    );

    let in_force = handle
        .tune("gps", &set(&[("dynamic_model", text("airborne4g"))]))
        .await
        .expect("taken");
    assert_eq!(in_force, set(&[("dynamic_model", text("airborne4g"))]));
    // Taken means confirmed by the receiver: no waiting needed.
    assert_eq!(receiver.dynamic_model(), DynamicModel::Airborne4g);
    f.until(
        "a descriptor with the new model",
        |r| matches!(r, Record::Descriptor(d) if d.descriptor.dynamic_model == Some(DynamicModel::Airborne4g)),
    )
    .await;

    let refused = handle
        .tune("gps", &set(&[("dynamic_model", text("warp"))]))
        .await
        .expect_err("not a model");
    assert!(
        matches!(&refused, SupervisorError::Tunables { reason, .. } if reason.contains("airborne2g")),
        "{refused}"
    );
    assert_eq!(receiver.dynamic_model(), DynamicModel::Airborne4g);
    assert_eq!(
        handle.tunables("gps").unwrap(),
        set(&[("dynamic_model", text("airborne4g"))])
    );

    // The model check now keeps the chosen model, not Airborne <2g.
    receiver.brown_out();
    f.until(
        "the chosen model restored",
        |r| matches!(r, Record::Status(s) if s.reason.contains("Airborne4g restored")),
    )
    .await;
    assert_eq!(receiver.dynamic_model(), DynamicModel::Airborne4g);
    f.land().await;
}

fn bme280_registers(f: &Flight) -> [Option<Oversampling>; 3] {
    match f.simulation.i2c("outside-air") {
        Some(SimulatedI2c::Bme280(sim)) => sim.oversampling(),
        other => panic!("a BME280 model, got {other:?}"),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bme280_oversampling_from_the_config_file_then_live_reaches_its_registers() {
    let air = sensor(serde_json::json!({
        "name": "outside-air", "kind": "bme280", "interval": "50ms",
        "tunables": { "pressure_oversampling": 8 }
    }));
    let mut f = fly(vec![air]).await;
    f.running(0).await;
    f.until("a reading", |r| matches!(r, Record::Reading(_)))
        .await;
    // The file's set is in force from the first open (pressure x8, the rest at default).
    assert_eq!(
        bme280_registers(&f),
        [
            Some(Oversampling::X1),
            Some(Oversampling::X8),
            Some(Oversampling::X1)
        ]
    );
    let handle = f.supervisor.handle();
    handle
        .tune(
            "outside-air",
            &set(&[
                ("pressure_oversampling", TunableValue::Integer(16)),
                ("humidity_oversampling", TunableValue::Integer(2)),
            ]),
        )
        .await
        .expect("taken");
    // The new settings are recorded in a descriptor, then written at the next measurement.
    f.until(
        "a descriptor with pressure x16",
        |r| matches!(r, Record::Descriptor(d) if d.descriptor.parameter("osrs_p") == Some(&ParameterValue::Integer(5))),
    )
    .await;
    f.until("a reading", |r| matches!(r, Record::Reading(_)))
        .await;
    f.until("another reading", |r| matches!(r, Record::Reading(_)))
        .await;
    assert_eq!(
        bme280_registers(&f),
        [
            Some(Oversampling::X1),
            Some(Oversampling::X16),
            Some(Oversampling::X2)
        ]
    );

    let refused = handle
        .tune(
            "outside-air",
            &set(&[("pressure_oversampling", TunableValue::Integer(3))]),
        )
        .await
        .expect_err("3 is no oversampling");
    assert!(
        refused.to_string().contains("one of 1, 2, 4, 8, 16"),
        "{refused}"
    );
    let unknown = handle
        .tune("outside-air", &set(&[("iir", TunableValue::Bool(true))]))
        .await
        .expect_err("no such tunable");
    assert!(unknown.to_string().contains("no such tunable"), "{unknown}");
    assert_eq!(
        handle
            .tunables("outside-air")
            .unwrap()
            .get("pressure_oversampling"),
        Some(&TunableValue::Integer(16))
    );
    // Not a restart: the device stayed open.
    assert_eq!(f.supervisor.health()[0].restarts, 0);
    f.land().await;
}
