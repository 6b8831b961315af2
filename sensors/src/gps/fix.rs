//! One GNSS fix: everything the receiver said about one navigation epoch, and the
//! assembly of fixes from a stream of NMEA sentences.
//!
//! A receiver sends a burst of sentences per navigation epoch (typically RMC, VTG, GGA,
//! GSA(s), GSV(s), GLL; or GNS and ZDA). [`FixAssembler`] keys an epoch on the UTC time of
//! day of GGA, RMC, GLL, GNS and ZDA, whatever their talkers (a receiver that reports one
//! epoch as GP and GA, or GN and GL, gives one fix); sentences without a time (GSA, GSV,
//! VTG) join the epoch in progress; the last
//! sentence of the receiver's learned cycle, or else a new time, closes the epoch and emits
//! its [`Fix`]; [`FixAssembler::finish`] flushes the last.
//!
//! Lost sentences are expected: the assembler learns the order of the receiver's cycle
//! so that what survives of a damaged epoch is never merged into its neighbour (see
//! [`FixAssembler`]).
//!
//! The date comes from RMC or ZDA, and is carried to later epochs of the same day that
//! lack both. An epoch without GSA gets its fix mode from what it has: GGA quality above 0
//! with altitude is 3D, without altitude 2D (likewise GNS's mode letters, or RMC/GLL
//! status `A` alone is 2D); GGA quality 0, or quality above 0 with zero satellites used,
//! is no fix.
//!
//! Invariants: one `Fix` per epoch; values in SI units; fields the receiver did not send
//! stay `None` (nothing is invented beyond the fix mode derived as above); a `Fix`
//! turns into one [`Reading`] per present quantity, with the position quantities flagged
//! [`Quality::INVALID`] when the receiver said the fix is not valid.

use aloft_protocol::{Quality, Quantity, Reading, SensorId, TimeSource, Timestamp};
use serde::{Serialize, Serializer};

use super::nmea::{self, Sentence, Status, Talker, TimeOfDay};
use crate::Sample;

/// UTC as the receiver reported it. NMEA GGA/GLL/GNS carry only the time of day; RMC
/// and ZDA add the date.
///
/// Serializes as ISO 8601 text: `2015-03-18T17:19:26.000Z` when the date is known,
/// `17:19:26.000Z` when only the time of day is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
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
    #[serde(skip_serializing_if = "Option::is_none")]
    pub elevation_deg: Option<f64>,
    /// Azimuth, degrees from true north.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub azimuth_deg: Option<f64>,
    /// Carrier-to-noise density, dB-Hz; `None` when not tracked.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub snr_dbhz: Option<f64>,
}

/// Everything known about one navigation epoch. Fields a receiver did not send are `None`.
///
/// Serializes (JSON for `aloft-agent replay`) as one flat object that leaves out absent
/// fields, like gpsd's TPV.
#[derive(Debug, Clone, PartialEq, Default, Serialize)]
pub struct Fix {
    /// UTC of the epoch.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub time: Option<GnssTime>,
    /// Latitude, degrees north (WGS 84).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub latitude_deg: Option<f64>,
    /// Longitude, degrees east (WGS 84).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub longitude_deg: Option<f64>,
    /// Altitude above mean sea level, m.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub altitude_msl_m: Option<f64>,
    /// Geoid height above the ellipsoid, m.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub geoid_separation_m: Option<f64>,
    /// Speed over ground, m s-1.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub ground_speed_mps: Option<f64>,
    /// Course over ground, degrees from true north.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub track_deg: Option<f64>,
    /// Vertical speed, m s-1, positive up (UBX only).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub vertical_speed_mps: Option<f64>,
    /// Fix mode.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub mode: Option<FixMode>,
    /// GGA fix quality (0 invalid, 1 GPS, 2 DGPS, ...).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub quality: Option<u8>,
    /// Whether the receiver marked the fix valid (RMC/GLL status `A`, UBX gnssFixOK).
    pub valid: bool,
    /// Satellites used in the solution.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub satellites_used: Option<u8>,
    /// Satellites in view, from GSV (or UBX NAV-SAT).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub satellites: Vec<SatelliteInView>,
    /// Horizontal dilution of precision.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub hdop: Option<f64>,
    /// Vertical dilution of precision.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub vdop: Option<f64>,
    /// Position dilution of precision.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub pdop: Option<f64>,
    /// Receiver's horizontal accuracy estimate, m (UBX only).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub horizontal_accuracy_m: Option<f64>,
    /// Receiver's vertical accuracy estimate, m (UBX only).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub vertical_accuracy_m: Option<f64>,
}

impl GnssTime {
    /// The time of an NMEA sentence, with the date when one is known.
    pub fn from_nmea(date: Option<nmea::Date>, time: TimeOfDay) -> Self {
        GnssTime {
            date: date.map(|d| (d.year, d.month, d.day)),
            hour: time.hour,
            minute: time.minute,
            second: time.second,
            nanosecond: time.nanosecond,
        }
    }

    /// The time of day without the date.
    pub fn time_of_day(&self) -> TimeOfDay {
        TimeOfDay {
            hour: self.hour,
            minute: self.minute,
            second: self.second,
            nanosecond: self.nanosecond,
        }
    }

    /// Nanoseconds since the Unix epoch (UTC), when the date is known.
    ///
    /// A leap second (second 60) maps onto the first second of the next minute, as POSIX
    /// time does. `None` also for a date past 2262, where nanoseconds leave `i64` (a UBX
    /// receiver can send any year up to 65535 in a corrupted NAV-PVT).
    pub fn utc_ns(&self) -> Option<i64> {
        let (year, month, day) = self.date?;
        let days = days_from_civil(i64::from(year), i64::from(month), i64::from(day));
        let seconds = days * 86_400
            + i64::from(self.hour) * 3600
            + i64::from(self.minute) * 60
            + i64::from(self.second);
        seconds
            .checked_mul(1_000_000_000)?
            .checked_add(i64::from(self.nanosecond))
    }
}

/// Days from 1970-01-01 to a proleptic Gregorian date (Howard Hinnant's algorithm); exact
/// for every date, no table, no panic.
fn days_from_civil(year: i64, month: i64, day: i64) -> i64 {
    let y = if month <= 2 { year - 1 } else { year };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let mp = (month + 9) % 12;
    let doy = (153 * mp + 2) / 5 + day - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

impl core::fmt::Display for GnssTime {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        if let Some((y, mo, d)) = self.date {
            write!(f, "{y:04}-{mo:02}-{d:02}T")?;
        }
        write!(f, "{:02}:{:02}:{:02}", self.hour, self.minute, self.second)?;
        // Milliseconds cover every receiver rate; finer fractions keep all nine digits.
        if self.nanosecond.is_multiple_of(1_000_000) {
            write!(f, ".{:03}Z", self.nanosecond / 1_000_000)
        } else {
            write!(f, ".{:09}Z", self.nanosecond)
        }
    }
}

impl Serialize for GnssTime {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_str(self)
    }
}

impl Constellation {
    /// The constellation an NMEA talker speaks for.
    pub fn from_talker(talker: Talker) -> Self {
        match talker {
            Talker::Gps => Constellation::Gps,
            Talker::Glonass => Constellation::Glonass,
            Talker::Galileo => Constellation::Galileo,
            Talker::BeidouGb | Talker::BeidouBd => Constellation::Beidou,
            Talker::Qzss => Constellation::Qzss,
            Talker::Gnss | Talker::Other(_) => Constellation::Mixed,
        }
    }
}

impl FixMode {
    /// The NMEA GSA code: 1 no fix, 2 2D, 3 3D.
    pub fn code(self) -> u8 {
        match self {
            FixMode::NoFix => 1,
            FixMode::TwoD => 2,
            FixMode::ThreeD => 3,
        }
    }

    /// Decodes the GSA code.
    pub fn from_code(code: u8) -> Option<Self> {
        match code {
            1 => Some(FixMode::NoFix),
            2 => Some(FixMode::TwoD),
            3 => Some(FixMode::ThreeD),
            _ => None,
        }
    }
}

impl Fix {
    /// Whether the position is usable: marked valid, and not contradicted by a no-fix mode
    /// or GGA quality 0.
    pub fn has_position_fix(&self) -> bool {
        self.valid && self.mode != Some(FixMode::NoFix) && self.quality != Some(0)
    }

    /// Mean C/N0 of the satellites in view that report one, dB-Hz.
    pub fn mean_snr_dbhz(&self) -> Option<f64> {
        let (sum, n) = self
            .satellites
            .iter()
            .filter_map(|s| s.snr_dbhz)
            .fold((0.0, 0u32), |(sum, n), v| (sum + v, n + 1));
        (n > 0).then(|| sum / f64::from(n))
    }
}

/// Highest altitude a u-blox M8/M9 is rated for (operational limit, Airborne models), m.
pub const MAX_RATED_ALTITUDE_M: f64 = 50_000.0;

/// Highest speed a u-blox M8/M9 is rated for (operational limit), m s-1.
pub const MAX_RATED_SPEED_MPS: f64 = 500.0;

fn beyond(value: Option<f64>, limit: f64) -> Quality {
    if value.is_some_and(|v| v > limit) {
        Quality::OUT_OF_RANGE
    } else {
        Quality::GOOD
    }
}

impl Sample for Fix {
    fn push_readings(&self, sensor: SensorId, time: Timestamp, out: &mut Vec<Reading>) {
        let time = match self.time.and_then(|t| t.utc_ns()) {
            Some(utc) => Timestamp::with_utc(time.mono_ns, utc, TimeSource::Gnss),
            None => time,
        };
        let solution = if self.has_position_fix() {
            Quality::GOOD
        } else {
            Quality::INVALID
        };
        let in_view = (!self.satellites.is_empty()).then_some(self.satellites.len() as f64);
        let values = [
            (Quantity::Latitude, self.latitude_deg, solution),
            (Quantity::Longitude, self.longitude_deg, solution),
            (
                Quantity::AltitudeMsl,
                self.altitude_msl_m,
                solution | beyond(self.altitude_msl_m, MAX_RATED_ALTITUDE_M),
            ),
            (Quantity::GeoidSeparation, self.geoid_separation_m, solution),
            (
                Quantity::GroundSpeed,
                self.ground_speed_mps,
                solution | beyond(self.ground_speed_mps, MAX_RATED_SPEED_MPS),
            ),
            (Quantity::Track, self.track_deg, solution),
            (Quantity::VerticalSpeed, self.vertical_speed_mps, solution),
            (
                Quantity::FixMode,
                self.mode.map(|m| f64::from(m.code())),
                Quality::GOOD,
            ),
            (
                Quantity::FixQuality,
                self.quality.map(f64::from),
                Quality::GOOD,
            ),
            (
                Quantity::SatellitesUsed,
                self.satellites_used.map(f64::from),
                Quality::GOOD,
            ),
            (Quantity::SatellitesInView, in_view, Quality::GOOD),
            (Quantity::MeanSnr, self.mean_snr_dbhz(), Quality::GOOD),
            (Quantity::Hdop, self.hdop, Quality::GOOD),
            (Quantity::Vdop, self.vdop, Quality::GOOD),
            (Quantity::Pdop, self.pdop, Quality::GOOD),
            (
                Quantity::HorizontalAccuracy,
                self.horizontal_accuracy_m,
                Quality::GOOD,
            ),
            (
                Quantity::VerticalAccuracy,
                self.vertical_accuracy_m,
                Quality::GOOD,
            ),
        ];
        out.extend(values.into_iter().filter_map(|(quantity, value, quality)| {
            value.map(|value| Reading {
                sensor,
                quantity,
                time,
                value,
                quality,
            })
        }));
    }
}

/// Which GSV group a satellite came from: a talker, and on NMEA 4.11 a signal.
type GsvGroup = (Talker, Option<u8>);

/// The epoch being assembled.
#[derive(Debug, Default)]
struct Epoch {
    fix: Fix,
    /// UTC time of day of the epoch, from the first timed sentence.
    key: Option<TimeOfDay>,
    date: Option<nmea::Date>,
    /// Which sentence types (GGA 1, RMC 2, GLL 4, VTG 8, GNS 16, ZDA 32) the epoch has
    /// seen.
    seen: u8,
    /// The epoch's first sentence carried its time (it is not a fragment).
    opened_by_time: bool,
    /// Stragglers of the epoch of this time, already closed at its cycle's end: the
    /// fragment takes no time, and the next epoch's first timed sentence closes it.
    straggler_of: Option<TimeOfDay>,
    /// The sentences of the epoch, in arrival order (first occurrences).
    order: Vec<Signature>,
    /// Place in the learned cycle of the latest sentence that has one.
    rank: Option<usize>,
    /// Status letters of RMC/GLL: `Some(false)` once any said V.
    status_valid: Option<bool>,
    gga_used: Option<u8>,
    gsa_used: Option<u16>,
    /// GNS mode letters: `Some(true)` once any GNS showed a constellation in the fix.
    gns_valid: Option<bool>,
    /// A GGA said quality above 0 with zero satellites used: not a fix.
    gga_without_satellites: bool,
    /// The position came from a GGA; `true` when from a combined (GN) solution.
    position_from_gga: Option<bool>,
    /// The group of each entry of `fix.satellites`, in step with it.
    satellite_groups: Vec<GsvGroup>,
    /// Next expected GSV part per group, to notice lost parts.
    gsv_next: Vec<(GsvGroup, u8)>,
}

/// What kind of sentence (GGA 1, RMC 2, GLL 3, VTG 4, GSA 5, GSV 6, GNS 7, ZDA 8), from which talker,
/// which GSV part, which GSA system or GSV signal (NMEA 4.11): to learn the order of a
/// receiver's cycle.
type Signature = (u8, Talker, u8, Option<u8>);

fn signature(sentence: &Sentence<'_>) -> Option<Signature> {
    match sentence {
        Sentence::Gga(s) => Some((1, s.talker, 0, None)),
        Sentence::Rmc(s) => Some((2, s.talker, 0, None)),
        Sentence::Gll(s) => Some((3, s.talker, 0, None)),
        Sentence::Vtg(s) => Some((4, s.talker, 0, None)),
        Sentence::Gsa(s) => Some((5, s.talker, 0, s.system_id)),
        Sentence::Gsv(s) => Some((6, s.talker, s.message_number, s.signal_id)),
        Sentence::Gns(s) => Some((7, s.talker, 0, None)),
        Sentence::Zda(s) => Some((8, s.talker, 0, None)),
        Sentence::Other(_) => None,
    }
}

/// Assembles one [`Fix`] per navigation epoch from parsed NMEA sentences.
///
/// Feed every sentence with [`push`](FixAssembler::push) (the `Other` ones are ignored);
/// a sentence with a new time of day closes the epoch and returns its fix. Call
/// [`finish`](FixAssembler::finish) at the end of the stream for the last one.
///
/// Lost sentences must not move data into the wrong epoch. So, much as gpsd learns
/// which sentence ends a receiver's cycle, the assembler learns the order of the cycle
/// from the last whole epoch (RMC, VTG, GGA, GSA, GSV..., GLL on a u-blox). A sentence
/// without a time that comes earlier in that order than its predecessor opens the next
/// epoch, even when that epoch's timed sentences were lost; a fragment of a damaged
/// epoch is then emitted as a fix without time instead of lending its values to the
/// next one. A second GGA, RMC, GLL, VTG, GNS or ZDA of the same talker in one epoch, or a
/// GSV group that already ended, also opens the next one, so an epoch without any time (a receiver without a
/// fix sends empty time fields) never grows without bound.
///
/// Once the cycle is known, the sentence that ends it (GLL on a u-blox) closes its epoch
/// at once, as gpsd reports at its learned cycle ender: the fix comes out when its burst
/// ends, not an interval later with the next epoch's first sentence, and the reader knows
/// the line is quiet until the next burst ([`FixAssembler::between_epochs`]). A sentence
/// that still belongs to an epoch closed this way (its time, or a kind the cycle does not
/// know) is a straggler: a timed one starts a fragment without time, like a damaged
/// epoch's, so no epoch yields two fixes; a time-less one of a kind the closed epoch lacked
/// is late (a GSA, GSV page or VTG printed after the usual end) and is dropped, so it
/// neither makes a fix of its own nor lends its values (a no-fix GSA) to the next epoch. A straggler of a kind the cycle lacks becomes the cycle's new
/// end; a timed one shows an order that is not fixed, and epochs then close on the next
/// time only.
#[derive(Debug, Default)]
pub struct FixAssembler {
    epoch: Option<Epoch>,
    /// The learned order of the receiver's cycle.
    cycle: Vec<Signature>,
    /// The time of the epoch last closed by its cycle's last sentence, until a sentence
    /// of the next epoch arrives.
    closed_at_end: Option<TimeOfDay>,
    /// The sentences of that epoch, to tell its late sentences from the next epoch's.
    closed_order: Vec<Signature>,
    /// A timed sentence came after its epoch's cycle end: this receiver's order is not
    /// fixed, so epochs close on the next time only.
    end_unreliable: bool,
    /// The latest RMC or ZDA date and the time of day it was given at: carried to
    /// following epochs of the same day that lack both.
    last_date: Option<(TimeOfDay, nmea::Date)>,
}

/// Longest cycle remembered: 7 talkers' GSV groups of up to 9 parts fit with room.
const MAX_CYCLE: usize = 128;

/// How long a date is carried forward to epochs without RMC: a receiver that sends RMC at
/// all sends it far more often, and a longer silence may hide a midnight.
const DATE_CARRY_NS: i64 = 600 * 1_000_000_000;

fn ns_of_day(t: TimeOfDay) -> i64 {
    (i64::from(t.hour) * 3600 + i64::from(t.minute) * 60 + i64::from(t.second)) * 1_000_000_000
        + i64::from(t.nanosecond)
}

impl FixAssembler {
    /// An assembler with no epoch in progress.
    pub fn new() -> Self {
        FixAssembler::default()
    }

    /// Adds one sentence; returns the fix of the epoch it closes: the previous one when
    /// this sentence starts a new epoch, or its own when it ends the receiver's cycle.
    pub fn push(&mut self, sentence: &Sentence<'_>) -> Option<Fix> {
        let bit = match sentence {
            Sentence::Gga(_) => 1,
            Sentence::Rmc(_) => 2,
            Sentence::Gll(_) => 4,
            Sentence::Vtg(_) => 8,
            Sentence::Gns(_) => 16,
            Sentence::Zda(_) => 32,
            Sentence::Other(_) => return None,
            _ => 0,
        };
        let time = sentence.time();
        let signature = signature(sentence);
        let rank = signature.and_then(|sig| self.cycle.iter().position(|c| *c == sig));
        if let (Some(_), None, Some(sig)) = (self.closed_at_end, time, signature)
            && !self.closed_order.contains(&sig)
        {
            // A time-less sentence the epoch just closed lacked, before anything of the
            // next one: a late sentence of the closed epoch (a GSA, GSV page or VTG the
            // receiver printed after its usual end). Its fix is out; the sentence must not
            // become a fix of its own nor lend its values to the next epoch. A kind the
            // cycle lacks becomes the cycle's new end, so later epochs wait for it.
            if rank.is_none() && self.cycle.len() < MAX_CYCLE {
                self.cycle.push(sig);
            }
            tracing::debug!(
                kind = sig.0,
                "Time-less sentence after its epoch closed; dropped as late."
            );
            return None;
        }
        let straggler_of = self.closed_at_end.take().filter(|&key| match time {
            Some(t) => t == key,
            None => rank.is_none(),
        });
        if straggler_of.is_some() {
            match (time, signature) {
                // A kind the cycle lacks came last: it is the cycle's new end.
                (None, Some(sig)) if self.cycle.len() < MAX_CYCLE => self.cycle.push(sig),
                _ => self.end_unreliable = true,
            }
        }
        let mut time_changed = false;
        let closes = self
            .epoch
            .as_ref()
            .is_some_and(|epoch| match (epoch.key, time) {
                (Some(key), Some(t)) => {
                    time_changed = key != t;
                    time_changed
                }
                (None, Some(t)) if epoch.straggler_of.is_some_and(|of| of != t) => true,
                _ => {
                    // Of the same talker: one epoch may carry the same kind from several.
                    (epoch.seen & bit != 0
                        && signature.is_some_and(|sig| epoch.order.contains(&sig)))
                        || matches!(sentence, Sentence::Gsv(g) if epoch.gsv_group_complete(g))
                        || matches!((rank, epoch.rank), (Some(r), Some(last)) if r < last)
                }
            });
        let closed = if closes {
            if time_changed {
                self.learn_cycle();
            }
            self.close()
        } else {
            None
        };
        let epoch = self.epoch.get_or_insert_with(|| Epoch {
            opened_by_time: time.is_some() && straggler_of.is_none(),
            straggler_of,
            ..Epoch::default()
        });
        if epoch.key.is_none() && epoch.straggler_of.is_none() {
            epoch.key = time;
        }
        epoch.seen |= bit;
        if let Some(sig) = signature
            && !epoch.order.contains(&sig)
        {
            epoch.order.push(sig);
        }
        if rank.is_some() {
            epoch.rank = rank;
        }
        epoch.apply(sentence);
        let ends_cycle =
            !self.end_unreliable && signature.is_some() && signature.as_ref() == self.cycle.last();
        if closed.is_none()
            && ends_cycle
            && let Some(key) = epoch.key
        {
            self.closed_order.clone_from(&epoch.order);
            self.learn_cycle();
            self.closed_at_end = Some(key);
            return self.close();
        }
        closed
    }

    /// Whether the last epoch closed at the end of the receiver's cycle and nothing of
    /// the next one has arrived: the receiver is between bursts.
    pub fn between_epochs(&self) -> bool {
        self.epoch.is_none() && self.closed_at_end.is_some()
    }

    /// Closes the epoch in progress, if any, and returns its fix.
    pub fn finish(&mut self) -> Option<Fix> {
        self.close()
    }

    /// Called when a time change closes an epoch: an epoch that began with its time shows
    /// the receiver's order. Sentences it lacks (lost, or not sent every epoch) keep their
    /// place from earlier epochs.
    fn learn_cycle(&mut self) {
        let Some(epoch) = self.epoch.as_mut().filter(|e| e.opened_by_time) else {
            return;
        };
        let mut cycle = core::mem::take(&mut epoch.order);
        for (i, sig) in self.cycle.iter().enumerate() {
            if cycle.contains(sig) {
                continue;
            }
            let at = self.cycle[..i]
                .iter()
                .rev()
                .find_map(|p| cycle.iter().position(|c| c == p))
                .map_or(0, |p| p + 1);
            cycle.insert(at, *sig);
        }
        // Hostile input could invent talkers without end; a real cycle is far shorter.
        cycle.truncate(MAX_CYCLE);
        self.cycle = cycle;
    }

    fn close(&mut self) -> Option<Fix> {
        let epoch = self.epoch.take()?;
        let derived_mode = epoch.derived_mode();
        let mut fix = epoch.fix;
        let date = match (epoch.date, epoch.key, self.last_date) {
            (Some(date), _, _) => Some(date),
            (None, Some(key), Some((at, date))) => {
                let since = ns_of_day(key) - ns_of_day(at);
                (0..DATE_CARRY_NS).contains(&since).then_some(date)
            }
            _ => None,
        };
        if let (Some(date), Some(key)) = (epoch.date, epoch.key) {
            self.last_date = Some((key, date));
        }
        fix.time = epoch.key.map(|key| GnssTime::from_nmea(date, key));
        fix.satellites_used = match (epoch.gga_used, epoch.gsa_used) {
            // GGA caps at 12 on many receivers; the GSAs list every system's satellites.
            (Some(g), Some(s)) => Some(u8::try_from(s).unwrap_or(u8::MAX).max(g)),
            (g, s) => g.or(s.map(|s| u8::try_from(s).unwrap_or(u8::MAX))),
        };
        fix.valid = match (epoch.status_valid, epoch.gns_valid) {
            (Some(v), _) | (None, Some(v)) => v,
            (None, None) => fix.quality.is_some_and(|q| q > 0),
        } && !epoch.gga_without_satellites;
        if fix.mode.is_none() {
            fix.mode = derived_mode;
        }
        Some(fix)
    }
}

fn fill<T>(slot: &mut Option<T>, value: Option<T>) {
    if slot.is_none() {
        *slot = value;
    }
}

impl Epoch {
    fn apply(&mut self, sentence: &Sentence<'_>) {
        let fix = &mut self.fix;
        match sentence {
            Sentence::Gga(g) => {
                // GGA is the receiver's primary position sentence: it wins over RMC/GLL.
                // Of several talkers' GGAs, the first wins, unless a later one is the
                // combined (GN) solution and the first was not.
                let combined = g.talker == Talker::Gnss;
                if g.latitude_deg.is_some()
                    && g.longitude_deg.is_some()
                    && self.position_from_gga.is_none_or(|was| combined && !was)
                {
                    fix.latitude_deg = g.latitude_deg;
                    fix.longitude_deg = g.longitude_deg;
                    self.position_from_gga = Some(combined);
                }
                if g.quality.is_some_and(|q| q > 0) && g.satellites_used == Some(0) {
                    self.gga_without_satellites = true;
                }
                fill(&mut fix.altitude_msl_m, g.altitude_msl_m);
                fill(&mut fix.geoid_separation_m, g.geoid_separation_m);
                fill(&mut fix.quality, g.quality);
                fill(&mut fix.hdop, g.hdop);
                fill(&mut self.gga_used, g.satellites_used);
            }
            Sentence::Rmc(r) => {
                fill(&mut fix.latitude_deg, r.latitude_deg);
                fill(&mut fix.longitude_deg, r.longitude_deg);
                fill(&mut fix.ground_speed_mps, r.speed_mps());
                fill(&mut fix.track_deg, r.track_deg);
                fill(&mut self.date, r.date);
                self.status(r.status);
            }
            Sentence::Gll(l) => {
                fill(&mut fix.latitude_deg, l.latitude_deg);
                fill(&mut fix.longitude_deg, l.longitude_deg);
                self.status(l.status);
            }
            Sentence::Vtg(v) => {
                fill(&mut fix.ground_speed_mps, v.speed_mps());
                fill(&mut fix.track_deg, v.track_true_deg);
            }
            Sentence::Gsa(g) => {
                fill(&mut fix.mode, g.fix_mode.and_then(FixMode::from_code));
                fill(&mut fix.pdop, g.pdop);
                fill(&mut fix.hdop, g.hdop);
                fill(&mut fix.vdop, g.vdop);
                let used = u16::try_from(g.used().count()).unwrap_or(u16::MAX);
                self.gsa_used = Some(self.gsa_used.unwrap_or(0).saturating_add(used));
            }
            Sentence::Gsv(g) => self.gsv(g),
            Sentence::Gns(g) => {
                fill(&mut fix.latitude_deg, g.latitude_deg);
                fill(&mut fix.longitude_deg, g.longitude_deg);
                fill(&mut fix.altitude_msl_m, g.altitude_msl_m);
                fill(&mut fix.geoid_separation_m, g.geoid_separation_m);
                fill(&mut fix.hdop, g.hdop);
                fill(&mut self.gga_used, g.satellites_used);
                // Each talker's GNS may mark other constellations `N`: any constellation
                // in the fix makes the epoch's GNS valid.
                if !g.modes.is_empty() {
                    self.gns_valid = Some(self.gns_valid.unwrap_or(false) || g.modes.any_fix());
                }
            }
            Sentence::Zda(z) => fill(&mut self.date, z.date),
            Sentence::Other(_) => {}
        }
    }

    /// The fix mode of an epoch without GSA, from the sentences it has: GGA's quality and
    /// satellites, else GNS's mode letters, else RMC/GLL status; 3D when an altitude came
    /// with a fix. `None` when nothing says.
    fn derived_mode(&self) -> Option<FixMode> {
        let fix = &self.fix;
        let position = fix.latitude_deg.is_some() && fix.longitude_deg.is_some();
        let dimensions = || {
            if fix.altitude_msl_m.is_some() {
                FixMode::ThreeD
            } else {
                FixMode::TwoD
            }
        };
        if self.gga_without_satellites {
            return Some(FixMode::NoFix);
        }
        match (fix.quality, self.gns_valid, self.status_valid) {
            (Some(0), ..) => Some(FixMode::NoFix),
            (Some(_), ..) | (None, Some(true), _) => Some(if position {
                dimensions()
            } else {
                FixMode::NoFix
            }),
            (None, Some(false), _) | (None, None, Some(false)) => Some(FixMode::NoFix),
            (None, None, Some(true)) => position.then_some(FixMode::TwoD),
            (None, None, None) => None,
        }
    }

    fn status(&mut self, status: Option<Status>) {
        if let Some(s) = status {
            let valid = s == Status::Valid;
            self.status_valid = Some(self.status_valid.unwrap_or(true) && valid);
        }
    }

    /// Whether this GSV's group already sent its last part in this epoch.
    fn gsv_group_complete(&self, g: &nmea::Gsv) -> bool {
        self.gsv_next
            .iter()
            .any(|(k, n)| *k == (g.talker, g.signal_id) && *n > g.total_messages)
    }

    fn gsv(&mut self, g: &nmea::Gsv) {
        let group = (g.talker, g.signal_id);
        let expected = self
            .gsv_next
            .iter()
            .find(|(k, _)| *k == group)
            .map_or(1, |(_, n)| *n);
        if g.message_number == 1 {
            // A group starting again after a lost last part replaces its earlier
            // satellites instead of listing them twice.
            let mut groups = self.satellite_groups.iter();
            self.fix
                .satellites
                .retain(|_| groups.next().is_none_or(|k| *k != group));
            self.satellite_groups.retain(|k| *k != group);
        } else if g.message_number != expected {
            tracing::debug!(
                talker = ?g.talker,
                part = g.message_number,
                expected,
                "GSV part out of sequence; a part was lost."
            );
        }
        self.gsv_next.retain(|(k, _)| *k != group);
        self.gsv_next
            .push((group, g.message_number.saturating_add(1)));
        let constellation = Constellation::from_talker(g.talker);
        for s in g.satellites.iter().flatten() {
            // NMEA 4.11 lists a satellite once per signal (L1, L2, ...): it is one
            // satellite in view, listed with its first signal.
            let listed = self.fix.satellites.iter().zip(&self.satellite_groups).any(
                |(sat, (talker, signal))| {
                    *talker == g.talker
                        && *signal != g.signal_id
                        && sat.prn == s.prn
                        && sat.constellation == constellation
                },
            );
            if listed {
                continue;
            }
            self.fix.satellites.push(SatelliteInView {
                constellation,
                prn: s.prn,
                elevation_deg: s.elevation_deg,
                azimuth_deg: s.azimuth_deg,
                snr_dbhz: s.snr_dbhz,
            });
            self.satellite_groups.push(group);
        }
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn utc_of_a_year_past_2262_is_unknown_not_an_overflow() {
        let far = super::GnssTime {
            date: Some((65_535, 12, 31)),
            hour: 23,
            minute: 59,
            second: 60,
            nanosecond: 999_999_999,
        };
        assert_eq!(far.utc_ns(), None);
        let last = super::GnssTime {
            date: Some((2262, 4, 11)),
            ..far
        };
        assert_eq!(last.utc_ns(), None);
        let fine = super::GnssTime {
            date: Some((2262, 4, 10)),
            hour: 0,
            ..far
        };
        assert!(fine.utc_ns().is_some());
    }

    use super::*;
    use crate::gps::nmea::{encode, parse};

    /// Two full epochs and the start of a third, as the NEO-M8N capture has them.
    const NEO_M8N: &str = "\
$GNRMC,171926.00,A,4404.14063,N,12118.85478,W,0.117,,180315,,,A*76
$GNVTG,,T,,M,0.117,N,0.216,K,A*3F
$GNGGA,171926.00,4404.14063,N,12118.85478,W,1,12,0.91,1147.2,M,-21.3,M,,*44
$GNGSA,A,3,01,11,31,14,22,32,04,25,03,,,,1.56,0.91,1.27*15
$GNGSA,A,3,67,83,76,82,68,,,,,,,,1.56,0.91,1.27*1D
$GPGSV,4,1,13,01,53,280,36,03,29,301,24,04,55,223,37,08,38,166,16*7C
$GPGSV,4,2,13,11,40,245,29,12,05,034,,14,43,055,30,17,06,324,*74
$GPGSV,4,3,13,22,24,112,25,23,08,249,,25,12,069,22,31,58,133,24*7A
$GPGSV,4,4,13,32,76,331,31*48
$GLGSV,3,1,10,66,37,078,26,67,62,349,26,68,20,296,24,75,04,018,*6E
$GLGSV,3,2,10,76,43,057,25,77,43,139,26,78,04,176,19,82,25,245,25*64
$GLGSV,3,3,10,83,27,309,29,84,01,353,*63
$GNGLL,4404.14063,N,12118.85478,W,171926.00,A,A*66
$GNRMC,171927.00,A,4404.14058,N,12118.85475,W,0.084,,180315,,,A*79
$GNVTG,,T,,M,0.084,N,0.156,K,A*33
$GNGGA,171927.00,4404.14058,N,12118.85475,W,1,12,0.91,1147.0,M,-21.3,M,,*42
";

    fn assemble(text: &str) -> Vec<Fix> {
        let mut a = FixAssembler::new();
        let mut fixes: Vec<Fix> = text
            .lines()
            .filter_map(|l| a.push(&parse(l.as_bytes()).unwrap()))
            .collect();
        fixes.extend(a.finish());
        fixes
    }

    #[test]
    fn neo_m8n_epoch_assembles_into_one_fix_with_every_sentence() {
        let fixes = assemble(NEO_M8N);
        assert_eq!(fixes.len(), 2);
        let f = &fixes[0];
        let t = f.time.unwrap();
        assert_eq!(t.date, Some((2015, 3, 18)));
        assert_eq!((t.hour, t.minute, t.second, t.nanosecond), (17, 19, 26, 0));
        assert_eq!(t.utc_ns(), Some(1_426_699_166_000_000_000));
        assert!((f.latitude_deg.unwrap() - 44.069_010_5).abs() < 1e-9);
        assert!((f.longitude_deg.unwrap() + 121.314_246_333).abs() < 1e-9);
        assert_eq!(f.altitude_msl_m, Some(1147.2));
        assert_eq!(f.geoid_separation_m, Some(-21.3));
        // gpsd says 0.060 m/s for 0.117 kn.
        assert!((f.ground_speed_mps.unwrap() - 0.060).abs() < 5e-4);
        assert_eq!(f.track_deg, None);
        assert_eq!(f.mode, Some(FixMode::ThreeD));
        assert_eq!(f.quality, Some(1));
        assert!(f.valid);
        // GGA says 12 (its cap); the two GSAs list 9 + 5, as gpsd's uSat 14.
        assert_eq!(f.satellites_used, Some(14));
        assert_eq!(
            (f.hdop, f.pdop, f.vdop),
            (Some(0.91), Some(1.56), Some(1.27))
        );
        // 13 GPS + 10 GLONASS, as gpsd's nSat 23.
        assert_eq!(f.satellites.len(), 23);
        assert_eq!(
            f.satellites
                .iter()
                .filter(|s| s.constellation == Constellation::Glonass)
                .count(),
            10
        );
        assert_eq!(f.satellites[12].prn, 32);
        // The last epoch is flushed by finish().
        assert_eq!(fixes[1].time.map(|t| t.second), Some(27));
        assert_eq!(fixes[1].altitude_msl_m, Some(1147.0));
    }

    #[test]
    fn a_gsv_group_that_ended_and_starts_again_opens_the_next_epoch() {
        // The next epoch's RMC, VTG, GGA and GSAs were lost: its GSVs are not this epoch's.
        let text = format!(
            "{}\n{}",
            NEO_M8N.lines().take(12).collect::<Vec<_>>().join("\n"),
            NEO_M8N
                .lines()
                .skip(5)
                .take(4)
                .collect::<Vec<_>>()
                .join("\n")
        );
        let fixes = assemble(&text);
        assert_eq!(fixes.len(), 2);
        assert_eq!(fixes[0].satellites.len(), 23);
        assert_eq!(fixes[1].time, None);
        assert_eq!(fixes[1].satellites.len(), 13);
    }

    #[test]
    fn a_gsv_group_restarting_before_its_end_replaces_its_satellites() {
        let lines: Vec<&str> = NEO_M8N.lines().collect();
        // Part 4 of the GPS group was lost and the group starts over.
        let text = [&lines[..8], &lines[5..9]].concat().join("\n");
        let fixes = assemble(&text);
        assert_eq!(fixes.len(), 1);
        assert_eq!(fixes[0].satellites.len(), 13);
    }

    #[test]
    fn lost_timed_sentences_do_not_lend_values_to_the_next_epoch() {
        let lines: Vec<&str> = NEO_M8N.lines().collect();
        let epoch = |t: &str, knots: &str| -> Vec<String> {
            lines[..13]
                .iter()
                .map(|l| {
                    let body = &l[1..l.len() - 3];
                    let body = body.replace("171926.00", t).replace("0.117", knots);
                    encode::finish(&body)
                })
                .collect()
        };
        let mut stream = Vec::new();
        // Two whole epochs: the second one shows the assembler the receiver's order.
        stream.extend(epoch("171926.00", "0.100"));
        stream.extend(epoch("171927.00", "0.200"));
        // The third epoch loses RMC, GGA and GLL: only its VTG and satellites arrive.
        let third = epoch("171928.00", "0.300");
        stream.extend(
            third
                .iter()
                .filter(|l| !(l.contains("RMC") || l.contains("GGA") || l.contains("GLL")))
                .cloned(),
        );
        stream.extend(epoch("171929.00", "0.400"));
        let fixes = assemble(&stream.concat());
        let seconds: Vec<Option<u8>> = fixes.iter().map(|f| f.time.map(|t| t.second)).collect();
        assert_eq!(seconds, [Some(26), Some(27), None, Some(29)]);
        let knots = |f: &Fix| (f.ground_speed_mps.unwrap() / nmea::MPS_PER_KNOT * 1e3).round();
        assert_eq!(knots(&fixes[1]), 200.0);
        assert_eq!(knots(&fixes[2]), 300.0);
        assert_eq!(fixes[2].latitude_deg, None);
        assert_eq!(knots(&fixes[3]), 400.0);
    }

    /// The second of each fix's time.
    fn seconds(fixes: &[Fix]) -> Vec<Option<u8>> {
        fixes.iter().map(|f| f.time.map(|t| t.second)).collect()
    }

    /// The NEO-M8N capture's first epoch at time of day `t` (hhmmss.ss), every line.
    fn neo_m8n_epoch(t: &str) -> Vec<String> {
        NEO_M8N
            .lines()
            .take(13)
            .map(|l| l.replace("171926.00", t))
            .map(|l| encode::finish(&l[1..l.len() - 3]))
            .collect()
    }

    #[test]
    fn once_the_cycle_is_known_its_last_sentence_closes_the_epoch() {
        let mut a = FixAssembler::new();
        let push = |a: &mut FixAssembler, line: &str| a.push(&parse(line.as_bytes()).unwrap());
        // The first epoch teaches the cycle; its fix comes with the next epoch's RMC.
        let first = neo_m8n_epoch("171926.00");
        assert!(first.iter().all(|l| push(&mut a, l).is_none()));
        let second = neo_m8n_epoch("171927.00");
        let (gll, rest) = second.split_last().unwrap();
        let fixes: Vec<Fix> = rest.iter().filter_map(|l| push(&mut a, l)).collect();
        assert_eq!(fixes.len(), 1);
        assert_eq!(fixes[0].time.map(|t| t.second), Some(26));
        assert!(!a.between_epochs());
        // The second epoch's GLL ends the cycle: its fix comes at once.
        let fix = push(&mut a, gll).expect("closed by its last sentence");
        assert_eq!(fix.time.map(|t| t.second), Some(27));
        assert_eq!(fix.satellites.len(), 23);
        assert_eq!(fix.satellites_used, Some(14));
        assert!(a.between_epochs());
        let third = neo_m8n_epoch("171928.00");
        assert_eq!(push(&mut a, &third[0]), None);
        assert!(!a.between_epochs());
        assert_eq!(a.finish().and_then(|f| f.time).map(|t| t.second), Some(28));
    }

    #[test]
    fn a_late_sentence_after_the_cycles_end_is_no_fix_of_its_own_and_the_cycle_learns_it() {
        // From the third epoch on, the receiver adds a sentence after GLL (a GPS GSV
        // page the cycle has not seen, as when more satellites rise).
        let straggler = encode::finish("GPGSV,5,5,17,33,10,100,20");
        let mut stream = Vec::new();
        for (n, t) in [
            "171926.00",
            "171927.00",
            "171928.00",
            "171929.00",
            "171930.00",
        ]
        .into_iter()
        .enumerate()
        {
            stream.extend(neo_m8n_epoch(t));
            if n >= 2 {
                stream.push(straggler.clone());
            }
        }
        let fixes = assemble(&stream.concat());
        // The third epoch closed at GLL before its straggler came: the straggler is late,
        // never a second fix of 28 nor a fix without time, and it becomes the cycle's new
        // end, so from then on each epoch is whole again.
        assert_eq!(
            seconds(&fixes),
            [Some(26), Some(27), Some(28), Some(29), Some(30)]
        );
        assert_eq!(fixes[2].satellites.len(), 23);
        assert_eq!(fixes[3].satellites.len(), 24);
        assert_eq!(fixes[4].satellites.len(), 24);
    }

    #[test]
    fn a_timed_straggler_ends_early_closing_and_each_epoch_still_yields_one_fix() {
        let mut stream = Vec::new();
        for t in ["171926.00", "171927.00", "171928.00", "171929.00"] {
            let epoch = neo_m8n_epoch(t);
            // This receiver repeats its GGA after GLL from the second epoch on.
            let gga = epoch[2].clone();
            stream.extend(epoch);
            if t != "171926.00" {
                stream.push(gga);
            }
        }
        let fixes = assemble(&stream.concat());
        assert_eq!(
            seconds(&fixes),
            [Some(26), Some(27), None, Some(28), Some(29)]
        );
        assert!(
            fixes[2].latitude_deg.is_some(),
            "the straggler's values are kept"
        );
    }

    #[test]
    fn nmea_411_gsv_groups_per_signal_list_each_satellite_once() {
        // A u-blox F9 (NMEA 4.11): GPS satellites on L1 (signal 1) and L2 (signal 6),
        // system ids on GSA, for three epochs.
        let epoch = |s: u8| {
            [
                format!("GNRMC,1200{s:02}.00,A,4404.14063,S,12118.85478,W,50.0,,180325,,,A,V"),
                format!(
                    "GNGGA,1200{s:02}.00,4404.14063,S,12118.85478,W,1,08,0.9,12500.0,M,10.0,M,,"
                ),
                "GNGSA,A,3,01,11,31,,,,,,,,,,1.5,0.9,1.2,1".to_owned(),
                "GNGSA,A,3,67,83,,,,,,,,,,,1.5,0.9,1.2,2".to_owned(),
                "GPGSV,2,1,05,01,53,280,36,11,40,245,29,31,58,133,24,14,43,055,30,1".to_owned(),
                "GPGSV,2,2,05,22,24,112,25,1".to_owned(),
                "GPGSV,1,1,03,01,53,280,30,11,40,245,25,31,58,133,20,6".to_owned(),
                "GLGSV,1,1,02,67,62,349,26,83,27,309,29,1".to_owned(),
                format!("GNGLL,4404.14063,S,12118.85478,W,1200{s:02}.00,A,A"),
            ]
            .map(|b| encode::finish(&b))
            .concat()
        };
        let fixes = assemble(&(0..3).map(epoch).collect::<String>());
        assert_eq!(fixes.len(), 3);
        for f in &fixes {
            assert_eq!(f.satellites.len(), 7);
            assert_eq!(f.satellites_used, Some(8));
            assert_eq!(f.altitude_msl_m, Some(12_500.0));
            assert!(f.latitude_deg.unwrap() < 0.0 && f.longitude_deg.unwrap() < 0.0);
            assert!((f.ground_speed_mps.unwrap() - 50.0 * nmea::MPS_PER_KNOT).abs() < 1e-12);
        }
    }

    #[test]
    fn sentences_before_the_first_time_join_the_first_epoch() {
        let text = "\
$GLGSV,3,3,10,83,27,309,29,84,01,353,*63
$GNGLL,4404.14066,N,12118.85481,W,171925.00,A,A*66
$GNRMC,171926.00,A,4404.14063,N,12118.85478,W,0.117,,180315,,,A*76
";
        let fixes = assemble(text);
        assert_eq!(fixes.len(), 2);
        assert_eq!(fixes[0].satellites.len(), 2);
        assert_eq!(fixes[0].time.map(|t| t.second), Some(25));
        // No RMC in the first epoch and no earlier date: time of day only.
        assert_eq!(fixes[0].time.and_then(|t| t.date), None);
        assert_eq!(fixes[1].time.and_then(|t| t.date), Some((2015, 3, 18)));
    }

    #[test]
    fn date_carries_to_following_epochs_without_rmc_but_not_past_midnight() {
        let gga = |t: &str| {
            encode::finish(&format!(
                "GPGGA,{t},4404.14063,N,12118.85478,W,1,08,0.9,545.4,M,46.9,M,,"
            ))
        };
        let rmc = encode::finish("GPRMC,235958.00,A,4404.14063,N,12118.85478,W,0.1,,180315,,,A");
        let text = [rmc, gga("235959.00"), gga("000000.00")].concat();
        let fixes = assemble(&text);
        assert_eq!(fixes.len(), 3);
        assert_eq!(fixes[1].time.and_then(|t| t.date), Some((2015, 3, 18)));
        assert_eq!(fixes[2].time.and_then(|t| t.date), None);
    }

    #[test]
    fn receiver_without_time_still_gets_one_fix_per_epoch() {
        let no_fix =
            "$GPGGA,,,,,,0,00,99.99,,,,,,*48\n$GPGSA,A,1,,,,,,,,,,,,,99.99,99.99,99.99*30\n";
        let fixes = assemble(&no_fix.repeat(3));
        assert_eq!(fixes.len(), 3);
        for f in &fixes {
            assert_eq!(f.time, None);
            assert_eq!(f.mode, Some(FixMode::NoFix));
            assert!(!f.valid);
        }
    }

    #[test]
    fn void_status_makes_position_readings_invalid() {
        let line = encode::finish("GNRMC,171926.00,V,4404.14063,N,12118.85478,W,0.117,,180315,,,N");
        let fixes = assemble(&line);
        let f = &fixes[0];
        assert!(!f.valid);
        let mut out = Vec::new();
        f.push_readings(SensorId(3), Timestamp::monotonic(42), &mut out);
        let lat = out
            .iter()
            .find(|r| r.quantity == Quantity::Latitude)
            .unwrap();
        assert!(lat.quality.contains(Quality::INVALID));
        assert_eq!(lat.time.source, TimeSource::Gnss);
        assert_eq!(lat.time.mono_ns, 42);
    }

    #[test]
    fn fix_pushes_one_reading_per_present_quantity_with_gnss_time() {
        let f = &assemble(NEO_M8N)[0];
        let mut out = Vec::new();
        f.push_readings(SensorId(7), Timestamp::monotonic(5_000), &mut out);
        let got: Vec<Quantity> = out.iter().map(|r| r.quantity).collect();
        assert_eq!(
            got,
            [
                Quantity::Latitude,
                Quantity::Longitude,
                Quantity::AltitudeMsl,
                Quantity::GeoidSeparation,
                Quantity::GroundSpeed,
                Quantity::FixMode,
                Quantity::FixQuality,
                Quantity::SatellitesUsed,
                Quantity::SatellitesInView,
                Quantity::MeanSnr,
                Quantity::Hdop,
                Quantity::Vdop,
                Quantity::Pdop,
            ]
        );
        for r in &out {
            assert_eq!(r.sensor, SensorId(7));
            assert!(r.quality.is_good(), "{r:?}");
            assert_eq!(
                r.time,
                Timestamp::with_utc(5_000, 1_426_699_166_000_000_000, TimeSource::Gnss)
            );
        }
        let value = |q| out.iter().find(|r| r.quantity == q).map(|r| r.value);
        assert_eq!(value(Quantity::FixMode), Some(3.0));
        assert_eq!(value(Quantity::SatellitesInView), Some(23.0));
        let snrs: Vec<f64> = f.satellites.iter().filter_map(|s| s.snr_dbhz).collect();
        let mean = snrs.iter().sum::<f64>() / snrs.len() as f64;
        assert_eq!(value(Quantity::MeanSnr), Some(mean));
    }

    #[test]
    fn fix_without_date_keeps_the_given_time() {
        let fix = Fix {
            time: Some(GnssTime {
                date: None,
                hour: 1,
                minute: 2,
                second: 3,
                nanosecond: 0,
            }),
            altitude_msl_m: Some(12_500.0),
            valid: true,
            ..Fix::default()
        };
        let given = Timestamp::with_utc(9, 77, TimeSource::SystemClock);
        let mut out = Vec::new();
        fix.push_readings(SensorId(1), given, &mut out);
        assert_eq!(out.len(), 1);
        assert_eq!(out[0].time, given);
        assert_eq!(out[0].value, 12_500.0);
    }

    #[test]
    fn values_beyond_the_receivers_rated_limits_are_flagged_not_clamped() {
        let fix = Fix {
            altitude_msl_m: Some(51_000.0),
            ground_speed_mps: Some(80.0),
            valid: true,
            ..Fix::default()
        };
        let mut out = Vec::new();
        fix.push_readings(SensorId(1), Timestamp::monotonic(1), &mut out);
        assert_eq!(out[0].quantity, Quantity::AltitudeMsl);
        assert_eq!(out[0].value, 51_000.0);
        assert_eq!(out[0].quality, Quality::OUT_OF_RANGE);
        assert_eq!(out[1].quantity, Quantity::GroundSpeed);
        assert!(out[1].quality.is_good());
    }

    #[test]
    fn utc_ns_matches_known_instants() {
        let t = |y, mo, d, h, mi, s| GnssTime {
            date: Some((y, mo, d)),
            hour: h,
            minute: mi,
            second: s,
            nanosecond: 250_000_000,
        };
        assert_eq!(
            t(2000, 2, 29, 23, 59, 59).utc_ns(),
            Some(951_868_799_250_000_000)
        );
        // The GPS epoch.
        assert_eq!(
            t(1980, 1, 6, 0, 0, 0).utc_ns(),
            Some(315_964_800_250_000_000)
        );
    }

    #[test]
    fn fix_serializes_as_flat_json_without_absent_fields() {
        let f = &assemble(NEO_M8N)[1];
        let json = serde_json::to_value(f).unwrap();
        assert_eq!(json["time"], "2015-03-18T17:19:27.000Z");
        assert_eq!(json["altitude_msl_m"], 1147.0);
        // No GSA in the second epoch: its mode is derived from GGA (quality 1, altitude).
        assert_eq!(json["mode"], "three_d");
        assert!(json.get("track_deg").is_none());
        assert!(json.get("satellites").is_none());
        let first = serde_json::to_value(&assemble(NEO_M8N)[0]).unwrap();
        assert_eq!(first["mode"], "three_d");
        assert_eq!(first["satellites"][0]["constellation"], "gps");
        assert!(first["satellites"][1].get("snr_dbhz").is_some());
    }

    fn lines(bodies: &[String]) -> String {
        bodies.iter().map(|b| encode::finish(b)).collect()
    }

    #[test]
    fn gns_and_zda_alone_give_dated_3d_fixes() {
        // A receiver set to GNS and ZDA only (u-blox NMEA 4.10 with RMC/GGA off).
        let text: String = (0..3)
            .map(|s| {
                lines(&[
                    format!("GNGNS,1200{s:02}.00,4404.14063,S,12118.85478,W,ANAN,10,0.9,12500.0,-21.3,,,V"),
                    format!("GNZDA,1200{s:02}.00,18,03,2025,00,00"),
                ])
            })
            .collect();
        let fixes = assemble(&text);
        assert_eq!(fixes.len(), 3);
        for (s, f) in fixes.iter().enumerate() {
            let t = f.time.unwrap();
            assert_eq!((t.date, t.second), (Some((2025, 3, 18)), s as u8));
            assert!(f.latitude_deg.unwrap() < -44.0 && f.longitude_deg.unwrap() < -121.0);
            assert_eq!(f.altitude_msl_m, Some(12_500.0));
            assert_eq!(f.geoid_separation_m, Some(-21.3));
            assert_eq!(f.satellites_used, Some(10));
            assert_eq!(f.hdop, Some(0.9));
            assert_eq!(f.mode, Some(FixMode::ThreeD));
            assert!(f.valid && f.has_position_fix());
        }
        // All constellations `N`: no fix.
        let none = lines(&["GNGNS,120000.00,,,,,NNNN,00,99.99,,,,,V".to_owned()]);
        let f = &assemble(&none)[0];
        assert_eq!(f.mode, Some(FixMode::NoFix));
        assert!(!f.valid);
    }

    #[test]
    fn zda_dates_fixes_of_a_receiver_that_sends_no_rmc() {
        // GGA every epoch, ZDA every fifth: the date carries to the epochs between.
        let mut bodies = Vec::new();
        for s in 0..10u8 {
            bodies.push(format!(
                "GPGGA,2359{}.00,4404.14063,N,12118.85478,W,1,08,0.9,545.4,M,46.9,M,,",
                50 + s
            ));
            if s % 5 == 0 {
                bodies.push(format!("GPZDA,2359{}.00,31,12,2026,00,00", 50 + s));
            }
        }
        let fixes = assemble(&lines(&bodies));
        assert_eq!(fixes.len(), 10);
        for f in &fixes {
            assert_eq!(f.time.unwrap().date, Some((2026, 12, 31)), "{f:?}");
        }
        assert_eq!(
            fixes[9].time.unwrap().utc_ns(),
            Some(1_798_761_599_000_000_000)
        );
    }

    #[test]
    fn an_epoch_without_gsa_derives_its_fix_mode() {
        let gga = |q: u8, n: &str, alt: &str| {
            lines(&[format!(
                "GPGGA,120000.00,4404.14063,N,12118.85478,W,{q},{n},0.9,{alt},{},46.9,M,,",
                if alt.is_empty() { "" } else { "M" }
            )])
        };
        let mode = |text: &str| assemble(text)[0].mode;
        assert_eq!(mode(&gga(1, "08", "545.4")), Some(FixMode::ThreeD));
        assert_eq!(mode(&gga(2, "08", "")), Some(FixMode::TwoD));
        assert_eq!(mode(&gga(0, "00", "")), Some(FixMode::NoFix));
        // Quality 1 with no satellite used is no fix, and its position is not valid.
        let f = &assemble(&gga(1, "00", "545.4"))[0];
        assert_eq!(f.mode, Some(FixMode::NoFix));
        assert!(!f.valid && !f.has_position_fix());
        // RMC alone: status A with a position is 2D, V no fix.
        let rmc = |st: &str| {
            lines(&[format!(
                "GPRMC,120000.00,{st},4404.14063,N,12118.85478,W,10.0,,180325,,,A"
            )])
        };
        assert_eq!(mode(&rmc("A")), Some(FixMode::TwoD));
        assert_eq!(mode(&rmc("V")), Some(FixMode::NoFix));
        // A GSA's mode is what the receiver said: it stays.
        let with_gsa = [
            gga(1, "08", "545.4"),
            lines(&["GPGSA,A,2,01,11,31,,,,,,,,,,1.5,0.9,1.2".to_owned()]),
        ]
        .concat();
        assert_eq!(mode(&with_gsa), Some(FixMode::TwoD));
    }

    #[test]
    fn one_epoch_from_several_talkers_is_one_fix() {
        for talkers in [["GP", "GA"], ["GN", "GL"], ["GL", "GN"]] {
            let [a, b] = talkers;
            let mut bodies = Vec::new();
            for s in 0..4u8 {
                let t = format!("1200{s:02}.00");
                bodies.extend([
                    format!("{a}RMC,{t},A,4404.14063,S,12118.85478,W,20.0,,180325,,,A"),
                    format!("{b}RMC,{t},A,4404.14063,S,12118.85478,W,20.0,,180325,,,A"),
                    format!("{a}GGA,{t},4404.14063,S,12118.85478,W,1,08,0.9,545.4,M,46.9,M,,"),
                    format!("{b}GGA,{t},4404.14063,S,12118.85478,W,1,05,1.4,545.4,M,46.9,M,,"),
                    "GNGSA,A,3,01,11,31,,,,,,,,,,1.5,0.9,1.2".to_owned(),
                    format!("{a}GSV,1,1,02,01,53,280,36,11,40,245,29"),
                    format!("{b}GSV,1,1,01,67,62,349,26"),
                    format!("{a}GLL,4404.14063,S,12118.85478,W,{t},A,A"),
                    format!("{b}GLL,4404.14063,S,12118.85478,W,{t},A,A"),
                ]);
            }
            let fixes = assemble(&lines(&bodies));
            assert_eq!(
                seconds(&fixes),
                [Some(0), Some(1), Some(2), Some(3)],
                "{talkers:?}"
            );
            for f in &fixes {
                assert_eq!(f.satellites.len(), 3, "{talkers:?}");
                assert_eq!(f.mode, Some(FixMode::ThreeD));
                assert_eq!(f.altitude_msl_m, Some(545.4));
                assert!(f.valid && f.ground_speed_mps.is_some());
            }
        }
        // GPGGA with GNGSA and GNRMC: one fix per epoch, each with all of them.
        let mut bodies = Vec::new();
        for s in 0..3u8 {
            let t = format!("1200{s:02}.00");
            bodies.extend([
                format!("GNRMC,{t},A,4404.14063,N,12118.85478,W,20.0,,180325,,,A"),
                format!("GPGGA,{t},4404.14063,N,12118.85478,W,1,08,0.9,545.4,M,46.9,M,,"),
                "GNGSA,A,3,01,11,31,,,,,,,,,,1.5,0.9,1.2,1".to_owned(),
                "GNGSA,A,3,67,83,,,,,,,,,,,1.5,0.9,1.2,2".to_owned(),
            ]);
        }
        let fixes = assemble(&lines(&bodies));
        assert_eq!(fixes.len(), 3);
        for f in &fixes {
            assert_eq!(f.satellites_used, Some(8));
            assert_eq!(f.pdop, Some(1.5));
            assert!(f.time.unwrap().date.is_some() && f.altitude_msl_m.is_some());
        }
    }

    #[test]
    fn the_combined_solution_wins_over_one_constellations_position() {
        let text = lines(&[
            "GPGGA,120000.00,4404.00000,N,12118.00000,W,1,05,1.4,545.4,M,46.9,M,,".to_owned(),
            "GNGGA,120000.00,4404.14063,N,12118.85478,W,1,12,0.8,545.4,M,46.9,M,,".to_owned(),
            "GLGGA,120000.00,4405.00000,N,12119.00000,W,1,04,2.0,545.4,M,46.9,M,,".to_owned(),
        ]);
        let f = &assemble(&text)[0];
        assert!((f.latitude_deg.unwrap() - (44.0 + 4.140_63 / 60.0)).abs() < 1e-12);
    }

    #[test]
    fn a_late_time_less_sentence_neither_splits_nor_invalidates_the_next_fix() {
        // Each epoch but the first is followed, after its cycle's end, by a late no-fix GSA
        // from another talker, a GSV page or a VTG with mode N (from the epoch before).
        for late in [
            "GPGSA,A,1,,,,,,,,,,,,,99.99,99.99,99.99",
            "GAGSV,1,1,01,07,10,100,",
            "GPVTG,,T,,M,0.0,N,0.0,K,N",
        ] {
            let mut stream = Vec::new();
            for (n, t) in ["171926.00", "171927.00", "171928.00", "171929.00"]
                .into_iter()
                .enumerate()
            {
                stream.extend(neo_m8n_epoch(t));
                if n >= 1 {
                    stream.push(encode::finish(late));
                }
            }
            let fixes = assemble(&stream.concat());
            assert_eq!(
                seconds(&fixes),
                [Some(26), Some(27), Some(28), Some(29)],
                "{late}"
            );
            for f in &fixes {
                assert!(f.has_position_fix(), "{late}: {f:?}");
                assert_eq!(f.mode, Some(FixMode::ThreeD), "{late}");
                assert!((f.ground_speed_mps.unwrap() - 0.117 * nmea::MPS_PER_KNOT).abs() < 1e-9);
            }
        }
    }

    mod properties {
        use super::*;
        use crate::gps::nmea::{Gga, Gll, Gsv, GsvSatellite, Rmc, Status, Talker, TimeOfDay, Vtg};
        use proptest::prelude::*;

        /// One epoch of a receiver: position, altitude, speed in knots.
        type EpochValues = (f64, f64, f64, f64);

        fn stream(epochs: &[EpochValues], talker: Talker, vtg: bool, gll: bool) -> String {
            let mut out = String::new();
            for (i, &(lat, lon, alt, knots)) in epochs.iter().enumerate() {
                let time = Some(TimeOfDay {
                    hour: 10,
                    minute: u8::try_from(i / 60).unwrap(),
                    second: u8::try_from(i % 60).unwrap(),
                    nanosecond: 0,
                });
                let status = Some(Status::Valid);
                out += &encode::rmc(&Rmc {
                    talker,
                    time,
                    status,
                    latitude_deg: Some(lat),
                    longitude_deg: Some(lon),
                    speed_knots: Some(knots),
                    track_deg: None,
                    date: Some(nmea::Date {
                        year: 2026,
                        month: 11,
                        day: 24,
                    }),
                    magnetic_variation_deg: None,
                    mode: None,
                    navigational_status: None,
                });
                if vtg {
                    out += &encode::vtg(&Vtg {
                        talker,
                        track_true_deg: None,
                        track_magnetic_deg: None,
                        speed_knots: Some(knots),
                        speed_kmh: None,
                        mode: None,
                    });
                }
                out += &encode::gga(&Gga {
                    talker,
                    time,
                    latitude_deg: Some(lat),
                    longitude_deg: Some(lon),
                    quality: Some(1),
                    satellites_used: Some(8),
                    hdop: Some(1.0),
                    altitude_msl_m: Some(alt),
                    geoid_separation_m: None,
                    dgps_age_s: None,
                    dgps_station: None,
                });
                for part in 1..=2u8 {
                    let sat = |prn| {
                        Some(GsvSatellite {
                            prn,
                            elevation_deg: None,
                            azimuth_deg: None,
                            snr_dbhz: Some(30.0),
                        })
                    };
                    out += &encode::gsv(&Gsv {
                        talker: Talker::Gps,
                        total_messages: 2,
                        message_number: part,
                        satellites_in_view: Some(5),
                        satellites: if part == 1 {
                            [sat(1), sat(2), sat(3), sat(4)]
                        } else {
                            [sat(5), None, None, None]
                        },
                        signal_id: None,
                    });
                }
                if gll {
                    out += &encode::gll(&Gll {
                        talker,
                        latitude_deg: Some(lat),
                        longitude_deg: Some(lon),
                        time,
                        status,
                        mode: None,
                    });
                }
            }
            out
        }

        fn arb_epochs() -> impl Strategy<Value = Vec<EpochValues>> {
            proptest::collection::vec(
                (
                    -89.9f64..89.9,
                    -179.9f64..179.9,
                    -400.0f64..12_500.0,
                    0.0f64..250.0,
                ),
                1..40,
            )
        }

        proptest! {
            #![proptest_config(ProptestConfig::with_cases(64))]

            #[test]
            fn encoded_epochs_assemble_back_into_one_fix_each(
                epochs in arb_epochs(),
                gnss in any::<bool>(),
                vtg in any::<bool>(),
                gll in any::<bool>(),
            ) {
                let talker = if gnss { Talker::Gnss } else { Talker::Gps };
                let fixes = assemble(&stream(&epochs, talker, vtg, gll));
                prop_assert_eq!(fixes.len(), epochs.len());
                for (i, (fix, &(lat, lon, alt, knots))) in fixes.iter().zip(&epochs).enumerate() {
                    let t = fix.time.unwrap();
                    prop_assert_eq!(usize::from(t.minute) * 60 + usize::from(t.second), i);
                    prop_assert_eq!(t.date, Some((2026, 11, 24)));
                    // Printed to 1e-5 arc minutes, 0.1 m and 0.001 kn.
                    prop_assert!((fix.latitude_deg.unwrap() - lat).abs() < 2e-7);
                    prop_assert!((fix.longitude_deg.unwrap() - lon).abs() < 2e-7);
                    prop_assert!((fix.altitude_msl_m.unwrap() - alt).abs() <= 0.05 + 1e-9);
                    prop_assert!((fix.ground_speed_mps.unwrap() - knots * nmea::MPS_PER_KNOT).abs() < 3e-4);
                    prop_assert_eq!(fix.satellites.len(), 5);
                    prop_assert!(fix.valid);
                }
            }

            #[test]
            fn gns_and_zda_epochs_assemble_into_one_dated_fix_each(
                epochs in arb_epochs(),
                modes in proptest::collection::vec(
                    prop_oneof![Just(b'A'), Just(b'D'), Just(b'N'), Just(b'R')],
                    1..=6,
                ),
                zda_every in 1usize..5,
            ) {
                let modes = nmea::ModeIndicators::from_letters(&modes).unwrap();
                let mut text = String::new();
                for (i, &(lat, lon, alt, _)) in epochs.iter().enumerate() {
                    let time = Some(TimeOfDay {
                        hour: 10,
                        minute: u8::try_from(i / 60).unwrap(),
                        second: u8::try_from(i % 60).unwrap(),
                        nanosecond: 0,
                    });
                    text += &encode::gns(&nmea::Gns {
                        talker: Talker::Gnss,
                        time,
                        latitude_deg: Some(lat),
                        longitude_deg: Some(lon),
                        modes,
                        satellites_used: Some(12),
                        hdop: Some(0.8),
                        altitude_msl_m: Some(alt),
                        geoid_separation_m: Some(-21.3),
                        dgps_age_s: None,
                        dgps_station: None,
                        navigational_status: Some(b'V'),
                    });
                    if i % zda_every == 0 {
                        text += &encode::zda(&nmea::Zda {
                            talker: Talker::Gnss,
                            time,
                            date: Some(nmea::Date { year: 2026, month: 11, day: 24 }),
                            local_zone_hours: Some(0),
                            local_zone_minutes: Some(0),
                        });
                    }
                }
                let fixes = assemble(&text);
                prop_assert_eq!(fixes.len(), epochs.len());
                for (fix, &(lat, lon, alt, _)) in fixes.iter().zip(&epochs) {
                    prop_assert_eq!(fix.time.unwrap().date, Some((2026, 11, 24)));
                    prop_assert!((fix.latitude_deg.unwrap() - lat).abs() < 2e-7);
                    prop_assert!((fix.longitude_deg.unwrap() - lon).abs() < 2e-7);
                    prop_assert!((fix.altitude_msl_m.unwrap() - alt).abs() <= 0.05 + 1e-9);
                    let expected = if modes.any_fix() { FixMode::ThreeD } else { FixMode::NoFix };
                    prop_assert_eq!(fix.mode, Some(expected));
                    prop_assert_eq!(fix.valid, modes.any_fix());
                }
            }

            #[test]
            fn the_fix_mode_without_gsa_follows_gga(
                quality in 0u8..9,
                used in proptest::option::of(0u8..30),
                altitude in proptest::option::of(-400.0f64..12_500.0),
                position in any::<bool>(),
            ) {
                let gga = Gga {
                    talker: Talker::Gps,
                    time: Some(TimeOfDay { hour: 1, minute: 2, second: 3, nanosecond: 0 }),
                    latitude_deg: position.then_some(-45.5),
                    longitude_deg: position.then_some(170.25),
                    quality: Some(quality),
                    satellites_used: used,
                    hdop: Some(1.0),
                    altitude_msl_m: altitude,
                    geoid_separation_m: None,
                    dgps_age_s: None,
                    dgps_station: None,
                };
                let fix = &assemble(&encode::gga(&gga))[0];
                let no_fix = quality == 0 || used == Some(0) || !position;
                let expected = match (no_fix, altitude) {
                    (true, _) => FixMode::NoFix,
                    (false, Some(_)) => FixMode::ThreeD,
                    (false, None) => FixMode::TwoD,
                };
                prop_assert_eq!(fix.mode, Some(expected));
                prop_assert_eq!(fix.valid, quality > 0 && used != Some(0));
            }

            #[test]
            fn extra_talkers_and_late_sentences_never_split_nor_change_fixes(
                epochs in arb_epochs(),
                extra_talker in prop_oneof![Just(Talker::Glonass), Just(Talker::Galileo), Just(Talker::BeidouGb)],
                copy in any::<bool>(),
                late_kind in 1usize..4,
                late_after in proptest::collection::vec(any::<bool>(), 40),
            ) {
                // Each epoch as a u-blox prints it (RMC, VTG, GGA, GSA, GSVs, GLL), at its
                // own time.
                let epoch_lines = |i: usize| -> Vec<String> {
                    let one = stream(std::slice::from_ref(&epochs[i]), Talker::Gnss, true, true);
                    let time = format!("10{:02}{:02}.00", i / 60, i % 60);
                    let mut bodies: Vec<String> = one
                        .lines()
                        .map(|line| line[1..line.len() - 3].replace("100000.00", &time))
                        .collect();
                    bodies.insert(3, "GNGSA,A,3,01,02,03,04,05,,,,,,,,1.5,0.9,1.2".to_owned());
                    bodies
                };
                let plain: String = (0..epochs.len())
                    .flat_map(epoch_lines)
                    .map(|b| encode::finish(&b))
                    .collect();
                let plain = assemble(&plain);
                prop_assert_eq!(plain.len(), epochs.len());
                // The same epochs from a receiver that repeats RMC and GLL from another
                // talker, or not, and after some epochs prints a late time-less sentence (a
                // no-fix GSA of another talker, a GSV page, a VTG saying not valid).
                let code = String::from_utf8_lossy(&extra_talker.code()).into_owned();
                let mut text = String::new();
                for i in 0..epochs.len() {
                    for body in epoch_lines(i) {
                        text += &encode::finish(&body);
                        if copy && (body.contains("RMC") || body.contains("GLL")) {
                            text += &encode::finish(&format!("{code}{}", &body[2..]));
                        }
                    }
                    if late_after[i % late_after.len()] {
                        text += &encode::finish(match late_kind {
                            1 => "GPGSA,A,1,,,,,,,,,,,,,99.99,99.99,99.99",
                            2 => "GAGSV,1,1,01,07,10,100,",
                            _ => "GPVTG,,T,,M,0.0,N,0.0,K,N",
                        });
                    }
                }
                let varied = assemble(&text);
                prop_assert_eq!(varied.len(), plain.len());
                for (v, p) in varied.iter().zip(&plain) {
                    prop_assert_eq!(v.time, p.time);
                    prop_assert_eq!(v.latitude_deg, p.latitude_deg);
                    prop_assert_eq!(v.altitude_msl_m, p.altitude_msl_m);
                    prop_assert_eq!(v.ground_speed_mps, p.ground_speed_mps);
                    prop_assert_eq!(v.mode, p.mode);
                    prop_assert_eq!(v.valid, p.valid);
                    prop_assert_eq!(v.pdop, p.pdop);
                    // A late GSV page that the cycle has learned joins its own epoch.
                    prop_assert!((p.satellites.len()..=p.satellites.len() + 1).contains(&v.satellites.len()));
                }
            }

            #[test]
            fn any_order_or_subset_of_real_sentences_never_panics_nor_invents_times(
                lines in Just(NEO_M8N.lines().collect::<Vec<_>>()).prop_shuffle(),
                keep in proptest::collection::vec(any::<bool>(), 16),
            ) {
                let text: Vec<&str> =
                    lines.iter().zip(&keep).filter(|(_, k)| **k).map(|(l, _)| *l).collect();
                let fixes = assemble(&text.join("\n"));
                prop_assert!(fixes.len() <= text.len());
                for fix in &fixes {
                    if let Some(t) = fix.time {
                        prop_assert!((26..=27).contains(&t.second));
                    }
                }
            }
        }
    }
}
