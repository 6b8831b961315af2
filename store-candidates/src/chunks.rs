//! The chunk bookkeeping both candidates share: a "chunk" is a fixed run of
//! [`CHUNK_RECORDS`] sequence numbers, so the outbox's policies free and thin the same way
//! as with the segmented log's segments. Only sizes and ranges are kept here; the records
//! themselves stay in the candidate's database.

use std::collections::BTreeMap;

use aloft_store::Chunk;
use aloft_store::log::FRAME_HEADER;

/// Sequence numbers a chunk spans.
pub(crate) const CHUNK_RECORDS: u64 = 4096;

/// The chunks of a candidate's records, by chunk number.
#[derive(Debug, Default)]
pub(crate) struct Chunks(BTreeMap<u64, Chunk>);

impl Chunks {
    /// Counts record `seq` of `len` payload bytes (framed as the log would frame it).
    pub(crate) fn note(&mut self, seq: u64, len: usize) {
        let chunk = self.0.entry(seq / CHUNK_RECORDS).or_insert(Chunk {
            first: seq,
            last: seq,
            bytes: 0,
            generation: 0,
        });
        chunk.last = chunk.last.max(seq);
        chunk.bytes += (FRAME_HEADER + len) as u64;
    }

    /// The newest record's number.
    pub(crate) fn last_seq(&self) -> Option<u64> {
        self.0.values().next_back().map(|c| c.last)
    }

    /// The chunk that starts at `first`.
    pub(crate) fn get(&self, first: u64) -> Option<Chunk> {
        self.0.get(&(first / CHUNK_RECORDS)).copied()
    }

    /// Forgets the chunk that starts at `first` (its records were deleted).
    pub(crate) fn remove(&mut self, first: u64) {
        self.0.remove(&(first / CHUNK_RECORDS));
    }

    /// Records that `freed` bytes of the chunk at `first` were thinned out.
    pub(crate) fn thinned(&mut self, first: u64, freed: u64) {
        if let Some(chunk) = self.0.get_mut(&(first / CHUNK_RECORDS)) {
            chunk.bytes -= freed.min(chunk.bytes);
            chunk.generation += 1;
        }
    }

    /// Bytes of every chunk.
    pub(crate) fn disk_bytes(&self) -> u64 {
        self.0.values().map(|c| c.bytes).sum()
    }

    /// Every chunk, oldest first.
    pub(crate) fn all(&self) -> Vec<Chunk> {
        self.0.values().copied().collect()
    }
}
