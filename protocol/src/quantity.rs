//! The quantity vocabulary: every measured or derived quantity Aloft knows, with its
//! stable numeric code, its name, its SI unit (UDUNITS spelling, as CF uses) and its CF
//! standard name where one exists.
//!
//! Invariants: values travel in exactly the unit [`Quantity::unit`] names (pressures in
//! Pa, temperatures in K, speeds in m s-1, angles in degrees, mole fractions in mol mol-1,
//! mass concentrations in kg m-3, number concentrations in m-3, flows in m3 s-1);
//! names are stable, lowercase snake case and unique. A quantity travels as its code
//! ([`Quantity::code`]); codes are never reused or renumbered, and a new quantity takes the
//! next free code. Codes 0 to 36 are the positions the quantities had when this type was an
//! enum encoded by variant index, and a code is written exactly as postcard wrote that
//! index, so streams written before and after read the same.
//!
//! A code this build does not know is a quantity all the same: a newer agent's reading of it
//! decodes, is stored and is shown by its code ([`Quantity::from_code`], the label
//! `quantity_<code>`), never refused (docs/protocol.md, "Evolution").

use core::fmt;

use serde::de::{self, Deserializer, Visitor};
use serde::{Deserialize, Serialize, Serializer};

macro_rules! quantities {
    ($( $(#[$doc:meta])* $variant:ident = $code:literal => $name:literal, $unit:literal, $cf:expr; )*) => {
        /// A measured or derived quantity, by its stable code. The named constants are the
        /// quantities this build knows; any other code is a quantity a newer peer knows.
        /// See the module documentation for units.
        #[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
        pub struct Quantity(u16);

        // The constants keep the names the variants had when this was an enum, so that
        // `Quantity::AirPressure` reads (and matches) the same everywhere.
        #[allow(non_upper_case_globals)]
        impl Quantity {
            $( $(#[$doc])* pub const $variant: Quantity = Quantity($code); )*

            /// Every quantity this build knows, in code order.
            pub const ALL: &'static [Quantity] = &[ $( Quantity::$variant, )* ];

            /// Stable snake-case name, used in exports, the API and the command line;
            /// `None` for a code this build does not know (its [`Display`](fmt::Display)
            /// label is `quantity_<code>`).
            pub const fn name(self) -> Option<&'static str> {
                match self.0 { $( $code => Some($name), )* _ => None }
            }

            /// SI unit in UDUNITS spelling (`"1"` for dimensionless counts and ratios);
            /// `None` for a code this build does not know.
            pub const fn unit(self) -> Option<&'static str> {
                match self.0 { $( $code => Some($unit), )* _ => None }
            }

            /// CF standard name, where the CF table has one for this quantity.
            pub const fn cf_standard_name(self) -> Option<&'static str> {
                match self.0 { $( $code => $cf, )* _ => None }
            }

            /// The Rust name of a known quantity's constant (`AirPressure`): its `Debug`
            /// form and its spelling in human-readable serde formats (the hub's dump), as
            /// when this was an enum.
            const fn ident(self) -> Option<&'static str> {
                match self.0 { $( $code => Some(stringify!($variant)), )* _ => None }
            }
        }
    };
}

quantities! {
    /// Geodetic latitude (WGS 84), degrees north.
    Latitude = 0 => "latitude", "degree_north", Some("latitude");
    /// Geodetic longitude (WGS 84), degrees east.
    Longitude = 1 => "longitude", "degree_east", Some("longitude");
    /// GNSS altitude above mean sea level (the geoid).
    AltitudeMsl = 2 => "altitude_msl", "m", Some("altitude");
    /// Height of the geoid above the WGS 84 ellipsoid at the fix position.
    GeoidSeparation = 3 => "geoid_separation", "m", Some("geoid_height_above_reference_ellipsoid");
    /// Speed over ground.
    GroundSpeed = 4 => "ground_speed", "m s-1", Some("platform_speed_wrt_ground");
    /// Course over ground, degrees clockwise from true north.
    Track = 5 => "track", "degree", Some("platform_course");
    /// Vertical speed, positive up.
    VerticalSpeed = 6 => "vertical_speed", "m s-1", None;
    /// Fix mode: 1 = no fix, 2 = 2D, 3 = 3D (NMEA GSA / u-blox fixType convention).
    FixMode = 7 => "fix_mode", "1", None;
    /// Fix quality as in NMEA GGA: 0 invalid, 1 GPS, 2 DGPS, 4 RTK fixed, 5 RTK float, 6 dead reckoning.
    FixQuality = 8 => "fix_quality", "1", None;
    /// Satellites used in the solution.
    SatellitesUsed = 9 => "satellites_used", "1", None;
    /// Satellites in view.
    SatellitesInView = 10 => "satellites_in_view", "1", None;
    /// Mean carrier-to-noise density of the satellites in view that report one.
    MeanSnr = 11 => "mean_snr", "dBHz", None;
    /// Horizontal dilution of precision.
    Hdop = 12 => "hdop", "1", None;
    /// Vertical dilution of precision.
    Vdop = 13 => "vdop", "1", None;
    /// Position dilution of precision.
    Pdop = 14 => "pdop", "1", None;
    /// Receiver's estimate of horizontal position accuracy (1 sigma).
    HorizontalAccuracy = 15 => "horizontal_accuracy", "m", None;
    /// Receiver's estimate of vertical position accuracy (1 sigma).
    VerticalAccuracy = 16 => "vertical_accuracy", "m", None;
    /// Static air pressure.
    AirPressure = 17 => "air_pressure", "Pa", Some("air_pressure");
    /// Air temperature.
    AirTemperature = 18 => "air_temperature", "K", Some("air_temperature");
    /// Relative humidity as a fraction (0..1).
    RelativeHumidity = 19 => "relative_humidity", "1", Some("relative_humidity");
    /// CO2 mole fraction in air.
    Co2MoleFraction = 20 => "co2_mole_fraction", "mol mol-1", Some("mole_fraction_of_carbon_dioxide_in_air");
    /// Differential (pitot minus static) pressure.
    DifferentialPressure = 21 => "differential_pressure", "Pa", None;
    /// Indicated airspeed (sea-level standard density).
    IndicatedAirspeed = 22 => "indicated_airspeed", "m s-1", None;
    /// True airspeed.
    TrueAirspeed = 23 => "true_airspeed", "m s-1", Some("platform_speed_wrt_air");
    /// Temperature of a sensor's own die or board (not the air).
    SensorTemperature = 24 => "sensor_temperature", "K", None;
    /// Running event number reported by a particle detector.
    MuonEventCount = 25 => "muon_event_count", "1", None;
    /// Raw ADC value of a detector pulse (0..1023 on CosmicWatch).
    MuonPulseAdc = 26 => "muon_pulse_adc", "1", None;
    /// Calculated SiPM peak voltage of a detector pulse.
    SipmPeakVoltage = 27 => "sipm_peak_voltage", "V", None;
    /// Cumulative dead time of a detector since its start.
    DetectorDeadTime = 28 => "detector_dead_time", "s", None;
    /// Event rate corrected for dead time.
    MuonCountRate = 29 => "muon_count_rate", "s-1", None;
    /// Whether an event was seen in coincidence by a paired detector (1) or not (0).
    MuonCoincidence = 30 => "muon_coincidence", "1", None;
    /// Acceleration along the sensor's x axis.
    AccelerationX = 31 => "acceleration_x", "m s-2", None;
    /// Acceleration along the sensor's y axis.
    AccelerationY = 32 => "acceleration_y", "m s-2", None;
    /// Acceleration along the sensor's z axis.
    AccelerationZ = 33 => "acceleration_z", "m s-2", None;
    /// Angular rate about the sensor's x axis.
    AngularRateX = 34 => "angular_rate_x", "rad s-1", None;
    /// Angular rate about the sensor's y axis.
    AngularRateY = 35 => "angular_rate_y", "rad s-1", None;
    /// Angular rate about the sensor's z axis.
    AngularRateZ = 36 => "angular_rate_z", "rad s-1", None;
    /// Roll of the airframe, degrees, positive with the right wing down.
    PlatformRoll = 37 => "platform_roll", "degree", Some("platform_roll");
    /// Pitch of the airframe, degrees, positive with the nose up.
    PlatformPitch = 38 => "platform_pitch", "degree", Some("platform_pitch");
    /// Heading of the airframe's nose, degrees clockwise from true north.
    PlatformYaw = 39 => "platform_yaw", "degree", Some("platform_yaw");
    /// Estimated error (1 sigma) of roll and pitch.
    AttitudeAccuracy = 40 => "attitude_accuracy", "degree", None;
    /// Estimated error (1 sigma) of the heading.
    HeadingAccuracy = 41 => "heading_accuracy", "degree", None;
    /// Horizontal wind speed.
    WindSpeed = 42 => "wind_speed", "m s-1", Some("wind_speed");
    /// Direction the wind blows from, degrees clockwise from true north.
    WindFromDirection = 43 => "wind_from_direction", "degree", Some("wind_from_direction");
    /// How a derived wind was computed: 1 = wind triangle, 2 = circling drift.
    WindMethod = 44 => "wind_method", "1", None;
    /// Ozone mole fraction in air.
    OzoneMoleFraction = 45 => "ozone_mole_fraction", "mol mol-1", Some("mole_fraction_of_ozone_in_air");
    /// Temperature of an analyser's absorption cell.
    CellTemperature = 46 => "cell_temperature", "K", None;
    /// Pressure in an analyser's absorption cell.
    CellPressure = 47 => "cell_pressure", "Pa", None;
    /// Volume flow of sample air through an analyser.
    SampleFlowRate = 48 => "sample_flow_rate", "m3 s-1", None;
    /// Mass concentration of particles up to 1 um.
    Pm1MassConcentration = 49 => "pm1_mass_concentration", "kg m-3", Some("mass_concentration_of_pm1_ambient_aerosol_particles_in_air");
    /// Mass concentration of particles up to 2.5 um.
    Pm2p5MassConcentration = 50 => "pm2p5_mass_concentration", "kg m-3", Some("mass_concentration_of_pm2p5_ambient_aerosol_particles_in_air");
    /// Mass concentration of particles up to 4 um.
    Pm4MassConcentration = 51 => "pm4_mass_concentration", "kg m-3", None;
    /// Mass concentration of particles up to 10 um.
    Pm10MassConcentration = 52 => "pm10_mass_concentration", "kg m-3", Some("mass_concentration_of_pm10_ambient_aerosol_particles_in_air");
    /// Number concentration of particles from 0.3 to 0.5 um.
    Nc0p5NumberConcentration = 53 => "nc0p5_number_concentration", "m-3", None;
    /// Number concentration of particles from 0.3 to 1 um.
    Nc1NumberConcentration = 54 => "nc1_number_concentration", "m-3", None;
    /// Number concentration of particles from 0.3 to 2.5 um.
    Nc2p5NumberConcentration = 55 => "nc2p5_number_concentration", "m-3", None;
    /// Number concentration of particles from 0.3 to 4 um.
    Nc4NumberConcentration = 56 => "nc4_number_concentration", "m-3", None;
    /// Number concentration of particles from 0.3 to 10 um.
    Nc10NumberConcentration = 57 => "nc10_number_concentration", "m-3", None;
    /// Typical (number-weighted) particle diameter.
    TypicalParticleSize = 58 => "typical_particle_size", "m", None;
    /// Terminal voltage of a battery pack.
    BatteryVoltage = 59 => "battery_voltage", "V", None;
    /// Current out of a battery pack, positive while discharging.
    BatteryCurrent = 60 => "battery_current", "A", None;
    /// Charge left in a battery pack as a fraction of what it can deliver at its present
    /// temperature (0..1).
    BatteryStateOfCharge = 61 => "battery_state_of_charge", "1", None;
    /// Temperature of a battery pack.
    BatteryTemperature = 62 => "battery_temperature", "K", None;
    /// Power drawn from a battery pack, positive while discharging.
    BatteryPower = 63 => "battery_power", "W", None;
    /// Pulse height of a detector's SiPM channel A (the discriminator's input).
    SipmPulseHeightA = 64 => "sipm_pulse_height_a", "V", None;
    /// Pulse height of a detector's SiPM channel B.
    SipmPulseHeightB = 65 => "sipm_pulse_height_b", "V", None;
    /// Hits per second on a detector's channel A over its housekeeping interval.
    SipmHitRateA = 66 => "sipm_hit_rate_a", "s-1", None;
    /// Hits per second on a detector's channel B over its housekeeping interval.
    SipmHitRateB = 67 => "sipm_hit_rate_b", "s-1", None;
    /// Fraction of a housekeeping interval a detector was dead (busy with a pulse).
    DetectorDeadFraction = 68 => "detector_dead_fraction", "1", None;
    /// Events a detector's front end dropped since its start (its line was too slow).
    DetectorDroppedEvents = 69 => "detector_dropped_events", "1", None;
    /// Events the agent never received from a detector's front end: a gap in its event
    /// numbers (frames lost to corruption, or dropped by the front end).
    DetectorMissedEvents = 70 => "detector_missed_events", "1", None;
    /// Frames from a detector's front end the agent rejected (COBS, CRC or decoding) since
    /// it opened the port.
    DetectorRejectedFrames = 71 => "detector_rejected_frames", "1", None;
    /// Frames from the agent a detector's front end rejected since its start.
    DetectorRejectedRequests = 72 => "detector_rejected_requests", "1", None;
    /// Uncertainty of the mapping from a detector's counter to the agent's clock (half the
    /// shortest round trip of the time sync), at the moment of the sync.
    DetectorTimeUncertainty = 73 => "detector_time_uncertainty", "s", None;
    /// A detector's counter rate against the agent's clock, minus one (its crystal's error).
    DetectorClockRateError = 74 => "detector_clock_rate_error", "1", None;
}

/// Prefix of the label of a quantity code this build does not know.
const CODE_LABEL: &str = "quantity_";

impl Quantity {
    /// The quantity of `code`, known to this build or not.
    pub const fn from_code(code: u16) -> Quantity {
        Quantity(code)
    }

    /// The stable code the quantity travels as.
    pub const fn code(self) -> u16 {
        self.0
    }

    /// Whether this build knows the quantity (has its name and unit).
    pub const fn is_known(self) -> bool {
        self.name().is_some()
    }

    /// Looks a quantity up by its label: a known quantity's [`name`](Quantity::name), or
    /// `quantity_<code>` (decimal, no leading zeros) for a code this build does not know.
    pub fn from_name(name: &str) -> Option<Quantity> {
        if let Some(q) = Quantity::ALL
            .iter()
            .copied()
            .find(|q| q.name() == Some(name))
        {
            return Some(q);
        }
        let digits = name.strip_prefix(CODE_LABEL)?;
        let canonical = !digits.is_empty()
            && digits.bytes().all(|b| b.is_ascii_digit())
            && (digits == "0" || !digits.starts_with('0'));
        let q = Quantity(digits.parse().ok().filter(|_| canonical)?);
        (!q.is_known()).then_some(q)
    }
}

impl fmt::Display for Quantity {
    /// The quantity's name, or `quantity_<code>` for a code this build does not know.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.name() {
            Some(name) => f.write_str(name),
            None => write!(f, "{CODE_LABEL}{}", self.0),
        }
    }
}

impl fmt::Debug for Quantity {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.ident() {
            Some(ident) => f.write_str(ident),
            None => write!(f, "Quantity({})", self.0),
        }
    }
}

impl Serialize for Quantity {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        if serializer.is_human_readable() {
            return match self.ident() {
                Some(ident) => serializer.serialize_str(ident),
                None => serializer.serialize_u16(self.0),
            };
        }
        // postcard writes an enum's variant index as a varint u32: the code written the
        // same way keeps every stream written by the enum this type replaced readable.
        serializer.serialize_u32(u32::from(self.0))
    }
}

impl<'de> Deserialize<'de> for Quantity {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        if deserializer.is_human_readable() {
            return deserializer.deserialize_any(QuantityVisitor);
        }
        deserializer.deserialize_u32(QuantityVisitor)
    }
}

/// Reads a code (any format) or a known quantity's constant name (human-readable ones).
struct QuantityVisitor;

impl Visitor<'_> for QuantityVisitor {
    type Value = Quantity;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a quantity code (0 to 65535) or a quantity's name")
    }

    fn visit_u64<E: de::Error>(self, code: u64) -> Result<Quantity, E> {
        u16::try_from(code)
            .map(Quantity)
            .map_err(|_| E::invalid_value(de::Unexpected::Unsigned(code), &self))
    }

    fn visit_i64<E: de::Error>(self, code: i64) -> Result<Quantity, E> {
        u16::try_from(code)
            .map(Quantity)
            .map_err(|_| E::invalid_value(de::Unexpected::Signed(code), &self))
    }

    fn visit_str<E: de::Error>(self, name: &str) -> Result<Quantity, E> {
        Quantity::ALL
            .iter()
            .copied()
            .find(|q| q.ident() == Some(name))
            .or_else(|| Quantity::from_name(name))
            .ok_or_else(|| E::invalid_value(de::Unexpected::Str(name), &self))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn names_are_unique_and_round_trip() {
        for (i, a) in Quantity::ALL.iter().enumerate() {
            let name = a.name().unwrap();
            assert_eq!(Quantity::from_name(name), Some(*a));
            for b in &Quantity::ALL[i + 1..] {
                assert_ne!(a.name(), b.name());
            }
        }
    }

    #[test]
    fn names_are_lowercase_snake_case() {
        for q in Quantity::ALL {
            assert!(
                q.name()
                    .unwrap()
                    .bytes()
                    .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_'),
                "{q:?}"
            );
            assert!(!q.name().unwrap().starts_with(CODE_LABEL), "{q:?}");
        }
    }

    #[test]
    fn codes_are_the_positions_in_all() {
        for (i, q) in Quantity::ALL.iter().enumerate() {
            assert_eq!(usize::from(q.code()), i);
        }
    }

    #[test]
    fn encoding_is_the_former_enum_index() {
        // postcard encodes a variant index as a varint: the first 128 fit in one byte.
        for (i, q) in Quantity::ALL.iter().enumerate() {
            let mut buf = [0u8; 4];
            let used = postcard::to_slice(q, &mut buf).unwrap();
            assert_eq!(used, &[u8::try_from(i).unwrap()]);
        }
    }

    /// The enum this type replaced, as it was, to show both encode alike.
    #[derive(Serialize, Deserialize, Debug, PartialEq)]
    enum FormerQuantity {
        Latitude,
        Longitude,
        AltitudeMsl,
    }

    #[test]
    fn the_former_enum_and_the_code_read_each_other() {
        let former = postcard::to_allocvec(&FormerQuantity::AltitudeMsl).unwrap();
        assert_eq!(
            postcard::from_bytes::<Quantity>(&former),
            Ok(Quantity::AltitudeMsl)
        );
        let now = postcard::to_allocvec(&Quantity::Longitude).unwrap();
        assert_eq!(
            postcard::from_bytes::<FormerQuantity>(&now),
            Ok(FormerQuantity::Longitude)
        );
    }

    #[test]
    fn cf_names_match_units() {
        assert_eq!(Quantity::AirPressure.unit(), Some("Pa"));
        assert_eq!(
            Quantity::AirTemperature.cf_standard_name(),
            Some("air_temperature")
        );
        assert_eq!(
            Quantity::Co2MoleFraction.cf_standard_name(),
            Some("mole_fraction_of_carbon_dioxide_in_air")
        );
    }

    #[test]
    fn an_unknown_code_is_labelled_by_its_code() {
        let q = Quantity::from_code(900);
        assert!(!q.is_known());
        assert_eq!(q.name(), None);
        assert_eq!(q.unit(), None);
        extern crate std;
        use std::string::ToString;
        assert_eq!(q.to_string(), "quantity_900");
        assert_eq!(std::format!("{q:?}"), "Quantity(900)");
        assert_eq!(std::format!("{:?}", Quantity::AirPressure), "AirPressure");
        assert_eq!(Quantity::from_name("quantity_900"), Some(q));
        // Only the canonical label of a code this build does not know.
        assert_eq!(Quantity::from_name("quantity_0900"), None);
        assert_eq!(Quantity::from_name("quantity_+900"), None);
        assert_eq!(Quantity::from_name("quantity_17"), None);
        assert_eq!(Quantity::from_name("quantity_"), None);
        assert_eq!(Quantity::from_name("quantity_65536"), None);
    }

    #[test]
    fn human_readable_formats_spell_a_known_quantity_as_before_and_an_unknown_one_by_code() {
        // The hub's dump: `"quantity":"AirPressure"` as when this was an enum.
        assert_eq!(
            serde_json::to_string(&Quantity::AirPressure).unwrap(),
            "\"AirPressure\""
        );
        assert_eq!(
            serde_json::to_string(&Quantity::from_code(900)).unwrap(),
            "900"
        );
        for q in Quantity::ALL
            .iter()
            .copied()
            .chain([Quantity::from_code(900)])
        {
            let json = serde_json::to_string(&q).unwrap();
            assert_eq!(serde_json::from_str::<Quantity>(&json).unwrap(), q);
        }
        assert!(serde_json::from_str::<Quantity>("\"NoSuchQuantity\"").is_err());
        assert!(serde_json::from_str::<Quantity>("70000").is_err());
    }

    proptest! {
        #[test]
        fn every_code_round_trips_through_postcard_and_its_label(code in any::<u16>()) {
            let q = Quantity::from_code(code);
            let bytes = postcard::to_allocvec(&q).unwrap();
            prop_assert_eq!(postcard::from_bytes::<Quantity>(&bytes), Ok(q));
            // Written as the varint of the code, as an enum index was.
            prop_assert_eq!(postcard::from_bytes::<u32>(&bytes), Ok(u32::from(code)));
            extern crate std;
            use std::string::ToString;
            prop_assert_eq!(Quantity::from_name(&q.to_string()), Some(q));
            prop_assert_eq!(q.is_known(), usize::from(code) < Quantity::ALL.len());
        }

        #[test]
        fn a_code_past_u16_is_refused_not_wrapped(code in 65_536u32..) {
            let bytes = postcard::to_allocvec(&code).unwrap();
            prop_assert!(postcard::from_bytes::<Quantity>(&bytes).is_err());
        }
    }
}
