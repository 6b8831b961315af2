//! The detector front end's firmware image running in `qemu-system-arm -machine
//! lm3s6965evb`, spoken to over its UART's pseudo-terminal with the protocol crate's
//! framing: boot, time sync, settings, resets (requested, and by the watchdog in the
//! fault-hooks build), rejection of line noise, and the line's capacity.
//!
//! Needs Debian's rustc-web, rust-web-src, binutils-arm-none-eabi and qemu-system-arm
//! (`cargo xtask test` installs them and builds both images first); without them the tests
//! skip, unless `ALOFT_REQUIRE_TOOLS=1` makes that a failure. Nothing here is timed: every
//! wait is for a message, bounded by a deadline generous for a loaded machine.

#![allow(clippy::unwrap_used)]

use std::time::{Duration, Instant};

use aloft_detector::line_budget;
use aloft_protocol::detector::{
    BootInfo, Command, FromFrontEnd, Housekeeping, MAX_FRAME_BYTES, Refusal, ReplyBody, ResetCause,
    ToFrontEnd, encode_frame,
};
use aloft_test_support::firmware::{FirmwareImage, FrontEndLine, Qemu, QemuOptions};

/// Bound of every wait: QEMU on a shared, loaded machine.
const PATIENCE: Duration = Duration::from_secs(30);

/// The tools the firmware's build and emulation need, or `None` (skip) when they are
/// missing and not required.
fn tools() -> Option<()> {
    let present = ["qemu-system-arm", "arm-none-eabi-ld"].iter().all(|tool| {
        std::process::Command::new(tool)
            .arg("--version")
            .output()
            .is_ok_and(|o| o.status.success())
    }) && std::path::Path::new("/usr/bin/rustc").exists();
    if present {
        return Some(());
    }
    if std::env::var("ALOFT_REQUIRE_TOOLS").as_deref() == Ok("1") {
        panic!(
            "qemu-system-arm, binutils-arm-none-eabi or rustc-web missing, and ALOFT_REQUIRE_TOOLS=1"
        );
    }
    eprintln!(
        "skipped: qemu-system-arm, binutils-arm-none-eabi or rustc-web missing (cargo xtask test installs them)"
    );
    None
}

/// The test's view of the line: every wait bounded by [`PATIENCE`], failures panic.
struct Line(FrontEndLine);

impl Line {
    fn open(qemu: &Qemu) -> Line {
        Line(FrontEndLine::open(qemu).unwrap())
    }

    fn next(&mut self, deadline: Instant) -> Option<FromFrontEnd> {
        self.0.next(deadline).unwrap()
    }

    fn until<T>(&mut self, what: &str, pick: impl FnMut(&FromFrontEnd) -> Option<T>) -> T {
        self.0.until(what, PATIENCE, pick).unwrap()
    }

    fn boot(&mut self) -> BootInfo {
        self.0.boot(PATIENCE).unwrap()
    }

    fn housekeeping(&mut self) -> Housekeeping {
        self.0.housekeeping(PATIENCE).unwrap()
    }

    /// The next housekeeping message and the one `intervals` after it.
    fn housekeeping_span(&mut self, intervals: u32) -> (Housekeeping, Housekeeping) {
        let first = self.housekeeping();
        let mut last = first;
        for _ in 0..intervals {
            last = self.housekeeping();
        }
        (first, last)
    }

    fn write(&mut self, bytes: &[u8]) {
        self.0.write(bytes).unwrap();
    }

    fn request(&mut self, command: Command) -> ReplyBody {
        self.0.request(command, PATIENCE).unwrap()
    }
}

fn start(options: QemuOptions) -> (Qemu, Line) {
    let image = FirmwareImage::build().unwrap();
    let qemu = Qemu::start_with(&image, options).unwrap();
    let line = Line::open(&qemu);
    (qemu, line)
}

#[test]
fn boots_at_power_on_with_count_one_and_its_clock() {
    let Some(()) = tools() else { return };
    let (_qemu, mut line) = start(QemuOptions::default());
    // Nothing precedes the boot message: the terminal was open before the CPU ran.
    let first = line
        .next(Instant::now() + PATIENCE)
        .expect("a first message");
    let FromFrontEnd::Boot(boot) = first else {
        panic!("the first message is not the boot message: {first:?}");
    };
    assert_eq!(boot.reset_cause, ResetCause::PowerOn);
    assert_eq!(boot.boot_count, 1);
    assert_eq!(
        boot.protocol_version,
        aloft_protocol::detector::DETECTOR_PROTOCOL_VERSION
    );
    assert_eq!(boot.tick_hz, 50_000_000);
    assert_eq!(boot.settings.baud, 115_200);
    assert_eq!(line.0.rejected, 0);
}

#[test]
fn pings_are_answered_with_increasing_ticks() {
    let Some(()) = tools() else { return };
    let (_qemu, mut line) = start(QemuOptions::default());
    line.boot();
    let mut previous = 0;
    for _ in 0..3 {
        let ReplyBody::Pong { ticks } = line.request(Command::Ping) else {
            panic!("a ping is answered with a pong");
        };
        assert!(ticks > previous, "{ticks} after {previous}");
        previous = ticks;
    }
}

/// Events counted over `intervals` housekeeping messages after the current one.
fn events_over(line: &mut Line, intervals: u32) -> (u32, u64) {
    let (start, end) = line.housekeeping_span(intervals);
    (
        end.events_total - start.events_total,
        end.ticks - start.ticks,
    )
}

#[test]
fn the_threshold_raises_and_lowers_the_event_rate() {
    let Some(()) = tools() else { return };
    let (_qemu, mut line) = start(QemuOptions::default());
    line.boot();
    let ReplyBody::Settings(settings) = line.request(Command::SetHousekeepingInterval { ms: 500 })
    else {
        panic!("settings are answered with the settings in force");
    };
    assert_eq!(settings.housekeeping_interval_ms, 500);

    // Low: single-photon noise (about 40 pulses a second a channel, mean 12 mV) passes.
    let ReplyBody::Settings(low) = line.request(Command::SetThreshold { mv: 5 }) else {
        panic!("the threshold is applied");
    };
    assert_eq!(low.threshold_mv, 5);
    let (low_events, low_ticks) = events_over(&mut line, 4);

    // High: above nearly every muon too.
    let ReplyBody::Settings(high) = line.request(Command::SetThreshold { mv: 1_000 }) else {
        panic!("the threshold is applied");
    };
    assert_eq!(high.threshold_mv, 1_000);
    let (high_events, high_ticks) = events_over(&mut line, 4);

    let low_rate = f64::from(low_events) * 50e6 / low_ticks as f64;
    let high_rate = f64::from(high_events) * 50e6 / high_ticks as f64;
    assert!(
        low_rate > 20.0 && high_rate < low_rate / 4.0,
        "{low_rate:.1} events/s at 5 mV, {high_rate:.1} at 1000 mV"
    );
    assert_eq!(
        line.request(Command::SetThreshold { mv: 0 }),
        ReplyBody::Refused(Refusal::OutOfRange)
    );
}

#[test]
fn a_reset_request_restarts_the_mcu_with_cause_software() {
    let Some(()) = tools() else { return };
    let (_qemu, mut line) = start(QemuOptions::default());
    assert_eq!(line.boot().boot_count, 1);
    assert_eq!(line.request(Command::Reset), ReplyBody::Resetting);
    let boot = line.boot();
    assert_eq!(boot.reset_cause, ResetCause::Software);
    assert_eq!(boot.boot_count, 2);
    // And once more: the count goes on.
    assert_eq!(line.request(Command::Reset), ReplyBody::Resetting);
    let boot = line.boot();
    assert_eq!(
        (boot.reset_cause, boot.boot_count),
        (ResetCause::Software, 3)
    );
}

#[test]
fn the_reset_pin_reads_as_external() {
    let Some(()) = tools() else { return };
    let (mut qemu, mut line) = start(QemuOptions::default());
    line.boot();
    qemu.press_reset().unwrap();
    let boot = line.boot();
    assert_eq!(
        (boot.reset_cause, boot.boot_count),
        (ResetCause::External, 2)
    );
}

#[test]
fn garbage_on_the_line_is_counted_and_the_next_request_answered() {
    let Some(()) = tools() else { return };
    let (_qemu, mut line) = start(QemuOptions::default());
    line.boot();
    // Three frames' worth of noise: bytes that are no valid frame, each run ended by a
    // delimiter, then one valid frame with a flipped bit.
    line.write(&[0x55, 0xAA, 0x13, 0x00]);
    line.write(&[0xFF; 40]);
    line.write(&[0x00]);
    let mut frame = [0u8; MAX_FRAME_BYTES];
    let len = encode_frame(
        &ToFrontEnd {
            id: 999,
            command: Command::Ping,
        },
        &mut frame,
    )
    .unwrap();
    frame[2] ^= 0x04;
    if frame[2] == 0 {
        frame[2] = 0x04;
    }
    line.write(&frame[..len]);
    assert!(matches!(
        line.request(Command::Ping),
        ReplyBody::Pong { .. }
    ));
    let counted = line.until("housekeeping counting the noise", |m| match m {
        FromFrontEnd::Housekeeping(h) if h.rejected_frames_total >= 3 => {
            Some(h.rejected_frames_total)
        }
        _ => None,
    });
    assert_eq!(counted, 3);
}

#[test]
fn the_normal_build_refuses_to_stall() {
    let Some(()) = tools() else { return };
    let (_qemu, mut line) = start(QemuOptions::default());
    line.boot();
    assert_eq!(
        line.request(Command::Stall),
        ReplyBody::Refused(Refusal::NotBuiltIn)
    );
    assert!(matches!(
        line.request(Command::Ping),
        ReplyBody::Pong { .. }
    ));
}

#[test]
fn a_stalled_main_loop_is_reset_by_the_watchdog_and_says_so() {
    let Some(()) = tools() else { return };
    let image = FirmwareImage::build_with_fault_hooks().unwrap();
    let qemu = Qemu::start(&image).unwrap();
    let mut line = Line::open(&qemu);
    assert_eq!(line.boot().boot_count, 1);
    assert_eq!(line.request(Command::Stall), ReplyBody::Resetting);
    let boot = line.boot();
    assert_eq!(
        (boot.reset_cause, boot.boot_count),
        (ResetCause::Watchdog, 2)
    );
    // The new start runs normally.
    assert!(matches!(
        line.request(Command::Ping),
        ReplyBody::Pong { .. }
    ));
}

#[test]
fn a_panic_resets_the_mcu_and_the_next_boot_says_watchdog() {
    let Some(()) = tools() else { return };
    let image = FirmwareImage::build_with_fault_hooks().unwrap();
    let options = QemuOptions {
        panic_at_first_boot: true,
        ..QemuOptions::default()
    };
    let qemu = Qemu::start_with(&image, options).unwrap();
    let mut line = Line::open(&qemu);
    // The first start panicked before its main loop sent anything.
    let first = line
        .next(Instant::now() + PATIENCE)
        .expect("a first message");
    let FromFrontEnd::Boot(boot) = first else {
        panic!("the first message is not a boot message: {first:?}");
    };
    assert_eq!(
        (boot.reset_cause, boot.boot_count),
        (ResetCause::Watchdog, 2)
    );
    assert!(matches!(
        line.request(Command::Ping),
        ReplyBody::Pong { .. }
    ));
}

/// Drops reported over `intervals` housekeeping messages at `rate` events a second.
fn drops_at(rate_per_s: u32, intervals: u32) -> (u32, u32) {
    let options = QemuOptions {
        muon_rate_mhz: Some(rate_per_s * 1_000),
        ..QemuOptions::default()
    };
    let (_qemu, mut line) = start(options);
    line.boot();
    // Past the first interval, whose queue may still be filling.
    line.housekeeping();
    let (first, last) = line.housekeeping_span(intervals);
    (
        last.dropped_events_total - first.dropped_events_total,
        last.events_total - first.events_total,
    )
}

#[test]
fn above_the_lines_capacity_events_are_dropped_and_below_none() {
    let Some(()) = tools() else { return };
    let budget = line_budget(115_200, 50_000_000, 1_000);
    let (dropped, events) = drops_at(budget.max_events_per_s * 2, 3);
    assert!(
        dropped > events / 4,
        "{dropped} of {events} dropped at twice the {} events/s the line carries",
        budget.max_events_per_s
    );
    // A quarter, not just under: the firmware samples when QEMU runs it, and a host that
    // stalls the emulator for a tenth of a second hands the front end that long's events
    // at once, which near the line's rate would overflow its queue.
    let (dropped, events) = drops_at(budget.max_events_per_s / 4, 3);
    assert!(events > 0);
    assert_eq!(
        dropped, 0,
        "{dropped} of {events} dropped at a quarter of the {} events/s the line carries",
        budget.max_events_per_s
    );
}
