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
//! ([`crate::load::WATCH_READS`], `aloft_hub_watch_reads_total` at `GET /metrics`).

use std::collections::HashMap;
use std::convert::Infallible;
use std::sync::atomic::Ordering;
use std::time::Duration;

use axum::body::Body;
use axum::http::header;
use axum::response::{IntoResponse, Response};
use serde_json::{Value, json};
use tokio::sync::{mpsc, watch};
use tokio_stream::wrappers::ReceiverStream;

use crate::control::{Control, ControlError};

/// The default and longest life of a watch.
const WATCH_DEFAULT: Duration = Duration::from_secs(300);
const WATCH_MAX: Duration = Duration::from_secs(3600);

/// `?node=&limit=&watch=&timeoutSeconds=`: the query of every list route, whose answer
/// a watch streams.
#[derive(Debug, Clone, Default, serde::Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ListQuery {
    /// Only objects of this node.
    pub node: Option<String>,
    /// At most this many, the newest (the route says its default); 0 means no limit, as
    /// `limit=0` in a Kubernetes list call.
    pub limit: Option<u32>,
    /// Stream changes (not flattened from [`WatchQuery`]: serde's flatten hands query
    /// values over as strings, and `watch=true` would not parse as a boolean).
    #[serde(default)]
    pub watch: bool,
    /// How long the watch lasts, s.
    pub timeout_seconds: Option<u64>,
}

impl ListQuery {
    /// Its watch parameters.
    pub fn watching(&self) -> WatchQuery {
        WatchQuery {
            watch: self.watch,
            timeout_seconds: self.timeout_seconds,
        }
    }

    /// The list's length bound: `default` when none is given, none for 0.
    pub fn limit_or(&self, default: u32) -> u32 {
        match self.limit {
            None => default,
            Some(0) => u32::MAX,
            Some(n) => n,
        }
    }
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
pub struct Watched {
    /// The current objects.
    pub read: Box<dyn FnMut() -> Result<Vec<Value>, ControlError> + Send>,
    /// The object's identity.
    pub key: fn(&Value) -> String,
    /// What counts as a change of it.
    pub fingerprint: fn(&Value) -> String,
    /// Ends the watch once every object is final (a waited-for command).
    pub until: Option<fn(&Value) -> bool>,
    /// Re-read at least this often, for changes the control layer does not signal.
    pub poll: Option<Duration>,
    /// Report objects that left the list (not for a sliding window of events).
    pub deletions: bool,
}

impl std::fmt::Debug for Watched {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Watched")
            .field("poll", &self.poll)
            .finish_non_exhaustive()
    }
}

/// A resource's `metadata.name`: the key a watch tells its objects apart by.
pub fn name_key(resource: &Value) -> String {
    metadata_str(resource, "name")
}

/// A resource's `metadata.uid`, for resources whose names repeat across nodes.
pub fn uid_key(resource: &Value) -> String {
    metadata_str(resource, "uid")
}

fn metadata_str(resource: &Value, field: &str) -> String {
    resource
        .get("metadata")
        .and_then(|m| m.get(field))
        .and_then(Value::as_str)
        .unwrap_or_default()
        .to_owned()
}

/// Streams a watch as NDJSON.
pub fn stream(
    control: &Control,
    shutdown: watch::Receiver<bool>,
    query: WatchQuery,
    watched: Watched,
) -> Response {
    stream_with(control, shutdown, query, watched, None)
}

/// [`stream`], also re-reading when `also` changes (a change the control layer does not
/// signal, such as a node's live state).
pub fn stream_with(
    control: &Control,
    mut shutdown: watch::Receiver<bool>,
    query: WatchQuery,
    mut watched: Watched,
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
            crate::load::WATCH_READS.fetch_add(1, Ordering::Relaxed);
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
                    None => Some("ADDED"),
                    Some(old) if *old != print => Some("MODIFIED"),
                    Some(_) => None,
                };
                present.insert(key, print);
                if let Some(kind) = kind {
                    let line = format!("{}\n", json!({ "type": kind, "object": object }));
                    if tx.send(Ok(line)).await.is_err() {
                        return;
                    }
                }
            }
            if !first && watched.deletions {
                for key in seen.keys().filter(|k| !present.contains_key(*k)) {
                    let line = format!(
                        "{}\n",
                        json!({ "type": "DELETED", "object": { "metadata": { "name": key } } })
                    );
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
