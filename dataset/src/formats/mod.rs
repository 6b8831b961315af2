//! The file formats, one module each, and [`export`], which runs one format and writes the
//! sidecar after it.
//!
//! Invariants: every format writes through an [`Output`] (so a failed export leaves
//! nothing that looks complete) and from a [`Dataset`]'s passes (so the hub and a store
//! directory give the same bytes); each names the resolution at which it holds UTC, for
//! the sidecar.

pub mod csv;
pub mod package;
#[cfg(feature = "parquet")]
pub mod parquet;

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
        Format::Package,
    ];

    /// The format's name on the command line and in the API.
    pub fn name(self) -> &'static str {
        match self {
            #[cfg(feature = "parquet")]
            Format::Parquet => "parquet",
            Format::Csv => "csv",
            Format::Package => "package",
        }
    }

    /// The format of `name`.
    pub fn from_name(name: &str) -> Result<Format, ExportError> {
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
