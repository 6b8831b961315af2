//! The detector front end simulated on the host: the firmware's own logic
//! ([`aloft_detector::FrontEnd`] over a [`SimulatedDetector`]) behind a pseudo-terminal,
//! so the agent talks to it exactly as to the MCU's UART.
//!
//! [`SimulatedFrontEnd::spawn`] runs the simulated MCU as a [`SerialDevice`] in a
//! [`SimulatedPort`]: the
//! port's thread ticks it (every 10 ms, and at once when the agent writes), the device
//! reads its tick counter from a std clock ([`Instant`] since its start, at the
//! configured `tick_hz`), polls the front end and hands the port what the front end's own
//! pacing releases. Like the MCU, the device restarts itself: a `Reset` request restarts
//! the front end (a new tick counter from 0) with the boot count one higher and cause
//! `Software` once the `Resetting` reply has gone out; a `Stall` (with the fault hook)
//! stops its loop, and after [`FrontEndOptions::watchdog_timeout`] it restarts with cause
//! `Watchdog`. Each start draws fresh pulses (the seed plus the number of starts).
//!
//! Faults for tests: [`SimulatedFrontEnd::inject_bytes`] (bytes onto the line toward the
//! agent, between frames), [`SimulatedFrontEnd::unplug`] (the pty vanishes for a while, as
//! an unplugged USB adapter), [`SimulatedFrontEnd::silence`] (the line drops everything
//! for a while), [`SimulatedFrontEnd::hang`] (the MCU stops answering, without a watchdog,
//! until [`SimulatedFrontEnd::power_cycle`], which starts it afresh: boot count 1, cause
//! `PowerOn`).
//!
//! Invariants: the boot facts survive the device's own resets and only a power cycle
//! clears them; [`FrontEndStatus`] is published after every tick; the thread stops and the
//! pty closes on [`SimulatedFrontEnd::stop`] or drop.

use std::path::PathBuf;
use std::sync::mpsc::{self, Receiver, Sender, TryRecvError};
use std::sync::{Arc, Condvar, Mutex, MutexGuard, PoisonError};
use std::time::{Duration, Instant};

use aloft_detector::frontend::ns_to_ticks;
use aloft_detector::{
    Action, BootFacts, ConfigError, DetectorModel, FrontEnd, FrontEndConfig, FrontEndCounters,
    SimulatedDetector,
};
use aloft_protocol::detector::{DetectorSettings, ResetCause};

use crate::flight::{FlightState, Scenario};
use crate::serial::SerialDevice;
use crate::serial::pty::{Fault, PortCounters, PortOptions, PtyError, SimulatedPort};

/// Why the simulated front end could not start.
#[derive(Debug, thiserror::Error)]
pub enum FrontEndError {
    /// The front end's configuration is outside its ranges.
    #[error("invalid front-end configuration: {0}")]
    Config(#[source] ConfigError),
    /// The pseudo-terminal harness failed.
    #[error(transparent)]
    Port(#[from] PtyError),
}

/// Settings of a [`SimulatedFrontEnd`].
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct FrontEndOptions {
    /// The front end's configuration (serial, firmware version, tick rate, settings,
    /// fault hook).
    pub config: FrontEndConfig,
    /// The simulated detector.
    pub model: DetectorModel,
    /// The pulses' seed.
    pub seed: u64,
    /// How long a stalled main loop lasts before the watchdog resets it.
    pub watchdog_timeout: Duration,
    /// The pseudo-terminal harness (tick, symlink).
    pub port: PortOptions,
}

impl FrontEndOptions {
    /// A front end like the emulated board's (serial `serial`, firmware 0.1.0, a 12 MHz
    /// counter, the default settings at 115 200 baud), the default detector, pulses from
    /// `seed`, a 500 ms watchdog.
    pub fn new(serial: u64, seed: u64) -> Self {
        let firmware = aloft_protocol::detector::FirmwareVersion {
            major: 0,
            minor: 1,
            patch: 0,
        };
        Self {
            config: FrontEndConfig::new(serial, firmware, 12_000_000),
            model: DetectorModel::default(),
            seed,
            watchdog_timeout: Duration::from_millis(500),
            port: PortOptions::new(),
        }
    }

    /// With the fault hook built in (`Stall` honoured).
    pub fn fault_hook(mut self, enabled: bool) -> Self {
        self.config.fault_hook = enabled;
        self
    }

    /// Starting with `settings`.
    pub fn settings(mut self, settings: DetectorSettings) -> Self {
        self.config.settings = settings;
        self
    }

    /// With the simulated detector `model`.
    pub fn model(mut self, model: DetectorModel) -> Self {
        self.model = model;
        self
    }

    /// With a watchdog of `timeout`.
    pub fn watchdog_timeout(mut self, timeout: Duration) -> Self {
        self.watchdog_timeout = timeout;
        self
    }

    /// With the harness options `port`.
    pub fn port(mut self, port: PortOptions) -> Self {
        self.port = port;
        self
    }
}

/// What the simulated MCU is doing.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RunState {
    /// Its main loop runs.
    Running,
    /// Its main loop stalled (fault hook); the watchdog will reset it.
    Stalled,
    /// It hangs without a watchdog until power-cycled.
    Hung,
}

/// The simulated front end's state, as of its last tick.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FrontEndStatus {
    /// The current start's facts.
    pub boot: BootFacts,
    /// Starts since [`SimulatedFrontEnd::spawn`], the first included.
    pub starts: u32,
    /// What the MCU is doing.
    pub state: RunState,
    /// The settings in force.
    pub settings: DetectorSettings,
    /// The current start's counters.
    pub counters: FrontEndCounters,
    /// The current start's tick counter.
    pub ticks: u64,
}

/// What the handle asks of the device's thread.
#[derive(Debug, Clone, Copy)]
enum DeviceControl {
    PowerCycle,
    Hang,
}

#[derive(Debug)]
struct Shared {
    status: Mutex<FrontEndStatus>,
    changed: Condvar,
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    // Plain data behind the lock: a panic elsewhere leaves it usable.
    m.lock().unwrap_or_else(PoisonError::into_inner)
}

/// The simulated MCU as a [`SerialDevice`] (see the module docs).
#[derive(Debug)]
struct FrontEndDevice {
    options: FrontEndOptions,
    front_end: FrontEnd<SimulatedDetector>,
    started: Instant,
    boot: BootFacts,
    starts: u32,
    state: RunState,
    stalled_at: Instant,
    control: Receiver<DeviceControl>,
    shared: Arc<Shared>,
}

impl FrontEndDevice {
    fn new(
        options: FrontEndOptions,
        control: Receiver<DeviceControl>,
    ) -> Result<(Self, Arc<Shared>), ConfigError> {
        let boot = BootFacts {
            reset_cause: ResetCause::PowerOn,
            boot_count: 1,
        };
        let front_end = Self::front_end(&options, boot, 1)?;
        let now = Instant::now();
        let shared = Arc::new(Shared {
            status: Mutex::new(FrontEndStatus {
                boot,
                starts: 1,
                state: RunState::Running,
                settings: front_end.settings(),
                counters: front_end.counters(),
                ticks: 0,
            }),
            changed: Condvar::new(),
        });
        let device = Self {
            options,
            front_end,
            started: now,
            boot,
            starts: 1,
            state: RunState::Running,
            stalled_at: now,
            control,
            shared: Arc::clone(&shared),
        };
        Ok((device, shared))
    }

    fn front_end(
        options: &FrontEndOptions,
        boot: BootFacts,
        starts: u32,
    ) -> Result<FrontEnd<SimulatedDetector>, ConfigError> {
        let source =
            SimulatedDetector::new(options.model, options.seed.wrapping_add(u64::from(starts)));
        FrontEnd::new(options.config, boot, source)
    }

    /// Starts the MCU afresh after a reset of `cause`.
    fn restart(&mut self, boot: BootFacts) {
        self.starts += 1;
        // The configuration was valid at spawn and does not change.
        match Self::front_end(&self.options, boot, self.starts) {
            Ok(front_end) => self.front_end = front_end,
            Err(e) => tracing::error!(error = %e, "Simulated front end cannot restart."),
        }
        self.boot = boot;
        self.started = Instant::now();
        self.state = RunState::Running;
        tracing::info!(
            cause = %boot.reset_cause,
            boot_count = boot.boot_count,
            "Simulated front end restarted."
        );
    }

    fn reset(&mut self, cause: ResetCause) {
        self.restart(BootFacts {
            reset_cause: cause,
            boot_count: self.boot.boot_count.saturating_add(1),
        });
    }

    fn now_ticks(&self) -> u64 {
        let elapsed = self.started.elapsed().as_nanos();
        ns_to_ticks(
            u64::try_from(elapsed).unwrap_or(u64::MAX),
            self.options.config.tick_hz,
        )
    }

    fn apply_controls(&mut self) {
        loop {
            match self.control.try_recv() {
                Ok(DeviceControl::PowerCycle) => self.restart(BootFacts {
                    reset_cause: ResetCause::PowerOn,
                    boot_count: 1,
                }),
                Ok(DeviceControl::Hang) => {
                    tracing::info!("Simulated front end hangs.");
                    self.state = RunState::Hung;
                }
                Err(TryRecvError::Empty | TryRecvError::Disconnected) => return,
            }
        }
    }

    /// Hands the port what the front end's pacing releases now, and acts on a reset or
    /// stall whose reply has just gone out.
    fn transmit(&mut self, now: u64, out: &mut Vec<u8>) {
        while let Some(byte) = self.front_end.next_tx_byte(now) {
            out.push(byte);
        }
        match self.front_end.action() {
            Some(Action::Reset) => self.reset(ResetCause::Software),
            Some(Action::Stall) => {
                tracing::info!("Simulated front end stalls; the watchdog will reset it.");
                self.state = RunState::Stalled;
                self.stalled_at = Instant::now();
            }
            None => {}
        }
    }

    fn publish(&self, now: u64) {
        let status = FrontEndStatus {
            boot: self.boot,
            starts: self.starts,
            state: self.state,
            settings: self.front_end.settings(),
            counters: self.front_end.counters(),
            ticks: now,
        };
        let mut shared = lock(&self.shared.status);
        if *shared != status {
            *shared = status;
            self.shared.changed.notify_all();
        }
    }
}

impl SerialDevice for FrontEndDevice {
    fn baud(&self) -> u32 {
        self.options.config.settings.baud
    }

    fn tick(&mut self, _state: &FlightState, out: &mut Vec<u8>) {
        self.apply_controls();
        if self.state == RunState::Stalled
            && self.stalled_at.elapsed() >= self.options.watchdog_timeout
        {
            self.reset(ResetCause::Watchdog);
        }
        let now = self.now_ticks();
        if self.state == RunState::Running {
            self.front_end.poll(now);
            self.transmit(now, out);
        }
        self.publish(now);
    }

    fn receive(&mut self, bytes: &[u8], out: &mut Vec<u8>) {
        // A stalled or hung MCU does not read its UART: the bytes are lost.
        if self.state != RunState::Running {
            return;
        }
        let now = self.now_ticks();
        for &byte in bytes {
            self.front_end.receive(byte, now);
        }
        self.transmit(now, out);
    }
}

/// A simulated detector front end behind a pseudo-terminal (see the module docs).
#[derive(Debug)]
pub struct SimulatedFrontEnd {
    port: SimulatedPort,
    control: Sender<DeviceControl>,
    shared: Arc<Shared>,
}

impl SimulatedFrontEnd {
    /// Starts the front end (power-on, boot count 1) behind a new pty.
    pub fn spawn(options: FrontEndOptions) -> Result<Self, FrontEndError> {
        let (control, commands) = mpsc::channel();
        let port_options = options.port.clone();
        let seed = options.seed;
        let (device, shared) =
            FrontEndDevice::new(options, commands).map_err(FrontEndError::Config)?;
        // The harness's flight scenario is unused: the front end keeps its own clock.
        let scenario = Arc::new(Scenario::new(seed, 0));
        let port = SimulatedPort::spawn(device, scenario, port_options)?;
        Ok(Self {
            port,
            control,
            shared,
        })
    }

    /// The pty's path for the agent to open (`None` while unplugged).
    pub fn path(&self) -> Option<PathBuf> {
        self.port.path()
    }

    /// The state as of the last tick.
    pub fn status(&self) -> FrontEndStatus {
        *lock(&self.shared.status)
    }

    /// The harness's byte counters.
    pub fn port_counters(&self) -> PortCounters {
        self.port.counters()
    }

    /// Waits until `done` holds for the status, or `timeout` passes; the status that
    /// satisfied it, `None` on timeout.
    pub fn wait_for(
        &self,
        timeout: Duration,
        mut done: impl FnMut(&FrontEndStatus) -> bool,
    ) -> Option<FrontEndStatus> {
        let deadline = Instant::now() + timeout;
        let mut status = lock(&self.shared.status);
        loop {
            if done(&status) {
                return Some(*status);
            }
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                return None;
            }
            status = self
                .shared
                .changed
                .wait_timeout(status, left)
                .map(|(guard, _)| guard)
                .unwrap_or_else(|e| e.into_inner().0);
        }
    }

    /// Puts `bytes` on the line toward the agent, after what is already queued.
    pub fn inject_bytes(&self, bytes: Vec<u8>) -> Result<(), PtyError> {
        self.port.inject(Fault::Garbage(bytes))
    }

    /// The pty vanishes for `duration` (an unplugged adapter), then a new one appears.
    pub fn unplug(&self, duration: Duration) -> Result<(), PtyError> {
        self.port.inject(Fault::Vanish(duration))
    }

    /// The line goes silent for `duration` (a wedged adapter): what the front end sends
    /// meanwhile is lost; what the agent sends still arrives.
    pub fn silence(&self, duration: Duration) -> Result<(), PtyError> {
        self.port.inject(Fault::Stall(duration))
    }

    /// The MCU hangs without a watchdog: no output, no answers, until power-cycled.
    pub fn hang(&self) -> Result<(), PtyError> {
        self.control
            .send(DeviceControl::Hang)
            .map_err(|_| PtyError::Stopped)
    }

    /// Power off and on: the front end starts afresh, boot count 1, cause `PowerOn`.
    pub fn power_cycle(&self) -> Result<(), PtyError> {
        self.control
            .send(DeviceControl::PowerCycle)
            .map_err(|_| PtyError::Stopped)
    }

    /// Stops the thread and closes the pty; the harness's final counters.
    pub fn stop(self) -> Result<PortCounters, PtyError> {
        self.port.stop()
    }
}
