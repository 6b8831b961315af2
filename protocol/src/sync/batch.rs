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

extern crate std;

use alloc::format;
use alloc::string::{String, ToString};
use alloc::vec::Vec;
use std::io::Read;

use serde::{Deserialize, Serialize};

use crate::{Quality, Quantity, Reading, Record, SensorId, TimeSource, Timestamp};

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

/// zstd level of [`BatchEncoding::ColumnarZstd`]: past 3 the measured gain on the columns
/// is under 1 % while encoding slows (docs/decisions/sync-codec.md).
pub const ZSTD_LEVEL: i32 = 3;

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
    Inflate(String),
    /// The compressor failed while encoding.
    #[error("batch cannot be compressed: {0}")]
    Deflate(String),
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
            zstd::bulk::compress(&columns, ZSTD_LEVEL)
                .map_err(|e| BatchError::Deflate(e.to_string()))
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
        BatchEncoding::Postcard => decode_postcard(payload, limits),
        BatchEncoding::ColumnarZstd => {
            let columns = inflate(payload, limits.max_decoded_bytes)?;
            decode_columns(&columns, limits)
        }
    }
}

fn decode_postcard(payload: &[u8], limits: &BatchLimits) -> Result<Vec<(u64, Record)>, BatchError> {
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
    // Every entry takes at least two bytes: never reserve more than the payload can hold,
    // whatever it declares.
    let mut entries = Vec::with_capacity(count.min(rest.len() / 2));
    for _ in 0..count {
        let (entry, tail) =
            postcard::take_from_bytes::<(u64, Record)>(rest).map_err(BatchError::Malformed)?;
        entries.push(entry);
        rest = tail;
    }
    check_order(entries.iter().map(|(seq, _)| *seq))?;
    Ok(entries)
}

/// Inflates one zstd frame, refusing it as soon as it passes `max` bytes: the output grows
/// as the frame inflates, so a bomb costs at most `max` bytes of memory, never what its
/// header claims.
fn inflate(payload: &[u8], max: usize) -> Result<Vec<u8>, BatchError> {
    let mut decoder = zstd::stream::read::Decoder::new(payload)
        .map_err(|e| BatchError::Inflate(e.to_string()))?;
    // The window is the decoder's other allocation: no honest frame needs one larger than
    // the cap on its content (zstd's floor is 2^10).
    let window_log = usize::BITS - max.max(1 << 10).saturating_sub(1).leading_zeros();
    decoder
        .window_log_max(window_log.min(31))
        .map_err(|e| BatchError::Inflate(e.to_string()))?;
    let mut out = Vec::with_capacity(payload.len().saturating_mul(4).min(max));
    let cap = u64::try_from(max).unwrap_or(u64::MAX).saturating_add(1);
    decoder
        .take(cap)
        .read_to_end(&mut out)
        .map_err(|e| BatchError::Inflate(e.to_string()))?;
    if out.len() > max {
        return Err(BatchError::TooLarge { max });
    }
    Ok(out)
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

// ---------------------------------------------------------------------------------------
// The columnar form.
//
// Frame (before compression): varint entry count, varint first sequence number, then the
// columns below in this order, each as varint length + bytes. Varints are LEB128 (postcard's
// too); signed numbers are zigzagged first.
//
// - STEPS: per entry after the first, varint (seq - previous seq - 1).
// - KINDS: per entry, varint: 0 = not a reading (the record is in OTHERS), 1 = a reading of
//   a series not seen yet in this batch (its sensor and quantity are in SERIES and it gets
//   the next series number), n + 2 = a reading of series n.
// - SERIES: per new series, varint sensor, then the quantity in postcard.
// - OTHERS: postcard records, one after the other.
// - CLOCKS: per reading, one byte: bit 0 = same timestamp as the previous reading of the
//   batch (nothing else is written for its time), bit 1 = has UTC, bits 2-3 = time source,
//   bit 4 = UTC predicted by the series' previous UTC step (else by its previous offset to
//   monotonic time).
// - MONO: per reading with a new time, zigzag varint of (monotonic step - the series'
//   previous monotonic step): delta of delta, wrapping.
// - UTC: per reading with a new time and UTC, zigzag varint of (UTC - predicted UTC).
// - MODES: per reading, one byte saying how its value is written:
//   - `16 * k + z` with k in 0..=MAX_DECIMALS and z in 0..=8: the value is
//     `n as f64 / 10^k` with its bits corrected by zigzag z ulps (|correction| <= 4); n is
//     written in INTS as zigzag (n - the series' previous n), or n itself when the series'
//     previous value did not use the same k;
//   - `XOR_MODE + 8 * lead + trail`: the value's bits XOR the series' previous value's bits
//     have `lead` leading and `trail` trailing zero bytes; the bytes between go to XORS,
//     most significant first;
//   - `SAME_BITS`: the same bits as the series' previous value.
// - INTS: zigzag varints, see MODES.
// - XORS: raw bytes, see MODES.
// - QUALITY: per reading, varint of (quality bits XOR the series' previous quality bits).
// ---------------------------------------------------------------------------------------

/// Decimal places tried before a value is written as XOR bytes: enough for NMEA minutes
/// printed to 5 places scaled to degrees' decimal representation (up to 9 decimals).
const MAX_DECIMALS: usize = 9;
const POW10: [f64; MAX_DECIMALS + 1] = [1e0, 1e1, 1e2, 1e3, 1e4, 1e5, 1e6, 1e7, 1e8, 1e9];
/// Largest correction, in ulps, of a decimal value: drivers that compute `x / 100 + 273.15`
/// land an ulp or two off the nearest decimal; a larger miss means it is not a decimal.
const MAX_ULPS: i64 = 4;
const XOR_MODE: u8 = 0xA0;
const SAME_BITS: u8 = 0xFF;
/// No decimal scale yet (the series is new or its last value was written as XOR).
const NO_SCALE: u8 = u8::MAX;
/// A series writing XOR values looks for a decimal scale again only this often: noisy
/// floats never have one, and the search is the encoder's costliest step.
const DECIMAL_RETRY: u32 = 32;

const SAME_TIME: u8 = 1;
const HAS_UTC: u8 = 2;
const UTC_BY_STEP: u8 = 16;

const COLUMNS: usize = 11;

#[derive(Debug, Default)]
struct Columns {
    steps: Vec<u8>,
    kinds: Vec<u8>,
    series: Vec<u8>,
    others: Vec<u8>,
    clocks: Vec<u8>,
    mono: Vec<u8>,
    utc: Vec<u8>,
    modes: Vec<u8>,
    ints: Vec<u8>,
    xors: Vec<u8>,
    quality: Vec<u8>,
}

/// What the previous reading of one (sensor, quantity) series left behind: the predictions
/// for the next one. Encoder and decoder advance it identically.
#[derive(Debug, Clone, Copy)]
struct Series {
    sensor: SensorId,
    quantity: Quantity,
    mono: u64,
    mono_step: i64,
    utc: i64,
    utc_step: i64,
    bits: u64,
    scale: u8,
    n: i64,
    quality: u16,
    /// Encoder only: values written as XOR since the last decimal search.
    xor_run: u32,
}

impl Series {
    fn new(sensor: SensorId, quantity: Quantity) -> Self {
        Series {
            sensor,
            quantity,
            mono: 0,
            mono_step: 0,
            utc: 0,
            utc_step: 0,
            bits: 0,
            scale: NO_SCALE,
            n: 0,
            quality: 0,
            xor_run: 0,
        }
    }

    fn advance_time(&mut self, time: &Timestamp) {
        self.mono_step = time.mono_ns.wrapping_sub(self.mono) as i64;
        self.mono = time.mono_ns;
        if let Some(utc) = time.utc_ns {
            self.utc_step = utc.wrapping_sub(self.utc);
            self.utc = utc;
        }
    }
}

/// The uncompressed columnar form of `entries` (what [`BatchEncoding::ColumnarZstd`]
/// compresses). Public so that the codec bench can try other compressors on it.
pub fn columnar_bytes(entries: &[(u64, Record)]) -> Result<Vec<u8>, BatchError> {
    check_order(entries.iter().map(|(seq, _)| *seq))?;
    let mut c = Columns::default();
    let readings = entries.len();
    c.kinds.reserve(readings);
    c.clocks.reserve(readings);
    c.modes.reserve(readings);
    c.quality.reserve(readings);
    c.mono.reserve(readings * 2);
    c.xors.reserve(readings * 4);
    let mut series: Vec<Series> = Vec::new();
    let mut previous_time: Option<Timestamp> = None;
    let mut previous_seq: Option<u64> = None;
    for (seq, record) in entries {
        if let Some(p) = previous_seq {
            // check_order guarantees seq > p.
            put_varint(&mut c.steps, seq.wrapping_sub(p).wrapping_sub(1));
        }
        previous_seq = Some(*seq);
        let Record::Reading(reading) = record else {
            put_varint(&mut c.kinds, 0);
            postcard::to_extend(record, core::mem::take(&mut c.others))
                .map(|others| c.others = others)
                .map_err(BatchError::Malformed)?;
            continue;
        };
        let index = match series
            .iter()
            .position(|s| s.sensor == reading.sensor && s.quantity == reading.quantity)
        {
            Some(i) => {
                put_varint(&mut c.kinds, i as u64 + 2);
                i
            }
            None => {
                put_varint(&mut c.kinds, 1);
                put_varint(&mut c.series, u64::from(reading.sensor.0));
                postcard::to_extend(&reading.quantity, core::mem::take(&mut c.series))
                    .map(|s| c.series = s)
                    .map_err(BatchError::Malformed)?;
                series.push(Series::new(reading.sensor, reading.quantity));
                series.len() - 1
            }
        };
        let Some(s) = series.get_mut(index) else {
            continue;
        };
        encode_time(&mut c, s, &reading.time, previous_time.as_ref());
        previous_time = Some(reading.time);
        encode_value(&mut c, s, reading.value);
        let quality = reading.quality.bits();
        put_varint(&mut c.quality, u64::from(quality ^ s.quality));
        s.quality = quality;
    }
    let mut out = Vec::with_capacity(
        24 + c.steps.len()
            + c.kinds.len()
            + c.series.len()
            + c.others.len()
            + c.clocks.len()
            + c.mono.len()
            + c.utc.len()
            + c.modes.len()
            + c.ints.len()
            + c.xors.len()
            + c.quality.len(),
    );
    put_varint(&mut out, entries.len() as u64);
    put_varint(&mut out, entries.first().map_or(0, |(seq, _)| *seq));
    for column in [
        &c.steps, &c.kinds, &c.series, &c.others, &c.clocks, &c.mono, &c.utc, &c.modes, &c.ints,
        &c.xors, &c.quality,
    ] {
        put_varint(&mut out, column.len() as u64);
        out.extend_from_slice(column);
    }
    Ok(out)
}

fn source_bits(source: TimeSource) -> u8 {
    match source {
        TimeSource::Monotonic => 0,
        TimeSource::SystemClock => 1 << 2,
        TimeSource::Gnss => 2 << 2,
        TimeSource::Reconstructed => 3 << 2,
    }
}

fn source_of(clock: u8) -> TimeSource {
    match (clock >> 2) & 3 {
        0 => TimeSource::Monotonic,
        1 => TimeSource::SystemClock,
        2 => TimeSource::Gnss,
        _ => TimeSource::Reconstructed,
    }
}

fn encode_time(c: &mut Columns, s: &mut Series, time: &Timestamp, previous: Option<&Timestamp>) {
    if previous == Some(time) {
        c.clocks.push(SAME_TIME);
        s.advance_time(time);
        return;
    }
    let mono_step = time.mono_ns.wrapping_sub(s.mono) as i64;
    put_signed(&mut c.mono, mono_step.wrapping_sub(s.mono_step));
    let mut clock = source_bits(time.source);
    if let Some(utc) = time.utc_ns {
        clock |= HAS_UTC;
        let by_offset = s.utc.wrapping_add(mono_step);
        let by_step = s.utc.wrapping_add(s.utc_step);
        let miss_offset = utc.wrapping_sub(by_offset);
        let miss_step = utc.wrapping_sub(by_step);
        if miss_step.unsigned_abs() < miss_offset.unsigned_abs() {
            clock |= UTC_BY_STEP;
            put_signed(&mut c.utc, miss_step);
        } else {
            put_signed(&mut c.utc, miss_offset);
        }
    }
    c.clocks.push(clock);
    s.advance_time(time);
}

/// `value` as `n / 10^k` with a correction of a few ulps, if it is one.
fn as_decimal(value: f64, k: usize) -> Option<(i64, u8)> {
    let scale = *POW10.get(k)?;
    let scaled = (value * scale).round();
    // Past 2^62 the integer would not survive the zigzag and delta steps.
    if scaled.is_nan() || scaled.abs() >= 4.6e18 {
        return None;
    }
    let n = scaled as i64;
    let back = n as f64 / scale;
    let ulps = (value.to_bits() as i64).wrapping_sub(back.to_bits() as i64);
    if ulps.unsigned_abs() > MAX_ULPS as u64 {
        return None;
    }
    Some((n, zigzag(ulps) as u8))
}

fn encode_value(c: &mut Columns, s: &mut Series, value: f64) {
    let bits = value.to_bits();
    if bits == s.bits && s.xor_run > 0 {
        // An unchanged value of a XOR series: the cheapest form, and no search.
        c.modes.push(SAME_BITS);
        s.scale = NO_SCALE;
        return;
    }
    let decimal = if s.scale != NO_SCALE {
        as_decimal(value, usize::from(s.scale)).map(|d| (usize::from(s.scale), d))
    } else {
        None
    }
    .or_else(|| {
        if s.xor_run % DECIMAL_RETRY != 0 {
            return None;
        }
        (0..=MAX_DECIMALS).find_map(|k| as_decimal(value, k).map(|d| (k, d)))
    });
    match decimal {
        Some((k, (n, ulps))) => {
            // k <= MAX_DECIMALS and ulps <= 8: the mode fits in a byte below XOR_MODE.
            c.modes.push(k as u8 * 16 + ulps);
            let delta = if usize::from(s.scale) == k {
                n.wrapping_sub(s.n)
            } else {
                n
            };
            put_signed(&mut c.ints, delta);
            s.scale = k as u8;
            s.n = n;
            s.xor_run = 0;
        }
        None => {
            let x = bits ^ s.bits;
            if x == 0 {
                c.modes.push(SAME_BITS);
            } else {
                let lead = (x.leading_zeros() / 8) as usize;
                let trail = (x.trailing_zeros() / 8) as usize;
                c.modes.push(XOR_MODE + 8 * lead as u8 + trail as u8);
                let bytes = x.to_be_bytes();
                c.xors
                    .extend_from_slice(bytes.get(lead..8 - trail).unwrap_or(&bytes));
            }
            s.scale = NO_SCALE;
            s.xor_run = s.xor_run.wrapping_add(1).max(1);
        }
    }
    s.bits = bits;
}

/// A column being read: every read is bounds-checked and says which column ran short.
#[derive(Debug)]
struct Column<'a> {
    bytes: &'a [u8],
    name: &'static str,
}

impl<'a> Column<'a> {
    fn byte(&mut self) -> Option<u8> {
        let (&b, rest) = self.bytes.split_first()?;
        self.bytes = rest;
        Some(b)
    }

    fn take(&mut self, n: usize) -> Option<&'a [u8]> {
        if n > self.bytes.len() {
            return None;
        }
        let (head, rest) = self.bytes.split_at(n);
        self.bytes = rest;
        Some(head)
    }

    fn varint(&mut self) -> Option<u64> {
        let mut value = 0u64;
        for shift in (0..64).step_by(7) {
            let b = self.byte()?;
            value |= u64::from(b & 0x7F) << shift;
            if b & 0x80 == 0 {
                // The tenth byte may only carry the top bit of a u64.
                return (shift < 63 || b <= 1).then_some(value);
            }
        }
        None
    }

    fn signed(&mut self) -> Option<i64> {
        self.varint().map(unzigzag)
    }
}

fn decode_columns(frame: &[u8], limits: &BatchLimits) -> Result<Vec<(u64, Record)>, BatchError> {
    let mut head = Column {
        bytes: frame,
        name: "header",
    };
    let count = head
        .varint()
        .ok_or(BatchError::Columns("truncated header"))?;
    let count = usize::try_from(count).unwrap_or(usize::MAX);
    if count > limits.max_records {
        return Err(BatchError::TooManyRecords {
            count,
            max: limits.max_records,
        });
    }
    let first = head
        .varint()
        .ok_or(BatchError::Columns("truncated header"))?;
    const NAMES: [&str; COLUMNS] = [
        "steps", "kinds", "series", "others", "clocks", "mono", "utc", "modes", "ints", "xors",
        "quality",
    ];
    let mut columns = NAMES.map(|name| Column { bytes: &[], name });
    for column in &mut columns {
        let len = head
            .varint()
            .ok_or(BatchError::Columns("truncated column length"))?;
        let len = usize::try_from(len).map_err(|_| BatchError::Columns("column too long"))?;
        column.bytes = head
            .take(len)
            .ok_or(BatchError::Columns("column longer than the batch"))?;
    }
    if !head.bytes.is_empty() {
        return Err(BatchError::Columns("bytes after the last column"));
    }
    let [
        mut steps,
        mut kinds,
        mut series_column,
        mut others,
        mut clocks,
        mut mono,
        mut utc,
        mut modes,
        mut ints,
        mut xors,
        mut quality,
    ] = columns;
    // Every entry has at least one byte in KINDS: a count past that is a lie, and the
    // reservation never exceeds what the frame (itself capped) can hold.
    if count > kinds.bytes.len() {
        return Err(BatchError::Columns(
            "more entries declared than the batch holds",
        ));
    }
    let mut entries = Vec::with_capacity(count);
    let mut series: Vec<Series> = Vec::new();
    let mut previous_time: Option<Timestamp> = None;
    let mut seq = first;
    for index in 0..count {
        let bad = |reason| BatchError::Record { index, reason };
        if index > 0 {
            let step = steps.varint().ok_or(bad("truncated steps column"))?;
            seq = seq.checked_add(step).and_then(|s| s.checked_add(1)).ok_or(
                BatchError::OutOfOrder {
                    index,
                    seq: u64::MAX,
                },
            )?;
        }
        let kind = kinds.varint().ok_or(bad("truncated kinds column"))?;
        let s = match kind {
            0 => {
                let (record, rest) = postcard::take_from_bytes::<Record>(others.bytes)
                    .map_err(|_| bad("malformed record in the others column"))?;
                others.bytes = rest;
                entries.push((seq, record));
                continue;
            }
            1 => {
                let sensor = series_column
                    .varint()
                    .and_then(|v| u16::try_from(v).ok())
                    .ok_or(bad("bad sensor in the series column"))?;
                let (quantity, rest) = postcard::take_from_bytes::<Quantity>(series_column.bytes)
                    .map_err(|_| bad("unknown quantity in the series column"))?;
                series_column.bytes = rest;
                series.push(Series::new(SensorId(sensor), quantity));
                series.len() - 1
            }
            n => usize::try_from(n - 2)
                .ok()
                .filter(|&i| i < series.len())
                .ok_or(bad("reading of a series not declared"))?,
        };
        let Some(s) = series.get_mut(s) else {
            return Err(bad("reading of a series not declared"));
        };
        let time = decode_time(s, &mut clocks, &mut mono, &mut utc, previous_time).map_err(bad)?;
        previous_time = Some(time);
        let value = decode_value(s, &mut modes, &mut ints, &mut xors).map_err(bad)?;
        let bits = quality
            .varint()
            .and_then(|q| u16::try_from(q).ok())
            .ok_or(bad("bad quality"))?;
        s.quality ^= bits;
        entries.push((
            seq,
            Record::Reading(Reading {
                sensor: s.sensor,
                quantity: s.quantity,
                time,
                value,
                quality: Quality::from_bits(s.quality),
            }),
        ));
    }
    for column in [
        &steps,
        &kinds,
        &series_column,
        &others,
        &clocks,
        &mono,
        &utc,
        &modes,
        &ints,
        &xors,
        &quality,
    ] {
        if !column.bytes.is_empty() {
            return Err(BatchError::LeftOver(column.name));
        }
    }
    Ok(entries)
}

fn decode_time(
    s: &mut Series,
    clocks: &mut Column<'_>,
    mono: &mut Column<'_>,
    utc: &mut Column<'_>,
    previous: Option<Timestamp>,
) -> Result<Timestamp, &'static str> {
    let clock = clocks.byte().ok_or("truncated clocks column")?;
    if clock == SAME_TIME {
        let time = previous.ok_or("same time as no previous reading")?;
        s.advance_time(&time);
        return Ok(time);
    }
    if clock & !(HAS_UTC | UTC_BY_STEP | 12) != 0 {
        return Err("bad clock byte");
    }
    let mono_step = s
        .mono_step
        .wrapping_add(mono.signed().ok_or("truncated mono column")?);
    let mono_ns = s.mono.wrapping_add(mono_step as u64);
    let utc_ns = if clock & HAS_UTC != 0 {
        let miss = utc.signed().ok_or("truncated utc column")?;
        let predicted = if clock & UTC_BY_STEP != 0 {
            s.utc.wrapping_add(s.utc_step)
        } else {
            s.utc.wrapping_add(mono_step)
        };
        Some(predicted.wrapping_add(miss))
    } else if clock & UTC_BY_STEP != 0 {
        return Err("bad clock byte");
    } else {
        None
    };
    let time = Timestamp {
        mono_ns,
        utc_ns,
        source: source_of(clock),
    };
    s.advance_time(&time);
    Ok(time)
}

fn decode_value(
    s: &mut Series,
    modes: &mut Column<'_>,
    ints: &mut Column<'_>,
    xors: &mut Column<'_>,
) -> Result<f64, &'static str> {
    let mode = modes.byte().ok_or("truncated modes column")?;
    let bits = if mode == SAME_BITS {
        s.scale = NO_SCALE;
        s.bits
    } else if mode >= XOR_MODE {
        let lead = usize::from((mode - XOR_MODE) / 8);
        let trail = usize::from((mode - XOR_MODE) % 8);
        if lead + trail >= 8 {
            return Err("bad value mode");
        }
        let middle = xors.take(8 - lead - trail).ok_or("truncated xors column")?;
        let mut bytes = [0u8; 8];
        if let Some(slot) = bytes.get_mut(lead..8 - trail) {
            slot.copy_from_slice(middle);
        }
        s.scale = NO_SCALE;
        s.bits ^ u64::from_be_bytes(bytes)
    } else {
        let k = mode / 16;
        let ulps = mode % 16;
        let scale = *POW10.get(usize::from(k)).ok_or("bad value mode")?;
        if ulps > 8 {
            return Err("bad value mode");
        }
        let delta = ints.signed().ok_or("truncated ints column")?;
        let n = if s.scale == k {
            s.n.wrapping_add(delta)
        } else {
            delta
        };
        s.scale = k;
        s.n = n;
        let back = n as f64 / scale;
        (back.to_bits() as i64).wrapping_add(unzigzag(u64::from(ulps))) as u64
    };
    s.bits = bits;
    Ok(f64::from_bits(bits))
}

fn put_varint(out: &mut Vec<u8>, mut v: u64) {
    while v >= 0x80 {
        out.push((v as u8) | 0x80);
        v >>= 7;
    }
    out.push(v as u8);
}

fn zigzag(v: i64) -> u64 {
    ((v << 1) ^ (v >> 63)) as u64
}

fn unzigzag(v: u64) -> i64 {
    ((v >> 1) as i64) ^ -((v & 1) as i64)
}

fn put_signed(out: &mut Vec<u8>, v: i64) {
    put_varint(out, zigzag(v));
}

// ---------------------------------------------------------------------------------------
// The comparison: the same records as KubeEdge-style JSON messages.
// ---------------------------------------------------------------------------------------

/// One record as the JSON message a KubeEdge edge node would send for it: beehive's
/// `model.Message` (`header` with a message id and a millisecond timestamp, `route` with
/// source, group, operation and resource) whose `content` is a device-twin update
/// (`event_id`, `timestamp`, `twin` with the quantity's `actual` value as a string and its
/// metadata). One message per reading, as the twin and eventbus topics carry them. Used
/// for `sync.json_bytes_per_reading`, not by the protocol.
pub fn kubeedge_json_message(node: &str, record: &Record) -> String {
    let (device, millis, twin) = match record {
        Record::Reading(r) => {
            let millis = reading_millis(&r.time);
            let value = if r.value.is_finite() {
                format!("{}", r.value)
            } else {
                format!("{:?}", r.value)
            };
            let twin = serde_json::json!({
                (r.quantity.name()): {
                    "actual": {
                        "value": value,
                        "metadata": { "timestamp": millis },
                    },
                    "metadata": {
                        "type": "double",
                        "unit": r.quantity.unit(),
                        "quality": r.quality.bits(),
                        "mono_ns": r.time.mono_ns,
                    },
                }
            });
            (format!("sensor-{}", r.sensor.0), millis, twin)
        }
        other => (
            "agent".into(),
            0,
            serde_json::json!({ "record": serde_json::to_value(other).unwrap_or_default() }),
        ),
    };
    let message = serde_json::json!({
        "header": {
            "msg_id": message_id(node, record),
            "parent_msg_id": "",
            "timestamp": millis,
            "sync": false,
        },
        "route": {
            "source": "eventbus",
            "group": "twin",
            "operation": "update",
            "resource": format!("$hw/events/device/{node}-{device}/twin/update"),
        },
        "content": {
            "event_id": message_id(node, record),
            "timestamp": millis,
            "twin": twin,
        },
    });
    message.to_string()
}

fn reading_millis(time: &Timestamp) -> i64 {
    time.utc_ns
        .map_or((time.mono_ns / 1_000_000) as i64, |u| u / 1_000_000)
}

/// A UUID-shaped id (KubeEdge uses v4 UUIDs: 36 characters), derived from the record so
/// that the comparison is reproducible.
fn message_id(node: &str, record: &Record) -> String {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    let mut mix = |bytes: &[u8]| {
        for b in bytes {
            h = (h ^ u64::from(*b)).wrapping_mul(0x0000_0100_0000_01b3);
        }
    };
    mix(node.as_bytes());
    if let Record::Reading(r) = record {
        mix(&r.time.mono_ns.to_le_bytes());
        mix(&r.value.to_bits().to_le_bytes());
        mix(&r.sensor.0.to_le_bytes());
    }
    let a = h;
    let b = h.rotate_left(29) ^ 0x9E37_79B9_7F4A_7C15;
    format!(
        "{:08x}-{:04x}-4{:03x}-{:04x}-{:012x}",
        a >> 32,
        (a >> 16) & 0xFFFF,
        a & 0xFFF,
        0x8000 | ((b >> 48) & 0x3FFF),
        b & 0xFFFF_FFFF_FFFF
    )
}
