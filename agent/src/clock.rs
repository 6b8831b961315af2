//! The agent's clock: monotonic time always, UTC only when the system clock can be trusted.
//!
//! Invariant (docs/design.md invariant 8): a board without an RTC boots in 1970, so UTC from the
//! system clock is only attached when it is later than this build was made; otherwise a
//! reading carries monotonic time alone and a later time-correlation record maps it.
//!
//! On its own (the demo, tests) it applies that plausibility rule only. The daemon
//! [`install`]s its [`crate::timekeeping::Timekeeper`], which also asks the kernel whether
//! NTP keeps the clock and uses GNSS time; from then on every `AgentClock` stamps with it.

use std::sync::{Arc, OnceLock};

use aloft_protocol::{TimeSource, Timestamp};
use nix::time::{ClockId, clock_gettime};

/// What stamps readings in a running daemon (its `Timekeeper`).
pub trait Stamp: Send + Sync {
    /// Now, as a reading's timestamp.
    fn stamp(&self) -> Timestamp;
}

/// The daemon's stamper, installed once at start: every [`AgentClock`] of the process then
/// stamps with it, so sensors, status records and the store agree on which UTC to trust.
static STAMPER: OnceLock<Arc<dyn Stamp>> = OnceLock::new();

/// Makes every [`AgentClock`] of this process stamp with `stamper`. Only the first call
/// takes effect (one process, one timekeeper); returns whether this one did.
pub fn install(stamper: Arc<dyn Stamp>) -> bool {
    STAMPER.set(stamper).is_ok()
}

/// UTC before which the system clock is certainly wrong: 2026-01-01T00:00:00Z, before any
/// Aloft build existed.
pub(crate) const EARLIEST_PLAUSIBLE_UTC_NS: i64 = 1_767_225_600_000_000_000;

/// Reads CLOCK_MONOTONIC and the system clock.
#[derive(Debug, Clone, Copy, Default)]
pub struct AgentClock;

impl AgentClock {
    /// The clock.
    pub fn new() -> Self {
        AgentClock
    }

    /// Now, as a reading's timestamp.
    pub fn now(&self) -> Timestamp {
        if let Some(stamper) = STAMPER.get() {
            return stamper.stamp();
        }
        system_clock_stamp()
    }
}

/// Now as monotonic time, with the system clock's UTC when it is plausible (later than
/// this build): the stamp without a timekeeper.
pub fn system_clock_stamp() -> Timestamp {
    let mono_ns = monotonic_ns();
    let utc_ns = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .ok()
        .and_then(|d| i64::try_from(d.as_nanos()).ok());
    match utc_ns {
        Some(utc) if utc >= EARLIEST_PLAUSIBLE_UTC_NS => {
            Timestamp::with_utc(mono_ns, utc, TimeSource::SystemClock)
        }
        _ => Timestamp::monotonic(mono_ns),
    }
}

/// CLOCK_MONOTONIC, ns: the clock of every reading's `mono_ns`.
pub fn monotonic_ns() -> u64 {
    // CLOCK_MONOTONIC cannot fail on Linux; 0 would only make ages look large.
    clock_gettime(ClockId::CLOCK_MONOTONIC)
        .map(|t| {
            (t.tv_sec() as u64)
                .saturating_mul(1_000_000_000)
                .saturating_add(t.tv_nsec() as u64)
        })
        .unwrap_or(0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn monotonic_time_never_goes_back() {
        let clock = AgentClock::new();
        let a = clock.now();
        let b = clock.now();
        assert!(b.mono_ns >= a.mono_ns);
        assert!(a.mono_ns > 0);
    }

    #[test]
    fn this_machines_clock_is_trusted() {
        // The test machines keep real time; a 1970 clock would give Monotonic.
        assert_eq!(AgentClock::new().now().source, TimeSource::SystemClock);
    }
}
