//! The sensor supervisor: one supervised thread per sensor, its restarts and its power cycles.
//!
//! Each enabled sensor runs on its own thread (the drivers are blocking), in a loop of
//! open -> serve -> close: `Starting` while its [`Device`] opens, `Running` or `Degraded`
//! while it produces readings, `Failed` with a jittered exponential [`backoff`] before the
//! next automatic attempt, `Restarting` while an operator's (or the backoff's) restart is
//! under way. A disabled sensor's thread waits with its device closed, `Disabled`, until
//! it is enabled. What a sensor produces leaves as [`Record`]s on one bounded channel to the
//! store writer: its readings, a [`DescriptorRecord`] at every (re)start and a status record
//! at every state change.
//!
//! Every decision (when to poll, degrade, fail, back off, restart, recover) is made by the
//! sensor's [`supervision::Supervision`], which does no I/O. The thread here is its shell:
//! it opens and polls the device, waits for commands until the deadline the supervision
//! names, feeds what happened back as events, and carries out the actions it gets (records,
//! close, new interval, power cycle, answers).
//!
//! The sensors come as [`SensorSlot`]s built by [`crate::sensor`] (adapters, power lines,
//! slot assembly); this module depends on `sensor`, never the reverse.
//!
//! Other tasks reach the sensors through a [`SupervisorHandle`] (cloneable): `restart`,
//! soft (close, reopen, re-initialise) or hard (the sensor's power line off for `off_for`,
//! then the soft path), returns once the sensor is running again or has failed;
//! `reconfigure` changes the sampling interval (from the next tick, no reopen) and the
//! enabled flag (close, or open again) live, within what the part can do; `changes` and
//! `reports` let the uplink's live lane show every state change as it happens.
//!
//! Invariants: a sensor thread never panics on what a device does; every state change is
//! recorded with its reason ([`state`]); a full records channel slows the sensor threads
//! down (back-pressure) rather than dropping records; a closed channel stops them; a
//! stalled device (no reading for several times its normal silence) is treated as failed
//! and restarted, so no sensor stays silently dead.

pub mod backoff;
pub mod state;
pub mod supervision;

use std::sync::mpsc as std_mpsc;
use std::sync::{Arc, Mutex, MutexGuard};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use aloft_protocol::sync::SensorReport;
use aloft_protocol::{
    DescriptorRecord, Quality, Reading, Record, SensorDescriptor, SensorId, SensorState,
};
use tokio::sync::{mpsc, oneshot, watch};

use crate::clock::AgentClock;
use crate::config::SensorKind;
use crate::config::tunables::{self, Tunables};
use crate::sensor::power::{Level, powered_level};
use crate::sensor::{Device, LatestValues, PollOutcome};
pub use crate::sensor::{PowerSwitch, SensorSlot};
use backoff::BackoffPolicy;
use state::SensorHealth;
use supervision::{Action, Event, Next, Now, Request, Rules, Supervision};

/// How a restart is done.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum RestartKind {
    /// Close, reopen and re-initialise the device.
    Soft,
    /// Power off for the line's `off_for`, then the soft path.
    Hard,
}

/// Why the supervisor could not do what was asked.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SupervisorError {
    /// No sensor has this name.
    #[error("no sensor named {0}")]
    UnknownSensor(String),
    /// The sensor is disabled: there is nothing to restart.
    #[error("sensor {0} is disabled")]
    Disabled(String),
    /// A hard restart of a sensor without a power line.
    #[error("sensor {0} has no power line for a hard restart")]
    NoPowerLine(String),
    /// The sensor's thread has ended (the agent is stopping).
    #[error("sensor {0} is no longer supervised")]
    Gone(String),
    /// An interval for a device that sends at its own rate.
    #[error("sensor {name}: {} sends at its own rate, it has no interval", .kind.with_article())]
    NoInterval {
        /// The sensor.
        name: String,
        /// Its kind.
        kind: SensorKind,
    },
    /// An interval shorter than the part can measure.
    #[error("sensor {name}: interval {interval:?} is below the {min:?} {} can do", .kind.with_article())]
    IntervalTooShort {
        /// The sensor.
        name: String,
        /// Its kind.
        kind: SensorKind,
        /// What was asked.
        interval: Duration,
        /// The part's minimum.
        min: Duration,
    },
    /// Tunables the sensor's kind does not accept, or its device did not take; the
    /// previous ones stay in force.
    #[error("sensor {name}: {reason}")]
    Tunables {
        /// The sensor.
        name: String,
        /// Why, per refused key.
        reason: String,
    },
}

/// A sensor's thread could not be started (the supervisor did not start).
#[derive(Debug, thiserror::Error)]
#[error("cannot start the thread of sensor {sensor}: {source}")]
pub struct StartError {
    /// The sensor.
    pub sensor: String,
    /// What the OS said.
    pub source: std::io::Error,
}

/// How sensors are supervised.
#[derive(Debug, Clone, Copy, PartialEq)]
#[non_exhaustive]
pub struct SupervisorOptions {
    /// Delays between automatic restarts.
    pub backoff: BackoffPolicy,
    /// A degraded sensor is running again after this long without a problem.
    pub recover_after: Duration,
    /// A silence of this many times the device's normal silence is a failure.
    pub silences_before_failure: u32,
    /// Seed of the backoff jitter (mixed with each sensor's number).
    pub seed: u64,
}

impl Default for SupervisorOptions {
    fn default() -> Self {
        SupervisorOptions {
            backoff: BackoffPolicy::default(),
            recover_after: Duration::from_secs(5),
            silences_before_failure: 3,
            seed: AgentClock::new().now().mono_ns,
        }
    }
}

impl SupervisorOptions {
    /// With this backoff.
    pub fn with_backoff(mut self, backoff: BackoffPolicy) -> Self {
        self.backoff = backoff;
        self
    }

    /// Running again after `after` without a problem.
    pub fn with_recover_after(mut self, after: Duration) -> Self {
        self.recover_after = after;
        self
    }

    /// With this jitter seed.
    pub fn with_seed(mut self, seed: u64) -> Self {
        self.seed = seed;
        self
    }
}

type Reply = oneshot::Sender<SensorState>;
type ChangeReply = oneshot::Sender<()>;

/// A live change of what may change remotely (invariant 5): `None` leaves a field as it is.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct SensorChange {
    /// The new sampling interval (only for a device sampled on a schedule).
    pub interval: Option<Duration>,
    /// Whether the sensor runs: `false` closes its device, `true` opens it again.
    pub enabled: Option<bool>,
}

enum Command {
    Restart {
        kind: RestartKind,
        reason: String,
        reply: Reply,
    },
    Reconfigure {
        change: SensorChange,
        reason: String,
        reply: ChangeReply,
    },
    /// A checked, complete set of tunables for the device; answered with the device's
    /// refusal, if any.
    Tune {
        tunables: Tunables,
        reply: oneshot::Sender<Result<(), String>>,
    },
    Stop,
}

/// What the supervisor keeps of one sensor to control it from other tasks.
#[derive(Debug)]
struct SensorControl {
    name: String,
    kind: SensorKind,
    supervision: Arc<Mutex<Supervision>>,
    commands: std_mpsc::Sender<Command>,
    has_power: bool,
    /// The device is sampled on a schedule, so its interval can change.
    scheduled: bool,
    /// The tunables in force, complete (every key the kind declares).
    tunables: Arc<Mutex<Tunables>>,
}

impl SensorControl {
    /// Sends the sensor's thread the command `ask` makes around a reply channel and waits
    /// for its answer; [`SupervisorError::Gone`] when the thread has ended.
    async fn ask<T>(
        &self,
        ask: impl FnOnce(oneshot::Sender<T>) -> Command,
    ) -> Result<T, SupervisorError> {
        let (reply, answer) = oneshot::channel();
        self.commands
            .send(ask(reply))
            .map_err(|_| SupervisorError::Gone(self.name.clone()))?;
        answer
            .await
            .map_err(|_| SupervisorError::Gone(self.name.clone()))
    }
}

/// A cheap, cloneable handle on the running sensors for other tasks (the control task,
/// the uplink's live lane): restart, reconfigure, read health, follow changes.
///
/// Status changes: [`SupervisorHandle::changes`] is a `watch` of a counter bumped at every
/// state change, restart and reconfiguration of any sensor, from the sensor's own thread
/// at the moment it happens. A subscriber awaits `changed()` and then reads
/// [`SupervisorHandle::health`] (or [`SupervisorHandle::reports`]): it sees `Restarting`,
/// then `Running` with the new restart count, without polling and without waiting for the
/// store. Changes that come faster than the subscriber reads are coalesced (it sees the
/// newest), which is what a live view wants; the store keeps every one as a status record.
#[derive(Debug, Clone)]
pub struct SupervisorHandle {
    sensors: Arc<Vec<SensorControl>>,
    changes: Arc<watch::Sender<u64>>,
}

/// The running supervisor: a handle on every sensor's thread.
#[derive(Debug)]
pub struct Supervisor {
    handle: SupervisorHandle,
    threads: Vec<JoinHandle<()>>,
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

impl Supervisor {
    /// Starts a thread for every sensor; records go to `records`, every reading also to
    /// `latest`. A disabled sensor's thread sends its `Disabled` status and waits, its
    /// device closed, until it is enabled ([`SupervisorHandle::reconfigure`]) or stopped.
    pub async fn start(
        slots: Vec<SensorSlot>,
        options: SupervisorOptions,
        records: mpsc::Sender<Record>,
        latest: LatestValues,
    ) -> Result<Supervisor, StartError> {
        let clock = AgentClock::new();
        let (changes, _) = watch::channel(0u64);
        let changes = Arc::new(changes);
        let mut sensors = Vec::with_capacity(slots.len());
        let mut threads = Vec::with_capacity(slots.len());
        for mut slot in slots {
            let interval = slot.device.interval();
            // Checked at load; a set a test rig made up is refused here as the hub's would be.
            let wanted = match tunables::check(slot.kind, &slot.tunables) {
                Ok(()) => tunables::in_force(slot.kind, &slot.tunables),
                Err(reason) => {
                    tracing::error!(sensor = %slot.name, %reason, "Tunables refused; the kind's defaults are in force.");
                    tunables::in_force(slot.kind, &Tunables::new())
                }
            };
            // The device is not open yet: it keeps the set for its first open.
            if let Err(e) = slot.device.set_tunables(&wanted) {
                tracing::error!(sensor = %slot.name, error = %e, "Tunables not taken.");
            }
            let in_force = Arc::new(Mutex::new(wanted));
            let rules = Rules {
                backoff: options.backoff,
                recover_after: options.recover_after,
                silences_before_failure: options.silences_before_failure,
                seed: options.seed ^ u64::from(slot.id.0).wrapping_mul(0x9E37_79B9_7F4A_7C15),
            };
            let supervision = Arc::new(Mutex::new(Supervision::new(
                slot.id,
                slot.name.clone(),
                slot.enabled,
                interval,
                rules,
            )));
            if !slot.enabled {
                tracing::info!(sensor = %slot.name, "Sensor disabled in the config; not started.");
            }
            let (tx, rx) = std_mpsc::channel();
            // A device that resets itself on request restarts hard without a power line.
            let has_power = slot.power.is_some() || slot.device.resets_itself();
            let name = slot.name.clone();
            let runner = Runner {
                id: slot.id,
                name: slot.name.clone(),
                kind: slot.kind,
                device: slot.device,
                power: slot.power,
                simulated: slot.simulated,
                supervision: Arc::clone(&supervision),
                records: records.clone(),
                latest: latest.clone(),
                commands: rx,
                changes: Arc::clone(&changes),
                clock,
                restart_reply: None,
                change_reply: None,
                tunables: Arc::clone(&in_force),
            };
            let thread = std::thread::Builder::new()
                .name(format!("sensor-{}", slot.name))
                .spawn(move || runner.run())
                .map_err(|source| StartError {
                    sensor: name.clone(),
                    source,
                })?;
            threads.push(thread);
            sensors.push(SensorControl {
                name,
                kind: slot.kind,
                supervision,
                commands: tx,
                has_power,
                scheduled: interval.is_some(),
                tunables: in_force,
            });
        }
        Ok(Supervisor {
            handle: SupervisorHandle {
                sensors: Arc::new(sensors),
                changes,
            },
            threads,
        })
    }

    /// A handle for other tasks; it outlives nothing: after [`Supervisor::shutdown`] its
    /// calls answer [`SupervisorError::Gone`].
    pub fn handle(&self) -> SupervisorHandle {
        self.handle.clone()
    }

    /// Every sensor's health now, in config order.
    pub fn health(&self) -> Vec<SensorHealth> {
        self.handle.health()
    }

    /// Restarts the sensor named `sensor` ([`SupervisorHandle::restart`]).
    pub async fn restart(
        &self,
        sensor: &str,
        kind: RestartKind,
        reason: &str,
    ) -> Result<SensorState, SupervisorError> {
        self.handle.restart(sensor, kind, reason).await
    }

    /// Stops every sensor thread, closing its device, and waits for them.
    pub async fn shutdown(mut self) {
        self.handle.stop_all();
        let threads = std::mem::take(&mut self.threads);
        // Joining blocks; a device in the middle of a UBX exchange takes a second or two.
        let _ = tokio::task::spawn_blocking(move || {
            for t in threads {
                let _ = t.join();
            }
        })
        .await;
    }
}

impl Drop for Supervisor {
    fn drop(&mut self) {
        self.handle.stop_all();
    }
}

impl SupervisorHandle {
    fn sensor(&self, name: &str) -> Result<&SensorControl, SupervisorError> {
        self.sensors
            .iter()
            .find(|s| s.name == name)
            .ok_or_else(|| SupervisorError::UnknownSensor(name.to_string()))
    }

    fn stop_all(&self) {
        for s in self.sensors.iter() {
            // A thread that has already ended has nobody to tell.
            let _ = s.commands.send(Command::Stop);
        }
    }

    /// Every sensor's health now, in config order.
    pub fn health(&self) -> Vec<SensorHealth> {
        self.sensors
            .iter()
            .map(|s| lock(&s.supervision).health().clone())
            .collect()
    }

    /// The sensors' names and kinds, in config order.
    pub fn sensors(&self) -> Vec<(String, SensorKind)> {
        self.sensors
            .iter()
            .map(|s| (s.name.clone(), s.kind))
            .collect()
    }

    /// A counter bumped at every status change, restart or reconfiguration of any sensor
    /// (see the type's documentation for how to follow it).
    pub fn changes(&self) -> watch::Receiver<u64> {
        self.changes.subscribe()
    }

    /// Every sensor as the live lane reports it, in config order.
    pub fn reports(&self) -> Vec<SensorReport> {
        self.sensors
            .iter()
            .map(|s| {
                let supervision = lock(&s.supervision);
                let h = supervision.health();
                SensorReport {
                    sensor: h.sensor,
                    name: h.name.clone(),
                    kind: s.kind.as_str().to_string(),
                    state: h.state,
                    reason: h.reason.clone(),
                    restarts: h.restarts,
                    last_restart: h.last_restart.as_ref().map(|r| (r.time, r.reason.clone())),
                    last_error: h.last_error.clone(),
                    interval_ms: h
                        .interval
                        .map(|i| u32::try_from(i.as_millis()).unwrap_or(u32::MAX)),
                    enabled: h.enabled,
                    readings: h.readings,
                }
            })
            .collect()
    }

    /// Restarts the sensor named `sensor`; returns its state once it is running again
    /// (`Running`) or has failed (`Failed`, with an automatic retry scheduled).
    pub async fn restart(
        &self,
        sensor: &str,
        kind: RestartKind,
        reason: &str,
    ) -> Result<SensorState, SupervisorError> {
        let s = self.sensor(sensor)?;
        if lock(&s.supervision).health().state == SensorState::Disabled {
            return Err(SupervisorError::Disabled(sensor.to_string()));
        }
        if kind == RestartKind::Hard && !s.has_power {
            return Err(SupervisorError::NoPowerLine(sensor.to_string()));
        }
        let state = s
            .ask(|reply| Command::Restart {
                kind,
                reason: reason.to_string(),
                reply,
            })
            .await?;
        match state {
            // Disabled between the check above and the thread's turn.
            SensorState::Disabled => Err(SupervisorError::Disabled(sensor.to_string())),
            state => Ok(state),
        }
    }

    /// The tunables in force of `sensor`: every key its kind declares.
    pub fn tunables(&self, sensor: &str) -> Result<Tunables, SupervisorError> {
        Ok(lock(&self.sensor(sensor)?.tunables).clone())
    }

    /// Changes a sensor's tunables live: `wanted` is checked whole against its kind, the
    /// keys it leaves out go to their defaults, and the device takes the set without a
    /// restart. A refused set (a key or value the kind does not accept, or one the device
    /// did not take) changes nothing: the previous set stays in force. Returns the set in
    /// force.
    pub async fn tune(&self, sensor: &str, wanted: &Tunables) -> Result<Tunables, SupervisorError> {
        let s = self.sensor(sensor)?;
        tunables::check(s.kind, wanted).map_err(|reason| SupervisorError::Tunables {
            name: sensor.to_string(),
            reason,
        })?;
        let complete = tunables::in_force(s.kind, wanted);
        if *lock(&s.tunables) == complete {
            return Ok(complete);
        }
        s.ask(|reply| Command::Tune {
            tunables: complete.clone(),
            reply,
        })
        .await?
        .map_err(|reason| SupervisorError::Tunables {
            name: sensor.to_string(),
            reason: format!("the device did not take its tunables: {reason}"),
        })?;
        Ok(complete)
    }

    /// Changes a sensor's interval and enabled flag live, without restarting the agent or
    /// (for an interval) the device; `reason` goes into the status record. Returns once the
    /// sensor's thread has taken the change (a disabled sensor is then `Disabled`, an
    /// enabled one `Starting`). An interval is refused for a device that sends at its own
    /// rate and below what the part can do; nothing of a refused change is applied.
    pub async fn reconfigure(
        &self,
        sensor: &str,
        change: SensorChange,
        reason: &str,
    ) -> Result<(), SupervisorError> {
        let s = self.sensor(sensor)?;
        if let Some(interval) = change.interval {
            if !s.scheduled {
                return Err(SupervisorError::NoInterval {
                    name: sensor.to_string(),
                    kind: s.kind,
                });
            }
            if let Some(min) = s.kind.min_interval()
                && interval < min
            {
                return Err(SupervisorError::IntervalTooShort {
                    name: sensor.to_string(),
                    kind: s.kind,
                    interval,
                    min,
                });
            }
        }
        s.ask(|reply| Command::Reconfigure {
            change,
            reason: reason.to_string(),
            reply,
        })
        .await
    }
}

/// One sensor's thread: the device, the channels and the clock around its
/// [`Supervision`], which decides everything.
struct Runner {
    id: SensorId,
    name: String,
    kind: SensorKind,
    device: Box<dyn Device>,
    power: Option<PowerSwitch>,
    simulated: bool,
    supervision: Arc<Mutex<Supervision>>,
    records: mpsc::Sender<Record>,
    latest: LatestValues,
    commands: std_mpsc::Receiver<Command>,
    changes: Arc<watch::Sender<u64>>,
    clock: AgentClock,
    /// Whoever waits for the outcome of a restart.
    restart_reply: Option<Reply>,
    /// Whoever waits for a reconfiguration to be taken.
    change_reply: Option<ChangeReply>,
    /// The tunables in force, shared with the sensor's [`SensorControl`].
    tunables: Arc<Mutex<Tunables>>,
}

/// The records channel closed: the agent is stopping.
struct Closed;

impl Runner {
    fn run(mut self) {
        let enabled = lock(&self.supervision).health().enabled;
        tracing::info!(sensor = %self.name, kind = self.kind.as_str(), enabled, "Sensor supervision started.");
        let mut actions = Vec::new();
        let clock = self.clock;
        let stamp = move || clock.now();
        lock(&self.supervision).start(
            Now {
                at: Instant::now(),
                stamp: &stamp,
            },
            &mut actions,
        );
        let mut readings: Vec<Reading> = Vec::new();
        while self.execute(&mut actions).is_ok() {
            let next = lock(&self.supervision).next();
            let event = match next {
                Next::Stop => break,
                Next::Open => match self.open() {
                    Ok(event) => event,
                    Err(Closed) => break,
                },
                Next::Poll => match self.poll(&mut readings) {
                    Ok(event) => event,
                    Err(Closed) => break,
                },
                Next::Wait(until) => match self.receive(until) {
                    Some(request) => Event::Request(request),
                    None => Event::WaitOver,
                },
            };
            let clock = self.clock;
            let stamp = move || clock.now();
            let now = Now {
                at: Instant::now(),
                stamp: &stamp,
            };
            lock(&self.supervision).handle(event, now, &mut actions);
        }
        self.device.close();
        tracing::info!(sensor = %self.name, "Sensor supervision stopped.");
    }

    /// Opens the device; its descriptor is recorded before the event says so.
    fn open(&mut self) -> Result<Event, Closed> {
        match self.device.open() {
            Ok(descriptor) => {
                self.send_descriptor(descriptor)?;
                Ok(Event::Opened)
            }
            Err(e) => {
                tracing::warn!(sensor = %self.name, error = %e, "Sensor did not open.");
                Ok(Event::OpenFailed {
                    reason: e.to_string(),
                })
            }
        }
    }

    /// Polls the device; its readings (and a descriptor it learned) go out before the
    /// event says how the poll went.
    fn poll(&mut self, readings: &mut Vec<Reading>) -> Result<Event, Closed> {
        readings.clear();
        let outcome = match self.device.poll(readings) {
            Ok(outcome) => outcome,
            Err(e) => {
                tracing::warn!(sensor = %self.name, error = %e, "Sensor failed.");
                return Ok(Event::PollFailed {
                    reason: e.to_string(),
                });
            }
        };
        let count = readings.len();
        if count > 0 {
            self.forward(readings)?;
        }
        if let Some(d) = self.device.take_descriptor() {
            self.send_descriptor(d)?;
        }
        if let PollOutcome::Notice(notice) = &outcome {
            tracing::info!(sensor = %self.name, notice = %notice, "Sensor notice.");
        }
        Ok(Event::Polled {
            readings: count,
            outcome,
            silence_limit: self.device.silence_limit(),
        })
    }

    /// Waits for a command until `until` (for ever without one; only a queued command
    /// once it has passed). A closed command channel is a stop.
    fn receive(&mut self, until: Option<Instant>) -> Option<Request> {
        loop {
            return Some(match self.receive_command(until)? {
                Command::Tune { tunables, reply } => {
                    // Not the supervision's to decide: the device takes it or not.
                    let _ = reply.send(self.tune(tunables));
                    continue;
                }
                Command::Stop => Request::Stop,
                Command::Restart {
                    kind,
                    reason,
                    reply,
                } => {
                    self.restart_reply = Some(reply);
                    Request::Restart { kind, reason }
                }
                Command::Reconfigure {
                    change,
                    reason,
                    reply,
                } => {
                    self.change_reply = Some(reply);
                    Request::Reconfigure { change, reason }
                }
            });
        }
    }

    /// Gives the device a new set of tunables; on success it is the one in force, and a
    /// descriptor the change made is recorded.
    fn tune(&mut self, tunables: Tunables) -> Result<(), String> {
        match self.device.set_tunables(&tunables) {
            Ok(()) => {
                tracing::info!(sensor = %self.name, tunables = ?tunables, "Sensor tunables changed.");
                *lock(&self.tunables) = tunables;
                if let Some(d) = self.device.take_descriptor() {
                    // A closed records channel ends the thread at its next send.
                    let _ = self.send_descriptor(d);
                }
                self.changes.send_modify(|n| *n = n.wrapping_add(1));
                Ok(())
            }
            Err(e) => {
                tracing::warn!(sensor = %self.name, error = %e, "Sensor tunables not taken.");
                Err(e.to_string())
            }
        }
    }

    /// The next command until `until` (see [`Runner::receive`]); `None` when none came.
    fn receive_command(&mut self, until: Option<Instant>) -> Option<Command> {
        let command = match until {
            None => self.commands.recv().unwrap_or(Command::Stop),
            Some(until) => {
                let left = until.saturating_duration_since(Instant::now());
                let received = if left.is_zero() {
                    self.commands.try_recv().map_err(|e| match e {
                        std_mpsc::TryRecvError::Empty => std_mpsc::RecvTimeoutError::Timeout,
                        std_mpsc::TryRecvError::Disconnected => {
                            std_mpsc::RecvTimeoutError::Disconnected
                        }
                    })
                } else {
                    self.commands.recv_timeout(left)
                };
                match received {
                    Ok(c) => c,
                    Err(std_mpsc::RecvTimeoutError::Timeout) => return None,
                    Err(std_mpsc::RecvTimeoutError::Disconnected) => Command::Stop,
                }
            }
        };
        Some(command)
    }

    /// Carries out what the supervision decided, in order.
    fn execute(&mut self, actions: &mut Vec<Action>) -> Result<(), Closed> {
        for action in actions.drain(..) {
            match action {
                Action::Status(record) => {
                    if record.state == SensorState::Restarting {
                        tracing::info!(sensor = %self.name, restarts = record.restarts, reason = %record.reason, "Sensor restarting.");
                    } else {
                        tracing::info!(sensor = %self.name, state = ?record.state, reason = %record.reason, restarts = record.restarts, "Sensor state changed.");
                    }
                    self.changes.send_modify(|n| *n = n.wrapping_add(1));
                    self.send(Record::Status(record))?;
                }
                Action::Close => self.device.close(),
                Action::SetInterval(interval) => {
                    self.device.set_interval(interval);
                    tracing::info!(sensor = %self.name, interval_ms = interval.as_millis() as u64, "Sensor interval changed.");
                    self.changes.send_modify(|n| *n = n.wrapping_add(1));
                }
                Action::PowerCycle => {
                    if !self.reset_by_device() {
                        self.power_cycle();
                    }
                }
                Action::AnswerRestart(state) => {
                    if let Some(reply) = self.restart_reply.take() {
                        let _ = reply.send(state);
                    }
                }
                Action::AnswerChange => {
                    if let Some(reply) = self.change_reply.take() {
                        let _ = reply.send(());
                    }
                }
                Action::BackOff { delay, failures } => {
                    tracing::info!(sensor = %self.name, delay_ms = delay.as_millis() as u64, failures, "Sensor restart scheduled.");
                }
                Action::Stalled { silence } => {
                    tracing::warn!(sensor = %self.name, silence_ms = silence.as_millis() as u64, "Sensor stalled.");
                }
            }
        }
        Ok(())
    }

    /// A hard restart by the device's own reset when it has one: `true` when it reset,
    /// `false` (logged) when it has none or did not answer, and the power line is next.
    fn reset_by_device(&mut self) -> bool {
        if !self.device.resets_itself() {
            return false;
        }
        match self.device.reset_hard() {
            Ok(()) => {
                tracing::info!(sensor = %self.name, "Sensor reset by its own command.");
                true
            }
            Err(e) => {
                tracing::warn!(sensor = %self.name, error = %e, has_power = self.power.is_some(), "Sensor did not reset on command; cycling its power line.");
                false
            }
        }
    }

    /// Switches the power line off for its `off_for`, then on again.
    fn power_cycle(&mut self) {
        let Some(power) = self.power.as_mut() else {
            return;
        };
        let on = powered_level(power.active_low);
        let off = match on {
            Level::High => Level::Low,
            Level::Low => Level::High,
        };
        if let Err(e) = power.line.set(off) {
            tracing::warn!(sensor = %self.name, error = %e, "Power line not switched off; soft restart only.");
        } else {
            // The supply must stay off long enough for the device to reset; this is a
            // deliberate wait, not a poll.
            std::thread::sleep(power.off_for);
        }
        if let Err(e) = power.line.set(on) {
            tracing::error!(sensor = %self.name, error = %e, "Power line not switched back on.");
        }
    }

    fn forward(&self, readings: &mut Vec<Reading>) -> Result<(), Closed> {
        for r in readings.iter_mut() {
            r.sensor = self.id;
            if self.simulated {
                r.quality |= Quality::SIMULATED;
            }
        }
        self.latest.record(&self.name, readings);
        for r in readings.drain(..) {
            self.send(Record::Reading(r))?;
        }
        Ok(())
    }

    fn send_descriptor(&self, descriptor: SensorDescriptor) -> Result<(), Closed> {
        self.send(Record::Descriptor(DescriptorRecord {
            sensor: self.id,
            name: self.name.clone(),
            kind: self.kind.as_str().to_string(),
            time: self.clock.now(),
            descriptor,
        }))
    }

    fn send(&self, record: Record) -> Result<(), Closed> {
        self.records.blocking_send(record).map_err(|_| Closed)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::VecDeque;
    use std::sync::atomic::{AtomicBool, Ordering};

    use aloft_protocol::{Quantity, Timestamp};
    use tokio::time::{Instant as TokioInstant, timeout_at};

    use crate::sensor::DeviceError;

    /// What the scripted device does at a poll.
    #[derive(Debug, Clone)]
    enum Step {
        Reading,
        Silent,
        Degraded,
        Notice,
        Fail,
    }

    /// A device that follows a script, then produces one reading per poll.
    struct Scripted {
        script: Arc<Mutex<VecDeque<Step>>>,
        refuse_open: Arc<AtomicBool>,
        silence_limit: Duration,
    }

    impl Device for Scripted {
        fn open(&mut self) -> Result<SensorDescriptor, DeviceError> {
            if self.refuse_open.load(Ordering::SeqCst) {
                return Err(DeviceError::NotAnswering("scripted refusal".into()));
            }
            Ok(SensorDescriptor::new("scripted"))
        }

        fn poll(&mut self, out: &mut Vec<Reading>) -> Result<PollOutcome, DeviceError> {
            let step = lock(&self.script).pop_front().unwrap_or(Step::Reading);
            let reading = Reading {
                sensor: SensorId(99),
                quantity: Quantity::AirPressure,
                time: Timestamp::monotonic(AgentClock::new().now().mono_ns),
                value: 19_400.0,
                quality: Quality::GOOD,
            };
            match step {
                Step::Reading => out.push(reading),
                Step::Silent => {}
                Step::Degraded => {
                    out.push(reading);
                    return Ok(PollOutcome::Degraded("scripted trouble".into()));
                }
                Step::Notice => {
                    out.push(reading);
                    return Ok(PollOutcome::Notice("scripted notice".into()));
                }
                Step::Fail => return Err(DeviceError::NotAnswering("scripted failure".into())),
            }
            Ok(PollOutcome::Healthy)
        }

        fn close(&mut self) {}

        fn interval(&self) -> Option<Duration> {
            Some(Duration::from_millis(2))
        }

        fn silence_limit(&self) -> Duration {
            self.silence_limit
        }
    }

    struct Rig {
        supervisor: Supervisor,
        records: mpsc::Receiver<Record>,
        script: Arc<Mutex<VecDeque<Step>>>,
        refuse_open: Arc<AtomicBool>,
    }

    async fn rig(steps: Vec<Step>, options: SupervisorOptions, silence_limit: Duration) -> Rig {
        let script = Arc::new(Mutex::new(VecDeque::from(steps)));
        let refuse_open = Arc::new(AtomicBool::new(false));
        let slot = SensorSlot {
            id: SensorId(4),
            name: "static".into(),
            kind: SensorKind::Ms5611,
            enabled: true,
            device: Box::new(Scripted {
                script: Arc::clone(&script),
                refuse_open: Arc::clone(&refuse_open),
                silence_limit,
            }),
            power: None,
            simulated: true,
            tunables: Default::default(),
        };
        let (tx, records) = mpsc::channel(64);
        let supervisor = Supervisor::start(vec![slot], options, tx, LatestValues::new())
            .await
            .expect("started");
        Rig {
            supervisor,
            records,
            script,
            refuse_open,
        }
    }

    fn quick() -> SupervisorOptions {
        SupervisorOptions::default()
            .with_backoff(
                BackoffPolicy::new(Duration::from_millis(5), Duration::from_millis(20))
                    .with_jitter(0.0),
            )
            .with_recover_after(Duration::ZERO)
            .with_seed(1)
    }

    impl Rig {
        /// Status changes until (and with) the first that `done` accepts.
        async fn statuses_until(
            &mut self,
            mut done: impl FnMut(SensorState, &str) -> bool,
        ) -> Vec<(SensorState, String)> {
            let deadline = TokioInstant::now() + Duration::from_secs(10);
            let mut seen = Vec::new();
            loop {
                match timeout_at(deadline, self.records.recv()).await {
                    Ok(Some(Record::Reading(r))) => {
                        assert_eq!(r.sensor, SensorId(4), "the slot's id replaces the device's");
                        assert!(r.quality.contains(Quality::SIMULATED));
                    }
                    Ok(Some(Record::Status(s))) => {
                        let hit = done(s.state, &s.reason);
                        seen.push((s.state, s.reason));
                        if hit {
                            return seen;
                        }
                    }
                    Ok(Some(_)) => {}
                    other => panic!("no matching status: {other:?} after {seen:?}"),
                }
            }
        }

        async fn finish(mut self) {
            let drain = tokio::spawn(async move { while self.records.recv().await.is_some() {} });
            self.supervisor.shutdown().await;
            drain.abort();
        }
    }

    fn just_states(seen: &[(SensorState, String)]) -> Vec<SensorState> {
        seen.iter().map(|s| s.0).collect()
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_degraded_sensor_is_running_again_once_its_problems_stop() {
        let steps = vec![Step::Reading, Step::Degraded, Step::Degraded, Step::Reading];
        // Longer than a poll: the second degraded poll extends the episode, one record.
        let options = quick().with_recover_after(Duration::from_millis(50));
        let mut rig = rig(steps, options, Duration::from_secs(5)).await;
        let seen = rig
            .statuses_until(|s, r| s == SensorState::Running && r == "recovered")
            .await;
        assert_eq!(
            just_states(&seen),
            vec![
                SensorState::Starting,
                SensorState::Running,
                SensorState::Degraded,
                SensorState::Running
            ]
        );
        assert_eq!(seen[2].1, "scripted trouble");
        let health = &rig.supervisor.health()[0];
        assert!(health.problems >= 2, "both degraded polls counted");
        assert!(
            health.readings >= 4,
            "readings counted: {}",
            health.readings
        );
        rig.finish().await;
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_notice_is_recorded_without_leaving_the_running_state() {
        let mut rig = rig(vec![Step::Notice], quick(), Duration::from_secs(5)).await;
        let seen = rig.statuses_until(|_, r| r == "scripted notice").await;
        assert_eq!(seen.last().map(|s| s.0), Some(SensorState::Running));
        assert_eq!(rig.supervisor.health()[0].restarts, 0);
        rig.finish().await;
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_silent_device_is_degraded_then_failed_and_restarted() {
        let steps = vec![Step::Silent; 10_000];
        let mut rig = rig(steps, quick(), Duration::from_millis(30)).await;
        let seen = rig
            .statuses_until(|s, _| s == SensorState::Restarting)
            .await;
        assert_eq!(
            just_states(&seen),
            vec![
                SensorState::Starting,
                SensorState::Running,
                SensorState::Degraded,
                SensorState::Failed,
                SensorState::Restarting
            ]
        );
        assert!(seen[3].1.starts_with("no data for"), "{}", seen[3].1);
        lock(&rig.script).clear();
        rig.statuses_until(|s, _| s == SensorState::Running).await;
        rig.finish().await;
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn an_operator_restart_during_a_long_backoff_is_done_at_once_and_reports_failed() {
        // A backoff far longer than the test: only the operator's restart can end it.
        let options = quick().with_backoff(
            BackoffPolicy::new(Duration::from_secs(600), Duration::from_secs(600)).with_jitter(0.0),
        );
        let mut rig = rig(vec![Step::Reading], options, Duration::from_secs(5)).await;
        rig.refuse_open.store(true, Ordering::SeqCst);
        lock(&rig.script).push_back(Step::Fail);
        rig.statuses_until(|s, _| s == SensorState::Failed).await;

        let state = rig
            .supervisor
            .restart("static", RestartKind::Soft, "operator")
            .await;
        assert_eq!(state, Ok(SensorState::Failed));
        rig.refuse_open.store(false, Ordering::SeqCst);
        let state = rig
            .supervisor
            .restart("static", RestartKind::Soft, "operator again")
            .await;
        assert_eq!(state, Ok(SensorState::Running));
        let health = &rig.supervisor.health()[0];
        assert_eq!(health.restarts, 2);
        assert_eq!(
            health.last_restart.as_ref().map(|r| r.reason.as_str()),
            Some("soft restart: operator again")
        );
        rig.finish().await;
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_sensor_disabled_and_enabled_live_closes_and_reopens_without_counting_a_restart() {
        let mut rig = rig(vec![], quick(), Duration::from_secs(5)).await;
        rig.statuses_until(|s, _| s == SensorState::Running).await;
        let handle = rig.supervisor.handle();
        let mut changes = handle.changes();
        changes.borrow_and_update();

        let off = SensorChange {
            interval: None,
            enabled: Some(false),
        };
        assert_eq!(
            handle.reconfigure("static", off, "generation 2").await,
            Ok(())
        );
        let health = &handle.health()[0];
        assert_eq!(health.state, SensorState::Disabled);
        assert_eq!(health.reason, "disabled: generation 2");
        assert!(!health.enabled);
        assert!(
            changes.has_changed().unwrap_or(false),
            "the change is signalled"
        );
        assert_eq!(
            handle.restart("static", RestartKind::Soft, "anyone?").await,
            Err(SupervisorError::Disabled("static".into()))
        );
        // Disabling twice is no new change.
        assert_eq!(handle.reconfigure("static", off, "again").await, Ok(()));
        let seen = rig.statuses_until(|s, _| s == SensorState::Disabled).await;
        assert_eq!(
            seen.last().map(|s| s.1.as_str()),
            Some("disabled: generation 2")
        );

        let on = SensorChange {
            interval: None,
            enabled: Some(true),
        };
        assert_eq!(
            handle.reconfigure("static", on, "generation 3").await,
            Ok(())
        );
        let seen = rig.statuses_until(|s, _| s == SensorState::Running).await;
        assert_eq!(
            seen.first(),
            Some(&(SensorState::Starting, "enabled: generation 3".to_string()))
        );
        let health = &handle.health()[0];
        assert!(health.enabled);
        assert_eq!(health.restarts, 0, "switching off and on is not a restart");
        rig.finish().await;
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn intervals_the_part_cannot_do_are_refused_before_reaching_the_sensor() {
        let rig = rig(vec![], quick(), Duration::from_secs(5)).await;
        let handle = rig.supervisor.handle();
        let too_fast = SensorChange {
            interval: Some(Duration::from_micros(1)),
            enabled: None,
        };
        assert!(matches!(
            handle.reconfigure("static", too_fast, "x").await,
            Err(SupervisorError::IntervalTooShort { .. })
        ));
        assert_eq!(
            handle.reconfigure("pitot", too_fast, "x").await,
            Err(SupervisorError::UnknownSensor("pitot".into()))
        );
        assert_eq!(
            handle.sensors(),
            vec![("static".to_string(), SensorKind::Ms5611)]
        );
        rig.finish().await;
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_closed_records_channel_stops_the_sensor_thread() {
        let rig = rig(vec![], quick(), Duration::from_secs(5)).await;
        let Rig {
            supervisor,
            records,
            ..
        } = rig;
        drop(records);
        // The thread ends at its next record; a restart then finds nobody to do it.
        let restart = supervisor.restart("static", RestartKind::Soft, "anyone?");
        let answer = tokio::time::timeout(Duration::from_secs(10), restart).await;
        assert_eq!(answer, Ok(Err(SupervisorError::Gone("static".into()))));
        supervisor.shutdown().await;
    }
}
