//! `aloft-hub run`: one TLS port serving both the node WebSocket
//! ([`aloft_protocol::sync::NODE_PATH`]) and the HTTPS JSON API.
//!
//! Invariants: a node's token is checked before the WebSocket upgrade (an unknown or
//! revoked token, or a token that is not a node token, gets HTTP 401 and no upgrade); a slow or
//! broken client costs only its own task (TLS handshakes have a deadline); at shutdown the
//! hub stops accepting, asks every connection and session to close, and waits for them a
//! bounded time ([`DRAIN_DEADLINE`]); nothing acked is lost because acks follow commits.

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use aloft_protocol::sync::NODE_PATH;
use axum::Router;
use axum::extract::State;
use axum::extract::ws::{WebSocketUpgrade, rejection::WebSocketUpgradeRejection};
use axum::http::HeaderMap;
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use hyper_util::rt::TokioIo;
use hyper_util::service::TowerToHyperService;
use rustls::ServerConfig;
use tokio::net::TcpListener;
use tokio::sync::{mpsc, watch};
use tokio_rustls::TlsAcceptor;

use crate::Hub;
use crate::api::{self, ApiError, ApiState};
use crate::node_control::{NoControl, NodeControl};
use crate::session;
use crate::tokens::Role;

/// How long a client may take for its TLS handshake.
pub const HANDSHAKE_DEADLINE: Duration = Duration::from_secs(10);
/// How long shutdown waits for connections and sessions to close.
pub const DRAIN_DEADLINE: Duration = Duration::from_secs(5);

/// What the server serves besides issue 4's own parts.
#[derive(Debug, Clone)]
pub struct ServeOptions {
    /// The control layer (commands, desired state); [`NoControl`] by default.
    pub control: Arc<dyn NodeControl>,
    /// More API routes (issue 5's resources), merged into the API router.
    pub routes: Option<Router<ApiState>>,
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

/// Serves `hub` on `listener` with `tls` until `shutdown` resolves.
pub async fn serve(
    hub: Hub,
    tls: Arc<ServerConfig>,
    listener: TcpListener,
    options: ServeOptions,
    shutdown: impl Future<Output = ()>,
) -> Result<(), ServeError> {
    let (stop_tx, stop_rx) = watch::channel(false);
    // Every connection and session holds a clone; when all are gone, `recv` returns None.
    let (done_tx, mut done_rx) = mpsc::channel::<()>(1);
    let state = ApiState {
        hub,
        control: options.control,
        shutdown: stop_rx.clone(),
        _running: done_tx.clone(),
    };
    let app: Router = api::router(options.routes)
        .route(NODE_PATH, get(connect))
        .with_state(state);
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
        let _ = tcp.set_nodelay(true);
        let acceptor = acceptor.clone();
        let app = app.clone();
        let mut stop = stop_rx.clone();
        let running = done_tx.clone();
        tokio::spawn(async move {
            let _running = running;
            let tls = match tokio::time::timeout(HANDSHAKE_DEADLINE, acceptor.accept(tcp)).await {
                Ok(Ok(tls)) => tls,
                Ok(Err(e)) => {
                    tracing::debug!(%peer, error = %e, "TLS handshake failed.");
                    return;
                }
                Err(_) => {
                    tracing::debug!(%peer, "TLS handshake timed out.");
                    return;
                }
            };
            let conn = hyper::server::conn::http1::Builder::new()
                .serve_connection(TokioIo::new(tls), TowerToHyperService::new(app))
                .with_upgrades();
            tokio::pin!(conn);
            tokio::select! {
                result = conn.as_mut() => {
                    if let Err(e) = result {
                        tracing::debug!(%peer, error = %e, "Connection ended with an error.");
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
    } = state;
    upgrade
        .max_message_size(session::WS_MESSAGE_LIMIT)
        .max_frame_size(session::WS_MESSAGE_LIMIT)
        .on_upgrade(move |socket| async move {
            let _running = running;
            session::run(hub, control, node, token, socket, shutdown).await;
        })
}
