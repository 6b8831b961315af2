#![no_std]
#![no_main]

mod board;
mod boot_record;
mod clock;
mod interrupts;
mod uart;
mod watchdog;

use aloft_protocol::detector::{
    BootInfo, DETECTOR_PROTOCOL_VERSION, DetectorSettings, FirmwareVersion, FromFrontEnd,
    MAX_FRAME_BYTES, encode_frame,
};
use cortex_m_rt::entry;
use embedded_hal_nb::serial::Write;

#[entry]
fn main() -> ! {
    let boot = boot_record::BootRecord::start();
    board::init_clock();
    let Some(core) = cortex_m::Peripherals::take() else {
        panic!("core peripherals taken twice");
    };
    let ticks = clock::Ticks::start(core.SYST);
    let mut dog = watchdog::Watchdog::start(board::CLOCK_HZ / 2);
    let mut uart = uart::Uart0::new(board::CLOCK_HZ, 115_200);
    let info = FromFrontEnd::Boot(BootInfo {
        firmware: FirmwareVersion { major: 0, minor: 1, patch: 0 },
        protocol_version: DETECTOR_PROTOCOL_VERSION,
        reset_cause: boot.reset_cause,
        boot_count: boot.boot_count,
        serial: board::serial_number(),
        tick_hz: board::CLOCK_HZ,
        settings: DetectorSettings { threshold_mv: 40, coincidence_window_ns: 200, housekeeping_interval_ms: 1000, baud: 115_200 },
    });
    let mut frame = [0u8; MAX_FRAME_BYTES];
    let len = encode_frame(&info, &mut frame).unwrap_or(0);
    let mut sent = 0;
    loop {
        dog.kick();
        if sent < len && uart.write(frame[sent]).is_ok() {
            sent += 1;
        }
        let _ = ticks.now();
    }
}

#[panic_handler]
fn panic(_: &core::panic::PanicInfo<'_>) -> ! {
    boot_record::record_cause(aloft_protocol::detector::ResetCause::Watchdog);
    cortex_m::peripheral::SCB::sys_reset()
}
