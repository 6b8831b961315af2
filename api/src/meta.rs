//! Object and list metadata.
//!
//! Invariant: metadata carries only what applies to its object; a field that does not apply
//! (a token's node, a generation of a node) is left out, not written as `null`, as
//! Kubernetes leaves out unset metadata.

use serde::{Deserialize, Serialize};

/// `metadata` of a resource.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct ObjectMeta {
    /// The name: unique within its kind (sensors: within their node).
    pub name: String,
    /// The node the object belongs to.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub node: Option<String>,
    /// Unique across nodes (a sensor's is `node/name`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub uid: Option<String>,
    /// The generation of the spec (a sensor's desired state; 0: nothing desired).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub generation: Option<u64>,
    /// Grows at every change of the object (commands).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub resource_version: Option<String>,
    /// When it was made, RFC 3339 UTC.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub creation_timestamp: Option<String>,
}

impl ObjectMeta {
    /// Metadata with only a name (a `DELETED` watch event's object).
    pub fn named(name: impl Into<String>) -> Self {
        ObjectMeta {
            name: name.into(),
            ..ObjectMeta::default()
        }
    }
}

/// `metadata` of a list that is about one node (and maybe one sensor of it).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct ListMeta {
    /// The node the list is about.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub node: Option<String>,
    /// The sensor the list is narrowed to.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub sensor: Option<String>,
}
