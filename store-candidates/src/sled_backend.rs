//! sled 0.34 behind the outbox's [`Backend`] trait: the candidate the design named, measured
//! against the segmented log (in this crate only; it never reaches the agent).
//!
//! Records live in one tree keyed by the big-endian sequence number (so sled's byte order is
//! numeric order); small state in a second tree. A "chunk" is a fixed run of
//! `CHUNK_RECORDS` numbers, as for redb, so the outbox's policies free and thin the same way
//! as with segments. Appends are inserted into the tree at once (sled buffers them in its
//! page cache) and `sync` is `Db::flush` (sled writes and fsyncs its log); removals and meta
//! writes are atomic batches flushed before they return. sled's defaults otherwise: its
//! background flush every 500 ms and the flush when the `Db` is dropped may make records
//! durable before `sync`, which the outbox allows (it reads only below its durable end).
//!
//! A first version buffered appends like the redb candidate and wrote them in one `Batch`
//! per commit; under the bench (millions of appends a second between commits) the copies
//! of every payload in the buffer and the batch got the bench process killed for memory.

use std::path::Path;

use aloft_store::log::{FRAME_HEADER, Recovery};

use crate::chunks::Chunks;
use aloft_store::{Backend, Chunk, StoreError};

fn backend_err(e: sled::Error) -> StoreError {
    StoreError::Backend(Box::new(e))
}

/// The sled candidate.
pub struct SledBackend {
    db: sled::Db,
    records: sled::Tree,
    meta: sled::Tree,
    dirty: bool,
    chunks: Chunks,
}

impl std::fmt::Debug for SledBackend {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SledBackend").finish_non_exhaustive()
    }
}

fn key_seq(key: &[u8]) -> Result<u64, StoreError> {
    let bytes: [u8; 8] = key.try_into().map_err(|_| {
        StoreError::Backend(format!("sled: a record key of {} bytes", key.len()).into())
    })?;
    Ok(u64::from_be_bytes(bytes))
}

impl SledBackend {
    /// Opens or creates the sled database in the directory `path`.
    pub fn open(path: &Path) -> Result<(Self, Recovery), StoreError> {
        let db = sled::Config::new().path(path).open().map_err(backend_err)?;
        let records = db.open_tree("records").map_err(backend_err)?;
        let meta = db.open_tree("meta").map_err(backend_err)?;
        let mut backend = SledBackend {
            db,
            records,
            meta,
            dirty: false,
            chunks: Chunks::default(),
        };
        for entry in backend.records.iter() {
            let (k, v) = entry.map_err(backend_err)?;
            backend.chunks.note(key_seq(&k)?, v.len());
        }
        let last_seq = backend.chunks.last_seq();
        Ok((
            backend,
            Recovery {
                last_seq,
                ..Recovery::default()
            },
        ))
    }

    fn flush(&self) -> Result<(), StoreError> {
        self.db.flush().map_err(backend_err)?;
        Ok(())
    }
}

impl Backend for SledBackend {
    fn append(&mut self, seq: u64, payload: &[u8]) -> Result<(), StoreError> {
        self.records
            .insert(seq.to_be_bytes(), payload)
            .map_err(backend_err)?;
        self.chunks.note(seq, payload.len());
        self.dirty = true;
        Ok(())
    }

    fn sync(&mut self) -> Result<(), StoreError> {
        if !self.dirty {
            return Ok(());
        }
        self.flush()?;
        self.dirty = false;
        Ok(())
    }

    fn read_from(
        &self,
        seq: u64,
        max: usize,
        out: &mut Vec<(u64, Vec<u8>)>,
    ) -> Result<(), StoreError> {
        for entry in self.records.range(seq.to_be_bytes()..).take(max) {
            let (k, v) = entry.map_err(backend_err)?;
            out.push((key_seq(&k)?, v.to_vec()));
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
        let mut batch = sled::Batch::default();
        for entry in self
            .records
            .range(chunk.first.to_be_bytes()..=chunk.last.to_be_bytes())
        {
            let (k, _) = entry.map_err(backend_err)?;
            batch.remove(k);
        }
        self.records.apply_batch(batch).map_err(backend_err)?;
        self.flush()?;
        self.chunks.remove(first);
        Ok(())
    }

    fn thin_chunk(&mut self, first: u64, drop: &[u64]) -> Result<(), StoreError> {
        let mut batch = sled::Batch::default();
        let mut freed = 0;
        for seq in drop {
            let k = seq.to_be_bytes();
            if let Some(v) = self.records.get(k).map_err(backend_err)? {
                freed += (FRAME_HEADER + v.len()) as u64;
                batch.remove(&k);
            }
        }
        self.records.apply_batch(batch).map_err(backend_err)?;
        self.flush()?;
        self.chunks.thinned(first, freed);
        Ok(())
    }

    fn repair(&mut self) -> Result<(), StoreError> {
        Ok(())
    }

    fn load_meta(&self, name: &str) -> Result<Option<Vec<u8>>, StoreError> {
        Ok(self
            .meta
            .get(name.as_bytes())
            .map_err(backend_err)?
            .map(|v| v.to_vec()))
    }

    fn store_meta(&mut self, name: &str, bytes: &[u8]) -> Result<(), StoreError> {
        self.meta
            .insert(name.as_bytes(), bytes)
            .map_err(backend_err)?;
        self.flush()
    }
}
