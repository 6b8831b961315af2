//! The uplink's figures: whether the hub is connected, what crossed the link, how fresh the
//! hub's acks are, and why connections ended.
//!
//! Invariant: as for every metric here, an update is a relaxed atomic store or add, no lock.

use std::fmt::Write;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use crate::clock::monotonic_ns;

/// Why a connection to the hub ended (or never began).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum ReconnectReason {
    /// Nothing arrived within the read deadline (a half-open link).
    Deadline,
    /// The hub refused: TCP refused, HTTP 401 at the upgrade, or a `Refused` message.
    Refused,
    /// Any other failure (TLS, DNS, protocol, store).
    Error,
    /// The hub closed the connection.
    Closed,
}

impl ReconnectReason {
    /// Every reason, in label order.
    pub const ALL: [ReconnectReason; 4] = [
        ReconnectReason::Deadline,
        ReconnectReason::Refused,
        ReconnectReason::Error,
        ReconnectReason::Closed,
    ];

    /// The `reason` label.
    pub const fn label(self) -> &'static str {
        match self {
            ReconnectReason::Deadline => "deadline",
            ReconnectReason::Refused => "refused",
            ReconnectReason::Error => "error",
            ReconnectReason::Closed => "closed",
        }
    }
}

/// The link's counters and gauges.
#[derive(Debug, Default)]
pub struct UplinkMetrics {
    connected: AtomicU64,
    sessions: AtomicU64,
    bytes_sent: AtomicU64,
    bytes_received: AtomicU64,
    records_sent: AtomicU64,
    records_acked: AtomicU64,
    /// Monotonic ns of the last ack that moved the watermark; 0 = none yet.
    last_ack_mono_ns: AtomicU64,
    reconnects: [AtomicU64; 4],
}

impl UplinkMetrics {
    /// A session began (welcome received) or ended.
    pub fn set_connected(&self, connected: bool) {
        if connected {
            self.sessions.fetch_add(1, Ordering::Relaxed);
        }
        self.connected
            .store(u64::from(connected), Ordering::Relaxed);
    }

    /// A message of `bytes` went out.
    pub fn sent(&self, bytes: usize) {
        self.bytes_sent.fetch_add(bytes as u64, Ordering::Relaxed);
    }

    /// A message of `bytes` came in.
    pub fn received(&self, bytes: usize) {
        self.bytes_received
            .fetch_add(bytes as u64, Ordering::Relaxed);
    }

    /// A batch of `records` went out.
    pub fn records_sent(&self, records: usize) {
        self.records_sent
            .fetch_add(records as u64, Ordering::Relaxed);
    }

    /// The hub acked `records` more records.
    pub fn acked(&self, records: u64) {
        self.records_acked.fetch_add(records, Ordering::Relaxed);
        self.last_ack_mono_ns
            .store(monotonic_ns().max(1), Ordering::Relaxed);
    }

    /// A connection ended, or an attempt failed.
    pub fn reconnect(&self, reason: ReconnectReason) {
        let i = ReconnectReason::ALL
            .iter()
            .position(|r| *r == reason)
            .unwrap_or(0);
        if let Some(c) = self.reconnects.get(i) {
            c.fetch_add(1, Ordering::Relaxed);
        }
    }

    /// Whether a session is up.
    pub fn is_connected(&self) -> bool {
        self.connected.load(Ordering::Relaxed) == 1
    }

    /// Sessions since start.
    pub fn sessions(&self) -> u64 {
        self.sessions.load(Ordering::Relaxed)
    }

    /// Message bytes sent since start.
    pub fn bytes_sent(&self) -> u64 {
        self.bytes_sent.load(Ordering::Relaxed)
    }

    /// Records acked since start.
    pub fn records_acked(&self) -> u64 {
        self.records_acked.load(Ordering::Relaxed)
    }

    /// Connections ended for `reason` since start.
    pub fn reconnects(&self, reason: ReconnectReason) -> u64 {
        ReconnectReason::ALL
            .iter()
            .position(|r| *r == reason)
            .and_then(|i| self.reconnects.get(i))
            .map_or(0, |c| c.load(Ordering::Relaxed))
    }

    /// Time since the last ack that moved the watermark.
    pub fn last_ack_age(&self) -> Option<Duration> {
        let at = self.last_ack_mono_ns.load(Ordering::Relaxed);
        (at != 0).then(|| Duration::from_nanos(monotonic_ns().saturating_sub(at)))
    }

    /// Appends the Prometheus text of these figures.
    pub fn render(&self, out: &mut String) {
        let mut one = |name: &str, kind: &str, help: &str, value: String| {
            let _ = writeln!(
                out,
                "# HELP {name} {help}\n# TYPE {name} {kind}\n{name} {value}"
            );
        };
        let load = |a: &AtomicU64| a.load(Ordering::Relaxed).to_string();
        one(
            "aloft_uplink_connected",
            "gauge",
            "1 while a session with the hub is up.",
            load(&self.connected),
        );
        one(
            "aloft_uplink_sessions_total",
            "counter",
            "Sessions the hub welcomed.",
            load(&self.sessions),
        );
        one(
            "aloft_uplink_sent_bytes_total",
            "counter",
            "WebSocket message bytes sent to the hub.",
            load(&self.bytes_sent),
        );
        one(
            "aloft_uplink_received_bytes_total",
            "counter",
            "WebSocket message bytes received from the hub.",
            load(&self.bytes_received),
        );
        one(
            "aloft_uplink_records_sent_total",
            "counter",
            "Store records sent in batches (resends included).",
            load(&self.records_sent),
        );
        one(
            "aloft_uplink_records_acked_total",
            "counter",
            "Store records the hub acked.",
            load(&self.records_acked),
        );
        one(
            "aloft_uplink_last_ack_age_seconds",
            "gauge",
            "Seconds since the hub's watermark last moved (-1: never).",
            self.last_ack_age()
                .map_or("-1".to_string(), |d| d.as_secs_f64().to_string()),
        );
        let _ = writeln!(
            out,
            "# HELP aloft_uplink_reconnects_total Connections to the hub that ended, by reason.\n\
             # TYPE aloft_uplink_reconnects_total counter"
        );
        for reason in ReconnectReason::ALL {
            let _ = writeln!(
                out,
                "aloft_uplink_reconnects_total{{reason=\"{}\"}} {}",
                reason.label(),
                self.reconnects(reason)
            );
        }
    }
}
