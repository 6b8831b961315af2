//! The simulated detector front end over a real pseudo-terminal, opened with
//! `serial::open` as the agent opens the MCU's UART, and spoken to with the protocol's own
//! encoder and decoder: boot, requests, events and housekeeping, its own resets (software
//! and watchdog), and every fault it can be given.
//!
//! No fixed sleeps: every wait is for a frame or a status, with a bounded deadline.

#![allow(clippy::unwrap_used)]

use std::collections::VecDeque;
use std::io::{ErrorKind, Read, Write};
use std::time::{Duration, Instant};

use aloft_detector::DetectorModel;
use aloft_protocol::detector::{
    Command, DetectorSettings, FrameDecoder, FromFrontEnd, MAX_FRAME_BYTES, Refusal, ReplyBody,
    ResetCause, ToFrontEnd, encode_frame,
};
use aloft_sensors::frontend::{FrontEndOptions, RunState, SimulatedFrontEnd};
use aloft_sensors::serial::{self, Port};

/// Bound of every wait: generous for a loaded 2-core machine, never reached when it works.
const PATIENCE: Duration = Duration::from_secs(10);

/// The agent's end of the line.
struct Client {
    port: Port,
    decoder: FrameDecoder,
    messages: VecDeque<FromFrontEnd>,
    rejected: usize,
}

impl Client {
    fn open(front_end: &SimulatedFrontEnd) -> Self {
        let path = front_end.path().unwrap();
        let baud = front_end.status().settings.baud;
        let port = serial::open(&path, baud, Duration::from_millis(50)).unwrap();
        Self {
            port,
            decoder: FrameDecoder::new(),
            messages: VecDeque::new(),
            rejected: 0,
        }
    }

    fn send(&mut self, id: u16, command: Command) {
        let mut out = [0u8; MAX_FRAME_BYTES];
        let len = encode_frame(&ToFrontEnd { id, command }, &mut out).unwrap();
        self.port.write_all(&out[..len]).unwrap();
    }

    /// Reads what has arrived (waiting at most the port's timeout).
    fn read(&mut self) {
        let mut chunk = [0u8; 512];
        match self.port.read(&mut chunk) {
            Ok(n) => {
                for &byte in &chunk[..n] {
                    match self.decoder.push::<FromFrontEnd>(byte) {
                        Some(Ok(message)) => self.messages.push_back(message),
                        Some(Err(_)) => self.rejected += 1,
                        None => {}
                    }
                }
            }
            Err(e) if matches!(e.kind(), ErrorKind::TimedOut | ErrorKind::WouldBlock) => {}
            Err(e) => panic!("reading the front end: {e}"),
        }
    }

    /// The next message for which `pick` says yes (earlier ones are dropped).
    fn wait_for<T>(&mut self, what: &str, mut pick: impl FnMut(&FromFrontEnd) -> Option<T>) -> T {
        let deadline = Instant::now() + PATIENCE;
        loop {
            while let Some(message) = self.messages.pop_front() {
                if let Some(found) = pick(&message) {
                    return found;
                }
            }
            assert!(Instant::now() < deadline, "no {what} within {PATIENCE:?}");
            self.read();
        }
    }

    fn reply(&mut self, id: u16) -> ReplyBody {
        self.wait_for(&format!("reply {id}"), |m| match m {
            FromFrontEnd::Reply(r) if r.id == id => Some(r.body),
            _ => None,
        })
    }

    fn ask(&mut self, id: u16, command: Command) -> ReplyBody {
        self.send(id, command);
        self.reply(id)
    }

    fn boot(&mut self) -> (ResetCause, u32) {
        self.wait_for("boot", |m| match m {
            FromFrontEnd::Boot(b) => Some((b.reset_cause, b.boot_count)),
            _ => None,
        })
    }

    fn housekeeping(&mut self) -> aloft_protocol::detector::Housekeeping {
        self.wait_for("housekeeping", |m| match m {
            FromFrontEnd::Housekeeping(h) => Some(*h),
            _ => None,
        })
    }
}

fn options(seed: u64) -> FrontEndOptions {
    FrontEndOptions::new(0xD37EC7, seed).settings(DetectorSettings {
        threshold_mv: 30,
        coincidence_window_ns: 100,
        housekeeping_interval_ms: 200,
        baud: 115_200,
    })
}

#[test]
fn it_boots_answers_and_streams_events_and_housekeeping() {
    let front_end = SimulatedFrontEnd::spawn(options(1)).unwrap();
    let mut client = Client::open(&front_end);
    // The first boot went out before anyone listened, as on a real line: power-cycle.
    front_end.power_cycle().unwrap();
    assert_eq!(client.boot(), (ResetCause::PowerOn, 1));
    let ReplyBody::Pong { ticks } = client.ask(1, Command::Ping) else {
        panic!("not a pong")
    };
    assert!(ticks > 0);
    let ReplyBody::Pong { ticks: later } = client.ask(2, Command::Ping) else {
        panic!("not a pong")
    };
    assert!(later > ticks, "the counter runs");
    let batch = client.wait_for("events", |m| match m {
        FromFrontEnd::Events(b) => Some(b.clone()),
        _ => None,
    });
    assert!(!batch.events.is_empty());
    let hk = client.housekeeping();
    // 200 ms of a 12 MHz counter, as the harness's ticks (every 10 ms) round it up.
    assert!(
        (2_400_000..3_600_000).contains(&hk.interval_ticks),
        "{}",
        hk.interval_ticks
    );
    assert_eq!(client.rejected, 0);
    assert_eq!(
        client.ask(3, Command::SetThreshold { mv: 2 }),
        ReplyBody::Refused(Refusal::OutOfRange)
    );
    assert_eq!(
        client.ask(4, Command::SetThreshold { mv: 45 }),
        ReplyBody::Settings(DetectorSettings {
            threshold_mv: 45,
            ..options(1).config.settings
        })
    );
    assert_eq!(front_end.status().settings.threshold_mv, 45);
    front_end.stop().unwrap();
}

#[test]
fn a_reset_request_restarts_it_with_a_higher_boot_count() {
    let front_end = SimulatedFrontEnd::spawn(options(2)).unwrap();
    let mut client = Client::open(&front_end);
    assert_eq!(client.ask(1, Command::Reset), ReplyBody::Resetting);
    assert_eq!(client.boot(), (ResetCause::Software, 2));
    assert_eq!(client.ask(2, Command::Reset), ReplyBody::Resetting);
    assert_eq!(client.boot(), (ResetCause::Software, 3));
    let status = front_end.status();
    assert_eq!(status.starts, 3);
    // A power cycle clears what resets keep.
    front_end.power_cycle().unwrap();
    assert_eq!(client.boot(), (ResetCause::PowerOn, 1));
    front_end.stop().unwrap();
}

#[test]
fn a_stall_is_refused_without_the_fault_hook() {
    let front_end = SimulatedFrontEnd::spawn(options(3)).unwrap();
    let mut client = Client::open(&front_end);
    assert_eq!(
        client.ask(1, Command::Stall),
        ReplyBody::Refused(Refusal::NotBuiltIn)
    );
    assert!(matches!(
        client.ask(2, Command::Ping),
        ReplyBody::Pong { .. }
    ));
    assert_eq!(front_end.status().state, RunState::Running);
    front_end.stop().unwrap();
}

#[test]
fn a_stalled_loop_is_reset_by_the_watchdog_and_says_so() {
    let options = options(4)
        .fault_hook(true)
        .watchdog_timeout(Duration::from_millis(300));
    let front_end = SimulatedFrontEnd::spawn(options).unwrap();
    let mut client = Client::open(&front_end);
    assert_eq!(client.ask(1, Command::Stall), ReplyBody::Resetting);
    let stalled = front_end.wait_for(PATIENCE, |s| s.state == RunState::Stalled);
    assert!(stalled.is_some(), "{:?}", front_end.status());
    // Requests meanwhile are lost: the main loop does not read the UART.
    client.send(2, Command::Ping);
    let boot = client.wait_for("the watchdog's boot", |m| match m {
        FromFrontEnd::Reply(r) if r.id == 2 => panic!("a stalled loop answered: {r:?}"),
        FromFrontEnd::Boot(b) => Some((b.reset_cause, b.boot_count)),
        _ => None,
    });
    assert_eq!(boot, (ResetCause::Watchdog, 2));
    assert!(matches!(
        client.ask(3, Command::Ping),
        ReplyBody::Pong { .. }
    ));
    front_end.stop().unwrap();
}

#[test]
fn garbage_on_either_side_is_rejected_and_reading_goes_on() {
    let front_end = SimulatedFrontEnd::spawn(options(5)).unwrap();
    let mut client = Client::open(&front_end);
    assert!(matches!(
        client.ask(1, Command::Ping),
        ReplyBody::Pong { .. }
    ));
    // Toward the agent: a corrupt frame between real ones.
    front_end
        .inject_bytes(vec![0x07, 0xAA, 0xBB, 0xCC, 0xDD, 0xEE, 0x00])
        .unwrap();
    let deadline = Instant::now() + PATIENCE;
    while client.rejected == 0 {
        assert!(
            Instant::now() < deadline,
            "the injected frame never arrived"
        );
        client.read();
    }
    assert!(matches!(
        client.ask(2, Command::Ping),
        ReplyBody::Pong { .. }
    ));
    // Toward the front end: counted as rejected, not answered, the next request is.
    client.port.write_all(&[0x03, 0x11, 0x22, 0x00]).unwrap();
    client.send(3, Command::GetSettings);
    assert!(matches!(client.reply(3), ReplyBody::Settings(_)));
    let hk = client.wait_for("housekeeping with the rejected frame", |m| match m {
        FromFrontEnd::Housekeeping(h) if h.rejected_frames_total > 0 => Some(*h),
        _ => None,
    });
    assert_eq!(hk.rejected_frames_total, 1);
    assert_eq!(front_end.status().counters.rejected_frames_total, 1);
    front_end.stop().unwrap();
}

#[test]
fn an_unplugged_front_end_comes_back_on_a_new_pty() {
    let front_end = SimulatedFrontEnd::spawn(options(6)).unwrap();
    let first = front_end.path().unwrap();
    front_end.unplug(Duration::from_millis(300)).unwrap();
    let deadline = Instant::now() + PATIENCE;
    while front_end.path().is_some_and(|p| p == first) {
        assert!(Instant::now() < deadline, "never vanished");
        std::thread::yield_now();
    }
    let deadline = Instant::now() + PATIENCE;
    while front_end.path().is_none() {
        assert!(Instant::now() < deadline, "never came back");
        std::thread::yield_now();
    }
    let mut client = Client::open(&front_end);
    assert!(matches!(
        client.ask(1, Command::Ping),
        ReplyBody::Pong { .. }
    ));
    // Unplugging the adapter does not reset the MCU.
    assert_eq!(front_end.status().starts, 1);
    front_end.stop().unwrap();
}

#[test]
fn a_hung_front_end_answers_nothing_until_power_cycled() {
    let front_end = SimulatedFrontEnd::spawn(options(7)).unwrap();
    let mut client = Client::open(&front_end);
    front_end.hang().unwrap();
    assert!(
        front_end
            .wait_for(PATIENCE, |s| s.state == RunState::Hung)
            .is_some()
    );
    // What was on the line when it hung still arrives; then nothing.
    let read_for = |client: &mut Client, ms| {
        let until = Instant::now() + Duration::from_millis(ms);
        while Instant::now() < until {
            client.read();
        }
    };
    read_for(&mut client, 100);
    client.messages.clear();
    client.send(1, Command::Ping);
    // At least two housekeeping intervals (200 ms) without a frame.
    read_for(&mut client, 400);
    assert!(client.messages.is_empty(), "{:?}", client.messages);
    front_end.power_cycle().unwrap();
    assert_eq!(client.boot(), (ResetCause::PowerOn, 1));
    assert!(matches!(
        client.ask(2, Command::Ping),
        ReplyBody::Pong { .. }
    ));
    front_end.stop().unwrap();
}

#[test]
fn raising_the_threshold_over_the_line_lowers_the_event_rate() {
    let mut model = DetectorModel::default();
    // More pulses, so that a second shows the difference plainly.
    model.singles_rate_mhz = 400_000;
    let front_end = SimulatedFrontEnd::spawn(options(8).model(model)).unwrap();
    let mut client = Client::open(&front_end);
    let rate = |client: &mut Client| {
        // Five housekeeping intervals: one second.
        (0..5)
            .map(|_| {
                let hk = client.housekeeping();
                hk.hits_a + hk.hits_b
            })
            .sum::<u32>()
    };
    client.housekeeping();
    let low = rate(&mut client);
    assert!(matches!(
        client.ask(1, Command::SetThreshold { mv: 80 }),
        ReplyBody::Settings(_)
    ));
    client.housekeeping();
    let high = rate(&mut client);
    assert!(
        high * 4 < low,
        "{low} hits a second at 30 mV, {high} at 80 mV"
    );
    front_end.stop().unwrap();
}
