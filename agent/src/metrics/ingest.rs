//! What the local MQTT bus brought in: readings taken per `mqtt` sensor, messages refused
//! per sensor and reason, messages for no sensor of the config, and KubeEdge twin requests
//! answered and refused.
//!
//! Invariant: as for every metric here, the rows are made at start from the config (one
//! per `mqtt` sensor) and an update is a relaxed atomic add, no lock, no allocation.

use std::fmt::Write;
use std::sync::atomic::{AtomicU64, Ordering};

use aloft_protocol::SensorId;

use super::{SensorLabel, escape};

/// Why a message was refused: the `reason` label of the metric and the error topic.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum RejectReason {
    /// Not JSON, or not the schema.
    Malformed,
    /// Larger than [`crate::bus::ingest::PAYLOAD_BYTES_MAX`], or more than
    /// [`crate::bus::ingest::BATCH_READINGS_MAX`] readings.
    Oversized,
    /// No `mqtt` sensor of that name in the config.
    UnknownSensor,
    /// A quantity name the vocabulary does not have.
    UnknownQuantity,
    /// A quantity of the vocabulary the sensor does not declare.
    UndeclaredQuantity,
    /// NaN or an infinity.
    NotFinite,
    /// A time before 2000, ahead of the agent's clock, or before the agent's boot.
    BadTime,
    /// A quality flag name that does not exist.
    BadQuality,
    /// Above the sensor's rate bound.
    RateLimited,
    /// The sensor is switched off (config or the hub's desired state).
    Disabled,
    /// The sensor's device has not taken the messages before (it is restarting, or the
    /// store writer is behind): its bounded feed is full.
    Busy,
}

impl RejectReason {
    /// Every reason, in label order.
    pub const ALL: [RejectReason; 11] = [
        RejectReason::Malformed,
        RejectReason::Oversized,
        RejectReason::UnknownSensor,
        RejectReason::UnknownQuantity,
        RejectReason::UndeclaredQuantity,
        RejectReason::NotFinite,
        RejectReason::BadTime,
        RejectReason::BadQuality,
        RejectReason::RateLimited,
        RejectReason::Disabled,
        RejectReason::Busy,
    ];

    /// The label, as the metric and the error topic spell it.
    pub const fn label(self) -> &'static str {
        match self {
            RejectReason::Malformed => "malformed",
            RejectReason::Oversized => "oversized",
            RejectReason::UnknownSensor => "unknown_sensor",
            RejectReason::UnknownQuantity => "unknown_quantity",
            RejectReason::UndeclaredQuantity => "undeclared_quantity",
            RejectReason::NotFinite => "not_finite",
            RejectReason::BadTime => "bad_time",
            RejectReason::BadQuality => "bad_quality",
            RejectReason::RateLimited => "rate_limited",
            RejectReason::Disabled => "disabled",
            RejectReason::Busy => "busy",
        }
    }

    /// The position in [`RejectReason::ALL`].
    pub const fn index(self) -> usize {
        self as usize
    }
}

/// One `mqtt` sensor's counters.
#[derive(Debug)]
struct Row {
    name: String,
    readings: AtomicU64,
    rejected: [AtomicU64; RejectReason::ALL.len()],
}

/// The bus's inbound counters.
#[derive(Debug, Default)]
pub struct IngestMetrics {
    /// By sensor id; `None` for a sensor that is not an `mqtt` one.
    rows: Box<[Option<Row>]>,
    unknown_sensor: AtomicU64,
    twin_answered: AtomicU64,
    twin_refused: AtomicU64,
}

impl IngestMetrics {
    /// Rows for the `mqtt` sensors among `sensors` (in id order).
    pub fn new<'a>(sensors: impl IntoIterator<Item = &'a SensorLabel>) -> Self {
        IngestMetrics {
            rows: sensors
                .into_iter()
                .map(|l| {
                    (l.kind == "mqtt").then(|| Row {
                        name: l.name.clone(),
                        readings: AtomicU64::new(0),
                        rejected: Default::default(),
                    })
                })
                .collect(),
            ..IngestMetrics::default()
        }
    }

    fn row(&self, sensor: SensorId) -> Option<&Row> {
        self.rows.get(usize::from(sensor.0))?.as_ref()
    }

    /// Counts `n` readings taken for `sensor`.
    pub fn taken(&self, sensor: SensorId, n: usize) {
        if let Some(r) = self.row(sensor) {
            r.readings.fetch_add(n as u64, Ordering::Relaxed);
        }
    }

    /// Counts one message refused for `sensor`.
    pub fn refused(&self, sensor: SensorId, reason: RejectReason) {
        if let Some(r) = self.row(sensor) {
            r.rejected[reason.index()].fetch_add(1, Ordering::Relaxed);
        }
    }

    /// Counts one message for a sensor the config does not have.
    pub fn unknown_sensor(&self) {
        self.unknown_sensor.fetch_add(1, Ordering::Relaxed);
    }

    /// Counts one twin request answered (`ok`) or refused.
    pub fn twin(&self, ok: bool) {
        let c = if ok {
            &self.twin_answered
        } else {
            &self.twin_refused
        };
        c.fetch_add(1, Ordering::Relaxed);
    }

    /// Readings taken for `sensor` since start.
    pub fn readings_of(&self, sensor: SensorId) -> u64 {
        self.row(sensor)
            .map_or(0, |r| r.readings.load(Ordering::Relaxed))
    }

    /// Messages refused for `sensor` with `reason` since start.
    pub fn refused_of(&self, sensor: SensorId, reason: RejectReason) -> u64 {
        self.row(sensor)
            .map_or(0, |r| r.rejected[reason.index()].load(Ordering::Relaxed))
    }

    /// Messages for no sensor of the config since start.
    pub fn unknown_sensor_total(&self) -> u64 {
        self.unknown_sensor.load(Ordering::Relaxed)
    }

    /// Appends the families in the Prometheus text format.
    pub fn render(&self, out: &mut String) {
        let rows = || self.rows.iter().flatten();
        let _ = writeln!(
            out,
            "# HELP aloft_agent_ingest_readings_total Readings taken from the MQTT bus, by mqtt sensor.\n\
             # TYPE aloft_agent_ingest_readings_total counter"
        );
        for r in rows() {
            let _ = writeln!(
                out,
                "aloft_agent_ingest_readings_total{{sensor=\"{}\"}} {}",
                escape(&r.name),
                r.readings.load(Ordering::Relaxed)
            );
        }
        let _ = writeln!(
            out,
            "# HELP aloft_agent_ingest_rejected_total Messages refused on the MQTT bus, by mqtt sensor and reason.\n\
             # TYPE aloft_agent_ingest_rejected_total counter"
        );
        for r in rows() {
            for reason in RejectReason::ALL {
                let _ = writeln!(
                    out,
                    "aloft_agent_ingest_rejected_total{{sensor=\"{}\",reason=\"{}\"}} {}",
                    escape(&r.name),
                    reason.label(),
                    r.rejected[reason.index()].load(Ordering::Relaxed)
                );
            }
        }
        let _ = writeln!(
            out,
            "# HELP aloft_agent_ingest_unknown_sensor_total Messages on the ingest topics for no mqtt sensor of the config.\n\
             # TYPE aloft_agent_ingest_unknown_sensor_total counter\n\
             aloft_agent_ingest_unknown_sensor_total {}",
            self.unknown_sensor_total()
        );
        let _ = writeln!(
            out,
            "# HELP aloft_agent_twin_requests_total KubeEdge device twin requests on the MQTT bus, by outcome.\n\
             # TYPE aloft_agent_twin_requests_total counter\n\
             aloft_agent_twin_requests_total{{outcome=\"answered\"}} {}\n\
             aloft_agent_twin_requests_total{{outcome=\"refused\"}} {}",
            self.twin_answered.load(Ordering::Relaxed),
            self.twin_refused.load(Ordering::Relaxed)
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_mqtt_sensors_have_rows_and_every_reason_is_rendered() {
        let labels = [
            SensorLabel {
                name: "gps".into(),
                kind: "ublox".into(),
            },
            SensorLabel {
                name: "sampler".into(),
                kind: "mqtt".into(),
            },
        ];
        let m = IngestMetrics::new(&labels);
        m.taken(SensorId(1), 3);
        m.taken(SensorId(0), 3);
        m.refused(SensorId(1), RejectReason::RateLimited);
        m.unknown_sensor();
        assert_eq!(m.readings_of(SensorId(1)), 3);
        assert_eq!(m.readings_of(SensorId(0)), 0);
        let mut out = String::new();
        m.render(&mut out);
        assert!(out.contains("aloft_agent_ingest_readings_total{sensor=\"sampler\"} 3"));
        assert!(out.contains(
            "aloft_agent_ingest_rejected_total{sensor=\"sampler\",reason=\"rate_limited\"} 1"
        ));
        assert!(!out.contains("sensor=\"gps\""));
        assert_eq!(
            out.matches("aloft_agent_ingest_rejected_total{").count(),
            RejectReason::ALL.len()
        );
        assert!(out.contains("aloft_agent_ingest_unknown_sensor_total 1"));
    }
}
