//! The state file under crashes and damage: the good file survives, a bad one is reported
//! and the agent falls back to its config (invariant 7).

use std::fs;
use std::time::Duration;

use aloft_agent::state::{self, AgentState, DesiredSensor, DesiredState, StateError, aside_path};

fn desired() -> AgentState {
    AgentState {
        desired: Some(DesiredState {
            generation: 3,
            sensors: vec![DesiredSensor {
                name: "co2".into(),
                interval: Some(Duration::from_secs(10)),
                enabled: Some(false),
                tunables: Default::default(),
            }],
        }),
        last_good_utc_ns: Some(1_780_272_000_000_000_000),
        ..AgentState::default()
    }
}

#[test]
fn a_torn_temp_file_left_by_a_crash_is_ignored_and_replaced_by_the_next_save() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("state.json");
    state::save(&path, &desired()).unwrap();
    // A power cut in the middle of the next save left half a temp file.
    let good = fs::read(&path).unwrap();
    fs::write(dir.path().join("state.json.tmp"), &good[..good.len() / 2]).unwrap();

    let loaded = state::load_or_default(&path);
    assert!(loaded.problem.is_none());
    assert_eq!(loaded.state, desired());

    let mut next = desired();
    next.record_applied("restart-co2-7".into());
    state::save(&path, &next).unwrap();
    assert_eq!(state::load(&path).unwrap(), Some(next));
    assert!(!dir.path().join("state.json.tmp").exists());
}

#[test]
fn every_truncation_of_the_file_is_reported_and_falls_back_to_the_config() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("state.json");
    state::save(&path, &desired()).unwrap();
    let good = fs::read(&path).unwrap();
    // Cut anywhere short of the closing brace: never silently half a state.
    for cut in (0..good.len() - 2).step_by(7) {
        fs::write(&path, &good[..cut]).unwrap();
        let loaded = state::load_or_default(&path);
        assert!(
            matches!(loaded.problem, Some(StateError::Corrupt { .. })),
            "cut at {cut}: {:?}",
            loaded.problem
        );
        assert_eq!(loaded.state, AgentState::default(), "cut at {cut}");
        assert_eq!(fs::read(aside_path(&path)).unwrap(), &good[..cut]);
        assert!(!path.exists(), "the bad file is moved aside");
    }
}

#[test]
fn a_file_of_another_version_is_reported_not_guessed_at() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("state.json");
    fs::write(&path, br#"{"version": 99, "state": {"whatever": true}}"#).unwrap();
    let loaded = state::load_or_default(&path);
    assert!(matches!(
        loaded.problem,
        Some(StateError::Version { found: 99, .. })
    ));
    assert_eq!(loaded.state, AgentState::default());
    // The agent goes on and saves its own state in the freed place.
    state::save(&path, &desired()).unwrap();
    assert_eq!(state::load(&path).unwrap(), Some(desired()));
}

#[test]
fn garbage_bytes_are_reported() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("state.json");
    fs::write(&path, [0xff, 0x00, 0x13, 0x37]).unwrap();
    assert!(matches!(
        state::load(&path),
        Err(StateError::Corrupt { .. })
    ));
}
