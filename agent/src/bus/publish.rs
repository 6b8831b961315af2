//! What the agent publishes on the bus, and when: topic names, payloads, and the coalescing
//! of readings into at most one publish per topic per flush. No I/O: the client loop
//! ([`super::client`]) feeds it the newest values and statuses and sends what it returns.
//!
//! Topics (docs/mqtt.md, "Topics and payloads (out)"), under the configured prefix:
//! - `<prefix>/<node>/<sensor>/<quantity>`: the newest reading, retained, as
//!   `{"value":..,"unit":"..","time":"..","quality":[..]}` ([`reading_payload`]);
//! - `<prefix>/<node>/<sensor>/status`: the sensor's state, retained ([`status_payload`]);
//! - `<prefix>/<node>/status`: `online`, retained, with the last will `offline`.
//!
//! Invariants: a topic level is never empty and never holds a wildcard (node and sensor names
//! are DNS-1123 labels, quantity names snake case; `status` is not a quantity name); the
//! coalescer's memory is one entry per (sensor, quantity) and per sensor, whatever the rate of
//! readings or the state of the broker; a value is offered again until it was handed to the
//! client (a refused publish is retried with the newest value at the next flush, never
//! queued); after [`Coalescer::forget`] (a new connection) every newest value and status is
//! offered again, so retained state is whole after every reconnect.

use std::collections::HashMap;
use std::time::{Duration, UNIX_EPOCH};

use aloft_protocol::{Quality, Quantity, SensorState};
use serde::Serialize;

use crate::sensor::latest::LatestValue;

/// The payload of the node's status while the agent is connected.
pub const ONLINE: &[u8] = b"online";
/// The node's last will, published by the broker when the agent vanishes.
pub const OFFLINE: &[u8] = b"offline";

/// The topic names of one node.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Topics {
    /// `<prefix>/<node>`.
    base: String,
}

impl Topics {
    /// The topics of `node` under `prefix` (both already validated by the config).
    pub fn new(prefix: &str, node: &str) -> Self {
        Topics {
            base: format!("{prefix}/{node}"),
        }
    }

    /// `<prefix>/<node>`.
    pub fn base(&self) -> &str {
        &self.base
    }

    /// The node's online/offline topic.
    pub fn node_status(&self) -> String {
        format!("{}/status", self.base)
    }

    /// A sensor's status topic.
    pub fn sensor_status(&self, sensor: &str) -> String {
        format!("{}/{sensor}/status", self.base)
    }

    /// The topic of a sensor's quantity: its name, or `quantity_<code>` for a code this
    /// build does not know.
    pub fn reading(&self, sensor: &str, quantity: Quantity) -> String {
        match quantity.name() {
            Some(name) => format!("{}/{sensor}/{name}", self.base),
            None => format!("{}/{sensor}/quantity_{}", self.base, quantity.code()),
        }
    }
}

/// A reading on the bus.
#[derive(Debug, Serialize)]
struct ReadingJson<'a> {
    /// The value in `unit`; `null` when not finite.
    value: Option<f64>,
    /// The quantity's unit (UDUNITS).
    unit: &'a str,
    /// When it was taken, RFC 3339 UTC; `null` when the agent has no trusted UTC yet.
    time: Option<String>,
    /// Quality flags; empty when nothing is known to be wrong.
    quality: Vec<&'static str>,
}

/// A sensor's status on the bus.
#[derive(Debug, Serialize)]
struct StatusJson<'a> {
    state: &'a str,
    reason: &'a str,
    enabled: bool,
    restarts: u32,
}

/// RFC 3339 with microseconds, UTC.
fn rfc3339(utc_ns: i64) -> Option<String> {
    let ns = u64::try_from(utc_ns).ok()?;
    let time = UNIX_EPOCH.checked_add(Duration::from_nanos(ns))?;
    Some(humantime::format_rfc3339_micros(time).to_string())
}

/// The compact JSON of one reading.
pub fn reading_payload(quantity: Quantity, value: &LatestValue, utc_ns: Option<i64>) -> Vec<u8> {
    let json = ReadingJson {
        value: value.value.is_finite().then_some(value.value),
        unit: quantity.unit().unwrap_or(""),
        time: utc_ns.and_then(rfc3339),
        quality: value.quality.names().collect(),
    };
    // Serialising these plain fields cannot fail; an empty payload would be refused by no
    // subscriber's parser silently, so it is never sent (see `Coalescer`).
    serde_json::to_vec(&json).unwrap_or_default()
}

/// A sensor's status as the bus shows it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SensorStatus {
    /// The sensor's name.
    pub name: String,
    /// Its state.
    pub state: SensorState,
    /// Why it is in that state.
    pub reason: String,
    /// Whether it is enabled.
    pub enabled: bool,
    /// Restarts since the agent started.
    pub restarts: u32,
}

/// The compact JSON of a sensor's status.
pub fn status_payload(status: &SensorStatus) -> Vec<u8> {
    let json = StatusJson {
        state: crate::metrics::state_label(status.state),
        reason: &status.reason,
        enabled: status.enabled,
        restarts: status.restarts,
    };
    serde_json::to_vec(&json).unwrap_or_default()
}

/// The UTC of a value taken at `mono_ns`, from a stamp `(now_mono_ns, now_utc_ns)` of the
/// same clocks.
pub fn utc_of(mono_ns: u64, now_mono_ns: u64, now_utc_ns: Option<i64>) -> Option<i64> {
    let now_utc = now_utc_ns?;
    let age = i64::try_from(now_mono_ns.checked_sub(mono_ns)?).ok()?;
    now_utc.checked_sub(age)
}

/// One publish the coalescer wants made.
#[derive(Debug, Clone, PartialEq)]
pub struct Due {
    /// What to publish.
    pub message: super::Outgoing,
    /// What to remember once the client took it.
    key: DueKey,
}

impl Due {
    /// The message, and the receipt to give [`Coalescer::handed_over`] once the client took it.
    pub fn into_parts(self) -> (super::Outgoing, Handed) {
        (self.message, Handed(self.key))
    }
}

/// What the coalescer remembers of a publish the client took.
#[derive(Debug, Clone, PartialEq)]
pub struct Handed(DueKey);

#[derive(Debug, Clone, PartialEq)]
enum DueKey {
    Reading(String, Quantity, u64),
    Status(String, Vec<u8>),
}

/// Which newest values and statuses have been handed to the client, so each flush offers
/// only what changed: the newest value per topic wins, whatever came in between.
#[derive(Debug, Default)]
pub struct Coalescer {
    /// Per (sensor, quantity): the monotonic time of the value last handed over.
    readings: HashMap<(String, Quantity), u64>,
    /// Per sensor: the status payload last handed over.
    statuses: HashMap<String, Vec<u8>>,
}

impl Coalescer {
    /// Nothing handed over yet.
    pub fn new() -> Self {
        Self::default()
    }

    /// Forgets what was handed over: after a (re)connection every value and status is
    /// offered again, so the broker's retained state is whole.
    pub fn forget(&mut self) {
        self.readings.clear();
        self.statuses.clear();
    }

    /// The readings newer than the ones handed over, from `values` (every newest value),
    /// with `now` `(mono_ns, utc_ns)` to date them.
    pub fn due_readings<'a>(
        &self,
        topics: &Topics,
        values: impl IntoIterator<Item = (&'a str, Quantity, LatestValue)>,
        now: (u64, Option<i64>),
    ) -> Vec<Due> {
        let mut due = Vec::new();
        for (sensor, quantity, value) in values {
            let key = (sensor.to_string(), quantity);
            if self
                .readings
                .get(&key)
                .is_some_and(|&sent| sent >= value.mono_ns)
            {
                continue;
            }
            let utc = utc_of(value.mono_ns, now.0, now.1);
            due.push(Due {
                message: super::Outgoing {
                    topic: topics.reading(sensor, quantity),
                    payload: reading_payload(quantity, &value, utc),
                    retain: true,
                },
                key: DueKey::Reading(key.0, quantity, value.mono_ns),
            });
        }
        due
    }

    /// The statuses that differ from the ones handed over.
    pub fn due_statuses<'a>(
        &self,
        topics: &Topics,
        statuses: impl IntoIterator<Item = &'a SensorStatus>,
    ) -> Vec<Due> {
        let mut due = Vec::new();
        for status in statuses {
            let payload = status_payload(status);
            if self.statuses.get(&status.name) == Some(&payload) {
                continue;
            }
            due.push(Due {
                message: super::Outgoing {
                    topic: topics.sensor_status(&status.name),
                    payload: payload.clone(),
                    retain: true,
                },
                key: DueKey::Status(status.name.clone(), payload),
            });
        }
        due
    }

    /// Records that the client took a due publish; until then it stays due.
    pub fn handed_over(&mut self, handed: Handed) {
        match handed.0 {
            DueKey::Reading(sensor, quantity, mono_ns) => {
                self.readings.insert((sensor, quantity), mono_ns);
            }
            DueKey::Status(sensor, payload) => {
                self.statuses.insert(sensor, payload);
            }
        }
    }

    /// Entries held (one per topic seen).
    pub fn len(&self) -> usize {
        self.readings.len() + self.statuses.len()
    }

    /// Whether nothing was handed over since the last [`Coalescer::forget`].
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// What the quality flags of a bus reading are, read back (for tests and tools).
pub fn quality_from_names<'a>(names: impl IntoIterator<Item = &'a str>) -> Quality {
    let mut quality = Quality::GOOD;
    for name in names {
        for flag in [
            Quality::OUT_OF_RANGE,
            Quality::CRC_FAILED,
            Quality::STALE,
            Quality::SIMULATED,
            Quality::INVALID,
            Quality::DERIVED,
            Quality::DEGRADED_INPUT,
        ] {
            if flag.names().any(|n| n == name) {
                quality |= flag;
            }
        }
    }
    quality
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use proptest::prelude::*;

    use super::*;

    fn value(v: f64, mono_ns: u64) -> LatestValue {
        LatestValue {
            value: v,
            quality: Quality::SIMULATED,
            mono_ns,
        }
    }

    #[test]
    fn topics_name_node_sensor_and_quantity_under_the_prefix() {
        let t = Topics::new("aloft", "glider-1");
        assert_eq!(t.node_status(), "aloft/glider-1/status");
        assert_eq!(t.sensor_status("static"), "aloft/glider-1/static/status");
        assert_eq!(
            t.reading("static", Quantity::AirPressure),
            "aloft/glider-1/static/air_pressure"
        );
        assert_eq!(
            t.reading("static", Quantity::from_code(60_000)),
            "aloft/glider-1/static/quantity_60000"
        );
    }

    #[test]
    fn a_reading_payload_is_compact_json_with_value_unit_time_and_quality() {
        let payload = reading_payload(
            Quantity::AirPressure,
            &value(101_325.5, 1),
            Some(1_765_144_868_123_456_000),
        );
        assert_eq!(
            std::str::from_utf8(&payload).unwrap(),
            r#"{"value":101325.5,"unit":"Pa","time":"2025-12-07T22:01:08.123456Z","quality":["simulated"]}"#
        );
    }

    #[test]
    fn a_value_without_utc_or_not_finite_is_null() {
        let payload = reading_payload(Quantity::AirPressure, &value(f64::NAN, 1), None);
        assert_eq!(
            std::str::from_utf8(&payload).unwrap(),
            r#"{"value":null,"unit":"Pa","time":null,"quality":["simulated"]}"#
        );
    }

    #[test]
    fn a_status_payload_names_state_reason_enabled_and_restarts() {
        let payload = status_payload(&SensorStatus {
            name: "gps".into(),
            state: SensorState::Degraded,
            reason: "checksum errors".into(),
            enabled: true,
            restarts: 2,
        });
        assert_eq!(
            std::str::from_utf8(&payload).unwrap(),
            r#"{"state":"degraded","reason":"checksum errors","enabled":true,"restarts":2}"#
        );
    }

    #[test]
    fn the_utc_of_a_value_is_the_stamps_utc_less_its_age() {
        assert_eq!(utc_of(7, 10, Some(1_000)), Some(997));
        assert_eq!(utc_of(7, 10, None), None);
        // A value stamped after `now` (another clock read): no time rather than a wrong one.
        assert_eq!(utc_of(11, 10, Some(1_000)), None);
    }

    #[test]
    fn only_values_newer_than_the_ones_handed_over_are_due() {
        let topics = Topics::new("aloft", "n");
        let mut c = Coalescer::new();
        let table = [
            ("a", Quantity::AirPressure, value(1.0, 10)),
            ("a", Quantity::AirTemperature, value(2.0, 10)),
        ];
        let due = c.due_readings(&topics, table, (20, None));
        assert_eq!(due.len(), 2);
        for d in due {
            c.handed_over(d.into_parts().1);
        }
        assert!(c.due_readings(&topics, table, (20, None)).is_empty());
        let newer = [("a", Quantity::AirPressure, value(3.0, 15))];
        let due = c.due_readings(&topics, newer, (20, None));
        assert_eq!(due.len(), 1);
        assert_eq!(due[0].message.topic, "aloft/n/a/air_pressure");
    }

    #[test]
    fn a_refused_publish_stays_due_and_forget_makes_everything_due_again() {
        let topics = Topics::new("aloft", "n");
        let mut c = Coalescer::new();
        let table = [("a", Quantity::AirPressure, value(1.0, 10))];
        // Not handed over (the client's queue was full): still due.
        assert_eq!(c.due_readings(&topics, table, (20, None)).len(), 1);
        for d in c.due_readings(&topics, table, (20, None)) {
            c.handed_over(d.into_parts().1);
        }
        assert!(c.due_readings(&topics, table, (20, None)).is_empty());
        c.forget();
        assert_eq!(c.due_readings(&topics, table, (20, None)).len(), 1);
    }

    #[test]
    fn a_status_is_due_when_it_changes() {
        let topics = Topics::new("aloft", "n");
        let mut c = Coalescer::new();
        let mut s = SensorStatus {
            name: "gps".into(),
            state: SensorState::Running,
            reason: String::new(),
            enabled: true,
            restarts: 0,
        };
        for d in c.due_statuses(&topics, [&s]) {
            c.handed_over(d.into_parts().1);
        }
        assert!(c.due_statuses(&topics, [&s]).is_empty());
        s.state = SensorState::Failed;
        let due = c.due_statuses(&topics, [&s]);
        assert_eq!(due.len(), 1);
        assert!(due[0].message.retain);
        assert_eq!(due[0].message.topic, "aloft/n/gps/status");
    }

    /// The `value` of a payload, parsed exactly (serde_json's own float parsing may round
    /// the last digit).
    fn value_of(payload: &[u8]) -> Option<f64> {
        let text = std::str::from_utf8(payload).ok()?;
        let rest = text.strip_prefix(r#"{"value":"#)?;
        rest.split(',').next()?.parse().ok()
    }

    fn quantity() -> impl Strategy<Value = Quantity> {
        prop::sample::select(Quantity::ALL.to_vec())
    }

    proptest! {
        /// Whatever the readings and however they interleave with flushes, what the
        /// coalescer hands over per topic is the newest value seen by that flush, each topic
        /// at most once per flush, and its memory is one entry per topic.
        #[test]
        fn coalescing_hands_over_the_newest_value_per_topic_once_per_flush(
            batches in prop::collection::vec(
                prop::collection::vec(
                    (prop::sample::select(vec!["a", "b", "c"]), quantity(), -1e6f64..1e6, 0u64..1000),
                    0..30,
                ),
                1..10,
            )
        ) {
            let topics = Topics::new("aloft", "n");
            let mut c = Coalescer::new();
            // The model of the newest-values table: newest mono wins, like `LatestValues`.
            let mut table: HashMap<(String, Quantity), LatestValue> = HashMap::new();
            for batch in batches {
                for (sensor, q, v, mono) in batch {
                    let e = table.entry((sensor.to_string(), q)).or_insert(value(v, mono));
                    if e.mono_ns <= mono {
                        *e = value(v, mono);
                    }
                }
                let values: Vec<(&str, Quantity, LatestValue)> =
                    table.iter().map(|((s, q), v)| (s.as_str(), *q, *v)).collect();
                let due = c.due_readings(&topics, values, (2_000, Some(10_000)));
                let mut seen = std::collections::HashSet::new();
                for d in due {
                    prop_assert!(seen.insert(d.message.topic.clone()), "one publish per topic");
                    let json: serde_json::Value = serde_json::from_slice(&d.message.payload).unwrap();
                    let DueKey::Reading(s, q, mono) = d.key.clone() else { unreachable!() };
                    let newest = table[&(s, q)];
                    prop_assert_eq!(mono, newest.mono_ns);
                    prop_assert_eq!(value_of(&d.message.payload), Some(newest.value));
                    prop_assert!(json["unit"].is_string());
                    prop_assert!(d.message.topic.split('/').all(|l| !l.is_empty() && !l.contains(['+', '#'])));
                    c.handed_over(d.into_parts().1);
                }
                prop_assert!(c.len() <= table.len());
            }
        }

        /// Every reading payload is JSON that reads back to the value, the unit and the flags.
        #[test]
        fn reading_payloads_read_back(q in quantity(), v in -1e300f64..1e300, bits in 0u16..128, utc in 0i64..4_000_000_000_000_000_000) {
            let lv = LatestValue { value: v, quality: Quality::from_bits(bits), mono_ns: 0 };
            let payload = reading_payload(q, &lv, Some(utc));
            let json: serde_json::Value = serde_json::from_slice(&payload).unwrap();
            prop_assert_eq!(value_of(&payload), Some(v));
            prop_assert_eq!(json["unit"].as_str(), q.unit());
            let names: Vec<&str> = json["quality"].as_array().unwrap().iter().filter_map(|n| n.as_str()).collect();
            prop_assert_eq!(quality_from_names(names), Quality::from_bits(bits));
            let time = json["time"].as_str().unwrap();
            let parsed = humantime::parse_rfc3339(time).unwrap();
            let back = parsed.duration_since(UNIX_EPOCH).unwrap().as_nanos();
            prop_assert_eq!(back / 1000, u128::try_from(utc).unwrap() / 1000);
        }
    }
}
