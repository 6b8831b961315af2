//! The front end driven as the firmware drives it: ticks, received bytes, polls and drained
//! output, with what goes out decoded by the protocol's own decoder.

#![allow(clippy::unwrap_used)]

use std::collections::VecDeque;

use aloft_detector::frontend::{
    EVENT_QUEUE_BATCHES, HOUSEKEEPING_MS_MAX, HOUSEKEEPING_MS_MIN, THRESHOLD_MV_MAX,
    THRESHOLD_MV_MIN, WINDOW_NS_MAX, WINDOW_NS_MIN,
};
use aloft_detector::{
    Action, BootFacts, Channel, DetectorModel, FrontEnd, FrontEndConfig, Pulse, PulseSource,
    SimulatedDetector, line_budget,
};
use aloft_protocol::detector::{
    BootInfo, Channels, Command, DETECTOR_PROTOCOL_VERSION, Event, EventBatch, FirmwareVersion,
    FrameDecoder, FromFrontEnd, Housekeeping, MAX_BATCH_EVENTS, MAX_FRAME_BYTES, Refusal, Reply,
    ReplyBody, ResetCause, ToFrontEnd, encode_frame,
};
use proptest::prelude::*;

const TICK_HZ: u32 = 1_000_000;
const FIRMWARE: FirmwareVersion = FirmwareVersion {
    major: 1,
    minor: 2,
    patch: 3,
};

/// Pulses given in advance.
#[derive(Debug, Default)]
struct Scripted {
    pulses: VecDeque<Pulse>,
}

impl Scripted {
    fn new(pulses: &[(u64, Channel, u16)]) -> Self {
        Self {
            pulses: pulses
                .iter()
                .map(|&(at_ns, channel, height_mv)| Pulse {
                    at_ns,
                    channel,
                    height_mv,
                })
                .collect(),
        }
    }
}

impl PulseSource for Scripted {
    fn next_pulse(&mut self, until_ns: u64) -> Option<Pulse> {
        if self.pulses.front()?.at_ns < until_ns {
            self.pulses.pop_front()
        } else {
            None
        }
    }

    fn temperature_centi_c(&mut self, _now_ns: u64) -> i16 {
        2_150
    }
}

/// Coincident pulses (200 mV on both, B 10 ns after A) every `period_ns`.
#[derive(Debug)]
struct Regular {
    period_ns: u64,
    next_ns: u64,
    b_due: bool,
}

impl PulseSource for Regular {
    fn next_pulse(&mut self, until_ns: u64) -> Option<Pulse> {
        let (at_ns, channel) = if self.b_due {
            (self.next_ns + 10, Channel::B)
        } else {
            (self.next_ns, Channel::A)
        };
        if at_ns >= until_ns {
            return None;
        }
        if self.b_due {
            self.next_ns += self.period_ns;
        }
        self.b_due = !self.b_due;
        Some(Pulse {
            at_ns,
            channel,
            height_mv: 200,
        })
    }

    fn temperature_centi_c(&mut self, _now_ns: u64) -> i16 {
        2_000
    }
}

fn config() -> FrontEndConfig {
    FrontEndConfig::new(0xA10F7, FIRMWARE, TICK_HZ)
}

fn power_on() -> BootFacts {
    BootFacts {
        reset_cause: ResetCause::PowerOn,
        boot_count: 1,
    }
}

fn frame(request: &ToFrontEnd) -> Vec<u8> {
    let mut out = [0u8; MAX_FRAME_BYTES];
    let len = encode_frame(request, &mut out).unwrap();
    out[..len].to_vec()
}

/// A front end, its clock, and the agent's end of the line.
struct Bench<S> {
    front_end: FrontEnd<S>,
    now: u64,
    decoder: FrameDecoder,
    received: Vec<FromFrontEnd>,
    bad_frames: usize,
    /// Each byte handed out, with the tick it was handed out at.
    bytes: Vec<(u64, u8)>,
    /// The ticks at which the output was drained.
    drains: Vec<u64>,
}

impl<S: PulseSource> Bench<S> {
    fn new(config: FrontEndConfig, source: S) -> Self {
        Self {
            front_end: FrontEnd::new(config, power_on(), source).unwrap(),
            now: 0,
            decoder: FrameDecoder::new(),
            received: Vec::new(),
            bad_frames: 0,
            bytes: Vec::new(),
            // The line starts at tick 0: counting from there bounds the total too.
            drains: vec![0],
        }
    }

    fn drain(&mut self) {
        self.drains.push(self.now);
        while let Some(byte) = self.front_end.next_tx_byte(self.now) {
            self.bytes.push((self.now, byte));
            match self.decoder.push::<FromFrontEnd>(byte) {
                Some(Ok(message)) => self.received.push(message),
                Some(Err(_)) => self.bad_frames += 1,
                None => {}
            }
        }
    }

    /// Runs the main loop every `step` ticks until `until`.
    fn run_until(&mut self, until: u64, step: u64) {
        while self.now < until {
            self.now = (self.now + step).min(until);
            self.front_end.poll(self.now);
            self.drain();
        }
    }

    fn send_bytes(&mut self, bytes: &[u8]) {
        for &b in bytes {
            self.front_end.receive(b, self.now);
        }
    }

    fn send(&mut self, id: u16, command: Command) {
        self.send_bytes(&frame(&ToFrontEnd { id, command }));
    }

    fn replies(&self) -> Vec<Reply> {
        self.received
            .iter()
            .filter_map(|m| match m {
                FromFrontEnd::Reply(r) => Some(*r),
                _ => None,
            })
            .collect()
    }

    fn batches(&self) -> Vec<EventBatch> {
        self.received
            .iter()
            .filter_map(|m| match m {
                FromFrontEnd::Events(b) => Some(b.clone()),
                _ => None,
            })
            .collect()
    }

    fn housekeeping(&self) -> Vec<Housekeeping> {
        self.received
            .iter()
            .filter_map(|m| match m {
                FromFrontEnd::Housekeeping(h) => Some(*h),
                _ => None,
            })
            .collect()
    }

    /// Sends one request and runs until its reply came.
    fn ask(&mut self, id: u16, command: Command) -> ReplyBody {
        self.send(id, command);
        let deadline = self.now + u64::from(TICK_HZ);
        while self.now < deadline {
            if let Some(reply) = self.replies().iter().find(|r| r.id == id) {
                return reply.body;
            }
            self.run_until(self.now + 1_000, 1_000);
        }
        panic!("no reply to request {id} ({command:?})");
    }
}

fn simulated(seed: u64) -> SimulatedDetector {
    SimulatedDetector::new(DetectorModel::default(), seed)
}

#[test]
fn the_boot_message_comes_first_and_says_who_and_why() {
    let mut bench = Bench::new(
        config(),
        Scripted::new(&[(1_000, Channel::A, 100), (1_020, Channel::B, 90)]),
    );
    bench.send(1, Command::Ping);
    bench.run_until(500_000, 1_000);
    assert_eq!(
        bench.received[0],
        FromFrontEnd::Boot(BootInfo {
            firmware: FIRMWARE,
            protocol_version: DETECTOR_PROTOCOL_VERSION,
            reset_cause: ResetCause::PowerOn,
            boot_count: 1,
            serial: 0xA10F7,
            tick_hz: TICK_HZ,
            settings: config().settings,
        })
    );
    assert!(matches!(bench.received[1], FromFrontEnd::Reply(_)));
    assert_eq!(bench.bad_frames, 0);
}

#[test]
fn the_same_seed_sends_the_same_bytes_and_another_seed_does_not() {
    let run = |seed| {
        let mut bench = Bench::new(config(), simulated(seed));
        bench.run_until(20 * u64::from(TICK_HZ), 5_000);
        bench.bytes.iter().map(|&(_, b)| b).collect::<Vec<u8>>()
    };
    let first = run(9);
    assert!(first.len() > 1_000);
    assert_eq!(first, run(9));
    assert_ne!(first, run(10));
}

#[test]
fn raising_the_threshold_lowers_the_event_rate() {
    let events_at = |threshold_mv| {
        let mut config = config();
        config.settings.threshold_mv = threshold_mv;
        let mut bench = Bench::new(config, simulated(4));
        bench.run_until(60 * u64::from(TICK_HZ), 10_000);
        bench.front_end.counters().events_total
    };
    let rates: Vec<u32> = [10, 30, 60, 90, 120].into_iter().map(events_at).collect();
    assert!(rates.windows(2).all(|w| w[0] > w[1]), "{rates:?}");
    // At 10 mV the singles dominate (2 × 40/s × e^(−10/12)); at 120 mV only the muons'
    // Landau tail is left (3/s × ~10 %).
    assert!(rates[0] > 60 * 30, "{rates:?}");
    assert!(rates[4] < 60 * 2, "{rates:?}");
}

#[test]
fn the_threshold_request_changes_the_rate_at_once() {
    let mut bench = Bench::new(config(), simulated(8));
    bench.run_until(30 * u64::from(TICK_HZ), 10_000);
    let low = bench.front_end.counters().events_total;
    assert_eq!(
        bench.ask(1, Command::SetThreshold { mv: 100 }),
        ReplyBody::Settings(aloft_protocol::detector::DetectorSettings {
            threshold_mv: 100,
            ..config().settings
        })
    );
    let before = bench.front_end.counters().events_total;
    bench.run_until(bench.now + 30 * u64::from(TICK_HZ), 10_000);
    let high = bench.front_end.counters().events_total - before;
    assert!(high * 3 < low, "{low} events at 30 mV, {high} at 100 mV");
}

#[test]
fn coincidence_window_pairs_channels_and_dead_time_hides_the_next_hit() {
    let mut config = config();
    config.settings.coincidence_window_ns = 100;
    config.dead_time_ns = 1_000;
    let source = Scripted::new(&[
        // A and B 50 ns apart: one coincident event.
        (10_000, Channel::A, 120),
        (10_050, Channel::B, 110),
        // A again 30 ns later: same pulse train, same event.
        (10_080, Channel::A, 300),
        // Below the threshold: not a hit.
        (50_000, Channel::B, 29),
        // B 150 ns after A: outside the window, and dead (window + 1 µs): lost.
        (100_000, Channel::A, 60),
        (100_150, Channel::B, 70),
        // B 1.2 µs after A: outside window and dead time, its own event.
        (200_000, Channel::A, 61),
        (201_200, Channel::B, 71),
    ]);
    let mut bench = Bench::new(config, source);
    bench.run_until(1_500_000, 1_000);
    let batches = bench.batches();
    assert_eq!(batches.len(), 1, "{batches:?}");
    let batch = &batches[0];
    assert_eq!(batch.first_event, 0);
    assert_eq!(batch.first_ticks, 10);
    let events: Vec<Event> = batch.events.iter().copied().collect();
    let event = |delta_ticks, channels, pulse_a_mv, pulse_b_mv| Event {
        delta_ticks,
        channels,
        pulse_a_mv,
        pulse_b_mv,
    };
    assert_eq!(
        events,
        [
            event(0, Channels::BOTH, 120, 110),
            event(90, Channels::A, 60, 0),
            event(100, Channels::A, 61, 0),
            event(1, Channels::B, 0, 71),
        ]
    );
    let c = bench.front_end.counters();
    assert_eq!(
        (
            c.events_total,
            c.hits_in_dead_time,
            c.pulses_below_threshold
        ),
        (4, 1, 1)
    );
    let hk = bench.housekeeping();
    assert_eq!(hk.len(), 1);
    assert_eq!((hk[0].hits_a, hk[0].hits_b, hk[0].coincidences), (3, 2, 1));
    // Four events, each dead for window + dead time = 1.1 µs = 1.1 ticks: 4.4 → 4 ticks.
    assert_eq!(hk[0].dead_ticks, 4);
    assert_eq!(hk[0].interval_ticks, 1_000_000);
    assert_eq!(hk[0].temperature_centi_c, 2_150);
    assert_eq!(hk[0].events_total, 4);
}

#[test]
fn a_batch_waits_at_most_its_latency() {
    let source = Scripted::new(&[(1_000, Channel::A, 100)]);
    let mut bench = Bench::new(config(), source);
    bench.run_until(100_000, 1_000);
    assert!(bench.batches().is_empty());
    bench.run_until(105_000, 1_000);
    assert_eq!(bench.batches().len(), 1);
}

#[test]
fn every_command_is_answered() {
    let mut config = config();
    config.settings.threshold_mv = 40;
    let mut bench = Bench::new(config, simulated(1));
    bench.run_until(10_000, 1_000);
    let settings = |threshold_mv, coincidence_window_ns, housekeeping_interval_ms| {
        ReplyBody::Settings(aloft_protocol::detector::DetectorSettings {
            threshold_mv,
            coincidence_window_ns,
            housekeeping_interval_ms,
            baud: 115_200,
        })
    };
    let at = bench.now;
    assert_eq!(bench.ask(1, Command::Ping), ReplyBody::Pong { ticks: at });
    assert_eq!(bench.ask(2, Command::GetSettings), settings(40, 100, 1_000));
    let out_of_range = ReplyBody::Refused(Refusal::OutOfRange);
    for (id, mv, ok) in [
        (3, THRESHOLD_MV_MIN - 1, false),
        (4, THRESHOLD_MV_MAX + 1, false),
        (5, THRESHOLD_MV_MAX, true),
        (6, THRESHOLD_MV_MIN, true),
    ] {
        let want = if ok {
            settings(mv, 100, 1_000)
        } else {
            out_of_range
        };
        assert_eq!(bench.ask(id, Command::SetThreshold { mv }), want, "{mv} mV");
    }
    for (id, ns, ok) in [
        (7, WINDOW_NS_MIN - 1, false),
        (8, WINDOW_NS_MAX + 1, false),
        (9, WINDOW_NS_MAX, true),
        (10, WINDOW_NS_MIN, true),
    ] {
        let want = if ok {
            settings(5, ns, 1_000)
        } else {
            out_of_range
        };
        assert_eq!(
            bench.ask(id, Command::SetCoincidenceWindow { ns }),
            want,
            "{ns} ns"
        );
    }
    for (id, ms, ok) in [
        (11, HOUSEKEEPING_MS_MIN - 1, false),
        (12, HOUSEKEEPING_MS_MAX + 1, false),
        (13, HOUSEKEEPING_MS_MAX, true),
        (14, HOUSEKEEPING_MS_MIN, true),
    ] {
        let want = if ok {
            settings(5, 10, ms)
        } else {
            out_of_range
        };
        assert_eq!(
            bench.ask(id, Command::SetHousekeepingInterval { ms }),
            want,
            "{ms} ms"
        );
    }
    assert_eq!(
        bench.ask(15, Command::Stall),
        ReplyBody::Refused(Refusal::NotBuiltIn)
    );
    assert_eq!(bench.front_end.action(), None);
    assert_eq!(bench.ask(16, Command::Reset), ReplyBody::Resetting);
    assert_eq!(bench.front_end.action(), Some(Action::Reset));
    assert_eq!(bench.front_end.counters().requests_answered, 16);
}

#[test]
fn a_new_housekeeping_interval_takes_effect() {
    let mut bench = Bench::new(config(), simulated(2));
    bench.ask(1, Command::SetHousekeepingInterval { ms: 200 });
    let from = bench.housekeeping().len();
    bench.run_until(bench.now + 2 * u64::from(TICK_HZ), 1_000);
    let hk = bench.housekeeping();
    assert!((9..=11).contains(&(hk.len() - from)), "{}", hk.len() - from);
    assert_eq!(hk.last().unwrap().interval_ticks, 200_000);
}

#[test]
fn reset_comes_only_after_the_last_byte_of_its_reply() {
    let mut bench = Bench::new(config(), simulated(3));
    bench.run_until(300_000, 1_000);
    bench.send(77, Command::Reset);
    let resetting = frame_of(&FromFrontEnd::Reply(Reply {
        id: 77,
        body: ReplyBody::Resetting,
    }));
    let sent_before = bench.bytes.len();
    // Byte by byte, one tick at a time.
    loop {
        assert_eq!(bench.front_end.action(), None);
        bench.now += 1;
        bench.front_end.poll(bench.now);
        if let Some(byte) = bench.front_end.next_tx_byte(bench.now) {
            bench.bytes.push((bench.now, byte));
            let tail: Vec<u8> = bench.bytes[sent_before..].iter().map(|&(_, b)| b).collect();
            if tail.ends_with(&resetting) {
                break;
            }
        }
        assert!(bench.now < 1_000_000, "no Resetting reply");
    }
    assert_eq!(bench.front_end.action(), Some(Action::Reset));
    bench.now += 100_000;
    bench.front_end.poll(bench.now);
    assert_eq!(bench.front_end.next_tx_byte(bench.now), None);
    // Requests now go unanswered: the MCU is going down.
    bench.send(78, Command::Ping);
    assert_eq!(bench.front_end.next_tx_byte(bench.now + 100_000), None);
}

fn frame_of(message: &FromFrontEnd) -> Vec<u8> {
    let mut out = [0u8; MAX_FRAME_BYTES];
    let len = encode_frame(message, &mut out).unwrap();
    out[..len].to_vec()
}

#[test]
fn stall_is_refused_without_the_hook_and_honoured_with_it() {
    let mut bench = Bench::new(config(), simulated(3));
    assert_eq!(
        bench.ask(1, Command::Stall),
        ReplyBody::Refused(Refusal::NotBuiltIn)
    );
    assert_eq!(bench.front_end.action(), None);
    let mut hooked = config();
    hooked.fault_hook = true;
    let mut bench = Bench::new(hooked, simulated(3));
    assert_eq!(bench.ask(1, Command::Stall), ReplyBody::Resetting);
    assert_eq!(bench.front_end.action(), Some(Action::Stall));
}

#[test]
fn corrupt_frames_are_counted_not_answered_and_the_next_request_is() {
    let mut bench = Bench::new(config(), simulated(5));
    bench.run_until(10_000, 1_000);
    // Noise ending in a delimiter, a ping with a flipped bit, an overlong frame.
    bench.send_bytes(&[0x13, 0x37, 0xFF, 0x00]);
    let mut flipped = frame(&ToFrontEnd {
        id: 1,
        command: Command::Ping,
    });
    flipped[2] = if flipped[2] == 0x04 {
        0x05
    } else {
        flipped[2] ^ 0x04
    };
    bench.send_bytes(&flipped);
    bench.send_bytes(&[0x55; 3 * MAX_FRAME_BYTES]);
    bench.send_bytes(&[0x00]);
    assert_eq!(
        bench.ask(2, Command::GetSettings),
        ReplyBody::Settings(config().settings)
    );
    assert_eq!(bench.front_end.counters().rejected_frames_total, 3);
    assert!(bench.replies().iter().all(|r| r.id == 2));
    bench.run_until(1_500_000, 1_000);
    assert_eq!(bench.housekeeping()[0].rejected_frames_total, 3);
}

#[test]
fn replies_overtake_waiting_events() {
    // Far more events than the line carries: the queue stays full.
    let source = Regular {
        period_ns: 200_000,
        next_ns: 0,
        b_due: false,
    };
    let mut bench = Bench::new(config(), source);
    bench.run_until(1_000_000, 1_000);
    assert!(bench.front_end.counters().dropped_events_total > 0);
    let asked = bench.now;
    bench.ask(5, Command::Ping);
    // At most the frame on the line, then the reply: well under two full frames' time
    // (a 236-byte frame takes 20.5 ms at 115 200 baud).
    assert!(bench.now - asked <= 45_000, "{} ticks", bench.now - asked);
}

/// Runs the simulated detector with muons only, at `rate` per second (Poisson), for
/// `seconds`, draining every ms.
fn run_at_rate(rate: u32, seconds: u64) -> Bench<SimulatedDetector> {
    let mut model = DetectorModel::default();
    model.muon_rate_mhz = rate * 1_000;
    model.singles_rate_mhz = 0;
    let mut bench = Bench::new(config(), SimulatedDetector::new(model, u64::from(rate)));
    bench.run_until(seconds * u64::from(TICK_HZ), 1_000);
    bench
}

/// Events sent, and the gaps in their numbering.
fn numbering<S: PulseSource>(bench: &Bench<S>) -> (u32, u32) {
    let (mut sent, mut gaps, mut next) = (0, 0, 0);
    for batch in bench.batches() {
        assert!(batch.first_event >= next, "numbers go back");
        gaps += batch.first_event - next;
        next = batch.first_event + batch.events.len() as u32;
        sent += batch.events.len() as u32;
    }
    (sent, gaps)
}

#[test]
fn below_the_line_rate_nothing_is_dropped() {
    let budget = line_budget(115_200, TICK_HZ, 1_000);
    let bench = run_at_rate(budget.max_events_per_s * 85 / 100, 10);
    let c = bench.front_end.counters();
    assert_eq!(c.dropped_events_total, 0);
    let (sent, gaps) = numbering(&bench);
    assert_eq!(gaps, 0);
    assert_eq!(
        c.events_sent + bench.front_end.events_waiting(),
        c.events_total
    );
    // What was decoded, plus at most the batch still on the line.
    assert!(c.events_sent - sent <= MAX_BATCH_EVENTS as u32);
}

#[test]
fn above_the_line_rate_whole_events_are_dropped_and_numbered_around() {
    let budget = line_budget(115_200, TICK_HZ, 1_000);
    let bench = run_at_rate(budget.max_events_per_s * 115 / 100, 10);
    let c = bench.front_end.counters();
    assert!(c.dropped_events_total > 0);
    assert_eq!(bench.bad_frames, 0, "no partial frame ever");
    let (sent, gaps) = numbering(&bench);
    // Every event is sent, dropped (a gap in the numbers) or still waiting.
    let waiting = bench.front_end.events_waiting();
    assert_eq!(
        c.events_sent + c.dropped_events_total + waiting,
        c.events_total
    );
    assert!(
        c.events_sent - sent <= MAX_BATCH_EVENTS as u32,
        "at most one batch on the line"
    );
    // Drops after the last sent batch show as a gap only once a later batch goes out.
    assert!(gaps <= c.dropped_events_total);
    assert!(
        c.dropped_events_total - gaps <= (EVENT_QUEUE_BATCHES as u32 + 1) * MAX_BATCH_EVENTS as u32
    );
    // The housekeeping reports them.
    let last = bench.housekeeping().last().copied().unwrap();
    assert!(last.dropped_events_total > 0);
    // The line was busy: at 10 bits a byte, close to 11 520 bytes a second.
    let seconds = bench.now as f64 / f64::from(TICK_HZ);
    let rate = bench.bytes.len() as f64 / seconds;
    assert!(rate > 11_000.0 && rate <= 11_521.0, "{rate} B/s");
}

/// Bytes handed out between two drains never exceed what the line carries in between,
/// plus the one byte in flight.
fn assert_paced(bench: &Bench<impl PulseSource>, baud: u32) {
    let per_tick = f64::from(baud) / 10.0 / f64::from(TICK_HZ);
    let mut first = 0;
    for (i, &t1) in bench.drains.iter().enumerate() {
        // Bytes handed out after the drain at t1.
        while first < bench.bytes.len() && bench.bytes[first].0 <= t1 {
            first += 1;
        }
        for &t2 in bench.drains[i + 1..].iter().step_by(7) {
            let upto = bench.bytes.partition_point(|&(t, _)| t <= t2);
            let handed = upto.saturating_sub(first) as f64;
            let carried = (t2 - t1) as f64 * per_tick + 1.0;
            assert!(handed <= carried, "{handed} bytes in ({t1}, {t2}]");
        }
    }
}

#[test]
fn output_never_outruns_the_baud_rate_whatever_the_polling() {
    for baud in [9_600, 115_200] {
        let mut config = config();
        config.settings.baud = baud;
        let mut model = DetectorModel::default();
        model.muon_rate_mhz = 2_000_000;
        let mut bench = Bench::new(config, SimulatedDetector::new(model, 6));
        // Irregular loop periods: 1 tick to 30 ms.
        let mut rng = aloft_detector::Rng::new(1);
        while bench.now < 2 * u64::from(TICK_HZ) {
            let step = 1 + u64::from(rng.below(30_000));
            bench.run_until(bench.now + step, step);
        }
        assert!(bench.front_end.counters().dropped_events_total > 0);
        assert_paced(&bench, baud);
    }
}

#[test]
fn a_request_flood_beyond_the_reply_queue_is_counted_as_rejected() {
    let mut bench = Bench::new(config(), simulated(7));
    for id in 0..20 {
        bench.send(id, Command::Ping);
    }
    bench.run_until(500_000, 1_000);
    let c = bench.front_end.counters();
    assert_eq!(bench.replies().len(), 8);
    assert_eq!(
        (
            c.requests_answered,
            c.unanswered_requests,
            c.rejected_frames_total
        ),
        (8, 12, 12)
    );
}

#[test]
fn a_jump_of_the_clock_costs_bounded_work_per_poll_and_nothing_is_lost() {
    let mut bench = Bench::new(config(), simulated(12));
    bench.run_until(10_000, 1_000);
    // Ten seconds at once (a stalled emulator): about 1 000 pulses, two polls' worth.
    bench.now += 10 * u64::from(TICK_HZ);
    bench.front_end.poll(bench.now);
    let c = bench.front_end.counters();
    let seen = c.events_total + c.pulses_below_threshold + c.hits_in_dead_time;
    assert!(
        seen <= aloft_detector::frontend::PULSES_PER_POLL as u32 + 1,
        "{seen}"
    );
    for _ in 0..10 {
        bench.front_end.poll(bench.now);
    }
    let after = bench.front_end.counters();
    assert!(
        after.events_total + after.pulses_below_threshold > 700,
        "{after:?}"
    );
    // Near the end of time: no overflow, no endless catching up.
    bench.front_end.poll(u64::MAX);
    bench.front_end.receive(0, u64::MAX);
    let _ = bench.front_end.next_tx_byte(u64::MAX);
    assert!(
        bench.front_end.next_tx_tick().is_some(),
        "housekeeping is due"
    );
}

#[test]
fn an_invalid_configuration_is_refused() {
    let mut bad = config();
    bad.settings.baud = 0;
    assert!(FrontEnd::new(bad, power_on(), simulated(1)).is_err());
    let mut bad = config();
    bad.settings.threshold_mv = 0;
    assert!(FrontEnd::new(bad, power_on(), simulated(1)).is_err());
    let mut bad = config();
    bad.tick_hz = 0;
    assert!(FrontEnd::new(bad, power_on(), simulated(1)).is_err());
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    #[test]
    fn any_bytes_from_the_agent_keep_the_counters_consistent(
        mode in any::<u8>(),
        bytes in proptest::collection::vec(any::<u8>(), 0..1_500),
    ) {
        let mut data = vec![mode];
        data.extend(bytes);
        aloft_detector::fuzzing::requests(&data);
    }

    #[test]
    fn any_loop_periods_keep_the_pacing_and_the_accounting(
        steps in proptest::collection::vec(1u64..40_000, 1..200),
        muons_per_s in 1u32..5_000,
        slow_line in any::<bool>(),
    ) {
        let mut config = config();
        config.settings.baud = if slow_line { 9_600 } else { 115_200 };
        let mut model = DetectorModel::default();
        model.muon_rate_mhz = muons_per_s * 1_000;
        let mut bench = Bench::new(config, SimulatedDetector::new(model, u64::from(muons_per_s)));
        for step in steps {
            bench.run_until(bench.now + step, step);
        }
        assert_paced(&bench, config.settings.baud);
        let c = bench.front_end.counters();
        prop_assert_eq!(c.events_sent + c.dropped_events_total + bench.front_end.events_waiting(), c.events_total);
        prop_assert_eq!(bench.bad_frames, 0);
        let (_, gaps) = numbering(&bench);
        prop_assert!(gaps <= c.dropped_events_total);
    }

    #[test]
    fn valid_requests_amid_noise_are_all_answered(
        noise in proptest::collection::vec(proptest::collection::vec(any::<u8>(), 0..40), 1..8),
        mv in any::<u16>(),
    ) {
        let mut bench = Bench::new(config(), simulated(u64::from(mv)));
        let mut ids = Vec::new();
        for (i, chunk) in noise.iter().enumerate() {
            bench.send_bytes(chunk);
            // A delimiter ends whatever the noise left half-framed.
            bench.send_bytes(&[0]);
            let id = i as u16;
            bench.send(id, Command::SetThreshold { mv });
            ids.push(id);
            bench.run_until(bench.now + 50_000, 1_000);
        }
        let replies = bench.replies();
        prop_assert_eq!(replies.iter().map(|r| r.id).collect::<Vec<_>>(), ids);
        let want = if (THRESHOLD_MV_MIN..=THRESHOLD_MV_MAX).contains(&mv) {
            ReplyBody::Settings(aloft_protocol::detector::DetectorSettings { threshold_mv: mv, ..config().settings })
        } else {
            ReplyBody::Refused(Refusal::OutOfRange)
        };
        prop_assert!(replies.iter().all(|r| r.body == want));
        prop_assert_eq!(bench.bad_frames, 0);
    }
}
