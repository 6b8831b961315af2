//! What the store's integration tests share: records to append and the stream invariant.

#![allow(dead_code, clippy::unwrap_used)]

use std::collections::BTreeSet;

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

/// The gaps' covered numbers.
pub fn covered(records: &[(u64, Record)]) -> BTreeSet<u64> {
    let mut covered = BTreeSet::new();
    for (_, r) in records {
        if let Record::Gap(g) = r
            && let Some((lo, hi)) = g.covers
        {
            covered.extend(lo..=hi);
        }
    }
    covered
}

/// DESIGN.md invariant 1: from the oldest held record to the newest durable one, every number
/// is held or covered by a gap record; numbers strictly increase. Returns the records.
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
    let covered = covered(&records);
    if let Some(&(first, _)) = records.first() {
        let held: BTreeSet<u64> = records.iter().map(|r| r.0).collect();
        for seq in first..outbox.durable_end() {
            assert!(
                held.contains(&seq) || covered.contains(&seq),
                "number {seq} is neither held nor covered by a gap (durable end {})",
                outbox.durable_end()
            );
        }
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
