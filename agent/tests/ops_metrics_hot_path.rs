//! The metrics hot path allocates nothing: counted by a global allocator that tallies this
//! thread's allocations.

use std::alloc::{GlobalAlloc, Layout, System};
use std::cell::Cell;
use std::time::Duration;

use aloft_agent::metrics::{Metrics, SensorErrorKind, SensorLabel};
use aloft_protocol::{Quantity, SensorId, SensorState};

thread_local! {
    static ALLOCATIONS: Cell<u64> = const { Cell::new(0) };
}

struct Counting;

// SAFETY: forwards to the system allocator unchanged; only counts.
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        let _ = ALLOCATIONS.try_with(|c| c.set(c.get() + 1));
        // SAFETY: same contract as ours.
        unsafe { System.alloc(layout) }
    }
    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        // SAFETY: same contract as ours.
        unsafe { System.dealloc(ptr, layout) }
    }
}

#[global_allocator]
static GLOBAL: Counting = Counting;

fn allocations() -> u64 {
    ALLOCATIONS.with(Cell::get)
}

#[test]
fn readings_errors_restarts_and_store_updates_do_not_allocate() {
    let start = allocations();
    let m = Metrics::new(
        "glider",
        (0..5).map(|i| SensorLabel {
            name: format!("s{i}"),
            kind: "bme280".into(),
        }),
    );
    // A state change with a reason that fits the buffer already there is also free.
    let s0 = m.sensor(SensorId(0)).expect("sensor 0");
    s0.set_state(
        SensorState::Running,
        "a reason long enough to size the buffer",
    );
    let before = allocations();
    assert!(before > start, "the counter sees the registry being built");
    for i in 0..100_000u64 {
        let s = m.sensor(SensorId((i % 5) as u16)).expect("numbered sensor");
        s.reading(Quantity::ALL[(i % 7) as usize], i + 1);
        if i % 100 == 0 {
            s.error(SensorErrorKind::Crc);
            s.restarted();
            m.store.committed(100, Duration::from_micros(i));
            m.store.set_unsent(i, Some(Duration::from_millis(i)));
            m.store.set_bytes(i * 22);
        }
    }
    s0.set_state(SensorState::Degraded, "crc");
    assert_eq!(allocations() - before, 0);
    // The updates landed.
    assert_eq!(
        m.sensors().iter().map(|s| s.readings_total()).sum::<u64>(),
        100_000
    );
}
