//! The HTTPS JSON API, Kubernetes-shaped: every resource is
//! `{apiVersion: "aloft.dev/v1", kind, metadata: {name, ...}, spec, status}` and lists are
//! `{apiVersion, kind: "<Kind>List", items}`. docs/api.md documents it.
//!
//! Invariants: every route but `/healthz` needs a bearer token of a role that includes the
//! route's ([`Caller::require`]); node tokens never read the API; errors are JSON
//! `Status` objects with the HTTP code and a message that says what to do.

pub mod bodies;
pub mod commands;
pub mod desired;
pub mod events;
pub mod logs;
pub mod nodes;
pub mod readings;
pub mod sensors;
pub mod tokens;

use std::sync::Arc;

use axum::extract::FromRequestParts;
use axum::http::request::Parts;
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Json, Router};
use tokio::sync::{mpsc, watch};

use crate::Hub;
use crate::node_control::NodeControl;
use crate::tokens::{Principal, Role};

/// The API group and version of every resource.
pub const API_VERSION: &str = aloft_api::API_VERSION;

/// What every route handler can reach.
#[derive(Debug, Clone)]
pub struct ApiState {
    /// The hub's data.
    pub hub: Hub,
    /// The control layer.
    pub control: Arc<dyn NodeControl>,
    /// Turns true when the hub shuts down (long polls and streams should end).
    pub shutdown: watch::Receiver<bool>,
    /// Connection and watch bounds and their counters.
    pub load: crate::load::Load,
    /// Held while anything serves; the server waits for every clone at shutdown.
    pub(crate) _running: mpsc::Sender<()>,
}

/// The API router without the node WebSocket: the stream's routes plus `extra`.
pub fn router(extra: Option<Router<ApiState>>) -> Router<ApiState> {
    let router = Router::new()
        .route("/healthz", get(healthz))
        .route("/api/v1/nodes", get(nodes::list))
        .route("/api/v1/nodes/{node}", get(nodes::get))
        .route("/api/v1/nodes/{node}/readings", get(readings::readings))
        .route("/api/v1/nodes/{node}/gaps", get(readings::gaps));
    let router = match extra {
        Some(extra) => router.merge(extra),
        None => router,
    };
    router.fallback(|| async { ApiError::new(StatusCode::NOT_FOUND, "NotFound", "no such path") })
}

async fn healthz() -> &'static str {
    "ok\n"
}

/// An API error: a Kubernetes-style `Status` object.
#[derive(Debug, Clone)]
pub struct ApiError {
    /// The HTTP status.
    pub status: StatusCode,
    /// A word for programs (`Unauthorized`, `Forbidden`, `NotFound`, `BadRequest`, ...).
    pub reason: &'static str,
    /// A sentence for people.
    pub message: String,
}

impl ApiError {
    /// Any error.
    pub fn new(status: StatusCode, reason: &'static str, message: impl Into<String>) -> ApiError {
        ApiError {
            status,
            reason,
            message: message.into(),
        }
    }

    /// 401.
    pub fn unauthorized(message: impl Into<String>) -> ApiError {
        ApiError::new(StatusCode::UNAUTHORIZED, "Unauthorized", message)
    }

    /// 403.
    pub fn forbidden(message: impl Into<String>) -> ApiError {
        ApiError::new(StatusCode::FORBIDDEN, "Forbidden", message)
    }

    /// 404.
    pub fn not_found(message: impl Into<String>) -> ApiError {
        ApiError::new(StatusCode::NOT_FOUND, "NotFound", message)
    }

    /// 400.
    pub fn bad_request(message: impl Into<String>) -> ApiError {
        ApiError::new(StatusCode::BAD_REQUEST, "BadRequest", message)
    }

    /// 500, logged.
    pub fn internal(error: &dyn std::fmt::Display) -> ApiError {
        tracing::error!(error = %error, "API request failed.");
        ApiError::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            "InternalError",
            format!("the hub failed: {error}"),
        )
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let body = aloft_api::Status::failure(self.reason, self.message, self.status.as_u16());
        let mut response = (self.status, Json(body)).into_response();
        if self.status == StatusCode::UNAUTHORIZED {
            response.headers_mut().insert(
                header::WWW_AUTHENTICATE,
                header::HeaderValue::from_static("Bearer"),
            );
        }
        response
    }
}

/// Query parameters of a route, read as axum's `Query` reads them, but a parameter that
/// does not parse (`?limit=-1`, `?watch=yes`) is answered like every other refusal: a
/// `Status` object with 400 and the parameter named, never axum's plain-text rejection.
#[derive(Debug, Clone, Copy, Default)]
pub struct Query<T>(pub T);

impl<T, S> FromRequestParts<S> for Query<T>
where
    T: serde::de::DeserializeOwned,
    S: Send + Sync,
{
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, ApiError> {
        match axum::extract::Query::<T>::from_request_parts(parts, state).await {
            Ok(axum::extract::Query(value)) => Ok(Query(value)),
            Err(rejection) => Err(ApiError::bad_request(format!(
                "bad query parameter: {}; docs/api.md lists each route's parameters",
                rejection.body_text()
            ))),
        }
    }
}

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

/// Metadata timestamps in RFC 3339.
pub fn timestamp(utc_ns: Option<i64>) -> Option<String> {
    utc_ns.map(crate::db::rfc3339)
}
