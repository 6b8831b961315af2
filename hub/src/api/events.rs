//! `GET /api/v1/events[?node=&limit=&watch=]` (viewer): the audit trail, oldest first:
//! who (token id and role), what, when, outcome, for every command, desired-state, node and
//! token change, and for refusals of them.

use aloft_api::{Event, List};
use axum::extract::State;
use axum::response::{IntoResponse, Response};
use axum::{Extension, Json};
use serde::Deserialize;

use super::{ApiError, ApiState, Caller, Query};
use crate::control::http::{self, WatchQuery, Watched, blocking};
use crate::control::{Control, ControlError, resources};
use crate::tokens::Role;

/// How many of the newest events a list without `limit` returns.
pub const DEFAULT_LIMIT: u32 = 100;

/// `?node=&limit=&watch=&timeoutSeconds=`.
#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ListQuery {
    /// Only events about this node.
    pub node: Option<String>,
    /// The newest this many (default 100); 0 means no limit, as `limit=0` in a Kubernetes
    /// list call.
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

/// `GET /api/v1/events` (viewer).
pub async fn list(
    caller: Caller,
    State(state): State<ApiState>,
    Extension(control): Extension<Control>,
    Query(query): Query<ListQuery>,
) -> Result<Response, ApiError> {
    caller.require(Role::Viewer)?;
    let limit = match query.limit {
        None => DEFAULT_LIMIT,
        // As in Kubernetes: no limit.
        Some(0) => u32::MAX,
        Some(n) => n,
    };
    let node = query.node.clone();
    let read = {
        let control = control.clone();
        move || -> Result<Vec<Event>, ControlError> {
            Ok(control
                .events(node.as_deref(), 0, limit)?
                .iter()
                .map(resources::event)
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
            // Events never change: only new ones are news.
            fingerprint: http::name_key,
            until: None,
            poll: None,
            deletions: false,
        },
    ))
}
