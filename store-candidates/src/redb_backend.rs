//! redb behind the outbox's [`Backend`] trait: a candidate measured against the segmented
//! log (in this crate only; it never reaches the agent).
//!
//! Records live in one table keyed by sequence number; a "chunk" is a fixed run of
//! `CHUNK_RECORDS` numbers, so the outbox's policies free and thin the same way as with
//! segments. Appends are buffered and written by `sync` in one write transaction with
//! redb's default `Durability::Immediate` (its two-phase commit with fsync).

use std::path::Path;

use aloft_store::log::{FRAME_HEADER, Recovery};

use crate::chunks::Chunks;
use aloft_store::{Backend, Chunk, StoreError};
use redb::{Database, ReadableDatabase, ReadableTable, TableDefinition};

const RECORDS: TableDefinition<'_, u64, &[u8]> = TableDefinition::new("records");
const META: TableDefinition<'_, &str, &[u8]> = TableDefinition::new("meta");

fn backend_err(e: impl Into<redb::Error>) -> StoreError {
    StoreError::Backend(Box::new(e.into()))
}

/// The redb candidate.
pub struct RedbBackend {
    db: Database,
    pending: Vec<(u64, Vec<u8>)>,
    chunks: Chunks,
}

impl std::fmt::Debug for RedbBackend {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RedbBackend").finish_non_exhaustive()
    }
}

impl RedbBackend {
    /// Opens the database file at `path`, or creates it atomically.
    ///
    /// `Database::create` on a missing file writes the new file in place, and a kill in the
    /// middle leaves a file redb refuses for good ("Not a redb database: magic number
    /// mismatch"), the SIGKILL torture found. So a new database is made beside the path
    /// under a temporary name, synced, and renamed into place: a kill leaves no file or a
    /// whole one (a leftover temporary file is replaced at the next open).
    pub fn open(path: &Path) -> Result<(Self, Recovery), StoreError> {
        if !path.exists() {
            let mut name = path.file_name().unwrap_or_default().to_os_string();
            name.push(".creating");
            let creating = path.with_file_name(name);
            let io = |op: &'static str, source: std::io::Error| StoreError::Io {
                op,
                file: creating.display().to_string(),
                source,
            };
            match std::fs::remove_file(&creating) {
                Err(e) if e.kind() != std::io::ErrorKind::NotFound => return Err(io("remove", e)),
                _ => {}
            }
            drop(Database::create(&creating).map_err(backend_err)?);
            std::fs::File::open(&creating)
                .and_then(|f| f.sync_all())
                .map_err(|e| io("sync", e))?;
            std::fs::rename(&creating, path).map_err(|e| io("rename", e))?;
            if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
                std::fs::File::open(dir)
                    .and_then(|d| d.sync_all())
                    .map_err(|e| io("sync directory", e))?;
            }
        }
        RedbBackend::with_database(Database::create(path).map_err(backend_err)?)
    }

    /// Uses an opened database (one on a test storage backend, for instance).
    pub fn with_database(db: Database) -> Result<(Self, Recovery), StoreError> {
        let mut backend = RedbBackend {
            db,
            pending: Vec::new(),
            chunks: Chunks::default(),
        };
        let tx = backend.db.begin_write().map_err(backend_err)?;
        {
            let table = tx.open_table(RECORDS).map_err(backend_err)?;
            tx.open_table(META).map_err(backend_err)?;
            for entry in table.iter().map_err(backend_err)? {
                let (k, v) = entry.map_err(backend_err)?;
                backend.chunks.note(k.value(), v.value().len());
            }
        }
        tx.commit().map_err(backend_err)?;
        let last_seq = backend.chunks.last_seq();
        Ok((
            backend,
            Recovery {
                last_seq,
                ..Recovery::default()
            },
        ))
    }
}

impl Backend for RedbBackend {
    fn append(&mut self, seq: u64, payload: &[u8]) -> Result<(), StoreError> {
        self.chunks.note(seq, payload.len());
        self.pending.push((seq, payload.to_vec()));
        Ok(())
    }

    fn sync(&mut self) -> Result<(), StoreError> {
        if self.pending.is_empty() {
            return Ok(());
        }
        let tx = self.db.begin_write().map_err(backend_err)?;
        {
            let mut table = tx.open_table(RECORDS).map_err(backend_err)?;
            for (seq, payload) in &self.pending {
                table
                    .insert(*seq, payload.as_slice())
                    .map_err(backend_err)?;
            }
        }
        tx.commit().map_err(backend_err)?;
        self.pending.clear();
        Ok(())
    }

    fn read_from(
        &self,
        seq: u64,
        max: usize,
        out: &mut Vec<(u64, Vec<u8>)>,
    ) -> Result<(), StoreError> {
        let tx = self.db.begin_read().map_err(backend_err)?;
        let table = tx.open_table(RECORDS).map_err(backend_err)?;
        for entry in table.range(seq..).map_err(backend_err)?.take(max) {
            let (k, v) = entry.map_err(backend_err)?;
            out.push((k.value(), v.value().to_vec()));
        }
        Ok(())
    }

    fn disk_bytes(&self) -> u64 {
        self.chunks.disk_bytes()
    }

    fn chunks(&self) -> Vec<Chunk> {
        self.chunks.all()
    }

    fn remove_chunk(&mut self, first: u64) -> Result<(), StoreError> {
        let Some(chunk) = self.chunks.get(first) else {
            return Ok(());
        };
        let tx = self.db.begin_write().map_err(backend_err)?;
        {
            let mut table = tx.open_table(RECORDS).map_err(backend_err)?;
            table
                .retain_in(chunk.first..=chunk.last, |_, _| false)
                .map_err(backend_err)?;
        }
        tx.commit().map_err(backend_err)?;
        self.chunks.remove(first);
        Ok(())
    }

    fn thin_chunk(&mut self, first: u64, drop: &[u64]) -> Result<(), StoreError> {
        let tx = self.db.begin_write().map_err(backend_err)?;
        let mut freed = 0;
        {
            let mut table = tx.open_table(RECORDS).map_err(backend_err)?;
            for seq in drop {
                if let Some(v) = table.remove(*seq).map_err(backend_err)? {
                    freed += (FRAME_HEADER + v.value().len()) as u64;
                }
            }
        }
        tx.commit().map_err(backend_err)?;
        self.chunks.thinned(first, freed);
        Ok(())
    }

    fn repair(&mut self) -> Result<(), StoreError> {
        Ok(())
    }

    fn load_meta(&self, name: &str) -> Result<Option<Vec<u8>>, StoreError> {
        let tx = self.db.begin_read().map_err(backend_err)?;
        let table = tx.open_table(META).map_err(backend_err)?;
        Ok(table
            .get(name)
            .map_err(backend_err)?
            .map(|v| v.value().to_vec()))
    }

    fn store_meta(&mut self, name: &str, bytes: &[u8]) -> Result<(), StoreError> {
        let tx = self.db.begin_write().map_err(backend_err)?;
        {
            let mut table = tx.open_table(META).map_err(backend_err)?;
            table.insert(name, bytes).map_err(backend_err)?;
        }
        tx.commit().map_err(backend_err)
    }
}
