//! The main loop's wake-up: general-purpose timer 0 (GPTM0 at 0x4003_0000), timer A as a
//! 32-bit periodic timer interrupting every millisecond, so that the loop sleeps (`wfi`)
//! between turns and still releases the paced output byte by byte.
//!
//! QEMU's model of the timer interrupts at its period (only reading its counter gives 0,
//! so time stamps come from SysTick, [`crate::clock`]). A late or lost wake-up delays a
//! turn and nothing else: no count depends on it.

use core::ptr::write_volatile;

use cortex_m::peripheral::NVIC;

use crate::board::{SYSCTL_RCGC1, modify};
use crate::interrupts::Interrupt;

const GPTM0: usize = 0x4003_0000;
const CFG: *mut u32 = GPTM0 as *mut u32;
const TAMR: *mut u32 = (GPTM0 + 0x004) as *mut u32;
const CTL: *mut u32 = (GPTM0 + 0x00C) as *mut u32;
const IMR: *mut u32 = (GPTM0 + 0x018) as *mut u32;
const ICR: *mut u32 = (GPTM0 + 0x024) as *mut u32;
const TAILR: *mut u32 = (GPTM0 + 0x028) as *mut u32;

const CFG_32_BIT: u32 = 0;
const TAMR_PERIODIC: u32 = 0x2;
const CTL_TAEN: u32 = 1 << 0;
/// Timer A's time-out interrupt.
const TATO: u32 = 1 << 0;

/// Timer 0A's interrupt handler, named in the vector table (interrupts.rs): it only wakes
/// the core.
#[unsafe(no_mangle)]
extern "C" fn TIMER0A() {
    // SAFETY: clearing timer A's time-out, which this module alone uses.
    unsafe { write_volatile(ICR, TATO) };
}

/// Starts the periodic wake-up every `period_ticks` of the system clock.
pub fn start(period_ticks: u32) {
    // SAFETY: timer 0's clock gate, its registers (disabled while configured, as the
    // datasheet requires) and its NVIC line; nothing else uses them.
    unsafe {
        modify(SYSCTL_RCGC1, |v| v | (1 << 16));
        write_volatile(CTL, 0);
        write_volatile(CFG, CFG_32_BIT);
        write_volatile(TAMR, TAMR_PERIODIC);
        write_volatile(TAILR, period_ticks - 1);
        write_volatile(ICR, TATO);
        write_volatile(IMR, TATO);
        write_volatile(CTL, CTL_TAEN);
        NVIC::unmask(Interrupt::Timer0A);
    }
}
