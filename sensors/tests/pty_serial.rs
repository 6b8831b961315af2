//! Simulated serial devices behind real pseudo-terminals, opened by path with
//! `serial::open` exactly as the agent opens a real port: ordering, pacing, every fault,
//! the host-to-device path and a clean stop.
//!
//! No fixed sleeps: every wait is for an event (a line, a counter) with a bounded timeout.

use std::io::Write;
use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

use aloft_sensors::flight::{FlightState, Scenario};
use aloft_sensors::gps::nmea::checksum;
use aloft_sensors::serial::pty::{Fault, PortCounters, PortOptions, SimulatedPort};
use aloft_sensors::serial::{self, LineError, LineReader, OpenError, Port, SerialDevice};

const FAST: u32 = 115_200;
const READ_TIMEOUT: Duration = Duration::from_millis(500);
/// Bound of every wait: generous for a loaded 2-core machine, never reached when it works.
const PATIENCE: Duration = Duration::from_secs(10);

/// Emits `$SIMLN,<n>*hh` lines, one every `interval_s` of simulated time.
struct NumberedLines {
    baud: u32,
    interval_s: f64,
    next: u64,
}

impl NumberedLines {
    fn new(baud: u32, interval_s: f64) -> Self {
        NumberedLines {
            baud,
            interval_s,
            next: 0,
        }
    }
}

impl SerialDevice for NumberedLines {
    fn baud(&self) -> u32 {
        self.baud
    }

    fn tick(&mut self, state: &FlightState, out: &mut Vec<u8>) {
        while self.next as f64 * self.interval_s <= state.t_s {
            let body = format!("SIMLN,{}", self.next);
            let line = format!("${body}*{:02X}\r\n", checksum(body.as_bytes()));
            out.extend_from_slice(line.as_bytes());
            self.next += 1;
        }
    }

    fn receive(&mut self, _: &[u8], _: &mut Vec<u8>) {}
}

/// Answers every byte the host writes with the same byte.
struct Echo;

impl SerialDevice for Echo {
    fn baud(&self) -> u32 {
        FAST
    }

    fn tick(&mut self, _: &FlightState, _: &mut Vec<u8>) {}

    fn receive(&mut self, bytes: &[u8], out: &mut Vec<u8>) {
        out.extend_from_slice(bytes);
    }
}

/// Why a line is not a valid numbered line.
#[derive(Debug, PartialEq)]
enum Bad {
    NoChecksum,
    Checksum,
    Shape,
}

fn parse(line: &[u8]) -> Result<u64, Bad> {
    let text = std::str::from_utf8(line).map_err(|_| Bad::Shape)?;
    let body = text.strip_prefix('$').ok_or(Bad::Shape)?;
    let (body, sum) = body.split_once('*').ok_or(Bad::NoChecksum)?;
    let sum = u8::from_str_radix(sum, 16).map_err(|_| Bad::NoChecksum)?;
    if checksum(body.as_bytes()) != sum {
        return Err(Bad::Checksum);
    }
    body.strip_prefix("SIMLN,")
        .and_then(|n| n.parse().ok())
        .ok_or(Bad::Shape)
}

/// What the reader saw, line by line.
#[derive(Debug, PartialEq)]
enum Seen {
    Valid(u64),
    Invalid(Vec<u8>, Bad),
    TooLong,
    Timeout,
}

fn next_seen(reader: &mut LineReader<Port>) -> Seen {
    match reader.read_line() {
        Ok(line) => match parse(line) {
            Ok(n) => Seen::Valid(n),
            Err(bad) => Seen::Invalid(line.to_vec(), bad),
        },
        Err(LineError::TooLong { .. }) => Seen::TooLong,
        Err(LineError::Timeout) => Seen::Timeout,
        Err(e) => panic!("unexpected {e}"),
    }
}

fn spawn(device: impl SerialDevice + 'static, options: PortOptions) -> SimulatedPort {
    let scenario = Arc::new(Scenario::new(1, 1_700_000_000_000_000_000));
    match SimulatedPort::spawn(device, scenario, options) {
        Ok(port) => port,
        Err(e) => panic!("cannot spawn the simulated port: {e}"),
    }
}

fn open_reader(path: &Path, baud: u32) -> LineReader<Port> {
    match serial::open(path, baud, READ_TIMEOUT) {
        Ok(port) => LineReader::new(port, 82),
        Err(e) => panic!("{e}"),
    }
}

fn current_path(port: &SimulatedPort) -> std::path::PathBuf {
    match port.path() {
        Some(path) => path,
        None => panic!("the simulated port has no pty"),
    }
}

/// Reads until a valid line (the first one may have been cut by opening mid-stream).
fn sync(reader: &mut LineReader<Port>) -> u64 {
    let deadline = Instant::now() + PATIENCE;
    while Instant::now() < deadline {
        if let Seen::Valid(n) = next_seen(reader) {
            return n;
        }
    }
    panic!("no valid line within {PATIENCE:?}");
}

/// Reads `count` more lines (timeouts not counted), bounded by [`PATIENCE`].
fn read_lines(reader: &mut LineReader<Port>, count: usize) -> Vec<Seen> {
    let deadline = Instant::now() + PATIENCE;
    let mut seen = Vec::new();
    while seen.len() < count && Instant::now() < deadline {
        match next_seen(reader) {
            Seen::Timeout => {}
            other => seen.push(other),
        }
    }
    assert_eq!(seen.len(), count, "lines within {PATIENCE:?}: {seen:?}");
    seen
}

fn wait_for(
    port: &SimulatedPort,
    what: &str,
    done: impl FnMut(&PortCounters) -> bool,
) -> PortCounters {
    match port.wait_for(PATIENCE, done) {
        Some(counters) => counters,
        None => panic!("{what} did not happen: {:?}", port.counters()),
    }
}

#[test]
fn lines_arrive_complete_and_in_order() {
    let sim = spawn(
        NumberedLines::new(FAST, 0.005),
        PortOptions::new().speed(2.0),
    );
    let mut reader = open_reader(&current_path(&sim), FAST);
    let first = sync(&mut reader);
    let seen = read_lines(&mut reader, 200);
    let expected: Vec<Seen> = (first + 1..=first + 200).map(Seen::Valid).collect();
    assert_eq!(seen, expected);
    let counters = sim.counters();
    assert_eq!(counters.bytes_overrun, 0);
    assert_eq!(counters.bytes_lost_to_faults, 0);
}

#[test]
fn pacing_never_exceeds_the_baud_rate_and_fills_a_saturated_line() {
    // 9600 baud carries 960 bytes/s; the device emits about twice that.
    let sim = spawn(NumberedLines::new(9_600, 0.01), PortOptions::new());
    let mut reader = open_reader(&current_path(&sim), 9_600);
    let first = sync(&mut reader);
    let seen = read_lines(&mut reader, 30);
    let expected: Vec<Seen> = (first + 1..=first + 30).map(Seen::Valid).collect();
    assert_eq!(seen, expected, "a slow line delays lines, never loses them");

    let counters = sim.counters();
    let capacity = counters.line_live_ns as f64 * 1e-9 * 960.0;
    let sent = counters.bytes_transmitted() as f64;
    assert!(sent <= capacity + 1.0, "sent {sent} > capacity {capacity}");
    assert!(
        sent >= 0.95 * capacity - counters.max_burst_bytes as f64 - 20.0,
        "a saturated line idled: sent {sent} of {capacity}"
    );
    assert!(
        counters.bytes_emitted as f64 > sent,
        "the device outran its line"
    );
    assert!(counters.max_burst_bytes <= 20);
}

#[test]
fn injected_garbage_shows_up_and_the_reader_resyncs() {
    let sim = spawn(NumberedLines::new(FAST, 0.01), PortOptions::new());
    let mut reader = open_reader(&current_path(&sim), FAST);
    sync(&mut reader);
    let garbage = b"\xffGARBAGE\x00\r\nprefix~".to_vec();
    let long_noise = vec![b'x'; 300];
    assert!(sim.inject(Fault::Garbage(garbage.clone())).is_ok());
    assert!(sim.inject(Fault::Garbage(long_noise)).is_ok());
    wait_for(&sim, "garbage", |c| {
        c.garbage_bytes == (garbage.len() + 300) as u64
    });

    let seen = read_lines(&mut reader, 40);
    assert!(
        seen.contains(&Seen::Invalid(b"\xffGARBAGE\x00".to_vec(), Bad::Shape)),
        "{seen:?}"
    );
    let too_long = seen.iter().position(|s| *s == Seen::TooLong);
    let Some(too_long) = too_long else {
        panic!("no over-long line: {seen:?}")
    };
    // After the noise: numbered lines again, in order.
    let after: Vec<u64> = seen[too_long + 1..]
        .iter()
        .filter_map(|s| match s {
            Seen::Valid(n) => Some(*n),
            _ => None,
        })
        .collect();
    assert!(after.len() >= 30, "{seen:?}");
    assert!(after.windows(2).all(|w| w[1] == w[0] + 1), "{after:?}");
}

#[test]
fn a_corrupted_line_fails_its_checksum_and_only_that_one() {
    let sim = spawn(NumberedLines::new(FAST, 0.01), PortOptions::new());
    let mut reader = open_reader(&current_path(&sim), FAST);
    let first = sync(&mut reader);
    assert!(sim.inject(Fault::CorruptNextLine).is_ok());
    wait_for(&sim, "corruption", |c| c.lines_corrupted == 1);
    let seen = read_lines(&mut reader, 30);
    let bad: Vec<&Seen> = seen
        .iter()
        .filter(|s| !matches!(s, Seen::Valid(_)))
        .collect();
    assert_eq!(bad.len(), 1, "{seen:?}");
    assert!(
        matches!(bad[0], Seen::Invalid(line, Bad::Checksum | Bad::NoChecksum | Bad::Shape) if line.starts_with(b"$"))
    );
    // The corrupted line kept its place: one number is missing, the rest are in order.
    let valid: Vec<u64> = seen
        .iter()
        .filter_map(|s| {
            if let Seen::Valid(n) = s {
                Some(*n)
            } else {
                None
            }
        })
        .collect();
    assert_eq!(valid.len(), 29);
    assert_eq!(valid.last().copied(), Some(first + 30));
}

#[test]
fn a_truncated_line_is_detected_by_its_missing_checksum() {
    let sim = spawn(NumberedLines::new(FAST, 0.01), PortOptions::new());
    let mut reader = open_reader(&current_path(&sim), FAST);
    sync(&mut reader);
    assert!(sim.inject(Fault::TruncateNextLine).is_ok());
    wait_for(&sim, "truncation", |c| c.lines_truncated == 1);
    let seen = read_lines(&mut reader, 20);
    let truncated: Vec<&Seen> = seen
        .iter()
        .filter(|s| !matches!(s, Seen::Valid(_)))
        .collect();
    assert_eq!(truncated.len(), 1, "{seen:?}");
    let Seen::Invalid(line, Bad::NoChecksum) = truncated[0] else {
        panic!("{truncated:?}")
    };
    assert!(line.starts_with(b"$SIM") && line.len() < 12, "{line:?}");
}

#[test]
fn a_stall_times_the_reader_out_and_then_current_lines_resume() {
    let sim = spawn(NumberedLines::new(FAST, 0.01), PortOptions::new());
    let mut reader = open_reader(&current_path(&sim), FAST);
    reader
        .get_mut()
        .set_read_timeout(Duration::from_millis(150));
    let before = sync(&mut reader);
    assert!(sim.inject(Fault::Stall(Duration::from_millis(600))).is_ok());
    let deadline = Instant::now() + PATIENCE;
    let mut timed_out = false;
    let mut resumed = None;
    while Instant::now() < deadline && resumed.is_none() {
        match next_seen(&mut reader) {
            Seen::Timeout => timed_out = true,
            Seen::Valid(n) if timed_out => resumed = Some(n),
            _ => {}
        }
    }
    assert!(timed_out, "the line never went silent");
    let Some(resumed) = resumed else {
        panic!("lines never resumed")
    };
    // The device kept running: what it said during the stall is gone.
    assert!(resumed > before + 10, "{before} -> {resumed}");
    let counters = sim.counters();
    assert_eq!(counters.stalls, 1);
    assert!(counters.bytes_lost_to_faults > 0);
}

#[test]
fn vanish_disconnects_the_reader_and_the_symlink_leads_to_the_new_pty() {
    let Ok(dir) = tempfile::tempdir() else {
        panic!("no temp dir")
    };
    let link = dir.path().join("usb-Aloft_Simulated_GNSS-if00");
    let sim = spawn(
        NumberedLines::new(FAST, 0.01),
        PortOptions::new().symlink(&link),
    );
    let old_path = current_path(&sim);
    assert_eq!(std::fs::read_link(&link).ok(), Some(old_path.clone()));
    let mut reader = open_reader(&link, FAST);
    sync(&mut reader);

    assert!(
        sim.inject(Fault::Vanish(Duration::from_millis(1_500)))
            .is_ok()
    );
    let deadline = Instant::now() + PATIENCE;
    let outcome = loop {
        match reader.read_line() {
            Err(LineError::Disconnected) => break Ok(()),
            Err(e @ (LineError::Io { .. } | LineError::TooLong { .. })) => break Err(e),
            _ if Instant::now() > deadline => break Err(LineError::Timeout),
            _ => {}
        }
    };
    assert_eq!(outcome, Ok(()));
    drop(reader);

    wait_for(&sim, "the vanish", |c| c.vanishes == 1);
    // The path is published before the link moves back: if it is still gone after we
    // looked at the link, the link was looked at while the device was away.
    let link_seen = std::fs::symlink_metadata(&link).is_ok();
    if sim.path().is_none() {
        assert!(!link_seen, "the symlink outlived the device");
        let e = serial::open(&link, FAST, READ_TIMEOUT);
        assert!(
            matches!(e, Err(OpenError::NotFound { .. })) || sim.path().is_some(),
            "{e:?}"
        );
    }

    let counters = wait_for(&sim, "the reappearance", |c| c.reappearances == 1);
    assert_eq!(counters.vanishes, 1);
    let new_path = current_path(&sim);
    assert_eq!(std::fs::read_link(&link).ok(), Some(new_path));
    let mut reader = open_reader(&link, FAST);
    let first = sync(&mut reader);
    let seen = read_lines(&mut reader, 10);
    assert_eq!(
        seen,
        (first + 1..=first + 10)
            .map(Seen::Valid)
            .collect::<Vec<_>>()
    );
}

#[test]
fn host_writes_reach_the_device_and_its_answers_come_back() {
    let sim = spawn(Echo, PortOptions::new());
    let mut reader = open_reader(&current_path(&sim), FAST);
    let mut total = 0;
    for n in 0..5 {
        let sentence = format!("$PING,{n}*00\r\n");
        assert!(reader.get_mut().write_all(sentence.as_bytes()).is_ok());
        total += sentence.len() as u64;
        let deadline = Instant::now() + PATIENCE;
        let answer = loop {
            match reader.read_line() {
                Ok(line) => break line.to_vec(),
                Err(LineError::Timeout) if Instant::now() < deadline => {}
                Err(e) => panic!("{e}"),
            }
        };
        assert_eq!(answer, sentence.trim_end().as_bytes());
    }
    // The answer can reach us before the harness publishes its counters: wait for them.
    let counters = wait_for(&sim, "the accounting", |c| c.bytes_received >= total);
    assert_eq!(counters.bytes_received, total);
    assert_eq!(counters.bytes_emitted, total);
}

#[test]
fn a_second_open_of_a_held_port_is_busy() {
    let sim = spawn(Echo, PortOptions::new());
    let path = current_path(&sim);
    let first = serial::open(&path, FAST, READ_TIMEOUT);
    assert!(first.is_ok(), "{first:?}");
    let second = serial::open(&path, FAST, READ_TIMEOUT);
    let Err(OpenError::Busy { path: named }) = second else {
        panic!("{second:?}")
    };
    assert_eq!(named, path);
}

#[test]
fn stop_joins_the_thread_removes_the_symlink_and_hangs_up_the_reader() {
    let Ok(dir) = tempfile::tempdir() else {
        panic!("no temp dir")
    };
    let link = dir.path().join("usb-Aloft_Simulated-if00");
    let sim = spawn(
        NumberedLines::new(FAST, 0.01),
        PortOptions::new().symlink(&link),
    );
    let mut reader = open_reader(&link, FAST);
    sync(&mut reader);
    let counters = sim.stop();
    let Ok(counters) = counters else {
        panic!("{counters:?}")
    };
    assert!(counters.bytes_written > 0);
    assert!(
        std::fs::symlink_metadata(&link).is_err(),
        "symlink left behind"
    );
    let deadline = Instant::now() + PATIENCE;
    loop {
        match reader.read_line() {
            Err(LineError::Disconnected) => break,
            _ if Instant::now() > deadline => panic!("the reader never saw the hang-up"),
            _ => {}
        }
    }

    // Dropping without stop cleans up the same way.
    let sim = spawn(Echo, PortOptions::new().symlink(&link));
    assert!(std::fs::symlink_metadata(&link).is_ok());
    drop(sim);
    assert!(
        std::fs::symlink_metadata(&link).is_err(),
        "symlink left behind on drop"
    );
}

#[test]
fn every_byte_is_accounted_for_through_a_mix_of_faults() {
    let sim = spawn(
        NumberedLines::new(9_600, 0.01),
        PortOptions::new().max_backlog(300),
    );
    let mut reader = open_reader(&current_path(&sim), 9_600);
    sync(&mut reader);
    for fault in [
        Fault::Garbage(b"noise".to_vec()),
        Fault::TruncateNextLine,
        Fault::CorruptNextLine,
        Fault::Stall(Duration::from_millis(50)),
    ] {
        assert!(sim.inject(fault).is_ok());
    }
    // The device emits twice what 9600 baud carries: the small backlog overruns.
    wait_for(&sim, "faults and an overrun", |c| {
        c.stalls == 1 && c.lines_truncated == 1 && c.lines_corrupted == 1 && c.bytes_overrun > 0
    });
    assert!(sim.inject(Fault::Vanish(Duration::from_millis(50))).is_ok());
    wait_for(&sim, "the reappearance", |c| c.reappearances == 1);
    let Ok(counters) = sim.stop() else {
        panic!("stop failed")
    };
    assert!(counters.balances(), "{counters:?}");
    assert_eq!(counters.garbage_bytes, 5);
    assert!(counters.bytes_truncated > 0 && counters.bytes_lost_to_faults > 0);
}
