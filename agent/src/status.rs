//! The local picture for `aloft-agent status`: node, boot, time, each sensor, the store.
//!
//! The running agent gathers a [`StatusReport`] at request time and serves it as JSON at
//! `GET /status` on its local endpoint; the `status` command fetches it with [`fetch`] and
//! prints [`StatusReport::render`]. Ages are computed by the agent, on its own monotonic
//! clock, so the command needs no clock of its own (the board may still think it is 1970).

use std::fmt::Write as _;
use std::net::SocketAddr;
use std::time::Duration;

use aloft_protocol::{SensorState, TimeSource};
use serde::{Deserialize, Serialize};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use crate::metrics::{Metrics, state_label};
use crate::timekeeping::{SyncStatus, TimeStatus, hex};

/// Largest status answer accepted, bytes (a few hundred sensors fit).
pub const MAX_STATUS_BYTES: u64 = 1024 * 1024;
/// How long `fetch` waits for the agent in all.
pub const FETCH_TIMEOUT: Duration = Duration::from_secs(5);

/// Problems fetching the status.
#[derive(Debug, thiserror::Error)]
pub enum StatusError {
    /// No agent answered at the address.
    #[error("no agent at {addr}: {source}")]
    Connect {
        /// The endpoint.
        addr: SocketAddr,
        /// Why.
        source: std::io::Error,
    },
    /// The exchange broke off.
    #[error("reading the status from {addr}: {source}")]
    Io {
        /// The endpoint.
        addr: SocketAddr,
        /// Why.
        source: std::io::Error,
    },
    /// The agent did not answer in time.
    #[error("the agent at {0} did not answer within {FETCH_TIMEOUT:?}")]
    Timeout(SocketAddr),
    /// The answer was not a status.
    #[error("unexpected answer from {addr}: {detail}")]
    BadAnswer {
        /// The endpoint.
        addr: SocketAddr,
        /// What was wrong.
        detail: String,
    },
}

/// The time part of the picture.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TimeReport {
    /// Where the UTC of readings taken now comes from.
    pub source: TimeSource,
    /// Whether the kernel says NTP keeps the system clock (`None`: could not ask).
    pub ntp_synchronised: Option<bool>,
    /// Source of the latest time correlation appended.
    pub last_correlation_source: Option<TimeSource>,
    /// Its UTC, ns since the Unix epoch.
    pub last_correlation_utc_ns: Option<i64>,
    /// How long ago it was taken, s.
    pub last_correlation_age_s: Option<f64>,
    /// Wall clock steps seen since start.
    pub clock_steps: u64,
}

/// One sensor.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SensorReport {
    /// Name in the config.
    pub name: String,
    /// Kind in the config.
    pub kind: String,
    /// Current state.
    pub state: Option<SensorState>,
    /// Why it is in that state.
    pub reason: String,
    /// Restarts since start.
    pub restarts: u64,
    /// Readings since start.
    pub readings: u64,
    /// Errors since start.
    pub errors: u64,
    /// Age of the latest reading, s (`None`: none yet).
    pub last_reading_age_s: Option<f64>,
}

/// The store (the outbox).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct StoreReport {
    /// Bytes on disk.
    pub bytes: u64,
    /// Records not yet acked by the hub.
    pub unsent: u64,
    /// Age of the oldest unsent record, s.
    pub oldest_unsent_age_s: Option<f64>,
    /// Records made durable since start.
    pub records_committed: u64,
    /// `ok`, `full` (the disk is full and nothing can be freed) or `degraded` (writes
    /// fail); records wait in memory meanwhile.
    #[serde(default)]
    pub health: String,
    /// Why the store is not `ok`.
    #[serde(default)]
    pub problem: Option<String>,
    /// Records waiting in memory for a commit.
    #[serde(default)]
    pub pending: u64,
    /// Records lost since start (each covered by a gap record).
    #[serde(default)]
    pub lost: u64,
}

/// The whole local picture.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct StatusReport {
    /// The node's name.
    pub node: String,
    /// The agent's version.
    pub agent_version: String,
    /// This boot's id, hex.
    pub boot_id: String,
    /// Seconds since the agent started.
    pub uptime_s: f64,
    /// Time.
    pub time: TimeReport,
    /// Sensors, in id order.
    pub sensors: Vec<SensorReport>,
    /// The store.
    pub store: StoreReport,
    /// The power step in force; `None` without a `[power]` section.
    #[serde(default)]
    pub power: Option<PowerStatus>,
}

/// The power step in force.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PowerStatus {
    /// 0 at full power; higher saves more.
    pub level: u8,
    /// The step's name (`full` at level 0).
    pub step: String,
    /// Why it is in force.
    pub reason: String,
    /// How long it has been in force, s.
    pub for_s: f64,
    /// Changes of step since start.
    pub transitions: u64,
    /// The battery's values are too old to decide on: the step holds.
    pub battery_stale: bool,
}

fn age_s(now_mono_ns: u64, then_mono_ns: u64) -> f64 {
    Duration::from_nanos(now_mono_ns.saturating_sub(then_mono_ns)).as_secs_f64()
}

impl StatusReport {
    /// The picture now, from the registry and the timekeeper's view; `now_mono_ns` is the
    /// monotonic clock the readings and correlations were stamped with.
    pub fn gather(metrics: &Metrics, time: &TimeStatus, now_mono_ns: u64) -> Self {
        let corr = time.last_correlation;
        StatusReport {
            node: metrics.node().to_owned(),
            agent_version: env!("CARGO_PKG_VERSION").to_owned(),
            boot_id: hex(&time.boot_id.0),
            uptime_s: metrics.uptime().as_secs_f64(),
            time: TimeReport {
                source: time.source,
                ntp_synchronised: match time.sync {
                    SyncStatus::Synchronised { .. } => Some(true),
                    SyncStatus::Unsynchronised => Some(false),
                    SyncStatus::Unknown => None,
                },
                last_correlation_source: corr.map(|c| c.source),
                last_correlation_utc_ns: corr.map(|c| c.utc_ns),
                last_correlation_age_s: corr.map(|c| age_s(now_mono_ns, c.mono_ns)),
                clock_steps: time.steps,
            },
            sensors: metrics
                .sensors()
                .iter()
                .map(|s| SensorReport {
                    name: s.label().name.clone(),
                    kind: s.label().kind.clone(),
                    state: s.state(),
                    reason: s.reason(),
                    restarts: s.restarts(),
                    readings: s.readings_total(),
                    errors: s.errors_total(),
                    last_reading_age_s: s.last_reading_mono_ns().map(|t| age_s(now_mono_ns, t)),
                })
                .collect(),
            store: StoreReport {
                bytes: metrics.store.bytes(),
                // The report's count reads 0 until the first commit counts it (its field is a
                // plain number); the metrics leave the backlog out until then.
                unsent: metrics.store.unsent().unwrap_or(0),
                oldest_unsent_age_s: metrics.store.oldest_unsent_age().map(|d| d.as_secs_f64()),
                records_committed: metrics.store.records_committed(),
                health: crate::metrics::health_label(metrics.store.health()).to_owned(),
                problem: metrics.store.problem(),
                pending: metrics.store.pending(),
                lost: metrics.store.lost(),
            },
            power: metrics.power.configured().then(|| {
                let (step, reason) = metrics.power.step();
                PowerStatus {
                    level: metrics.power.level(),
                    step,
                    reason,
                    for_s: age_s(now_mono_ns, metrics.power.since_mono_ns()),
                    transitions: metrics.power.transitions(),
                    battery_stale: metrics.power.battery_stale(),
                }
            }),
        }
    }

    /// The text `aloft-agent status` prints.
    pub fn render(&self) -> String {
        let mut o = String::new();
        let _ = writeln!(
            o,
            "node {}  agent {}  boot {}  up {}",
            shown(&self.node),
            shown(&self.agent_version),
            shown(&self.boot_id),
            human_age(self.uptime_s)
        );
        let t = &self.time;
        let ntp = match t.ntp_synchronised {
            Some(true) => "synchronised",
            Some(false) => "unsynchronised",
            None => "unknown",
        };
        let _ = write!(
            o,
            "time {}  ntp {}  steps {}",
            source_label(t.source),
            ntp,
            t.clock_steps
        );
        match (
            t.last_correlation_source,
            t.last_correlation_utc_ns,
            t.last_correlation_age_s,
        ) {
            (Some(src), Some(utc), Some(age)) => {
                let _ = writeln!(
                    o,
                    "  last correlation {} {} ({} ago)",
                    source_label(src),
                    utc_text(utc),
                    human_age(age)
                );
            }
            _ => {
                let _ = writeln!(o, "  no time correlation yet");
            }
        }
        let _ = writeln!(o);
        let width = self
            .sensors
            .iter()
            .map(|s| shown(&s.name).chars().count())
            .max()
            .unwrap_or(0)
            .max(6);
        let _ = writeln!(
            o,
            "{}  {:<11}  {:<10}  {:>8}  {:>10}  {:>7}  {:>9}  reason",
            padded("SENSOR", width),
            "KIND",
            "STATE",
            "RESTARTS",
            "READINGS",
            "ERRORS",
            "LAST"
        );
        for s in &self.sensors {
            let _ = writeln!(
                o,
                "{}  {:<11}  {:<10}  {:>8}  {:>10}  {:>7}  {:>9}  {}",
                padded(&shown(&s.name), width),
                shown(&s.kind),
                s.state.map_or("unknown", state_label),
                s.restarts,
                s.readings,
                s.errors,
                s.last_reading_age_s
                    .map_or_else(|| "never".to_owned(), human_age),
                shown(&s.reason)
            );
        }
        let st = &self.store;
        let _ = writeln!(
            o,
            "\nstore {}  unsent {} records  oldest unsent {}  committed {}",
            human_bytes(st.bytes),
            st.unsent,
            st.oldest_unsent_age_s
                .map_or_else(|| "none".to_owned(), human_age),
            st.records_committed
        );
        if !st.health.is_empty() {
            let _ = write!(
                o,
                "store health {}  waiting in memory {} records  lost since start {}",
                shown(&st.health),
                st.pending,
                st.lost
            );
            if let Some(problem) = &st.problem {
                let _ = write!(o, "  ({})", shown(problem));
            }
            o.push('\n');
        }
        if let Some(p) = &self.power {
            let _ = writeln!(
                o,
                "power step {} (level {}) for {}: {}{}  changes {}",
                shown(&p.step),
                p.level,
                human_age(p.for_s),
                shown(&p.reason),
                if p.battery_stale {
                    "  (battery values stale: the step holds)"
                } else {
                    ""
                },
                p.transitions
            );
        }
        o
    }
}

/// Text from a device, a driver or the config as a terminal may show it: control
/// characters (C0 with newlines, DEL, C1, bidirectional overrides, line separators) become
/// visible escapes, so a sensor's reason cannot drive the terminal or break the table.
fn shown(text: &str) -> std::borrow::Cow<'_, str> {
    aloft_api::text::terminal_text(text, false)
}

/// `text` padded with spaces to `width` characters (by hand: a `{:width$}` format panics
/// above 65 535).
fn padded(text: &str, width: usize) -> String {
    let mut out = text.to_owned();
    out.extend(std::iter::repeat_n(
        ' ',
        width.saturating_sub(text.chars().count()),
    ));
    out
}

fn source_label(s: TimeSource) -> &'static str {
    match s {
        TimeSource::Monotonic => "monotonic-only",
        TimeSource::SystemClock => "system-clock",
        TimeSource::Gnss => "gnss",
        TimeSource::Reconstructed => "gnss-correlated",
        _ => "other",
    }
}

fn human_age(s: f64) -> String {
    if !s.is_finite() || s < 0.0 {
        return "?".into();
    }
    if s < 10.0 {
        format!("{s:.1}s")
    } else if s < 120.0 {
        format!("{s:.0}s")
    } else if s < 7200.0 {
        format!("{:.0}m", s / 60.0)
    } else {
        format!("{:.1}h", s / 3600.0)
    }
}

fn human_bytes(b: u64) -> String {
    const MIB: f64 = 1024.0 * 1024.0;
    if b < 1024 * 1024 {
        format!("{:.1} KiB", b as f64 / 1024.0)
    } else {
        format!("{:.1} MiB", b as f64 / MIB)
    }
}

/// `2026-06-01T12:00:00Z` from ns since the Unix epoch (proleptic Gregorian, UTC).
pub fn utc_text(utc_ns: i64) -> String {
    let secs = utc_ns.div_euclid(1_000_000_000);
    let days = secs.div_euclid(86_400);
    let sod = secs.rem_euclid(86_400);
    // Days to civil date: H. Hinnant's algorithm, exact over the whole i64 range we use.
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    format!(
        "{year:04}-{month:02}-{day:02}T{:02}:{:02}:{:02}Z",
        sod / 3600,
        sod / 60 % 60,
        sod % 60
    )
}

/// Fetches the running agent's status from its local endpoint.
pub async fn fetch(addr: SocketAddr) -> Result<StatusReport, StatusError> {
    tokio::time::timeout(FETCH_TIMEOUT, fetch_inner(addr))
        .await
        .map_err(|_| StatusError::Timeout(addr))?
}

async fn fetch_inner(addr: SocketAddr) -> Result<StatusReport, StatusError> {
    let mut stream = TcpStream::connect(addr)
        .await
        .map_err(|source| StatusError::Connect { addr, source })?;
    let io = |source| StatusError::Io { addr, source };
    let request = format!("GET /status HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n");
    stream.write_all(request.as_bytes()).await.map_err(io)?;
    let mut answer = Vec::new();
    (&mut stream)
        .take(MAX_STATUS_BYTES)
        .read_to_end(&mut answer)
        .await
        .map_err(io)?;
    let bad = |detail: String| StatusError::BadAnswer { addr, detail };
    let split = answer
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .ok_or_else(|| bad("no HTTP head".into()))?;
    let head = String::from_utf8_lossy(&answer[..split]);
    let status_line = head.lines().next().unwrap_or_default();
    if status_line.split(' ').nth(1) != Some("200") {
        return Err(bad(status_line.to_owned()));
    }
    serde_json::from_slice(&answer[split + 4..]).map_err(|e| bad(e.to_string()))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn report_with(text: &str, sensors: usize) -> StatusReport {
        StatusReport {
            node: text.to_owned(),
            agent_version: text.to_owned(),
            boot_id: text.to_owned(),
            uptime_s: 5.0,
            time: TimeReport {
                source: TimeSource::Gnss,
                ntp_synchronised: None,
                last_correlation_source: None,
                last_correlation_utc_ns: None,
                last_correlation_age_s: None,
                clock_steps: 0,
            },
            sensors: (0..sensors)
                .map(|i| SensorReport {
                    name: format!("{text}{i}"),
                    kind: text.to_owned(),
                    state: None,
                    reason: text.repeat(i + 1),
                    restarts: 0,
                    readings: 0,
                    errors: 0,
                    last_reading_age_s: None,
                })
                .collect(),
            store: StoreReport {
                bytes: 0,
                unsent: 0,
                oldest_unsent_age_s: None,
                records_committed: 0,
                health: text.to_owned(),
                problem: Some(text.to_owned()),
                pending: 0,
                lost: 0,
            },
            power: (sensors % 2 == 1).then(|| PowerStatus {
                level: 1,
                step: text.to_owned(),
                reason: text.to_owned(),
                for_s: 3.0,
                transitions: 1,
                battery_stale: false,
            }),
        }
    }

    use proptest::prelude::*;

    proptest! {
        #[test]
        fn status_of_any_text_keeps_its_lines_and_shows_no_control_character(
            text in prop::collection::vec(
                prop_oneof![
                    any::<char>(),
                    prop::sample::select(vec!['\u{1b}', '\n', '\r', '\u{9b}', '\u{202e}', '\u{7f}']),
                ],
                0..24,
            ).prop_map(String::from_iter),
            sensors in 0usize..4,
        ) {
            let shown = report_with(&text, sensors).render();
            // Header line, time line, blank, table header, a line per sensor, blank, store,
            // and the store's health when it reports one.
            let health_line = usize::from(!text.is_empty());
            let power_line = sensors % 2;
            prop_assert_eq!(shown.lines().count(), 6 + sensors + health_line + power_line, "{:?}", shown);
            let bad = shown.chars().find(|c| *c != '\n' && (c.is_control() || ('\u{202a}'..='\u{202e}').contains(c)));
            prop_assert_eq!(bad, None, "{:?}", shown);
        }
    }

    #[test]
    fn a_sensor_name_wider_than_65535_characters_renders_without_panicking() {
        let long = "n".repeat(70_000);
        let shown = report_with(&long, 1).render();
        assert!(shown.contains(&long));
    }

    #[test]
    fn utc_text_matches_known_dates() {
        assert_eq!(utc_text(0), "1970-01-01T00:00:00Z");
        assert_eq!(utc_text(1_780_272_000_000_000_000), "2026-06-01T00:00:00Z");
        // A leap day and the last second of a year.
        assert_eq!(utc_text(951_782_400_000_000_000), "2000-02-29T00:00:00Z");
        assert_eq!(utc_text(1_798_761_599_999_999_999), "2026-12-31T23:59:59Z");
    }

    #[test]
    fn ages_read_as_an_operator_expects() {
        assert_eq!(human_age(0.5), "0.5s");
        assert_eq!(human_age(75.0), "75s");
        assert_eq!(human_age(600.0), "10m");
        assert_eq!(human_age(9000.0), "2.5h");
    }
}
