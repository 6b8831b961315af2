//! The HTTPS JSON API, Kubernetes-shaped: every resource is
//! `{apiVersion: "aloft.dev/v1", kind, metadata: {name, ...}, spec, status}` and lists are
//! `{apiVersion, kind: "<Kind>List", items}`. docs/api.md documents it.
//!
//! Invariants: every route but `/healthz` needs a bearer token of a role that includes the
//! route's ([`Caller::require`]); node tokens never read the API; errors are JSON
//! `Status` objects with the HTTP code and a message that says what to do.

pub mod auth;
pub mod bodies;
pub mod commands;
pub mod desired;
pub mod events;
pub mod export;
pub mod logs;
pub mod nodes;
pub mod readings;
pub mod resources;
pub mod sensors;
pub mod tokens;
pub mod watches;

use std::sync::Arc;

use aloft_api::Version;
use axum::extract::FromRequestParts;
use axum::http::request::Parts;
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{delete, get, post, put};
use axum::{Extension, Json, Router};
use tokio::sync::{mpsc, watch};

pub use auth::{Caller, authenticate, bearer, require};

use crate::Hub;
use crate::control::{Control, ControlError};
use crate::nodes::control_seam::NodeControl;
use crate::tokens::Role;

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
    /// The watches' re-reads, shared among the watches of one query.
    pub reads: watches::SharedReads,
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
        .route("/api/v1/nodes/{node}/gaps", get(readings::gaps))
        .route("/api/v1/nodes/{node}/export", get(export::export));
    let router = match extra {
        Some(extra) => router.merge(extra),
        None => router,
    };
    router.fallback(|| async { ApiError::new(StatusCode::NOT_FOUND, "NotFound", "no such path") })
}

/// The control layer's routes (sensors and their desired state, commands, the audit
/// trail, tokens and nodes as resources, agent logs, the version), to merge into
/// [`router`]: their handlers reach the [`Control`] as an extension.
pub fn control_routes(control: Control) -> Router<ApiState> {
    Router::new()
        .route("/api/v1/sensors", get(sensors::list))
        .route("/api/v1/nodes/{node}/sensors", get(sensors::list_node))
        .route("/api/v1/nodes/{node}/sensors/{sensor}", get(sensors::get))
        .route(
            "/api/v1/nodes/{node}/sensors/{sensor}/spec",
            put(desired::replace)
                .patch(desired::merge)
                .delete(desired::delete),
        )
        .route("/api/v1/nodes/{node}/desired", get(desired::get))
        .route("/api/v1/nodes/{node}/commands", post(commands::create))
        .route("/api/v1/commands", get(commands::list))
        .route(
            "/api/v1/commands/{id}",
            get(commands::get).delete(commands::cancel),
        )
        .route("/api/v1/commands/{id}/cancel", post(commands::cancel))
        .route("/api/v1/events", get(events::list))
        .route("/api/v1/tokens", get(tokens::list).post(tokens::create))
        .route("/api/v1/tokens/{id}", delete(tokens::revoke))
        .route("/api/v1/nodes", post(tokens::create_node))
        .route("/api/v1/nodes/{node}", delete(tokens::delete_node))
        .route("/api/v1/nodes/{node}/logs", get(logs::get))
        .route("/api/v1/version", get(version))
        .layer(Extension(control))
}

async fn version(caller: Caller) -> Result<axum::Json<Version>, ApiError> {
    caller.require(Role::Viewer)?;
    Ok(axum::Json(Version::new(env!("CARGO_PKG_VERSION"))))
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

impl From<ControlError> for ApiError {
    fn from(e: ControlError) -> ApiError {
        match &e {
            ControlError::NoSuchNode(_)
            | ControlError::NoSuchSensor { .. }
            | ControlError::NoSuchCommand(_) => ApiError::not_found(e.to_string()),
            ControlError::CannotCancel { .. } => {
                ApiError::new(StatusCode::CONFLICT, "Conflict", e.to_string())
            }
            ControlError::Invalid(_) => ApiError::bad_request(e.to_string()),
            ControlError::NoSuchDesired { .. } => ApiError::not_found(e.to_string()),
            ControlError::InvalidName(_) | ControlError::TooManyDesired { .. } => {
                ApiError::new(StatusCode::UNPROCESSABLE_ENTITY, "Invalid", e.to_string())
            }
            ControlError::NotConnected(_) => ApiError::new(
                StatusCode::SERVICE_UNAVAILABLE,
                "NodeNotConnected",
                e.to_string(),
            ),
            ControlError::LogsTimeout { .. } => {
                ApiError::new(StatusCode::GATEWAY_TIMEOUT, "Timeout", e.to_string())
            }
            _ => ApiError::internal(&e),
        }
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

/// Runs a blocking control operation (SQLite) off the async workers.
pub async fn blocking<T: Send + 'static>(
    f: impl FnOnce() -> Result<T, ControlError> + Send + 'static,
) -> Result<T, ApiError> {
    tokio::task::spawn_blocking(f)
        .await
        .map_err(|e| ApiError::internal(&e))?
        .map_err(ApiError::from)
}

/// Metadata timestamps in RFC 3339.
pub fn timestamp(utc_ns: Option<i64>) -> Option<String> {
    utc_ns.map(crate::clock::rfc3339)
}
