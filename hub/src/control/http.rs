//! The control layer's HTTP side: its routes (handlers live in `api/{sensors,commands,
//! desired,events,tokens,logs}.rs`), how its errors become API errors, role checks that
//! are audited when refused, and watches streamed as NDJSON.
//!
//! A watch (`?watch=true`) answers `200` with one JSON object a line,
//! `{"type": "ADDED"|"MODIFIED"|"DELETED", "object": {...}}`: first every current object as
//! ADDED, then each change. It ends at `timeoutSeconds` (default 300), when its `until`
//! says the object is final (a command that ended), when the client goes away, or at hub
//! shutdown.
//!
//! A watch costs nothing while nothing changes: it sleeps until the control layer signals a
//! change of commands, desired state or events, or (sensor watches) the sessions signal a
//! change of a node's live state (a session started or ended, a live update whose sensor
//! reports differ from the last in more than their reading counts); only then
//! does it re-read, and it sends only what differs. Every re-read is counted
//! ([`WATCH_READS`], `aloft_hub_watch_reads_total` at `GET /metrics`).

use std::collections::HashMap;
use std::convert::Infallible;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use aloft_api::{DeletedObject, ObjectMeta, Resource, Version, WatchEvent, WatchEventType};
use axum::body::Body;
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{delete, get, post, put};
use axum::{Extension, Router};
use serde::Serialize;
use tokio::sync::{mpsc, watch};
use tokio_stream::wrappers::ReceiverStream;

use super::store::Actor;
use super::{Control, ControlError, actor_of};
use crate::api::{ApiError, ApiState, Caller};
use crate::tokens::Role;

/// Reads made by watches since the hub started (the first read of each included).
pub static WATCH_READS: AtomicU64 = AtomicU64::new(0);

/// The default and longest life of a watch.
const WATCH_DEFAULT: Duration = Duration::from_secs(300);
const WATCH_MAX: Duration = Duration::from_secs(3600);

/// The issue-5 routes, to merge into the hub's API router.
pub fn routes(control: Control) -> Router<ApiState> {
    use crate::api::{commands, desired, events, logs, sensors, tokens};
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

/// The caller's role must include `role`; a refusal of a change is audited. `what` says
/// what was refused in words (`restart sensors`).
#[allow(clippy::too_many_arguments)]
pub fn require(
    control: &Control,
    caller: &Caller,
    role: Role,
    what: &str,
    action: &str,
    kind: &str,
    name: &str,
    node: Option<&str>,
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
    control.audit(crate::control::event(
        &actor_of(who),
        action,
        kind,
        name,
        node,
        "denied",
        message.clone(),
    ));
    Err(ApiError::forbidden(message))
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

/// `?watch=true&timeoutSeconds=N`.
#[derive(Debug, Clone, Copy, Default, serde::Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct WatchQuery {
    /// Stream changes instead of answering once.
    #[serde(default)]
    pub watch: bool,
    /// How long the watch lasts.
    pub timeout_seconds: Option<u64>,
}

impl WatchQuery {
    fn duration(self) -> Duration {
        self.timeout_seconds
            .map_or(WATCH_DEFAULT, Duration::from_secs)
            .min(WATCH_MAX)
    }
}

/// What a watch re-reads and how it compares.
pub struct Watched<T> {
    /// The current objects.
    pub read: Box<dyn FnMut() -> Result<Vec<T>, ControlError> + Send>,
    /// The object's identity.
    pub key: fn(&T) -> String,
    /// What counts as a change of it.
    pub fingerprint: fn(&T) -> String,
    /// Ends the watch once every object is final (a waited-for command).
    pub until: Option<fn(&T) -> bool>,
    /// Re-read at least this often, for changes the control layer does not signal.
    pub poll: Option<Duration>,
    /// Report objects that left the list (not for a sliding window of events).
    pub deletions: bool,
}

impl<T> std::fmt::Debug for Watched<T> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Watched")
            .field("poll", &self.poll)
            .finish_non_exhaustive()
    }
}

/// A resource's `metadata.name`: the key a watch tells its objects apart by.
pub fn name_key<T: Resource>(resource: &T) -> String {
    resource.metadata().name.clone()
}

/// A resource's `metadata.uid`, for resources whose names repeat across nodes.
pub fn uid_key<T: Resource>(resource: &T) -> String {
    resource.metadata().uid.clone().unwrap_or_default()
}

/// One watch line: the event as JSON and a newline.
fn watch_line<T: Serialize>(kind: WatchEventType, object: &T) -> String {
    let mut line = serde_json::to_string(&WatchEvent { kind, object }).unwrap_or_default();
    line.push('\n');
    line
}

/// Streams a watch as NDJSON.
pub fn stream<T: Serialize + Send + Sync + 'static>(
    control: &Control,
    shutdown: watch::Receiver<bool>,
    query: WatchQuery,
    watched: Watched<T>,
) -> Response {
    stream_with(control, shutdown, query, watched, None)
}

/// [`stream`], also re-reading when `also` changes (a change the control layer does not
/// signal, such as a node's live state).
pub fn stream_with<T: Serialize + Send + Sync + 'static>(
    control: &Control,
    mut shutdown: watch::Receiver<bool>,
    query: WatchQuery,
    mut watched: Watched<T>,
    mut also: Option<watch::Receiver<u64>>,
) -> Response {
    let (tx, rx) = mpsc::channel::<Result<String, Infallible>>(64);
    let mut changes = control.subscribe();
    let deadline = tokio::time::Instant::now() + query.duration();
    tokio::spawn(async move {
        let mut seen: HashMap<String, String> = HashMap::new();
        let mut first = true;
        loop {
            // The registry and SQLite reads are quick; a blocking pool hop per change is
            // not worth it.
            WATCH_READS.fetch_add(1, Ordering::Relaxed);
            let objects = match (watched.read)() {
                Ok(objects) => objects,
                Err(e) => {
                    tracing::warn!(error = %e, "Watch read failed; ending it.");
                    break;
                }
            };
            let mut present = HashMap::new();
            for object in &objects {
                let key = (watched.key)(object);
                let print = (watched.fingerprint)(object);
                let kind = match seen.get(&key) {
                    None => Some(WatchEventType::Added),
                    Some(old) if *old != print => Some(WatchEventType::Modified),
                    Some(_) => None,
                };
                present.insert(key, print);
                if let Some(kind) = kind {
                    let line = watch_line(kind, object);
                    if tx.send(Ok(line)).await.is_err() {
                        return;
                    }
                }
            }
            if !first && watched.deletions {
                for key in seen.keys().filter(|k| !present.contains_key(*k)) {
                    let gone = DeletedObject {
                        metadata: ObjectMeta::named(key.as_str()),
                    };
                    let line = watch_line(WatchEventType::Deleted, &gone);
                    if tx.send(Ok(line)).await.is_err() {
                        return;
                    }
                }
            }
            first = false;
            seen = present;
            if let Some(until) = watched.until
                && !objects.is_empty()
                && objects.iter().all(until)
            {
                break;
            }
            let poll = watched.poll.unwrap_or(WATCH_MAX);
            tokio::select! {
                changed = changes.changed() => if changed.is_err() { break },
                changed = changed_or_never(&mut also) => if changed.is_err() { break },
                () = tokio::time::sleep(poll) => {}
                () = tokio::time::sleep_until(deadline) => break,
                _ = shutdown.wait_for(|stop| *stop) => break,
                () = tx.closed() => break,
            }
        }
    });
    (
        [(header::CONTENT_TYPE, "application/x-ndjson")],
        Body::from_stream(ReceiverStream::new(rx)),
    )
        .into_response()
}

/// The next change of `also`; never when there is none.
async fn changed_or_never(
    also: &mut Option<watch::Receiver<u64>>,
) -> Result<(), watch::error::RecvError> {
    match also {
        Some(rx) => rx.changed().await,
        None => std::future::pending().await,
    }
}
