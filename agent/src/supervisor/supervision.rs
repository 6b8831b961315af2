//! One sensor's supervision decisions, with no I/O: events and `now` in, actions out.
//!
//! [`Supervision`] decides what the sensor's thread does next ([`Supervision::next`]: open
//! the device, poll it, wait for a command until a deadline, or stop) and what each
//! [`Event`] means: the device opened or did not, a poll produced readings, a problem or an
//! error, an operator asked for something, a wait ran out. It answers with [`Action`]s the
//! thread carries out in order: status records, closing the device, a new interval, a
//! power cycle, answers to whoever waits. The thread ([`super`]) owns the device, the
//! channels and the clock; it feeds events and executes actions and decides nothing, so
//! every decision here is tested with fake time (an `Instant` moved by hand).
//!
//! The life of a sensor: `Disabled` (device closed, waiting to be enabled), `Starting`
//! (opening), `Running` or `Degraded` (serving: polled on its schedule, or continuously for
//! a device that sends at its own rate), `Failed` (device closed, waiting out a backoff
//! delay), `Restarting` (an automatic or an operator's restart, then `Starting` again).
//!
//! Invariants, checked by the property test below over arbitrary event sequences:
//! - the state follows the phase: waiting to be enabled is `Disabled` (and not enabled),
//!   opening is `Starting`, serving is `Running` or `Degraded`, backing off is `Failed`;
//! - a backoff is pending only while `Failed`; its delay never exceeds the policy's cap, and
//!   without jitter the n-th consecutive failure waits `min(initial * factor^(n-1), max)`;
//!   an operator's restart, an enable, and a long enough healthy run start the sequence over;
//! - a disabled sensor is never opened nor polled;
//! - every reconfiguration is answered in the step that takes it, and a restart's requester
//!   is answered (`Running`, `Failed` or `Disabled`) before the thread waits for commands
//!   again;
//! - a degraded episode is one record (the first reason stays); a silence of the device's
//!   normal silence is `Degraded`, of `silences_before_failure` times it a failure;
//! - `restarts` grows by one for every restart, automatic or asked for, and never otherwise.

use std::time::{Duration, Instant};

use aloft_protocol::{SensorId, SensorState, StatusRecord, Timestamp};

use super::backoff::{Backoff, BackoffPolicy};
use super::state::SensorHealth;
use super::{RestartKind, SensorChange};
use crate::sensor::PollOutcome;

/// The reason of the automatic restart at the end of a backoff.
const AUTOMATIC_RESTART: &str = "automatic restart after failure";

/// The decision rules of a [`Supervision`].
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Rules {
    /// Delays between automatic restarts.
    pub backoff: BackoffPolicy,
    /// A degraded sensor is running again after this long without a problem.
    pub recover_after: Duration,
    /// A silence of this many times the device's normal silence is a failure.
    pub silences_before_failure: u32,
    /// Seed of this sensor's backoff jitter.
    pub seed: u64,
}

/// What an operator (or the hub's desired state) asks of the sensor.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Request {
    /// Restart the device; the requester waits for [`Action::AnswerRestart`].
    Restart {
        /// Soft or hard.
        kind: RestartKind,
        /// Why, for the status record.
        reason: String,
    },
    /// Change the interval or the enabled flag; answered by [`Action::AnswerChange`].
    Reconfigure {
        /// What changes.
        change: SensorChange,
        /// Why, for the status record.
        reason: String,
    },
    /// The agent is stopping.
    Stop,
}

/// What happened, as the thread saw it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Event {
    /// The device opened (its descriptor is already recorded).
    Opened,
    /// The device did not open.
    OpenFailed {
        /// Why, as the device said it.
        reason: String,
    },
    /// A poll returned (its readings are already forwarded).
    Polled {
        /// How many readings it produced.
        readings: usize,
        /// What it found beside them.
        outcome: PollOutcome,
        /// The device's normal silence now (it may follow the interval).
        silence_limit: Duration,
    },
    /// A poll failed.
    PollFailed {
        /// Why, as the device said it.
        reason: String,
    },
    /// A request arrived while waiting.
    Request(Request),
    /// The deadline of [`Next::Wait`] passed with no request.
    WaitOver,
}

/// What the thread must do, in order, after an event.
#[derive(Debug, Clone, PartialEq)]
pub enum Action {
    /// Record and announce this status change (a `Restarting` one begins a restart).
    Status(StatusRecord),
    /// Let go of the device.
    Close,
    /// Sample the device every `interval` from its next poll on; announce it.
    SetInterval(Duration),
    /// Switch the sensor's power line off for its `off_for`, then on (a hard restart).
    PowerCycle,
    /// Answer the restart's requester with this state.
    AnswerRestart(SensorState),
    /// Answer the reconfiguration's requester (it has been taken).
    AnswerChange,
    /// An automatic restart is scheduled after `delay` (for the log).
    BackOff {
        /// The wait.
        delay: Duration,
        /// Consecutive failures so far.
        failures: u32,
    },
    /// The device has been silent for `silence`: a failure (for the log).
    Stalled {
        /// How long.
        silence: Duration,
    },
}

/// What the thread does next.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Next {
    /// Open the device; then [`Event::Opened`] or [`Event::OpenFailed`].
    Open,
    /// Poll the device; then [`Event::Polled`] or [`Event::PollFailed`].
    Poll,
    /// Wait for a request until this instant (`None`: for ever; a time already
    /// past: only take a request already queued); then [`Event::Request`] or
    /// [`Event::WaitOver`].
    Wait(Option<Instant>),
    /// End supervision (close the device).
    Stop,
}

/// Where the sensor is in its life.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Phase {
    /// Device closed until it is enabled.
    Disabled,
    /// Opening the device.
    Opening,
    /// The device is open.
    Serving(Serving),
    /// Device closed until `until`, then an automatic restart.
    BackingOff { until: Instant },
    /// Supervision ended.
    Stopped,
}

/// The clock of an open device.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Serving {
    opened_at: Instant,
    last_data: Instant,
    last_problem: Option<Instant>,
    /// When the next poll is due: the schedule's next tick, or the last event's time for
    /// a device polled continuously.
    next_tick: Instant,
    /// The wait ended: the next thing to do is a poll.
    poll_due: bool,
}

/// One sensor's supervision state: its health, its backoff and where it is in its life.
#[derive(Debug)]
pub struct Supervision {
    health: SensorHealth,
    backoff: Backoff,
    rules: Rules,
    phase: Phase,
    /// A restart's requester waits for its outcome.
    restart_waiting: bool,
    /// The delay of the pending backoff, while `Failed`.
    pending_delay: Option<Duration>,
}

/// The time of an event: the monotonic instant decisions use, and the stamp of the status
/// records it causes (taken only when there is one to write).
#[derive(Clone, Copy)]
pub struct Now<'a> {
    /// When, on the monotonic clock.
    pub at: Instant,
    /// The timestamp of a record written now.
    pub stamp: &'a dyn Fn() -> Timestamp,
}

impl std::fmt::Debug for Now<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Now").field("at", &self.at).finish_non_exhaustive()
    }
}

/// `d` after `t`, or as far as the clock goes (an interval of centuries is not an error).
fn later(t: Instant, d: Duration) -> Instant {
    t.checked_add(d)
        .or_else(|| t.checked_add(Duration::from_secs(u64::from(u32::MAX))))
        .unwrap_or(t)
}

fn since(now: Now<'_>, then: Instant) -> Duration {
    now.at.saturating_duration_since(then)
}

impl Supervision {
    /// A sensor about to be supervised: `Starting` when enabled, `Disabled` otherwise;
    /// `interval` is `Some` for a device sampled on a schedule.
    pub fn new(
        sensor: SensorId,
        name: impl Into<String>,
        enabled: bool,
        interval: Option<Duration>,
        rules: Rules,
    ) -> Self {
        let mut health = SensorHealth::new(sensor, name, enabled);
        health.interval = interval;
        Supervision {
            health,
            backoff: Backoff::new(rules.backoff, rules.seed),
            rules,
            phase: Phase::Stopped,
            restart_waiting: false,
            pending_delay: None,
        }
    }

    /// The sensor's health now.
    pub fn health(&self) -> &SensorHealth {
        &self.health
    }

    /// The delay of the backoff being waited out; `None` unless `Failed` and waiting.
    pub fn pending_backoff(&self) -> Option<Duration> {
        self.pending_delay
    }

    /// Consecutive failures counted by the backoff.
    pub fn failures(&self) -> u32 {
        self.backoff.failures()
    }

    /// Supervision begins: the first status record (the stream says when supervision
    /// began), then opening, or waiting to be enabled.
    pub fn start(&mut self, now: Now<'_>, out: &mut Vec<Action>) {
        out.push(Action::Status(self.health.record((now.stamp)())));
        if self.health.enabled {
            self.open("agent started".to_string(), now, out);
        } else {
            self.phase = Phase::Disabled;
        }
    }

    /// What the thread does next.
    pub fn next(&self) -> Next {
        match self.phase {
            Phase::Disabled => Next::Wait(None),
            Phase::Opening => Next::Open,
            Phase::Serving(s) if s.poll_due => Next::Poll,
            Phase::Serving(s) => Next::Wait(Some(s.next_tick)),
            Phase::BackingOff { until } => Next::Wait(Some(until)),
            Phase::Stopped => Next::Stop,
        }
    }

    /// Takes `event` at `now`; appends what to do to `out`. An event that does not fit the
    /// phase (a poll result while backing off) changes nothing.
    pub fn handle(&mut self, event: Event, now: Now<'_>, out: &mut Vec<Action>) {
        match (self.phase, event) {
            (_, Event::Request(Request::Stop)) => {
                if matches!(self.phase, Phase::Serving(_) | Phase::Opening) {
                    out.push(Action::Close);
                }
                self.pending_delay = None;
                self.phase = Phase::Stopped;
            }
            (Phase::Stopped, _) => {}
            (Phase::Opening, Event::Opened) => {
                self.enter(SensorState::Running, "device opened", now, out);
                self.answer_restart(SensorState::Running, out);
                self.phase = Phase::Serving(Serving {
                    opened_at: now.at,
                    last_data: now.at,
                    last_problem: None,
                    next_tick: now.at,
                    poll_due: false,
                });
            }
            (Phase::Opening, Event::OpenFailed { reason }) => {
                self.health.problems = self.health.problems.saturating_add(1);
                out.push(Action::Close);
                self.fail(Duration::ZERO, &reason, now, out);
            }
            (Phase::Serving(mut s), Event::WaitOver) => {
                if now.at < s.next_tick {
                    return;
                }
                if let Some(interval) = self.health.interval {
                    s.next_tick = later(s.next_tick, interval);
                    // After a long stall, skip the missed ticks instead of bursting.
                    if s.next_tick < now.at {
                        s.next_tick = later(now.at, interval);
                    }
                }
                s.poll_due = true;
                self.phase = Phase::Serving(s);
            }
            (Phase::Serving(s), Event::PollFailed { reason }) if s.poll_due => {
                self.health.problems = self.health.problems.saturating_add(1);
                out.push(Action::Close);
                self.fail(since(now, s.opened_at), &reason, now, out);
            }
            (
                Phase::Serving(s),
                Event::Polled {
                    readings,
                    outcome,
                    silence_limit,
                },
            ) if s.poll_due => self.polled(s, readings, outcome, silence_limit, now, out),
            (Phase::Serving(mut s), Event::Request(request)) => {
                if self.serving_request(request, now, out) {
                    // A new interval starts its cadence now; the tick being waited for is
                    // still due, so nothing is polled early.
                    s.next_tick = match self.health.interval {
                        Some(interval) => s.next_tick.min(later(now.at, interval)),
                        None => now.at,
                    };
                    self.phase = Phase::Serving(s);
                }
            }
            (Phase::BackingOff { until }, Event::WaitOver) => {
                if now.at >= until {
                    self.restart(None, AUTOMATIC_RESTART, now, out);
                }
            }
            (Phase::BackingOff { .. }, Event::Request(request)) => match request {
                Request::Restart { kind, reason } => {
                    self.restart_waiting = true;
                    self.restart(Some(kind), &reason, now, out);
                }
                Request::Reconfigure { change, reason } => {
                    self.set_interval(change.interval, out);
                    if change.enabled == Some(false) {
                        self.disable(&reason, now, out);
                    } else {
                        // Enabled already: the backoff goes on.
                        out.push(Action::AnswerChange);
                    }
                }
                Request::Stop => {}
            },
            (Phase::Disabled, Event::Request(request)) => match request {
                // Nothing runs: a restart has nothing to do.
                Request::Restart { .. } => {
                    self.restart_waiting = true;
                    self.answer_restart(SensorState::Disabled, out);
                }
                Request::Reconfigure { change, reason } => {
                    self.set_interval(change.interval, out);
                    if change.enabled == Some(true) {
                        self.health.enabled = true;
                        // A sensor switched back on starts with a clean backoff.
                        self.backoff.reset();
                        self.open(format!("enabled: {reason}"), now, out);
                        out.push(Action::AnswerChange);
                    } else {
                        out.push(Action::AnswerChange);
                    }
                }
                Request::Stop => {}
            },
            // The thread does not report what it was not asked for; nothing to decide.
            (Phase::Disabled | Phase::Opening | Phase::Serving(_) | Phase::BackingOff { .. }, _) => {}
        }
    }

    /// A request while the device is open; `true` when it stays open.
    fn serving_request(&mut self, request: Request, now: Now<'_>, out: &mut Vec<Action>) -> bool {
        match request {
            Request::Restart { kind, reason } => {
                self.restart_waiting = true;
                out.push(Action::Close);
                self.restart(Some(kind), &reason, now, out);
                false
            }
            Request::Reconfigure { change, reason } => {
                self.set_interval(change.interval, out);
                if change.enabled == Some(false) {
                    out.push(Action::Close);
                    self.disable(&reason, now, out);
                    false
                } else {
                    // Running already.
                    out.push(Action::AnswerChange);
                    true
                }
            }
            Request::Stop => false,
        }
    }

    /// What a poll found: counts, degradation, notices, silence, recovery.
    fn polled(
        &mut self,
        mut s: Serving,
        readings: usize,
        outcome: PollOutcome,
        silence_limit: Duration,
        now: Now<'_>,
        out: &mut Vec<Action>,
    ) {
        s.poll_due = false;
        if self.health.interval.is_none() {
            s.next_tick = now.at;
        }
        let degraded = matches!(outcome, PollOutcome::Degraded(_));
        if degraded || readings > 0 {
            let health = &mut self.health;
            health.readings = health.readings.saturating_add(readings as u64);
            if degraded {
                health.problems = health.problems.saturating_add(1);
            }
        }
        if readings > 0 {
            s.last_data = now.at;
        }
        let state = self.health.state;
        match outcome {
            PollOutcome::Healthy => {}
            PollOutcome::Degraded(reason) => {
                s.last_problem = Some(now.at);
                // Stay on the first reason while degraded: one record per episode.
                if state != SensorState::Degraded {
                    self.enter(SensorState::Degraded, &reason, now, out);
                }
            }
            PollOutcome::Notice(reason) => self.enter(state, &reason, now, out),
        }
        let silence = since(now, s.last_data);
        let fail_at = silence_limit.saturating_mul(self.rules.silences_before_failure.max(1));
        if silence >= fail_at {
            out.push(Action::Stalled { silence });
            out.push(Action::Close);
            let healthy_for = since(now, s.opened_at).saturating_sub(silence);
            let reason = format!("no data for {:.1} s", silence.as_secs_f64());
            self.fail(healthy_for, &reason, now, out);
            return;
        }
        if silence >= silence_limit {
            s.last_problem = Some(now.at);
            if self.health.state != SensorState::Degraded {
                let reason = format!("no data for over {:.1} s", silence_limit.as_secs_f64());
                self.enter(SensorState::Degraded, &reason, now, out);
            }
        } else if self.health.state == SensorState::Degraded
            && s.last_problem
                .is_none_or(|t| since(now, t) >= self.rules.recover_after)
        {
            self.enter(SensorState::Running, "recovered", now, out);
        }
        self.phase = Phase::Serving(s);
    }

    /// The device failed (it is closed): `Failed` with the next attempt's delay, the
    /// restart's requester answered, the backoff waited out.
    fn fail(&mut self, healthy_for: Duration, reason: &str, now: Now<'_>, out: &mut Vec<Action>) {
        let delay = self.backoff.next_delay(healthy_for);
        out.push(Action::BackOff {
            delay,
            failures: self.backoff.failures(),
        });
        // The operator reads when the next attempt comes.
        let reason = format!("{reason}; next attempt in {:.1} s", delay.as_secs_f64());
        self.enter(SensorState::Failed, &reason, now, out);
        // An operator's restart that ends in a failure is answered now.
        self.answer_restart(SensorState::Failed, out);
        self.pending_delay = Some(delay);
        self.phase = Phase::BackingOff {
            until: later(now.at, delay),
        };
    }

    /// A restart begins (the device is closed): counted and recorded, the power cycled
    /// for a hard one, then opening again. An operator's restart starts the automatic
    /// sequence over.
    fn restart(
        &mut self,
        kind: Option<RestartKind>,
        reason: &str,
        now: Now<'_>,
        out: &mut Vec<Action>,
    ) {
        if kind.is_some() {
            self.backoff.reset();
        }
        let label = match kind {
            Some(RestartKind::Soft) => format!("soft restart: {reason}"),
            Some(RestartKind::Hard) => format!("hard restart: {reason}"),
            None => reason.to_string(),
        };
        self.pending_delay = None;
        out.push(Action::Status(
            self.health.begin_restart(label, (now.stamp)()),
        ));
        if kind == Some(RestartKind::Hard) {
            out.push(Action::PowerCycle);
        }
        self.open(format!("restarting: {reason}"), now, out);
    }

    /// The device is closed and stays so: `Disabled`, the change's requester answered
    /// (and a restart's, which now has nothing to restart).
    fn disable(&mut self, reason: &str, now: Now<'_>, out: &mut Vec<Action>) {
        self.health.enabled = false;
        self.pending_delay = None;
        self.enter(SensorState::Disabled, &format!("disabled: {reason}"), now, out);
        out.push(Action::AnswerChange);
        self.answer_restart(SensorState::Disabled, out);
        self.phase = Phase::Disabled;
    }

    /// `Starting` for `reason`, then opening.
    fn open(&mut self, reason: String, now: Now<'_>, out: &mut Vec<Action>) {
        self.pending_delay = None;
        self.enter(SensorState::Starting, &reason, now, out);
        self.phase = Phase::Opening;
    }

    /// A new interval for a device sampled on a schedule, when it is one.
    fn set_interval(&mut self, interval: Option<Duration>, out: &mut Vec<Action>) {
        if let Some(interval) = interval
            && self.health.interval.is_some()
            && self.health.interval != Some(interval)
        {
            self.health.interval = Some(interval);
            out.push(Action::SetInterval(interval));
        }
    }

    fn enter(&mut self, state: SensorState, reason: &str, now: Now<'_>, out: &mut Vec<Action>) {
        // The stamp is taken only for a change: most polls change nothing.
        if self.health.state == state && self.health.reason == reason {
            return;
        }
        if let Some(record) = self.health.enter(state, reason, (now.stamp)()) {
            out.push(Action::Status(record));
        }
    }

    fn answer_restart(&mut self, state: SensorState, out: &mut Vec<Action>) {
        if std::mem::take(&mut self.restart_waiting) {
            out.push(Action::AnswerRestart(state));
        }
    }
}
