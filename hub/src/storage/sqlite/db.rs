//! The hub's embedded database: one SQLite file (`hub.sqlite` in the data directory) in WAL
//! mode holding tokens, the node registry and every node's stream.
//!
//! Invariants: one writer connection, behind a mutex, so every write transaction is
//! serialised (a batch's records and its watermark commit together or not at all);
//! readers open their own read-only connections, which WAL lets run beside the writer
//! (`aloft-hub dump` works while the hub runs). `synchronous=FULL`: a transaction the hub
//! acked survives a power cut, not only a process crash.

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use rusqlite::{Connection, OpenFlags};

/// The file name of the database in the data directory.
pub const DB_FILE: &str = "hub.sqlite";

const SCHEMA: &str = "
CREATE TABLE IF NOT EXISTS nodes(
    name TEXT PRIMARY KEY,
    created_utc_ns INTEGER NOT NULL,
    last_seen_utc_ns INTEGER,
    agent_version TEXT,
    boot_id TEXT
);
CREATE TABLE IF NOT EXISTS tokens(
    id TEXT PRIMARY KEY,
    hash TEXT NOT NULL UNIQUE,
    role TEXT NOT NULL,
    node TEXT,
    label TEXT NOT NULL,
    created_utc_ns INTEGER NOT NULL,
    revoked_utc_ns INTEGER
);
CREATE TABLE IF NOT EXISTS streams(
    id INTEGER PRIMARY KEY,
    node TEXT NOT NULL,
    epoch BLOB NOT NULL,
    watermark INTEGER,
    created_utc_ns INTEGER NOT NULL,
    UNIQUE(node, epoch)
);
CREATE TABLE IF NOT EXISTS pending(
    stream INTEGER NOT NULL,
    first INTEGER NOT NULL,
    last INTEGER NOT NULL,
    PRIMARY KEY(stream, first)
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS records(
    stream INTEGER NOT NULL,
    seq INTEGER NOT NULL,
    kind INTEGER NOT NULL,
    body BLOB NOT NULL,
    sensor INTEGER,
    quantity INTEGER,
    mono_ns INTEGER,
    boot INTEGER,
    utc_ns INTEGER,
    source INTEGER,
    PRIMARY KEY(stream, seq)
) WITHOUT ROWID;
CREATE INDEX IF NOT EXISTS records_gaps ON records(stream, seq) WHERE kind = 1;
CREATE INDEX IF NOT EXISTS records_readings ON records(sensor, quantity, utc_ns) WHERE kind = 0;
CREATE INDEX IF NOT EXISTS records_meta ON records(stream, seq) WHERE kind <> 0;
CREATE INDEX IF NOT EXISTS records_unresolved ON records(boot) WHERE kind = 0 AND utc_ns IS NULL;
CREATE TABLE IF NOT EXISTS export_memos(
    node TEXT NOT NULL,
    created_utc_ns INTEGER NOT NULL,
    upto TEXT NOT NULL,
    memo TEXT NOT NULL,
    kept_utc_ns INTEGER NOT NULL,
    PRIMARY KEY(node, created_utc_ns, upto)
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS sensors(
    id INTEGER PRIMARY KEY,
    node TEXT NOT NULL,
    name TEXT NOT NULL,
    UNIQUE(node, name)
);
CREATE TABLE IF NOT EXISTS boots(
    id INTEGER PRIMARY KEY,
    node TEXT NOT NULL,
    boot BLOB NOT NULL,
    corr_mono_ns INTEGER,
    corr_utc_ns INTEGER,
    UNIQUE(node, boot)
);
CREATE TABLE IF NOT EXISTS correlations(
    boot INTEGER NOT NULL,
    mono_ns INTEGER NOT NULL,
    utc_ns INTEGER NOT NULL,
    PRIMARY KEY(boot, mono_ns)
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS boot_marks(
    stream INTEGER NOT NULL,
    seq INTEGER NOT NULL,
    boot INTEGER NOT NULL,
    PRIMARY KEY(stream, seq)
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS descriptor_marks(
    stream INTEGER NOT NULL,
    seq INTEGER NOT NULL,
    sensor_id INTEGER NOT NULL,
    sensor INTEGER NOT NULL,
    PRIMARY KEY(stream, seq)
) WITHOUT ROWID;
";

/// The database: a path and the one writer connection.
#[derive(Debug, Clone)]
pub struct Db {
    path: PathBuf,
    writer: Arc<Mutex<Connection>>,
}

impl Db {
    /// Opens (creating if needed) the database in `data_dir`.
    pub fn open(data_dir: &Path) -> Result<Db, rusqlite::Error> {
        let path = data_dir.join(DB_FILE);
        let conn = Connection::open(&path)?;
        conn.busy_timeout(Duration::from_secs(10))?;
        conn.pragma_update(None, "journal_mode", "WAL")?;
        conn.pragma_update(None, "synchronous", "FULL")?;
        // 64 MiB of page cache: the secondary index stays in memory while a backlog drains.
        conn.pragma_update(None, "cache_size", -65_536)?;
        conn.execute_batch(SCHEMA)?;
        Ok(Db {
            path,
            writer: Arc::new(Mutex::new(conn)),
        })
    }

    /// Opens an existing database for reading only (no schema change), e.g. for `dump`
    /// while the hub runs.
    pub fn open_existing(data_dir: &Path) -> Result<Db, rusqlite::Error> {
        let path = data_dir.join(DB_FILE);
        let conn = Connection::open_with_flags(&path, OpenFlags::SQLITE_OPEN_READ_WRITE)?;
        conn.busy_timeout(Duration::from_secs(10))?;
        Ok(Db {
            path,
            writer: Arc::new(Mutex::new(conn)),
        })
    }

    /// A fresh read-only connection; WAL lets it read beside the writer.
    pub fn reader(&self) -> Result<Connection, rusqlite::Error> {
        let conn = Connection::open_with_flags(
            &self.path,
            OpenFlags::SQLITE_OPEN_READ_ONLY | OpenFlags::SQLITE_OPEN_NO_MUTEX,
        )?;
        conn.busy_timeout(Duration::from_secs(10))?;
        Ok(conn)
    }

    /// Runs `f` with the writer connection, serialised with every other write.
    pub fn write<T, E>(&self, f: impl FnOnce(&mut Connection) -> Result<T, E>) -> Result<T, E> {
        // A panic while holding the lock leaves SQLite consistent (an open transaction
        // rolls back on drop), so a poisoned lock is still usable.
        let mut conn = self.writer.lock().unwrap_or_else(|e| e.into_inner());
        f(&mut conn)
    }
}
