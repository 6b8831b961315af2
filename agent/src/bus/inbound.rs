//! The inbound side of the bus: what other programs publish, routed to ingest
//! ([`super::ingest`]), KubeEdge's device twin ([`super::twin`]) and a mapper's pushes
//! ([`super::mapper`]), behind the client loop's [`InboundHandler`] hook.
//!
//! Readings taken go to their `mqtt` sensor's device over its bounded feed
//! ([`crate::sensor::mqtt`]), so the supervisor stores them like any sensor's. Refusals go
//! to `<prefix>/<node>/ingest/<sensor>/error` and are counted per sensor and reason
//! ([`crate::metrics::ingest`]); twin requests are answered on their result topics.
//!
//! Invariants: `handle` never blocks (the feed is a bounded `try_send`) and never panics on
//! a message; error messages for one sensor are published at most
//! [`ERRORS_PER_S_MAX`] a second (a flood's refusals are all counted, but do not double
//! the broker's load); the agent's own result, delta, document and error topics are not
//! among the subscriptions, so nothing it publishes comes back to it.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use aloft_protocol::{Quantity, Reading, SensorId, Timestamp};

use super::ingest::{
    DeclaredQuantity, Ingest, IngestSensor, IngestValue, RejectReason, Rejection, TokenBucket,
};
use super::mapper::{self, PushError};
use super::twin::{self, Observed, SensorView, Setting, TwinOp, TwinRefusal};
use super::{InboundHandler, Outgoing};
use crate::config::{AgentConfig, SensorKind};
use crate::metrics::Metrics;
use crate::sensor::SensorSlot;
use crate::sensor::mqtt::{FeedError, IngestSender, MqttDevice, feed};

/// Error messages published per sensor and second, at most.
pub const ERRORS_PER_S_MAX: u32 = 10;

/// How old a newest value may be and still show in a twin: older, the twin omits it.
pub const TWIN_VALUE_AGE_MAX: Duration = Duration::from_secs(3600);

/// What the twin reads of the agent: one sensor's view now.
pub trait SensorViews: Send {
    /// The sensor called `name`, as the twin shows it; `None` when there is no such sensor.
    fn view(&self, name: &str) -> Option<SensorView>;
}

/// The topic `mqtt` sensor `sensor`'s readings are published to.
pub fn ingest_topic(prefix: &str, node: &str, sensor: &str) -> String {
    format!("{prefix}/{node}/ingest/{sensor}")
}

/// Gives every `mqtt` sensor of `slots` a device fed by the bus, and returns the bus's end
/// of each feed by sensor id. A sensor left without (no `[mqtt]` in the config) keeps the
/// device it was built with, which reports that it has no bus.
pub fn attach_feeds(
    config: &AgentConfig,
    slots: &mut [SensorSlot],
) -> BTreeMap<SensorId, IngestSender> {
    let mut senders = BTreeMap::new();
    let Some(mqtt) = &config.mqtt else {
        return senders;
    };
    for slot in slots.iter_mut().filter(|s| s.kind == SensorKind::Mqtt) {
        let Some((_, sensor)) = config.sensor(&slot.name) else {
            continue;
        };
        let topic = ingest_topic(&mqtt.topic_prefix, &config.node.name, &slot.name);
        let (tx, rx) = feed();
        match MqttDevice::new(sensor, &topic, rx) {
            Ok(device) => {
                slot.device = Box::new(device);
                // Another program's readings: not the simulator's, even in the simulated
                // flight.
                slot.simulated = false;
                senders.insert(slot.id, tx);
            }
            Err(e) => {
                tracing::error!(sensor = %slot.name, error = %e, "Cannot feed the sensor from the bus.")
            }
        }
    }
    senders
}

/// Error messages of one sensor in the current second.
#[derive(Debug, Clone, Copy, Default)]
struct ErrorWindow {
    second: u64,
    sent: u32,
}

/// A mapper push topic and the sensor and quantity it feeds.
#[derive(Debug, Clone)]
struct MapperRoute {
    topic: String,
    sensor: String,
    quantity: String,
}

/// The inbound handler.
pub struct Inbound {
    ingest_prefix: String,
    ingest: Ingest,
    feeds: BTreeMap<SensorId, IngestSender>,
    mappers: Vec<MapperRoute>,
    views: Box<dyn SensorViews>,
    metrics: Arc<Metrics>,
    stamp: Arc<dyn Fn() -> Timestamp + Send + Sync>,
    errors: BTreeMap<String, ErrorWindow>,
    device_states: BTreeMap<String, String>,
    next_event: u64,
    readings: Vec<Reading>,
}

impl std::fmt::Debug for Inbound {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Inbound")
            .field("ingest_prefix", &self.ingest_prefix)
            .field("ingest", &self.ingest)
            .field("mappers", &self.mappers)
            .finish_non_exhaustive()
    }
}

/// The ingest side's sensors of `config`: its `mqtt` sensors with their declarations.
pub fn ingest_sensors(config: &AgentConfig) -> Vec<IngestSensor> {
    config
        .sensors
        .iter()
        .enumerate()
        .filter(|(_, s)| s.kind == SensorKind::Mqtt)
        .map(|(n, s)| {
            let rate = s.max_readings_per_s_or_default();
            IngestSensor {
                id: SensorId(u16::try_from(n).unwrap_or(u16::MAX)),
                name: s.name.clone(),
                quantities: s
                    .quantities
                    .iter()
                    .filter_map(|(name, r)| {
                        Some((
                            name.clone(),
                            DeclaredQuantity {
                                quantity: Quantity::from_name(name)?,
                                min: r.min,
                                max: r.max,
                            },
                        ))
                    })
                    .collect(),
                // A burst of one second's worth: a publisher that batches once a second
                // is within its bound.
                bucket: TokenBucket::new(rate, rate.max(1.0)),
                enabled: s.enabled,
            }
        })
        .collect()
}

impl Inbound {
    /// The inbound side of `config`'s node: `feeds` from [`attach_feeds`], `views` of the
    /// sensors for the twin, `stamp` the agent's clock.
    pub fn new(
        config: &AgentConfig,
        feeds: BTreeMap<SensorId, IngestSender>,
        views: Box<dyn SensorViews>,
        metrics: Arc<Metrics>,
        stamp: Arc<dyn Fn() -> Timestamp + Send + Sync>,
    ) -> Self {
        let prefix = config
            .mqtt
            .as_ref()
            .map_or("aloft", |m| m.topic_prefix.as_str());
        let mappers = config
            .sensors
            .iter()
            .filter(|s| s.kind == SensorKind::Mqtt)
            .filter_map(|s| {
                Some(MapperRoute {
                    topic: s.mapper_topic.clone()?,
                    sensor: s.name.clone(),
                    quantity: s.mapper_quantity.clone()?,
                })
            })
            .collect();
        Inbound {
            ingest_prefix: ingest_topic(prefix, &config.node.name, ""),
            ingest: Ingest::new(ingest_sensors(config)),
            feeds,
            mappers,
            views,
            metrics,
            stamp,
            errors: BTreeMap::new(),
            device_states: BTreeMap::new(),
            next_event: 0,
            readings: Vec::new(),
        }
    }

    fn new_event_id(&mut self) -> String {
        self.next_event += 1;
        format!("aloft-{}", self.next_event)
    }

    /// Hands what ingest just took to the sensor's device; a full feed is a refusal.
    fn deliver(&mut self, sensor: SensorId, n: usize) -> Result<(), Rejection> {
        let batch = std::mem::take(&mut self.readings);
        let Some(tx) = self.feeds.get(&sensor) else {
            return Err(Rejection::new(
                RejectReason::Busy,
                "the sensor's device is not fed by the bus",
            ));
        };
        match tx.send(batch) {
            Ok(()) => {
                self.metrics.ingest.taken(sensor, n);
                Ok(())
            }
            Err((e, mut back)) => {
                back.clear();
                self.readings = back;
                Err(Rejection::new(
                    RejectReason::Busy,
                    match e {
                        FeedError::Full => {
                            "the sensor is not taking readings now (restarting, or the store is behind)"
                        }
                        FeedError::Gone => "the sensor's device is gone",
                    },
                ))
            }
        }
    }

    /// Counts a refusal and, within the sensor's error budget, publishes it.
    fn refuse(&mut self, sensor: &str, rejection: &Rejection, now: Timestamp) -> Vec<Outgoing> {
        match self.ingest.sensor(sensor) {
            Some(s) => self.metrics.ingest.refused(s.id, rejection.reason),
            None => self.metrics.ingest.unknown_sensor(),
        }
        tracing::debug!(sensor, reason = rejection.reason.label(), detail = %rejection.detail, "Bus message refused.");
        let second = now.mono_ns / 1_000_000_000;
        // Unknown names share one budget, so a scan of names cannot grow this table.
        let key = if self.ingest.sensor(sensor).is_some() {
            sensor
        } else {
            ""
        };
        let window = self.errors.entry(key.to_string()).or_default();
        if window.second != second {
            *window = ErrorWindow { second, sent: 0 };
        }
        if window.sent >= ERRORS_PER_S_MAX {
            return Vec::new();
        }
        window.sent += 1;
        vec![Outgoing {
            topic: format!("{}{sensor}/error", self.ingest_prefix),
            payload: rejection.to_json(),
            retain: false,
        }]
    }

    fn ingest_message(&mut self, sensor: &str, payload: &[u8]) -> Vec<Outgoing> {
        let now = (self.stamp)();
        let mut out = std::mem::take(&mut self.readings);
        out.clear();
        let taken = self.ingest.accept(sensor, payload, now, &mut out);
        self.readings = out;
        match taken.and_then(|(id, n)| self.deliver(id, n)) {
            Ok(()) => Vec::new(),
            Err(r) => self.refuse(sensor, &r, now),
        }
    }

    fn mapper_push(&mut self, route: usize, payload: &[u8]) -> Vec<Outgoing> {
        let now = (self.stamp)();
        let MapperRoute {
            sensor, quantity, ..
        } = self.mappers[route].clone();
        let pushed = match mapper::decode_push(payload) {
            Ok(p) => p,
            Err(e) => {
                let reason = match e {
                    PushError::Oversized(_) => RejectReason::Oversized,
                    PushError::Malformed(_) => RejectReason::Malformed,
                    PushError::NotANumber(_) => RejectReason::NotFinite,
                };
                return self.refuse(&sensor, &Rejection::new(reason, e.to_string()), now);
            }
        };
        let value = IngestValue {
            quantity: &quantity,
            value: pushed.value,
            time_s: pushed.timestamp_ms.map(|ms| ms as f64 / 1e3),
        };
        let mut out = std::mem::take(&mut self.readings);
        out.clear();
        let taken = self.ingest.accept_values(&sensor, &[value], now, &mut out);
        self.readings = out;
        match taken.and_then(|(id, n)| self.deliver(id, n)) {
            Ok(()) => Vec::new(),
            Err(r) => self.refuse(&sensor, &r, now),
        }
    }

    fn twin_request(&mut self, device: &str, op: TwinOp, payload: &[u8]) -> Vec<Outgoing> {
        let now = (self.stamp)();
        let now_ms = now_ms(now);
        let event_id = twin::event_id_of(payload);
        let answer = match self.views.view(device) {
            None => Err(TwinRefusal::new(
                twin::code::NOT_FOUND,
                format!(
                    "no sensor {:?} on this node",
                    device.chars().take(64).collect::<String>()
                ),
            )),
            Some(view) => match op {
                TwinOp::Get => self.twin_get(&view, payload, &event_id, now_ms),
                TwinOp::Update => self.twin_update(&view, payload, now, now_ms),
                TwinOp::StateUpdate => self.state_update(&view, payload, now_ms),
            },
        };
        match answer {
            Ok(out) => {
                self.metrics.ingest.twin(true);
                out
            }
            Err(refusal) => {
                self.metrics.ingest.twin(false);
                tracing::debug!(device, code = refusal.code, reason = %refusal.reason, "Twin request refused.");
                vec![twin::refused(op, device, &event_id, now_ms, &refusal)]
            }
        }
    }

    fn twin_get(
        &mut self,
        view: &SensorView,
        payload: &[u8],
        event_id: &str,
        now_ms: i64,
    ) -> Result<Vec<Outgoing>, TwinRefusal> {
        if payload.len() > twin::TWIN_PAYLOAD_BYTES_MAX
            || serde_json::from_slice::<twin::TwinMessage>(payload).is_err()
        {
            return Err(TwinRefusal::new(
                twin::code::BAD_REQUEST,
                "Unmarshal get request body failed: expected {\"event_id\": ..., \"timestamp\": ...}",
            ));
        }
        Ok(vec![twin::get_result(view, event_id, now_ms)])
    }

    fn twin_update(
        &mut self,
        view: &SensorView,
        payload: &[u8],
        now: Timestamp,
        now_ms: i64,
    ) -> Result<Vec<Outgoing>, TwinRefusal> {
        let (msg, reported) = twin::decode_update(payload, view)?;
        if !reported.is_empty() {
            let values: Vec<IngestValue<'_>> = reported
                .iter()
                .map(|r| IngestValue {
                    quantity: &r.key,
                    value: r.value,
                    time_s: r.timestamp_ms.map(|ms| ms as f64 / 1e3),
                })
                .collect();
            let mut out = std::mem::take(&mut self.readings);
            out.clear();
            let taken = self
                .ingest
                .accept_values(&view.name, &values, now, &mut out);
            self.readings = out;
            if let Err(r) = taken.and_then(|(id, n)| self.deliver(id, n)) {
                if let Some(s) = self.ingest.sensor(&view.name) {
                    self.metrics.ingest.refused(s.id, r.reason);
                }
                return Err(TwinRefusal::new(
                    twin::code::BAD_REQUEST,
                    format!("{}: {}", r.reason.label(), r.detail),
                ));
            }
        }
        let mut ids = || self.new_event_id();
        Ok(twin::update_accepted(
            view,
            &reported,
            &msg.event_id,
            now_ms,
            &mut ids,
        ))
    }

    fn state_update(
        &mut self,
        view: &SensorView,
        payload: &[u8],
        now_ms: i64,
    ) -> Result<Vec<Outgoing>, TwinRefusal> {
        if view.reportable.is_empty() {
            return Err(TwinRefusal::new(
                twin::code::FORBIDDEN,
                format!(
                    "{}: the agent reports this sensor's state itself",
                    view.name
                ),
            ));
        }
        let update = twin::decode_state_update(payload)?;
        self.device_states
            .insert(view.name.clone(), update.state.clone());
        let id = self.new_event_id();
        Ok(vec![twin::state_result(
            &view.name,
            &update.state,
            "",
            id,
            now_ms,
        )])
    }

    /// The state a mapper last gave for `device` (`online`, `offline`).
    pub fn mapper_state(&self, device: &str) -> Option<&str> {
        self.device_states.get(device).map(String::as_str)
    }
}

/// Milliseconds since the Unix epoch of `now`, from the agent's UTC or, without it, the
/// system clock (KubeEdge's timestamps are the system clock's too).
fn now_ms(now: Timestamp) -> i64 {
    match now.utc_ns {
        Some(ns) => ns / 1_000_000,
        None => std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX)),
    }
}

impl InboundHandler for Inbound {
    fn subscriptions(&self) -> Vec<String> {
        let mut filters = vec![
            format!("{}+", self.ingest_prefix),
            TwinOp::Update.filter(),
            TwinOp::Get.filter(),
            TwinOp::StateUpdate.filter(),
        ];
        filters.extend(self.mappers.iter().map(|m| m.topic.clone()));
        filters
    }

    fn handle(&mut self, topic: &str, payload: &[u8]) -> Vec<Outgoing> {
        if let Some(route) = self.mappers.iter().position(|m| m.topic == topic) {
            return self.mapper_push(route, payload);
        }
        if let Some(sensor) = topic.strip_prefix(self.ingest_prefix.as_str()) {
            if sensor.is_empty() || sensor.contains('/') {
                return Vec::new();
            }
            return self.ingest_message(sensor, payload);
        }
        if let Some((device, op)) = twin::parse_topic(topic) {
            return self.twin_request(device, op, payload);
        }
        Vec::new()
    }
}

/// The views of a running agent: states and settings from the supervisor, desired
/// values from the state file, newest values from the newest-values table.
pub struct AgentViews {
    sensors: crate::supervisor::SupervisorHandle,
    latest: crate::sensor::LatestValues,
    state: Arc<crate::state::StateFile>,
    stamp: Arc<dyn Fn() -> Timestamp + Send + Sync>,
    reportable: BTreeMap<String, Vec<String>>,
}

impl std::fmt::Debug for AgentViews {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AgentViews")
            .field("reportable", &self.reportable)
            .finish_non_exhaustive()
    }
}

impl AgentViews {
    /// Views of `config`'s sensors as the running agent has them.
    pub fn new(
        config: &AgentConfig,
        sensors: crate::supervisor::SupervisorHandle,
        latest: crate::sensor::LatestValues,
        state: Arc<crate::state::StateFile>,
        stamp: Arc<dyn Fn() -> Timestamp + Send + Sync>,
    ) -> Self {
        AgentViews {
            sensors,
            latest,
            state,
            stamp,
            reportable: config
                .sensors
                .iter()
                .filter(|s| s.kind == SensorKind::Mqtt)
                .map(|s| (s.name.clone(), s.quantities.keys().cloned().collect()))
                .collect(),
        }
    }
}

impl SensorViews for AgentViews {
    fn view(&self, name: &str) -> Option<SensorView> {
        let report = self
            .sensors
            .reports()
            .into_iter()
            .find(|r| r.name == name)?;
        let desired = self
            .state
            .snapshot()
            .desired
            .and_then(|d| d.sensors.into_iter().find(|s| s.name == name));
        let mut settings = BTreeMap::new();
        settings.insert(
            "enabled".to_string(),
            Setting {
                desired: desired
                    .as_ref()
                    .and_then(|d| d.enabled)
                    .map(|e| e.to_string()),
                in_force: Some(report.enabled.to_string()),
                kind: "boolean",
            },
        );
        if let Some(setting) = interval_setting(
            desired.as_ref().and_then(|d| d.interval),
            report.interval_ms,
        ) {
            settings.insert("interval_ms".to_string(), setting);
        }
        if let Ok(in_force) = self.sensors.tunables(name) {
            for (key, value) in in_force {
                let wanted = desired.as_ref().and_then(|d| d.tunables.get(&key));
                let kind = match value {
                    aloft_protocol::sync::TunableValue::Bool(_) => "boolean",
                    aloft_protocol::sync::TunableValue::Integer(_) => "int",
                    _ => "string",
                };
                settings.insert(
                    format!("tunable.{key}"),
                    Setting {
                        desired: wanted.map(ToString::to_string),
                        in_force: Some(value.to_string()),
                        kind,
                    },
                );
            }
        }
        let now = (self.stamp)();
        let observed = Quantity::ALL
            .iter()
            .filter_map(|q| {
                let v = self.latest.get(name, *q, now.mono_ns, TWIN_VALUE_AGE_MAX)?;
                let age_ns = now.mono_ns.saturating_sub(v.mono_ns);
                Some(Observed {
                    quantity: q.name()?.to_string(),
                    value: v.value,
                    utc_ms: now
                        .utc_ns
                        .map(|u| (u - i64::try_from(age_ns).unwrap_or(i64::MAX)) / 1_000_000),
                })
            })
            .collect();
        Some(SensorView {
            name: name.to_string(),
            status: crate::metrics::state_label(report.state).to_string(),
            settings,
            observed,
            reportable: self.reportable.get(name).cloned().unwrap_or_default(),
        })
    }
}

/// The twin's `interval_ms` of a sensor with the hub's `desired` interval and the one in
/// force (`None` for a sensor that is not scheduled). A desired interval the sensor cannot
/// take stays on the twin without a reported value, so it is a delta; a sensor with
/// neither has no such key.
fn interval_setting(desired: Option<Duration>, in_force_ms: Option<u32>) -> Option<Setting> {
    if desired.is_none() && in_force_ms.is_none() {
        return None;
    }
    Some(Setting {
        desired: desired.map(|i| i.as_millis().to_string()),
        in_force: in_force_ms.map(|ms| ms.to_string()),
        kind: "int",
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::metrics::SensorLabel;
    use crate::sensor::Device;
    use crate::sensor::mqtt::{IngestReceiver, feed_of};
    use aloft_protocol::TimeSource;
    use serde_json::{Value, json};

    const NOW_UTC: i64 = 1_780_000_000_000_000_000;

    fn config() -> AgentConfig {
        crate::config::parse(
            "[node]\nname = 'glider'\n[store]\npath = '/s'\nmax_bytes = 10_000_000_000\n\
             full_policy = 'decimate'\nflush_interval = '1s'\nretain_acked = '1h'\n\
             [mqtt]\nbroker = '127.0.0.1:1883'\n\
             [[sensor]]\nname = 'gps'\nkind = 'ublox'\nport = '/dev/ttyS0'\n\
             [[sensor]]\nname = 'sampler'\nkind = 'mqtt'\nclient_id = 'vendor'\n\
             max_readings_per_s = 20.0\nmapper_topic = 'ke/sampler/ozone'\n\
             mapper_quantity = 'ozone_mole_fraction'\n\
             [sensor.quantities.ozone_mole_fraction]\nmin = 0.0\nmax = 1e-5\n\
             [sensor.quantities.air_temperature]\nmin = 150.0\nmax = 350.0\n",
            "t.toml",
        )
        .unwrap_or_else(|e| panic!("{e}"))
    }

    struct FixedViews;

    impl SensorViews for FixedViews {
        fn view(&self, name: &str) -> Option<SensorView> {
            let reportable = match name {
                "sampler" => vec![
                    "air_temperature".to_string(),
                    "ozone_mole_fraction".to_string(),
                ],
                "gps" => vec![],
                _ => return None,
            };
            Some(SensorView {
                name: name.to_string(),
                status: "running".into(),
                settings: BTreeMap::new(),
                observed: vec![],
                reportable,
            })
        }
    }

    fn inbound(feed_batches: usize) -> (Inbound, IngestReceiver, Arc<Metrics>) {
        let c = config();
        let metrics = Metrics::new(
            "glider",
            c.sensors.iter().map(|s| SensorLabel {
                name: s.name.clone(),
                kind: s.kind.as_str().to_string(),
            }),
        );
        let (tx, rx) = feed_of(feed_batches);
        let feeds = BTreeMap::from([(SensorId(1), tx)]);
        let stamp: Arc<dyn Fn() -> Timestamp + Send + Sync> =
            Arc::new(|| Timestamp::with_utc(5_000_000_000, NOW_UTC, TimeSource::SystemClock));
        let i = Inbound::new(&c, feeds, Box::new(FixedViews), Arc::clone(&metrics), stamp);
        (i, rx, metrics)
    }

    fn drain(rx: IngestReceiver) -> Vec<Reading> {
        let c = config();
        let (_, sensor) = c.sensor("sampler").unwrap();
        let mut d = MqttDevice::new(sensor, "t", rx).unwrap();
        d.open().unwrap();
        let mut out = vec![];
        d.poll(&mut out).unwrap();
        out
    }

    #[test]
    fn an_mqtt_sensor_without_a_bus_and_a_bad_declaration_are_refused_at_load() {
        let text = "[node]\nname = 'n'\n[store]\npath = '/s'\nmax_bytes = 10_000_000_000\n\
             full_policy = 'decimate'\nflush_interval = '1s'\nretain_acked = '1h'\n\
             [[sensor]]\nname = 'sampler'\nkind = 'mqtt'\nmax_readings_per_s = 0.0\n\
             mapper_topic = 'a/+'\nmapper_quantity = 'ozone_mole_fraction'\n\
             [sensor.quantities.warp]\nmin = 0.0\nmax = 1.0\n";
        let errors = crate::config::parse(text, "t.toml").err().unwrap();
        let keys: Vec<&str> = errors.problems.iter().map(|p| p.key.as_str()).collect();
        for want in [
            "sensor[0].kind",
            "sensor[0].quantities.warp",
            "sensor[0].max_readings_per_s",
            "sensor[0].mapper_topic",
            "sensor[0].mapper_quantity",
        ] {
            assert!(keys.contains(&want), "{want} not in {keys:?}");
        }
    }

    #[test]
    fn it_subscribes_to_ingest_the_twin_and_the_mapper_topics() {
        let (i, _, _) = inbound(8);
        assert_eq!(
            i.subscriptions(),
            [
                "aloft/glider/ingest/+",
                "$hw/events/device/+/twin/update",
                "$hw/events/device/+/twin/get",
                "$hw/events/device/+/state/update",
                "ke/sampler/ozone"
            ]
        );
    }

    #[test]
    fn an_ingest_message_reaches_the_sensors_feed_and_is_counted() {
        let (mut i, rx, metrics) = inbound(8);
        let out = i.handle(
            "aloft/glider/ingest/sampler",
            br#"{"quantity":"ozone_mole_fraction","value":4e-8}"#,
        );
        assert!(out.is_empty(), "{out:?}");
        let mapped = i.handle(
            "ke/sampler/ozone",
            b"time is 2026-12-07 22:00:00  ke/sampler/ozone: 5e-8",
        );
        assert!(mapped.is_empty(), "{mapped:?}");
        let readings = drain(rx);
        let values: Vec<(Quantity, f64)> = readings.iter().map(|r| (r.quantity, r.value)).collect();
        assert_eq!(
            values,
            [
                (Quantity::OzoneMoleFraction, 4e-8),
                (Quantity::OzoneMoleFraction, 5e-8)
            ]
        );
        assert_eq!(metrics.ingest.readings_of(SensorId(1)), 2);
    }

    #[test]
    fn refusals_go_to_the_error_topic_counted_and_throttled() {
        let (mut i, _rx, metrics) = inbound(8);
        let out = i.handle("aloft/glider/ingest/sampler", b"{");
        assert_eq!(out.len(), 1);
        assert_eq!(out[0].topic, "aloft/glider/ingest/sampler/error");
        let v: Value = serde_json::from_slice(&out[0].payload).unwrap();
        assert_eq!(v["reason"], "malformed");
        for _ in 0..50 {
            i.handle("aloft/glider/ingest/sampler", b"{");
        }
        assert_eq!(
            metrics
                .ingest
                .refused_of(SensorId(1), RejectReason::Malformed),
            51
        );
        // The same second: the budget is spent, the count goes on.
        assert!(i.handle("aloft/glider/ingest/sampler", b"{").is_empty());
        let out = i.handle("aloft/glider/ingest/nobody", b"{}");
        assert_eq!(out[0].topic, "aloft/glider/ingest/nobody/error");
        assert_eq!(metrics.ingest.unknown_sensor_total(), 1);
        // Deeper topics are not ingest topics.
        assert!(
            i.handle("aloft/glider/ingest/sampler/error", b"{}")
                .is_empty()
        );
    }

    #[test]
    fn a_flood_beyond_the_rate_bound_and_a_full_feed_are_refused_not_queued() {
        let (mut i, rx, metrics) = inbound(4);
        let one = br#"{"quantity":"ozone_mole_fraction","value":1e-8}"#;
        for _ in 0..100 {
            i.handle("aloft/glider/ingest/sampler", one);
        }
        // Four batches fit the feed; the burst allows 20 readings; the rest is refused.
        assert_eq!(metrics.ingest.readings_of(SensorId(1)), 4);
        assert_eq!(
            metrics.ingest.refused_of(SensorId(1), RejectReason::Busy),
            16
        );
        assert_eq!(
            metrics
                .ingest
                .refused_of(SensorId(1), RejectReason::RateLimited),
            80
        );
        assert_eq!(drain(rx).len(), 4);
    }

    #[test]
    fn twin_update_of_reported_values_is_ingested_and_answered() {
        let (mut i, rx, _) = inbound(8);
        let request = json!({"event_id": "e1", "timestamp": 1,
            "twin": {"air_temperature": {"actual": {"value": "250.5"}}}});
        let out = i.handle(
            "$hw/events/device/sampler/twin/update",
            request.to_string().as_bytes(),
        );
        let topics: Vec<&str> = out.iter().map(|o| o.topic.as_str()).collect();
        assert_eq!(
            topics,
            [
                "$hw/events/device/sampler/twin/update/result",
                "$hw/events/device/sampler/twin/update/document"
            ]
        );
        let result: Value = serde_json::from_slice(&out[0].payload).unwrap();
        assert_eq!(result["event_id"], "e1");
        assert_eq!(
            result["twin"]["air_temperature"]["actual"]["value"],
            "250.5"
        );
        let readings = drain(rx);
        assert_eq!(readings.len(), 1);
        assert_eq!(readings[0].quantity, Quantity::AirTemperature);
    }

    #[test]
    fn twin_requests_that_cannot_be_served_are_answered_with_a_code() {
        let (mut i, _rx, _) = inbound(8);
        let code_of = |out: &[Outgoing]| -> (String, u64) {
            let v: Value = serde_json::from_slice(&out[0].payload).unwrap();
            (out[0].topic.clone(), v["code"].as_u64().unwrap_or(0))
        };
        let out = i.handle("$hw/events/device/nobody/twin/get", br#"{"event_id":"g"}"#);
        assert_eq!(
            code_of(&out),
            ("$hw/events/device/nobody/twin/get/result".into(), 404)
        );
        let out = i.handle(
            "$hw/events/device/sampler/twin/update",
            br#"{"event_id":"u","twin":{"ozone_mole_fraction":{"actual":{"value":"thick"}}}}"#,
        );
        assert_eq!(code_of(&out).1, 400, "not a number");
        let out = i.handle(
            "$hw/events/device/gps/twin/update",
            br#"{"event_id":"u","twin":{"enabled":{"expected":{"value":"false"}}}}"#,
        );
        assert_eq!(code_of(&out).1, 403);
        let out = i.handle(
            "$hw/events/device/gps/state/update",
            br#"{"state":"online"}"#,
        );
        assert_eq!(code_of(&out).1, 403);
        let out = i.handle(
            "$hw/events/device/sampler/state/update",
            br#"{"state":"online"}"#,
        );
        assert_eq!(
            out[0].topic,
            "$hw/events/device/sampler/state/update/result"
        );
        assert_eq!(i.mapper_state("sampler"), Some("online"));
        let out = i.handle(
            "$hw/events/device/sampler/twin/get",
            br#"{"event_id":"g2"}"#,
        );
        let v: Value = serde_json::from_slice(&out[0].payload).unwrap();
        assert_eq!(v["event_id"], "g2");
        assert_eq!(v["twin"]["status"]["actual"]["value"], "running");
    }

    #[test]
    fn a_desired_interval_an_unscheduled_sensor_cannot_take_is_a_delta() {
        // An mqtt sensor has no interval: the hub's desired one is refused by the agent
        // and stays on the twin as expected without actual, so an update answers a delta.
        let setting = interval_setting(Some(Duration::from_secs(2)), None).unwrap();
        assert_eq!(setting.desired.as_deref(), Some("2000"));
        assert_eq!(setting.in_force, None);
        let view = SensorView {
            name: "sampler".into(),
            status: "running".into(),
            settings: BTreeMap::from([("interval_ms".to_string(), setting)]),
            observed: vec![],
            reportable: vec!["air_temperature".into()],
        };
        let delta = twin::delta_of(&view, 1, &mut || "d".to_string()).unwrap();
        assert_eq!(
            delta.delta,
            BTreeMap::from([("interval_ms".to_string(), "2000".to_string())])
        );
        let twin = serde_json::to_value(&delta.twin).unwrap();
        assert_eq!(
            twin,
            json!({"interval_ms": {"expected": {"value": "2000"}, "optional": true,
                                   "metadata": {"type": "int"}}})
        );
        // In force: no delta. Neither desired nor scheduled: no key.
        let held = interval_setting(Some(Duration::from_secs(2)), Some(2000)).unwrap();
        assert_eq!(held.in_force.as_deref(), Some("2000"));
        assert!(interval_setting(None, None).is_none());
        assert_eq!(
            interval_setting(None, Some(500)).map(|s| (s.desired, s.in_force)),
            Some((None, Some("500".to_string())))
        );
    }
}
