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
        f.debug_struct("Now")
            .field("at", &self.at)
            .finish_non_exhaustive()
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
            (
                Phase::Disabled | Phase::Opening | Phase::Serving(_) | Phase::BackingOff { .. },
                _,
            ) => {}
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
        self.enter(
            SensorState::Disabled,
            &format!("disabled: {reason}"),
            now,
            out,
        );
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

#[cfg(test)]
mod tests {
    use super::*;

    const INTERVAL: Duration = Duration::from_millis(100);
    const SILENCE: Duration = Duration::from_secs(1);

    fn rules() -> Rules {
        Rules {
            backoff: BackoffPolicy::new(Duration::from_millis(100), Duration::from_millis(1_600))
                .with_jitter(0.0)
                .with_reset_after(Duration::from_secs(10)),
            recover_after: Duration::from_secs(2),
            silences_before_failure: 3,
            seed: 1,
        }
    }

    /// A supervision driven by hand, on a clock that moves only when told.
    struct Rig {
        sup: Supervision,
        t0: Instant,
        elapsed: Duration,
    }

    impl Rig {
        fn new(enabled: bool, interval: Option<Duration>) -> (Rig, Vec<Action>) {
            Rig::with_rules(enabled, interval, rules())
        }

        fn with_rules(
            enabled: bool,
            interval: Option<Duration>,
            rules: Rules,
        ) -> (Rig, Vec<Action>) {
            let mut rig = Rig {
                sup: Supervision::new(SensorId(3), "static", enabled, interval, rules),
                t0: Instant::now(),
                elapsed: Duration::ZERO,
            };
            let mut out = Vec::new();
            let (at, stamp) = rig.now();
            rig.sup.start(Now { at, stamp: &stamp }, &mut out);
            (rig, out)
        }

        fn now(&self) -> (Instant, impl Fn() -> Timestamp + use<>) {
            let ns = u64::try_from(self.elapsed.as_nanos()).unwrap_or(u64::MAX);
            (self.t0 + self.elapsed, move || Timestamp::monotonic(ns))
        }

        fn advance(&mut self, by: Duration) {
            self.elapsed += by;
        }

        fn at(&self, after: Duration) -> Instant {
            self.t0 + after
        }

        fn step(&mut self, event: Event) -> Vec<Action> {
            let mut out = Vec::new();
            let (at, stamp) = self.now();
            self.sup.handle(event, Now { at, stamp: &stamp }, &mut out);
            out
        }

        fn request(&mut self, request: Request) -> Vec<Action> {
            self.step(Event::Request(request))
        }

        /// Opens the device and reaches its first poll.
        fn open(&mut self) -> Vec<Action> {
            assert_eq!(self.sup.next(), Next::Open);
            let mut out = self.step(Event::Opened);
            out.extend(self.step(Event::WaitOver));
            assert_eq!(self.sup.next(), Next::Poll);
            out
        }

        /// One poll with `readings` and `outcome`, then the wait to the next one.
        fn poll(&mut self, readings: usize, outcome: PollOutcome) -> Vec<Action> {
            assert_eq!(self.sup.next(), Next::Poll, "polled only when due");
            self.step(Event::Polled {
                readings,
                outcome,
                silence_limit: SILENCE,
            })
        }

        /// Waits out whatever is waited for, then steps the wait's end.
        fn wait_out(&mut self) -> Vec<Action> {
            let Next::Wait(Some(until)) = self.sup.next() else {
                panic!("not waiting with a deadline: {:?}", self.sup.next());
            };
            self.elapsed = self.elapsed.max(until.saturating_duration_since(self.t0));
            self.step(Event::WaitOver)
        }

        fn state(&self) -> (SensorState, &str) {
            let h = self.sup.health();
            (h.state, h.reason.as_str())
        }
    }

    fn statuses(actions: &[Action]) -> Vec<(SensorState, String)> {
        actions
            .iter()
            .filter_map(|a| match a {
                Action::Status(r) => Some((r.state, r.reason.clone())),
                _ => None,
            })
            .collect()
    }

    fn restart(kind: RestartKind, reason: &str) -> Request {
        Request::Restart {
            kind,
            reason: reason.into(),
        }
    }

    fn change(interval: Option<Duration>, enabled: Option<bool>, reason: &str) -> Request {
        Request::Reconfigure {
            change: SensorChange { interval, enabled },
            reason: reason.into(),
        }
    }

    fn failed(reason: &str) -> Event {
        Event::PollFailed {
            reason: reason.into(),
        }
    }

    #[test]
    fn an_enabled_sensor_records_its_first_state_then_opens() {
        let (rig, out) = Rig::new(true, Some(INTERVAL));
        assert_eq!(
            statuses(&out),
            vec![(SensorState::Starting, "agent started".to_string())]
        );
        assert_eq!(rig.sup.next(), Next::Open);
    }

    #[test]
    fn a_disabled_sensor_records_disabled_and_waits_for_commands_without_opening() {
        let (mut rig, out) = Rig::new(false, Some(INTERVAL));
        assert_eq!(statuses(&out)[0].0, SensorState::Disabled);
        assert_eq!(rig.sup.next(), Next::Wait(None));
        // Events the thread never reports while disabled change nothing.
        assert_eq!(rig.step(Event::Opened), vec![]);
        assert_eq!(rig.step(Event::WaitOver), vec![]);
        assert_eq!(rig.sup.next(), Next::Wait(None));
    }

    #[test]
    fn an_opened_device_is_running_polled_at_once_then_on_its_schedule() {
        let (mut rig, _) = Rig::new(true, Some(INTERVAL));
        let out = rig.open();
        assert_eq!(
            statuses(&out),
            vec![(SensorState::Running, "device opened".to_string())]
        );
        assert_eq!(rig.poll(1, PollOutcome::Healthy), vec![]);
        assert_eq!(rig.sup.next(), Next::Wait(Some(rig.at(INTERVAL))));
        rig.advance(Duration::from_millis(40));
        assert_eq!(
            rig.step(Event::WaitOver),
            vec![],
            "early: nothing to do yet"
        );
        assert_eq!(rig.sup.next(), Next::Wait(Some(rig.at(INTERVAL))));
        rig.wait_out();
        assert_eq!(rig.sup.next(), Next::Poll);
        assert_eq!(rig.sup.health().readings, 1);
    }

    #[test]
    fn a_device_without_a_schedule_is_polled_again_as_soon_as_no_command_is_queued() {
        let (mut rig, _) = Rig::new(true, None);
        rig.open();
        rig.advance(Duration::from_millis(7));
        rig.poll(0, PollOutcome::Healthy);
        assert_eq!(
            rig.sup.next(),
            Next::Wait(Some(rig.at(Duration::from_millis(7))))
        );
        rig.step(Event::WaitOver);
        assert_eq!(rig.sup.next(), Next::Poll);
    }

    #[test]
    fn ticks_missed_during_a_long_poll_are_skipped_instead_of_polled_in_a_burst() {
        let (mut rig, _) = Rig::new(true, Some(INTERVAL));
        rig.open();
        rig.advance(Duration::from_millis(350));
        rig.poll(1, PollOutcome::Healthy);
        // The tick at 100 ms is due: it is polled, and the next is a full interval on.
        rig.step(Event::WaitOver);
        rig.poll(1, PollOutcome::Healthy);
        assert_eq!(
            rig.sup.next(),
            Next::Wait(Some(rig.at(Duration::from_millis(450))))
        );
    }

    #[test]
    fn a_degraded_episode_is_one_record_with_its_first_reason_and_ends_after_recover_after() {
        let (mut rig, _) = Rig::new(true, Some(INTERVAL));
        rig.open();
        let out = rig.poll(1, PollOutcome::Degraded("bad CRC".into()));
        assert_eq!(
            statuses(&out),
            vec![(SensorState::Degraded, "bad CRC".to_string())]
        );
        for n in 1..=5 {
            rig.wait_out();
            let reason = format!("bad line {n}");
            assert_eq!(rig.poll(1, PollOutcome::Degraded(reason)), vec![]);
        }
        assert_eq!(rig.state(), (SensorState::Degraded, "bad CRC"));
        assert_eq!(rig.sup.health().problems, 6);
        // Healthy polls within recover_after of the last problem: still degraded.
        rig.wait_out();
        assert_eq!(rig.poll(1, PollOutcome::Healthy), vec![]);
        rig.advance(Duration::from_secs(2));
        rig.wait_out();
        let out = rig.poll(1, PollOutcome::Healthy);
        assert_eq!(
            statuses(&out),
            vec![(SensorState::Running, "recovered".to_string())]
        );
        assert_eq!(rig.sup.health().last_error.as_deref(), Some("bad CRC"));
    }

    #[test]
    fn a_notice_keeps_the_state_and_records_the_new_reason() {
        let (mut rig, _) = Rig::new(true, Some(INTERVAL));
        rig.open();
        let out = rig.poll(1, PollOutcome::Notice("model restored".into()));
        assert_eq!(
            statuses(&out),
            vec![(SensorState::Running, "model restored".to_string())]
        );
        assert_eq!(rig.sup.health().restarts, 0);
    }

    #[test]
    fn a_silence_of_the_normal_limit_is_degraded_and_of_three_times_it_a_failure() {
        let (mut rig, _) = Rig::new(true, None);
        rig.open();
        rig.advance(SILENCE);
        let out = rig.poll(0, PollOutcome::Healthy);
        assert_eq!(
            statuses(&out),
            vec![(SensorState::Degraded, "no data for over 1.0 s".to_string())]
        );
        rig.advance(SILENCE * 2);
        rig.step(Event::WaitOver);
        let out = rig.poll(0, PollOutcome::Healthy);
        assert_eq!(
            out[..2],
            [
                Action::Stalled {
                    silence: SILENCE * 3
                },
                Action::Close
            ]
        );
        assert_eq!(
            statuses(&out),
            vec![(
                SensorState::Failed,
                "no data for 3.0 s; next attempt in 0.1 s".to_string()
            )]
        );
        assert_eq!(rig.sup.pending_backoff(), Some(Duration::from_millis(100)));
    }

    #[test]
    fn readings_after_a_silence_recover_the_sensor_once_recover_after_has_passed() {
        let (mut rig, _) = Rig::new(true, None);
        rig.open();
        rig.advance(SILENCE);
        rig.poll(0, PollOutcome::Healthy);
        rig.step(Event::WaitOver);
        assert_eq!(
            rig.poll(3, PollOutcome::Healthy),
            vec![],
            "a problem just now"
        );
        rig.advance(Duration::from_secs(2));
        rig.step(Event::WaitOver);
        let out = rig.poll(1, PollOutcome::Healthy);
        assert_eq!(statuses(&out)[0].1, "recovered");
    }

    #[test]
    fn consecutive_failures_double_the_backoff_up_to_its_cap_and_each_restart_is_counted() {
        let (mut rig, _) = Rig::new(true, Some(INTERVAL));
        let mut delays = Vec::new();
        for n in 1..=7u32 {
            assert_eq!(rig.sup.next(), Next::Open);
            let out = rig.step(Event::OpenFailed {
                reason: "no such file".into(),
            });
            assert_eq!(out[0], Action::Close);
            let (state, reason) = rig.state();
            assert_eq!(state, SensorState::Failed);
            assert!(
                reason.starts_with("no such file; next attempt in "),
                "{reason}"
            );
            let delay = rig.sup.pending_backoff().expect("a backoff while failed");
            delays.push(delay.as_millis());
            assert_eq!(rig.sup.failures(), n);
            let out = rig.wait_out();
            assert_eq!(
                statuses(&out),
                vec![
                    (SensorState::Restarting, AUTOMATIC_RESTART.to_string()),
                    (
                        SensorState::Starting,
                        format!("restarting: {AUTOMATIC_RESTART}")
                    )
                ]
            );
            assert_eq!(rig.sup.health().restarts, n);
            assert_eq!(rig.sup.pending_backoff(), None);
        }
        assert_eq!(delays, vec![100, 200, 400, 800, 1_600, 1_600, 1_600]);
    }

    #[test]
    fn a_long_healthy_run_before_a_failure_starts_the_backoff_over() {
        let (mut rig, _) = Rig::new(true, None);
        rig.step(Event::OpenFailed { reason: "x".into() });
        rig.wait_out();
        rig.step(Event::OpenFailed { reason: "x".into() });
        assert_eq!(rig.sup.pending_backoff(), Some(Duration::from_millis(200)));
        rig.wait_out();
        rig.open();
        // Readings keep coming for longer than reset_after (10 s).
        for _ in 0..12 {
            rig.advance(Duration::from_millis(900));
            rig.poll(1, PollOutcome::Healthy);
            rig.step(Event::WaitOver);
        }
        rig.step(failed("port lost"));
        assert_eq!(rig.sup.failures(), 1);
        assert_eq!(rig.sup.pending_backoff(), Some(Duration::from_millis(100)));
    }

    #[test]
    fn an_operator_restart_during_a_backoff_is_done_at_once_and_starts_the_backoff_over() {
        let (mut rig, _) = Rig::new(true, Some(INTERVAL));
        rig.step(Event::OpenFailed { reason: "x".into() });
        rig.wait_out();
        rig.step(Event::OpenFailed { reason: "x".into() });
        assert_eq!(rig.sup.failures(), 2);
        let out = rig.request(restart(RestartKind::Soft, "operator"));
        assert_eq!(
            statuses(&out),
            vec![
                (
                    SensorState::Restarting,
                    "soft restart: operator".to_string()
                ),
                (SensorState::Starting, "restarting: operator".to_string())
            ]
        );
        assert_eq!(rig.sup.failures(), 0);
        assert_eq!(rig.sup.pending_backoff(), None);
        // It fails again: the requester hears Failed, and the sequence is at its start.
        let out = rig.step(Event::OpenFailed { reason: "x".into() });
        assert!(out.contains(&Action::AnswerRestart(SensorState::Failed)));
        assert_eq!(rig.sup.pending_backoff(), Some(Duration::from_millis(100)));
        assert_eq!(rig.sup.health().restarts, 2);
        assert_eq!(
            rig.sup
                .health()
                .last_restart
                .as_ref()
                .map(|r| r.reason.as_str()),
            Some("soft restart: operator")
        );
    }

    #[test]
    fn an_operator_restart_of_a_running_sensor_closes_it_and_is_answered_once_it_runs() {
        let (mut rig, _) = Rig::new(true, Some(INTERVAL));
        rig.open();
        rig.poll(1, PollOutcome::Healthy);
        let out = rig.request(restart(RestartKind::Soft, "operator"));
        assert_eq!(out[0], Action::Close);
        assert!(!out.iter().any(|a| matches!(a, Action::AnswerRestart(_))));
        assert_eq!(rig.sup.next(), Next::Open);
        let out = rig.step(Event::Opened);
        assert_eq!(
            out,
            vec![
                Action::Status(StatusRecord {
                    sensor: SensorId(3),
                    state: SensorState::Running,
                    reason: "device opened".into(),
                    restarts: 1,
                    time: Timestamp::monotonic(0),
                }),
                Action::AnswerRestart(SensorState::Running)
            ]
        );
    }

    #[test]
    fn a_hard_restart_cycles_the_power_between_the_restart_record_and_opening() {
        let (mut rig, _) = Rig::new(true, Some(INTERVAL));
        rig.open();
        let out = rig.request(restart(RestartKind::Hard, "wedged"));
        let kinds: Vec<&str> = out
            .iter()
            .map(|a| match a {
                Action::Close => "close",
                Action::Status(r) if r.state == SensorState::Restarting => "restarting",
                Action::PowerCycle => "power",
                Action::Status(r) if r.state == SensorState::Starting => "starting",
                _ => "other",
            })
            .collect();
        assert_eq!(kinds, vec!["close", "restarting", "power", "starting"]);
        assert_eq!(
            rig.sup
                .health()
                .last_restart
                .as_ref()
                .map(|r| r.reason.as_str()),
            Some("hard restart: wedged")
        );
    }

    #[test]
    fn a_restart_of_a_disabled_sensor_is_answered_disabled_and_counts_nothing() {
        let (mut rig, _) = Rig::new(false, None);
        let out = rig.request(restart(RestartKind::Soft, "anyone?"));
        assert_eq!(out, vec![Action::AnswerRestart(SensorState::Disabled)]);
        assert_eq!(rig.sup.health().restarts, 0);
        assert_eq!(rig.sup.next(), Next::Wait(None));
    }

    #[test]
    fn disabling_closes_the_device_and_enabling_reopens_it_with_a_clean_backoff_and_no_restart() {
        let (mut rig, _) = Rig::new(true, Some(INTERVAL));
        rig.step(Event::OpenFailed { reason: "x".into() });
        rig.wait_out();
        rig.open();
        let out = rig.request(change(None, Some(false), "generation 2"));
        assert_eq!(
            out,
            vec![
                Action::Close,
                Action::Status(StatusRecord {
                    sensor: SensorId(3),
                    state: SensorState::Disabled,
                    reason: "disabled: generation 2".into(),
                    restarts: 1,
                    time: Timestamp::monotonic(
                        u64::try_from(rig.elapsed.as_nanos()).unwrap_or(u64::MAX)
                    ),
                }),
                Action::AnswerChange
            ]
        );
        assert!(!rig.sup.health().enabled);
        assert_eq!(rig.sup.next(), Next::Wait(None));
        // Disabling again is answered and no news.
        assert_eq!(
            rig.request(change(None, Some(false), "again")),
            vec![Action::AnswerChange]
        );
        let out = rig.request(change(None, Some(true), "generation 3"));
        assert_eq!(
            statuses(&out),
            vec![(SensorState::Starting, "enabled: generation 3".to_string())]
        );
        assert_eq!(out.last(), Some(&Action::AnswerChange));
        assert!(rig.sup.health().enabled);
        assert_eq!(rig.sup.failures(), 0);
        assert_eq!(
            rig.sup.health().restarts,
            1,
            "switching off and on is no restart"
        );
        assert_eq!(rig.sup.next(), Next::Open);
    }

    #[test]
    fn disabling_during_a_backoff_cancels_it() {
        let (mut rig, _) = Rig::new(true, None);
        rig.step(Event::OpenFailed { reason: "x".into() });
        let out = rig.request(change(None, Some(false), "parked"));
        assert_eq!(out.last(), Some(&Action::AnswerChange));
        assert!(!out.contains(&Action::Close), "closed since the failure");
        assert_eq!(rig.state(), (SensorState::Disabled, "disabled: parked"));
        assert_eq!(rig.sup.pending_backoff(), None);
        assert_eq!(rig.sup.next(), Next::Wait(None));
    }

    #[test]
    fn enabling_an_enabled_sensor_is_answered_and_changes_nothing() {
        let (mut rig, _) = Rig::new(true, Some(INTERVAL));
        rig.open();
        rig.poll(1, PollOutcome::Healthy);
        let before = rig.sup.next();
        assert_eq!(
            rig.request(change(None, Some(true), "same")),
            vec![Action::AnswerChange]
        );
        assert_eq!(rig.sup.next(), before);
        rig.step(Event::OpenFailed { reason: "x".into() });
        rig.wait_out();
        rig.step(Event::OpenFailed { reason: "x".into() });
        let until = rig.sup.next();
        assert_eq!(
            rig.request(change(None, Some(true), "same")),
            vec![Action::AnswerChange]
        );
        assert_eq!(rig.sup.next(), until, "the backoff goes on");
    }

    #[test]
    fn a_new_interval_takes_its_cadence_from_now_without_polling_early() {
        let (mut rig, _) = Rig::new(true, Some(INTERVAL));
        rig.open();
        rig.poll(1, PollOutcome::Healthy);
        rig.advance(Duration::from_millis(10));
        let out = rig.request(change(Some(Duration::from_millis(30)), None, "faster"));
        assert_eq!(
            out,
            vec![
                Action::SetInterval(Duration::from_millis(30)),
                Action::AnswerChange
            ]
        );
        assert_eq!(
            rig.sup.next(),
            Next::Wait(Some(rig.at(Duration::from_millis(40))))
        );
        let out = rig.request(change(Some(Duration::from_secs(5)), None, "slower"));
        assert_eq!(out[0], Action::SetInterval(Duration::from_secs(5)));
        assert_eq!(
            rig.sup.next(),
            Next::Wait(Some(rig.at(Duration::from_millis(40)))),
            "the tick already due stays due"
        );
        assert_eq!(rig.sup.health().interval, Some(Duration::from_secs(5)));
        // The same interval again is no change.
        assert_eq!(
            rig.request(change(Some(Duration::from_secs(5)), None, "same")),
            vec![Action::AnswerChange]
        );
    }

    #[test]
    fn a_device_that_sends_at_its_own_rate_takes_no_interval() {
        let (mut rig, _) = Rig::new(false, None);
        assert_eq!(
            rig.request(change(Some(INTERVAL), None, "x")),
            vec![Action::AnswerChange]
        );
        assert_eq!(rig.sup.health().interval, None);
    }

    #[test]
    fn stop_ends_supervision_from_every_phase_closing_an_open_device() {
        let (mut rig, _) = Rig::new(true, Some(INTERVAL));
        assert_eq!(rig.request(Request::Stop), vec![Action::Close]);
        assert_eq!(rig.sup.next(), Next::Stop);
        assert_eq!(rig.step(Event::Opened), vec![], "stopped for good");

        let (mut rig, _) = Rig::new(true, Some(INTERVAL));
        rig.open();
        assert_eq!(rig.request(Request::Stop), vec![Action::Close]);
        assert_eq!(rig.sup.next(), Next::Stop);

        let (mut rig, _) = Rig::new(true, Some(INTERVAL));
        rig.step(Event::OpenFailed { reason: "x".into() });
        assert_eq!(rig.request(Request::Stop), vec![]);
        assert_eq!(
            (rig.sup.next(), rig.sup.pending_backoff()),
            (Next::Stop, None)
        );

        let (mut rig, _) = Rig::new(false, None);
        assert_eq!(rig.request(Request::Stop), vec![]);
        assert_eq!(rig.sup.next(), Next::Stop);
    }

    #[test]
    fn a_poll_failure_backs_off_after_closing_and_answers_no_one_who_did_not_ask() {
        let (mut rig, _) = Rig::new(true, Some(INTERVAL));
        rig.open();
        let out = rig.step(failed("NACK at 0x77"));
        assert_eq!(out[0], Action::Close);
        assert!(!out.iter().any(|a| matches!(a, Action::AnswerRestart(_))));
        assert_eq!(rig.sup.health().last_error.as_deref(), Some(rig.state().1));
        assert_eq!(rig.sup.health().problems, 1);
    }

    mod model {
        //! Arbitrary event sequences, fed as the thread would feed them (an event that fits
        //! what `next` asks for), against a small model of what must hold after each.

        use super::*;
        use proptest::prelude::*;

        /// One step of the world: how much time passes and what happens, read according to
        /// what the supervision waits for.
        #[derive(Debug, Clone)]
        struct Choice {
            advance_ms: u16,
            pick: u8,
            arg: u8,
            flag: bool,
        }

        fn choice() -> impl Strategy<Value = Choice> {
            (0u16..2_500, any::<u8>(), any::<u8>(), any::<bool>()).prop_map(
                |(advance_ms, pick, arg, flag)| Choice {
                    advance_ms,
                    pick,
                    arg,
                    flag,
                },
            )
        }

        /// What the property test knows independently of the supervision.
        #[derive(Debug, Default)]
        struct Model {
            restarts: u32,
            failures: u32,
            opened_at: Option<Duration>,
            last_data: Duration,
            restart_waiting: bool,
        }

        fn ceiling(policy: &BackoffPolicy, failures: u32) -> Duration {
            let secs = policy.initial.as_secs_f64() * 2f64.powi(failures as i32 - 1);
            Duration::from_secs_f64(secs.min(policy.max.as_secs_f64()))
        }

        fn check(
            jitter: bool,
            enabled: bool,
            scheduled: bool,
            choices: Vec<Choice>,
        ) -> Result<(), TestCaseError> {
            let policy = BackoffPolicy::new(Duration::from_millis(50), Duration::from_millis(800))
                .with_jitter(if jitter { 0.5 } else { 0.0 })
                .with_reset_after(Duration::from_secs(4));
            let rules = Rules {
                backoff: policy,
                recover_after: Duration::from_millis(700),
                silences_before_failure: 3,
                seed: 9,
            };
            let interval = scheduled.then_some(Duration::from_millis(200));
            let (mut rig, first) = Rig::with_rules(enabled, interval, rules);
            prop_assert_eq!(statuses(&first).len(), 1, "the first state is recorded");
            let mut model = Model::default();
            for c in choices {
                let before = (rig.sup.health().state, rig.sup.health().reason.clone());
                let advance = Duration::from_millis(u64::from(c.advance_ms));
                let mut is_reconfigure = false;
                let mut early = false;
                let next_before = rig.sup.next();
                let event = match rig.sup.next() {
                    Next::Stop => break,
                    Next::Open => {
                        rig.advance(advance);
                        if c.flag {
                            model.opened_at = Some(rig.elapsed);
                            model.last_data = rig.elapsed;
                            Event::Opened
                        } else {
                            Event::OpenFailed {
                                reason: "cannot open /dev/ttyACM0".into(),
                            }
                        }
                    }
                    Next::Poll => {
                        rig.advance(advance);
                        let readings = usize::from(c.arg % 3);
                        let outcome = match c.pick % 6 {
                            0 | 1 | 5 => PollOutcome::Healthy,
                            2 => PollOutcome::Degraded(format!("bad line {}", c.arg % 4)),
                            3 => PollOutcome::Notice(format!("notice {}", c.arg % 2)),
                            _ => PollOutcome::Healthy,
                        };
                        if c.pick % 6 == 4 {
                            failed("NACK")
                        } else {
                            if readings > 0 {
                                model.last_data = rig.elapsed;
                            }
                            Event::Polled {
                                readings,
                                outcome,
                                silence_limit: Duration::from_millis(500),
                            }
                        }
                    }
                    Next::Wait(deadline) => {
                        let pick = c.pick % 9;
                        if pick < 4 && deadline.is_some() {
                            // Nothing arrives before the deadline (or, for a wait cut short
                            // by the operating system, before it; nothing may come of that).
                            rig.advance(advance);
                            if let Some(until) = deadline
                                && pick != 3
                            {
                                let due = until.saturating_duration_since(rig.t0);
                                rig.elapsed = rig.elapsed.max(due);
                            }
                            early = deadline.is_some_and(|d| rig.t0 + rig.elapsed < d);
                            Event::WaitOver
                        } else {
                            // A request arrives before the deadline (or was queued).
                            let until = deadline.map(|d| d.saturating_duration_since(rig.t0));
                            let arrives = rig.elapsed + advance;
                            rig.elapsed =
                                until.map_or(arrives, |u| arrives.min(u).max(rig.elapsed));
                            let request = match (pick, c.pick) {
                                (_, 255) => Request::Stop,
                                (0..=4, _) => restart(
                                    if c.flag {
                                        RestartKind::Hard
                                    } else {
                                        RestartKind::Soft
                                    },
                                    "operator",
                                ),
                                (5 | 6, _) => change(None, Some(c.flag), "desired"),
                                _ => change(
                                    Some(Duration::from_millis(u64::from(c.arg) + 1)),
                                    c.flag.then_some(true),
                                    "desired",
                                ),
                            };
                            match &request {
                                Request::Restart { .. } => {
                                    model.restart_waiting = true;
                                    if rig.sup.health().state != SensorState::Disabled {
                                        model.restarts += 1;
                                        model.failures = 0;
                                    }
                                }
                                Request::Reconfigure { change, .. } => {
                                    is_reconfigure = true;
                                    if change.enabled == Some(true) && !rig.sup.health().enabled {
                                        model.failures = 0;
                                    }
                                }
                                Request::Stop => {}
                            }
                            Event::Request(request)
                        }
                    }
                };
                let automatic =
                    matches!(event, Event::WaitOver) && rig.sup.pending_backoff().is_some();
                let backed_off = rig.sup.pending_backoff();
                let (opened_at, last_data) = (model.opened_at, model.last_data);
                let out = rig.step(event.clone());
                let health = rig.sup.health().clone();
                if early {
                    prop_assert!(out.is_empty(), "an early wait end acted: {:?}", out);
                    prop_assert_eq!(rig.sup.next(), next_before);
                }
                // A degraded episode is one record: only a notice changes its reason.
                let notice = matches!(
                    &event,
                    Event::Polled {
                        outcome: PollOutcome::Notice(_),
                        ..
                    }
                );
                if before.0 == SensorState::Degraded
                    && health.state == SensorState::Degraded
                    && !notice
                {
                    prop_assert_eq!(&before.1, &health.reason);
                }

                // Restarts: one per restart, automatic or asked for.
                if automatic && rig.sup.pending_backoff().is_none() {
                    model.restarts += 1;
                }
                prop_assert_eq!(health.restarts, model.restarts);

                // Backoff: grows per consecutive failure, capped, reset as the rules say.
                if backed_off.is_none()
                    && let Some(delay) = rig.sup.pending_backoff()
                {
                    let healthy_for = match &event {
                        Event::OpenFailed { .. } => Duration::ZERO,
                        Event::PollFailed { .. } => rig.elapsed - opened_at.unwrap_or(rig.elapsed),
                        // A stall: healthy until the last reading.
                        _ => last_data.saturating_sub(opened_at.unwrap_or(last_data)),
                    };
                    model.failures = if healthy_for >= policy.reset_after {
                        1
                    } else {
                        model.failures + 1
                    };
                    prop_assert_eq!(rig.sup.failures(), model.failures);
                    let cap = ceiling(&policy, model.failures);
                    prop_assert!(delay <= policy.max, "{:?} over the cap", delay);
                    prop_assert!(delay <= cap, "{:?} over {:?}", delay, cap);
                    prop_assert!(
                        delay >= cap.mul_f64(1.0 - policy.jitter) - Duration::from_nanos(1),
                        "{:?} under the jitter band of {:?}",
                        delay,
                        cap
                    );
                    prop_assert!(health.reason.contains("; next attempt in "));
                }

                // State, phase and backoff agree.
                let pending = rig.sup.pending_backoff();
                match rig.sup.next() {
                    Next::Stop => {}
                    Next::Wait(None) => {
                        prop_assert_eq!(health.state, SensorState::Disabled);
                        prop_assert!(!health.enabled);
                    }
                    Next::Open => {
                        prop_assert_eq!(health.state, SensorState::Starting);
                        prop_assert!(health.enabled, "a disabled sensor is never opened");
                    }
                    Next::Poll | Next::Wait(Some(_)) if pending.is_none() => {
                        prop_assert!(
                            matches!(health.state, SensorState::Running | SensorState::Degraded),
                            "serving in {:?}",
                            health.state
                        );
                        prop_assert!(health.enabled, "a disabled sensor is never polled");
                    }
                    Next::Poll => prop_assert!(false, "polled while backing off"),
                    Next::Wait(Some(_)) => {
                        prop_assert_eq!(health.state, SensorState::Failed);
                        prop_assert!(health.enabled);
                    }
                }
                prop_assert_eq!(pending.is_some(), health.state == SensorState::Failed);
                prop_assert!(!health.reason.is_empty());
                if matches!(health.state, SensorState::Failed | SensorState::Degraded) {
                    prop_assert!(health.last_error.is_some());
                }
                if health.state == SensorState::Failed {
                    prop_assert_eq!(health.last_error.as_deref(), Some(health.reason.as_str()));
                }

                // Records: only changes, and the last one is the state now.
                let records = statuses(&out);
                let mut previous = before.clone();
                for r in &records {
                    prop_assert!(
                        *r != previous || r.0 == SensorState::Restarting,
                        "{:?} recorded twice",
                        r
                    );
                    previous = r.clone();
                }
                match records.last() {
                    Some(last) => prop_assert_eq!(last, &(health.state, health.reason.clone())),
                    None => prop_assert_eq!(&before, &(health.state, health.reason.clone())),
                }

                // Answers: a reconfiguration in its step, a restart before the next wait.
                let changes = out.iter().filter(|a| **a == Action::AnswerChange).count();
                prop_assert_eq!(changes, usize::from(is_reconfigure));
                for a in &out {
                    if let Action::AnswerRestart(state) = a {
                        prop_assert!(model.restart_waiting, "an answer nobody asked for");
                        model.restart_waiting = false;
                        prop_assert!(matches!(
                            state,
                            SensorState::Running | SensorState::Failed | SensorState::Disabled
                        ));
                    }
                }
                if matches!(rig.sup.next(), Next::Wait(_)) {
                    prop_assert!(!model.restart_waiting, "a restart left unanswered");
                }

                // Power is cycled only inside a hard restart.
                for (n, a) in out.iter().enumerate() {
                    if *a == Action::PowerCycle {
                        let restarting = n > 0
                            && matches!(&out[n - 1], Action::Status(r)
                                if r.state == SensorState::Restarting
                                    && r.reason.starts_with("hard restart: "));
                        prop_assert!(restarting, "power cycled outside a hard restart");
                    }
                }
            }
            Ok(())
        }

        proptest! {
            #![proptest_config(ProptestConfig::with_cases(512))]

            #[test]
            fn state_reason_backoff_and_answers_stay_consistent_over_any_event_sequence(
                jitter in any::<bool>(),
                enabled in any::<bool>(),
                scheduled in any::<bool>(),
                choices in proptest::collection::vec(choice(), 0..120),
            ) {
                check(jitter, enabled, scheduled, choices)?;
            }
        }
    }
}
