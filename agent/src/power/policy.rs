//! The power policy's decision, without I/O: the battery's newest values and the time in,
//! the step to be in (and why) out.
//!
//! Each step of the config is entered when any of its thresholds is crossed (an input below
//! it) and held until every one of them is clear by its hysteresis (the input back above
//! threshold + hysteresis). The step called for is the deepest one that holds: the steps
//! at or below the one in force are judged by their leaving bands, deeper ones by their
//! entering thresholds. A change is made only once it has been called for without a break
//! for the configured dwell, so noise on a value near a threshold changes nothing.
//!
//! Invariants: a missing or stale input never moves the step by itself: it enters no step,
//! and it holds the step in force (a battery that stops answering does not switch the node
//! back to full power); with no input at all, nothing is decided. The level is 0 (full
//! power) to the number of steps.

use std::time::Duration;

use crate::config::{PowerConfig, PowerStepConfig};

/// Kelvin at 0 °C.
const CELSIUS_K: f64 = 273.15;

/// The battery's newest usable values; `None` where a value is missing, too old or flagged
/// unusable.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct BatteryInputs {
    /// State of charge, fraction.
    pub soc: Option<f64>,
    /// Pack voltage, V.
    pub voltage_v: Option<f64>,
    /// Pack temperature, K.
    pub temperature_k: Option<f64>,
}

impl BatteryInputs {
    /// Whether no input is there at all.
    pub fn is_empty(&self) -> bool {
        self.soc.is_none() && self.voltage_v.is_none() && self.temperature_k.is_none()
    }
}

/// A change of step the policy made.
#[derive(Debug, Clone, PartialEq)]
pub struct Transition {
    /// The level left.
    pub from: u8,
    /// The level entered (0: full power).
    pub to: u8,
    /// The name of the step entered (`full` at level 0).
    pub name: String,
    /// Why, in words.
    pub reason: String,
}

/// One threshold of a step: which input, its value, how it is said.
#[derive(Debug, Clone, Copy)]
struct Threshold {
    /// The input's value in the config's unit, if there is one.
    value: Option<f64>,
    /// Entered below this.
    below: f64,
    /// Left above `below + hysteresis`.
    hysteresis: f64,
    /// How the input is named in a reason.
    what: &'static str,
    /// Its unit in a reason.
    unit: &'static str,
    /// Decimal places in a reason.
    places: usize,
}

impl Threshold {
    fn entered(&self) -> bool {
        self.value.is_some_and(|v| v < self.below)
    }

    /// Still within the step's band: below the leaving level, or unknown (hold).
    fn held(&self) -> bool {
        self.value.is_none_or(|v| v < self.below + self.hysteresis)
    }

    fn say(&self, v: f64, relation: &str, limit: f64) -> String {
        let p = self.places;
        let unit = self.unit;
        format!("{} {v:.p$}{unit} {relation} {limit:.p$}{unit}", self.what)
    }
}

/// The power policy of one node.
#[derive(Debug, Clone)]
pub struct Policy {
    config: PowerConfig,
    level: u8,
    /// The level called for and since when, while it differs from the one in force.
    pending: Option<(u8, Duration)>,
}

/// The name of level 0.
pub const FULL: &str = "full";

impl Policy {
    /// A policy at full power.
    pub fn new(config: PowerConfig) -> Self {
        Policy {
            config,
            level: 0,
            pending: None,
        }
    }

    /// The level in force.
    pub fn level(&self) -> u8 {
        self.level
    }

    /// The name of `level`.
    pub fn name_of(&self, level: u8) -> &str {
        match level.checked_sub(1) {
            None => FULL,
            Some(i) => self
                .config
                .steps
                .get(usize::from(i))
                .map_or(FULL, |s| s.name.as_str()),
        }
    }

    fn thresholds(&self, step: &PowerStepConfig, inputs: &BatteryInputs) -> Vec<Threshold> {
        let c = &self.config;
        let mut out = Vec::with_capacity(3);
        if let Some(below) = step.soc_below {
            out.push(Threshold {
                value: inputs.soc,
                below,
                hysteresis: c.soc_hysteresis,
                what: "state of charge",
                unit: "",
                places: 2,
            });
        }
        if let Some(below) = step.voltage_below_v {
            out.push(Threshold {
                value: inputs.voltage_v,
                below,
                hysteresis: c.voltage_hysteresis_v,
                what: "battery voltage",
                unit: " V",
                places: 2,
            });
        }
        if let Some(below) = step.temperature_below_c {
            out.push(Threshold {
                value: inputs.temperature_k.map(|k| k - CELSIUS_K),
                below,
                hysteresis: c.temperature_hysteresis_k,
                what: "pack temperature",
                unit: " °C",
                places: 1,
            });
        }
        out
    }

    /// The level `inputs` call for from the level in force.
    pub fn called_for(&self, inputs: &BatteryInputs) -> u8 {
        let mut target = 0;
        for (i, step) in self.config.steps.iter().enumerate() {
            let level = u8::try_from(i + 1).unwrap_or(u8::MAX);
            let thresholds = self.thresholds(step, inputs);
            let holds = if level <= self.level {
                thresholds.iter().any(Threshold::held)
            } else {
                thresholds.iter().any(Threshold::entered)
            };
            if holds {
                target = target.max(level);
            }
        }
        target
    }

    /// Looks at `inputs` at `now` (any monotonic time): the change of step made, if one is.
    pub fn decide(&mut self, inputs: &BatteryInputs, now: Duration) -> Option<Transition> {
        if inputs.is_empty() {
            // Nothing known: hold, and start any dwell afresh when values come back.
            self.pending = None;
            return None;
        }
        let target = self.called_for(inputs);
        if target == self.level {
            self.pending = None;
            return None;
        }
        let since = match self.pending {
            Some((pending, since)) if pending == target => since,
            _ => {
                self.pending = Some((target, now));
                now
            }
        };
        if now.saturating_sub(since) < self.config.dwell {
            return None;
        }
        let from = self.level;
        let reason = self.reason(from, target, inputs);
        self.level = target;
        self.pending = None;
        Some(Transition {
            from,
            to: target,
            name: self.name_of(target).to_string(),
            reason,
        })
    }

    /// Why `from` gives way to `to`: the threshold of the step entered that was crossed,
    /// or the thresholds of the step left, each clear by its hysteresis.
    fn reason(&self, from: u8, to: u8, inputs: &BatteryInputs) -> String {
        let step_of = |level: u8| {
            level
                .checked_sub(1)
                .and_then(|i| self.config.steps.get(usize::from(i)))
        };
        if to > from {
            let crossed: Vec<String> = step_of(to)
                .map(|s| self.thresholds(s, inputs))
                .unwrap_or_default()
                .iter()
                .filter(|t| t.entered())
                .filter_map(|t| Some(t.say(t.value?, "below", t.below)))
                .collect();
            crossed.join(", ")
        } else {
            let cleared: Vec<String> = step_of(from)
                .map(|s| self.thresholds(s, inputs))
                .unwrap_or_default()
                .iter()
                .filter_map(|t| Some(t.say(t.value?, "back above", t.below + t.hysteresis)))
                .collect();
            format!("{} left: {}", self.name_of(from), cleared.join(", "))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn config(dwell_s: u64) -> PowerConfig {
        let text = format!(
            r#"
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
            [simulation]
            [power]
            battery = "battery"
            dwell = "{dwell_s}s"
            [[power.step]]
            name = "economy"
            soc_below = 0.6
            temperature_below_c = -15.0
            interval_factor = 2.0
            [[power.step]]
            name = "survival"
            voltage_below_v = 13.5
            "#
        );
        crate::config::parse(&text, "test").unwrap().power.unwrap()
    }

    fn inputs(soc: f64, voltage_v: f64, temperature_c: f64) -> BatteryInputs {
        BatteryInputs {
            soc: Some(soc),
            voltage_v: Some(voltage_v),
            temperature_k: Some(temperature_c + CELSIUS_K),
        }
    }

    const S: Duration = Duration::from_secs(1);

    #[test]
    fn steps_are_entered_below_a_threshold_and_left_above_it_plus_hysteresis() {
        let mut p = Policy::new(config(0));
        assert_eq!(p.decide(&inputs(0.8, 16.0, 20.0), S), None);
        let t = p.decide(&inputs(0.59, 16.0, 20.0), 2 * S).unwrap();
        assert_eq!((t.from, t.to, t.name.as_str()), (0, 1, "economy"));
        assert_eq!(t.reason, "state of charge 0.59 below 0.60");
        // Back above the threshold but within the hysteresis: held.
        assert_eq!(p.decide(&inputs(0.61, 16.0, 20.0), 3 * S), None);
        let t = p.decide(&inputs(0.4, 13.4, -20.0), 4 * S).unwrap();
        assert_eq!((t.to, t.name.as_str()), (2, "survival"));
        assert_eq!(t.reason, "battery voltage 13.40 V below 13.50 V");
        assert_eq!(p.decide(&inputs(0.4, 13.7, -20.0), 5 * S), None);
        let t = p.decide(&inputs(0.4, 13.81, -20.0), 6 * S).unwrap();
        assert_eq!(t.to, 1, "economy still holds by the charge and the cold");
        assert_eq!(
            t.reason,
            "survival left: battery voltage 13.81 V back above 13.80 V"
        );
        let t = p.decide(&inputs(0.64, 16.0, -12.9), 7 * S).unwrap();
        assert_eq!((t.to, t.name.as_str()), (0, FULL));
        assert_eq!(
            t.reason,
            "economy left: state of charge 0.64 back above 0.63, pack temperature -12.9 °C back above -13.0 °C"
        );
    }

    #[test]
    fn a_deep_threshold_jumps_past_the_milder_steps() {
        let mut p = Policy::new(config(0));
        let t = p.decide(&inputs(0.9, 13.0, 20.0), S).unwrap();
        assert_eq!((t.from, t.to), (0, 2));
    }

    #[test]
    fn a_change_waits_for_the_dwell_and_a_break_starts_it_again() {
        let mut p = Policy::new(config(10));
        let low = inputs(0.5, 16.0, 20.0);
        let high = inputs(0.9, 16.0, 20.0);
        assert_eq!(p.decide(&low, Duration::from_secs(100)), None);
        assert_eq!(p.decide(&low, Duration::from_secs(105)), None);
        assert_eq!(p.decide(&high, Duration::from_secs(106)), None);
        assert_eq!(p.decide(&low, Duration::from_secs(107)), None);
        assert_eq!(p.decide(&low, Duration::from_secs(116)), None);
        assert_eq!(p.decide(&low, Duration::from_secs(117)).unwrap().to, 1);
    }

    #[test]
    fn missing_inputs_hold_the_step_and_enter_none() {
        let mut p = Policy::new(config(0));
        assert_eq!(p.decide(&inputs(0.5, 16.0, 20.0), S).unwrap().to, 1);
        // Nothing known: nothing decided.
        assert_eq!(p.decide(&BatteryInputs::default(), 2 * S), None);
        // The charge is unknown, the rest is fine: economy holds (its charge threshold
        // cannot be cleared by a value that is not there).
        let no_soc = BatteryInputs {
            soc: None,
            ..inputs(0.0, 16.0, 20.0)
        };
        assert_eq!(p.decide(&no_soc, 3 * S), None);
        assert_eq!(p.level(), 1);
        // A missing voltage enters no step.
        let mut fresh = Policy::new(config(0));
        let no_voltage = BatteryInputs {
            voltage_v: None,
            ..inputs(0.9, 0.0, 20.0)
        };
        assert_eq!(fresh.decide(&no_voltage, S), None);
    }

    proptest! {
        #[test]
        fn noise_within_the_hysteresis_never_toggles(
            noise in proptest::collection::vec(-0.014f64..0.014, 1..200),
        ) {
            // A state of charge flickering around the threshold, by less than half the
            // band: after the first entry, no change at all.
            let mut p = Policy::new(config(0));
            let mut changes = 0;
            for (i, n) in noise.iter().enumerate() {
                let at = Duration::from_secs(i as u64);
                if p.decide(&inputs(0.6 + 0.015 + n, 16.0, 20.0), at).is_some() {
                    changes += 1;
                }
            }
            prop_assert!(changes <= 1, "{changes} changes");
        }

        #[test]
        fn the_level_follows_the_deepest_step_that_holds(
            socs in proptest::collection::vec(0.0f64..1.0, 1..50),
            volts in proptest::collection::vec(12.0f64..17.0, 1..50),
            dwell in 0u64..3,
        ) {
            let mut p = Policy::new(config(dwell));
            let mut last = 0;
            for (i, (soc, v)) in socs.iter().zip(volts.iter()).enumerate() {
                let at = Duration::from_secs(i as u64);
                if let Some(t) = p.decide(&inputs(*soc, *v, 20.0), at) {
                    prop_assert_eq!(t.from, last);
                    prop_assert_ne!(t.from, t.to);
                    prop_assert!(t.to <= 2);
                    prop_assert!(!t.reason.is_empty());
                }
                // Past the dwell, a steady input settles where its thresholds say.
                let settle = at + Duration::from_secs(dwell);
                p.decide(&inputs(*soc, *v, 20.0), settle + Duration::from_millis(1));
                let _ = p.decide(&inputs(*soc, *v, 20.0), settle + Duration::from_secs(dwell) + Duration::from_millis(2));
                let level = p.level();
                if *v < 13.5 { prop_assert_eq!(level, 2); }
                if *v >= 13.8 && *soc >= 0.63 { prop_assert_eq!(level, 0); }
                if *v >= 13.8 && *soc < 0.6 { prop_assert_eq!(level, 1); }
                last = level;
            }
        }
    }
}
