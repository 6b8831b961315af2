//! The boot record: boot count and the cause of the next reset, kept across resets in the
//! last 32 bytes of SRAM, which no linker section covers (memory.x), so neither start-up
//! nor QEMU's reset clears it.
//!
//! The LM3S6965's reset-cause register (RESC) would say why the part started, but QEMU
//! never sets it; so the firmware writes down why it is about to reset (a requested reset,
//! a watchdog timeout) just before, and reads it at the next start. Power-on leaves SRAM
//! random: a record whose magic word or CRC-32 does not match is no record, and the start
//! counts as power-on with boot count 1.
//!
//! Invariant: after [`BootRecord::start`] the stored cause is "external", so a reset the
//! firmware did not cause itself (the reset pin, a debugger) reads as such.

use core::ptr::{addr_of_mut, read_volatile, write_volatile};

use aloft_protocol::detector::{ResetCause, crc32};

const MAGIC: u32 = 0xA10F_7B00;

const SOFTWARE: u32 = 1;
const WATCHDOG: u32 = 2;
const EXTERNAL: u32 = 3;

unsafe extern "C" {
    /// The record's words (memory.x): magic, boot count, cause, CRC-32 of the three.
    static mut _boot_record: [u32; 4];
}

fn words() -> *mut [u32; 4] {
    // Only the address is taken; every access is volatile and word-sized (a record torn by
    // a reset mid-write fails its CRC and reads as power-on).
    addr_of_mut!(_boot_record)
}

fn checksum(magic: u32, count: u32, cause: u32) -> u32 {
    let mut bytes = [0u8; 12];
    bytes[..4].copy_from_slice(&magic.to_le_bytes());
    bytes[4..8].copy_from_slice(&count.to_le_bytes());
    bytes[8..].copy_from_slice(&cause.to_le_bytes());
    crc32(&bytes)
}

fn read() -> Option<(u32, u32)> {
    let record = words() as *const u32;
    // SAFETY: the four words are reserved SRAM (memory.x), valid to read in any state.
    let [magic, count, cause, crc] =
        unsafe { core::array::from_fn(|i| read_volatile(record.add(i))) };
    (magic == MAGIC && crc == checksum(magic, count, cause)).then_some((count, cause))
}

fn write(count: u32, cause: u32) {
    let record = words() as *mut u32;
    let values = [MAGIC, count, cause, checksum(MAGIC, count, cause)];
    for (i, value) in values.into_iter().enumerate() {
        // SAFETY: the four words are reserved SRAM that only this module writes.
        unsafe { write_volatile(record.add(i), value) };
    }
}

/// This start's boot count and cause.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BootRecord {
    /// Starts since power-on, this one included.
    pub boot_count: u32,
    /// Why this start happened.
    pub reset_cause: ResetCause,
}

impl BootRecord {
    /// Reads what the previous run left, counts this start, and stores "external" as the
    /// cause of the next reset until the firmware records another.
    pub fn start() -> Self {
        let this = match read() {
            Some((count, cause)) => Self {
                boot_count: count.wrapping_add(1).max(1),
                reset_cause: match cause {
                    SOFTWARE => ResetCause::Software,
                    WATCHDOG => ResetCause::Watchdog,
                    _ => ResetCause::External,
                },
            },
            None => Self {
                boot_count: 1,
                reset_cause: ResetCause::PowerOn,
            },
        };
        write(this.boot_count, EXTERNAL);
        this
    }

    /// Records the cause of the reset about to happen.
    pub fn record_next(&self, cause: ResetCause) {
        let code = match cause {
            ResetCause::Software => SOFTWARE,
            ResetCause::Watchdog => WATCHDOG,
            ResetCause::External | ResetCause::PowerOn => EXTERNAL,
        };
        write(self.boot_count, code);
    }
}

/// Records `cause` for the next start without a [`BootRecord`] at hand (the watchdog's
/// interrupt, the panic handler), keeping the stored count.
pub fn record_cause(cause: ResetCause) {
    let count = read().map_or(1, |(count, _)| count);
    BootRecord {
        boot_count: count,
        reset_cause: cause,
    }
    .record_next(cause);
}
