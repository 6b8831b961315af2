//! The agent's uplink to aloft-hub (docs/protocol.md): one WebSocket over TLS that
//! carries the store's durable records from the first unacked number, the live lane, and
//! the control messages both ways.
//!
//! # Layout
//! - [`session`]: the sync state of one connection, with no I/O (what to send next, what an
//!   ack means), and the bandwidth budget.
//! - [`live`]: the newest values and sensor states the writer keeps for the live lane.
//! - [`tls`]: rustls (ring) with certificate validity checked at a time a board without an
//!   RTC can trust.
//! - [`link`]: the I/O shell: connect, hello/welcome, send, keepalive with a read deadline,
//!   reconnect with jittered backoff.
//!
//! Invariants: only durable records are sent (the store's `read_from` returns nothing else);
//! the store's ack cursor moves only on the hub's ack; nothing here waits on the store
//! writer for long (one read of a batch, or one ack, under its lock), and the writer never
//! waits on the network (invariant 7: the agent runs without the hub).

pub mod link;
pub mod live;
pub mod session;
pub mod tls;

use std::path::PathBuf;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use aloft_protocol::sync::{Downlink, Uplink};
use aloft_store::Outbox;
use tokio::sync::{mpsc, watch};

use crate::config::HubConfig;
pub use link::HubLink;
pub use live::LiveBoard;

/// Why the uplink could not be set up.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum UplinkError {
    /// The token file could not be read, or is empty.
    #[error("token file {path}: {message}")]
    Token {
        /// The file.
        path: PathBuf,
        /// Why.
        message: String,
    },
    /// TLS could not be set up.
    #[error(transparent)]
    Tls(#[from] tls::TlsError),
}

/// How the uplink connects and paces itself (from the config's `[hub]`).
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct UplinkOptions {
    /// `wss://host:port/v1/nodes/connect` (`ws://` on a test bench).
    pub url: String,
    /// The node's token, sent as `Authorization: Bearer`.
    pub token: String,
    /// The node's name, in the hello.
    pub node: String,
    /// TLS for `wss://`.
    pub tls: Arc<rustls::ClientConfig>,
    /// A keepalive ping this often.
    pub keepalive: Duration,
    /// Nothing received for this long: the link is dead (half-open), reconnect.
    pub read_deadline: Duration,
    /// Upper bound of the delay between connection attempts.
    pub reconnect_max: Duration,
    /// The upload bandwidth budget, bytes/s.
    pub upload_bytes_per_s: u64,
    /// A live update this often (and at once when a sensor changes state).
    pub live_interval: Duration,
}

impl UplinkOptions {
    /// The options of `hub` for node `node`: reads the token file and sets up TLS with
    /// `trusted` as the certificate-time floor.
    pub fn from_config(
        hub: &HubConfig,
        node: &str,
        trusted: tls::TrustedTime,
    ) -> Result<Self, UplinkError> {
        let token = std::fs::read_to_string(&hub.token_file).map_err(|e| UplinkError::Token {
            path: hub.token_file.clone(),
            message: e.to_string(),
        })?;
        let token = token.trim().to_string();
        if token.is_empty() {
            return Err(UplinkError::Token {
                path: hub.token_file.clone(),
                message: "is empty".into(),
            });
        }
        Ok(UplinkOptions {
            url: hub.url.trim().to_string(),
            token,
            node: node.to_string(),
            tls: tls::client_config(hub.ca_file.as_deref(), trusted)?,
            keepalive: hub.keepalive,
            read_deadline: hub.read_deadline,
            reconnect_max: hub.reconnect_max,
            upload_bytes_per_s: hub.upload_bytes_per_s,
            live_interval: hub.live_interval,
        })
    }

    /// Options with the given parts and the contract's default tunables (tests, tools).
    pub fn new(url: &str, token: &str, node: &str, tls: Arc<rustls::ClientConfig>) -> Self {
        UplinkOptions {
            url: url.to_string(),
            token: token.to_string(),
            node: node.to_string(),
            tls,
            keepalive: Duration::from_secs(15),
            read_deadline: Duration::from_secs(45),
            reconnect_max: Duration::from_secs(5),
            upload_bytes_per_s: 250_000,
            live_interval: Duration::from_secs(1),
        }
    }

    /// With this keepalive interval and read deadline.
    #[must_use]
    pub fn with_keepalive(mut self, keepalive: Duration, read_deadline: Duration) -> Self {
        self.keepalive = keepalive;
        self.read_deadline = read_deadline;
        self
    }

    /// With this reconnect cap.
    #[must_use]
    pub fn with_reconnect_max(mut self, reconnect_max: Duration) -> Self {
        self.reconnect_max = reconnect_max;
        self
    }

    /// With this upload budget, bytes/s.
    #[must_use]
    pub fn with_upload_bytes_per_s(mut self, bytes_per_s: u64) -> Self {
        self.upload_bytes_per_s = bytes_per_s;
        self
    }

    /// With this live interval.
    #[must_use]
    pub fn with_live_interval(mut self, live_interval: Duration) -> Self {
        self.live_interval = live_interval;
        self
    }
}

/// The store as the writer and the uplink share it: the writer appends and commits, the
/// uplink reads durable records and acks, each under the lock for one short step. The
/// writer publishes the durable end after every commit so the uplink wakes for new
/// records without polling.
#[derive(Debug, Clone)]
pub struct SharedStore {
    outbox: Arc<Mutex<Outbox>>,
    durable: Arc<watch::Sender<u64>>,
}

impl SharedStore {
    /// Shares `outbox`.
    pub fn new(outbox: Outbox) -> Self {
        let durable = outbox.durable_end();
        SharedStore {
            outbox: Arc::new(Mutex::new(outbox)),
            durable: Arc::new(watch::Sender::new(durable)),
        }
    }

    /// The outbox, for one short step.
    pub fn lock(&self) -> MutexGuard<'_, Outbox> {
        self.outbox.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Tells the uplink the durable end after a commit.
    pub fn publish_durable(&self, durable_end: u64) {
        self.durable.send_if_modified(|d| {
            let moved = *d != durable_end;
            *d = durable_end;
            moved
        });
    }

    /// Follows the durable end.
    pub fn subscribe(&self) -> watch::Receiver<u64> {
        self.durable.subscribe()
    }

    /// The outbox back, when no other holder is left (the uplink stopped).
    pub fn into_inner(self) -> Result<Outbox, SharedStore> {
        let SharedStore { outbox, durable } = self;
        match Arc::try_unwrap(outbox) {
            Ok(m) => Ok(m.into_inner().unwrap_or_else(|e| e.into_inner())),
            Err(outbox) => Err(SharedStore { outbox, durable }),
        }
    }
}

/// The control layer's side of the link: the uplink forwards the hub's desired state,
/// commands and log requests to `downlink`, and sends every message of `uplink` to the hub
/// (kept across reconnects: a message taken from the queue is held until it went out).
#[derive(Debug)]
pub struct ControlChannels {
    /// Desired, Command and FetchLogs from the hub.
    pub downlink: mpsc::Sender<Downlink>,
    /// CommandAck, CommandResult, Observed and Logs to the hub.
    pub uplink: mpsc::Receiver<Uplink>,
}

/// Messages queued between the control layer and the link, each way. The hub resends
/// commands and desired state after every welcome, so a full queue only delays.
pub const CONTROL_QUEUE: usize = 64;

/// A connected pair: the control layer's ends and the link's.
pub fn control_channels() -> (
    ControlChannels,
    mpsc::Receiver<Downlink>,
    mpsc::Sender<Uplink>,
) {
    let (down_tx, down_rx) = mpsc::channel(CONTROL_QUEUE);
    let (up_tx, up_rx) = mpsc::channel(CONTROL_QUEUE);
    (
        ControlChannels {
            downlink: down_tx,
            uplink: up_rx,
        },
        down_rx,
        up_tx,
    )
}
