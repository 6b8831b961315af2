//! Aloft's store: the outbox that keeps every record of the agent's stream durably until the
//! hub has it.
//!
//! # Layout
//!
//! - [`outbox`]: the [`Outbox`], what the agent calls: store epoch, contiguous sequence
//!   numbers, group commit, range reads of durable records, the acked cursor, the size bound
//!   and its [`FullPolicy`], gap records for every loss, recovery after a crash.
//! - [`Backend`]: the narrow trait an outbox keeps its records in. [`log`] holds the one the
//!   agent uses, a purpose-built segmented log ([`SegmentedLog`]); redb and sled 0.34 were
//!   measured and tortured against it behind the same trait, in the `store-candidates`
//!   crate (docs/decisions/store-backend.md).
//!
//! The outbox is synchronous (it does file I/O and fsyncs): the agent owns it from one
//! task and runs its calls on a blocking thread (`spawn_blocking` or a dedicated thread).
//! - [`storage`]: the I/O seam the segmented log writes through, the real filesystem and a
//!   simulated disk that loses unsynced writes at a power cut ([`storage::sim`]).
//! - [`atomic`]: crash-safe whole-file replacement for small state ([`atomic_replace`]).
//!
//! Invariants (docs/design.md 1, 2, 3, 9): within an epoch every sequence number from the oldest
//! held to the newest is held or covered by a gap record; only durable records are read;
//! the store always opens again after a crash, with a gap record for what it lost.

pub mod atomic;
pub mod log;
pub mod outbox;
pub mod storage;

pub use atomic::atomic_replace;
pub use log::{LogOptions, SegmentedLog};
pub use outbox::{
    AppendOutcome, FullPolicy, Losses, MissingRange, OpenReport, Outbox, StoreHealth, StoreOptions,
    StoreStats,
};

/// A contiguous run of records a backend frees or thins as one (a segment of the log).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Chunk {
    /// The sequence number the chunk was started with (its records are at or above it).
    pub first: u64,
    /// Its newest record's sequence number.
    pub last: u64,
    /// Bytes it takes on disk.
    pub bytes: u64,
    /// How many times it was rewritten (thinned); decimation thins the least thinned first.
    pub generation: u32,
}

/// Where an [`Outbox`] keeps its records: numbered opaque payloads, in order.
///
/// Invariants an implementation keeps: after [`Backend::sync`] returns, every payload
/// appended before it survives a crash or power cut; sequence numbers are appended in
/// increasing order and read back in that order; a chunk is removed or thinned whole and
/// crash-safely (old or new state, nothing between).
pub trait Backend {
    /// Adds a payload under `seq` (greater than every earlier one); durable after `sync`.
    fn append(&mut self, seq: u64, payload: &[u8]) -> Result<(), StoreError>;
    /// Makes every appended payload durable.
    fn sync(&mut self) -> Result<(), StoreError>;
    /// Appends to `out` up to `max` payloads with a sequence number of at least `seq`.
    fn read_from(
        &self,
        seq: u64,
        max: usize,
        out: &mut Vec<(u64, Vec<u8>)>,
    ) -> Result<(), StoreError>;
    /// Bytes the records take on disk, counting those appended and not yet synced.
    fn disk_bytes(&self) -> u64;
    /// The chunks holding records, oldest first.
    fn chunks(&self) -> Vec<Chunk>;
    /// Removes the chunk that starts at `first`, durably.
    fn remove_chunk(&mut self, first: u64) -> Result<(), StoreError>;
    /// Removes the records numbered in `drop` (sorted) from the chunk at `first`, durably.
    fn thin_chunk(&mut self, first: u64, drop: &[u64]) -> Result<(), StoreError>;
    /// Removes the corrupt regions found at open, once their loss is recorded.
    fn repair(&mut self) -> Result<(), StoreError>;
    /// Drops the oldest appended, not yet durable payloads until at least `bytes` are
    /// freed (or none is left), calling `shed` with each; returns the bytes freed. What was
    /// already written is never touched. Used when the disk refuses writes and the memory
    /// holding them must stay bounded; a backend that cannot returns 0.
    fn shed_unsynced(&mut self, bytes: u64, shed: &mut dyn FnMut(u64, &[u8])) -> u64 {
        let _ = (bytes, shed);
        0
    }
    /// Reads a small state file, `None` if it does not exist.
    fn load_meta(&self, name: &str) -> Result<Option<Vec<u8>>, StoreError>;
    /// Replaces a small state file crash-safely.
    fn store_meta(&mut self, name: &str, bytes: &[u8]) -> Result<(), StoreError>;
}

/// What can go wrong in the store.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum StoreError {
    /// A file operation failed.
    #[error("store: {op} {file}: {source}")]
    Io {
        /// The operation (`write`, `sync`, `rename`, ...).
        op: &'static str,
        /// The file, relative to the store directory.
        file: String,
        /// The error.
        source: std::io::Error,
    },
    /// A record could not be encoded or decoded.
    #[error("store: record encoding: {0}")]
    Encoding(#[from] postcard::Error),
    /// A record is larger than a frame can hold.
    #[error("store: a record of {bytes} bytes is larger than the store accepts")]
    RecordTooLarge {
        /// Its encoded size.
        bytes: usize,
    },
    /// A record failed its checksum while being read (damage since the store opened).
    #[error("store: corrupt record in {file} at byte {offset}")]
    Corrupt {
        /// The segment file.
        file: String,
        /// Where the bad frame starts.
        offset: u64,
    },
    /// A chunk still being written cannot be removed or rewritten.
    #[error("store: the chunk starting at {first} is still being written")]
    Busy {
        /// The chunk's first sequence number.
        first: u64,
    },
    /// A backend other than the segmented log failed.
    #[error("store backend: {0}")]
    Backend(Box<dyn std::error::Error + Send + Sync>),
}

impl StoreError {
    /// Whether the disk (or the filesystem) is full, or the user's quota on it is spent
    /// (ENOSPC, EDQUOT): freeing space helps.
    pub fn is_storage_full(&self) -> bool {
        matches!(self, StoreError::Io { source, .. } if matches!(
            source.kind(),
            std::io::ErrorKind::StorageFull | std::io::ErrorKind::QuotaExceeded
        ))
    }
}
