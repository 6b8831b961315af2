//! One node's session over its WebSocket, after the upgrade authenticated its token.
//!
//! Protocol (docs/protocol.md): the first message must be a hello of this protocol
//! version naming the token's node; the hub answers with a welcome holding its watermark
//! for the hello's epoch, then whatever the control layer wants sent. Then: batches are
//! checked, persisted and acked with the watermark; live updates go to the registry;
//! pings are answered; control messages go to the control layer; messages pushed through
//! [`crate::Sessions::push`] are sent.
//!
//! Invariants:
//! - Nothing is stored from a session whose hello was not accepted, and a batch is stored
//!   whole or not at all (one transaction); an ack is sent only after its commit.
//! - Any bad input (undecodable, oversized, a batch that inflates past the cap or
//!   contradicts its range, a message out of place) is answered with
//!   `Downlink::Refused { code }` and the connection is closed; other sessions never notice.
//! - A session that hears nothing for [`IDLE_DEADLINE`], or whose send stalls for
//!   [`SEND_DEADLINE`], ends (half-open links).
//! - Revoking the session's token or deleting its node ends the session at once with
//!   `Refused { WrongNode }` and the reason; no batch is stored or acked after that, and a
//!   batch of a deleted node is never stored (the node's row is checked in the batch's own
//!   transaction).
//! - Sequence numbers are below 2^63 (the store's signed 64-bit integers): a batch reaching
//!   2^63 is refused as `Malformed` and nothing of it is stored.
//! - Batches are persisted in arrival order by one persister task per session, while the
//!   session reads and decodes the next ([`PIPELINE`] at most waiting); acks go out in the
//!   same order.

use std::sync::Arc;
use std::time::Duration;

use aloft_protocol::sync::batch::{BatchError, DEFAULT_BATCH_LIMITS, decode_batch};
use aloft_protocol::sync::{
    Batch, DecodeError, Downlink, Hello, MAX_MESSAGE_BYTES, OLDEST_PROTOCOL_VERSION,
    PROTOCOL_VERSION, RefusalCode, SensorReport, Uplink, Welcome, evolution, hello_version,
};
use axum::extract::ws::{Message, WebSocket};
use tokio::sync::{mpsc, watch};
use tokio::time::Instant;

use crate::Hub;
use crate::clock::now_utc_ns;
use crate::nodes::connected::{Attached, SessionSignal};
use crate::nodes::control_seam::NodeControl;
use crate::nodes::registry::HealthKey;
use crate::storage::streams::{MAX_SEQ, StorageError};

/// How long a new connection may take to say hello.
pub const HELLO_DEADLINE: Duration = Duration::from_secs(30);
/// A session that hears nothing (not even a ping) for this long is closed
/// (docs/protocol.md: the hub's session silence limit). The agent pings every 15 s by
/// default.
pub const IDLE_DEADLINE: Duration = Duration::from_secs(60);
/// Batches decoded and waiting for the persister, per session: reading and decoding the
/// next batch overlaps persisting the previous one, and no more than this waits.
pub const PIPELINE: usize = 2;
/// A send that does not complete within this ends the session (a half-open peer).
pub const SEND_DEADLINE: Duration = Duration::from_secs(30);
/// How often the hub pings an idle session.
pub const PING_INTERVAL: Duration = Duration::from_secs(15);

/// Why a session ended with a refusal.
#[derive(Debug)]
struct Refusal {
    code: RefusalCode,
    message: String,
}

impl Refusal {
    fn new(code: RefusalCode, message: impl Into<String>) -> Refusal {
        Refusal {
            code,
            message: message.into(),
        }
    }
}

fn refusal_of_decode(e: &DecodeError) -> Refusal {
    match e {
        DecodeError::TooLarge { .. } => Refusal::new(RefusalCode::TooLarge, e.to_string()),
        _ => Refusal::new(RefusalCode::Malformed, e.to_string()),
    }
}

/// Runs a session to its end. `node` is the authenticated token's node.
pub async fn run(
    hub: Hub,
    control: Arc<dyn NodeControl>,
    node: String,
    token: String,
    mut socket: WebSocket,
    mut shutdown: watch::Receiver<bool>,
) {
    let hello =
        match tokio::time::timeout(HELLO_DEADLINE, receive_hello(&hub, &node, &mut socket)).await {
            Ok(Ok(Some(hello))) => hello,
            Ok(Ok(None)) => return,
            Ok(Err(refusal)) => {
                refuse(&hub, &node, &mut socket, refusal).await;
                return;
            }
            Err(_) => {
                tracing::info!(node, "No hello within the deadline; closing.");
                let _ = socket.send(Message::Close(None)).await;
                return;
            }
        };
    let epoch = hello.epoch;
    let watermark = {
        let streams = hub.streams.clone();
        let node = node.clone();
        tokio::task::spawn_blocking(move || streams.watermark(&node, epoch)).await
    };
    let watermark = match watermark {
        Ok(Ok(w)) => w,
        Ok(Err(e)) => {
            tracing::error!(node, error = %e, "Reading the watermark failed.");
            refuse(
                &hub,
                &node,
                &mut socket,
                Refusal::new(
                    RefusalCode::Unavailable,
                    "the hub cannot read its store; try again later",
                ),
            )
            .await;
            return;
        }
        Err(e) => {
            tracing::error!(node, error = %e, "Reading the watermark failed.");
            return;
        }
    };
    let mut attached = hub.sessions.attach(&node, &token);
    // A revocation between the upgrade's authentication and the attach above found no
    // session to end: look again now that this one can be ended.
    match hub.tokens.is_active(&token) {
        Ok(true) => {}
        Ok(false) => {
            hub.sessions.detach(&node, attached.id);
            refuse(
                &hub,
                &node,
                &mut socket,
                Refusal::new(
                    RefusalCode::WrongNode,
                    format!("token {token} was revoked; this session ends"),
                ),
            )
            .await;
            return;
        }
        Err(e) => tracing::warn!(node, error = %e, "Could not re-check the session's token."),
    }
    if let Err(e) = hub.registry.session_started(&node, &hello) {
        tracing::warn!(node, error = %e, "Could not record the session start.");
    }
    hub.sessions.live_changed();
    tracing::info!(
        node,
        session = attached.id,
        epoch = %crate::clock::hex(&epoch.0),
        watermark = ?watermark,
        first_unacked = hello.first_unacked,
        durable_end = hello.durable_end,
        agent_version = %hello.agent_version,
        "Session started."
    );
    let welcome = Downlink::Welcome(Welcome {
        protocol_version: hello.protocol_version,
        epoch,
        watermark,
        server_utc_ns: now_utc_ns(),
    });
    let mut outcome = send(&hub, &node, &mut socket, &welcome).await;
    if outcome.is_ok() {
        for message in control.on_connect(&node) {
            let message = evolution::downlink_for(message, hello.protocol_version);
            outcome = send(&hub, &node, &mut socket, &message).await;
            if outcome.is_err() {
                break;
            }
        }
    }
    if outcome.is_ok() {
        serve(
            &hub,
            &control,
            &node,
            (&hello, watermark),
            &mut socket,
            &mut attached,
            &mut shutdown,
        )
        .await;
    }
    if hub.sessions.detach(&node, attached.id) {
        if let Err(e) = hub.registry.session_ended(&node) {
            tracing::warn!(node, error = %e, "Could not record the session end.");
        }
        hub.sessions.live_changed();
    }
    tracing::info!(node, session = attached.id, "Session ended.");
}

/// The first message: `Ok(None)` if the peer went away before saying anything.
async fn receive_hello(
    hub: &Hub,
    node: &str,
    socket: &mut WebSocket,
) -> Result<Option<Hello>, Refusal> {
    loop {
        let bytes = match socket.recv().await {
            None => return Ok(None),
            Some(Err(e)) => {
                tracing::info!(node, error = %e, "Connection failed before hello.");
                return Ok(None);
            }
            Some(Ok(Message::Binary(bytes))) => bytes,
            Some(Ok(Message::Ping(_) | Message::Pong(_))) => continue,
            Some(Ok(Message::Close(_))) => return Ok(None),
            Some(Ok(Message::Text(_))) => {
                return Err(Refusal::new(
                    RefusalCode::Malformed,
                    "text message: the protocol speaks binary messages only",
                ));
            }
        };
        hub.registry.traffic(node, bytes.len() as u64, 0);
        if bytes.len() > MAX_MESSAGE_BYTES {
            return Err(Refusal::new(
                RefusalCode::TooLarge,
                format!(
                    "message of {} bytes is over the {MAX_MESSAGE_BYTES}-byte cap",
                    bytes.len()
                ),
            ));
        }
        // docs/protocol.md, "Evolution": an offer from the oldest version to this hub's is
        // welcomed as offered; the agent offers one less after any other's refusal.
        let offered = hello_version(&bytes);
        if let Some(version) = offered
            && !evolution::welcomes(version)
        {
            return Err(Refusal::new(
                RefusalCode::ProtocolVersion,
                format!(
                    "protocol version {version} is not spoken here; this hub speaks {OLDEST_PROTOCOL_VERSION} to {PROTOCOL_VERSION}"
                ),
            ));
        }
        let decoded = match offered {
            Some(version) => Uplink::decode_from(&bytes, version),
            None => Uplink::decode(&bytes),
        };
        let hello = match decoded {
            Ok(Uplink::Hello(hello)) => hello,
            Ok(_) => {
                return Err(Refusal::new(
                    RefusalCode::Unexpected,
                    "the first message of a session must be a hello",
                ));
            }
            Err(e) => return Err(refusal_of_decode(&e)),
        };
        if hello.node != node {
            // The hello's name is the agent's to choose: shown bounded and escaped, and
            // said to break the grammar when it does (the token's node may be one made
            // before the grammar was enforced: that one is still served).
            let problem = crate::nodes::registry::check_name("node", &hello.node)
                .err()
                .map_or(String::new(), |e| format!(" ({e})"));
            return Err(Refusal::new(
                RefusalCode::WrongNode,
                format!(
                    "hello names node {} but the token is node {node:?}'s{problem}",
                    crate::nodes::registry::shown_name(&hello.node)
                ),
            ));
        }
        return Ok(Some(hello));
    }
}

async fn serve(
    hub: &Hub,
    control: &Arc<dyn NodeControl>,
    node: &str,
    (hello, welcome_watermark): (&Hello, Option<u64>),
    socket: &mut WebSocket,
    attached: &mut Attached,
    shutdown: &mut watch::Receiver<bool>,
) {
    let Attached {
        rx: signals, end, ..
    } = attached;
    let (to_persist, mut persisted) = start_persister(hub.clone(), node.to_owned(), end.clone());
    let mut last_heard = Instant::now();
    let mut ping = tokio::time::interval_at(Instant::now() + PING_INTERVAL, PING_INTERVAL);
    let mut nonce = 0u64;
    let mut seen = Seen {
        acked: welcome_watermark.map(|w| (hello.epoch, w)),
        ..Seen::default()
    };
    loop {
        let idle = tokio::time::sleep_until(last_heard + IDLE_DEADLINE);
        tokio::select! {
            received = socket.recv() => {
                let bytes = match received {
                    None | Some(Ok(Message::Close(_))) => return,
                    Some(Err(e)) => {
                        tracing::info!(node, error = %e, "Connection failed.");
                        return;
                    }
                    Some(Ok(Message::Ping(_) | Message::Pong(_))) => {
                        last_heard = Instant::now();
                        continue;
                    }
                    Some(Ok(Message::Text(_))) => {
                        refuse(hub, node, socket, Refusal::new(RefusalCode::Malformed, "text message: the protocol speaks binary messages only")).await;
                        return;
                    }
                    Some(Ok(Message::Binary(bytes))) => bytes,
                };
                last_heard = Instant::now();
                hub.registry.traffic(node, bytes.len() as u64, 0);
                match handle(hub, control, node, hello.protocol_version, &bytes, &mut seen) {
                    Ok(Action::Reply(Some(reply))) => {
                        if send(hub, node, socket, &reply).await.is_err() {
                            return;
                        }
                    }
                    Ok(Action::Reply(None)) => {}
                    // Waits only while PIPELINE batches are already queued: backpressure.
                    Ok(Action::Persist(batch)) => {
                        let epoch = hello.epoch;
                        let decoded = tokio::task::spawn_blocking(move || check_batch(epoch, batch))
                            .await
                            .unwrap_or_else(|e| Err(Refusal::new(RefusalCode::Unavailable, format!("the hub failed: {e}"))));
                        match decoded {
                            Ok(batch) => {
                                if to_persist.send(batch).await.is_err() {
                                    return;
                                }
                            }
                            Err(refusal) => {
                                refuse(hub, node, socket, refusal).await;
                                return;
                            }
                        }
                    }
                    Err(refusal) => {
                        refuse(hub, node, socket, refusal).await;
                        return;
                    }
                }
            }
            persisted = persisted.recv() => match persisted {
                Some(Ok(ack)) => {
                    if let Downlink::Ack { watermark, .. } = &ack {
                        let newest = seen.acked.map_or(*watermark, |(_, a)| a.max(*watermark));
                        seen.acked = Some((hello.epoch, newest));
                    }
                    if send(hub, node, socket, &ack).await.is_err() {
                        return;
                    }
                }
                Some(Err(refusal)) => {
                    refuse(hub, node, socket, refusal).await;
                    return;
                }
                None => return,
            },
            signal = signals.recv() => match signal {
                Some(SessionSignal::Send(message)) => {
                    // Only what the session's version decodes (docs/protocol.md, "Evolution").
                    let message = evolution::downlink_for(message, hello.protocol_version);
                    if send(hub, node, socket, &message).await.is_err() {
                        return;
                    }
                }
                Some(SessionSignal::Replaced) | None => {
                    refuse(hub, node, socket, Refusal::new(RefusalCode::Replaced, "a newer session of this node replaced this one")).await;
                    return;
                }
            },
            Ok(()) = end.changed() => {
                let reason = end.borrow_and_update().clone();
                if let Some(reason) = reason {
                    refuse(hub, node, socket, Refusal::new(RefusalCode::WrongNode, reason)).await;
                    return;
                }
            }
            _ = ping.tick() => {
                nonce = nonce.wrapping_add(1);
                if send(hub, node, socket, &Downlink::Ping { nonce }).await.is_err() {
                    return;
                }
            }
            () = idle => {
                tracing::info!(node, deadline_s = IDLE_DEADLINE.as_secs(), "Nothing heard within the deadline; closing.");
                return;
            }
            _ = shutdown.changed() => {
                let _ = socket.send(Message::Close(None)).await;
                return;
            }
        }
    }
}

/// What to do after one message of an established session.
#[derive(Debug)]
enum Action {
    /// Send this reply, if any.
    Reply(Option<Downlink>),
    /// Check and decode this batch (off the async threads: a compressed batch may inflate
    /// to megabytes), then hand it to the persister.
    Persist(Batch),
}

/// What a session has told and been told, that later messages are judged against.
#[derive(Debug, Default)]
struct Seen {
    /// The newest watermark this session told the node, with the session's epoch: the
    /// node's acked prefix is at most this, so a backlog it reports ends at or before it
    /// plus the backlog.
    acked: Option<(aloft_protocol::StoreEpoch, u64)>,
    /// What the last live update said of the node's sensors, but for their reading counts:
    /// sensor watches are woken only when that changes.
    shown: Vec<SensorReport>,
    /// The key of the last health report: node watches are woken only when that changes.
    shown_health: Option<HealthKey>,
}

/// One message of an established session.
fn handle(
    hub: &Hub,
    control: &Arc<dyn NodeControl>,
    node: &str,
    version: u16,
    bytes: &[u8],
    seen: &mut Seen,
) -> Result<Action, Refusal> {
    let message = Uplink::decode_from(bytes, version).map_err(|e| refusal_of_decode(&e))?;
    match message {
        Uplink::Hello(_) => Err(Refusal::new(
            RefusalCode::Unexpected,
            "a second hello in one session",
        )),
        Uplink::Batch(batch) => Ok(Action::Persist(batch)),
        Uplink::Live(update) => {
            // A live update without sensors keeps the reported ones (the registry does too).
            let now_shown: Vec<SensorReport> = update
                .sensors
                .iter()
                .cloned()
                .map(|mut report| {
                    report.readings = 0;
                    report
                })
                .collect();
            let bound = seen
                .acked
                .map(|(epoch, w)| (epoch, w.saturating_add(update.backlog.records)));
            hub.registry.live_with_bound(node, update, bound);
            if !now_shown.is_empty() && now_shown != seen.shown {
                seen.shown = now_shown;
                hub.sessions.live_changed();
            }
            Ok(Action::Reply(None))
        }
        Uplink::Health(health) => {
            // Node watches are woken only when the report says something new.
            let key = HealthKey::of(&health);
            hub.registry.health(node, health);
            if seen.shown_health.as_ref() != Some(&key) {
                seen.shown_health = Some(key);
                hub.sessions.live_changed();
            }
            Ok(Action::Reply(None))
        }
        Uplink::Ping { nonce } => Ok(Action::Reply(Some(Downlink::Pong { nonce }))),
        Uplink::Pong { .. } => Ok(Action::Reply(None)),
        other @ (Uplink::CommandAck { .. }
        | Uplink::CommandResult { .. }
        | Uplink::Observed(_)
        | Uplink::Logs(_)) => {
            control.on_control(node, other);
            Ok(Action::Reply(None))
        }
        other => {
            tracing::debug!(
                node,
                ?other,
                "Uplink message this hub does not know; ignored."
            );
            Ok(Action::Reply(None))
        }
    }
}

/// A batch checked and decoded, waiting to be persisted.
#[derive(Debug)]
struct Decoded {
    epoch: aloft_protocol::StoreEpoch,
    first: u64,
    last: u64,
    entries: Vec<(u64, aloft_protocol::Record)>,
}

/// Checks a batch against the session and its own range, and decodes it within the limits.
fn check_batch(
    session_epoch: aloft_protocol::StoreEpoch,
    batch: Batch,
) -> Result<Decoded, Refusal> {
    if batch.epoch != session_epoch {
        return Err(Refusal::new(
            RefusalCode::Unexpected,
            "a batch of another epoch than the hello's",
        ));
    }
    let Batch {
        epoch,
        first,
        last,
        encoding,
        payload,
    } = batch;
    if first > last {
        return Err(Refusal::new(
            RefusalCode::Malformed,
            format!("batch range {first}..={last} is empty"),
        ));
    }
    if last > MAX_SEQ {
        return Err(Refusal::new(
            RefusalCode::Malformed,
            format!(
                "batch range {first}..={last} reaches 2^63; sequence numbers must be at most {MAX_SEQ}"
            ),
        ));
    }
    let entries = decode_batch(encoding, &payload, &DEFAULT_BATCH_LIMITS).map_err(|e| match e {
        BatchError::TooLarge { .. } | BatchError::TooManyRecords { .. } => {
            Refusal::new(RefusalCode::TooLarge, e.to_string())
        }
        other => Refusal::new(RefusalCode::Malformed, other.to_string()),
    })?;
    if let Some((seq, _)) = entries.iter().find(|(seq, _)| *seq < first || *seq > last) {
        return Err(Refusal::new(
            RefusalCode::Malformed,
            format!("record {seq} is outside the batch's range {first}..={last}"),
        ));
    }
    Ok(Decoded {
        epoch,
        first,
        last,
        entries,
    })
}

/// Persists a decoded batch and returns its ack.
async fn persist(hub: &Hub, node: &str, batch: Decoded) -> Result<Downlink, Refusal> {
    let Decoded {
        epoch,
        first,
        last,
        entries,
    } = batch;
    let records = entries.len();
    let streams = hub.streams.clone();
    let owned_node = node.to_owned();
    let watermark = tokio::task::spawn_blocking(move || {
        streams.ingest_registered(&owned_node, epoch, first, last, &entries)
    })
    .await
    .map_err(|e| Refusal::new(RefusalCode::Unavailable, format!("the hub failed: {e}")))?
    .map_err(|e| match e {
        StorageError::NoSuchNode(_) => {
            tracing::warn!(node, first, last, "Batch of a deleted node refused.");
            Refusal::new(
                RefusalCode::WrongNode,
                format!("node {node} was deleted; its records are no longer stored"),
            )
        }
        e => {
            tracing::error!(node, error = %e, "Persisting a batch failed.");
            Refusal::new(
                RefusalCode::Unavailable,
                "the hub could not persist; try again later",
            )
        }
    })?;
    hub.registry.batch(node, records as u64);
    tracing::debug!(node, first, last, records, watermark = ?watermark, "Batch persisted.");
    // The first batch always starts or extends the prefix, so there is a watermark.
    Ok(Downlink::Ack {
        epoch,
        watermark: watermark.unwrap_or(last),
    })
}

/// Persists batches in arrival order, one at a time, beside the session's reading of the
/// next ones; each result goes back to the session, which sends the ack.
fn start_persister(
    hub: Hub,
    node: String,
    end: watch::Receiver<Option<String>>,
) -> (
    mpsc::Sender<Decoded>,
    mpsc::UnboundedReceiver<Result<Downlink, Refusal>>,
) {
    let (batches_tx, mut batches) = mpsc::channel::<Decoded>(PIPELINE);
    let (results_tx, results) = mpsc::unbounded_channel();
    tokio::spawn(async move {
        while let Some(batch) = batches.recv().await {
            // A batch queued before the session's end is not stored after it.
            let ended = end.borrow().clone();
            let result = match ended {
                Some(reason) => Err(Refusal::new(RefusalCode::WrongNode, reason)),
                None => persist(&hub, &node, batch).await,
            };
            let failed = result.is_err();
            if results_tx.send(result).is_err() || failed {
                break;
            }
        }
    });
    (batches_tx, results)
}

async fn send(hub: &Hub, node: &str, socket: &mut WebSocket, message: &Downlink) -> Result<(), ()> {
    let bytes = message.encode();
    let len = bytes.len() as u64;
    match tokio::time::timeout(SEND_DEADLINE, socket.send(Message::Binary(bytes.into()))).await {
        Ok(Ok(())) => {
            hub.registry.traffic(node, 0, len);
            Ok(())
        }
        Ok(Err(e)) => {
            tracing::info!(node, error = %e, "Sending failed.");
            Err(())
        }
        Err(_) => {
            // A half-open peer stops reading; its socket buffer fills and a send never ends.
            tracing::info!(
                node,
                deadline_s = SEND_DEADLINE.as_secs(),
                "Sending stalled; closing."
            );
            Err(())
        }
    }
}

async fn refuse(hub: &Hub, node: &str, socket: &mut WebSocket, refusal: Refusal) {
    tracing::warn!(node, code = ?refusal.code, reason = %refusal.message, "Session refused.");
    hub.registry.refused(node);
    let message = Downlink::Refused {
        code: refusal.code,
        message: aloft_protocol::sync::bounded_text(
            &refusal.message,
            aloft_protocol::sync::MAX_TEXT_BYTES,
        ),
    };
    // Best effort: the peer may be gone or half-open; never wait long on it.
    let _ = tokio::time::timeout(Duration::from_secs(5), async {
        let _ = socket.send(Message::Binary(message.encode().into())).await;
        let _ = socket.send(Message::Close(None)).await;
    })
    .await;
}

/// The WebSocket message size the server lets through to the session: a little over
/// [`MAX_MESSAGE_BYTES`], so that a message just over the cap is refused with
/// `TooLarge` rather than cut by the WebSocket layer without a reason.
pub const WS_MESSAGE_LIMIT: usize = MAX_MESSAGE_BYTES + (64 << 10);
