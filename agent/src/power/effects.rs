//! What a power step does to each sensor and to the link, and the one rule that combines
//! it with what the operator asked: a step only lowers.
//!
//! The effects of level `n` are those of steps 1 to `n` together: the longest interval
//! floor and the largest interval factor, every sensor any of them switches off, the lowest
//! upload budget. [`lower`] applies them to the state the operator wants (the config file
//! under the hub's desired state): an interval only grows, a sensor is only switched off,
//! never on; a sensor the operator exempted keeps what the operator wants.

use std::collections::BTreeMap;
use std::time::Duration;

use crate::config::{PowerConfig, SensorKind};
use crate::supervisor::SensorChange;

/// What a level does to one sensor.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct SensorLimit {
    /// The wanted interval is multiplied by this (1 or more).
    pub factor: f64,
    /// The interval is at least this.
    pub floor: Option<Duration>,
    /// The sensor is switched off.
    pub disabled: bool,
}

impl Default for SensorLimit {
    fn default() -> Self {
        SensorLimit {
            factor: 1.0,
            floor: None,
            disabled: false,
        }
    }
}

/// What a level does to the node.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct StepEffects {
    /// Per sensor the level touches.
    pub sensors: BTreeMap<String, SensorLimit>,
    /// The upload budget, bytes/s, when the level lowers it.
    pub upload_bytes_per_s: Option<u64>,
}

/// The effects of `level` on the `sensors` the node runs.
pub fn effects(config: &PowerConfig, level: u8, sensors: &[(String, SensorKind)]) -> StepEffects {
    let mut out = StepEffects::default();
    for step in config.steps.iter().take(usize::from(level)) {
        for (name, kind) in sensors {
            let scheduled = kind.min_interval().is_some();
            let mut limit = out.sensors.get(name).copied().unwrap_or_default();
            if scheduled {
                if let Some(factor) = step.interval_factor {
                    limit.factor = limit.factor.max(factor);
                }
                if let Some(floor) = step.interval_of(name) {
                    limit.floor = Some(limit.floor.map_or(floor, |f| f.max(floor)));
                }
            }
            limit.disabled |= step.disable.iter().any(|d| d == name);
            if limit != SensorLimit::default() {
                out.sensors.insert(name.clone(), limit);
            }
        }
        if let Some(bytes) = step.upload_bytes_per_s {
            out.upload_bytes_per_s = Some(out.upload_bytes_per_s.map_or(bytes, |b| b.min(bytes)));
        }
    }
    out
}

/// The state a sensor runs in: what the operator wants, lowered by `limit` unless the
/// operator exempted it. Never a shorter interval, never enabled where the operator
/// disabled it.
pub fn lower(wanted: SensorChange, limit: Option<&SensorLimit>, overridden: bool) -> SensorChange {
    let Some(limit) = limit.filter(|_| !overridden) else {
        return wanted;
    };
    let interval = wanted.interval.map(|i| {
        let factor = if limit.factor.is_finite() {
            limit.factor.max(1.0)
        } else {
            1.0
        };
        let scaled = Duration::try_from_secs_f64(i.as_secs_f64() * factor).unwrap_or(Duration::MAX);
        scaled.max(i).max(limit.floor.unwrap_or_default())
    });
    let enabled = if limit.disabled {
        Some(false)
    } else {
        wanted.enabled
    };
    SensorChange { interval, enabled }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn a_factor_and_a_floor_take_the_longer_and_overrides_keep_what_is_wanted() {
        let wanted = SensorChange {
            interval: Some(Duration::from_millis(500)),
            enabled: Some(true),
        };
        let limit = SensorLimit {
            factor: 4.0,
            floor: Some(Duration::from_secs(1)),
            disabled: false,
        };
        assert_eq!(
            lower(wanted, Some(&limit), false).interval,
            Some(Duration::from_secs(2))
        );
        let floor = SensorLimit {
            floor: Some(Duration::from_secs(10)),
            ..limit
        };
        assert_eq!(
            lower(wanted, Some(&floor), false).interval,
            Some(Duration::from_secs(10))
        );
        assert_eq!(lower(wanted, Some(&floor), true), wanted);
        assert_eq!(lower(wanted, None, false), wanted);
        let off = SensorLimit {
            disabled: true,
            ..SensorLimit::default()
        };
        assert_eq!(lower(wanted, Some(&off), false).enabled, Some(false));
        let operator_off = SensorChange {
            enabled: Some(false),
            ..wanted
        };
        assert_eq!(lower(operator_off, None, false).enabled, Some(false));
    }

    proptest! {
        #[test]
        fn a_step_only_lowers(
            interval_ms in proptest::option::of(0u64..100_000_000),
            enabled in proptest::option::of(any::<bool>()),
            factor in prop_oneof![Just(f64::NAN), Just(f64::INFINITY), 0.0f64..10_000.0],
            floor_ms in proptest::option::of(0u64..100_000_000),
            disabled: bool,
            overridden: bool,
        ) {
            let wanted = SensorChange { interval: interval_ms.map(Duration::from_millis), enabled };
            let limit = SensorLimit { factor, floor: floor_ms.map(Duration::from_millis), disabled };
            let got = lower(wanted, Some(&limit), overridden);
            if let (Some(w), Some(g)) = (wanted.interval, got.interval) {
                prop_assert!(g >= w);
            }
            prop_assert_eq!(got.interval.is_some(), wanted.interval.is_some());
            if got.enabled == Some(true) {
                prop_assert_eq!(wanted.enabled, Some(true));
            }
            if overridden {
                prop_assert_eq!(got, wanted);
            }
        }
    }
}
