//! What an export takes: sensors, quantities, a UTC range and an optional interval, checked
//! before anything is written.
//!
//! Invariants: a selection that names an unknown sensor, or a range that is inverted or
//! empty, is refused with a message that says what exists; the range is on UTC by the one
//! definition ([`crate::time`]): from inclusive, to exclusive.

use aloft_protocol::Quantity;
use serde::Serialize;

use crate::ExportError;
use crate::catalog::Catalog;
use crate::time::rfc3339_ns;

/// Thinning or averaging over fixed UTC intervals (aligned to the Unix epoch).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(tag = "method", rename_all = "snake_case")]
pub enum Resample {
    /// The first reading of each sensor and quantity in each interval, unchanged; the rest
    /// are left out (and counted as thinned).
    Decimate {
        /// The interval, ns.
        interval_ns: u64,
    },
    /// The arithmetic mean of each sensor's quantity over each interval, stamped with the
    /// interval's start; quality flags of every reading or-ed.
    Mean {
        /// The interval, ns.
        interval_ns: u64,
    },
}

impl Resample {
    /// The interval, ns.
    pub fn interval_ns(&self) -> u64 {
        match *self {
            Resample::Decimate { interval_ns } | Resample::Mean { interval_ns } => interval_ns,
        }
    }
}

/// What to export.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct Selection {
    /// Only these sensors (by name); all when empty.
    pub sensors: Vec<String>,
    /// Only these quantities; all when empty.
    #[serde(serialize_with = "quantity_names")]
    pub quantities: Vec<Quantity>,
    /// Only readings at or after this UTC, ns.
    pub from_utc_ns: Option<i64>,
    /// Only readings before this UTC, ns.
    pub to_utc_ns: Option<i64>,
    /// Thin or average, when asked.
    pub resample: Option<Resample>,
}

fn quantity_names<S: serde::Serializer>(q: &[Quantity], s: S) -> Result<S::Ok, S::Error> {
    s.collect_seq(q.iter().map(ToString::to_string))
}

impl Selection {
    /// Parses quantity names, refusing unknown ones with the list of known ones.
    pub fn parse_quantities(names: &[String]) -> Result<Vec<Quantity>, ExportError> {
        names
            .iter()
            .map(|n| {
                Quantity::from_name(n).ok_or_else(|| ExportError::UnknownQuantity {
                    name: n.clone(),
                    known: Quantity::ALL
                        .iter()
                        .filter_map(|q| q.name())
                        .collect::<Vec<_>>()
                        .join(", "),
                })
            })
            .collect()
    }

    /// Checks the selection against what the records hold.
    pub fn check(&self, catalog: &Catalog) -> Result<(), ExportError> {
        if let (Some(from), Some(to)) = (self.from_utc_ns, self.to_utc_ns)
            && from >= to
        {
            return Err(ExportError::EmptyRange {
                from: rfc3339_ns(from),
                to: rfc3339_ns(to),
            });
        }
        if let Some(r) = self.resample
            && r.interval_ns() == 0
        {
            return Err(ExportError::BadInterval);
        }
        for s in &self.sensors {
            // A sensor no descriptor named yet is `sensor-N` in the rows, as at the hub.
            let unnamed = s.strip_prefix("sensor-").is_some_and(|n| {
                n.parse::<u16>().is_ok_and(|id| {
                    s == &crate::catalog::unnamed_sensor(aloft_protocol::SensorId(id))
                })
            });
            if !catalog.sensors.contains_key(s) && !unnamed {
                return Err(ExportError::UnknownSensor {
                    name: s.clone(),
                    known: catalog
                        .sensors
                        .keys()
                        .cloned()
                        .collect::<Vec<_>>()
                        .join(", "),
                });
            }
        }
        Ok(())
    }

    /// Whether a reading of `sensor`'s `quantity` is selected (time aside).
    pub fn wants(&self, sensor: &str, quantity: Quantity) -> bool {
        (self.sensors.is_empty() || self.sensors.iter().any(|s| s == sensor))
            && (self.quantities.is_empty() || self.quantities.contains(&quantity))
    }

    /// Whether a time range is set (readings without UTC cannot match it).
    pub fn has_time_filter(&self) -> bool {
        self.from_utc_ns.is_some() || self.to_utc_ns.is_some()
    }

    /// Whether `utc` is inside the range.
    pub fn in_time(&self, utc: i64) -> bool {
        self.from_utc_ns.is_none_or(|f| utc >= f) && self.to_utc_ns.is_none_or(|t| utc < t)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_named_sensor_or_an_unnamed_one_by_its_number_is_known_and_nothing_else() {
        let catalog = Catalog::default();
        let with = |name: &str| Selection {
            sensors: vec![name.to_owned()],
            ..Selection::default()
        };
        assert!(with("sensor-3").check(&catalog).is_ok());
        for bad in ["sensor-03", "sensor-", "sensor-70000", "gps", "sensor-1x"] {
            let e = with(bad).check(&catalog).unwrap_err();
            assert!(e.to_string().contains("no sensor"), "{bad}: {e}");
        }
    }
}
