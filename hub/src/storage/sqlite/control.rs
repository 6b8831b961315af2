//! The control tables in SQLite: `control.sqlite` in the hub's data directory, holding
//! commands, desired sensor state and the audit trail ([`ControlTables`]).
//!
//! A file of its own, not tables in `hub.sqlite`: that file's single writer is busy with
//! whole batches of a draining backlog (thousands of records a transaction), and an
//! operator's restart must not queue behind them (the target: p99 under 100 ms from
//! request to running again). SQLite (rusqlite, already the hub's) because the queries are
//! relational: commands by node and phase, events by node and time.
//!
//! Invariants: WAL with `synchronous=FULL`, so a command or desired change the API answered
//! survives a power cut (it was "persisted before the API answers"); a desired sensor's
//! generation only grows; every change of a command bumps its `revision`, which watches use
//! to tell what changed.

use std::path::Path;
use std::sync::Mutex;

use rusqlite::{Connection, OptionalExtension, Row, params};

use crate::storage::control::{
    Actor, CommandRow, ControlTables, DesiredRow, EventRow, Phase, TablesError, Tunables,
};

/// The file name in the data directory.
pub const CONTROL_FILE: &str = "control.sqlite";

const SCHEMA: &str = "
PRAGMA journal_mode = WAL;
PRAGMA synchronous = FULL;
CREATE TABLE IF NOT EXISTS commands(
    id TEXT PRIMARY KEY,
    node TEXT NOT NULL,
    sensor TEXT NOT NULL,
    hard INTEGER NOT NULL,
    ttl_s INTEGER NOT NULL,
    created_ns INTEGER NOT NULL,
    expires_ns INTEGER NOT NULL,
    phase TEXT NOT NULL,
    message TEXT NOT NULL,
    actor_token TEXT NOT NULL,
    actor_role TEXT NOT NULL,
    delivered_ns INTEGER,
    finished_ns INTEGER,
    revision INTEGER NOT NULL
);
CREATE INDEX IF NOT EXISTS commands_by_node ON commands(node, created_ns);
CREATE INDEX IF NOT EXISTS commands_open ON commands(phase) WHERE phase IN ('Pending', 'Delivered');
CREATE TABLE IF NOT EXISTS desired(
    node TEXT NOT NULL,
    sensor TEXT NOT NULL,
    generation INTEGER NOT NULL,
    interval_ms INTEGER,
    enabled INTEGER,
    observed_generation INTEGER,
    refused TEXT,
    created_ns INTEGER NOT NULL,
    updated_ns INTEGER NOT NULL,
    PRIMARY KEY(node, sensor)
);
-- The columns added since (see MIGRATIONS) are not in this statement: a file made by an
-- older hub gets them from its migrations, a new file from all of them.
-- Nodes whose last desired entry was deleted: they are sent an empty spec at every
-- connect (so a deletion made while the node was away applies); other nodes without
-- desired state are sent none.
CREATE TABLE IF NOT EXISTS desired_cleared(
    node TEXT PRIMARY KEY
);
CREATE TABLE IF NOT EXISTS events(
    seq INTEGER PRIMARY KEY AUTOINCREMENT,
    time_ns INTEGER NOT NULL,
    actor_token TEXT NOT NULL,
    actor_role TEXT NOT NULL,
    action TEXT NOT NULL,
    object_kind TEXT NOT NULL,
    object_name TEXT NOT NULL,
    node TEXT,
    outcome TEXT NOT NULL,
    message TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS events_by_node ON events(node, seq);
";

/// The schema's changes since the first, in order: the file's `user_version` is how many
/// it has had. Each runs once, in one transaction with the version bump, so a hub that
/// stops in the middle runs it again whole; an older hub opening a migrated file finds
/// the tables it knows, with columns it does not read.
const MIGRATIONS: &[&str] = &[
    // 1: sensor tunables, desired and observed in force, as JSON objects of key to
    // value (`{"pressure_oversampling":{"Integer":16}}`); NULL observed: none reported.
    "ALTER TABLE desired ADD COLUMN tunables TEXT NOT NULL DEFAULT '{}';
     ALTER TABLE desired ADD COLUMN observed_tunables TEXT;",
    // 2: the operator's exemption of a sensor from the node's power steps (0: none).
    "ALTER TABLE desired ADD COLUMN power_override INTEGER NOT NULL DEFAULT 0;",
];

/// Brings the file's schema up to [`MIGRATIONS`].
fn migrate(conn: &mut Connection) -> rusqlite::Result<()> {
    let done: i64 = conn.pragma_query_value(None, "user_version", |r| r.get(0))?;
    for (n, migration) in MIGRATIONS
        .iter()
        .enumerate()
        .skip(usize::try_from(done).unwrap_or(0))
    {
        let tx = conn.transaction()?;
        tx.execute_batch(migration)?;
        tx.pragma_update(
            None,
            "user_version",
            i64::try_from(n + 1).unwrap_or(i64::MAX),
        )?;
        tx.commit()?;
        tracing::info!(version = n + 1, "Control tables migrated.");
    }
    Ok(())
}

/// A tunables column's text.
fn tunables_text(tunables: &Tunables) -> String {
    serde_json::to_string(tunables).unwrap_or_else(|_| "{}".to_owned())
}

/// A tunables column read back; text that does not parse (a newer hub's values) reads as
/// none rather than failing the listing.
fn tunables_of(text: Option<String>) -> Option<Tunables> {
    serde_json::from_str(&text?).ok()
}

/// The control tables in `control.sqlite`.
#[derive(Debug)]
pub struct SqliteControl {
    conn: Mutex<Connection>,
}

fn u64_of(v: i64) -> u64 {
    u64::try_from(v).unwrap_or(0)
}

fn i64_of(v: u64) -> i64 {
    i64::try_from(v).unwrap_or(i64::MAX)
}

const COMMAND_COLUMNS: &str = "id, node, sensor, hard, ttl_s, created_ns, expires_ns, phase, message, actor_token, actor_role, delivered_ns, finished_ns, revision";

fn command_of(row: &Row<'_>) -> rusqlite::Result<CommandRow> {
    let phase: String = row.get(7)?;
    Ok(CommandRow {
        id: row.get(0)?,
        node: row.get(1)?,
        sensor: row.get(2)?,
        hard: row.get(3)?,
        ttl_s: u64_of(row.get(4)?),
        created_ns: row.get(5)?,
        expires_ns: row.get(6)?,
        // A name this build does not know can only come from a newer hub: show it as
        // failed rather than refuse to list.
        phase: Phase::from_name(&phase).unwrap_or(Phase::Failed),
        message: row.get(8)?,
        actor: Actor {
            token: row.get(9)?,
            role: row.get(10)?,
        },
        delivered_ns: row.get(11)?,
        finished_ns: row.get(12)?,
        revision: u64_of(row.get(13)?),
    })
}

const DESIRED_COLUMNS: &str = "node, sensor, generation, interval_ms, enabled, observed_generation, refused, created_ns, updated_ns, tunables, observed_tunables, power_override";

fn desired_of(row: &Row<'_>) -> rusqlite::Result<DesiredRow> {
    Ok(DesiredRow {
        node: row.get(0)?,
        sensor: row.get(1)?,
        generation: u64_of(row.get(2)?),
        interval_ms: row
            .get::<_, Option<i64>>(3)?
            .map(|v| u32::try_from(v).unwrap_or(u32::MAX)),
        enabled: row.get(4)?,
        observed_generation: row.get::<_, Option<i64>>(5)?.map(u64_of),
        refused: row.get(6)?,
        created_ns: row.get(7)?,
        updated_ns: row.get(8)?,
        tunables: tunables_of(row.get(9)?).unwrap_or_default(),
        observed_tunables: tunables_of(row.get(10)?),
        power_override: row.get(11)?,
    })
}

fn event_of(row: &Row<'_>) -> rusqlite::Result<EventRow> {
    Ok(EventRow {
        seq: u64_of(row.get(0)?),
        time_ns: row.get(1)?,
        actor: Actor {
            token: row.get(2)?,
            role: row.get(3)?,
        },
        action: row.get(4)?,
        object_kind: row.get(5)?,
        object_name: row.get(6)?,
        node: row.get(7)?,
        outcome: row.get(8)?,
        message: row.get(9)?,
    })
}

impl SqliteControl {
    /// Opens (creating) `control.sqlite` in the data directory.
    pub fn open(data_dir: &Path) -> Result<SqliteControl, TablesError> {
        let mut conn = Connection::open(data_dir.join(CONTROL_FILE))?;
        conn.busy_timeout(std::time::Duration::from_secs(5))?;
        conn.execute_batch(SCHEMA)?;
        migrate(&mut conn)?;
        Ok(SqliteControl {
            conn: Mutex::new(conn),
        })
    }

    fn with<T>(
        &self,
        f: impl FnOnce(&mut Connection) -> rusqlite::Result<T>,
    ) -> Result<T, TablesError> {
        let mut conn = self.conn.lock().unwrap_or_else(|e| e.into_inner());
        Ok(f(&mut conn)?)
    }
}

impl ControlTables for SqliteControl {
    fn insert_command(&self, command: &CommandRow, event: &EventRow) -> Result<(), TablesError> {
        self.with(|conn| {
            let tx = conn.transaction()?;
            tx.execute(
                &format!("INSERT INTO commands({COMMAND_COLUMNS}) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14)"),
                params![
                    command.id,
                    command.node,
                    command.sensor,
                    command.hard,
                    i64_of(command.ttl_s),
                    command.created_ns,
                    command.expires_ns,
                    command.phase.name(),
                    command.message,
                    command.actor.token,
                    command.actor.role,
                    command.delivered_ns,
                    command.finished_ns,
                    i64_of(command.revision),
                ],
            )?;
            insert_event(&tx, event)?;
            tx.commit()
        })
    }

    fn command(&self, id: &str) -> Result<Option<CommandRow>, TablesError> {
        self.with(|conn| {
            conn.query_row(
                &format!("SELECT {COMMAND_COLUMNS} FROM commands WHERE id = ?1"),
                params![id],
                command_of,
            )
            .optional()
        })
    }

    fn commands(&self, node: Option<&str>, limit: u32) -> Result<Vec<CommandRow>, TablesError> {
        self.with(|conn| {
            let mut stmt = conn.prepare(&format!(
                "SELECT * FROM (SELECT {COMMAND_COLUMNS} FROM commands WHERE (?1 IS NULL OR node = ?1) ORDER BY created_ns DESC, id DESC LIMIT ?2) ORDER BY created_ns, id"
            ))?;
            let rows = stmt.query_map(params![node, limit], command_of)?;
            rows.collect()
        })
    }

    fn commands_in(&self, node: &str, phase: Phase) -> Result<Vec<CommandRow>, TablesError> {
        self.with(|conn| {
            let mut stmt = conn.prepare(&format!(
                "SELECT {COMMAND_COLUMNS} FROM commands WHERE node = ?1 AND phase = ?2 ORDER BY created_ns, id"
            ))?;
            let rows = stmt.query_map(params![node, phase.name()], command_of)?;
            rows.collect()
        })
    }

    fn due_for_expiry(&self, now_ns: i64) -> Result<Vec<CommandRow>, TablesError> {
        self.with(|conn| {
            let mut stmt = conn.prepare(&format!(
                "SELECT {COMMAND_COLUMNS} FROM commands WHERE phase = 'Pending' AND expires_ns <= ?1"
            ))?;
            let rows = stmt.query_map(params![now_ns], command_of)?;
            rows.collect()
        })
    }

    fn transition(
        &self,
        id: &str,
        from: Phase,
        to: Phase,
        message: &str,
        now_ns: i64,
        event: &EventRow,
    ) -> Result<Option<CommandRow>, TablesError> {
        self.with(|conn| {
            let tx = conn.transaction()?;
            let changed = tx.execute(
                "UPDATE commands SET phase = ?3, message = ?4, revision = revision + 1,
                    delivered_ns = CASE WHEN ?3 = 'Delivered' THEN ?5 ELSE delivered_ns END,
                    finished_ns = CASE WHEN ?3 IN ('Succeeded', 'Failed', 'Expired', 'Cancelled') THEN ?5 ELSE finished_ns END
                 WHERE id = ?1 AND phase = ?2",
                params![id, from.name(), to.name(), message, now_ns],
            )?;
            if changed == 0 {
                return Ok(None);
            }
            insert_event(&tx, event)?;
            let row = tx.query_row(
                &format!("SELECT {COMMAND_COLUMNS} FROM commands WHERE id = ?1"),
                params![id],
                command_of,
            )?;
            tx.commit()?;
            Ok(Some(row))
        })
    }

    fn desired_one(&self, node: &str, sensor: &str) -> Result<Option<DesiredRow>, TablesError> {
        self.with(|conn| {
            conn.query_row(
                &format!("SELECT {DESIRED_COLUMNS} FROM desired WHERE node = ?1 AND sensor = ?2"),
                params![node, sensor],
                desired_of,
            )
            .optional()
        })
    }

    fn desired(&self, node: Option<&str>) -> Result<Vec<DesiredRow>, TablesError> {
        self.with(|conn| {
            let mut stmt = conn.prepare(&format!(
                "SELECT {DESIRED_COLUMNS} FROM desired WHERE (?1 IS NULL OR node = ?1) ORDER BY node, sensor"
            ))?;
            let rows = stmt.query_map(params![node], desired_of)?;
            rows.collect()
        })
    }

    fn put_desired(&self, row: &DesiredRow, event: &EventRow) -> Result<(), TablesError> {
        self.with(|conn| {
            let tx = conn.transaction()?;
            tx.execute(
                &format!("INSERT INTO desired({DESIRED_COLUMNS}) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12)
                 ON CONFLICT(node, sensor) DO UPDATE SET generation = excluded.generation,
                    interval_ms = excluded.interval_ms, enabled = excluded.enabled,
                    tunables = excluded.tunables, power_override = excluded.power_override,
                    updated_ns = excluded.updated_ns"),
                params![
                    row.node,
                    row.sensor,
                    i64_of(row.generation),
                    row.interval_ms,
                    row.enabled,
                    row.observed_generation.map(i64_of),
                    row.refused,
                    row.created_ns,
                    row.updated_ns,
                    tunables_text(&row.tunables),
                    row.observed_tunables.as_ref().map(tunables_text),
                    row.power_override,
                ],
            )?;
            insert_event(&tx, event)?;
            tx.commit()
        })
    }

    fn observe(
        &self,
        node: &str,
        sensor: &str,
        generation: u64,
        refused: Option<&str>,
        tunables: Option<&Tunables>,
    ) -> Result<bool, TablesError> {
        let tunables = tunables.map(tunables_text);
        self.with(|conn| {
            let changed = conn.execute(
                "UPDATE desired SET observed_generation = ?3, refused = ?4,
                    observed_tunables = coalesce(?5, observed_tunables)
                 WHERE node = ?1 AND sensor = ?2
                   AND (observed_generation IS NOT ?3 OR refused IS NOT ?4
                        OR (?5 IS NOT NULL AND observed_tunables IS NOT ?5))",
                params![node, sensor, i64_of(generation), refused, tunables],
            )?;
            Ok(changed > 0)
        })
    }

    fn delete_desired(
        &self,
        node: &str,
        sensor: &str,
        event: &EventRow,
    ) -> Result<bool, TablesError> {
        self.with(|conn| {
            let tx = conn.transaction()?;
            let deleted = tx.execute(
                "DELETE FROM desired WHERE node = ?1 AND sensor = ?2",
                params![node, sensor],
            )?;
            if deleted > 0 {
                insert_event(&tx, event)?;
                tx.execute(
                    "INSERT OR IGNORE INTO desired_cleared(node)
                     SELECT ?1 WHERE NOT EXISTS (SELECT 1 FROM desired WHERE node = ?1)",
                    params![node],
                )?;
            }
            tx.commit()?;
            Ok(deleted > 0)
        })
    }

    fn desired_cleared(&self, node: &str) -> Result<bool, TablesError> {
        self.with(|conn| {
            conn.query_row(
                "SELECT 1 FROM desired_cleared WHERE node = ?1",
                params![node],
                |_| Ok(()),
            )
            .optional()
            .map(|found| found.is_some())
        })
    }

    fn forget_desired(&self, node: &str) -> Result<usize, TablesError> {
        self.with(|conn| {
            conn.execute("DELETE FROM desired_cleared WHERE node = ?1", params![node])?;
            conn.execute("DELETE FROM desired WHERE node = ?1", params![node])
        })
    }

    fn add_event(&self, event: &EventRow) -> Result<(), TablesError> {
        self.with(|conn| insert_event(conn, event))
    }

    fn events(
        &self,
        node: Option<&str>,
        after: u64,
        limit: u32,
    ) -> Result<Vec<EventRow>, TablesError> {
        self.with(|conn| {
            let mut stmt = conn.prepare(
                "SELECT * FROM (SELECT seq, time_ns, actor_token, actor_role, action, object_kind, object_name, node, outcome, message
                 FROM events WHERE (?1 IS NULL OR node = ?1) AND seq > ?2 ORDER BY seq DESC LIMIT ?3) ORDER BY seq",
            )?;
            let rows = stmt.query_map(params![node, i64_of(after), limit], event_of)?;
            rows.collect()
        })
    }
}

fn insert_event(conn: &Connection, event: &EventRow) -> rusqlite::Result<()> {
    conn.execute(
        "INSERT INTO events(time_ns, actor_token, actor_role, action, object_kind, object_name, node, outcome, message)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9)",
        params![
            event.time_ns,
            event.actor.token,
            event.actor.role,
            event.action,
            event.object_kind,
            event.object_name,
            event.node,
            event.outcome,
            event.message,
        ],
    )?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use aloft_protocol::sync::TunableValue;

    #[test]
    fn a_file_of_an_older_hub_is_migrated_once_and_keeps_its_rows() {
        let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
        {
            // The file as the hub before tunables left it.
            let conn = Connection::open(dir.path().join(CONTROL_FILE)).unwrap();
            conn.execute_batch(SCHEMA).unwrap();
            conn.execute(
                "INSERT INTO desired(node, sensor, generation, interval_ms, enabled,
                    observed_generation, refused, created_ns, updated_ns)
                 VALUES ('glider', 'static', 3, 500, NULL, 3, NULL, 1, 2)",
                [],
            )
            .unwrap();
        }
        let store = SqliteControl::open(dir.path()).unwrap();
        let rows = store.desired(Some("glider")).unwrap();
        assert_eq!(rows.len(), 1);
        assert_eq!(
            (
                rows[0].generation,
                rows[0].interval_ms,
                rows[0].observed_generation
            ),
            (3, Some(500), Some(3))
        );
        assert!(rows[0].tunables.is_empty());
        assert_eq!(rows[0].observed_tunables, None);
        let in_force = Tunables::from([(
            "pressure_oversampling".to_owned(),
            TunableValue::Integer(16),
        )]);
        assert!(
            store
                .observe("glider", "static", 3, None, Some(&in_force))
                .unwrap()
        );
        assert!(
            !store
                .observe("glider", "static", 3, None, Some(&in_force))
                .unwrap()
        );
        // An agent that reports no tunables leaves the last ones recorded.
        assert!(!store.observe("glider", "static", 3, None, None).unwrap());
        drop(store);
        // Opening again runs nothing twice (a second ALTER of the column would fail).
        let store = SqliteControl::open(dir.path()).unwrap();
        let rows = store.desired(Some("glider")).unwrap();
        assert_eq!(rows[0].observed_tunables.as_ref(), Some(&in_force));
        let version: i64 = store
            .with(|c| c.pragma_query_value(None, "user_version", |r| r.get(0)))
            .unwrap();
        assert_eq!(version, MIGRATIONS.len() as i64);
    }
}
