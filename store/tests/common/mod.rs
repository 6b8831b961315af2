//! What the store's integration tests share: records to append and the stream invariant.

#![allow(dead_code, clippy::unwrap_used)]

use aloft_protocol::{Boot, BootId, Quality, Quantity, Reading, Record, SensorId, Timestamp};
use aloft_store::{Backend, Outbox};

/// Reading number `i`: its value says which it is, so a test can tell them apart.
pub fn reading(i: u64) -> Record {
    Record::Reading(Reading {
        sensor: SensorId((i % 5) as u16),
        quantity: Quantity::AirPressure,
        time: Timestamp::monotonic(1_000_000 + i * 100_000_000),
        value: i as f64,
        quality: Quality::GOOD,
    })
}

/// A record that is not a reading.
pub fn boot(i: u8) -> Record {
    Record::Boot(Boot {
        boot_id: BootId([i; 16]),
        mono_ns: u64::from(i),
        utc_ns: None,
        agent_version: "0.1.0".into(),
    })
}

/// Every durable record, in order.
pub fn all_records<B: Backend>(outbox: &Outbox<B>) -> Vec<(u64, Record)> {
    outbox
        .read_from(0, usize::MAX)
        .expect("the store reads back")
}

/// Numbers as sorted, merged, inclusive ranges: a crash gap covers tens of thousands of
/// numbers, so the tests reason in ranges, not in sets of numbers.
#[derive(Debug, Default)]
pub struct Coverage(Vec<(u64, u64)>);

impl Coverage {
    fn of(mut ranges: Vec<(u64, u64)>) -> Self {
        ranges.sort_unstable();
        let mut merged: Vec<(u64, u64)> = Vec::with_capacity(ranges.len());
        for (lo, hi) in ranges {
            match merged.last_mut() {
                Some(last) if lo <= last.1.saturating_add(1) => last.1 = last.1.max(hi),
                _ => merged.push((lo, hi)),
            }
        }
        Coverage(merged)
    }

    /// Whether `seq` is in one of the ranges.
    pub fn contains(&self, seq: &u64) -> bool {
        let i = self.0.partition_point(|&(lo, _)| lo <= *seq);
        i > 0 && self.0[i - 1].1 >= *seq
    }

    /// The first number at or after `from` outside every range.
    pub fn first_missing_from(&self, from: u64) -> u64 {
        let i = self.0.partition_point(|&(lo, _)| lo <= from);
        match i.checked_sub(1).map(|i| self.0[i]) {
            Some((_, hi)) if hi >= from => hi.saturating_add(1),
            _ => from,
        }
    }
}

fn gap_ranges(records: &[(u64, Record)]) -> Vec<(u64, u64)> {
    records
        .iter()
        .filter_map(|(_, r)| match r {
            Record::Gap(g) => g.covers,
            _ => None,
        })
        .collect()
}

/// The gaps' covered numbers.
pub fn covered(records: &[(u64, Record)]) -> Coverage {
    Coverage::of(gap_ranges(records))
}

/// Invariant 1 of docs/design.md: from the oldest held record to the newest durable one,
/// every number is held or covered by a gap record; numbers strictly increase. Returns the
/// records.
pub fn assert_contiguous<B: Backend>(outbox: &Outbox<B>) -> Vec<(u64, Record)> {
    let records = all_records(outbox);
    for pair in records.windows(2) {
        assert!(
            pair[0].0 < pair[1].0,
            "numbers go backwards: {} then {}",
            pair[0].0,
            pair[1].0
        );
    }
    if let Some(&(first, _)) = records.first() {
        let mut ranges = gap_ranges(&records);
        ranges.extend(records.iter().map(|r| (r.0, r.0)));
        let held_or_covered = Coverage::of(ranges);
        let missing = held_or_covered.first_missing_from(first);
        assert!(
            missing >= outbox.durable_end(),
            "number {missing} is neither held nor covered by a gap (durable end {})",
            outbox.durable_end()
        );
        let last = records.last().map(|r| r.0).unwrap_or(first);
        assert_eq!(
            last + 1,
            outbox.durable_end(),
            "the newest durable record is readable"
        );
    }
    records
}

/// The values of the readings among `records`.
pub fn reading_values(records: &[(u64, Record)]) -> Vec<u64> {
    records
        .iter()
        .filter_map(|(_, r)| match r {
            Record::Reading(r) => Some(r.value as u64),
            _ => None,
        })
        .collect()
}
