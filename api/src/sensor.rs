//! `Sensor`: a node's sensor as the hub knows it: its desired spec and what the node last
//! reported (docs/api.md, "Sensor").
//!
//! Invariant: `spec` is the desired state (`None` fields: the node's config file decides);
//! `status` is the node's last report, `None` where the node never reported the sensor.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::{Backlog, resource};

/// The value of a sensor tunable, as JSON writes it: `true`, `16` or `"airborne4g"`.
/// Whole numbers only: every driver setting is a code, a count or a name, and a fraction
/// is written as a whole number of a finer unit (Pa, ms).
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(untagged)]
pub enum TunableValue {
    /// A switch.
    Bool(bool),
    /// A whole number.
    Integer(i64),
    /// A name.
    Text(String),
}

/// A sensor's tunables by key (`spec.tunables`, `status.tunables`).
pub type Tunables = BTreeMap<String, TunableValue>;

resource!(
    /// `GET /api/v1/sensors`, `GET /api/v1/nodes/{node}/sensors[/{sensor}]`, and the answer
    /// of a spec write.
    Sensor,
    SensorSpec,
    SensorStatus
);

/// A sensor's desired state; also the body of `PUT .../spec` (a `PATCH` body may also
/// give a tunable `null` to remove it).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct SensorSpec {
    /// Sampling interval, ms.
    pub interval_ms: Option<u32>,
    /// Whether the sensor runs.
    pub enabled: Option<bool>,
    /// Driver settings its kind declares (the agent checks them); left out when none.
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    pub tunables: Tunables,
    /// `true`: the operator exempts the sensor from the node's power steps (it samples as
    /// this spec and its config say whatever the battery); a write of `false` clears the
    /// exemption. Left out when the sensor follows the power steps.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub power_override: Option<bool>,
}

/// What the node last reported of the sensor, and the outcome of a spec write.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct SensorStatus {
    /// The driver kind (`ms5611`, `ublox`, ...).
    pub kind: Option<String>,
    /// `Starting`, `Running`, `Degraded`, `Failed`, `Restarting` or `Disabled`.
    pub state: Option<String>,
    /// Why it is in that state.
    pub reason: Option<String>,
    /// Restarts since the agent started.
    pub restarts: Option<u32>,
    /// Why it last restarted.
    pub last_restart_reason: Option<String>,
    /// Its last error.
    pub last_error: Option<String>,
    /// The interval in force, ms.
    pub interval_ms: Option<u32>,
    /// Whether it runs.
    pub enabled: Option<bool>,
    /// Readings taken since the agent started.
    pub readings: Option<u64>,
    /// Age of its newest value by the hub's clock, s.
    pub newest_value_age_seconds: Option<f64>,
    /// The desired generation the agent applied.
    pub observed_generation: Option<u64>,
    /// Why the agent refused (part of) the desired spec.
    pub refused: Option<String>,
    /// The tunables in force, every key its kind declares, as the agent last reported
    /// them; left out until it has.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub tunables: Option<Tunables>,
    /// Whether its node is connected now (else this status is the last one heard).
    pub node_connected: Option<bool>,
    /// The node's unsent backlog.
    pub node_backlog: Option<Backlog>,
    /// When the hub received the node's report.
    pub reported: Option<String>,
    /// The newest value of each of its quantities.
    pub values: Vec<SensorValue>,
    /// A spec write's answer: whether the generation moved.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub changed: Option<bool>,
    /// A spec write's answer: whether it was only a dry run.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub dry_run: Option<bool>,
    /// A deletion's answer: the desired state is gone.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub deleted: Option<bool>,
    /// A deletion's answer: the generation that was deleted.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub deleted_generation: Option<u64>,
}

/// The newest value of one quantity of a sensor.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct SensorValue {
    /// Quantity name (`air_pressure`).
    pub quantity: String,
    /// Its unit (`None`: a quantity this hub has no name for, shown by its code) (`Pa`).
    pub unit: Option<String>,
    /// The value (`None`: not a number).
    pub value: Option<f64>,
    /// The reading's UTC.
    pub utc: Option<String>,
    /// `gnss`, `system_clock`, `reconstructed` or `monotonic`.
    pub time_source: String,
    /// Its age by the hub's clock, s.
    pub age_seconds: Option<f64>,
    /// Its quality flags, comma-separated; empty when good.
    pub quality: String,
}

#[cfg(test)]
mod tunable_tests {
    use super::*;

    #[test]
    fn tunable_values_are_plain_json_scalars_without_fractions() {
        let read: Tunables =
            serde_json::from_str(r#"{"a": 16, "b": true, "c": "airborne4g", "d": -1}"#)
                .unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(read.get("a"), Some(&TunableValue::Integer(16)));
        assert_eq!(read.get("b"), Some(&TunableValue::Bool(true)));
        assert_eq!(
            read.get("c"),
            Some(&TunableValue::Text("airborne4g".into()))
        );
        assert_eq!(
            serde_json::to_string(&read).unwrap_or_default(),
            r#"{"a":16,"b":true,"c":"airborne4g","d":-1}"#
        );
        for refused in [
            r#"{"a": 1.5}"#,
            r#"{"a": null}"#,
            r#"{"a": [1]}"#,
            r#"{"a": {}}"#,
        ] {
            assert!(
                serde_json::from_str::<Tunables>(refused).is_err(),
                "{refused}"
            );
        }
        // A spec without tunables is written as before they existed.
        assert_eq!(
            serde_json::to_string(&SensorSpec::default()).unwrap_or_default(),
            r#"{"intervalMs":null,"enabled":null}"#
        );
    }
}
