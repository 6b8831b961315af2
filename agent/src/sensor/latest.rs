//! The newest value of every (sensor, quantity): how one adapter reads another's output.
//!
//! The SCD41 compensates CO2 for the static pressure of the sensor its config names
//! (`ambient_pressure_from`); the MS4525DO computes true airspeed from the static pressure
//! and the outside air temperature of named sensors (`static_pressure_from`,
//! `outside_air_from`). The supervisor records every reading here as it passes; adapters
//! only read.
//!
//! Invariants: sensors are named as in the config, never by position; a value older than
//! the reader's `max_age` is not returned (a stalled static port must not feed an airspeed
//! computation with the pressure from ten minutes and 3 km ago); writers never block long
//! (one short lock per batch of readings).

use std::collections::HashMap;
use std::sync::{Arc, RwLock};
use std::time::Duration;

use aloft_protocol::{Quality, Quantity, Reading};

/// One newest value.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct LatestValue {
    /// The value, in the quantity's unit.
    pub value: f64,
    /// Its quality flags.
    pub quality: Quality,
    /// When it was taken, monotonic ns.
    pub mono_ns: u64,
}

/// The shared table (cheap to clone: every clone sees the same values).
#[derive(Debug, Clone, Default)]
pub struct LatestValues {
    inner: Arc<RwLock<HashMap<(String, Quantity), LatestValue>>>,
}

impl LatestValues {
    /// An empty table.
    pub fn new() -> Self {
        Self::default()
    }

    /// Records `readings` of the sensor named `sensor`.
    pub fn record(&self, sensor: &str, readings: &[Reading]) {
        if readings.is_empty() {
            return;
        }
        let mut table = match self.inner.write() {
            Ok(t) => t,
            Err(e) => e.into_inner(),
        };
        for r in readings {
            let entry = LatestValue {
                value: r.value,
                quality: r.quality,
                mono_ns: r.time.mono_ns,
            };
            match table.get_mut(&(sensor.to_string(), r.quantity)) {
                Some(v) if v.mono_ns > entry.mono_ns => {}
                Some(v) => *v = entry,
                None => {
                    table.insert((sensor.to_string(), r.quantity), entry);
                }
            }
        }
    }

    /// Calls `f` with every newest value, under one short read lock (the MQTT bus reads
    /// the table this way a few times a second; writers wait at most that long).
    pub fn for_each(&self, mut f: impl FnMut(&str, Quantity, &LatestValue)) {
        let table = match self.inner.read() {
            Ok(t) => t,
            Err(e) => e.into_inner(),
        };
        for ((sensor, quantity), value) in table.iter() {
            f(sensor, *quantity, value);
        }
    }

    /// The newest `quantity` of `sensor`, if there is one taken within `max_age` of
    /// `now_mono_ns`.
    pub fn get(
        &self,
        sensor: &str,
        quantity: Quantity,
        now_mono_ns: u64,
        max_age: Duration,
    ) -> Option<LatestValue> {
        let table = match self.inner.read() {
            Ok(t) => t,
            Err(e) => e.into_inner(),
        };
        let v = *table.get(&(sensor.to_string(), quantity))?;
        let age = now_mono_ns.saturating_sub(v.mono_ns);
        (u128::from(age) <= max_age.as_nanos()).then_some(v)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use aloft_protocol::{SensorId, Timestamp};

    fn reading(quantity: Quantity, value: f64, mono_ns: u64) -> Reading {
        Reading {
            sensor: SensorId(1),
            quantity,
            time: Timestamp::monotonic(mono_ns),
            value,
            quality: Quality::GOOD,
        }
    }

    #[test]
    fn a_reader_sees_the_newest_value_of_the_named_sensor_only() {
        let latest = LatestValues::new();
        latest.record("static", &[reading(Quantity::AirPressure, 19_400.0, 10)]);
        latest.record("static", &[reading(Quantity::AirPressure, 19_300.0, 20)]);
        latest.record("cabin", &[reading(Quantity::AirPressure, 80_000.0, 30)]);
        let got = latest.get("static", Quantity::AirPressure, 25, Duration::from_secs(1));
        assert_eq!(got.map(|v| v.value), Some(19_300.0));
        assert_eq!(
            latest.get(
                "outside-air",
                Quantity::AirPressure,
                25,
                Duration::from_secs(1)
            ),
            None
        );
    }

    #[test]
    fn an_older_reading_arriving_late_does_not_replace_a_newer_one() {
        let latest = LatestValues::new();
        latest.record("static", &[reading(Quantity::AirPressure, 2.0, 20)]);
        latest.record("static", &[reading(Quantity::AirPressure, 1.0, 10)]);
        let got = latest.get("static", Quantity::AirPressure, 20, Duration::from_secs(1));
        assert_eq!(got.map(|v| v.value), Some(2.0));
    }

    #[test]
    fn a_value_older_than_max_age_is_not_returned() {
        let latest = LatestValues::new();
        latest.record(
            "outside-air",
            &[reading(Quantity::AirTemperature, 223.0, 0)],
        );
        let max_age = Duration::from_secs(5);
        let fresh = latest.get(
            "outside-air",
            Quantity::AirTemperature,
            5_000_000_000,
            max_age,
        );
        let stale = latest.get(
            "outside-air",
            Quantity::AirTemperature,
            5_000_000_001,
            max_age,
        );
        assert!(fresh.is_some());
        assert_eq!(stale, None);
    }
}
