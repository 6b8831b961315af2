//! The I/O shell of the uplink: connects (TCP with small send buffers and no Nagle, TLS,
//! WebSocket upgrade with the node's token), says hello, follows the welcome, and then
//! sends the live lane first and the backlog after it, within the bandwidth budget and the
//! send window of [`SyncSession`], until the connection ends; then backs off (jittered,
//! capped at `reconnect_max`) and connects again, forever, until shutdown.
//!
//! Invariants: a connection on which nothing arrived for `read_deadline` is dropped, even
//! while a send is blocked on a link that stopped reading (a half-open link is noticed
//! within the deadline, not after TCP's minutes); a message from the control layer is taken
//! off its queue only to be sent, and is sent again on the next connection unless the hub
//! answered a ping sent after it (so one written into a half-open link is not lost); the
//! node's health goes with every live update in a session whose version has it; the
//! store is acked only with what the hub acked. A hub that refuses the offered protocol
//! version is offered the next older one at once, down to the oldest this agent speaks,
//! and the version it welcomed is offered for the rest of this boot (docs/protocol.md,
//! "Evolution"). A downlink message the agent cannot take
//! (undecodable, or over [`MAX_MESSAGE_BYTES`]) is skipped and reported to the hub as an
//! unsolicited log line ([`UNSOLICITED_LOGS`]), and the session goes on; a message too
//! large even to be read ends the connection, is reported on the next one, and does not
//! reset the reconnect backoff, so a hub that keeps sending it cannot make a reconnect
//! loop.
//!
//! Measured once by hand (debug build, a loopback proxy throttled to 1 Mbit/s in front of
//! the test peer, a 200 000-reading backlog): live updates reached the peer 0.4-0.6 s after
//! they were made while the backlog drained, and the throttled link was ~100 % used, with
//! a budget of 250 kB/s and of 10 MB/s alike. The figures of record are the link-test
//! bench's `sync.live_age_s` and `sync.link_utilisation_pct`.

use std::collections::VecDeque;
use std::future::Future;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use aloft_protocol::sync::batch::{PREFERRED_ENCODING, encode_batch};
use aloft_protocol::sync::evolution::{HEALTH_VERSION, POWER_VERSION};
use aloft_protocol::sync::{
    BacklogReport, Batch, Downlink, Hello, LiveUpdate, LogBatch, LogLine, MAX_MESSAGE_BYTES,
    MAX_TEXT_BYTES, NodeHealth, OLDEST_PROTOCOL_VERSION, PROTOCOL_VERSION, RefusalCode,
    UNSOLICITED_LOGS, Uplink, bounded_text,
};
use aloft_protocol::{BootId, Record, StoreEpoch};
use aloft_store::FullPolicy;
use futures_util::{SinkExt, StreamExt};
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::{TcpSocket, TcpStream};
use tokio::sync::mpsc;
use tokio::time::Instant;
use tokio_tungstenite::WebSocketStream;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::http::{HeaderValue, Uri, header::AUTHORIZATION};
use tokio_tungstenite::tungstenite::protocol::WebSocketConfig;
use tokio_tungstenite::tungstenite::{self, Message};

use super::live::{self, LiveBoard};
use super::session::{
    Budget, ReadRequest, SessionError, SyncSession, WindowTuner, plan_batch, withhold,
};
use super::{ControlChannels, SharedStore, UplinkOptions};
use crate::metrics::Metrics;
use crate::metrics::uplink::ReconnectReason;
use crate::power::PowerGovernor;
use crate::supervisor::backoff::{Backoff, BackoffPolicy};

/// Socket send buffer asked of the kernel, bytes. What sits in it is behind the next live
/// update; the send window bounds the rest. 32 KiB is a quarter second at 1 Mbit/s.
const SEND_BUFFER_BYTES: u32 = 32 * 1024;

/// The send window starts at this much of a second at the budget's rate (at most
/// [`WINDOW_START_MAX_BYTES`]) and is then sized to the measured delivery rate so that a
/// live update waits at most [`QUEUE_TARGET`] behind backlog ([`WindowTuner`]): well under
/// the 2 s target for the live lane, and several round trips of Starlink plus the hub's
/// persist, so the link stays busy.
const WINDOW_SECONDS: f64 = 0.25;
const WINDOW_START_MAX_BYTES: u64 = 64 * 1024;
const QUEUE_TARGET: Duration = Duration::from_millis(500);
const WINDOW_MIN_BYTES: u64 = 16 * 1024;
const WINDOW_MAX_BYTES: u64 = 8 << 20;

/// Batch size aimed at: a quarter of the window, so acks free room steadily.
const BATCH_RECORDS_MIN: usize = 16;
const BATCH_RECORDS_MAX: usize = 4096;
/// Bytes per record assumed before the first batch measured it (a stored reading is
/// 30-50 bytes uncompressed).
const FIRST_BYTES_PER_RECORD: u64 = 48;

/// Control messages kept for a resend until the hub's pong confirms them.
const UNCONFIRMED_MAX: usize = 4 * super::CONTROL_QUEUE;

/// The first delay after a failed attempt; attempts are cheap, outages long.
const RECONNECT_INITIAL: Duration = Duration::from_millis(250);

/// The largest WebSocket message the agent reads off the link. Above
/// [`MAX_MESSAGE_BYTES`] so that a message a little over the cap is read whole, refused,
/// reported and skipped while the session goes on; a larger one ends the connection (it
/// cannot be skipped without reading it).
const DOWNLINK_READ_LIMIT: usize = 4 * MAX_MESSAGE_BYTES;

/// Why one connection ended.
#[derive(Debug, thiserror::Error)]
enum LinkError {
    #[error("nothing received within the read deadline")]
    Deadline,
    #[error("refused: {0}")]
    Refused(String),
    /// The hub refused the offered protocol version; the next connection offers `next`.
    #[error("hub refused protocol version {offered}; offering {next}")]
    OlderHub { offered: u16, next: u16 },
    #[error("closed by the hub")]
    Closed,
    /// The hub sent a message this agent must refuse, too large to skip.
    #[error("refused a message from the hub: {0}")]
    HubMessage(String),
    #[error("{0}")]
    Other(String),
}

impl LinkError {
    fn reason(&self) -> ReconnectReason {
        match self {
            LinkError::Deadline => ReconnectReason::Deadline,
            LinkError::Refused(_) | LinkError::OlderHub { .. } => ReconnectReason::Refused,
            LinkError::Closed => ReconnectReason::Closed,
            LinkError::HubMessage(_) | LinkError::Other(_) => ReconnectReason::Error,
        }
    }
}

impl From<tungstenite::Error> for LinkError {
    fn from(e: tungstenite::Error) -> Self {
        match e {
            tungstenite::Error::Http(response) => {
                LinkError::Refused(format!("HTTP {} at the upgrade", response.status()))
            }
            tungstenite::Error::ConnectionClosed | tungstenite::Error::AlreadyClosed => {
                LinkError::Closed
            }
            tungstenite::Error::Io(e) => io_error(&e),
            other => LinkError::Other(other.to_string()),
        }
    }
}

impl From<SessionError> for LinkError {
    fn from(e: SessionError) -> Self {
        LinkError::Other(e.to_string())
    }
}

fn io_error(e: &std::io::Error) -> LinkError {
    match e.kind() {
        std::io::ErrorKind::ConnectionRefused => LinkError::Refused(e.to_string()),
        std::io::ErrorKind::UnexpectedEof
        | std::io::ErrorKind::ConnectionReset
        | std::io::ErrorKind::BrokenPipe => LinkError::Closed,
        _ => LinkError::Other(e.to_string()),
    }
}

/// A byte stream the WebSocket runs over: TLS or (test benches) plain TCP.
trait Io: AsyncRead + AsyncWrite + Unpin + Send {}
impl<T: AsyncRead + AsyncWrite + Unpin + Send> Io for T {}

type Ws = WebSocketStream<Box<dyn Io>>;

/// What the reader task hands the session.
#[derive(Debug)]
enum Inbound {
    Message(Downlink),
    /// A message read whole but refused (why); the connection goes on.
    Refused(String),
    End(LinkError),
}

/// The report to the hub of a message the agent refused: an unsolicited log line, which
/// every hub can decode (one that predates it drops it unread).
fn refusal_report(why: &str) -> Uplink {
    Uplink::Logs(LogBatch {
        request: UNSOLICITED_LOGS,
        lines: vec![LogLine {
            time: live::stamp(),
            level: "ERROR".into(),
            sensor: None,
            message: bounded_text(
                &format!("refused a message from the hub: {why}"),
                MAX_TEXT_BYTES,
            ),
        }],
    })
}

/// The uplink: everything it needs across connections.
#[derive(Debug)]
pub struct HubLink {
    options: UplinkOptions,
    store: SharedStore,
    live: Arc<LiveBoard>,
    control: ControlChannels,
    metrics: Arc<Metrics>,
    boot: BootId,
    /// Control messages taken off the queue and not yet sent, oldest first.
    pending: VecDeque<Uplink>,
    /// Control messages sent on this connection that the hub has not yet been seen to
    /// receive, each with the nonce of the ping sent after it: the hub's pong of that ping
    /// proves it read the message (one ordered stream). What is left unconfirmed when the
    /// connection dies (written into a half-open link) is sent again on the next one; the
    /// hub takes a repeated command ack or result as the same one.
    unconfirmed: VecDeque<(u64, Uplink)>,
    control_open: bool,
    nonce: u64,
    /// The protocol version the next hello offers: [`PROTOCOL_VERSION`] until a hub
    /// refuses it.
    offer: u16,
    /// The power policy: the step in force for the node's health, and the upload budget
    /// it holds the link to.
    power: PowerGovernor,
}

impl HubLink {
    /// The uplink of this boot of the agent.
    pub fn new(
        options: UplinkOptions,
        store: SharedStore,
        live: Arc<LiveBoard>,
        control: ControlChannels,
        metrics: Arc<Metrics>,
        boot: BootId,
    ) -> Self {
        HubLink {
            options,
            store,
            live,
            control,
            metrics,
            boot,
            pending: VecDeque::new(),
            unconfirmed: VecDeque::new(),
            control_open: true,
            nonce: 0,
            offer: PROTOCOL_VERSION,
            power: PowerGovernor::inactive(),
        }
    }

    /// With the node's power policy: its step goes into the node's health (in sessions
    /// of [`POWER_VERSION`] and later) and its upload budget, when lower, holds the link.
    #[must_use]
    pub fn with_power(mut self, power: PowerGovernor) -> Self {
        self.power = power;
        self
    }

    /// Connects, syncs, and reconnects until `shutdown` completes.
    pub async fn run(mut self, shutdown: impl Future<Output = ()>) {
        tokio::pin!(shutdown);
        let policy =
            BackoffPolicy::new(RECONNECT_INITIAL, self.options.reconnect_max).with_jitter(0.5);
        let seed = u64::from_le_bytes(self.boot.0[..8].try_into().unwrap_or([0; 8]));
        let mut backoff = Backoff::new(policy, seed);
        loop {
            let started = Instant::now();
            let mut welcomed_at = None;
            let outcome = tokio::select! {
                () = &mut shutdown => break,
                r = self.connection(&mut welcomed_at) => r,
            };
            self.metrics.uplink.set_connected(false);
            while let Some((_, message)) = self.unconfirmed.pop_back() {
                self.pending.push_front(message);
            }
            let error = match outcome {
                Ok(()) => break,
                Err(e) => e,
            };
            self.metrics.uplink.reconnect(error.reason());
            if let LinkError::HubMessage(why) = &error {
                self.queue_report(why);
            }
            if let LinkError::OlderHub { offered, next } = error {
                // At most one step per version this agent speaks: no backoff needed.
                tracing::info!(
                    url = %self.options.url,
                    offered,
                    next,
                    "Hub refused the protocol version; offering an older one."
                );
                continue;
            }
            // docs/protocol.md 5: a session that reached its welcome starts the backoff
            // over, unless it ended on a refusal (of either side): the next session would
            // end the same way, and only the backoff keeps that from being a loop.
            if welcomed_at.is_some()
                && !matches!(error, LinkError::HubMessage(_) | LinkError::Refused(_))
            {
                backoff.reset();
            }
            let delay = backoff.next_delay(Duration::ZERO);
            tracing::warn!(
                url = %self.options.url,
                reason = error.reason().label(),
                error = %error,
                lasted_s = started.elapsed().as_secs_f64(),
                retry_in_s = delay.as_secs_f64(),
                "Link to the hub lost."
            );
            tokio::select! {
                () = &mut shutdown => break,
                () = tokio::time::sleep(delay) => {}
            }
        }
        tracing::info!("Uplink stopped.");
    }

    /// Queues the report of a refused hub message, once: a hub that sends the same bad
    /// message at every welcome must not grow the queue.
    fn queue_report(&mut self, why: &str) {
        let report = refusal_report(why);
        let same = |m: &Uplink| match (m, &report) {
            (Uplink::Logs(a), Uplink::Logs(b)) => {
                a.request == b.request
                    && a.lines
                        .iter()
                        .map(|l| &l.message)
                        .eq(b.lines.iter().map(|l| &l.message))
            }
            _ => false,
        };
        if !self.pending.iter().any(same) {
            self.pending.push_back(report);
        }
    }

    /// One connection, from TCP to its end.
    async fn connection(&mut self, welcomed_at: &mut Option<Instant>) -> Result<(), LinkError> {
        let deadline = self.options.read_deadline;
        let ws = tokio::time::timeout(deadline, connect(&self.options))
            .await
            .map_err(|_| LinkError::Deadline)??;
        let (mut sink, stream) = ws.split();

        // Hello from the store as it is now.
        let (hello, durable_end) = {
            let outbox = self.store.lock();
            (
                Hello {
                    protocol_version: self.offer,
                    node: self.options.node.clone(),
                    epoch: outbox.epoch(),
                    boot: self.boot,
                    agent_version: env!("CARGO_PKG_VERSION").to_string(),
                    first_unacked: outbox.first_unacked(),
                    durable_end: outbox.durable_end(),
                },
                outbox.durable_end(),
            )
        };
        let epoch = hello.epoch;
        let last_rx = Arc::new(AtomicU64::new(now_ns()));
        let mut out = Sender {
            sink: &mut sink,
            last_rx: Arc::clone(&last_rx),
            deadline,
            metrics: Arc::clone(&self.metrics),
            sent_bytes: 0,
        };
        out.send(&Uplink::Hello(hello)).await?;

        // The reader runs on its own so a send blocked on a dead link cannot keep the
        // deadline from being noticed, and the socket is drained while we send.
        let (inbound_tx, mut inbound) = mpsc::channel(64);
        let reader = tokio::spawn(read_loop(
            stream,
            self.offer,
            inbound_tx,
            Arc::clone(&last_rx),
            Arc::clone(&self.metrics),
        ));
        let _reader = AbortOnDrop(reader);

        let welcome = loop {
            let wait = until_deadline(&last_rx, deadline);
            match tokio::time::timeout(wait, inbound.recv()).await {
                Err(_) if expired(&last_rx, deadline) => return Err(LinkError::Deadline),
                Err(_) => {}
                Ok(None) => return Err(LinkError::Closed),
                Ok(Some(Inbound::End(e))) => return Err(e),
                Ok(Some(Inbound::Refused(why))) => return Err(LinkError::HubMessage(why)),
                Ok(Some(Inbound::Message(Downlink::Welcome(w)))) => break w,
                Ok(Some(Inbound::Message(Downlink::Refused {
                    code: RefusalCode::ProtocolVersion,
                    ..
                }))) if self.offer > OLDEST_PROTOCOL_VERSION => {
                    let offered = self.offer;
                    self.offer -= 1;
                    return Err(LinkError::OlderHub {
                        offered,
                        next: self.offer,
                    });
                }
                Ok(Some(Inbound::Message(Downlink::Refused { code, message }))) => {
                    if code == RefusalCode::ProtocolVersion {
                        // Refused even the oldest: a hub that no longer speaks it. Offer
                        // this build's version again after the backoff.
                        self.offer = PROTOCOL_VERSION;
                    }
                    return Err(LinkError::Refused(format!("{code:?}: {message}")));
                }
                Ok(Some(Inbound::Message(Downlink::Ping { nonce }))) => {
                    out.send(&Uplink::Pong { nonce }).await?;
                }
                Ok(Some(Inbound::Message(other))) => {
                    return Err(LinkError::Other(format!(
                        "expected a welcome, got {}",
                        downlink_name(&other)
                    )));
                }
            }
        };
        let start = tokio::time::Instant::now();
        let clock = || start.elapsed();
        let mut tuner = WindowTuner::new(
            window_bytes(self.options.upload_bytes_per_s).min(WINDOW_START_MAX_BYTES),
            WINDOW_MIN_BYTES,
            window_bytes(self.options.upload_bytes_per_s).max(WINDOW_MIN_BYTES),
            QUEUE_TARGET,
            clock(),
        );
        let mut bytes_per_record = FIRST_BYTES_PER_RECORD;
        let mut session = SyncSession::new(
            epoch,
            durable_end,
            tuner.window(),
            batch_records(tuner.window(), bytes_per_record),
        )
        .offering(self.offer);
        let store_ack = session.welcome(&welcome)?;
        *welcomed_at = Some(Instant::now());
        self.metrics.uplink.set_connected(true);
        tracing::info!(
            url = %self.options.url,
            watermark = ?welcome.watermark,
            durable_end,
            protocol_version = session.version(),
            "Connected to the hub."
        );
        if let Some(up_to) = store_ack {
            self.ack_store(up_to).await?;
        }

        // Live lane first: the operator sees now before any backlog.
        let mut live_version = None;
        self.send_live(&mut out, &mut live_version, session.version())
            .await?;

        let mut durable = self.store.subscribe();
        session.durable(*durable.borrow_and_update());
        // The power step may hold the link below the configured budget.
        let mut upload_cap = self.power.upload_cap();
        let configured = self.options.upload_bytes_per_s;
        let rate_under = |cap: Option<u64>| cap.map_or(configured, |c| c.min(configured));
        let budget_at = |rate: u64, now| Budget::new(rate, (rate / 4).max(WINDOW_MIN_BYTES), now);
        let mut budget = budget_at(rate_under(*upload_cap.borrow_and_update()), clock());
        let mut charged = out.sent_bytes;
        let mut keepalive = tokio::time::interval(self.options.keepalive);
        keepalive.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        keepalive.reset();
        let mut live_tick = tokio::time::interval(self.options.live_interval);
        live_tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        live_tick.reset();
        let live = Arc::clone(&self.live);

        loop {
            // A control message held from a failed send goes first.
            while let Some(message) = self.pending.pop_front() {
                if let Err(e) = out.send(&message).await {
                    self.pending.push_front(message);
                    return Err(e);
                }
                self.nonce = self.nonce.wrapping_add(1);
                if self.unconfirmed.len() >= UNCONFIRMED_MAX {
                    // A hub that never answers pings: bounded memory beats a resend.
                    tracing::warn!(
                        "Hub answers no pings; an unconfirmed control message is dropped."
                    );
                    self.unconfirmed.pop_front();
                }
                self.unconfirmed.push_back((self.nonce, message));
                out.send(&Uplink::Ping { nonce: self.nonce }).await?;
            }
            // Everything sent counts against the budget (live, control, pings), not only
            // batches: the budget is what the video stream can rely on.
            budget.spend(out.sent_bytes.saturating_sub(charged), clock());
            charged = out.sent_bytes;
            let request = session.next_read();
            let budget_wait = budget.wait(clock());
            let control_ready = self.control_open;
            tokio::select! {
                biased;
                message = inbound.recv() => match message {
                    None => return Err(LinkError::Closed),
                    Some(Inbound::End(e)) => return Err(e),
                    Some(Inbound::Refused(why)) => {
                        tracing::warn!(reason = %why, "Message from the hub refused and skipped; reported to the hub.");
                        self.queue_report(&why);
                    }
                    Some(Inbound::Message(m)) => {
                        self.handle(m, &mut session, &mut out).await?;
                        let window = tuner.acked(session.acked_bytes(), clock());
                        if window != session.window() {
                            session.set_window(window);
                            session.set_batch_records(batch_records(window, bytes_per_record));
                        }
                    }
                },
                () = tokio::time::sleep(until_deadline(&last_rx, deadline)) => {
                    if expired(&last_rx, deadline) {
                        return Err(LinkError::Deadline);
                    }
                }
                _ = keepalive.tick() => {
                    self.nonce = self.nonce.wrapping_add(1);
                    out.send(&Uplink::Ping { nonce: self.nonce }).await?;
                }
                () = live.state_changed() => {
                    self.send_live(&mut out, &mut live_version, session.version()).await?;
                    live_tick.reset();
                }
                _ = live_tick.tick() => {
                    self.send_live(&mut out, &mut live_version, session.version()).await?;
                }
                changed = upload_cap.changed() => {
                    if changed.is_ok() {
                        let rate = rate_under(*upload_cap.borrow_and_update());
                        tracing::info!(upload_bytes_per_s = rate, "Upload budget follows the power step.");
                        budget = budget_at(rate, clock());
                    }
                }
                message = self.control.uplink.recv(), if control_ready => match message {
                    Some(m) => self.pending.push_back(m),
                    None => self.control_open = false,
                },
                changed = durable.changed() => {
                    if changed.is_ok() {
                        session.durable(*durable.borrow_and_update());
                    }
                }
                () = tokio::time::sleep(budget_wait), if request.is_some() => {
                    if let Some(request) = request {
                        let sent = self.send_batch(request, epoch, &mut session, &mut out).await?;
                        if let Some((bytes, records)) = sent
                            && records > 0
                        {
                            bytes_per_record = (bytes / records as u64).max(1);
                            session.set_batch_records(batch_records(session.window(), bytes_per_record));
                        }
                    }
                }
            }
        }
    }

    async fn handle(
        &mut self,
        message: Downlink,
        session: &mut SyncSession,
        out: &mut Sender<'_>,
    ) -> Result<(), LinkError> {
        match message {
            Downlink::Ack { epoch, watermark } => {
                let before = session.hub_next();
                let acked = match session.ack(epoch, watermark) {
                    // A stray ack of another epoch says nothing about this one; dropping
                    // the connection for it would only loop.
                    Err(SessionError::WrongEpoch) => {
                        tracing::warn!(watermark, "Ack for another store epoch ignored.");
                        None
                    }
                    other => other?,
                };
                if let Some(up_to) = acked {
                    self.metrics
                        .uplink
                        .acked(up_to.saturating_add(1).saturating_sub(before));
                    self.ack_store(up_to).await?;
                }
            }
            Downlink::Ping { nonce } => out.send(&Uplink::Pong { nonce }).await?,
            Downlink::Pong { nonce } => {
                while self.unconfirmed.front().is_some_and(|(n, _)| *n <= nonce) {
                    self.unconfirmed.pop_front();
                }
            }
            Downlink::Refused { code, message } => {
                return Err(LinkError::Refused(format!("{code:?}: {message}")));
            }
            Downlink::Welcome(_) => return Err(SessionError::Unexpected("second welcome").into()),
            control
            @ (Downlink::Desired(_) | Downlink::Command(_) | Downlink::FetchLogs { .. }) => {
                if self.control.downlink.send(control).await.is_err() {
                    tracing::debug!("No control layer; a control message from the hub is dropped.");
                }
            }
            other => {
                tracing::debug!(
                    message = downlink_name(&other),
                    "Unknown message from the hub ignored."
                );
            }
        }
        Ok(())
    }

    async fn ack_store(&self, up_to: u64) -> Result<(), LinkError> {
        let store = self.store.clone();
        tokio::task::spawn_blocking(move || store.lock().ack(up_to))
            .await
            .map_err(|e| LinkError::Other(format!("store ack task: {e}")))?
            .map_err(|e| LinkError::Other(format!("store ack: {e}")))
    }

    /// Sends the live update, and the node's health when the session's version has it.
    async fn send_live(
        &self,
        out: &mut Sender<'_>,
        version: &mut Option<u64>,
        session_version: u16,
    ) -> Result<(), LinkError> {
        let snapshot = self.live.snapshot(*version);
        let (stats, policy) = {
            let store = self.store.lock();
            (store.stats(), store.options().policy)
        };
        let backlog = {
            let records = stats.durable_end.saturating_sub(stats.first_unacked);
            let held = stats
                .durable_end
                .saturating_sub(stats.oldest_seq.unwrap_or(stats.durable_end));
            BacklogReport {
                records,
                // Records are of similar size: the unsent share of the store's bytes.
                bytes: stats
                    .disk_bytes
                    .saturating_mul(records.min(held))
                    .checked_div(held)
                    .unwrap_or(0),
                oldest_age_s: self
                    .metrics
                    .store
                    .oldest_unsent_age()
                    .map(|d| d.as_secs_f64()),
            }
        };
        out.send(&Uplink::Live(LiveUpdate {
            time: live::stamp(),
            readings: snapshot.readings,
            sensors: snapshot.sensors,
            backlog,
        }))
        .await?;
        *version = Some(snapshot.version);
        if session_version >= HEALTH_VERSION {
            let (gnss_models, clock_trusted) = self.live.health();
            out.send(&Uplink::Health(NodeHealth {
                time: live::stamp(),
                clock_trusted,
                store_bytes: stats.disk_bytes,
                store_max_bytes: stats.max_bytes,
                store_policy: policy_name(policy).to_owned(),
                gnss_models,
                power: if session_version >= POWER_VERSION {
                    self.power.report()
                } else {
                    None
                },
            }))
            .await?;
        }
        Ok(())
    }

    /// Reads, encodes and sends one batch; its wire bytes and records, if one went.
    async fn send_batch(
        &self,
        request: ReadRequest,
        epoch: StoreEpoch,
        session: &mut SyncSession,
        out: &mut Sender<'_>,
    ) -> Result<Option<(u64, usize)>, LinkError> {
        let store = self.store.clone();
        let read = tokio::task::spawn_blocking(move || {
            let outbox = store.lock();
            let durable_end = outbox.durable_end();
            outbox
                .read_from(request.from, request.max_records)
                .map(|records| (records, durable_end))
        })
        .await
        .map_err(|e| LinkError::Other(format!("store read task: {e}")))?
        .map_err(|e| LinkError::Other(format!("store read: {e}")))?;
        let (mut records, durable_end) = read;
        session.durable(durable_end);
        let seqs: Vec<u64> = records.iter().map(|(s, _)| *s).collect();
        let Some((first, last)) = plan_batch(request, &seqs, durable_end) else {
            return Ok(None);
        };
        let withheld = withhold(&mut records, session.version());
        if withheld > 0 {
            tracing::warn!(
                first,
                last,
                withheld,
                protocol_version = session.version(),
                "Records this hub's protocol version cannot decode were left out of the batch."
            );
        }
        let count = records.len();
        let message = encode(epoch, first, last, &records)?;
        let bytes = message.len() as u64;
        out.send_bytes(message).await?;
        session.sent(first, last, bytes);
        self.metrics.uplink.records_sent(count);
        tracing::trace!(first, last, records = count, bytes, "Batch sent.");
        Ok(Some((bytes, count)))
    }
}

/// A full-store policy as the agent's config spells it.
fn policy_name(policy: FullPolicy) -> &'static str {
    match policy {
        FullPolicy::DropOldest => "drop-oldest",
        FullPolicy::Decimate => "decimate",
        FullPolicy::RejectNew => "reject-new",
        // A policy the store adds later is named here when the config learns it.
        _ => "other",
    }
}

fn encode(
    epoch: StoreEpoch,
    first: u64,
    last: u64,
    records: &[(u64, Record)],
) -> Result<Vec<u8>, LinkError> {
    let payload = encode_batch(PREFERRED_ENCODING, records)
        .map_err(|e| LinkError::Other(format!("batch encoding: {e}")))?;
    let message = Uplink::Batch(Batch {
        epoch,
        first,
        last,
        encoding: PREFERRED_ENCODING,
        payload,
    })
    .encode();
    if message.len() > MAX_MESSAGE_BYTES {
        return Err(LinkError::Other(format!(
            "batch {first}..={last} of {} bytes is over the message cap",
            message.len()
        )));
    }
    Ok(message)
}

/// The send side of a connection, with the read deadline applied to every send.
struct Sender<'a> {
    sink: &'a mut futures_util::stream::SplitSink<Ws, Message>,
    last_rx: Arc<AtomicU64>,
    deadline: Duration,
    metrics: Arc<Metrics>,
    /// Bytes of messages sent on this connection.
    sent_bytes: u64,
}

impl Sender<'_> {
    async fn send(&mut self, message: &Uplink) -> Result<(), LinkError> {
        self.send_bytes(message.encode()).await
    }

    async fn send_bytes(&mut self, bytes: Vec<u8>) -> Result<(), LinkError> {
        let len = bytes.len();
        let send = self.sink.send(Message::binary(bytes));
        tokio::pin!(send);
        loop {
            tokio::select! {
                r = &mut send => {
                    r?;
                    self.metrics.uplink.sent(len);
                    self.sent_bytes = self.sent_bytes.saturating_add(len as u64);
                    return Ok(());
                }
                () = tokio::time::sleep(until_deadline(&self.last_rx, self.deadline)) => {
                    if expired(&self.last_rx, self.deadline) {
                        return Err(LinkError::Deadline);
                    }
                }
            }
        }
    }
}

/// Reads the hub's messages as a hub of the `offered` version sends them (the welcome names
/// that version, or the connection ends).
async fn read_loop(
    mut stream: futures_util::stream::SplitStream<Ws>,
    offered: u16,
    inbound: mpsc::Sender<Inbound>,
    last_rx: Arc<AtomicU64>,
    metrics: Arc<Metrics>,
) {
    let end = loop {
        let Some(frame) = stream.next().await else {
            break LinkError::Closed;
        };
        last_rx.store(now_ns(), Ordering::Relaxed);
        let message = match frame {
            Ok(Message::Binary(bytes)) => {
                metrics.uplink.received(bytes.len());
                match Downlink::decode_from(&bytes, offered) {
                    Ok(m) => Inbound::Message(m),
                    // One WebSocket message is one protocol message: skipping it leaves
                    // the stream in step (a newer hub's message, an oversized one).
                    Err(e) => Inbound::Refused(e.to_string()),
                }
            }
            Ok(Message::Close(_)) => break LinkError::Closed,
            // WebSocket pings are answered by tungstenite; they count as life.
            Ok(_) => continue,
            Err(tungstenite::Error::Capacity(e)) => {
                break LinkError::HubMessage(format!(
                    "{e} (this agent reads at most {DOWNLINK_READ_LIMIT} bytes; the protocol's cap is {MAX_MESSAGE_BYTES})"
                ));
            }
            Err(e) => break e.into(),
        };
        if inbound.send(message).await.is_err() {
            return;
        }
    };
    let _ = inbound.send(Inbound::End(end)).await;
}

/// Aborts the reader when the connection's scope ends.
struct AbortOnDrop(tokio::task::JoinHandle<()>);

impl Drop for AbortOnDrop {
    fn drop(&mut self) {
        self.0.abort();
    }
}

/// TCP (small send buffer, no Nagle), TLS for `wss://`, the upgrade with the token.
async fn connect(options: &UplinkOptions) -> Result<Ws, LinkError> {
    let uri: Uri = options
        .url
        .parse()
        .map_err(|e| LinkError::Other(format!("hub URL {}: {e}", options.url)))?;
    let tls = match uri.scheme_str() {
        Some("wss") => true,
        Some("ws") => false,
        _ => {
            return Err(LinkError::Other(format!(
                "hub URL {} is not ws(s)://",
                options.url
            )));
        }
    };
    let host = uri
        .host()
        .ok_or_else(|| LinkError::Other(format!("hub URL {} names no host", options.url)))?
        .trim_start_matches('[')
        .trim_end_matches(']')
        .to_string();
    let port = uri.port_u16().unwrap_or(if tls { 443 } else { 80 });
    let tcp = tcp_connect(&host, port).await?;
    let io: Box<dyn Io> = if tls {
        let name = rustls_pki_types::ServerName::try_from(host.clone())
            .map_err(|e| LinkError::Other(format!("hub host {host}: {e}")))?;
        let stream = tokio_rustls::TlsConnector::from(Arc::clone(&options.tls))
            .connect(name, tcp)
            .await
            .map_err(|e| LinkError::Other(format!("TLS: {e}")))?;
        Box::new(stream)
    } else {
        Box::new(tcp)
    };
    let mut request = options
        .url
        .as_str()
        .into_client_request()
        .map_err(LinkError::from)?;
    let bearer = HeaderValue::from_str(&format!("Bearer {}", options.token))
        .map_err(|_| LinkError::Other("the token is not a valid header value".into()))?;
    request.headers_mut().insert(AUTHORIZATION, bearer);
    let config = WebSocketConfig::default()
        .max_message_size(Some(DOWNLINK_READ_LIMIT))
        .max_frame_size(Some(DOWNLINK_READ_LIMIT));
    let (ws, _response) =
        tokio_tungstenite::client_async_with_config(request, io, Some(config)).await?;
    Ok(ws)
}

async fn tcp_connect(host: &str, port: u16) -> Result<TcpStream, LinkError> {
    let addrs = tokio::net::lookup_host((host, port))
        .await
        .map_err(|e| LinkError::Other(format!("resolving {host}: {e}")))?;
    let mut last = LinkError::Other(format!("{host} resolves to no address"));
    for addr in addrs {
        let socket = if addr.is_ipv4() {
            TcpSocket::new_v4()
        } else {
            TcpSocket::new_v6()
        };
        let attempt = async {
            let socket = socket?;
            socket.set_send_buffer_size(SEND_BUFFER_BYTES)?;
            let stream = socket.connect(addr).await?;
            stream.set_nodelay(true)?;
            Ok::<_, std::io::Error>(stream)
        };
        match attempt.await {
            Ok(stream) => return Ok(stream),
            Err(e) => last = io_error(&e),
        }
    }
    Err(last)
}

fn now_ns() -> u64 {
    crate::clock::monotonic_ns()
}

fn expired(last_rx: &AtomicU64, deadline: Duration) -> bool {
    let since = now_ns().saturating_sub(last_rx.load(Ordering::Relaxed));
    u128::from(since) >= deadline.as_nanos()
}

/// Time left before the deadline passes (at least a millisecond, so a loop re-checks
/// rather than spins).
fn until_deadline(last_rx: &AtomicU64, deadline: Duration) -> Duration {
    let since = Duration::from_nanos(now_ns().saturating_sub(last_rx.load(Ordering::Relaxed)));
    deadline.saturating_sub(since).max(Duration::from_millis(1))
}

/// The send window for a budget of `bytes_per_s`.
pub fn window_bytes(bytes_per_s: u64) -> u64 {
    ((bytes_per_s as f64 * WINDOW_SECONDS) as u64).clamp(WINDOW_MIN_BYTES, WINDOW_MAX_BYTES)
}

fn batch_records(window: u64, bytes_per_record: u64) -> usize {
    let records = window / 4 / bytes_per_record.max(1);
    usize::try_from(records)
        .unwrap_or(BATCH_RECORDS_MAX)
        .clamp(BATCH_RECORDS_MIN, BATCH_RECORDS_MAX)
}

fn downlink_name(message: &Downlink) -> &'static str {
    match message {
        Downlink::Welcome(_) => "welcome",
        Downlink::Ack { .. } => "ack",
        Downlink::Refused { .. } => "refused",
        Downlink::Ping { .. } => "ping",
        Downlink::Pong { .. } => "pong",
        Downlink::Desired(_) => "desired",
        Downlink::Command(_) => "command",
        Downlink::FetchLogs { .. } => "fetch-logs",
        _ => "unknown",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_window_is_a_quarter_second_of_budget_within_bounds() {
        assert_eq!(window_bytes(250_000), 62_500);
        assert_eq!(window_bytes(1_000), WINDOW_MIN_BYTES);
        assert_eq!(window_bytes(u64::MAX), WINDOW_MAX_BYTES);
    }

    #[test]
    fn batches_aim_at_a_quarter_of_the_window() {
        assert_eq!(batch_records(64_000, 40), 400);
        assert_eq!(batch_records(64_000, 100_000), BATCH_RECORDS_MIN);
        assert_eq!(batch_records(8 << 20, 1), BATCH_RECORDS_MAX);
    }
}
