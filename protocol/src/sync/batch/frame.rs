//! The columnar frame of [`BatchEncoding::ColumnarZstd`](super::BatchEncoding::ColumnarZstd):
//! its layout, and the per-series predictions encoder and decoder share.
//!
//! Frame (before compression): varint entry count, varint first sequence number, then the
//! columns below in this order, each as varint length + bytes. Varints are LEB128 (postcard's
//! too); signed numbers are zigzagged first.
//!
//! - STEPS: per entry after the first, varint (seq - previous seq - 1).
//! - KINDS: per entry, varint: 0 = not a reading (the record is in OTHERS), 1 = a reading of
//!   a series not seen yet in this batch (its sensor and quantity are in SERIES and it gets
//!   the next series number), n + 2 = a reading of series n.
//! - SERIES: per new series, varint sensor, then the quantity in postcard.
//! - OTHERS: postcard records, one after the other.
//! - CLOCKS: per reading, one byte: bit 0 = same timestamp as the previous reading of the
//!   batch (nothing else is written for its time), bit 1 = has UTC, bits 2-3 = time source,
//!   bit 4 = UTC predicted by the series' previous UTC step (else by its previous offset to
//!   monotonic time).
//! - MONO: per reading with a new time, zigzag varint of (monotonic step - the series'
//!   previous monotonic step): delta of delta, wrapping.
//! - UTC: per reading with a new time and UTC, zigzag varint of (UTC - predicted UTC).
//! - MODES: per reading, one byte saying how its value is written:
//!   - `16 * k + z` with k in 0..=MAX_DECIMALS and z in 0..=8: the value is
//!     `n as f64 / 10^k` with its bits corrected by zigzag z ulps (|correction| <= 4); n is
//!     written in INTS as zigzag (n - the series' previous n), or n itself when the series'
//!     previous value did not use the same k;
//!   - `XOR_MODE + 8 * lead + trail`: the value's bits XOR the series' previous value's bits
//!     have `lead` leading and `trail` trailing zero bytes; the bytes between go to XORS,
//!     most significant first;
//!   - `REPEAT_MODE + j`, j in 1..RECENT: the same bits as the series' value j values
//!     before the previous one (quantised sensors repeat a few values: 33 % to 56 % of the
//!     pitot's values on the simulated flight are among its last 16);
//!   - `SAME_BITS`: the same bits as the series' previous value.
//! - INTS: zigzag varints, see MODES.
//! - XORS: raw bytes, see MODES.
//! - QUALITY: per reading, varint of (quality bits XOR the series' previous quality bits).
//!
//! Invariant: the encoder and the decoder advance a [`Series`] by the same steps for the same
//! entry, so every prediction the decoder makes is the one the encoder made.

use crate::{Quantity, SensorId, TimeSource, Timestamp};

/// Decimal places tried before a value is written as XOR bytes: the drivers print or scale
/// to at most 6 (CO2 in mol mol-1); beyond 9 a noisy float would match by accident and cost
/// more as a huge integer than as XOR bytes.
pub(super) const MAX_DECIMALS: usize = 9;
pub(super) const POW10: [f64; MAX_DECIMALS + 1] =
    [1e0, 1e1, 1e2, 1e3, 1e4, 1e5, 1e6, 1e7, 1e8, 1e9];
/// Largest correction, in ulps, of a decimal value: drivers that compute `x / 100 + 273.15`
/// land an ulp or two off the nearest decimal; a larger miss means it is not a decimal.
pub(super) const MAX_ULPS: i64 = 4;
pub(super) const XOR_MODE: u8 = 0xA0;
pub(super) const REPEAT_MODE: u8 = 0xE0;
pub(super) const SAME_BITS: u8 = 0xFF;
/// Values of a series remembered for `REPEAT_MODE` (a power of two).
pub(super) const RECENT: usize = 16;
/// No decimal scale yet (the series is new or its last value was written as XOR).
pub(super) const NO_SCALE: u8 = u8::MAX;
/// A series writing XOR values looks for a decimal scale again only this often: noisy
/// floats never have one, and the search is the encoder's costliest step.
pub(super) const DECIMAL_RETRY: u32 = 32;

pub(super) const SAME_TIME: u8 = 1;
pub(super) const HAS_UTC: u8 = 2;
pub(super) const UTC_BY_STEP: u8 = 16;

pub(super) const COLUMNS: usize = 11;

/// What the previous reading of one (sensor, quantity) series left behind: the predictions
/// for the next one. Encoder and decoder advance it identically.
#[derive(Debug, Clone, Copy)]
pub(super) struct Series {
    pub(super) sensor: SensorId,
    pub(super) quantity: Quantity,
    pub(super) mono: u64,
    pub(super) mono_step: i64,
    pub(super) utc: i64,
    pub(super) utc_step: i64,
    pub(super) bits: u64,
    pub(super) scale: u8,
    pub(super) n: i64,
    pub(super) quality: u16,
    /// The series' last `RECENT` values' bits, a ring; the newest is at `recent_at - 1`.
    pub(super) recent: [u64; RECENT],
    pub(super) recent_at: usize,
    /// Encoder only: values written as XOR since the last decimal search.
    pub(super) xor_run: u32,
}

impl Series {
    pub(super) fn new(sensor: SensorId, quantity: Quantity) -> Self {
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
    pub(super) fn recent(&self, back: usize) -> u64 {
        let at = self.recent_at.wrapping_sub(back + 1) % RECENT;
        self.recent.get(at).copied().unwrap_or_default()
    }

    /// Every value passes here, whatever its mode, on both sides.
    pub(super) fn remember(&mut self, bits: u64) {
        if let Some(slot) = self.recent.get_mut(self.recent_at % RECENT) {
            *slot = bits;
        }
        self.recent_at = self.recent_at.wrapping_add(1);
        self.bits = bits;
    }

    pub(super) fn advance_time(&mut self, time: &Timestamp) {
        self.mono_step = time.mono_ns.wrapping_sub(self.mono) as i64;
        self.mono = time.mono_ns;
        if let Some(utc) = time.utc_ns {
            self.utc_step = utc.wrapping_sub(self.utc);
            self.utc = utc;
        }
    }
}

pub(super) fn source_bits(source: TimeSource) -> u8 {
    match source {
        TimeSource::Monotonic => 0,
        TimeSource::SystemClock => 1 << 2,
        TimeSource::Gnss => 2 << 2,
        TimeSource::Reconstructed => 3 << 2,
    }
}

pub(super) fn source_of(clock: u8) -> TimeSource {
    match (clock >> 2) & 3 {
        0 => TimeSource::Monotonic,
        1 => TimeSource::SystemClock,
        2 => TimeSource::Gnss,
        _ => TimeSource::Reconstructed,
    }
}
