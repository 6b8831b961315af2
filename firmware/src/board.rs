//! The LM3S6965's system control: the clock tree (50 MHz from the PLL and an 8 MHz
//! crystal, as on the evaluation board) and the factory-programmed identity.
//!
//! QEMU's model derives the system clock from RCC's SYSDIV alone (200 MHz / (SYSDIV + 1)),
//! so the same settings give 50 MHz both there and on the part.

use core::ptr::{read_volatile, write_volatile};

const SYSCTL: usize = 0x400F_E000;
const SYSCTL_RIS: *mut u32 = (SYSCTL + 0x050) as *mut u32;
const SYSCTL_RCC: *mut u32 = (SYSCTL + 0x060) as *mut u32;
/// Run-mode clock gating of the watchdog (bit 3) among others.
pub const SYSCTL_RCGC0: *mut u32 = (SYSCTL + 0x100) as *mut u32;
/// Run-mode clock gating of the UARTs (bit 0: UART0) among others.
pub const SYSCTL_RCGC1: *mut u32 = (SYSCTL + 0x104) as *mut u32;
/// Run-mode clock gating of the GPIO ports (bit 0: port A).
pub const SYSCTL_RCGC2: *mut u32 = (SYSCTL + 0x108) as *mut u32;
const SYSCTL_USER0: *const u32 = (SYSCTL + 0x1E0) as *const u32;
const SYSCTL_USER1: *const u32 = (SYSCTL + 0x1E4) as *const u32;

/// The system clock after [`init_clock`], Hz: the rate of SysTick, the watchdog and the
/// UART's baud generator.
pub const CLOCK_HZ: u32 = 50_000_000;

const RCC_MOSCDIS: u32 = 1 << 0;
const RCC_OSCSRC: u32 = 0b11 << 4;
const RCC_XTAL: u32 = 0xF << 6;
const RCC_XTAL_8MHZ: u32 = 0xE << 6;
const RCC_BYPASS: u32 = 1 << 11;
const RCC_OEN: u32 = 1 << 12;
const RCC_PWRDN: u32 = 1 << 13;
const RCC_USESYSDIV: u32 = 1 << 22;
const RCC_SYSDIV: u32 = 0xF << 23;
/// 200 MHz / (3 + 1) = 50 MHz.
const RCC_SYSDIV_50MHZ: u32 = 3 << 23;
const RIS_PLLLRIS: u32 = 1 << 6;

/// How long to wait for the PLL to lock, in polls of RIS (the datasheet's lock time is
/// 0.5 ms; this is several times that at the crystal's rate).
const PLL_LOCK_POLLS: u32 = 100_000;

/// Read-modify-write of a memory-mapped register.
///
/// # Safety
///
/// `register` must be a valid peripheral register that the caller alone changes.
pub unsafe fn modify(register: *mut u32, f: impl FnOnce(u32) -> u32) {
    // SAFETY: as the caller promises.
    unsafe { write_volatile(register, f(read_volatile(register))) };
}

/// Runs the core at [`CLOCK_HZ`] from the PLL, following the datasheet's order: bypass the
/// PLL, set crystal and divider, power the PLL, wait for its lock, then switch to it. A PLL
/// that never locks leaves the part on the crystal (time stamps then run slow, and the
/// watchdog late, but nothing stops).
pub fn init_clock() {
    // SAFETY: RCC and RIS of this part; nothing else touches the clock tree.
    unsafe {
        modify(SYSCTL_RCC, |v| (v | RCC_BYPASS) & !RCC_USESYSDIV);
        modify(SYSCTL_RCC, |v| {
            (v & !(RCC_XTAL | RCC_OSCSRC | RCC_PWRDN | RCC_OEN | RCC_MOSCDIS | RCC_SYSDIV))
                | RCC_XTAL_8MHZ
                | RCC_SYSDIV_50MHZ
                | RCC_USESYSDIV
        });
        let mut polls = 0;
        while read_volatile(SYSCTL_RIS) & RIS_PLLLRIS == 0 && polls < PLL_LOCK_POLLS {
            polls += 1;
        }
        if read_volatile(SYSCTL_RIS) & RIS_PLLLRIS != 0 {
            modify(SYSCTL_RCC, |v| v & !RCC_BYPASS);
        }
    }
}

/// The board's serial number: the MAC address programmed into USER0/USER1 at the factory
/// (three bytes in each register's low 24 bits), the only unique number this part has.
pub fn serial_number() -> u64 {
    // SAFETY: reading the user registers has no side effect.
    let (user0, user1) = unsafe { (read_volatile(SYSCTL_USER0), read_volatile(SYSCTL_USER1)) };
    (u64::from(user1 & 0x00FF_FFFF) << 24) | u64::from(user0 & 0x00FF_FFFF)
}
