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
use serde::Deserialize;

use super::bodies::{BodyRejection, JsonBody};
use super::{ApiError, ApiState, Caller, Query};
use crate::control::http::{self, WatchQuery, Watched, blocking, require};
use crate::control::{Control, ControlError, DEFAULT_TTL, resources};
use crate::tokens::Role;

/// The body of a command: the type clients build it with.
pub use aloft_api::CommandRequest as CommandBody;

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
        "create",
        "Command",
        "",
        Some(&node),
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

/// `?node=&limit=&watch=&timeoutSeconds=`.
#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ListQuery {
    /// Only this node's commands.
    pub node: Option<String>,
    /// At most this many, the newest (default 200).
    pub limit: Option<u32>,
    /// Stream changes (not flattened from [`WatchQuery`]: serde's flatten hands query
    /// values over as strings, and `watch=true` would not parse as a boolean).
    #[serde(default)]
    pub watch: bool,
    /// How long the watch lasts, s.
    pub timeout_seconds: Option<u64>,
}

impl ListQuery {
    fn watching(&self) -> WatchQuery {
        WatchQuery {
            watch: self.watch,
            timeout_seconds: self.timeout_seconds,
        }
    }
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
    // As in Kubernetes, limit=0 means no limit.
    let limit = match query.limit {
        None => 200,
        Some(0) => u32::MAX,
        Some(n) => n,
    };
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
    Ok(http::stream(
        &control,
        state.shutdown.clone(),
        query.watching(),
        Watched {
            read: Box::new(read),
            key: http::name_key,
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
    Ok(http::stream(
        &control,
        state.shutdown.clone(),
        watch,
        Watched {
            read: Box::new(read),
            key: http::name_key,
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
        "cancel",
        "Command",
        &id,
        node.as_deref(),
    )?;
    let command = blocking(move || control.cancel(&actor, &id)).await?;
    Ok(Json(resources::command(&command)))
}
