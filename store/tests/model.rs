//! Model-based property test: random sequences of append, commit, read, ack, reopen (clean
//! or after a power cut) and fill-up, run against the outbox on the simulated disk and
//! against an in-memory model of what it must hold.

// Test code: a failed unwrap is a failed test, helpers included.
#![allow(clippy::unwrap_used)]

mod common;

use std::collections::BTreeMap;

use aloft_protocol::Record;
use aloft_store::storage::sim::SimDisk;
use aloft_store::{AppendOutcome, FullPolicy, Outbox, SegmentedLog, StoreOptions};
use common::*;
use proptest::prelude::*;

#[derive(Debug, Clone)]
enum Op {
    AppendReading,
    AppendOther,
    Commit,
    Read { from: u8, max: u8 },
    Ack { at: u8 },
    ReopenClean,
    PowerCut { seed: u64 },
    FillUp { readings: u16 },
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        8 => Just(Op::AppendReading),
        1 => Just(Op::AppendOther),
        3 => Just(Op::Commit),
        2 => (any::<u8>(), 1..50u8).prop_map(|(from, max)| Op::Read { from, max }),
        2 => any::<u8>().prop_map(|at| Op::Ack { at }),
        1 => Just(Op::ReopenClean),
        1 => any::<u64>().prop_map(|seed| Op::PowerCut { seed }),
        1 => (50..400u16).prop_map(|readings| Op::FillUp { readings }),
    ]
}

fn policy() -> impl Strategy<Value = FullPolicy> {
    prop_oneof![
        Just(FullPolicy::DropOldest),
        Just(FullPolicy::Decimate),
        Just(FullPolicy::RejectNew),
    ]
}

/// What the store must hold: every record the test appended, by number, and whether it was
/// committed.
#[derive(Debug, Default)]
struct Model {
    durable: BTreeMap<u64, Record>,
    pending: BTreeMap<u64, Record>,
    acked_below: u64,
    next_value: u64,
}

type Store = Outbox<SegmentedLog<SimDisk>>;

fn check(outbox: &Store, model: &Model, bounded: bool) {
    let records = assert_contiguous(outbox);
    let held: BTreeMap<u64, &Record> = records.iter().map(|(s, r)| (*s, r)).collect();
    for (seq, record) in &held {
        if let Some(expected) = model.durable.get(seq) {
            assert_eq!(*record, expected, "record {seq} changed");
        }
        assert!(
            !model.pending.contains_key(seq),
            "uncommitted record {seq} is readable"
        );
    }
    let covered = covered(&records);
    for (seq, record) in &model.durable {
        let present = held.get(seq) == Some(&record);
        if bounded {
            assert!(
                present || covered.contains(seq) || *seq < model.acked_below,
                "committed record {seq} vanished without a gap"
            );
        } else {
            // Acked records go by retention, unacked ones never.
            assert!(
                present || *seq < model.acked_below,
                "committed record {seq} is missing from an unbounded store"
            );
        }
    }
    assert_eq!(outbox.first_unacked(), model.acked_below);
}

fn run(ops: Vec<Op>, policy: FullPolicy, bounded: bool) {
    let disk = SimDisk::new();
    let mut options = StoreOptions::new(if bounded { 8 * 1024 } else { 64 << 20 }, policy);
    options.segment_bytes = 1024;
    options.retain_acked_bytes = 2048;
    let (mut outbox, _) = Outbox::open_on(disk.clone(), options).unwrap();
    let epoch = outbox.epoch();
    let mut model = Model::default();
    let append = |outbox: &mut Store, model: &mut Model, record: Record| {
        if let AppendOutcome::Numbered(seq) = outbox.append(&record).unwrap() {
            model.pending.insert(seq, record);
        }
    };
    let commit = |outbox: &mut Store, model: &mut Model| {
        outbox.commit().unwrap();
        model.durable.extend(std::mem::take(&mut model.pending));
    };
    for op in ops {
        match op {
            Op::AppendReading => {
                let r = reading(model.next_value);
                model.next_value += 1;
                append(&mut outbox, &mut model, r);
            }
            Op::AppendOther => {
                let r = boot(model.next_value as u8);
                append(&mut outbox, &mut model, r);
            }
            Op::Commit => commit(&mut outbox, &mut model),
            Op::Read { from, max } => {
                let from = u64::from(from) * outbox.durable_end() / 255;
                let got = outbox.read_from(from, usize::from(max)).unwrap();
                assert!(got.len() <= usize::from(max));
                assert!(
                    got.iter()
                        .all(|(s, _)| *s >= from && *s < outbox.durable_end())
                );
            }
            Op::Ack { at } => {
                let end = outbox.durable_end();
                if end > 0 {
                    let up_to = u64::from(at) * (end - 1) / 255;
                    outbox.ack(up_to).unwrap();
                    model.acked_below = model.acked_below.max(up_to + 1);
                }
            }
            Op::ReopenClean => {
                outbox.close().unwrap();
                model.durable.extend(std::mem::take(&mut model.pending));
                let (reopened, report) = Outbox::open_on(disk.clone(), options).unwrap();
                assert!(!report.unclean);
                outbox = reopened;
            }
            Op::PowerCut { seed } => {
                drop(outbox);
                disk.power_cut(seed);
                model.pending.clear();
                let (reopened, report) = Outbox::open_on(disk.clone(), options).unwrap();
                assert!(report.unclean);
                assert_eq!(report.corrupt_regions, 0, "a power cut only tears the tail");
                outbox = reopened;
            }
            Op::FillUp { readings } => {
                for k in 0..readings {
                    let r = reading(model.next_value);
                    model.next_value += 1;
                    append(&mut outbox, &mut model, r);
                    if k % 50 == 49 {
                        commit(&mut outbox, &mut model);
                    }
                }
            }
        }
        assert_eq!(outbox.epoch(), epoch);
        check(&outbox, &model, bounded);
        if bounded {
            let stats = outbox.stats();
            // The newest segment and this commit's gaps may stand above the bound.
            assert!(
                stats.disk_bytes <= stats.max_bytes + 2048 + 64 * 50,
                "store over its bound: {stats:?}"
            );
        }
    }
}

proptest! {
    // Failures are kept in store/proptest-regressions/ (committed) and replayed first.
    #![proptest_config(ProptestConfig {
        cases: 64,
        failure_persistence: Some(Box::new(
            proptest::test_runner::FileFailurePersistence::Direct("proptest-regressions/model.txt"),
        )),
        ..ProptestConfig::default()
    })]

    #[test]
    fn an_unbounded_store_holds_exactly_what_was_committed(
        ops in proptest::collection::vec(op(), 1..40),
        policy in policy(),
    ) {
        run(ops, policy, false);
    }

    #[test]
    fn a_bounded_store_loses_records_only_through_gaps_or_acks(
        ops in proptest::collection::vec(op(), 1..40),
        policy in policy(),
    ) {
        run(ops, policy, true);
    }
}
