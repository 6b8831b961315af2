//! `Command`: an operator's order to a node (today: restart a sensor), with its life in
//! `status.phase` (docs/api.md, "Command").
//!
//! Invariant: a command's spec never changes after creation (`metadata.generation` stays
//! 1); its status does, and `metadata.resourceVersion` grows with it.

use serde::{Deserialize, Serialize};

use crate::resource;

resource!(
    /// `POST /api/v1/nodes/{node}/commands`, `GET /api/v1/commands[/{id}]`.
    Command,
    CommandSpec,
    CommandStatus
);

/// Who made a change: a token id and its role, `node/NAME` (role `node`), or `hub`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct Actor {
    /// Token id, `node/NAME` or `hub`.
    pub token: String,
    /// `viewer`, `operator`, `admin`, `node` or `hub`.
    pub role: String,
}

/// What the command orders.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct CommandSpec {
    /// `restartSensor`.
    pub action: String,
    /// The sensor it is about.
    pub sensor: String,
    /// Power-cycle the device rather than reopen it.
    pub hard: bool,
    /// Time to live while not delivered.
    pub ttl_seconds: u64,
    /// When it expires, RFC 3339 UTC.
    pub expires: String,
    /// Who created it.
    pub created_by: Actor,
}

/// Where the command is in its life.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct CommandStatus {
    /// `Pending`, `Delivered`, `Succeeded`, `Failed`, `Expired` or `Cancelled`.
    pub phase: String,
    /// What happened, the agent's words once it answered.
    pub message: String,
    /// When the agent acked it.
    pub delivered: Option<String>,
    /// When it reached a final phase.
    pub finished: Option<String>,
}
