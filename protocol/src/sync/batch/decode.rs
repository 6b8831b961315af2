//! A batch's payload back to its entries, in either encoding. Decoding never panics and
//! never reserves more than the limits or the payload itself can justify: every count is
//! checked against both before anything is allocated, every column read is bounds-checked,
//! and a column holding more than its entries use is refused.

use alloc::vec::Vec;

use super::frame::{
    COLUMNS, HAS_UTC, NO_SCALE, POW10, RECENT, REPEAT_MODE, SAME_BITS, SAME_TIME, Series,
    UTC_BY_STEP, XOR_MODE, source_of,
};
use super::{BatchError, BatchLimits, check_order};
use crate::{Quality, Quantity, Reading, Record, SensorId, Timestamp};

pub(super) fn decode_postcard(
    payload: &[u8],
    limits: &BatchLimits,
) -> Result<Vec<(u64, Record)>, BatchError> {
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

pub(super) fn decode_columns(
    frame: &[u8],
    limits: &BatchLimits,
) -> Result<Vec<(u64, Record)>, BatchError> {
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

fn unzigzag(v: u64) -> i64 {
    ((v >> 1) as i64) ^ -((v & 1) as i64)
}
