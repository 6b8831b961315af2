//! The nodes table: which nodes exist, and what the hub keeps of each across restarts
//! (when it was last seen, its agent's version and boot).
//!
//! Invariant every backend keeps: a name is stored at most once.

use super::TablesError;

/// A stored node.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NodeRow {
    /// When it was created, ns.
    pub created_utc_ns: i64,
    /// When a session of it last started or ended, ns.
    pub last_seen_utc_ns: Option<i64>,
    /// Its agent's version at its last session.
    pub agent_version: Option<String>,
    /// Its boot id at its last session.
    pub boot_id: Option<String>,
}

/// The nodes table of one backend.
pub trait NodeTables: Send + Sync + std::fmt::Debug {
    /// Every node's name, sorted.
    fn names(&self) -> Result<Vec<String>, TablesError>;

    /// Stores a new node; `false` when the name exists already.
    fn insert(&self, name: &str, created_utc_ns: i64) -> Result<bool, TablesError>;

    /// Removes a node; `false` when there was none.
    fn delete(&self, name: &str) -> Result<bool, TablesError>;

    /// Whether the node exists.
    fn exists(&self, name: &str) -> Result<bool, TablesError>;

    /// One node.
    fn get(&self, name: &str) -> Result<Option<NodeRow>, TablesError>;

    /// A session of the node started at `now`, with its agent's version and boot.
    fn session_started(
        &self,
        name: &str,
        now_utc_ns: i64,
        agent_version: &str,
        boot_id: &str,
    ) -> Result<(), TablesError>;

    /// A session of the node ended (or it was seen) at `now`.
    fn seen(&self, name: &str, now_utc_ns: i64) -> Result<(), TablesError>;
}
