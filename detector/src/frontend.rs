//! The front end: pulses in, paced frames out, requests answered.
//!
//! [`FrontEnd`] owns a [`PulseSource`] and the UART's two directions, as byte-at-a-time
//! calls with the tick counter of the moment (see the crate docs for the calling pattern).
//!
//! # Detection
//!
//! A pulse below the threshold is not a hit. A hit opens an event; the other channel's
//! first hit within the coincidence window after it joins the event (`Channels::BOTH`), a
//! further hit of the same channel in the window is part of the same pulse train. From the
//! first hit the front end is dead for the window plus [`FrontEndConfig::dead_time_ns`]
//! (peak-hold readout and reset): a hit that starts no event then is lost, and the interval's
//! housekeeping counts that time in `dead_ticks` (attributed to the interval in which the
//! event closed, at most the interval). An event closes once the window after its first hit
//! has passed; events are numbered from 0 in the order they close.
//!
//! # Output
//!
//! Messages wait unencoded in bounded queues and are encoded one frame at a time when the
//! line is free: the boot message first, then replies, then housekeeping, then event
//! batches. A frame once started always goes out whole. Events collect in a batch that is
//! queued when full ([`MAX_BATCH_EVENTS`](aloft_protocol::detector::MAX_BATCH_EVENTS)) or [`FrontEndConfig::max_batch_latency_ms`]
//! after its first event; at most [`EVENT_QUEUE_BATCHES`] batches wait. When the batch being
//! filled is full and the queue has no room, a new event is dropped whole: it keeps its
//! number (the next batch's `first_event` shows the gap) and counts in
//! `dropped_events_total`. Drops happen only then, so a batch's events are consecutive.
//! When a housekeeping message is due while the previous one still waits (the line busy
//! with replies), the two merge into one longer interval.
//!
//! Pacing: one byte is 10 bits (8N1). [`FrontEnd::next_tx_byte`] hands out a byte only
//! once a line at `settings.baud` could have carried it by `now`: bytes follow each other
//! back to back on a virtual line that never starts a byte before it was queued. So the
//! bytes handed out between two drains at ticks t1 < t2 never exceed
//! `(t2 − t1) · baud / (10 · tick_hz) + 1`, whatever the calling pattern.
//!
//! # Requests
//!
//! Each frame from the agent that decodes is answered with a [`Reply`] echoing its id;
//! one that does not (COBS, CRC, decoding, too long) is counted in
//! `rejected_frames_total` and not answered. Ranges (outside them:
//! [`Refusal::OutOfRange`], nothing changes): threshold [`THRESHOLD_MV_MIN`]..=
//! [`THRESHOLD_MV_MAX`] mV, coincidence window [`WINDOW_NS_MIN`]..=[`WINDOW_NS_MAX`] ns,
//! housekeeping interval [`HOUSEKEEPING_MS_MIN`]..=[`HOUSEKEEPING_MS_MAX`] ms. `Reset` is
//! answered `Resetting`, and once that reply's last byte is handed out
//! [`FrontEnd::action`] says [`Action::Reset`]. `Stall` is refused
//! ([`Refusal::NotBuiltIn`]) unless the fault hook is built in; with it, it is answered
//! `Resetting` too (the watchdog's reset follows) and then [`Action::Stall`]. Requests after
//! an accepted `Reset` or `Stall` are not answered (the MCU is going down). At most
//! [`REPLY_QUEUE`] replies wait; a request arriving when they are all waiting (a flood
//! faster than the line carries the replies) is not answered and counts as rejected.
//!
//! Invariants: nothing blocks, allocates or panics on any input; one call does bounded
//! work (a poll takes at most [`PULSES_PER_POLL`] pulses); every request frame is
//! either answered, counted as rejected, or arrived after an accepted reset;
//! `events_total` = events sent + dropped + waiting.

use aloft_protocol::detector::{
    BootInfo, Channels, Command, DETECTOR_PROTOCOL_VERSION, DetectorSettings, Event, EventBatch,
    FirmwareVersion, FrameDecoder, FromFrontEnd, Housekeeping, MAX_FRAME_BYTES, Refusal, Reply,
    ReplyBody, ResetCause, ToFrontEnd, encode_frame,
};
use core::fmt;
use heapless::Deque;

use crate::pulse::{Channel, Pulse, PulseSource};

/// The lowest threshold accepted, mV: below it the SiPM's single-photon noise dominates.
pub const THRESHOLD_MV_MIN: u16 = 5;
/// The highest threshold accepted, mV: the peak detector's full scale.
pub const THRESHOLD_MV_MAX: u16 = crate::pulse::MAX_PULSE_MV;
/// The shortest coincidence window accepted, ns.
pub const WINDOW_NS_MIN: u32 = 10;
/// The longest coincidence window accepted, ns (10 µs: beyond it chance coincidences of
/// the singles swamp the muons).
pub const WINDOW_NS_MAX: u32 = 10_000;
/// The shortest housekeeping interval accepted, ms.
pub const HOUSEKEEPING_MS_MIN: u32 = 100;
/// The longest housekeeping interval accepted, ms (so that an interval fits the message's
/// 32-bit tick count at any accepted tick rate).
pub const HOUSEKEEPING_MS_MAX: u32 = 60_000;
/// The slowest counter accepted, Hz.
pub const TICK_HZ_MIN: u32 = 1_000;
/// The fastest counter accepted, Hz (60 s of it fit 32 bits).
pub const TICK_HZ_MAX: u32 = 64_000_000;
/// The slowest line accepted, bit/s.
pub const BAUD_MIN: u32 = 1_200;
/// The fastest line accepted, bit/s.
pub const BAUD_MAX: u32 = 4_000_000;

/// Event batches that wait for the line at most, besides the one being filled.
pub const EVENT_QUEUE_BATCHES: usize = 4;
/// Replies that wait for the line at most.
pub const REPLY_QUEUE: usize = 8;
/// Pulses one [`FrontEnd::poll`] takes from the source at most.
pub const PULSES_PER_POLL: usize = 512;

const NS_PER_S: u64 = 1_000_000_000;

/// How the front end is built.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub struct FrontEndConfig {
    /// The microcontroller's serial number.
    pub serial: u64,
    /// The firmware's version.
    pub firmware: FirmwareVersion,
    /// The rate of the tick counter the caller passes, Hz.
    pub tick_hz: u32,
    /// The settings at start (the baud rate is fixed for the run).
    pub settings: DetectorSettings,
    /// The dead time after each event's coincidence window, ns.
    pub dead_time_ns: u32,
    /// How long an event may wait in a batch that is not full, ms.
    pub max_batch_latency_ms: u32,
    /// Whether `Stall` is honoured (a test build's fault hook).
    pub fault_hook: bool,
}

/// The settings a front end starts with unless told otherwise.
pub const DEFAULT_SETTINGS: DetectorSettings = DetectorSettings {
    threshold_mv: 30,
    coincidence_window_ns: 100,
    housekeeping_interval_ms: 1_000,
    baud: 115_200,
};

impl FrontEndConfig {
    /// A front end with serial number `serial`, firmware `firmware` and a counter of
    /// `tick_hz`: [`DEFAULT_SETTINGS`], 10 µs dead time, batches at most 100 ms late, no
    /// fault hook.
    pub const fn new(serial: u64, firmware: FirmwareVersion, tick_hz: u32) -> Self {
        Self {
            serial,
            firmware,
            tick_hz,
            settings: DEFAULT_SETTINGS,
            dead_time_ns: 10_000,
            max_batch_latency_ms: 100,
            fault_hook: false,
        }
    }

    /// Checks every value against the ranges the front end works in.
    pub fn validate(&self) -> Result<(), ConfigError> {
        let s = &self.settings;
        if !(TICK_HZ_MIN..=TICK_HZ_MAX).contains(&self.tick_hz) {
            return Err(ConfigError::TickRate(self.tick_hz));
        }
        if !(BAUD_MIN..=BAUD_MAX).contains(&s.baud) {
            return Err(ConfigError::Baud(s.baud));
        }
        if !threshold_ok(s.threshold_mv) {
            return Err(ConfigError::Threshold(s.threshold_mv));
        }
        if !window_ok(s.coincidence_window_ns) {
            return Err(ConfigError::CoincidenceWindow(s.coincidence_window_ns));
        }
        if !housekeeping_ok(s.housekeeping_interval_ms) {
            return Err(ConfigError::HousekeepingInterval(
                s.housekeeping_interval_ms,
            ));
        }
        if !(1..=10_000).contains(&self.max_batch_latency_ms) {
            return Err(ConfigError::BatchLatency(self.max_batch_latency_ms));
        }
        Ok(())
    }
}

fn threshold_ok(mv: u16) -> bool {
    (THRESHOLD_MV_MIN..=THRESHOLD_MV_MAX).contains(&mv)
}

fn window_ok(ns: u32) -> bool {
    (WINDOW_NS_MIN..=WINDOW_NS_MAX).contains(&ns)
}

fn housekeeping_ok(ms: u32) -> bool {
    (HOUSEKEEPING_MS_MIN..=HOUSEKEEPING_MS_MAX).contains(&ms)
}

/// A configuration value outside what the front end works with.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ConfigError {
    /// The tick rate, Hz.
    TickRate(u32),
    /// The baud rate, bit/s.
    Baud(u32),
    /// The threshold, mV.
    Threshold(u16),
    /// The coincidence window, ns.
    CoincidenceWindow(u32),
    /// The housekeeping interval, ms.
    HousekeepingInterval(u32),
    /// The batch latency, ms.
    BatchLatency(u32),
}

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::TickRate(v) => {
                write!(f, "tick rate {v} Hz outside {TICK_HZ_MIN}..={TICK_HZ_MAX}")
            }
            Self::Baud(v) => write!(f, "baud rate {v} outside {BAUD_MIN}..={BAUD_MAX}"),
            Self::Threshold(v) => write!(
                f,
                "threshold {v} mV outside {THRESHOLD_MV_MIN}..={THRESHOLD_MV_MAX}"
            ),
            Self::CoincidenceWindow(v) => write!(
                f,
                "coincidence window {v} ns outside {WINDOW_NS_MIN}..={WINDOW_NS_MAX}"
            ),
            Self::HousekeepingInterval(v) => write!(
                f,
                "housekeeping interval {v} ms outside {HOUSEKEEPING_MS_MIN}..={HOUSEKEEPING_MS_MAX}"
            ),
            Self::BatchLatency(v) => write!(f, "batch latency {v} ms outside 1..=10000"),
        }
    }
}

impl core::error::Error for ConfigError {}

/// What the firmware knows about this start.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BootFacts {
    /// Why it started.
    pub reset_cause: ResetCause,
    /// Starts since power-on, this one included.
    pub boot_count: u32,
}

/// What the caller must do now.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Action {
    /// The `Resetting` reply went out: reset the microcontroller (after the UART's own
    /// FIFO has drained).
    Reset,
    /// The fault hook's stall: stop kicking the watchdog (and stop calling the front end).
    Stall,
}

/// The front end's counters since start.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct FrontEndCounters {
    /// Events since start (sent, dropped or waiting).
    pub events_total: u32,
    /// Events handed to the line in batches.
    pub events_sent: u32,
    /// Events dropped because the line could not carry them.
    pub dropped_events_total: u32,
    /// Request frames rejected (corrupt, or arriving while every reply slot waited).
    pub rejected_frames_total: u32,
    /// Of those, requests that decoded but found the reply queue full.
    pub unanswered_requests: u32,
    /// Requests decoded and answered (replies queued).
    pub requests_answered: u32,
    /// Requests after an accepted reset or stall, not answered.
    pub requests_after_reset: u32,
    /// Pulses below the threshold.
    pub pulses_below_threshold: u32,
    /// Hits lost in dead time.
    pub hits_in_dead_time: u32,
    /// Frames handed to the line whole.
    pub frames_sent: u32,
    /// Bytes handed to the line.
    pub bytes_sent: u64,
}

/// An event whose coincidence window is still open.
#[derive(Debug, Clone, Copy)]
struct OpenEvent {
    at_ns: u64,
    channels: u8,
    pulse_a_mv: u16,
    pulse_b_mv: u16,
}

impl OpenEvent {
    fn new(pulse: Pulse) -> Self {
        let mut event = Self {
            at_ns: pulse.at_ns,
            channels: 0,
            pulse_a_mv: 0,
            pulse_b_mv: 0,
        };
        event.add(pulse);
        event
    }

    /// Adds `pulse` if its channel has not fired yet in this event.
    fn add(&mut self, pulse: Pulse) {
        match pulse.channel {
            Channel::A if self.channels & Channels::A.0 == 0 => {
                self.channels |= Channels::A.0;
                self.pulse_a_mv = pulse.height_mv;
            }
            Channel::B if self.channels & Channels::B.0 == 0 => {
                self.channels |= Channels::B.0;
                self.pulse_b_mv = pulse.height_mv;
            }
            _ => {}
        }
    }
}

/// Counts of the housekeeping interval in progress.
#[derive(Debug, Clone, Copy, Default)]
struct IntervalCounts {
    hits_a: u32,
    hits_b: u32,
    coincidences: u32,
    dead_ns: u64,
}

/// The front end (see the module docs).
#[derive(Debug)]
pub struct FrontEnd<S> {
    config: FrontEndConfig,
    source: S,
    decoder: FrameDecoder,
    counters: FrontEndCounters,

    open: Option<OpenEvent>,
    dead_until_ns: u64,

    batch: EventBatch,
    last_event_ticks: u64,
    events: Deque<EventBatch, EVENT_QUEUE_BATCHES>,

    interval: IntervalCounts,
    interval_start_ticks: u64,
    housekeeping: Option<Housekeeping>,

    boot: Option<BootInfo>,
    replies: Deque<Reply, REPLY_QUEUE>,
    /// An accepted reset or stall, waiting for its reply to go out.
    pending_action: Option<Action>,
    action: Option<Action>,

    tx: [u8; MAX_FRAME_BYTES],
    tx_len: usize,
    tx_pos: usize,
    /// The action due once the frame in `tx` has gone out.
    tx_then: Option<Action>,
    /// When the virtual line finishes its last byte: whole ticks and 1/baud parts of one.
    line_free_ticks: u64,
    line_free_frac: u32,
    byte_ticks: u64,
    byte_frac: u32,
}

impl<S: PulseSource> FrontEnd<S> {
    /// A front end that starts now (tick 0) with `config`, after a start described by
    /// `boot`, sampling `source`. Its boot message is the first frame it sends.
    pub fn new(
        config: FrontEndConfig,
        boot: BootFacts,
        mut source: S,
    ) -> Result<Self, ConfigError> {
        config.validate()?;
        source.threshold_changed(config.settings.threshold_mv);
        let bits = 10 * u64::from(config.tick_hz);
        let baud = u64::from(config.settings.baud);
        Ok(Self {
            source,
            decoder: FrameDecoder::new(),
            counters: FrontEndCounters::default(),
            open: None,
            dead_until_ns: 0,
            batch: empty_batch(),
            last_event_ticks: 0,
            events: Deque::new(),
            interval: IntervalCounts::default(),
            interval_start_ticks: 0,
            housekeeping: None,
            boot: Some(BootInfo {
                firmware: config.firmware,
                protocol_version: DETECTOR_PROTOCOL_VERSION,
                reset_cause: boot.reset_cause,
                boot_count: boot.boot_count,
                serial: config.serial,
                tick_hz: config.tick_hz,
                settings: config.settings,
            }),
            replies: Deque::new(),
            pending_action: None,
            action: None,
            tx: [0; MAX_FRAME_BYTES],
            tx_len: 0,
            tx_pos: 0,
            tx_then: None,
            line_free_ticks: 0,
            line_free_frac: 0,
            byte_ticks: bits / baud,
            byte_frac: (bits % baud) as u32,
            config,
        })
    }

    /// The settings in force.
    pub fn settings(&self) -> DetectorSettings {
        self.config.settings
    }

    /// The configuration, with the settings in force.
    pub fn config(&self) -> &FrontEndConfig {
        &self.config
    }

    /// The counters since start.
    pub fn counters(&self) -> FrontEndCounters {
        self.counters
    }

    /// The pulse source.
    pub fn source(&self) -> &S {
        &self.source
    }

    /// The pulse source, mutably (a simulator's knobs).
    pub fn source_mut(&mut self) -> &mut S {
        &mut self.source
    }

    /// Gives the pulse source back.
    pub fn into_source(self) -> S {
        self.source
    }

    /// What the caller must do now, once a reset or stall reply has gone out.
    pub fn action(&self) -> Option<Action> {
        self.action
    }

    /// Events waiting for the line (in queued batches and the batch being filled).
    pub fn events_waiting(&self) -> u32 {
        let queued: usize = self.events.iter().map(|b| b.events.len()).sum();
        (queued + self.batch.events.len()) as u32
    }

    /// One byte received from the agent at `now_ticks`.
    pub fn receive(&mut self, byte: u8, now_ticks: u64) {
        if self.action.is_some() {
            return;
        }
        self.idle_line_until(now_ticks);
        match self.decoder.push::<ToFrontEnd>(byte) {
            None => {}
            Some(Err(_)) => bump(&mut self.counters.rejected_frames_total),
            Some(Ok(request)) => self.handle(request, now_ticks),
        }
    }

    /// Samples the source up to `now_ticks`: discriminates and pairs its pulses (at most
    /// [`PULSES_PER_POLL`]; the rest at the next calls), batches events, queues
    /// housekeeping when due.
    pub fn poll(&mut self, now_ticks: u64) {
        if self.action.is_some() {
            return;
        }
        self.idle_line_until(now_ticks);
        let now_ns = ticks_to_ns(now_ticks, self.config.tick_hz);
        // Bounded work per call, so the main loop keeps its period (and kicks its watchdog)
        // even after a stall or a jump of the clock; the rest wait in the source.
        let mut caught_up = false;
        for _ in 0..PULSES_PER_POLL {
            let Some(pulse) = self.source.next_pulse(now_ns) else {
                caught_up = true;
                break;
            };
            self.take_pulse(pulse);
        }
        let window = u64::from(self.config.settings.coincidence_window_ns);
        // Only once every pulse before now was seen can no partner be on its way.
        if caught_up
            && let Some(open) = self.open
            && open.at_ns.saturating_add(window) < now_ns
        {
            self.open = None;
            self.close_event(open);
        }
        let latency = ms_to_ticks(self.config.max_batch_latency_ms, self.config.tick_hz);
        if !self.batch.events.is_empty()
            && now_ticks.saturating_sub(self.batch.first_ticks) >= latency
        {
            self.queue_batch();
        }
        self.housekeeping_if_due(now_ticks, now_ns);
    }

    /// The next byte for the UART at `now_ticks`, if there is one and the line could have
    /// carried it by then. Call until `None` each time round the main loop.
    pub fn next_tx_byte(&mut self, now_ticks: u64) -> Option<u8> {
        if self.action.is_some() {
            return None;
        }
        if self.tx_pos >= self.tx_len && !self.load_next_frame() {
            self.idle_line_until(now_ticks);
            return None;
        }
        let mut end_ticks = self.line_free_ticks.saturating_add(self.byte_ticks);
        let mut end_frac = self.line_free_frac + self.byte_frac;
        if end_frac >= self.config.settings.baud {
            end_frac -= self.config.settings.baud;
            end_ticks = end_ticks.saturating_add(1);
        }
        // The byte ends at end_ticks + end_frac/baud: it is carried by now only if that is
        // at most now.
        if end_ticks.saturating_add(u64::from(end_frac > 0)) > now_ticks {
            return None;
        }
        self.line_free_ticks = end_ticks;
        self.line_free_frac = end_frac;
        let byte = *self.tx.get(self.tx_pos)?;
        self.tx_pos += 1;
        self.counters.bytes_sent = self.counters.bytes_sent.wrapping_add(1);
        if self.tx_pos >= self.tx_len {
            bump(&mut self.counters.frames_sent);
            if let Some(action) = self.tx_then.take() {
                self.action = Some(action);
            }
        }
        Some(byte)
    }

    /// The tick at which the next byte can go out, when one is waiting (a caller that
    /// sleeps between bytes wakes then).
    pub fn next_tx_tick(&self) -> Option<u64> {
        let waiting = self.tx_pos < self.tx_len
            || self.boot.is_some()
            || !self.replies.is_empty()
            || self.housekeeping.is_some()
            || !self.events.is_empty();
        if !waiting || self.action.is_some() {
            return None;
        }
        let frac = u64::from(self.line_free_frac) + u64::from(self.byte_frac);
        let baud = u64::from(self.config.settings.baud);
        Some(
            self.line_free_ticks
                .saturating_add(self.byte_ticks)
                .saturating_add(frac.div_ceil(baud)),
        )
    }

    /// A line with nothing to send saves up no time: its next byte starts no earlier than
    /// `now_ticks`.
    fn idle_line_until(&mut self, now_ticks: u64) {
        let idle = self.tx_pos >= self.tx_len
            && self.boot.is_none()
            && self.replies.is_empty()
            && self.housekeeping.is_none()
            && self.events.is_empty();
        if idle && now_ticks > self.line_free_ticks {
            self.line_free_ticks = now_ticks;
            self.line_free_frac = 0;
        }
    }

    fn handle(&mut self, request: ToFrontEnd, now_ticks: u64) {
        if self.pending_action.is_some() {
            bump(&mut self.counters.requests_after_reset);
            return;
        }
        if self.replies.is_full() {
            bump(&mut self.counters.unanswered_requests);
            bump(&mut self.counters.rejected_frames_total);
            return;
        }
        let settings = &mut self.config.settings;
        let body = match request.command {
            Command::Ping => ReplyBody::Pong { ticks: now_ticks },
            Command::GetSettings => ReplyBody::Settings(*settings),
            Command::SetThreshold { mv } if threshold_ok(mv) => {
                settings.threshold_mv = mv;
                self.source.threshold_changed(mv);
                ReplyBody::Settings(*settings)
            }
            Command::SetCoincidenceWindow { ns } if window_ok(ns) => {
                settings.coincidence_window_ns = ns;
                ReplyBody::Settings(*settings)
            }
            Command::SetHousekeepingInterval { ms } if housekeeping_ok(ms) => {
                settings.housekeeping_interval_ms = ms;
                ReplyBody::Settings(*settings)
            }
            Command::SetThreshold { .. }
            | Command::SetCoincidenceWindow { .. }
            | Command::SetHousekeepingInterval { .. } => ReplyBody::Refused(Refusal::OutOfRange),
            Command::Reset => {
                self.pending_action = Some(Action::Reset);
                ReplyBody::Resetting
            }
            Command::Stall if self.config.fault_hook => {
                self.pending_action = Some(Action::Stall);
                ReplyBody::Resetting
            }
            Command::Stall => ReplyBody::Refused(Refusal::NotBuiltIn),
        };
        // Not full: checked above.
        let _ = self.replies.push_back(Reply {
            id: request.id,
            body,
        });
        bump(&mut self.counters.requests_answered);
    }

    fn take_pulse(&mut self, pulse: Pulse) {
        if pulse.height_mv < self.config.settings.threshold_mv {
            bump(&mut self.counters.pulses_below_threshold);
            return;
        }
        let window = u64::from(self.config.settings.coincidence_window_ns);
        if let Some(open) = &mut self.open {
            if pulse.at_ns <= open.at_ns.saturating_add(window) {
                open.add(pulse);
                return;
            }
            let closed = *open;
            self.open = None;
            self.close_event(closed);
        }
        if pulse.at_ns < self.dead_until_ns {
            bump(&mut self.counters.hits_in_dead_time);
            return;
        }
        self.open = Some(OpenEvent::new(pulse));
        self.dead_until_ns = pulse
            .at_ns
            .saturating_add(window)
            .saturating_add(u64::from(self.config.dead_time_ns));
    }

    fn close_event(&mut self, event: OpenEvent) {
        let number = self.counters.events_total;
        self.counters.events_total = number.wrapping_add(1);
        let counts = &mut self.interval;
        if event.channels & Channels::A.0 != 0 {
            bump(&mut counts.hits_a);
        }
        if event.channels & Channels::B.0 != 0 {
            bump(&mut counts.hits_b);
        }
        let channels = Channels(event.channels);
        if channels.coincident() {
            bump(&mut counts.coincidences);
        }
        counts.dead_ns = counts.dead_ns.saturating_add(
            u64::from(self.config.settings.coincidence_window_ns)
                + u64::from(self.config.dead_time_ns),
        );

        if self.batch.events.is_full() {
            self.queue_batch();
        }
        if self.batch.events.is_full() {
            bump(&mut self.counters.dropped_events_total);
            return;
        }
        let ticks = ns_to_ticks(event.at_ns, self.config.tick_hz);
        let delta_ticks = if self.batch.events.is_empty() {
            self.batch.first_event = number;
            self.batch.first_ticks = ticks;
            0
        } else {
            u32::try_from(ticks.saturating_sub(self.last_event_ticks)).unwrap_or(u32::MAX)
        };
        self.last_event_ticks = ticks;
        // Not full: checked above.
        let _ = self.batch.events.push(Event {
            delta_ticks,
            channels,
            pulse_a_mv: event.pulse_a_mv,
            pulse_b_mv: event.pulse_b_mv,
        });
        if self.batch.events.is_full() {
            self.queue_batch();
        }
    }

    /// Moves the batch being filled to the queue, if there is room.
    fn queue_batch(&mut self) {
        if self.batch.events.is_empty() || self.events.is_full() {
            return;
        }
        let batch = core::mem::replace(&mut self.batch, empty_batch());
        let _ = self.events.push_back(batch);
    }

    fn housekeeping_if_due(&mut self, now_ticks: u64, now_ns: u64) {
        let interval = ms_to_ticks(
            self.config.settings.housekeeping_interval_ms,
            self.config.tick_hz,
        );
        let elapsed = now_ticks.saturating_sub(self.interval_start_ticks);
        if elapsed < interval {
            return;
        }
        let counts = core::mem::take(&mut self.interval);
        let interval_ticks = u32::try_from(elapsed).unwrap_or(u32::MAX);
        let dead_ticks = u32::try_from(ns_to_ticks(counts.dead_ns, self.config.tick_hz))
            .unwrap_or(u32::MAX)
            .min(interval_ticks);
        let c = &self.counters;
        let fresh = Housekeeping {
            ticks: now_ticks,
            interval_ticks,
            hits_a: counts.hits_a,
            hits_b: counts.hits_b,
            coincidences: counts.coincidences,
            dead_ticks,
            temperature_centi_c: self.source.temperature_centi_c(now_ns),
            events_total: c.events_total,
            dropped_events_total: c.dropped_events_total,
            rejected_frames_total: c.rejected_frames_total,
        };
        self.housekeeping = Some(match self.housekeeping {
            None => fresh,
            Some(waiting) => Housekeeping {
                interval_ticks: waiting.interval_ticks.saturating_add(fresh.interval_ticks),
                hits_a: waiting.hits_a.saturating_add(fresh.hits_a),
                hits_b: waiting.hits_b.saturating_add(fresh.hits_b),
                coincidences: waiting.coincidences.saturating_add(fresh.coincidences),
                dead_ticks: waiting.dead_ticks.saturating_add(fresh.dead_ticks),
                ..fresh
            },
        });
        self.interval_start_ticks = now_ticks;
    }

    /// Encodes the next message into `tx`, by priority; false when nothing waits.
    fn load_next_frame(&mut self) -> bool {
        loop {
            let mut then = None;
            let message = if let Some(boot) = self.boot.take() {
                FromFrontEnd::Boot(boot)
            } else if let Some(reply) = self.replies.pop_front() {
                if reply.body == ReplyBody::Resetting {
                    then = self.pending_action;
                }
                FromFrontEnd::Reply(reply)
            } else if let Some(housekeeping) = self.housekeeping.take() {
                FromFrontEnd::Housekeeping(housekeeping)
            } else if let Some(batch) = self.events.pop_front() {
                self.counters.events_sent = self
                    .counters
                    .events_sent
                    .wrapping_add(batch.events.len() as u32);
                FromFrontEnd::Events(batch)
            } else {
                return false;
            };
            // Every message fits a frame (the protocol's bound); were one not to, it is
            // skipped rather than sent in part.
            if let Ok(len) = encode_frame(&message, &mut self.tx) {
                self.tx_len = len;
                self.tx_pos = 0;
                self.tx_then = then;
                return true;
            }
        }
    }
}

/// Counters run modulo 2^32, as their 32-bit fields on the wire do.
fn bump(counter: &mut u32) {
    *counter = counter.wrapping_add(1);
}

fn empty_batch() -> EventBatch {
    EventBatch {
        first_event: 0,
        first_ticks: 0,
        events: heapless::Vec::new(),
    }
}

/// `ticks` of a `tick_hz` counter in ns (saturating; no 128-bit arithmetic).
pub fn ticks_to_ns(ticks: u64, tick_hz: u32) -> u64 {
    let hz = u64::from(tick_hz.max(1));
    (ticks / hz)
        .saturating_mul(NS_PER_S)
        .saturating_add((ticks % hz) * NS_PER_S / hz)
}

/// `ns` in ticks of a `tick_hz` counter, rounded down.
pub fn ns_to_ticks(ns: u64, tick_hz: u32) -> u64 {
    let hz = u64::from(tick_hz);
    (ns / NS_PER_S)
        .saturating_mul(hz)
        .saturating_add((ns % NS_PER_S) * hz / NS_PER_S)
}

/// `ms` in ticks of a `tick_hz` counter.
pub fn ms_to_ticks(ms: u32, tick_hz: u32) -> u64 {
    u64::from(ms) * u64::from(tick_hz) / 1_000
}
