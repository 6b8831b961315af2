//! The control tables: commands, desired sensor state and the audit trail, as the
//! records a backend stores ([`CommandRow`], [`DesiredRow`], [`EventRow`]) and the
//! [`ControlTables`] it implements.
//!
//! Invariants every backend keeps: a command or desired change is durable before the call
//! returns (the API answers after it); each change and its audit event commit together; a
//! desired sensor's generation only grows; every change of a command bumps its
//! `revision`, which watches use to tell what changed; a command moves phase only from the
//! phase the caller read (compare-and-set).

use std::collections::BTreeMap;

use aloft_protocol::sync::TunableValue;
use serde::Serialize;

pub use super::TablesError;

/// One sensor's tunables by key.
pub type Tunables = BTreeMap<String, TunableValue>;

/// Where a command is in its life.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
pub enum Phase {
    /// Persisted by the hub, not yet acked by the agent.
    Pending,
    /// The agent acked it: it durably holds it.
    Delivered,
    /// The agent applied it.
    Succeeded,
    /// The agent could not apply it, or was interrupted.
    Failed,
    /// Its TTL passed before it was applied.
    Expired,
    /// An operator cancelled it before delivery.
    Cancelled,
}

impl Phase {
    /// The name stored and shown.
    pub fn name(self) -> &'static str {
        match self {
            Phase::Pending => "Pending",
            Phase::Delivered => "Delivered",
            Phase::Succeeded => "Succeeded",
            Phase::Failed => "Failed",
            Phase::Expired => "Expired",
            Phase::Cancelled => "Cancelled",
        }
    }

    /// The phase of a stored name.
    pub fn from_name(name: &str) -> Option<Phase> {
        [
            Phase::Pending,
            Phase::Delivered,
            Phase::Succeeded,
            Phase::Failed,
            Phase::Expired,
            Phase::Cancelled,
        ]
        .into_iter()
        .find(|p| p.name() == name)
    }
}

/// Who did something: a token and its role (or the hub itself, or a node).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Actor {
    /// The token's id (`hub` for the hub's own actions such as expiry).
    pub token: String,
    /// Its role's name.
    pub role: String,
}

impl Actor {
    /// The hub itself.
    pub fn hub() -> Actor {
        Actor {
            token: "hub".into(),
            role: "hub".into(),
        }
    }

    /// A node's agent, through its session.
    pub fn node(node: &str) -> Actor {
        Actor {
            token: format!("node/{node}"),
            role: "node".into(),
        }
    }
}

/// A stored command.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CommandRow {
    /// Its id (`cmd-` and 12 hex digits).
    pub id: String,
    /// The node.
    pub node: String,
    /// The sensor to restart.
    pub sensor: String,
    /// Power-cycle first.
    pub hard: bool,
    /// Its time to live, s.
    pub ttl_s: u64,
    /// When it was created, ns.
    pub created_ns: i64,
    /// When it expires, ns.
    pub expires_ns: i64,
    /// Where it is.
    pub phase: Phase,
    /// The agent's or hub's words on its phase.
    pub message: String,
    /// Who created it.
    pub actor: Actor,
    /// When the agent acked it, ns.
    pub delivered_ns: Option<i64>,
    /// When it ended, ns.
    pub finished_ns: Option<i64>,
    /// Bumped at every change.
    pub revision: u64,
}

/// A sensor's desired state.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DesiredRow {
    /// The node.
    pub node: String,
    /// The sensor's name.
    pub sensor: String,
    /// Bumped at every change of the spec.
    pub generation: u64,
    /// Desired interval, ms.
    pub interval_ms: Option<u32>,
    /// Desired enabled flag.
    pub enabled: Option<bool>,
    /// The generation the agent reported applied.
    pub observed_generation: Option<u64>,
    /// Why the agent refused (part of) it.
    pub refused: Option<String>,
    /// Desired tunables (empty: the node's config file decides them all).
    pub tunables: Tunables,
    /// The tunables in force the agent last reported (every key its kind declares),
    /// `None` until an agent that carries tunables reports the sensor.
    pub observed_tunables: Option<Tunables>,
    /// The operator exempts the sensor from the node's power steps.
    pub power_override: bool,
    /// When first set, ns.
    pub created_ns: i64,
    /// When last changed, ns.
    pub updated_ns: i64,
}

/// One audit event.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EventRow {
    /// Its number (grows).
    pub seq: u64,
    /// When, ns.
    pub time_ns: i64,
    /// Who.
    pub actor: Actor,
    /// What (`create`, `cancel`, `set`, `deliver`, `succeed`, `revoke`, ...).
    pub action: String,
    /// The object's kind (`Command`, `Sensor`, `Node`, `Token`).
    pub object_kind: String,
    /// The object's name.
    pub object_name: String,
    /// The node it concerns.
    pub node: Option<String>,
    /// `ok`, `denied`, `failed`, or a command's phase.
    pub outcome: String,
    /// Details.
    pub message: String,
}

/// The control tables of one backend. Object-safe: the control layer holds one as
/// `Arc<dyn ControlTables>`.
pub trait ControlTables: Send + Sync + std::fmt::Debug {
    /// Stores a new command and its audit event in one transaction.
    fn insert_command(&self, command: &CommandRow, event: &EventRow) -> Result<(), TablesError>;

    /// One command.
    fn command(&self, id: &str) -> Result<Option<CommandRow>, TablesError>;

    /// Commands, oldest first; of one node when given; at most `limit` newest.
    fn commands(&self, node: Option<&str>, limit: u32) -> Result<Vec<CommandRow>, TablesError>;

    /// Commands of a node in a phase, oldest first.
    fn commands_in(&self, node: &str, phase: Phase) -> Result<Vec<CommandRow>, TablesError>;

    /// Pending commands whose expiry is at or before `now_ns`, all nodes.
    fn due_for_expiry(&self, now_ns: i64) -> Result<Vec<CommandRow>, TablesError>;

    /// Moves a command to a phase if it is still in `from` (compare-and-set: two sessions or
    /// the expiry ticker racing cannot both win), with its audit event; the updated command,
    /// or `None` when it was no longer in `from`.
    fn transition(
        &self,
        id: &str,
        from: Phase,
        to: Phase,
        message: &str,
        now_ns: i64,
        event: &EventRow,
    ) -> Result<Option<CommandRow>, TablesError>;

    /// A sensor's desired state.
    fn desired_one(&self, node: &str, sensor: &str) -> Result<Option<DesiredRow>, TablesError>;

    /// Every desired sensor of a node (or of all nodes), by node and name.
    fn desired(&self, node: Option<&str>) -> Result<Vec<DesiredRow>, TablesError>;

    /// Writes a sensor's desired state (its generation already bumped by the caller) with
    /// its audit event.
    fn put_desired(&self, row: &DesiredRow, event: &EventRow) -> Result<(), TablesError>;

    /// Records what the agent reports applied, and the tunables it reports in force
    /// (`None`: it reported none, and what was recorded stays); `true` if anything
    /// changed.
    fn observe(
        &self,
        node: &str,
        sensor: &str,
        generation: u64,
        refused: Option<&str>,
        tunables: Option<&Tunables>,
    ) -> Result<bool, TablesError>;

    /// Removes one sensor's desired state, with its audit event, in one transaction;
    /// `false` if there was none.
    fn delete_desired(
        &self,
        node: &str,
        sensor: &str,
        event: &EventRow,
    ) -> Result<bool, TablesError>;

    /// Whether the node's last desired entry was deleted (it is sent an empty spec).
    fn desired_cleared(&self, node: &str) -> Result<bool, TablesError>;

    /// Removes a node's desired state (the node was deleted).
    fn forget_desired(&self, node: &str) -> Result<usize, TablesError>;

    /// Appends an audit event.
    fn add_event(&self, event: &EventRow) -> Result<(), TablesError>;

    /// The newest `limit` events (of a node when given), oldest first, after `after`.
    fn events(
        &self,
        node: Option<&str>,
        after: u64,
        limit: u32,
    ) -> Result<Vec<EventRow>, TablesError>;
}
