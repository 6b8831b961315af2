//! A batch's payload: the (sequence number, record) pairs of one [`super::Batch`].
//!
//! Invariants: entries are in strictly increasing sequence order (not necessarily
//! contiguous: the store's full policy leaves holes); decoding refuses anything else, and
//! never allocates beyond [`BatchLimits`] whatever the input says.

use alloc::vec::Vec;

use serde::{Deserialize, Serialize};

use crate::Record;

/// How a batch's payload is encoded; carried in the batch message. Variants are only
/// appended.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[non_exhaustive]
pub enum BatchEncoding {
    /// A postcard sequence of `(u64, Record)` pairs, uncompressed.
    Postcard,
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
pub const PREFERRED_ENCODING: BatchEncoding = BatchEncoding::Postcard;

/// Why a batch could not be encoded or decoded.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
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
    /// The payload is not a valid encoding.
    #[error("malformed batch: {0}")]
    Malformed(postcard::Error),
}

/// Encodes entries (strictly increasing sequence numbers) for a batch message.
pub fn encode_batch(
    encoding: BatchEncoding,
    entries: &[(u64, Record)],
) -> Result<Vec<u8>, BatchError> {
    check_order(entries.iter().map(|(seq, _)| *seq))?;
    match encoding {
        BatchEncoding::Postcard => postcard::to_allocvec(entries).map_err(BatchError::Malformed),
    }
}

/// Decodes a batch's payload, refusing what passes `limits` or is out of order.
pub fn decode_batch(
    encoding: BatchEncoding,
    payload: &[u8],
    limits: &BatchLimits,
) -> Result<Vec<(u64, Record)>, BatchError> {
    match encoding {
        BatchEncoding::Postcard => {
            if payload.len() > limits.max_decoded_bytes {
                return Err(BatchError::TooLarge {
                    max: limits.max_decoded_bytes,
                });
            }
            let (count, mut rest) =
                postcard::take_from_bytes::<u32>(payload).map_err(BatchError::Malformed)?;
            let count = count as usize;
            if count > limits.max_records {
                return Err(BatchError::TooManyRecords {
                    count,
                    max: limits.max_records,
                });
            }
            // Every entry takes at least two bytes: never reserve more than the payload
            // can hold, whatever it declares.
            let mut entries = Vec::with_capacity(count.min(rest.len() / 2));
            for _ in 0..count {
                let (entry, tail) = postcard::take_from_bytes::<(u64, Record)>(rest)
                    .map_err(BatchError::Malformed)?;
                entries.push(entry);
                rest = tail;
            }
            check_order(entries.iter().map(|(seq, _)| *seq))?;
            Ok(entries)
        }
    }
}

fn check_order(seqs: impl Iterator<Item = u64>) -> Result<(), BatchError> {
    let mut previous: Option<u64> = None;
    for (index, seq) in seqs.enumerate() {
        if previous.is_some_and(|p| seq <= p) {
            return Err(BatchError::OutOfOrder { index, seq });
        }
        previous = Some(seq);
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{Quality, Quantity, Reading, SensorId, Timestamp};
    use alloc::vec;

    fn reading(n: u64) -> Record {
        Record::Reading(Reading {
            sensor: SensorId(1),
            quantity: Quantity::AirPressure,
            time: Timestamp::monotonic(n * 100_000_000),
            value: 19_400.0 + n as f64,
            quality: Quality::GOOD,
        })
    }

    #[test]
    fn entries_with_holes_round_trip() {
        let entries = vec![(3, reading(3)), (4, reading(4)), (9, reading(9))];
        let payload = encode_batch(PREFERRED_ENCODING, &entries).unwrap();
        let decoded = decode_batch(PREFERRED_ENCODING, &payload, &DEFAULT_BATCH_LIMITS);
        assert_eq!(decoded, Ok(entries));
    }

    #[test]
    fn out_of_order_entries_are_refused_both_ways() {
        let entries = vec![(4, reading(4)), (4, reading(4))];
        assert!(matches!(
            encode_batch(PREFERRED_ENCODING, &entries),
            Err(BatchError::OutOfOrder { index: 1, seq: 4 })
        ));
        let payload = postcard::to_allocvec(&entries).unwrap();
        assert!(matches!(
            decode_batch(PREFERRED_ENCODING, &payload, &DEFAULT_BATCH_LIMITS),
            Err(BatchError::OutOfOrder { index: 1, .. })
        ));
    }

    #[test]
    fn a_huge_declared_count_is_refused_without_allocating_it() {
        let payload = postcard::to_allocvec(&(u32::MAX,)).unwrap();
        assert!(matches!(
            decode_batch(PREFERRED_ENCODING, &payload, &DEFAULT_BATCH_LIMITS),
            Err(BatchError::TooManyRecords { .. })
        ));
        let small = BatchLimits {
            max_records: 10,
            max_decoded_bytes: 1 << 20,
        };
        let entries: Vec<_> = (0..11).map(|n| (n, reading(n))).collect();
        let payload = encode_batch(PREFERRED_ENCODING, &entries).unwrap();
        assert!(matches!(
            decode_batch(PREFERRED_ENCODING, &payload, &small),
            Err(BatchError::TooManyRecords { count: 11, max: 10 })
        ));
    }
}
