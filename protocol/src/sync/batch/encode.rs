//! Entries to the columnar frame: each reading's sequence step, series, time, value and
//! quality are predicted from the previous reading of its series (see `frame`) and only
//! what the prediction missed is written, each kind of thing in its own column.
//! Invariant: the output decodes (`decode`) to exactly the entries given, bit for bit.

use alloc::vec::Vec;

use super::frame::{
    DECIMAL_RETRY, HAS_UTC, MAX_DECIMALS, MAX_ULPS, NO_SCALE, POW10, RECENT, REPEAT_MODE,
    SAME_BITS, SAME_TIME, Series, UTC_BY_STEP, XOR_MODE, source_bits,
};
use super::{BatchError, check_order};
use crate::{Record, Timestamp};

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

/// The uncompressed columnar form of `entries` (what [`BatchEncoding::ColumnarZstd`](super::BatchEncoding::ColumnarZstd)
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

pub(super) fn put_varint(out: &mut Vec<u8>, mut v: u64) {
    while v >= 0x80 {
        out.push((v as u8) | 0x80);
        v >>= 7;
    }
    out.push(v as u8);
}

fn zigzag(v: i64) -> u64 {
    ((v << 1) ^ (v >> 63)) as u64
}

fn put_signed(out: &mut Vec<u8>, v: i64) {
    put_varint(out, zigzag(v));
}
