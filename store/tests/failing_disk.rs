//! A disk that refuses writes, through the storage seam: EIO (a failing SD card) and
//! ENOSPC with nothing left to free. Commits fail without stopping anything: nothing is
//! deleted on EIO, the newest records wait in memory within the bound, the oldest of them
//! beyond it become a gap record, and once the disk takes writes again every number is held
//! or covered by a gap.

// Test code: a failed unwrap is a failed test, helpers included.
#![allow(clippy::unwrap_used)]

mod common;

use std::collections::BTreeMap;

use aloft_protocol::{GapReason, Record};
use aloft_store::storage::sim::SimDisk;
use aloft_store::{FullPolicy, Outbox, StoreHealth, StoreOptions};
use common::*;

const EIO: i32 = 5;

fn options(policy: FullPolicy) -> StoreOptions {
    let mut options = StoreOptions::new(64 * 1024 * 1024, policy);
    options.segment_bytes = 4096;
    options.max_pending_bytes = 8 * 1024;
    options
}

/// The disk's files and their bytes.
fn files(disk: &SimDisk) -> BTreeMap<String, Vec<u8>> {
    use aloft_store::storage::Storage;
    disk.list()
        .unwrap()
        .into_iter()
        .map(|n| {
            let bytes = disk.contents(&n).unwrap();
            (n, bytes)
        })
        .collect()
}

/// Appends readings `from..to`, committing every 50 (as the flush interval would), and
/// returns how many commits failed.
fn sample(outbox: &mut Outbox<aloft_store::SegmentedLog<SimDisk>>, from: u64, to: u64) -> u64 {
    let mut failed = 0;
    for i in from..to {
        outbox.append(&reading(i)).unwrap();
        if i % 50 == 49 && outbox.commit().is_err() {
            failed += 1;
        }
    }
    failed
}

#[test]
fn a_failing_card_deletes_nothing_keeps_the_newest_in_memory_and_catches_up() {
    let disk = SimDisk::new();
    let (mut outbox, _) = Outbox::open_on(disk.clone(), options(FullPolicy::DropOldest)).unwrap();
    assert_eq!(sample(&mut outbox, 0, 500), 0);
    let durable_before = outbox.durable_end();
    let before: BTreeMap<u64, Record> = all_records(&outbox).into_iter().collect();

    disk.fail_writes(Some(EIO));
    let on_disk = files(&disk);
    let failed = sample(&mut outbox, 500, 3000);
    assert_eq!(failed, 50, "every commit fails while the card fails");
    let stats = outbox.stats();
    assert_eq!(stats.health, StoreHealth::Degraded);
    assert!(outbox.problem().is_some_and(|p| p.contains("os error 5")));
    assert_eq!(files(&disk), on_disk, "EIO deletes and changes nothing");
    // Readings are ~25 bytes a frame: the 8 KiB bound holds a few hundred, not 2500.
    assert!(
        stats.pending_records < 700,
        "memory is bounded: {} records wait",
        stats.pending_records
    );
    assert!(stats.losses.held_back > 0);
    assert_eq!(
        outbox.durable_end(),
        durable_before,
        "nothing became durable"
    );

    disk.fail_writes(None);
    outbox.commit().unwrap();
    assert_eq!(outbox.stats().health, StoreHealth::Healthy);
    assert_eq!(outbox.problem(), None);
    let records = assert_contiguous(&outbox);
    let held: BTreeMap<u64, &Record> = records.iter().map(|(s, r)| (*s, r)).collect();
    for (seq, record) in &before {
        assert_eq!(held.get(seq), Some(&record), "record {seq} survived");
    }
    let gaps: Vec<_> = records
        .iter()
        .filter_map(|(_, r)| match r {
            Record::Gap(g) if g.reason == GapReason::DroppedOldest => Some(g.clone()),
            _ => None,
        })
        .collect();
    assert!(
        !gaps.is_empty(),
        "the records dropped from memory have a gap"
    );
    let values = reading_values(&records);
    assert_eq!(
        values.last(),
        Some(&2999),
        "the newest reading is kept through the outage"
    );
    // Readings dropped from memory are exactly those the gaps count.
    let lost_readings: u64 = gaps.iter().filter_map(|g| g.readings).sum();
    assert_eq!(values.len() as u64 + lost_readings, 3000);

    // And it reopens with nothing missing.
    outbox.close().unwrap();
    let (outbox, report) = Outbox::open_on(disk, options(FullPolicy::DropOldest)).unwrap();
    assert!(report.missing.is_empty(), "{report:?}");
    assert_contiguous(&outbox);
}

#[test]
fn a_full_disk_with_nothing_to_free_holds_the_newest_in_memory_until_space_is_back() {
    for policy in [
        FullPolicy::RejectNew,
        FullPolicy::DropOldest,
        FullPolicy::Decimate,
    ] {
        let disk = SimDisk::new();
        let (mut outbox, _) = Outbox::open_on(disk.clone(), options(policy)).unwrap();
        assert_eq!(sample(&mut outbox, 0, 100), 0);
        // Full now, with one segment (the newest is never freed): nothing to free.
        disk.set_capacity(Some(disk.used()));
        let failed = sample(&mut outbox, 100, 3000);
        assert!(failed > 0, "{policy:?}: the disk is full");
        let stats = outbox.stats();
        assert_eq!(stats.health, StoreHealth::Full, "{policy:?}");
        assert!(stats.pending_records < 700, "{policy:?}: memory is bounded");

        // Another process frees space.
        disk.set_capacity(None);
        outbox.commit().unwrap();
        assert_eq!(outbox.stats().health, StoreHealth::Healthy);
        let records = assert_contiguous(&outbox);
        assert_eq!(reading_values(&records).last(), Some(&2999), "{policy:?}");
        let lost: u64 = records
            .iter()
            .filter_map(|(_, r)| match r {
                Record::Gap(g) => g.readings,
                _ => None,
            })
            .sum();
        assert_eq!(
            reading_values(&records).len() as u64 + lost,
            3000,
            "{policy:?}: every reading is held or counted by a gap"
        );
    }
}

#[test]
fn an_ack_that_cannot_be_written_holds_in_memory_and_is_written_by_the_next_commit() {
    let disk = SimDisk::new();
    let (mut outbox, _) = Outbox::open_on(disk.clone(), options(FullPolicy::DropOldest)).unwrap();
    sample(&mut outbox, 0, 100);
    disk.fail_writes(Some(EIO));
    assert!(outbox.ack(49).is_err());
    assert_eq!(outbox.first_unacked(), 50, "the ack holds in memory");
    disk.fail_writes(None);
    outbox.append(&reading(100)).unwrap();
    outbox.commit().unwrap();
    drop(outbox);
    let (outbox, _) = Outbox::open_on(disk, options(FullPolicy::DropOldest)).unwrap();
    assert_eq!(outbox.first_unacked(), 50, "the next commit wrote it");
}
