//! The bus task: keeps a session with the broker, publishes the agent's newest values and
//! statuses, and hands the messages of the inbound side's topics to its handler.
//!
//! Two tasks. The connection task polls the event loop ([`super::wire::Connection`]): it
//! connects, reads and writes, and after an error waits a jittered backoff (at most
//! `reconnect_max`) before the next poll reconnects; it reports connections, losses and
//! incoming messages to the publisher task. The publisher task wakes on a timer of
//! `1 / max_rate_per_topic` (at most [`crate::config::MAX_RATE_PER_TOPIC`] a second), on a
//! sensor's status change, and on what the connection task reports. At each tick it reads
//! the newest values ([`crate::sensor::LatestValues`], one short read lock) and queues one
//! publish per topic whose value is newer than the last one queued ([`super::publish`]).
//!
//! After every connection: the subscriptions of the inbound side, `online` on the node's
//! status topic (the last will says `offline`), every sensor's status and every newest value
//! (all retained), so the broker's retained state is whole again; the readings taken during
//! the outage are not replayed unless `replay_outage` is set, and then from the store, at
//! most [`REPLAY_MAX`] records, a chunk per tick, not retained.
//!
//! Invariants: nothing here waits on the broker where a sensor or the store writer could
//! wait behind it: the sensors write the newest-values table and go on, the store writer
//! does not know the bus exists; every publish goes through the bounded request queue
//! ([`QUEUE`]) with a non-blocking try, and what does not fit is dropped and counted (the
//! value stays due and the newest one goes at the next tick); the coalescer holds one entry
//! per topic. So the bus's memory is bounded whatever the broker does.

use std::future::Future;
use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use aloft_protocol::{Record, Timestamp};
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, PrivateKeyDer};
use tokio::sync::{mpsc, watch};

use super::InboundHandler;
use super::publish::{Coalescer, Due, OFFLINE, ONLINE, SensorStatus, Topics};
use super::wire::{self, Connection, Event, Refused, Sender, Session};
use crate::config::MqttConfig;
use crate::metrics::Metrics;
use crate::metrics::bus::BusMetrics;
use crate::sensor::LatestValues;
use crate::supervisor::SupervisorHandle;
use crate::supervisor::backoff::{Backoff, BackoffPolicy};
use crate::uplink::SharedStore;
use crate::uplink::tls::{self, FloorVerifier, TrustedTime};

/// Requests the queue to the event loop holds: a few flushes of a full instrument set.
pub const QUEUE: usize = 512;
/// Most records of an outage published when `replay_outage` is set.
pub const REPLAY_MAX: u64 = 100_000;
/// Records of an outage read from the store per tick.
const REPLAY_CHUNK: usize = 128;
/// Messages from the connection task waiting for the publisher task: with
/// [`wire::MAX_PACKET_BYTES`] each, at most 16 MiB whatever publishers send.
const EVENTS: usize = 64;
/// How long a graceful stop waits for `offline` and the DISCONNECT to go out.
const GOODBYE: Duration = Duration::from_secs(2);
/// First wait before reconnecting.
const RECONNECT_FIRST: Duration = Duration::from_millis(200);
/// How often the drop count is logged while it grows.
const DROP_LOG_EVERY: Duration = Duration::from_secs(10);

/// Why the bus could not be set up (the agent then runs without it).
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum BusError {
    /// The broker is not `host:port` (the config check reports this first).
    #[error("mqtt.broker {0:?} is not host:port")]
    Broker(String),
    /// The password file could not be read.
    #[error("mqtt.password_file {path}: {source}")]
    PasswordFile {
        /// The file.
        path: String,
        /// Why.
        #[source]
        source: std::io::Error,
    },
    /// The client certificate or key could not be read.
    #[error("mqtt client certificate {path}: {message}")]
    ClientCert {
        /// The file.
        path: String,
        /// Why.
        message: String,
    },
    /// TLS could not be set up.
    #[error("mqtt TLS: {0}")]
    Tls(#[from] tls::TlsError),
    /// rustls refused the client certificate.
    #[error("mqtt TLS: {0}")]
    Rustls(#[from] rustls::Error),
}

/// What the bus reads: the agent's newest values, its sensors, its clocks and its store.
#[derive(Clone)]
#[non_exhaustive]
pub struct BusSources {
    /// The newest value of every (sensor, quantity).
    pub latest: LatestValues,
    /// The sensors' statuses and their changes.
    pub sensors: SupervisorHandle,
    /// Now, on the agent's clocks (to date the newest values).
    pub stamp: Arc<dyn Fn() -> Timestamp + Send + Sync>,
    /// The latest UTC trusted for certificate validity (a board may boot in 1970).
    pub trusted: TrustedTime,
    /// The store, for `replay_outage`.
    pub store: SharedStore,
    /// Where the bus counts what it sent ([`Metrics::bus`]).
    pub metrics: Arc<Metrics>,
}

impl std::fmt::Debug for BusSources {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("BusSources").finish_non_exhaustive()
    }
}

impl BusSources {
    /// The sources of a running agent.
    pub fn new(
        latest: LatestValues,
        sensors: SupervisorHandle,
        stamp: Arc<dyn Fn() -> Timestamp + Send + Sync>,
        trusted: TrustedTime,
        store: SharedStore,
        metrics: Arc<Metrics>,
    ) -> Self {
        BusSources {
            latest,
            sensors,
            stamp,
            trusted,
            store,
            metrics,
        }
    }
}

/// The session settings from the config: credentials read, TLS built.
pub fn session(config: &MqttConfig, node: &str, trusted: TrustedTime) -> Result<Session, BusError> {
    let (host, port) = config
        .host_port()
        .ok_or_else(|| BusError::Broker(config.broker.clone()))?;
    let password = match &config.password_file {
        Some(path) => Some(read_password(path)?),
        None => None,
    };
    let credentials = config
        .username
        .as_ref()
        .map(|user| (user.clone(), password.unwrap_or_default()));
    let tls = if config.tls {
        Some(client_tls(config, trusted)?)
    } else {
        None
    };
    let topics = Topics::new(&config.topic_prefix, node);
    Ok(Session {
        version: config.version,
        host,
        port,
        client_id: config.client_id_for(node),
        at_least_once: config.qos >= 1,
        keepalive: config.keepalive,
        credentials,
        tls,
        will: (topics.node_status(), OFFLINE.to_vec()),
        queue: QUEUE,
    })
}

/// The first line of the password file, without its line ending.
fn read_password(path: &Path) -> Result<String, BusError> {
    let text = std::fs::read_to_string(path).map_err(|source| BusError::PasswordFile {
        path: path.display().to_string(),
        source,
    })?;
    Ok(text.lines().next().unwrap_or_default().to_string())
}

/// rustls with `ring`: the broker's CA (else the system's roots), validity checked against a
/// time a board without an RTC can trust, and the client certificate when configured.
fn client_tls(
    config: &MqttConfig,
    trusted: TrustedTime,
) -> Result<Arc<rustls::ClientConfig>, BusError> {
    let verifier = FloorVerifier::new(
        tls::roots(config.ca_file.as_deref())?,
        trusted,
        tls::build_utc_ns(),
    )?;
    let builder = rustls::ClientConfig::builder_with_provider(tls::provider())
        .with_safe_default_protocol_versions()?
        .dangerous()
        .with_custom_certificate_verifier(Arc::new(verifier));
    let config = match (&config.cert_file, &config.key_file) {
        (Some(cert), Some(key)) => {
            let bad = |path: &Path, message: String| BusError::ClientCert {
                path: path.display().to_string(),
                message,
            };
            let chain = CertificateDer::pem_file_iter(cert)
                .map_err(|e| bad(cert, e.to_string()))?
                .collect::<Result<Vec<_>, _>>()
                .map_err(|e| bad(cert, e.to_string()))?;
            let key = PrivateKeyDer::from_pem_file(key).map_err(|e| bad(key, e.to_string()))?;
            builder.with_client_auth_cert(chain, key)?
        }
        _ => builder.with_no_client_auth(),
    };
    Ok(Arc::new(config))
}

/// What the connection task tells the publisher task.
#[derive(Debug)]
enum Link {
    Up,
    Down(String),
    Message { topic: String, payload: Vec<u8> },
}

/// A running bus.
#[derive(Debug)]
pub struct Bus {
    task: tokio::task::JoinHandle<()>,
}

impl Bus {
    /// Waits for the bus to finish after its stop: `offline` published and the session
    /// closed (or [`GOODBYE`] passed).
    pub async fn stopped(self) {
        let _ = self.task.await;
    }
}

/// Starts the bus. It runs until `stop` completes, then says `offline`, disconnects and
/// lets go of the store.
pub fn start(
    config: &MqttConfig,
    node: &str,
    sources: BusSources,
    inbound: Option<Box<dyn InboundHandler>>,
    stop: impl Future<Output = ()> + Send + 'static,
) -> Result<Bus, BusError> {
    let session = session(config, node, Arc::clone(&sources.trusted))?;
    tracing::info!(broker = %config.broker, version = config.version.as_str(), client_id = %session.client_id, tls = session.tls.is_some(), "MQTT bus starting.");
    let (sender, connection) = wire::open(&session);
    let metrics = Arc::clone(&sources.metrics);
    metrics.bus.started();
    let durable = sources.store.subscribe();
    let publisher = Publisher {
        sender,
        topics: Topics::new(&config.topic_prefix, node),
        coalescer: Coalescer::new(),
        sources,
        inbound,
        metrics,
        connected: false,
        replay_outage: config.replay_outage,
        durable,
        outage_from: None,
        replay: None,
        dropped_logged: (0, Instant::now()),
    };
    let period = config.flush_period();
    let reconnect_max = config.reconnect_max;
    let task = tokio::spawn(async move {
        let (events_tx, events_rx) = mpsc::channel(EVENTS);
        let (finish_tx, finish_rx) = watch::channel(false);
        let seed = crate::clock::monotonic_ns();
        let network = tokio::spawn(drive(
            connection,
            events_tx,
            Backoff::new(BackoffPolicy::new(RECONNECT_FIRST, reconnect_max), seed),
            finish_rx,
        ));
        publisher.run(events_rx, period, stop).await;
        // `offline` and the DISCONNECT are queued: the connection task sends them, sees
        // the broker close the session, and ends.
        let _ = finish_tx.send(true);
        let abort = network.abort_handle();
        if tokio::time::timeout(GOODBYE, network).await.is_err() {
            abort.abort();
            tracing::debug!("The MQTT connection did not close in time.");
        }
    });
    Ok(Bus { task })
}

/// The connection task: polls the event loop, reconnecting with backoff, until `finish`.
///
/// While a session is up a poll is never cut short (a poll cut short may lose the request
/// it took from the queue, such as the stop's `offline`): at the stop, the DISCONNECT the
/// publisher queued ends the session, and the error that follows ends this task.
async fn drive(
    mut connection: Connection,
    events: mpsc::Sender<Link>,
    mut backoff: Backoff,
    mut finish: watch::Receiver<bool>,
) {
    let mut up = false;
    loop {
        let polled = if up {
            connection.poll().await
        } else {
            tokio::select! {
                biased;
                _ = finish.wait_for(|f| *f) => return,
                polled = connection.poll() => polled,
            }
        };
        match polled {
            Ok(Event::Connected) => {
                up = true;
                backoff.reset();
                if events.send(Link::Up).await.is_err() {
                    return;
                }
            }
            Ok(Event::Message { topic, payload }) => {
                // Waits when the publisher task is behind: the broker then holds the
                // messages (TCP flow control), not this task.
                if events.send(Link::Message { topic, payload }).await.is_err() {
                    return;
                }
            }
            Ok(Event::Other) => {}
            Err(error) => {
                if up {
                    up = false;
                    // After the stop nobody listens; that is fine.
                    let _ = events.send(Link::Down(error.clone())).await;
                }
                let delay = backoff.next_delay(Duration::ZERO);
                tracing::debug!(%error, delay_ms = delay.as_millis(), "MQTT broker unreachable; retrying.");
                tokio::select! {
                    biased;
                    _ = finish.wait_for(|f| *f) => return,
                    () = tokio::time::sleep(delay) => {}
                }
            }
        }
    }
}

/// Reading the outage from the store.
#[derive(Debug, Clone, Copy)]
struct Replay {
    next: u64,
    end: u64,
}

/// The publisher task's state.
struct Publisher {
    sender: Sender,
    topics: Topics,
    coalescer: Coalescer,
    sources: BusSources,
    inbound: Option<Box<dyn InboundHandler>>,
    metrics: Arc<Metrics>,
    connected: bool,
    replay_outage: bool,
    /// The store's durable end, as the writer publishes it after each commit.
    durable: watch::Receiver<u64>,
    /// The store's durable end when the connection was lost.
    outage_from: Option<u64>,
    replay: Option<Replay>,
    /// The drop count last logged, and when.
    dropped_logged: (u64, Instant),
}

impl Publisher {
    fn counters(&self) -> &BusMetrics {
        &self.metrics.bus
    }

    async fn run(
        mut self,
        mut events: mpsc::Receiver<Link>,
        period: Duration,
        stop: impl Future<Output = ()>,
    ) {
        let mut tick = tokio::time::interval(period);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let mut changes = self.sources.sensors.changes();
        let mut follow_changes = true;
        tokio::pin!(stop);
        loop {
            tokio::select! {
                () = &mut stop => break,
                event = events.recv() => match event {
                    Some(Link::Up) => self.connected(),
                    Some(Link::Down(error)) => self.lost(&error),
                    Some(Link::Message { topic, payload }) => self.message(&topic, &payload),
                    None => break,
                },
                changed = changes.changed(), if follow_changes => match changed {
                    Ok(()) => self.statuses(),
                    Err(_) => follow_changes = false,
                },
                _ = tick.tick() => self.flush(),
            }
        }
        if self.connected {
            // The broker keeps `offline` retained; a clean DISCONNECT sends no last will.
            let _ = self
                .sender
                .publish(&self.topics.node_status(), OFFLINE.to_vec(), true);
            let _ = self.sender.disconnect();
        }
        tracing::info!(
            published = self.counters().published.load(Ordering::Relaxed),
            dropped = self.counters().dropped.load(Ordering::Relaxed),
            "MQTT bus stopped."
        );
    }

    fn connected(&mut self) {
        self.connected = true;
        self.counters().set_connected(true);
        let n = self.counters().connections.fetch_add(1, Ordering::Relaxed) + 1;
        tracing::info!(
            connections = n,
            "MQTT broker connected; publishing retained state."
        );
        if let Some(inbound) = &self.inbound {
            for filter in inbound.subscriptions() {
                if let Err(e) = self.sender.subscribe(&filter) {
                    tracing::warn!(%filter, error = %e, "MQTT subscription not queued.");
                }
            }
        }
        self.send(&self.topics.node_status(), ONLINE.to_vec(), true);
        // Every status and newest value again: the broker may have lost its retained
        // messages (a restart without persistence).
        self.coalescer.forget();
        self.statuses();
        self.readings();
        if let Some(inbound) = self.inbound.as_mut() {
            let out = inbound.connected();
            for o in out {
                self.send(&o.topic, o.payload, o.retain);
            }
        }
        if let Some(from) = self.outage_from.take()
            && self.replay_outage
        {
            let end = *self.durable.borrow();
            let next = from.max(end.saturating_sub(REPLAY_MAX));
            if from < next {
                tracing::warn!(
                    skipped = next - from,
                    "Outage longer than the replay bound; replaying its newest records."
                );
            }
            self.replay = (next < end).then_some(Replay { next, end });
        }
    }

    fn lost(&mut self, error: &str) {
        self.connected = false;
        self.counters().set_connected(false);
        self.replay = None;
        self.outage_from = Some(*self.durable.borrow());
        tracing::warn!(%error, "MQTT broker lost; readings stay in the store.");
    }

    fn message(&mut self, topic: &str, payload: &[u8]) {
        let Some(inbound) = self.inbound.as_mut() else {
            return;
        };
        let out = inbound.handle(topic, payload);
        if self.connected {
            for o in out {
                self.send(&o.topic, o.payload, o.retain);
            }
        }
    }

    /// Queues one publish; a full queue drops it and counts.
    fn send(&self, topic: &str, payload: Vec<u8>, retain: bool) -> bool {
        match self.sender.publish(topic, payload, retain) {
            Ok(()) => {
                self.counters().published.fetch_add(1, Ordering::Relaxed);
                true
            }
            Err(Refused::Full | Refused::Closed) => {
                self.counters().dropped.fetch_add(1, Ordering::Relaxed);
                false
            }
        }
    }

    fn hand_over(&mut self, due: Vec<Due>) {
        for d in due {
            let (message, handed) = d.into_parts();
            if !self.send(&message.topic, message.payload, message.retain) {
                // The queue is full: the rest would be refused too; they stay due.
                break;
            }
            self.coalescer.handed_over(handed);
        }
    }

    fn statuses(&mut self) {
        if !self.connected {
            return;
        }
        let statuses: Vec<SensorStatus> = self
            .sources
            .sensors
            .reports()
            .into_iter()
            .map(|r| SensorStatus {
                name: r.name,
                state: r.state,
                reason: r.reason,
                enabled: r.enabled,
                restarts: r.restarts,
            })
            .collect();
        let due = self.coalescer.due_statuses(&self.topics, &statuses);
        self.hand_over(due);
    }

    fn readings(&mut self) {
        let now = (self.sources.stamp)();
        let mut values = Vec::new();
        self.sources.latest.for_each(|sensor, quantity, value| {
            values.push((sensor.to_string(), quantity, *value))
        });
        let due = self.coalescer.due_readings(
            &self.topics,
            values.iter().map(|(s, q, v)| (s.as_str(), *q, *v)),
            (now.mono_ns, now.utc_ns),
        );
        self.hand_over(due);
    }

    fn flush(&mut self) {
        if self.connected {
            // A status change the watch coalesced away is caught here.
            self.statuses();
            self.readings();
            self.replay_chunk();
        }
        let dropped = self.counters().dropped.load(Ordering::Relaxed);
        if dropped > self.dropped_logged.0 && self.dropped_logged.1.elapsed() >= DROP_LOG_EVERY {
            tracing::warn!(
                dropped,
                "MQTT publishes dropped: the broker is not keeping up (the store has every reading)."
            );
            self.dropped_logged = (dropped, Instant::now());
        }
    }

    /// Publishes the next chunk of the outage's readings (not retained: the retained value
    /// is the newest one).
    fn replay_chunk(&mut self) {
        let Some(mut replay) = self.replay else {
            return;
        };
        let names: Vec<String> = self
            .sources
            .sensors
            .sensors()
            .into_iter()
            .map(|(name, _)| name)
            .collect();
        let records = {
            let store = self.sources.store.clone();
            let next = replay.next;
            let max =
                usize::try_from(replay.end - next).map_or(REPLAY_CHUNK, |n| n.min(REPLAY_CHUNK));
            // Reading the store may touch the SD card: off the runtime's worker.
            tokio::task::block_in_place(|| store.lock().read_from(next, max))
        };
        let records = match records {
            Ok(records) => records,
            Err(e) => {
                tracing::warn!(error = %e, "Outage replay stopped: the store could not be read.");
                self.replay = None;
                return;
            }
        };
        if records.is_empty() {
            self.replay = None;
            return;
        }
        for (seq, record) in records {
            if let Record::Reading(r) = record
                && let Some(name) = names.get(usize::from(r.sensor.0))
            {
                let value = crate::sensor::latest::LatestValue {
                    value: r.value,
                    quality: r.quality,
                    mono_ns: r.time.mono_ns,
                };
                let payload = super::publish::reading_payload(r.quantity, &value, r.time.utc_ns);
                if !self.send(&self.topics.reading(name, r.quantity), payload, false) {
                    // Full: this record again at the next tick.
                    self.replay = Some(replay);
                    return;
                }
                self.counters().replayed.fetch_add(1, Ordering::Relaxed);
            }
            replay.next = seq + 1;
        }
        self.replay = (replay.next < replay.end).then_some(replay);
    }
}
