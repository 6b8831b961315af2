//! `aloft-hub run`: one TLS port serving both the node WebSocket
//! ([`aloft_protocol::sync::NODE_PATH`]) and the HTTPS JSON API.
//!
//! Invariants: a node's token is checked before the WebSocket upgrade (an unknown or
//! revoked token, or a token that is not a node token, gets HTTP 401 and no upgrade); a slow or
//! broken client costs only its own task and is dropped: TLS handshakes and request heads
//! have deadlines (the head's also closes an idle keep-alive), connections are bounded in
//! all and per peer address and watches per token ([`Limits`]), each refusal counted at
//! `GET /metrics`; node sessions and watches, once past their head, are not bound by those
//! deadlines (sessions have their own, kept alive by pings); at shutdown the
//! hub stops accepting, asks every connection and session to close, and waits for them a
//! bounded time ([`DRAIN_DEADLINE`]); nothing acked is lost because acks follow commits.

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use aloft_protocol::sync::NODE_PATH;
use axum::Router;
use axum::body::Body;
use axum::extract::ws::{WebSocketUpgrade, rejection::WebSocketUpgradeRejection};
use axum::extract::{Request, State};
use axum::http::{HeaderMap, StatusCode};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use hyper_util::rt::{TokioIo, TokioTimer};
use hyper_util::service::TowerToHyperService;
use rustls::ServerConfig;
use tokio::net::TcpListener;
use tokio::sync::{mpsc, watch};
use tokio_rustls::TlsAcceptor;
use tokio_stream::StreamExt as _;

use crate::Hub;
use crate::api::{self, ApiError, ApiState};
use crate::control::{Control, ControlError};
use crate::load::Load;
use crate::nodes::control_seam::{NoControl, NodeControl};
use crate::nodes::session;
use crate::tokens::Role;

pub use crate::load::Limits;
/// How long shutdown waits for connections and sessions to close.
pub const DRAIN_DEADLINE: Duration = Duration::from_secs(5);

/// What the server serves besides the node sessions and the stream's API.
///
/// The seam that lets the stream part of the hub run without the control layer: node
/// sessions reach the control layer only through [`NodeControl`], and its API routes are
/// merged in from here. So the ingest example (the ingest measurement of docs/hub.md)
/// serves nodes with [`NoControl`] and no `control.sqlite`, and the control seam test
/// (`hub/tests/control_seam.rs`) serves a recording control layer and a route of its own,
/// checking what the sessions hand the control layer. `aloft-hub run` serves
/// [`with_control`].
#[derive(Debug, Clone)]
pub struct ServeOptions {
    /// The control layer (commands, desired state); [`NoControl`] by default.
    pub control: Arc<dyn NodeControl>,
    /// More API routes (the control layer's resources), merged into the API router.
    pub routes: Option<Router<ApiState>>,
}

/// The server's options with the hub's control layer: its [`NodeControl`] and its routes
/// ([`api::control_routes`]). Starts the command expiry task, so call it within the
/// runtime.
pub fn with_control(hub: &Hub) -> Result<ServeOptions, ControlError> {
    let control = Control::open(hub)?;
    // The task ends with the last clone of `control`, i.e. with the server.
    drop(control.start_expiry());
    Ok(ServeOptions {
        control: Arc::new(control.clone()),
        routes: Some(api::control_routes(control)),
    })
}

impl Default for ServeOptions {
    fn default() -> Self {
        ServeOptions {
            control: Arc::new(NoControl),
            routes: None,
        }
    }
}

/// Why serving failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ServeError {
    /// The data directory.
    #[error(transparent)]
    Open(#[from] crate::OpenError),
    /// Certificates.
    #[error(transparent)]
    Pki(#[from] crate::pki::PkiError),
    /// The listener.
    #[error("listener: {0}")]
    Io(#[from] std::io::Error),
}

/// Opens the hub in `data_dir` and serves it on `listener` until `shutdown` resolves.
/// `options` makes the control layer and extra routes from the opened hub (they need its
/// [`crate::Sessions`] and stores).
pub async fn run(
    data_dir: &std::path::Path,
    listener: TcpListener,
    options: impl FnOnce(&Hub) -> ServeOptions,
    shutdown: impl Future<Output = ()>,
) -> Result<(), ServeError> {
    let hub = Hub::open(data_dir)?;
    let tls = crate::pki::server_config(data_dir)?;
    let options = options(&hub);
    serve(hub, tls, listener, options, shutdown).await
}

/// Serves `hub` on `listener` with `tls` until `shutdown` resolves, with the default
/// [`Limits`].
pub async fn serve(
    hub: Hub,
    tls: Arc<ServerConfig>,
    listener: TcpListener,
    options: ServeOptions,
    shutdown: impl Future<Output = ()>,
) -> Result<(), ServeError> {
    serve_with(hub, tls, listener, options, Limits::default(), shutdown).await
}

/// [`serve`] with the given [`Limits`].
pub async fn serve_with(
    hub: Hub,
    tls: Arc<ServerConfig>,
    listener: TcpListener,
    options: ServeOptions,
    limits: Limits,
    shutdown: impl Future<Output = ()>,
) -> Result<(), ServeError> {
    let load = Load::new(limits);
    let (stop_tx, stop_rx) = watch::channel(false);
    // Every connection and session holds a clone; when all are gone, `recv` returns None.
    let (done_tx, mut done_rx) = mpsc::channel::<()>(1);
    let state = ApiState {
        hub,
        control: options.control,
        shutdown: stop_rx.clone(),
        load: load.clone(),
        reads: api::watches::SharedReads::default(),
        _running: done_tx.clone(),
    };
    let app: Router = api::router(options.routes)
        .route("/metrics", get(metrics))
        .route(NODE_PATH, get(connect))
        .layer(middleware::from_fn_with_state(state.clone(), bound_watches))
        .with_state(state);
    let mut http = hyper::server::conn::http1::Builder::new();
    http.timer(TokioTimer::new())
        .header_read_timeout(limits.header_timeout);
    let acceptor = TlsAcceptor::from(tls);
    tracing::info!(address = %listener.local_addr()?, "Hub serving.");
    tokio::pin!(shutdown);
    loop {
        let accepted = tokio::select! {
            accepted = listener.accept() => accepted,
            () = &mut shutdown => break,
        };
        let (tcp, peer) = match accepted {
            Ok(a) => a,
            Err(e) => {
                // Out of descriptors or similar: keep serving the others.
                tracing::warn!(error = %e, "Accepting a connection failed.");
                tokio::time::sleep(Duration::from_millis(50)).await;
                continue;
            }
        };
        let admitted = match load.admit(peer.ip()) {
            Ok(admitted) => admitted,
            Err(bound) => {
                // Closed before any byte is read: a flood costs an accept and a close.
                tracing::debug!(%peer, ?bound, "Connection refused: over its bound.");
                drop(tcp);
                continue;
            }
        };
        let _ = tcp.set_nodelay(true);
        let acceptor = acceptor.clone();
        let app = app.clone();
        let http = http.clone();
        let load = load.clone();
        let mut stop = stop_rx.clone();
        let running = done_tx.clone();
        tokio::spawn(async move {
            let _running = running;
            let _admitted = admitted;
            let handshake = limits.handshake_timeout;
            let tls = match tokio::time::timeout(handshake, acceptor.accept(tcp)).await {
                Ok(Ok(tls)) => tls,
                Ok(Err(e)) => {
                    load.handshake_failed();
                    tracing::debug!(%peer, error = %e, "TLS handshake failed.");
                    return;
                }
                Err(_) => {
                    load.handshake_timed_out();
                    tracing::debug!(%peer, "TLS handshake timed out.");
                    return;
                }
            };
            let conn = http
                .serve_connection(TokioIo::new(tls), TowerToHyperService::new(app))
                .with_upgrades();
            tokio::pin!(conn);
            tokio::select! {
                result = conn.as_mut() => {
                    match result {
                        Err(e) if e.is_timeout() => {
                            load.header_timed_out();
                            tracing::debug!(%peer, "No request head within the deadline; closed.");
                        }
                        Err(e) => {
                            tracing::debug!(%peer, error = %e, "Connection ended with an error.");
                        }
                        Ok(()) => {}
                    }
                }
                _ = stop.changed() => {
                    conn.as_mut().graceful_shutdown();
                    let _ = conn.await;
                }
            }
        });
    }
    tracing::info!("Hub stopping.");
    drop(listener);
    let _ = stop_tx.send(true);
    drop(app);
    drop(done_tx);
    if tokio::time::timeout(DRAIN_DEADLINE, done_rx.recv())
        .await
        .is_err()
    {
        tracing::warn!(
            deadline_s = DRAIN_DEADLINE.as_secs(),
            "Connections still open at shutdown; leaving them."
        );
    }
    tracing::info!("Hub stopped.");
    Ok(())
}

/// The node WebSocket: authenticate, then upgrade.
async fn connect(
    State(state): State<ApiState>,
    headers: HeaderMap,
    upgrade: Result<WebSocketUpgrade, WebSocketUpgradeRejection>,
) -> Response {
    let principal = match api::authenticate(&state.hub, &headers).await {
        Ok(p) => p,
        Err(e) => return e.into_response(),
    };
    let token = principal.token_id;
    let Some(node) = principal.node.filter(|_| principal.role == Role::Node) else {
        // docs/protocol.md: anything but a valid node token is refused with 401.
        return ApiError::unauthorized(format!(
            "a {} token cannot connect as a node; use the node's token",
            principal.role.name()
        ))
        .into_response();
    };
    let upgrade = match upgrade {
        Ok(u) => u,
        Err(rejection) => return rejection.into_response(),
    };
    let ApiState {
        hub,
        control,
        shutdown,
        _running: running,
        ..
    } = state;
    upgrade
        .max_message_size(session::WS_MESSAGE_LIMIT)
        .max_frame_size(session::WS_MESSAGE_LIMIT)
        .on_upgrade(move |socket| async move {
            let _running = running;
            session::run(hub, control, node, token, socket, shutdown).await;
        })
}

/// `GET /metrics` (viewer): the hub's load counters as Prometheus text.
async fn metrics(State(state): State<ApiState>, caller: api::Caller) -> Response {
    if let Err(e) = caller.require(Role::Viewer) {
        return e.into_response();
    }
    let text = state.load.prometheus(state.hub.sessions.connected().len());
    (
        [(
            axum::http::header::CONTENT_TYPE,
            "text/plain; version=0.0.4; charset=utf-8",
        )],
        text,
    )
        .into_response()
}

/// Whether a request's query asks for a watch (`watch=true` or `watch=1`).
fn is_watch(query: Option<&str>) -> bool {
    query.is_some_and(|q| {
        q.split('&')
            .any(|pair| matches!(pair, "watch=true" | "watch=1"))
    })
}

/// Holds a place of the caller's token for as long as a watch's answer streams; refuses
/// with 429 (counted) a watch over [`Limits::max_watches_per_token`].
async fn bound_watches(State(state): State<ApiState>, request: Request, next: Next) -> Response {
    if !is_watch(request.uri().query()) {
        return next.run(request).await;
    }
    // Without a token the route answers 401 at once: nothing to hold.
    let Some(token) = api::bearer(request.headers()).map(token_key) else {
        return next.run(request).await;
    };
    let Some(place) = state.load.open_watch(&token) else {
        let most = state.load.limits().max_watches_per_token;
        tracing::info!(most, "Watch refused: its token holds the most allowed.");
        return ApiError::new(
            StatusCode::TOO_MANY_REQUESTS,
            "TooManyRequests",
            format!(
                "this token holds {most} open watches, the most allowed; end one (or raise `aloft-hub run --max-watches-per-token`)"
            ),
        )
        .into_response();
    };
    let response = next.run(request).await;
    if !response.status().is_success() {
        return response;
    }
    // The place is freed when the stream is dropped: at its end or when the client leaves.
    response.map(|body| {
        Body::from_stream(body.into_data_stream().map(move |chunk| {
            let _held = &place;
            chunk
        }))
    })
}

/// A token's key in the watch bounds: a digest, so no secret is kept in memory longer.
fn token_key(secret: &str) -> String {
    crate::clock::hex(
        &ring::digest::digest(&ring::digest::SHA256, secret.as_bytes()).as_ref()[..16],
    )
}
