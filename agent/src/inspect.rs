//! `aloft-agent store dump`: the store's records as JSON lines, for a look on the board.
//!
//! Invariants: it opens the store read-only and changes nothing: no file is written,
//! renamed, cut or removed, no lock is taken, and a read-only directory works. Damage an
//! agent's open would repair (a torn tail, a corrupt region, missing numbers) is stepped
//! over and reported on the log, not repaired. It reads only records that were written, in
//! batches, so its memory stays bounded whatever the backlog (the same read path the
//! uplink takes). A store the running agent writes may be dumped; its newest records may
//! not be in the dump yet.

use std::io::{self, Write};
use std::path::Path;

use aloft_store::{Outbox, StoreError, StoreOptions};
use serde::Serialize;

/// Records read at a time.
const BATCH: usize = 4096;

/// Why a dump failed.
#[derive(Debug, thiserror::Error)]
pub enum DumpError {
    /// The store could not be opened or read.
    #[error("store {path}: {source}")]
    Store {
        /// The store's directory.
        path: String,
        /// Why.
        source: StoreError,
    },
    /// Writing the output failed.
    #[error("cannot write the dump: {0}")]
    Output(#[from] io::Error),
}

#[derive(Serialize)]
struct Line<'a> {
    seq: u64,
    #[serde(flatten)]
    record: &'a aloft_protocol::Record,
}

/// Writes the records from `from` (at most `limit`) of the store in `dir` to `out`, one JSON
/// object a line; returns how many.
pub fn dump(
    dir: &Path,
    from: u64,
    limit: Option<u64>,
    out: &mut impl Write,
) -> Result<u64, DumpError> {
    let store_error = |source| DumpError::Store {
        path: dir.display().to_string(),
        source,
    };
    if !dir.join("epoch").exists() {
        return Err(store_error(StoreError::Io {
            op: "open",
            file: dir.display().to_string(),
            source: io::Error::new(io::ErrorKind::NotFound, "no store here"),
        }));
    }
    let (outbox, report) =
        Outbox::open_read_only(dir, StoreOptions::default()).map_err(store_error)?;
    for missing in &report.missing {
        tracing::warn!(
            first = missing.first,
            last = missing.last,
            reason = ?missing.reason,
            "Records missing from the store; the agent records the loss as a gap when it next opens the store."
        );
    }
    if report.torn_bytes > 0 {
        tracing::warn!(
            bytes = report.torn_bytes,
            "The newest segment ends in a torn write (or one under way)."
        );
    }
    let mut next = from.max(outbox.stats().oldest_seq.unwrap_or(0));
    let mut written = 0u64;
    while limit.is_none_or(|l| written < l) {
        let want = limit.map_or(BATCH, |l| {
            usize::try_from(l - written).unwrap_or(BATCH).min(BATCH)
        });
        let batch = outbox.read_from(next, want).map_err(store_error)?;
        let Some(&(last, _)) = batch.last() else {
            break;
        };
        for (seq, record) in &batch {
            serde_json::to_writer(&mut *out, &Line { seq: *seq, record })
                .map_err(io::Error::other)?;
            out.write_all(b"\n")?;
            written += 1;
        }
        next = last + 1;
    }
    Ok(written)
}
