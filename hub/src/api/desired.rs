//! Desired sensor state (operator): `PUT /api/v1/nodes/{node}/sensors/{sensor}/spec`
//! replaces a sensor's spec (`apply`), `PATCH` merges into it (`set`; a tunable given
//! `null` is removed); both take `{"intervalMs": N|null, "enabled": bool|null,
//! "tunables": {KEY: bool|integer|string|null}, "powerOverride": bool|null}` and `?dryRun=true` to validate and show
//! the result without writing (`diff`). `DELETE` on the same path, or a `PUT` of `{}`,
//! removes the sensor's entry: the agent goes back to its config file for that sensor
//! (`unset`). `GET /api/v1/nodes/{node}/desired` (viewer) shows the whole spec as the node
//! receives it.
//!
//! Invariant: the answer comes after the change is persisted and audited; the generation
//! moves only when the spec changes (`status.changed` says whether it did). Node and
//! sensor names follow the protocol's grammar (422 otherwise); a node holds at most
//! `MAX_DESIRED_SENSORS` entries, so its whole spec always fits one downlink message.

use aloft_api::{
    DesiredSensor, DesiredState, DesiredStateSpec, DesiredStateStatus, ObjectMeta, ObservedSensor,
    Sensor,
};
use axum::extract::Path;
use axum::{Extension, Json};
use serde::Deserialize;

use super::bodies::{BodyRejection, JsonBody, SpecBody};
use super::resources;
use super::{ApiError, Caller, Query};
use super::{blocking, require};
use crate::clock::now_utc_ns;
use crate::control::audit::{Action, Kind, Object};
use crate::control::{Control, SpecChange, SpecWrite};
use crate::tokens::Role;

/// `?dryRun=true`.
#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct DryRun {
    /// Validate and compute only.
    #[serde(default)]
    pub dry_run: bool,
}

async fn write(
    caller: Caller,
    control: Control,
    node: String,
    sensor: String,
    body: Result<JsonBody<SpecBody>, BodyRejection>,
    dry_run: bool,
    how: SpecWrite,
) -> Result<Json<Sensor>, ApiError> {
    let actor = require(
        &control,
        &caller,
        Role::Operator,
        "change desired state",
        Action::Set,
        Object::new(Kind::Sensor, &sensor, Some(&node)),
    )?;
    let JsonBody(body) = body.map_err(|e| {
        ApiError::bad_request(format!(
            "the spec must be JSON like {{\"intervalMs\": 500, \"enabled\": true}}: {e}"
        ))
    })?;
    let change = SpecChange {
        interval_ms: body.interval_ms,
        enabled: body.enabled,
        power_override: body.power_override,
    };
    let tunables = body.tunables.map(|given| {
        given
            .into_iter()
            .map(|(k, v)| (k, v.map(resources::wire_value)))
            .collect()
    });
    let no_tunables = tunables
        .as_ref()
        .is_none_or(|t: &std::collections::BTreeMap<_, Option<_>>| t.values().all(Option::is_none));
    // `powerOverride: false` is no exemption: a replace of only that desires nothing.
    let nothing = SpecChange {
        power_override: change.power_override.filter(|exempt| *exempt),
        ..change
    } == SpecChange::default();
    if how == SpecWrite::Replace && nothing && no_tunables {
        // A spec of nothing is no entry at all: the sensor follows its config file.
        let worker = control.clone();
        let (n, s) = (node.clone(), sensor.clone());
        let existing = blocking(move || {
            worker
                .desired(Some(&n))
                .map(|rows| rows.into_iter().any(|r| r.sensor == s))
        })
        .await?;
        if existing {
            return remove(actor, control, node, sensor, dry_run).await;
        }
    }
    let worker = control.clone();
    let (n, s) = (node.clone(), sensor.clone());
    let written =
        blocking(move || worker.write_desired(&actor, &n, &s, change, tunables, how, dry_run))
            .await?;
    let status = control
        .registry()
        .node(&node)
        .map_err(|e| ApiError::internal(&e))?;
    let mut answer = match status {
        Some(status) => {
            let report = status.sensors.iter().find(|r| r.name == sensor).cloned();
            let values: Vec<_> = status
                .latest
                .iter()
                .filter(|l| l.sensor == sensor)
                .collect();
            resources::sensor(
                &status,
                &sensor,
                report.as_ref(),
                Some(&written.row),
                &values,
                now_utc_ns(),
            )
        }
        None => return Err(ApiError::not_found(format!("no node {node:?}"))),
    };
    answer.status.changed = Some(written.changed);
    answer.status.dry_run = Some(dry_run);
    Ok(Json(answer))
}

/// `PUT .../spec` (operator): the spec is exactly the body.
pub async fn replace(
    caller: Caller,
    Extension(control): Extension<Control>,
    Path((node, sensor)): Path<(String, String)>,
    Query(query): Query<DryRun>,
    body: Result<JsonBody<SpecBody>, BodyRejection>,
) -> Result<Json<Sensor>, ApiError> {
    write(
        caller,
        control,
        node,
        sensor,
        body,
        query.dry_run,
        SpecWrite::Replace,
    )
    .await
}

/// `PATCH .../spec` (operator): only the fields given change.
pub async fn merge(
    caller: Caller,
    Extension(control): Extension<Control>,
    Path((node, sensor)): Path<(String, String)>,
    Query(query): Query<DryRun>,
    body: Result<JsonBody<SpecBody>, BodyRejection>,
) -> Result<Json<Sensor>, ApiError> {
    write(
        caller,
        control,
        node,
        sensor,
        body,
        query.dry_run,
        SpecWrite::Merge,
    )
    .await
}

/// Deletes a sensor's desired state and answers with the sensor as it is then.
async fn remove(
    actor: crate::storage::control::Actor,
    control: Control,
    node: String,
    sensor: String,
    dry_run: bool,
) -> Result<Json<Sensor>, ApiError> {
    let worker = control.clone();
    let (n, s) = (node.clone(), sensor.clone());
    let removed = blocking(move || worker.delete_desired(&actor, &n, &s, dry_run)).await?;
    let status = control
        .registry()
        .node(&node)
        .map_err(|e| ApiError::internal(&e))?
        .ok_or_else(|| ApiError::not_found(format!("no node {node:?}")))?;
    let report = status.sensors.iter().find(|r| r.name == sensor).cloned();
    let values: Vec<_> = status
        .latest
        .iter()
        .filter(|l| l.sensor == sensor)
        .collect();
    let mut answer = resources::sensor(
        &status,
        &sensor,
        report.as_ref(),
        None,
        &values,
        now_utc_ns(),
    );
    answer.status.changed = Some(true);
    answer.status.deleted = Some(true);
    answer.status.deleted_generation = Some(removed.generation);
    answer.status.dry_run = Some(dry_run);
    Ok(Json(answer))
}

/// `DELETE .../spec` (operator): the sensor's desired state is removed; the agent goes
/// back to its config file's values for it.
pub async fn delete(
    caller: Caller,
    Extension(control): Extension<Control>,
    Path((node, sensor)): Path<(String, String)>,
    Query(query): Query<DryRun>,
) -> Result<Json<Sensor>, ApiError> {
    let actor = require(
        &control,
        &caller,
        Role::Operator,
        "change desired state",
        Action::Delete,
        Object::new(Kind::Sensor, &sensor, Some(&node)),
    )?;
    remove(actor, control, node, sensor, query.dry_run).await
}

/// `GET /api/v1/nodes/{node}/desired` (viewer): the `DesiredSpec` the node is sent.
pub async fn get(
    caller: Caller,
    Extension(control): Extension<Control>,
    Path(node): Path<String>,
) -> Result<Json<DesiredState>, ApiError> {
    caller.require(Role::Viewer)?;
    let rows = blocking(move || control.desired(Some(&node)).map(|rows| (node, rows))).await?;
    let (node, rows) = rows;
    Ok(Json(DesiredState::new(
        ObjectMeta {
            name: node.clone(),
            node: Some(node),
            ..ObjectMeta::default()
        },
        DesiredStateSpec {
            sensors: rows
                .iter()
                .map(|r| DesiredSensor {
                    name: r.sensor.clone(),
                    generation: r.generation,
                    interval_ms: r.interval_ms,
                    enabled: r.enabled,
                    tunables: resources::api_tunables(&r.tunables),
                })
                .collect(),
            power_overrides: rows
                .iter()
                .filter(|r| r.power_override)
                .map(|r| r.sensor.clone())
                .collect(),
        },
        DesiredStateStatus {
            sensors: rows
                .iter()
                .map(|r| ObservedSensor {
                    name: r.sensor.clone(),
                    observed_generation: r.observed_generation,
                    refused: r.refused.clone(),
                    tunables: r
                        .observed_tunables
                        .as_ref()
                        .filter(|t| !t.is_empty())
                        .map(resources::api_tunables),
                })
                .collect(),
        },
    )))
}
