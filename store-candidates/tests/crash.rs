//! SIGKILL crash torture, on the segmented log and on each candidate: a writer process
//! (`torture-writer`) appending at a high rate with a short flush interval is killed at
//! random moments (one in four while it opens the store, the rest while it appends), 200
//! times; after each kill the store opens, every reading the writer
//! reported committed is there exactly once, and the numbering is contiguous (what the
//! kill lost is a crash gap).

// Test code: a failed unwrap is a failed test, helpers included.
#![allow(clippy::unwrap_used)]

#[path = "../../store/tests/common/mod.rs"]
mod common;

use std::collections::HashSet;
use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Command, Stdio};
use std::sync::{Arc, Mutex, mpsc};
use std::time::Duration;

use aloft_protocol::{GapReason, Record};
use aloft_store::{Backend, OpenReport, Outbox, StoreError, StoreOptions};
use aloft_store_candidates::{Kind, open_redb, open_sled};
use common::*;

const CYCLES: u64 = 200;
/// Values of cycle `c` start at `c * SPAN`.
const SPAN: u64 = 10_000_000;

fn next_random(state: &mut u64) -> u64 {
    *state ^= *state << 13;
    *state ^= *state >> 7;
    *state ^= *state << 17;
    *state
}

fn options() -> StoreOptions {
    let mut options = StoreOptions::default();
    options.segment_bytes = 256 * 1024;
    options.retain_acked_bytes = 64 * 1024;
    options
}

#[test]
fn on_the_segmented_log_every_committed_reading_survives_200_sigkills_exactly_once() {
    torture(Kind::Log, |dir| Outbox::open(dir, options()));
}

#[test]
fn on_redb_every_committed_reading_survives_200_sigkills_exactly_once() {
    torture(Kind::Redb, |dir| open_redb(dir, options()));
}

/// Fails now and then: sled 0.34 refuses to open after a kill ("Read corrupted data at
/// file offset None"), seen in 1 of 6 runs of 200 kills on 2026-11-25
/// (docs/decisions/store-backend.md). Run it with `--ignored`.
#[test]
#[ignore = "sled 0.34 sometimes refuses to open after a SIGKILL (corrupted data); see docs/decisions/store-backend.md"]
fn on_sled_every_committed_reading_survives_200_sigkills_exactly_once() {
    torture(Kind::Sled, |dir| open_sled(dir, options()));
}

/// Kills the writer on `kind` `CYCLES` times; `open` opens the store as the writer does.
fn torture<B: Backend>(
    kind: Kind,
    open: impl Fn(&Path) -> Result<(Outbox<B>, OpenReport), StoreError>,
) {
    let dir = tempfile::tempdir().unwrap();
    let seed = 0x5eed_u64;
    let mut state = seed;
    let mut seen: HashSet<u64> = HashSet::new();
    let mut verified_to = 0; // records below this number were checked in earlier cycles
    let mut committed_total = 0;
    let mut killed_before_any_commit = 0;
    for cycle in 0..CYCLES {
        let base = cycle * SPAN;
        let mut child = Command::new(env!("CARGO_BIN_EXE_torture-writer"))
            .arg(kind.name())
            .arg(dir.path())
            .arg(base.to_string())
            .arg("3")
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .unwrap();
        let stdout = child.stdout.take().unwrap();
        let last_committed: Arc<Mutex<Option<u64>>> = Arc::default();
        let (opened_tx, opened) = mpsc::channel();
        let reader = {
            let last = Arc::clone(&last_committed);
            std::thread::spawn(move || {
                for line in BufReader::new(stdout).lines() {
                    let Ok(line) = line else { break };
                    if line == "O" {
                        let _ = opened_tx.send(());
                    } else if let Some(v) = line.strip_prefix("C ").and_then(|v| v.parse().ok()) {
                        *last.lock().unwrap() = Some(v);
                    }
                }
            })
        };
        // One kill in four lands anywhere from the start (in the open and its recovery);
        // the others after the store opened, which takes the candidates far longer than
        // the log, so that every backend is killed while it appends and commits.
        if cycle % 4 != 0 && opened.recv_timeout(Duration::from_secs(30)).is_err() {
            let status = child.wait().unwrap();
            panic!("cycle {cycle}: the writer did not open the store ({status})");
        }
        std::thread::sleep(Duration::from_micros(
            2_000 + next_random(&mut state) % 30_000,
        ));
        child.kill().unwrap(); // SIGKILL
        let status = child.wait().unwrap();
        assert!(
            !status.success(),
            "cycle {cycle}: the writer stopped by itself: {status}"
        );
        reader.join().unwrap();
        let last = *last_committed.lock().unwrap();

        let (mut outbox, report) = open(dir.path()).unwrap_or_else(|e| {
            panic!("cycle {cycle}: the store does not open after the kill: {e}")
        });
        assert_eq!(
            report.corrupt_regions, 0,
            "cycle {cycle}: a kill leaves no corruption"
        );
        let records = outbox.read_from(verified_to, usize::MAX).unwrap();
        // Contiguous: each number follows the one before, or a crash gap accounts for the
        // numbers between (those the store had reserved before the kill and never used).
        let mut expected = verified_to;
        for (seq, record) in &records {
            if *seq != expected {
                assert!(
                    matches!(record, Record::Gap(g)
                        if g.reason == GapReason::Crash && g.covers == Some((expected, seq - 1))),
                    "cycle {cycle}: numbers {expected}..{seq} vanished without a crash gap"
                );
            }
            expected = seq + 1;
        }
        let mut values = Vec::new();
        for (_, record) in &records {
            if let Record::Reading(r) = record {
                let v = r.value as u64;
                assert!(seen.insert(v), "cycle {cycle}: reading {v} is there twice");
                values.push(v);
            }
        }
        // The readings of this cycle are a prefix of what it appended, reaching at least
        // the last value it reported committed.
        let this: Vec<u64> = values.iter().copied().filter(|v| *v >= base).collect();
        assert!(
            values.iter().all(|v| *v >= base),
            "cycle {cycle}: an old reading reappeared"
        );
        assert_eq!(
            this,
            (base..base + this.len() as u64).collect::<Vec<_>>(),
            "cycle {cycle}"
        );
        match last {
            Some(last) => {
                assert!(
                    this.last().is_some_and(|v| *v >= last),
                    "cycle {cycle}: reading {last} was committed, the store ends at {:?}",
                    this.last()
                );
                committed_total += last - base + 1;
            }
            None => killed_before_any_commit += 1,
        }
        if cycle > 0 {
            assert!(
                records
                    .iter()
                    .any(|(_, r)| matches!(r, Record::Gap(g) if g.reason == GapReason::Crash)),
                "cycle {cycle}: the kill is recorded as a crash gap"
            );
        }
        // The hub has it all: ack, so retention keeps the store small.
        verified_to = outbox.durable_end();
        if verified_to > 0 {
            outbox.ack(verified_to - 1).unwrap();
        }
        drop(outbox); // not closed: the next writer's open sees an unclean store too
    }
    let (outbox, _) = open(dir.path()).unwrap();
    assert_contiguous(&outbox);
    eprintln!(
        "crash torture on {}: seed {seed:#x}, {CYCLES} kills, {committed_total} readings reported \
         committed, {killed_before_any_commit} kills before a first commit",
        kind.name()
    );
    assert!(
        committed_total > 0,
        "the writer committed something in 200 runs"
    );
}
