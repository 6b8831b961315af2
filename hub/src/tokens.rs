//! Bearer tokens and their roles.
//!
//! Invariants: a token's secret is shown once, when it is made, and stored only as its
//! SHA-256 (a stolen database does not let anyone in); a revoked token never
//! authenticates again; a `node` token is bound to exactly one node name.

use std::sync::Arc;

use serde::Serialize;

use crate::clock::{hex, now_utc_ns, random_hex};
use crate::storage::TablesError;
use crate::storage::tokens::{TokenRow, TokenTables};

/// What a token may do.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Role {
    /// One node: only the WebSocket at [`aloft_protocol::sync::NODE_PATH`], its own stream and commands.
    Node,
    /// Reads the API.
    Viewer,
    /// Viewer, plus commands and desired state.
    Operator,
    /// Operator, plus nodes and tokens.
    Admin,
}

impl Role {
    /// The role's name in the API and the database.
    pub fn name(self) -> &'static str {
        match self {
            Role::Node => "node",
            Role::Viewer => "viewer",
            Role::Operator => "operator",
            Role::Admin => "admin",
        }
    }

    /// The role of a name.
    pub fn from_name(name: &str) -> Option<Role> {
        match name {
            "node" => Some(Role::Node),
            "viewer" => Some(Role::Viewer),
            "operator" => Some(Role::Operator),
            "admin" => Some(Role::Admin),
            _ => None,
        }
    }

    /// Whether this role includes everything `needed` may do. A node token only ever
    /// includes itself: it cannot read the API.
    pub fn includes(self, needed: Role) -> bool {
        match (self, needed) {
            (Role::Node, Role::Node) => true,
            (Role::Node, _) | (_, Role::Node) => false,
            (have, need) => have >= need,
        }
    }
}

/// A token as listed (never its secret).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct TokenInfo {
    /// Its public id (`tok-` and 8 hex digits), for listing and revoking.
    pub id: String,
    /// What it may do.
    pub role: Role,
    /// The node it is bound to (role `node` only).
    pub node: Option<String>,
    /// Free text: who or what it is for.
    pub label: String,
    /// When it was made, ns since the Unix epoch.
    pub created_utc_ns: i64,
    /// When it was revoked, if it was.
    pub revoked_utc_ns: Option<i64>,
}

/// Who is calling, from an authenticated token.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Principal {
    /// The token's id (for audit).
    pub token_id: String,
    /// Its role.
    pub role: Role,
    /// Its node, for role `node`.
    pub node: Option<String>,
}

/// Why a token operation failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum TokenError {
    /// The database failed.
    #[error("token database: {0}")]
    Db(#[from] TablesError),
    /// No randomness.
    #[error("no randomness for a token: {0}")]
    Random(#[from] getrandom::Error),
    /// A node token needs a node, other roles must not have one.
    #[error("a token of role node needs exactly one node; other roles none")]
    NodeBinding,
}

/// The tokens: a cheap handle on one backend's [`TokenTables`].
#[derive(Debug, Clone)]
pub struct Tokens {
    tables: Arc<dyn TokenTables>,
}

fn hash(secret: &str) -> String {
    hex(ring::digest::digest(&ring::digest::SHA256, secret.as_bytes()).as_ref())
}

impl Tokens {
    /// The tokens of `tables`.
    pub fn new(tables: Arc<dyn TokenTables>) -> Tokens {
        Tokens { tables }
    }

    /// Makes a token; returns it and its secret (shown once, never stored).
    pub fn create(
        &self,
        role: Role,
        node: Option<&str>,
        label: &str,
    ) -> Result<(TokenInfo, String), TokenError> {
        if (role == Role::Node) != node.is_some() {
            return Err(TokenError::NodeBinding);
        }
        let secret = format!("aloft_{}", random_hex(32)?);
        let info = TokenInfo {
            id: format!("tok-{}", random_hex(4)?),
            role,
            node: node.map(str::to_owned),
            label: label.to_owned(),
            created_utc_ns: now_utc_ns(),
            revoked_utc_ns: None,
        };
        let row = TokenRow {
            id: info.id.clone(),
            role: role.name().to_owned(),
            node: info.node.clone(),
            label: info.label.clone(),
            created_utc_ns: info.created_utc_ns,
            revoked_utc_ns: None,
        };
        self.tables.insert(&row, &hash(&secret))?;
        tracing::info!(token = %info.id, role = role.name(), node = ?info.node, "Token created.");
        Ok((info, secret))
    }

    /// Revokes a token by id; `false` if there is no such (unrevoked) token.
    pub fn revoke(&self, id: &str) -> Result<bool, TokenError> {
        let revoked = self.tables.revoke(id, now_utc_ns())?;
        if revoked {
            tracing::info!(token = %id, "Token revoked.");
        }
        Ok(revoked)
    }

    /// Revokes every token of a node; how many.
    pub fn revoke_node(&self, node: &str) -> Result<usize, TokenError> {
        Ok(self.tables.revoke_node(node, now_utc_ns())?)
    }

    /// Whether the token `id` exists and is not revoked.
    pub fn is_active(&self, id: &str) -> Result<bool, TokenError> {
        Ok(self.tables.is_active(id)?)
    }

    /// Every token, revoked ones included, oldest first.
    pub fn list(&self) -> Result<Vec<TokenInfo>, TokenError> {
        Ok(self
            .tables
            .list()?
            .into_iter()
            .map(|row| TokenInfo {
                id: row.id,
                role: Role::from_name(&row.role).unwrap_or(Role::Viewer),
                node: row.node,
                label: row.label,
                created_utc_ns: row.created_utc_ns,
                revoked_utc_ns: row.revoked_utc_ns,
            })
            .collect())
    }

    /// The caller a secret belongs to; `None` for an unknown or revoked token.
    pub fn authenticate(&self, secret: &str) -> Result<Option<Principal>, TokenError> {
        let found = self.tables.active_by_digest(&hash(secret))?;
        Ok(found.and_then(|row| {
            Role::from_name(&row.role).map(|role| Principal {
                token_id: row.id,
                role,
                node: row.node,
            })
        }))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::storage::sqlite::{Db, SqliteTokens};

    #[test]
    fn roles_include_lower_roles_but_never_node() {
        assert!(Role::Admin.includes(Role::Operator));
        assert!(Role::Operator.includes(Role::Viewer));
        assert!(!Role::Viewer.includes(Role::Operator));
        assert!(!Role::Node.includes(Role::Viewer));
        assert!(!Role::Admin.includes(Role::Node));
    }

    #[test]
    fn a_revoked_token_no_longer_authenticates() {
        let dir = tempfile::tempdir().unwrap();
        let tokens = Tokens::new(Arc::new(SqliteTokens::new(Db::open(dir.path()).unwrap())));
        let (info, secret) = tokens.create(Role::Node, Some("glider"), "test").unwrap();
        let who = tokens.authenticate(&secret).unwrap().unwrap();
        assert_eq!(who.node.as_deref(), Some("glider"));
        assert_eq!(who.role, Role::Node);
        assert!(tokens.authenticate("aloft_nonsense").unwrap().is_none());
        assert!(tokens.is_active(&info.id).unwrap());
        assert!(tokens.revoke(&info.id).unwrap());
        assert!(!tokens.is_active(&info.id).unwrap());
        assert!(tokens.authenticate(&secret).unwrap().is_none());
        assert!(!tokens.revoke(&info.id).unwrap());
        assert!(matches!(
            tokens.create(Role::Viewer, Some("glider"), ""),
            Err(TokenError::NodeBinding)
        ));
    }
}
