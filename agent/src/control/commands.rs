//! A command's life on the agent, as decisions over the state file with no I/O of their
//! own (the control task does the saving and the sending), plus the one action that touches
//! the sensors.
//!
//! Invariants (docs/design.md 4): a command id the agent remembers is never applied again; a
//! command left "applying" by a crash becomes `Failed` with the reason
//! [`INTERRUPTED`]; a command past its expiry is never applied.

use aloft_protocol::SensorState;
use aloft_protocol::sync::{Command, CommandAction};

use crate::state::{AgentState, RecordedOutcome};
use crate::supervisor::{RestartKind, SupervisorHandle};

/// The reason given for a command a crash interrupted.
pub const INTERRUPTED: &str = "interrupted by an agent restart";

/// The longest command id or sensor name the agent accepts, bytes. Ids are remembered
/// ([`crate::state::MAX_APPLIED_COMMANDS`] of them): a hostile or broken hub must not grow
/// the state file without bound (invariant 6).
pub const MAX_NAME_BYTES: usize = 128;

/// What the control task knows about a command beside the state file.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Intake {
    /// Trusted UTC now, ns; `None` while the agent has none.
    pub now_utc_ns: Option<i64>,
    /// A command with this id is being applied in this run (recorded and acked).
    pub waiting: bool,
}

/// What to do with a command that arrived.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Decision {
    /// Not a command this agent can take (an oversized id or name): ack it and report it
    /// failed with this reason, without recording it (it can never be applied, so a
    /// redelivery gets the same answer).
    Malformed(String),
    /// Seen before and finished: ack it and send this outcome again, without acting.
    Repeat(RecordedOutcome),
    /// Being applied now: ack it again; its result follows when it ends.
    AlreadyUnderWay,
    /// Past its expiry: record and report it `Expired`, do not apply it.
    Expired,
    /// Apply it. `utc_known` is false when the expiry could only be checked against the
    /// last good UTC (a lower bound of now).
    Apply {
        /// Whether trusted UTC was known.
        utc_known: bool,
    },
}

/// Decides what to do with `command` given the state file and this run's queue.
pub fn decide(state: &AgentState, command: &Command, intake: Intake) -> Decision {
    let sensor_len = match &command.action {
        CommandAction::RestartSensor { sensor, .. } => sensor.len(),
        _ => 0,
    };
    if command.id.len() > MAX_NAME_BYTES || sensor_len > MAX_NAME_BYTES {
        return Decision::Malformed(format!(
            "refused: a command id or sensor name is longer than {MAX_NAME_BYTES} bytes"
        ));
    }
    if let Some(done) = state.applied(&command.id) {
        return Decision::Repeat(done.outcome.clone().unwrap_or(RecordedOutcome::Succeeded {
            message: "applied earlier (its outcome was not recorded by that agent version)".into(),
        }));
    }
    if intake.waiting || state.applying_command.as_deref() == Some(command.id.as_str()) {
        return Decision::AlreadyUnderWay;
    }
    if has_expired(state, command, intake.now_utc_ns) {
        Decision::Expired
    } else {
        Decision::Apply {
            utc_known: intake.now_utc_ns.is_some(),
        }
    }
}

/// Whether `command` is past its expiry by trusted UTC `now`; without it, by the last good
/// UTC, a lower bound of now (so only a command surely expired counts as expired).
pub fn has_expired(state: &AgentState, command: &Command, now_utc_ns: Option<i64>) -> bool {
    match now_utc_ns.or(state.last_good_utc_ns) {
        Some(now) => now > command.expires_utc_ns,
        None => false,
    }
}

/// The outcomes of the newest `n` finished commands, oldest first: resent at every start,
/// because a crash can come between recording an outcome and the hub receiving it, and
/// the hub, which had the command's ack, would not deliver it again to ask.
pub fn recent_results(state: &AgentState, n: usize) -> Vec<(String, RecordedOutcome)> {
    let mut recent: Vec<_> = state
        .applied_commands
        .iter()
        .rev()
        .filter_map(|c| Some((c.id.clone(), c.outcome.clone()?)))
        .take(n)
        .collect();
    recent.reverse();
    recent
}

/// At start: a command still "applying" was interrupted by a crash. Records it as failed
/// and returns it for reporting; `None` when there is none.
pub fn close_interrupted(state: &mut AgentState) -> Option<(String, RecordedOutcome)> {
    let id = state.applying_command.take()?;
    let outcome = RecordedOutcome::Failed {
        message: INTERRUPTED.to_string(),
    };
    state.record_outcome(id.clone(), outcome.clone());
    Some((id, outcome))
}

/// Does what the command says and says how it went, for the operator.
pub async fn act(supervisor: &SupervisorHandle, command: &Command) -> RecordedOutcome {
    match &command.action {
        CommandAction::RestartSensor { sensor, hard } => {
            let (kind, word) = if *hard {
                (RestartKind::Hard, "hard")
            } else {
                (RestartKind::Soft, "soft")
            };
            let reason = format!("command {}", command.id);
            match supervisor.restart(sensor, kind, &reason).await {
                Ok(SensorState::Failed) => {
                    let why = supervisor
                        .health()
                        .into_iter()
                        .find(|h| &h.name == sensor)
                        .map(|h| h.reason)
                        .unwrap_or_default();
                    RecordedOutcome::Failed {
                        message: format!(
                            "sensor {sensor} restarted ({word}) but did not come back: {why}"
                        ),
                    }
                }
                Ok(state) => RecordedOutcome::Succeeded {
                    message: format!("sensor {sensor} restarted ({word}); now {state:?}"),
                },
                Err(e) => RecordedOutcome::Failed {
                    message: e.to_string(),
                },
            }
        }
        // A newer hub's action this agent does not know.
        other => RecordedOutcome::Failed {
            message: format!("this agent cannot do {other:?}"),
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn restart(id: &str, expires_utc_ns: i64) -> Command {
        Command {
            id: id.into(),
            expires_utc_ns,
            action: CommandAction::RestartSensor {
                sensor: "cosmic".into(),
                hard: false,
            },
        }
    }

    const NOW: i64 = 1_780_000_000_000_000_000;

    fn at(now: Option<i64>) -> Intake {
        Intake {
            now_utc_ns: now,
            waiting: false,
        }
    }

    #[test]
    fn a_new_command_before_its_expiry_is_applied() {
        let d = decide(
            &AgentState::default(),
            &restart("c1", NOW + 1),
            at(Some(NOW)),
        );
        assert_eq!(d, Decision::Apply { utc_known: true });
    }

    #[test]
    fn an_oversized_id_or_sensor_name_is_refused_without_being_remembered() {
        let long = "x".repeat(MAX_NAME_BYTES + 1);
        let d = decide(
            &AgentState::default(),
            &restart(&long, NOW + 1),
            at(Some(NOW)),
        );
        assert!(matches!(d, Decision::Malformed(_)), "{d:?}");
        let mut command = restart("c1", NOW + 1);
        command.action = CommandAction::RestartSensor {
            sensor: long,
            hard: true,
        };
        let d = decide(&AgentState::default(), &command, at(Some(NOW)));
        assert!(matches!(d, Decision::Malformed(_)), "{d:?}");
    }

    #[test]
    fn a_command_past_its_expiry_is_expired() {
        let d = decide(
            &AgentState::default(),
            &restart("c1", NOW - 1),
            at(Some(NOW)),
        );
        assert_eq!(d, Decision::Expired);
    }

    #[test]
    fn a_finished_command_is_answered_with_its_recorded_outcome() {
        let mut state = AgentState::default();
        let failed = RecordedOutcome::Failed {
            message: "no power line".into(),
        };
        state.record_outcome("c1".into(), failed.clone());
        // Even long after its expiry: the answer is the one recorded, not "expired".
        let d = decide(&state, &restart("c1", NOW - 1), at(Some(NOW)));
        assert_eq!(d, Decision::Repeat(failed));
    }

    #[test]
    fn a_command_id_from_an_older_state_file_is_not_applied_again() {
        let mut state = AgentState::default();
        state.record_applied("c1".into());
        let d = decide(&state, &restart("c1", NOW + 1), at(Some(NOW)));
        assert!(
            matches!(d, Decision::Repeat(RecordedOutcome::Succeeded { .. })),
            "{d:?}"
        );
    }

    #[test]
    fn a_command_being_applied_in_this_run_is_only_acked_again() {
        let intake = Intake {
            now_utc_ns: Some(NOW),
            waiting: true,
        };
        let d = decide(&AgentState::default(), &restart("c1", NOW + 1), intake);
        assert_eq!(d, Decision::AlreadyUnderWay);
    }

    #[test]
    fn without_utc_the_last_good_time_proves_expiry_or_the_command_is_applied() {
        let state = AgentState {
            last_good_utc_ns: Some(NOW),
            ..AgentState::default()
        };
        assert_eq!(
            decide(&state, &restart("old", NOW - 1), at(None)),
            Decision::Expired
        );
        assert_eq!(
            decide(&state, &restart("fresh", NOW + 1), at(None)),
            Decision::Apply { utc_known: false }
        );
        assert_eq!(
            decide(&AgentState::default(), &restart("any", 0), at(None)),
            Decision::Apply { utc_known: false },
            "a board that never knew UTC applies what the hub sent"
        );
    }

    #[test]
    fn the_newest_recorded_outcomes_are_resent_oldest_first() {
        let mut state = AgentState::default();
        for i in 0..5 {
            state.record_outcome(format!("c{i}"), RecordedOutcome::Expired);
        }
        state.record_applied("bare".into());
        let ids: Vec<_> = recent_results(&state, 3)
            .into_iter()
            .map(|(id, _)| id)
            .collect();
        assert_eq!(
            ids,
            vec!["c2", "c3", "c4"],
            "ids without an outcome are skipped"
        );
    }

    #[test]
    fn an_interrupted_command_is_closed_as_failed_and_counts_as_applied() {
        let mut state = AgentState {
            applying_command: Some("c9".into()),
            ..AgentState::default()
        };
        let closed = close_interrupted(&mut state);
        let failed = RecordedOutcome::Failed {
            message: INTERRUPTED.into(),
        };
        assert_eq!(closed, Some(("c9".to_string(), failed.clone())));
        assert_eq!(state.applying_command, None);
        assert_eq!(
            decide(&state, &restart("c9", NOW + 1), at(Some(NOW))),
            Decision::Repeat(failed)
        );
        assert_eq!(close_interrupted(&mut state), None, "reported once");
    }

    /// Where a simulated agent dies while handling a delivery.
    #[derive(Debug, Clone, Copy)]
    enum Crash {
        Never,
        AfterApplyingRecorded,
        AfterActing,
    }

    fn crash() -> impl proptest::strategy::Strategy<Value = Crash> {
        proptest::prop_oneof![
            proptest::strategy::Just(Crash::Never),
            proptest::strategy::Just(Crash::AfterApplyingRecorded),
            proptest::strategy::Just(Crash::AfterActing),
        ]
    }

    proptest::proptest! {
        /// Model of the control task over any sequence of deliveries (redeliveries
        /// included), crashes and restarts: no command acts twice, and every answer the
        /// hub gets for an id is the same one.
        #[test]
        fn any_deliveries_and_crashes_apply_each_command_at_most_once_with_one_answer(
            deliveries in proptest::collection::vec((0u8..4, -1i64..2, crash()), 1..40)
        ) {
            use std::collections::HashMap;
            let mut state = AgentState::default();
            let mut acted: HashMap<String, u32> = HashMap::new();
            let mut answers: HashMap<String, Vec<RecordedOutcome>> = HashMap::new();
            let agent_restarts = |state: &mut AgentState, answers: &mut HashMap<String, Vec<RecordedOutcome>>| {
                for (id, outcome) in recent_results(state, 8) {
                    answers.entry(id).or_default().push(outcome);
                }
                if let Some((id, outcome)) = close_interrupted(state) {
                    answers.entry(id).or_default().push(outcome);
                }
            };
            for (n, expiry, crash) in deliveries {
                let id = format!("c{n}");
                let command = restart_cmd(&id, NOW + expiry * HOUR_NS_TEST);
                match decide(&state, &command, at(Some(NOW))) {
                    Decision::Repeat(o) => answers.entry(id).or_default().push(o),
                    Decision::Expired => {
                        state.record_outcome(id.clone(), RecordedOutcome::Expired);
                        answers.entry(id).or_default().push(RecordedOutcome::Expired);
                    }
                    Decision::Apply { .. } => {
                        state.applying_command = Some(id.clone());
                        if let Crash::AfterApplyingRecorded = crash {
                            agent_restarts(&mut state, &mut answers);
                            continue;
                        }
                        *acted.entry(id.clone()).or_default() += 1;
                        if let Crash::AfterActing = crash {
                            agent_restarts(&mut state, &mut answers);
                            continue;
                        }
                        let done = RecordedOutcome::Succeeded { message: "ok".into() };
                        state.record_outcome(id.clone(), done.clone());
                        answers.entry(id).or_default().push(done);
                    }
                    other => proptest::prop_assert!(false, "unexpected {:?}", other),
                }
            }
            for (id, count) in &acted {
                proptest::prop_assert!(*count <= 1, "{} acted {} times", id, count);
            }
            for (id, said) in &answers {
                proptest::prop_assert!(said.windows(2).all(|w| w[0] == w[1]), "{}: {:?}", id, said);
            }
        }
    }

    const HOUR_NS_TEST: i64 = 3_600_000_000_000;

    fn restart_cmd(id: &str, expires_utc_ns: i64) -> Command {
        restart(id, expires_utc_ns)
    }
}
