//! A full filesystem: the store sits on a 512 KiB tmpfs while it believes it may take
//! 4 MiB, so writes fail with ENOSPC. The store must free space by its policy, record the
//! loss as gaps, and keep accepting the newest readings.
//!
//! Mounting needs root. Without it (or where mounting is refused) the test says so and
//! passes, unless `ALOFT_REQUIRE_TOOLS=1` (set by `cargo xtask test`) demands the real
//! filesystem; ENOSPC is also simulated through the file seam in `tests/outbox.rs`.

// Test code: a failed unwrap is a failed test, helpers included.
#![allow(clippy::unwrap_used)]

mod common;

use aloft_protocol::{GapReason, Record};
use aloft_store::{FullPolicy, Outbox, StoreOptions};
use aloft_test_support::mounts::Tmpfs;
use common::*;

#[test]
fn a_full_filesystem_frees_space_by_the_policy_and_the_store_keeps_running() {
    let parent = tempfile::tempdir().unwrap();
    let Some(fs) = Tmpfs::mount(parent.path(), "512k") else {
        assert!(
            std::env::var_os("ALOFT_REQUIRE_TOOLS").is_none(),
            "a tmpfs could not be mounted (root is needed)"
        );
        eprintln!(
            "disk_full: could not mount a tmpfs (not root?); ENOSPC is simulated in tests/outbox.rs"
        );
        return;
    };
    let store_dir = fs.path().join("store");
    let mut options = StoreOptions::new(4 * 1024 * 1024, FullPolicy::DropOldest);
    options.segment_bytes = 32 * 1024;
    let (mut outbox, _) = Outbox::open(&store_dir, options).unwrap();
    let mut full_commits = 0;
    for i in 0..40_000u64 {
        outbox.append(&reading(i)).unwrap();
        if i % 500 == 499 {
            // Every commit must succeed: the store frees space instead of failing.
            outbox.commit().unwrap();
            if outbox.stats().losses.dropped > 0 {
                full_commits += 1;
            }
        }
    }
    assert!(
        full_commits > 0,
        "40 000 readings (1.4 MB) cannot fit in 512 KiB"
    );
    let records = assert_contiguous(&outbox);
    assert_eq!(
        reading_values(&records).last(),
        Some(&39_999),
        "the newest reading is kept"
    );
    assert!(
        records
            .iter()
            .any(|(_, r)| matches!(r, Record::Gap(g) if g.reason == GapReason::DroppedOldest))
    );
    outbox.close().unwrap();
    let (outbox, report) = Outbox::open(&store_dir, options).unwrap();
    assert!(!report.unclean);
    assert_contiguous(&outbox);
    drop(outbox);
    drop(fs);
}
