//! Segment files damaged while the agent is stopped (a lying SD card, a filesystem repair,
//! a hand's `rm`): a segment cut short at any point, or deleted outright (the newest, one in
//! the middle, the oldest). At the next open every number that was durable and is not held
//! any more is covered by a gap record, no number is ever issued twice, and what is still
//! held reads back unchanged.

// Test code: a failed unwrap is a failed test, helpers included.
#![allow(clippy::unwrap_used)]

mod common;

use std::collections::BTreeMap;
use std::path::Path;

use aloft_protocol::{GapReason, Record};
use aloft_store::{FullPolicy, Outbox, StoreOptions};
use common::*;
use proptest::prelude::*;

/// Small segments, so a few hundred records make several.
fn options() -> StoreOptions {
    let mut options = StoreOptions::new(64 * 1024 * 1024, FullPolicy::DropOldest);
    options.segment_bytes = 1024;
    options
}

/// The segment files, oldest first.
fn segments(dir: &Path) -> Vec<std::path::PathBuf> {
    let mut names: Vec<_> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "seg"))
        .collect();
    names.sort();
    names
}

/// A store with `records` readings committed in a few commits; closed cleanly or dropped
/// (as a crash leaves it). Returns every durable record and the next number.
fn filled_store(dir: &Path, records: u64, clean: bool) -> (BTreeMap<u64, Record>, u64) {
    let (mut outbox, _) = Outbox::open(dir, options()).unwrap();
    for i in 0..records {
        outbox.append(&reading(i)).unwrap();
        if i % 37 == 36 {
            outbox.commit().unwrap();
        }
    }
    outbox.commit().unwrap();
    let held: BTreeMap<u64, Record> = all_records(&outbox).into_iter().collect();
    let next = outbox.next_seq();
    if clean {
        outbox.close().unwrap();
    } else {
        drop(outbox);
    }
    (held, next)
}

#[derive(Debug, Clone)]
enum Damage {
    /// Cut the segment (index taken modulo their number, from the newest) to this share
    /// of its length, in per mille.
    Truncate { from_newest: usize, per_mille: u64 },
    /// Delete the segment (index modulo their number, from the newest).
    Delete { from_newest: usize },
}

fn damage() -> impl Strategy<Value = Damage> {
    prop_oneof![
        (0usize..8, 0u64..1000).prop_map(|(from_newest, per_mille)| Damage::Truncate {
            from_newest,
            per_mille
        }),
        (0usize..8).prop_map(|from_newest| Damage::Delete { from_newest }),
    ]
}

fn apply(dir: &Path, damage: &Damage) {
    let files = segments(dir);
    assert!(files.len() >= 3, "the test needs several segments");
    let pick = |from_newest: usize| &files[files.len() - 1 - from_newest % files.len()];
    match damage {
        Damage::Truncate {
            from_newest,
            per_mille,
        } => {
            let file = pick(*from_newest);
            let len = std::fs::metadata(file).unwrap().len();
            let f = std::fs::OpenOptions::new().write(true).open(file).unwrap();
            f.set_len(len * per_mille / 1000).unwrap();
        }
        Damage::Delete { from_newest } => std::fs::remove_file(pick(*from_newest)).unwrap(),
    }
}

/// After the damage: every number once durable is held unchanged or covered by a gap, the
/// numbering goes on above every number issued before, and a third open adds no new gap.
fn check_after(dir: &Path, before: &BTreeMap<u64, Record>, next_before: u64) {
    let (mut outbox, _) = Outbox::open(dir, options()).unwrap();
    let records = assert_contiguous(&outbox);
    let covered = covered(&records);
    let held: BTreeMap<u64, Record> = records.iter().cloned().collect();
    for (seq, record) in before {
        match held.get(seq) {
            Some(now) => assert_eq!(now, record, "record {seq} changed"),
            None => assert!(
                covered.contains(seq),
                "record {seq} vanished without a gap record"
            ),
        }
    }
    for (seq, record) in &held {
        if !before.contains_key(seq) {
            assert!(
                *seq >= next_before,
                "number {seq} was issued again (the store had reached {next_before})"
            );
            assert!(
                matches!(record, Record::Gap(_)),
                "only gaps are new: {record:?}"
            );
        }
    }
    let seq = match outbox.append(&reading(10_000)).unwrap() {
        aloft_store::AppendOutcome::Numbered(seq) => seq,
        aloft_store::AppendOutcome::Rejected => panic!("refused"),
    };
    assert!(seq >= next_before, "number {seq} reissued");
    outbox.close().unwrap();

    // The loss was recorded once: opening again finds nothing new.
    let (outbox, report) = Outbox::open(dir, options()).unwrap();
    assert!(
        report.missing.is_empty(),
        "a loss is reported again: {:?}",
        report.missing
    );
    let again = assert_contiguous(&outbox);
    assert_eq!(
        again.len(),
        records.len() + 1,
        "no new record but the reading"
    );
}

#[test]
fn the_newest_segment_cut_to_half_after_a_clean_stop_is_a_gap_and_its_numbers_are_not_reused() {
    let dir = tempfile::tempdir().unwrap();
    let (before, next) = filled_store(dir.path(), 300, true);
    let newest = segments(dir.path()).pop().unwrap();
    let len = std::fs::metadata(&newest).unwrap().len();
    std::fs::OpenOptions::new()
        .write(true)
        .open(&newest)
        .unwrap()
        .set_len(len / 2)
        .unwrap();

    let (outbox, report) = Outbox::open(dir.path(), options()).unwrap();
    assert!(!report.unclean);
    let records = all_records(&outbox);
    let gap = records
        .iter()
        .find_map(|(_, r)| match r {
            Record::Gap(g) if g.reason == GapReason::CorruptRegion => Some(g.clone()),
            _ => None,
        })
        .expect("a gap record for the records cut off");
    let (lo, hi) = gap.covers.unwrap();
    assert_eq!(
        hi,
        next - 1,
        "the gap reaches the newest record made durable"
    );
    assert!(lo > 0 && lo < next);
    assert!(
        outbox.next_seq() > next,
        "numbering goes on above the old end"
    );
    drop(outbox);
    check_after(dir.path(), &before, next);
}

#[test]
fn the_newest_segment_deleted_after_a_crash_is_covered_and_not_reused() {
    let dir = tempfile::tempdir().unwrap();
    let (before, next) = filled_store(dir.path(), 150, false);
    std::fs::remove_file(segments(dir.path()).pop().unwrap()).unwrap();
    check_after(dir.path(), &before, next);
}

#[test]
fn a_store_of_the_earlier_format_opens_and_numbers_on() {
    // The cursor of the earlier format: acked_below, the clean flag, a CRC; segment names
    // without a link.
    let dir = tempfile::tempdir().unwrap();
    let (before, next) = filled_store(dir.path(), 300, true);
    for path in segments(dir.path()) {
        let name = path.file_name().unwrap().to_str().unwrap().to_owned();
        let mut parts = name.trim_end_matches(".seg").split('-');
        let (first, generation) = (parts.next().unwrap(), parts.next().unwrap());
        std::fs::rename(&path, dir.path().join(format!("{first}-{generation}.seg"))).unwrap();
    }
    let mut cursor = 0u64.to_le_bytes().to_vec();
    cursor.push(1);
    let crc = crc32(&cursor);
    cursor.extend_from_slice(&crc.to_le_bytes());
    std::fs::write(dir.path().join("cursor"), cursor).unwrap();

    let (outbox, report) = Outbox::open(dir.path(), options()).unwrap();
    assert!(!report.unclean && report.missing.is_empty(), "{report:?}");
    let held: BTreeMap<u64, Record> = all_records(&outbox).into_iter().collect();
    assert_eq!(held, before, "every record reads back");
    assert_eq!(outbox.next_seq(), next);
    outbox.close().unwrap();
    check_after(dir.path(), &before, next);
}

/// CRC-32 (IEEE), as the store's small files carry it.
fn crc32(bytes: &[u8]) -> u32 {
    let mut crc = !0u32;
    for &b in bytes {
        crc ^= u32::from(b);
        for _ in 0..8 {
            crc = if crc & 1 == 1 {
                (crc >> 1) ^ 0xEDB8_8320
            } else {
                crc >> 1
            };
        }
    }
    !crc
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 48, ..ProptestConfig::default() })]

    #[test]
    fn a_cut_or_deleted_segment_loses_nothing_silently_and_reuses_no_number(
        damage in damage(),
        clean in any::<bool>(),
        records in 150u64..400,
    ) {
        let dir = tempfile::tempdir().unwrap();
        let (before, next) = filled_store(dir.path(), records, clean);
        apply(dir.path(), &damage);
        check_after(dir.path(), &before, next);
    }
}
