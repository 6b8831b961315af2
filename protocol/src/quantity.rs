//! The quantity vocabulary: every measured or derived quantity Aloft knows, with its
//! name, its SI unit (UDUNITS spelling, as CF uses) and its CF standard name where one
//! exists.
//!
//! Invariants: values travel in exactly the unit [`Quantity::unit`] names (pressures in
//! Pa, temperatures in K, speeds in m s-1, angles in degrees, mole fractions in mol mol-1);
//! names are stable, lowercase snake case and unique; new variants are appended at the
//! end so that encoded streams stay readable.

use serde::{Deserialize, Serialize};

macro_rules! quantities {
    ($( $(#[$doc:meta])* $variant:ident => $name:literal, $unit:literal, $cf:expr; )*) => {
        /// A measured or derived quantity. See the module documentation for units.
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
        #[non_exhaustive]
        pub enum Quantity {
            $( $(#[$doc])* $variant, )*
        }

        impl Quantity {
            /// Every quantity, in encoding order.
            pub const ALL: &'static [Quantity] = &[ $( Quantity::$variant, )* ];

            /// Stable snake-case name, used in exports, the API and the command line.
            pub const fn name(self) -> &'static str {
                match self { $( Quantity::$variant => $name, )* }
            }

            /// SI unit in UDUNITS spelling (`"1"` for dimensionless counts and ratios).
            pub const fn unit(self) -> &'static str {
                match self { $( Quantity::$variant => $unit, )* }
            }

            /// CF standard name, where the CF table has one for this quantity.
            pub const fn cf_standard_name(self) -> Option<&'static str> {
                match self { $( Quantity::$variant => $cf, )* }
            }
        }
    };
}

quantities! {
    /// Geodetic latitude (WGS 84), degrees north.
    Latitude => "latitude", "degree_north", Some("latitude");
    /// Geodetic longitude (WGS 84), degrees east.
    Longitude => "longitude", "degree_east", Some("longitude");
    /// GNSS altitude above mean sea level (the geoid).
    AltitudeMsl => "altitude_msl", "m", Some("altitude");
    /// Height of the geoid above the WGS 84 ellipsoid at the fix position.
    GeoidSeparation => "geoid_separation", "m", Some("geoid_height_above_reference_ellipsoid");
    /// Speed over ground.
    GroundSpeed => "ground_speed", "m s-1", Some("platform_speed_wrt_ground");
    /// Course over ground, degrees clockwise from true north.
    Track => "track", "degree", Some("platform_course");
    /// Vertical speed, positive up.
    VerticalSpeed => "vertical_speed", "m s-1", None;
    /// Fix mode: 1 = no fix, 2 = 2D, 3 = 3D (NMEA GSA / u-blox fixType convention).
    FixMode => "fix_mode", "1", None;
    /// Fix quality as in NMEA GGA: 0 invalid, 1 GPS, 2 DGPS, 4 RTK fixed, 5 RTK float, 6 dead reckoning.
    FixQuality => "fix_quality", "1", None;
    /// Satellites used in the solution.
    SatellitesUsed => "satellites_used", "1", None;
    /// Satellites in view.
    SatellitesInView => "satellites_in_view", "1", None;
    /// Mean carrier-to-noise density of the satellites in view that report one.
    MeanSnr => "mean_snr", "dBHz", None;
    /// Horizontal dilution of precision.
    Hdop => "hdop", "1", None;
    /// Vertical dilution of precision.
    Vdop => "vdop", "1", None;
    /// Position dilution of precision.
    Pdop => "pdop", "1", None;
    /// Receiver's estimate of horizontal position accuracy (1 sigma).
    HorizontalAccuracy => "horizontal_accuracy", "m", None;
    /// Receiver's estimate of vertical position accuracy (1 sigma).
    VerticalAccuracy => "vertical_accuracy", "m", None;
    /// Static air pressure.
    AirPressure => "air_pressure", "Pa", Some("air_pressure");
    /// Air temperature.
    AirTemperature => "air_temperature", "K", Some("air_temperature");
    /// Relative humidity as a fraction (0..1).
    RelativeHumidity => "relative_humidity", "1", Some("relative_humidity");
    /// CO2 mole fraction in air.
    Co2MoleFraction => "co2_mole_fraction", "mol mol-1", Some("mole_fraction_of_carbon_dioxide_in_air");
    /// Differential (pitot minus static) pressure.
    DifferentialPressure => "differential_pressure", "Pa", None;
    /// Indicated airspeed (sea-level standard density).
    IndicatedAirspeed => "indicated_airspeed", "m s-1", None;
    /// True airspeed.
    TrueAirspeed => "true_airspeed", "m s-1", Some("platform_speed_wrt_air");
    /// Temperature of a sensor's own die or board (not the air).
    SensorTemperature => "sensor_temperature", "K", None;
    /// Running event number reported by a particle detector.
    MuonEventCount => "muon_event_count", "1", None;
    /// Raw ADC value of a detector pulse (0..1023 on CosmicWatch).
    MuonPulseAdc => "muon_pulse_adc", "1", None;
    /// Calculated SiPM peak voltage of a detector pulse.
    SipmPeakVoltage => "sipm_peak_voltage", "V", None;
    /// Cumulative dead time of a detector since its start.
    DetectorDeadTime => "detector_dead_time", "s", None;
    /// Event rate corrected for dead time.
    MuonCountRate => "muon_count_rate", "s-1", None;
    /// Whether an event was seen in coincidence by a paired detector (1) or not (0).
    MuonCoincidence => "muon_coincidence", "1", None;
    /// Acceleration along the sensor's x axis.
    AccelerationX => "acceleration_x", "m s-2", None;
    /// Acceleration along the sensor's y axis.
    AccelerationY => "acceleration_y", "m s-2", None;
    /// Acceleration along the sensor's z axis.
    AccelerationZ => "acceleration_z", "m s-2", None;
    /// Angular rate about the sensor's x axis.
    AngularRateX => "angular_rate_x", "rad s-1", None;
    /// Angular rate about the sensor's y axis.
    AngularRateY => "angular_rate_y", "rad s-1", None;
    /// Angular rate about the sensor's z axis.
    AngularRateZ => "angular_rate_z", "rad s-1", None;
}

impl Quantity {
    /// Looks a quantity up by its [`name`](Quantity::name).
    pub fn from_name(name: &str) -> Option<Quantity> {
        Quantity::ALL.iter().copied().find(|q| q.name() == name)
    }
}

impl core::fmt::Display for Quantity {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.write_str(self.name())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_unique_and_round_trip() {
        for (i, a) in Quantity::ALL.iter().enumerate() {
            assert_eq!(Quantity::from_name(a.name()), Some(*a));
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
                    .bytes()
                    .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_'),
                "{q:?}"
            );
        }
    }

    #[test]
    fn encoding_index_is_position_in_all() {
        // postcard encodes the variant index as a varint: the first 128 fit in one byte.
        for (i, q) in Quantity::ALL.iter().enumerate() {
            let mut buf = [0u8; 4];
            let used = postcard::to_slice(q, &mut buf).unwrap();
            assert_eq!(used, &[u8::try_from(i).unwrap()]);
        }
    }

    #[test]
    fn cf_names_match_units() {
        assert_eq!(Quantity::AirPressure.unit(), "Pa");
        assert_eq!(
            Quantity::AirTemperature.cf_standard_name(),
            Some("air_temperature")
        );
        assert_eq!(
            Quantity::Co2MoleFraction.cf_standard_name(),
            Some("mole_fraction_of_carbon_dioxide_in_air")
        );
    }
}
