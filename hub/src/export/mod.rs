//! Dataset export from the hub: a node's stored stream as the files of
//! [`aloft_dataset::export`], bounded to a snapshot and streamed as a tar archive. No HTTP
//! here: `api::export` parses nothing but the path and hands the raw query to
//! [`request::ExportRequest::parse`].
//!
//! - [`request`]: the export's query (format, selection, snapshot, resume offset), parsed
//!   and checked before anything is read.
//! - [`source`]: [`source::HubSource`], the [`aloft_dataset::RecordSource`] over the
//!   stream tables, bounded to the snapshot (`upto`), with its completeness.
//! - [`tarball`]: [`tarball::TarOutput`], the [`aloft_dataset::Output`] that spools each
//!   file to a temporary file in the data directory and streams it out as a tar entry with
//!   deterministic headers.
//!
//! Invariants: the bytes of an export are a pure function of the records in its snapshot,
//! its query and its creation time, so a download cut short is resumed by asking again
//! with the snapshot, the creation time and the bytes already had (`skip`); the tar's end
//! marker is written only after every file is complete; temporary files never outlive the
//! request.

pub mod request;
pub mod source;
pub mod tarball;

use std::path::{Path, PathBuf};

/// The folder of an export's temporary files in the hub's data directory.
pub const TEMP_DIR: &str = "export-tmp";

/// The folder of export temporary files of the hub in `data_dir`.
pub fn temp_dir(data_dir: &Path) -> PathBuf {
    data_dir.join(TEMP_DIR)
}

/// Removes temporary files a killed hub left behind (a running export removes its own).
/// Call before serving.
pub fn clean_temp(data_dir: &Path) {
    let dir = temp_dir(data_dir);
    let Ok(entries) = std::fs::read_dir(&dir) else {
        return;
    };
    for entry in entries.flatten() {
        if let Err(e) = std::fs::remove_file(entry.path()) {
            tracing::warn!(file = %entry.path().display(), error = %e, "Cannot remove a stale export file.");
        }
    }
}
