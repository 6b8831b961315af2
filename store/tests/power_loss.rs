//! Power-loss torture at the I/O seam: the simulated disk lets a random number of storage
//! operations succeed, then fails every later one and drops or tears every write not yet
//! fsynced (directory changes included). The cut lands anywhere: in an append, a commit's
//! fsync, a segment roll, a decimation rewrite, a cursor replacement, or the recovery of
//! the previous cut. After each, the store must open and hold every record whose commit
//! returned, unless a gap record or the hub's ack accounts for it.

// Test code: a failed unwrap is a failed test, helpers included.
#![allow(clippy::unwrap_used)]

mod common;
#[path = "common/power.rs"]
mod power;

use aloft_store::storage::sim::SimDisk;
use aloft_store::{FullPolicy, Outbox, StoreOptions};
use power::{Model, check, next_random, work};

fn torture(policy: FullPolicy, cuts: u64, seed: u64) {
    let disk = SimDisk::new();
    let mut options = StoreOptions::new(12 * 1024, policy);
    options.segment_bytes = 1024;
    options.retain_acked_bytes = 1024;
    let mut model = Model::default();
    let mut state = seed;
    let mut opened = 0;
    for cut in 0..cuts {
        disk.fail_after(Some(next_random(&mut state) % 400));
        // An open that fails is a power cut during recovery itself.
        if let Ok((mut outbox, _)) = Outbox::open_on(disk.clone(), options) {
            opened += 1;
            // The open committed the recovery's gaps: nothing of ours was pending.
            let _ = work(&mut outbox, &mut model, &mut state);
        }
        // Records of a commit that failed part-way may or may not have reached the disk:
        // the model no longer claims them, and their numbers may be reused.
        model.pending.clear();
        disk.power_cut(next_random(&mut state));
        disk.fail_after(None);
        let (outbox, report) = Outbox::open_on(disk.clone(), options)
            .unwrap_or_else(|e| panic!("cut {cut}: the store must always open: {e}"));
        let context = format!("{policy:?} seed {seed:#x} cut {cut}");
        assert!(report.unclean, "{context}");
        check(&outbox, &model, &context);
        // Records the model had but that a later commit's failure left unsure are not
        // rechecked: keep only what this open shows durable.
        // Acked records are the hub's; the model forgets them so it stays small.
        let (end, acked) = (outbox.durable_end(), outbox.first_unacked());
        model.durable.retain(|seq, _| *seq < end && *seq >= acked);
        drop(outbox);
        disk.power_cut(next_random(&mut state));
    }
    assert!(
        opened > cuts / 2,
        "most cycles got past open: {opened}/{cuts}"
    );
    assert!(
        model.next_value > cuts,
        "the workload ran: {} readings",
        model.next_value
    );
}

#[test]
fn power_cuts_at_any_io_operation_lose_nothing_committed_under_drop_oldest() {
    torture(FullPolicy::DropOldest, 300, 0x1234_5678);
}

#[test]
fn power_cuts_at_any_io_operation_lose_nothing_committed_under_decimate() {
    torture(FullPolicy::Decimate, 300, 0x9abc_def1);
}

#[test]
fn power_cuts_at_any_io_operation_lose_nothing_committed_under_reject_new() {
    torture(FullPolicy::RejectNew, 300, 0x0f0f_0f0f);
}
