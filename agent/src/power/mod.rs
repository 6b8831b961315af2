//! Sampling that follows the power: the agent's power policy, applied.
//!
//! [`policy`] decides the power step from the battery's newest values (no I/O);
//! [`effects`] says what a step does and combines it with what the operator wants;
//! [`PowerGovernor`] is the one place both meet the running node: it keeps what the
//! operator wants of each sensor (the config file under the hub's desired state), the
//! sensors the operator exempted, and the step in force, and [`PowerGovernor::run`]
//! looks at the battery every `check_interval` and, at every change of step, writes a
//! [`PowerStepRecord`] to the store, reconfigures the sensors the change touches and lowers
//! or restores the upload budget.
//!
//! Invariants: a step only lowers (docs/power.md): the state a sensor runs in is what the
//! operator wants with a longer interval or switched off, never faster or switched on; a
//! sensor in the desired state's `power_overrides` runs as the operator wants. The record
//! of a change is queued before the sensors are reconfigured, so the stream says why a
//! sensor went quiet before it does. The desired state's changes and the step's changes
//! are applied one at a time ([`PowerGovernor::applying`]), so neither undoes the other.
//! Without a `[power]` section the governor lowers nothing and reports no step.

pub mod effects;
pub mod policy;

use std::collections::{BTreeMap, BTreeSet};
use std::future::Future;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use aloft_protocol::power::{PowerEffect, PowerReport, PowerStepRecord};
use aloft_protocol::{Quality, Quantity, Record, SensorId, Timestamp};
use tokio::sync::{mpsc, watch};

use crate::clock::{AgentClock, monotonic_ns};
use crate::config::{AgentConfig, PowerConfig, SensorKind};
use crate::metrics::Metrics;
use crate::sensor::LatestValues;
use crate::supervisor::{SensorChange, SupervisorHandle};

pub use effects::{SensorLimit, StepEffects, lower};
pub use policy::{BatteryInputs, FULL, Policy, Transition};

/// The step in force.
#[derive(Debug, Clone, PartialEq)]
pub struct StepInForce {
    /// 0 at full power.
    pub level: u8,
    /// The step's name (`full` at level 0).
    pub name: String,
    /// Why it is in force.
    pub reason: String,
    /// When it took effect.
    pub since: Timestamp,
    /// What it does.
    pub effects: StepEffects,
}

#[derive(Debug)]
struct State {
    /// What the operator wants of each sensor, complete: the config file's values under
    /// the hub's desired state.
    wanted: BTreeMap<String, SensorChange>,
    /// Sensors the operator exempted from power steps.
    overrides: BTreeSet<String>,
    step: StepInForce,
    policy: Option<Policy>,
}

#[derive(Debug)]
struct Shared {
    config: Option<PowerConfig>,
    /// The supervisor's sensors, in `SensorId` order.
    sensors: Vec<(String, SensorKind)>,
    state: Mutex<State>,
    /// Held while sensors are reconfigured, by the desired state or by a change of step.
    applying: tokio::sync::Mutex<()>,
    upload_cap: watch::Sender<Option<u64>>,
}

/// The power policy of the running node; cheap to clone, shared by the control layer (the
/// desired state), the uplink (the budget, the node's health) and its own task.
#[derive(Debug, Clone)]
pub struct PowerGovernor {
    shared: Arc<Shared>,
}

/// What the operator wants of the sensors of `config` as it was loaded (the persisted
/// desired state already applied to it): each one's interval (for a device sampled on a
/// schedule) and whether it runs.
fn wanted_of(config: &AgentConfig) -> BTreeMap<String, SensorChange> {
    config
        .sensors
        .iter()
        .map(|s| {
            let interval = s.interval_or_default();
            (
                s.name.clone(),
                SensorChange {
                    interval,
                    enabled: Some(s.enabled),
                },
            )
        })
        .collect()
}

impl PowerGovernor {
    /// The governor of `config` (as loaded, the persisted desired state applied), at full
    /// power, exempting `overrides`.
    pub fn new(config: &AgentConfig, overrides: impl IntoIterator<Item = String>) -> Self {
        let (upload_cap, _) = watch::channel(None);
        let since = AgentClock::new().now();
        PowerGovernor {
            shared: Arc::new(Shared {
                config: config.power.clone(),
                sensors: config
                    .sensors
                    .iter()
                    .map(|s| (s.name.clone(), s.kind))
                    .collect(),
                state: Mutex::new(State {
                    wanted: wanted_of(config),
                    overrides: overrides.into_iter().collect(),
                    step: StepInForce {
                        level: 0,
                        name: FULL.into(),
                        reason: "no step taken since start".into(),
                        since,
                        effects: StepEffects::default(),
                    },
                    policy: config.power.clone().map(Policy::new),
                }),
                applying: tokio::sync::Mutex::new(()),
                upload_cap,
            }),
        }
    }

    /// A governor that lowers nothing (a node without a `[power]` section, tests).
    pub fn inactive() -> Self {
        let (upload_cap, _) = watch::channel(None);
        PowerGovernor {
            shared: Arc::new(Shared {
                config: None,
                sensors: Vec::new(),
                state: Mutex::new(State {
                    wanted: BTreeMap::new(),
                    overrides: BTreeSet::new(),
                    step: StepInForce {
                        level: 0,
                        name: FULL.into(),
                        reason: String::new(),
                        since: Timestamp::monotonic(0),
                        effects: StepEffects::default(),
                    },
                    policy: None,
                }),
                applying: tokio::sync::Mutex::new(()),
                upload_cap,
            }),
        }
    }

    fn state(&self) -> MutexGuard<'_, State> {
        self.shared.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Whether the node has a power policy.
    pub fn is_active(&self) -> bool {
        self.shared.config.is_some()
    }

    /// Held while sensors are reconfigured: the desired state and the step take turns.
    pub async fn applying(&self) -> tokio::sync::MutexGuard<'_, ()> {
        self.shared.applying.lock().await
    }

    /// Sets the sensors the operator exempts from power steps (the desired state's
    /// `power_overrides`).
    pub fn set_overrides(&self, overrides: impl IntoIterator<Item = String>) {
        self.state().overrides = overrides.into_iter().collect();
    }

    /// Takes what the operator wants of `sensor` (`None` fields keep the previous wish)
    /// and returns the state it is to run in under the step in force.
    pub fn lower(&self, sensor: &str, wanted: SensorChange) -> SensorChange {
        let mut state = self.state();
        let entry = state.wanted.entry(sensor.to_string()).or_default();
        if wanted.interval.is_some() {
            entry.interval = wanted.interval;
        }
        if wanted.enabled.is_some() {
            entry.enabled = wanted.enabled;
        }
        let full = *entry;
        let lowered = lower(
            full,
            state.step.effects.sensors.get(sensor),
            state.overrides.contains(sensor),
        );
        // Only what was asked is changed: a field left out stays as it is (and a sensor
        // the step switched off stays off).
        SensorChange {
            interval: wanted.interval.and(lowered.interval),
            enabled: wanted.enabled.and(lowered.enabled),
        }
    }

    /// The step in force.
    pub fn step(&self) -> StepInForce {
        self.state().step.clone()
    }

    /// The power step for the node's health; `None` without a policy.
    pub fn report(&self) -> Option<PowerReport> {
        self.shared.config.as_ref()?;
        let state = self.state();
        Some(PowerReport {
            step: state.step.name.clone(),
            level: state.step.level,
            reason: state.step.reason.clone(),
            since: state.step.since,
            upload_bytes_per_s: state.step.effects.upload_bytes_per_s,
            overridden: state.overrides.iter().cloned().collect(),
        })
    }

    /// The upload budget the step holds the link to, bytes/s (`None`: the configured one).
    pub fn upload_cap(&self) -> watch::Receiver<Option<u64>> {
        self.shared.upload_cap.subscribe()
    }

    /// The battery's usable values now: newer than `stale_after`, not flagged invalid.
    fn inputs(config: &PowerConfig, latest: &LatestValues) -> BatteryInputs {
        let now = monotonic_ns();
        let get = |quantity| {
            latest
                .get(&config.battery, quantity, now, config.stale_after)
                .filter(|v| {
                    v.value.is_finite()
                        && ![Quality::INVALID, Quality::CRC_FAILED, Quality::STALE]
                            .into_iter()
                            .any(|flag| v.quality.contains(flag))
                })
                .map(|v| v.value)
        };
        BatteryInputs {
            soc: get(Quantity::BatteryStateOfCharge),
            voltage_v: get(Quantity::BatteryVoltage),
            temperature_k: get(Quantity::BatteryTemperature),
        }
    }

    /// One look at the battery's values `inputs` at `now` (any monotonic time): the record
    /// of the change of step made, if one is, and the sensors to reconfigure with the state
    /// each is to run in. [`PowerGovernor::run`] does this every `check_interval`; the
    /// caller queues the record, then reconfigures.
    pub fn consider(
        &self,
        inputs: &BatteryInputs,
        now: Duration,
    ) -> Option<(PowerStepRecord, Vec<(String, SensorChange)>)> {
        let config = self.shared.config.as_ref()?;
        let mut state = self.state();
        let transition = state.policy.as_mut()?.decide(inputs, now)?;
        let effects = effects::effects(config, transition.to, &self.shared.sensors);
        let before = state.step.effects.clone();
        let time = AgentClock::new().now();
        let mut record_effects = Vec::new();
        let mut changes = Vec::new();
        for (i, (name, _)) in self.shared.sensors.iter().enumerate() {
            let wanted = state.wanted.get(name).copied().unwrap_or_default();
            let overridden = state.overrides.contains(name);
            let limit = effects.sensors.get(name);
            let now_state = lower(wanted, limit, overridden);
            let was_state = lower(wanted, before.sensors.get(name), overridden);
            if let Some(limit) = limit {
                let lowered = lower(wanted, Some(limit), false);
                record_effects.push(PowerEffect {
                    sensor: SensorId(u16::try_from(i).unwrap_or(u16::MAX)),
                    // A sensor switched off is not slowed: it stops.
                    interval_ms: lowered
                        .interval
                        .filter(|_| !limit.disabled && lowered.interval != wanted.interval)
                        .map(|d| u32::try_from(d.as_millis()).unwrap_or(u32::MAX)),
                    disabled: limit.disabled,
                    overridden,
                });
            }
            if now_state != was_state {
                changes.push((name.clone(), now_state));
            }
        }
        state.step = StepInForce {
            level: transition.to,
            name: transition.name.clone(),
            reason: transition.reason.clone(),
            since: time,
            effects: effects.clone(),
        };
        drop(state);
        self.shared
            .upload_cap
            .send_replace(effects.upload_bytes_per_s);
        let record = PowerStepRecord {
            time,
            step: transition.name,
            level: transition.to,
            reason: transition.reason,
            effects: record_effects,
            upload_bytes_per_s: effects.upload_bytes_per_s,
        };
        Some((record, changes))
    }

    /// Looks at the battery every `check_interval` until `stop` completes: at every change
    /// of step, queues its record on `records`, then reconfigures the sensors it touches.
    /// Returns at once without a policy.
    pub async fn run(
        self,
        supervisor: SupervisorHandle,
        latest: LatestValues,
        records: mpsc::Sender<Record>,
        metrics: Arc<Metrics>,
        stop: impl Future<Output = ()>,
    ) {
        let Some(config) = self.shared.config.clone() else {
            return;
        };
        metrics.power.configure();
        tokio::pin!(stop);
        let mut tick = tokio::time::interval(config.check_interval);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let start = tokio::time::Instant::now();
        loop {
            tokio::select! {
                () = &mut stop => break,
                _ = tick.tick() => {}
            }
            let inputs = Self::inputs(&config, &latest);
            let stale = inputs.is_empty();
            if stale != metrics.power.battery_stale() {
                metrics.power.set_battery_stale(stale);
                if stale {
                    tracing::warn!(battery = %config.battery, stale_after = ?config.stale_after, "No fresh battery values; the power step in force holds.");
                }
            }
            let _turn = self.applying().await;
            let Some((record, changes)) = self.consider(&inputs, start.elapsed()) else {
                continue;
            };
            tracing::info!(step = %record.step, level = record.level, reason = %record.reason, upload_bytes_per_s = ?record.upload_bytes_per_s, sensors = changes.len(), "Power step changed.");
            metrics
                .power
                .transition(record.level, &record.step, &record.reason);
            match record.to_record() {
                Ok(r) => {
                    if records.send(r).await.is_err() {
                        // The writer is gone: the agent is stopping.
                        break;
                    }
                }
                Err(e) => tracing::error!(error = %e, "Power step record not encoded."),
            }
            let why = format!("power step {}: {}", record.step, record.reason);
            for (name, change) in changes {
                if let Err(e) = supervisor.reconfigure(&name, change, &why).await {
                    tracing::warn!(sensor = %name, error = %e, "Power step not applied to a sensor.");
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config() -> AgentConfig {
        let text = r#"
            [node]
            name = "n"
            [store]
            path = "/tmp/x"
            max_bytes = 100000000
            full_policy = "drop-oldest"
            flush_interval = "1s"
            retain_acked = "1h"
            [[sensor]]
            name = "battery"
            kind = "sbs"
            interval = "1s"
            [[sensor]]
            name = "static"
            kind = "ms5611"
            interval = "100ms"
            [[sensor]]
            name = "co2"
            kind = "scd41"
            [[sensor]]
            name = "gps"
            kind = "ublox"
            [simulation]
            [power]
            battery = "battery"
            dwell = "0s"
            [[power.step]]
            name = "economy"
            soc_below = 0.6
            interval_factor = 4.0
            upload_bytes_per_s = 50000
            [[power.step]]
            name = "survival"
            soc_below = 0.35
            intervals = { static = "2s" }
            disable = ["co2", "gps"]
            upload_bytes_per_s = 10000
        "#;
        crate::config::parse(text, "test").unwrap()
    }

    fn soc(v: f64) -> BatteryInputs {
        BatteryInputs {
            soc: Some(v),
            ..BatteryInputs::default()
        }
    }

    #[test]
    fn a_change_of_step_records_why_and_lowers_only_what_it_touches() {
        let g = PowerGovernor::new(&config(), ["gps".to_string()]);
        assert_eq!(g.report().unwrap().level, 0);
        assert!(g.consider(&soc(0.8), Duration::ZERO).is_none());
        let (record, changes) = g.consider(&soc(0.5), Duration::from_secs(1)).unwrap();
        assert_eq!((record.step.as_str(), record.level), ("economy", 1));
        assert_eq!(record.reason, "state of charge 0.50 below 0.60");
        assert_eq!(record.upload_bytes_per_s, Some(50_000));
        assert_eq!(*g.upload_cap().borrow(), Some(50_000));
        let static_effect = record
            .effects
            .iter()
            .find(|e| e.sensor == SensorId(1))
            .unwrap();
        assert_eq!(static_effect.interval_ms, Some(400));
        let interval = |name: &str| {
            changes
                .iter()
                .find(|(n, _)| n == name)
                .and_then(|(_, c)| c.interval)
        };
        assert_eq!(interval("static"), Some(Duration::from_millis(400)));
        assert_eq!(interval("battery"), Some(Duration::from_secs(4)));
        assert_eq!(interval("co2"), Some(Duration::from_secs(20)));
        assert!(
            changes.iter().all(|(n, _)| n != "gps"),
            "sends at its own rate"
        );

        let (record, changes) = g.consider(&soc(0.3), Duration::from_secs(2)).unwrap();
        assert_eq!(record.level, 2);
        let gps = record
            .effects
            .iter()
            .find(|e| e.sensor == SensorId(3))
            .unwrap();
        assert!(gps.disabled && gps.overridden, "{gps:?}");
        assert!(
            changes.iter().all(|(n, _)| n != "gps"),
            "the operator exempted it"
        );
        let co2 = changes.iter().find(|(n, _)| n == "co2").unwrap().1;
        assert_eq!(co2.enabled, Some(false));
        // static: 4 x 100 ms from economy, held to 2 s by survival.
        let st = changes.iter().find(|(n, _)| n == "static").unwrap().1;
        assert_eq!(st.interval, Some(Duration::from_secs(2)));

        // The desired state asks for faster static sampling: it gets no faster than the
        // step allows; re-enabling co2 is lowered back to off.
        let asked = g.lower(
            "static",
            SensorChange {
                interval: Some(Duration::from_millis(50)),
                enabled: Some(true),
            },
        );
        assert_eq!(asked.interval, Some(Duration::from_secs(2)));
        assert_eq!(
            g.lower(
                "co2",
                SensorChange {
                    interval: None,
                    enabled: Some(true)
                }
            )
            .enabled,
            Some(false)
        );
        // Exempted: runs as asked.
        g.set_overrides(["static".to_string()]);
        assert_eq!(
            g.lower(
                "static",
                SensorChange {
                    interval: Some(Duration::from_millis(50)),
                    enabled: None
                }
            )
            .interval,
            Some(Duration::from_millis(50))
        );
        g.set_overrides([]);

        // Recovery to full: what the operator asked last (static at 50 ms) comes back.
        let (record, changes) = g.consider(&soc(0.7), Duration::from_secs(3)).unwrap();
        assert_eq!((record.level, record.step.as_str()), (0, FULL));
        assert!(record.effects.is_empty());
        assert_eq!(record.upload_bytes_per_s, None);
        assert_eq!(*g.upload_cap().borrow(), None);
        let st = changes.iter().find(|(n, _)| n == "static").unwrap().1;
        assert_eq!(st.interval, Some(Duration::from_millis(50)));
        let co2 = changes.iter().find(|(n, _)| n == "co2").unwrap().1;
        assert_eq!(co2.enabled, Some(true));
    }

    #[test]
    fn an_inactive_governor_lowers_nothing_and_reports_no_step() {
        let g = PowerGovernor::inactive();
        let change = SensorChange {
            interval: Some(Duration::from_millis(10)),
            enabled: Some(true),
        };
        assert_eq!(g.lower("x", change), change);
        assert!(g.report().is_none());
        assert!(g.consider(&soc(0.0), Duration::ZERO).is_none());
    }
}
