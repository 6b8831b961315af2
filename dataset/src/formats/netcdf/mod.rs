//! NetCDF-CF (`STEM.nc`): the flight as one CF-1.8 trajectory (`featureType =
//! "trajectory"`) in the netCDF classic 64-bit-offset format, written by the pure-Rust
//! encoder in [`classic`] (docs/decisions/netcdf-writer.md says why not libnetcdf).
//!
//! Layout (docs/export.md, "NetCDF-CF"):
//! - dimension `obs`: the GNSS fixes (instants of the sensor whose instants carry latitude
//!   and longitude, with UTC), in UTC order; coordinates `time`, `lat`, `lon` and, when
//!   selected, `alt` (GNSS altitude above MSL); the fixes' other quantities as
//!   `SENSOR_QUANTITY(obs)`.
//! - every other sensor's instant is placed at the fix nearest to it in UTC, when one is
//!   within [`TOLERANCE_NS`], and its own UTC is kept in `SENSOR_time(obs)`; values as
//!   `SENSOR_QUANTITY(obs)`.
//! - dimension `unplaced`: every reading that has no place on the track (no UTC, no fix
//!   within the tolerance, or the fix's slot taken by an earlier instant of its sensor),
//!   one row each, with its monotonic time, boot, sensor, quantity, value and flags.
//! - every data variable has `ancillary_variables`: a quality-flag variable
//!   (`flag_masks`/`flag_meanings`, the reading's quality bits) and its sensor's time-source
//!   variable (`flag_values`/`flag_meanings`).
//!
//! Invariants: every selected reading is in the file exactly once (on the track or in the
//! `unplaced` rows), never with an invented time, never averaged or interpolated by this
//! writer; values are the readings' `f64`s unchanged; the bytes depend only on the records,
//! the selection and the options. The writer makes two passes over the dataset (fixes
//! first, then placement); the track's columns are spooled to a temporary file laid out as
//! the file's data section, so memory holds the fixes' times, not their values.

pub mod classic;

use std::collections::{BTreeMap, BTreeSet};
use std::fs::File;
use std::io::{self, BufWriter, Read, Seek, SeekFrom, Write};

use aloft_protocol::{Quality, Quantity};

use crate::ExportError;
use crate::formats::csv::copy;
use crate::output::Output;
use crate::rows::{Dataset, Instant};
use crate::selection::Resample;
use crate::source::hex;
use crate::time::{civil_from_days, rfc3339_ns, source_code};
use classic::{
    AttrValue, Attribute, ClassicError, Dimension, FILL_BYTE, FILL_DOUBLE, FILL_SHORT, Header,
    NcType, Variable,
};

/// How far in UTC a reading may be from a GNSS fix to be placed at it: 0.5 s.
pub const TOLERANCE_NS: i64 = 500_000_000;

/// The resolution at which the file holds UTC, for the sidecar.
pub const TIME_RESOLUTION: &str = "1 us or finer: double seconds since 00:00:00 UTC of the first GNSS fix's day (the error is below 2 ns for times within 48 days of that day)";

/// The names of the quality bits, in bit order (bit 0 first), as `flag_meanings`.
pub const QUALITY_MEANINGS: &str =
    "out_of_range crc_failed stale simulated invalid derived degraded_input";

/// The time-source codes' meanings (0 to 3), as `flag_meanings`.
pub const TIME_SOURCE_MEANINGS: &str = "monotonic system_clock gnss reconstructed";

/// Why a reading is in the `unplaced` rows (codes 0 to 2), as `flag_meanings`.
pub const UNPLACED_MEANINGS: &str = "no_utc no_fix_within_tolerance fix_taken";

const REASON_NO_UTC: i8 = 0;
const REASON_NO_FIX: i8 = 1;
const REASON_TAKEN: i8 = 2;

fn encoder(e: impl std::fmt::Display) -> ExportError {
    ExportError::Encoder {
        format: "netcdf",
        message: e.to_string(),
    }
}

impl From<ClassicError> for ExportError {
    fn from(e: ClassicError) -> Self {
        encoder(e)
    }
}

/// A netCDF name for a sensor: ASCII letters, digits and `_` (a `-` becomes `_`), starting
/// with a letter.
pub fn sensor_var_prefix(sensor: &str) -> String {
    let mut s: String = sensor
        .chars()
        .map(|c| if c.is_ascii_alphanumeric() { c } else { '_' })
        .collect();
    if !s.starts_with(|c: char| c.is_ascii_alphabetic()) {
        s.insert_str(0, "sensor_");
    }
    s
}

fn is_fix(i: &Instant) -> bool {
    i.utc_ns.is_some()
        && i.get(Quantity::Latitude).is_some()
        && i.get(Quantity::Longitude).is_some()
}

/// What the first pass learns.
#[derive(Debug, Default)]
struct Survey {
    /// Per sensor: the UTC of each of its fixes, in stream order.
    fixes: BTreeMap<String, Vec<i64>>,
    /// Per sensor: the quantities of its readings.
    quantities: BTreeMap<String, BTreeSet<Quantity>>,
}

fn survey(ds: &Dataset<'_>) -> Result<Survey, ExportError> {
    let mut s = Survey::default();
    ds.instants(&mut |i| {
        let qs = s.quantities.entry(i.sensor.clone()).or_default();
        qs.extend(i.values.iter().map(|(q, _, _)| *q));
        if is_fix(i)
            && let Some(utc) = i.utc_ns
        {
            s.fixes.entry(i.sensor.clone()).or_default().push(utc);
        }
        Ok(())
    })?;
    Ok(s)
}

/// The track: the fixes in UTC order.
struct Track {
    /// The GNSS sensor.
    sensor: String,
    /// UTC of each fix, ascending.
    times: Vec<i64>,
    /// The n-th fix in stream order is at `order[n]` on the track.
    order: Vec<u32>,
    /// The `seconds since` epoch: 00:00:00 UTC of the first fix's day, ns.
    epoch_ns: i64,
}

impl Track {
    fn new(sensor: String, stream_times: Vec<i64>) -> Result<Track, ExportError> {
        let n = u32::try_from(stream_times.len()).map_err(|_| {
            ExportError::Unsuitable(format!(
                "netcdf: {} GNSS fixes are more than one netCDF dimension holds",
                stream_times.len()
            ))
        })?;
        let mut by_time: Vec<(i64, u32)> = stream_times.iter().copied().zip(0..n).collect();
        by_time.sort_unstable();
        let mut order = vec![0u32; by_time.len()];
        for (pos, (_, ordinal)) in by_time.iter().enumerate() {
            order[*ordinal as usize] = pos as u32;
        }
        let times: Vec<i64> = by_time.into_iter().map(|(t, _)| t).collect();
        let first = times.first().copied().unwrap_or(0);
        let epoch_ns = first.div_euclid(86_400_000_000_000) * 86_400_000_000_000;
        Ok(Track {
            sensor,
            times,
            order,
            epoch_ns,
        })
    }

    /// The track position of the fix nearest to `utc` within the tolerance (a tie goes to
    /// the earlier fix).
    fn nearest(&self, utc: i64) -> Option<usize> {
        let after = self.times.partition_point(|&t| t < utc);
        let before = after.checked_sub(1);
        let pick = match (before, (after < self.times.len()).then_some(after)) {
            (Some(b), Some(a)) => {
                if utc - self.times[b] <= self.times[a] - utc {
                    b
                } else {
                    a
                }
            }
            (Some(p), None) | (None, Some(p)) => p,
            (None, None) => return None,
        };
        (self.times[pick].abs_diff(utc) <= TOLERANCE_NS.unsigned_abs()).then_some(pick)
    }

    /// `utc` as the file's time value: seconds since the epoch.
    fn seconds(&self, utc: i64) -> f64 {
        (i128::from(utc) - i128::from(self.epoch_ns)) as f64 / 1e9
    }

    /// The `units` of every time variable.
    fn units(&self) -> String {
        let (y, m, d) = civil_from_days(self.epoch_ns.div_euclid(86_400_000_000_000));
        format!("seconds since {y:04}-{m:02}-{d:02} 00:00:00")
    }
}

/// Columns on the `obs` dimension, spooled to a temporary file laid out as they follow one
/// another in the file (each padded to four bytes), written through a window per column:
/// readings come in stream order, which is nearly UTC order, so each window moves forward.
struct ObsSpool {
    file: File,
    n: u64,
    cols: Vec<SpoolColumn>,
}

struct SpoolColumn {
    offset: u64,
    elem: u64,
    window: Vec<u8>,
    start: u64,
    len: u64,
    dirty: bool,
}

const WINDOW: u64 = 8192;

impl ObsSpool {
    /// A spool of `n` values per column, each column holding its fill value; `prefix` (the
    /// data of the variables before the columns, padded) comes first.
    fn new(prefix: &[u8], columns: &[Vec<u8>], n: u64) -> io::Result<ObsSpool> {
        let file = tempfile::tempfile()?;
        let mut w = BufWriter::with_capacity(256 << 10, file);
        w.write_all(prefix)?;
        let mut offset = prefix.len() as u64;
        let mut cols = Vec::with_capacity(columns.len());
        for fill in columns {
            let elem = fill.len() as u64;
            let chunk: Vec<u8> = fill.repeat(WINDOW as usize);
            let mut left = n;
            while left > 0 {
                let k = left.min(WINDOW);
                w.write_all(&chunk[..(k * elem) as usize])?;
                left -= k;
            }
            classic::write_padding(&mut w, n * elem)?;
            cols.push(SpoolColumn {
                offset,
                elem,
                window: Vec::new(),
                start: 0,
                len: 0,
                dirty: false,
            });
            offset += n * elem + classic::padding(n * elem);
        }
        let file = w.into_inner().map_err(io::IntoInnerError::into_error)?;
        Ok(ObsSpool { file, n, cols })
    }

    fn flush_window(file: &mut File, c: &mut SpoolColumn) -> io::Result<()> {
        if c.dirty {
            file.seek(SeekFrom::Start(c.offset + c.start * c.elem))?;
            file.write_all(&c.window[..(c.len * c.elem) as usize])?;
            c.dirty = false;
        }
        Ok(())
    }

    /// Sets value `idx` of column `col` to `bytes` (big-endian, the column's width).
    fn set(&mut self, col: usize, idx: u64, bytes: &[u8]) -> io::Result<()> {
        let c = &mut self.cols[col];
        if idx < c.start || idx >= c.start + c.len {
            Self::flush_window(&mut self.file, c)?;
            c.start = idx - idx % WINDOW;
            c.len = WINDOW.min(self.n - c.start);
            c.window.resize((c.len * c.elem) as usize, 0);
            self.file
                .seek(SeekFrom::Start(c.offset + c.start * c.elem))?;
            self.file.read_exact(&mut c.window)?;
        }
        let at = ((idx - c.start) * c.elem) as usize;
        c.window[at..at + bytes.len()].copy_from_slice(bytes);
        c.dirty = true;
        Ok(())
    }

    /// Writes every window back and returns the file, rewound.
    fn finish(mut self) -> io::Result<File> {
        for c in &mut self.cols {
            Self::flush_window(&mut self.file, c)?;
        }
        self.file.rewind()?;
        Ok(self.file)
    }
}

/// The `unplaced` rows' columns, each appended to its own temporary file.
struct UnplacedSpool {
    rows: u64,
    cols: Vec<BufWriter<File>>,
}

/// The `unplaced` columns: name, type.
const UNPLACED_COLUMNS: [(&str, NcType); 9] = [
    ("unplaced_time", NcType::Double),
    ("unplaced_mono_time", NcType::Double),
    ("unplaced_boot", NcType::Short),
    ("unplaced_sensor", NcType::Short),
    ("unplaced_quantity", NcType::Int),
    ("unplaced_value", NcType::Double),
    ("unplaced_quality", NcType::Short),
    ("unplaced_time_source", NcType::Byte),
    ("unplaced_reason", NcType::Byte),
];

struct UnplacedRow {
    utc: Option<f64>,
    mono_s: f64,
    boot: i16,
    sensor: i16,
    quantity: i32,
    value: f64,
    quality: i16,
    time_source: i8,
    reason: i8,
}

impl UnplacedSpool {
    fn new() -> io::Result<UnplacedSpool> {
        let cols = UNPLACED_COLUMNS
            .iter()
            .map(|_| Ok(BufWriter::with_capacity(64 << 10, tempfile::tempfile()?)))
            .collect::<io::Result<Vec<_>>>()?;
        Ok(UnplacedSpool { rows: 0, cols })
    }

    fn push(&mut self, r: &UnplacedRow) -> io::Result<()> {
        let c = &mut self.cols;
        c[0].write_all(&r.utc.unwrap_or(FILL_DOUBLE).to_be_bytes())?;
        c[1].write_all(&r.mono_s.to_be_bytes())?;
        c[2].write_all(&r.boot.to_be_bytes())?;
        c[3].write_all(&r.sensor.to_be_bytes())?;
        c[4].write_all(&r.quantity.to_be_bytes())?;
        c[5].write_all(&r.value.to_be_bytes())?;
        c[6].write_all(&r.quality.to_be_bytes())?;
        c[7].write_all(&r.time_source.to_be_bytes())?;
        c[8].write_all(&r.reason.to_be_bytes())?;
        self.rows += 1;
        Ok(())
    }

    fn finish(self) -> io::Result<Vec<File>> {
        self.cols
            .into_iter()
            .map(|w| {
                let mut f = w.into_inner().map_err(io::IntoInnerError::into_error)?;
                f.rewind()?;
                Ok(f)
            })
            .collect()
    }
}

/// A data variable on `obs`: its spool columns.
struct Placed {
    value_col: usize,
    quality_col: usize,
}

/// One sensor's variables on `obs`.
struct SensorVars {
    /// Its `SENSOR_time` and `SENSOR_time_source` columns (`None` for the GNSS sensor,
    /// whose times are the track's).
    time_cols: Option<(usize, usize)>,
    /// Per quantity.
    quantities: BTreeMap<Quantity, Placed>,
    /// Which track positions an instant of the sensor holds.
    taken: Vec<u64>,
}

impl SensorVars {
    fn take(&mut self, pos: usize) -> bool {
        let (word, bit) = (pos / 64, 1u64 << (pos % 64));
        let free = self.taken[word] & bit == 0;
        self.taken[word] |= bit;
        free
    }
}

fn text(name: &str, value: impl Into<String>) -> Attribute {
    Attribute::text(name, value)
}

fn quality_attrs(of: &str) -> Vec<Attribute> {
    vec![
        text("long_name", format!("quality flags of {of}")),
        Attribute::new("_FillValue", AttrValue::Shorts(vec![FILL_SHORT])),
        Attribute::new(
            "flag_masks",
            AttrValue::Shorts((0..7).map(|b| 1i16 << b).collect()),
        ),
        text("flag_meanings", QUALITY_MEANINGS),
        text(
            "comment",
            "bits of the reading's quality flags as the sensor driver set them; 0 when none is set",
        ),
    ]
}

fn time_source_attrs(of: &str) -> Vec<Attribute> {
    vec![
        text("long_name", format!("source of the UTC of {of}")),
        Attribute::new("_FillValue", AttrValue::Bytes(vec![FILL_BYTE])),
        Attribute::new("flag_values", AttrValue::Bytes(vec![0, 1, 2, 3])),
        text("flag_meanings", TIME_SOURCE_MEANINGS),
        text(
            "comment",
            "reconstructed: the agent's monotonic time mapped to UTC with the boot's time correlation nearest to it",
        ),
    ]
}

/// Builds the header's variables and the spool's columns in file order.
struct Builder {
    header: Header,
    /// Fill bytes of each spool column, in order.
    columns: Vec<Vec<u8>>,
    obs_dim: usize,
}

impl Builder {
    fn var(&mut self, name: &str, dims: Vec<usize>, nc_type: NcType, attrs: Vec<Attribute>) {
        self.header.vars.push(Variable {
            name: name.to_owned(),
            dims,
            nc_type,
            attrs,
        });
    }

    /// A variable on `obs`, spooled; returns its column.
    fn column(&mut self, name: &str, nc_type: NcType, attrs: Vec<Attribute>) -> usize {
        let fill = match nc_type {
            NcType::Double => FILL_DOUBLE.to_be_bytes().to_vec(),
            NcType::Short => FILL_SHORT.to_be_bytes().to_vec(),
            _ => FILL_BYTE.to_be_bytes().to_vec(),
        };
        self.var(name, vec![self.obs_dim], nc_type, attrs);
        self.columns.push(fill);
        self.columns.len() - 1
    }
}

fn sensor_device(ds: &Dataset<'_>, sensor: &str) -> Option<String> {
    ds.catalog
        .sensors
        .get(sensor)?
        .descriptors
        .last()
        .map(|d| d.descriptor.device.clone())
}

fn word(s: &str) -> String {
    s.chars()
        .map(|c| if c.is_ascii_alphanumeric() { c } else { '_' })
        .collect()
}

/// Writes `ds` as one CF trajectory, `STEM.nc`.
pub fn write(ds: &Dataset<'_>, out: &mut dyn Output) -> Result<(), ExportError> {
    let mut survey = survey(ds)?;
    let track = choose_track(&mut survey)?;
    let mut plan = plan(ds, &survey, &track)?;
    let boot_index = boot_index(ds);
    let placed = place(ds, &mut plan, &survey, &track, &boot_index)?;
    let Placement {
        mut spool,
        mut unplaced_files,
        unplaced_rows,
        on_track,
        ranges,
    } = placed;
    let mut header = plan.builder.header;
    if unplaced_rows > 0 {
        add_unplaced(&mut header, &survey, &track, &boot_index, unplaced_rows)?;
    }
    header.attrs = global_attrs(
        ds,
        &track,
        &survey,
        ranges,
        ds.stats().coverage_text(),
        on_track,
        unplaced_rows,
    );
    for v in &mut header.vars {
        let kind = content_type(v);
        v.attrs.push(text("coverage_content_type", kind));
    }
    let (header, layout) = header.encode()?;
    tracing::debug!(
        fixes = track.times.len(),
        on_track,
        unplaced = unplaced_rows,
        bytes = layout.file_len,
        "NetCDF header laid out."
    );
    let name = format!("{}.nc", ds.options.stem);
    out.file(&name, "netcdf", "application/x-netcdf", &mut |w| {
        w.write_all(&header).map_err(ExportError::write)?;
        spool.rewind().map_err(ExportError::write)?;
        copy(&mut spool, w)?;
        for (f, (_, nc_type)) in unplaced_files.iter_mut().zip(UNPLACED_COLUMNS) {
            f.rewind().map_err(ExportError::write)?;
            copy(f, w)?;
            classic::write_padding(w, unplaced_rows * nc_type.size())
                .map_err(ExportError::write)?;
        }
        Ok(())
    })?;
    Ok(())
}

/// The GNSS sensor (the one with the most fixes; the first by name of equals) and its
/// fixes as the track; refused when the selection has no fix.
fn choose_track(survey: &mut Survey) -> Result<Track, ExportError> {
    let gnss = survey
        .fixes
        .iter()
        .fold(None::<(&String, usize)>, |best, (s, f)| match best {
            Some((_, n)) if n >= f.len() => best,
            _ => Some((s, f.len())),
        })
        .map(|(s, _)| s.clone());
    let Some(gnss) = gnss else {
        return Err(ExportError::Unsuitable(
            "netcdf: a CF trajectory needs GNSS fixes (latitude and longitude with UTC), and the selection has none; select the GNSS sensor and its latitude and longitude".to_owned(),
        ));
    };
    let stream_times = survey.fixes.remove(&gnss).unwrap_or_default();
    let track = Track::new(gnss, stream_times)?;
    tracing::debug!(sensor = %track.sensor, fixes = track.times.len(), "NetCDF track chosen.");
    Ok(track)
}

/// The file's plan before the placing pass: the header so far, the spooled columns, and each
/// sensor's variables.
struct Plan {
    builder: Builder,
    /// The data of the variables before the spooled columns (`trajectory`), padded.
    leading: Vec<u8>,
    /// The `time` column.
    time_col: usize,
    /// The `time_source` column of the fixes.
    fix_source_col: usize,
    /// Every sensor's variables, the GNSS sensor's too.
    sensors: BTreeMap<String, SensorVars>,
}

/// Lays out the header's dimensions and variables on the track.
fn plan(ds: &Dataset<'_>, survey: &Survey, track: &Track) -> Result<Plan, ExportError> {
    let gnss = track.sensor.clone();
    let n_obs = track.times.len();
    let gnss_q = survey.quantities.get(&gnss).cloned().unwrap_or_default();
    let has_alt = gnss_q.contains(&Quantity::AltitudeMsl);
    let coordinates = if has_alt {
        "time lat lon alt"
    } else {
        "time lat lon"
    };

    let mut b = Builder {
        header: Header::default(),
        columns: Vec::new(),
        obs_dim: 0,
    };
    let traj_name = ds.node.as_bytes().to_vec();
    b.header.dims.push(Dimension {
        name: "obs".to_owned(),
        len: n_obs as u32,
    });
    b.header.dims.push(Dimension {
        name: "name_strlen".to_owned(),
        len: traj_name.len().max(1) as u32,
    });
    b.var(
        "trajectory",
        vec![1],
        NcType::Char,
        vec![
            text("cf_role", "trajectory_id"),
            text("long_name", "the node (aircraft's sensor board) that flew"),
        ],
    );
    let mut leading = traj_name.clone();
    leading.resize(traj_name.len().max(1), 0);
    let pad = classic::padding(leading.len() as u64) as usize;
    leading.resize(leading.len() + pad, 0);

    let units = track.units();
    let time_col = b.column(
        "time",
        NcType::Double,
        vec![
            text("standard_name", "time"),
            text("long_name", "UTC of the GNSS fix"),
            text("units", units.clone()),
            text("calendar", "standard"),
            text("axis", "T"),
            text("comment", format!("resolution {TIME_RESOLUTION}")),
        ],
    );
    let coord = |b: &mut Builder, name: &str, q: Quantity, extra: Vec<Attribute>| {
        let mut attrs = vec![
            text("standard_name", q.cf_standard_name().unwrap_or_default()),
            text("long_name", format!("{q} of the GNSS fix (sensor {gnss})")),
            text("units", q.unit().unwrap_or_default()),
        ];
        attrs.extend(extra);
        attrs.push(text(
            "ancillary_variables",
            format!("{name}_quality time_source"),
        ));
        let value_col = b.column(name, NcType::Double, attrs);
        let quality_col = b.column(
            &format!("{name}_quality"),
            NcType::Short,
            quality_attrs(name),
        );
        Placed {
            value_col,
            quality_col,
        }
    };
    let mut gnss_vars = SensorVars {
        time_cols: None,
        quantities: BTreeMap::new(),
        taken: vec![u64::MAX; n_obs.div_ceil(64)],
    };
    let lat = coord(&mut b, "lat", Quantity::Latitude, vec![text("axis", "Y")]);
    gnss_vars.quantities.insert(Quantity::Latitude, lat);
    let lon = coord(&mut b, "lon", Quantity::Longitude, vec![text("axis", "X")]);
    gnss_vars.quantities.insert(Quantity::Longitude, lon);
    if has_alt {
        let alt = coord(
            &mut b,
            "alt",
            Quantity::AltitudeMsl,
            vec![
                text("axis", "Z"),
                text("positive", "up"),
                Attribute::new("_FillValue", AttrValue::Doubles(vec![FILL_DOUBLE])),
                text(
                    "comment",
                    "GNSS altitude above mean sea level (the receiver's geoid model)",
                ),
            ],
        );
        gnss_vars.quantities.insert(Quantity::AltitudeMsl, alt);
    }
    let fix_source_col = b.column(
        "time_source",
        NcType::Byte,
        time_source_attrs("the GNSS fix"),
    );

    let data_attrs = |sensor: &str, q: Quantity, prefix: &str, placed_comment: Option<&str>| {
        let name = format!("{prefix}_{q}");
        let mut attrs = Vec::new();
        if let Some(sn) = q.cf_standard_name() {
            attrs.push(text("standard_name", sn));
        }
        let device = sensor_device(ds, sensor)
            .map(|d| format!(" ({d})"))
            .unwrap_or_default();
        attrs.push(text(
            "long_name",
            format!("{q} from sensor {sensor}{device}"),
        ));
        if let Some(u) = q.unit() {
            attrs.push(text("units", u));
        }
        attrs.push(Attribute::new(
            "_FillValue",
            AttrValue::Doubles(vec![FILL_DOUBLE]),
        ));
        attrs.push(text("coordinates", coordinates));
        if let Some(Resample::Mean { interval_ns }) = ds.selection.resample {
            attrs.push(text(
                "cell_methods",
                format!("time: mean (interval: {} s)", interval_ns as f64 / 1e9),
            ));
        }
        let time_vars = if placed_comment.is_some() {
            format!(" {prefix}_time {prefix}_time_source")
        } else {
            " time_source".to_owned()
        };
        attrs.push(text(
            "ancillary_variables",
            format!("{name}_quality{time_vars}"),
        ));
        if let Some(c) = placed_comment {
            attrs.push(text("comment", c));
        }
        (name, attrs)
    };

    let gnss_prefix = sensor_var_prefix(&gnss);
    for q in &gnss_q {
        if matches!(
            *q,
            Quantity::Latitude | Quantity::Longitude | Quantity::AltitudeMsl
        ) {
            continue;
        }
        let (name, attrs) = data_attrs(&gnss, *q, &gnss_prefix, None);
        let value_col = b.column(&name, NcType::Double, attrs);
        let quality_col = b.column(
            &format!("{name}_quality"),
            NcType::Short,
            quality_attrs(&name),
        );
        gnss_vars.quantities.insert(
            *q,
            Placed {
                value_col,
                quality_col,
            },
        );
    }

    let placed_comment = format!(
        "each instant of the sensor is placed at the GNSS fix nearest to it in UTC when one is within {} s (a tie goes to the earlier fix), once per fix: the first such instant in stream order; its own UTC is in the SENSOR_time variable; readings without UTC, without a fix that near, or nearest to a fix another instant of the sensor holds are in the unplaced_* variables; nothing is interpolated",
        TOLERANCE_NS as f64 / 1e9
    );
    let mut sensors: BTreeMap<String, SensorVars> = BTreeMap::new();
    for (sensor, qs) in &survey.quantities {
        if *sensor == gnss {
            continue;
        }
        let prefix = sensor_var_prefix(sensor);
        let t = b.column(
            &format!("{prefix}_time"),
            NcType::Double,
            vec![
                text(
                    "long_name",
                    format!("UTC of the instant of sensor {sensor} placed at the fix"),
                ),
                text("units", units.clone()),
                text("calendar", "standard"),
                Attribute::new("_FillValue", AttrValue::Doubles(vec![FILL_DOUBLE])),
            ],
        );
        let ts = b.column(
            &format!("{prefix}_time_source"),
            NcType::Byte,
            time_source_attrs(&format!("sensor {sensor}'s readings")),
        );
        let mut vars = SensorVars {
            time_cols: Some((t, ts)),
            quantities: BTreeMap::new(),
            taken: vec![0; n_obs.div_ceil(64)],
        };
        for q in qs {
            let (name, attrs) = data_attrs(sensor, *q, &prefix, Some(&placed_comment));
            let value_col = b.column(&name, NcType::Double, attrs);
            let quality_col = b.column(
                &format!("{name}_quality"),
                NcType::Short,
                quality_attrs(&name),
            );
            vars.quantities.insert(
                *q,
                Placed {
                    value_col,
                    quality_col,
                },
            );
        }
        sensors.insert(sensor.clone(), vars);
    }
    sensors.insert(gnss, gnss_vars);
    // The header must be valid before a byte is spooled.
    b.header.check()?;
    Ok(Plan {
        builder: b,
        leading,
        time_col,
        fix_source_col,
        sensors,
    })
}

/// What the placing pass wrote.
struct Placement {
    /// The track's columns, laid out as the file's data section.
    spool: File,
    /// The `unplaced` columns, one file each, in [`UNPLACED_COLUMNS`] order.
    unplaced_files: Vec<File>,
    /// Rows of `unplaced`.
    unplaced_rows: u64,
    /// Readings on the track.
    on_track: u64,
    /// Latitude, longitude and altitude ranges of the fixes.
    ranges: Ranges,
}

/// Each boot's index in `unplaced_boot`: boots by id.
fn boot_index(ds: &Dataset<'_>) -> BTreeMap<[u8; 16], i16> {
    ds.catalog
        .boots
        .iter()
        .map(|b| b.boot_id.0)
        .collect::<BTreeSet<_>>()
        .into_iter()
        .enumerate()
        .map(|(i, b)| (b, i16::try_from(i).unwrap_or(i16::MAX)))
        .collect()
}

/// The second pass: every instant to its place on the track or to the `unplaced` rows.
fn place(
    ds: &Dataset<'_>,
    plan: &mut Plan,
    survey: &Survey,
    track: &Track,
    boot_index: &BTreeMap<[u8; 16], i16>,
) -> Result<Placement, ExportError> {
    let n_obs = track.times.len();
    let (time_col, fix_source_col) = (plan.time_col, plan.fix_source_col);
    let sensors = &mut plan.sensors;
    let mut spool = ObsSpool::new(&plan.leading, &plan.builder.columns, n_obs as u64)
        .map_err(ExportError::write)?;
    let mut unplaced = UnplacedSpool::new().map_err(ExportError::write)?;
    let sensor_index: BTreeMap<&str, i16> = survey
        .quantities
        .keys()
        .enumerate()
        .map(|(i, s)| (s.as_str(), i16::try_from(i).unwrap_or(i16::MAX)))
        .collect();
    let mut lat_range = None::<(f64, f64)>;
    let mut lon_range = None::<(f64, f64)>;
    let mut alt_range = None::<(f64, f64)>;
    let widen = |r: &mut Option<(f64, f64)>, v: f64| {
        if v.is_finite() {
            *r = Some(r.map_or((v, v), |(lo, hi)| (lo.min(v), hi.max(v))));
        }
    };
    let mut fix_ordinal = 0usize;
    let mut placed_readings = 0u64;
    ds.instants(&mut |i| {
        let io = ExportError::write;
        let Some(vars) = sensors.get_mut(&i.sensor) else {
            return Err(changed_between_passes(&i.sensor));
        };
        let seen = survey.quantities.get(&i.sensor);
        if i.values
            .iter()
            .any(|(q, _, _)| !seen.is_some_and(|s| s.contains(q)))
        {
            return Err(changed_between_passes(&i.sensor));
        }
        let mut unplace = |i: &Instant, q: Quantity, v: f64, f: Quality, reason: i8| {
            unplaced
                .push(&UnplacedRow {
                    utc: i.utc_ns.map(|u| track.seconds(u)),
                    mono_s: i.mono_ns as f64 / 1e9,
                    boot: i
                        .boot
                        .and_then(|b| boot_index.get(&b.0).copied())
                        .unwrap_or(FILL_SHORT),
                    sensor: sensor_index
                        .get(i.sensor.as_str())
                        .copied()
                        .unwrap_or(FILL_SHORT),
                    quantity: i32::from(q.code()),
                    value: v,
                    quality: quality_short(f),
                    time_source: source_code(i.time_source) as i8,
                    reason,
                })
                .map_err(io)
        };
        let (pos, fresh) = if i.sensor == track.sensor && is_fix(i) {
            let pos = *track
                .order
                .get(fix_ordinal)
                .ok_or_else(|| changed_between_passes(&i.sensor))? as usize;
            fix_ordinal += 1;
            let utc = i.utc_ns.unwrap_or_default();
            spool
                .set(time_col, pos as u64, &track.seconds(utc).to_be_bytes())
                .map_err(io)?;
            spool
                .set(fix_source_col, pos as u64, &[source_code(i.time_source)])
                .map_err(io)?;
            (pos, true)
        } else {
            let Some(utc) = i.utc_ns else {
                for (q, v, f) in &i.values {
                    unplace(i, *q, *v, *f, REASON_NO_UTC)?;
                }
                return Ok(());
            };
            let Some(pos) = track.nearest(utc) else {
                for (q, v, f) in &i.values {
                    unplace(i, *q, *v, *f, REASON_NO_FIX)?;
                }
                return Ok(());
            };
            (pos, vars.take(pos))
        };
        if !fresh {
            for (q, v, f) in &i.values {
                unplace(i, *q, *v, *f, REASON_TAKEN)?;
            }
            return Ok(());
        }
        if let (Some((t, ts)), Some(utc)) = (vars.time_cols, i.utc_ns) {
            spool
                .set(t, pos as u64, &track.seconds(utc).to_be_bytes())
                .map_err(io)?;
            spool
                .set(ts, pos as u64, &[source_code(i.time_source)])
                .map_err(io)?;
        }
        let mut done: BTreeSet<Quantity> = BTreeSet::new();
        for (q, v, f) in &i.values {
            let Some(p) = vars.quantities.get(q) else {
                return Err(changed_between_passes(&i.sensor));
            };
            if !done.insert(*q) {
                // A second value of one quantity in one instant: its place is taken.
                unplace(i, *q, *v, *f, REASON_TAKEN)?;
                continue;
            }
            spool
                .set(p.value_col, pos as u64, &v.to_be_bytes())
                .map_err(io)?;
            spool
                .set(p.quality_col, pos as u64, &quality_short(*f).to_be_bytes())
                .map_err(io)?;
            placed_readings += 1;
            if i.sensor == track.sensor {
                match *q {
                    Quantity::Latitude => widen(&mut lat_range, *v),
                    Quantity::Longitude => widen(&mut lon_range, *v),
                    Quantity::AltitudeMsl => widen(&mut alt_range, *v),
                    _ => {}
                }
            }
        }
        Ok(())
    })?;
    Ok(Placement {
        unplaced_rows: unplaced.rows,
        spool: spool.finish().map_err(ExportError::write)?,
        unplaced_files: unplaced.finish().map_err(ExportError::write)?,
        on_track: placed_readings,
        ranges: (lat_range, lon_range, alt_range),
    })
}

/// The second pass saw readings the first did not: the source broke its promise that every
/// pass yields the same records. Refused rather than leaving readings out.
fn changed_between_passes(sensor: &str) -> ExportError {
    encoder(format!(
        "the records changed between the export's passes (new readings of sensor {sensor:?}); export again"
    ))
}

/// ACDD's `coverage_content_type` of a variable, from its role.
fn content_type(v: &Variable) -> &'static str {
    let has = |name: &str| v.attrs.iter().any(|a| a.name == name);
    match v.name.as_str() {
        "time" | "lat" | "lon" | "alt" => "coordinate",
        "trajectory" => "referenceInformation",
        "unplaced_value" => "physicalMeasurement",
        "unplaced_reason" | "time_source" => "qualityInformation",
        n if has("flag_masks") || n.ends_with("_time_source") => "qualityInformation",
        _ if has("coordinates") => "physicalMeasurement",
        _ => "auxiliaryInformation",
    }
}

fn quality_short(q: Quality) -> i16 {
    // The bits as stored: unknown higher bits survive (a u16 read as the same 16 bits).
    i16::from_be_bytes(q.bits().to_be_bytes())
}

fn add_unplaced(
    header: &mut Header,
    survey: &Survey,
    track: &Track,
    boot_index: &BTreeMap<[u8; 16], i16>,
    rows: u64,
) -> Result<(), ExportError> {
    let len = u32::try_from(rows).map_err(|_| {
        ExportError::Unsuitable(format!(
            "netcdf: {rows} readings off the track are more than one netCDF dimension holds"
        ))
    })?;
    header.dims.push(Dimension {
        name: "unplaced".to_owned(),
        len,
    });
    let dim = header.dims.len() - 1;
    let sensors: Vec<&String> = survey.quantities.keys().collect();
    let quantities: BTreeSet<Quantity> = survey.quantities.values().flatten().copied().collect();
    let units: Vec<String> = quantities
        .iter()
        .map(|q| format!("{q}: {}", q.unit().unwrap_or("unknown")))
        .collect();
    for (name, nc_type) in UNPLACED_COLUMNS {
        let mut attrs = Vec::new();
        match name {
            "unplaced_time" => {
                attrs.push(text(
                    "long_name",
                    "UTC of the reading off the track (fill: the reading has no UTC)",
                ));
                attrs.push(text("units", track.units()));
                attrs.push(text("calendar", "standard"));
                attrs.push(Attribute::new(
                    "_FillValue",
                    AttrValue::Doubles(vec![FILL_DOUBLE]),
                ));
            }
            "unplaced_mono_time" => {
                attrs.push(text(
                    "long_name",
                    "the board's monotonic clock at the reading, since its boot",
                ));
                attrs.push(text("units", "s"));
            }
            "unplaced_boot" => {
                attrs.push(text(
                    "long_name",
                    "the boot of the board the monotonic time belongs to",
                ));
                attrs.push(Attribute::new(
                    "_FillValue",
                    AttrValue::Shorts(vec![FILL_SHORT]),
                ));
                if !boot_index.is_empty() {
                    attrs.push(Attribute::new(
                        "flag_values",
                        AttrValue::Shorts(boot_index.values().copied().collect()),
                    ));
                    attrs.push(text(
                        "flag_meanings",
                        boot_index
                            .keys()
                            .map(|b| format!("boot_{}", hex(b)))
                            .collect::<Vec<_>>()
                            .join(" "),
                    ));
                }
            }
            "unplaced_sensor" => {
                attrs.push(text("long_name", "the sensor of the reading"));
                attrs.push(Attribute::new(
                    "flag_values",
                    AttrValue::Shorts((0..sensors.len()).map(|i| i as i16).collect()),
                ));
                attrs.push(text(
                    "flag_meanings",
                    sensors
                        .iter()
                        .map(|s| word(s))
                        .collect::<Vec<_>>()
                        .join(" "),
                ));
            }
            "unplaced_quantity" => {
                attrs.push(text(
                    "long_name",
                    "the quantity of the reading (Aloft's quantity code)",
                ));
                attrs.push(Attribute::new(
                    "flag_values",
                    AttrValue::Ints(quantities.iter().map(|q| i32::from(q.code())).collect()),
                ));
                attrs.push(text(
                    "flag_meanings",
                    quantities
                        .iter()
                        .map(|q| word(&q.to_string()))
                        .collect::<Vec<_>>()
                        .join(" "),
                ));
                attrs.push(text("units_of_quantities", units.join("; ")));
            }
            "unplaced_value" => {
                attrs.push(text("long_name", "the reading's value, in its quantity's unit (unplaced_quantity:units_of_quantities)"));
            }
            "unplaced_quality" => attrs.extend(quality_attrs("the reading off the track")),
            "unplaced_time_source" => attrs.extend(time_source_attrs("the reading off the track")),
            _ => {
                attrs.push(text("long_name", "why the reading is not on the track"));
                attrs.push(Attribute::new(
                    "flag_values",
                    AttrValue::Bytes(vec![0, 1, 2]),
                ));
                attrs.push(text("flag_meanings", UNPLACED_MEANINGS));
            }
        }
        header.vars.push(Variable {
            name: name.to_owned(),
            dims: vec![dim],
            nc_type,
            attrs,
        });
    }
    Ok(())
}

type Ranges = (Option<(f64, f64)>, Option<(f64, f64)>, Option<(f64, f64)>);

/// The node's power steps as the `aloft_power_steps` global attribute: one line a change
/// (UTC, step, level, reason, what it did to each sensor), so a sensor's fill values while
/// a step stopped or slowed it are explained in the file itself; `None` without steps.
fn power_steps_text(ds: &Dataset<'_>) -> Option<String> {
    use crate::formats::track::one_line;
    let steps = &ds.catalog.power_steps;
    if steps.is_empty() {
        return None;
    }
    let lines: Vec<String> = steps
        .iter()
        .map(|p| {
            let effects: Vec<String> = p
                .effects
                .iter()
                .map(|e| {
                    let what = if e.overridden {
                        "exempted by the operator".to_owned()
                    } else if e.disabled {
                        "stopped".to_owned()
                    } else {
                        e.interval_ms.map_or("unchanged".to_owned(), |ms| {
                            format!("every {ms} ms at most")
                        })
                    };
                    format!("{} {what}", one_line(&e.sensor))
                })
                .collect();
            format!(
                "{} {} (level {}): {}{}",
                p.time.as_deref().unwrap_or("no-UTC"),
                one_line(&p.step),
                p.level,
                one_line(&p.reason),
                if effects.is_empty() {
                    String::new()
                } else {
                    format!("; {}", effects.join(", "))
                }
            )
        })
        .collect();
    Some(lines.join("\n"))
}

fn global_attrs(
    ds: &Dataset<'_>,
    track: &Track,
    survey: &Survey,
    (lat, lon, alt): Ranges,
    coverage: Option<(String, String)>,
    placed: u64,
    unplaced: u64,
) -> Vec<Attribute> {
    let m = &ds.options.metadata;
    let created = rfc3339_ns(ds.options.created_utc_ns);
    let title = if m.title.is_empty() {
        format!("Flight of {} ({})", m.platform, ds.node)
    } else {
        m.title.clone()
    };
    let instruments: Vec<String> = survey
        .quantities
        .keys()
        .map(|s| match sensor_device(ds, s) {
            Some(d) => format!("{s}: {d}"),
            None => s.clone(),
        })
        .collect();
    let mut attrs = vec![
        text("Conventions", "CF-1.8, ACDD-1.3"),
        text("featureType", "trajectory"),
        text("cdm_data_type", "Trajectory"),
        text("title", title),
        text(
            "summary",
            format!(
                "Readings of the sensors of node {} along the flight's GNSS track, one trajectory; readings off the track are kept in the unplaced_* variables",
                ds.node
            ),
        ),
        text(
            "keywords",
            "glider, trajectory, GNSS, air pressure, air temperature, cosmic rays",
        ),
        text("institution", m.institution.clone()),
        text("creator_name", m.principal_investigator.clone()),
        text("project", m.project.clone()),
        text("platform", m.platform.clone()),
        text("instrument", instruments.join("; ")),
        text(
            "source",
            format!(
                "Aloft edge agent on node {}: sensor readings as recorded on board",
                ds.node
            ),
        ),
        text("license", m.license.clone()),
        text(
            "history",
            format!(
                "{created} exported by Aloft {} (format netcdf) from the node's record stream",
                env!("CARGO_PKG_VERSION")
            ),
        ),
        text("date_created", created),
        text(
            "references",
            "docs/export.md of Aloft: the time definition and the NetCDF-CF layout",
        ),
        text(
            "comment",
            format!(
                "UTC: {} The track's times are those of the GNSS fixes of sensor {}; time resolution {TIME_RESOLUTION}.",
                crate::sidecar::TIME_DEFINITION,
                track.sensor
            ),
        ),
        Attribute::new(
            "time_placement_tolerance_s",
            AttrValue::Doubles(vec![TOLERANCE_NS as f64 / 1e9]),
        ),
        Attribute::new("readings_on_track", AttrValue::Doubles(vec![placed as f64])),
        Attribute::new(
            "readings_unplaced",
            AttrValue::Doubles(vec![unplaced as f64]),
        ),
    ];
    if let Some(r) = crate::sidecar::selection_text(&ds.selection).resample {
        attrs.push(text("resampling", r.description));
    }
    if let Some(steps) = power_steps_text(ds) {
        attrs.push(text("aloft_power_steps", steps));
    }
    if let Some((start, end)) = coverage {
        attrs.push(text("time_coverage_start", start));
        attrs.push(text("time_coverage_end", end));
    }
    for (key, range, units) in [
        ("lat", lat, "degrees_north"),
        ("lon", lon, "degrees_east"),
        ("vertical", alt, "m"),
    ] {
        if let Some((lo, hi)) = range {
            attrs.push(Attribute::new(
                &format!("geospatial_{key}_min"),
                AttrValue::Doubles(vec![lo]),
            ));
            attrs.push(Attribute::new(
                &format!("geospatial_{key}_max"),
                AttrValue::Doubles(vec![hi]),
            ));
            attrs.push(text(&format!("geospatial_{key}_units"), units));
        }
    }
    if alt.is_some() {
        attrs.push(text("geospatial_vertical_positive", "up"));
    }
    attrs
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_nearest_fix_within_the_tolerance_is_chosen_and_a_tie_goes_to_the_earlier() {
        let t = Track::new(
            "gps".to_owned(),
            vec![3_000_000_000, 1_000_000_000, 2_000_000_000],
        )
        .unwrap();
        assert_eq!(t.times, vec![1_000_000_000, 2_000_000_000, 3_000_000_000]);
        assert_eq!(t.order, vec![2, 0, 1]);
        assert_eq!(t.nearest(1_400_000_000), Some(0));
        assert_eq!(t.nearest(1_500_000_000), Some(0));
        assert_eq!(t.nearest(1_500_000_001), Some(1));
        assert_eq!(t.nearest(500_000_000), Some(0));
        assert_eq!(t.nearest(499_999_999), None);
        assert_eq!(t.nearest(3_500_000_001), None);
        assert_eq!(t.epoch_ns, 0);
        assert_eq!(t.units(), "seconds since 1970-01-01 00:00:00");
    }

    #[test]
    fn sensor_names_become_netcdf_names() {
        assert_eq!(sensor_var_prefix("outside-air"), "outside_air");
        assert_eq!(sensor_var_prefix("2nd-gps"), "sensor_2nd_gps");
        assert!(classic::valid_name(&sensor_var_prefix("sensor-3")));
    }

    #[test]
    fn quality_bits_survive_as_the_same_sixteen_bits() {
        assert_eq!(quality_short(Quality::SIMULATED | Quality::DERIVED), 40);
        assert_eq!(quality_short(Quality::from_bits(0x8001)), i16::MIN + 1);
    }
}
