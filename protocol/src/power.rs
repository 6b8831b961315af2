//! The power step a node samples under: what the agent's power policy decided from its
//! battery (state of charge, voltage, pack temperature), recorded in the stream when it
//! changes and reported on the live lane while it holds.
//!
//! A step has a name from the agent's config, a level (0 is full power, higher saves more)
//! and a reason in words (which input crossed which threshold). Its effects name each
//! sensor it slows or stops; a sensor the operator exempted stays as the desired state
//! says, and the effect says so.
//!
//! Invariants: a [`PowerStepRecord`] is an extension record of kind
//! [`POWER_STEP_RECORD_KIND`] (record kinds added after the first six travel only so:
//! docs/protocol.md, "Evolution"); a record never changes, so a step that needs more fields
//! is a new kind.

use alloc::string::String;
use alloc::vec::Vec;

use serde::{Deserialize, Serialize};

use crate::{SensorId, Timestamp};

/// The extension record kind of a [`PowerStepRecord`].
pub const POWER_STEP_RECORD_KIND: u16 = 1;

/// What a power step does to one sensor.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PowerEffect {
    /// The sensor.
    pub sensor: SensorId,
    /// The sampling interval the step holds it to at least, ms; `None` when it does not
    /// slow it (it stops it, or the sensor sends at its own rate).
    pub interval_ms: Option<u32>,
    /// The step switches the sensor off.
    pub disabled: bool,
    /// The operator exempted the sensor from power steps: the effect is not applied.
    pub overridden: bool,
}

/// The node entered a power step (or left the last one: level 0): written to the stream at
/// every change, so a dataset shows why a sensor went quiet or slowed.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PowerStepRecord {
    /// When the step took effect.
    pub time: Timestamp,
    /// The step's name in the agent's config; `full` at level 0.
    pub step: String,
    /// 0 at full power; higher levels save more.
    pub level: u8,
    /// Why, in words: the input and the threshold it crossed (`state of charge 0.34 below
    /// 0.35`), or what let the previous step go.
    pub reason: String,
    /// What the step does to each sensor it touches.
    pub effects: Vec<PowerEffect>,
    /// The upload budget the step holds the link to, bytes/s, when it lowers it.
    pub upload_bytes_per_s: Option<u64>,
}

/// The power step in force, on the live lane ([`crate::sync::NodeHealth::power`]).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PowerReport {
    /// The step's name; `full` at level 0.
    pub step: String,
    /// 0 at full power; higher levels save more.
    pub level: u8,
    /// Why it is in force.
    pub reason: String,
    /// When it took effect.
    pub since: Timestamp,
    /// The upload budget it holds the link to, bytes/s, when it lowers it.
    pub upload_bytes_per_s: Option<u64>,
    /// Sensors the operator exempted from power steps.
    pub overridden: Vec<String>,
}

#[cfg(feature = "sync")]
mod encoding {
    use super::{POWER_STEP_RECORD_KIND, PowerStepRecord};
    use crate::{ExtensionRecord, Record};

    impl PowerStepRecord {
        /// The record as it travels and is stored: an extension record of its kind.
        pub fn to_record(&self) -> Result<Record, postcard::Error> {
            Ok(Record::Extension(ExtensionRecord {
                kind: POWER_STEP_RECORD_KIND,
                body: postcard::to_allocvec(self)?,
            }))
        }

        /// The power step an extension record holds: `None` for a record of another kind,
        /// an error for a body that does not decode (a damaged or hostile record).
        pub fn from_extension(
            record: &ExtensionRecord,
        ) -> Option<Result<PowerStepRecord, postcard::Error>> {
            (record.kind == POWER_STEP_RECORD_KIND).then(|| postcard::from_bytes(&record.body))
        }
    }
}

#[cfg(all(test, feature = "sync"))]
mod tests {
    use super::*;
    use crate::Record;

    #[test]
    fn a_power_step_travels_as_an_extension_record_and_reads_back() {
        let step = PowerStepRecord {
            time: Timestamp::monotonic(5),
            step: "economy".into(),
            level: 1,
            reason: "battery voltage 13.9 V below 14.0 V".into(),
            effects: alloc::vec![PowerEffect {
                sensor: SensorId(3),
                interval_ms: Some(1_000),
                disabled: false,
                overridden: false,
            }],
            upload_bytes_per_s: Some(50_000),
        };
        let Ok(Record::Extension(ext)) = step.to_record() else {
            panic!("an extension record");
        };
        assert_eq!(ext.kind, POWER_STEP_RECORD_KIND);
        assert_eq!(PowerStepRecord::from_extension(&ext), Some(Ok(step)));
        let other = crate::ExtensionRecord {
            kind: 2,
            body: alloc::vec![1, 2, 3],
        };
        assert_eq!(PowerStepRecord::from_extension(&other), None);
        let damaged = crate::ExtensionRecord {
            kind: POWER_STEP_RECORD_KIND,
            body: alloc::vec![0xFF; 3],
        };
        assert!(matches!(
            PowerStepRecord::from_extension(&damaged),
            Some(Err(_))
        ));
    }
}
