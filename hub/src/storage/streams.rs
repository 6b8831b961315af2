//! Every node's stream, per (node, store epoch, sequence number), and the queries over it:
//! the [`StreamTables`] a backend implements, and [`Streams`], the handle the rest of the
//! hub holds.
//!
//! Invariants every backend keeps:
//! - A batch's records and the watermark they move commit in one transaction; the hub acks
//!   only what [`Streams::ingest`] returned, so an ack never runs ahead of the disk.
//! - A number already held is ignored (a resend is harmless); held records never change.
//! - The watermark is the end of the contiguous prefix: every number up to it is held or
//!   known not to exist (a batch covers `first..=last`, numbers missing from it do not
//!   exist). The first batch of a new epoch starts its prefix.
//! - Readings keep the time they carried. A reading with only monotonic time gets UTC from
//!   the time correlation of its own boot (the boot record before it in its stream),
//!   flagged [`TimeSource::Reconstructed`]; queries return it by the boot's correlation
//!   nearest in monotonic time.
//! - Sequence numbers are at most [`MAX_SEQ`] (2^63 - 1, SQLite's signed integers): a
//!   batch reaching past it is refused whole, never stored clamped.
//! - [`Streams::ingest_registered`] stores only for a node that exists, checked in the
//!   batch's own transaction, so a batch racing the node's deletion is either committed
//!   before it or refused.
//! - Boots and sensor names are tracked in stream order; a batch received beyond a hole
//!   (rare: the agent sends oldest first) uses the boot and names known at that moment.

use std::sync::Arc;

use aloft_protocol::{Quality, Quantity, Record, StoreEpoch, TimeSource};

/// Why the stream store failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum StorageError {
    /// The database failed.
    #[error("stream database: {0}")]
    Db(#[from] rusqlite::Error),
    /// A stored column has an unexpected type (a damaged database).
    #[error("stored column: {0}")]
    Column(#[from] rusqlite::types::FromSqlError),
    /// A record could not be re-encoded or a stored one decoded.
    #[error("record encoding: {0}")]
    Encoding(#[from] postcard::Error),
    /// A stored stream holds an epoch that is not 16 bytes (a damaged database).
    #[error("stored epoch of {0} bytes, not 16")]
    BadEpoch(usize),
    /// A batch reaches past the largest sequence number the store holds.
    #[error("sequence number {0} is above {MAX_SEQ}, the largest the hub stores")]
    SeqTooLarge(u64),
    /// The node does not exist (it was deleted).
    #[error("no node {0:?}")]
    NoSuchNode(String),
}

/// The largest sequence number the hub stores: SQLite integers are signed 64-bit.
pub const MAX_SEQ: u64 = i64::MAX as u64;

/// One stored reading, as the queries return it.
#[derive(Debug, Clone, PartialEq)]
pub struct ReadingRow {
    /// The store epoch it belongs to.
    pub epoch: StoreEpoch,
    /// Its sequence number.
    pub seq: u64,
    /// The sensor's name (from its descriptor; `sensor-N` before any descriptor).
    pub sensor: String,
    /// What was measured.
    pub quantity: Quantity,
    /// The value, in the quantity's unit.
    pub value: f64,
    /// The agent's monotonic time.
    pub mono_ns: u64,
    /// UTC, as carried or reconstructed.
    pub utc_ns: Option<i64>,
    /// Where `utc_ns` came from.
    pub source: TimeSource,
    /// Quality flags.
    pub quality: Quality,
}

/// A reading query: by node, optionally sensor, quantity and a UTC range.
#[derive(Debug, Clone, Default)]
pub struct ReadingQuery {
    /// The node.
    pub node: String,
    /// Only this sensor (by name).
    pub sensor: Option<String>,
    /// Only this quantity.
    pub quantity: Option<Quantity>,
    /// Only readings at or after this UTC, ns (readings without UTC are then left out).
    pub since_utc_ns: Option<i64>,
    /// Only readings before this UTC, ns.
    pub until_utc_ns: Option<i64>,
    /// At most this many.
    pub limit: Option<u64>,
}

/// A loss in a node's stream.
#[derive(Debug, Clone, PartialEq)]
pub enum StreamGap {
    /// A gap record of the agent: something was lost on the node, and why.
    Recorded {
        /// The epoch.
        epoch: StoreEpoch,
        /// The gap record's number.
        seq: u64,
        /// The record.
        gap: aloft_protocol::Gap,
    },
    /// Numbers not yet received: between the watermark and records received beyond it.
    Unsynced {
        /// The epoch.
        epoch: StoreEpoch,
        /// First missing number.
        first: u64,
        /// Last missing number (inclusive).
        last: u64,
    },
}

/// One stream's position.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StreamStatus {
    /// The epoch.
    pub epoch: StoreEpoch,
    /// Its contiguous watermark.
    pub watermark: Option<u64>,
    /// When the hub first saw it, ns.
    pub created_utc_ns: i64,
}

/// What the hub holds of one stream: its watermark and its newest number.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HeldStream {
    /// The epoch.
    pub epoch: StoreEpoch,
    /// Its contiguous watermark.
    pub watermark: Option<u64>,
    /// The newest number held (beyond the watermark when ranges arrived beyond a hole).
    pub newest: Option<u64>,
}

/// One epoch of a bounded read: numbers up to `upto`, less the `holes` (numbers that
/// were not held when the bound was taken, so records arriving in them later stay out).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EpochBound {
    /// The epoch.
    pub epoch: StoreEpoch,
    /// The newest number read.
    pub upto: u64,
    /// Ranges (inclusive, ascending) left out.
    pub holes: Vec<(u64, u64)>,
}

impl EpochBound {
    /// Whether `seq` is inside the bound.
    pub fn holds(&self, seq: u64) -> bool {
        seq <= self.upto && !self.holes.iter().any(|&(a, b)| a <= seq && seq <= b)
    }
}

/// Which records a bounded read yields.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RecordKinds {
    /// Every record.
    All,
    /// Every record that is not a reading (boots, correlations, descriptors, gaps, status):
    /// few, read through an index of their own.
    Meta,
}

/// The name of a time source in the API.
pub fn source_name(s: TimeSource) -> &'static str {
    match s {
        TimeSource::SystemClock => "system_clock",
        TimeSource::Gnss => "gnss",
        TimeSource::Reconstructed => "reconstructed",
        _ => "monotonic",
    }
}

/// The stream tables of one backend. Object-safe: the hub holds one as
/// `Arc<dyn StreamTables>` inside [`Streams`].
pub trait StreamTables: Send + Sync + std::fmt::Debug {
    /// The contiguous watermark of (node, epoch); `None` when the hub holds nothing of it.
    fn watermark(&self, node: &str, epoch: StoreEpoch) -> Result<Option<u64>, StorageError>;

    /// Persists a batch's entries (`first..=last`, entries within it, strictly increasing)
    /// and returns the stream's watermark after it, committed. With `registered`, refused
    /// with [`StorageError::NoSuchNode`], storing nothing, unless the node exists.
    fn ingest(
        &self,
        node: &str,
        epoch: StoreEpoch,
        first: u64,
        last: u64,
        entries: &[(u64, Record)],
        registered: bool,
    ) -> Result<Option<u64>, StorageError>;

    /// Every stored record of a node in (epoch, seq) order, to `each` until it says stop.
    fn dump(
        &self,
        node: &str,
        each: &mut dyn FnMut(StoreEpoch, u64, Record) -> bool,
    ) -> Result<(), StorageError>;

    /// Readings matching `query`, in stream order ((epoch, seq)), to `each` until it says
    /// stop, without collecting them in memory.
    fn readings(
        &self,
        query: &ReadingQuery,
        each: &mut dyn FnMut(ReadingRow) -> bool,
    ) -> Result<(), StorageError>;

    /// The node's gaps: gap records of the agent and numbers not yet received.
    fn gaps(&self, node: &str) -> Result<Vec<StreamGap>, StorageError>;

    /// The node's streams (one per store epoch it has sent).
    fn streams(&self, node: &str) -> Result<Vec<StreamStatus>, StorageError>;

    /// Per stream of the node, in ascending epoch byte order: its watermark and newest
    /// number held.
    fn held(&self, node: &str) -> Result<Vec<HeldStream>, StorageError>;

    /// The node's records inside `bounds` (epochs not named are left out), of `kinds`,
    /// in (epoch, seq) order, to `each` until it says stop.
    fn dump_bounded(
        &self,
        node: &str,
        bounds: &[EpochBound],
        kinds: RecordKinds,
        each: &mut dyn FnMut(StoreEpoch, u64, Record) -> bool,
    ) -> Result<(), StorageError>;

    /// How many records of the node are inside `bounds`.
    fn count_bounded(&self, node: &str, bounds: &[EpochBound]) -> Result<u64, StorageError>;

    /// Keeps `memo` as what an export of `node` made at `created_utc_ns` and bounded by
    /// `upto` knew when it was first asked for, unless one is kept already; returns the
    /// one kept (the first). Memos older than [`EXPORT_MEMO_DAYS`] are forgotten.
    fn export_memo(
        &self,
        node: &str,
        created_utc_ns: i64,
        upto: &str,
        memo: &str,
    ) -> Result<String, StorageError>;
}

/// Days an export's memo is kept, so a download can be resumed that long after it started.
pub const EXPORT_MEMO_DAYS: i64 = 30;

/// The stream store: a cheap handle on one backend's [`StreamTables`].
#[derive(Debug, Clone)]
pub struct Streams {
    tables: Arc<dyn StreamTables>,
}

impl Streams {
    /// The store on `tables`.
    pub fn new(tables: Arc<dyn StreamTables>) -> Streams {
        Streams { tables }
    }

    /// The contiguous watermark of (node, epoch); `None` when the hub holds nothing of it.
    pub fn watermark(&self, node: &str, epoch: StoreEpoch) -> Result<Option<u64>, StorageError> {
        self.tables.watermark(node, epoch)
    }

    /// Persists a batch's entries (`first..=last`, entries within it, strictly increasing)
    /// and returns the stream's watermark after it, committed.
    pub fn ingest(
        &self,
        node: &str,
        epoch: StoreEpoch,
        first: u64,
        last: u64,
        entries: &[(u64, Record)],
    ) -> Result<Option<u64>, StorageError> {
        self.tables.ingest(node, epoch, first, last, entries, false)
    }

    /// [`Streams::ingest`] for a node that must exist in the registry: refused with
    /// [`StorageError::NoSuchNode`], storing nothing, once the node is deleted.
    pub fn ingest_registered(
        &self,
        node: &str,
        epoch: StoreEpoch,
        first: u64,
        last: u64,
        entries: &[(u64, Record)],
    ) -> Result<Option<u64>, StorageError> {
        self.tables.ingest(node, epoch, first, last, entries, true)
    }

    /// Every stored record of a node in (epoch, seq) order, to `each` until it says stop.
    pub fn dump(
        &self,
        node: &str,
        mut each: impl FnMut(StoreEpoch, u64, Record) -> bool,
    ) -> Result<(), StorageError> {
        self.tables.dump(node, &mut each)
    }

    /// Readings matching `query`, in stream order ((epoch, seq)), to `each` until it says
    /// stop. Streams from the database: nothing is collected in memory.
    pub fn readings(
        &self,
        query: &ReadingQuery,
        mut each: impl FnMut(ReadingRow) -> bool,
    ) -> Result<(), StorageError> {
        self.tables.readings(query, &mut each)
    }

    /// The node's gaps: gap records of the agent and numbers not yet received.
    pub fn gaps(&self, node: &str) -> Result<Vec<StreamGap>, StorageError> {
        self.tables.gaps(node)
    }

    /// The node's streams (one per store epoch it has sent).
    pub fn streams(&self, node: &str) -> Result<Vec<StreamStatus>, StorageError> {
        self.tables.streams(node)
    }

    /// Per stream of the node, in ascending epoch byte order: watermark and newest held.
    pub fn held(&self, node: &str) -> Result<Vec<HeldStream>, StorageError> {
        self.tables.held(node)
    }

    /// The node's records inside `bounds`, of `kinds`, in (epoch, seq) order, to `each`
    /// until it says stop.
    pub fn dump_bounded(
        &self,
        node: &str,
        bounds: &[EpochBound],
        kinds: RecordKinds,
        mut each: impl FnMut(StoreEpoch, u64, Record) -> bool,
    ) -> Result<(), StorageError> {
        self.tables.dump_bounded(node, bounds, kinds, &mut each)
    }

    /// How many records of the node are inside `bounds`.
    pub fn count_bounded(&self, node: &str, bounds: &[EpochBound]) -> Result<u64, StorageError> {
        self.tables.count_bounded(node, bounds)
    }

    /// Keeps an export's memo unless one is kept for (node, created, upto); the one kept.
    pub fn export_memo(
        &self,
        node: &str,
        created_utc_ns: i64,
        upto: &str,
        memo: &str,
    ) -> Result<String, StorageError> {
        self.tables.export_memo(node, created_utc_ns, upto, memo)
    }
}
