//! Dataset export: a node's readings in the formats researchers' tools read, with the
//! metadata that makes them honest. The hub's export endpoint and `aloftctl export --store`
//! both call this crate, so the same records give the same files.
//!
//! # Layout
//!
//! - [`source`]: where records come from ([`RecordSource`]); an agent's store directory,
//!   read-only ([`StoreDirSource`]). The hub implements the trait over its stream tables.
//! - [`time`]: the one definition of a reading's UTC, used by the time filter and every
//!   format.
//! - [`catalog`]: the first pass: sensors and descriptors, boots, correlations, gaps.
//! - [`selection`]: what to export, checked against the catalog.
//! - [`rows`]: the writing pass ([`Dataset`]): rows in stream order, grouped by instant
//!   where a format wants a row per fix, with the sidecar's figures.
//! - [`formats`]: one module per file format, and [`export`], which runs one and writes
//!   the sidecar after it.
//! - [`sidecar`]: the JSON sidecar of every export.
//! - [`output`]: where files go ([`Output`]): a directory that gets all files or none.
//!
//! Invariants: nothing is interpolated or averaged unless the selection asks, and then the
//! method is in the metadata; a reading with no UTC is never given one; a failed export
//! leaves no file that looks complete; output depends only on the records, the selection
//! and the options (the creation time is an option), so two exports of the same records
//! are byte for byte equal.

pub mod catalog;
pub mod formats;
pub mod output;
pub mod rows;
pub mod selection;
pub mod sidecar;
pub mod source;
pub mod time;

pub use formats::{Format, Layout, export};
pub use output::{DirOutput, FileEntry, Output};
pub use rows::{Dataset, Instant, Row, Stats};
pub use selection::{Resample, Selection};
pub use source::{Completeness, RecordSource, SourceError, StoreDirSource};

/// Why an export failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ExportError {
    /// The records could not be read.
    #[error(transparent)]
    Source(#[from] SourceError),
    /// The selection names a sensor the records do not have.
    #[error("no sensor {name:?} in this node's records (sensors: {known})")]
    UnknownSensor {
        /// The name asked for.
        name: String,
        /// The sensors there are.
        known: String,
    },
    /// The selection names a quantity that does not exist.
    #[error("unknown quantity {name:?} (quantities: {known})")]
    UnknownQuantity {
        /// The name asked for.
        name: String,
        /// The quantities there are.
        known: String,
    },
    /// The format's name is not one of the formats.
    #[error(
        "unknown format {0:?} (formats: parquet, csv, netcdf, icartt, igc, geojson, kml, package)"
    )]
    UnknownFormat(String),
    /// The layout's name is not `tidy` or `wide`.
    #[error("unknown layout {0:?} (layouts: tidy, wide)")]
    UnknownLayout(String),
    /// The time range is inverted or empty.
    #[error("the time range from {from} to {to} is empty: `from` must be before `to`")]
    EmptyRange {
        /// From.
        from: String,
        /// To.
        to: String,
    },
    /// The interval is zero.
    #[error("the interval must be longer than zero")]
    BadInterval,
    /// The selection matches readings the format cannot carry, or none it needs.
    #[error("{0}")]
    Unsuitable(String),
    /// An output file name leaves the export (absolute, `..`, empty parts).
    #[error("export file name {0:?} is not a plain relative path")]
    BadFileName(String),
    /// An output file exists and the caller did not say to replace it.
    #[error("{0} exists; pass --force to replace it")]
    Exists(String),
    /// Writing an output file failed (a full disk, a vanished directory).
    #[error("cannot write {path}: {source}")]
    Output {
        /// The file.
        path: String,
        /// Why.
        #[source]
        source: std::io::Error,
    },
    /// Writing to the export's stream failed.
    #[error("cannot write the export: {0}")]
    Write(#[source] std::io::Error),
    /// A format's encoder failed.
    #[error("{format} encoder: {message}")]
    Encoder {
        /// The format.
        format: &'static str,
        /// What it said.
        message: String,
    },
}

impl ExportError {
    /// A write error of the export's stream.
    pub fn write(e: std::io::Error) -> ExportError {
        ExportError::Write(e)
    }

    /// Whether the error is the caller's (a bad selection or request), not the system's.
    pub fn is_request_error(&self) -> bool {
        matches!(
            self,
            ExportError::UnknownSensor { .. }
                | ExportError::UnknownQuantity { .. }
                | ExportError::UnknownFormat(_)
                | ExportError::UnknownLayout(_)
                | ExportError::EmptyRange { .. }
                | ExportError::BadInterval
                | ExportError::Unsuitable(_)
        )
    }
}

/// Who made the data and what it is: global attributes, headers and the package's
/// description. Every field has an honest default.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Metadata {
    /// A title for the dataset.
    pub title: String,
    /// The institution that made it.
    pub institution: String,
    /// The principal investigator, `Last, First` (ICARTT's PI line).
    pub principal_investigator: String,
    /// The project or mission (ICARTT's mission name).
    pub project: String,
    /// The platform (aircraft) name.
    pub platform: String,
    /// The data licence (an SPDX id or a URL).
    pub license: String,
    /// The pilot (IGC `HFPLTPILOTINCHARGE`).
    pub pilot: String,
    /// The second pilot, if any (IGC `HFCM2CREW2`).
    pub copilot: String,
    /// The glider's type (IGC `HFGTYGLIDERTYPE`).
    pub glider_type: String,
    /// The glider's registration (IGC `HFGIDGLIDERID`).
    pub glider_id: String,
    /// The competition id, if any (IGC `HFCIDCOMPETITIONID`).
    pub competition_id: String,
}

impl Default for Metadata {
    fn default() -> Self {
        Metadata {
            title: String::new(),
            institution: "not stated".to_owned(),
            principal_investigator: "Not stated, Not stated".to_owned(),
            project: "Aloft".to_owned(),
            platform: "glider".to_owned(),
            license: "CC-BY-4.0".to_owned(),
            pilot: "not stated".to_owned(),
            copilot: String::new(),
            glider_type: "not stated".to_owned(),
            glider_id: "not stated".to_owned(),
            competition_id: String::new(),
        }
    }
}

/// How an export is made, besides what it selects.
#[derive(Debug, Clone, PartialEq)]
pub struct ExportOptions {
    /// When the export is made, ns since the Unix epoch: printed in metadata. A resumed
    /// download passes the first attempt's time so the bytes are the same.
    pub created_utc_ns: i64,
    /// The stem of the files' names (`aloft-glider-1` gives `aloft-glider-1.csv`).
    pub stem: String,
    /// Tidy (one row per reading) or wide (one table per sensor).
    pub layout: Layout,
    /// Who and what.
    pub metadata: Metadata,
}

impl ExportOptions {
    /// Options with the default stem for `node` and default metadata.
    pub fn new(node: &str, created_utc_ns: i64) -> ExportOptions {
        ExportOptions {
            created_utc_ns,
            stem: format!("aloft-{}", formats::file_safe(node)),
            layout: Layout::Tidy,
            metadata: Metadata::default(),
        }
    }
}
