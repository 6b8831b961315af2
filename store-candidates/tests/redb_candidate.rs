//! The redb candidate behind the same `Backend` trait: the outbox's contract, an unclean
//! reopen, and power loss through redb's own `StorageBackend` seam (a simulated file that
//! drops, applies or tears each write not yet synced). Its SIGKILL torture is in
//! `tests/crash.rs`, beside the segmented log's.

// Test code: a failed unwrap is a failed test, helpers included.
#![allow(clippy::unwrap_used)]

#[path = "../../store/tests/common/mod.rs"]
mod common;
#[path = "../../store/tests/common/power.rs"]
mod power;

use std::io;
use std::sync::{Arc, Mutex};

use aloft_protocol::{GapReason, Record};
use aloft_store::{FullPolicy, Outbox, StoreOptions};
use aloft_store_candidates::redb_backend::RedbBackend;
use common::*;

fn open(path: &std::path::Path, options: StoreOptions) -> Outbox<RedbBackend> {
    let (backend, recovery) = RedbBackend::open(path).unwrap();
    Outbox::open_with(backend, recovery, options).unwrap().0
}

#[test]
fn redb_holds_committed_records_across_an_unclean_reopen() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("store.redb");
    let mut outbox = open(&path, StoreOptions::default());
    let epoch = outbox.epoch();
    for i in 0..1_000 {
        outbox.append(&reading(i)).unwrap();
    }
    outbox.commit().unwrap();
    outbox.append(&reading(1_000)).unwrap();
    drop(outbox);
    let outbox = open(&path, StoreOptions::default());
    assert_eq!(outbox.epoch(), epoch);
    let records = assert_contiguous(&outbox);
    assert_eq!(reading_values(&records), (0..1_000).collect::<Vec<_>>());
    assert!(
        records
            .iter()
            .any(|(_, r)| matches!(r, Record::Gap(g) if g.reason == GapReason::Crash))
    );
}

#[test]
fn a_database_is_created_whole_or_not_at_all() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("store.redb");
    // What a kill in the middle of a creation leaves: the temporary file, half written.
    std::fs::write(dir.path().join("store.redb.creating"), b"\0\0half a header").unwrap();
    let mut outbox = open(&path, StoreOptions::default());
    outbox.append(&reading(0)).unwrap();
    outbox.commit().unwrap();
    drop(outbox);
    assert!(!dir.path().join("store.redb.creating").exists());
    let records = assert_contiguous(&open(&path, StoreOptions::default()));
    assert_eq!(reading_values(&records), vec![0]);
}

#[test]
fn redb_applies_the_full_policies_through_the_same_outbox() {
    for policy in [FullPolicy::DropOldest, FullPolicy::Decimate] {
        let dir = tempfile::tempdir().unwrap();
        let mut options = StoreOptions::new(200 * 1024, policy);
        options.retain_acked_bytes = 0;
        let mut outbox = open(&dir.path().join("store.redb"), options);
        for i in 0..20_000 {
            outbox.append(&reading(i)).unwrap();
            if i % 1_000 == 999 {
                outbox.commit().unwrap();
            }
        }
        outbox.commit().unwrap();
        let records = assert_contiguous(&outbox);
        assert_eq!(reading_values(&records).last(), Some(&19_999), "{policy:?}");
        assert!(
            outbox.stats().disk_bytes <= 200 * 1024 + 200 * 1024,
            "{policy:?}"
        );
        let lost = outbox.stats().losses;
        assert!(lost.dropped + lost.decimated > 0, "{policy:?}: {lost:?}");
    }
}

/// A simulated file for redb: positional writes land in `data`; `sync_data` makes them
/// durable; a power cut keeps the synced bytes and drops, applies or tears (applies a
/// prefix of) each later write, in order, chosen by a seed.
#[derive(Debug, Default)]
struct PowerDisk {
    data: Vec<u8>,
    synced: Vec<u8>,
    /// Writes and length changes since the last sync: (offset, bytes) or (new length, None).
    unsynced: Vec<(u64, Option<Vec<u8>>)>,
    ops_left: Option<u64>,
    life: u64,
}

#[derive(Debug, Clone, Default)]
struct PowerFile {
    disk: Arc<Mutex<PowerDisk>>,
    life: u64,
}

impl PowerFile {
    fn with<T>(&self, f: impl FnOnce(&mut PowerDisk) -> io::Result<T>) -> io::Result<T> {
        let mut disk = self.disk.lock().unwrap_or_else(|e| e.into_inner());
        if disk.life != self.life {
            return Err(io::Error::other("the simulated disk lost power"));
        }
        match &mut disk.ops_left {
            Some(0) => return Err(io::Error::other("the simulated disk lost power")),
            Some(n) => *n -= 1,
            None => {}
        }
        f(&mut disk)
    }

    fn handle(&self) -> PowerFile {
        let disk = self.disk.lock().unwrap_or_else(|e| e.into_inner());
        PowerFile {
            disk: Arc::clone(&self.disk),
            life: disk.life,
        }
    }

    fn fail_after(&self, ops: Option<u64>) {
        self.disk.lock().unwrap().ops_left = ops;
    }

    fn power_cut(&self, seed: u64) {
        let mut state = seed | 1;
        let mut disk = self.disk.lock().unwrap();
        let mut data = disk.synced.clone();
        for (at, bytes) in std::mem::take(&mut disk.unsynced) {
            let choice = power::next_random(&mut state) % 3;
            match bytes {
                None if choice != 0 => data.resize(at as usize, 0),
                None => {}
                Some(bytes) => {
                    let n = match choice {
                        0 => 0,
                        1 => bytes.len(),
                        _ => power::next_random(&mut state) as usize % (bytes.len() + 1),
                    };
                    let end = at as usize + n;
                    if data.len() < end {
                        data.resize(end, 0);
                    }
                    data[at as usize..end].copy_from_slice(&bytes[..n]);
                }
            }
        }
        disk.data = data.clone();
        disk.synced = data;
        disk.ops_left = None;
        disk.life += 1;
    }
}

impl redb::StorageBackend for PowerFile {
    fn len(&self) -> Result<u64, io::Error> {
        self.with(|d| Ok(d.data.len() as u64))
    }

    fn read(&self, offset: u64, out: &mut [u8]) -> Result<(), io::Error> {
        self.with(|d| {
            let end = offset as usize + out.len();
            let src = d
                .data
                .get(offset as usize..end)
                .ok_or(io::ErrorKind::UnexpectedEof)?;
            out.copy_from_slice(src);
            Ok(())
        })
    }

    fn set_len(&self, len: u64) -> Result<(), io::Error> {
        self.with(|d| {
            d.data.resize(len as usize, 0);
            d.unsynced.push((len, None));
            Ok(())
        })
    }

    fn sync_data(&self) -> Result<(), io::Error> {
        self.with(|d| {
            d.synced = d.data.clone();
            d.unsynced.clear();
            Ok(())
        })
    }

    fn write(&self, offset: u64, data: &[u8]) -> Result<(), io::Error> {
        self.with(|d| {
            let end = offset as usize + data.len();
            if d.data.len() < end {
                d.data.resize(end, 0);
            }
            d.data[offset as usize..end].copy_from_slice(data);
            d.unsynced.push((offset, Some(data.to_vec())));
            Ok(())
        })
    }
}

fn open_on(file: &PowerFile, options: StoreOptions) -> Result<Outbox<RedbBackend>, String> {
    let db = redb::Builder::new()
        .create_with_backend(file.handle())
        .map_err(|e| e.to_string())?;
    let (backend, recovery) = RedbBackend::with_database(db).map_err(|e| e.to_string())?;
    Outbox::open_with(backend, recovery, options)
        .map(|(outbox, _)| outbox)
        .map_err(|e| e.to_string())
}

#[test]
fn redb_loses_nothing_committed_at_power_cuts_through_its_storage_backend() {
    let file = PowerFile::default();
    let mut options = StoreOptions::new(64 * 1024, FullPolicy::DropOldest);
    options.retain_acked_bytes = 4096;
    let mut model = power::Model::default();
    let mut state = 0x7ed_b00d_u64;
    let mut opened = 0;
    for cut in 0..200 {
        file.fail_after(Some(power::next_random(&mut state) % 300));
        if let Ok(mut outbox) = open_on(&file, options) {
            opened += 1;
            let _ = power::work(&mut outbox, &mut model, &mut state);
        }
        model.pending.clear();
        file.power_cut(power::next_random(&mut state));
        let outbox = open_on(&file, options)
            .unwrap_or_else(|e| panic!("cut {cut}: redb must open after a power cut: {e}"));
        power::check(&outbox, &model, &format!("redb cut {cut}"));
        let (end, acked) = (outbox.durable_end(), outbox.first_unacked());
        model.durable.retain(|seq, _| *seq < end && *seq >= acked);
        drop(outbox);
        file.power_cut(power::next_random(&mut state));
    }
    eprintln!(
        "redb power loss: 200 cuts, {opened} opens before a cut, {} readings appended",
        model.next_value
    );
    assert!(opened > 100, "most cycles got past open: {opened}");
    assert!(
        model.next_value > 200,
        "the workload ran: {} readings",
        model.next_value
    );
}
