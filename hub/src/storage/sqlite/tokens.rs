//! The tokens table in `hub.sqlite`.

use rusqlite::{OptionalExtension, Row, params};

use super::Db;
use crate::storage::TablesError;
use crate::storage::tokens::{TokenRow, TokenTables};

/// The tokens table of a [`Db`].
#[derive(Debug, Clone)]
pub struct SqliteTokens {
    db: Db,
}

impl SqliteTokens {
    /// The tokens table of `db`.
    pub fn new(db: Db) -> SqliteTokens {
        SqliteTokens { db }
    }
}

const COLUMNS: &str = "id, role, node, label, created_utc_ns, revoked_utc_ns";

fn token_of(row: &Row<'_>) -> rusqlite::Result<TokenRow> {
    Ok(TokenRow {
        id: row.get(0)?,
        role: row.get(1)?,
        node: row.get(2)?,
        label: row.get(3)?,
        created_utc_ns: row.get(4)?,
        revoked_utc_ns: row.get(5)?,
    })
}

impl TokenTables for SqliteTokens {
    fn insert(&self, token: &TokenRow, digest: &str) -> Result<(), TablesError> {
        self.db.write(|conn| {
            conn.execute(
                "INSERT INTO tokens(id, hash, role, node, label, created_utc_ns) VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
                params![token.id, digest, token.role, token.node, token.label, token.created_utc_ns],
            )
        })?;
        Ok(())
    }

    fn revoke(&self, id: &str, now_utc_ns: i64) -> Result<bool, TablesError> {
        let changed = self.db.write(|conn| {
            conn.execute(
                "UPDATE tokens SET revoked_utc_ns = ?2 WHERE id = ?1 AND revoked_utc_ns IS NULL",
                params![id, now_utc_ns],
            )
        })?;
        Ok(changed > 0)
    }

    fn revoke_node(&self, node: &str, now_utc_ns: i64) -> Result<usize, TablesError> {
        Ok(self.db.write(|conn| {
            conn.execute(
                "UPDATE tokens SET revoked_utc_ns = ?2 WHERE node = ?1 AND revoked_utc_ns IS NULL",
                params![node, now_utc_ns],
            )
        })?)
    }

    fn is_active(&self, id: &str) -> Result<bool, TablesError> {
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

    fn list(&self) -> Result<Vec<TokenRow>, TablesError> {
        let conn = self.db.reader()?;
        let mut stmt = conn.prepare(&format!(
            "SELECT {COLUMNS} FROM tokens ORDER BY created_utc_ns, id"
        ))?;
        let rows = stmt.query_map([], token_of)?;
        Ok(rows.collect::<Result<_, _>>()?)
    }

    fn active_by_digest(&self, digest: &str) -> Result<Option<TokenRow>, TablesError> {
        let conn = self.db.reader()?;
        Ok(conn
            .query_row(
                &format!("SELECT {COLUMNS} FROM tokens WHERE hash = ?1 AND revoked_utc_ns IS NULL"),
                params![digest],
                token_of,
            )
            .optional()?)
    }
}
