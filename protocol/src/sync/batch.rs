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
use core::cell::RefCell;
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

/// zstd level of [`BatchEncoding::ColumnarZstd`]: on the simulated flight, level 9 saves 2 %
/// and 19 saves 4 % more for 2.5 and 20 times the encoding time
/// (docs/decisions/sync-codec.md). Decoders accept any level.
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
            deflate(&columns)
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

std::thread_local! {
    // zstd contexts cost hundreds of kB to set up: one per thread, reused by every batch.
    static COMPRESSOR: RefCell<Option<zstd::bulk::Compressor<'static>>> =
        const { RefCell::new(None) };
    static DECOMPRESSOR: RefCell<Option<zstd::bulk::Decompressor<'static>>> =
        const { RefCell::new(None) };
}

fn deflate(columns: &[u8]) -> Result<Vec<u8>, BatchError> {
    let fail = |e: std::io::Error| BatchError::Deflate(e.to_string());
    COMPRESSOR.with(|cell| {
        let mut slot = cell.borrow_mut();
        let compressor = match slot.as_mut() {
            Some(c) => c,
            None => slot.insert(zstd::bulk::Compressor::new(ZSTD_LEVEL).map_err(fail)?),
        };
        compressor.compress(columns).map_err(fail)
    })
}

/// Inflates one zstd frame, refusing it as soon as it passes `max` bytes: a frame that
/// declares its size inflates into a buffer of that size, which zstd never overruns; one
/// that does not grows its output as it inflates and is cut at the cap. Either way a bomb
/// costs at most `max` bytes of memory, never what it claims.
fn inflate(payload: &[u8], max: usize) -> Result<Vec<u8>, BatchError> {
    let fail = |e: std::io::Error| BatchError::Inflate(e.to_string());
    // The window is the decoder's other allocation: no honest frame needs one larger than
    // the cap on its content (zstd's floor is 2^10).
    let window_log = (usize::BITS - max.max(1 << 10).saturating_sub(1).leading_zeros()).min(31);
    if let Ok(Some(declared)) = zstd::zstd_safe::get_frame_content_size(payload) {
        let declared = usize::try_from(declared).unwrap_or(usize::MAX);
        if declared > max {
            return Err(BatchError::TooLarge { max });
        }
        return DECOMPRESSOR.with(|cell| {
            let mut slot = cell.borrow_mut();
            let decompressor = match slot.as_mut() {
                Some(d) => d,
                None => slot.insert(zstd::bulk::Decompressor::new().map_err(fail)?),
            };
            decompressor
                .set_parameter(zstd::zstd_safe::DParameter::WindowLogMax(window_log))
                .map_err(fail)?;
            decompressor.decompress(payload, declared).map_err(fail)
        });
    }
    let mut decoder = zstd::stream::read::Decoder::new(payload).map_err(fail)?;
    decoder.window_log_max(window_log).map_err(fail)?;
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
//   - `REPEAT_MODE + j`, j in 1..RECENT: the same bits as the series' value j values
//     before the previous one (quantised sensors repeat a few values: 33 % to 56 % of the
//     pitot's values on the simulated flight are among its last 16);
//   - `SAME_BITS`: the same bits as the series' previous value.
// - INTS: zigzag varints, see MODES.
// - XORS: raw bytes, see MODES.
// - QUALITY: per reading, varint of (quality bits XOR the series' previous quality bits).
// ---------------------------------------------------------------------------------------

/// Decimal places tried before a value is written as XOR bytes: the drivers print or scale
/// to at most 6 (CO2 in mol mol-1); beyond 9 a noisy float would match by accident and cost
/// more as a huge integer than as XOR bytes.
const MAX_DECIMALS: usize = 9;
const POW10: [f64; MAX_DECIMALS + 1] = [1e0, 1e1, 1e2, 1e3, 1e4, 1e5, 1e6, 1e7, 1e8, 1e9];
/// Largest correction, in ulps, of a decimal value: drivers that compute `x / 100 + 273.15`
/// land an ulp or two off the nearest decimal; a larger miss means it is not a decimal.
const MAX_ULPS: i64 = 4;
const XOR_MODE: u8 = 0xA0;
const REPEAT_MODE: u8 = 0xE0;
const SAME_BITS: u8 = 0xFF;
/// Values of a series remembered for `REPEAT_MODE` (a power of two).
const RECENT: usize = 16;
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
    /// The series' last `RECENT` values' bits, a ring; the newest is at `recent_at - 1`.
    recent: [u64; RECENT],
    recent_at: usize,
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
            recent: [0; RECENT],
            recent_at: 0,
            xor_run: 0,
        }
    }

    /// The value `back` values before the newest (1 = the one before the newest).
    fn recent(&self, back: usize) -> u64 {
        let at = self.recent_at.wrapping_sub(back + 1) % RECENT;
        self.recent.get(at).copied().unwrap_or_default()
    }

    /// Every value passes here, whatever its mode, on both sides.
    fn remember(&mut self, bits: u64) {
        if let Some(slot) = self.recent.get_mut(self.recent_at % RECENT) {
            *slot = bits;
        }
        self.recent_at = self.recent_at.wrapping_add(1);
        self.bits = bits;
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
        s.remember(bits);
        return;
    }
    let decimal = if s.scale != NO_SCALE {
        as_decimal(value, usize::from(s.scale)).map(|d| (usize::from(s.scale), d))
    } else {
        None
    }
    .or_else(|| {
        if !s.xor_run.is_multiple_of(DECIMAL_RETRY) {
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
            } else if let Some(back) = (1..RECENT).find(|&j| s.recent(j) == bits) {
                c.modes.push(REPEAT_MODE + back as u8);
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
    s.remember(bits);
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
    } else if mode > REPEAT_MODE && mode < REPEAT_MODE + RECENT as u8 {
        s.scale = NO_SCALE;
        s.recent(usize::from(mode - REPEAT_MODE))
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
    s.remember(bits);
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{
        Boot, BootId, DescriptorRecord, Gap, GapReason, SensorDescriptor, SensorState,
        StatusRecord, TimeCorrelation,
    };
    use alloc::vec;
    use proptest::prelude::*;

    const BOTH: [BatchEncoding; 2] = [BatchEncoding::Postcard, BatchEncoding::ColumnarZstd];

    fn reading(n: u64) -> Record {
        Record::Reading(Reading {
            sensor: SensorId(1),
            quantity: Quantity::AirPressure,
            time: Timestamp::monotonic(n * 100_000_000),
            value: 19_400.0 + n as f64,
            quality: Quality::GOOD,
        })
    }

    fn value_reading(sensor: u16, value: f64) -> Record {
        Record::Reading(Reading {
            sensor: SensorId(sensor),
            quantity: Quantity::TrueAirspeed,
            time: Timestamp::with_utc(5, 1_780_000_000_000_000_000, TimeSource::Gnss),
            value,
            quality: Quality::DERIVED,
        })
    }

    /// Bit-exact equality: postcard writes an f64's bits as they are, so equal encodings
    /// mean equal records, NaN payloads and -0.0 included (`==` on f64 would not say so).
    fn same_bits(a: &[(u64, Record)], b: &[(u64, Record)]) -> bool {
        postcard::to_allocvec(a).ok() == postcard::to_allocvec(b).ok()
    }

    fn round_trip(encoding: BatchEncoding, entries: &[(u64, Record)]) -> Vec<(u64, Record)> {
        let payload = encode_batch(encoding, entries).unwrap();
        decode_batch(encoding, &payload, &DEFAULT_BATCH_LIMITS).unwrap()
    }

    /// A hand-made columnar payload: `frame` compressed as the codec does.
    fn compressed(frame: &[u8]) -> Vec<u8> {
        zstd::bulk::compress(frame, ZSTD_LEVEL).unwrap()
    }

    #[test]
    fn entries_with_holes_round_trip() {
        let entries = vec![(3, reading(3)), (4, reading(4)), (9, reading(9))];
        for encoding in BOTH {
            assert_eq!(round_trip(encoding, &entries), entries, "{encoding:?}");
        }
    }

    #[test]
    fn an_empty_batch_round_trips() {
        for encoding in BOTH {
            assert_eq!(round_trip(encoding, &[]), vec![], "{encoding:?}");
        }
    }

    #[test]
    fn special_floats_keep_their_exact_bits() {
        let specials = [
            0.0,
            -0.0,
            f64::INFINITY,
            f64::NEG_INFINITY,
            f64::NAN,
            -f64::NAN,
            f64::from_bits(0x7FF0_0000_0000_0001), // signalling NaN
            f64::from_bits(0x7FF8_DEAD_BEEF_0001), // NaN with a payload
            f64::MIN_POSITIVE,
            f64::from_bits(1), // smallest subnormal
            f64::MAX,
            f64::MIN,
            223.15,
            1e300,
            -4.6e18,
            9.3e18,
            0.1 + 0.2,
            (2231.5_f64 / 100.0) + 273.15,
        ];
        // Twice in a row and interleaved with decimals, so every predictor path sees them.
        let mut entries = Vec::new();
        for (i, v) in specials.iter().chain(specials.iter()).enumerate() {
            entries.push((2 * i as u64, value_reading(0, *v)));
            entries.push((2 * i as u64 + 1, value_reading(1, (i as f64) / 10.0)));
        }
        for encoding in BOTH {
            let back = round_trip(encoding, &entries);
            assert!(same_bits(&back, &entries), "{encoding:?}");
        }
    }

    #[test]
    fn noisy_values_that_come_back_are_written_as_repeats() {
        // A 14-bit sensor's values scaled to Pa: full-mantissa floats, a few of them over
        // and over (interleaved with another series, as the pitot's quantities are).
        let levels: Vec<f64> = (0..20)
            .map(|n| (8000 + n) as f64 * (13_789.514_586_336 / 16_383.0))
            .collect();
        let entries: Vec<_> = (0..2_000u64)
            .map(|i| {
                let level = levels[(i * 7 % 20) as usize];
                (i, value_reading((i % 2) as u16, level + (i % 2) as f64))
            })
            .collect();
        let frame = columnar_bytes(&entries).unwrap();
        let back = decode_batch(
            BatchEncoding::ColumnarZstd,
            &compressed(&frame),
            &DEFAULT_BATCH_LIMITS,
        )
        .unwrap();
        assert!(same_bits(&back, &entries));
        // Each series cycles through 10 levels: after the first 10 values, every value is
        // a repeat and costs its mode byte alone. Raw, an entry takes 5 bytes (step, kind,
        // clock, mode, quality); XOR bytes would add about 6 more to each.
        assert!(frame.len() < 2_000 * 5 + 500, "{} bytes", frame.len());
    }

    #[test]
    fn every_record_kind_round_trips_among_readings() {
        let t = Timestamp::with_utc(77, 1_780_000_000_000_000_000, TimeSource::SystemClock);
        let entries = vec![
            (
                0,
                Record::Boot(Boot {
                    boot_id: BootId([7; 16]),
                    mono_ns: 1,
                    utc_ns: None,
                    agent_version: "0.1.0".into(),
                }),
            ),
            (1, reading(1)),
            (
                2,
                Record::Gap(Gap {
                    reason: GapReason::Decimated,
                    covers: Some((10, 20)),
                    readings: Some(5),
                    sensor: None,
                    span: Some((t, t)),
                }),
            ),
            (
                40,
                Record::TimeCorrelation(TimeCorrelation {
                    boot_id: BootId([7; 16]),
                    mono_ns: 9,
                    utc_ns: 1_780_000_000_000_000_000,
                    source: TimeSource::Gnss,
                    uncertainty_ns: Some(1_000_000),
                }),
            ),
            (41, reading(2)),
            (
                42,
                Record::Descriptor(DescriptorRecord {
                    sensor: SensorId(0),
                    name: "gps".into(),
                    kind: "ublox".into(),
                    time: t,
                    descriptor: SensorDescriptor::new("u-blox NEO-M8N").with_real("x", -0.0),
                }),
            ),
            (
                u64::MAX - 1,
                Record::Status(StatusRecord {
                    sensor: SensorId(0),
                    state: SensorState::Restarting,
                    reason: "operator".into(),
                    restarts: 1,
                    time: t,
                }),
            ),
            (u64::MAX, reading(3)),
        ];
        for encoding in BOTH {
            assert!(
                same_bits(&round_trip(encoding, &entries), &entries),
                "{encoding:?}"
            );
        }
    }

    /// 150 s of what `aloft-agent run` recorded on the simulated flight (see the bench).
    fn simulated_flight() -> Vec<(u64, Record)> {
        let packed = include_bytes!("../../benches/data/sim-flight.postcard.deflate");
        let bytes = miniz_oxide::inflate::decompress_to_vec(packed).unwrap();
        postcard::from_bytes(&bytes).unwrap()
    }

    #[test]
    fn the_simulated_flight_round_trips_exactly_in_under_8_bytes_a_reading() {
        let entries = simulated_flight();
        let mut bytes = 0;
        let mut readings = 0;
        for batch in entries.chunks(1_000) {
            let payload = encode_batch(PREFERRED_ENCODING, batch).unwrap();
            bytes += payload.len();
            readings += batch
                .iter()
                .filter(|(_, r)| matches!(r, Record::Reading(_)))
                .count();
            let back = decode_batch(PREFERRED_ENCODING, &payload, &DEFAULT_BATCH_LIMITS);
            assert!(same_bits(&back.unwrap(), batch));
        }
        // The budget is 8 bytes a reading on the wire, framing and acks included:
        // the payload must leave room for them.
        let per_reading = bytes as f64 / readings as f64;
        assert!(per_reading < 6.0, "{per_reading} bytes a reading");
    }

    #[test]
    fn out_of_order_entries_are_refused_both_ways() {
        let entries = vec![(4, reading(4)), (4, reading(4))];
        for encoding in BOTH {
            assert_eq!(
                encode_batch(encoding, &entries),
                Err(BatchError::OutOfOrder { index: 1, seq: 4 })
            );
        }
        let payload = postcard::to_allocvec(&entries).unwrap();
        assert!(matches!(
            decode_batch(BatchEncoding::Postcard, &payload, &DEFAULT_BATCH_LIMITS),
            Err(BatchError::OutOfOrder { index: 1, .. })
        ));
        // The columnar form writes steps, so only a step past u64::MAX can go backwards.
        let mut frame =
            columnar_bytes(&[(u64::MAX - 1, reading(1)), (u64::MAX, reading(2))]).unwrap();
        // Header: count 2 (1 byte), first = u64::MAX - 1 (10 bytes), then steps: len 1,
        // step 0. A step of 1 makes the second number overflow.
        assert_eq!(frame.get(11..13), Some(&[1u8, 0][..]));
        frame[12] = 1;
        assert_eq!(
            decode_batch(
                BatchEncoding::ColumnarZstd,
                &compressed(&frame),
                &DEFAULT_BATCH_LIMITS
            ),
            Err(BatchError::OutOfOrder {
                index: 1,
                seq: u64::MAX
            })
        );
    }

    #[test]
    fn a_huge_declared_count_is_refused_without_allocating_it() {
        let payload = postcard::to_allocvec(&(u32::MAX,)).unwrap();
        assert!(matches!(
            decode_batch(BatchEncoding::Postcard, &payload, &DEFAULT_BATCH_LIMITS),
            Err(BatchError::TooManyRecords { .. })
        ));
        let mut frame = Vec::new();
        put_varint(&mut frame, u64::MAX);
        assert_eq!(
            decode_batch(
                BatchEncoding::ColumnarZstd,
                &compressed(&frame),
                &DEFAULT_BATCH_LIMITS
            ),
            Err(BatchError::TooManyRecords {
                count: usize::MAX,
                max: DEFAULT_BATCH_LIMITS.max_records
            })
        );
        // Under the cap but more than the frame holds: refused before reserving.
        let mut frame = columnar_bytes(&[(0, reading(0))]).unwrap();
        frame[0] = 60;
        assert_eq!(
            decode_batch(
                BatchEncoding::ColumnarZstd,
                &compressed(&frame),
                &DEFAULT_BATCH_LIMITS
            ),
            Err(BatchError::Columns(
                "more entries declared than the batch holds"
            ))
        );
        let small = BatchLimits {
            max_records: 10,
            max_decoded_bytes: 1 << 20,
        };
        let entries: Vec<_> = (0..11).map(|n| (n, reading(n))).collect();
        for encoding in BOTH {
            let payload = encode_batch(encoding, &entries).unwrap();
            assert_eq!(
                decode_batch(encoding, &payload, &small),
                Err(BatchError::TooManyRecords { count: 11, max: 10 })
            );
        }
    }

    #[test]
    fn a_decompression_bomb_is_refused_at_the_cap() {
        // 64 MiB of zeros compress to a few kB: four times the default cap. Streamed, the
        // frame does not declare its size, so the cap must hold while inflating.
        let zeros = vec![0u8; 64 << 20];
        let mut encoder = zstd::stream::write::Encoder::new(Vec::new(), 1).unwrap();
        std::io::Write::write_all(&mut encoder, &zeros).unwrap();
        let streamed = encoder.finish().unwrap();
        assert!(matches!(
            zstd::zstd_safe::get_frame_content_size(&streamed),
            Ok(None)
        ));
        // One that declares its size is refused from its header.
        let declared = zstd::bulk::compress(&zeros, 1).unwrap();
        for bomb in [streamed, declared] {
            assert!(bomb.len() < 64 << 10);
            assert_eq!(
                decode_batch(BatchEncoding::ColumnarZstd, &bomb, &DEFAULT_BATCH_LIMITS),
                Err(BatchError::TooLarge { max: 16 << 20 })
            );
        }
        // An honest batch that inflates past a small cap is refused the same way.
        let entries: Vec<_> = (0..1_000).map(|n| (n, reading(n))).collect();
        let payload = encode_batch(PREFERRED_ENCODING, &entries).unwrap();
        let tight = BatchLimits {
            max_records: 65_536,
            max_decoded_bytes: 1_000,
        };
        assert_eq!(
            decode_batch(PREFERRED_ENCODING, &payload, &tight),
            Err(BatchError::TooLarge { max: 1_000 })
        );
    }

    #[test]
    fn a_frame_asking_for_a_huge_window_is_refused() {
        // A frame header asking for a 32 MiB window (zstd's own limit is 128 MiB) and
        // declaring no content size: past the 16 MiB cap, the decoder must not allocate
        // the window. Magic, frame header descriptor (no content size, not single-segment,
        // no checksum), window descriptor 0x78 (2^25), then an empty last raw block.
        let frame = vec![0x28, 0xB5, 0x2F, 0xFD, 0x00, 0x78, 0x01, 0x00, 0x00];
        assert!(matches!(
            decode_batch(BatchEncoding::ColumnarZstd, &frame, &DEFAULT_BATCH_LIMITS),
            Err(BatchError::Inflate(_))
        ));
    }

    #[test]
    fn every_truncation_of_a_payload_is_refused() {
        let entries: Vec<_> = (0..50).map(|n| (n * 2, reading(n))).collect();
        for encoding in BOTH {
            let payload = encode_batch(encoding, &entries).unwrap();
            for end in 0..payload.len() {
                assert!(
                    decode_batch(encoding, &payload[..end], &DEFAULT_BATCH_LIMITS).is_err(),
                    "{encoding:?} cut at {end}"
                );
            }
        }
        // Truncated columns inside an intact zstd frame: every cut of the frame.
        let frame = columnar_bytes(&entries).unwrap();
        for end in 0..frame.len() {
            assert!(
                decode_batch(
                    BatchEncoding::ColumnarZstd,
                    &compressed(&frame[..end]),
                    &DEFAULT_BATCH_LIMITS
                )
                .is_err(),
                "frame cut at {end}"
            );
        }
    }

    #[test]
    fn errors_say_what_went_wrong() {
        assert_eq!(
            BatchError::TooLarge { max: 16_777_216 }.to_string(),
            "batch inflates past 16777216 bytes"
        );
        assert_eq!(
            BatchError::Record {
                index: 17,
                reason: "truncated modes column"
            }
            .to_string(),
            "record 17: truncated modes column"
        );
        assert_eq!(
            BatchError::OutOfOrder { index: 42, seq: 7 }.to_string(),
            "sequence numbers not increasing at entry 42 (7)"
        );
    }

    #[test]
    fn a_kubeedge_message_has_header_route_and_content() {
        let record = Record::Reading(Reading {
            sensor: SensorId(2),
            quantity: Quantity::AirPressure,
            time: Timestamp::with_utc(5, 1_780_000_000_123_456_789, TimeSource::Gnss),
            value: 19_400.25,
            quality: Quality::SIMULATED,
        });
        let text = kubeedge_json_message("glider-1", &record);
        let message: serde_json::Value = serde_json::from_str(&text).unwrap();
        assert_eq!(message["header"]["timestamp"], 1_780_000_000_123_i64);
        assert_eq!(message["header"]["msg_id"].as_str().map(str::len), Some(36));
        assert_eq!(message["route"]["group"], "twin");
        assert_eq!(
            message["route"]["resource"],
            "$hw/events/device/glider-1-sensor-2/twin/update"
        );
        let twin = &message["content"]["twin"]["air_pressure"];
        assert_eq!(twin["actual"]["value"], "19400.25");
        assert_eq!(twin["metadata"]["unit"], "Pa");
        // Other records travel too (as their JSON), so every record has a message.
        let gap = kubeedge_json_message(
            "glider-1",
            &Record::Gap(Gap {
                reason: GapReason::Crash,
                covers: None,
                readings: None,
                sensor: None,
                span: None,
            }),
        );
        let gap: serde_json::Value = serde_json::from_str(&gap).unwrap();
        assert_eq!(gap["content"]["twin"]["record"]["Gap"]["reason"], "Crash");
    }

    fn arb_time() -> impl Strategy<Value = Timestamp> {
        let source = prop_oneof![
            Just(TimeSource::Monotonic),
            Just(TimeSource::SystemClock),
            Just(TimeSource::Gnss),
            Just(TimeSource::Reconstructed),
        ];
        (
            prop_oneof![0..3u64, 1_000_000_000..1_000_100_000u64, any::<u64>()],
            proptest::option::of(prop_oneof![
                1_780_000_000_000_000_000..1_780_000_000_001_000_000i64,
                any::<i64>()
            ]),
            source,
        )
            .prop_map(|(mono_ns, utc_ns, source)| Timestamp {
                mono_ns,
                utc_ns,
                source,
            })
    }

    fn arb_value() -> impl Strategy<Value = f64> {
        prop_oneof![
            any::<u64>().prop_map(f64::from_bits),
            any::<f64>(),
            (-10_000_000i64..10_000_000, 0..12u32)
                .prop_map(|(n, k)| n as f64 / 10f64.powi(k as i32)),
            (-1000i64..1000).prop_map(|n| n as f64 / 100.0 + 273.15),
            Just(-0.0),
            Just(f64::NAN),
        ]
    }

    fn arb_reading() -> impl Strategy<Value = Record> {
        (
            0..3u16,
            prop_oneof![Just(0usize), Just(1), 0..Quantity::ALL.len()],
            arb_time(),
            arb_value(),
            prop_oneof![Just(0u16), any::<u16>()],
        )
            .prop_map(|(sensor, q, time, value, quality)| {
                Record::Reading(Reading {
                    sensor: SensorId(sensor),
                    quantity: Quantity::ALL[q],
                    time,
                    value,
                    quality: Quality::from_bits(quality),
                })
            })
    }

    fn arb_other() -> impl Strategy<Value = Record> {
        prop_oneof![
            (
                any::<u64>(),
                proptest::option::of(any::<(u64, u64)>()),
                arb_time()
            )
                .prop_map(|(n, covers, t)| Record::Gap(Gap {
                    reason: GapReason::SensorOutage,
                    covers,
                    readings: Some(n),
                    sensor: Some(SensorId(1)),
                    span: Some((t, t)),
                })),
            (any::<[u8; 16]>(), any::<u64>(), ".{0,12}").prop_map(|(id, mono_ns, v)| {
                Record::Boot(Boot {
                    boot_id: BootId(id),
                    mono_ns,
                    utc_ns: None,
                    agent_version: v,
                })
            }),
            (arb_time(), ".{0,20}", arb_value()).prop_map(|(time, reason, v)| {
                Record::Descriptor(DescriptorRecord {
                    sensor: SensorId(2),
                    name: reason.clone(),
                    kind: "bme280".into(),
                    time,
                    descriptor: SensorDescriptor::new(reason).with_real("c", v),
                })
            }),
        ]
    }

    /// Entries with strictly increasing numbers: steps of 1 mostly, holes sometimes.
    fn arb_entries() -> impl Strategy<Value = Vec<(u64, Record)>> {
        (
            prop_oneof![0..10u64, any::<u64>().prop_map(|s| s / 2)],
            proptest::collection::vec(
                (
                    prop_oneof![4 => Just(1u64), 1 => 1..1_000u64],
                    prop_oneof![
                        6 => arb_reading(),
                        1 => arb_other(),
                        // The same time as the entry before, as readings of one sample.
                        2 => Just(Record::Gap(Gap {
                            reason: GapReason::Crash,
                            covers: None,
                            readings: None,
                            sensor: None,
                            span: None,
                        })),
                    ],
                ),
                0..120,
            ),
        )
            .prop_map(|(start, steps)| {
                let mut seq = start;
                let mut out: Vec<(u64, Record)> = Vec::new();
                for (step, record) in steps {
                    seq = seq.saturating_add(step);
                    if out.last().is_some_and(|(s, _)| *s >= seq) {
                        break;
                    }
                    // Every third reading repeats the previous reading's time.
                    let record = match (record, out.last()) {
                        (Record::Reading(mut r), Some((_, Record::Reading(p)))) if seq % 3 == 0 => {
                            r.time = p.time;
                            Record::Reading(r)
                        }
                        (r, _) => r,
                    };
                    out.push((seq, record));
                }
                out
            })
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(256))]

        #[test]
        fn arbitrary_entries_round_trip_bit_for_bit(entries in arb_entries()) {
            for encoding in BOTH {
                let payload = encode_batch(encoding, &entries).unwrap();
                let back = decode_batch(encoding, &payload, &DEFAULT_BATCH_LIMITS).unwrap();
                prop_assert!(same_bits(&back, &entries), "{:?}", encoding);
            }
        }

        #[test]
        fn garbage_is_refused_without_panicking(bytes in proptest::collection::vec(any::<u8>(), 0..256)) {
            for encoding in BOTH {
                let _ = decode_batch(encoding, &bytes, &DEFAULT_BATCH_LIMITS);
            }
            // Garbage that inflates: it reaches the column decoder.
            let _ = decode_batch(BatchEncoding::ColumnarZstd, &compressed(&bytes), &DEFAULT_BATCH_LIMITS);
        }

        #[test]
        fn corrupted_columns_are_refused_or_decoded_without_panicking(
            entries in arb_entries(),
            flips in proptest::collection::vec((any::<prop::sample::Index>(), any::<u8>()), 1..4),
        ) {
            let mut frame = columnar_bytes(&entries).unwrap();
            if frame.is_empty() {
                return Ok(());
            }
            for (at, byte) in flips {
                let i = at.index(frame.len());
                frame[i] ^= byte.max(1);
            }
            if let Ok(back) = decode_batch(BatchEncoding::ColumnarZstd, &compressed(&frame), &DEFAULT_BATCH_LIMITS) {
                // Whatever decodes is a valid batch.
                prop_assert!(check_order(back.iter().map(|(s, _)| *s)).is_ok());
            }
        }
    }
}
