//! Sensor tunables: the driver settings each kind of sensor declares, so that the config
//! file's `[sensor.tunables]` table and the hub's `spec.tunables` change a device through
//! one checked path instead of each instrument inventing its own.
//!
//! Each [`SensorKind`] declares its tunables ([`accepted`]): a key, what values it takes
//! and its default. [`check`] holds a set against the protocol's bounds and the kind's
//! declaration; [`in_force`] completes a set with the defaults of the keys it leaves out,
//! which is what an adapter applies and what the agent reports as in force.
//!
//! Invariants: a set is checked whole before anything of it reaches a device, so a refused
//! set changes nothing (the previous one stays in force); checking never panics, whatever
//! the keys and values (they come from the hub); an adapter's tunables survive its reopen
//! (a restart keeps them); a kind that declares no tunables refuses every key.

use std::collections::BTreeMap;

use aloft_protocol::DynamicModel;
use aloft_protocol::sync::{TunableValue, check_tunables};

use super::SensorKind;

/// One sensor's tunables by key.
pub type Tunables = BTreeMap<String, TunableValue>;

/// What values a tunable takes.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Accepts {
    /// One of these integers.
    OneOf(&'static [i64]),
    /// One of these names.
    Names(&'static [&'static str]),
}

/// One tunable a kind declares.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct TunableSpec {
    /// Its key.
    pub key: &'static str,
    /// What it takes.
    pub accepts: Accepts,
    /// What is in force when nothing sets it.
    pub default: DefaultValue,
    /// What it changes, for `check-config` and the docs.
    pub doc: &'static str,
}

/// A tunable's default, as a constant.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum DefaultValue {
    /// An integer.
    Integer(i64),
    /// A name.
    Name(&'static str),
}

impl DefaultValue {
    fn value(self) -> TunableValue {
        match self {
            DefaultValue::Integer(i) => TunableValue::Integer(i),
            DefaultValue::Name(n) => TunableValue::Text(n.to_string()),
        }
    }
}

/// The BME280's oversampling factors (datasheet 5.4.3 to 5.4.5).
pub const OVERSAMPLING: &[i64] = &[1, 2, 4, 8, 16];

/// The u-blox dynamic models by name (UBX-CFG-NAV5 `dynModel`).
pub const DYNAMIC_MODELS: &[&str] = &[
    "portable",
    "stationary",
    "pedestrian",
    "automotive",
    "sea",
    "airborne1g",
    "airborne2g",
    "airborne4g",
    "wrist",
    "bike",
];

const BME280: &[TunableSpec] = &[
    TunableSpec {
        key: "humidity_oversampling",
        accepts: Accepts::OneOf(OVERSAMPLING),
        default: DefaultValue::Integer(1),
        doc: "humidity samples averaged per measurement",
    },
    TunableSpec {
        key: "pressure_oversampling",
        accepts: Accepts::OneOf(OVERSAMPLING),
        default: DefaultValue::Integer(4),
        doc: "pressure samples averaged per measurement (16: about 1.3 Pa RMS, 38 ms)",
    },
    TunableSpec {
        key: "temperature_oversampling",
        accepts: Accepts::OneOf(OVERSAMPLING),
        default: DefaultValue::Integer(1),
        doc: "temperature samples averaged per measurement",
    },
];

const UBLOX: &[TunableSpec] = &[TunableSpec {
    key: "dynamic_model",
    accepts: Accepts::Names(DYNAMIC_MODELS),
    default: DefaultValue::Name("airborne2g"),
    doc: "the receiver's dynamic model, set at every open and restored after a brown-out",
}];

/// The ozone monitor's averaging periods, s (its menu's choices).
pub const POM_AVERAGING_S: &[i64] = &[2, 10, 60, 300];

/// The units the ozone monitor's menu writes the cell temperature in.
pub const POM_TEMPERATURE_UNITS: &[&str] = &["celsius", "kelvin"];

/// The units the ozone monitor's menu writes the cell pressure in.
pub const POM_PRESSURE_UNITS: &[&str] = &["mbar", "torr"];

// The monitor's menu is operated at its front panel: these tell the adapter how the menu is
// set (how to read the line, how long its silence is), they cannot change the monitor.
const POM: &[TunableSpec] = &[
    TunableSpec {
        key: "averaging_s",
        accepts: Accepts::OneOf(POM_AVERAGING_S),
        default: DefaultValue::Integer(2),
        doc: "the monitor's averaging period as set in its menu (one line per period); \
              sets how long a silence is normal",
    },
    TunableSpec {
        key: "pressure_unit",
        accepts: Accepts::Names(POM_PRESSURE_UNITS),
        default: DefaultValue::Name("mbar"),
        doc: "the cell pressure's unit as set in the monitor's menu",
    },
    TunableSpec {
        key: "temperature_unit",
        accepts: Accepts::Names(POM_TEMPERATURE_UNITS),
        default: DefaultValue::Name("celsius"),
        doc: "the cell temperature's unit as set in the monitor's menu",
    },
];

/// The SPS30's auto-cleaning intervals the agent offers, days (0: never).
pub const SPS30_AUTO_CLEANING_DAYS: &[i64] = &[0, 1, 2, 4, 7, 14, 28];

const SPS30: &[TunableSpec] = &[TunableSpec {
    key: "auto_cleaning_interval_days",
    accepts: Accepts::OneOf(SPS30_AUTO_CLEANING_DAYS),
    default: DefaultValue::Integer(7),
    doc: "days of measuring between the fan cleanings the SPS30 does by itself (0: never); \
          written to the device (command 0x8004) when it differs",
}];

/// Magnetic declinations in whole degrees east (west negative): -30..=30.
const DECLINATIONS: [i64; 61] = {
    let mut all = [0i64; 61];
    let mut i = 0;
    while i < all.len() {
        all[i] = i as i64 - 30;
        i += 1;
    }
    all
};

const ICM20948: &[TunableSpec] = &[
    TunableSpec {
        key: "accel_range_g",
        accepts: Accepts::OneOf(&[2, 4, 8, 16]),
        default: DefaultValue::Integer(8),
        doc: "accelerometer full scale, g (a sample at the rail is flagged out of range)",
    },
    TunableSpec {
        key: "declination_deg",
        accepts: Accepts::OneOf(&DECLINATIONS),
        default: DefaultValue::Integer(13),
        doc: "magnetic declination where the glider flies, whole degrees east (west \
              negative), added to the magnetic heading; 13 is Minden-Tahoe's",
    },
    TunableSpec {
        key: "gyro_range_dps",
        accepts: Accepts::OneOf(&[250, 500, 1000, 2000]),
        default: DefaultValue::Integer(500),
        doc: "gyroscope full scale, degrees per second",
    },
    TunableSpec {
        key: "output_rate_hz",
        accepts: Accepts::OneOf(&[1, 2, 4, 10]),
        default: DefaultValue::Integer(4),
        doc: "attitude outputs (roll, pitch, heading, accuracies) per second",
    },
    TunableSpec {
        key: "sample_rate_hz",
        accepts: Accepts::OneOf(&[25, 50, 100]),
        default: DefaultValue::Integer(50),
        doc: "IMU samples per second into the FIFO the agent drains each interval (100 Hz \
              needs an interval of at most 200 ms: the FIFO holds 25 frames)",
    },
];

const WIND: &[TunableSpec] = &[TunableSpec {
    key: "method",
    accepts: Accepts::Names(aloft_sensors::wind::MethodChoice::NAMES),
    default: DefaultValue::Name("auto"),
    doc: "auto: the wind triangle with a trustworthy heading, else circling drift; or only one",
}];

/// The detector front end's discriminator thresholds, mV: 5 mV steps from 5 to 1000.
pub const DETECTOR_THRESHOLDS_MV: [i64; 200] = {
    let mut all = [0i64; 200];
    let mut i = 0;
    while i < all.len() {
        all[i] = (i as i64 + 1) * 5;
        i += 1;
    }
    all
};

/// The detector front end's coincidence windows, ns.
pub const DETECTOR_COINCIDENCE_WINDOWS_NS: &[i64] =
    &[50, 100, 200, 500, 1_000, 2_000, 5_000, 10_000];

/// The detector front end's housekeeping intervals, ms.
pub const DETECTOR_HOUSEKEEPING_INTERVALS_MS: &[i64] =
    &[250, 500, 1_000, 2_000, 5_000, 10_000, 60_000];

// Sent to the front end's firmware at every open and at every change; what it answers
// (its settings) is what the agent reports as observed.
const DETECTOR: &[TunableSpec] = &[
    TunableSpec {
        key: "coincidence_window_ns",
        accepts: Accepts::OneOf(DETECTOR_COINCIDENCE_WINDOWS_NS),
        default: DefaultValue::Integer(200),
        doc: "two channels' hits closer than this are one coincident event, ns",
    },
    TunableSpec {
        key: "housekeeping_interval_ms",
        accepts: Accepts::OneOf(DETECTOR_HOUSEKEEPING_INTERVALS_MS),
        default: DefaultValue::Integer(1_000),
        doc: "how often the front end sends its rates, dead time and temperature, ms",
    },
    TunableSpec {
        key: "threshold_mv",
        accepts: Accepts::OneOf(&DETECTOR_THRESHOLDS_MV),
        default: DefaultValue::Integer(40),
        doc: "the discriminator threshold on both channels' pulse heights, mV (5 mV steps); \
              a higher one lowers the event rate",
    },
];

/// The tunables `kind` declares, sorted by key.
pub fn accepted(kind: SensorKind) -> &'static [TunableSpec] {
    match kind {
        SensorKind::Bme280 => BME280,
        SensorKind::Ublox => UBLOX,
        SensorKind::Pom => POM,
        SensorKind::Sps30 => SPS30,
        SensorKind::Icm20948 => ICM20948,
        SensorKind::Wind => WIND,
        SensorKind::Detector => DETECTOR,
        SensorKind::Nmea
        | SensorKind::Cosmicwatch
        | SensorKind::Ms5611
        | SensorKind::Scd41
        | SensorKind::Ms4525do
        | SensorKind::Sbs
        | SensorKind::Mqtt => &[],
    }
}

/// Why one tunable is refused.
pub fn check_one(kind: SensorKind, key: &str, value: &TunableValue) -> Result<(), String> {
    let declared = accepted(kind);
    let Some(spec) = declared.iter().find(|s| s.key == key) else {
        let shown: String = key
            .chars()
            .take(aloft_protocol::sync::MAX_TUNABLE_KEY_BYTES)
            .collect();
        return Err(if declared.is_empty() {
            format!("tunable {shown:?}: {} has no tunables", kind.with_article())
        } else {
            format!(
                "tunable {shown:?}: {} has no such tunable (it has {})",
                kind.with_article(),
                declared
                    .iter()
                    .map(|s| s.key)
                    .collect::<Vec<_>>()
                    .join(", ")
            )
        });
    };
    match (spec.accepts, value) {
        (Accepts::OneOf(allowed), TunableValue::Integer(i)) if allowed.contains(i) => Ok(()),
        (Accepts::Names(allowed), TunableValue::Text(t)) if allowed.contains(&t.as_str()) => Ok(()),
        (accepts, value) => Err(format!(
            "tunable {key}: {} {value} is not {}",
            value.type_name(),
            describe(accepts)
        )),
    }
}

/// What a tunable takes, in words.
pub fn describe(accepts: Accepts) -> String {
    match accepts {
        // A long even ladder (the detector's thresholds) reads as its range and step.
        Accepts::OneOf(values) if values.len() > 12 && evenly_spaced(values) => format!(
            "one of {} to {} in steps of {}",
            values[0],
            values[values.len() - 1],
            values[1] - values[0]
        ),
        Accepts::OneOf(values) => format!(
            "one of {}",
            values
                .iter()
                .map(i64::to_string)
                .collect::<Vec<_>>()
                .join(", ")
        ),
        Accepts::Names(names) => format!("one of {}", names.join(", ")),
    }
}

/// Whether `values` rise by one step throughout.
fn evenly_spaced(values: &[i64]) -> bool {
    let step = match values {
        [a, b, ..] => b.saturating_sub(*a),
        _ => return false,
    };
    step > 0 && values.windows(2).all(|w| w[1].saturating_sub(w[0]) == step)
}

/// Checks a whole set for `kind`: the protocol's bounds, then every key and value. The
/// reason names every refused key.
pub fn check(kind: SensorKind, tunables: &Tunables) -> Result<(), String> {
    check_tunables(tunables.iter().map(|(k, v)| (k.as_str(), v))).map_err(|e| e.to_string())?;
    let refused: Vec<String> = tunables
        .iter()
        .filter_map(|(k, v)| check_one(kind, k, v).err())
        .collect();
    if refused.is_empty() {
        Ok(())
    } else {
        Err(refused.join("; "))
    }
}

/// `tunables` with every key `kind` declares and `tunables` leaves out at its default.
pub fn in_force(kind: SensorKind, tunables: &Tunables) -> Tunables {
    let mut all: Tunables = accepted(kind)
        .iter()
        .map(|s| (s.key.to_string(), s.default.value()))
        .collect();
    for (k, v) in tunables {
        if let Some(slot) = all.get_mut(k) {
            *slot = v.clone();
        }
    }
    all
}

/// The integer under `key`, if it is one.
pub fn integer(tunables: &Tunables, key: &str) -> Option<i64> {
    match tunables.get(key) {
        Some(TunableValue::Integer(i)) => Some(*i),
        _ => None,
    }
}

/// The wind's method choice a checked set names (`auto` otherwise).
pub fn wind_method(tunables: &Tunables) -> aloft_sensors::wind::MethodChoice {
    match tunables.get("method") {
        Some(TunableValue::Text(t)) => aloft_sensors::wind::MethodChoice::from_name(t),
        _ => None,
    }
    .unwrap_or_default()
}

/// The u-blox dynamic model a checked set names (its default otherwise).
pub fn dynamic_model(tunables: &Tunables) -> DynamicModel {
    let name = match tunables.get("dynamic_model") {
        Some(TunableValue::Text(t)) => t.as_str(),
        _ => "airborne2g",
    };
    DYNAMIC_MODELS
        .iter()
        .position(|n| *n == name)
        .and_then(|i| {
            // The names are in the order of the models' codes, Portable (0) aside.
            let code = if i == 0 { 0 } else { i + 1 };
            DynamicModel::from_code(u8::try_from(code).ok()?)
        })
        .unwrap_or(DynamicModel::Airborne2g)
}

/// The name of a dynamic model, as the tunable writes it.
pub fn dynamic_model_name(model: DynamicModel) -> &'static str {
    let code = usize::from(model.code());
    let i = if code == 0 { 0 } else { code - 1 };
    DYNAMIC_MODELS.get(i).copied().unwrap_or("airborne2g")
}

/// Converts a config file's value: `Err` names what it is when it is not a scalar.
pub fn from_toml(value: &toml::Value) -> Result<TunableValue, &'static str> {
    Ok(match value {
        toml::Value::Boolean(b) => TunableValue::Bool(*b),
        toml::Value::Integer(i) => TunableValue::Integer(*i),
        toml::Value::Float(_) => return Err("a number with a fraction"),
        toml::Value::String(s) => TunableValue::Text(s.clone()),
        toml::Value::Datetime(_) => return Err("a date"),
        toml::Value::Array(_) => return Err("an array"),
        toml::Value::Table(_) => return Err("a table"),
    })
}

/// A value as the config file would hold it (the persisted desired state is applied to
/// the config at boot).
pub fn to_toml(value: &TunableValue) -> toml::Value {
    match value {
        TunableValue::Bool(b) => toml::Value::Boolean(*b),
        TunableValue::Integer(i) => toml::Value::Integer(*i),
        TunableValue::Text(t) => toml::Value::String(t.clone()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    const KINDS: [SensorKind; 10] = [
        SensorKind::Ublox,
        SensorKind::Nmea,
        SensorKind::Cosmicwatch,
        SensorKind::Bme280,
        SensorKind::Ms5611,
        SensorKind::Scd41,
        SensorKind::Ms4525do,
        SensorKind::Pom,
        SensorKind::Sps30,
        SensorKind::Detector,
    ];

    #[test]
    fn every_default_is_accepted_by_its_own_kind() {
        for kind in KINDS {
            let all = in_force(kind, &Tunables::new());
            assert_eq!(all.len(), accepted(kind).len());
            assert_eq!(check(kind, &all), Ok(()), "{kind:?}");
        }
    }

    #[test]
    fn dynamic_model_names_map_to_their_models_and_back() {
        for name in DYNAMIC_MODELS {
            let set =
                Tunables::from([("dynamic_model".into(), TunableValue::Text(name.to_string()))]);
            assert_eq!(dynamic_model_name(dynamic_model(&set)), *name);
        }
        assert_eq!(dynamic_model(&Tunables::new()), DynamicModel::Airborne2g);
        let four = Tunables::from([(
            "dynamic_model".into(),
            TunableValue::Text("airborne4g".into()),
        )]);
        assert_eq!(dynamic_model(&four), DynamicModel::Airborne4g);
    }

    #[test]
    fn a_refusal_names_the_key_and_what_it_takes() {
        let set = Tunables::from([("pressure_oversampling".into(), TunableValue::Integer(3))]);
        let why = check(SensorKind::Bme280, &set).unwrap_err();
        assert!(
            why.contains("pressure_oversampling") && why.contains("one of 1, 2, 4, 8, 16"),
            "{why}"
        );
        let set = Tunables::from([("dead_time".into(), TunableValue::Integer(3))]);
        let why = check(SensorKind::Cosmicwatch, &set).unwrap_err();
        assert!(why.contains("has no tunables"), "{why}");
        let set = Tunables::from([("threshold_mv".into(), TunableValue::Integer(42))]);
        let why = check(SensorKind::Detector, &set).unwrap_err();
        assert!(
            why.contains("threshold_mv") && why.contains("one of 5 to 1000 in steps of 5"),
            "{why}"
        );
    }

    fn arb_value() -> impl Strategy<Value = TunableValue> {
        prop_oneof![
            any::<bool>().prop_map(TunableValue::Bool),
            any::<i64>().prop_map(TunableValue::Integer),
            prop_oneof![Just(1i64), Just(4), Just(16), Just(0), Just(-1)]
                .prop_map(TunableValue::Integer),
            ".{0,40}".prop_map(TunableValue::Text),
            proptest::sample::select(DYNAMIC_MODELS).prop_map(|n| TunableValue::Text(n.into())),
        ]
    }

    fn arb_key() -> impl Strategy<Value = String> {
        prop_oneof![
            ".{0,40}",
            "[a-z_]{1,30}",
            proptest::sample::select(vec![
                "pressure_oversampling",
                "temperature_oversampling",
                "humidity_oversampling",
                "dynamic_model",
                "averaging_s",
                "temperature_unit",
                "pressure_unit",
                "auto_cleaning_interval_days",
                "threshold_mv",
                "coincidence_window_ns",
            ])
            .prop_map(String::from),
        ]
    }

    proptest! {
        #[test]
        fn any_set_is_checked_without_panicking_and_unknown_keys_are_refused_with_a_reason(
            kind in proptest::sample::select(KINDS.to_vec()),
            set in proptest::collection::btree_map(arb_key(), arb_value(), 0..12),
        ) {
            let verdict = check(kind, &set);
            let declared = accepted(kind);
            for key in set.keys() {
                if !declared.iter().any(|s| s.key == key) {
                    let why = verdict.clone().expect_err("an unknown key is refused");
                    prop_assert!(!why.is_empty());
                }
            }
            if verdict.is_ok() {
                // What was accepted is whole: every key declared, every value in range.
                for (k, v) in &set {
                    prop_assert!(check_one(kind, k, v).is_ok());
                }
                prop_assert!(check(kind, &in_force(kind, &set)).is_ok());
            }
            let _ = dynamic_model(&set);
        }
    }
}
