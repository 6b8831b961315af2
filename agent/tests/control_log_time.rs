//! The log ring inside a running daemon's clock: the timekeeper logs while it holds its own
//! lock (a stepped system clock is noticed in the middle of stamping), so a log layer that
//! stamped its lines with the timekeeper would take that lock again and hang the agent.
//!
//! Its own test binary: it installs the process's stamper and global subscriber.

use std::sync::Arc;
use std::sync::atomic::{AtomicI64, Ordering};
use std::time::Duration;

use aloft_agent::clock::{self, AgentClock, Stamp};
use aloft_agent::control;
use aloft_agent::timekeeping::{Clocks, SyncStatus, TimePolicy, Timekeeper};
use tracing_subscriber::layer::SubscriberExt;

/// The real monotonic clock and a wall clock the test steps.
struct SteppedWall {
    wall_utc_ns: AtomicI64,
}

impl Clocks for SteppedWall {
    fn mono_ns(&self) -> u64 {
        clock::monotonic_ns()
    }

    fn wall_utc_ns(&self) -> Option<i64> {
        Some(self.wall_utc_ns.load(Ordering::SeqCst))
    }

    fn sync_status(&self) -> SyncStatus {
        SyncStatus::Synchronised {
            max_error_ns: 1_000_000,
        }
    }
}

#[test]
fn a_line_the_timekeeper_logs_under_its_lock_is_kept_without_hanging() {
    let (layer, ring) = control::log_ring(100);
    tracing::subscriber::set_global_default(tracing_subscriber::registry().with(layer))
        .expect("the only global subscriber");
    let clocks = Arc::new(SteppedWall {
        // 2026-06-01: after the build floor, so the wall clock is trusted.
        wall_utc_ns: AtomicI64::new(1_780_272_000_000_000_000),
    });
    let (timekeeper, _boot) = Timekeeper::start(Arc::clone(&clocks), None, TimePolicy::default())
        .expect("timekeeping starts");
    assert!(clock::install(Arc::new(timekeeper) as Arc<dyn Stamp>));
    AgentClock::new().now();

    // An hour's step: the next stamp notices it and logs a warning under its lock.
    clocks
        .wall_utc_ns
        .fetch_add(3_600_000_000_000, Ordering::SeqCst);
    let (done, stamped) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let _ = done.send(AgentClock::new().now());
    });
    let stamped = stamped.recv_timeout(Duration::from_secs(20));
    assert!(stamped.is_ok(), "stamping hung on its own log line");

    let lines = ring.recent(None, 100);
    assert!(
        lines
            .iter()
            .any(|l| l.level == "WARN" && l.message.starts_with("System clock stepped")),
        "{lines:?}"
    );
}
