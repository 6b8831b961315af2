//! `DesiredState`: a node's whole desired sensor spec as the node receives it, and what the
//! agent reported applying (`GET /api/v1/nodes/{node}/desired`).

use serde::{Deserialize, Serialize};

use crate::{Tunables, resource};

resource!(
    /// `GET /api/v1/nodes/{node}/desired`.
    DesiredState,
    DesiredStateSpec,
    DesiredStateStatus
);

/// The spec pushed to the node.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct DesiredStateSpec {
    /// One entry a sensor with desired state.
    pub sensors: Vec<DesiredSensor>,
    /// The sensors the operator exempts from the node's power steps, by name (sent only to
    /// agents of protocol version 4 or later: older ones have no power steps).
    pub power_overrides: Vec<String>,
}

/// One sensor's desired state.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct DesiredSensor {
    /// The sensor.
    pub name: String,
    /// The spec's generation.
    pub generation: u64,
    /// Sampling interval, ms (`None`: the config file decides).
    pub interval_ms: Option<u32>,
    /// Whether it runs (`None`: the config file decides).
    pub enabled: Option<bool>,
    /// Its tunables (a key left out: the config file decides); left out when none.
    #[serde(skip_serializing_if = "Tunables::is_empty")]
    pub tunables: Tunables,
}

/// What the agent reported of the spec.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct DesiredStateStatus {
    /// One entry a sensor with desired state.
    pub sensors: Vec<ObservedSensor>,
}

/// What the agent reported of one sensor's spec.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct ObservedSensor {
    /// The sensor.
    pub name: String,
    /// The generation the agent applied.
    pub observed_generation: Option<u64>,
    /// Why it refused (part of) it.
    pub refused: Option<String>,
    /// The tunables in force it reported; left out until it has.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub tunables: Option<Tunables>,
}
