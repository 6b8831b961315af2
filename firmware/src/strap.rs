//! The emulated board's simulation strap: two words after the boot record (memory.x) that
//! QEMU's generic loader writes before the CPU starts
//! (`-device loader,addr=0x2000fff0,data=…,data-len=8`), setting the simulated detector's
//! muon rate for a run. Tests and the bench raise the rate with it past what the line
//! carries, which the physical default (about 3 muons a second) never does.
//!
//! On the part, and in QEMU without the loader, the words hold whatever SRAM held: only
//! the magic word in the low half makes them a strap, and a rate above
//! [`MAX_MUON_RATE_MHZ`] is ignored, so the default model applies.
//!
//! The two words after it are the fault strap, read only by the `fault-hooks` build: with
//! [`PANIC_MAGIC`] and [`PANIC_AT_FIRST_BOOT`], the first start after power-on panics
//! before its main loop, so a test sees what the panic handler does (the next boot says
//! "watchdog").

use core::ptr::{addr_of, read_volatile};

/// The strap's magic word ("SIM" and a version).
pub const MAGIC: u32 = 0x5349_4D01;

/// The highest muon rate a strap may set, mHz (100 000 events a second, far past any line).
pub const MAX_MUON_RATE_MHZ: u32 = 100_000_000;

/// The fault strap's magic word ("FLT" and a version).
#[cfg(feature = "fault-hooks")]
pub const PANIC_MAGIC: u32 = 0x464C_5401;

/// The fault strap's code for a panic in the first start after power-on.
#[cfg(feature = "fault-hooks")]
pub const PANIC_AT_FIRST_BOOT: u32 = 1;

unsafe extern "C" {
    /// The strap's words (memory.x): magic, muon rate in mHz, then the fault strap's
    /// magic and code.
    static _simulation_strap: [u32; 4];
}

/// The muon rate the strap sets, mHz, if a strap is present.
pub fn muon_rate_mhz() -> Option<u32> {
    let words = addr_of!(_simulation_strap) as *const u32;
    // SAFETY: the two words are reserved SRAM (memory.x), valid to read in any state.
    let [magic, rate] = unsafe { [read_volatile(words), read_volatile(words.add(1))] };
    (magic == MAGIC && rate <= MAX_MUON_RATE_MHZ).then_some(rate)
}

/// Whether the fault strap asks this start (the first after power-on) to panic.
#[cfg(feature = "fault-hooks")]
pub fn panic_at_first_boot() -> bool {
    let words = addr_of!(_simulation_strap) as *const u32;
    // SAFETY: the words are reserved SRAM (memory.x), valid to read in any state.
    let [magic, code] = unsafe { [read_volatile(words.add(2)), read_volatile(words.add(3))] };
    magic == PANIC_MAGIC && code == PANIC_AT_FIRST_BOOT
}
