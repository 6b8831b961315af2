//! The control layer's API resources in Kubernetes shape: `Sensor`, `Command`, `Event`,
//! `Token` (docs/api.md, "Control"). Pure functions of stored rows and the registry's
//! picture, so their JSON is unit-tested.
//!
//! Invariant: a field the hub does not know is `null`, never a made-up value (an offline
//! node's sensors keep the last reported state, and say `nodeConnected: false`).

use aloft_protocol::sync::SensorReport;
use serde_json::{Value, json};

use super::store::{Actor, CommandRow, DesiredRow, EventRow};
use crate::db::rfc3339;
use crate::registry::{LatestValue, NodeStatus};
use crate::storage::source_name;
use crate::tokens::TokenInfo;

/// The API group and version.
pub const API_VERSION: &str = "aloft.dev/v1";

fn time(ns: Option<i64>) -> Value {
    ns.map_or(Value::Null, |ns| rfc3339(ns).into())
}

fn actor(actor: &Actor) -> Value {
    json!({ "token": actor.token, "role": actor.role })
}

/// A list of one kind.
pub fn list(kind: &str, items: Vec<Value>) -> Value {
    json!({ "apiVersion": API_VERSION, "kind": format!("{kind}List"), "items": items })
}

/// A `Command`.
pub fn command(c: &CommandRow) -> Value {
    json!({
        "apiVersion": API_VERSION,
        "kind": "Command",
        "metadata": {
            "name": c.id,
            "node": c.node,
            "uid": c.id,
            // A command's spec never changes; its status does (resourceVersion).
            "generation": 1,
            "resourceVersion": c.revision.to_string(),
            "creationTimestamp": time(Some(c.created_ns)),
        },
        "spec": {
            "action": "restartSensor",
            "sensor": c.sensor,
            "hard": c.hard,
            "ttlSeconds": c.ttl_s,
            "expires": time(Some(c.expires_ns)),
            "createdBy": actor(&c.actor),
        },
        "status": {
            "phase": c.phase.name(),
            "message": c.message,
            "delivered": time(c.delivered_ns),
            "finished": time(c.finished_ns),
        },
    })
}

/// An `Event` of the audit trail.
pub fn event(e: &EventRow) -> Value {
    json!({
        "apiVersion": API_VERSION,
        "kind": "Event",
        "metadata": {
            "name": e.seq.to_string(),
            "uid": format!("event-{}", e.seq),
            "node": e.node,
            "creationTimestamp": time(Some(e.time_ns)),
        },
        "spec": {
            "actor": actor(&e.actor),
            "action": e.action,
            "object": { "kind": e.object_kind, "name": e.object_name, "node": e.node },
        },
        "status": { "outcome": e.outcome, "message": e.message },
    })
}

/// A `Token` (never its secret, except `secret` given once at creation).
pub fn token(t: &TokenInfo, secret: Option<&str>) -> Value {
    let mut status = json!({
        "revoked": t.revoked_utc_ns.is_some(),
        "revokedAt": time(t.revoked_utc_ns),
    });
    if let (Some(secret), Some(map)) = (secret, status.as_object_mut()) {
        map.insert("secret".into(), secret.into());
    }
    json!({
        "apiVersion": API_VERSION,
        "kind": "Token",
        "metadata": {
            "name": t.id,
            "uid": t.id,
            "creationTimestamp": time(Some(t.created_utc_ns)),
        },
        "spec": { "role": t.role.name(), "node": t.node, "description": t.label },
        "status": status,
    })
}

fn value(l: &LatestValue, now_ns: i64) -> Value {
    let r = &l.reading;
    // Age on the reading's own UTC when it has one; else since the hub received it.
    let age_ns = now_ns - r.time.utc_ns.unwrap_or(l.received_utc_ns);
    json!({
        "quantity": r.quantity.to_string(),
        "unit": r.quantity.unit(),
        "value": r.value,
        "utc": time(r.time.utc_ns),
        "timeSource": source_name(r.time.source),
        "ageSeconds": (age_ns.max(0) as f64) / 1e9,
        "quality": r.quality.names().collect::<Vec<_>>().join(","),
    })
}

/// The sensors of a node: every sensor it reported and every sensor with desired state,
/// by name.
pub fn sensors(node: &NodeStatus, desired: &[DesiredRow], now_ns: i64) -> Vec<Value> {
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
) -> Value {
    let newest_age = values
        .iter()
        .map(|l| now_ns - l.reading.time.utc_ns.unwrap_or(l.received_utc_ns))
        .min()
        .map(|ns| (ns.max(0) as f64) / 1e9);
    json!({
        "apiVersion": API_VERSION,
        "kind": "Sensor",
        "metadata": {
            "name": name,
            "node": node.name,
            "uid": format!("{}/{name}", node.name),
            "generation": spec.map_or(0, |s| s.generation),
            "creationTimestamp": time(spec.map(|s| s.created_ns)),
        },
        "spec": {
            "intervalMs": spec.and_then(|s| s.interval_ms),
            "enabled": spec.and_then(|s| s.enabled),
        },
        "status": {
            "kind": report.map(|r| r.kind.clone()),
            "state": report.map(|r| format!("{:?}", r.state)),
            "reason": report.map(|r| r.reason.clone()),
            "restarts": report.map(|r| r.restarts),
            "lastRestartReason": report.and_then(|r| r.last_restart.as_ref().map(|(_, why)| why.clone())),
            "lastError": report.and_then(|r| r.last_error.clone()),
            "intervalMs": report.and_then(|r| r.interval_ms),
            "enabled": report.map(|r| r.enabled),
            "readings": report.map(|r| r.readings),
            "newestValueAgeSeconds": newest_age,
            "observedGeneration": spec.and_then(|s| s.observed_generation),
            "refused": spec.and_then(|s| s.refused.clone()),
            "nodeConnected": node.connected,
            "nodeBacklog": node.backlog.map(|b| json!({
                "records": b.records,
                "bytes": b.bytes,
                "oldestAgeSeconds": b.oldest_age_s,
            })),
            "reported": time(node.live_received_utc_ns),
            "values": values.iter().map(|l| value(l, now_ns)).collect::<Vec<_>>(),
        },
    })
}

/// What of a sensor a watch reports a change of: not its ages, which change every instant.
pub fn sensor_fingerprint(sensor: &Value) -> String {
    let pick = |p: &str| sensor.pointer(p).cloned().unwrap_or(Value::Null);
    json!([
        pick("/metadata/generation"),
        pick("/spec"),
        pick("/status/state"),
        pick("/status/reason"),
        pick("/status/restarts"),
        pick("/status/lastError"),
        pick("/status/intervalMs"),
        pick("/status/enabled"),
        pick("/status/observedGeneration"),
        pick("/status/refused"),
        pick("/status/nodeConnected"),
    ])
    .to_string()
}
