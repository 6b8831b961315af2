//! The writer the SIGKILL crash torture kills: opens a store and prints `O`, appends
//! readings as fast as it can, commits every flush interval, and after each commit prints
//! `C <value>`: every reading up to that value is durable. Not part of the agent.
//!
//! Usage: `torture-writer log|redb|sled DIR FIRST_VALUE FLUSH_MS`

use std::io::Write;
use std::path::Path;
use std::process::ExitCode;
use std::time::{Duration, Instant};

use aloft_protocol::{Quality, Quantity, Reading, Record, SensorId, Timestamp};
use aloft_store::{Backend, Outbox, StoreError, StoreOptions};
use aloft_store_candidates::{Kind, open_redb, open_sled};

const USAGE: &str = "usage: torture-writer log|redb|sled DIR FIRST_VALUE FLUSH_MS";

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().collect();
    let (Some(kind), Some(dir), Some(Ok(first)), Some(Ok(flush_ms))) = (
        args.get(1).and_then(|k| Kind::from_name(k)),
        args.get(2),
        args.get(3).map(|a| a.parse::<u64>()),
        args.get(4).map(|a| a.parse::<u64>()),
    ) else {
        eprintln!("{USAGE}");
        return ExitCode::FAILURE;
    };
    let dir = Path::new(dir);
    let flush = Duration::from_millis(flush_ms);
    let options = options();
    let written = match kind {
        Kind::Log => Outbox::open(dir, options).and_then(|(o, _)| write(o, first, flush)),
        Kind::Redb => open_redb(dir, options).and_then(|(o, _)| write(o, first, flush)),
        Kind::Sled => open_sled_when_free(dir, options).and_then(|(o, _)| write(o, first, flush)),
    };
    match written {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("torture-writer: {e}");
            ExitCode::FAILURE
        }
    }
}

/// Opens the sled store once the torture lets go of it: sled 0.34 holds its directory's
/// lock until its flusher thread ends, up to half a second after the torture dropped the
/// store it checked, so the writer waits for the lock (and only for the lock).
fn open_sled_when_free(
    dir: &Path,
    options: StoreOptions,
) -> Result<
    (
        Outbox<aloft_store_candidates::sled_backend::SledBackend>,
        aloft_store::OpenReport,
    ),
    StoreError,
> {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        match open_sled(dir, options) {
            Err(StoreError::Backend(e)) if Instant::now() < deadline && is_lock_held(&*e) => {
                std::thread::sleep(Duration::from_millis(20));
            }
            opened => return opened,
        }
    }
}

/// sled 0.34 reports a held lock as an `Io` error of kind `Other` with this message.
fn is_lock_held(e: &(dyn std::error::Error + 'static)) -> bool {
    matches!(
        e.downcast_ref::<sled::Error>(),
        Some(sled::Error::Io(io)) if io.to_string().starts_with("could not acquire lock")
    )
}

/// The torture's store options: small segments, so kills land in every phase of a
/// segment's life (and retention's deletions).
fn options() -> StoreOptions {
    let mut options = StoreOptions::default();
    options.segment_bytes = 256 * 1024;
    options.retain_acked_bytes = 64 * 1024;
    options
}

fn write<B: Backend>(mut outbox: Outbox<B>, first: u64, flush: Duration) -> Result<(), StoreError> {
    let mut out = std::io::stdout().lock();
    // Opened: the torture times most kills from here.
    if writeln!(out, "O").and_then(|()| out.flush()).is_err() {
        return Ok(());
    }
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
            // Stdout gone (the torture ended): stop.
            if writeln!(out, "C {}", value - 1)
                .and_then(|()| out.flush())
                .is_err()
            {
                return Ok(());
            }
            flushed = Instant::now();
        }
    }
}
