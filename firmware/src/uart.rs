//! UART0 of the LM3S6965, an ARM PL011 at 0x4000_C000: 8 data bits, no parity, one stop
//! bit, FIFOs on, as a non-blocking `embedded-hal-nb` serial port.
//!
//! Invariants: neither direction ever waits. [`Write::write`] answers `WouldBlock` when the
//! transmit FIFO is full and [`Read::read`] when the receive FIFO is empty; the caller's
//! main loop comes back later. A received byte with a framing, parity, break or overrun
//! error is returned as [`UartError`], so the frame it belonged to fails its CRC and is
//! counted by the protocol layer.

use core::ptr::{read_volatile, write_volatile};

use embedded_hal_nb::nb;
use embedded_hal_nb::serial::{self, ErrorKind, ErrorType, Read, Write};

use crate::board::{SYSCTL_RCGC1, SYSCTL_RCGC2, modify};

const BASE: usize = 0x4000_C000;
const DR: usize = 0x000;
const FR: usize = 0x018;
const IBRD: usize = 0x024;
const FBRD: usize = 0x028;
const LCRH: usize = 0x02C;
const CTL: usize = 0x030;
const IM: usize = 0x038;

const FR_RXFE: u32 = 1 << 4;
const FR_TXFF: u32 = 1 << 5;
const FR_BUSY: u32 = 1 << 3;
const LCRH_FEN: u32 = 1 << 4;
const LCRH_WLEN_8: u32 = 0b11 << 5;
const CTL_UARTEN: u32 = 1 << 0;
const CTL_TXE: u32 = 1 << 8;
const CTL_RXE: u32 = 1 << 9;
/// Receive (FIFO level) and receive time-out interrupts.
const IM_RX: u32 = (1 << 4) | (1 << 6);

/// DR's error bits: overrun, break, parity, framing.
const DR_OE: u32 = 1 << 11;
const DR_BE: u32 = 1 << 10;
const DR_PE: u32 = 1 << 9;
const DR_FE: u32 = 1 << 8;

const GPIOA: usize = 0x4000_4000;
const GPIO_AFSEL: usize = 0x420;
const GPIO_DEN: usize = 0x51C;

/// UART0 on PA0 (receive) and PA1 (transmit).
#[derive(Debug)]
pub struct Uart0 {
    _private: (),
}

/// A byte that arrived damaged.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum UartError {
    /// The receive FIFO was full and a byte was lost.
    Overrun,
    /// The line was held low for longer than a character.
    Break,
    /// The parity bit did not match.
    Parity,
    /// No valid stop bit.
    Framing,
}

impl serial::Error for UartError {
    fn kind(&self) -> ErrorKind {
        match self {
            Self::Overrun => ErrorKind::Overrun,
            Self::Break | Self::Framing => ErrorKind::FrameFormat,
            Self::Parity => ErrorKind::Parity,
        }
    }
}

fn reg(offset: usize) -> *mut u32 {
    (BASE + offset) as *mut u32
}

impl Uart0 {
    /// Clocks UART0 and GPIO port A, hands PA0/PA1 to the UART, and enables it at `baud`
    /// from a `clock_hz` system clock.
    pub fn new(clock_hz: u32, baud: u32) -> Self {
        // SAFETY: the system control and GPIO A registers of this part; only the bits of
        // UART0 and of PA0/PA1 change.
        unsafe {
            modify(SYSCTL_RCGC1, |v| v | 1);
            modify(SYSCTL_RCGC2, |v| v | 1);
            modify((GPIOA + GPIO_AFSEL) as *mut u32, |v| v | 0b11);
            modify((GPIOA + GPIO_DEN) as *mut u32, |v| v | 0b11);
        }
        // The baud-rate divisor in 1/64ths: clock / (16 * baud).
        let divisor_64 = ((u64::from(clock_hz) * 4 + u64::from(baud) / 2) / u64::from(baud)) as u32;
        // SAFETY: UART0's registers, owned by this driver alone; it is disabled while its
        // line settings change, as the PL011 requires.
        unsafe {
            write_volatile(reg(CTL), 0);
            write_volatile(reg(IBRD), divisor_64 >> 6);
            write_volatile(reg(FBRD), divisor_64 & 0x3F);
            write_volatile(reg(LCRH), LCRH_WLEN_8 | LCRH_FEN);
            write_volatile(reg(CTL), CTL_UARTEN | CTL_TXE | CTL_RXE);
            cortex_m::peripheral::NVIC::unmask(crate::interrupts::Interrupt::Uart0);
        }
        Self { _private: () }
    }

    /// Whether a received byte waits in the FIFO.
    pub fn received(&self) -> bool {
        self.flags() & FR_RXFE == 0
    }

    /// Lets a received byte raise UART0's interrupt, which wakes the core from `wfi` (its
    /// handler masks it again).
    pub fn wake_on_receive(&mut self) {
        // SAFETY: UART0's interrupt mask, owned by this driver and its handler.
        unsafe { write_volatile(reg(IM), IM_RX) };
    }

    fn flags(&self) -> u32 {
        // SAFETY: reading UART0's flag register has no side effect.
        unsafe { read_volatile(reg(FR)) }
    }
}

/// UART0's interrupt handler, named in the vector table (interrupts.rs): the interrupt only
/// wakes the core; the main loop reads the FIFO.
#[unsafe(no_mangle)]
extern "C" fn UART0() {
    // SAFETY: masking UART0's interrupts; the main loop unmasks them before it sleeps.
    unsafe { write_volatile(reg(IM), 0) };
}

impl ErrorType for Uart0 {
    type Error = UartError;
}

impl Read<u8> for Uart0 {
    fn read(&mut self) -> nb::Result<u8, UartError> {
        if self.flags() & FR_RXFE != 0 {
            return Err(nb::Error::WouldBlock);
        }
        // SAFETY: reading DR pops one byte of the receive FIFO, which this driver owns.
        let word = unsafe { read_volatile(reg(DR)) };
        let error = if word & DR_OE != 0 {
            Some(UartError::Overrun)
        } else if word & DR_BE != 0 {
            Some(UartError::Break)
        } else if word & DR_PE != 0 {
            Some(UartError::Parity)
        } else if word & DR_FE != 0 {
            Some(UartError::Framing)
        } else {
            None
        };
        match error {
            Some(e) => Err(nb::Error::Other(e)),
            None => Ok(word as u8),
        }
    }
}

impl Write<u8> for Uart0 {
    fn write(&mut self, byte: u8) -> nb::Result<(), UartError> {
        if self.flags() & FR_TXFF != 0 {
            return Err(nb::Error::WouldBlock);
        }
        // SAFETY: writing DR pushes one byte into the transmit FIFO, which has room.
        unsafe { write_volatile(reg(DR), u32::from(byte)) };
        Ok(())
    }

    fn flush(&mut self) -> nb::Result<(), UartError> {
        if self.flags() & FR_BUSY != 0 {
            return Err(nb::Error::WouldBlock);
        }
        Ok(())
    }
}
