//! The tokens table: every bearer token the hub made, by id, with the digest of its secret
//! (never the secret), its role and node by name, and when it was revoked.
//!
//! Invariants every backend keeps: a digest is unique; a revoked token stays listed and
//! is never found by [`TokenTables::active_by_digest`] again.

use super::TablesError;

/// A stored token.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TokenRow {
    /// Its id (`tok-` and 8 hex digits).
    pub id: String,
    /// Its role's name.
    pub role: String,
    /// The node a node token is bound to.
    pub node: Option<String>,
    /// Who or what it is for.
    pub label: String,
    /// When it was made, ns.
    pub created_utc_ns: i64,
    /// When it was revoked, ns.
    pub revoked_utc_ns: Option<i64>,
}

/// The tokens table of one backend.
pub trait TokenTables: Send + Sync + std::fmt::Debug {
    /// Stores a new token with the digest of its secret.
    fn insert(&self, token: &TokenRow, digest: &str) -> Result<(), TablesError>;

    /// Revokes the token `id` at `now`; `false` if there is no such unrevoked token.
    fn revoke(&self, id: &str, now_utc_ns: i64) -> Result<bool, TablesError>;

    /// Revokes every unrevoked token of `node` at `now`; how many.
    fn revoke_node(&self, node: &str, now_utc_ns: i64) -> Result<usize, TablesError>;

    /// Whether the token `id` exists and is not revoked.
    fn is_active(&self, id: &str) -> Result<bool, TablesError>;

    /// Every token, revoked ones included, oldest first.
    fn list(&self) -> Result<Vec<TokenRow>, TablesError>;

    /// The unrevoked token whose secret has `digest`.
    fn active_by_digest(&self, digest: &str) -> Result<Option<TokenRow>, TablesError>;
}
