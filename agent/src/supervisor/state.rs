//! A supervised sensor's health: its state, the reason for it, and its restart history.
//!
//! Pure: the runner feeds it events and turns each change it reports into a status record.
//!
//! Invariants: every state change carries a reason an operator can read; a change is
//! reported once (repeating the same state and reason is not a change, so a sensor that
//! stays degraded for an hour writes one record, not thousands); `restarts` only grows and
//! counts every restart, automatic or by an operator; `last_error` is the reason of the
//! newest `Failed` or `Degraded` state and outlives the recovery (an operator asks what
//! went wrong after it came back).

use std::time::Duration;

use aloft_protocol::{SensorId, SensorState, StatusRecord, Timestamp};

/// A restart that happened.
#[derive(Debug, Clone, PartialEq)]
pub struct RestartInfo {
    /// When it began.
    pub time: Timestamp,
    /// Why.
    pub reason: String,
}

/// The health of one sensor.
#[derive(Debug, Clone, PartialEq)]
pub struct SensorHealth {
    /// Which sensor.
    pub sensor: SensorId,
    /// Its name in the config.
    pub name: String,
    /// Its state now.
    pub state: SensorState,
    /// Why it is in that state.
    pub reason: String,
    /// Restarts since the agent started.
    pub restarts: u32,
    /// The newest restart.
    pub last_restart: Option<RestartInfo>,
    /// Readings produced since the agent started (for metrics).
    pub readings: u64,
    /// Problems seen since the agent started: degraded polls and failures (for metrics).
    pub problems: u64,
    /// The reason of the newest failure or degradation.
    pub last_error: Option<String>,
    /// Whether it is enabled (by the config file or the hub's desired state).
    pub enabled: bool,
    /// Sampling interval in effect; `None` for a device that sends at its own rate.
    pub interval: Option<Duration>,
}

impl SensorHealth {
    /// A sensor about to start (or disabled by its config).
    pub fn new(sensor: SensorId, name: impl Into<String>, enabled: bool) -> Self {
        let (state, reason) = if enabled {
            (SensorState::Starting, "agent started".to_string())
        } else {
            (SensorState::Disabled, "disabled in the config".to_string())
        };
        SensorHealth {
            sensor,
            name: name.into(),
            state,
            reason,
            restarts: 0,
            last_restart: None,
            readings: 0,
            problems: 0,
            last_error: None,
            enabled,
            interval: None,
        }
    }

    /// The status record of the current state.
    pub fn record(&self, time: Timestamp) -> StatusRecord {
        StatusRecord {
            sensor: self.sensor,
            state: self.state,
            reason: self.reason.clone(),
            restarts: self.restarts,
            time,
        }
    }

    /// Moves to `state` for `reason`; the status record to write if that is a change.
    pub fn enter(
        &mut self,
        state: SensorState,
        reason: impl Into<String>,
        time: Timestamp,
    ) -> Option<StatusRecord> {
        let reason = reason.into();
        if self.state == state && self.reason == reason {
            return None;
        }
        if matches!(state, SensorState::Failed | SensorState::Degraded) {
            self.last_error = Some(reason.clone());
        }
        self.state = state;
        self.reason = reason;
        Some(self.record(time))
    }

    /// A restart begins (automatic after a failure, or asked for): counts it and moves to
    /// `Restarting`. Always a change, so every restart leaves a record.
    pub fn begin_restart(&mut self, reason: impl Into<String>, time: Timestamp) -> StatusRecord {
        let reason = reason.into();
        self.restarts = self.restarts.saturating_add(1);
        self.last_restart = Some(RestartInfo {
            time,
            reason: reason.clone(),
        });
        self.state = SensorState::Restarting;
        self.reason = reason;
        self.record(time)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn t(n: u64) -> Timestamp {
        Timestamp::monotonic(n)
    }

    #[test]
    fn an_enabled_sensor_starts_in_starting_and_a_disabled_one_in_disabled() {
        let on = SensorHealth::new(SensorId(0), "gps", true);
        let off = SensorHealth::new(SensorId(1), "co2", false);
        assert_eq!(on.state, SensorState::Starting);
        assert_eq!(off.state, SensorState::Disabled);
        assert!(off.reason.contains("disabled"));
    }

    #[test]
    fn repeating_the_same_state_and_reason_is_not_a_change() {
        let mut h = SensorHealth::new(SensorId(0), "gps", true);
        let first = h.enter(SensorState::Degraded, "no data for 2 s", t(1));
        assert_eq!(first.map(|r| r.state), Some(SensorState::Degraded));
        assert_eq!(
            h.enter(SensorState::Degraded, "no data for 2 s", t(2)),
            None
        );
        // A new reason in the same state is news to an operator.
        let other = h.enter(SensorState::Degraded, "bad checksum", t(3));
        assert_eq!(other.map(|r| r.reason), Some("bad checksum".to_string()));
        h.enter(SensorState::Running, "recovered", t(4));
        assert_eq!(
            h.last_error.as_deref(),
            Some("bad checksum"),
            "the last error outlives the recovery"
        );
    }

    #[test]
    fn every_restart_is_counted_and_remembered_with_its_reason() {
        let mut h = SensorHealth::new(SensorId(2), "static", true);
        h.enter(SensorState::Running, "measuring", t(1));
        let r1 = h.begin_restart("NACK at 0x77", t(5));
        let r2 = h.begin_restart("operator: soft", t(9));
        assert_eq!((r1.restarts, r2.restarts), (1, 2));
        assert_eq!(r2.state, SensorState::Restarting);
        assert_eq!(
            h.last_restart,
            Some(RestartInfo {
                time: t(9),
                reason: "operator: soft".into()
            })
        );
    }
}
