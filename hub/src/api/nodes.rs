//! `GET /api/v1/nodes` and `GET /api/v1/nodes/{node}`: the registry as `Node` resources.
//!
//! Invariant: status is what the hub knows now (live lane and sessions since it started)
//! plus what it persisted (last seen, agent version, boot, streams with watermarks).

use aloft_api::{
    Condition, LastRestart, LatestValue as ApiLatestValue, List, Node, NodeSensor, NodeSpec,
    ObjectMeta, StreamStatus,
};
use aloft_protocol::sync::SensorReport;
use axum::Json;
use axum::extract::{Path, State};

use super::resources::backlog;
use super::{ApiError, ApiState, Caller, timestamp};
use crate::clock::{hex, now_utc_ns};
use crate::nodes::registry::{LatestValue, LinkStats, NodeStatus};
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
            token: None,
            token_id: None,
        },
    )
}

/// `GET /api/v1/nodes` (viewer).
pub async fn list(
    caller: Caller,
    State(state): State<ApiState>,
) -> Result<Json<List<Node>>, ApiError> {
    caller.require(Role::Viewer)?;
    let registry = state.hub.registry.clone();
    let nodes = tokio::task::spawn_blocking(move || registry.nodes())
        .await
        .map_err(|e| ApiError::internal(&e))?
        .map_err(|e| ApiError::internal(&e))?;
    Ok(Json(List::of(nodes.iter().map(node_json).collect())))
}

/// `GET /api/v1/nodes/{node}` (viewer).
pub async fn get(
    caller: Caller,
    State(state): State<ApiState>,
    Path(name): Path<String>,
) -> Result<Json<Node>, ApiError> {
    caller.require(Role::Viewer)?;
    let registry = state.hub.registry.clone();
    let lookup = name.clone();
    let node = tokio::task::spawn_blocking(move || registry.node(&lookup))
        .await
        .map_err(|e| ApiError::internal(&e))?
        .map_err(|e| ApiError::internal(&e))?;
    match node {
        Some(node) => Ok(Json(node_json(&node))),
        None => Err(ApiError::not_found(format!(
            "no node {name:?}; `GET /api/v1/nodes` lists them"
        ))),
    }
}
