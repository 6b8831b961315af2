//! Credentials (admin): tokens — `GET /api/v1/tokens`, `POST /api/v1/tokens`
//! (`{"spec": {"role": "operator", "description": "..."}}`), `DELETE /api/v1/tokens/{id}`
//! (revoke) — and nodes, whose creation is the creation of their token —
//! `POST /api/v1/nodes` (`{"metadata": {"name": "glider-2"}}`) and
//! `DELETE /api/v1/nodes/{node}`.
//!
//! Invariants: a secret appears once, in the answer that created it (`status.secret` of
//! a token, `status.token` of a node), never again; every change and every refused
//! attempt is audited; deleting a node revokes its tokens (its agent is refused at the next
//! upgrade), cancels its pending commands and forgets its desired state.

use aloft_api::{List, Node, Status, Token};
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::{Extension, Json};

use super::bodies::{BodyRejection, JsonBody, NodeBody, TokenBody};
use super::nodes::node_json;
use super::require;
use super::resources;
use super::{ApiError, ApiState, Caller};
use crate::control::Control;
use crate::control::audit::{self, Action, Kind, Object, Outcome};
use crate::nodes::registry::RegistryError;
use crate::tokens::Role;

/// `GET /api/v1/tokens` (admin).
pub async fn list(
    caller: Caller,
    Extension(control): Extension<Control>,
) -> Result<Json<List<Token>>, ApiError> {
    require(
        &control,
        &caller,
        Role::Admin,
        "list tokens",
        Action::List,
        Object::new(Kind::Token, "", None),
    )?;
    let tokens = control
        .tokens()
        .list()
        .map_err(|e| ApiError::internal(&e))?;
    Ok(Json(List::of(
        tokens.iter().map(|t| resources::token(t, None)).collect(),
    )))
}

/// `POST /api/v1/tokens` (admin).
pub async fn create(
    caller: Caller,
    Extension(control): Extension<Control>,
    body: Result<JsonBody<TokenBody>, BodyRejection>,
) -> Result<Response, ApiError> {
    let actor = require(
        &control,
        &caller,
        Role::Admin,
        "create tokens",
        Action::Create,
        Object::new(Kind::Token, "", None),
    )?;
    let JsonBody(body) = body.map_err(|e| {
        ApiError::bad_request(format!(
            "a token is JSON like {{\"spec\": {{\"role\": \"operator\", \"description\": \"ground station\"}}}}: {e}"
        ))
    })?;
    let role = match Role::from_name(&body.spec.role) {
        Some(role @ (Role::Viewer | Role::Operator | Role::Admin)) => role,
        Some(Role::Node) => {
            return Err(ApiError::bad_request(
                "node tokens come with their node: `aloftctl create node NAME`",
            ));
        }
        None => {
            return Err(ApiError::bad_request(format!(
                "role {:?} is not known: use viewer, operator or admin",
                body.spec.role
            )));
        }
    };
    let label = body.spec.description.unwrap_or_default();
    let (info, secret) = control
        .tokens()
        .create(role, None, &label)
        .map_err(|e| ApiError::internal(&e))?;
    control.audit(audit::event(
        &actor,
        Action::Create,
        Object::new(Kind::Token, &info.id, None),
        Outcome::Ok,
        format!("role {}", role.name()),
    ));
    Ok((
        StatusCode::CREATED,
        Json(resources::token(&info, Some(&secret))),
    )
        .into_response())
}

/// `DELETE /api/v1/tokens/{id}` (admin): revokes.
pub async fn revoke(
    caller: Caller,
    State(state): State<ApiState>,
    Extension(control): Extension<Control>,
    Path(id): Path<String>,
) -> Result<Json<Option<Token>>, ApiError> {
    let actor = require(
        &control,
        &caller,
        Role::Admin,
        "revoke tokens",
        Action::Revoke,
        Object::new(Kind::Token, &id, None),
    )?;
    let revoked = control
        .tokens()
        .revoke(&id)
        .map_err(|e| ApiError::internal(&e))?;
    if !revoked {
        return Err(ApiError::not_found(format!(
            "no active token {id:?}; `aloftctl get tokens` lists them (by id, not secret)"
        )));
    }
    // A node still connected with it stops at once: no batch is stored or acked after this.
    state.hub.sessions.end_token(&id);
    control.audit(audit::event(
        &actor,
        Action::Revoke,
        Object::new(Kind::Token, &id, None),
        Outcome::Ok,
        String::new(),
    ));
    let info = control
        .tokens()
        .list()
        .map_err(|e| ApiError::internal(&e))?
        .into_iter()
        .find(|t| t.id == id);
    Ok(Json(info.map(|t| resources::token(&t, None))))
}

/// `POST /api/v1/nodes` (admin): the node and its token.
pub async fn create_node(
    caller: Caller,
    State(state): State<ApiState>,
    Extension(control): Extension<Control>,
    body: Result<JsonBody<NodeBody>, BodyRejection>,
) -> Result<Response, ApiError> {
    let actor = require(
        &control,
        &caller,
        Role::Admin,
        "create nodes",
        Action::Create,
        Object::new(Kind::Node, "", None),
    )?;
    let JsonBody(body) = body.map_err(|e| {
        ApiError::bad_request(format!(
            "a node is JSON like {{\"metadata\": {{\"name\": \"glider-2\"}}}}: {e}"
        ))
    })?;
    let name = body.metadata.name;
    let created = match control.registry().create_node(&name) {
        Ok(created) => created,
        Err(e @ RegistryError::Exists(_)) => {
            return Err(ApiError::new(
                StatusCode::CONFLICT,
                "AlreadyExists",
                e.to_string(),
            ));
        }
        Err(e @ RegistryError::InvalidName(_)) => return Err(ApiError::bad_request(e.to_string())),
        Err(e) => return Err(ApiError::internal(&e)),
    };
    // Node watches show the new node.
    state.hub.sessions.live_changed();
    control.audit(audit::event(
        &actor,
        Action::Create,
        Object::new(Kind::Node, &name, Some(&name)),
        Outcome::Ok,
        format!("with token {}", created.token.id),
    ));
    let node = control
        .registry()
        .node(&name)
        .map_err(|e| ApiError::internal(&e))?
        .ok_or_else(|| ApiError::internal(&"the node vanished as it was created"))?;
    let mut node: Node = node_json(&node);
    node.status.token = Some(created.secret);
    node.status.token_id = Some(created.token.id);
    Ok((StatusCode::CREATED, Json(node)).into_response())
}

/// `DELETE /api/v1/nodes/{node}` (admin).
pub async fn delete_node(
    caller: Caller,
    State(state): State<ApiState>,
    Extension(control): Extension<Control>,
    Path(name): Path<String>,
) -> Result<Json<Status>, ApiError> {
    let actor = require(
        &control,
        &caller,
        Role::Admin,
        "delete nodes",
        Action::Delete,
        Object::new(Kind::Node, &name, Some(&name)),
    )?;
    let deleted = control
        .registry()
        .delete_node(&name)
        .map_err(|e| ApiError::internal(&e))?;
    if !deleted {
        return Err(ApiError::not_found(format!(
            "no node {name:?}; `aloftctl get nodes` lists them"
        )));
    }
    // Its session ends now; a batch still in flight finds the node gone and is refused.
    state.hub.sessions.end_node(&name);
    // Node watches show it gone.
    state.hub.sessions.live_changed();
    control.forget_node(&actor, &name)?;
    control.audit(audit::event(
        &actor,
        Action::Delete,
        Object::new(Kind::Node, &name, Some(&name)),
        Outcome::Ok,
        "its tokens are revoked".into(),
    ));
    Ok(Json(Status::success(format!(
        "node {name} deleted; its tokens are revoked"
    ))))
}
