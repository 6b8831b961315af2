//! `Node`: a glider's agent as the hub knows it: what it persisted (last seen, agent
//! version, boot, streams) and what it heard since it started (the live lane, sessions).
//!
//! Invariant: `status` fields the hub has not heard are `None`; the live-lane fields
//! describe the last report when the node is offline.

use serde::{Deserialize, Serialize};

use crate::resource;

resource!(
    /// `GET /api/v1/nodes[/{node}]`, `POST /api/v1/nodes`.
    Node,
    NodeSpec,
    NodeStatus
);

/// A node has nothing desired of its own (its sensors do).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct NodeSpec {}

/// What the hub knows of the node.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct NodeStatus {
    /// `NameValid` and `SensorNamesValid`.
    pub conditions: Vec<Condition>,
    /// Whether a session is open now (`None`: not said).
    pub connected: Option<bool>,
    /// When the hub last heard it (survives restarts).
    pub last_seen: Option<String>,
    /// When its current session started.
    pub session_started: Option<String>,
    /// The agent's version (survives restarts).
    pub agent_version: Option<String>,
    /// The agent's boot id (survives restarts).
    pub boot_id: Option<String>,
    /// The agent's current store epoch.
    pub epoch: Option<String>,
    /// Traffic since the hub started.
    pub link: LinkStats,
    /// The agent's unsent backlog.
    pub backlog: Option<Backlog>,
    /// When the newest live update arrived.
    pub live_received: Option<String>,
    /// The agent's newest sensor reports.
    pub sensors: Option<Vec<NodeSensor>>,
    /// The newest value of every (sensor, quantity).
    pub latest: Vec<LatestValue>,
    /// One entry per store epoch the node has sent.
    pub streams: Vec<StreamStatus>,
    /// The node's newest health report from the live lane (`None`: none since the hub
    /// started, or an agent that does not send one). Left out when `None`, so a node
    /// without one reads as it did before the field existed.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub health: Option<NodeHealth>,
    /// The node's secret, only in the answer that created the node.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub token: Option<String>,
    /// The id of that secret's token, only in the answer that created the node.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub token_id: Option<String>,
}

/// A condition about the node: `{"type", "status": "True"|"False", "reason", "message"}`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct Condition {
    /// `NameValid` or `SensorNamesValid`.
    #[serde(rename = "type")]
    pub kind: String,
    /// `True` or `False`.
    pub status: String,
    /// One word why.
    pub reason: String,
    /// What is wrong, when it is `False`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub message: Option<String>,
}

/// Traffic of a node's sessions since the hub started.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct LinkStats {
    /// Sessions welcomed.
    pub sessions: u64,
    /// Sessions refused (bad input, wrong node, replaced).
    pub refusals: u64,
    /// WebSocket message bytes received.
    pub bytes_received: u64,
    /// WebSocket message bytes sent.
    pub bytes_sent: u64,
    /// Batches persisted.
    pub batches: u64,
    /// Records received in batches (duplicates included).
    pub records: u64,
    /// Live updates received.
    pub live_updates: u64,
}

/// The agent's unsent backlog.
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct Backlog {
    /// Records not yet sent.
    pub records: u64,
    /// Their bytes.
    pub bytes: u64,
    /// Age of the oldest, s.
    pub oldest_age_seconds: Option<f64>,
}

/// One sensor as the agent's live lane reported it.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct NodeSensor {
    /// The sensor's number in the stream.
    pub sensor: u16,
    /// Its name.
    pub name: String,
    /// Its driver kind.
    pub kind: String,
    /// Its state (`Running`, ...).
    pub state: String,
    /// Why it is in that state.
    pub reason: String,
    /// Restarts since the agent started.
    pub restarts: u32,
    /// Its last restart.
    pub last_restart: Option<LastRestart>,
    /// Its last error.
    pub last_error: Option<String>,
    /// The interval in force, ms.
    pub interval_ms: Option<u32>,
    /// Whether it runs.
    pub enabled: bool,
    /// Readings taken since the agent started.
    pub readings: u64,
}

/// When and why a sensor last restarted.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct LastRestart {
    /// On the agent's monotonic clock, ns.
    pub mono_ns: u64,
    /// UTC, when the agent knew it.
    pub utc: Option<String>,
    /// Why.
    pub reason: String,
}

/// The newest value of one (sensor, quantity) from the live lane.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct LatestValue {
    /// The sensor's name.
    pub sensor: String,
    /// Quantity name.
    pub quantity: String,
    /// Its unit (`None`: a quantity this hub has no name for, shown by its code).
    pub unit: Option<String>,
    /// The value (`None`: not a number).
    pub value: Option<f64>,
    /// The reading's UTC.
    pub utc: Option<String>,
    /// Where that UTC came from.
    pub time_source: String,
    /// The reading's monotonic time, ns.
    pub mono_ns: u64,
    /// Its quality flags; empty when good.
    pub quality: Vec<String>,
    /// When the hub received it.
    pub received: Option<String>,
    /// Its age by the hub's clock, s (`None` without UTC).
    pub age_seconds: Option<f64>,
}

/// One store epoch of the node's stream.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct StreamStatus {
    /// The epoch, 32 hex digits.
    pub epoch: String,
    /// Everything up to it is stored or known not to exist.
    pub watermark: Option<u64>,
    /// When the hub first saw it.
    pub first_seen: Option<String>,
}

/// The node itself between sensor reports, from the agent's newest health report: its
/// time and clock trust, its store's fill and full policy, the GNSS dynamic models in force.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct NodeHealth {
    /// When the agent took the report, UTC, when it knew it.
    pub utc: Option<String>,
    /// Where that UTC came from (`system_clock`, `gnss`, `reconstructed`; `monotonic` when
    /// there is none): what a reading taken then was stamped with.
    pub time_source: String,
    /// The report's monotonic time, ns.
    pub mono_ns: u64,
    /// Whether the agent trusts its system clock (`None`: it cannot tell).
    pub clock_trusted: Option<bool>,
    /// The store's fill and full policy.
    pub store: StoreFill,
    /// Per GNSS receiver, the dynamic model it confirmed at its latest (re)start.
    pub gnss_models: Vec<GnssModel>,
    /// The power step in force (`None`: unknown, for an agent older than protocol version
    /// 4 or one whose config has no power policy; never read as full power).
    pub power: Option<NodePower>,
    /// When the hub received the report.
    pub received: Option<String>,
}

/// The power step a node samples under, as its agent's power policy decided it from the
/// battery.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct NodePower {
    /// The step's name in the agent's config; `full` at level 0.
    pub step: String,
    /// 0 at full power; higher levels save more.
    pub level: u8,
    /// Why it is in force, in words (the input and the threshold it crossed).
    pub reason: String,
    /// When it took effect, UTC, when the agent knew it.
    pub since: Option<String>,
    /// When it took effect on the agent's monotonic clock, ns.
    pub since_mono_ns: u64,
    /// The upload budget it holds the link to, bytes/s (`None`: it does not lower it).
    pub upload_bytes_per_s: Option<u64>,
    /// Sensors the operator exempted from power steps, as the agent applies them.
    pub overridden: Vec<String>,
}

/// How full the node's store is.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct StoreFill {
    /// Bytes of records on disk.
    pub bytes: u64,
    /// The most bytes the store keeps before its full policy applies.
    pub max_bytes: u64,
    /// `bytes` as a share of `maxBytes`, % to one decimal (`None` when `maxBytes` is 0).
    pub percent: Option<f64>,
    /// What the store does when full, as the agent's config spells it (`drop-oldest`,
    /// `decimate`, `reject-new`).
    pub full_policy: String,
}

/// The dynamic model a GNSS receiver has in force.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct GnssModel {
    /// The receiver's number in the stream.
    pub sensor: u16,
    /// Its name, from the node's sensor reports (`None`: not reported).
    pub name: Option<String>,
    /// The model's name (`airborne2g`, `portable`, ...; `None`: a code this hub has no
    /// name for).
    pub model: Option<String>,
    /// The u-blox dynamic model code (7 is airborne < 2 g), kept for every model.
    pub code: u8,
}
