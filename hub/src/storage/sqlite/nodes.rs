//! The nodes table in `hub.sqlite`.

use rusqlite::{OptionalExtension, params};

use super::Db;
use crate::storage::TablesError;
use crate::storage::nodes::{NodeRow, NodeTables};

/// The nodes table of a [`Db`].
#[derive(Debug, Clone)]
pub struct SqliteNodes {
    db: Db,
}

impl SqliteNodes {
    /// The nodes table of `db`.
    pub fn new(db: Db) -> SqliteNodes {
        SqliteNodes { db }
    }
}

impl NodeTables for SqliteNodes {
    fn names(&self) -> Result<Vec<String>, TablesError> {
        let conn = self.db.reader()?;
        let mut stmt = conn.prepare("SELECT name FROM nodes ORDER BY name")?;
        let names = stmt
            .query_map([], |row| row.get(0))?
            .collect::<Result<_, _>>()?;
        Ok(names)
    }

    fn insert(&self, name: &str, created_utc_ns: i64) -> Result<bool, TablesError> {
        let inserted = self.db.write(|conn| {
            conn.execute(
                "INSERT OR IGNORE INTO nodes(name, created_utc_ns) VALUES (?1, ?2)",
                params![name, created_utc_ns],
            )
        })?;
        Ok(inserted > 0)
    }

    fn delete(&self, name: &str) -> Result<bool, TablesError> {
        let deleted = self
            .db
            .write(|conn| conn.execute("DELETE FROM nodes WHERE name = ?1", params![name]))?;
        Ok(deleted > 0)
    }

    fn exists(&self, name: &str) -> Result<bool, TablesError> {
        let conn = self.db.reader()?;
        Ok(conn
            .query_row("SELECT 1 FROM nodes WHERE name = ?1", params![name], |_| {
                Ok(())
            })
            .optional()?
            .is_some())
    }

    fn get(&self, name: &str) -> Result<Option<NodeRow>, TablesError> {
        let conn = self.db.reader()?;
        Ok(conn
            .query_row(
                "SELECT created_utc_ns, last_seen_utc_ns, agent_version, boot_id FROM nodes WHERE name = ?1",
                params![name],
                |row| {
                    Ok(NodeRow {
                        created_utc_ns: row.get(0)?,
                        last_seen_utc_ns: row.get(1)?,
                        agent_version: row.get(2)?,
                        boot_id: row.get(3)?,
                    })
                },
            )
            .optional()?)
    }

    fn session_started(
        &self,
        name: &str,
        now_utc_ns: i64,
        agent_version: &str,
        boot_id: &str,
    ) -> Result<(), TablesError> {
        self.db.write(|conn| {
            conn.execute(
                "UPDATE nodes SET last_seen_utc_ns = ?2, agent_version = ?3, boot_id = ?4 WHERE name = ?1",
                params![name, now_utc_ns, agent_version, boot_id],
            )
        })?;
        Ok(())
    }

    fn seen(&self, name: &str, now_utc_ns: i64) -> Result<(), TablesError> {
        self.db.write(|conn| {
            conn.execute(
                "UPDATE nodes SET last_seen_utc_ns = ?2 WHERE name = ?1",
                params![name, now_utc_ns],
            )
        })?;
        Ok(())
    }
}
