//! What the local MQTT bus sent: publishes queued, publishes dropped by a full queue,
//! sessions the broker accepted, whether one is up, outage records replayed.
//!
//! Invariant: as for every metric here, an update is a relaxed atomic store or add, no lock,
//! no allocation; the families are shown only once the bus has started, so an agent without
//! `[mqtt]` serves exactly the metrics it served before.

use std::fmt::Write;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};

/// The bus's outbound counters.
#[derive(Debug, Default)]
pub struct BusMetrics {
    started: AtomicBool,
    connected: AtomicBool,
    /// Publishes queued for the broker.
    pub published: AtomicU64,
    /// Publishes refused by a full queue (the value stays due; the newest goes next tick).
    pub dropped: AtomicU64,
    /// Sessions the broker accepted.
    pub connections: AtomicU64,
    /// Outage records published (with `replay_outage`).
    pub replayed: AtomicU64,
}

impl BusMetrics {
    /// The bus started: its families are shown from now on.
    pub fn started(&self) {
        self.started.store(true, Ordering::Relaxed);
    }

    /// A session is up (`true`) or lost.
    pub fn set_connected(&self, up: bool) {
        self.connected.store(up, Ordering::Relaxed);
    }

    /// Appends the families in the Prometheus text format (nothing before the bus started).
    pub fn render(&self, out: &mut String) {
        if !self.started.load(Ordering::Relaxed) {
            return;
        }
        for (name, kind, help, value) in [
            (
                "aloft_mqtt_connected",
                "gauge",
                "Whether the agent has a session with the MQTT broker.",
                u64::from(self.connected.load(Ordering::Relaxed)),
            ),
            (
                "aloft_mqtt_connections_total",
                "counter",
                "Sessions the MQTT broker accepted.",
                self.connections.load(Ordering::Relaxed),
            ),
            (
                "aloft_mqtt_published_total",
                "counter",
                "Publishes queued for the MQTT broker.",
                self.published.load(Ordering::Relaxed),
            ),
            (
                "aloft_mqtt_dropped_total",
                "counter",
                "Publishes dropped because the queue to the MQTT broker was full (the store has every reading).",
                self.dropped.load(Ordering::Relaxed),
            ),
            (
                "aloft_mqtt_replayed_total",
                "counter",
                "Records of an outage published after the reconnection (replay_outage).",
                self.replayed.load(Ordering::Relaxed),
            ),
        ] {
            let _ = writeln!(
                out,
                "# HELP {name} {help}\n# TYPE {name} {kind}\n{name} {value}"
            );
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nothing_is_shown_before_the_bus_starts_and_every_family_after() {
        let m = BusMetrics::default();
        let mut out = String::new();
        m.render(&mut out);
        assert!(out.is_empty());
        m.started();
        m.set_connected(true);
        m.dropped.fetch_add(3, Ordering::Relaxed);
        m.render(&mut out);
        assert!(out.contains("aloft_mqtt_connected 1\n"));
        assert!(out.contains("aloft_mqtt_dropped_total 3\n"));
        assert_eq!(out.matches("# TYPE ").count(), 5);
    }
}
