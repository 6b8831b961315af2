//! `GET /api/v1/nodes` and `GET /api/v1/nodes/{node}`: the registry as `Node` resources.
//!
//! Invariant: status is what the hub knows now (live lane and sessions since it started)
//! plus what it persisted (last seen, agent version, boot, streams with watermarks).

use aloft_protocol::sync::SensorReport;
use axum::Json;
use axum::extract::{Path, State};
use serde_json::{Value, json};

use super::{API_VERSION, ApiError, ApiState, Caller, timestamp};
use crate::db::{hex, now_utc_ns};
use crate::registry::{LatestValue, NodeStatus};
use crate::storage::source_name;
use crate::tokens::Role;

fn sensor_state_name(state: aloft_protocol::SensorState) -> String {
    format!("{state:?}")
}

fn sensor_json(report: &SensorReport) -> Value {
    json!({
        "sensor": report.sensor.0,
        "name": report.name,
        "kind": report.kind,
        "state": sensor_state_name(report.state),
        "reason": report.reason,
        "restarts": report.restarts,
        "lastRestart": report.last_restart.as_ref().map(|(t, why)| json!({
            "monoNs": t.mono_ns,
            "utc": timestamp(t.utc_ns),
            "reason": why,
        })),
        "lastError": report.last_error,
        "intervalMs": report.interval_ms,
        "enabled": report.enabled,
        "readings": report.readings,
    })
}

fn latest_json(latest: &LatestValue, now: i64) -> Value {
    let r = &latest.reading;
    json!({
        "sensor": latest.sensor,
        "quantity": r.quantity.to_string(),
        "unit": r.quantity.unit(),
        "value": r.value,
        "utc": timestamp(r.time.utc_ns),
        "timeSource": source_name(r.time.source),
        "monoNs": r.time.mono_ns,
        "quality": r.quality.names().collect::<Vec<_>>(),
        "received": timestamp(Some(latest.received_utc_ns)),
        "ageSeconds": r.time.utc_ns.map(|utc| now.saturating_sub(utc) as f64 / 1e9),
    })
}

/// The node's conditions about names: `NameValid` is `False` for a node made before the
/// grammar of names was enforced (it keeps its streams and sessions; commands and desired
/// state cannot address it), `SensorNamesValid` is `False` while its live lane reports
/// sensors whose names break the grammar.
fn name_conditions(node: &NodeStatus) -> Value {
    let name = match &node.name_problem {
        None => json!({"type": "NameValid", "status": "True", "reason": "ValidName"}),
        Some(problem) => json!({
            "type": "NameValid",
            "status": "False",
            "reason": "InvalidName",
            "message": format!("{problem}; the node keeps its data, but commands and desired state cannot name it: create a node with a valid name and move the agent to it"),
        }),
    };
    let sensors = if node.misnamed_sensors.is_empty() {
        json!({"type": "SensorNamesValid", "status": "True", "reason": "ValidNames"})
    } else {
        json!({
            "type": "SensorNamesValid",
            "status": "False",
            "reason": "InvalidSensorNames",
            "message": format!(
                "the agent reports sensors whose names break the rule for names ({}): their data is kept; rename them in the node's config",
                node.misnamed_sensors.join(", ")
            ),
        })
    };
    json!([name, sensors])
}

/// A node as a `Node` resource.
pub fn node_json(node: &NodeStatus) -> Value {
    let now = now_utc_ns();
    json!({
        "apiVersion": API_VERSION,
        "kind": "Node",
        "metadata": {
            "name": node.name,
            "creationTimestamp": timestamp(Some(node.created_utc_ns)),
        },
        "spec": {},
        "status": {
            "conditions": name_conditions(node),
            "connected": node.connected,
            "lastSeen": timestamp(node.last_seen_utc_ns),
            "sessionStarted": timestamp(node.session_started_utc_ns),
            "agentVersion": node.agent_version,
            "bootId": node.boot,
            "epoch": node.epoch,
            "link": node.link,
            "backlog": node.backlog.map(|b| json!({
                "records": b.records,
                "bytes": b.bytes,
                "oldestAgeSeconds": b.oldest_age_s,
            })),
            "liveReceived": timestamp(node.live_received_utc_ns),
            "sensors": node.sensors.iter().map(sensor_json).collect::<Vec<_>>(),
            "latest": node.latest.iter().map(|l| latest_json(l, now)).collect::<Vec<_>>(),
            "streams": node.streams.iter().map(|s| json!({
                "epoch": hex(&s.epoch.0),
                "watermark": s.watermark,
                "firstSeen": timestamp(Some(s.created_utc_ns)),
            })).collect::<Vec<_>>(),
        },
    })
}

/// `GET /api/v1/nodes` (viewer).
pub async fn list(caller: Caller, State(state): State<ApiState>) -> Result<Json<Value>, ApiError> {
    caller.require(Role::Viewer)?;
    let registry = state.hub.registry.clone();
    let nodes = tokio::task::spawn_blocking(move || registry.nodes())
        .await
        .map_err(|e| ApiError::internal(&e))?
        .map_err(|e| ApiError::internal(&e))?;
    Ok(Json(json!({
        "apiVersion": API_VERSION,
        "kind": "NodeList",
        "items": nodes.iter().map(node_json).collect::<Vec<_>>(),
    })))
}

/// `GET /api/v1/nodes/{node}` (viewer).
pub async fn get(
    caller: Caller,
    State(state): State<ApiState>,
    Path(name): Path<String>,
) -> Result<Json<Value>, ApiError> {
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
