//! The LM3S6965's interrupt vector table (datasheet table 2-9), as cortex-m-rt's
//! `device` feature expects it: handlers the firmware defines by name (device.x gives
//! every named one a default), the rest cortex-m-rt's `DefaultHandler`.

use cortex_m::interrupt::InterruptNumber;

/// The interrupts the firmware uses.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(u16)]
pub enum Interrupt {
    /// UART0: a received byte.
    Uart0 = 5,
    /// WDT0's first timeout.
    Watchdog = 18,
    /// General-purpose timer 0, timer A: the main loop's wake-up.
    Timer0A = 19,
}

// SAFETY: the numbers are the part's interrupt numbers, all below the table's length.
unsafe impl InterruptNumber for Interrupt {
    fn number(self) -> u16 {
        self as u16
    }
}

/// The part's 43 interrupt lines.
const LINES: usize = 43;

unsafe extern "C" {
    fn UART0();
    fn WATCHDOG();
    fn TIMER0A();
    fn DefaultHandler();
}

/// The table cortex-m-rt's link.x places after the exceptions.
#[unsafe(link_section = ".vector_table.interrupts")]
#[unsafe(no_mangle)]
pub static __INTERRUPTS: [unsafe extern "C" fn(); LINES] = {
    let mut table: [unsafe extern "C" fn(); LINES] = [DefaultHandler; LINES];
    table[Interrupt::Uart0 as usize] = UART0;
    table[Interrupt::Watchdog as usize] = WATCHDOG;
    table[Interrupt::Timer0A as usize] = TIMER0A;
    table
};
