//! What a sensor is: recorded as a descriptor record at every sensor (re)start, so that
//! a dataset can say which device, firmware and calibration produced each reading.
//!
//! Invariant: a descriptor describes the device as it was confirmed at that (re)start
//! (for a u-blox receiver, the dynamic model it acknowledged), not as configured.

use alloc::string::String;
use alloc::vec::Vec;

use serde::{Deserialize, Serialize};

/// u-blox navigation dynamic model (CFG-NAV5 `dynModel`, CFG-NAVSPG-DYNMODEL).
///
/// The receiver drops fixes above 12 000 m or 310 m/s in [`DynamicModel::Portable`]; a
/// glider flying mountain waves needs [`DynamicModel::Airborne2g`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[non_exhaustive]
pub enum DynamicModel {
    /// 0: the receiver's default.
    Portable,
    /// 2
    Stationary,
    /// 3
    Pedestrian,
    /// 4
    Automotive,
    /// 5
    Sea,
    /// 6
    Airborne1g,
    /// 7: what the glider needs (limits 50 km altitude, 250 m/s horizontal, 100 m/s vertical).
    Airborne2g,
    /// 8
    Airborne4g,
    /// 9
    Wrist,
    /// 10
    Bike,
}

impl DynamicModel {
    /// The value u-blox uses on the wire.
    pub const fn code(self) -> u8 {
        match self {
            DynamicModel::Portable => 0,
            DynamicModel::Stationary => 2,
            DynamicModel::Pedestrian => 3,
            DynamicModel::Automotive => 4,
            DynamicModel::Sea => 5,
            DynamicModel::Airborne1g => 6,
            DynamicModel::Airborne2g => 7,
            DynamicModel::Airborne4g => 8,
            DynamicModel::Wrist => 9,
            DynamicModel::Bike => 10,
        }
    }

    /// Decodes the u-blox wire value.
    pub const fn from_code(code: u8) -> Option<Self> {
        Some(match code {
            0 => DynamicModel::Portable,
            2 => DynamicModel::Stationary,
            3 => DynamicModel::Pedestrian,
            4 => DynamicModel::Automotive,
            5 => DynamicModel::Sea,
            6 => DynamicModel::Airborne1g,
            7 => DynamicModel::Airborne2g,
            8 => DynamicModel::Airborne4g,
            9 => DynamicModel::Wrist,
            10 => DynamicModel::Bike,
            _ => return None,
        })
    }
}

/// A value in a descriptor's parameter list.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub enum ParameterValue {
    /// Calibration words, trim values, counts.
    Integer(i64),
    /// Derived coefficients.
    Real(f64),
    /// Anything else (a part number, a mode name).
    Text(String),
}

/// One named parameter of a device: a calibration word, a trim value, a setting.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct DeviceParameter {
    /// Name as the datasheet spells it (`dig_T1`, `C1`, `dyn_model`).
    pub name: String,
    /// Its value.
    pub value: ParameterValue,
}

/// What a sensor is, as confirmed at its latest (re)start.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SensorDescriptor {
    /// Device family and part (`"u-blox NEO-M8N"`, `"BME280"`, `"CosmicWatch v2"`).
    pub device: String,
    /// Firmware or software version the device reported (u-blox MON-VER), if it did.
    pub firmware: Option<String>,
    /// Serial number the device reported (SCD41), or a detector's device id.
    pub serial_number: Option<String>,
    /// For a GNSS receiver: the dynamic model it acknowledged.
    pub dynamic_model: Option<DynamicModel>,
    /// Calibration and configuration words, in the datasheet's names.
    pub parameters: Vec<DeviceParameter>,
}

impl SensorDescriptor {
    /// A descriptor with only the device name.
    pub fn new(device: impl Into<String>) -> Self {
        SensorDescriptor {
            device: device.into(),
            firmware: None,
            serial_number: None,
            dynamic_model: None,
            parameters: Vec::new(),
        }
    }

    /// Appends an integer parameter (builder style).
    pub fn with_integer(mut self, name: impl Into<String>, value: i64) -> Self {
        self.parameters.push(DeviceParameter {
            name: name.into(),
            value: ParameterValue::Integer(value),
        });
        self
    }

    /// Appends a real-valued parameter (builder style).
    pub fn with_real(mut self, name: impl Into<String>, value: f64) -> Self {
        self.parameters.push(DeviceParameter {
            name: name.into(),
            value: ParameterValue::Real(value),
        });
        self
    }

    /// Looks a parameter up by name.
    pub fn parameter(&self, name: &str) -> Option<&ParameterValue> {
        self.parameters
            .iter()
            .find(|p| p.name == name)
            .map(|p| &p.value)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dynamic_model_codes_round_trip() {
        for code in 0..=255u8 {
            if let Some(m) = DynamicModel::from_code(code) {
                assert_eq!(m.code(), code);
            }
        }
        assert_eq!(DynamicModel::Airborne2g.code(), 7);
        assert_eq!(DynamicModel::from_code(1), None);
    }

    #[test]
    fn descriptor_round_trips() {
        let d = SensorDescriptor::new("MS5611")
            .with_integer("C1", 40127)
            .with_real("offset", 1.5);
        let bytes = postcard::to_allocvec(&d).unwrap();
        let back: SensorDescriptor = postcard::from_bytes(&bytes).unwrap();
        assert_eq!(back, d);
        assert_eq!(back.parameter("C1"), Some(&ParameterValue::Integer(40127)));
    }
}
