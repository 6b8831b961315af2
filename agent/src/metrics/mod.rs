//! The agent's metrics: a registry the sensor tasks and the store update cheaply, rendered
//! in the Prometheus text format by the local endpoint ([`crate::endpoint`]).
//!
//! Invariants: an update on the hot path (a reading, an error) is one relaxed atomic add on
//! memory allocated at start, with no lock and no allocation; the set of sensors is fixed at
//! start (the config file owns the hardware), so no update ever creates a series. Only a
//! state change (rare) takes a lock, for its reason text. [`wakeups`] counts the agent's
//! idle wake-ups for the low-power figure.

pub mod bus;
pub mod ingest;
pub mod power;
pub mod uplink;
pub mod wakeups;

use std::sync::atomic::{AtomicU8, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use aloft_protocol::{Quantity, SensorId, SensorState};
use aloft_store::{StoreHealth, StoreStats};

use crate::clock::monotonic_ns;
use crate::config::AgentConfig;

/// Why a sensor's data could not be had. Fixed set so counting needs no allocation.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum SensorErrorKind {
    /// A malformed line or sentence (NMEA, CosmicWatch).
    BadLine,
    /// A checksum or CRC mismatch (NMEA `*hh`, UBX Fletcher, Sensirion CRC-8).
    Crc,
    /// An I2C NACK.
    Nack,
    /// The port or bus vanished (USB adapter unplugged).
    Disconnected,
    /// No data within the expected time (a stalled GPS).
    Timeout,
    /// The device answered with something it should not (bad chip id, unexpected frame).
    Protocol,
    /// The device repeated an old value (stuck conversion).
    Stale,
    /// Another I/O error.
    Io,
}

impl SensorErrorKind {
    /// Every kind, in label order.
    pub const ALL: [SensorErrorKind; 8] = [
        SensorErrorKind::BadLine,
        SensorErrorKind::Crc,
        SensorErrorKind::Nack,
        SensorErrorKind::Disconnected,
        SensorErrorKind::Timeout,
        SensorErrorKind::Protocol,
        SensorErrorKind::Stale,
        SensorErrorKind::Io,
    ];

    /// The `kind` label.
    pub const fn label(self) -> &'static str {
        match self {
            SensorErrorKind::BadLine => "bad_line",
            SensorErrorKind::Crc => "crc",
            SensorErrorKind::Nack => "nack",
            SensorErrorKind::Disconnected => "disconnected",
            SensorErrorKind::Timeout => "timeout",
            SensorErrorKind::Protocol => "protocol",
            SensorErrorKind::Stale => "stale",
            SensorErrorKind::Io => "io",
        }
    }

    const fn index(self) -> usize {
        self as usize
    }
}

/// Every sensor state, in label order.
pub const SENSOR_STATES: [SensorState; 6] = [
    SensorState::Starting,
    SensorState::Running,
    SensorState::Degraded,
    SensorState::Failed,
    SensorState::Restarting,
    SensorState::Disabled,
];

/// The `state` label of a sensor state.
pub fn state_label(state: SensorState) -> &'static str {
    match state {
        SensorState::Starting => "starting",
        SensorState::Running => "running",
        SensorState::Degraded => "degraded",
        SensorState::Failed => "failed",
        SensorState::Restarting => "restarting",
        SensorState::Disabled => "disabled",
        _ => "unknown",
    }
}

fn state_index(state: SensorState) -> u8 {
    SENSOR_STATES
        .iter()
        .position(|s| *s == state)
        .map_or(u8::MAX, |i| i as u8)
}

/// One sensor's name and kind, as the config file gives them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SensorLabel {
    /// `gps`, `static`, ...
    pub name: String,
    /// `ublox`, `bme280`, ...
    pub kind: String,
}

/// The counters and gauges of one sensor.
#[derive(Debug)]
pub struct SensorMetrics {
    label: SensorLabel,
    readings: Box<[AtomicU64]>,
    errors: [AtomicU64; SensorErrorKind::ALL.len()],
    state: AtomicU8,
    restarts: AtomicU64,
    /// Monotonic ns of the latest reading; 0 = none yet.
    last_reading_mono_ns: AtomicU64,
    reason: Mutex<String>,
}

impl SensorMetrics {
    fn new(label: SensorLabel) -> Self {
        SensorMetrics {
            label,
            readings: Quantity::ALL.iter().map(|_| AtomicU64::new(0)).collect(),
            errors: Default::default(),
            state: AtomicU8::new(state_index(SensorState::Starting)),
            restarts: AtomicU64::new(0),
            last_reading_mono_ns: AtomicU64::new(0),
            reason: Mutex::new(String::new()),
        }
    }

    /// Name and kind.
    pub fn label(&self) -> &SensorLabel {
        &self.label
    }

    /// Counts one reading of `quantity` taken at monotonic time `mono_ns`.
    pub fn reading(&self, quantity: Quantity, mono_ns: u64) {
        // Quantity codes are their positions in `Quantity::ALL` (a unit test holds this).
        if let Some(c) = self.readings.get(usize::from(quantity.code())) {
            c.fetch_add(1, Ordering::Relaxed);
        }
        self.last_reading_mono_ns
            .fetch_max(mono_ns.max(1), Ordering::Relaxed);
    }

    /// Counts one error.
    pub fn error(&self, kind: SensorErrorKind) {
        self.errors[kind.index()].fetch_add(1, Ordering::Relaxed);
    }

    /// Records a state change and its reason; a restart into [`SensorState::Restarting`]
    /// is counted by [`SensorMetrics::restarted`], not here.
    pub fn set_state(&self, state: SensorState, reason: &str) {
        self.state.store(state_index(state), Ordering::Relaxed);
        let mut r = self.reason.lock().unwrap_or_else(|p| p.into_inner());
        r.clear();
        r.push_str(reason);
    }

    /// Counts one restart.
    pub fn restarted(&self) {
        self.restarts.fetch_add(1, Ordering::Relaxed);
    }

    /// The current state.
    pub fn state(&self) -> Option<SensorState> {
        SENSOR_STATES
            .get(usize::from(self.state.load(Ordering::Relaxed)))
            .copied()
    }

    /// The reason given with the current state.
    pub fn reason(&self) -> String {
        self.reason
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
    }

    /// Restarts since start.
    pub fn restarts(&self) -> u64 {
        self.restarts.load(Ordering::Relaxed)
    }

    /// Readings of `quantity` since start.
    pub fn readings_of(&self, quantity: Quantity) -> u64 {
        self.readings
            .get(usize::from(quantity.code()))
            .map_or(0, |c| c.load(Ordering::Relaxed))
    }

    /// Readings of every quantity since start.
    pub fn readings_total(&self) -> u64 {
        self.readings
            .iter()
            .map(|c| c.load(Ordering::Relaxed))
            .sum()
    }

    /// Errors of `kind` since start.
    pub fn errors_of(&self, kind: SensorErrorKind) -> u64 {
        self.errors[kind.index()].load(Ordering::Relaxed)
    }

    /// Errors of every kind since start.
    pub fn errors_total(&self) -> u64 {
        self.errors.iter().map(|c| c.load(Ordering::Relaxed)).sum()
    }

    /// Monotonic time of the latest reading.
    pub fn last_reading_mono_ns(&self) -> Option<u64> {
        match self.last_reading_mono_ns.load(Ordering::Relaxed) {
            0 => None,
            t => Some(t),
        }
    }
}

/// [`StoreMetrics`]' unsent count before the store's first commit has counted it.
const UNCOUNTED: u64 = u64::MAX;

/// The store's gauges and counters, set by the store after each commit. The backlog is
/// unknown (and not exported) until the first commit counts it.
#[derive(Debug)]
pub struct StoreMetrics {
    bytes: AtomicU64,
    /// Records durable and not acked; [`UNCOUNTED`] until the first commit has counted
    /// them, so that nothing reads "nothing unsent" before the store has been looked at.
    unsent: AtomicU64,
    /// Age of the oldest unsent record at the last update, ms, and when that was (mono ns);
    /// `u64::MAX` = nothing unsent.
    oldest_unsent_age_ms: AtomicU64,
    oldest_unsent_at_mono_ns: AtomicU64,
    records_committed: AtomicU64,
    last_commit_ns: AtomicU64,
    /// [`StoreHealth`] as 0 healthy, 1 full, 2 degraded.
    health: AtomicU8,
    /// Why the store is not healthy.
    problem: Mutex<Option<String>>,
    /// Records waiting in memory for a commit.
    pending: AtomicU64,
    failed_commits: AtomicU64,
    /// Records lost since start, by reason: dropped (policy or full disk), decimated,
    /// rejected, dropped from memory while the disk refused writes, and corrupt regions.
    dropped: AtomicU64,
    decimated: AtomicU64,
    rejected: AtomicU64,
    held_back: AtomicU64,
    corrupt_regions: AtomicU64,
}

/// The store's health as its metric and status name it.
pub fn health_label(health: StoreHealth) -> &'static str {
    match health {
        StoreHealth::Healthy => "ok",
        StoreHealth::Full => "full",
        StoreHealth::Degraded => "degraded",
    }
}

impl Default for StoreMetrics {
    fn default() -> Self {
        StoreMetrics {
            bytes: AtomicU64::new(0),
            unsent: AtomicU64::new(UNCOUNTED),
            oldest_unsent_age_ms: AtomicU64::new(u64::MAX),
            oldest_unsent_at_mono_ns: AtomicU64::new(0),
            records_committed: AtomicU64::new(0),
            last_commit_ns: AtomicU64::new(0),
            health: AtomicU8::new(0),
            problem: Mutex::new(None),
            pending: AtomicU64::new(0),
            failed_commits: AtomicU64::new(0),
            dropped: AtomicU64::new(0),
            decimated: AtomicU64::new(0),
            rejected: AtomicU64::new(0),
            held_back: AtomicU64::new(0),
            corrupt_regions: AtomicU64::new(0),
        }
    }
}

impl StoreMetrics {
    /// Bytes the store occupies on disk.
    pub fn set_bytes(&self, bytes: u64) {
        self.bytes.store(bytes, Ordering::Relaxed);
    }

    /// The unsent backlog: how many records, and how old the oldest is now (`None` when
    /// nothing is unsent). The age keeps growing between updates.
    pub fn set_unsent(&self, records: u64, oldest_age: Option<Duration>) {
        // A real count never reaches the sentinel (sequence numbers stay below 2^63).
        self.unsent
            .store(records.min(UNCOUNTED - 1), Ordering::Relaxed);
        let ms = oldest_age.map_or(u64::MAX, |d| {
            u64::try_from(d.as_millis()).unwrap_or(u64::MAX - 1)
        });
        self.oldest_unsent_at_mono_ns
            .store(monotonic_ns(), Ordering::Relaxed);
        self.oldest_unsent_age_ms.store(ms, Ordering::Relaxed);
    }

    /// One group commit: how many records it made durable and how long it took.
    pub fn committed(&self, records: u64, took: Duration) {
        self.records_committed.fetch_add(records, Ordering::Relaxed);
        self.last_commit_ns.store(
            u64::try_from(took.as_nanos()).unwrap_or(u64::MAX),
            Ordering::Relaxed,
        );
    }

    /// The store's state after a commit (successful or not): health, the error while
    /// unhealthy, records waiting in memory, losses since start.
    pub fn set_state(&self, stats: &StoreStats, problem: Option<&str>) {
        let health = match stats.health {
            StoreHealth::Full => 1,
            StoreHealth::Degraded => 2,
            _ => 0,
        };
        self.health.store(health, Ordering::Relaxed);
        *self.problem.lock().unwrap_or_else(|e| e.into_inner()) = problem.map(str::to_owned);
        self.pending.store(stats.pending_records, Ordering::Relaxed);
        let l = &stats.losses;
        self.failed_commits
            .store(l.failed_commits, Ordering::Relaxed);
        self.dropped.store(l.dropped, Ordering::Relaxed);
        self.decimated.store(l.decimated, Ordering::Relaxed);
        self.rejected.store(l.rejected, Ordering::Relaxed);
        self.held_back.store(l.held_back, Ordering::Relaxed);
        self.corrupt_regions
            .store(l.corrupt_regions, Ordering::Relaxed);
    }

    /// Whether the store's writes get through.
    pub fn health(&self) -> StoreHealth {
        match self.health.load(Ordering::Relaxed) {
            1 => StoreHealth::Full,
            2 => StoreHealth::Degraded,
            _ => StoreHealth::Healthy,
        }
    }

    /// The error of the last failed commit, while unhealthy.
    pub fn problem(&self) -> Option<String> {
        self.problem
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }

    /// Records waiting in memory for a commit.
    pub fn pending(&self) -> u64 {
        self.pending.load(Ordering::Relaxed)
    }

    /// Commits that failed since start.
    pub fn failed_commits(&self) -> u64 {
        self.failed_commits.load(Ordering::Relaxed)
    }

    /// Records lost since start, whatever the reason (corrupt regions count once each).
    pub fn lost(&self) -> u64 {
        [
            &self.dropped,
            &self.decimated,
            &self.rejected,
            &self.held_back,
        ]
        .iter()
        .map(|c| c.load(Ordering::Relaxed))
        .sum()
    }

    /// Bytes on disk.
    pub fn bytes(&self) -> u64 {
        self.bytes.load(Ordering::Relaxed)
    }

    /// Unsent records; `None` until the first commit has counted them.
    pub fn unsent(&self) -> Option<u64> {
        Some(self.unsent.load(Ordering::Relaxed)).filter(|n| *n != UNCOUNTED)
    }

    /// Age of the oldest unsent record now.
    pub fn oldest_unsent_age(&self) -> Option<Duration> {
        let ms = self.oldest_unsent_age_ms.load(Ordering::Relaxed);
        if ms == u64::MAX {
            return None;
        }
        let since =
            monotonic_ns().saturating_sub(self.oldest_unsent_at_mono_ns.load(Ordering::Relaxed));
        Some(Duration::from_millis(ms) + Duration::from_nanos(since))
    }

    /// Records made durable since start.
    pub fn records_committed(&self) -> u64 {
        self.records_committed.load(Ordering::Relaxed)
    }

    /// Duration of the latest commit.
    pub fn last_commit(&self) -> Duration {
        Duration::from_nanos(self.last_commit_ns.load(Ordering::Relaxed))
    }
}

/// Every metric of the agent. Shared as `Arc<Metrics>`.
#[derive(Debug)]
pub struct Metrics {
    node: String,
    sensors: Box<[SensorMetrics]>,
    /// The store's figures.
    pub store: StoreMetrics,
    /// The link to the hub.
    pub uplink: uplink::UplinkMetrics,
    /// The power step in force.
    pub power: power::PowerMetrics,
    /// What the local MQTT bus brought in.
    pub ingest: ingest::IngestMetrics,
    /// What the local MQTT bus sent.
    pub bus: bus::BusMetrics,
    started_mono_ns: u64,
}

impl Metrics {
    /// A registry for `node` and its sensors, numbered as their [`SensorId`]s.
    pub fn new(node: &str, sensors: impl IntoIterator<Item = SensorLabel>) -> Arc<Self> {
        let sensors: Box<[SensorMetrics]> = sensors.into_iter().map(SensorMetrics::new).collect();
        Arc::new(Metrics {
            node: node.to_owned(),
            ingest: ingest::IngestMetrics::new(sensors.iter().map(|s| &s.label)),
            sensors,
            store: StoreMetrics::default(),
            uplink: uplink::UplinkMetrics::default(),
            power: power::PowerMetrics::default(),
            bus: bus::BusMetrics::default(),
            started_mono_ns: monotonic_ns(),
        })
    }

    /// A registry for the config's node and sensors.
    pub fn from_config(config: &AgentConfig) -> Arc<Self> {
        Metrics::new(
            &config.node.name,
            config.sensors.iter().map(|s| SensorLabel {
                name: s.name.clone(),
                // SensorKind's variant names lower-cased are the config's spelling.
                kind: format!("{:?}", s.kind).to_lowercase(),
            }),
        )
    }

    /// The node's name.
    pub fn node(&self) -> &str {
        &self.node
    }

    /// One sensor's metrics; `None` for an id the config did not number.
    pub fn sensor(&self, id: SensorId) -> Option<&SensorMetrics> {
        self.sensors.get(usize::from(id.0))
    }

    /// Every sensor's metrics, in id order.
    pub fn sensors(&self) -> &[SensorMetrics] {
        &self.sensors
    }

    /// Time since the registry was made.
    pub fn uptime(&self) -> Duration {
        Duration::from_nanos(monotonic_ns().saturating_sub(self.started_mono_ns))
    }

    /// One line for systemd's `STATUS=` (`systemctl status`): sensor states and backlog,
    /// e.g. `4 sensors: 3 running, 1 degraded; 1200 unsent`.
    pub fn summary_line(&self) -> String {
        use std::fmt::Write;
        let mut line = format!("{} sensors:", self.sensors.len());
        let mut first = true;
        for st in SENSOR_STATES {
            let n = self
                .sensors
                .iter()
                .filter(|s| s.state() == Some(st))
                .count();
            if n > 0 {
                let sep = if first { " " } else { ", " };
                let _ = write!(line, "{sep}{n} {}", state_label(st));
                first = false;
            }
        }
        if let Some(unsent) = self.store.unsent() {
            let _ = write!(line, "; {unsent} unsent");
        }
        line
    }

    /// The Prometheus text exposition format (version 0.0.4).
    pub fn render(&self) -> String {
        use std::fmt::Write;
        let mut out = String::with_capacity(4096);
        fn family(out: &mut String, name: &str, kind: &str, help: &str) {
            let _ = writeln!(out, "# HELP {name} {help}\n# TYPE {name} {kind}");
        }
        family(
            &mut out,
            "aloft_agent_info",
            "gauge",
            "The agent's version and node.",
        );
        let _ = writeln!(
            out,
            "aloft_agent_info{{node=\"{}\",version=\"{}\"}} 1",
            escape(&self.node),
            env!("CARGO_PKG_VERSION")
        );
        family(
            &mut out,
            "aloft_agent_uptime_seconds",
            "gauge",
            "Seconds since start.",
        );
        let _ = writeln!(
            out,
            "aloft_agent_uptime_seconds {}",
            self.uptime().as_secs_f64()
        );

        family(
            &mut out,
            "aloft_readings_total",
            "counter",
            "Readings taken, by sensor and quantity.",
        );
        for s in self.sensors.iter() {
            for q in Quantity::ALL {
                let n = s.readings_of(*q);
                if n > 0 {
                    let _ = writeln!(
                        out,
                        "aloft_readings_total{{sensor=\"{}\",quantity=\"{}\"}} {n}",
                        escape(&s.label.name),
                        q
                    );
                }
            }
        }
        family(
            &mut out,
            "aloft_sensor_errors_total",
            "counter",
            "Errors survived, by sensor and kind.",
        );
        for s in self.sensors.iter() {
            for k in SensorErrorKind::ALL {
                let _ = writeln!(
                    out,
                    "aloft_sensor_errors_total{{sensor=\"{}\",kind=\"{}\"}} {}",
                    escape(&s.label.name),
                    k.label(),
                    s.errors_of(k)
                );
            }
        }
        family(
            &mut out,
            "aloft_sensor_state",
            "gauge",
            "1 for the state each sensor is in, 0 for the others.",
        );
        for s in self.sensors.iter() {
            let current = s.state();
            for st in SENSOR_STATES {
                let _ = writeln!(
                    out,
                    "aloft_sensor_state{{sensor=\"{}\",kind=\"{}\",state=\"{}\"}} {}",
                    escape(&s.label.name),
                    escape(&s.label.kind),
                    state_label(st),
                    u8::from(current == Some(st))
                );
            }
        }
        family(
            &mut out,
            "aloft_sensor_restarts_total",
            "counter",
            "Sensor restarts (backoff and operator), by sensor.",
        );
        for s in self.sensors.iter() {
            let _ = writeln!(
                out,
                "aloft_sensor_restarts_total{{sensor=\"{}\"}} {}",
                escape(&s.label.name),
                s.restarts()
            );
        }
        if let Ok(switches) = wakeups::voluntary_switches(None) {
            family(
                &mut out,
                "aloft_agent_voluntary_context_switches_total",
                "counter",
                "Times the agent's live threads blocked and woke (idle wake-ups).",
            );
            let _ = writeln!(
                out,
                "aloft_agent_voluntary_context_switches_total {switches}"
            );
        }
        let st = &self.store;
        family(
            &mut out,
            "aloft_store_bytes",
            "gauge",
            "Bytes the store occupies on disk.",
        );
        let _ = writeln!(out, "aloft_store_bytes {}", st.bytes());
        family(
            &mut out,
            "aloft_store_unsent_records",
            "gauge",
            "Records durable in the store and not yet acked by the hub.",
        );
        // Both backlog gauges appear once the store has counted the backlog: a 0 before
        // that would tell a drain "nothing unsent" about a store not yet looked at.
        if let Some(unsent) = st.unsent() {
            let _ = writeln!(out, "aloft_store_unsent_records {unsent}");
        }
        family(
            &mut out,
            "aloft_store_oldest_unsent_age_seconds",
            "gauge",
            "Age of the oldest unsent record (0 when nothing is unsent).",
        );
        if st.unsent().is_some() {
            let _ = writeln!(
                out,
                "aloft_store_oldest_unsent_age_seconds {}",
                st.oldest_unsent_age().unwrap_or_default().as_secs_f64()
            );
        }
        family(
            &mut out,
            "aloft_store_records_committed_total",
            "counter",
            "Records made durable by group commits.",
        );
        let _ = writeln!(
            out,
            "aloft_store_records_committed_total {}",
            st.records_committed()
        );
        family(
            &mut out,
            "aloft_store_last_commit_seconds",
            "gauge",
            "Duration of the latest group commit.",
        );
        let _ = writeln!(
            out,
            "aloft_store_last_commit_seconds {}",
            st.last_commit().as_secs_f64()
        );
        family(
            &mut out,
            "aloft_store_health",
            "gauge",
            "1 for the store's current health (ok; full: the disk is full and nothing can be freed; degraded: writes fail).",
        );
        let current = st.health();
        for health in [
            StoreHealth::Healthy,
            StoreHealth::Full,
            StoreHealth::Degraded,
        ] {
            let _ = writeln!(
                out,
                "aloft_store_health{{state=\"{}\"}} {}",
                health_label(health),
                u8::from(health == current)
            );
        }
        family(
            &mut out,
            "aloft_store_pending_records",
            "gauge",
            "Records waiting in memory for a commit (grows while the disk refuses writes).",
        );
        let _ = writeln!(out, "aloft_store_pending_records {}", st.pending());
        family(
            &mut out,
            "aloft_store_failed_commits_total",
            "counter",
            "Group commits that failed (the disk full with nothing to free, or a write error).",
        );
        let _ = writeln!(
            out,
            "aloft_store_failed_commits_total {}",
            st.failed_commits()
        );
        family(
            &mut out,
            "aloft_store_lost_records_total",
            "counter",
            "Records lost since start, each covered by a gap record, by reason.",
        );
        for (reason, counter) in [
            ("dropped", &st.dropped),
            ("decimated", &st.decimated),
            ("rejected", &st.rejected),
            ("memory_bound", &st.held_back),
        ] {
            let _ = writeln!(
                out,
                "aloft_store_lost_records_total{{reason=\"{reason}\"}} {}",
                counter.load(Ordering::Relaxed)
            );
        }
        family(
            &mut out,
            "aloft_store_corrupt_regions_total",
            "counter",
            "Damaged or missing regions of the store found at open (each covered by a gap record).",
        );
        let _ = writeln!(
            out,
            "aloft_store_corrupt_regions_total {}",
            st.corrupt_regions.load(Ordering::Relaxed)
        );
        self.uplink.render(&mut out);
        self.power.render(&mut out);
        self.ingest.render(&mut out);
        self.bus.render(&mut out);
        out
    }
}

/// Escapes a label value: backslash, double quote and newline.
fn escape(v: &str) -> std::borrow::Cow<'_, str> {
    if !v.contains(['\\', '"', '\n']) {
        return std::borrow::Cow::Borrowed(v);
    }
    let mut s = String::with_capacity(v.len() + 4);
    for c in v.chars() {
        match c {
            '\\' => s.push_str("\\\\"),
            '"' => s.push_str("\\\""),
            '\n' => s.push_str("\\n"),
            c => s.push(c),
        }
    }
    std::borrow::Cow::Owned(s)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn registry() -> Arc<Metrics> {
        Metrics::new(
            "glider",
            [
                SensorLabel {
                    name: "gps".into(),
                    kind: "ublox".into(),
                },
                SensorLabel {
                    name: "odd \"name\"".into(),
                    kind: "bme280".into(),
                },
            ],
        )
    }

    #[test]
    fn a_registry_from_the_config_names_sensors_and_kinds_as_the_file_does() {
        let config: AgentConfig = serde_json::from_str(
            r#"{"node": {"name": "glider"},
                "store": {"path": "/var/lib/aloft", "max_bytes": 1000, "full_policy": "decimate",
                          "flush_interval": "1s", "retain_acked": "1h"},
                "sensor": [{"name": "gps", "kind": "ublox"}, {"name": "tas", "kind": "ms4525do"}]}"#,
        )
        .unwrap();
        let m = Metrics::from_config(&config);
        assert_eq!(m.node(), "glider");
        let labels: Vec<_> = m.sensors().iter().map(|s| s.label().clone()).collect();
        assert_eq!(
            labels,
            [
                SensorLabel {
                    name: "gps".into(),
                    kind: "ublox".into()
                },
                SensorLabel {
                    name: "tas".into(),
                    kind: "ms4525do".into()
                },
            ]
        );
    }

    #[test]
    fn quantities_are_numbered_in_their_listed_order() {
        for (i, q) in Quantity::ALL.iter().enumerate() {
            assert_eq!(usize::from(q.code()), i, "{q}");
        }
    }

    #[test]
    fn readings_are_counted_by_quantity_and_the_latest_time_kept() {
        let m = registry();
        let gps = m.sensor(SensorId(0)).unwrap();
        gps.reading(Quantity::Latitude, 10);
        gps.reading(Quantity::Latitude, 30);
        gps.reading(Quantity::Longitude, 20);
        assert_eq!(gps.readings_of(Quantity::Latitude), 2);
        assert_eq!(gps.readings_total(), 3);
        assert_eq!(gps.last_reading_mono_ns(), Some(30));
        assert!(m.sensor(SensorId(2)).is_none());
    }

    #[test]
    fn the_text_has_one_series_per_state_with_the_current_one_set() {
        let m = registry();
        let gps = m.sensor(SensorId(0)).unwrap();
        gps.set_state(SensorState::Degraded, "3 bad lines");
        let text = m.render();
        assert!(
            text.contains(
                "aloft_sensor_state{sensor=\"gps\",kind=\"ublox\",state=\"degraded\"} 1\n"
            )
        );
        assert!(
            text.contains(
                "aloft_sensor_state{sensor=\"gps\",kind=\"ublox\",state=\"running\"} 0\n"
            )
        );
        assert_eq!(gps.reason(), "3 bad lines");
    }

    #[test]
    fn the_summary_line_counts_sensors_by_state() {
        let m = registry();
        m.sensor(SensorId(0))
            .unwrap()
            .set_state(SensorState::Running, "");
        m.store.set_unsent(12, None);
        assert_eq!(
            m.summary_line(),
            "2 sensors: 1 starting, 1 running; 12 unsent"
        );
    }

    #[test]
    fn label_values_are_escaped() {
        let m = registry();
        m.sensor(SensorId(1)).unwrap().error(SensorErrorKind::Nack);
        assert!(
            m.render().contains(
                "aloft_sensor_errors_total{sensor=\"odd \\\"name\\\"\",kind=\"nack\"} 1\n"
            )
        );
    }

    /// Before the store's first count the backlog is unknown: a scraper waiting for
    /// "nothing unsent" must not see a 0 that only means "not counted yet".
    #[test]
    fn the_backlog_is_not_exported_until_the_store_has_counted_it() {
        let m = registry();
        let text = m.render();
        let samples: Vec<&str> = text
            .lines()
            .filter(|l| !l.starts_with('#'))
            .filter(|l| {
                l.starts_with("aloft_store_unsent_records")
                    || l.starts_with("aloft_store_oldest_unsent_age_seconds")
            })
            .collect();
        assert_eq!(samples, Vec::<&str>::new(), "{text}");
        assert_eq!(m.store.unsent(), None);
        assert!(!m.summary_line().contains("unsent"), "{}", m.summary_line());

        m.store.set_unsent(0, None);
        let text = m.render();
        assert!(text.contains("\naloft_store_unsent_records 0\n"), "{text}");
        assert!(
            text.contains("\naloft_store_oldest_unsent_age_seconds 0\n"),
            "{text}"
        );
        assert_eq!(m.store.unsent(), Some(0));
        assert!(
            m.summary_line().ends_with("; 0 unsent"),
            "{}",
            m.summary_line()
        );
    }

    #[test]
    fn the_oldest_unsent_age_keeps_growing_between_updates() {
        let m = registry();
        assert_eq!(m.store.oldest_unsent_age(), None);
        m.store.set_unsent(5, Some(Duration::from_secs(60)));
        assert!(m.store.oldest_unsent_age().unwrap() >= Duration::from_secs(60));
        m.store.set_unsent(0, None);
        assert_eq!(m.store.oldest_unsent_age(), None);
    }
}
