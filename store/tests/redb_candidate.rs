//! The redb candidate behind the same `Backend` trait: the outbox's contract and a
//! SIGKILL-free crash (the process drops the database without closing it) checked on it.
//! redb's own `StorageBackend` would allow the power-loss seam; that run is not written yet.

// Test code: a failed unwrap is a failed test, helpers included.
#![allow(clippy::unwrap_used)]

mod common;
#[path = "common/redb_backend.rs"]
mod redb_backend;

use aloft_protocol::{GapReason, Record};
use aloft_store::{FullPolicy, Outbox, StoreOptions};
use common::*;
use redb_backend::RedbBackend;

fn open(path: &std::path::Path, options: StoreOptions) -> Outbox<RedbBackend> {
    let (backend, recovery) = RedbBackend::open(path).unwrap();
    Outbox::open_with(backend, recovery, options).unwrap().0
}

#[test]
fn redb_holds_committed_records_across_an_unclean_reopen() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("store.redb");
    let mut outbox = open(&path, StoreOptions::default());
    let epoch = outbox.epoch();
    for i in 0..1_000 {
        outbox.append(&reading(i)).unwrap();
    }
    outbox.commit().unwrap();
    outbox.append(&reading(1_000)).unwrap();
    drop(outbox);
    let outbox = open(&path, StoreOptions::default());
    assert_eq!(outbox.epoch(), epoch);
    let records = assert_contiguous(&outbox);
    assert_eq!(reading_values(&records), (0..1_000).collect::<Vec<_>>());
    assert!(
        records
            .iter()
            .any(|(_, r)| matches!(r, Record::Gap(g) if g.reason == GapReason::Crash))
    );
}

#[test]
fn redb_applies_the_full_policies_through_the_same_outbox() {
    for policy in [FullPolicy::DropOldest, FullPolicy::Decimate] {
        let dir = tempfile::tempdir().unwrap();
        let mut options = StoreOptions::new(200 * 1024, policy);
        options.retain_acked_bytes = 0;
        let mut outbox = open(&dir.path().join("store.redb"), options);
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
