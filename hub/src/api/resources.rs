//! The control layer's API resources in Kubernetes shape: `Sensor`, `Command`, `Event`,
//! `Token` (docs/api.md, "Control"), as the `aloft_api` types clients read. Pure functions
//! of stored rows and the registry's picture, so their JSON is unit-tested.
//!
//! Invariant: a field the hub does not know is `null`, never a made-up value (an offline
//! node's sensors keep the last reported state, and say `nodeConnected: false`).

use aloft_api::{
    Backlog, Command, CommandSpec, CommandStatus, Event, EventSpec, EventStatus, ObjectMeta,
    ObjectReference, Sensor, SensorSpec, SensorStatus, SensorValue, Token, TokenSpec, TokenStatus,
};
use aloft_protocol::sync::{BacklogReport, SensorReport};

use crate::clock::rfc3339;
use crate::nodes::registry::{LatestValue, NodeStatus};
use crate::storage::control::{Actor, CommandRow, DesiredRow, EventRow};
use crate::storage::streams::source_name;
use crate::tokens::TokenInfo;

pub use aloft_api::API_VERSION;

fn time(ns: Option<i64>) -> Option<String> {
    ns.map(rfc3339)
}

fn actor(actor: &Actor) -> aloft_api::Actor {
    aloft_api::Actor {
        token: actor.token.clone(),
        role: actor.role.clone(),
    }
}

/// The node's unsent backlog as the API shows it.
pub fn backlog(b: &BacklogReport) -> Backlog {
    Backlog {
        records: b.records,
        bytes: b.bytes,
        oldest_age_seconds: b.oldest_age_s,
    }
}

/// A `Command`.
pub fn command(c: &CommandRow) -> Command {
    Command::new(
        ObjectMeta {
            name: c.id.clone(),
            node: Some(c.node.clone()),
            uid: Some(c.id.clone()),
            // A command's spec never changes; its status does (resourceVersion).
            generation: Some(1),
            resource_version: Some(c.revision.to_string()),
            creation_timestamp: time(Some(c.created_ns)),
        },
        CommandSpec {
            action: "restartSensor".to_owned(),
            sensor: c.sensor.clone(),
            hard: c.hard,
            ttl_seconds: c.ttl_s,
            expires: rfc3339(c.expires_ns),
            created_by: actor(&c.actor),
        },
        CommandStatus {
            phase: c.phase.name().to_owned(),
            message: c.message.clone(),
            delivered: time(c.delivered_ns),
            finished: time(c.finished_ns),
        },
    )
}

/// An `Event` of the audit trail.
pub fn event(e: &EventRow) -> Event {
    Event::new(
        ObjectMeta {
            name: e.seq.to_string(),
            uid: Some(format!("event-{}", e.seq)),
            node: e.node.clone(),
            creation_timestamp: time(Some(e.time_ns)),
            ..ObjectMeta::default()
        },
        EventSpec {
            actor: actor(&e.actor),
            action: e.action.clone(),
            object: ObjectReference {
                kind: e.object_kind.clone(),
                name: e.object_name.clone(),
                node: e.node.clone(),
            },
        },
        EventStatus {
            outcome: e.outcome.clone(),
            message: e.message.clone(),
        },
    )
}

/// A `Token` (never its secret, except `secret` given once at creation).
pub fn token(t: &TokenInfo, secret: Option<&str>) -> Token {
    Token::new(
        ObjectMeta {
            name: t.id.clone(),
            uid: Some(t.id.clone()),
            creation_timestamp: time(Some(t.created_utc_ns)),
            ..ObjectMeta::default()
        },
        TokenSpec {
            role: t.role.name().to_owned(),
            node: t.node.clone(),
            description: t.label.clone(),
        },
        TokenStatus {
            revoked: t.revoked_utc_ns.is_some(),
            revoked_at: time(t.revoked_utc_ns),
            secret: secret.map(str::to_owned),
        },
    )
}

fn value(l: &LatestValue, now_ns: i64) -> SensorValue {
    let r = &l.reading;
    // Age on the reading's own UTC when it has one; else since the hub received it.
    let age_ns = now_ns - r.time.utc_ns.unwrap_or(l.received_utc_ns);
    SensorValue {
        quantity: r.quantity.to_string(),
        unit: r.quantity.unit().map(str::to_owned),
        value: Some(r.value),
        utc: time(r.time.utc_ns),
        time_source: source_name(r.time.source).to_owned(),
        age_seconds: Some((age_ns.max(0) as f64) / 1e9),
        quality: r.quality.names().collect::<Vec<_>>().join(","),
    }
}

/// The sensors of a node: every sensor it reported and every sensor with desired state,
/// by name.
pub fn sensors(node: &NodeStatus, desired: &[DesiredRow], now_ns: i64) -> Vec<Sensor> {
    let mut names: Vec<&str> = node
        .sensors
        .iter()
        .map(|s| s.name.as_str())
        .chain(desired.iter().map(|d| d.sensor.as_str()))
        .collect();
    names.sort_unstable();
    names.dedup();
    names
        .into_iter()
        .map(|name| {
            let report = node.sensors.iter().find(|s| s.name == name);
            let spec = desired.iter().find(|d| d.sensor == name);
            let values: Vec<&LatestValue> =
                node.latest.iter().filter(|l| l.sensor == name).collect();
            sensor(node, name, report, spec, &values, now_ns)
        })
        .collect()
}

/// One `Sensor`.
pub fn sensor(
    node: &NodeStatus,
    name: &str,
    report: Option<&SensorReport>,
    spec: Option<&DesiredRow>,
    values: &[&LatestValue],
    now_ns: i64,
) -> Sensor {
    let newest_age = values
        .iter()
        .map(|l| now_ns - l.reading.time.utc_ns.unwrap_or(l.received_utc_ns))
        .min()
        .map(|ns| (ns.max(0) as f64) / 1e9);
    Sensor::new(
        ObjectMeta {
            name: name.to_owned(),
            node: Some(node.name.clone()),
            uid: Some(format!("{}/{name}", node.name)),
            generation: Some(spec.map_or(0, |s| s.generation)),
            creation_timestamp: time(spec.map(|s| s.created_ns)),
            ..ObjectMeta::default()
        },
        SensorSpec {
            interval_ms: spec.and_then(|s| s.interval_ms),
            enabled: spec.and_then(|s| s.enabled),
            tunables: spec.map(|s| api_tunables(&s.tunables)).unwrap_or_default(),
            power_override: spec.and_then(|s| s.power_override.then_some(true)),
        },
        SensorStatus {
            kind: report.map(|r| r.kind.clone()),
            state: report.map(|r| format!("{:?}", r.state)),
            reason: report.map(|r| r.reason.clone()),
            restarts: report.map(|r| r.restarts),
            last_restart_reason: report
                .and_then(|r| r.last_restart.as_ref().map(|(_, why)| why.clone())),
            last_error: report.and_then(|r| r.last_error.clone()),
            interval_ms: report.and_then(|r| r.interval_ms),
            enabled: report.map(|r| r.enabled),
            readings: report.map(|r| r.readings),
            newest_value_age_seconds: newest_age,
            observed_generation: spec.and_then(|s| s.observed_generation),
            refused: spec.and_then(|s| s.refused.clone()),
            tunables: spec
                .and_then(|s| s.observed_tunables.as_ref())
                .filter(|t| !t.is_empty())
                .map(api_tunables),
            node_connected: Some(node.connected),
            node_backlog: node.backlog.as_ref().map(backlog),
            reported: time(node.live_received_utc_ns),
            values: values.iter().map(|l| value(l, now_ns)).collect(),
            ..SensorStatus::default()
        },
    )
}

/// Tunables as the API writes them.
pub fn api_tunables(tunables: &crate::storage::control::Tunables) -> aloft_api::Tunables {
    tunables
        .iter()
        .map(|(k, v)| (k.clone(), api_value(v)))
        .collect()
}

/// One tunable value as the API writes it.
pub fn api_value(value: &aloft_protocol::sync::TunableValue) -> aloft_api::TunableValue {
    use aloft_protocol::sync::TunableValue as Wire;
    match value {
        Wire::Bool(b) => aloft_api::TunableValue::Bool(*b),
        Wire::Integer(i) => aloft_api::TunableValue::Integer(*i),
        Wire::Text(t) => aloft_api::TunableValue::Text(t.clone()),
    }
}

/// One tunable value as the API reads it, for the control layer.
pub fn wire_value(value: aloft_api::TunableValue) -> aloft_protocol::sync::TunableValue {
    use aloft_protocol::sync::TunableValue as Wire;
    match value {
        aloft_api::TunableValue::Bool(b) => Wire::Bool(b),
        aloft_api::TunableValue::Integer(i) => Wire::Integer(i),
        aloft_api::TunableValue::Text(t) => Wire::Text(t),
    }
}

/// What of a sensor a watch reports a change of: not its ages, which change every instant.
pub fn sensor_fingerprint(sensor: &Sensor) -> String {
    let s = &sensor.status;
    let picked = (
        sensor.metadata.generation,
        &sensor.spec,
        &s.state,
        &s.reason,
        s.restarts,
        &s.last_error,
        s.interval_ms,
        s.enabled,
        s.observed_generation,
        &s.refused,
        s.node_connected,
        &s.tunables,
    );
    serde_json::to_string(&picked).unwrap_or_default()
}
