//! Bearer tokens and their roles.
//!
//! Invariants: a token's secret is shown once, when it is made, and stored only as its
//! SHA-256 (a stolen database does not let anyone in); a revoked token never
//! authenticates again; a `node` token is bound to exactly one node name.

use rusqlite::{OptionalExtension, params};
use serde::Serialize;

use crate::clock::{hex, now_utc_ns, random_hex};
use crate::storage::sqlite::Db;

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
    Db(#[from] rusqlite::Error),
    /// No randomness.
    #[error("no randomness for a token: {0}")]
    Random(#[from] getrandom::Error),
    /// A node token needs a node, other roles must not have one.
    #[error("a token of role node needs exactly one node; other roles none")]
    NodeBinding,
}

/// The token table.
#[derive(Debug, Clone)]
pub struct Tokens {
    db: Db,
}

fn hash(secret: &str) -> String {
    hex(ring::digest::digest(&ring::digest::SHA256, secret.as_bytes()).as_ref())
}

impl Tokens {
    pub(crate) fn new(db: Db) -> Tokens {
        Tokens { db }
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
        self.db.write(|conn| {
            conn.execute(
                "INSERT INTO tokens(id, hash, role, node, label, created_utc_ns) VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
                params![info.id, hash(&secret), role.name(), info.node, info.label, info.created_utc_ns],
            )
        })?;
        tracing::info!(token = %info.id, role = role.name(), node = ?info.node, "Token created.");
        Ok((info, secret))
    }

    /// Revokes a token by id; `false` if there is no such (unrevoked) token.
    pub fn revoke(&self, id: &str) -> Result<bool, TokenError> {
        let changed = self.db.write(|conn| {
            conn.execute(
                "UPDATE tokens SET revoked_utc_ns = ?2 WHERE id = ?1 AND revoked_utc_ns IS NULL",
                params![id, now_utc_ns()],
            )
        })?;
        if changed > 0 {
            tracing::info!(token = %id, "Token revoked.");
        }
        Ok(changed > 0)
    }

    /// Revokes every token of a node; how many.
    pub fn revoke_node(&self, node: &str) -> Result<usize, TokenError> {
        Ok(self.db.write(|conn| {
            conn.execute(
                "UPDATE tokens SET revoked_utc_ns = ?2 WHERE node = ?1 AND revoked_utc_ns IS NULL",
                params![node, now_utc_ns()],
            )
        })?)
    }

    /// Whether the token `id` exists and is not revoked.
    pub fn is_active(&self, id: &str) -> Result<bool, TokenError> {
        let conn = self.db.reader()?;
        Ok(conn
            .query_row(
                "SELECT 1 FROM tokens WHERE id = ?1 AND revoked_utc_ns IS NULL",
                params![id],
                |_| Ok(()),
            )
            .optional()?
            .is_some())
    }

    /// Every token, revoked ones included, oldest first.
    pub fn list(&self) -> Result<Vec<TokenInfo>, TokenError> {
        let conn = self.db.reader()?;
        let mut stmt = conn.prepare(
            "SELECT id, role, node, label, created_utc_ns, revoked_utc_ns FROM tokens ORDER BY created_utc_ns, id",
        )?;
        let rows = stmt.query_map([], |row| {
            let role: String = row.get(1)?;
            Ok(TokenInfo {
                id: row.get(0)?,
                role: Role::from_name(&role).unwrap_or(Role::Viewer),
                node: row.get(2)?,
                label: row.get(3)?,
                created_utc_ns: row.get(4)?,
                revoked_utc_ns: row.get(5)?,
            })
        })?;
        Ok(rows.collect::<Result<_, _>>()?)
    }

    /// The caller a secret belongs to; `None` for an unknown or revoked token.
    pub fn authenticate(&self, secret: &str) -> Result<Option<Principal>, TokenError> {
        let conn = self.db.reader()?;
        let found = conn
            .query_row(
                "SELECT id, role, node FROM tokens WHERE hash = ?1 AND revoked_utc_ns IS NULL",
                params![hash(secret)],
                |row| {
                    Ok((
                        row.get::<_, String>(0)?,
                        row.get::<_, String>(1)?,
                        row.get::<_, Option<String>>(2)?,
                    ))
                },
            )
            .optional()?;
        Ok(found.and_then(|(token_id, role, node)| {
            Role::from_name(&role).map(|role| Principal {
                token_id,
                role,
                node,
            })
        }))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

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
        let tokens = Tokens::new(Db::open(dir.path()).unwrap());
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
