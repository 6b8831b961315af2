//! The emulated board's simulation strap: two words after the boot record (memory.x) that
//! QEMU's generic loader writes before the CPU starts
//! (`-device loader,addr=0x2000fff0,data=…,data-len=8`), setting the simulated detector's
//! muon rate for a run. Tests and the bench raise the rate with it past what the line
//! carries, which the physical default (about 3 muons a second) never does.
//!
//! On the part, and in QEMU without the loader, the words hold whatever SRAM held: only
//! the magic word in the low half makes them a strap, and a rate above
//! [`MAX_MUON_RATE_MHZ`] is ignored, so the default model applies.

use core::ptr::{addr_of, read_volatile};

/// The strap's magic word ("SIM" and a version).
pub const MAGIC: u32 = 0x5349_4D01;

/// The highest muon rate a strap may set, mHz (100 000 events a second, far past any line).
pub const MAX_MUON_RATE_MHZ: u32 = 100_000_000;

unsafe extern "C" {
    /// The strap's words (memory.x): magic, muon rate in mHz.
    static _simulation_strap: [u32; 2];
}

/// The muon rate the strap sets, mHz, if a strap is present.
pub fn muon_rate_mhz() -> Option<u32> {
    let words = addr_of!(_simulation_strap) as *const u32;
    // SAFETY: the two words are reserved SRAM (memory.x), valid to read in any state.
    let [magic, rate] = unsafe { [read_volatile(words), read_volatile(words.add(1))] };
    (magic == MAGIC && rate <= MAX_MUON_RATE_MHZ).then_some(rate)
}
