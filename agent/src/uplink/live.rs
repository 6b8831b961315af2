//! The live lane's board: the newest reading of every (sensor, quantity) and every sensor's
//! report, kept up to date by the store writer as records pass, read by the uplink for
//! [`LiveUpdate`]s.
//!
//! Sensor reports come from the supervisor when the daemon gives a [`ReportSource`] (it
//! knows live reconfiguration: interval and enabled from the hub's desired state), else
//! from the status records that pass. For the node's health it keeps the dynamic model each
//! GNSS receiver confirmed (from the descriptor records that pass) and asks the daemon's
//! [`ClockTrust`], when given, whether the system clock is trusted.
//!
//! Invariants: a reading older than the one held for its (sensor, quantity) never replaces
//! it; every change bumps a version, so an update can carry only what changed since the
//! previous one and a new connection gets everything; a sensor's change of state wakes the
//! uplink at once (an operator watching sees a restart live, not a live interval later).
//! Writers hold the lock for one record; nothing here does I/O.

use std::collections::BTreeMap;
use std::fmt;
use std::sync::{Arc, Mutex, MutexGuard};

use aloft_protocol::sync::{GnssModel, SensorReport};
use aloft_protocol::{Quantity, Reading, Record, SensorId, SensorState, Timestamp};
use tokio::sync::Notify;

#[derive(Debug, Default)]
struct Board {
    readings: BTreeMap<(SensorId, Quantity), (Reading, u64)>,
    sensors: Vec<SensorReport>,
    /// Per GNSS receiver, the u-blox code of the dynamic model its newest descriptor
    /// confirmed.
    gnss_models: BTreeMap<SensorId, u8>,
    version: u64,
}

/// Every sensor's report now (the supervisor's view).
pub type ReportSource = Arc<dyn Fn() -> Vec<SensorReport> + Send + Sync>;

/// Whether the system clock is trusted now (the timekeeper's view).
pub type ClockTrust = Arc<dyn Fn() -> bool + Send + Sync>;

/// The newest values and sensor states (share as `Arc<LiveBoard>`).
#[derive(Default)]
pub struct LiveBoard {
    board: Mutex<Board>,
    state_changed: Notify,
    reports: Option<ReportSource>,
    clock_trust: Option<ClockTrust>,
}

impl fmt::Debug for LiveBoard {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("LiveBoard")
            .field("board", &self.board)
            .field("reports_from_supervisor", &self.reports.is_some())
            .field("clock_trust", &self.clock_trust.is_some())
            .finish_non_exhaustive()
    }
}

/// What a live update carries, taken from the board.
#[derive(Debug, Clone, PartialEq)]
pub struct LiveSnapshot {
    /// Readings changed since the version asked for.
    pub readings: Vec<Reading>,
    /// Every sensor.
    pub sensors: Vec<SensorReport>,
    /// The board's version now: ask with it next time.
    pub version: u64,
}

impl LiveBoard {
    /// A board with these sensors.
    pub fn with_sensors(sensors: Vec<SensorReport>) -> Self {
        LiveBoard {
            board: Mutex::new(Board {
                sensors,
                ..Board::default()
            }),
            state_changed: Notify::new(),
            reports: None,
            clock_trust: None,
        }
    }

    /// A board whose sensor reports come from `reports`; the caller tells it of changes
    /// with [`LiveBoard::sensors_changed`].
    pub fn with_report_source(reports: ReportSource) -> Self {
        LiveBoard {
            reports: Some(reports),
            ..LiveBoard::default()
        }
    }

    /// Says whether the system clock is trusted in the node's health (builder style).
    pub fn with_clock_trust(mut self, clock_trust: ClockTrust) -> Self {
        self.clock_trust = Some(clock_trust);
        self
    }

    /// A sensor changed state or configuration: a live update goes out now.
    pub fn sensors_changed(&self) {
        self.state_changed.notify_one();
    }

    fn lock(&self) -> MutexGuard<'_, Board> {
        self.board.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// A record on its way into the store.
    pub fn observe(&self, record: &Record) {
        let changed_state = {
            let mut board = self.lock();
            board.version += 1;
            let version = board.version;
            match record {
                Record::Reading(r) => {
                    if let Some(s) = board.sensors.iter_mut().find(|s| s.sensor == r.sensor) {
                        s.readings += 1;
                    }
                    let key = (r.sensor, r.quantity);
                    match board.readings.get(&key) {
                        Some((held, _)) if held.time.mono_ns > r.time.mono_ns => {}
                        _ => {
                            board.readings.insert(key, (*r, version));
                        }
                    }
                    false
                }
                Record::Status(s) => {
                    match board.sensors.iter_mut().find(|x| x.sensor == s.sensor) {
                        Some(report) => {
                            let changed = report.state != s.state || report.reason != s.reason;
                            if s.restarts > report.restarts {
                                report.last_restart = Some((s.time, s.reason.clone()));
                            }
                            if matches!(s.state, SensorState::Failed | SensorState::Degraded) {
                                report.last_error = Some(s.reason.clone());
                            }
                            report.state = s.state;
                            report.reason.clone_from(&s.reason);
                            report.restarts = s.restarts;
                            report.enabled = s.state != SensorState::Disabled;
                            changed
                        }
                        None => false,
                    }
                }
                Record::Descriptor(d) => {
                    match d.descriptor.dynamic_model {
                        Some(model) => board.gnss_models.insert(d.sensor, model.code()),
                        None => board.gnss_models.remove(&d.sensor),
                    };
                    false
                }
                _ => false,
            }
        };
        if changed_state && self.reports.is_none() {
            self.state_changed.notify_one();
        }
    }

    /// Readings changed after `since` (all of them with `None`) and every sensor.
    pub fn snapshot(&self, since: Option<u64>) -> LiveSnapshot {
        let board = self.lock();
        let readings = board
            .readings
            .values()
            .filter(|(_, v)| since.is_none_or(|s| *v > s))
            .map(|(r, _)| *r)
            .collect();
        let (sensors, version) = (board.sensors.clone(), board.version);
        drop(board);
        LiveSnapshot {
            readings,
            sensors: self.reports.as_ref().map_or(sensors, |source| source()),
            version,
        }
    }

    /// What the board knows of the node's health: the dynamic model in force of every GNSS
    /// receiver that confirmed one, and whether the system clock is trusted (`None` without
    /// a [`ClockTrust`]).
    pub fn health(&self) -> (Vec<GnssModel>, Option<bool>) {
        let models = self
            .lock()
            .gnss_models
            .iter()
            .map(|(&sensor, &code)| GnssModel { sensor, code })
            .collect();
        (models, self.clock_trust.as_ref().map(|trusted| trusted()))
    }

    /// Completes when a sensor changed state (since the last call returned).
    pub async fn state_changed(&self) {
        self.state_changed.notified().await;
    }
}

/// The time a live update is stamped with.
pub fn stamp() -> Timestamp {
    crate::clock::AgentClock::new().now()
}

#[cfg(test)]
mod tests {
    use aloft_protocol::{Quality, StatusRecord};

    use super::*;

    fn reading(sensor: u16, quantity: Quantity, mono_ns: u64, value: f64) -> Record {
        Record::Reading(Reading {
            sensor: SensorId(sensor),
            quantity,
            time: Timestamp::monotonic(mono_ns),
            value,
            quality: Quality::GOOD,
        })
    }

    fn board() -> LiveBoard {
        let report = |i: u16, name: &str| SensorReport {
            sensor: SensorId(i),
            name: name.into(),
            kind: "bme280".into(),
            state: SensorState::Starting,
            reason: String::new(),
            restarts: 0,
            last_restart: None,
            last_error: None,
            interval_ms: Some(1000),
            enabled: true,
            readings: 0,
        };
        LiveBoard::with_sensors(vec![report(0, "outside-air"), report(1, "static")])
    }

    #[test]
    fn an_update_carries_only_what_changed_since_the_previous_one() {
        let b = board();
        b.observe(&reading(0, Quantity::AirPressure, 10, 1.0));
        b.observe(&reading(1, Quantity::AirPressure, 10, 2.0));
        let first = b.snapshot(None);
        assert_eq!(first.readings.len(), 2);
        b.observe(&reading(1, Quantity::AirPressure, 20, 3.0));
        let second = b.snapshot(Some(first.version));
        assert_eq!(second.readings.len(), 1);
        assert_eq!(second.readings[0].value, 3.0);
        assert_eq!(second.sensors[1].readings, 2);
        // A new connection gets everything again.
        assert_eq!(b.snapshot(None).readings.len(), 2);
    }

    #[test]
    fn health_holds_the_dynamic_model_each_receiver_confirmed_last_and_the_clock_trust() {
        use aloft_protocol::{DescriptorRecord, DynamicModel, SensorDescriptor};
        let descriptor = |sensor: u16, model: Option<DynamicModel>| {
            let mut descriptor = SensorDescriptor::new("u-blox NEO-M8N");
            descriptor.dynamic_model = model;
            Record::Descriptor(DescriptorRecord {
                sensor: SensorId(sensor),
                name: "gps".into(),
                kind: "ublox".into(),
                time: Timestamp::monotonic(1),
                descriptor,
            })
        };
        let b = board();
        assert_eq!(b.health(), (vec![], None));
        b.observe(&descriptor(3, Some(DynamicModel::Portable)));
        b.observe(&descriptor(3, Some(DynamicModel::Airborne2g)));
        b.observe(&descriptor(0, None));
        assert_eq!(
            b.health().0,
            [GnssModel {
                sensor: SensorId(3),
                code: 7
            }]
        );
        // A restart whose descriptor confirms no model (the check failed) clears it.
        b.observe(&descriptor(3, None));
        assert_eq!(b.health().0, []);
        let trusted = Arc::new(std::sync::atomic::AtomicBool::new(false));
        let flag = Arc::clone(&trusted);
        let b = board().with_clock_trust(Arc::new(move || {
            flag.load(std::sync::atomic::Ordering::Relaxed)
        }));
        assert_eq!(b.health().1, Some(false));
        trusted.store(true, std::sync::atomic::Ordering::Relaxed);
        assert_eq!(b.health().1, Some(true));
    }

    #[test]
    fn an_older_reading_never_replaces_a_newer_one() {
        let b = board();
        b.observe(&reading(0, Quantity::AirPressure, 20, 1.0));
        b.observe(&reading(0, Quantity::AirPressure, 10, 9.0));
        assert_eq!(b.snapshot(None).readings[0].value, 1.0);
    }

    #[tokio::test]
    async fn reports_come_from_the_source_when_one_is_given_and_it_wakes_the_uplink() {
        let source = board().snapshot(None).sensors;
        let b = LiveBoard::with_report_source(Arc::new(move || source.clone()));
        b.observe(&reading(1, Quantity::AirPressure, 10, 2.0));
        let snapshot = b.snapshot(None);
        assert_eq!(snapshot.sensors.len(), 2);
        assert_eq!(snapshot.readings.len(), 1);
        b.sensors_changed();
        tokio::time::timeout(std::time::Duration::from_secs(5), b.state_changed())
            .await
            .expect("woken");
    }

    #[tokio::test]
    async fn a_change_of_state_wakes_the_uplink_and_is_reported_with_the_restart() {
        let b = board();
        b.observe(&Record::Status(StatusRecord {
            sensor: SensorId(1),
            state: SensorState::Restarting,
            reason: "operator".into(),
            restarts: 1,
            time: Timestamp::monotonic(5),
        }));
        // The notification is stored: awaiting after the change still completes.
        tokio::time::timeout(std::time::Duration::from_secs(5), b.state_changed())
            .await
            .expect("woken");
        let s = &b.snapshot(None).sensors[1];
        assert_eq!(s.state, SensorState::Restarting);
        assert_eq!(s.restarts, 1);
        assert_eq!(
            s.last_restart,
            Some((Timestamp::monotonic(5), "operator".into()))
        );
    }
}
