//! The outbox's contract, on the real filesystem and on the simulated disk: numbering,
//! durability, acks, the full-store policies, corrupt regions and a full disk.

// Test code: a failed unwrap is a failed test, helpers included.
#![allow(clippy::unwrap_used)]

mod common;

use aloft_protocol::{GapReason, Record};
use aloft_store::storage::sim::SimDisk;
use aloft_store::{AppendOutcome, FullPolicy, Outbox, StoreOptions};
use common::*;

fn numbered(outcome: AppendOutcome) -> u64 {
    match outcome {
        AppendOutcome::Numbered(seq) => seq,
        AppendOutcome::Rejected => panic!("the store refused a record it had room for"),
    }
}

fn gaps(records: &[(u64, Record)], reason: GapReason) -> Vec<aloft_protocol::Gap> {
    records
        .iter()
        .filter_map(|(_, r)| match r {
            Record::Gap(g) if g.reason == reason => Some(g.clone()),
            _ => None,
        })
        .collect()
}

#[test]
fn appended_records_get_contiguous_numbers_and_are_readable_only_after_commit() {
    let dir = tempfile::tempdir().unwrap();
    let (mut outbox, report) = Outbox::open(dir.path(), StoreOptions::default()).unwrap();
    assert!(report.created);
    assert!(!report.unclean);
    let seqs: Vec<u64> = (0..10)
        .map(|i| numbered(outbox.append(&reading(i)).unwrap()))
        .collect();
    assert_eq!(seqs, (0..10).collect::<Vec<_>>());
    assert!(
        outbox.read_from(0, 100).unwrap().is_empty(),
        "nothing is durable yet"
    );
    outbox.commit().unwrap();
    let records = outbox.read_from(3, 4).unwrap();
    assert_eq!(
        records.iter().map(|r| r.0).collect::<Vec<_>>(),
        vec![3, 4, 5, 6]
    );
    assert_eq!(records[0].1, reading(3));
}

#[test]
fn the_epoch_numbering_and_ack_survive_a_clean_reopen() {
    let dir = tempfile::tempdir().unwrap();
    let (mut outbox, _) = Outbox::open(dir.path(), StoreOptions::default()).unwrap();
    let epoch = outbox.epoch();
    for i in 0..5 {
        outbox.append(&reading(i)).unwrap();
    }
    outbox.commit().unwrap();
    outbox.ack(2).unwrap();
    outbox.close().unwrap();

    let (mut outbox, report) = Outbox::open(dir.path(), StoreOptions::default()).unwrap();
    assert!(!report.created);
    assert!(
        !report.unclean,
        "a closed store opens clean, without a crash gap"
    );
    assert_eq!(outbox.epoch(), epoch);
    assert_eq!(outbox.first_unacked(), 3);
    assert_eq!(numbered(outbox.append(&reading(5)).unwrap()), 5);
    outbox.commit().unwrap();
    assert_eq!(
        reading_values(&assert_contiguous(&outbox)),
        vec![0, 1, 2, 3, 4, 5]
    );
}

#[test]
fn a_new_store_gets_a_new_random_epoch() {
    let a = tempfile::tempdir().unwrap();
    let b = tempfile::tempdir().unwrap();
    let (x, _) = Outbox::open(a.path(), StoreOptions::default()).unwrap();
    let (y, _) = Outbox::open(b.path(), StoreOptions::default()).unwrap();
    assert_ne!(x.epoch(), y.epoch());
}

#[test]
fn a_power_cut_loses_only_the_uncommitted_window_and_says_so_with_a_crash_gap() {
    for seed in 0..30 {
        let disk = SimDisk::new();
        let (mut outbox, _) = Outbox::open_on(disk.clone(), StoreOptions::default()).unwrap();
        for i in 0..20 {
            outbox.append(&reading(i)).unwrap();
        }
        outbox.commit().unwrap();
        for i in 20..30 {
            outbox.append(&reading(i)).unwrap();
        }
        drop(outbox);
        disk.power_cut(seed);

        let (outbox, report) = Outbox::open_on(disk.clone(), StoreOptions::default()).unwrap();
        assert!(report.unclean);
        let records = assert_contiguous(&outbox);
        let values = reading_values(&records);
        assert_eq!(values, (0..20).collect::<Vec<_>>(), "seed {seed}");
        assert_eq!(gaps(&records, GapReason::Crash).len(), 1);
    }
}

#[test]
fn acks_are_capped_at_the_durable_end_and_never_go_back() {
    let disk = SimDisk::new();
    let (mut outbox, _) = Outbox::open_on(disk, StoreOptions::default()).unwrap();
    for i in 0..4 {
        outbox.append(&reading(i)).unwrap();
    }
    outbox.commit().unwrap();
    outbox.append(&reading(4)).unwrap();
    outbox.ack(100).unwrap();
    assert_eq!(
        outbox.first_unacked(),
        4,
        "record 4 is not durable, so not ackable"
    );
    outbox.ack(1).unwrap();
    assert_eq!(outbox.first_unacked(), 4);
}

fn small(policy: FullPolicy) -> StoreOptions {
    let mut options = StoreOptions::new(16 * 1024, policy);
    options.retain_acked_bytes = 0;
    options
}

/// Appends `n` readings, committing every 100: a flight that outgrows its store.
fn fill<B: aloft_store::Backend>(outbox: &mut Outbox<B>, from: u64, n: u64) -> u64 {
    let mut rejected = 0;
    for i in from..from + n {
        if outbox.append(&reading(i)).unwrap() == AppendOutcome::Rejected {
            rejected += 1;
        }
        if i % 100 == 99 {
            outbox.commit().unwrap();
        }
    }
    outbox.commit().unwrap();
    rejected
}

#[test]
fn drop_oldest_keeps_the_store_bounded_and_reports_every_dropped_number() {
    let disk = SimDisk::new();
    let (mut outbox, _) = Outbox::open_on(disk, small(FullPolicy::DropOldest)).unwrap();
    fill(&mut outbox, 0, 5_000);
    let stats = outbox.stats();
    assert!(stats.disk_bytes <= stats.max_bytes + 4 * 1024, "{stats:?}");
    let records = assert_contiguous(&outbox);
    let values = reading_values(&records);
    assert_eq!(values.last(), Some(&4_999), "the newest readings are kept");
    assert!(
        values.windows(2).all(|w| w[1] == w[0] + 1),
        "drop-oldest keeps a contiguous tail"
    );
    let dropped = gaps(&records, GapReason::DroppedOldest);
    assert!(!dropped.is_empty());
    assert!(stats.losses.dropped > 0);
    assert!(dropped.iter().all(|g| g.readings.unwrap_or(0) > 0));
}

#[test]
fn decimate_thins_the_backlog_evenly_instead_of_losing_its_oldest_span() {
    let disk = SimDisk::new();
    let (mut outbox, _) = Outbox::open_on(disk, small(FullPolicy::Decimate)).unwrap();
    fill(&mut outbox, 0, 3_000);
    let stats = outbox.stats();
    assert!(stats.disk_bytes <= stats.max_bytes + 4 * 1024, "{stats:?}");
    let records = assert_contiguous(&outbox);
    let values = reading_values(&records);
    assert!(stats.losses.decimated > 0);
    assert!(!gaps(&records, GapReason::Decimated).is_empty());
    // The oldest hour is still represented, thinned, rather than gone.
    let oldest = values.first().copied().unwrap_or(u64::MAX);
    assert!(
        oldest < 300,
        "decimation kept early readings: oldest held is {oldest}"
    );
    assert!(
        values.windows(2).any(|w| w[1] - w[0] >= 2),
        "readings were thinned"
    );
}

#[test]
fn reject_new_refuses_readings_when_full_and_counts_them_in_a_gap_once_there_is_room() {
    let disk = SimDisk::new();
    let (mut outbox, _) = Outbox::open_on(disk, small(FullPolicy::RejectNew)).unwrap();
    let rejected = fill(&mut outbox, 0, 2_000);
    assert!(rejected > 0, "a 16 KiB store cannot hold 2000 readings");
    let kept_before = reading_values(&all_records(&outbox));
    assert_eq!(
        kept_before,
        (0..kept_before.len() as u64).collect::<Vec<_>>(),
        "the oldest are kept"
    );
    // Non-reading records are still accepted while full.
    assert!(matches!(
        outbox.append(&boot(1)).unwrap(),
        AppendOutcome::Numbered(_)
    ));
    // The hub acks everything: space is back and the refused readings get their gap.
    outbox.commit().unwrap();
    let end = outbox.durable_end();
    outbox.ack(end - 1).unwrap();
    numbered(outbox.append(&reading(10_000)).unwrap());
    outbox.commit().unwrap();
    let records = assert_contiguous(&outbox);
    let refused = gaps(&records, GapReason::RejectedNew);
    assert_eq!(refused.len(), 1);
    assert_eq!(refused[0].readings, Some(rejected));
    assert_eq!(
        refused[0].covers, None,
        "refused readings never had numbers"
    );
}

#[test]
fn acked_records_are_freed_before_any_unsent_one_is_dropped() {
    let disk = SimDisk::new();
    let (mut outbox, _) = Outbox::open_on(disk, small(FullPolicy::DropOldest)).unwrap();
    fill(&mut outbox, 0, 300);
    let end = outbox.durable_end();
    outbox.ack(end - 1).unwrap();
    fill(&mut outbox, 300, 300);
    let records = assert_contiguous(&outbox);
    assert!(
        gaps(&records, GapReason::DroppedOldest).is_empty(),
        "only acked data had to go"
    );
    let values = reading_values(&records);
    assert!(values.contains(&300) && values.contains(&599));
}

#[test]
fn acked_records_beyond_the_retention_are_freed() {
    let disk = SimDisk::new();
    let mut options = StoreOptions::new(1024 * 1024, FullPolicy::DropOldest);
    options.segment_bytes = 2048;
    options.retain_acked_bytes = 4096;
    let (mut outbox, _) = Outbox::open_on(disk, options).unwrap();
    fill(&mut outbox, 0, 2_000);
    let before = outbox.stats().disk_bytes;
    let end = outbox.durable_end();
    outbox.ack(end - 1).unwrap();
    let after = outbox.stats().disk_bytes;
    assert!(
        after < before / 4,
        "retention freed acked data: {before} -> {after}"
    );
    assert!(
        after >= 4096 - 2048,
        "it keeps about the retained amount: {after}"
    );
}

#[test]
fn a_region_overwritten_with_garbage_is_skipped_reported_as_a_gap_and_the_rest_served() {
    let dir = tempfile::tempdir().unwrap();
    let (mut outbox, _) = Outbox::open(dir.path(), StoreOptions::default()).unwrap();
    for i in 0..1_000 {
        outbox.append(&reading(i)).unwrap();
    }
    outbox.close().unwrap();
    let segment = std::fs::read_dir(dir.path())
        .unwrap()
        .map(|e| e.unwrap().path())
        .find(|p| p.extension().is_some_and(|e| e == "seg"))
        .unwrap();
    let mut bytes = std::fs::read(&segment).unwrap();
    let middle = bytes.len() / 2;
    for (k, b) in bytes[middle..middle + 500].iter_mut().enumerate() {
        *b = (k as u8).wrapping_mul(31) ^ 0x5a;
    }
    std::fs::write(&segment, &bytes).unwrap();

    let (outbox, report) = Outbox::open(dir.path(), StoreOptions::default()).unwrap();
    assert_eq!(report.corrupt_regions, 1);
    let records = assert_contiguous(&outbox);
    let corrupt = gaps(&records, GapReason::CorruptRegion);
    assert_eq!(corrupt.len(), 1);
    let (lo, hi) = corrupt[0].covers.unwrap();
    let values = reading_values(&records);
    assert_eq!(
        values.len() as u64,
        1_000 - (hi - lo + 1),
        "everything else is served"
    );
    assert!(values.contains(&0) && values.contains(&999));
    // 500 bytes of garbage cost about 500 / 36 readings, not the segment.
    assert!(hi - lo < 16, "lost {lo}..={hi}");
    outbox.close().unwrap();

    let (outbox, report) = Outbox::open(dir.path(), StoreOptions::default()).unwrap();
    assert_eq!(
        report.corrupt_regions, 0,
        "the region was reported once and repaired"
    );
    assert_eq!(
        gaps(&assert_contiguous(&outbox), GapReason::CorruptRegion).len(),
        1
    );
}

#[test]
fn a_full_disk_frees_space_by_the_policy_and_the_store_keeps_running() {
    // Simulated ENOSPC through the storage seam: the disk holds 24 KiB, the store believes
    // it may take 1 MiB.
    let disk = SimDisk::new();
    let mut options = StoreOptions::new(1024 * 1024, FullPolicy::DropOldest);
    options.segment_bytes = 2048;
    let (mut outbox, _) = Outbox::open_on(disk.clone(), options).unwrap();
    disk.set_capacity(Some(24 * 1024));
    fill(&mut outbox, 0, 3_000);
    assert!(disk.used() <= 24 * 1024);
    let records = assert_contiguous(&outbox);
    assert_eq!(reading_values(&records).last(), Some(&2_999));
    assert!(!gaps(&records, GapReason::DroppedOldest).is_empty());
}

#[test]
fn readings_refused_while_full_are_reported_by_a_gap_at_a_clean_stop() {
    let disk = SimDisk::new();
    let (mut outbox, _) = Outbox::open_on(disk.clone(), small(FullPolicy::RejectNew)).unwrap();
    let rejected = fill(&mut outbox, 0, 1_000);
    assert!(rejected > 0);
    outbox.close().unwrap();
    let (outbox, _) = Outbox::open_on(disk, small(FullPolicy::RejectNew)).unwrap();
    let refused = gaps(&assert_contiguous(&outbox), GapReason::RejectedNew);
    assert_eq!(refused.len(), 1);
    assert_eq!(refused[0].readings, Some(rejected));
}

#[test]
fn a_damaged_epoch_file_gets_a_new_epoch_and_the_records_are_kept() {
    let disk = SimDisk::new();
    let (mut outbox, _) = Outbox::open_on(disk.clone(), StoreOptions::default()).unwrap();
    let old_epoch = outbox.epoch();
    for i in 0..10 {
        outbox.append(&reading(i)).unwrap();
    }
    outbox.close().unwrap();
    disk.overwrite("epoch", 3, &[0xff]).unwrap();

    let (outbox, report) = Outbox::open_on(disk, StoreOptions::default()).unwrap();
    assert!(report.created, "a new epoch was made");
    assert_ne!(outbox.epoch(), old_epoch);
    let values = reading_values(&assert_contiguous(&outbox));
    assert_eq!(values, (0..10).collect::<Vec<_>>());
    assert_eq!(outbox.next_seq(), 10, "numbers go on, never reused");
}
