//! `GET /api/v1/sensors`, `GET /api/v1/nodes/{node}/sensors[/{sensor}]` (viewer): every
//! sensor as a `Sensor` resource: spec from the desired state, status from the node's
//! latest live report (state, restarts, newest value age, values, backlog) and the observed
//! generation. `?watch=true` streams changes (`get sensors -w`).
//!
//! Invariant: a sensor is listed if its node reported it or the hub has desired state for
//! it, so a `set` made before the node ever connected is visible.

use aloft_api::{List, Sensor};
use axum::extract::{Path, State};
use axum::response::{IntoResponse, Response};
use axum::{Extension, Json};

use super::resources;
use super::watches::{self, ListQuery, WatchQuery, Watched};
use super::{ApiError, ApiState, Caller, Query};
use crate::clock::now_utc_ns;
use crate::control::{Control, ControlError};
use crate::tokens::Role;

/// Sensors of one node or of every node.
fn read(
    control: &Control,
    node: Option<&str>,
    sensor: Option<&str>,
) -> Result<Vec<Sensor>, ControlError> {
    let nodes = match node {
        Some(name) => vec![
            control
                .registry()
                .node(name)?
                .ok_or_else(|| ControlError::NoSuchNode(name.to_owned()))?,
        ],
        None => control.registry().nodes()?,
    };
    let now = now_utc_ns();
    let mut out = Vec::new();
    for status in &nodes {
        let desired = control.desired(Some(&status.name))?;
        let mut sensors = resources::sensors(status, &desired, now);
        if let Some(sensor) = sensor {
            sensors.retain(|s| s.metadata.name == sensor);
        }
        out.extend(sensors);
    }
    Ok(out)
}

fn answer(
    control: Control,
    state: &ApiState,
    node: Option<String>,
    sensor: Option<String>,
    watch: WatchQuery,
) -> Result<Response, ApiError> {
    let objects = read(&control, node.as_deref(), sensor.as_deref())?;
    if let (Some(name), [], Some(node)) = (&sensor, objects.as_slice(), &node) {
        return Err(ApiError::not_found(format!(
            "node {node:?} has no sensor {name:?} (it neither reported one nor has desired state for one); `aloftctl get sensors --node {node}` lists them"
        )));
    }
    if !watch.watch {
        return Ok(match sensor {
            Some(_) => Json(objects.into_iter().next()).into_response(),
            None => Json(List::of(objects)).into_response(),
        });
    }
    let reader = control.clone();
    let query = format!("sensors node={node:?} sensor={sensor:?}");
    // Sensor status comes from the node's live lane: woken by its changes, never polled.
    Ok(watches::stream_with(
        state,
        &control,
        watch,
        Watched {
            query,
            read: Box::new(move || read(&reader, node.as_deref(), sensor.as_deref())),
            key: watches::uid_key,
            fingerprint: resources::sensor_fingerprint,
            until: None,
            poll: None,
            deletions: true,
        },
        Some(state.hub.sessions.watch_live()),
    ))
}

/// `GET /api/v1/sensors?node=` (viewer).
pub async fn list(
    caller: Caller,
    State(state): State<ApiState>,
    Extension(control): Extension<Control>,
    Query(query): Query<ListQuery>,
) -> Result<Response, ApiError> {
    caller.require(Role::Viewer)?;
    let watch = query.watching();
    answer(control, &state, query.node, None, watch)
}

/// `GET /api/v1/nodes/{node}/sensors` (viewer).
pub async fn list_node(
    caller: Caller,
    State(state): State<ApiState>,
    Extension(control): Extension<Control>,
    Path(node): Path<String>,
    Query(watch): Query<WatchQuery>,
) -> Result<Response, ApiError> {
    caller.require(Role::Viewer)?;
    answer(control, &state, Some(node), None, watch)
}

/// `GET /api/v1/nodes/{node}/sensors/{sensor}` (viewer).
pub async fn get(
    caller: Caller,
    State(state): State<ApiState>,
    Extension(control): Extension<Control>,
    Path((node, sensor)): Path<(String, String)>,
    Query(watch): Query<WatchQuery>,
) -> Result<Response, ApiError> {
    caller.require(Role::Viewer)?;
    answer(control, &state, Some(node), Some(sensor), watch)
}
