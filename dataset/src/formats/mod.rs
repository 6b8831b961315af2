//! The file formats, one module each, and [`export`], which runs one format and writes the
//! sidecar after it.
//!
//! Invariants: every format writes through an [`Output`] (so a failed export leaves
//! nothing that looks complete) and from a [`Dataset`]'s passes (so the hub and a store
//! directory give the same bytes); each names the resolution at which it holds UTC, for
//! the sidecar.

pub mod csv;
pub mod geojson;
pub mod icartt;
pub mod igc;
pub mod kml;
pub mod netcdf;
pub mod package;
#[cfg(feature = "parquet")]
pub mod parquet;
pub mod track;

use crate::ExportError;
use crate::output::{FileEntry, Output};
use crate::rows::Dataset;
use crate::sidecar;

/// An export format.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum Format {
    /// Apache Parquet (zstd), tidy or wide.
    #[cfg(feature = "parquet")]
    Parquet,
    /// RFC 4180 CSV, tidy or wide.
    Csv,
    /// ICARTT 1001 (V2.0), one file per sensor.
    Icartt,
    /// IGC, the glider pilots' flight log.
    Igc,
    /// GeoJSON (RFC 7946): the track and every sensor instant as a Feature.
    Geojson,
    /// KML 2.2 for Google Earth: the track, extruded, and timed.
    Kml,
    /// NetCDF-CF: one CF-1.8 trajectory in the netCDF classic 64-bit-offset format.
    NetCdf,
    /// The open-data package: every other format, a README and a Frictionless Data
    /// `datapackage.json`.
    Package,
}

impl Format {
    /// Every format, in the order `--help` lists them.
    pub const ALL: &'static [Format] = &[
        #[cfg(feature = "parquet")]
        Format::Parquet,
        Format::Csv,
        Format::NetCdf,
        Format::Icartt,
        Format::Igc,
        Format::Geojson,
        Format::Kml,
        Format::Package,
    ];

    /// The format's name on the command line and in the API.
    pub fn name(self) -> &'static str {
        match self {
            #[cfg(feature = "parquet")]
            Format::Parquet => "parquet",
            Format::Csv => "csv",
            Format::Icartt => "icartt",
            Format::Igc => "igc",
            Format::Geojson => "geojson",
            Format::Kml => "kml",
            Format::NetCdf => "netcdf",
            Format::Package => "package",
        }
    }

    /// The format of `name`.
    pub fn from_name(name: &str) -> Result<Format, ExportError> {
        if name == "parquet" && !cfg!(feature = "parquet") {
            return Err(ExportError::Unsuitable(
                "this build has no Parquet writer (it was built without the `parquet` feature, as the ARM builds of aloftctl are): export Parquet from the hub, or with aloftctl on a workstation".to_owned(),
            ));
        }
        Format::ALL
            .iter()
            .copied()
            .find(|f| f.name() == name)
            .ok_or_else(|| ExportError::UnknownFormat(name.to_owned()))
    }

    /// Whether the format has tidy and wide layouts.
    pub fn has_layouts(self) -> bool {
        #[cfg(feature = "parquet")]
        if self == Format::Parquet {
            return true;
        }
        matches!(self, Format::Csv)
    }

    /// The resolution at which the format's files hold UTC, in words.
    pub fn time_resolution(self) -> &'static str {
        match self {
            #[cfg(feature = "parquet")]
            Format::Parquet => "1 ns (timestamp[ns, UTC])",
            Format::Csv => "1 ns (RFC 3339 with nine fraction digits)",
            Format::Icartt => {
                "1 ns (Time_Start: seconds from 00:00 UTC of the flight date with up to nine fraction digits)"
            }
            Format::Igc => "1 s (B records: HHMMSS UTC, the fraction of the second dropped)",
            Format::Geojson => {
                "1 ns (RFC 3339 with nine fraction digits, per vertex and per Feature)"
            }
            Format::Kml => "1 ns (gx:Track when: RFC 3339 with nine fraction digits)",
            Format::NetCdf => netcdf::TIME_RESOLUTION,
            Format::Package => "that of each format in the package (README.md lists them)",
        }
    }
}

/// Tidy (one row per reading) or wide (one table per sensor, one column per quantity).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub enum Layout {
    /// One row per reading: time, node, sensor, quantity, value, unit, flags, time source.
    #[default]
    Tidy,
    /// One table per sensor, one row per instant, one column per quantity.
    Wide,
}

impl Layout {
    /// The layout's name.
    pub fn name(self) -> &'static str {
        match self {
            Layout::Tidy => "tidy",
            Layout::Wide => "wide",
        }
    }

    /// The layout of `name`.
    pub fn from_name(name: &str) -> Result<Layout, ExportError> {
        match name {
            "tidy" => Ok(Layout::Tidy),
            "wide" => Ok(Layout::Wide),
            other => Err(ExportError::UnknownLayout(other.to_owned())),
        }
    }
}

/// Writes `ds` in `format` to `out`, then its sidecar (`STEM.sidecar.json`); returns every
/// file written, the sidecar last.
pub fn export(
    ds: &Dataset<'_>,
    format: Format,
    out: &mut dyn Output,
) -> Result<Vec<FileEntry>, ExportError> {
    match format {
        #[cfg(feature = "parquet")]
        Format::Parquet => parquet::write(ds, out)?,
        Format::Csv => csv::write(ds, out)?,
        Format::Icartt => icartt::write(ds, out)?,
        Format::Igc => igc::write(ds, out)?,
        Format::Geojson => geojson::write(ds, out)?,
        Format::Kml => kml::write(ds, out)?,
        Format::NetCdf => netcdf::write(ds, out)?,
        Format::Package => package::write(ds, out)?,
    }
    write_sidecar(ds, format, out)?;
    Ok(out.files().to_vec())
}

/// Writes the sidecar of what `out` holds so far.
pub fn write_sidecar(
    ds: &Dataset<'_>,
    format: Format,
    out: &mut dyn Output,
) -> Result<FileEntry, ExportError> {
    let layout = format.has_layouts().then(|| ds.options.layout.name());
    let doc = sidecar::build(
        ds,
        format.name(),
        layout,
        format.time_resolution(),
        out.files(),
    );
    out.file(
        &format!("{}.sidecar.json", ds.options.stem),
        "json",
        "application/json",
        &mut |w| {
            serde_json::to_writer_pretty(&mut *w, &doc)
                .map_err(|e| ExportError::Write(e.into()))?;
            w.write_all(b"\n").map_err(ExportError::write)
        },
    )
}

/// File-name parts for `names` (sensor names, in the order given), each made safe with
/// [`file_safe`] and unique: a name whose safe form another already took gets `_2`, `_3`,
/// ... so two sensors never write one file.
pub fn unique_file_names<'a>(
    names: impl IntoIterator<Item = &'a str>,
) -> std::collections::BTreeMap<String, String> {
    let mut taken = std::collections::BTreeSet::new();
    let mut out = std::collections::BTreeMap::new();
    for name in names {
        if out.contains_key(name) {
            continue;
        }
        let base = file_safe(name);
        let mut candidate = base.clone();
        let mut n = 1;
        while !taken.insert(candidate.to_ascii_lowercase()) {
            n += 1;
            candidate = format!("{base}_{n}");
        }
        out.insert(name.to_owned(), candidate);
    }
    out
}

/// `name` made safe for a file name: ASCII letters, digits, `-`, `_` and `.` kept, anything
/// else `_`; never empty, never starting with a dot.
pub fn file_safe(name: &str) -> String {
    let mut s: String = name
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.') {
                c
            } else {
                '_'
            }
        })
        .collect();
    if s.is_empty() || s.starts_with('.') {
        s.insert(0, '_');
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    proptest! {
        #[test]
        fn names_that_differ_get_file_names_that_differ(names in proptest::collection::vec("\\PC{0,6}", 0..12)) {
            let map = unique_file_names(names.iter().map(String::as_str));
            let mut seen = std::collections::BTreeSet::new();
            for safe in map.values() {
                prop_assert!(seen.insert(safe.to_ascii_lowercase()), "{safe} twice in {map:?}");
                prop_assert!(!safe.is_empty() && !safe.starts_with('.'));
                prop_assert!(safe.bytes().all(|b| b.is_ascii_alphanumeric() || b"-_.".contains(&b)));
            }
        }
    }
}
