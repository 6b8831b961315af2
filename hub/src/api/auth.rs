//! Who is calling: the bearer token of a request, checked against the hub's tokens, and the
//! role checks of routes. A refused change is audited ([`require`]); a refused read is not.
//!
//! Invariant: every route but `/healthz` takes a [`Caller`], so no handler runs for a
//! request without a known, unrevoked token.

use axum::extract::FromRequestParts;
use axum::http::request::Parts;
use axum::http::{HeaderMap, header};

use super::{ApiError, ApiState};
use crate::Hub;
use crate::control::Control;
use crate::control::audit::{Action, Object, Outcome, actor_of, event};
use crate::storage::control::Actor;
use crate::tokens::{Principal, Role};

/// The bearer token of a request's `Authorization` header.
pub fn bearer(headers: &HeaderMap) -> Option<&str> {
    let value = headers.get(header::AUTHORIZATION)?.to_str().ok()?;
    let (scheme, token) = value.split_once(' ')?;
    scheme
        .eq_ignore_ascii_case("bearer")
        .then_some(token.trim())
        .filter(|t| !t.is_empty())
}

/// Checks a request's token: 401 when missing, unknown or revoked.
pub async fn authenticate(hub: &Hub, headers: &HeaderMap) -> Result<Principal, ApiError> {
    let Some(token) = bearer(headers).map(str::to_owned) else {
        return Err(ApiError::unauthorized(
            "no bearer token: send `Authorization: Bearer <token>`",
        ));
    };
    let tokens = hub.tokens.clone();
    let found = tokio::task::spawn_blocking(move || tokens.authenticate(&token))
        .await
        .map_err(|e| ApiError::internal(&e))?
        .map_err(|e| ApiError::internal(&e))?;
    found.ok_or_else(|| ApiError::unauthorized("unknown or revoked token"))
}

/// The authenticated caller of an API route.
#[derive(Debug, Clone)]
pub struct Caller(pub Principal);

impl Caller {
    /// 403 unless the caller's role includes `role`.
    pub fn require(&self, role: Role) -> Result<(), ApiError> {
        if self.0.role.includes(role) {
            Ok(())
        } else {
            Err(ApiError::forbidden(format!(
                "token {} has role {}; this needs role {} or higher",
                self.0.token_id,
                self.0.role.name(),
                role.name()
            )))
        }
    }
}

impl FromRequestParts<ApiState> for Caller {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &ApiState) -> Result<Self, ApiError> {
        authenticate(&state.hub, &parts.headers).await.map(Caller)
    }
}

/// What a refused caller is told to do instead, per role needed.
fn hint(role: Role) -> &'static str {
    match role {
        Role::Admin => "ask an admin, or use an admin token",
        Role::Operator => {
            "use an operator or admin token (an admin makes one with `aloftctl create token --role operator`)"
        }
        _ => "use a viewer, operator or admin token",
    }
}

/// The caller's role must include `role`; a refusal of a change is audited as `action`
/// on `object`, denied. `what` says what was refused in words (`restart sensors`).
pub fn require(
    control: &Control,
    caller: &Caller,
    role: Role,
    what: &str,
    action: Action,
    object: Object<'_>,
) -> Result<Actor, ApiError> {
    let who = &caller.0;
    if who.role.includes(role) {
        return Ok(actor_of(who));
    }
    let message = format!(
        "token {} has role {}, which cannot {what}: that needs role {} or higher; {}",
        who.token_id,
        who.role.name(),
        role.name(),
        hint(role)
    );
    control.audit(event(
        &actor_of(who),
        action,
        object,
        Outcome::Denied,
        message.clone(),
    ));
    Err(ApiError::forbidden(message))
}
