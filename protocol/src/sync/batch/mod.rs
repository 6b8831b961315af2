//! A batch's payload: the (sequence number, record) pairs of one [`super::Batch`], and the
//! codec that turns them into as few bytes as the link can carry.
//!
//! Two encodings ([`BatchEncoding`]): plain postcard, kept as the reference and for peers
//! that want no compression, and [`BatchEncoding::ColumnarZstd`], what the agent sends
//! ([`PREFERRED_ENCODING`]; docs/decisions/sync-codec.md has the measurements behind it).
//!
//! The columnar form splits the entries into columns that each hold one kind of thing
//! (sequence steps, series, times, values, quality), predicts every field from the previous
//! reading of the same (sensor, quantity) series and writes only what the prediction
//! missed, then compresses the whole with zstd. Readings of one sensor sample share a time,
//! most sequence steps are 1, most values are decimals a driver printed or scaled (written
//! as a small integer step plus an exact correction), and the rest are floats whose bits
//! differ from the previous value's only in the low bytes (written as those bytes).
//!
//! Invariants:
//! - Lossless: decoding gives back exactly the entries that were encoded, bit for bit for
//!   `f64` (NaN payloads, -0.0, infinities), whatever the records hold.
//! - Entries are in strictly increasing sequence order (not necessarily contiguous: the
//!   store's full policy leaves holes); encoding and decoding refuse anything else.
//! - Decoding never panics and never allocates beyond [`BatchLimits`] whatever the input
//!   says: a payload that inflates past the cap is refused while inflating.
//! - Enum variants are only appended: the encoding travels in every batch message.
//!
//! # Layout
//!
//! - this file: the encodings, the limits, the errors and the two entry points
//!   ([`encode_batch`], [`decode_batch`]);
//! - `frame`: the columnar frame's layout and the per-series predictions that encoder and
//!   decoder advance identically;
//! - `encode`: entries to the columnar frame ([`columnar_bytes`]);
//! - `decode`: a payload back to entries, in either encoding, within the limits;
//! - `compression`: the zstd frame around the columns, capped while inflating.

mod compression;
mod decode;
mod encode;
mod frame;
#[cfg(test)]
mod tests;

extern crate std;

use alloc::vec::Vec;

use serde::{Deserialize, Serialize};

use crate::Record;

pub use encode::columnar_bytes;

/// How a batch's payload is encoded; carried in the batch message. Variants are only
/// appended.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[non_exhaustive]
pub enum BatchEncoding {
    /// A postcard sequence of `(u64, Record)` pairs, uncompressed.
    Postcard,
    /// The columnar transform of this module, compressed as one zstd frame.
    ColumnarZstd,
}

/// Limits a decoder enforces against hostile input.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BatchLimits {
    /// Most entries in one batch.
    pub max_records: usize,
    /// Most bytes a payload may decode (inflate) to.
    pub max_decoded_bytes: usize,
}

/// The limits both ends use unless configured otherwise.
pub const DEFAULT_BATCH_LIMITS: BatchLimits = BatchLimits {
    max_records: 65_536,
    max_decoded_bytes: 16 << 20,
};

/// What the agent sends.
pub const PREFERRED_ENCODING: BatchEncoding = BatchEncoding::ColumnarZstd;

/// zstd level of [`BatchEncoding::ColumnarZstd`]: on the simulated flight, level 9 saves 2 %
/// and 19 saves 4 % more for 2.5 and 20 times the encoding time
/// (docs/decisions/sync-codec.md). Decoders accept any level.
pub const ZSTD_LEVEL: i32 = 3;

/// Why a batch could not be encoded or decoded.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum BatchError {
    /// More entries than the limit.
    #[error("batch of {count} records is over the {max}-record cap")]
    TooManyRecords {
        /// How many it has (or declares).
        count: usize,
        /// The cap.
        max: usize,
    },
    /// The payload decodes to more bytes than the limit.
    #[error("batch inflates past {max} bytes")]
    TooLarge {
        /// The cap.
        max: usize,
    },
    /// Sequence numbers must increase strictly.
    #[error("sequence numbers not increasing at entry {index} ({seq})")]
    OutOfOrder {
        /// The entry's index.
        index: usize,
        /// Its sequence number.
        seq: u64,
    },
    /// The payload is not a valid postcard encoding.
    #[error("malformed batch: {0}")]
    Malformed(postcard::Error),
    /// An entry of a columnar payload could not be decoded.
    #[error("record {index}: {reason}")]
    Record {
        /// The entry's index in the batch.
        index: usize,
        /// What was wrong.
        reason: &'static str,
    },
    /// The columnar payload's frame is not valid (before any entry is read).
    #[error("malformed columnar batch: {0}")]
    Columns(&'static str),
    /// A column of a columnar payload holds more than its entries use.
    #[error("malformed columnar batch: bytes left over in the {0} column")]
    LeftOver(&'static str),
    /// The compressed frame could not be inflated.
    #[error("batch does not inflate: {0}")]
    Inflate(#[source] std::io::Error),
    /// The compressor failed while encoding.
    #[error("batch cannot be compressed: {0}")]
    Deflate(#[source] std::io::Error),
}

/// Equal when of the same variant with equal fields; the compressor's errors, which have no
/// equality of their own, compare by their [`std::io::ErrorKind`].
impl PartialEq for BatchError {
    fn eq(&self, other: &Self) -> bool {
        use BatchError::*;
        match (self, other) {
            (
                TooManyRecords { count, max },
                TooManyRecords {
                    count: count2,
                    max: max2,
                },
            ) => count == count2 && max == max2,
            (TooLarge { max }, TooLarge { max: max2 }) => max == max2,
            (OutOfOrder { index, seq }, OutOfOrder { index: i2, seq: s2 }) => {
                index == i2 && seq == s2
            }
            (Malformed(a), Malformed(b)) => a == b,
            (
                Record { index, reason },
                Record {
                    index: i2,
                    reason: r2,
                },
            ) => index == i2 && reason == r2,
            (Columns(a), Columns(b)) | (LeftOver(a), LeftOver(b)) => a == b,
            (Inflate(a), Inflate(b)) | (Deflate(a), Deflate(b)) => a.kind() == b.kind(),
            _ => false,
        }
    }
}

/// Encodes entries (strictly increasing sequence numbers) for a batch message.
pub fn encode_batch(
    encoding: BatchEncoding,
    entries: &[(u64, Record)],
) -> Result<Vec<u8>, BatchError> {
    check_order(entries.iter().map(|(seq, _)| *seq))?;
    match encoding {
        BatchEncoding::Postcard => postcard::to_allocvec(entries).map_err(BatchError::Malformed),
        BatchEncoding::ColumnarZstd => {
            let columns = columnar_bytes(entries)?;
            compression::deflate(&columns)
        }
    }
}

/// Decodes a batch's payload, refusing what passes `limits` or is out of order.
pub fn decode_batch(
    encoding: BatchEncoding,
    payload: &[u8],
    limits: &BatchLimits,
) -> Result<Vec<(u64, Record)>, BatchError> {
    match encoding {
        BatchEncoding::Postcard => decode::decode_postcard(payload, limits),
        BatchEncoding::ColumnarZstd => {
            let columns = compression::inflate(payload, limits.max_decoded_bytes)?;
            decode::decode_columns(&columns, limits)
        }
    }
}

/// Refuses entries whose sequence numbers do not increase strictly.
pub(crate) fn check_order(seqs: impl Iterator<Item = u64>) -> Result<(), BatchError> {
    let mut previous: Option<u64> = None;
    for (index, seq) in seqs.enumerate() {
        if previous.is_some_and(|p| seq <= p) {
            return Err(BatchError::OutOfOrder { index, seq });
        }
        previous = Some(seq);
    }
    Ok(())
}
