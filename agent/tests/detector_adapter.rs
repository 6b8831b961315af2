//! The detector front end's adapter over a real pseudo-terminal, against a scripted front
//! end: a peer that answers the agent's requests as the firmware does (settings, pings,
//! reset and the boot after it) and sends what each test queues (events, boots of another
//! protocol version, corrupt frames), paced at the line's baud rate by the pty harness.

#![allow(clippy::unwrap_used)]

use std::collections::VecDeque;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use aloft_agent::clock::monotonic_ns;
use aloft_agent::config::SensorKind;
use aloft_agent::config::tunables::Tunables;
use aloft_agent::sensor::detector::{DetectorDevice, REPLY_TIMEOUT};
use aloft_agent::sensor::power::{Level, SimulatedPowerLine};
use aloft_agent::sensor::{Device, LatestValues, PollOutcome, PowerSwitch, SensorSlot};
use aloft_agent::supervisor::{RestartKind, Supervisor, SupervisorOptions};
use aloft_protocol::detector::{
    BootInfo, Channels, Command, DETECTOR_PROTOCOL_VERSION, DetectorSettings, Event, EventBatch,
    FirmwareVersion, FrameDecoder, FromFrontEnd, MAX_FRAME_BYTES, Refusal, Reply, ReplyBody,
    ResetCause, ToFrontEnd, encode_frame,
};
use aloft_protocol::sync::TunableValue;
use aloft_protocol::{ParameterValue, Quantity, Reading, SensorId, SensorState};
use aloft_sensors::flight::{FlightState, Scenario};
use aloft_sensors::serial::SerialDevice;
use aloft_sensors::serial::pty::{Fault, PortOptions, SimulatedPort};

const TICK_HZ: u32 = 1_000_000;
const BAUD: u32 = 115_200;

/// What the scripted front end is and does; shared with the test.
#[derive(Debug)]
struct Script {
    protocol_version: u16,
    boot_count: u32,
    /// Answers no request (a wedged firmware).
    silent: bool,
    /// Thresholds above this are refused as out of range.
    max_threshold_mv: u16,
    settings: DetectorSettings,
    /// The counter's origin (the last boot).
    started: Instant,
    /// Raw bytes to send at the next tick.
    outgoing: VecDeque<Vec<u8>>,
    requests: Vec<ToFrontEnd>,
    resets: u32,
}

fn default_settings() -> DetectorSettings {
    DetectorSettings {
        threshold_mv: 30,
        coincidence_window_ns: 100,
        housekeeping_interval_ms: 1_000,
        baud: BAUD,
    }
}

impl Script {
    fn new() -> Self {
        Script {
            protocol_version: DETECTOR_PROTOCOL_VERSION,
            boot_count: 1,
            silent: false,
            max_threshold_mv: 500,
            settings: default_settings(),
            started: Instant::now(),
            outgoing: VecDeque::new(),
            requests: Vec::new(),
            resets: 0,
        }
    }

    fn ticks(&self) -> u64 {
        (self.started.elapsed().as_nanos() / u128::from(1_000_000_000 / TICK_HZ)) as u64
    }

    fn boot(&self, reset_cause: ResetCause) -> FromFrontEnd {
        FromFrontEnd::Boot(BootInfo {
            firmware: FirmwareVersion {
                major: 1,
                minor: 2,
                patch: 3,
            },
            protocol_version: self.protocol_version,
            reset_cause,
            boot_count: self.boot_count,
            serial: 0xA10F_7000_0000_0042,
            tick_hz: TICK_HZ,
            settings: self.settings,
        })
    }

    /// Starts again (its counter from 0) and says so.
    fn reboot(&mut self, cause: ResetCause) {
        self.boot_count += 1;
        self.settings = default_settings();
        self.started = Instant::now();
        let boot = self.boot(cause);
        self.send(&boot);
    }

    fn send(&mut self, message: &FromFrontEnd) {
        self.outgoing.push_back(frame(message));
    }
}

fn frame(message: &FromFrontEnd) -> Vec<u8> {
    let mut out = [0u8; MAX_FRAME_BYTES];
    let len = encode_frame(message, &mut out).unwrap();
    out[..len].to_vec()
}

/// The scripted front end on the pty's master side.
struct ScriptedFrontEnd {
    script: Arc<Mutex<Script>>,
    decoder: FrameDecoder,
}

impl SerialDevice for ScriptedFrontEnd {
    fn baud(&self) -> u32 {
        BAUD
    }

    fn tick(&mut self, _state: &FlightState, out: &mut Vec<u8>) {
        let mut script = self.script.lock().unwrap();
        while let Some(bytes) = script.outgoing.pop_front() {
            out.extend(bytes);
        }
    }

    fn receive(&mut self, bytes: &[u8], out: &mut Vec<u8>) {
        let mut script = self.script.lock().unwrap();
        let mut requests = Vec::new();
        self.decoder
            .push_slice(bytes, |r: Result<ToFrontEnd, _>| requests.extend(r.ok()));
        for request in requests {
            script.requests.push(request);
            if script.silent {
                continue;
            }
            let max = script.max_threshold_mv;
            let body = match request.command {
                Command::Ping => ReplyBody::Pong {
                    ticks: script.ticks(),
                },
                Command::SetThreshold { mv } if mv > max => ReplyBody::Refused(Refusal::OutOfRange),
                Command::SetThreshold { mv } => {
                    script.settings.threshold_mv = mv;
                    ReplyBody::Settings(script.settings)
                }
                Command::SetCoincidenceWindow { ns } => {
                    script.settings.coincidence_window_ns = ns;
                    ReplyBody::Settings(script.settings)
                }
                Command::SetHousekeepingInterval { ms } => {
                    script.settings.housekeeping_interval_ms = ms;
                    ReplyBody::Settings(script.settings)
                }
                Command::GetSettings => ReplyBody::Settings(script.settings),
                Command::Reset => ReplyBody::Resetting,
                Command::Stall => ReplyBody::Refused(Refusal::NotBuiltIn),
            };
            out.extend(frame(&FromFrontEnd::Reply(Reply {
                id: request.id,
                body,
            })));
            if body == ReplyBody::Resetting {
                script.resets += 1;
                script.boot_count += 1;
                script.settings = default_settings();
                script.started = Instant::now();
                out.extend(frame(&script.boot(ResetCause::Software)));
            }
        }
    }
}

struct Rig {
    port: SimulatedPort,
    script: Arc<Mutex<Script>>,
    device: DetectorDevice,
}

fn rig() -> Rig {
    let script = Arc::new(Mutex::new(Script::new()));
    let peer = ScriptedFrontEnd {
        script: Arc::clone(&script),
        decoder: FrameDecoder::new(),
    };
    let scenario = Arc::new(Scenario::new(1, 1_780_000_000_000_000_000));
    let port = SimulatedPort::spawn(peer, scenario, PortOptions::new()).unwrap();
    let device = DetectorDevice::new(SensorId(3), port.path().unwrap(), BAUD);
    Rig {
        port,
        script,
        device,
    }
}

fn batch(first_event: u32, first_ticks: u64, n: usize) -> FromFrontEnd {
    let mut events = heapless::Vec::new();
    for i in 0..n {
        events
            .push(Event {
                delta_ticks: if i == 0 { 0 } else { 1_000 },
                channels: if i % 2 == 0 {
                    Channels::BOTH
                } else {
                    Channels::A
                },
                pulse_a_mv: 100 + i as u16,
                pulse_b_mv: if i % 2 == 0 { 90 } else { 0 },
            })
            .unwrap();
    }
    FromFrontEnd::Events(EventBatch {
        first_event,
        first_ticks,
        events,
    })
}

impl Rig {
    fn script(&self) -> std::sync::MutexGuard<'_, Script> {
        self.script.lock().unwrap()
    }

    /// Polls until `done` holds of everything read, for at most 10 s; the readings and
    /// every degraded outcome.
    fn poll_until(&mut self, done: impl Fn(&[Reading]) -> bool) -> (Vec<Reading>, Vec<String>) {
        let deadline = Instant::now() + Duration::from_secs(10);
        let (mut out, mut degraded) = (Vec::new(), Vec::new());
        while !done(&out) {
            assert!(Instant::now() < deadline, "not seen in 10 s: {out:?}");
            if let PollOutcome::Degraded(why) = self.device.poll(&mut out).unwrap() {
                degraded.push(why);
            }
        }
        (out, degraded)
    }
}

fn values(readings: &[Reading], q: Quantity) -> Vec<f64> {
    readings
        .iter()
        .filter(|r| r.quantity == q)
        .map(|r| r.value)
        .collect()
}

fn parameter(d: &aloft_protocol::SensorDescriptor, name: &str) -> Option<ParameterValue> {
    d.parameters
        .iter()
        .find(|p| p.name == name)
        .map(|p| p.value.clone())
}

#[test]
fn corrupt_frames_are_counted_and_reading_resumes_at_the_next_frame() {
    let mut rig = rig();
    rig.device.open().unwrap();
    {
        let mut script = rig.script();
        let t = script.ticks();
        script.send(&batch(0, t, 4));
        // Events 4..8 in a frame with one byte flipped: rejected by its CRC.
        let mut corrupt = frame(&batch(4, t + 4_000, 4));
        corrupt[7] = if corrupt[7] == 0x5a { 0x5b } else { 0x5a };
        script.outgoing.push_back(corrupt);
    }
    // Line noise between frames: one more rejected frame at its delimiter.
    rig.port
        .inject(Fault::Garbage(vec![0x13, 0x37, 0xfe, 0x00]))
        .unwrap();
    {
        let mut script = rig.script();
        let t = script.ticks();
        script.send(&batch(8, t, 4));
    }
    let (out, degraded) =
        rig.poll_until(|out| values(out, Quantity::MuonEventCount).contains(&11.0));
    assert_eq!(
        values(&out, Quantity::MuonEventCount),
        [0.0, 1.0, 2.0, 3.0, 8.0, 9.0, 10.0, 11.0]
    );
    // The four events of the corrupt frame are recorded as missed, not passed over.
    assert_eq!(values(&out, Quantity::DetectorMissedEvents), [4.0]);
    assert_eq!(rig.device.rejected_frames(), 2);
    assert!(
        degraded.iter().any(|d| d.contains("corrupt frame(s)")),
        "{degraded:?}"
    );
    assert_eq!(
        values(&out, Quantity::DetectorRejectedFrames).last(),
        Some(&2.0)
    );
    // Pulse heights in volts per channel, coincidence per event.
    assert_eq!(values(&out, Quantity::SipmPulseHeightA)[0], 0.1);
    assert_eq!(values(&out, Quantity::SipmPulseHeightB), [0.09; 4]);
    assert_eq!(
        values(&out, Quantity::MuonCoincidence),
        [1.0, 0.0, 1.0, 0.0, 1.0, 0.0, 1.0, 0.0]
    );
    rig.device.close();
    rig.port.stop().unwrap();
}

/// Queues one event now; polls until it is read; checks that its time is the truth within
/// the mapping's stated uncertainty. Returns the readings read.
fn one_event_is_stamped_within_the_stated_uncertainty(
    rig: &mut Rig,
    first_event: u32,
) -> Vec<Reading> {
    let (ticks, truth_ns) = {
        let mut script = rig.script();
        let ticks = script.ticks();
        let truth_ns = monotonic_ns();
        script.send(&batch(first_event, ticks, 1));
        (ticks, truth_ns)
    };
    let (out, _) = rig.poll_until(|out| !values(out, Quantity::MuonEventCount).is_empty());
    let event = out
        .iter()
        .find(|r| r.quantity == Quantity::MuonEventCount)
        .unwrap();
    let mapping = rig.device.mapping().unwrap();
    let (mapped, uncertainty) = mapping.map(ticks);
    assert_eq!(event.time.mono_ns, mapped);
    // The truth lies within the stated uncertainty (plus the counter's 1 µs resolution and
    // the moment the test took between reading the counter and the clock).
    assert!(
        event.time.mono_ns.abs_diff(truth_ns) <= uncertainty + 20_000,
        "{} vs {truth_ns}: {uncertainty} ns",
        event.time.mono_ns
    );
    out
}

#[test]
fn events_are_stamped_through_the_time_sync_within_its_stated_uncertainty() {
    let mut rig = rig();
    rig.device.open().unwrap();
    // A boot says the counter's rate (and restarts it): the sync starts over from it.
    rig.script().reboot(ResetCause::PowerOn);
    let (out, _) = rig.poll_until(|out| !values(out, Quantity::DetectorTimeUncertainty).is_empty());
    let descriptor = rig.device.take_descriptor().expect("the boot is described");
    assert_eq!(
        parameter(&descriptor, "tick_hz"),
        Some(ParameterValue::Integer(i64::from(TICK_HZ)))
    );
    let mapping = rig.device.mapping().expect("synced after the boot");
    assert!(!mapping.rate_measured, "too soon to measure the rate");
    // Half of a pty round trip with a paced 20-byte pong: well under 50 ms; and what the
    // stream says is what the mapping holds.
    let stated = values(&out, Quantity::DetectorTimeUncertainty);
    assert!(stated.iter().all(|s| *s < 0.05), "{stated:?}");
    assert_eq!(
        stated.last().copied(),
        Some(mapping.anchor_uncertainty_ns * 1e-9)
    );
    assert!(!values(&out, Quantity::DetectorClockRateError).is_empty());
    one_event_is_stamped_within_the_stated_uncertainty(&mut rig, 0);
    rig.device.close();
    rig.port.stop().unwrap();
}

#[test]
fn a_front_end_that_started_before_the_agent_is_mapped_once_its_rate_is_measured() {
    let mut rig = rig();
    // No boot message: the counter's rate is unknown at the open.
    rig.device.open().unwrap();
    assert!(rig.device.mapping().is_none());
    let started = Instant::now();
    one_event_is_stamped_within_the_stated_uncertainty(&mut rig, 7);
    assert!(started.elapsed() >= aloft_agent::sensor::detector::UNKNOWN_RATE_SPAN_MIN);
    let mapping = rig.device.mapping().unwrap();
    assert!(mapping.rate_measured);
    assert!(
        (mapping.ns_per_tick - 1_000.0).abs() < 1.0,
        "{}",
        mapping.ns_per_tick
    );
    rig.device.close();
    rig.port.stop().unwrap();
}

#[test]
fn a_front_end_of_another_protocol_version_is_refused_until_a_compatible_boot() {
    let mut rig = rig();
    rig.device.open().unwrap();
    {
        let mut script = rig.script();
        script.protocol_version = DETECTOR_PROTOCOL_VERSION + 1;
        script.boot_count = 2;
        let boot = script.boot(ResetCause::External);
        script.send(&boot);
        let t = script.ticks();
        script.send(&batch(0, t, 3));
    }
    let deadline = Instant::now() + Duration::from_secs(10);
    let mut out = Vec::new();
    let refusal = loop {
        assert!(Instant::now() < deadline, "no refusal");
        match rig.device.poll(&mut out) {
            Ok(_) => {}
            Err(e) => break e.to_string(),
        }
    };
    assert!(
        refusal.contains("front end speaks detector protocol 2, this agent 1"),
        "{refusal}"
    );
    // Nothing of that front end was read as events.
    assert!(values(&out, Quantity::MuonEventCount).is_empty(), "{out:?}");
    let descriptor = rig.device.take_descriptor().expect("the boot is described");
    assert_eq!(
        parameter(&descriptor, "protocol_version"),
        Some(ParameterValue::Integer(2))
    );
    // A reopen without a new boot stays refused.
    rig.device.close();
    let again = rig.device.open().unwrap_err().to_string();
    assert!(again.contains("protocol 2, this agent 1"), "{again}");
    // Reflashed and reset: a compatible boot lifts the refusal.
    rig.script().protocol_version = DETECTOR_PROTOCOL_VERSION;
    rig.device.close();
    rig.device.reset_hard().unwrap();
    let descriptor = rig.device.open().unwrap();
    assert_eq!(
        parameter(&descriptor, "protocol_version"),
        Some(ParameterValue::Integer(1))
    );
    rig.device.close();
    rig.port.stop().unwrap();
}

#[test]
fn a_hard_restart_is_the_firmwares_reset_answered_by_its_next_boot() {
    let mut rig = rig();
    rig.device.open().unwrap();
    rig.device.close();
    rig.device.reset_hard().unwrap();
    let descriptor = rig.device.open().unwrap();
    assert_eq!(
        parameter(&descriptor, "boot_count"),
        Some(ParameterValue::Integer(2))
    );
    assert_eq!(
        parameter(&descriptor, "reset_cause"),
        Some(ParameterValue::Text("software".into()))
    );
    assert_eq!(descriptor.firmware.as_deref(), Some("1.2.3"));
    assert_eq!(rig.script().resets, 1);
    // The tunables are sent again after the boot reset them.
    assert_eq!(rig.script().settings.threshold_mv, 40);
    // A silent firmware: the reset is reported as unanswered.
    rig.script().silent = true;
    rig.device.close();
    let started = Instant::now();
    let e = rig.device.reset_hard().unwrap_err().to_string();
    assert!(e.contains("no answer to a reset"), "{e}");
    assert!(started.elapsed() >= REPLY_TIMEOUT);
    rig.device.close();
    rig.port.stop().unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_supervisor_resets_by_command_and_cycles_the_power_line_when_the_firmware_is_silent() {
    let rig = rig();
    let line = SimulatedPowerLine::new();
    let slot = SensorSlot {
        id: SensorId(3),
        name: "muons".into(),
        kind: SensorKind::Detector,
        enabled: true,
        device: Box::new(rig.device),
        power: Some(PowerSwitch {
            line: Box::new(line.clone()),
            active_low: false,
            off_for: Duration::from_millis(10),
        }),
        simulated: false,
        tunables: Tunables::new(),
    };
    let (tx, mut records) = tokio::sync::mpsc::channel(4096);
    let drain = tokio::spawn(async move { while records.recv().await.is_some() {} });
    let supervisor = Supervisor::start(
        vec![slot],
        SupervisorOptions::default(),
        tx,
        LatestValues::new(),
    )
    .await
    .unwrap();
    let handle = supervisor.handle();
    let state = handle
        .restart("muons", RestartKind::Hard, "test")
        .await
        .unwrap();
    assert_eq!(state, SensorState::Running);
    assert_eq!(rig.script.lock().unwrap().resets, 1);
    assert!(line.transitions().is_empty(), "{:?}", line.transitions());
    rig.script.lock().unwrap().silent = true;
    let _ = handle
        .restart("muons", RestartKind::Hard, "test")
        .await
        .unwrap();
    assert_eq!(line.transitions(), [Level::Low, Level::High]);
    supervisor.shutdown().await;
    drain.abort();
    rig.port.stop().unwrap();
}

#[test]
fn tunables_are_applied_observed_and_a_refusal_keeps_the_previous_set() {
    let mut rig = rig();
    let descriptor = rig.device.open().unwrap();
    // The defaults are sent at the open; the front end's answer is what is observed.
    assert_eq!(
        parameter(&descriptor, "threshold_mv"),
        Some(ParameterValue::Integer(40))
    );
    let set = |mv: i64| {
        Tunables::from([
            ("threshold_mv".to_string(), TunableValue::Integer(mv)),
            (
                "coincidence_window_ns".to_string(),
                TunableValue::Integer(500),
            ),
        ])
    };
    rig.device.set_tunables(&set(120)).unwrap();
    let observed = rig.device.observed().unwrap();
    assert_eq!(observed.threshold_mv, 120);
    assert_eq!(observed.coincidence_window_ns, 500);
    let described = rig.device.take_descriptor().unwrap();
    assert_eq!(
        parameter(&described, "threshold_mv"),
        Some(ParameterValue::Integer(120))
    );
    // The firmware refuses 600 mV: reported, and the previous set stays in force.
    let e = rig.device.set_tunables(&set(600)).unwrap_err().to_string();
    assert!(e.contains("refused threshold_mv"), "{e}");
    assert_eq!(rig.device.observed().unwrap().threshold_mv, 120);
    assert_eq!(rig.script().settings.threshold_mv, 120);
    rig.device.close();
    rig.port.stop().unwrap();
}
