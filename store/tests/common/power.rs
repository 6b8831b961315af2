//! Power-loss torture shared by the backends: a random workload of appends, commits and
//! acks that runs until the (simulated) power goes, and the check of what must survive.

#![allow(dead_code, clippy::unwrap_used)]

use std::collections::BTreeMap;

use aloft_protocol::Record;
use aloft_store::{AppendOutcome, Backend, Outbox, StoreError};

use super::common::{assert_contiguous, covered, reading};

pub fn next_random(state: &mut u64) -> u64 {
    *state ^= *state << 13;
    *state ^= *state >> 7;
    *state ^= *state << 17;
    *state
}

#[derive(Debug, Default)]
pub struct Model {
    /// Records whose commit returned Ok.
    pub durable: BTreeMap<u64, Record>,
    pub pending: BTreeMap<u64, Record>,
    /// Acks that returned Ok.
    pub acked_below: u64,
    pub next_value: u64,
}

/// Runs appends, commits and acks until the power goes (an operation fails).
pub fn work<B: Backend>(
    outbox: &mut Outbox<B>,
    model: &mut Model,
    state: &mut u64,
) -> Result<(), StoreError> {
    loop {
        match next_random(state) % 10 {
            0..=6 => {
                let r = reading(model.next_value);
                model.next_value += 1;
                if let AppendOutcome::Numbered(seq) = outbox.append(&r)? {
                    model.pending.insert(seq, r);
                }
            }
            7 | 8 => {
                let result = outbox.commit();
                if result.is_ok() {
                    model.durable.extend(std::mem::take(&mut model.pending));
                }
                result?;
            }
            _ => {
                let end = outbox.durable_end();
                if end > 0 {
                    let up_to = next_random(state) % end;
                    outbox.ack(up_to)?;
                    model.acked_below = model.acked_below.max(up_to + 1);
                }
            }
        }
    }
}

pub fn check<B: Backend>(outbox: &Outbox<B>, model: &Model, context: &str) {
    let records = assert_contiguous(outbox);
    let held: BTreeMap<u64, &Record> = records.iter().map(|(s, r)| (*s, r)).collect();
    let covered = covered(&records);
    assert!(
        outbox.first_unacked() >= model.acked_below,
        "{context}: an ack went back"
    );
    for (seq, record) in &model.durable {
        match held.get(seq) {
            Some(held) => assert_eq!(*held, record, "{context}: record {seq} changed"),
            None => assert!(
                covered.contains(seq) || *seq < outbox.first_unacked(),
                "{context}: committed record {seq} vanished without a gap"
            ),
        }
    }
}
