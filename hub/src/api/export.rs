//! `GET /api/v1/nodes/{node}/export?format=F&...` (viewer): the node's stream exported in
//! a format, as a tar stream of the export's files (the sidecar last).
//!
//! Invariants: the query is checked, the node found and the export's catalog pass run
//! before the answer starts, so a bad request gets a `Status` 400 (404 for an unknown
//! node); the export runs on a blocking thread and sends its bytes through a bounded
//! channel, so memory stays flat and a client that goes away stops it; a failure once the
//! answer has started cuts the body (the tar's end marker is never written) and is
//! logged; `skip=N` sends the same stream from byte N.

use aloft_dataset::{Dataset, ExportError, ExportOptions};
use axum::body::{Body, Bytes};
use axum::extract::{Path, RawQuery, State};
use axum::http::{HeaderName, HeaderValue, header};
use axum::response::{IntoResponse, Response};
use tokio::sync::{mpsc, oneshot};

use super::readings::require_node;
use super::{ApiError, ApiState, Caller};
use crate::clock::{now_utc_ns, rfc3339};
use crate::export::request::ExportRequest;
use crate::export::source::{HubSource, MemoBacklog};
use crate::export::tarball::TarOutput;
use crate::export::temp_dir;
use crate::tokens::Role;

/// The snapshot the export is bounded to (`EPOCH:SEQ,...`).
pub const UPTO_HEADER: &str = "aloft-export-upto";
/// The export's creation time, ns since 1970.
pub const CREATED_HEADER: &str = "aloft-export-created";
/// Records (of every kind) in the snapshot.
pub const RECORDS_HEADER: &str = "aloft-export-records";
/// Bytes of the stream left out at its start (`skip`).
pub const SKIPPED_HEADER: &str = "aloft-export-skipped";

/// Bytes sent to the client at a time.
const CHUNK: usize = 64 << 10;

/// How long the answer waits, after the catalog pass, for the format's writer to refuse
/// the selection (a format that needs readings the selection does not have), so that such
/// a refusal is still a clean 400.
const EARLY_REFUSAL: std::time::Duration = std::time::Duration::from_secs(1);

/// What the export's thread says before the stream.
enum Ready {
    /// The catalog pass is done: the stream follows.
    Streaming { upto: String, records: u64 },
    /// Refused or failed before any byte.
    Failed(ApiError),
}

/// The format's writer: under way (the first file went out), or failed before it.
enum Early {
    Started,
    Failed(ApiError),
}

fn export_error(e: &ExportError) -> ApiError {
    if e.is_request_error() {
        ApiError::bad_request(e.to_string())
    } else {
        ApiError::internal(e)
    }
}

/// `GET /api/v1/nodes/{node}/export` (viewer).
pub async fn export(
    caller: Caller,
    State(state): State<ApiState>,
    Path(node): Path<String>,
    RawQuery(query): RawQuery,
) -> Result<Response, ApiError> {
    caller.require(Role::Viewer)?;
    require_node(&state, &node).await?;
    let request = ExportRequest::parse(query.as_deref().unwrap_or(""))
        .map_err(|e| ApiError::bad_request(format!("{e}")))?;
    let registry = state.hub.registry.clone();
    let name = node.clone();
    let backlog = tokio::task::spawn_blocking(move || registry.node(&name))
        .await
        .map_err(|e| ApiError::internal(&e))?
        .map_err(|e| ApiError::internal(&e))?
        .and_then(|status| {
            status.backlog.map(|b| MemoBacklog {
                unsent_records: b.records,
                reported: status.live_received_utc_ns.map(rfc3339),
                arrived: None,
                bound: status.backlog_bound,
            })
        });
    let created = request.created_utc_ns.unwrap_or_else(now_utc_ns);
    let skip = request.skip;
    let (ready_tx, ready_rx) = oneshot::channel::<Ready>();
    let (early_tx, early_rx) = oneshot::channel::<Early>();
    let (body_tx, body_rx) = mpsc::channel::<Result<Bytes, std::io::Error>>(8);
    let hub = state.hub.clone();
    tokio::task::spawn_blocking(move || {
        run(
            &hub, &node, &request, created, backlog, ready_tx, early_tx, body_tx,
        );
    });
    let (upto, records) = match ready_rx.await {
        Ok(Ready::Streaming { upto, records }) => (upto, records),
        Ok(Ready::Failed(e)) => return Err(e),
        Err(_) => return Err(ApiError::internal(&"the export stopped before it started")),
    };
    if let Ok(Ok(Early::Failed(e))) = tokio::time::timeout(EARLY_REFUSAL, early_rx).await {
        return Err(e);
    }
    let body = Body::from_stream(tokio_stream::wrappers::ReceiverStream::new(body_rx));
    let mut response = ([(header::CONTENT_TYPE, "application/x-tar")], body).into_response();
    let headers = response.headers_mut();
    for (name, value) in [
        (UPTO_HEADER, upto),
        (CREATED_HEADER, created.to_string()),
        (RECORDS_HEADER, records.to_string()),
        (SKIPPED_HEADER, skip.to_string()),
    ] {
        if let Ok(value) = HeaderValue::from_str(&value) {
            headers.insert(HeaderName::from_static(name), value);
        }
    }
    Ok(response)
}

/// The export's thread: snapshot, catalog pass, then the format into the tar stream.
#[allow(clippy::too_many_arguments)]
fn run(
    hub: &crate::Hub,
    node: &str,
    request: &ExportRequest,
    created: i64,
    backlog: Option<MemoBacklog>,
    ready: oneshot::Sender<Ready>,
    early: oneshot::Sender<Early>,
    body: mpsc::Sender<Result<Bytes, std::io::Error>>,
) {
    let source = match HubSource::open(
        &hub.streams,
        node,
        request.upto.as_deref(),
        created,
        backlog,
    ) {
        Ok(s) => s,
        Err(e) => {
            let _ = ready.send(Ready::Failed(ApiError::internal(&e)));
            return;
        }
    };
    let mut options = ExportOptions::new(node, created);
    if let Some(stem) = &request.stem {
        options.stem = stem.clone();
    }
    options.layout = request.layout;
    options.metadata = hub.config.export.clone();
    let ds = match Dataset::open(&source, node, request.selection(), options) {
        Ok(ds) => ds,
        Err(e) => {
            let _ = ready.send(Ready::Failed(export_error(&e)));
            return;
        }
    };
    // The count is for the answer's header only: it runs beside the export, which
    // starts spooling at once (the body waits in the channel until the answer starts).
    let count = source.counter();
    let upto = source.upto().to_owned();
    let counted = std::sync::Arc::new(std::sync::OnceLock::new());
    let counted_here = counted.clone();
    std::thread::spawn(move || {
        let answer = match count() {
            Ok(records) => {
                let _ = counted_here.set(records);
                Ready::Streaming { upto, records }
            }
            Err(e) => Ready::Failed(ApiError::internal(&e)),
        };
        let _ = ready.send(answer);
    });
    let started = std::time::Instant::now();
    let sink = BodySink::new(body, request.skip);
    let mut out = match TarOutput::new(&temp_dir(&hub.data_dir), sink, created) {
        Ok(out) => out,
        Err(e) => {
            let _ = early.send(Early::Failed(export_error(&e)));
            return;
        }
    };
    let (early_started, early_failed) = {
        let slot = std::sync::Arc::new(std::sync::Mutex::new(Some(early)));
        (slot.clone(), slot)
    };
    out.on_first_file(move || {
        if let Some(tx) = early_started.lock().ok().and_then(|mut s| s.take()) {
            let _ = tx.send(Early::Started);
        }
    });
    match aloft_dataset::export(&ds, request.format, &mut out) {
        Ok(files) => match out.finish().and_then(BodySink::end) {
            Ok(sent) => tracing::info!(
                node,
                format = request.format.name(),
                files = files.len(),
                records = counted.get().copied(),
                bytes = sent,
                skipped = request.skip,
                seconds = started.elapsed().as_secs_f64(),
                "Export sent."
            ),
            Err(e) => tracing::warn!(node, error = %e, "Export stream ended early."),
        },
        Err(e) => {
            let taken = early_failed.lock().ok().and_then(|mut s| s.take());
            // Nothing has gone out yet: the answer may still be a clean refusal (a 500 is
            // logged where it is made).
            let answered = taken
                .filter(|tx| !tx.is_closed())
                .is_some_and(|tx| tx.send(Early::Failed(export_error(&e))).is_ok());
            if matches!(&e, ExportError::Write(io) if io.kind() == std::io::ErrorKind::BrokenPipe) {
                tracing::info!(node, "Export client went away; export stopped.");
            } else if !answered {
                tracing::error!(node, format = request.format.name(), error = %e, "Export failed; its stream is cut.");
            }
            out.into_sink().cut(&e);
        }
    }
}

/// The answer's body: bytes from the tar stream, less the first `skip`, in chunks through
/// the channel.
struct BodySink {
    tx: mpsc::Sender<Result<Bytes, std::io::Error>>,
    skip: u64,
    offset: u64,
    buf: Vec<u8>,
}

impl BodySink {
    fn new(tx: mpsc::Sender<Result<Bytes, std::io::Error>>, skip: u64) -> BodySink {
        BodySink {
            tx,
            skip,
            offset: 0,
            buf: Vec::with_capacity(CHUNK),
        }
    }

    fn send(&mut self) -> std::io::Result<()> {
        if self.buf.is_empty() {
            return Ok(());
        }
        let chunk = Bytes::from(std::mem::replace(&mut self.buf, Vec::with_capacity(CHUNK)));
        self.tx
            .blocking_send(Ok(chunk))
            .map_err(|_| std::io::Error::new(std::io::ErrorKind::BrokenPipe, "client gone"))
    }

    /// The stream is complete: bytes in it, or an error when `skip` is beyond its end
    /// (then the body is cut: the client asked for bytes that do not exist).
    fn end(mut self) -> std::io::Result<u64> {
        self.send()?;
        if self.skip > self.offset {
            let e = std::io::Error::other(format!(
                "skip={} is beyond the export's end at {} bytes",
                self.skip, self.offset
            ));
            let _ = self
                .tx
                .blocking_send(Err(std::io::Error::other(e.to_string())));
            return Err(e);
        }
        Ok(self.offset)
    }

    /// Cuts the body: the client sees a broken transfer, never a false end.
    fn cut(self, why: &ExportError) {
        let _ = self
            .tx
            .blocking_send(Err(std::io::Error::other(why.to_string())));
    }
}

impl std::io::Write for BodySink {
    fn write(&mut self, data: &[u8]) -> std::io::Result<usize> {
        let start = self.offset;
        self.offset += data.len() as u64;
        let keep = if self.skip > start {
            let drop =
                usize::try_from((self.skip - start).min(data.len() as u64)).unwrap_or(data.len());
            &data[drop..]
        } else {
            data
        };
        self.buf.extend_from_slice(keep);
        if self.buf.len() >= CHUNK {
            self.send()?;
        }
        Ok(data.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        self.send()
    }
}
