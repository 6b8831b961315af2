//! The derived wind: a [`Device`] with no port and no bus, computing the wind every interval
//! from other sensors' newest readings in [`LatestValues`].
//!
//! Inputs, named in its config: `ground_velocity_from` (a GNSS receiver: ground speed,
//! track, fix mode; required), `airspeed_from` (an MS4525DO: true airspeed, already
//! corrected for the outside air temperature) and `heading_from` (an ICM-20948: platform
//! yaw, the true heading, and its accuracy). The algorithms are
//! [`aloft_sensors::wind`]'s; this adapter only gathers inputs, ages them, and turns an
//! estimate into readings. The same adapter runs on hardware and in the simulation.
//!
//! Invariants: every poll that estimates a wind emits `wind_speed`, `wind_from_direction`
//! and `wind_method` with one timestamp and one quality (always `DERIVED`; `STALE` /
//! `DEGRADED_INPUT` per the estimator; `SIMULATED` when an input used was); the descriptor
//! names the input sensors and the method choice, and is recorded again when the `method`
//! tunable changes it; an input older than [`INPUT_AGE_MAX`] counts as absent.

use std::time::Duration;

use aloft_protocol::{
    DeviceParameter, ParameterValue, Quality, Quantity, Reading, SensorDescriptor, SensorId,
    Timestamp,
};
use aloft_sensors::wind::{
    GroundVelocity, Heading, Input, Inputs, Limits, MethodChoice, WindEstimate, WindEstimator,
};

use super::{Device, DeviceError, LatestValues, PollOutcome};
use crate::clock::AgentClock;
use crate::config::tunables::{self, Tunables};
use crate::config::{SensorConfig, SensorKind};

/// An input older than this is treated as missing: an estimate from it would not be the
/// wind now, flagged or not.
pub const INPUT_AGE_MAX: Duration = Duration::from_secs(30);

/// What the descriptor calls the estimator.
const DEVICE: &str = "Aloft derived wind";

/// The derived wind sensor.
#[derive(Debug)]
pub struct WindDevice {
    id: SensorId,
    ground_velocity_from: String,
    airspeed_from: Option<String>,
    heading_from: Option<String>,
    interval: Duration,
    latest: LatestValues,
    clock: AgentClock,
    estimator: WindEstimator,
    changed_descriptor: Option<SensorDescriptor>,
}

impl WindDevice {
    /// The wind sensor `config` describes, reading its inputs from `latest`.
    pub fn new(
        id: SensorId,
        config: &SensorConfig,
        latest: LatestValues,
    ) -> Result<Self, DeviceError> {
        if config.kind != SensorKind::Wind {
            return Err(DeviceError::Config(format!(
                "{} is not a derived wind",
                config.kind
            )));
        }
        let ground_velocity_from = config.ground_velocity_from.clone().ok_or_else(|| {
            DeviceError::Config(format!(
                "sensor {} needs ground_velocity_from (a GNSS receiver)",
                config.name
            ))
        })?;
        Ok(WindDevice {
            id,
            ground_velocity_from,
            airspeed_from: config.airspeed_from.clone(),
            heading_from: config.heading_from.clone(),
            interval: config
                .interval_or_default()
                .unwrap_or(Duration::from_secs(1)),
            latest,
            clock: AgentClock::new(),
            estimator: WindEstimator::new(MethodChoice::Auto, Limits::default()),
            changed_descriptor: None,
        })
    }

    /// What the sensor is: the estimator, its inputs and its method choice.
    pub fn descriptor(&self) -> SensorDescriptor {
        let limits = self.estimator.limits();
        let mut d = SensorDescriptor::new(DEVICE);
        d.firmware = Some(env!("CARGO_PKG_VERSION").to_string());
        let text = |name: &str, value: &str| DeviceParameter {
            name: name.to_string(),
            value: ParameterValue::Text(value.to_string()),
        };
        d.parameters
            .push(text("ground_velocity_from", &self.ground_velocity_from));
        if let Some(a) = &self.airspeed_from {
            d.parameters.push(text("airspeed_from", a));
        }
        if let Some(h) = &self.heading_from {
            d.parameters.push(text("heading_from", h));
        }
        d.parameters
            .push(text("method", self.estimator.choice().as_str()));
        d.with_real(
            "triangle_average_s",
            aloft_sensors::wind::TRIANGLE_AVERAGE_S,
        )
        .with_real("stall_tas_mps", limits.stall_tas_mps)
        .with_real("heading_accuracy_max_deg", limits.heading_accuracy_deg)
    }

    /// The newest `quantity` of `sensor`: value, age in s, own flags.
    fn input(&self, sensor: &str, quantity: Quantity, now_ns: u64) -> Option<(f64, f64, Quality)> {
        let v = self.latest.get(sensor, quantity, now_ns, INPUT_AGE_MAX)?;
        let age_s = now_ns.saturating_sub(v.mono_ns) as f64 / 1e9;
        Some((v.value, age_s, v.quality))
    }

    /// Every input's newest value, and whether any of them was simulated.
    fn inputs(&self, now_ns: u64) -> (Inputs, bool) {
        let mut simulated = false;
        let mut note = |q: Quality| {
            simulated |= q.contains(Quality::SIMULATED);
            q.has_flaw()
        };
        let gps = self.ground_velocity_from.as_str();
        let ground = match (
            self.latest
                .get(gps, Quantity::GroundSpeed, now_ns, INPUT_AGE_MAX),
            self.input(gps, Quantity::Track, now_ns),
        ) {
            (Some(speed), Some((track, _, track_quality))) => {
                let fix_mode = self.input(gps, Quantity::FixMode, now_ns).map(|f| f.0);
                let flagged = note(speed.quality) | note(track_quality);
                // Without a fix mode (a receiver that sends no GSA), a valid solution's
                // velocity is taken as a 3D fix's.
                let fix_3d = fix_mode.map_or(!flagged, |m| m >= 3.0);
                Some(Input {
                    value: GroundVelocity {
                        speed_mps: speed.value,
                        track_deg: track,
                        t_s: speed.mono_ns as f64 / 1e9,
                        fix_3d,
                    },
                    age_s: now_ns.saturating_sub(speed.mono_ns) as f64 / 1e9,
                    flagged,
                })
            }
            _ => None,
        };
        let airspeed = self.airspeed_from.as_deref().and_then(|a| {
            let (value, age_s, q) = self.input(a, Quantity::TrueAirspeed, now_ns)?;
            Some(Input {
                value,
                age_s,
                flagged: note(q),
            })
        });
        let heading = self.heading_from.as_deref().and_then(|h| {
            let (yaw, age_s, q) = self.input(h, Quantity::PlatformYaw, now_ns)?;
            let accuracy_deg = self
                .input(h, Quantity::HeadingAccuracy, now_ns)
                .map(|a| a.0);
            Some(Input {
                value: Heading {
                    heading_deg: yaw,
                    accuracy_deg,
                },
                age_s,
                flagged: note(q),
            })
        });
        (
            Inputs {
                ground,
                airspeed,
                heading,
            },
            simulated,
        )
    }

    fn push(
        &self,
        estimate: &WindEstimate,
        time: Timestamp,
        quality: Quality,
        out: &mut Vec<Reading>,
    ) {
        let reading = |quantity, value| Reading {
            sensor: self.id,
            quantity,
            time,
            value,
            quality,
        };
        out.push(reading(Quantity::WindSpeed, estimate.speed_mps()));
        out.push(reading(Quantity::WindFromDirection, estimate.from_deg()));
        out.push(reading(
            Quantity::WindMethod,
            f64::from(estimate.method.code()),
        ));
    }
}

impl Device for WindDevice {
    fn open(&mut self) -> Result<SensorDescriptor, DeviceError> {
        // Nothing to open; what the estimator learned (a circle in progress) is kept.
        self.changed_descriptor = None;
        Ok(self.descriptor())
    }

    fn poll(&mut self, out: &mut Vec<Reading>) -> Result<PollOutcome, DeviceError> {
        let time = self.clock.now();
        let (inputs, simulated) = self.inputs(time.mono_ns);
        let now_s = time.mono_ns as f64 / 1e9;
        match self.estimator.estimate(now_s, &inputs) {
            Ok(estimate) => {
                let mut quality = estimate.quality;
                if simulated {
                    quality |= Quality::SIMULATED;
                }
                self.push(&estimate, time, quality, out);
                Ok(PollOutcome::Healthy)
            }
            Err(why) => Ok(PollOutcome::Degraded(why.to_string())),
        }
    }

    fn close(&mut self) {}

    fn interval(&self) -> Option<Duration> {
        Some(self.interval)
    }

    fn set_interval(&mut self, interval: Duration) -> bool {
        self.interval = interval;
        true
    }

    fn set_tunables(&mut self, tunables: &Tunables) -> Result<(), DeviceError> {
        let choice = tunables::wind_method(tunables);
        if choice != self.estimator.choice() {
            self.estimator.set_choice(choice);
            self.changed_descriptor = Some(self.descriptor());
        }
        Ok(())
    }

    fn take_descriptor(&mut self) -> Option<SensorDescriptor> {
        self.changed_descriptor.take()
    }

    fn silence_limit(&self) -> Duration {
        // Without a heading the wind comes only from full circles: minutes of straight
        // flight without one are normal.
        (self.interval * 4).max(Duration::from_secs(300))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use aloft_protocol::sync::TunableValue;
    use aloft_sensors::wind::Velocity;

    fn config(toml_text: &str) -> SensorConfig {
        toml::from_str(toml_text).unwrap_or_else(|e| panic!("{e}"))
    }

    const FULL: &str = "name = 'wind'\nkind = 'wind'\nground_velocity_from = 'gps'\n\
        airspeed_from = 'pitot'\nheading_from = 'attitude'\n";

    fn reading(quantity: Quantity, value: f64, mono_ns: u64, quality: Quality) -> Reading {
        Reading {
            sensor: SensorId(0),
            quantity,
            time: Timestamp::monotonic(mono_ns),
            value,
            quality,
        }
    }

    /// A glider at 40 m/s TAS heading 200° in a wind of 12 m/s from 250°, as its
    /// sensors last reported it `age` ago.
    fn flying(latest: &LatestValues, age: Duration, heading_accuracy: f64) {
        let now = crate::clock::monotonic_ns() - age.as_nanos() as u64;
        let wind = Velocity::towards(12.0, 70.0);
        let air = Velocity::towards(40.0, 200.0);
        let ground = Velocity {
            east: air.east + wind.east,
            north: air.north + wind.north,
        };
        let q = Quality::GOOD;
        latest.record(
            "gps",
            &[
                reading(Quantity::GroundSpeed, ground.speed(), now, q),
                reading(Quantity::Track, ground.towards_deg(), now, q),
                reading(Quantity::FixMode, 3.0, now, q),
            ],
        );
        latest.record(
            "pitot",
            &[reading(Quantity::TrueAirspeed, 40.0, now, Quality::DERIVED)],
        );
        latest.record(
            "attitude",
            &[
                reading(Quantity::PlatformYaw, 200.0, now, q),
                reading(Quantity::HeadingAccuracy, heading_accuracy, now, q),
            ],
        );
    }

    #[test]
    fn a_poll_emits_speed_direction_and_method_at_one_time_flagged_derived() {
        let latest = LatestValues::new();
        let mut wind = WindDevice::new(SensorId(4), &config(FULL), latest.clone()).unwrap();
        let descriptor = wind.open().unwrap();
        for (name, value) in [
            ("ground_velocity_from", "gps"),
            ("airspeed_from", "pitot"),
            ("heading_from", "attitude"),
            ("method", "auto"),
        ] {
            assert_eq!(
                descriptor.parameter(name),
                Some(&ParameterValue::Text(value.into())),
                "{name}"
            );
        }
        flying(&latest, Duration::ZERO, 2.0);
        let mut out = Vec::new();
        assert_eq!(wind.poll(&mut out).unwrap(), PollOutcome::Healthy);
        let quantities: Vec<Quantity> = out.iter().map(|r| r.quantity).collect();
        assert_eq!(
            quantities,
            [
                Quantity::WindSpeed,
                Quantity::WindFromDirection,
                Quantity::WindMethod
            ]
        );
        assert!(
            out.iter()
                .all(|r| r.time == out[0].time && r.sensor == SensorId(4))
        );
        assert!(out.iter().all(|r| r.quality == Quality::DERIVED));
        assert!((out[0].value - 12.0).abs() < 1e-6, "{out:?}");
        assert!((out[1].value - 250.0).abs() < 1e-6, "{out:?}");
        assert_eq!(out[2].value, 1.0, "the wind triangle");
    }

    #[test]
    fn stale_or_poor_inputs_flag_the_readings() {
        let latest = LatestValues::new();
        let mut wind = WindDevice::new(SensorId(4), &config(FULL), latest.clone()).unwrap();
        wind.open().unwrap();
        flying(&latest, Duration::from_secs(5), 2.0);
        let mut out = Vec::new();
        wind.poll(&mut out).unwrap();
        assert!(
            out.iter()
                .all(|r| r.quality == Quality::DERIVED | Quality::STALE),
            "{out:?}"
        );

        let latest = LatestValues::new();
        let mut wind = WindDevice::new(SensorId(4), &config(FULL), latest.clone()).unwrap();
        flying(&latest, Duration::ZERO, 30.0);
        out.clear();
        wind.poll(&mut out).unwrap();
        assert!(
            out.iter()
                .all(|r| r.quality == Quality::DERIVED | Quality::DEGRADED_INPUT),
            "a poor heading and no circle: the triangle, flagged: {out:?}"
        );
    }

    #[test]
    fn no_ground_velocity_is_a_degraded_poll_without_readings() {
        let latest = LatestValues::new();
        let mut wind = WindDevice::new(SensorId(4), &config(FULL), latest).unwrap();
        let mut out = Vec::new();
        assert!(matches!(
            wind.poll(&mut out).unwrap(),
            PollOutcome::Degraded(_)
        ));
        assert!(out.is_empty());
    }

    #[test]
    fn the_method_tunable_is_applied_and_the_descriptor_says_so() {
        let latest = LatestValues::new();
        let mut wind = WindDevice::new(SensorId(4), &config(FULL), latest.clone()).unwrap();
        wind.open().unwrap();
        let mut set = Tunables::new();
        set.insert("method".into(), TunableValue::Text("circling".into()));
        assert!(crate::config::tunables::check(SensorKind::Wind, &set).is_ok());
        wind.set_tunables(&tunables::in_force(SensorKind::Wind, &set))
            .unwrap();
        let changed = wind.take_descriptor().expect("a new descriptor");
        assert_eq!(
            changed.parameter("method"),
            Some(&ParameterValue::Text("circling".into()))
        );
        // Circling only, and no circle flown: no wind although the triangle has all it needs.
        flying(&latest, Duration::ZERO, 2.0);
        let mut out = Vec::new();
        assert!(matches!(
            wind.poll(&mut out).unwrap(),
            PollOutcome::Degraded(_)
        ));
        set.insert("method".into(), TunableValue::Text("sideways".into()));
        assert!(crate::config::tunables::check(SensorKind::Wind, &set).is_err());
    }

    #[test]
    fn a_wind_without_a_ground_velocity_is_refused() {
        let err = WindDevice::new(
            SensorId(0),
            &config("name = 'wind'\nkind = 'wind'\n"),
            LatestValues::new(),
        )
        .err();
        assert!(matches!(err, Some(DeviceError::Config(_))));
    }
}
