//! The hub's desired sensor state, applied live: a [`DesiredSpec`] becomes one target
//! (interval, enabled, tunables) per sensor, the changes go to the supervisor, the spec is
//! persisted for the next boot (invariant 7) and the agent answers with the [`Observed`]
//! generation of every sensor the spec names and the tunables in force of each.
//!
//! Invariants: level-triggered (docs/design.md 4): a spec is the whole truth, so a sensor or a
//! field the spec does not mention goes back to the config file's value (a tunable key the
//! spec leaves out, to the file's, else the kind's default); only interval, enabled and
//! tunables change (invariant 5): a sensor the config file does not have, an interval on a
//! device that sends at its own rate, one below what the part can do, or a set of tunables
//! its kind does not accept (whole: the previous set stays in force) is refused with its
//! reason in `refused`, and the rest of that sensor's spec still applies. The observed
//! generation is the spec's generation once the agent has acted on it, refused parts
//! included: the refusal is the agent's answer to that generation. The state a sensor runs
//! in is the spec's lowered by the power step in force ([`crate::power`]), unless the
//! spec's `power_overrides` exempts it.

use std::collections::BTreeMap;
use std::time::Duration;

use aloft_protocol::sync::{DesiredSpec, Observed, ObservedSensor, SensorTunables};

use super::ControlHandles;
use crate::config::tunables::{self, Tunables};
use crate::config::{AgentConfig, SensorKind};
use crate::state::{DesiredSensor, DesiredState};
use crate::supervisor::{SensorChange, SupervisorError};

/// What a spec asks of the running sensors.
#[derive(Debug, Clone, PartialEq)]
pub struct Plan {
    /// The target of every supervised sensor, in the supervisor's order.
    pub targets: Vec<(String, SensorChange)>,
    /// Per sensor the spec names: its generation and what was refused.
    pub observed: Vec<ObservedSensor>,
    /// The tunables of every supervised sensor, checked: the config file's overridden key
    /// by key by the spec's; `None` where the kind refused them (what is in force stays).
    pub tunables: Vec<(String, Option<Tunables>)>,
}

/// The tunables the spec wants of `name`: the config file's, with the spec's keys over
/// them.
fn wanted_tunables(config: &AgentConfig, spec: &DesiredSpec, name: &str) -> Tunables {
    let mut wanted = config
        .sensors
        .iter()
        .find(|s| s.name == name)
        .map(|s| s.tunables())
        .unwrap_or_default();
    for entry in spec.tunables.iter().filter(|t| t.name == name) {
        for (key, value) in &entry.tunables {
            wanted.insert(key.clone(), value.clone());
        }
    }
    wanted
}

/// The config file's interval of a sensor: its own, else its kind's default; `None` for a
/// device that sends at its own rate.
fn file_interval(config: &AgentConfig, name: &str, kind: SensorKind) -> Option<Duration> {
    kind.min_interval()?;
    let configured = config
        .sensors
        .iter()
        .find(|s| s.name == name)
        .and_then(|s| s.interval);
    configured.or(kind.default_interval())
}

/// Works out the targets of `spec` for the `sensors` the supervisor runs, with the config
/// file as the base of everything the spec leaves out.
pub fn plan(config: &AgentConfig, sensors: &[(String, SensorKind)], spec: &DesiredSpec) -> Plan {
    let mut targets: Vec<(String, SensorChange)> = sensors
        .iter()
        .map(|(name, kind)| {
            let file = config.sensors.iter().find(|s| &s.name == name);
            (
                name.clone(),
                SensorChange {
                    interval: file_interval(config, name, *kind),
                    // A sensor the file does not list (a test rig) keeps what it has.
                    enabled: file.map(|s| s.enabled),
                },
            )
        })
        .collect();
    let mut tunables = Vec::with_capacity(sensors.len());
    let mut tunables_refused: BTreeMap<&str, String> = BTreeMap::new();
    for (name, kind) in sensors {
        let wanted = wanted_tunables(config, spec, name);
        match tunables::check(*kind, &wanted) {
            Ok(()) => tunables.push((name.clone(), Some(wanted))),
            Err(reason) => {
                tunables_refused.insert(
                    name.as_str(),
                    SupervisorError::Tunables {
                        name: name.clone(),
                        reason,
                    }
                    .to_string(),
                );
                tunables.push((name.clone(), None));
            }
        }
    }
    let mut observed = Vec::with_capacity(spec.sensors.len());
    for wanted in &spec.sensors {
        let mut refused = Vec::new();
        let known = sensors
            .iter()
            .position(|(name, _)| *name == wanted.name)
            .and_then(|i| Some((sensors.get(i)?.1, &mut targets.get_mut(i)?.1)));
        match known {
            Some((kind, target)) => {
                if let Some(why) = tunables_refused.get(wanted.name.as_str()) {
                    refused.push(why.clone());
                }
                if let Some(enabled) = wanted.enabled {
                    target.enabled = Some(enabled);
                }
                if let Some(ms) = wanted.interval_ms {
                    let interval = Duration::from_millis(u64::from(ms));
                    match kind.min_interval() {
                        None => refused.push(
                            SupervisorError::NoInterval {
                                name: wanted.name.clone(),
                                kind,
                            }
                            .to_string(),
                        ),
                        Some(min) if interval < min => refused.push(
                            SupervisorError::IntervalTooShort {
                                name: wanted.name.clone(),
                                kind,
                                interval,
                                min,
                            }
                            .to_string(),
                        ),
                        Some(_) => target.interval = Some(interval),
                    }
                }
            }
            None => refused.push(match aloft_protocol::check_name(&wanted.name) {
                // A name no config can hold: said as such, and shown bounded.
                Err(e) => format!(
                    "sensor {:?}: the name {e}, so no sensor of a config file has it",
                    wanted.name.chars().take(aloft_protocol::MAX_NAME_LEN).collect::<String>()
                ),
                Ok(()) => format!(
                    "sensor {}: not in the node's config file (the config file owns the hardware; add it there)",
                    wanted.name
                ),
            }),
        }
        observed.push(ObservedSensor {
            name: wanted.name.clone(),
            observed_generation: wanted.generation,
            refused: (!refused.is_empty()).then(|| refused.join("; ")),
        });
    }
    Plan {
        targets,
        observed,
        tunables,
    }
}

/// The spec as the state file keeps it: the desired state and each sensor's generation,
/// for the sensors the node has (`known`). Entries for other sensors are answered as
/// refused but not kept: the file stays bounded by the config, whatever the hub sends,
/// and the hub resends the whole spec after every welcome anyway.
pub fn to_state(
    spec: &DesiredSpec,
    known: &[(String, SensorKind)],
) -> (Option<DesiredState>, BTreeMap<String, u64>) {
    let kept: Vec<_> = spec
        .sensors
        .iter()
        .filter(|s| known.iter().any(|(name, _)| *name == s.name))
        .collect();
    if kept.is_empty() {
        return (None, BTreeMap::new());
    }
    let generations = kept
        .iter()
        .map(|s| (s.name.clone(), s.generation))
        .collect();
    let desired = DesiredState {
        generation: kept.iter().map(|s| s.generation).max().unwrap_or(0),
        sensors: kept
            .iter()
            .map(|s| DesiredSensor {
                name: s.name.clone(),
                interval: s.interval_ms.map(|ms| Duration::from_millis(u64::from(ms))),
                enabled: s.enabled,
                tunables: spec
                    .tunables
                    .iter()
                    .filter(|t| t.name == s.name)
                    .flat_map(|t| t.tunables.iter().cloned())
                    .collect(),
            })
            .collect(),
    };
    (Some(desired), generations)
}

/// Persists `spec`, applies it live and says what was observed.
pub async fn apply(handles: &ControlHandles, spec: &DesiredSpec) -> Observed {
    let sensors = handles.supervisor.sensors();
    let mut plan = plan(&handles.config, &sensors, spec);
    // Persisted first: a crash in the middle still boots with this spec (invariant 7).
    // The hub resends the spec after every welcome: an unchanged one costs no SD write.
    let (desired, generations) = to_state(spec, &sensors);
    let overrides: Vec<String> = spec
        .power_overrides
        .iter()
        .filter(|o| sensors.iter().any(|(name, _)| name == *o))
        .cloned()
        .collect();
    let known = handles.state.snapshot();
    if (known.desired != desired
        || known.desired_generations != generations
        || known.power_overrides != overrides)
        && let Err(e) = handles.state.update(|s| {
            s.desired = desired;
            s.desired_generations = generations;
            s.power_overrides = overrides;
        })
    {
        tracing::error!(error = %e, "Could not persist the desired state; applied until the agent restarts.");
    }
    let generation = spec.sensors.iter().map(|s| s.generation).max().unwrap_or(0);
    let reason = format!("desired state generation {generation}");
    // The step in force lowers what the spec asks (a step only lowers), except for the
    // sensors the spec exempts; a change of step waits until these are applied.
    let power = &handles.power;
    let _turn = power.applying().await;
    for unknown in spec
        .power_overrides
        .iter()
        .filter(|o| !sensors.iter().any(|(name, _)| name == *o))
    {
        tracing::warn!(sensor = %unknown, "Power override of a sensor the node does not have; ignored.");
    }
    power.set_overrides(spec.power_overrides.iter().cloned());
    for (name, change) in &plan.targets {
        let change = power.lower(name, *change);
        if let Err(e) = handles.supervisor.reconfigure(name, change, &reason).await {
            tracing::warn!(sensor = %name, error = %e, "Desired state not applied.");
            if let Some(o) = plan.observed.iter_mut().find(|o| &o.name == name) {
                let text = e.to_string();
                o.refused = Some(match o.refused.take() {
                    Some(before) => format!("{before}; {text}"),
                    None => text,
                });
            }
        }
    }
    for (name, wanted) in &plan.tunables {
        let Some(wanted) = wanted else {
            continue;
        };
        if let Err(e) = handles.supervisor.tune(name, wanted).await {
            tracing::warn!(sensor = %name, error = %e, "Desired tunables not applied.");
            if let Some(o) = plan.observed.iter_mut().find(|o| &o.name == name) {
                let text = e.to_string();
                o.refused = Some(match o.refused.take() {
                    Some(before) => format!("{before}; {text}"),
                    None => text,
                });
            }
        }
    }
    // What is in force, refused sets included: the previous set stays.
    let in_force = plan
        .observed
        .iter()
        .filter_map(|o| {
            let set = handles.supervisor.tunables(&o.name).ok()?;
            (!set.is_empty()).then(|| SensorTunables {
                name: o.name.clone(),
                tunables: set.into_iter().collect(),
            })
        })
        .collect();
    for o in &plan.observed {
        match &o.refused {
            Some(why) => {
                tracing::warn!(sensor = %o.name, generation = o.observed_generation, refused = %why, "Desired state partly refused.")
            }
            None => {
                tracing::info!(sensor = %o.name, generation = o.observed_generation, "Desired state applied.")
            }
        }
    }
    Observed {
        sensors: plan.observed,
        tunables: in_force,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use aloft_protocol::sync::{DesiredSensorSpec, TunableValue};
    use std::path::Path;

    fn config() -> AgentConfig {
        let example = Path::new(env!("CARGO_MANIFEST_DIR")).join("../deploy/examples/sim.toml");
        crate::config::load(&example).unwrap()
    }

    fn sensors(config: &AgentConfig) -> Vec<(String, SensorKind)> {
        config
            .sensors
            .iter()
            .map(|s| (s.name.clone(), s.kind))
            .collect()
    }

    fn spec(entries: &[(&str, u64, Option<u32>, Option<bool>)]) -> DesiredSpec {
        DesiredSpec {
            sensors: entries
                .iter()
                .map(
                    |(name, generation, interval_ms, enabled)| DesiredSensorSpec {
                        name: (*name).into(),
                        generation: *generation,
                        interval_ms: *interval_ms,
                        enabled: *enabled,
                    },
                )
                .collect(),
            tunables: vec![],
            power_overrides: vec![],
        }
    }

    fn target<'a>(plan: &'a Plan, name: &str) -> &'a SensorChange {
        &plan.targets.iter().find(|(n, _)| n == name).unwrap().1
    }

    #[test]
    fn a_spec_sets_interval_and_enabled_and_is_observed_at_its_generation() {
        let config = config();
        let plan = plan(
            &config,
            &sensors(&config),
            &spec(&[
                ("static", 4, Some(250), None),
                ("co2", 9, None, Some(false)),
            ]),
        );
        assert_eq!(
            target(&plan, "static").interval,
            Some(Duration::from_millis(250))
        );
        assert_eq!(target(&plan, "co2").enabled, Some(false));
        assert_eq!(
            plan.observed,
            vec![
                ObservedSensor {
                    name: "static".into(),
                    observed_generation: 4,
                    refused: None
                },
                ObservedSensor {
                    name: "co2".into(),
                    observed_generation: 9,
                    refused: None
                },
            ]
        );
    }

    #[test]
    fn what_the_spec_leaves_out_goes_back_to_the_config_file() {
        let config = config();
        let plan = plan(&config, &sensors(&config), &spec(&[]));
        for (name, change) in &plan.targets {
            let file = config.sensor(name).unwrap().1;
            assert_eq!(change.enabled, Some(file.enabled), "{name}");
            let expected = file.interval_or_default();
            assert_eq!(change.interval, expected, "{name}");
        }
    }

    #[test]
    fn refused_parts_say_why_and_the_rest_of_the_sensor_spec_applies() {
        let config = config();
        let plan = plan(
            &config,
            &sensors(&config),
            &spec(&[
                ("gps", 2, Some(1000), Some(false)),
                ("pitot", 3, Some(0), None),
                ("wing-strain", 5, None, Some(true)),
            ]),
        );
        let refused = |n: &str| {
            plan.observed
                .iter()
                .find(|o| o.name == n)
                .and_then(|o| o.refused.clone())
                .unwrap_or_default()
        };
        assert!(refused("gps").contains("own rate"), "{}", refused("gps"));
        assert_eq!(
            target(&plan, "gps").enabled,
            Some(false),
            "the enabled part applies"
        );
        assert_eq!(target(&plan, "gps").interval, None);
        assert!(refused("pitot").contains("below"), "{}", refused("pitot"));
        assert!(
            refused("wing-strain").contains("not in the node's config file"),
            "{}",
            refused("wing-strain")
        );
        assert!(plan.observed.iter().all(|o| o.observed_generation > 0));
    }

    #[test]
    fn a_name_outside_the_grammar_is_refused_as_such_and_bounded() {
        let config = config();
        let long = "x".repeat(100_000);
        let plan = plan(
            &config,
            &sensors(&config),
            &spec(&[
                ("static_2", 1, Some(500), None),
                (&long, 2, None, Some(true)),
            ]),
        );
        let why = |i: usize| plan.observed[i].refused.clone().unwrap_or_default();
        assert!(why(0).contains("'_' at position 7"), "{}", why(0));
        assert!(
            why(1).contains("100000 characters long") && why(1).len() < 300,
            "{}",
            why(1)
        );
    }

    #[test]
    fn the_persisted_form_keeps_each_sensors_generation_and_loads_at_boot() {
        let s = spec(&[
            ("static", 4, Some(250), None),
            ("co2", 9, None, Some(false)),
            ("wing-strain", 11, None, Some(true)),
        ]);
        let mut config = config();
        let (desired, generations) = to_state(&s, &sensors(&config));
        let desired = desired.unwrap();
        assert_eq!(desired.generation, 9);
        assert_eq!(generations.get("static"), Some(&4));
        assert!(
            !generations.contains_key("wing-strain"),
            "a sensor the node does not have is not kept"
        );
        assert!(desired.apply_to(&mut config).is_empty());
        assert_eq!(
            config.sensor("static").unwrap().1.interval,
            Some(Duration::from_millis(250))
        );
        assert_eq!(
            to_state(&spec(&[]), &sensors(&config)),
            (None, BTreeMap::new())
        );
    }

    fn with_tunables(
        mut spec: DesiredSpec,
        name: &str,
        set: &[(&str, TunableValue)],
    ) -> DesiredSpec {
        spec.tunables.push(SensorTunables {
            name: name.into(),
            tunables: set.iter().map(|(k, v)| ((*k).into(), v.clone())).collect(),
        });
        spec
    }

    fn tunables_of<'a>(plan: &'a Plan, name: &str) -> &'a Option<Tunables> {
        &plan.tunables.iter().find(|(n, _)| n == name).unwrap().1
    }

    #[test]
    fn accepted_tunables_are_planned_and_a_refused_set_keeps_what_is_in_force() {
        let config = config();
        let s = with_tunables(
            with_tunables(
                spec(&[("gps", 3, None, None), ("outside-air", 4, None, None)]),
                "gps",
                &[("dynamic_model", TunableValue::Text("airborne4g".into()))],
            ),
            "outside-air",
            &[
                ("pressure_oversampling", TunableValue::Integer(16)),
                ("filter", TunableValue::Integer(2)),
            ],
        );
        let plan = plan(&config, &sensors(&config), &s);
        assert_eq!(
            tunables_of(&plan, "gps"),
            &Some(Tunables::from([(
                "dynamic_model".into(),
                TunableValue::Text("airborne4g".into())
            )]))
        );
        // Refused whole, with the reason, at the spec's generation.
        assert_eq!(tunables_of(&plan, "outside-air"), &None);
        let air = plan
            .observed
            .iter()
            .find(|o| o.name == "outside-air")
            .unwrap();
        assert_eq!(air.observed_generation, 4);
        let why = air.refused.clone().unwrap_or_default();
        assert!(
            why.contains("\"filter\"") && why.contains("no such tunable"),
            "{why}"
        );
        assert_eq!(
            plan.observed
                .iter()
                .find(|o| o.name == "gps")
                .unwrap()
                .refused,
            None
        );
        // A sensor the spec gives no tunables goes back to the file's (none here).
        assert_eq!(tunables_of(&plan, "static"), &Some(Tunables::new()));
    }

    #[test]
    fn persisted_tunables_load_at_boot_and_a_refused_set_leaves_the_files() {
        let config = config();
        let s = with_tunables(
            spec(&[("gps", 3, None, None)]),
            "gps",
            &[("dynamic_model", TunableValue::Text("airborne1g".into()))],
        );
        let (desired, _) = to_state(&s, &sensors(&config));
        let desired = desired.unwrap();
        let mut booted = config.clone();
        assert!(desired.apply_to(&mut booted).is_empty());
        assert_eq!(
            booted
                .sensor("gps")
                .unwrap()
                .1
                .tunables()
                .get("dynamic_model"),
            Some(&TunableValue::Text("airborne1g".into()))
        );
        let bad = with_tunables(
            spec(&[("gps", 4, None, None)]),
            "gps",
            &[("dynamic_model", TunableValue::Integer(7))],
        );
        let (desired, _) = to_state(&bad, &sensors(&config));
        let mut booted = config.clone();
        let refused = desired.unwrap().apply_to(&mut booted);
        assert!(
            refused.len() == 1 && refused[0].contains("dynamic_model"),
            "{refused:?}"
        );
        assert!(booted.sensor("gps").unwrap().1.tunables().is_empty());
    }

    #[test]
    fn the_power_step_lowers_what_a_spec_asks_except_for_the_sensors_it_exempts() {
        use crate::power::{BatteryInputs, PowerGovernor};
        let config = config();
        let power = PowerGovernor::new(&config, []);
        // The sim example's survival step: voltage below 13.5 V.
        let sag = BatteryInputs {
            voltage_v: Some(13.0),
            soc: Some(0.5),
            temperature_k: Some(260.0),
        };
        power.consider(&sag, Duration::ZERO);
        let (record, _) = power
            .consider(&sag, Duration::from_secs(60))
            .expect("survival after the dwell");
        assert_eq!(record.step, "survival");
        let asked = plan(
            &config,
            &sensors(&config),
            &spec(&[("pitot", 2, Some(10), None), ("co2", 2, None, Some(true))]),
        );
        let lowered = |name: &str| power.lower(name, *target(&asked, name));
        // Pitot asked 10 ms: survival holds it to 1 s; co2 asked on: survival keeps it off.
        assert_eq!(lowered("pitot").interval, Some(Duration::from_secs(1)));
        assert_eq!(lowered("co2").enabled, Some(false));
        // Economy's factor of 4 on the static port's 100 ms from the file.
        assert_eq!(lowered("static").interval, Some(Duration::from_millis(400)));
        // Exempted by the operator: as asked.
        power.set_overrides(["pitot".to_string(), "co2".to_string()]);
        assert_eq!(lowered("pitot").interval, Some(Duration::from_millis(10)));
        assert_eq!(lowered("co2").enabled, Some(true));
        let report = power.report().expect("a policy");
        assert_eq!(report.overridden, ["co2", "pitot"]);
    }
}
