//! The watchdog timer (WDT0 at 0x4000_0000), counting at the system clock.
//!
//! The first timeout raises the watchdog interrupt; the second, with the interrupt still
//! pending, resets the part (QEMU models both). The interrupt handler writes "watchdog" as
//! the cause of the coming reset into the boot record and masks itself, so the reset
//! follows one period later unless the main loop comes back and kicks in time; a late kick
//! clears the timeout, records "external" again and unmasks the interrupt.
//!
//! Invariant: once started the watchdog cannot be stopped (the part ignores writes to its
//! control register after the interrupt is enabled): only kicks keep the firmware alive.

use core::ptr::write_volatile;
use core::sync::atomic::{AtomicBool, Ordering};

use aloft_protocol::detector::ResetCause;
use cortex_m::peripheral::NVIC;

use crate::board::{SYSCTL_RCGC0, modify};
use crate::boot_record;
use crate::interrupts::Interrupt;

const WDT0: usize = 0x4000_0000;
const LOAD: *mut u32 = WDT0 as *mut u32;
const CTL: *mut u32 = (WDT0 + 0x008) as *mut u32;
const ICR: *mut u32 = (WDT0 + 0x00C) as *mut u32;
const CTL_INTEN: u32 = 1 << 0;
const CTL_RESEN: u32 = 1 << 1;

static TIMED_OUT: AtomicBool = AtomicBool::new(false);

/// The watchdog's interrupt handler, named in the vector table (interrupts.rs).
#[unsafe(no_mangle)]
extern "C" fn WATCHDOG() {
    boot_record::record_cause(ResetCause::Watchdog);
    TIMED_OUT.store(true, Ordering::Release);
    // The interrupt stays pending in the watchdog, which is what arms its reset: only the
    // NVIC line is masked, so the handler does not run again and again until then.
    NVIC::mask(Interrupt::Watchdog);
}

/// The running watchdog.
#[derive(Debug)]
pub struct Watchdog {
    _private: (),
}

impl Watchdog {
    /// Starts the watchdog with a `period_ticks` timeout (so the reset comes two periods
    /// after the last kick).
    pub fn start(period_ticks: u32) -> Self {
        // SAFETY: the watchdog's clock gate, its load and control registers, and its NVIC
        // line; nothing else uses them.
        unsafe {
            modify(SYSCTL_RCGC0, |v| v | (1 << 3));
            write_volatile(LOAD, period_ticks);
            write_volatile(ICR, 1);
            write_volatile(CTL, CTL_INTEN | CTL_RESEN);
            NVIC::unmask(Interrupt::Watchdog);
        }
        Self { _private: () }
    }

    /// Restarts the timeout. Call from the main loop only, so that a stalled loop stops
    /// kicking.
    pub fn kick(&mut self) {
        // SAFETY: writing ICR clears the timeout and reloads the counter.
        unsafe { write_volatile(ICR, 1) };
        if TIMED_OUT.swap(false, Ordering::AcqRel) {
            boot_record::record_cause(ResetCause::External);
            // SAFETY: the handler masked its own line; the timeout is cleared above.
            unsafe { NVIC::unmask(Interrupt::Watchdog) };
        }
    }
}
