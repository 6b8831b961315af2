//! `GET /api/v1/nodes/{node}/logs?sensor=&lines=&timeoutSeconds=` (viewer): recent agent
//! log lines, fetched now: the hub sends the node `FetchLogs` and waits for its `Logs`.
//!
//! Invariant: nothing is stored at the hub; a node that is not connected gets 503, one
//! that does not answer within the timeout (default 10 s) 504, both saying why; a sensor
//! the node has not reported is 404, as an empty answer would look like a quiet sensor.

use std::time::Duration;

use aloft_api::{List, ListMeta, LogLine};
use axum::extract::{Path, State};
use axum::{Extension, Json};
use serde::Deserialize;

use super::{ApiError, ApiState, Caller, Query, timestamp};
use crate::control::Control;
use crate::tokens::Role;

/// `?sensor=&lines=&timeoutSeconds=`.
#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct LogsQuery {
    /// Only lines about this sensor.
    pub sensor: Option<String>,
    /// At most this many lines (default 100, at most 10 000).
    pub lines: Option<u32>,
    /// How long to wait for the node (default 10, at most 120).
    pub timeout_seconds: Option<u64>,
}

/// `GET /api/v1/nodes/{node}/logs` (viewer).
pub async fn get(
    caller: Caller,
    State(state): State<ApiState>,
    Extension(control): Extension<Control>,
    Path(node): Path<String>,
    Query(query): Query<LogsQuery>,
) -> Result<Json<List<LogLine>>, ApiError> {
    caller.require(Role::Viewer)?;
    if let Some(sensor) = &query.sensor {
        known_sensor(&state, &node, sensor)?;
    }
    let timeout = Duration::from_secs(query.timeout_seconds.unwrap_or(10).clamp(1, 120));
    let lines = query.lines.unwrap_or(100).clamp(1, 10_000);
    let batch = control
        .fetch_logs(&node, query.sensor.clone(), lines, timeout)
        .await?;
    let items = batch
        .lines
        .iter()
        .map(|l| LogLine {
            time: timestamp(l.time.utc_ns)
                .unwrap_or_else(|| format!("+{:.3}s", l.time.mono_ns as f64 / 1e9)),
            level: l.level.clone(),
            sensor: l.sensor.clone(),
            message: l.message.clone(),
        })
        .collect();
    Ok(Json(List::new("Log", items).with_metadata(ListMeta {
        node: Some(node),
        sensor: query.sensor,
    })))
}

/// Refuses a sensor the node's newest report does not list. A node that never reported
/// its sensors cannot be judged: its agent answers for itself.
fn known_sensor(state: &ApiState, node: &str, sensor: &str) -> Result<(), ApiError> {
    let Some(status) = state
        .hub
        .registry
        .node(node)
        .map_err(|e| ApiError::internal(&e))?
    else {
        // Fetching says that the node does not exist, as for every node route.
        return Ok(());
    };
    if status.live_received_utc_ns.is_none() || status.sensors.iter().any(|s| s.name == sensor) {
        return Ok(());
    }
    let known: Vec<&str> = status.sensors.iter().map(|s| s.name.as_str()).collect();
    Err(ApiError::not_found(format!(
        "node {node} has no sensor {sensor}; it reported: {}",
        if known.is_empty() {
            "none".to_owned()
        } else {
            known.join(", ")
        }
    )))
}
