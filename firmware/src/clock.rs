//! Time stamps: SysTick's 24-bit down-counter at the core clock, extended to 64-bit ticks
//! since start by counting its wraps in its interrupt.
//!
//! QEMU models SysTick (unlike the general-purpose timers, whose counters read 0 there), so
//! the same counter serves in emulation and on the part. It runs its full 24 bits, a wrap
//! every 0.34 s at 50 MHz: a shorter period loses wraps in QEMU when the host is slow to
//! run its timers (two wraps, one pending interrupt), which made time stamps run 17 % slow
//! at 1 ms on a loaded machine. The interrupt's 32-bit count of wraps would overflow after
//! 45 years; [`Ticks::now`] still carries each overflow into a 64-bit epoch.
//!
//! Invariant: [`Ticks::now`] never goes backwards: it re-reads when a wrap happened
//! between its reads of the wrap count and of the counter.

use core::sync::atomic::{AtomicU32, Ordering};

use cortex_m::peripheral::SYST;
use cortex_m::peripheral::syst::SystClkSource;
use cortex_m_rt::exception;

/// Ticks per wrap: the counter's full 24 bits.
const PERIOD: u32 = 1 << 24;

static WRAPS: AtomicU32 = AtomicU32::new(0);

#[exception]
fn SysTick() {
    WRAPS.fetch_add(1, Ordering::Relaxed);
}

/// The running tick counter (owns SysTick).
#[derive(Debug)]
pub struct Ticks {
    /// The wrap count at the previous [`Ticks::now`].
    last_wraps: u32,
    /// Wraps counted before the count last overflowed.
    epoch: u64,
}

impl Ticks {
    /// Starts SysTick on the core clock with its wrap interrupt.
    pub fn start(mut syst: SYST) -> Self {
        syst.set_clock_source(SystClkSource::Core);
        syst.set_reload(PERIOD - 1);
        syst.clear_current();
        syst.enable_interrupt();
        syst.enable_counter();
        Self {
            last_wraps: 0,
            epoch: 0,
        }
    }

    /// Ticks since [`Ticks::start`].
    pub fn now(&mut self) -> u64 {
        let (wraps, current) = loop {
            let before = WRAPS.load(Ordering::Acquire);
            let current = SYST::get_current();
            if WRAPS.load(Ordering::Acquire) == before {
                break (before, current);
            }
        };
        if wraps < self.last_wraps {
            self.epoch += 1 << 32;
        }
        self.last_wraps = wraps;
        (self.epoch + u64::from(wraps)) * u64::from(PERIOD) + u64::from(PERIOD - 1 - current)
    }
}
