//! `aloft-agent run`: the daemon. Wires the parts together and owns the store writer.
//!
//! Start-up: small state, time (boot record), store, metrics, sensors (hardware or the
//! simulated flight), the local endpoint, then READY to systemd. While running, one writer
//! task appends every record the sensors produce and group-commits every flush interval
//! (only then are records durable, invariant 3), appending time-correlation records as the
//! clocks allow. On shutdown (SIGTERM or Ctrl-C) the sensors stop, every record they
//! produced is appended, the store is committed and closed: nothing accepted is lost on a
//! graceful stop.
//!
//! With a `[hub]`, the uplink ([`crate::uplink`]) shares the store with the writer (a
//! mutex held for one append, one commit, one batch read or one ack) and learns of new
//! durable records from the writer after each commit; the writer also keeps the live
//! lane's board as records pass. The hub's control messages go to the control layer over
//! [`crate::uplink::ControlChannels`].
//!
//! A store that cannot write (a full disk with nothing left to free, a failing card) never
//! stops the agent: the store keeps the newest records in memory within its bound and
//! every flush retries; the failure shows in status and metrics (invariants 1 and 9).
//!
//! Invariant 7: nothing here waits for the hub; the agent samples with its config (or its
//! last known desired state) whether or not a link exists, and the writer never waits on
//! the network.

use std::future::Future;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use std::collections::HashMap;

use aloft_protocol::{Quantity, Record, SensorId, TimeSource};
use aloft_store::{FullPolicy as StorePolicy, Outbox, StoreError, StoreOptions};
use tokio::sync::{mpsc, watch};

use crate::bus;
use crate::clock;
use crate::config::{AgentConfig, FullPolicy, STORE_SEGMENT_BYTES};
use crate::control::{self, ControlHandles, LogRing};
use crate::endpoint;
use crate::metrics::Metrics;
use crate::power::PowerGovernor;
use crate::sensor::simulation::{Simulation, SimulationError, SimulationTuning};
use crate::sensor::{LatestValues, SlotError, hardware_slots};
use crate::state::StateFile;
use crate::status::StatusReport;
use crate::supervisor::{StartError, Supervisor, SupervisorOptions};
use crate::systemd::Notifier;
use crate::timekeeping::{TimePolicy, Timekeeper};
use crate::uplink::{self, HubLink, LiveBoard, SharedStore, UplinkOptions};

/// How long a stop waits for the control layer to finish the command under way (a hard
/// restart holds power off for seconds).
const CONTROL_STOP: Duration = Duration::from_secs(10);

/// Recent log lines kept for the hub's `FetchLogs`.
pub const LOG_LINES: usize = 1000;

/// Records in flight between the sensor threads and the store writer. A full channel makes
/// sensor threads wait, never drop.
const RECORD_QUEUE: usize = 4096;

/// How often the writer takes the records the sensors queued. Taking them as they come
/// woke the writer ~90 times a second on the simulated flight, for nothing: records become
/// durable at the group commit only. Every 250 ms a record waits at most a quarter second
/// before it is appended (and seen by the live lane, which reports once a second; the
/// sync bench's live age stays under its 2 s target), and the queue holds far more than a
/// quarter second of the flight (~300 records a second). Tokio's timer wheel has 64 ms
/// slots above 64 ms, so each tick costs the worker two wake-ups: at 100 ms that was 20 a
/// second, at 250 ms it is 8.
const INTAKE_PERIOD: std::time::Duration = std::time::Duration::from_millis(250);

/// The next intake after one that found the sensors' queue at least a quarter full: a
/// burst (another program's readings from the MQTT bus, thousands a second) is drained
/// every few milliseconds while it lasts, so its senders never wait a quarter second on a
/// full queue; the flight's few hundred records a second never trigger it.
const INTAKE_BUSY_PERIOD: std::time::Duration = std::time::Duration::from_millis(5);

/// Why the agent could not run.
#[derive(Debug, thiserror::Error)]
pub enum RunError {
    /// The store could not be opened or written.
    #[error("store {path}: {source}")]
    Store {
        /// The store's directory.
        path: PathBuf,
        /// Why.
        source: StoreError,
    },
    /// The clocks could not be read.
    #[error("time: {0}")]
    Time(#[from] crate::timekeeping::TimeError),
    /// The directory of the simulated ports could not be made.
    #[error("sensors: cannot create {path}: {source}")]
    SimulatedPorts {
        /// The directory.
        path: PathBuf,
        /// Why.
        source: std::io::Error,
    },
    /// The simulated sensors could not be started.
    #[error("sensors: {0}")]
    Simulation(#[from] SimulationError),
    /// The hardware sensors could not be set up.
    #[error("sensors: {0}")]
    Hardware(#[from] SlotError),
    /// The sensors' supervision could not start.
    #[error("sensors: {0}")]
    Supervision(#[from] StartError),
    /// The local endpoint could not listen.
    #[error("cannot listen on {addr} for metrics and status: {source}")]
    Endpoint {
        /// The configured address.
        addr: std::net::SocketAddr,
        /// Why.
        source: std::io::Error,
    },
}

fn store_options(config: &AgentConfig) -> StoreOptions {
    let policy = match config.store.full_policy {
        FullPolicy::DropOldest => StorePolicy::DropOldest,
        FullPolicy::Decimate => StorePolicy::Decimate,
        FullPolicy::RejectNew => StorePolicy::RejectNew,
    };
    let mut options = StoreOptions::new(config.store.max_bytes, policy);
    options.segment_bytes = STORE_SEGMENT_BYTES;
    options.retain_acked_bytes = config.retained_acked_bytes();
    options
}

/// Runs the agent until `shutdown` completes. Needs a multi-thread runtime (one worker is
/// enough): the group commit runs in `block_in_place`. The hub's `FetchLogs` is answered
/// from an empty ring: [`run_with_logs`] takes the ring the binary's subscriber fills.
pub async fn run(config: AgentConfig, shutdown: impl Future<Output = ()>) -> Result<(), RunError> {
    let (_unused_layer, logs) = control::log_ring(LOG_LINES);
    run_with_logs(config, logs, shutdown).await
}

/// [`run`], answering the hub's log fetches from `logs` (the ring of the layer installed
/// in the tracing subscriber: [`control::log_ring`]).
pub async fn run_with_logs(
    mut config: AgentConfig,
    logs: LogRing,
    shutdown: impl Future<Output = ()>,
) -> Result<(), RunError> {
    let store_dir = config.store.path.clone();
    let store_error = |source| RunError::Store {
        path: store_dir.clone(),
        source,
    };
    std::fs::create_dir_all(&store_dir).map_err(|e| {
        store_error(StoreError::Io {
            op: "create",
            file: store_dir.display().to_string(),
            source: e,
        })
    })?;

    let state_path = store_dir.join("state.json");
    let (state_file, problem) = StateFile::open(&state_path);
    if let Some(problem) = &problem {
        tracing::warn!(path = %state_path.display(), %problem, "State file unreadable; running with the config file alone.");
    }
    // One state file for every writer: the control layer's desired state and commands,
    // and the last good time here.
    let state_file = Arc::new(state_file);
    let agent_state = state_file.snapshot();
    // The file as written: what a sensor goes back to when the hub's spec stops naming it.
    let file_config = Arc::new(config.clone());
    // Edge autonomy (invariant 7): the last desired state from the hub rules until the hub
    // says otherwise, whether or not a link comes up.
    if let Some(desired) = &agent_state.desired {
        for refused in desired.apply_to(&mut config) {
            tracing::warn!(generation = desired.generation, %refused, "Desired state not applied.");
        }
        tracing::info!(
            generation = desired.generation,
            "Sampling with the last desired state."
        );
    }

    let (timekeeper, boot) =
        Timekeeper::start_system(agent_state.last_good_utc_ns, TimePolicy::default())?;
    let timekeeper = Arc::new(timekeeper);
    // Sensors, supervisor and store now stamp with the timekeeper's idea of trusted UTC.
    clock::install(Arc::clone(&timekeeper) as Arc<dyn clock::Stamp>);

    let (mut outbox, report) =
        Outbox::open(&store_dir, store_options(&config)).map_err(store_error)?;
    tracing::info!(
        store = %store_dir.display(),
        created = report.created,
        unclean = report.unclean,
        corrupt_regions = report.corrupt_regions,
        torn_bytes = report.torn_bytes,
        "Store open."
    );
    outbox.append(&Record::Boot(boot)).map_err(store_error)?;
    let boot_id = timekeeper.boot_id();
    let store = SharedStore::new(outbox);

    let metrics = Metrics::from_config(&config);
    let latest = LatestValues::default();
    let (records_tx, mut records) = mpsc::channel(RECORD_QUEUE);
    // The power policy starts from what the operator wants: the file under the last
    // desired state, with the sensors it exempted from power steps.
    let power = PowerGovernor::new(&config, agent_state.power_overrides.clone());
    let (power_records, power_latest) = (records_tx.clone(), latest.clone());
    // The MQTT bus reads the newest values the sensors record; it never sees the records.
    let bus_latest = latest.clone();

    // The simulation (when configured) must live as long as the sensors read it.
    let (simulation, mut slots) = match &config.simulation {
        Some(sim) => {
            let links = store_dir.join("sim-ports");
            std::fs::create_dir_all(&links).map_err(|source| RunError::SimulatedPorts {
                path: links.clone(),
                source,
            })?;
            let (simulation, slots) = Simulation::start(
                sim,
                &config.sensors,
                &links,
                &latest,
                SimulationTuning::default(),
            )?;
            (Some(simulation), slots)
        }
        None => (None, hardware_slots(&config.sensors, &latest)?),
    };
    // The `mqtt` sensors' devices are fed by the bus's inbound side.
    let ingest_feeds = bus::inbound::attach_feeds(&config, &mut slots);
    let views_latest = latest.clone();
    let supervisor =
        Supervisor::start(slots, SupervisorOptions::default(), records_tx, latest).await?;
    // The live lane reports sensors as the supervisor sees them (live reconfiguration
    // included) and goes out at once when one changes.
    let live = {
        let handle = supervisor.handle();
        let timekeeper = Arc::clone(&timekeeper);
        Arc::new(
            LiveBoard::with_report_source(Arc::new(move || handle.reports()))
                .with_clock_trust(Arc::new(move || timekeeper.status().system_clock_trusted)),
        )
    };

    let (stop_tx, stop_rx) = watch::channel(false);
    let stopped = |mut rx: watch::Receiver<bool>| async move {
        let _ = rx.wait_for(|s| *s).await;
    };
    let listen = config.metrics.listen;
    let listener = endpoint::bind(listen)
        .await
        .map_err(|source| RunError::Endpoint {
            addr: listen,
            source,
        })?;
    let status_source: endpoint::StatusSource = {
        let (metrics, timekeeper) = (Arc::clone(&metrics), Arc::clone(&timekeeper));
        Arc::new(move || {
            StatusReport::gather(&metrics, &timekeeper.status(), clock::monotonic_ns())
        })
    };
    let endpoint_task = tokio::spawn(endpoint::serve(
        listener,
        Arc::clone(&metrics),
        status_source,
        stopped(stop_rx.clone()),
    ));

    let notifier = Arc::new(Notifier::from_env().unwrap_or_else(|e| {
        tracing::warn!(error = %e, "NOTIFY_SOCKET unusable; running without systemd notifications.");
        Notifier::disabled()
    }));
    let watchdog = tokio::spawn({
        let notifier = Arc::clone(&notifier);
        let stop = stopped(stop_rx.clone());
        async move { notifier.run_watchdog(stop).await }
    });
    if let Err(e) = notifier.ready() {
        tracing::warn!(error = %e, "Could not tell systemd the agent is ready.");
    }
    // Its own stop: the uplink lets go of the store before the store is closed, while the
    // endpoint and the watchdog serve to the end.
    let (uplink_stop, uplink_stopped) = watch::channel(false);
    let link = start_uplink(
        &config,
        Remote {
            store: &store,
            live: &live,
            metrics: &metrics,
            timekeeper: &timekeeper,
            boot: boot_id,
            control: ControlHandles::new(
                supervisor.handle(),
                Arc::clone(&state_file),
                file_config,
                logs,
            )
            .with_power(power.clone()),
        },
        stopped(uplink_stopped.clone()),
    );
    let power_task = tokio::spawn(power.run(
        supervisor.handle(),
        power_latest,
        power_records,
        Arc::clone(&metrics),
        stopped(uplink_stopped.clone()),
    ));
    let bus = start_bus(
        &config,
        bus::BusSources::new(
            bus_latest,
            supervisor.handle(),
            {
                let timekeeper = Arc::clone(&timekeeper);
                Arc::new(move || timekeeper.stamp())
            },
            {
                let timekeeper = Arc::clone(&timekeeper);
                Arc::new(move || Some(timekeeper.certificate_time_utc_ns()))
            },
            store.clone(),
            Arc::clone(&metrics),
        ),
        InboundParts {
            feeds: ingest_feeds,
            latest: views_latest,
            state: Arc::clone(&state_file),
            metrics: Arc::clone(&metrics),
        },
        stopped(uplink_stopped.clone()),
    );
    let follow_sensors = tokio::spawn({
        let (mut changes, live) = (supervisor.handle().changes(), Arc::clone(&live));
        let stop = stopped(uplink_stopped);
        async move {
            tokio::pin!(stop);
            loop {
                tokio::select! {
                    () = &mut stop => break,
                    changed = changes.changed() => match changed {
                        Ok(()) => live.sensors_changed(),
                        Err(_) => break,
                    },
                }
            }
        }
    });
    tracing::info!(node = %config.node.name, sensors = config.sensors.len(), "Agent running.");

    let mut flush = tokio::time::interval(config.store.flush_interval);
    flush.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    tokio::pin!(shutdown);
    let mut writer = Writer {
        metrics: &metrics,
        timekeeper: &timekeeper,
        live: &live,
        restarts: HashMap::new(),
    };
    let mut intake = tokio::time::interval(INTAKE_PERIOD);
    intake.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let result = loop {
        tokio::select! {
            () = &mut shutdown => break Ok(()),
            _ = intake.tick() => {
                let busy = records.len() >= RECORD_QUEUE / 4;
                match take_queued(&mut records, &mut writer, &store) {
                    Intake::Open => {}
                    Intake::Closed => break Ok(()),
                }
                if busy {
                    intake.reset_after(INTAKE_BUSY_PERIOD);
                }
            }
            _ = flush.tick() => {
                // What the sensors queued before the commit is in it.
                if let Intake::Closed = take_queued(&mut records, &mut writer, &store) {
                    break Ok(());
                }
                // The commit fsyncs: off the runtime's worker, so the endpoint and the
                // watchdog keep answering while the SD card is slow.
                let committed =
                    tokio::task::block_in_place(|| writer.commit(&mut store.lock()));
                match committed {
                    Ok(durable_end) => store.publish_durable(durable_end),
                    // The store logs when its health changes and keeps what it could not
                    // write in memory; the next flush retries. Sampling goes on.
                    Err(e) => tracing::debug!(error = %e, "Store commit failed; retrying at the next flush."),
                }
                if let Some(utc) = timekeeper.persist_due() {
                    save_last_good(&state_file, utc);
                }
                // A lost status line is harmless: the next flush sends another.
                let _ = notifier.status(&metrics.summary_line());
            }
        }
    };

    // Graceful stop: nothing accepted is lost.
    let _ = notifier.stopping();
    tracing::info!("Stopping: the link and the control layer, the sensors, then the store.");
    // The uplink lets go of the store before it is closed; the control layer ends when the
    // link is gone, after the command under way.
    let _ = uplink_stop.send(true);
    let _ = follow_sensors.await;
    let _ = power_task.await;
    // The bus lets go of the store (its outage replay) before the store is closed.
    if let Some(bus) = bus {
        bus.stopped().await;
    }
    if let Some((link, control)) = link {
        let _ = link.await;
        if tokio::time::timeout(CONTROL_STOP, control).await.is_err() {
            tracing::warn!("The control layer did not stop in time; its command is cut short.");
        }
    }
    supervisor.shutdown().await;
    drop(simulation);
    take_queued(&mut records, &mut writer, &store);
    let closed = match store.into_inner() {
        Ok(mut outbox) => writer
            .commit(&mut outbox)
            .and_then(|_| outbox.close())
            .map_err(store_error),
        // Not expected: every other holder stopped above. Commit what was appended.
        Err(shared) => writer
            .commit(&mut shared.lock())
            .map(|_| ())
            .map_err(store_error),
    };
    if let Some(utc) = timekeeper.last_good_utc_ns() {
        save_last_good(&state_file, utc);
    }
    let _ = stop_tx.send(true);
    let _ = endpoint_task.await;
    let _ = watchdog.await;
    result.and(closed)
}

/// Whether the sensors' queue is still open after [`take_queued`].
enum Intake {
    /// Sensors may queue more.
    Open,
    /// Every sender is gone: no record will come again.
    Closed,
}

/// Appends every record the sensors queued, under one lock of the store. An append does no
/// I/O; one that fails (a record too large to store) is logged and the rest go on.
fn take_queued(
    records: &mut mpsc::Receiver<Record>,
    writer: &mut Writer<'_>,
    store: &SharedStore,
) -> Intake {
    let mut outbox = store.lock();
    loop {
        match records.try_recv() {
            Ok(record) => {
                if let Err(e) = writer.append(&mut outbox, record) {
                    tracing::error!(error = %e, "A record could not be stored.");
                }
            }
            Err(mpsc::error::TryRecvError::Empty) => return Intake::Open,
            Err(mpsc::error::TryRecvError::Disconnected) => return Intake::Closed,
        }
    }
}

fn save_last_good(state: &StateFile, utc: i64) {
    if let Err(e) = state.update(|s| s.last_good_utc_ns = Some(utc)) {
        tracing::warn!(error = %e, "Could not save the last good time.");
    }
}

/// Appends records and commits them, keeping the metrics, the clocks and the live lane up
/// to date.
struct Writer<'a> {
    metrics: &'a Metrics,
    timekeeper: &'a Timekeeper,
    live: &'a LiveBoard,
    /// Restarts each sensor's status records reported last, to count new ones.
    restarts: HashMap<SensorId, u32>,
}

impl Writer<'_> {
    fn append(&mut self, outbox: &mut Outbox, record: Record) -> Result<(), StoreError> {
        self.live.observe(&record);
        if let Record::Status(s) = &record
            && let Some(sensor) = self.metrics.sensor(s.sensor)
        {
            sensor.set_state(s.state, &s.reason);
            let seen = self.restarts.insert(s.sensor, s.restarts).unwrap_or(0);
            for _ in seen..s.restarts {
                sensor.restarted();
            }
        }
        if let Record::Reading(r) = &record {
            if let Some(sensor) = self.metrics.sensor(r.sensor) {
                sensor.reading(r.quantity, r.time.mono_ns);
            }
            // One GNSS time per fix: the latitude reading carries the fix's UTC.
            if r.quantity == Quantity::Latitude
                && r.time.source == TimeSource::Gnss
                && let Some(utc) = r.time.utc_ns
                && let Some(correlation) = self.timekeeper.gnss_time(utc, r.time.mono_ns, None)
            {
                outbox.append(&Record::TimeCorrelation(correlation))?;
            }
        }
        outbox.append(&record)?;
        Ok(())
    }

    /// Commits; returns the durable end.
    fn commit(&self, outbox: &mut Outbox) -> Result<u64, StoreError> {
        if let Some(correlation) = self.timekeeper.check() {
            outbox.append(&Record::TimeCorrelation(correlation))?;
        }
        let started = Instant::now();
        let before = outbox.durable_end();
        let committed = outbox.commit();
        let stats = outbox.stats();
        self.metrics.store.set_state(&stats, outbox.problem());
        committed?;
        self.metrics
            .store
            .committed(stats.durable_end.saturating_sub(before), started.elapsed());
        self.metrics.store.set_bytes(stats.disk_bytes);
        let unsent = stats.durable_end.saturating_sub(stats.first_unacked);
        let oldest_age = if unsent == 0 {
            None
        } else {
            // One record read per flush: the oldest unsent one, to say how stale the hub is.
            outbox
                .read_from(stats.first_unacked, 1)?
                .first()
                .and_then(|(_, record)| age_of(record, self.timekeeper.stamp()))
        };
        self.metrics.store.set_unsent(unsent, oldest_age);
        Ok(stats.durable_end)
    }
}

/// What the uplink and the control layer share with the daemon.
struct Remote<'a> {
    store: &'a SharedStore,
    live: &'a Arc<LiveBoard>,
    metrics: &'a Arc<Metrics>,
    timekeeper: &'a Arc<Timekeeper>,
    boot: aloft_protocol::BootId,
    control: ControlHandles,
}

/// Starts the uplink and the control layer when the config has a `[hub]`. A hub that
/// cannot be set up (an unreadable token file, a bad CA file) is logged and the agent runs
/// without it (invariant 7): sampling matters more than the link.
fn start_uplink(
    config: &AgentConfig,
    remote: Remote<'_>,
    stop: impl Future<Output = ()> + Send + 'static,
) -> Option<(tokio::task::JoinHandle<()>, tokio::task::JoinHandle<()>)> {
    let hub = config.hub.as_ref()?;
    let trusted: uplink::tls::TrustedTime = {
        let timekeeper = Arc::clone(remote.timekeeper);
        Arc::new(move || Some(timekeeper.certificate_time_utc_ns()))
    };
    let options = match UplinkOptions::from_config(hub, &config.node.name, trusted) {
        Ok(options) => options,
        Err(e) => {
            tracing::error!(error = %e, url = %hub.url, "Cannot set up the link to the hub; running without it.");
            return None;
        }
    };
    let (channels, downlink, uplink) = uplink::control_channels();
    let power = remote.control.power.clone();
    let control = control::start(remote.control, downlink, uplink);
    let link = HubLink::new(
        options,
        remote.store.clone(),
        Arc::clone(remote.live),
        channels,
        Arc::clone(remote.metrics),
        remote.boot,
    )
    .with_power(power);
    tracing::info!(url = %hub.url, "Uplink starting.");
    Some((tokio::spawn(link.run(stop)), control))
}

/// What the bus's inbound side needs beside the bus's own sources.
struct InboundParts {
    /// The `mqtt` sensors' feeds.
    feeds: std::collections::BTreeMap<aloft_protocol::SensorId, crate::sensor::mqtt::IngestSender>,
    /// The newest values, for the twin.
    latest: LatestValues,
    /// The state file, for the hub's desired values in the twin.
    state: Arc<crate::state::StateFile>,
    /// The ingest counters.
    metrics: Arc<Metrics>,
}

/// Starts the MQTT bus when the config has an `[mqtt]` (without one: no task at all). A
/// bus that cannot be set up (an unreadable password file, a bad CA file) is logged and the
/// agent runs without it: the bus is a view of the store, never needed for sampling.
fn start_bus(
    config: &AgentConfig,
    sources: bus::BusSources,
    parts: InboundParts,
    stop: impl Future<Output = ()> + Send + 'static,
) -> Option<bus::Bus> {
    let mqtt = config.mqtt.as_ref()?;
    // The inbound side (ingest, the device twin) plugs in here as the handler.
    let views = bus::inbound::AgentViews::new(
        config,
        sources.sensors.clone(),
        parts.latest,
        parts.state,
        Arc::clone(&sources.stamp),
    );
    let inbound: Option<Box<dyn bus::InboundHandler>> = Some(Box::new(bus::inbound::Inbound::new(
        config,
        parts.feeds,
        Box::new(views),
        parts.metrics,
        Arc::clone(&sources.stamp),
    )));
    match bus::start(mqtt, &config.node.name, sources, inbound, stop) {
        Ok(bus) => Some(bus),
        Err(e) => {
            tracing::error!(error = %e, broker = %mqtt.broker, "Cannot set up the MQTT bus; running without it.");
            None
        }
    }
}

/// How long ago `record` was taken: by UTC when both times have it (records may come from an
/// earlier boot), else by the monotonic clock as if the record were of this boot. A record of
/// an earlier boot without UTC can only be aged that way and may read wrong; one whose
/// monotonic time is ahead of now reads as unknown.
fn age_of(record: &Record, now: aloft_protocol::Timestamp) -> Option<Duration> {
    let (mono, utc) = match record {
        Record::Reading(r) => (r.time.mono_ns, r.time.utc_ns),
        Record::Status(s) => (s.time.mono_ns, s.time.utc_ns),
        Record::Descriptor(d) => (d.time.mono_ns, d.time.utc_ns),
        Record::Boot(b) => (b.mono_ns, b.utc_ns),
        Record::TimeCorrelation(c) => (c.mono_ns, Some(c.utc_ns)),
        _ => return None,
    };
    match (utc, now.utc_ns) {
        (Some(then), Some(now_utc)) if now_utc >= then => {
            Some(Duration::from_nanos(u64::try_from(now_utc - then).ok()?))
        }
        _ if now.mono_ns >= mono => Some(Duration::from_nanos(now.mono_ns - mono)),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use aloft_protocol::{Quality, Quantity, Reading, SensorId, TimeSource, Timestamp};

    use super::*;

    fn reading(time: Timestamp) -> Record {
        Record::Reading(Reading {
            sensor: SensorId(0),
            quantity: Quantity::AirPressure,
            time,
            value: 1.0,
            quality: Quality::GOOD,
        })
    }

    #[test]
    fn age_of_the_oldest_unsent_record_prefers_utc_and_falls_back_to_this_boots_clock() {
        let now = Timestamp::with_utc(50_000_000_000, 2_000_000_000_000_000_000, TimeSource::Gnss);
        let by_utc = reading(Timestamp::with_utc(
            1,
            1_999_999_990_000_000_000,
            TimeSource::Gnss,
        ));
        assert_eq!(age_of(&by_utc, now), Some(Duration::from_secs(10)));
        let by_mono = reading(Timestamp::monotonic(20_000_000_000));
        assert_eq!(age_of(&by_mono, now), Some(Duration::from_secs(30)));
        // Monotonic time of another boot, ahead of this one's: unknown, not negative.
        let other_boot = reading(Timestamp::monotonic(90_000_000_000));
        assert_eq!(age_of(&other_boot, now), None);
    }
}
