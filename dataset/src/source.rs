//! Where an export's records come from: the [`RecordSource`] seam, and
//! [`StoreDirSource`], an agent's store directory opened read-only (the SD card taken out
//! after landing). The hub implements the same trait over its stream tables.
//!
//! Invariants every source keeps: records come in (epoch, sequence number) order, epochs
//! in ascending byte order, and a second pass yields exactly the records of the first (a
//! source bounds itself to what it held when it was made, so records arriving meanwhile do
//! not change an export half way through). A source never writes: the store directory is
//! opened read-only, without a lock, and what an agent's open would repair is reported,
//! not repaired.

use std::ops::ControlFlow;
use std::path::{Path, PathBuf};

use aloft_protocol::{GapReason, Record, StoreEpoch};
use aloft_store::{Outbox, StoreError, StoreOptions};
use serde::Serialize;

/// Records read from a store at a time.
const BATCH: usize = 4096;

/// Why a source could not be read.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum SourceError {
    /// The directory holds no Aloft store (no `epoch` file): a wrong path, or another
    /// program's directory.
    #[error(
        "{path} holds no Aloft store (no `epoch` file); point --store at the agent's store directory"
    )]
    NotAStore {
        /// The directory.
        path: PathBuf,
    },
    /// The store could not be opened or read.
    #[error("store {path}: {source}")]
    Store {
        /// The directory.
        path: PathBuf,
        /// Why.
        #[source]
        source: StoreError,
    },
    /// The hub's (or another backend's) storage failed.
    #[error("stream storage: {0}")]
    Backend(#[source] Box<dyn std::error::Error + Send + Sync>),
}

/// What the source holds of the node's stream, and what it knows is still to come.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct Completeness {
    /// Where the records were read: `"hub"` or `"store"`.
    pub origin: String,
    /// Per store epoch: what is held.
    pub epochs: Vec<EpochHeld>,
    /// Sequence numbers known to exist and not held: ranges the agent has not synced yet
    /// (hub), or records freed from the store after the hub acknowledged them (store).
    pub missing: Vec<MissingSeqs>,
    /// The node's last reported backlog of unsent records, when known.
    pub node_backlog: Option<Backlog>,
}

/// What a source holds of one epoch.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct EpochHeld {
    /// The epoch, lowercase hex.
    pub epoch: String,
    /// The hub's contiguous watermark (every number up to it is held or known not to
    /// exist); for a store, the newest durable number.
    pub watermark: Option<u64>,
    /// The newest number held (the export is bounded to it).
    pub newest: Option<u64>,
}

/// A range of sequence numbers a source does not hold.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct MissingSeqs {
    /// The epoch, lowercase hex.
    pub epoch: String,
    /// First number (inclusive).
    pub first: u64,
    /// Last number (inclusive).
    pub last: u64,
    /// Why: `not_synced` (the hub has not received them yet), `freed_after_sync` (the
    /// store freed them once the hub had them), or a store loss reason.
    pub why: String,
}

/// The node's backlog as it last reported it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Backlog {
    /// Records the node had not sent.
    pub unsent_records: u64,
    /// When it said so (RFC 3339 UTC), if known.
    pub reported: Option<String>,
    /// Whether the source held every record that backlog can reach when the export
    /// started (`true`: the backlog has arrived since; `false`: it has not; `null`: the
    /// source cannot tell).
    pub arrived: Option<bool>,
}

/// A node's records, readable in passes.
pub trait RecordSource {
    /// Calls `each` with every record in (epoch, seq) order until it breaks.
    fn for_each_record(
        &self,
        each: &mut dyn FnMut(StoreEpoch, u64, &Record) -> ControlFlow<()>,
    ) -> Result<(), SourceError>;

    /// Calls `each` with every record that is not a reading, in (epoch, seq) order: the
    /// catalog's pass. A source that can skip readings cheaply overrides this.
    fn for_each_meta_record(
        &self,
        each: &mut dyn FnMut(StoreEpoch, u64, &Record) -> ControlFlow<()>,
    ) -> Result<(), SourceError> {
        self.for_each_record(&mut |epoch, seq, record| match record {
            Record::Reading(_) => ControlFlow::Continue(()),
            other => each(epoch, seq, other),
        })
    }

    /// What the source holds and what it knows is missing.
    fn completeness(&self) -> Completeness;
}

/// An agent's store directory, opened read-only.
#[derive(Debug)]
pub struct StoreDirSource {
    dir: PathBuf,
    outbox: Outbox<aloft_store::SegmentedLog<aloft_store::storage::OsStorage>>,
    /// One past the newest record when opened: later records (a running agent) are not read.
    end: u64,
    completeness: Completeness,
}

impl StoreDirSource {
    /// Opens the store in `dir` read-only. Refuses a directory that holds no store.
    pub fn open(dir: &Path) -> Result<StoreDirSource, SourceError> {
        if !dir.join("epoch").is_file() {
            return Err(SourceError::NotAStore {
                path: dir.to_path_buf(),
            });
        }
        let store_error = |source| SourceError::Store {
            path: dir.to_path_buf(),
            source,
        };
        let (outbox, report) =
            Outbox::open_read_only(dir, StoreOptions::default()).map_err(store_error)?;
        let stats = outbox.stats();
        let epoch = hex(&stats.epoch.0);
        let mut missing = Vec::new();
        if let Some(oldest) = stats.oldest_seq
            && oldest > 0
        {
            missing.push(MissingSeqs {
                epoch: epoch.clone(),
                first: 0,
                last: oldest - 1,
                why: "freed_after_sync".to_owned(),
            });
        }
        for m in &report.missing {
            missing.push(MissingSeqs {
                epoch: epoch.clone(),
                first: m.first,
                last: m.last,
                why: reason_name(m.reason).to_owned(),
            });
            tracing::warn!(
                first = m.first,
                last = m.last,
                reason = ?m.reason,
                "Records missing from the store; the export lists them."
            );
        }
        let newest = stats.durable_end.checked_sub(1);
        let completeness = Completeness {
            origin: "store".to_owned(),
            epochs: vec![EpochHeld {
                epoch,
                watermark: newest,
                newest,
            }],
            missing,
            node_backlog: Some(Backlog {
                unsent_records: stats.durable_end.saturating_sub(stats.first_unacked),
                reported: None,
                arrived: None,
            }),
        };
        Ok(StoreDirSource {
            dir: dir.to_path_buf(),
            end: stats.durable_end,
            outbox,
            completeness,
        })
    }

    /// The store's epoch.
    pub fn epoch(&self) -> StoreEpoch {
        self.outbox.epoch()
    }
}

impl RecordSource for StoreDirSource {
    fn for_each_record(
        &self,
        each: &mut dyn FnMut(StoreEpoch, u64, &Record) -> ControlFlow<()>,
    ) -> Result<(), SourceError> {
        let epoch = self.outbox.epoch();
        let mut next = self.outbox.stats().oldest_seq.unwrap_or(0);
        while next < self.end {
            let batch =
                self.outbox
                    .read_from(next, BATCH)
                    .map_err(|source| SourceError::Store {
                        path: self.dir.clone(),
                        source,
                    })?;
            let Some(&(last, _)) = batch.last() else {
                break;
            };
            for (seq, record) in &batch {
                if *seq >= self.end {
                    return Ok(());
                }
                if each(epoch, *seq, record).is_break() {
                    return Ok(());
                }
            }
            next = last + 1;
        }
        Ok(())
    }

    fn completeness(&self) -> Completeness {
        self.completeness.clone()
    }
}

/// Records held in memory, in (epoch, seq) order: a source for tests, and for callers that
/// already hold a small stream.
#[derive(Debug, Clone, Default)]
pub struct MemorySource {
    records: Vec<(StoreEpoch, u64, Record)>,
    completeness: Completeness,
}

impl MemorySource {
    /// A source of `records`, sorted into (epoch, seq) order.
    pub fn new(mut records: Vec<(StoreEpoch, u64, Record)>, completeness: Completeness) -> Self {
        records.sort_by_key(|(e, s, _)| (*e, *s));
        MemorySource {
            records,
            completeness,
        }
    }
}

impl RecordSource for MemorySource {
    fn for_each_record(
        &self,
        each: &mut dyn FnMut(StoreEpoch, u64, &Record) -> ControlFlow<()>,
    ) -> Result<(), SourceError> {
        for (e, s, r) in &self.records {
            if each(*e, *s, r).is_break() {
                break;
            }
        }
        Ok(())
    }

    fn completeness(&self) -> Completeness {
        self.completeness.clone()
    }
}

/// A gap reason's name in exports (snake case).
pub fn reason_name(reason: GapReason) -> &'static str {
    match reason {
        GapReason::DroppedOldest => "dropped_oldest",
        GapReason::Decimated => "decimated",
        GapReason::RejectedNew => "rejected_new",
        GapReason::CorruptRegion => "corrupt_region",
        GapReason::Crash => "crash",
        GapReason::SensorOutage => "sensor_outage",
        _ => "unknown",
    }
}

/// Lowercase hex of an id.
pub fn hex(bytes: &[u8]) -> String {
    use std::fmt::Write as _;
    bytes.iter().fold(String::with_capacity(32), |mut s, b| {
        let _ = write!(s, "{b:02x}");
        s
    })
}
