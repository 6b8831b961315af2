//! `GET /api/v1/events[?node=&limit=&watch=]` (viewer): the audit trail, oldest first:
//! who (token id and role), what, when, outcome, for every command, desired-state, node and
//! token change, and for refusals of them.

use aloft_api::{Event, List};
use axum::extract::State;
use axum::response::{IntoResponse, Response};
use axum::{Extension, Json};

use super::blocking;
use super::resources;
use super::watches::{self, ListQuery, Watched};
use super::{ApiError, ApiState, Caller, Query};
use crate::control::{Control, ControlError};
use crate::tokens::Role;

/// How many of the newest events a list without `limit` returns.
pub const DEFAULT_LIMIT: u32 = 100;

/// `GET /api/v1/events` (viewer).
pub async fn list(
    caller: Caller,
    State(state): State<ApiState>,
    Extension(control): Extension<Control>,
    Query(query): Query<ListQuery>,
) -> Result<Response, ApiError> {
    caller.require(Role::Viewer)?;
    let limit = query.limit_or(DEFAULT_LIMIT);
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
    Ok(watches::stream(
        &state,
        &control,
        query.watching(),
        Watched {
            query: format!("events node={:?} limit={limit}", query.node),
            read: Box::new(read),
            key: watches::name_key,
            // Events never change: only new ones are news.
            fingerprint: watches::name_key,
            until: None,
            poll: None,
            deletions: false,
        },
    ))
}
