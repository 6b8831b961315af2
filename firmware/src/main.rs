//! The detector front end's firmware for a TI Stellaris LM3S6965 (QEMU's `lm3s6965evb`):
//! the hardware glue and main loop around `aloft_detector::FrontEnd`, which holds all the
//! logic (discrimination, coincidence, batching, paced framing, request handling) and is
//! tested on the host.
//!
//! # Layout
//!
//! - [`board`]: the clock tree (50 MHz from the PLL) and the serial number.
//! - [`uart`]: UART0 (PL011) as a non-blocking `embedded-hal-nb` serial port.
//! - [`clock`]: SysTick extended to 64-bit ticks.
//! - [`watchdog`]: WDT0, whose first timeout records the cause of the reset its second
//!   timeout makes.
//! - [`boot_record`]: boot count and reset cause in SRAM that survives resets.
//! - [`strap`]: the emulated board's simulated muon rate.
//! - [`wakeup`]: timer 0A, waking the main loop every millisecond.
//! - [`interrupts`]: the part's interrupt vector table.
//!
//! # The main loop
//!
//! Each turn (every millisecond, woken by timer 0A, or at once when a byte arrives): kick
//! the watchdog, read the tick counter, hand every byte the UART received
//! to the front end, let it sample its pulses, move the bytes it releases (paced at the
//! configured baud, so the same path runs in QEMU, whose UART has no timing) into the
//! UART's transmit FIFO while there is room, and act on what it asks for: a reset
//! (`Command::Reset`, after the reply has left the FIFO) or, in the `fault-hooks` build, a
//! stall (`Command::Stall`: the loop stops kicking and the watchdog resets the part).
//!
//! Invariants: nothing in the loop waits on the UART; only the loop kicks the watchdog;
//! every reset the firmware makes records its cause first (a panic counts as a watchdog
//! reset: the main loop did not go on).

#![no_std]
#![no_main]

mod board;
mod boot_record;
mod clock;
mod interrupts;
mod strap;
mod uart;
mod wakeup;
mod watchdog;

use core::mem::MaybeUninit;

use aloft_detector::{
    Action, BootFacts, DetectorModel, FrontEnd, FrontEndConfig, SimulatedDetector,
};
use aloft_protocol::detector::{FirmwareVersion, ResetCause};
use cortex_m::peripheral::SCB;
use cortex_m_rt::entry;
use embedded_hal_nb::nb;
use embedded_hal_nb::serial::{Read, Write};

/// This firmware's version, from its Cargo.toml.
const FIRMWARE: FirmwareVersion = FirmwareVersion {
    major: parse_u8(env!("CARGO_PKG_VERSION_MAJOR")),
    minor: parse_u8(env!("CARGO_PKG_VERSION_MINOR")),
    patch: parse_u8(env!("CARGO_PKG_VERSION_PATCH")),
};

/// The watchdog's period: its interrupt after this long without a kick, the reset after
/// twice this. The loop turns in microseconds.
const WATCHDOG_PERIOD_TICKS: u32 = board::CLOCK_HZ / 2;

/// The baud rate UART0 runs at and the front end paces to.
const BAUD: u32 = 115_200;

const fn parse_u8(digits: &str) -> u8 {
    let bytes = digits.as_bytes();
    let mut value: u8 = 0;
    let mut i = 0;
    while i < bytes.len() {
        value = value * 10 + (bytes[i] - b'0');
        i += 1;
    }
    value
}

type Detector = FrontEnd<SimulatedDetector>;

#[entry]
fn main() -> ! {
    // cortex-m-rt hands this out as `&'static mut` once: the front end lives in .bss, so
    // the image's RAM figure counts it.
    static mut FRONT_END: MaybeUninit<Detector> = MaybeUninit::uninit();

    let boot = boot_record::BootRecord::start();
    board::init_clock();
    let Some(core) = cortex_m::Peripherals::take() else {
        panic!("the core peripherals were taken before main");
    };
    let mut ticks = clock::Ticks::start(core.SYST);
    let mut watchdog = watchdog::Watchdog::start(WATCHDOG_PERIOD_TICKS);
    let mut uart = uart::Uart0::new(board::CLOCK_HZ, BAUD);
    wakeup::start(board::CLOCK_HZ / 1_000);

    let serial = board::serial_number();
    let mut config = FrontEndConfig::new(serial, FIRMWARE, board::CLOCK_HZ);
    config.settings.baud = BAUD;
    config.fault_hook = cfg!(feature = "fault-hooks");
    let mut model = DetectorModel::default();
    if let Some(rate) = strap::muon_rate_mhz() {
        model.muon_rate_mhz = rate;
    }
    // Each start draws other pulses; a start is reproducible from serial and boot count.
    let source = SimulatedDetector::new(model, serial ^ u64::from(boot.boot_count));
    let facts = BootFacts {
        reset_cause: boot.reset_cause,
        boot_count: boot.boot_count,
    };
    let front_end = match FrontEnd::new(config, facts, source) {
        Ok(front_end) => FRONT_END.write(front_end),
        // The configuration is this file's constants: a refusal is a bug of this build.
        Err(e) => panic!("front end configuration refused: {e}"),
    };

    #[cfg(feature = "fault-hooks")]
    if boot.reset_cause == ResetCause::PowerOn && strap::panic_at_first_boot() {
        panic!("the fault strap's panic at the first start");
    }

    // A byte the front end released that the full FIFO did not take yet.
    let mut pending: Option<u8> = None;
    loop {
        watchdog.kick();
        let now = ticks.now();
        loop {
            match uart.read() {
                Ok(byte) => front_end.receive(byte, now),
                Err(nb::Error::WouldBlock) => break,
                // A damaged byte is left out: the frame it belonged to fails its CRC and
                // the front end counts it as rejected.
                Err(nb::Error::Other(_)) => {}
            }
        }
        front_end.poll(now);
        while let Some(byte) = pending.take().or_else(|| front_end.next_tx_byte(now)) {
            if uart.write(byte).is_err() {
                pending = Some(byte);
                break;
            }
        }
        match front_end.action() {
            Some(Action::Reset) if pending.is_none() => {
                reset_after_drain(&mut uart, &mut watchdog, &boot)
            }
            Some(Action::Stall) if pending.is_none() => stall(&mut uart),
            _ => {}
        }
        // Sleep until the next millisecond's wake-up or a received byte. With interrupts
        // masked, a byte arriving after the check still ends the `wfi` at once.
        cortex_m::interrupt::free(|_| {
            uart.wake_on_receive();
            if !uart.received() {
                cortex_m::asm::wfi();
            }
        });
    }
}

/// Lets the last reply leave the transmit FIFO, records "software" and resets.
fn reset_after_drain(
    uart: &mut uart::Uart0,
    watchdog: &mut watchdog::Watchdog,
    boot: &boot_record::BootRecord,
) -> ! {
    while let Err(nb::Error::WouldBlock) = uart.flush() {
        watchdog.kick();
    }
    boot.record_next(ResetCause::Software);
    SCB::sys_reset()
}

/// The fault hook: the loop stops (no more kicks), and the watchdog's first timeout
/// records its cause, its second resets the part.
fn stall(uart: &mut uart::Uart0) -> ! {
    let _ = nb::block!(uart.flush());
    loop {
        cortex_m::asm::wfi();
    }
}

#[panic_handler]
fn panic(_: &core::panic::PanicInfo<'_>) -> ! {
    boot_record::record_cause(ResetCause::Watchdog);
    SCB::sys_reset()
}
