//! Commands: `POST /api/v1/nodes/{node}/commands` (operator) creates a restart,
//! `GET /api/v1/commands[?node=]` and `GET /api/v1/commands/{id}` (viewer) read them,
//! `?watch=true` follows them (a single command's watch ends when the command does: that is
//! `restart --wait`), `POST /api/v1/commands/{id}/cancel` or `DELETE /api/v1/commands/{id}`
//! (operator) cancels one not yet delivered.
//!
//! Invariant: `201 Created` means the command is persisted and audited; it is then pushed
//! to the node at once if it is connected, else when it next connects (until its TTL).

use std::time::Duration;

use aloft_api::{Command, List};
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::{Extension, Json};

use super::bodies::{BodyRejection, CommandBody, JsonBody};
use super::resources;
use super::watches::{self, ListQuery, WatchQuery, Watched};
use super::{ApiError, ApiState, Caller, Query};
use super::{blocking, require};
use crate::control::audit::{Action, Kind, Object};
use crate::control::{Control, ControlError, DEFAULT_TTL};
use crate::tokens::Role;

/// `POST /api/v1/nodes/{node}/commands` (operator).
pub async fn create(
    caller: Caller,
    Extension(control): Extension<Control>,
    Path(node): Path<String>,
    body: Result<JsonBody<CommandBody>, BodyRejection>,
) -> Result<Response, ApiError> {
    let actor = require(
        &control,
        &caller,
        Role::Operator,
        "restart sensors",
        Action::Create,
        Object::new(Kind::Command, "", Some(&node)),
    )?;
    let JsonBody(body) = body.map_err(|e| {
        ApiError::bad_request(format!(
            "a command is JSON like {{\"spec\": {{\"action\": \"restartSensor\", \"sensor\": \"gps\", \"hard\": false, \"ttlSeconds\": 3600}}}}: {e}"
        ))
    })?;
    if body.spec.action != "restartSensor" {
        return Err(ApiError::bad_request(format!(
            "action {:?} is not known; the one action is restartSensor",
            body.spec.action
        )));
    }
    let ttl = body
        .spec
        .ttl_seconds
        .map_or(DEFAULT_TTL, Duration::from_secs);
    let spec = body.spec;
    let command =
        blocking(move || control.restart(&actor, &node, &spec.sensor, spec.hard, ttl)).await?;
    Ok((StatusCode::CREATED, Json(resources::command(&command))).into_response())
}

fn fingerprint(command: &Command) -> String {
    command
        .metadata
        .resource_version
        .clone()
        .unwrap_or_default()
}

fn is_final(command: &Command) -> bool {
    matches!(
        command.status.phase.as_str(),
        "Succeeded" | "Failed" | "Expired" | "Cancelled"
    )
}

/// `GET /api/v1/commands` (viewer).
pub async fn list(
    caller: Caller,
    State(state): State<ApiState>,
    Extension(control): Extension<Control>,
    Query(query): Query<ListQuery>,
) -> Result<Response, ApiError> {
    caller.require(Role::Viewer)?;
    let limit = query.limit_or(200);
    let node = query.node.clone();
    let read = {
        let control = control.clone();
        move || -> Result<Vec<Command>, ControlError> {
            Ok(control
                .commands(node.as_deref(), limit)?
                .iter()
                .map(resources::command)
                .collect())
        }
    };
    if !query.watch {
        let items = blocking(read).await?;
        return Ok(Json(List::of(items)).into_response());
    }
    Ok(watches::stream(
        &state,
        &control,
        query.watching(),
        Watched {
            query: format!("commands node={:?} limit={limit}", query.node),
            read: Box::new(read),
            key: watches::name_key,
            fingerprint,
            until: None,
            poll: None,
            deletions: true,
        },
    ))
}

/// `GET /api/v1/commands/{id}` (viewer).
pub async fn get(
    caller: Caller,
    State(state): State<ApiState>,
    Extension(control): Extension<Control>,
    Path(id): Path<String>,
    Query(watch): Query<WatchQuery>,
) -> Result<Response, ApiError> {
    caller.require(Role::Viewer)?;
    let read = {
        let control = control.clone();
        let id = id.clone();
        move || -> Result<Vec<Command>, ControlError> {
            let command = control
                .command(&id)?
                .ok_or_else(|| ControlError::NoSuchCommand(id.clone()))?;
            Ok(vec![resources::command(&command)])
        }
    };
    let first = read()?;
    if !watch.watch {
        return Ok(Json(first.into_iter().next()).into_response());
    }
    Ok(watches::stream(
        &state,
        &control,
        watch,
        Watched {
            query: format!("command {id:?}"),
            read: Box::new(read),
            key: watches::name_key,
            fingerprint,
            until: Some(is_final),
            poll: None,
            deletions: true,
        },
    ))
}

/// `POST /api/v1/commands/{id}/cancel`, `DELETE /api/v1/commands/{id}` (operator).
pub async fn cancel(
    caller: Caller,
    Extension(control): Extension<Control>,
    Path(id): Path<String>,
) -> Result<Json<Command>, ApiError> {
    let node = control.command(&id).ok().flatten().map(|c| c.node);
    let actor = require(
        &control,
        &caller,
        Role::Operator,
        "cancel commands",
        Action::Cancel,
        Object::new(Kind::Command, &id, node.as_deref()),
    )?;
    let command = blocking(move || control.cancel(&actor, &id)).await?;
    Ok(Json(resources::command(&command)))
}
