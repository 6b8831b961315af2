//! One sample of one quantity, with its time and quality.
//!
//! Invariants (docs/design.md, invariant 8): time is never rewritten. A reading always carries
//! the monotonic time at which the agent took it; it carries UTC only when UTC was known
//! at that moment, and [`TimeSource`] says where that UTC came from. Quality flags only
//! ever add information: a reading outside its sensor's rated range is flagged
//! [`Quality::OUT_OF_RANGE`], never clamped.

use serde::{Deserialize, Serialize};

use crate::Quantity;

/// A sensor of a node, numbered by the agent from its configuration. The
/// descriptor record for the sensor says what it is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub struct SensorId(pub u16);

/// Where the UTC part of a [`Timestamp`] came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[non_exhaustive]
pub enum TimeSource {
    /// No UTC was known when the reading was taken: only monotonic time is valid,
    /// and a later time-correlation record maps it to UTC.
    Monotonic,
    /// The system clock, trusted (NTP-synchronised or set from GNSS earlier).
    SystemClock,
    /// UTC reported by the GNSS receiver for this very fix.
    Gnss,
    /// UTC derived from a time-correlation record rather than read from a clock: by the
    /// agent from its latest GNSS correlation while the system clock is untrusted, and by
    /// the hub and exports for readings that carried only monotonic time.
    Reconstructed,
}

/// When a reading was taken.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct Timestamp {
    /// Nanoseconds of the agent's monotonic clock (CLOCK_MONOTONIC of its boot).
    pub mono_ns: u64,
    /// Nanoseconds since the Unix epoch, UTC, when known.
    pub utc_ns: Option<i64>,
    /// Where `utc_ns` came from ([`TimeSource::Monotonic`] when it is `None`).
    pub source: TimeSource,
}

impl Timestamp {
    /// A time known only on the monotonic clock.
    pub const fn monotonic(mono_ns: u64) -> Self {
        Timestamp {
            mono_ns,
            utc_ns: None,
            source: TimeSource::Monotonic,
        }
    }

    /// A time known on both clocks.
    pub const fn with_utc(mono_ns: u64, utc_ns: i64, source: TimeSource) -> Self {
        Timestamp {
            mono_ns,
            utc_ns: Some(utc_ns),
            source,
        }
    }
}

/// Quality flags of a reading: a small bit set.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default, Serialize, Deserialize)]
pub struct Quality(u16);

impl Quality {
    /// Nothing known to be wrong.
    pub const GOOD: Quality = Quality(0);
    /// Outside the sensor's rated range (pressure, temperature or compensation range).
    pub const OUT_OF_RANGE: Quality = Quality(1 << 0);
    /// The device's checksum or CRC did not match; kept only when the caller asked for it.
    pub const CRC_FAILED: Quality = Quality(1 << 1);
    /// The device returned an old value again (no new conversion, stuck data-ready).
    pub const STALE: Quality = Quality(1 << 2);
    /// Produced by a simulator, not a real device.
    pub const SIMULATED: Quality = Quality(1 << 3);
    /// The device itself marked the value invalid (for example an NMEA `V` status or no fix).
    pub const INVALID: Quality = Quality(1 << 4);
    /// Computed from other readings (true airspeed, dead-time-corrected rate).
    pub const DERIVED: Quality = Quality(1 << 5);
    /// An input of a derived value was itself flagged or missing and a fallback was used.
    pub const DEGRADED_INPUT: Quality = Quality(1 << 6);

    const NAMES: [(Quality, &'static str); 7] = [
        (Quality::OUT_OF_RANGE, "out_of_range"),
        (Quality::CRC_FAILED, "crc_failed"),
        (Quality::STALE, "stale"),
        (Quality::SIMULATED, "simulated"),
        (Quality::INVALID, "invalid"),
        (Quality::DERIVED, "derived"),
        (Quality::DEGRADED_INPUT, "degraded_input"),
    ];

    /// The raw bits, for storage.
    pub const fn bits(self) -> u16 {
        self.0
    }

    /// Rebuilds flags from stored bits; unknown bits are kept so newer writers' flags survive.
    pub const fn from_bits(bits: u16) -> Self {
        Quality(bits)
    }

    /// True when every flag of `other` is set in `self`.
    pub const fn contains(self, other: Quality) -> bool {
        self.0 & other.0 == other.0
    }

    /// True when no flag is set.
    pub const fn is_good(self) -> bool {
        self.0 == 0
    }

    /// The flags that say something is wrong with a value (out of range, a failed check,
    /// stale, invalid, a degraded input), as against those that only say where it came
    /// from (simulated, derived).
    pub const FLAWS: Quality = Quality(
        Quality::OUT_OF_RANGE.0
            | Quality::CRC_FAILED.0
            | Quality::STALE.0
            | Quality::INVALID.0
            | Quality::DEGRADED_INPUT.0,
    );

    /// True when a flag says something is wrong with the value ([`Quality::FLAWS`]): a
    /// simulated or derived value is not flawed for being one.
    pub const fn has_flaw(self) -> bool {
        self.0 & Quality::FLAWS.0 != 0
    }

    /// The names of the set flags, in bit order.
    pub fn names(self) -> impl Iterator<Item = &'static str> {
        Quality::NAMES
            .into_iter()
            .filter(move |(q, _)| self.contains(*q))
            .map(|(_, n)| n)
    }
}

impl core::ops::BitOr for Quality {
    type Output = Quality;
    fn bitor(self, rhs: Quality) -> Quality {
        Quality(self.0 | rhs.0)
    }
}

impl core::ops::BitOrAssign for Quality {
    fn bitor_assign(&mut self, rhs: Quality) {
        self.0 |= rhs.0;
    }
}

/// One sample of one quantity. A GPS fix is several readings that share a time.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct Reading {
    /// Which sensor of the node took it.
    pub sensor: SensorId,
    /// What was measured; `value` is in this quantity's unit.
    pub quantity: Quantity,
    /// When it was taken.
    pub time: Timestamp,
    /// The value, in [`Quantity::unit`].
    pub value: f64,
    /// What is known to be wrong with it.
    pub quality: Quality,
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn only_flags_that_say_a_value_is_wrong_are_flaws() {
        assert!(!(Quality::SIMULATED | Quality::DERIVED).has_flaw());
        assert!(!Quality::GOOD.has_flaw());
        for flaw in [
            Quality::OUT_OF_RANGE,
            Quality::CRC_FAILED,
            Quality::STALE,
            Quality::INVALID,
            Quality::DEGRADED_INPUT,
        ] {
            assert!((flaw | Quality::SIMULATED).has_flaw(), "{flaw:?}");
        }
    }

    #[test]
    fn quality_flags_combine_and_name() {
        let q = Quality::OUT_OF_RANGE | Quality::SIMULATED;
        assert!(q.contains(Quality::OUT_OF_RANGE));
        assert!(!q.contains(Quality::STALE));
        assert!(!q.is_good());
        assert_eq!(
            q.names().collect::<heapless_names::Names>().0,
            ["out_of_range", "simulated"]
        );
    }

    mod heapless_names {
        pub struct Names(pub [&'static str; 2]);
        impl FromIterator<&'static str> for Names {
            fn from_iter<I: IntoIterator<Item = &'static str>>(iter: I) -> Self {
                let mut it = iter.into_iter();
                let out = Names([it.next().unwrap_or(""), it.next().unwrap_or("")]);
                assert!(it.next().is_none());
                out
            }
        }
    }

    fn arb_reading() -> impl Strategy<Value = Reading> {
        (
            any::<u16>(),
            0..Quantity::ALL.len(),
            any::<u64>(),
            proptest::option::of(any::<i64>()),
            any::<f64>(),
            any::<u16>(),
        )
            .prop_map(|(s, q, mono, utc, value, bits)| Reading {
                sensor: SensorId(s),
                quantity: Quantity::ALL[q],
                time: match utc {
                    Some(u) => Timestamp::with_utc(mono, u, TimeSource::Gnss),
                    None => Timestamp::monotonic(mono),
                },
                value,
                quality: Quality::from_bits(bits),
            })
    }

    proptest! {
        #[test]
        fn reading_round_trips_through_postcard(r in arb_reading()) {
            let mut buf = [0u8; 64];
            let bytes = postcard::to_slice(&r, &mut buf).unwrap();
            let back: Reading = postcard::from_bytes(bytes).unwrap();
            // Compare bit patterns so NaN payloads count as equal.
            prop_assert_eq!(back.value.to_bits(), r.value.to_bits());
            prop_assert_eq!(back.sensor, r.sensor);
            prop_assert_eq!(back.quantity, r.quantity);
            prop_assert_eq!(back.time, r.time);
            prop_assert_eq!(back.quality, r.quality);
        }

        #[test]
        fn decoding_arbitrary_bytes_never_panics(bytes in proptest::collection::vec(any::<u8>(), 0..64)) {
            let _ = postcard::from_bytes::<Reading>(&bytes);
        }
    }
}
