//! A reading's UTC in exports: one definition, the same for the hub and a store directory.
//!
//! The definition (docs/export.md, "Time"):
//! 1. A reading that carried UTC keeps it, with the source it carried (GNSS, system clock,
//!    or reconstructed by the agent).
//! 2. Otherwise its boot is the newest boot record before it in its epoch's stream (in
//!    sequence-number order), and its UTC is reconstructed from that boot's time
//!    correlation nearest to it in monotonic time (a tie goes to the earlier correlation;
//!    of correlations at the same monotonic time, the first in stream order counts):
//!    `utc = corr.utc + (reading.mono - corr.mono)`, flagged `reconstructed`.
//! 3. Otherwise it has no UTC: it is exported with its monotonic time and boot id where
//!    the format can hold them, and listed in the sidecar; never given an invented time.
//!
//! Invariant: the result depends only on the records and their sequence numbers, never on
//! the order they arrived in, so an export from the hub and one from the store agree.

use std::collections::{BTreeMap, HashMap};

use aloft_protocol::{BootId, TimeCorrelation, TimeSource};

/// The time correlations of every boot, by monotonic time.
#[derive(Debug, Clone, Default)]
pub struct Correlations {
    by_boot: HashMap<BootId, BTreeMap<u64, Correlation>>,
}

/// One correlation point, as the definition uses it.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Correlation {
    /// UTC at the point, ns since the Unix epoch.
    pub utc_ns: i64,
    /// Where that UTC came from.
    pub source: TimeSource,
    /// Its uncertainty, ns, when known.
    pub uncertainty_ns: Option<u64>,
}

impl Correlations {
    /// Adds a correlation; one at a monotonic time already held is ignored (the first in
    /// stream order counts, and sources are read in stream order).
    pub fn add(&mut self, c: &TimeCorrelation) {
        self.by_boot
            .entry(c.boot_id)
            .or_default()
            .entry(c.mono_ns)
            .or_insert(Correlation {
                utc_ns: c.utc_ns,
                source: c.source,
                uncertainty_ns: c.uncertainty_ns,
            });
    }

    /// How many correlations `boot` has.
    pub fn count(&self, boot: &BootId) -> usize {
        self.by_boot.get(boot).map_or(0, BTreeMap::len)
    }

    /// The largest uncertainty of `boot`'s correlations, ns, when any says.
    pub fn worst_uncertainty(&self, boot: &BootId) -> Option<u64> {
        self.by_boot
            .get(boot)?
            .values()
            .filter_map(|c| c.uncertainty_ns)
            .max()
    }

    /// UTC of monotonic time `mono_ns` of `boot`, reconstructed from the nearest
    /// correlation; `None` when the boot has none.
    pub fn reconstruct(&self, boot: &BootId, mono_ns: u64) -> Option<i64> {
        let points = self.by_boot.get(boot)?;
        let before = points.range(..=mono_ns).next_back();
        let after = points.range(mono_ns..).next();
        let (c_mono, c) = match (before, after) {
            (Some(b), Some(a)) => {
                if mono_ns - b.0 <= a.0 - mono_ns {
                    b
                } else {
                    a
                }
            }
            (Some(p), None) | (None, Some(p)) => p,
            (None, None) => return None,
        };
        let delta = i128::from(mono_ns) - i128::from(*c_mono);
        i64::try_from(i128::from(c.utc_ns) + delta).ok()
    }
}

/// A reading's UTC by the definition: its own, reconstructed, or none.
pub fn reading_utc(
    correlations: &Correlations,
    boot: Option<&BootId>,
    carried_utc_ns: Option<i64>,
    carried_source: TimeSource,
    mono_ns: u64,
) -> (Option<i64>, TimeSource) {
    if let Some(utc) = carried_utc_ns {
        return (Some(utc), carried_source);
    }
    match boot.and_then(|b| correlations.reconstruct(b, mono_ns)) {
        Some(utc) => (Some(utc), TimeSource::Reconstructed),
        None => (None, TimeSource::Monotonic),
    }
}

/// The name of a time source in exports.
pub fn source_name(s: TimeSource) -> &'static str {
    match s {
        TimeSource::SystemClock => "system_clock",
        TimeSource::Gnss => "gnss",
        TimeSource::Reconstructed => "reconstructed",
        _ => "monotonic",
    }
}

/// The code of a time source in numeric columns and CF flag variables: 0 monotonic only
/// (no UTC), 1 system clock, 2 GNSS, 3 reconstructed.
pub fn source_code(s: TimeSource) -> u8 {
    match s {
        TimeSource::SystemClock => 1,
        TimeSource::Gnss => 2,
        TimeSource::Reconstructed => 3,
        _ => 0,
    }
}

/// The time source of a [`source_code`].
pub fn source_of_code(code: u8) -> TimeSource {
    match code {
        1 => TimeSource::SystemClock,
        2 => TimeSource::Gnss,
        3 => TimeSource::Reconstructed,
        _ => TimeSource::Monotonic,
    }
}

/// RFC 3339 UTC with nanoseconds (`2026-11-24T12:00:00.123456789Z`), as CSV and the
/// sidecar print times; trailing zero groups of the fraction are kept so columns align.
pub fn rfc3339_ns(utc_ns: i64) -> String {
    let mut s = String::with_capacity(30);
    write_rfc3339_ns(&mut s, utc_ns);
    s
}

/// [`rfc3339_ns`] appended to `out`, without allocating.
pub fn write_rfc3339_ns(out: &mut String, utc_ns: i64) {
    use std::fmt::Write as _;
    let secs = utc_ns.div_euclid(1_000_000_000);
    let nanos = utc_ns.rem_euclid(1_000_000_000);
    let (y, mo, d, h, mi, s) = civil(secs);
    let _ = write!(
        out,
        "{y:04}-{mo:02}-{d:02}T{h:02}:{mi:02}:{s:02}.{nanos:09}Z"
    );
}

/// RFC 3339 UTC to the second (`2026-11-24T12:00:00Z`).
pub fn rfc3339_s(utc_ns: i64) -> String {
    let (y, mo, d, h, mi, s) = civil(utc_ns.div_euclid(1_000_000_000));
    format!("{y:04}-{mo:02}-{d:02}T{h:02}:{mi:02}:{s:02}Z")
}

/// Calendar date and time of `secs` since the Unix epoch, UTC (proleptic Gregorian).
pub fn civil(secs: i64) -> (i64, u32, u32, u32, u32, u32) {
    let days = secs.div_euclid(86_400);
    let rem = secs.rem_euclid(86_400);
    let (y, m, d) = civil_from_days(days);
    let rem = u32::try_from(rem).unwrap_or(0);
    (y, m, d, rem / 3600, rem % 3600 / 60, rem % 60)
}

/// Days since 1970-01-01 to (year, month, day); Howard Hinnant's algorithm.
pub fn civil_from_days(days: i64) -> (i64, u32, u32) {
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let y = yoe + era * 400;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = u32::try_from(doy - (153 * mp + 2) / 5 + 1).unwrap_or(1);
    let m = u32::try_from(if mp < 10 { mp + 3 } else { mp - 9 }).unwrap_or(1);
    (if m <= 2 { y + 1 } else { y }, m, d)
}

/// Days since 1970-01-01 of a calendar date (proleptic Gregorian).
pub fn days_from_civil(y: i64, m: u32, d: u32) -> i64 {
    let y = if m <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y.rem_euclid(400);
    let m = i64::from(m);
    let doy = (153 * (if m > 2 { m - 3 } else { m + 9 }) + 2) / 5 + i64::from(d) - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

/// Parses RFC 3339 (`2026-11-24T12:00:00Z`, `...T12:00:00.5+01:00`) or a plain integer of
/// ns since the Unix epoch into ns since the Unix epoch, UTC.
pub fn parse_utc(text: &str) -> Option<i64> {
    let text = text.trim();
    if !text.is_empty() && text.bytes().all(|b| b.is_ascii_digit() || b == b'-') {
        return text.parse().ok();
    }
    let b = text.as_bytes();
    if b.len() < 20 || b[4] != b'-' || b[7] != b'-' || !matches!(b[10], b'T' | b't' | b' ') {
        return None;
    }
    if b[13] != b':' || b[16] != b':' {
        return None;
    }
    let num = |r: std::ops::Range<usize>| -> Option<i64> {
        let s = text.get(r)?;
        s.bytes()
            .all(|c| c.is_ascii_digit())
            .then(|| s.parse().ok())?
    };
    let (y, mo, d) = (num(0..4)?, num(5..7)?, num(8..10)?);
    let (h, mi, s) = (num(11..13)?, num(14..16)?, num(17..19)?);
    if !(1..=12).contains(&mo) || d < 1 || d > days_in_month(y, mo) || h > 23 || mi > 59 || s > 60 {
        return None;
    }
    let mut rest = &text[19..];
    let mut nanos = 0i64;
    if let Some(frac) = rest.strip_prefix('.') {
        let digits = frac.bytes().take_while(u8::is_ascii_digit).count();
        if digits == 0 || digits > 9 {
            return None;
        }
        nanos = frac[..digits].parse::<i64>().ok()? * 10i64.pow(9 - digits as u32);
        rest = &frac[digits..];
    }
    let offset_s = match rest {
        "Z" | "z" => 0,
        _ => {
            let sign = match rest.as_bytes().first()? {
                b'+' => 1,
                b'-' => -1,
                _ => return None,
            };
            let tz = rest.get(1..)?;
            if tz.len() != 5 || tz.as_bytes()[2] != b':' {
                return None;
            }
            let (oh, om) = (tz[..2].parse::<i64>().ok()?, tz[3..].parse::<i64>().ok()?);
            if oh > 23 || om > 59 {
                return None;
            }
            sign * (oh * 3600 + om * 60)
        }
    };
    let days = days_from_civil(y, u32::try_from(mo).ok()?, u32::try_from(d).ok()?);
    let secs = days * 86_400 + h * 3600 + mi * 60 + s - offset_s;
    secs.checked_mul(1_000_000_000)?.checked_add(nanos)
}

fn days_in_month(y: i64, m: i64) -> i64 {
    match m {
        2 if (y % 4 == 0 && y % 100 != 0) || y % 400 == 0 => 29,
        2 => 28,
        4 | 6 | 9 | 11 => 30,
        _ => 31,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn corr(boot: u8, mono: u64, utc: i64) -> TimeCorrelation {
        TimeCorrelation {
            boot_id: BootId([boot; 16]),
            mono_ns: mono,
            utc_ns: utc,
            source: TimeSource::Gnss,
            uncertainty_ns: None,
        }
    }

    #[test]
    fn the_nearest_correlation_of_the_readings_boot_gives_its_utc() {
        let mut c = Correlations::default();
        c.add(&corr(1, 1_000, 10_000));
        c.add(&corr(1, 2_000, 20_500));
        c.add(&corr(2, 1_500, 99_000));
        let b1 = BootId([1; 16]);
        assert_eq!(c.reconstruct(&b1, 1_200), Some(10_200));
        assert_eq!(c.reconstruct(&b1, 1_800), Some(20_300));
        // A tie goes to the earlier correlation.
        assert_eq!(c.reconstruct(&b1, 1_500), Some(10_500));
        assert_eq!(c.reconstruct(&b1, 0), Some(9_000));
        assert_eq!(c.reconstruct(&BootId([3; 16]), 0), None);
    }

    #[test]
    fn a_carried_utc_is_kept_and_a_reading_without_any_stays_without() {
        let c = Correlations::default();
        let b = BootId([1; 16]);
        assert_eq!(
            reading_utc(&c, Some(&b), Some(5), TimeSource::Gnss, 9),
            (Some(5), TimeSource::Gnss)
        );
        assert_eq!(
            reading_utc(&c, Some(&b), None, TimeSource::Monotonic, 9),
            (None, TimeSource::Monotonic)
        );
        assert_eq!(
            reading_utc(&c, None, None, TimeSource::Monotonic, 9),
            (None, TimeSource::Monotonic)
        );
    }

    proptest! {
        #[test]
        fn reconstruction_does_not_depend_on_the_order_correlations_are_added(
            points in proptest::collection::btree_map(0u64..1_000_000, -1_000_000_000i64..1_000_000_000, 1..20),
            mono in 0u64..2_000_000,
            seed in any::<u64>(),
        ) {
            let list: Vec<(u64, i64)> = points.into_iter().collect();
            let mut forward = Correlations::default();
            for (m, u) in &list {
                forward.add(&corr(1, *m, *u));
            }
            let mut shuffled = list.clone();
            let n = shuffled.len();
            for i in 0..n {
                let j = (seed.wrapping_mul(i as u64 + 1) % n as u64) as usize;
                shuffled.swap(i, j);
            }
            let mut other = Correlations::default();
            for (m, u) in &shuffled {
                other.add(&corr(1, *m, *u));
            }
            let b = BootId([1; 16]);
            prop_assert_eq!(forward.reconstruct(&b, mono), other.reconstruct(&b, mono));
        }

        #[test]
        fn rfc3339_round_trips_every_instant(ns in -2_000_000_000_000_000_000i64..4_000_000_000_000_000_000) {
            prop_assert_eq!(parse_utc(&rfc3339_ns(ns)), Some(ns));
            let s = ns.div_euclid(1_000_000_000) * 1_000_000_000;
            prop_assert_eq!(parse_utc(&rfc3339_s(ns)), Some(s));
        }

        #[test]
        fn any_text_parses_or_is_refused_without_panicking(text in "\\PC{0,40}") {
            let _ = parse_utc(&text);
        }
    }

    #[test]
    fn offsets_and_bad_dates() {
        assert_eq!(parse_utc("1970-01-01T01:00:00+01:00"), Some(0));
        assert_eq!(parse_utc("1970-01-01T00:00:01.5Z"), Some(1_500_000_000));
        assert_eq!(parse_utc("2026-02-30T00:00:00Z"), None);
        assert_eq!(parse_utc("2026-13-01T00:00:00Z"), None);
        assert_eq!(parse_utc("2026-01-01T00:00:00"), None);
        assert_eq!(parse_utc("12345"), Some(12_345));
    }
}
