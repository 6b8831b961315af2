//! `aloft-agent store dump`: the store's records as JSON lines, for a look on the board.
//!
//! Invariant: it reads only durable records, in batches, so its memory stays bounded
//! whatever the backlog (the same read path the uplink takes). A store the running agent
//! holds is refused: whoever opens a store locks it.

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
    let (outbox, _) = Outbox::open(dir, StoreOptions::default()).map_err(store_error)?;
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
    // Only read: closing marks the store clean again for the agent.
    outbox.close().map_err(store_error)?;
    Ok(written)
}
