//! `GET /api/v1/nodes` and `GET /api/v1/nodes/{node}`: the registry as `Node` resources.
//!
//! Invariant: status is what the hub knows now (live lane and sessions since it started)
//! plus what it persisted (last seen, agent version, boot, streams with watermarks).

use aloft_api::{
    Condition, GnssModel, LastRestart, LatestValue as ApiLatestValue, List, Node, NodeSensor,
    NodeSpec, ObjectMeta, StoreFill, StreamStatus,
};
use aloft_protocol::DynamicModel;
use aloft_protocol::sync::{NodeHealth as HealthReport, SensorReport};
use axum::Json;
use axum::extract::{Path, Query, State};
use axum::response::{IntoResponse, Response};

use super::resources::backlog;
use super::watches::{self, ListQuery, WatchQuery, Watched};
use super::{ApiError, ApiState, Caller, timestamp};
use crate::clock::{hex, now_utc_ns};
use crate::control::ControlError;
use crate::nodes::registry::{LatestValue, LinkStats, NodeStatus, whole_percent};
use crate::storage::streams::source_name;
use crate::tokens::Role;

fn sensor_state_name(state: aloft_protocol::SensorState) -> String {
    format!("{state:?}")
}

fn sensor_json(report: &SensorReport) -> NodeSensor {
    NodeSensor {
        sensor: report.sensor.0,
        name: report.name.clone(),
        kind: report.kind.clone(),
        state: sensor_state_name(report.state),
        reason: report.reason.clone(),
        restarts: report.restarts,
        last_restart: report.last_restart.as_ref().map(|(t, why)| LastRestart {
            mono_ns: t.mono_ns,
            utc: timestamp(t.utc_ns),
            reason: why.clone(),
        }),
        last_error: report.last_error.clone(),
        interval_ms: report.interval_ms,
        enabled: report.enabled,
        readings: report.readings,
    }
}

fn latest_json(latest: &LatestValue, now: i64) -> ApiLatestValue {
    let r = &latest.reading;
    ApiLatestValue {
        sensor: latest.sensor.clone(),
        quantity: r.quantity.to_string(),
        unit: r.quantity.unit().map(str::to_owned),
        value: Some(r.value),
        utc: timestamp(r.time.utc_ns),
        time_source: source_name(r.time.source).to_owned(),
        mono_ns: r.time.mono_ns,
        quality: r.quality.names().map(str::to_owned).collect(),
        received: timestamp(Some(latest.received_utc_ns)),
        age_seconds: r
            .time
            .utc_ns
            .map(|utc| now.saturating_sub(utc) as f64 / 1e9),
    }
}

/// A u-blox dynamic model's name as the API shows it: the model's own name in lower case
/// (`airborne2g`); `None` for a code with no model.
pub fn dynamic_model_name(code: u8) -> Option<String> {
    DynamicModel::from_code(code).map(|m| format!("{m:?}").to_lowercase())
}

/// `part` as a percentage of `whole`, to one decimal; `None` for an empty whole.
fn percent(part: u64, whole: u64) -> Option<f64> {
    (whole > 0).then(|| (part as f64 * 1000.0 / whole as f64).round() / 10.0)
}

/// The node's health report, its receivers named from the node's sensor reports.
fn health_json(
    health: &HealthReport,
    received_utc_ns: Option<i64>,
    sensors: &[SensorReport],
) -> aloft_api::NodeHealth {
    aloft_api::NodeHealth {
        utc: timestamp(health.time.utc_ns),
        time_source: source_name(health.time.source).to_owned(),
        mono_ns: health.time.mono_ns,
        clock_trusted: health.clock_trusted,
        store: StoreFill {
            bytes: health.store_bytes,
            max_bytes: health.store_max_bytes,
            percent: percent(health.store_bytes, health.store_max_bytes),
            full_policy: health.store_policy.clone(),
        },
        gnss_models: health
            .gnss_models
            .iter()
            .map(|g| GnssModel {
                sensor: g.sensor.0,
                name: sensors
                    .iter()
                    .find(|s| s.sensor == g.sensor)
                    .map(|s| s.name.clone()),
                model: dynamic_model_name(g.code),
                code: g.code,
            })
            .collect(),
        power: health.power.as_ref().map(power_json),
        received: timestamp(received_utc_ns),
    }
}

/// The power step in force as the API shows it.
fn power_json(power: &aloft_protocol::PowerReport) -> aloft_api::NodePower {
    aloft_api::NodePower {
        step: power.step.clone(),
        level: power.level,
        reason: power.reason.clone(),
        since: timestamp(power.since.utc_ns),
        since_mono_ns: power.since.mono_ns,
        upload_bytes_per_s: power.upload_bytes_per_s,
        overridden: power.overridden.clone(),
    }
}

fn link(l: &LinkStats) -> aloft_api::LinkStats {
    aloft_api::LinkStats {
        sessions: l.sessions,
        refusals: l.refusals,
        bytes_received: l.bytes_received,
        bytes_sent: l.bytes_sent,
        batches: l.batches,
        records: l.records,
        live_updates: l.live_updates,
    }
}

fn condition(kind: &str, ok: bool, reason: &str, message: Option<String>) -> Condition {
    Condition {
        kind: kind.to_owned(),
        status: if ok { "True" } else { "False" }.to_owned(),
        reason: reason.to_owned(),
        message,
    }
}

/// The node's conditions about names: `NameValid` is `False` for a node made before the
/// grammar of names was enforced (it keeps its streams and sessions; commands and desired
/// state cannot address it), `SensorNamesValid` is `False` while its live lane reports
/// sensors whose names break the grammar.
fn name_conditions(node: &NodeStatus) -> Vec<Condition> {
    let name = match &node.name_problem {
        None => condition("NameValid", true, "ValidName", None),
        Some(problem) => condition(
            "NameValid",
            false,
            "InvalidName",
            Some(format!(
                "{problem}; the node keeps its data, but commands and desired state cannot name it: create a node with a valid name and move the agent to it"
            )),
        ),
    };
    let sensors = if node.misnamed_sensors.is_empty() {
        condition("SensorNamesValid", true, "ValidNames", None)
    } else {
        condition(
            "SensorNamesValid",
            false,
            "InvalidSensorNames",
            Some(format!(
                "the agent reports sensors whose names break the rule for names ({}): their data is kept; rename them in the node's config",
                node.misnamed_sensors.join(", ")
            )),
        )
    };
    vec![name, sensors]
}

/// A node as a `Node` resource.
pub fn node_json(node: &NodeStatus) -> Node {
    let now = now_utc_ns();
    Node::new(
        ObjectMeta {
            name: node.name.clone(),
            creation_timestamp: timestamp(Some(node.created_utc_ns)),
            ..ObjectMeta::default()
        },
        NodeSpec {},
        aloft_api::NodeStatus {
            conditions: name_conditions(node),
            connected: Some(node.connected),
            last_seen: timestamp(node.last_seen_utc_ns),
            session_started: timestamp(node.session_started_utc_ns),
            agent_version: node.agent_version.clone(),
            boot_id: node.boot.clone(),
            epoch: node.epoch.clone(),
            link: link(&node.link),
            backlog: node.backlog.as_ref().map(backlog),
            live_received: timestamp(node.live_received_utc_ns),
            sensors: Some(node.sensors.iter().map(sensor_json).collect()),
            latest: node.latest.iter().map(|l| latest_json(l, now)).collect(),
            streams: node
                .streams
                .iter()
                .map(|s| StreamStatus {
                    epoch: hex(&s.epoch.0),
                    watermark: s.watermark,
                    first_seen: timestamp(Some(s.created_utc_ns)),
                })
                .collect(),
            health: node
                .health
                .as_ref()
                .map(|h| health_json(h, node.health_received_utc_ns, &node.sensors)),
            token: None,
            token_id: None,
        },
    )
}

/// What of a node a watch reports a change of: not what changes at every message (last
/// seen, traffic, backlog, newest values, watermarks, sensors' reading counts), and of its
/// health not the time nor the store's bytes within a whole percent of fill (the power step
/// in force counts whole).
pub fn node_fingerprint(node: &Node) -> String {
    let s = &node.status;
    let sensors = s.sensors.as_ref().map(|sensors| {
        sensors
            .iter()
            .map(|x| NodeSensor {
                readings: 0,
                ..x.clone()
            })
            .collect::<Vec<_>>()
    });
    let epochs: Vec<&String> = s.streams.iter().map(|e| &e.epoch).collect();
    let health = s.health.as_ref().map(|h| {
        let models: Vec<(u16, u8)> = h.gnss_models.iter().map(|g| (g.sensor, g.code)).collect();
        (
            &h.time_source,
            h.clock_trusted,
            h.store.max_bytes,
            &h.store.full_policy,
            whole_percent(h.store.bytes, h.store.max_bytes),
            models,
            &h.power,
        )
    });
    let picked = (
        &node.metadata.name,
        &s.conditions,
        s.connected,
        &s.agent_version,
        &s.boot_id,
        &s.epoch,
        sensors,
        epochs,
        health,
    );
    serde_json::to_string(&picked).unwrap_or_default()
}

/// The nodes named (all of them for `None`) as resources.
fn read_nodes(
    registry: &crate::nodes::registry::Registry,
    name: Option<&str>,
) -> Result<Vec<Node>, ControlError> {
    let nodes = match name {
        None => registry.nodes()?,
        Some(name) => registry.node(name)?.into_iter().collect(),
    };
    Ok(nodes.iter().map(node_json).collect())
}

/// A watch of the nodes named: woken by the sessions' live changes (sessions, sensor
/// reports, health reports that say something new, nodes created or deleted).
fn watch_nodes(state: &ApiState, name: Option<String>, watch: WatchQuery) -> Response {
    let registry = state.hub.registry.clone();
    watches::stream_signalled(
        state,
        state.hub.sessions.watch_live(),
        watch,
        Watched {
            query: format!("nodes name={name:?}"),
            read: Box::new(move || read_nodes(&registry, name.as_deref())),
            key: watches::name_key,
            fingerprint: node_fingerprint,
            until: None,
            poll: None,
            deletions: true,
        },
        None,
    )
}

/// `GET /api/v1/nodes[?watch=true]` (viewer).
pub async fn list(
    caller: Caller,
    State(state): State<ApiState>,
    Query(query): Query<ListQuery>,
) -> Result<Response, ApiError> {
    caller.require(Role::Viewer)?;
    if query.watch {
        return Ok(watch_nodes(&state, None, query.watching()));
    }
    let registry = state.hub.registry.clone();
    let nodes = tokio::task::spawn_blocking(move || registry.nodes())
        .await
        .map_err(|e| ApiError::internal(&e))?
        .map_err(|e| ApiError::internal(&e))?;
    Ok(Json(List::of(nodes.iter().map(node_json).collect())).into_response())
}

/// `GET /api/v1/nodes/{node}[?watch=true]` (viewer).
pub async fn get(
    caller: Caller,
    State(state): State<ApiState>,
    Path(name): Path<String>,
    Query(watch): Query<WatchQuery>,
) -> Result<Response, ApiError> {
    caller.require(Role::Viewer)?;
    let registry = state.hub.registry.clone();
    let lookup = name.clone();
    let node = tokio::task::spawn_blocking(move || registry.node(&lookup))
        .await
        .map_err(|e| ApiError::internal(&e))?
        .map_err(|e| ApiError::internal(&e))?;
    match node {
        Some(_) if watch.watch => Ok(watch_nodes(&state, Some(name), watch)),
        Some(node) => Ok(Json(node_json(&node)).into_response()),
        None => Err(ApiError::not_found(format!(
            "no node {name:?}; `GET /api/v1/nodes` lists them"
        ))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use aloft_protocol::sync::GnssModel as ReportedModel;
    use aloft_protocol::{SensorId, Timestamp};

    #[test]
    fn every_dynamic_model_code_is_named_when_it_has_a_model_and_kept_either_way() {
        let mut names = std::collections::BTreeSet::new();
        for code in 0..=u8::MAX {
            let name = dynamic_model_name(code);
            assert_eq!(
                name.is_some(),
                DynamicModel::from_code(code).is_some(),
                "{code}"
            );
            if let Some(name) = name {
                assert!(
                    name.chars()
                        .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit()),
                    "{name}"
                );
                assert!(names.insert(name.clone()), "{name} named twice");
            }
        }
        assert_eq!(dynamic_model_name(7).as_deref(), Some("airborne2g"));
        assert_eq!(dynamic_model_name(0).as_deref(), Some("portable"));
        assert_eq!(names.len(), 10);
    }

    fn node_with(health: Option<aloft_api::NodeHealth>) -> Node {
        let mut node = Node::default();
        node.metadata.name = "glider".into();
        node.status.health = health;
        node
    }

    #[test]
    fn a_node_watch_sees_health_that_says_something_new_and_not_the_time_alone() {
        let base = aloft_api::NodeHealth {
            utc: Some("2026-11-24T13:20:01Z".into()),
            time_source: "gnss".into(),
            mono_ns: 1,
            clock_trusted: Some(true),
            store: StoreFill {
                bytes: 102,
                max_bytes: 1000,
                percent: Some(10.2),
                full_policy: "decimate".into(),
            },
            gnss_models: vec![GnssModel {
                sensor: 0,
                name: Some("gps".into()),
                model: Some("airborne2g".into()),
                code: 7,
            }],
            power: Some(aloft_api::NodePower {
                step: "economy".into(),
                level: 1,
                reason: "state of charge 0.34 below 0.35".into(),
                since: None,
                since_mono_ns: 1,
                upload_bytes_per_s: Some(50_000),
                overridden: vec![],
            }),
            received: Some("2026-11-24T13:20:01.2Z".into()),
        };
        let print = |h: &aloft_api::NodeHealth| node_fingerprint(&node_with(Some(h.clone())));
        let same = |change: &dyn Fn(&mut aloft_api::NodeHealth)| {
            let mut h = base.clone();
            change(&mut h);
            print(&h) == print(&base)
        };
        assert_ne!(print(&base), node_fingerprint(&node_with(None)));
        // The time, and the bytes within a whole percent: not a change.
        assert!(same(&|h| {
            h.utc = Some("2026-11-24T13:20:02Z".into());
            h.mono_ns = 2;
            h.received = Some("2026-11-24T13:20:02.2Z".into());
            h.store.bytes = 109;
            h.store.percent = Some(10.9);
        }));
        // Everything else is.
        assert!(!same(&|h| h.store.bytes = 110));
        assert!(!same(&|h| h.time_source = "reconstructed".into()));
        assert!(!same(&|h| h.clock_trusted = Some(false)));
        assert!(!same(&|h| h.store.full_policy = "reject-new".into()));
        assert!(!same(&|h| h.store.max_bytes = 2000));
        assert!(!same(&|h| h.gnss_models[0].code = 0));
        assert!(!same(&|h| h.gnss_models.clear()));
        // The power step, whole: a new step, reason, budget or exemption wakes a watch,
        // and so does a node whose agent stopped saying (unknown is not full power).
        fn power(h: &mut aloft_api::NodeHealth) -> &mut aloft_api::NodePower {
            h.power.as_mut().unwrap()
        }
        assert!(!same(&|h| power(h).level = 2));
        assert!(!same(&|h| power(h).step = "survival".into()));
        assert!(!same(&|h| power(h).reason = "pack temperature".into()));
        assert!(!same(&|h| power(h).upload_bytes_per_s = None));
        assert!(!same(&|h| power(h).overridden.push("gps".into())));
        assert!(!same(&|h| h.power = None));
    }

    #[test]
    fn whole_percents_round_down_and_never_overflow() {
        assert_eq!(whole_percent(109, 1000), Some(10));
        assert_eq!(whole_percent(110, 1000), Some(11));
        assert_eq!(whole_percent(u64::MAX, u64::MAX), Some(100));
        assert_eq!(whole_percent(u64::MAX, 1), Some(u64::MAX));
        assert_eq!(whole_percent(1, 0), None);
    }

    #[test]
    fn store_fill_is_a_percentage_to_one_decimal_and_none_without_a_cap() {
        assert_eq!(percent(52_428_800, 268_435_456), Some(19.5));
        assert_eq!(percent(0, 100), Some(0.0));
        assert_eq!(percent(100, 100), Some(100.0));
        assert_eq!(percent(1, 3), Some(33.3));
        assert_eq!(percent(5, 0), None);
    }

    #[test]
    fn a_health_report_names_its_receivers_and_keeps_unknown_model_codes() {
        let report = HealthReport {
            time: Timestamp {
                mono_ns: 5,
                utc_ns: Some(1_795_000_000_000_000_000),
                source: aloft_protocol::TimeSource::Gnss,
            },
            clock_trusted: None,
            store_bytes: 1,
            store_max_bytes: 4,
            store_policy: "reject-new".into(),
            gnss_models: vec![
                ReportedModel {
                    sensor: SensorId(0),
                    code: 7,
                },
                ReportedModel {
                    sensor: SensorId(3),
                    code: 200,
                },
            ],
            power: None,
        };
        let sensors = [SensorReport {
            sensor: SensorId(0),
            name: "gps".into(),
            kind: "ublox".into(),
            state: aloft_protocol::SensorState::Running,
            reason: String::new(),
            restarts: 0,
            last_restart: None,
            last_error: None,
            interval_ms: None,
            enabled: true,
            readings: 0,
        }];
        let shown = health_json(&report, Some(1_795_000_001_000_000_000), &sensors);
        assert_eq!(shown.time_source, "gnss");
        assert!(shown.utc.is_some());
        assert_eq!(shown.clock_trusted, None);
        assert_eq!(shown.store.percent, Some(25.0));
        assert_eq!(shown.store.full_policy, "reject-new");
        assert_eq!(
            shown.gnss_models,
            [
                GnssModel {
                    sensor: 0,
                    name: Some("gps".into()),
                    model: Some("airborne2g".into()),
                    code: 7,
                },
                GnssModel {
                    sensor: 3,
                    name: None,
                    model: None,
                    code: 200,
                },
            ]
        );
        assert!(shown.received.is_some());
        assert_eq!(shown.power, None, "no power report reads as unknown");
    }

    #[test]
    fn a_power_report_shows_its_step_reason_since_and_budget() {
        let report = HealthReport {
            time: Timestamp::monotonic(9),
            clock_trusted: Some(true),
            store_bytes: 0,
            store_max_bytes: 0,
            store_policy: "decimate".into(),
            gnss_models: vec![],
            power: Some(aloft_protocol::PowerReport {
                step: "survival".into(),
                level: 2,
                reason: "pack temperature -21.0 C below -20.0 C".into(),
                since: Timestamp {
                    mono_ns: 7,
                    utc_ns: Some(1_795_000_000_000_000_000),
                    source: aloft_protocol::TimeSource::Gnss,
                },
                upload_bytes_per_s: None,
                overridden: vec!["gps".into()],
            }),
        };
        let shown = health_json(&report, None, &[]).power.unwrap();
        assert_eq!(shown.step, "survival");
        assert_eq!(shown.level, 2);
        assert_eq!(shown.reason, "pack temperature -21.0 C below -20.0 C");
        assert_eq!(shown.since, timestamp(Some(1_795_000_000_000_000_000)));
        assert!(shown.since.is_some());
        assert_eq!(shown.since_mono_ns, 7);
        assert_eq!(shown.upload_bytes_per_s, None);
        assert_eq!(shown.overridden, ["gps"]);
    }
}
