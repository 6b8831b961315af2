//! `Event`: one entry of the audit trail (docs/api.md, "Event"): who did what to which
//! object, and how it ended.

use serde::{Deserialize, Serialize};

use crate::{Actor, resource};

resource!(
    /// `GET /api/v1/events`.
    Event,
    EventSpec,
    EventStatus
);

/// What was done.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct EventSpec {
    /// Who did it.
    pub actor: Actor,
    /// `create`, `set`, `delete`, `cancel`, `report`, ...
    pub action: String,
    /// What it was done to.
    pub object: ObjectReference,
}

/// The object an event is about.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct ObjectReference {
    /// Its kind (`Command`, `Sensor`, `Node`, `Token`).
    pub kind: String,
    /// Its name (empty for a refused creation).
    pub name: String,
    /// Its node, when it has one.
    pub node: Option<String>,
}

/// How it ended.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct EventStatus {
    /// `ok`, `denied`, `refused`, or the command phase reached.
    pub outcome: String,
    /// What happened, for people.
    pub message: String,
}
