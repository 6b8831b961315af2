//! Aloft's own detector front end (firmware/): a SiPM channel pair behind a microcontroller
//! that speaks the framed protocol of `aloft_protocol::detector` on a serial line.
//!
//! The adapter opens the UART like any serial device and feeds every byte to a
//! [`FrameDecoder`]: a frame that fails COBS, CRC or decoding is counted (the status says
//! how many, a reading carries the total) and reading resumes at the next delimiter. At
//! every open it sends the tunables (threshold, coincidence window, housekeeping
//! interval) and keeps the settings the firmware answers as the ones observed; it then
//! runs a burst of pings and one ping every [`SYNC_INTERVAL`] for the time sync
//! ([`TimeSync`]), which maps the front end's counter to the agent's monotonic clock.
//! Every event becomes readings stamped through that mapping, every housekeeping message
//! readings of rates, dead time, temperature and counters, every boot a descriptor record.
//! A hard restart is the firmware's own reset ([`Device::reset_hard`]): the request, its
//! `Resetting` reply and the next boot; the supervisor falls back to the power line when
//! the firmware does not answer in time.
//!
//! Invariants: a boot message of another protocol version refuses the sensor (the open or
//! poll fails with a reason naming both versions) and nothing more of that front end is
//! read until a compatible boot; the refusal survives reopens. Events carry the front end's
//! numbers: a gap in them is recorded as a missed-events reading, never passed over. An
//! event is stamped only through a mapping made after the front end's latest boot (its
//! counter restarts at 0), so events wait for the first sync after a boot.

use std::collections::VecDeque;
use std::io::Write;
use std::path::PathBuf;
use std::time::{Duration, Instant};

use aloft_protocol::detector::{
    BootInfo, Command, DETECTOR_PROTOCOL_VERSION, DetectorSettings, EventBatch, FrameDecoder,
    FrameError, FromFrontEnd, Housekeeping, MAX_FRAME_BYTES, ReplyBody, ToFrontEnd, encode_frame,
};
use aloft_protocol::{Quality, Quantity, Reading, SensorDescriptor, SensorId, Timestamp};

use super::capture::Capture;
use super::line::SerialLine;
use super::{Device, DeviceError, PollOutcome};
use crate::clock::AgentClock;
use crate::config::tunables::{self, Tunables};

/// The front end's line rate.
pub const DEFAULT_BAUD: u32 = 115_200;

/// A ping this often keeps the time sync current.
pub const SYNC_INTERVAL: Duration = Duration::from_secs(5);

/// Pings at every open and after every boot, so that events are stamped from the start.
pub const SYNC_BURST: usize = 6;

/// Exchanges the time sync keeps: the shortest round trip among them anchors the mapping.
pub const SYNC_WINDOW: usize = 32;

/// The counter's rate is estimated from the exchanges once they span this long; before,
/// the nominal rate (`tick_hz`) with [`NOMINAL_RATE_UNCERTAINTY`] is used.
pub const RATE_SPAN_MIN: Duration = Duration::from_secs(10);

/// With no boot message seen (the front end started before the agent opened its port),
/// the counter's rate is unknown: it is measured from exchanges spanning this long before
/// anything is mapped (round trips of about 100 µs make that about 100 ppm).
pub const UNKNOWN_RATE_SPAN_MIN: Duration = Duration::from_secs(1);

/// Pings this far apart while the rate is unknown, until it is measured.
pub const UNKNOWN_RATE_PING_SPACING: Duration = Duration::from_millis(100);

/// The fractional rate uncertainty assumed of the front end's crystal before the rate is
/// measured: 100 ppm, a plain quartz's tolerance over temperature.
pub const NOMINAL_RATE_UNCERTAINTY: f64 = 100e-6;

/// A measured rate further than this from nominal is not believed (a stalled or stepped
/// counter): the nominal rate is used, with this as its uncertainty.
pub const RATE_ERROR_MAX: f64 = 0.01;

/// How long a request waits for its reply.
pub const REPLY_TIMEOUT: Duration = Duration::from_millis(1_000);

/// How long a reset waits for the boot message after `Resetting`.
pub const BOOT_TIMEOUT: Duration = Duration::from_secs(5);

/// How long a read waits on a quiet line (it returns as soon as bytes arrive).
const IDLE_READ_TIMEOUT: Duration = Duration::from_millis(100);

/// Events waiting for the first sync after a boot, at most (then the oldest are counted as
/// missed).
const UNMAPPED_EVENTS_MAX: usize = 4_096;

/// One ping exchange: when the agent sent it and received the answer (its monotonic clock),
/// and the front end's counter when it handled it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SyncSample {
    /// Agent's monotonic time the ping was written, ns.
    pub sent_ns: u64,
    /// Agent's monotonic time the pong was read, ns.
    pub received_ns: u64,
    /// The front end's counter in the pong, ticks.
    pub ticks: u64,
}

impl SyncSample {
    fn round_trip_ns(&self) -> u64 {
        self.received_ns.saturating_sub(self.sent_ns)
    }

    /// The agent's time the front end most likely read its counter: the middle of the
    /// round trip (delays assumed symmetric; the truth lies within half the round trip).
    fn middle_ns(&self) -> f64 {
        self.sent_ns as f64 + self.round_trip_ns() as f64 / 2.0
    }
}

/// The front end's counter mapped to the agent's monotonic clock, and how well.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct ClockMapping {
    /// The counter at the anchoring exchange (the shortest round trip).
    pub anchor_ticks: u64,
    /// The agent's time at the anchor, ns.
    pub anchor_ns: f64,
    /// The counter's period on the agent's clock, ns per tick.
    pub ns_per_tick: f64,
    /// Half the anchor's round trip, ns: the uncertainty at the anchor.
    pub anchor_uncertainty_ns: f64,
    /// Fractional uncertainty of `ns_per_tick`.
    pub rate_uncertainty: f64,
    /// The counter's rate against nominal, minus one (measured, or 0 before it is).
    pub rate_error: f64,
    /// Whether the rate was measured (else nominal).
    pub rate_measured: bool,
}

impl ClockMapping {
    /// The agent's monotonic time of `ticks`, ns, and its uncertainty, ns.
    pub fn map(&self, ticks: u64) -> (u64, u64) {
        let dt = ticks as f64 - self.anchor_ticks as f64;
        let elapsed_ns = dt * self.ns_per_tick;
        let at = (self.anchor_ns + elapsed_ns).max(0.0);
        let uncertainty = self.anchor_uncertainty_ns + elapsed_ns.abs() * self.rate_uncertainty;
        // Saturating float-to-int: monotonic ns stay far below u64::MAX.
        (at.round() as u64, uncertainty.ceil() as u64)
    }
}

/// The time sync: ping exchanges since the front end's latest boot, and the mapping they
/// give. No I/O: the adapter feeds it exchanges.
#[derive(Debug, Clone)]
pub struct TimeSync {
    /// The counter's nominal rate, when a boot message said it.
    tick_hz: Option<u32>,
    samples: VecDeque<SyncSample>,
}

impl TimeSync {
    /// A sync of a counter running at `tick_hz`, with no exchanges yet.
    pub fn new(tick_hz: u32) -> Self {
        TimeSync {
            tick_hz: Some(tick_hz.max(1)),
            samples: VecDeque::with_capacity(SYNC_WINDOW),
        }
    }

    /// A sync of a counter of unknown rate: nothing is mapped until the exchanges span
    /// [`UNKNOWN_RATE_SPAN_MIN`] and the rate is measured.
    pub fn unknown_rate() -> Self {
        TimeSync {
            tick_hz: None,
            samples: VecDeque::with_capacity(SYNC_WINDOW),
        }
    }

    /// The counter's nominal rate, Hz, when known.
    pub fn tick_hz(&self) -> Option<u32> {
        self.tick_hz
    }

    /// Adds an exchange; the oldest beyond [`SYNC_WINDOW`] is forgotten. An exchange whose
    /// answer came before its question (a clock fault) is ignored.
    pub fn push(&mut self, sample: SyncSample) {
        if sample.received_ns < sample.sent_ns {
            return;
        }
        if self.samples.len() == SYNC_WINDOW {
            self.samples.pop_front();
        }
        self.samples.push_back(sample);
    }

    /// Exchanges held.
    pub fn len(&self) -> usize {
        self.samples.len()
    }

    /// Whether no exchange is held (nothing can be mapped).
    pub fn is_empty(&self) -> bool {
        self.samples.is_empty()
    }

    /// The mapping: anchored at the exchange with the shortest round trip; the rate from the
    /// shortest round trips of the older and the newer half once they span
    /// [`RATE_SPAN_MIN`], else nominal.
    pub fn mapping(&self) -> Option<ClockMapping> {
        let best = *self.samples.iter().min_by_key(|s| s.round_trip_ns())?;
        let span_min = match self.tick_hz {
            Some(_) => RATE_SPAN_MIN,
            None => UNKNOWN_RATE_SPAN_MIN,
        };
        let mut measured_rate = None;
        let half = self.samples.len() / 2;
        if half > 0 {
            let older = self
                .samples
                .iter()
                .take(half)
                .min_by_key(|s| s.round_trip_ns());
            let newer = self
                .samples
                .iter()
                .skip(half)
                .min_by_key(|s| s.round_trip_ns());
            if let (Some(a), Some(b)) = (older, newer) {
                let span_ns = b.middle_ns() - a.middle_ns();
                if span_ns >= span_min.as_nanos() as f64 && b.ticks > a.ticks {
                    let uncertainty =
                        (a.round_trip_ns() + b.round_trip_ns()) as f64 / 2.0 / span_ns;
                    measured_rate = Some((span_ns / (b.ticks - a.ticks) as f64, uncertainty));
                }
            }
        }
        let Some(tick_hz) = self.tick_hz else {
            // Nothing to hold the measurement against: it is the rate, or nothing maps.
            let (ns_per_tick, rate_uncertainty) = measured_rate?;
            return Some(ClockMapping {
                anchor_ticks: best.ticks,
                anchor_ns: best.middle_ns(),
                ns_per_tick,
                anchor_uncertainty_ns: best.round_trip_ns() as f64 / 2.0,
                rate_uncertainty,
                rate_error: 0.0,
                rate_measured: true,
            });
        };
        let nominal = 1e9 / f64::from(tick_hz);
        let mut ns_per_tick = nominal;
        let mut rate_uncertainty = NOMINAL_RATE_UNCERTAINTY;
        let mut rate_measured = false;
        if let Some((measured, uncertainty)) = measured_rate {
            if (measured / nominal - 1.0).abs() <= RATE_ERROR_MAX {
                ns_per_tick = measured;
                rate_uncertainty = uncertainty;
                rate_measured = true;
            } else {
                rate_uncertainty = RATE_ERROR_MAX;
            }
        }
        Some(ClockMapping {
            anchor_ticks: best.ticks,
            anchor_ns: best.middle_ns(),
            ns_per_tick,
            anchor_uncertainty_ns: best.round_trip_ns() as f64 / 2.0,
            rate_uncertainty,
            // The counter's own rate against nominal: nominal period over measured.
            rate_error: nominal / ns_per_tick - 1.0,
            rate_measured,
        })
    }
}

/// The refusal of a front end of another protocol version.
pub fn incompatible(protocol_version: u16) -> String {
    format!(
        "front end speaks detector protocol {protocol_version}, this agent {DETECTOR_PROTOCOL_VERSION}"
    )
}

/// The settings a checked set of tunables asks of the front end.
pub fn wanted_settings(tunables: &Tunables) -> (u16, u32, u32) {
    let all = tunables::in_force(crate::config::SensorKind::Detector, tunables);
    let get = |key| tunables::integer(&all, key).unwrap_or(0);
    (
        u16::try_from(get("threshold_mv")).unwrap_or(u16::MAX),
        u32::try_from(get("coincidence_window_ns")).unwrap_or(u32::MAX),
        u32::try_from(get("housekeeping_interval_ms")).unwrap_or(u32::MAX),
    )
}

/// A message as received, and when its frame's last byte was read (the agent's monotonic
/// clock).
type Received = (FromFrontEnd, u64);

/// Feeds `bytes` read at `at` to `decoder`: the messages they complete go to `inbox`;
/// returns how many frames were rejected (COBS, CRC, decoding, too long).
fn intake(
    decoder: &mut FrameDecoder,
    inbox: &mut VecDeque<Received>,
    bytes: &[u8],
    at: u64,
) -> u32 {
    let mut rejected = 0u32;
    decoder.push_slice(
        bytes,
        |frame: Result<FromFrontEnd, FrameError>| match frame {
            Ok(message) => inbox.push_back((message, at)),
            Err(e) => {
                tracing::debug!(error = %e, "Detector frame rejected.");
                rejected = rejected.saturating_add(1);
            }
        },
    );
    rejected
}

/// The fuzz target's body: `data` as a front end's bytes, split in two reads where its
/// first byte says, through the adapter's intake (frame decoder, rejected-frame count) and
/// its handling of every message (boots of any protocol version, events with any numbers
/// and counters, housekeeping, replies nobody asked for), on an adapter whose port is never
/// opened and whose time sync holds one exchange. Checks, beyond not panicking: every
/// reading is finite and carries the sensor's id; no more frames are rejected than the
/// input has delimiters.
pub fn fuzz_intake(data: &[u8]) {
    let mut device = DetectorDevice::new(SensorId(9), PathBuf::from("/nonexistent"), DEFAULT_BAUD);
    let mut sync = TimeSync::new(1_000_000);
    sync.push(SyncSample {
        sent_ns: 1_000_000,
        received_ns: 1_100_000,
        ticks: 0,
    });
    device.sync = Some(sync);
    let (first, rest) = data.split_first().map_or((0, data), |(f, r)| (*f, r));
    let cut = usize::from(first).min(rest.len());
    let (a, b) = rest.split_at(cut);
    let mut out = Vec::new();
    for (n, chunk) in [a, b].into_iter().enumerate() {
        let rejected = intake(&mut device.decoder, &mut device.inbox, chunk, n as u64);
        device.note_rejected(rejected);
        while let Some((message, _)) = device.inbox.pop_front() {
            // A boot of another version is refused: an error, and the input goes on.
            let _ = device.handle(message, &mut out);
        }
    }
    let delimiters = rest.iter().filter(|b| **b == 0).count() as u64;
    assert!(device.rejected_frames() <= delimiters);
    for r in &out {
        assert!(r.value.is_finite(), "{r:?}");
        assert_eq!(r.sensor, SensorId(9));
    }
}

/// The adapter.
#[derive(Debug)]
pub struct DetectorDevice {
    id: SensorId,
    clock: AgentClock,
    line: SerialLine,
    decoder: FrameDecoder,
    /// Messages read but not yet handled (read while waiting for a reply).
    inbox: VecDeque<Received>,
    /// (threshold mV, coincidence window ns, housekeeping interval ms) to apply.
    wanted: (u16, u32, u32),
    /// The settings the front end last answered with.
    observed: Option<DetectorSettings>,
    /// The front end's latest boot seen.
    boot: Option<BootInfo>,
    /// Why the front end is refused (another protocol version), until a compatible boot.
    refused: Option<String>,
    sync: Option<TimeSync>,
    last_sync: Option<Instant>,
    /// The number the next event should carry, once one was seen since the boot.
    next_event: Option<u32>,
    /// Event batches waiting for the first sync after a boot.
    unmapped: VecDeque<EventBatch>,
    next_request: u16,
    /// Frames rejected since the open.
    rejected_total: u64,
    /// Frames rejected since the last poll reported them.
    rejected_unreported: u32,
    /// The port is open from a reset: the next open keeps it (and the boot it read).
    kept_open: bool,
    /// Settings must be sent again (a boot reset them).
    settings_stale: bool,
    changed_descriptor: Option<SensorDescriptor>,
    /// Readings made while waiting for a reply, handed out at the next poll.
    pending: Vec<Reading>,
    silence_limit: Duration,
}

impl DetectorDevice {
    /// The front end on `path` at `baud`, with the default tunables until told otherwise.
    pub fn new(id: SensorId, path: PathBuf, baud: u32) -> Self {
        DetectorDevice {
            id,
            clock: AgentClock::new(),
            line: SerialLine::new(path, baud, IDLE_READ_TIMEOUT, MAX_FRAME_BYTES * 4),
            decoder: FrameDecoder::new(),
            inbox: VecDeque::new(),
            wanted: wanted_settings(&Tunables::new()),
            observed: None,
            boot: None,
            refused: None,
            sync: None,
            last_sync: None,
            next_event: None,
            unmapped: VecDeque::new(),
            next_request: 0,
            rejected_total: 0,
            rejected_unreported: 0,
            kept_open: false,
            settings_stale: true,
            changed_descriptor: None,
            pending: Vec::new(),
            // Housekeeping comes at least once a minute (the longest interval offered).
            silence_limit: Duration::from_secs(65),
        }
    }

    /// Writing the bytes read from the port to `capture`.
    pub fn with_capture(mut self, capture: Capture) -> Self {
        self.line.capture_to(capture);
        self
    }

    /// With a shorter or longer normal silence (tests).
    pub fn with_silence_limit(mut self, limit: Duration) -> Self {
        self.silence_limit = limit;
        self
    }

    /// Frames rejected since the port was opened.
    pub fn rejected_frames(&self) -> u64 {
        self.rejected_total
    }

    /// The settings the front end last answered with.
    pub fn observed(&self) -> Option<DetectorSettings> {
        self.observed
    }

    /// The time sync's mapping now, if there is one.
    pub fn mapping(&self) -> Option<ClockMapping> {
        self.sync.as_ref().and_then(TimeSync::mapping)
    }

    /// The front end's latest boot seen.
    pub fn boot(&self) -> Option<BootInfo> {
        self.boot
    }

    fn descriptor(&self) -> SensorDescriptor {
        let mut d = SensorDescriptor::new("Aloft detector front end");
        if let Some(boot) = &self.boot {
            d.firmware = Some(boot.firmware.to_string());
            d.serial_number = Some(format!("{:016x}", boot.serial));
            d = d
                .with_integer("protocol_version", i64::from(boot.protocol_version))
                .with_integer("boot_count", i64::from(boot.boot_count))
                .with_integer("tick_hz", i64::from(boot.tick_hz));
            d.parameters.push(aloft_protocol::DeviceParameter {
                name: "reset_cause".into(),
                value: aloft_protocol::ParameterValue::Text(boot.reset_cause.as_str().into()),
            });
        }
        if let Some(s) = &self.observed {
            d = d
                .with_integer("threshold_mv", i64::from(s.threshold_mv))
                .with_integer("coincidence_window_ns", i64::from(s.coincidence_window_ns))
                .with_integer(
                    "housekeeping_interval_ms",
                    i64::from(s.housekeeping_interval_ms),
                )
                .with_integer("baud", i64::from(s.baud));
        }
        d
    }

    fn write(&mut self, command: Command) -> Result<(u16, u64), DeviceError> {
        let id = self.next_request;
        self.next_request = self.next_request.wrapping_add(1);
        let mut frame = [0u8; MAX_FRAME_BYTES];
        let len = encode_frame(&ToFrontEnd { id, command }, &mut frame)
            .map_err(|e| DeviceError::Init(Box::new(e)))?;
        let path = self.line.path().to_path_buf();
        let port = self.line.port()?;
        let sent = crate::clock::monotonic_ns();
        port.write_all(&frame[..len])
            .and_then(|()| port.flush())
            .map_err(|e| DeviceError::lost(&path, e))?;
        Ok((id, sent))
    }

    /// Reads the port once; decoded messages go to the inbox, rejected frames are counted.
    fn read_frames(&mut self) -> Result<(), DeviceError> {
        let Some(bytes) = self.line.read()? else {
            return Ok(());
        };
        let at = crate::clock::monotonic_ns();
        let rejected = intake(&mut self.decoder, &mut self.inbox, bytes, at);
        self.note_rejected(rejected);
        Ok(())
    }

    fn note_rejected(&mut self, rejected: u32) {
        self.rejected_total += u64::from(rejected);
        self.rejected_unreported = self.rejected_unreported.saturating_add(rejected);
    }

    /// Sends `command` and waits up to `timeout` for its reply; other messages read
    /// meanwhile are handled (their readings wait in `pending`). `None` when no reply came.
    fn request(
        &mut self,
        command: Command,
        timeout: Duration,
    ) -> Result<Option<(ReplyBody, u64, u64)>, DeviceError> {
        let (id, sent) = self.write(command)?;
        let reply = self.await_message(
            timeout,
            |m| matches!(m, FromFrontEnd::Reply(r) if r.id == id),
        )?;
        Ok(match reply {
            Some((FromFrontEnd::Reply(reply), at)) => Some((reply.body, sent, at)),
            _ => None,
        })
    }

    /// Reads until a message `wanted` picks arrives or `timeout` passes, and returns it
    /// with its arrival time; every other message meanwhile is handled as in a poll (its
    /// readings kept for the next one).
    fn await_message(
        &mut self,
        timeout: Duration,
        wanted: impl Fn(&FromFrontEnd) -> bool,
    ) -> Result<Option<(FromFrontEnd, u64)>, DeviceError> {
        let deadline = Instant::now() + timeout;
        loop {
            while let Some((message, at)) = self.inbox.pop_front() {
                if wanted(&message) {
                    return Ok(Some((message, at)));
                }
                let mut out = std::mem::take(&mut self.pending);
                let handled = self.handle(message, &mut out);
                self.pending = out;
                handled?;
            }
            if Instant::now() >= deadline {
                return Ok(None);
            }
            self.read_frames()?;
        }
    }

    /// Sends the wanted settings; the front end's answers are the settings observed. A
    /// refusal is an error naming the setting (the previous settings stay in force).
    fn apply_settings(&mut self) -> Result<(), DeviceError> {
        let (threshold_mv, window_ns, housekeeping_ms) = self.wanted;
        let commands = [
            ("threshold_mv", Command::SetThreshold { mv: threshold_mv }),
            (
                "coincidence_window_ns",
                Command::SetCoincidenceWindow { ns: window_ns },
            ),
            (
                "housekeeping_interval_ms",
                Command::SetHousekeepingInterval {
                    ms: housekeeping_ms,
                },
            ),
        ];
        for (key, command) in commands {
            match self.request(command, REPLY_TIMEOUT)? {
                Some((ReplyBody::Settings(s), _, _)) => {
                    if self.observed != Some(s) {
                        self.observed = Some(s);
                        self.changed_descriptor = Some(self.descriptor());
                    }
                }
                Some((ReplyBody::Refused(refusal), _, _)) => {
                    tracing::warn!(
                        sensor = self.id.0,
                        key,
                        ?refusal,
                        "Detector front end refused a setting."
                    );
                    return Err(DeviceError::Init(
                        format!("the front end refused {key}: {refusal:?}").into(),
                    ));
                }
                Some((other, _, _)) => {
                    return Err(DeviceError::Init(
                        format!("the front end answered {key} with {other:?}").into(),
                    ));
                }
                None => {
                    return Err(DeviceError::NotAnswering(format!(
                        "no answer to {key} within {REPLY_TIMEOUT:?}"
                    )));
                }
            }
        }
        self.settings_stale = false;
        Ok(())
    }

    /// One ping exchange into the time sync; `false` when the front end did not answer.
    fn ping(&mut self) -> Result<bool, DeviceError> {
        let Some((body, sent, received)) = self.request(Command::Ping, REPLY_TIMEOUT)? else {
            return Ok(false);
        };
        let ReplyBody::Pong { ticks } = body else {
            return Ok(false);
        };
        let boot = self.boot;
        self.sync
            .get_or_insert_with(|| match boot {
                Some(b) => TimeSync::new(b.tick_hz),
                None => TimeSync::unknown_rate(),
            })
            .push(SyncSample {
                sent_ns: sent,
                received_ns: received,
                ticks,
            });
        self.last_sync = Some(Instant::now());
        Ok(true)
    }

    /// A burst of pings, then the mapping's quality as readings.
    fn sync_burst(&mut self, out: &mut Vec<Reading>) -> Result<(), DeviceError> {
        let mut answered = 0;
        for _ in 0..SYNC_BURST {
            if self.ping()? {
                answered += 1;
            }
        }
        if answered == 0 {
            return Err(DeviceError::NotAnswering(format!(
                "no answer to {SYNC_BURST} pings"
            )));
        }
        self.sync_readings(out);
        Ok(())
    }

    fn sync_readings(&self, out: &mut Vec<Reading>) {
        let Some(mapping) = self.mapping() else {
            return;
        };
        let time = self.clock.now();
        let quality = if mapping.rate_measured {
            Quality::GOOD
        } else {
            Quality::DEGRADED_INPUT
        };
        out.push(self.reading(
            Quantity::DetectorTimeUncertainty,
            time,
            mapping.anchor_uncertainty_ns * 1e-9,
            Quality::GOOD,
        ));
        out.push(self.reading(
            Quantity::DetectorClockRateError,
            time,
            mapping.rate_error,
            quality,
        ));
    }

    fn reading(
        &self,
        quantity: Quantity,
        time: Timestamp,
        value: f64,
        quality: Quality,
    ) -> Reading {
        Reading {
            sensor: self.id,
            quantity,
            time,
            value,
            quality,
        }
    }

    /// The timestamp of the front end's `ticks`: mapped to the agent's monotonic clock,
    /// with UTC carried over from `now` when it has one.
    fn stamp(mapping: &ClockMapping, ticks: u64, now: Timestamp) -> Timestamp {
        let (mono_ns, _) = mapping.map(ticks);
        match now.utc_ns {
            Some(utc) => {
                let offset = mono_ns as i64 - now.mono_ns as i64;
                Timestamp::with_utc(mono_ns, utc.saturating_add(offset), now.source)
            }
            None => Timestamp::monotonic(mono_ns),
        }
    }

    /// Handles one message; readings go to `out`. A boot of another protocol version is
    /// an error.
    fn handle(&mut self, message: FromFrontEnd, out: &mut Vec<Reading>) -> Result<(), DeviceError> {
        match message {
            FromFrontEnd::Boot(boot) => self.on_boot(boot)?,
            FromFrontEnd::Events(batch) => {
                if self.refused.is_none() {
                    self.unmapped.push_back(batch);
                    while self.unmapped.iter().map(|b| b.events.len()).sum::<usize>()
                        > UNMAPPED_EVENTS_MAX
                    {
                        // Their numbers stay unseen: the next batch's gap counts them.
                        self.unmapped.pop_front();
                    }
                    self.map_events(out);
                }
            }
            FromFrontEnd::Housekeeping(h) => {
                if self.refused.is_none() {
                    self.on_housekeeping(&h, out);
                }
            }
            FromFrontEnd::Reply(reply) => {
                tracing::debug!(
                    sensor = self.id.0,
                    id = reply.id,
                    "Detector reply to no waiting request."
                );
            }
        }
        Ok(())
    }

    fn on_boot(&mut self, boot: BootInfo) -> Result<(), DeviceError> {
        tracing::info!(
            sensor = self.id.0,
            firmware = %boot.firmware,
            protocol = boot.protocol_version,
            reset_cause = boot.reset_cause.as_str(),
            boot_count = boot.boot_count,
            "Detector front end booted."
        );
        self.boot = Some(boot);
        // Its counter, event numbers and settings start afresh.
        self.sync = Some(TimeSync::new(boot.tick_hz));
        self.last_sync = None;
        self.next_event = None;
        self.unmapped.clear();
        self.observed = Some(boot.settings);
        self.settings_stale = true;
        if boot.protocol_version != DETECTOR_PROTOCOL_VERSION {
            let why = incompatible(boot.protocol_version);
            tracing::error!(sensor = self.id.0, reason = %why, "Detector front end refused.");
            self.refused = Some(why.clone());
            self.changed_descriptor = Some(self.descriptor());
            return Err(DeviceError::Init(why.into()));
        }
        self.refused = None;
        self.changed_descriptor = Some(self.descriptor());
        Ok(())
    }

    /// Stamps and records the waiting events, if the sync has a mapping.
    fn map_events(&mut self, out: &mut Vec<Reading>) {
        let Some(mapping) = self.mapping() else {
            return;
        };
        let now = self.clock.now();
        while let Some(batch) = self.unmapped.pop_front() {
            let mut ticks = batch.first_ticks;
            if let Some(expected) = self.next_event {
                let missed = batch.first_event.wrapping_sub(expected);
                // A number below the expected one (wrapped) is a repeat: not a gap.
                if missed > 0 && missed < u32::MAX / 2 {
                    tracing::warn!(sensor = self.id.0, missed, "Detector events missed.");
                    out.push(self.reading(
                        Quantity::DetectorMissedEvents,
                        Self::stamp(&mapping, ticks, now),
                        f64::from(missed),
                        Quality::GOOD,
                    ));
                }
            }
            for (n, event) in batch.events.iter().enumerate() {
                ticks = ticks.saturating_add(u64::from(event.delta_ticks));
                let time = Self::stamp(&mapping, ticks, now);
                let number = batch.first_event.wrapping_add(n as u32);
                out.push(self.reading(
                    Quantity::MuonEventCount,
                    time,
                    f64::from(number),
                    Quality::GOOD,
                ));
                if event.channels.0 & 0b01 != 0 {
                    out.push(self.reading(
                        Quantity::SipmPulseHeightA,
                        time,
                        f64::from(event.pulse_a_mv) * 1e-3,
                        Quality::GOOD,
                    ));
                }
                if event.channels.0 & 0b10 != 0 {
                    out.push(self.reading(
                        Quantity::SipmPulseHeightB,
                        time,
                        f64::from(event.pulse_b_mv) * 1e-3,
                        Quality::GOOD,
                    ));
                }
                out.push(self.reading(
                    Quantity::MuonCoincidence,
                    time,
                    if event.channels.coincident() {
                        1.0
                    } else {
                        0.0
                    },
                    Quality::GOOD,
                ));
            }
            self.next_event = Some(
                batch
                    .first_event
                    .wrapping_add(u32::try_from(batch.events.len()).unwrap_or(0)),
            );
        }
    }

    fn on_housekeeping(&mut self, h: &Housekeeping, out: &mut Vec<Reading>) {
        let now = self.clock.now();
        let time = match self.mapping() {
            Some(mapping) => Self::stamp(&mapping, h.ticks, now),
            None => now,
        };
        // The counter's rate: the boot's word, else the time sync's measurement.
        let tick_hz = match (self.boot, self.mapping()) {
            (Some(b), _) => f64::from(b.tick_hz.max(1)),
            (None, Some(m)) => 1e9 / m.ns_per_tick,
            (None, None) => 0.0,
        };
        let interval_s = if tick_hz > 0.0 {
            f64::from(h.interval_ticks) / tick_hz
        } else {
            0.0
        };
        if interval_s > 0.0 {
            let live_s = (f64::from(h.interval_ticks.saturating_sub(h.dead_ticks))) / tick_hz;
            let dead = f64::from(h.dead_ticks) / f64::from(h.interval_ticks);
            out.push(self.reading(
                Quantity::SipmHitRateA,
                time,
                f64::from(h.hits_a) / interval_s,
                Quality::GOOD,
            ));
            out.push(self.reading(
                Quantity::SipmHitRateB,
                time,
                f64::from(h.hits_b) / interval_s,
                Quality::GOOD,
            ));
            if live_s > 0.0 {
                out.push(self.reading(
                    Quantity::MuonCountRate,
                    time,
                    f64::from(h.coincidences) / live_s,
                    Quality::GOOD,
                ));
            }
            out.push(self.reading(
                Quantity::DetectorDeadFraction,
                time,
                dead.min(1.0),
                if dead > 1.0 {
                    Quality::OUT_OF_RANGE
                } else {
                    Quality::GOOD
                },
            ));
        }
        out.push(self.reading(
            Quantity::SensorTemperature,
            time,
            f64::from(h.temperature_centi_c) / 100.0 + 273.15,
            Quality::GOOD,
        ));
        out.push(self.reading(
            Quantity::DetectorDroppedEvents,
            time,
            f64::from(h.dropped_events_total),
            Quality::GOOD,
        ));
        out.push(self.reading(
            Quantity::DetectorRejectedRequests,
            time,
            f64::from(h.rejected_frames_total),
            Quality::GOOD,
        ));
        out.push(self.reading(
            Quantity::DetectorRejectedFrames,
            time,
            self.rejected_total as f64,
            Quality::GOOD,
        ));
    }

    /// Reads until a boot message arrives or `timeout` passes; other messages are handled.
    fn await_boot(&mut self, timeout: Duration) -> Result<bool, DeviceError> {
        match self.await_message(timeout, |m| matches!(m, FromFrontEnd::Boot(_)))? {
            Some(boot) => {
                // Left in the inbox: the boot is handled where boots are (`settle`).
                self.inbox.push_front(boot);
                Ok(true)
            }
            None => Ok(false),
        }
    }

    /// Handles what the inbox holds, then brings settings and sync up to date after a boot.
    fn settle(&mut self, out: &mut Vec<Reading>) -> Result<(), DeviceError> {
        while let Some((message, _)) = self.inbox.pop_front() {
            self.handle(message, out)?;
        }
        if let Some(why) = &self.refused {
            return Err(DeviceError::Init(why.clone().into()));
        }
        if self.settings_stale {
            self.apply_settings()?;
        }
        let synced = self.sync.as_ref().is_some_and(|s| !s.is_empty());
        // Until the rate of a counter of unknown rate is measured, pings come often.
        let spacing = if self.mapping().is_some() {
            SYNC_INTERVAL
        } else {
            UNKNOWN_RATE_PING_SPACING
        };
        if !synced {
            self.sync_burst(out)?;
        } else if self.last_sync.is_none_or(|t| t.elapsed() >= spacing) {
            if self.ping()? {
                self.sync_readings(out);
            } else {
                self.last_sync = Some(Instant::now());
                tracing::debug!(sensor = self.id.0, "Detector ping unanswered.");
            }
        }
        out.append(&mut self.pending);
        self.map_events(out);
        Ok(())
    }
}

impl Device for DetectorDevice {
    fn open(&mut self) -> Result<SensorDescriptor, DeviceError> {
        if !std::mem::take(&mut self.kept_open) {
            self.line.open()?;
            self.decoder.reset();
            self.inbox.clear();
            // A front end that started before this open is not known to have booted again:
            // its counter and numbers go on; a boot message will say otherwise.
            self.sync = None;
            self.next_event = None;
            self.unmapped.clear();
        }
        self.pending.clear();
        self.rejected_total = 0;
        self.rejected_unreported = 0;
        self.settings_stale = true;
        let mut out = Vec::new();
        if self.refused.is_some() {
            // Only a compatible boot lifts a refusal: listen for one.
            self.await_boot(REPLY_TIMEOUT)?;
        }
        self.settle(&mut out)?;
        self.pending = out;
        self.changed_descriptor = None;
        Ok(self.descriptor())
    }

    fn poll(&mut self, out: &mut Vec<Reading>) -> Result<PollOutcome, DeviceError> {
        self.read_frames()?;
        self.settle(out)?;
        let rejected = std::mem::take(&mut self.rejected_unreported);
        if rejected > 0 {
            out.push(self.reading(
                Quantity::DetectorRejectedFrames,
                self.clock.now(),
                self.rejected_total as f64,
                Quality::GOOD,
            ));
        }
        Ok(PollOutcome::counting_bad(rejected, "corrupt frame(s)"))
    }

    fn close(&mut self) {
        self.kept_open = false;
        self.line.close();
    }

    fn interval(&self) -> Option<Duration> {
        None
    }

    fn set_tunables(&mut self, tunables: &Tunables) -> Result<(), DeviceError> {
        let wanted = wanted_settings(tunables);
        if wanted == self.wanted && !self.settings_stale {
            return Ok(());
        }
        let previous = std::mem::replace(&mut self.wanted, wanted);
        if self.line.port().is_err() {
            // Not open: the next open sends them.
            self.settings_stale = true;
            return Ok(());
        }
        if let Err(e) = self.apply_settings() {
            // The front end keeps what it had (a refusal changes nothing there); put back
            // the previous set too in case a part was taken.
            self.wanted = previous;
            if let Err(back) = self.apply_settings() {
                tracing::warn!(sensor = self.id.0, error = %back, "Detector settings not restored.");
                self.settings_stale = true;
            }
            return Err(e);
        }
        Ok(())
    }

    fn silence_limit(&self) -> Duration {
        self.silence_limit
    }

    fn take_descriptor(&mut self) -> Option<SensorDescriptor> {
        self.changed_descriptor.take()
    }

    fn resets_itself(&self) -> bool {
        true
    }

    fn reset_hard(&mut self) -> Result<(), DeviceError> {
        if self.line.port().is_err() {
            self.line.open()?;
            self.decoder.reset();
            self.inbox.clear();
        }
        let result = self.reset_exchange();
        match &result {
            Ok(()) => self.kept_open = true,
            Err(_) => self.close(),
        }
        result
    }
}

impl DetectorDevice {
    /// `Reset`, its `Resetting` reply, then the next boot (left in the inbox for the open).
    fn reset_exchange(&mut self) -> Result<(), DeviceError> {
        let previous = self.boot.map(|b| b.boot_count);
        match self.request(Command::Reset, REPLY_TIMEOUT)? {
            Some((ReplyBody::Resetting, _, _)) => {}
            Some((other, _, _)) => {
                return Err(DeviceError::NotAnswering(format!(
                    "the front end answered a reset with {other:?}"
                )));
            }
            None => {
                return Err(DeviceError::NotAnswering(format!(
                    "no answer to a reset within {REPLY_TIMEOUT:?}"
                )));
            }
        }
        if !self.await_boot(BOOT_TIMEOUT)? {
            return Err(DeviceError::NotAnswering(format!(
                "no boot message within {BOOT_TIMEOUT:?} of the reset"
            )));
        }
        tracing::info!(sensor = self.id.0, previous_boot_count = ?previous, "Detector front end reset by request.");
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample(sent_ns: u64, rtt_ns: u64, ticks: u64) -> SyncSample {
        SyncSample {
            sent_ns,
            received_ns: sent_ns + rtt_ns,
            ticks,
        }
    }

    #[test]
    fn the_shortest_round_trip_anchors_the_mapping_and_bounds_its_uncertainty() {
        // A 1 MHz counter started when the agent's clock read 5 s.
        let truth = |ns: u64| (ns - 5_000_000_000) / 1_000;
        let mut sync = TimeSync::new(1_000_000);
        for (sent, rtt) in [
            (6_000_000_000, 9_000_000),
            (6_100_000_000, 400_000),
            (6_200_000_000, 3_000_000),
        ] {
            sync.push(sample(sent, rtt, truth(sent + rtt / 2)));
        }
        let m = sync.mapping().unwrap_or_else(|| panic!("mapped"));
        assert_eq!(m.anchor_ticks, truth(6_100_200_000));
        assert!((m.anchor_uncertainty_ns - 200_000.0).abs() < 1.0);
        assert!(!m.rate_measured);
        let (at, uncertainty) = m.map(truth(6_150_000_000));
        assert!(at.abs_diff(6_150_000_000) < 1_000, "{at}");
        // Half the round trip plus 100 ppm of the 49.8 ms since the anchor.
        assert_eq!(uncertainty, 200_000 + 4_980);
    }

    #[test]
    fn the_counters_rate_is_measured_once_the_exchanges_span_long_enough() {
        // The counter runs 50 ppm fast against its nominal 1 MHz.
        let rate = 1.000_05;
        let ticks_at = |ns: u64| ((ns as f64) * 1e-3 * rate) as u64;
        let mut sync = TimeSync::new(1_000_000);
        for i in 0..20u64 {
            let sent = 1_000_000_000 + i * 1_000_000_000;
            let rtt = if i % 3 == 0 { 100_000 } else { 2_000_000 };
            sync.push(sample(sent, rtt, ticks_at(sent + rtt / 2)));
        }
        let m = sync.mapping().unwrap_or_else(|| panic!("mapped"));
        assert!(m.rate_measured);
        assert!((m.rate_error - 50e-6).abs() < 2e-6, "{}", m.rate_error);
        // 100 µs round trips 9 s apart: about 11 ppm.
        assert!(m.rate_uncertainty < 20e-6, "{}", m.rate_uncertainty);
        let (at, _) = m.map(ticks_at(30_000_000_000));
        assert!(at.abs_diff(30_000_000_000) < 100_000, "{at}");
    }

    #[test]
    fn a_rate_far_from_nominal_is_not_believed() {
        let mut sync = TimeSync::new(1_000_000);
        for i in 0..10u64 {
            let sent = i * 2_000_000_000;
            // A counter at half speed: a stalled or misconfigured clock.
            sync.push(sample(sent, 1_000, sent / 2_000));
        }
        let m = sync.mapping().unwrap_or_else(|| panic!("mapped"));
        assert!(!m.rate_measured);
        assert_eq!(m.rate_uncertainty, RATE_ERROR_MAX);
        assert_eq!(m.ns_per_tick, 1_000.0);
    }

    #[test]
    fn a_counter_of_unknown_rate_maps_once_its_rate_is_measured() {
        // A 12 MHz counter, its rate not told by a boot message.
        let ticks_at = |ns: u64| ns * 12 / 1_000;
        let mut sync = TimeSync::unknown_rate();
        for i in 0..5u64 {
            let sent = 1_000_000_000 + i * 100_000_000;
            sync.push(sample(sent, 50_000, ticks_at(sent + 25_000)));
        }
        assert!(sync.mapping().is_none(), "0.4 s is too short a span");
        for i in 5..20u64 {
            let sent = 1_000_000_000 + i * 100_000_000;
            sync.push(sample(sent, 50_000, ticks_at(sent + 25_000)));
        }
        let m = sync.mapping().unwrap_or_else(|| panic!("mapped"));
        assert!(m.rate_measured);
        assert!(
            (m.ns_per_tick - 1e3 / 12.0).abs() < 1e-6,
            "{}",
            m.ns_per_tick
        );
        let (at, _) = m.map(ticks_at(5_000_000_000));
        assert!(at.abs_diff(5_000_000_000) < 1_000, "{at}");
    }

    #[test]
    fn an_answer_before_its_question_is_ignored() {
        let mut sync = TimeSync::new(1_000);
        sync.push(SyncSample {
            sent_ns: 10,
            received_ns: 5,
            ticks: 1,
        });
        assert!(sync.is_empty());
        assert!(sync.mapping().is_none());
    }

    #[test]
    fn the_tunables_give_the_settings_and_the_defaults_fill_in() {
        assert_eq!(wanted_settings(&Tunables::new()), (40, 200, 1_000));
        let set = Tunables::from([(
            "threshold_mv".to_string(),
            aloft_protocol::sync::TunableValue::Integer(120),
        )]);
        assert_eq!(wanted_settings(&set), (120, 200, 1_000));
        assert_eq!(
            incompatible(2),
            "front end speaks detector protocol 2, this agent 1"
        );
    }
}
