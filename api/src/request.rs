//! The bodies clients send: a command to create, a token or node to create, a sensor's
//! desired spec to write.
//!
//! Invariant: these are the types the hub parses the bodies with, so a client that builds
//! its request with them sends what the hub takes. Fields the hub ignores around them
//! (`apiVersion`, `kind`) are ignored; unknown fields of a command's or a token's spec are
//! refused, so a misspelt one is an error rather than a default.

use serde::{Deserialize, Serialize};

/// `POST /api/v1/nodes/{node}/commands`: `{"spec": {"action": ..., "sensor": ..., ...}}`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CommandRequest {
    /// What to do.
    pub spec: CommandRequestSpec,
}

/// What a new command orders.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct CommandRequestSpec {
    /// `restartSensor`, the one action.
    pub action: String,
    /// The sensor.
    pub sensor: String,
    /// Power-cycle the device rather than reopen it.
    #[serde(default)]
    pub hard: bool,
    /// Time to live while not delivered, s (the hub's default: 3600).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ttl_seconds: Option<u64>,
}

/// `POST /api/v1/tokens`: `{"spec": {"role": ..., "description": ...}}`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TokenRequest {
    /// What it may do.
    pub spec: TokenRequestSpec,
}

/// What a new token may do.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TokenRequestSpec {
    /// `viewer`, `operator` or `admin`.
    pub role: String,
    /// Who or what it is for.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
}

/// `POST /api/v1/nodes`: `{"metadata": {"name": ...}}`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct NodeRequest {
    /// Its name.
    pub metadata: NodeRequestMeta,
}

/// A new node's name.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct NodeRequestMeta {
    /// The node's name (its agent's `[node] name`).
    pub name: String,
}
