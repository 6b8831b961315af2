//! The export's rows: each selected reading with its sensor's name, its boot and its UTC by
//! the one definition ([`crate::time`]), in stream order; optionally thinned or averaged
//! over an interval; and the figures the sidecar reports, gathered on the way.
//!
//! Invariants: a pass never holds more than one reading at a time (averaging holds one
//! accumulator per sensor and quantity); every pass over the same source yields the same
//! rows; a reading is never given a time it did not have: one without UTC keeps its
//! monotonic time and boot, is left out only by a time filter (which it cannot match), and
//! is counted either way.

use std::cell::RefCell;
use std::collections::BTreeMap;
use std::ops::ControlFlow;

use aloft_protocol::{BootId, Quality, Quantity, Record, SensorId, StoreEpoch, TimeSource};
use serde::Serialize;

use crate::catalog::{Catalog, StreamPosition};
use crate::selection::{Resample, Selection};
use crate::source::{RecordSource, hex};
use crate::time::{reading_utc, rfc3339_ns};
use crate::{ExportError, ExportOptions};

/// One reading as every format sees it.
#[derive(Debug, Clone, PartialEq)]
pub struct Row<'a> {
    /// Its store epoch.
    pub epoch: StoreEpoch,
    /// Its sequence number (of the first reading, for an averaged row).
    pub seq: u64,
    /// The sensor's name.
    pub sensor: &'a str,
    /// The sensor's number on the node.
    pub sensor_id: SensorId,
    /// What was measured.
    pub quantity: Quantity,
    /// The value in the quantity's unit (the mean, for an averaged row).
    pub value: f64,
    /// Quality flags (of every averaged reading, or-ed).
    pub quality: Quality,
    /// The agent's monotonic time, ns.
    pub mono_ns: u64,
    /// The boot the monotonic time belongs to.
    pub boot: Option<BootId>,
    /// UTC by the definition, ns since the Unix epoch.
    pub utc_ns: Option<i64>,
    /// Where the UTC came from ([`TimeSource::Monotonic`] when there is none).
    pub time_source: TimeSource,
    /// Readings this row stands for: 1, or how many an averaged row is the mean of.
    pub samples: u32,
}

/// Readings of one (boot, sensor) without UTC.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct WithoutUtc {
    /// The boot, lowercase hex (`null` before any boot record).
    pub boot: Option<String>,
    /// The sensor.
    pub sensor: String,
    /// How many readings.
    pub readings: u64,
    /// Their first monotonic time, ns.
    pub first_mono_ns: u64,
    /// Their last monotonic time, ns.
    pub last_mono_ns: u64,
    /// Whether they are in the export's files (false when a time filter left them out:
    /// they have no UTC to match it).
    pub exported: bool,
}

/// Per (sensor, quantity): how many rows.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct Count {
    /// Rows exported.
    pub rows: u64,
    /// Readings the rows stand for (more than rows when averaged).
    pub readings: u64,
    /// Readings left out by thinning.
    pub thinned: u64,
}

/// What a pass saw: the sidecar's figures.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Stats {
    /// Rows given to the format.
    pub rows: u64,
    /// Per sensor, per quantity.
    pub counts: BTreeMap<String, BTreeMap<Quantity, Count>>,
    /// Rows per time source name (filled from `by_source` when a pass ends).
    pub time_sources: BTreeMap<&'static str, u64>,
    /// Rows per time source code ([`crate::time::source_code`]), counted row by row.
    by_source: [u64; 4],
    /// First and last UTC of the rows, ns.
    pub time_coverage: Option<(i64, i64)>,
    /// Latitude range, degrees north.
    pub latitude: Option<(f64, f64)>,
    /// Longitude range, degrees east.
    pub longitude: Option<(f64, f64)>,
    /// Altitude (MSL) range, m.
    pub altitude: Option<(f64, f64)>,
    /// Readings without UTC, per (boot, sensor).
    pub without_utc: Vec<WithoutUtc>,
}

fn widen(range: &mut Option<(f64, f64)>, v: f64) {
    if !v.is_finite() {
        return;
    }
    *range = Some(match *range {
        None => (v, v),
        Some((lo, hi)) => (lo.min(v), hi.max(v)),
    });
}

impl Stats {
    fn add(&mut self, row: &Row<'_>) {
        self.rows += 1;
        // Looked up by reference: an owned key is made once per sensor, not per row.
        let per_sensor = match self.counts.get_mut(row.sensor) {
            Some(per_sensor) => per_sensor,
            None => self.counts.entry(row.sensor.to_owned()).or_default(),
        };
        let count = per_sensor.entry(row.quantity).or_default();
        count.rows += 1;
        count.readings += u64::from(row.samples);
        self.by_source[usize::from(crate::time::source_code(row.time_source))] += 1;
        if let Some(utc) = row.utc_ns {
            self.time_coverage = Some(match self.time_coverage {
                None => (utc, utc),
                Some((a, b)) => (a.min(utc), b.max(utc)),
            });
        }
        match row.quantity {
            Quantity::Latitude => widen(&mut self.latitude, row.value),
            Quantity::Longitude => widen(&mut self.longitude, row.value),
            Quantity::AltitudeMsl => widen(&mut self.altitude, row.value),
            _ => {}
        }
    }

    fn without_utc(&mut self, boot: Option<&BootId>, sensor: &str, mono_ns: u64, exported: bool) {
        let boot = boot.map(|b| hex(&b.0));
        if let Some(last) = self.without_utc.last_mut()
            && last.boot == boot
            && last.sensor == sensor
            && last.exported == exported
        {
            last.readings += 1;
            last.first_mono_ns = last.first_mono_ns.min(mono_ns);
            last.last_mono_ns = last.last_mono_ns.max(mono_ns);
            return;
        }
        self.without_utc.push(WithoutUtc {
            boot,
            sensor: sensor.to_owned(),
            readings: 1,
            first_mono_ns: mono_ns,
            last_mono_ns: mono_ns,
            exported,
        });
    }

    /// The time coverage as RFC 3339 strings.
    pub fn coverage_text(&self) -> Option<(String, String)> {
        self.time_coverage
            .map(|(a, b)| (rfc3339_ns(a), rfc3339_ns(b)))
    }
}

/// A source, its catalog and a selection: what every format writes from.
pub struct Dataset<'s> {
    /// The node's name.
    pub node: String,
    source: &'s dyn RecordSource,
    /// What the records say besides readings.
    pub catalog: Catalog,
    /// What to export.
    pub selection: Selection,
    /// Metadata and naming.
    pub options: ExportOptions,
    stats: RefCell<Stats>,
}

impl std::fmt::Debug for Dataset<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Dataset")
            .field("node", &self.node)
            .field("selection", &self.selection)
            .finish_non_exhaustive()
    }
}

/// An averaging accumulator of one (sensor, quantity).
#[derive(Debug, Clone)]
struct Bin {
    start_ns: i64,
    first: RowOwned,
    sum: f64,
    n: u32,
    quality: Quality,
}

#[derive(Debug, Clone)]
struct RowOwned {
    epoch: StoreEpoch,
    seq: u64,
    sensor: String,
    sensor_id: SensorId,
    boot: Option<BootId>,
    mono_ns: u64,
    time_source: TimeSource,
}

impl<'s> Dataset<'s> {
    /// Reads the catalog of `source` and checks `selection` against it.
    pub fn open(
        source: &'s dyn RecordSource,
        node: &str,
        selection: Selection,
        options: ExportOptions,
    ) -> Result<Dataset<'s>, ExportError> {
        let mut catalog = Catalog::scan(source)?;
        selection.check(&catalog)?;
        catalog.keep_power_steps_in(selection.from_utc_ns, selection.to_utc_ns);
        Ok(Dataset {
            node: node.to_owned(),
            source,
            catalog,
            selection,
            options,
            stats: RefCell::new(Stats::default()),
        })
    }

    /// The same source, catalog and selection written with other `options` (the open-data
    /// package writes both layouts of one dataset); its figures start empty.
    pub fn with_options(&self, options: ExportOptions) -> Dataset<'s> {
        Dataset {
            node: self.node.clone(),
            source: self.source,
            catalog: self.catalog.clone(),
            selection: self.selection.clone(),
            options,
            stats: RefCell::new(Stats::default()),
        }
    }

    /// The source's completeness.
    pub fn completeness(&self) -> crate::source::Completeness {
        self.source.completeness()
    }

    /// The figures of the latest complete pass.
    pub fn stats(&self) -> Stats {
        self.stats.borrow().clone()
    }

    /// For a format whose files cannot hold readings without UTC (its time axis is UTC):
    /// marks those of the latest pass as not exported, so the sidecar does not say they
    /// are in the files.
    pub fn mark_without_utc_left_out(&self) {
        for w in &mut self.stats.borrow_mut().without_utc {
            w.exported = false;
        }
    }

    /// Calls `each` with every selected row, in stream order (averaged rows when they
    /// close). Figures for the sidecar are gathered anew on every pass.
    pub fn rows(
        &self,
        each: &mut dyn FnMut(&Row<'_>) -> Result<(), ExportError>,
    ) -> Result<(), ExportError> {
        let mut stats = Stats::default();
        let mut position = StreamPosition::default();
        let mut failure: Option<ExportError> = None;
        let sel = &self.selection;
        let mut bins: BTreeMap<(String, Quantity), Bin> = BTreeMap::new();
        let mut last_kept: BTreeMap<(String, Quantity), i64> = BTreeMap::new();
        let correlations = &self.catalog.correlations;
        let mut emit = |row: &Row<'_>, stats: &mut Stats| -> Result<(), ExportError> {
            stats.add(row);
            each(row)
        };
        self.source.for_each_record(&mut |epoch, seq, record| {
            position.advance(epoch, record);
            let Record::Reading(r) = record else {
                return ControlFlow::Continue(());
            };
            let sensor = position.name(r.sensor);
            if !sel.wants(&sensor, r.quantity) {
                return ControlFlow::Continue(());
            }
            let (utc_ns, time_source) = reading_utc(
                correlations,
                position.boot.as_ref(),
                r.time.utc_ns,
                r.time.source,
                r.time.mono_ns,
            );
            let Some(utc) = utc_ns else {
                let exported = !sel.has_time_filter();
                stats.without_utc(position.boot.as_ref(), &sensor, r.time.mono_ns, exported);
                if !exported {
                    return ControlFlow::Continue(());
                }
                let row = Row {
                    epoch,
                    seq,
                    sensor: &sensor,
                    sensor_id: r.sensor,
                    quantity: r.quantity,
                    value: r.value,
                    quality: r.quality,
                    mono_ns: r.time.mono_ns,
                    boot: position.boot,
                    utc_ns: None,
                    time_source,
                    samples: 1,
                };
                return match emit(&row, &mut stats) {
                    Ok(()) => ControlFlow::Continue(()),
                    Err(e) => {
                        failure = Some(e);
                        ControlFlow::Break(())
                    }
                };
            };
            if !sel.in_time(utc) {
                return ControlFlow::Continue(());
            }
            let row = Row {
                epoch,
                seq,
                sensor: &sensor,
                sensor_id: r.sensor,
                quantity: r.quantity,
                value: r.value,
                quality: r.quality,
                mono_ns: r.time.mono_ns,
                boot: position.boot,
                utc_ns: Some(utc),
                time_source,
                samples: 1,
            };
            let result = match sel.resample {
                None => emit(&row, &mut stats),
                Some(Resample::Decimate { interval_ns }) => {
                    let start = bin_start(utc, interval_ns);
                    let key = (sensor.to_string(), r.quantity);
                    if last_kept.get(&key) == Some(&start) {
                        stats
                            .counts
                            .entry(key.0)
                            .or_default()
                            .entry(key.1)
                            .or_default()
                            .thinned += 1;
                        Ok(())
                    } else {
                        last_kept.insert(key, start);
                        emit(&row, &mut stats)
                    }
                }
                Some(Resample::Mean { interval_ns }) => {
                    let start = bin_start(utc, interval_ns);
                    let key = (sensor.to_string(), r.quantity);
                    let mut out = Ok(());
                    match bins.get_mut(&key) {
                        Some(bin) if bin.start_ns == start => {
                            bin.sum += r.value;
                            bin.n += 1;
                            bin.quality |= r.quality;
                        }
                        _ => {
                            if let Some(done) = bins.remove(&key) {
                                out = emit(&mean_row(&done, key.1), &mut stats);
                            }
                            bins.insert(
                                key,
                                Bin {
                                    start_ns: start,
                                    first: RowOwned {
                                        epoch,
                                        seq,
                                        sensor: sensor.to_string(),
                                        sensor_id: r.sensor,
                                        boot: position.boot,
                                        mono_ns: r.time.mono_ns,
                                        time_source,
                                    },
                                    sum: r.value,
                                    n: 1,
                                    quality: r.quality,
                                },
                            );
                        }
                    }
                    out
                }
            };
            match result {
                Ok(()) => ControlFlow::Continue(()),
                Err(e) => {
                    failure = Some(e);
                    ControlFlow::Break(())
                }
            }
        })?;
        if let Some(e) = failure {
            return Err(e);
        }
        // Averages still open at the end close in a fixed order.
        let mut open: Vec<((String, Quantity), Bin)> =
            std::mem::take(&mut bins).into_iter().collect();
        open.sort_by_key(|(_, b)| (b.first.epoch, b.first.seq));
        for ((_, quantity), bin) in open {
            emit(&mean_row(&bin, quantity), &mut stats)?;
        }
        for (code, n) in stats.by_source.iter().enumerate() {
            if *n > 0 {
                let source = crate::time::source_of_code(code as u8);
                stats
                    .time_sources
                    .insert(crate::time::source_name(source), *n);
            }
        }
        *self.stats.borrow_mut() = stats;
        Ok(())
    }

    /// Calls `each` with every selected row grouped by instant: consecutive rows of one
    /// sensor with the same boot and monotonic time (a GNSS fix, one BME280 conversion)
    /// make one [`Instant`].
    pub fn instants(
        &self,
        each: &mut dyn FnMut(&Instant) -> Result<(), ExportError>,
    ) -> Result<(), ExportError> {
        let mut current: Option<Instant> = None;
        self.rows(&mut |row| {
            if let Some(c) = &mut current {
                if c.sensor == row.sensor && c.boot == row.boot && c.mono_ns == row.mono_ns {
                    c.values.push((row.quantity, row.value, row.quality));
                    return Ok(());
                }
                let done = current.take();
                if let Some(done) = done {
                    each(&done)?;
                }
            }
            current = Some(Instant::of(row));
            Ok(())
        })?;
        if let Some(done) = current {
            each(&done)?;
        }
        Ok(())
    }
}

/// The readings of one sensor taken at one instant.
#[derive(Debug, Clone, PartialEq)]
pub struct Instant {
    /// The sensor.
    pub sensor: String,
    /// Its number.
    pub sensor_id: SensorId,
    /// The boot.
    pub boot: Option<BootId>,
    /// Monotonic time, ns.
    pub mono_ns: u64,
    /// UTC by the definition.
    pub utc_ns: Option<i64>,
    /// Where the UTC came from.
    pub time_source: TimeSource,
    /// Epoch and number of its first reading.
    pub epoch: StoreEpoch,
    /// The first reading's number.
    pub seq: u64,
    /// The quantities measured, in stream order.
    pub values: Vec<(Quantity, f64, Quality)>,
}

impl Instant {
    fn of(row: &Row<'_>) -> Instant {
        Instant {
            sensor: row.sensor.to_owned(),
            sensor_id: row.sensor_id,
            boot: row.boot,
            mono_ns: row.mono_ns,
            utc_ns: row.utc_ns,
            time_source: row.time_source,
            epoch: row.epoch,
            seq: row.seq,
            values: vec![(row.quantity, row.value, row.quality)],
        }
    }

    /// The value of `q`, if this instant has it.
    pub fn get(&self, q: Quantity) -> Option<(f64, Quality)> {
        self.values
            .iter()
            .find(|(vq, _, _)| *vq == q)
            .map(|(_, v, f)| (*v, *f))
    }
}

fn bin_start(utc: i64, interval_ns: u64) -> i64 {
    let i = i64::try_from(interval_ns).unwrap_or(i64::MAX);
    utc.div_euclid(i) * i
}

fn mean_row(bin: &Bin, quantity: Quantity) -> Row<'_> {
    Row {
        epoch: bin.first.epoch,
        seq: bin.first.seq,
        sensor: &bin.first.sensor,
        sensor_id: bin.first.sensor_id,
        quantity,
        value: bin.sum / f64::from(bin.n),
        quality: bin.quality,
        mono_ns: bin.first.mono_ns,
        boot: bin.first.boot,
        utc_ns: Some(bin.start_ns),
        time_source: bin.first.time_source,
        samples: bin.n,
    }
}
