//! The writer the SIGKILL crash torture kills: appends readings to a store as fast as it
//! can, commits every flush interval, and after each commit prints `C <value>`: every
//! reading up to that value is durable. Not part of the agent.
//!
//! Usage: `store-torture-writer DIR FIRST_VALUE FLUSH_MS`

use std::io::Write;
use std::process::ExitCode;
use std::time::{Duration, Instant};

use aloft_protocol::{Quality, Quantity, Reading, Record, SensorId, Timestamp};
use aloft_store::{Outbox, StoreOptions};

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().collect();
    let (Some(dir), Some(Ok(first)), Some(Ok(flush_ms))) = (
        args.get(1),
        args.get(2).map(|a| a.parse::<u64>()),
        args.get(3).map(|a| a.parse::<u64>()),
    ) else {
        eprintln!("usage: store-torture-writer DIR FIRST_VALUE FLUSH_MS");
        return ExitCode::FAILURE;
    };
    match write(dir, first, Duration::from_millis(flush_ms)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("store-torture-writer: {e}");
            ExitCode::FAILURE
        }
    }
}

fn write(dir: &str, first: u64, flush: Duration) -> Result<(), Box<dyn std::error::Error>> {
    let mut options = StoreOptions::default();
    options.segment_bytes = 256 * 1024;
    options.retain_acked_bytes = 64 * 1024;
    let (mut outbox, _) = Outbox::open(dir, options)?;
    let mut out = std::io::stdout().lock();
    let mut value = first;
    let mut flushed = Instant::now();
    loop {
        for _ in 0..64 {
            outbox.append(&Record::Reading(Reading {
                sensor: SensorId((value % 5) as u16),
                quantity: Quantity::AirPressure,
                time: Timestamp::monotonic(value),
                value: value as f64,
                quality: Quality::GOOD,
            }))?;
            value += 1;
        }
        if flushed.elapsed() >= flush {
            outbox.commit()?;
            writeln!(out, "C {}", value - 1)?;
            out.flush()?;
            flushed = Instant::now();
        }
    }
}
