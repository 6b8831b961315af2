//! Time stamps: SysTick's 24-bit down-counter at the core clock, extended to 64-bit ticks
//! since start by counting its wraps in its interrupt.
//!
//! QEMU models SysTick (unlike the general-purpose timers, whose counters read 0 there), so
//! the same counter serves in emulation and on the part. At 50 MHz it wraps every 0.34 s;
//! the count of wraps overflows after 2^32 of them, some 46 years.
//!
//! Invariant: [`Ticks::now`] never goes backwards: it re-reads when a wrap happened
//! between its reads of the wrap count and of the counter.

use core::sync::atomic::{AtomicU32, Ordering};

use cortex_m::peripheral::SYST;
use cortex_m::peripheral::syst::SystClkSource;
use cortex_m_rt::exception;

/// SysTick's reload: the counter's full 24 bits, so that a wrap is 2^24 ticks.
const RELOAD: u32 = 0x00FF_FFFF;

static WRAPS: AtomicU32 = AtomicU32::new(0);

#[exception]
fn SysTick() {
    WRAPS.fetch_add(1, Ordering::Relaxed);
}

/// The running tick counter (owns SysTick).
#[derive(Debug)]
pub struct Ticks {
    _private: (),
}

impl Ticks {
    /// Starts SysTick on the core clock with its wrap interrupt.
    pub fn start(mut syst: SYST) -> Self {
        syst.set_clock_source(SystClkSource::Core);
        syst.set_reload(RELOAD);
        syst.clear_current();
        syst.enable_interrupt();
        syst.enable_counter();
        Self { _private: () }
    }

    /// Ticks since [`Ticks::start`].
    pub fn now(&self) -> u64 {
        loop {
            let before = WRAPS.load(Ordering::Acquire);
            let current = SYST::get_current();
            let after = WRAPS.load(Ordering::Acquire);
            if before == after {
                return (u64::from(before) << 24) | u64::from(RELOAD - current);
            }
        }
    }
}
