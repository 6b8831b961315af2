//! The `[power]` section: which sensor is the battery and the ordered power steps the
//! agent's power policy ([`crate::power`]) takes as the battery runs down.
//!
//! A step is entered when any of its thresholds is crossed (state of charge, pack voltage
//! or pack temperature below its value) and left when every one of them is clear again by
//! its hysteresis. Steps are numbered from 1 in the order written; a step's effects add to
//! those of the steps before it (a longer interval wins, disabled sensors stay disabled,
//! the lowest upload budget holds). Not to be confused with a sensor's `power` key, the
//! GPIO line that cuts its supply for a hard restart.

use std::collections::BTreeMap;
use std::time::Duration;

use serde::Deserialize;

/// The `[power]` section.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
#[non_exhaustive]
pub struct PowerConfig {
    /// The sensor whose readings are the battery's (an `sbs` sensor).
    pub battery: String,
    /// How often the policy looks at the battery's newest values.
    #[serde(default = "default_check_interval", with = "humantime_serde")]
    pub check_interval: Duration,
    /// How long a change of step must keep being called for before it is made.
    #[serde(default = "default_dwell", with = "humantime_serde")]
    pub dwell: Duration,
    /// Battery values older than this are not used: the step in force holds.
    #[serde(default = "default_stale_after", with = "humantime_serde")]
    pub stale_after: Duration,
    /// How far above its threshold the state of charge must come back to leave a step
    /// (fraction).
    #[serde(default = "default_soc_hysteresis")]
    pub soc_hysteresis: f64,
    /// How far above its threshold the voltage must come back to leave a step, V.
    #[serde(default = "default_voltage_hysteresis_v")]
    pub voltage_hysteresis_v: f64,
    /// How far above its threshold the pack temperature must come back to leave a step, K.
    #[serde(default = "default_temperature_hysteresis_k")]
    pub temperature_hysteresis_k: f64,
    /// The steps, from the mildest (level 1) to the deepest.
    #[serde(default, rename = "step")]
    pub steps: Vec<PowerStepConfig>,
}

/// One `[[power.step]]`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
#[non_exhaustive]
pub struct PowerStepConfig {
    /// The step's name (in records, status and metrics).
    pub name: String,
    /// Entered when the state of charge is below this fraction.
    #[serde(default)]
    pub soc_below: Option<f64>,
    /// Entered when the pack voltage is below this, V.
    #[serde(default)]
    pub voltage_below_v: Option<f64>,
    /// Entered when the pack temperature is below this, °C.
    #[serde(default)]
    pub temperature_below_c: Option<f64>,
    /// Every scheduled sensor's interval is multiplied by this (1 or more).
    #[serde(default)]
    pub interval_factor: Option<f64>,
    /// Sensors held to at least this interval.
    #[serde(default)]
    pub intervals: BTreeMap<String, humantime_serde::Serde<Duration>>,
    /// Sensors switched off.
    #[serde(default)]
    pub disable: Vec<String>,
    /// The upload budget held to at most this, bytes/s.
    #[serde(default)]
    pub upload_bytes_per_s: Option<u64>,
}

impl PowerStepConfig {
    /// The interval floor this step sets for `sensor`, if any.
    pub fn interval_of(&self, sensor: &str) -> Option<Duration> {
        self.intervals.get(sensor).map(|d| **d)
    }
}

fn default_check_interval() -> Duration {
    Duration::from_secs(5)
}

fn default_dwell() -> Duration {
    Duration::from_secs(10)
}

fn default_stale_after() -> Duration {
    Duration::from_secs(60)
}

fn default_soc_hysteresis() -> f64 {
    0.03
}

fn default_voltage_hysteresis_v() -> f64 {
    0.3
}

fn default_temperature_hysteresis_k() -> f64 {
    2.0
}

#[cfg(test)]
mod tests {
    const BASE: &str = r#"[node]
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
[[sensor]]
name = "static"
kind = "ms5611"
[[sensor]]
name = "gps"
kind = "ublox"
[simulation]
"#;

    fn problems(power: &str) -> Vec<(String, usize, String)> {
        let text = format!("{BASE}{power}");
        match super::super::parse(&text, "test.toml") {
            Ok(_) => Vec::new(),
            Err(e) => e
                .problems
                .iter()
                .map(|p| {
                    (
                        p.key.clone(),
                        p.position.map_or(0, |pos| pos.line),
                        p.what.clone(),
                    )
                })
                .collect(),
        }
    }

    #[test]
    fn a_good_section_loads_with_its_defaults() {
        let text = format!(
            "{BASE}[power]\nbattery = \"battery\"\n[[power.step]]\nname = \"economy\"\nsoc_below = 0.5\nintervals = {{ static = \"2s\" }}\n"
        );
        let config = super::super::parse(&text, "test.toml").unwrap();
        let power = config.power.unwrap();
        assert_eq!(power.dwell, std::time::Duration::from_secs(10));
        assert_eq!(
            power.steps[0].interval_of("static"),
            Some(std::time::Duration::from_secs(2))
        );
        assert!(problems("").is_empty());
    }

    #[test]
    fn every_problem_of_the_section_is_named_by_key_and_line() {
        let found = problems(
            "[power]\nbattery = \"static\"\nsoc_hysteresis = -1.0\n\
             [[power.step]]\nname = \"full\"\ninterval_factor = 0.5\nintervals = { gps = \"1s\", nope = \"1s\" }\n\
             [[power.step]]\nname = \"deep\"\nsoc_below = 1.5\nupload_bytes_per_s = 10\n",
        );
        let keys: Vec<&str> = found.iter().map(|(k, _, _)| k.as_str()).collect();
        for expected in [
            "power.battery",
            "power.soc_hysteresis",
            "power.step[0].name",
            "power.step[0]",
            "power.step[0].interval_factor",
            "power.step[0].intervals.gps",
            "power.step[0].intervals.nope",
            "power.step[1].soc_below",
            "power.step[1].upload_bytes_per_s",
        ] {
            assert!(
                keys.contains(&expected),
                "{expected} missing from {found:?}"
            );
        }
        let battery = found.iter().find(|(k, _, _)| k == "power.battery").unwrap();
        assert_eq!(battery.1, 20, "{battery:?}");
        assert!(battery.2.contains("not a battery"), "{battery:?}");
        let deep = found
            .iter()
            .find(|(k, _, _)| k == "power.step[1].soc_below")
            .unwrap();
        assert_eq!(deep.1, 28, "{deep:?}");
        let off = problems(
            "[power]\nbattery = \"battery\"\n[[power.step]]\nname = \"e\"\nsoc_below = 0.5\ndisable = [\"battery\"]\n",
        );
        assert!(
            off.iter().any(|(k, _, _)| k == "power.step[0].disable[0]"),
            "{off:?}"
        );
        // A key the section does not have is named like any other unknown key.
        let unknown = problems("[power]\nbattery = \"battery\"\nbatery = 1\n");
        assert!(
            unknown.iter().any(|(k, _, _)| k == "power.batery"),
            "{unknown:?}"
        );
        let missing = problems("[power]\n");
        assert!(
            missing.iter().any(|(k, _, _)| k == "power.battery"),
            "{missing:?}"
        );
    }
}
