//! The sled 0.34 candidate behind the same `Backend` trait: the outbox's contract that sled's
//! design lets us check, run through the same `Outbox` as the segmented log and redb:
//! contiguous numbering, committed records kept across a reopen without `close` (`sync` is
//! `Db::flush`), the ack cursor and epoch kept across a reopen, each
//! full policy (drop-oldest, decimate, reject-new), and range reads.
//!
//! The SIGKILL torture (`tests/crash.rs`) runs on sled beside the log and redb, and fails
//! now and then: sled 0.34 refuses to open after a kill (docs/decisions/store-backend.md).
//!
//! Not run on sled, and why:
//! - Power loss at the I/O seam (`tests/power_loss.rs` for the log, redb's `StorageBackend`
//!   in `redb_candidate.rs`): sled 0.34 writes its own files through `std::fs` with no
//!   storage trait to plug a simulated disk into, so unsynced writes cannot be dropped or
//!   torn under it. A power cut is untested here; the SIGKILL torture, which leaves the
//!   page cache intact, already finds it refusing to open now and then.
//! - Garbage written over a region, the model-based proptest and a real full disk: not run,
//!   as for redb.
//!
//! "Unclean" below means the outbox is dropped without `close`, a record appended but not
//! committed: the process keeps running and sled flushes when its `Db` drops, so that record
//! may survive. It is no crash test.

// Test code: a failed unwrap is a failed test, helpers included.
#![allow(clippy::unwrap_used)]

#[path = "../../store/tests/common/mod.rs"]
mod common;

use aloft_protocol::{GapReason, Record};
use aloft_store::{AppendOutcome, FullPolicy, Outbox, StoreOptions};
use aloft_store_candidates::sled_backend::SledBackend;
use common::*;

fn open(path: &std::path::Path, options: StoreOptions) -> Outbox<SledBackend> {
    let (backend, recovery) = SledBackend::open(path).unwrap();
    Outbox::open_with(backend, recovery, options).unwrap().0
}

#[test]
fn sled_numbers_contiguously_and_holds_committed_records_across_an_unclean_reopen() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("store.sled");
    let mut outbox = open(&path, StoreOptions::default());
    let epoch = outbox.epoch();
    for i in 0..1_000 {
        match outbox.append(&reading(i)).unwrap() {
            AppendOutcome::Numbered(seq) => assert_eq!(seq, i, "numbers start at 0, no holes"),
            other => panic!("reading {i}: {other:?}"),
        }
    }
    outbox.commit().unwrap();
    outbox.append(&reading(1_000)).unwrap();
    drop(outbox);
    let outbox = open(&path, StoreOptions::default());
    assert_eq!(
        outbox.epoch(),
        epoch,
        "the epoch is kept in sled's meta tree"
    );
    let records = assert_contiguous(&outbox);
    let values = reading_values(&records);
    assert_eq!(values[..1_000], (0..1_000).collect::<Vec<_>>());
    // sled may have flushed the uncommitted reading when its `Db` dropped; the outbox,
    // not closed cleanly, writes its crash gap either way.
    let lost = records
        .iter()
        .any(|(_, r)| matches!(r, Record::Gap(g) if g.reason == GapReason::Crash));
    assert!(
        values.len() <= 1_001 && lost,
        "{} readings, crash gap {lost}",
        values.len()
    );
}

#[test]
fn sled_keeps_the_ack_cursor_and_numbering_across_a_clean_close() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("store.sled");
    let mut outbox = open(&path, StoreOptions::default());
    for i in 0..500 {
        outbox.append(&reading(i)).unwrap();
    }
    outbox.commit().unwrap();
    outbox.ack(299).unwrap();
    outbox.close().unwrap();

    let mut outbox = open(&path, StoreOptions::default());
    assert_eq!(outbox.first_unacked(), 300, "the ack cursor survives");
    let records = assert_contiguous(&outbox);
    assert!(
        !records
            .iter()
            .any(|(_, r)| matches!(r, Record::Gap(g) if g.reason == GapReason::Crash)),
        "a clean close loses nothing"
    );
    let next = outbox.next_seq();
    assert_eq!(
        outbox.append(&reading(500)).unwrap(),
        AppendOutcome::Numbered(next),
        "numbers go on after a reopen"
    );
    outbox.commit().unwrap();
    assert_contiguous(&outbox);
}

#[test]
fn sled_reads_ranges_of_durable_records_only() {
    let dir = tempfile::tempdir().unwrap();
    let mut outbox = open(&dir.path().join("store.sled"), StoreOptions::default());
    for i in 0..10_000 {
        outbox.append(&reading(i)).unwrap();
    }
    outbox.commit().unwrap();
    for i in 10_000..10_010 {
        outbox.append(&reading(i)).unwrap();
    }
    // Across a chunk boundary (4096 numbers), from the middle, bounded by `max`.
    let some = outbox.read_from(4_000, 200).unwrap();
    assert_eq!(some.len(), 200);
    assert_eq!(
        some.iter().map(|r| r.0).collect::<Vec<_>>(),
        (4_000..4_200).collect::<Vec<_>>()
    );
    assert_eq!(
        reading_values(&some),
        (4_000..4_200).collect::<Vec<_>>(),
        "each number reads back its own record"
    );
    // Uncommitted records are not read.
    let tail = outbox.read_from(9_990, usize::MAX).unwrap();
    assert_eq!(tail.last().map(|r| r.0), Some(9_999));
    assert!(outbox.read_from(10_000, 10).unwrap().is_empty());
    outbox.commit().unwrap();
    assert_eq!(outbox.read_from(10_000, usize::MAX).unwrap().len(), 10);
}

#[test]
fn sled_applies_the_full_policies_through_the_same_outbox() {
    for policy in [FullPolicy::DropOldest, FullPolicy::Decimate] {
        let dir = tempfile::tempdir().unwrap();
        let mut options = StoreOptions::new(200 * 1024, policy);
        options.retain_acked_bytes = 0;
        let mut outbox = open(&dir.path().join("store.sled"), options);
        for i in 0..20_000 {
            outbox.append(&reading(i)).unwrap();
            if i % 1_000 == 999 {
                outbox.commit().unwrap();
            }
        }
        outbox.commit().unwrap();
        let records = assert_contiguous(&outbox);
        assert_eq!(reading_values(&records).last(), Some(&19_999), "{policy:?}");
        assert!(
            outbox.stats().disk_bytes <= 200 * 1024 + 200 * 1024,
            "{policy:?}"
        );
        let lost = outbox.stats().losses;
        assert!(lost.dropped + lost.decimated > 0, "{policy:?}: {lost:?}");
    }
}

#[test]
fn sled_rejects_new_readings_when_full_and_reports_them_once_there_is_room() {
    let dir = tempfile::tempdir().unwrap();
    // Bigger than two chunks of 4096 numbers: the outbox never frees the chunk being
    // written, so under a bound smaller than one chunk acks could not make room.
    let mut options = StoreOptions::new(400 * 1024, FullPolicy::RejectNew);
    options.retain_acked_bytes = 0;
    let mut outbox = open(&dir.path().join("store.sled"), options);
    let mut rejected = 0;
    for i in 0..20_000 {
        if outbox.append(&reading(i)).unwrap() == AppendOutcome::Rejected {
            rejected += 1;
        }
        if i % 100 == 99 {
            outbox.commit().unwrap();
        }
    }
    outbox.commit().unwrap();
    assert!(rejected > 0, "a 400 KiB store cannot hold 20 000 readings");
    let kept = reading_values(&all_records(&outbox));
    assert_eq!(
        kept,
        (0..kept.len() as u64).collect::<Vec<_>>(),
        "the oldest are kept"
    );
    // The hub acks everything: space is back and the refused readings get their gap.
    let end = outbox.durable_end();
    outbox.ack(end - 1).unwrap();
    assert!(matches!(
        outbox.append(&reading(10_000)).unwrap(),
        AppendOutcome::Numbered(_)
    ));
    outbox.commit().unwrap();
    let records = assert_contiguous(&outbox);
    let refused: Vec<_> = records
        .iter()
        .filter_map(|(_, r)| match r {
            Record::Gap(g) if g.reason == GapReason::RejectedNew => Some(g),
            _ => None,
        })
        .collect();
    assert_eq!(refused.len(), 1);
    assert_eq!(refused[0].readings, Some(rejected));
}
