//! NMEA 0183 sentence parsing: one line of bytes in, one typed [`Sentence`] out.
//!
//! The parser borrows from the line and never allocates, so the agent can run it on every
//! sentence of a 10 Hz receiver on a small ARM board. It understands GGA, RMC, GSA, GSV,
//! VTG and GLL from any two-letter talker (GP, GL, GA, GB, BD, GQ, GN, ...) and hands every
//! other well-formed sentence (ZDA, TXT, GBS, proprietary `$P...`) back as
//! [`Sentence::Other`], so that it is not counted as bad input.
//!
//! Invariants:
//! - Any byte sequence gives either a sentence or a [`NmeaError`]; nothing panics.
//! - The checksum is verified before any field is interpreted, and only upper-case hex is
//!   accepted, so a single changed byte anywhere in a line is always an error.
//! - A line is at most [`MAX_SENTENCE_LEN`] bytes including CR LF.
//! - Values are typed and range-checked; an empty field is `None`. Positions come out in
//!   signed decimal degrees; speeds keep the sentence's unit in the field name
//!   (`speed_knots`), with `*_mps` helpers for SI.
//!
//! [`encode`] writes the same six types back as text, for simulators and tests.

use thiserror::Error;

/// Longest legal sentence, `$` to LF inclusive, as NMEA 0183 specifies.
pub const MAX_SENTENCE_LEN: usize = 82;

/// Metres per second in one knot (1852 m per hour).
pub const MPS_PER_KNOT: f64 = 1852.0 / 3600.0;

/// XOR of `body`: the NMEA checksum of the bytes between `$` and `*`.
pub fn checksum(body: &[u8]) -> u8 {
    body.iter().fold(0, |acc, b| acc ^ b)
}

/// Knots to m s-1.
pub fn knots_to_mps(knots: f64) -> f64 {
    knots * MPS_PER_KNOT
}

/// km h-1 to m s-1.
pub fn kmh_to_mps(kmh: f64) -> f64 {
    kmh / 3.6
}

/// Converts NMEA's `dddmm.mmmm` (degrees times 100 plus minutes) and its hemisphere into
/// signed decimal degrees (south and west negative).
pub fn ddmm_to_degrees(ddmm: f64, hemisphere: Hemisphere) -> f64 {
    let degrees = (ddmm / 100.0).trunc();
    let minutes = ddmm - degrees * 100.0;
    let unsigned = degrees + minutes / 60.0;
    match hemisphere {
        Hemisphere::North | Hemisphere::East => unsigned,
        Hemisphere::South | Hemisphere::West => -unsigned,
    }
}

/// Why a line is not a sentence. Small and `Copy`: it is returned on the hot path and
/// counted by the agent, never allocated.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Error)]
pub enum NmeaError {
    /// The line is empty (or only a line end).
    #[error("empty line")]
    Empty,
    /// The line does not start with `$`.
    #[error("sentence does not start with '$'")]
    MissingStart,
    /// Longer than 82 bytes including CR LF.
    #[error("sentence longer than 82 bytes")]
    TooLong,
    /// No `*HH` checksum at the end of the line.
    #[error("missing '*HH' checksum")]
    MissingChecksum,
    /// The checksum is not two upper-case hex digits.
    #[error("checksum is not two upper-case hex digits")]
    BadChecksumSyntax,
    /// The checksum does not match the sentence.
    #[error("checksum mismatch: sentence says {stated:#04x}, body gives {computed:#04x}")]
    ChecksumMismatch {
        /// What the `*HH` said.
        stated: u8,
        /// XOR of the body.
        computed: u8,
    },
    /// A byte that may not appear in a sentence (control character, non-ASCII, `$` or `*`
    /// inside the body, anything after the line end).
    #[error("invalid byte in sentence")]
    InvalidByte,
    /// The address field (talker and type) is malformed.
    #[error("malformed address field")]
    BadAddress,
    /// The sentence has a number of fields its type does not allow.
    #[error("{found} fields is not a valid field count for this sentence type")]
    FieldCount {
        /// Fields after the address.
        found: u8,
    },
    /// A field's syntax or value is invalid (numeric syntax, range, unknown letter).
    #[error("field {index} is invalid")]
    BadField {
        /// Index of the field after the address, from 0.
        index: u8,
    },
}

impl NmeaError {
    /// Stable snake-case name of the kind of error, for counters and metrics labels.
    pub fn kind(&self) -> &'static str {
        match self {
            NmeaError::Empty => "empty",
            NmeaError::MissingStart => "missing_start",
            NmeaError::TooLong => "too_long",
            NmeaError::MissingChecksum => "missing_checksum",
            NmeaError::BadChecksumSyntax => "bad_checksum_syntax",
            NmeaError::ChecksumMismatch { .. } => "checksum_mismatch",
            NmeaError::InvalidByte => "invalid_byte",
            NmeaError::BadAddress => "bad_address",
            NmeaError::FieldCount { .. } => "field_count",
            NmeaError::BadField { .. } => "bad_field",
        }
    }
}

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

/// A calendar date as RMC gives it (`ddmmyy`).
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
    fn from_letter(b: u8) -> Option<Self> {
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
    /// Any other well-formed sentence.
    Other(OtherSentence<'a>),
}

impl Sentence<'_> {
    /// The UTC time of day the sentence carries (GGA, RMC, GLL), if any.
    pub fn time(&self) -> Option<TimeOfDay> {
        match self {
            Sentence::Gga(s) => s.time,
            Sentence::Rmc(s) => s.time,
            Sentence::Gll(s) => s.time,
            _ => None,
        }
    }
}

/// Parses one sentence: `$`, address, fields, `*HH`, with an optional CR, LF or CR LF.
pub fn parse(line: &[u8]) -> Result<Sentence<'_>, NmeaError> {
    let line = strip_line_end(line);
    if line.is_empty() {
        return Err(NmeaError::Empty);
    }
    if line.len() > MAX_SENTENCE_LEN - 2 {
        return Err(NmeaError::TooLong);
    }
    let (&start, rest) = line.split_first().ok_or(NmeaError::Empty)?;
    if start != b'$' {
        return Err(NmeaError::MissingStart);
    }
    // The checksum sits at a fixed place from the end: looking it up there (instead of at
    // the first '*') makes a '*' inside the body an invalid byte, never a short sentence.
    let split = rest
        .len()
        .checked_sub(3)
        .ok_or(NmeaError::MissingChecksum)?;
    let (body, tail) = rest.split_at(split);
    let [star, hi, lo] = *tail else {
        return Err(NmeaError::MissingChecksum);
    };
    if star != b'*' {
        return Err(NmeaError::MissingChecksum);
    }
    let stated = (hex_digit(hi)? << 4) | hex_digit(lo)?;
    let mut computed = 0u8;
    for &b in body {
        if !(0x20..=0x7e).contains(&b) || b == b'$' || b == b'*' {
            return Err(NmeaError::InvalidByte);
        }
        computed ^= b;
    }
    if computed != stated {
        return Err(NmeaError::ChecksumMismatch { stated, computed });
    }
    // Every byte is printable ASCII from here on.
    let body = core::str::from_utf8(body).map_err(|_| NmeaError::InvalidByte)?;
    let (address, fields) = match body.split_once(',') {
        Some((a, f)) => (a, Some(f)),
        None => (body, None),
    };
    // Standard addresses are five letters; proprietary ones (`$PMTK001`) may be longer.
    if address.is_empty()
        || address.len() > 15
        || !address
            .bytes()
            .all(|b| b.is_ascii_uppercase() || b.is_ascii_digit())
    {
        return Err(NmeaError::BadAddress);
    }
    let ab = address.as_bytes();
    let typed = match ab {
        [t0, t1, k0, k1, k2] if *t0 != b'P' => {
            Some((Talker::from_code([*t0, *t1]), [*k0, *k1, *k2]))
        }
        _ => None,
    };
    let other = || {
        Sentence::Other(OtherSentence {
            address,
            fields: fields.unwrap_or(""),
        })
    };
    let Some((talker, kind)) = typed else {
        return Ok(other());
    };
    let mut f = Fields::new(fields);
    let sentence = match &kind {
        b"GGA" => Sentence::Gga(parse_gga(talker, &mut f)?),
        b"RMC" => Sentence::Rmc(parse_rmc(talker, &mut f)?),
        b"GSA" => Sentence::Gsa(parse_gsa(talker, &mut f)?),
        b"GSV" => Sentence::Gsv(parse_gsv(talker, &mut f)?),
        b"VTG" => Sentence::Vtg(parse_vtg(talker, &mut f)?),
        b"GLL" => Sentence::Gll(parse_gll(talker, &mut f)?),
        _ => other(),
    };
    Ok(sentence)
}

fn strip_line_end(line: &[u8]) -> &[u8] {
    let line = line.strip_suffix(b"\n").unwrap_or(line);
    line.strip_suffix(b"\r").unwrap_or(line)
}

fn hex_digit(b: u8) -> Result<u8, NmeaError> {
    match b {
        b'0'..=b'9' => Ok(b - b'0'),
        b'A'..=b'F' => Ok(b - b'A' + 10),
        _ => Err(NmeaError::BadChecksumSyntax),
    }
}

/// The comma-separated fields after the address, with their count and index.
struct Fields<'a> {
    rest: Option<&'a [u8]>,
    index: u8,
    count: u8,
}

impl<'a> Fields<'a> {
    fn new(fields: Option<&'a str>) -> Self {
        let count = fields.map_or(0, |f| f.bytes().filter(|&b| b == b',').count() + 1);
        Fields {
            rest: fields.map(str::as_bytes),
            index: 0,
            // At most 80 bytes, so at most 80 fields: fits.
            count: u8::try_from(count).unwrap_or(u8::MAX),
        }
    }

    fn require_count(&self, allowed: impl Fn(u8) -> bool) -> Result<(), NmeaError> {
        if allowed(self.count) {
            Ok(())
        } else {
            Err(NmeaError::FieldCount { found: self.count })
        }
    }

    /// The next field (empty slice past the end: optional trailing fields read as empty),
    /// and its index for errors.
    fn next(&mut self) -> (&'a [u8], u8) {
        let index = self.index;
        self.index = self.index.saturating_add(1);
        let Some(rest) = self.rest else {
            return (&[], index);
        };
        match rest.iter().position(|&b| b == b',') {
            Some(i) => {
                let (field, after) = rest.split_at(i);
                self.rest = after.get(1..);
                (field, index)
            }
            None => {
                self.rest = None;
                (rest, index)
            }
        }
    }

    fn number(&mut self) -> Result<Option<f64>, NmeaError> {
        let (f, i) = self.next();
        opt(f, i, parse_decimal)
    }

    fn unsigned<T: TryFrom<u64>>(&mut self) -> Result<Option<T>, NmeaError> {
        let (f, i) = self.next();
        opt(f, i, |f| {
            parse_unsigned(f).and_then(|v| T::try_from(v).ok())
        })
    }

    fn letter(&mut self, allowed: &[u8]) -> Result<Option<u8>, NmeaError> {
        let (f, i) = self.next();
        opt(f, i, |f| match f {
            [b] if allowed.contains(b) => Some(*b),
            _ => None,
        })
    }

    fn time(&mut self) -> Result<Option<TimeOfDay>, NmeaError> {
        let (f, i) = self.next();
        opt(f, i, parse_time)
    }

    /// A `ddmm.mmmm,N` or `dddmm.mmmm,E` pair.
    fn coordinate(&mut self, degree_digits: usize) -> Result<Option<f64>, NmeaError> {
        let (value, vi) = self.next();
        let (hemi, hi) = self.next();
        let (positive, negative, limit) = if degree_digits == 2 {
            (b'N', b'S', 90.0)
        } else {
            (b'E', b'W', 180.0)
        };
        match (value.is_empty(), hemi) {
            (true, []) => Ok(None),
            (false, [h]) if *h == positive || *h == negative => {
                let deg = parse_coordinate(value, degree_digits)
                    .filter(|d| *d <= limit)
                    .ok_or(NmeaError::BadField { index: vi })?;
                Ok(Some(if *h == negative { -deg } else { deg }))
            }
            _ => Err(NmeaError::BadField { index: hi }),
        }
    }

    /// A value followed by a fixed unit letter (`1147.2,M`); the letter may be empty
    /// only when the value is.
    fn with_unit(&mut self, unit: u8) -> Result<Option<f64>, NmeaError> {
        let v = self.number()?;
        let (u, ui) = self.next();
        match (v, u) {
            (_, [b]) if *b == unit => Ok(v),
            (None, []) => Ok(None),
            _ => Err(NmeaError::BadField { index: ui }),
        }
    }
}

fn opt<T>(
    field: &[u8],
    index: u8,
    f: impl FnOnce(&[u8]) -> Option<T>,
) -> Result<Option<T>, NmeaError> {
    if field.is_empty() {
        Ok(None)
    } else {
        f(field).map(Some).ok_or(NmeaError::BadField { index })
    }
}

fn parse_unsigned(f: &[u8]) -> Option<u64> {
    if f.is_empty() || f.len() > 9 {
        return None;
    }
    let mut v = 0u64;
    for &b in f {
        if !b.is_ascii_digit() {
            return None;
        }
        v = v * 10 + u64::from(b - b'0');
    }
    Some(v)
}

const POW10: [f64; 23] = [
    1e0, 1e1, 1e2, 1e3, 1e4, 1e5, 1e6, 1e7, 1e8, 1e9, 1e10, 1e11, 1e12, 1e13, 1e14, 1e15, 1e16,
    1e17, 1e18, 1e19, 1e20, 1e21, 1e22,
];

/// NMEA numeric syntax: optional `-` (or `+`), digits, optional `.` and digits; at least
/// one digit. No exponents, no `inf`/`nan`.
fn parse_decimal(f: &[u8]) -> Option<f64> {
    let (negative, digits) = match f {
        [b'-', rest @ ..] => (true, rest),
        [b'+', rest @ ..] => (false, rest),
        _ => (false, f),
    };
    let mut mantissa = 0u64;
    let mut significant = 0usize;
    let mut fraction_digits = 0usize;
    let mut seen_point = false;
    let mut any_digit = false;
    for &b in digits {
        match b {
            b'0'..=b'9' => {
                any_digit = true;
                if significant < 19 {
                    mantissa = mantissa * 10 + u64::from(b - b'0');
                    if mantissa != 0 {
                        significant += 1;
                    }
                    if seen_point {
                        fraction_digits += 1;
                    }
                } else if !seen_point {
                    return None; // more than 19 integer digits: not an NMEA number
                }
            }
            b'.' if !seen_point => seen_point = true,
            _ => return None,
        }
    }
    if !any_digit {
        return None;
    }
    // Both exact as f64 (mantissa < 2^53, power <= 22), so one division rounds correctly.
    let value = match POW10.get(fraction_digits) {
        Some(p) if mantissa < (1 << 53) => mantissa as f64 / p,
        _ => core::str::from_utf8(digits).ok()?.parse::<f64>().ok()?,
    };
    Some(if negative { -value } else { value })
}

/// `ddmm.mmmm` (or `dddmm.mmmm`) to unsigned degrees, parsed from the text so that the
/// minutes keep every digit the receiver sent.
fn parse_coordinate(f: &[u8], degree_digits: usize) -> Option<f64> {
    let point = f.iter().position(|&b| b == b'.').unwrap_or(f.len());
    if point != degree_digits + 2 {
        return None;
    }
    let (deg, minutes) = f.split_at(degree_digits);
    let deg = parse_unsigned(deg)? as f64;
    if !minutes.first().is_some_and(u8::is_ascii_digit) {
        return None;
    }
    let minutes = parse_decimal(minutes)?;
    if minutes >= 60.0 {
        return None;
    }
    Some(deg + minutes / 60.0)
}

fn two_digits(f: &[u8]) -> Option<u8> {
    match f {
        [a, b] if a.is_ascii_digit() && b.is_ascii_digit() => Some((a - b'0') * 10 + (b - b'0')),
        _ => None,
    }
}

fn parse_time(f: &[u8]) -> Option<TimeOfDay> {
    let (hms, fraction) = match f.split_at_checked(6)? {
        (hms, []) => (hms, &[][..]),
        (hms, [b'.', frac @ ..]) if !frac.is_empty() => (hms, frac),
        _ => return None,
    };
    let hour = two_digits(hms.get(0..2)?)?;
    let minute = two_digits(hms.get(2..4)?)?;
    let second = two_digits(hms.get(4..6)?)?;
    if hour > 23 || minute > 59 || second > 60 {
        return None;
    }
    let mut nanosecond = 0u32;
    let mut scale = 100_000_000u32;
    for &b in fraction {
        if !b.is_ascii_digit() {
            return None;
        }
        // Digits past the ninth are below 1 ns: checked but dropped.
        nanosecond += u32::from(b - b'0') * scale;
        scale /= 10;
    }
    Some(TimeOfDay {
        hour,
        minute,
        second,
        nanosecond,
    })
}

fn parse_date(f: &[u8]) -> Option<Date> {
    if f.len() != 6 {
        return None;
    }
    let day = two_digits(f.get(0..2)?)?;
    let month = two_digits(f.get(2..4)?)?;
    let yy = two_digits(f.get(4..6)?)?;
    if !(1..=12).contains(&month) || !(1..=31).contains(&day) {
        return None;
    }
    let year = if yy >= 80 { 1900 } else { 2000 } + u16::from(yy);
    Some(Date { year, month, day })
}

fn status(f: &mut Fields<'_>) -> Result<Option<Status>, NmeaError> {
    Ok(f.letter(b"AV")?.map(|b| {
        if b == b'A' {
            Status::Valid
        } else {
            Status::Invalid
        }
    }))
}

fn mode(f: &mut Fields<'_>) -> Result<Option<PositioningMode>, NmeaError> {
    let (field, i) = f.next();
    opt(field, i, |field| match field {
        [b] => PositioningMode::from_letter(*b),
        _ => None,
    })
}

fn angle(f: &mut Fields<'_>, max: f64) -> Result<Option<f64>, NmeaError> {
    let index = f.index;
    match f.number()? {
        Some(v) if !(-max..=max).contains(&v) => Err(NmeaError::BadField { index }),
        v => Ok(v),
    }
}

fn non_negative(f: &mut Fields<'_>) -> Result<Option<f64>, NmeaError> {
    let index = f.index;
    match f.number()? {
        Some(v) if v < 0.0 => Err(NmeaError::BadField { index }),
        v => Ok(v),
    }
}

fn parse_gga(talker: Talker, f: &mut Fields<'_>) -> Result<Gga, NmeaError> {
    f.require_count(|n| n == 14)?;
    let time = f.time()?;
    let latitude_deg = f.coordinate(2)?;
    let longitude_deg = f.coordinate(3)?;
    let quality = f.unsigned::<u8>()?;
    let index = f.index;
    let satellites_used = f.unsigned::<u8>()?;
    if satellites_used.is_some_and(|n| n > 99) {
        return Err(NmeaError::BadField { index });
    }
    Ok(Gga {
        talker,
        time,
        latitude_deg,
        longitude_deg,
        quality,
        satellites_used,
        hdop: non_negative(f)?,
        altitude_msl_m: f.with_unit(b'M')?,
        geoid_separation_m: f.with_unit(b'M')?,
        dgps_age_s: non_negative(f)?,
        dgps_station: f.unsigned::<u16>()?,
    })
}

fn parse_rmc(talker: Talker, f: &mut Fields<'_>) -> Result<Rmc, NmeaError> {
    f.require_count(|n| (11..=13).contains(&n))?;
    let time = f.time()?;
    let status = status(f)?;
    let latitude_deg = f.coordinate(2)?;
    let longitude_deg = f.coordinate(3)?;
    let speed_knots = non_negative(f)?;
    let track_deg = angle(f, 360.0)?;
    let (d, di) = f.next();
    let date = opt(d, di, parse_date)?;
    let variation = angle(f, 180.0)?;
    let (h, hi) = f.next();
    let magnetic_variation_deg = match (variation, h) {
        (Some(v), [b'E']) => Some(v),
        (Some(v), [b'W']) => Some(-v),
        (None, []) => None,
        // Some receivers leave the direction empty with no value, others send one anyway.
        (None, [b'E' | b'W']) => None,
        _ => return Err(NmeaError::BadField { index: hi }),
    };
    let mode = mode(f)?;
    let navigational_status = f.letter(b"SCUV")?;
    Ok(Rmc {
        talker,
        time,
        status,
        latitude_deg,
        longitude_deg,
        speed_knots,
        track_deg,
        date,
        magnetic_variation_deg,
        mode,
        navigational_status,
    })
}

fn parse_gsa(talker: Talker, f: &mut Fields<'_>) -> Result<Gsa, NmeaError> {
    f.require_count(|n| n == 17 || n == 18)?;
    let selection = f.letter(b"AM")?;
    let fix_mode = f.letter(b"123")?.map(|b| b - b'0');
    let mut satellites = [None; 12];
    for slot in &mut satellites {
        *slot = f.unsigned::<u16>()?;
    }
    Ok(Gsa {
        talker,
        selection,
        fix_mode,
        satellites,
        pdop: non_negative(f)?,
        hdop: non_negative(f)?,
        vdop: non_negative(f)?,
        system_id: f.unsigned::<u8>()?,
    })
}

fn parse_gsv(talker: Talker, f: &mut Fields<'_>) -> Result<Gsv, NmeaError> {
    let count = f.count;
    f.require_count(|n| (3..=20).contains(&n) && matches!((n - 3) % 4, 0 | 1))?;
    let blocks = usize::from((count - 3) / 4);
    let has_signal = (count - 3) % 4 == 1;
    let (t, ti) = f.next();
    let total_messages = opt(t, ti, |t| {
        parse_unsigned(t).and_then(|v| u8::try_from(v).ok())
    })?
    .filter(|v| (1..=9).contains(v))
    .ok_or(NmeaError::BadField { index: ti })?;
    let (m, mi) = f.next();
    let message_number = opt(m, mi, |m| {
        parse_unsigned(m).and_then(|v| u8::try_from(v).ok())
    })?
    .filter(|v| (1..=total_messages).contains(v))
    .ok_or(NmeaError::BadField { index: mi })?;
    let satellites_in_view = f.unsigned::<u16>()?;
    let mut satellites = [None; 4];
    for slot in satellites.iter_mut().take(blocks) {
        let index = f.index;
        let prn = f.unsigned::<u16>()?;
        let elevation_deg = angle(f, 90.0)?;
        let azimuth_deg = angle(f, 360.0)?;
        let snr_dbhz = non_negative(f)?;
        *slot = match prn {
            Some(prn) => Some(GsvSatellite {
                prn,
                elevation_deg,
                azimuth_deg,
                snr_dbhz,
            }),
            None if elevation_deg.is_none() && azimuth_deg.is_none() && snr_dbhz.is_none() => None,
            None => return Err(NmeaError::BadField { index }),
        };
    }
    let signal_id = if has_signal {
        let (s, si) = f.next();
        opt(s, si, |s| match s {
            [b] if b.is_ascii_hexdigit() => Some(*b),
            _ => None,
        })?
    } else {
        None
    };
    Ok(Gsv {
        talker,
        total_messages,
        message_number,
        satellites_in_view,
        satellites,
        signal_id,
    })
}

fn parse_vtg(talker: Talker, f: &mut Fields<'_>) -> Result<Vtg, NmeaError> {
    f.require_count(|n| n == 8 || n == 9)?;
    let track_true_deg = angle(f, 360.0)?;
    unit_letter(f, b'T')?;
    let track_magnetic_deg = angle(f, 360.0)?;
    unit_letter(f, b'M')?;
    let speed_knots = non_negative(f)?;
    unit_letter(f, b'N')?;
    let speed_kmh = non_negative(f)?;
    unit_letter(f, b'K')?;
    Ok(Vtg {
        talker,
        track_true_deg,
        track_magnetic_deg,
        speed_knots,
        speed_kmh,
        mode: mode(f)?,
    })
}

/// VTG's unit letters: receivers send them even when the value is empty.
fn unit_letter(f: &mut Fields<'_>, unit: u8) -> Result<(), NmeaError> {
    let (u, i) = f.next();
    match u {
        [] => Ok(()),
        [b] if *b == unit => Ok(()),
        _ => Err(NmeaError::BadField { index: i }),
    }
}

fn parse_gll(talker: Talker, f: &mut Fields<'_>) -> Result<Gll, NmeaError> {
    f.require_count(|n| (5..=7).contains(&n))?;
    Ok(Gll {
        talker,
        latitude_deg: f.coordinate(2)?,
        longitude_deg: f.coordinate(3)?,
        time: f.time()?,
        status: status(f)?,
        mode: mode(f)?,
    })
}

pub mod encode {
    //! Formats typed sentences the way a u-blox receiver prints them (NMEA 2.3 layouts,
    //! five decimals of arc minutes, CR LF), for simulators, test streams and round trips.
    //! Not for the hot path: each sentence is a new `String`.
    //!
    //! Invariant: what these functions write, [`parse`](super::parse) reads back to the
    //! same values up to the printed precision.

    use super::{Gga, Gll, Gsa, Gsv, Rmc, Sentence, Status, Talker, TimeOfDay, Vtg, checksum};
    use std::fmt::Write;

    /// Wraps a body (between `$` and `*`) into a full sentence with checksum and CR LF.
    pub fn finish(body: &str) -> String {
        format!("${body}*{:02X}\r\n", checksum(body.as_bytes()))
    }

    fn talker(t: Talker) -> String {
        String::from_utf8_lossy(&t.code()).into_owned()
    }

    fn num(out: &mut String, v: Option<f64>, decimals: usize) {
        if let Some(v) = v {
            let _ = write!(out, "{v:.decimals$}");
        }
    }

    fn coord(out: &mut String, v: Option<f64>, deg_digits: usize, pos: char, neg: char) {
        if let Some(v) = v {
            let a = v.abs();
            let d = a.trunc();
            // Five decimals of minutes, as u-blox sends.
            let m = ((a - d) * 60.0 * 1e5).round() / 1e5;
            let (d, m) = if m >= 60.0 { (d + 1.0, 0.0) } else { (d, m) };
            let _ = write!(
                out,
                "{:0dw$}{:08.5},{}",
                d as u32,
                m,
                if v < 0.0 { neg } else { pos },
                dw = deg_digits
            );
        } else {
            out.push(',');
        }
    }

    fn time(out: &mut String, t: Option<TimeOfDay>) {
        if let Some(t) = t {
            let _ = write!(
                out,
                "{:02}{:02}{:02}.{:02}",
                t.hour,
                t.minute,
                t.second,
                t.nanosecond / 10_000_000
            );
        }
    }

    fn opt_u<T: std::fmt::Display>(out: &mut String, v: Option<T>) {
        if let Some(v) = v {
            let _ = write!(out, "{v}");
        }
    }

    /// Formats GGA.
    pub fn gga(s: &Gga) -> String {
        let mut o = format!("{}GGA,", talker(s.talker));
        time(&mut o, s.time);
        o.push(',');
        coord(&mut o, s.latitude_deg, 2, 'N', 'S');
        o.push(',');
        coord(&mut o, s.longitude_deg, 3, 'E', 'W');
        o.push(',');
        opt_u(&mut o, s.quality);
        o.push(',');
        if let Some(n) = s.satellites_used {
            let _ = write!(o, "{n:02}");
        }
        o.push(',');
        num(&mut o, s.hdop, 2);
        o.push(',');
        num(&mut o, s.altitude_msl_m, 1);
        o.push_str(if s.altitude_msl_m.is_some() {
            ",M,"
        } else {
            ",,"
        });
        num(&mut o, s.geoid_separation_m, 1);
        o.push_str(if s.geoid_separation_m.is_some() {
            ",M,"
        } else {
            ",,"
        });
        num(&mut o, s.dgps_age_s, 1);
        o.push(',');
        opt_u(&mut o, s.dgps_station);
        finish(&o)
    }

    /// Formats RMC (NMEA 2.3 layout, with mode).
    pub fn rmc(s: &Rmc) -> String {
        let mut o = format!("{}RMC,", talker(s.talker));
        time(&mut o, s.time);
        o.push(',');
        if let Some(st) = s.status {
            o.push(if st == Status::Valid { 'A' } else { 'V' });
        }
        o.push(',');
        coord(&mut o, s.latitude_deg, 2, 'N', 'S');
        o.push(',');
        coord(&mut o, s.longitude_deg, 3, 'E', 'W');
        o.push(',');
        num(&mut o, s.speed_knots, 3);
        o.push(',');
        num(&mut o, s.track_deg, 2);
        o.push(',');
        if let Some(d) = s.date {
            let _ = write!(o, "{:02}{:02}{:02}", d.day, d.month, d.year % 100);
        }
        o.push(',');
        match s.magnetic_variation_deg {
            Some(v) => {
                let _ = write!(o, "{:.1},{}", v.abs(), if v < 0.0 { 'W' } else { 'E' });
            }
            None => o.push(','),
        }
        o.push(',');
        if let Some(m) = s.mode {
            o.push(char::from(m.letter()));
        }
        finish(&o)
    }

    /// Formats GSA.
    pub fn gsa(s: &Gsa) -> String {
        let mut o = format!("{}GSA,", talker(s.talker));
        if let Some(b) = s.selection {
            o.push(char::from(b));
        }
        o.push(',');
        opt_u(&mut o, s.fix_mode);
        for sat in &s.satellites {
            o.push(',');
            if let Some(p) = sat {
                let _ = write!(o, "{p:02}");
            }
        }
        for d in [s.pdop, s.hdop, s.vdop] {
            o.push(',');
            num(&mut o, d, 2);
        }
        if let Some(id) = s.system_id {
            let _ = write!(o, ",{id:X}");
        }
        finish(&o)
    }

    /// Formats GSV with as many blocks as are `Some` (then trailing `None`s are dropped).
    pub fn gsv(s: &Gsv) -> String {
        let mut o = format!(
            "{}GSV,{},{},",
            talker(s.talker),
            s.total_messages,
            s.message_number
        );
        if let Some(n) = s.satellites_in_view {
            let _ = write!(o, "{n:02}");
        }
        for sat in s.satellites.iter().flatten() {
            let _ = write!(o, ",{:02},", sat.prn);
            num(&mut o, sat.elevation_deg, 0);
            o.push(',');
            if let Some(a) = sat.azimuth_deg {
                let _ = write!(o, "{a:03.0}");
            }
            o.push(',');
            num(&mut o, sat.snr_dbhz, 0);
        }
        if let Some(id) = s.signal_id {
            let _ = write!(o, ",{}", char::from(id));
        }
        finish(&o)
    }

    /// Formats VTG (NMEA 2.3 layout).
    pub fn vtg(s: &Vtg) -> String {
        let mut o = format!("{}VTG,", talker(s.talker));
        num(&mut o, s.track_true_deg, 2);
        o.push_str(",T,");
        num(&mut o, s.track_magnetic_deg, 2);
        o.push_str(",M,");
        num(&mut o, s.speed_knots, 3);
        o.push_str(",N,");
        num(&mut o, s.speed_kmh, 3);
        o.push_str(",K,");
        if let Some(m) = s.mode {
            o.push(char::from(m.letter()));
        }
        finish(&o)
    }

    /// Formats GLL (NMEA 2.3 layout).
    pub fn gll(s: &Gll) -> String {
        let mut o = format!("{}GLL,", talker(s.talker));
        coord(&mut o, s.latitude_deg, 2, 'N', 'S');
        o.push(',');
        coord(&mut o, s.longitude_deg, 3, 'E', 'W');
        o.push(',');
        time(&mut o, s.time);
        o.push(',');
        if let Some(st) = s.status {
            o.push(if st == Status::Valid { 'A' } else { 'V' });
        }
        o.push(',');
        if let Some(m) = s.mode {
            o.push(char::from(m.letter()));
        }
        finish(&o)
    }

    /// Formats any of the six typed sentences.
    pub fn sentence(s: &Sentence<'_>) -> String {
        match s {
            Sentence::Gga(s) => gga(s),
            Sentence::Rmc(s) => rmc(s),
            Sentence::Gsa(s) => gsa(s),
            Sentence::Gsv(s) => gsv(s),
            Sentence::Vtg(s) => vtg(s),
            Sentence::Gll(s) => gll(s),
            Sentence::Other(o) if o.fields.is_empty() => finish(o.address),
            Sentence::Other(o) => finish(&format!("{},{}", o.address, o.fields)),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn close(a: Option<f64>, b: Option<f64>, tol: f64) -> bool {
        match (a, b) {
            (Some(a), Some(b)) => (a - b).abs() <= tol,
            (None, None) => true,
            _ => false,
        }
    }

    #[test]
    fn checksum_of_a_real_gga_matches_its_stated_value() {
        let body = b"GNGGA,171926.00,4404.14063,N,12118.85478,W,1,12,0.91,1147.2,M,-21.3,M,,";
        assert_eq!(checksum(body), 0x44);
    }

    #[test]
    fn parses_real_neo_m8n_gga_with_every_field() {
        let s = parse(
            b"$GNGGA,171926.00,4404.14063,N,12118.85478,W,1,12,0.91,1147.2,M,-21.3,M,,*44\r\n",
        )
        .unwrap();
        let Sentence::Gga(g) = s else { panic!("{s:?}") };
        assert_eq!(g.talker, Talker::Gnss);
        assert_eq!(
            g.time,
            Some(TimeOfDay {
                hour: 17,
                minute: 19,
                second: 26,
                nanosecond: 0
            })
        );
        // gpsd decodes this very sentence to 44.069010500, -121.314246333.
        assert!((g.latitude_deg.unwrap() - 44.069_010_5).abs() < 1e-9);
        assert!((g.longitude_deg.unwrap() + 121.314_246_333).abs() < 1e-9);
        assert_eq!(g.quality, Some(1));
        assert_eq!(g.satellites_used, Some(12));
        assert_eq!(g.hdop, Some(0.91));
        assert_eq!(g.altitude_msl_m, Some(1147.2));
        assert_eq!(g.geoid_separation_m, Some(-21.3));
        assert_eq!(g.dgps_age_s, None);
        assert_eq!(g.dgps_station, None);
    }

    #[test]
    fn parses_nmea_reference_rmc_example_in_southern_western_hemispheres() {
        // Classic example with the hemispheres flipped; variation 3.1 W.
        let body = "GPRMC,225446,A,4916.45,S,12311.12,W,000.5,054.7,191194,020.3,W";
        let line = encode::finish(body);
        let Sentence::Rmc(r) = parse(line.as_bytes()).unwrap() else {
            panic!()
        };
        assert!((r.latitude_deg.unwrap() + (49.0 + 16.45 / 60.0)).abs() < 1e-12);
        assert!((r.longitude_deg.unwrap() + (123.0 + 11.12 / 60.0)).abs() < 1e-12);
        assert_eq!(r.status, Some(Status::Valid));
        assert_eq!(r.speed_knots, Some(0.5));
        assert!((r.speed_mps().unwrap() - 0.257_222).abs() < 1e-6);
        assert_eq!(r.track_deg, Some(54.7));
        assert_eq!(
            r.date,
            Some(Date {
                year: 1994,
                month: 11,
                day: 19
            })
        );
        assert_eq!(r.magnetic_variation_deg, Some(-20.3));
        assert_eq!(r.mode, None);
    }

    #[test]
    fn parses_gsv_with_empty_snr_and_partial_last_group() {
        let Sentence::Gsv(g) = parse(b"$GLGSV,3,3,10,83,27,309,29,84,01,353,*63").unwrap() else {
            panic!()
        };
        assert_eq!(g.talker, Talker::Glonass);
        assert_eq!((g.total_messages, g.message_number), (3, 3));
        assert_eq!(g.satellites_in_view, Some(10));
        assert_eq!(
            g.satellites[1],
            Some(GsvSatellite {
                prn: 84,
                elevation_deg: Some(1.0),
                azimuth_deg: Some(353.0),
                snr_dbhz: None
            })
        );
        assert_eq!(g.satellites[2], None);
    }

    #[test]
    fn parses_gsa_vtg_gll_from_the_capture() {
        let Sentence::Gsa(g) =
            parse(b"$GNGSA,A,3,67,83,76,82,68,,,,,,,,1.56,0.91,1.27*1D").unwrap()
        else {
            panic!()
        };
        assert_eq!(g.used().collect::<Vec<_>>(), [67, 83, 76, 82, 68]);
        assert_eq!(
            (g.fix_mode, g.pdop, g.vdop),
            (Some(3), Some(1.56), Some(1.27))
        );
        let Sentence::Vtg(v) = parse(b"$GNVTG,,T,,M,0.117,N,0.216,K,A*3F").unwrap() else {
            panic!()
        };
        assert_eq!(v.track_true_deg, None);
        assert!((v.speed_mps().unwrap() - 0.117 * 1852.0 / 3600.0).abs() < 1e-12);
        assert_eq!(v.mode, Some(PositioningMode::Autonomous));
        let Sentence::Gll(l) =
            parse(b"$GNGLL,4404.14066,N,12118.85481,W,171925.00,A,A*66").unwrap()
        else {
            panic!()
        };
        assert_eq!(l.status, Some(Status::Valid));
        assert_eq!(l.time.map(|t| t.second), Some(25));
    }

    #[test]
    fn other_well_formed_types_are_not_errors() {
        let line = encode::finish("GPZDA,201530.00,04,07,2002,00,00");
        let Sentence::Other(o) = parse(line.as_bytes()).unwrap() else {
            panic!()
        };
        assert_eq!(o.address, "GPZDA");
        assert_eq!(o.fields().nth(3), Some("2002"));
        let line = encode::finish("PUBX,00,081350.00,4717.113210,N");
        assert!(matches!(parse(line.as_bytes()), Ok(Sentence::Other(_))));
        let line = encode::finish("GNTXT");
        let Ok(Sentence::Other(o)) = parse(line.as_bytes()) else {
            panic!()
        };
        assert_eq!(o.fields().count(), 0);
    }

    #[test]
    fn checksum_problems_are_typed_errors() {
        assert_eq!(
            parse(b"$GNVTG,,T,,M,0.117,N,0.216,K,A*3E"),
            Err(NmeaError::ChecksumMismatch {
                stated: 0x3e,
                computed: 0x3f
            })
        );
        assert_eq!(
            parse(b"$GNVTG,,T,,M,0.117,N,0.216,K,A"),
            Err(NmeaError::MissingChecksum)
        );
        assert_eq!(
            parse(b"$GNVTG,,T,,M,0.117,N,0.216,K,A*3f"),
            Err(NmeaError::BadChecksumSyntax)
        );
        assert_eq!(parse(b"GNVTG,,T*3F"), Err(NmeaError::MissingStart));
        assert_eq!(parse(b"\r\n"), Err(NmeaError::Empty));
        assert_eq!(parse(b"$*00"), Err(NmeaError::BadAddress));
        assert_eq!(
            parse(b"$GPGGA,1*00").map_err(|e| e.kind()),
            Err("checksum_mismatch")
        );
    }

    #[test]
    fn an_83_byte_sentence_is_too_long_and_82_is_not() {
        // 80 bytes before CR LF is the limit.
        let fill = |n: usize| encode::finish(&format!("GPTXT,{}", "x".repeat(n)));
        let ok = fill(80 - 1 - 6 - 3);
        assert_eq!(ok.len(), 82);
        assert!(parse(ok.as_bytes()).is_ok());
        let long = fill(80 - 1 - 6 - 3 + 1);
        assert_eq!(parse(long.as_bytes()), Err(NmeaError::TooLong));
    }

    #[test]
    fn field_counts_and_numeric_syntax_are_checked() {
        let gga = encode::finish("GPGGA,123519,4807.038,N,01131.000,E,1,08,0.9,545.4,M,46.9,M,");
        assert_eq!(
            parse(gga.as_bytes()),
            Err(NmeaError::FieldCount { found: 13 })
        );
        for bad in ["1e3", "inf", "NaN", "1.2.3", "-", ".", "0x1"] {
            let line = encode::finish(&format!(
                "GPGGA,123519,4807.038,N,01131.000,E,1,08,0.9,{bad},M,46.9,M,,"
            ));
            assert_eq!(
                parse(line.as_bytes()),
                Err(NmeaError::BadField { index: 8 }),
                "{bad}"
            );
        }
        let minutes = encode::finish("GPGLL,4861.000,N,01131.000,E,123519,A");
        assert_eq!(
            parse(minutes.as_bytes()),
            Err(NmeaError::BadField { index: 0 })
        );
        let hemisphere = encode::finish("GPGLL,4801.000,E,01131.000,E,123519,A");
        assert_eq!(
            parse(hemisphere.as_bytes()),
            Err(NmeaError::BadField { index: 1 })
        );
        let time = encode::finish("GPGLL,4801.000,N,01131.000,E,243519,A");
        assert_eq!(
            parse(time.as_bytes()),
            Err(NmeaError::BadField { index: 4 })
        );
    }

    #[test]
    fn decimal_parser_is_exact_on_typical_values() {
        for (text, v) in [
            ("0.91", 0.91),
            ("-21.3", -21.3),
            ("12500.0", 12500.0),
            ("007", 7.0),
            ("4.14063", 4.14063),
            ("0.000001", 0.000001),
        ] {
            assert_eq!(parse_decimal(text.as_bytes()), Some(v), "{text}");
        }
        // Beyond the fast path the standard library takes over, still exactly.
        assert_eq!(
            parse_decimal(b"1.00000000000000000000000001"),
            Some(1.000_000_000_000_000_000_000_000_01)
        );
    }

    #[test]
    fn unit_helpers_convert_to_si() {
        assert!((knots_to_mps(1.0) - 0.514_444_444).abs() < 1e-9);
        assert!((kmh_to_mps(36.0) - 10.0).abs() < 1e-12);
        assert!((ddmm_to_degrees(4807.038, Hemisphere::North) - 48.1173).abs() < 1e-9);
        assert!((ddmm_to_degrees(1131.0, Hemisphere::West) + 11.516_666_67).abs() < 1e-8);
    }

    fn arb_talker() -> impl Strategy<Value = Talker> {
        prop_oneof![
            Just(Talker::Gps),
            Just(Talker::Glonass),
            Just(Talker::Galileo),
            Just(Talker::BeidouGb),
            Just(Talker::BeidouBd),
            Just(Talker::Qzss),
            Just(Talker::Gnss),
        ]
    }

    fn arb_time() -> impl Strategy<Value = Option<TimeOfDay>> {
        proptest::option::of((0u8..24, 0u8..60, 0u8..60, 0u32..100).prop_map(
            |(hour, minute, second, cs)| TimeOfDay {
                hour,
                minute,
                second,
                nanosecond: cs * 10_000_000,
            },
        ))
    }

    /// A value with `decimals` decimals, as a receiver would print it.
    fn arb_fixed(lo: i64, hi: i64, decimals: i32) -> impl Strategy<Value = Option<f64>> {
        proptest::option::of((lo..=hi).prop_map(move |v| v as f64 / 10f64.powi(decimals)))
    }

    /// A coordinate on the writer's grid (1e-5 minutes).
    fn arb_coord(max_deg: i64) -> impl Strategy<Value = Option<f64>> {
        proptest::option::of(
            (-(max_deg - 1)..max_deg, 0i64..6_000_000).prop_map(|(d, m)| {
                let v = d.abs() as f64 + m as f64 / 1e5 / 60.0;
                if d < 0 { -v } else { v }
            }),
        )
    }

    fn arb_mode() -> impl Strategy<Value = Option<PositioningMode>> {
        proptest::option::of(prop_oneof![
            Just(PositioningMode::Autonomous),
            Just(PositioningMode::Differential),
            Just(PositioningMode::Estimated),
            Just(PositioningMode::NotValid),
        ])
    }

    fn arb_status() -> impl Strategy<Value = Option<Status>> {
        proptest::option::of(prop_oneof![Just(Status::Valid), Just(Status::Invalid)])
    }

    fn arb_sentence() -> BoxedStrategy<Sentence<'static>> {
        let gga = (
            arb_talker(),
            arb_time(),
            arb_coord(90),
            arb_coord(180),
            proptest::option::of(0u8..9),
            proptest::option::of(0u8..40),
            arb_fixed(0, 9999, 2),
            arb_fixed(-4000, 130_000, 1),
            arb_fixed(-1000, 1000, 1),
        )
            .prop_map(|(talker, time, lat, lon, q, n, hdop, alt, sep)| {
                Sentence::Gga(Gga {
                    talker,
                    time,
                    latitude_deg: lat,
                    longitude_deg: lon,
                    quality: q,
                    satellites_used: n,
                    hdop,
                    altitude_msl_m: alt,
                    geoid_separation_m: sep,
                    dgps_age_s: None,
                    dgps_station: None,
                })
            })
            .boxed();
        let rmc = (
            arb_talker(),
            arb_time(),
            arb_status(),
            arb_coord(90),
            arb_coord(180),
            arb_fixed(0, 999_999, 3),
            arb_fixed(0, 35999, 2),
            proptest::option::of((1980u16..2080, 1u8..13, 1u8..32)),
            arb_fixed(-1800, 1800, 1),
            arb_mode(),
        )
            .prop_map(
                |(talker, time, status, lat, lon, spd, trk, date, var, mode)| {
                    Sentence::Rmc(Rmc {
                        talker,
                        time,
                        status,
                        latitude_deg: lat,
                        longitude_deg: lon,
                        speed_knots: spd,
                        track_deg: trk,
                        date: date.map(|(year, month, day)| Date { year, month, day }),
                        // The writer prints W for negative values: -0.0 would come back as 0.0.
                        magnetic_variation_deg: var.map(|v| if v == 0.0 { 0.0 } else { v }),
                        mode,
                        navigational_status: None,
                    })
                },
            )
            .boxed();
        let gsa = (
            arb_talker(),
            proptest::option::of(prop_oneof![Just(b'A'), Just(b'M')]),
            proptest::option::of(1u8..4),
            proptest::array::uniform12(proptest::option::of(1u16..100)),
            arb_fixed(0, 9999, 2),
            arb_fixed(0, 9999, 2),
            arb_fixed(0, 9999, 2),
            proptest::option::of(1u8..7),
        )
            .prop_map(|(talker, selection, fix_mode, satellites, p, h, v, sys)| {
                Sentence::Gsa(Gsa {
                    talker,
                    selection,
                    fix_mode,
                    satellites,
                    pdop: p,
                    hdop: h,
                    vdop: v,
                    system_id: sys,
                })
            })
            .boxed();
        let sat = (
            1u16..200,
            arb_fixed(0, 90, 0),
            arb_fixed(0, 359, 0),
            arb_fixed(0, 60, 0),
        )
            .prop_map(|(prn, elevation_deg, azimuth_deg, snr_dbhz)| GsvSatellite {
                prn,
                elevation_deg,
                azimuth_deg,
                snr_dbhz,
            });
        let gsv = (
            arb_talker(),
            1u8..10,
            any::<u8>(),
            proptest::option::of(0u16..100),
            proptest::collection::vec(sat, 0..=4),
            proptest::option::of(prop_oneof![Just(b'1'), Just(b'7'), Just(b'B')]),
        )
            .prop_map(|(talker, total, num, inview, sats, signal_id)| {
                let mut satellites = [None; 4];
                for (slot, s) in satellites.iter_mut().zip(sats) {
                    *slot = Some(s);
                }
                Sentence::Gsv(Gsv {
                    talker,
                    total_messages: total,
                    message_number: num % total + 1,
                    satellites_in_view: inview,
                    satellites,
                    signal_id,
                })
            })
            .boxed();
        let vtg = (
            arb_talker(),
            arb_fixed(0, 35999, 2),
            arb_fixed(0, 35999, 2),
            arb_fixed(0, 999_999, 3),
            arb_fixed(0, 999_999, 3),
            arb_mode(),
        )
            .prop_map(|(talker, t, m, n, k, mode)| {
                Sentence::Vtg(Vtg {
                    talker,
                    track_true_deg: t,
                    track_magnetic_deg: m,
                    speed_knots: n,
                    speed_kmh: k,
                    mode,
                })
            })
            .boxed();
        let gll = (
            arb_talker(),
            arb_coord(90),
            arb_coord(180),
            arb_time(),
            arb_status(),
            arb_mode(),
        )
            .prop_map(|(talker, lat, lon, time, status, mode)| {
                Sentence::Gll(Gll {
                    talker,
                    latitude_deg: lat,
                    longitude_deg: lon,
                    time,
                    status,
                    mode,
                })
            })
            .boxed();
        prop_oneof![gga, rmc, gsa, gsv, vtg, gll].boxed()
    }

    /// Equal up to the rounding of decimal printing (coordinates to 1e-5 minutes).
    fn same(a: &Sentence<'_>, b: &Sentence<'_>) -> bool {
        const C: f64 = 1e-9;
        const V: f64 = 1e-9;
        match (a, b) {
            (Sentence::Gga(a), Sentence::Gga(b)) => {
                a.talker == b.talker
                    && a.time == b.time
                    && close(a.latitude_deg, b.latitude_deg, C)
                    && close(a.longitude_deg, b.longitude_deg, C)
                    && a.quality == b.quality
                    && a.satellites_used == b.satellites_used
                    && close(a.hdop, b.hdop, V)
                    && close(a.altitude_msl_m, b.altitude_msl_m, V)
                    && close(a.geoid_separation_m, b.geoid_separation_m, V)
            }
            (Sentence::Rmc(a), Sentence::Rmc(b)) => {
                a.talker == b.talker
                    && a.time == b.time
                    && a.status == b.status
                    && close(a.latitude_deg, b.latitude_deg, C)
                    && close(a.longitude_deg, b.longitude_deg, C)
                    && close(a.speed_knots, b.speed_knots, V)
                    && close(a.track_deg, b.track_deg, V)
                    && a.date == b.date
                    && close(a.magnetic_variation_deg, b.magnetic_variation_deg, V)
                    && a.mode == b.mode
            }
            (Sentence::Gll(a), Sentence::Gll(b)) => {
                a.talker == b.talker
                    && a.time == b.time
                    && a.status == b.status
                    && close(a.latitude_deg, b.latitude_deg, C)
                    && close(a.longitude_deg, b.longitude_deg, C)
                    && a.mode == b.mode
            }
            // GSA, GSV and VTG carry values the writer prints exactly.
            _ => a == b,
        }
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(512))]

        #[test]
        fn arbitrary_bytes_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..100)) {
            let _ = parse(&bytes);
        }

        #[test]
        fn arbitrary_sentence_shaped_text_never_panics(
            body in "[A-Z]{2}(GGA|RMC|GSA|GSV|VTG|GLL)(,[0-9.NSEWAVMTK+-]{0,8}){0,20}",
        ) {
            // Valid checksum, so the field parsers themselves get exercised.
            let _ = parse(encode::finish(&body).as_bytes());
        }

        #[test]
        fn written_sentences_round_trip(s in arb_sentence()) {
            let line = encode::sentence(&s);
            let parsed = parse(line.as_bytes());
            prop_assert!(parsed.is_ok(), "{line:?}: {parsed:?}");
            let parsed = parsed.unwrap();
            prop_assert!(same(&s, &parsed), "{line:?}\n{s:?}\n{parsed:?}");
        }

        #[test]
        fn a_single_changed_byte_is_always_detected(
            s in arb_sentence(),
            at in any::<prop::sample::Index>(),
            mask in 1u8..=255,
        ) {
            let mut line = encode::sentence(&s).into_bytes();
            let i = at.index(line.len());
            line[i] ^= mask;
            prop_assert!(parse(&line).is_err(), "{:?}", String::from_utf8_lossy(&line));
        }
    }
}
