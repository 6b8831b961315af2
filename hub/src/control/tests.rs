//! The control layer against a real hub data directory (SQLite files, registry, sessions):
//! commands through their whole life, desired state generations, audit, expiry.

use std::time::Duration;

use aloft_protocol::sync::{
    BacklogReport, CommandOutcome, Downlink, LiveUpdate, Observed, ObservedSensor, SensorReport,
    TunableValue, Uplink,
};
use aloft_protocol::{SensorId, SensorState, Timestamp};

use super::audit::{Action, Kind, Object, Outcome};
use super::phase::Phase;
use super::{Control, ControlError, SpecChange, SpecWrite};
use crate::Hub;
use crate::nodes::control_seam::NodeControl;
use crate::storage::control::{Actor, ControlTables};

struct Fixture {
    _dir: tempfile::TempDir,
    hub: Hub,
    control: Control,
}

fn fixture() -> Fixture {
    let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("tempdir: {e}"));
    let data = dir.path().join("hub");
    crate::init::init(&crate::init::InitOptions {
        data_dir: data.clone(),
        sans: vec!["localhost".into()],
        node: "glider".into(),
    })
    .unwrap_or_else(|e| panic!("init: {e}"));
    let hub = Hub::open(&data).unwrap_or_else(|e| panic!("open: {e}"));
    let control = Control::open(&hub).unwrap_or_else(|e| panic!("control: {e}"));
    Fixture {
        _dir: dir,
        hub,
        control,
    }
}

fn operator() -> Actor {
    Actor {
        token: "tok-op".into(),
        role: "operator".into(),
    }
}

fn report(name: &str) -> SensorReport {
    SensorReport {
        sensor: SensorId(1),
        name: name.into(),
        kind: "cosmicwatch".into(),
        state: SensorState::Running,
        reason: "ok".into(),
        restarts: 0,
        last_restart: None,
        last_error: None,
        interval_ms: Some(1000),
        enabled: true,
        readings: 5,
    }
}

fn ok<T, E: std::fmt::Display>(r: Result<T, E>) -> T {
    r.unwrap_or_else(|e| panic!("{e}"))
}

fn commands_in(downlinks: &[Downlink]) -> Vec<String> {
    downlinks
        .iter()
        .filter_map(|d| match d {
            Downlink::Command(c) => Some(c.id.clone()),
            _ => None,
        })
        .collect()
}

#[test]
fn a_restart_is_sent_at_every_connect_until_acked_then_ends_with_the_agents_result() {
    let f = fixture();
    let command = ok(f.control.restart(
        &operator(),
        "glider",
        "cosmic-ray",
        true,
        Duration::from_secs(60),
    ));
    assert_eq!(command.phase, Phase::Pending);
    // Persisted before the answer: a second Control on the same files sees it.
    let again = ok(Control::open(&f.hub));
    assert_eq!(
        ok(again.command(&command.id)).map(|c| c.phase),
        Some(Phase::Pending)
    );

    assert_eq!(
        commands_in(&f.control.on_connect("glider")),
        vec![command.id.clone()]
    );
    assert_eq!(
        commands_in(&f.control.on_connect("glider")),
        vec![command.id.clone()]
    );
    f.control.on_control(
        "glider",
        Uplink::CommandAck {
            id: command.id.clone(),
        },
    );
    assert_eq!(
        ok(f.control.command(&command.id)).map(|c| c.phase),
        Some(Phase::Delivered)
    );
    assert!(commands_in(&f.control.on_connect("glider")).is_empty());

    f.control.on_control(
        "glider",
        Uplink::CommandResult {
            id: command.id.clone(),
            outcome: CommandOutcome::Succeeded {
                message: "restarted in 12 ms".into(),
            },
        },
    );
    let done = ok(f.control.command(&command.id)).unwrap_or_else(|| panic!("gone"));
    assert_eq!(done.phase, Phase::Succeeded);
    assert_eq!(done.message, "restarted in 12 ms");
    assert!(done.delivered_ns.is_some() && done.finished_ns.is_some());

    // A repeated result (the agent resends after a reconnect) changes nothing.
    f.control.on_control(
        "glider",
        Uplink::CommandResult {
            id: command.id.clone(),
            outcome: CommandOutcome::Failed {
                message: "interrupted".into(),
            },
        },
    );
    assert_eq!(
        ok(f.control.command(&command.id)).map(|c| c.phase),
        Some(Phase::Succeeded)
    );

    let actions: Vec<(String, String)> = ok(f.control.events(Some("glider"), 0, 100))
        .into_iter()
        .map(|e| (e.action, e.outcome))
        .collect();
    assert_eq!(
        actions,
        vec![
            ("create".to_owned(), "ok".to_owned()),
            ("deliver".to_owned(), "Delivered".to_owned()),
            ("complete".to_owned(), "Succeeded".to_owned()),
        ]
    );
}

#[test]
fn another_nodes_ack_or_result_does_not_touch_a_command() {
    let f = fixture();
    ok(f.hub.registry.create_node("other"));
    let command =
        ok(f.control
            .restart(&operator(), "glider", "gps", false, Duration::from_secs(60)));
    f.control.on_control(
        "other",
        Uplink::CommandAck {
            id: command.id.clone(),
        },
    );
    f.control.on_control(
        "other",
        Uplink::CommandResult {
            id: command.id.clone(),
            outcome: CommandOutcome::Succeeded {
                message: String::new(),
            },
        },
    );
    assert_eq!(
        ok(f.control.command(&command.id)).map(|c| c.phase),
        Some(Phase::Pending)
    );
    assert!(commands_in(&f.control.on_connect("other")).is_empty());
}

#[test]
fn a_pending_command_past_its_ttl_expires_at_the_hub_and_is_not_sent() {
    let f = fixture();
    let command =
        ok(f.control
            .restart(&operator(), "glider", "gps", false, Duration::from_secs(1)));
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    while ok(f.control.expire_due()) == 0 {
        assert!(std::time::Instant::now() < deadline, "never expired");
        std::thread::sleep(Duration::from_millis(50));
    }
    assert_eq!(
        ok(f.control.command(&command.id)).map(|c| c.phase),
        Some(Phase::Expired)
    );
    assert!(commands_in(&f.control.on_connect("glider")).is_empty());
}

#[test]
fn only_undelivered_commands_can_be_cancelled_and_a_late_result_still_counts() {
    let f = fixture();
    let first = ok(f
        .control
        .restart(&operator(), "glider", "gps", false, Duration::from_secs(60)));
    let cancelled = ok(f.control.cancel(&operator(), &first.id));
    assert_eq!(cancelled.phase, Phase::Cancelled);
    assert!(commands_in(&f.control.on_connect("glider")).is_empty());
    // The node had it already (pushed before the cancel): what it did is the truth.
    f.control.on_control(
        "glider",
        Uplink::CommandResult {
            id: first.id.clone(),
            outcome: CommandOutcome::Succeeded {
                message: "restarted".into(),
            },
        },
    );
    let after = ok(f.control.command(&first.id)).unwrap_or_else(|| panic!("gone"));
    assert_eq!(after.phase, Phase::Succeeded);
    assert!(
        after.message.contains("cancel came too late"),
        "{}",
        after.message
    );

    let second =
        ok(f.control
            .restart(&operator(), "glider", "gps", false, Duration::from_secs(60)));
    f.control.on_control(
        "glider",
        Uplink::CommandAck {
            id: second.id.clone(),
        },
    );
    assert!(matches!(
        f.control.cancel(&operator(), &second.id),
        Err(ControlError::CannotCancel { .. })
    ));
    assert!(matches!(
        f.control.cancel(&operator(), "cmd-nope"),
        Err(ControlError::NoSuchCommand(_))
    ));
}

#[test]
fn desired_state_bumps_its_generation_only_on_change_and_records_what_was_observed() {
    let f = fixture();
    let set = |change: SpecChange, how: SpecWrite| {
        ok(f.control
            .set_desired(&operator(), "glider", "cosmic-ray", change, how, false))
    };
    let first = set(
        SpecChange {
            interval_ms: Some(500),
            enabled: None,
            power_override: None,
        },
        SpecWrite::Merge,
    );
    assert!(first.changed);
    assert_eq!(first.row.generation, 1);
    let same = set(
        SpecChange {
            interval_ms: Some(500),
            enabled: None,
            power_override: None,
        },
        SpecWrite::Merge,
    );
    assert!(!same.changed);
    assert_eq!(same.row.generation, 1);
    let merged = set(
        SpecChange {
            interval_ms: None,
            enabled: Some(false),
            power_override: None,
        },
        SpecWrite::Merge,
    );
    assert_eq!(
        (
            merged.row.generation,
            merged.row.interval_ms,
            merged.row.enabled
        ),
        (2, Some(500), Some(false))
    );
    let replaced = set(
        SpecChange {
            interval_ms: Some(200),
            enabled: None,
            power_override: None,
        },
        SpecWrite::Replace,
    );
    assert_eq!(
        (
            replaced.row.generation,
            replaced.row.interval_ms,
            replaced.row.enabled
        ),
        (3, Some(200), None)
    );
    let dry = ok(f.control.set_desired(
        &operator(),
        "glider",
        "cosmic-ray",
        SpecChange {
            interval_ms: Some(100),
            enabled: None,
            power_override: None,
        },
        SpecWrite::Replace,
        true,
    ));
    assert!(dry.changed);
    assert_eq!(dry.row.generation, 4);
    assert_eq!(
        ok(f.control.desired(Some("glider")))
            .first()
            .map(|d| d.generation),
        Some(3)
    );

    let connect = f.control.on_connect("glider");
    let spec = connect.iter().find_map(|d| match d {
        Downlink::Desired(spec) => Some(spec.clone()),
        _ => None,
    });
    let spec = spec.unwrap_or_else(|| panic!("no desired spec at connect"));
    assert_eq!(spec.sensors.len(), 1);
    assert_eq!(
        spec.sensors.first().map(|s| (s.generation, s.interval_ms)),
        Some((3, Some(200)))
    );

    f.control.on_control(
        "glider",
        Uplink::Observed(Observed {
            tunables: vec![],
            sensors: vec![ObservedSensor {
                name: "cosmic-ray".into(),
                observed_generation: 3,
                refused: None,
            }],
        }),
    );
    assert_eq!(
        ok(f.control.desired(Some("glider")))
            .first()
            .and_then(|d| d.observed_generation),
        Some(3)
    );
}

#[test]
fn a_sensor_the_node_did_not_report_is_refused_with_the_ones_it_did() {
    let f = fixture();
    f.hub.registry.live(
        "glider",
        LiveUpdate {
            time: Timestamp::monotonic(1),
            readings: vec![],
            sensors: vec![report("cosmic-ray"), report("gps")],
            backlog: BacklogReport {
                records: 0,
                bytes: 0,
                oldest_age_s: None,
            },
        },
    );
    let err = f
        .control
        .restart(
            &operator(),
            "glider",
            "cosmic",
            false,
            Duration::from_secs(60),
        )
        .err()
        .map(|e| e.to_string())
        .unwrap_or_default();
    assert!(
        err.contains("no sensor \"cosmic\"") && err.contains("cosmic-ray, gps"),
        "{err}"
    );
    assert!(matches!(
        f.control.restart(
            &operator(),
            "nowhere",
            "gps",
            false,
            Duration::from_secs(60)
        ),
        Err(ControlError::NoSuchNode(_))
    ));
    assert!(matches!(
        f.control
            .restart(&operator(), "glider", "gps", false, Duration::ZERO),
        Err(ControlError::Invalid(_))
    ));
}

#[test]
fn deleting_a_node_cancels_its_pending_commands_and_forgets_its_desired_state() {
    let f = fixture();
    let command =
        ok(f.control
            .restart(&operator(), "glider", "gps", false, Duration::from_secs(60)));
    ok(f.control.set_desired(
        &operator(),
        "glider",
        "gps",
        SpecChange {
            interval_ms: Some(100),
            enabled: None,
            power_override: None,
        },
        SpecWrite::Merge,
        false,
    ));
    ok(f.control.forget_node(&operator(), "glider"));
    assert_eq!(
        ok(f.control.command(&command.id)).map(|c| c.phase),
        Some(Phase::Cancelled)
    );
    assert!(ok(f.control.desired(Some("glider"))).is_empty());
}

#[tokio::test]
async fn logs_of_a_node_that_is_not_connected_fail_at_once() {
    let f = fixture();
    let result = f
        .control
        .fetch_logs("glider", None, 10, Duration::from_secs(5))
        .await;
    assert!(matches!(result, Err(ControlError::NotConnected(_))));
}

fn change(interval_ms: Option<u32>, enabled: Option<bool>) -> SpecChange {
    SpecChange {
        interval_ms,
        enabled,
        power_override: None,
    }
}

/// Names of every kind: labels of the grammar and strings near it (upper case, `_`, `.`,
/// `/`, spaces, a non-ASCII letter, control characters, lengths around 63 and far over).
fn name_candidate() -> impl proptest::strategy::Strategy<Value = String> {
    use proptest::prelude::*;
    prop_oneof![
        "[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?",
        "[-a-z0-9]{0,70}",
        "[-a-zA-Z0-9_. é/\u{1b}]{0,70}",
        (1usize..3_000_000).prop_map(|n| "s".repeat(n)),
    ]
}

#[test]
fn every_route_that_takes_a_name_accepts_it_exactly_when_the_protocol_does() {
    use proptest::test_runner::{Config, TestRunner};
    let f = fixture();
    let mut runner = TestRunner::new(Config::with_cases(64));
    runner
        .run(&name_candidate(), |name| {
            let valid = aloft_protocol::check_name(&name).is_ok();
            let node = f.hub.registry.create_node(&name);
            let node_accepted = !matches!(
                node,
                Err(crate::nodes::registry::RegistryError::InvalidName(_))
            );
            proptest::prop_assert_eq!(node_accepted, valid, "create node {:?}", node.err());
            let desired = f.control.set_desired(
                &operator(),
                "glider",
                &name,
                change(Some(1000), None),
                SpecWrite::Merge,
                true,
            );
            proptest::prop_assert_eq!(desired.is_ok(), valid, "desired {:?}", desired.err());
            let restart =
                f.control
                    .restart(&operator(), "glider", &name, false, Duration::from_secs(60));
            proptest::prop_assert_eq!(restart.is_ok(), valid, "restart {:?}", restart.err());
            if !valid {
                let message = ControlError::from(
                    crate::nodes::registry::check_name("sensor", &name).unwrap_err(),
                )
                .to_string();
                proptest::prop_assert!(message.len() < 512, "the name is not echoed whole");
                proptest::prop_assert!(!message.contains('\u{1b}'), "escaped: {message}");
            }
            Ok(())
        })
        .unwrap_or_else(|e| panic!("{e}"));
}

#[test]
fn any_accepted_write_keeps_every_downlink_under_the_message_cap() {
    use aloft_protocol::sync::MAX_MESSAGE_BYTES;
    use proptest::prelude::*;
    use proptest::test_runner::{Config, TestRunner};
    let f = fixture();
    let writes = proptest::collection::vec(
        (
            name_candidate(),
            proptest::option::of(any::<u32>()),
            proptest::option::of(any::<bool>()),
            any::<bool>(),
        ),
        1..8,
    );
    let mut runner = TestRunner::new(Config::with_cases(32));
    runner
        .run(&writes, |writes| {
            for (name, interval, enabled, restart) in writes {
                if restart {
                    let _ = f.control.restart(
                        &operator(),
                        "glider",
                        &name,
                        true,
                        Duration::from_secs(60),
                    );
                } else {
                    let _ = f.control.set_desired(
                        &operator(),
                        "glider",
                        &name,
                        change(interval, enabled),
                        SpecWrite::Merge,
                        false,
                    );
                }
            }
            for message in f.control.on_connect("glider") {
                let size = message.encode().len();
                prop_assert!(size < MAX_MESSAGE_BYTES, "{size} bytes");
            }
            Ok(())
        })
        .unwrap_or_else(|e| panic!("{e}"));
}

#[test]
fn a_node_holds_at_most_the_desired_entries_one_message_carries() {
    use aloft_protocol::sync::{MAX_DESIRED_SENSORS, MAX_MESSAGE_BYTES};
    let f = fixture();
    // The worst case: every entry with the longest name and every field set.
    for i in 0..MAX_DESIRED_SENSORS {
        ok(f.control.set_desired(
            &operator(),
            "glider",
            &format!("{i:0>63}"),
            change(Some(u32::MAX), Some(true)),
            SpecWrite::Merge,
            false,
        ));
    }
    let more = f.control.set_desired(
        &operator(),
        "glider",
        "one-more",
        change(Some(100), None),
        SpecWrite::Merge,
        false,
    );
    assert!(
        matches!(more, Err(ControlError::TooManyDesired { .. })),
        "{more:?}"
    );
    // Changing an existing entry is still allowed.
    ok(f.control.set_desired(
        &operator(),
        "glider",
        &format!("{:0>63}", 5),
        change(Some(100), None),
        SpecWrite::Merge,
        false,
    ));
    let downlinks = f.control.on_connect("glider");
    let desired = downlinks
        .iter()
        .find(|d| matches!(d, Downlink::Desired(_)))
        .expect("the spec goes out at connect");
    assert!(desired.encode().len() < MAX_MESSAGE_BYTES);
}

#[test]
fn a_sensors_desired_state_can_be_deleted_and_the_node_is_sent_the_spec_without_it() {
    let f = fixture();
    for sensor in ["static", "co2"] {
        ok(f.control.set_desired(
            &operator(),
            "glider",
            sensor,
            change(Some(500), Some(true)),
            SpecWrite::Merge,
            false,
        ));
    }
    let spec_at_connect = || {
        f.control
            .on_connect("glider")
            .into_iter()
            .find_map(|d| match d {
                Downlink::Desired(spec) => {
                    Some(spec.sensors.into_iter().map(|s| s.name).collect::<Vec<_>>())
                }
                _ => None,
            })
    };
    let other = ok(f.hub.registry.create_node("never-desired"));
    assert!(
        !f.control
            .on_connect(&other.name)
            .iter()
            .any(|d| matches!(d, Downlink::Desired(_))),
        "a node that never had desired state is sent none"
    );
    let dry = ok(f
        .control
        .delete_desired(&operator(), "glider", "static", true));
    assert_eq!(dry.generation, 1);
    assert_eq!(spec_at_connect(), Some(vec!["co2".into(), "static".into()]));
    ok(f.control
        .delete_desired(&operator(), "glider", "static", false));
    assert_eq!(spec_at_connect(), Some(vec!["co2".into()]));
    assert!(matches!(
        f.control
            .delete_desired(&operator(), "glider", "static", false),
        Err(ControlError::NoSuchDesired { .. })
    ));
    ok(f.control
        .delete_desired(&operator(), "glider", "co2", false));
    // The empty spec still goes out: it is what sends the sensors back to their config.
    assert_eq!(spec_at_connect(), Some(vec![]));
    let events = ok(f.control.events(Some("glider"), 0, 100));
    let deletes: Vec<_> = events
        .iter()
        .filter(|e| e.action == "delete" && e.object_kind == "Sensor")
        .map(|e| e.object_name.as_str())
        .collect();
    assert_eq!(deletes, ["static", "co2"]);
}

#[test]
fn a_downlink_message_the_agent_refused_is_recorded_as_an_event_of_the_node() {
    use aloft_protocol::sync::{LogBatch, LogLine, UNSOLICITED_LOGS};
    let f = fixture();
    f.control.on_control(
        "glider",
        Uplink::Logs(LogBatch {
            request: UNSOLICITED_LOGS,
            lines: vec![LogLine {
                time: Timestamp::monotonic(1),
                level: "ERROR".into(),
                sensor: None,
                message: "refused a message from the hub: message of 1200000 bytes is over the 1048576-byte cap".into(),
            }],
        }),
    );
    let events = ok(f.control.events(Some("glider"), 0, 100));
    let report = events
        .iter()
        .find(|e| e.action == "report")
        .expect("the report is an event");
    assert_eq!(report.outcome, "refused");
    assert!(
        report.message.contains("1200000 bytes"),
        "{}",
        report.message
    );
}

#[test]
fn entries_an_older_hub_stored_under_bad_names_are_not_sent_and_can_be_deleted() {
    use aloft_protocol::sync::MAX_MESSAGE_BYTES;
    let f = fixture();
    let store = crate::storage::sqlite::SqliteControl::open(&f.hub.data_dir)
        .unwrap_or_else(|e| panic!("{e}"));
    let long = "s".repeat(1_200_000);
    for (i, name) in ["static", "outside_air", long.as_str()].iter().enumerate() {
        let row = crate::storage::control::DesiredRow {
            node: "glider".into(),
            sensor: (*name).into(),
            generation: 1,
            interval_ms: Some(500 + i as u32),
            enabled: None,
            observed_generation: None,
            refused: None,
            tunables: Default::default(),
            observed_tunables: None,
            power_override: false,
            created_ns: 1,
            updated_ns: 1,
        };
        let audit = super::event(
            &operator(),
            Action::Set,
            Object::new(Kind::Sensor, name, Some("glider")),
            Outcome::Ok,
            String::new(),
        );
        ok(store.put_desired(&row, &audit));
    }
    let downlinks = f.control.on_connect("glider");
    let spec = downlinks
        .iter()
        .find_map(|d| match d {
            Downlink::Desired(spec) => Some(spec.clone()),
            _ => None,
        })
        .expect("a spec");
    assert_eq!(
        spec.sensors
            .iter()
            .map(|s| s.name.as_str())
            .collect::<Vec<_>>(),
        ["static"]
    );
    for message in &downlinks {
        assert!(message.encode().len() < MAX_MESSAGE_BYTES);
    }
    ok(f.control
        .delete_desired(&operator(), "glider", &long, false));
    ok(f.control
        .delete_desired(&operator(), "glider", "outside_air", false));
    assert_eq!(ok(f.control.desired(Some("glider"))).len(), 1);
}

#[test]
fn a_pending_command_an_older_hub_accepted_for_a_bad_name_is_cancelled_not_sent() {
    let f = fixture();
    let store = crate::storage::sqlite::SqliteControl::open(&f.hub.data_dir)
        .unwrap_or_else(|e| panic!("{e}"));
    let command = crate::storage::control::CommandRow {
        id: "cmd-legacy".into(),
        node: "glider".into(),
        sensor: "s".repeat(1_200_000),
        hard: false,
        ttl_s: 3600,
        created_ns: crate::clock::now_utc_ns(),
        expires_ns: i64::MAX,
        phase: Phase::Pending,
        message: "waiting".into(),
        actor: operator(),
        delivered_ns: None,
        finished_ns: None,
        revision: 1,
    };
    let audit = super::event(
        &operator(),
        Action::Create,
        Object::new(Kind::Command, "cmd-legacy", Some("glider")),
        Outcome::Ok,
        String::new(),
    );
    ok(store.insert_command(&command, &audit));
    assert!(commands_in(&f.control.on_connect("glider")).is_empty());
    let after = ok(f.control.command("cmd-legacy")).map(|c| (c.phase, c.message));
    let (phase, message) = after.unwrap_or_else(|| panic!("kept"));
    assert_eq!(phase, Phase::Cancelled);
    assert!(
        message.contains("1200000 characters long"),
        "{}",
        message.len()
    );
}

fn tunables_of(pairs: &[(&str, Option<TunableValue>)]) -> super::TunablesChange {
    Some(
        pairs
            .iter()
            .map(|(k, v)| ((*k).to_owned(), v.clone()))
            .collect(),
    )
}

#[test]
fn tunables_merge_key_by_key_a_null_removes_one_and_a_replace_sets_them_whole() {
    let f = fixture();
    let write = |tunables: super::TunablesChange, how: SpecWrite| {
        ok(f.control.write_desired(
            &operator(),
            "glider",
            "outside-air",
            change(None, None),
            tunables,
            how,
            false,
        ))
    };
    let first = write(
        tunables_of(&[
            ("pressure_oversampling", Some(TunableValue::Integer(16))),
            ("humidity_oversampling", Some(TunableValue::Integer(2))),
        ]),
        SpecWrite::Merge,
    );
    assert!(first.changed);
    assert_eq!(first.row.tunables.len(), 2);
    let same = write(
        tunables_of(&[("pressure_oversampling", Some(TunableValue::Integer(16)))]),
        SpecWrite::Merge,
    );
    assert!(!same.changed, "setting a key to its value changes nothing");
    let removed = write(
        tunables_of(&[("humidity_oversampling", None)]),
        SpecWrite::Merge,
    );
    assert!(removed.changed);
    assert_eq!(
        removed.row.tunables.keys().collect::<Vec<_>>(),
        vec!["pressure_oversampling"]
    );
    // A merge that names no tunables keeps them; a set of only interval keeps them too.
    let kept = ok(f.control.set_desired(
        &operator(),
        "glider",
        "outside-air",
        change(Some(2000), None),
        SpecWrite::Merge,
        false,
    ));
    assert_eq!(kept.row.tunables.len(), 1);
    // The spec the node is sent carries them, keyed by sensor name.
    let spec = ok(f.control.desired_spec("glider")).unwrap_or_else(|| panic!("a spec"));
    assert_eq!(spec.tunables.len(), 1);
    assert_eq!(spec.tunables[0].name, "outside-air");
    assert_eq!(
        spec.tunables[0].tunables,
        vec![(
            "pressure_oversampling".to_owned(),
            TunableValue::Integer(16)
        )]
    );
    // A version 2 session is sent the spec without them.
    let for_v2 = aloft_protocol::sync::evolution::downlink_for(Downlink::Desired(spec.clone()), 2);
    assert!(
        matches!(&for_v2, Downlink::Desired(s) if s.tunables.is_empty() && s.sensors == spec.sensors)
    );
    let for_v3 = aloft_protocol::sync::evolution::downlink_for(Downlink::Desired(spec.clone()), 3);
    assert_eq!(for_v3, Downlink::Desired(spec));
    // A replace without them clears them (apply: what the file leaves out is not desired).
    let replaced = ok(f.control.set_desired(
        &operator(),
        "glider",
        "outside-air",
        change(Some(2000), None),
        SpecWrite::Replace,
        false,
    ));
    assert!(replaced.changed && replaced.row.tunables.is_empty());
    // Audit events keep their shape: one `set` per change, the tunables in its message.
    let events = ok(f.control.events(Some("glider"), 0, 100));
    let sets: Vec<_> = events
        .iter()
        .filter(|e| e.action == "set" && e.object_name == "outside-air")
        .collect();
    assert_eq!(sets.len(), 4, "{sets:?}");
    assert!(
        sets[0].message.contains("pressure_oversampling=16"),
        "{}",
        sets[0].message
    );
}

#[test]
fn observed_tunables_in_force_are_recorded_and_kept_when_an_older_agent_reports_none() {
    let f = fixture();
    ok(f.control.write_desired(
        &operator(),
        "glider",
        "gps",
        change(None, None),
        tunables_of(&[("dynamic_model", Some(TunableValue::Text("warp".into())))]),
        SpecWrite::Merge,
        false,
    ));
    let in_force = vec![(
        "dynamic_model".to_owned(),
        TunableValue::Text("airborne2g".into()),
    )];
    f.control.on_control(
        "glider",
        Uplink::Observed(Observed {
            sensors: vec![ObservedSensor {
                name: "gps".into(),
                observed_generation: 1,
                refused: Some(
                    "sensor gps: tunable dynamic_model: a string \"warp\" is not one of ...".into(),
                ),
            }],
            tunables: vec![aloft_protocol::sync::SensorTunables {
                name: "gps".into(),
                tunables: in_force.clone(),
            }],
        }),
    );
    let row = ok(f.control.desired(Some("glider"))).remove(0);
    assert_eq!(row.observed_generation, Some(1));
    assert!(row.refused.unwrap_or_default().contains("warp"));
    assert_eq!(
        row.observed_tunables,
        Some(in_force.iter().cloned().collect())
    );
    assert_eq!(
        row.tunables.get("dynamic_model"),
        Some(&TunableValue::Text("warp".into())),
        "the desired set stays what the operator asked"
    );
}

#[test]
fn any_tunables_write_is_within_the_bounds_or_refused_as_invalid() {
    use aloft_protocol::sync::{MAX_TUNABLE_KEY_BYTES, MAX_TUNABLE_TEXT_BYTES, MAX_TUNABLES};
    use proptest::strategy::Strategy;
    // One hub for every case: a fixture is a whole data directory with its PKI.
    let f = fixture();
    let cases = (
        proptest::collection::vec("[a-z_]{1,40}|.{0,40}", 0..12),
        ".{0,60}",
        proptest::bool::ANY,
    )
        .prop_map(|(keys, text, remove)| {
            keys.iter()
                .enumerate()
                .map(|(i, k)| {
                    let value = match (i % 3, remove) {
                        (0, true) => None,
                        (0, false) | (1, _) => Some(TunableValue::Text(text.clone())),
                        _ => Some(TunableValue::Integer(i as i64)),
                    };
                    (k.clone(), value)
                })
                .collect::<std::collections::BTreeMap<String, Option<TunableValue>>>()
        });
    let mut runner = proptest::test_runner::TestRunner::default();
    let outcome = runner.run(&cases, |given| {
        let within = given.len() <= MAX_TUNABLES
            && given.iter().all(|(k, v)| {
                !k.is_empty()
                    && k.len() <= MAX_TUNABLE_KEY_BYTES
                    && k.bytes()
                        .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_')
                    && !matches!(v, Some(TunableValue::Text(t)) if t.len() > MAX_TUNABLE_TEXT_BYTES)
            });
        // A replace: each case on its own, whatever the one before left.
        let result = f.control.write_desired(
            &operator(),
            "glider",
            "outside-air",
            change(Some(1000), None),
            Some(given),
            SpecWrite::Replace,
            false,
        );
        match result {
            Ok(written) => {
                proptest::prop_assert!(within);
                proptest::prop_assert!(written.row.tunables.len() <= MAX_TUNABLES);
            }
            Err(ControlError::Invalid(why)) => {
                proptest::prop_assert!(!within, "refused within bounds: {}", why);
                proptest::prop_assert!(why.len() < 300, "{}", why);
            }
            Err(e) => proptest::prop_assert!(false, "{}", e),
        }
        Ok(())
    });
    if let Err(e) = outcome {
        panic!("{e}");
    }
}

#[test]
fn a_power_override_is_desired_state_persisted_audited_bumped_and_sent_by_name() {
    let f = fixture();
    let exempt = |sensor: &str, power_override: Option<bool>, how: SpecWrite| {
        ok(f.control.set_desired(
            &operator(),
            "glider",
            sensor,
            SpecChange {
                interval_ms: None,
                enabled: None,
                power_override,
            },
            how,
            false,
        ))
    };
    let first = exempt("gps", Some(true), SpecWrite::Merge);
    assert!(first.changed && first.row.power_override);
    assert_eq!(first.row.generation, 1);
    assert!(!exempt("gps", Some(true), SpecWrite::Merge).changed);
    // Another field's merge keeps the exemption.
    let kept = ok(f.control.set_desired(
        &operator(),
        "glider",
        "gps",
        change(Some(2000), None),
        SpecWrite::Merge,
        false,
    ));
    assert!(kept.row.power_override && kept.row.generation == 2);
    exempt("static", Some(true), SpecWrite::Merge);
    let spec = ok(f.control.desired_spec("glider")).unwrap_or_else(|| panic!("a spec"));
    assert_eq!(spec.power_overrides, ["gps", "static"]);
    // Persisted: a control layer opened afresh on the same files sends the same.
    let reopened = Control::open(&f.hub).unwrap_or_else(|e| panic!("reopen: {e}"));
    let again = ok(reopened.desired_spec("glider")).unwrap_or_else(|| panic!("a spec"));
    assert_eq!(again.power_overrides, ["gps", "static"]);
    // Older agents are sent the spec without it (they have no power steps).
    let for_v3 = aloft_protocol::sync::evolution::downlink_for(Downlink::Desired(spec.clone()), 3);
    assert!(
        matches!(&for_v3, Downlink::Desired(s) if s.power_overrides.is_empty() && s.sensors == spec.sensors)
    );
    let for_v4 = aloft_protocol::sync::evolution::downlink_for(Downlink::Desired(spec.clone()), 4);
    assert_eq!(for_v4, Downlink::Desired(spec));
    // `false` clears it and bumps the generation; a replace that leaves it out clears it.
    let cleared = exempt("gps", Some(false), SpecWrite::Merge);
    assert!(cleared.changed && !cleared.row.power_override);
    assert_eq!(cleared.row.generation, 3);
    let replaced = exempt("static", None, SpecWrite::Replace);
    assert!(replaced.changed && !replaced.row.power_override);
    let spec = ok(f.control.desired_spec("glider")).unwrap_or_else(|| panic!("a spec"));
    assert!(spec.power_overrides.is_empty());
    // An exemption alone of a sensor with no entry creates none when it is `false`.
    let nothing = exempt("pitot", Some(false), SpecWrite::Merge);
    assert!(!nothing.changed);
    assert!(
        ok(f.control.desired(Some("glider")))
            .iter()
            .all(|r| r.sensor != "pitot")
    );
    // Names are checked as for every desired-state write.
    assert!(matches!(
        f.control.set_desired(
            &operator(),
            "glider",
            "Bad_Name",
            SpecChange {
                power_override: Some(true),
                ..SpecChange::default()
            },
            SpecWrite::Merge,
            false,
        ),
        Err(ControlError::InvalidName(_))
    ));
    // Every change is audited, the exemption in its message.
    let events = ok(f.control.events(Some("glider"), 0, 100));
    let messages: Vec<&str> = events
        .iter()
        .filter(|e| e.action == "set")
        .map(|e| e.message.as_str())
        .collect();
    assert_eq!(
        messages
            .iter()
            .filter(|m| m.contains("exempt from power steps"))
            .count(),
        3,
        "{messages:?}"
    );
}
