//! One GNSS fix: everything the receiver said about one navigation epoch.
//!
//! (Assembly from NMEA sentences: work in progress.)

use serde::Serialize;

/// UTC as the receiver reported it. NMEA GGA/GLL carry only the time of day; RMC adds
/// the date.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct GnssTime {
    /// Calendar date (year, month 1-12, day 1-31), when a sentence of the epoch carried it.
    pub date: Option<(u16, u8, u8)>,
    /// Hour 0-23.
    pub hour: u8,
    /// Minute 0-59.
    pub minute: u8,
    /// Second 0-60 (60 only in a leap second).
    pub second: u8,
    /// Fraction of the second, ns.
    pub nanosecond: u32,
}

/// Fix mode (NMEA GSA mode 2 / u-blox fixType).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum FixMode {
    /// No position.
    NoFix,
    /// Latitude and longitude only.
    TwoD,
    /// Latitude, longitude and altitude.
    ThreeD,
}

/// GNSS constellation, from the NMEA talker or UBX gnssId.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Constellation {
    /// GPS (talker GP).
    Gps,
    /// GLONASS (GL).
    Glonass,
    /// Galileo (GA).
    Galileo,
    /// BeiDou (GB or BD).
    Beidou,
    /// QZSS (GQ).
    Qzss,
    /// Combined solution (GN) or unknown.
    Mixed,
}

/// One satellite in view.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct SatelliteInView {
    /// Constellation that reported it.
    pub constellation: Constellation,
    /// Satellite number as the sentence gave it.
    pub prn: u16,
    /// Elevation, degrees.
    pub elevation_deg: Option<f64>,
    /// Azimuth, degrees from true north.
    pub azimuth_deg: Option<f64>,
    /// Carrier-to-noise density, dB-Hz; `None` when not tracked.
    pub snr_dbhz: Option<f64>,
}

/// Everything known about one navigation epoch. Fields a receiver did not send are `None`.
#[derive(Debug, Clone, PartialEq, Default, Serialize)]
pub struct Fix {
    /// UTC of the epoch.
    pub time: Option<GnssTime>,
    /// Latitude, degrees north (WGS 84).
    pub latitude_deg: Option<f64>,
    /// Longitude, degrees east (WGS 84).
    pub longitude_deg: Option<f64>,
    /// Altitude above mean sea level, m.
    pub altitude_msl_m: Option<f64>,
    /// Geoid height above the ellipsoid, m.
    pub geoid_separation_m: Option<f64>,
    /// Speed over ground, m s-1.
    pub ground_speed_mps: Option<f64>,
    /// Course over ground, degrees from true north.
    pub track_deg: Option<f64>,
    /// Vertical speed, m s-1, positive up (UBX only).
    pub vertical_speed_mps: Option<f64>,
    /// Fix mode.
    pub mode: Option<FixMode>,
    /// GGA fix quality (0 invalid, 1 GPS, 2 DGPS, ...).
    pub quality: Option<u8>,
    /// Whether the receiver marked the fix valid (RMC/GLL status `A`, UBX gnssFixOK).
    pub valid: bool,
    /// Satellites used in the solution.
    pub satellites_used: Option<u8>,
    /// Satellites in view, from GSV (or UBX NAV-SAT).
    pub satellites: Vec<SatelliteInView>,
    /// Horizontal dilution of precision.
    pub hdop: Option<f64>,
    /// Vertical dilution of precision.
    pub vdop: Option<f64>,
    /// Position dilution of precision.
    pub pdop: Option<f64>,
    /// Receiver's horizontal accuracy estimate, m (UBX only).
    pub horizontal_accuracy_m: Option<f64>,
    /// Receiver's vertical accuracy estimate, m (UBX only).
    pub vertical_accuracy_m: Option<f64>,
}
