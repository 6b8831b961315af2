//! What the track formats (IGC, GeoJSON, KML) share: which sensor is the GNSS receiver,
//! a fix as those formats see it, a time series for "the reading nearest in time", and
//! text made safe for one-line headers.
//!
//! Invariants: a fix is an instant of the GNSS sensor with UTC, a latitude in -90..=90
//! and a longitude in -180..=180, nothing else; "nearest" never reaches further than
//! [`NEAREST_TOLERANCE_NS`] and never invents a value (no interpolation); a tie goes to
//! the earlier reading, so the choice depends only on the records.

use std::collections::BTreeMap;

use aloft_protocol::{Quality, Quantity, TimeSource};

use crate::ExportError;
use crate::rows::{Dataset, Instant};

/// How far in time a reading of another sensor (a static pressure, a true airspeed, a
/// GNSS position for a sensor's Point) may be from the instant it is placed at: 1 s,
/// one period of the flight's 1 Hz sensors.
pub const NEAREST_TOLERANCE_NS: i64 = 1_000_000_000;

/// A GNSS fix with UTC and a position.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Fix {
    /// UTC, ns since the Unix epoch.
    pub utc_ns: i64,
    /// Where the UTC came from.
    pub time_source: TimeSource,
    /// Degrees north.
    pub latitude: f64,
    /// Degrees east.
    pub longitude: f64,
    /// Altitude above mean sea level, m.
    pub altitude_msl: Option<f64>,
    /// Geoid height above the WGS 84 ellipsoid, m.
    pub geoid_separation: Option<f64>,
    /// 1 no fix, 2 2D, 3 3D.
    pub fix_mode: Option<f64>,
    /// Satellites used.
    pub satellites: Option<f64>,
    /// Horizontal accuracy, 1 sigma, m.
    pub horizontal_accuracy: Option<f64>,
    /// The position's quality flags (latitude's and longitude's or-ed).
    pub quality: Quality,
}

impl Fix {
    /// The fix an instant of the GNSS sensor gives, if it has UTC and a position.
    pub fn of(i: &Instant) -> Option<Fix> {
        let utc_ns = i.utc_ns?;
        let (latitude, lq) = i.get(Quantity::Latitude)?;
        let (longitude, oq) = i.get(Quantity::Longitude)?;
        // A position outside the globe is not a fix (the readings stay in the formats
        // that hold values: CSV, GeoJSON's Features, ICARTT).
        if !(-90.0..=90.0).contains(&latitude) || !(-180.0..=180.0).contains(&longitude) {
            return None;
        }
        let finite = |q| i.get(q).map(|(v, _)| v).filter(|v: &f64| v.is_finite());
        Some(Fix {
            utc_ns,
            time_source: i.time_source,
            latitude,
            longitude,
            altitude_msl: finite(Quantity::AltitudeMsl),
            geoid_separation: finite(Quantity::GeoidSeparation),
            fix_mode: finite(Quantity::FixMode),
            satellites: finite(Quantity::SatellitesUsed),
            horizontal_accuracy: finite(Quantity::HorizontalAccuracy),
            quality: lq | oq,
        })
    }

    /// Height above the WGS 84 ellipsoid (MSL altitude plus geoid separation), when both
    /// are known.
    pub fn ellipsoidal_height(&self) -> Option<f64> {
        Some(self.altitude_msl? + self.geoid_separation?)
    }
}

/// The sensor whose readings are GNSS fixes: the one with the most latitude readings
/// that also has longitudes (ties to the first name), from a counting pass.
pub fn gnss_sensor(ds: &Dataset<'_>) -> Result<Option<String>, ExportError> {
    ds.rows(&mut |_| Ok(()))?;
    Ok(sensor_with_most(
        ds,
        Quantity::Latitude,
        Some(Quantity::Longitude),
    ))
}

/// Of the latest pass, the sensor with the most rows of `q` (and some of `also`), ties
/// to the first name.
pub fn sensor_with_most(ds: &Dataset<'_>, q: Quantity, also: Option<Quantity>) -> Option<String> {
    let stats = ds.stats();
    let mut best: Option<(u64, String)> = None;
    for (sensor, counts) in &stats.counts {
        let Some(c) = counts.get(&q) else { continue };
        if also.is_some_and(|a| !counts.contains_key(&a)) {
            continue;
        }
        if best.as_ref().is_none_or(|(n, _)| c.rows > *n) {
            best = Some((c.rows, sensor.clone()));
        }
    }
    best.map(|(_, s)| s)
}

/// The refusal of a track format when the selection has no fix.
pub fn no_fix(format: &str) -> ExportError {
    ExportError::Unsuitable(format!(
        "{format} needs GNSS fixes (latitude and longitude with a UTC time), and the selection \
         has none: select the GNSS sensor and its latitude and longitude, and a time range \
         in which it had a fix"
    ))
}

/// Readings (or fixes) by UTC, for "the one nearest in time".
#[derive(Debug, Clone)]
pub struct Series<T = f64> {
    points: BTreeMap<i64, T>,
}

impl<T> Default for Series<T> {
    fn default() -> Self {
        Series {
            points: BTreeMap::new(),
        }
    }
}

impl Series<f64> {
    /// Adds a reading when it is finite; of readings at the same UTC, the first in stream
    /// order counts.
    pub fn add(&mut self, utc_ns: i64, value: f64) {
        if value.is_finite() {
            self.insert(utc_ns, value);
        }
    }
}

impl<T: Copy> Series<T> {
    /// Adds a point; of points at the same UTC, the first in stream order counts.
    pub fn insert(&mut self, utc_ns: i64, value: T) {
        self.points.entry(utc_ns).or_insert(value);
    }

    /// How many readings.
    pub fn len(&self) -> usize {
        self.points.len()
    }

    /// Whether it holds none.
    pub fn is_empty(&self) -> bool {
        self.points.is_empty()
    }

    /// The reading nearest to `utc_ns` within [`NEAREST_TOLERANCE_NS`] (a tie goes to the
    /// earlier), with its UTC.
    pub fn nearest(&self, utc_ns: i64) -> Option<(i64, T)> {
        let before = self.points.range(..=utc_ns).next_back();
        let after = self.points.range(utc_ns..).next();
        let (t, v) = match (before, after) {
            (Some(b), Some(a)) => {
                if utc_ns.abs_diff(*b.0) <= a.0.abs_diff(utc_ns) {
                    b
                } else {
                    a
                }
            }
            (Some(p), None) | (None, Some(p)) => p,
            (None, None) => return None,
        };
        (t.abs_diff(utc_ns) <= NEAREST_TOLERANCE_NS.unsigned_abs()).then_some((*t, *v))
    }
}

/// `text` on one line: control characters (line breaks included) become spaces, so a
/// metadata string cannot break a line-oriented header.
pub fn one_line(text: &str) -> String {
    text.chars()
        .map(|c| if c.is_control() { ' ' } else { c })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_nearest_reading_is_found_within_the_tolerance_and_a_tie_goes_to_the_earlier() {
        let mut s = Series::default();
        s.add(10_000_000_000, 1.0);
        s.add(12_000_000_000, 2.0);
        assert_eq!(s.nearest(11_000_000_000), Some((10_000_000_000, 1.0)));
        assert_eq!(s.nearest(11_500_000_000), Some((12_000_000_000, 2.0)));
        assert_eq!(s.nearest(13_000_000_000), Some((12_000_000_000, 2.0)));
        assert_eq!(s.nearest(13_000_000_001), None);
        assert_eq!(s.nearest(8_999_999_999), None);
        assert_eq!(Series::<f64>::default().nearest(0), None);
    }

    #[test]
    fn the_text_formats_are_listed_and_found_by_name() {
        use crate::Format;
        for f in [Format::Icartt, Format::Igc, Format::Geojson, Format::Kml] {
            assert!(Format::ALL.contains(&f), "{f:?}");
            assert_eq!(Format::from_name(f.name()).ok(), Some(f));
            assert!(!f.has_layouts());
            assert!(f.time_resolution().starts_with('1'));
        }
    }

    #[test]
    fn one_line_text_has_no_line_breaks() {
        assert_eq!(one_line("a\r\nb\tc"), "a  b c");
    }
}
