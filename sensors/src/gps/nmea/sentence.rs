//! The typed sentences: talkers, fields and the eight sentence types the parser understands.

use super::{kmh_to_mps, knots_to_mps};

/// Who sent the sentence: the two-letter talker identifier.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Talker {
    /// GP
    Gps,
    /// GL
    Glonass,
    /// GA
    Galileo,
    /// GB (NMEA 4.11 spelling)
    BeidouGb,
    /// BD (older spelling)
    BeidouBd,
    /// GQ
    Qzss,
    /// GN: combined solution of several constellations.
    Gnss,
    /// Any other talker, as sent.
    Other([u8; 2]),
}

impl Talker {
    /// Decodes two talker letters.
    pub fn from_code(code: [u8; 2]) -> Talker {
        match &code {
            b"GP" => Talker::Gps,
            b"GL" => Talker::Glonass,
            b"GA" => Talker::Galileo,
            b"GB" => Talker::BeidouGb,
            b"BD" => Talker::BeidouBd,
            b"GQ" => Talker::Qzss,
            b"GN" => Talker::Gnss,
            _ => Talker::Other(code),
        }
    }

    /// The two letters on the wire.
    pub fn code(self) -> [u8; 2] {
        match self {
            Talker::Gps => *b"GP",
            Talker::Glonass => *b"GL",
            Talker::Galileo => *b"GA",
            Talker::BeidouGb => *b"GB",
            Talker::BeidouBd => *b"BD",
            Talker::Qzss => *b"GQ",
            Talker::Gnss => *b"GN",
            Talker::Other(code) => code,
        }
    }
}

/// Hemisphere letter of a latitude or longitude.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Hemisphere {
    /// N
    North,
    /// S
    South,
    /// E
    East,
    /// W
    West,
}

/// UTC time of day as a sentence gives it (`hhmmss.ss`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct TimeOfDay {
    /// 0-23
    pub hour: u8,
    /// 0-59
    pub minute: u8,
    /// 0-60 (60 only in a leap second).
    pub second: u8,
    /// Fraction of the second, ns.
    pub nanosecond: u32,
}

/// A calendar date as RMC (`ddmmyy`) or ZDA (`dd,mm,yyyy`) gives it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Date {
    /// Full year: two-digit years 80-99 are 1980-1999, 00-79 are 2000-2079 (GPS began in
    /// 1980, so no receiver reports earlier).
    pub year: u16,
    /// 1-12
    pub month: u8,
    /// 1-31
    pub day: u8,
}

/// Status letter of RMC and GLL.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Status {
    /// A: data valid.
    Valid,
    /// V: navigation receiver warning, data not valid.
    Invalid,
}

/// FAA mode indicator (NMEA 2.3+) of RMC, VTG and GLL.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PositioningMode {
    /// A: autonomous.
    Autonomous,
    /// D: differential.
    Differential,
    /// E: estimated (dead reckoning).
    Estimated,
    /// F: RTK float.
    FloatRtk,
    /// M: manual input.
    Manual,
    /// N: data not valid.
    NotValid,
    /// P: precise.
    Precise,
    /// R: RTK fixed.
    FixedRtk,
    /// S: simulator.
    Simulator,
}

impl PositioningMode {
    pub(super) fn from_letter(b: u8) -> Option<Self> {
        Some(match b {
            b'A' => PositioningMode::Autonomous,
            b'D' => PositioningMode::Differential,
            b'E' => PositioningMode::Estimated,
            b'F' => PositioningMode::FloatRtk,
            b'M' => PositioningMode::Manual,
            b'N' => PositioningMode::NotValid,
            b'P' => PositioningMode::Precise,
            b'R' => PositioningMode::FixedRtk,
            b'S' => PositioningMode::Simulator,
            _ => return None,
        })
    }

    /// The letter on the wire.
    pub fn letter(self) -> u8 {
        match self {
            PositioningMode::Autonomous => b'A',
            PositioningMode::Differential => b'D',
            PositioningMode::Estimated => b'E',
            PositioningMode::FloatRtk => b'F',
            PositioningMode::Manual => b'M',
            PositioningMode::NotValid => b'N',
            PositioningMode::Precise => b'P',
            PositioningMode::FixedRtk => b'R',
            PositioningMode::Simulator => b'S',
        }
    }
}

/// GGA: time, position, altitude and fix quality.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Gga {
    /// Sender.
    pub talker: Talker,
    /// UTC time of day of the fix.
    pub time: Option<TimeOfDay>,
    /// Degrees north.
    pub latitude_deg: Option<f64>,
    /// Degrees east.
    pub longitude_deg: Option<f64>,
    /// Fix quality: 0 invalid, 1 GPS, 2 DGPS, 4 RTK fixed, 5 RTK float, 6 dead reckoning.
    pub quality: Option<u8>,
    /// Satellites used.
    pub satellites_used: Option<u8>,
    /// Horizontal dilution of precision.
    pub hdop: Option<f64>,
    /// Altitude above mean sea level, m.
    pub altitude_msl_m: Option<f64>,
    /// Geoid height above the WGS 84 ellipsoid, m.
    pub geoid_separation_m: Option<f64>,
    /// Age of the differential corrections, s.
    pub dgps_age_s: Option<f64>,
    /// Differential reference station.
    pub dgps_station: Option<u16>,
}

/// RMC: the recommended minimum: time, date, status, position, speed, track.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Rmc {
    /// Sender.
    pub talker: Talker,
    /// UTC time of day.
    pub time: Option<TimeOfDay>,
    /// A valid / V warning.
    pub status: Option<Status>,
    /// Degrees north.
    pub latitude_deg: Option<f64>,
    /// Degrees east.
    pub longitude_deg: Option<f64>,
    /// Speed over ground, knots.
    pub speed_knots: Option<f64>,
    /// Course over ground, degrees true.
    pub track_deg: Option<f64>,
    /// UTC date.
    pub date: Option<Date>,
    /// Magnetic variation, degrees, east positive.
    pub magnetic_variation_deg: Option<f64>,
    /// Mode indicator (NMEA 2.3+).
    pub mode: Option<PositioningMode>,
    /// Navigational status letter (NMEA 4.1+).
    pub navigational_status: Option<u8>,
}

impl Rmc {
    /// Speed over ground, m s-1.
    pub fn speed_mps(&self) -> Option<f64> {
        self.speed_knots.map(knots_to_mps)
    }
}

/// GSA: fix mode, satellites used, dilution of precision.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Gsa {
    /// Sender.
    pub talker: Talker,
    /// `A` automatic 2D/3D selection, `M` manual.
    pub selection: Option<u8>,
    /// 1 no fix, 2 2D, 3 3D.
    pub fix_mode: Option<u8>,
    /// The 12 satellite slots, in order.
    pub satellites: [Option<u16>; 12],
    /// Position dilution of precision.
    pub pdop: Option<f64>,
    /// Horizontal dilution of precision.
    pub hdop: Option<f64>,
    /// Vertical dilution of precision.
    pub vdop: Option<f64>,
    /// GNSS system id (NMEA 4.11+).
    pub system_id: Option<u8>,
}

impl Gsa {
    /// Satellites used in the solution (non-empty slots).
    pub fn used(&self) -> impl Iterator<Item = u16> + '_ {
        self.satellites.iter().filter_map(|s| *s)
    }
}

/// One satellite block of a GSV sentence.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct GsvSatellite {
    /// Satellite number.
    pub prn: u16,
    /// Elevation, degrees.
    pub elevation_deg: Option<f64>,
    /// Azimuth, degrees true.
    pub azimuth_deg: Option<f64>,
    /// C/N0, dB-Hz; `None` when not tracked.
    pub snr_dbhz: Option<f64>,
}

/// GSV: one part of the satellites-in-view list.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Gsv {
    /// Sender.
    pub talker: Talker,
    /// Number of GSV sentences in this group.
    pub total_messages: u8,
    /// This sentence's number in the group, from 1.
    pub message_number: u8,
    /// Satellites in view of this talker (and signal).
    pub satellites_in_view: Option<u16>,
    /// Up to four satellites; empty blocks are `None`.
    pub satellites: [Option<GsvSatellite>; 4],
    /// Signal id (NMEA 4.11+).
    pub signal_id: Option<u8>,
}

/// VTG: course and speed over ground.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Vtg {
    /// Sender.
    pub talker: Talker,
    /// Course, degrees true.
    pub track_true_deg: Option<f64>,
    /// Course, degrees magnetic.
    pub track_magnetic_deg: Option<f64>,
    /// Speed, knots.
    pub speed_knots: Option<f64>,
    /// Speed, km h-1.
    pub speed_kmh: Option<f64>,
    /// Mode indicator (NMEA 2.3+).
    pub mode: Option<PositioningMode>,
}

impl Vtg {
    /// Speed over ground, m s-1: from knots, else from km/h.
    pub fn speed_mps(&self) -> Option<f64> {
        self.speed_knots
            .map(knots_to_mps)
            .or(self.speed_kmh.map(kmh_to_mps))
    }
}

/// GLL: position, time and status.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Gll {
    /// Sender.
    pub talker: Talker,
    /// Degrees north.
    pub latitude_deg: Option<f64>,
    /// Degrees east.
    pub longitude_deg: Option<f64>,
    /// UTC time of day.
    pub time: Option<TimeOfDay>,
    /// A valid / V warning.
    pub status: Option<Status>,
    /// Mode indicator (NMEA 2.3+).
    pub mode: Option<PositioningMode>,
}

/// The mode indicator string of GNS: one letter per constellation, in the order NMEA 0183
/// 4.11 gives (GPS, GLONASS, Galileo, BeiDou, QZSS, NavIC), for as many as the receiver
/// prints; `N` marks a constellation not used in the solution.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ModeIndicators {
    letters: [PositioningMode; ModeIndicators::MAX],
    len: u8,
}

impl ModeIndicators {
    /// Most letters accepted: the six constellations of NMEA 4.11 and room for two more.
    pub const MAX: usize = 8;

    /// Indicators from letters; `None` when there are more than [`Self::MAX`] or one is
    /// not a mode letter.
    pub fn from_letters(letters: &[u8]) -> Option<Self> {
        if letters.len() > Self::MAX {
            return None;
        }
        let mut out = ModeIndicators {
            letters: [PositioningMode::NotValid; Self::MAX],
            len: 0,
        };
        for (slot, &b) in out.letters.iter_mut().zip(letters) {
            *slot = PositioningMode::from_letter(b)?;
        }
        out.len = u8::try_from(letters.len()).ok()?;
        Some(out)
    }

    pub(super) fn parse(field: &[u8]) -> Option<Self> {
        Self::from_letters(field)
    }

    /// The indicators, one per constellation.
    pub fn as_slice(&self) -> &[PositioningMode] {
        self.letters
            .get(..usize::from(self.len))
            .unwrap_or_default()
    }

    /// Whether no indicator was sent.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// Whether any constellation contributes to a fix (an indicator other than `N`).
    pub fn any_fix(&self) -> bool {
        self.as_slice()
            .iter()
            .any(|m| *m != PositioningMode::NotValid)
    }
}

/// GNS: the GNSS fix of a multi-constellation receiver: time, position, a mode indicator
/// per constellation, satellites, HDOP, altitude and geoid separation.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Gns {
    /// Sender.
    pub talker: Talker,
    /// UTC time of day of the fix.
    pub time: Option<TimeOfDay>,
    /// Degrees north.
    pub latitude_deg: Option<f64>,
    /// Degrees east.
    pub longitude_deg: Option<f64>,
    /// Mode per constellation.
    pub modes: ModeIndicators,
    /// Satellites used, all constellations (00-99).
    pub satellites_used: Option<u8>,
    /// Horizontal dilution of precision.
    pub hdop: Option<f64>,
    /// Orthometric height (above mean sea level), m.
    pub altitude_msl_m: Option<f64>,
    /// Geoid height above the WGS 84 ellipsoid, m.
    pub geoid_separation_m: Option<f64>,
    /// Age of the differential corrections, s.
    pub dgps_age_s: Option<f64>,
    /// Differential reference station.
    pub dgps_station: Option<u16>,
    /// Navigational status letter (NMEA 4.10+): S safe, C caution, U unsafe, V not valid
    /// (u-blox: the receiver gives no navigational status).
    pub navigational_status: Option<u8>,
}

/// ZDA: UTC time and the full date, with the local time zone.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Zda {
    /// Sender.
    pub talker: Talker,
    /// UTC time of day.
    pub time: Option<TimeOfDay>,
    /// UTC date, four-digit year.
    pub date: Option<Date>,
    /// Local zone hours, -13 to 13.
    pub local_zone_hours: Option<i8>,
    /// Local zone minutes, 0-59 (same sign as the hours).
    pub local_zone_minutes: Option<u8>,
}

/// A well-formed sentence of a type this parser does not interpret.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct OtherSentence<'a> {
    /// The address field: talker and type (`GPZDA`), or a proprietary address (`PUBX`).
    pub address: &'a str,
    /// Everything between the first comma and `*` (empty when there are no fields).
    pub fields: &'a str,
}

impl<'a> OtherSentence<'a> {
    /// The fields, split at commas.
    pub fn fields(&self) -> impl Iterator<Item = &'a str> + 'a {
        let fields = self.fields;
        let none = fields.is_empty();
        fields.split(',').filter(move |_| !none)
    }
}

/// One parsed sentence.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Sentence<'a> {
    /// GGA
    Gga(Gga),
    /// RMC
    Rmc(Rmc),
    /// GSA
    Gsa(Gsa),
    /// GSV
    Gsv(Gsv),
    /// VTG
    Vtg(Vtg),
    /// GLL
    Gll(Gll),
    /// GNS
    Gns(Gns),
    /// ZDA
    Zda(Zda),
    /// Any other well-formed sentence.
    Other(OtherSentence<'a>),
}

impl Sentence<'_> {
    /// The UTC time of day the sentence carries (GGA, RMC, GLL, GNS, ZDA), if any.
    pub fn time(&self) -> Option<TimeOfDay> {
        match self {
            Sentence::Gga(s) => s.time,
            Sentence::Rmc(s) => s.time,
            Sentence::Gll(s) => s.time,
            Sentence::Gns(s) => s.time,
            Sentence::Zda(s) => s.time,
            _ => None,
        }
    }
}
