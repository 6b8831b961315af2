//! Lists and watches: the one list query of every list route ([`ListQuery`]) and watches
//! streamed as NDJSON ([`stream`]).
//!
//! A watch (`?watch=true`) answers `200` with one JSON object a line,
//! `{"type": "ADDED"|"MODIFIED"|"DELETED", "object": {...}}`: first every current object as
//! ADDED, then each change. It ends at `timeoutSeconds` (default 300), when its `until`
//! says the object is final (a command that ended), when the client goes away, or at hub
//! shutdown.
//!
//! A watch costs nothing while nothing changes: it sleeps until the control layer signals a
//! change of commands, desired state or events, or (sensor and node watches) the sessions
//! signal a change of a node's live state (a session started or ended, a live update whose
//! sensor reports differ from the last in more than their reading counts, a health report
//! that differs from the last in more than its time and its store's bytes within a whole
//! percent of fill, a node created or deleted); only then
//! does it re-read, and it sends only what differs. The watches of one query share that
//! re-read ([`SharedReads`]): one change costs one read per query watched, not one per
//! watch. Every read is counted ([`crate::load::WATCH_READS`],
//! `aloft_hub_watch_reads_total` at `GET /metrics`).

use std::any::Any;
use std::collections::HashMap;
use std::convert::Infallible;
use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex, Weak};
use std::time::Duration;

use aloft_api::{DeletedObject, ObjectMeta, Resource, WatchEvent, WatchEventType};
use axum::body::Body;
use axum::http::header;
use axum::response::{IntoResponse, Response};
use serde::Serialize;
use tokio::sync::{mpsc, watch};
use tokio_stream::wrappers::ReceiverStream;

use super::ApiState;
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
pub struct Watched<T> {
    /// What `read` reads, in words that tell it from every other read (the route and its
    /// parameters): watches of the same query share their re-reads.
    pub query: String,
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
    state: &ApiState,
    control: &Control,
    query: WatchQuery,
    watched: Watched<T>,
) -> Response {
    stream_with(state, control, query, watched, None)
}

/// [`stream`], also re-reading when `also` changes (a change the control layer does not
/// signal, such as a node's live state).
pub fn stream_with<T: Serialize + Send + Sync + 'static>(
    state: &ApiState,
    control: &Control,
    query: WatchQuery,
    watched: Watched<T>,
    also: Option<watch::Receiver<u64>>,
) -> Response {
    stream_signalled(state, control.subscribe(), query, watched, also)
}

/// [`stream_with`] woken by `changes` instead of the control layer's changes (a watch of
/// what only the sessions change, such as nodes).
pub fn stream_signalled<T: Serialize + Send + Sync + 'static>(
    state: &ApiState,
    mut changes: watch::Receiver<u64>,
    query: WatchQuery,
    mut watched: Watched<T>,
    mut also: Option<watch::Receiver<u64>>,
) -> Response {
    let (tx, rx) = mpsc::channel::<Result<String, Infallible>>(64);
    let mut shutdown = state.shutdown.clone();
    let shared = state.reads.slot(&watched.query);
    let deadline = tokio::time::Instant::now() + query.duration();
    tokio::spawn(async move {
        let mut seen: HashMap<String, String> = HashMap::new();
        let mut first = true;
        let mut fresh = true;
        loop {
            // What has been signalled so far; the read must be at least that new.
            let stamp = Stamp {
                control: *changes.borrow_and_update(),
                also: also.as_mut().map_or(0, |a| *a.borrow_and_update()),
            };
            let objects = match shared.read(stamp, fresh, &mut watched.read).await {
                Ok(objects) => objects,
                Err(e) => {
                    tracing::warn!(error = %e, "Watch read failed; ending it.");
                    break;
                }
            };
            let mut present = HashMap::new();
            for object in objects.iter() {
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
            fresh = false;
            tokio::select! {
                changed = changes.changed() => if changed.is_err() { break },
                changed = changed_or_never(&mut also) => if changed.is_err() { break },
                // A poll is for changes nobody signals: a read shared at the same stamp
                // would not see them.
                () = tokio::time::sleep(poll) => fresh = true,
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

/// How far the change signals a read must reflect had got: the control layer's change
/// count and the other signal's (a node's live state), 0 for a watch without one.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Stamp {
    /// The control layer's change count.
    pub control: u64,
    /// The other signal's count.
    pub also: u64,
}

impl Stamp {
    fn covers(self, other: Stamp) -> bool {
        self.control >= other.control && self.also >= other.also
    }
}

/// The re-reads of the hub's watches, shared among the watches of one query: the first
/// watch woken by a change reads, and the others woken by the same change take its objects.
///
/// Invariant: a watch is given objects read after every change it was woken for was
/// signalled (the stamp is taken before the read that it labels), so sharing never hides
/// a change; a query's slot lives while a watch of it does.
#[derive(Debug, Clone, Default)]
pub struct SharedReads {
    slots: Arc<Mutex<HashMap<String, Weak<SharedSlot>>>>,
}

/// What one read of a query gave: a `Vec` of the query's resource type.
type SharedObjects = Arc<dyn Any + Send + Sync>;

/// The latest read of one query.
#[derive(Debug, Default)]
pub struct SharedSlot {
    latest: tokio::sync::Mutex<Option<(Stamp, SharedObjects)>>,
}

impl SharedReads {
    /// The slot of `query`, made if no watch holds one; the watch holds it while it runs.
    pub fn slot(&self, query: &str) -> Arc<SharedSlot> {
        let mut slots = self.slots.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(slot) = slots.get(query).and_then(Weak::upgrade) {
            return slot;
        }
        // Forget the queries nobody watches any more, so the map stays as small as the
        // set of open watches.
        slots.retain(|_, slot| slot.strong_count() > 0);
        let slot = Arc::new(SharedSlot::default());
        slots.insert(query.to_owned(), Arc::downgrade(&slot));
        slot
    }

    /// How many queries have a slot now.
    pub fn queries(&self) -> usize {
        let slots = self.slots.lock().unwrap_or_else(|e| e.into_inner());
        slots
            .values()
            .filter(|slot| slot.strong_count() > 0)
            .count()
    }
}

impl SharedSlot {
    /// The objects as of at least `stamp`: the latest read when it covers `stamp` (and
    /// `fresh` is not asked), else a new read by `read`, which the next watches then share.
    ///
    /// A query names one resource type; a slot holding another type's objects (a query
    /// string two routes shared) is read afresh, never misread.
    pub async fn read<T: Send + Sync + 'static>(
        &self,
        stamp: Stamp,
        fresh: bool,
        read: &mut (dyn FnMut() -> Result<Vec<T>, ControlError> + Send),
    ) -> Result<Arc<Vec<T>>, ControlError> {
        let mut latest = self.latest.lock().await;
        if !fresh
            && let Some((read_at, objects)) = latest.as_ref()
            && read_at.covers(stamp)
            && let Ok(objects) = objects.clone().downcast::<Vec<T>>()
        {
            return Ok(objects);
        }
        // The registry and SQLite reads are quick; a blocking pool hop per change is not
        // worth it.
        crate::load::WATCH_READS.fetch_add(1, Ordering::Relaxed);
        let objects = Arc::new(read()?);
        if latest
            .as_ref()
            .is_none_or(|(read_at, _)| stamp.covers(*read_at))
        {
            *latest = Some((stamp, objects.clone() as SharedObjects));
        }
        Ok(objects)
    }
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

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::{Value, json};

    fn counting(
        reads: &Arc<std::sync::atomic::AtomicU64>,
    ) -> impl FnMut() -> Result<Vec<Value>, ControlError> + Send + use<> {
        let reads = reads.clone();
        move || {
            let n = reads.fetch_add(1, Ordering::SeqCst) + 1;
            Ok(vec![json!({ "metadata": { "name": format!("read-{n}") } })])
        }
    }

    fn stamp(control: u64, also: u64) -> Stamp {
        Stamp { control, also }
    }

    #[tokio::test]
    async fn watches_of_one_query_woken_by_one_change_share_one_read() {
        let shared = SharedReads::default();
        let reads = Arc::new(std::sync::atomic::AtomicU64::new(0));
        let watches: Vec<_> = (0..100).map(|_| shared.slot("events node=None")).collect();
        assert_eq!(shared.queries(), 1);
        let mut seen = Vec::new();
        for slot in &watches {
            let mut read = counting(&reads);
            seen.push(slot.read(stamp(7, 0), false, &mut read).await.unwrap());
        }
        assert_eq!(reads.load(Ordering::SeqCst), 1, "one read for 100 watches");
        assert!(seen.iter().all(|objects| objects == &seen[0]));

        // The next change, of either signal, is read again, once.
        for slot in &watches {
            slot.read(stamp(8, 0), false, &mut counting(&reads))
                .await
                .unwrap();
        }
        for slot in &watches {
            slot.read(stamp(8, 1), false, &mut counting(&reads))
                .await
                .unwrap();
        }
        assert_eq!(reads.load(Ordering::SeqCst), 3);
    }

    #[tokio::test]
    async fn a_read_older_than_the_change_or_a_fresh_one_asked_for_is_not_shared() {
        let shared = SharedReads::default();
        let reads = Arc::new(std::sync::atomic::AtomicU64::new(0));
        let slot = shared.slot("commands node=None limit=200");
        slot.read(stamp(5, 3), false, &mut counting(&reads))
            .await
            .unwrap();
        // Newer in one signal, older in the other: neither read covers the other.
        slot.read(stamp(6, 2), false, &mut counting(&reads))
            .await
            .unwrap();
        assert_eq!(reads.load(Ordering::SeqCst), 2);
        slot.read(stamp(5, 3), true, &mut counting(&reads))
            .await
            .unwrap();
        assert_eq!(reads.load(Ordering::SeqCst), 3, "fresh asked for");
        // Another query never takes this one's objects.
        let other = shared.slot("commands node=Some(\"glider\") limit=200");
        let objects = other
            .read(stamp(0, 0), false, &mut counting(&reads))
            .await
            .unwrap();
        assert_eq!(reads.load(Ordering::SeqCst), 4);
        assert_eq!(objects[0]["metadata"]["name"], "read-4");
    }

    #[test]
    fn a_query_nobody_watches_any_more_is_forgotten() {
        let shared = SharedReads::default();
        let first = shared.slot("a");
        let again = shared.slot("a");
        assert!(Arc::ptr_eq(&first, &again));
        drop((first, again));
        let _b = shared.slot("b");
        assert_eq!(shared.queries(), 1);
        assert_eq!(
            shared.slots.lock().unwrap_or_else(|e| e.into_inner()).len(),
            1
        );
    }
}
