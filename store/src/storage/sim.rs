//! A simulated disk for tests: files and a directory in memory that remember what was
//! fsynced, so a test can cut the power at any moment and see what a real disk could have
//! kept.
//!
//! Invariants: after [`SimDisk::power_cut`], every file holds its last synced bytes,
//! possibly followed by a prefix of what was written after (a torn write), whose last bytes
//! may be garbled; the directory is its last synced state (files created, renamed or
//! removed since are back as they were). Handles opened before the cut fail afterwards, as
//! a process that died with the power would. With a capacity set, an append that would
//! exceed it fails with `StorageFull` (ENOSPC) and writes nothing. With a fault set
//! ([`SimDisk::fail_writes`]), every change (create, write, sync, rename, remove) fails with
//! that OS error (EIO for a failing SD card) and changes nothing, until it is lifted.

use std::collections::{BTreeMap, HashMap};
use std::io;
use std::sync::{Arc, Mutex, MutexGuard};

use super::{Storage, StorageFile};

#[derive(Debug, Default)]
struct Inode {
    data: Vec<u8>,
    synced: Vec<u8>,
}

#[derive(Debug, Default)]
struct Disk {
    inodes: HashMap<u64, Inode>,
    next_inode: u64,
    dir: BTreeMap<String, u64>,
    synced_dir: BTreeMap<String, u64>,
    /// Bumped at every power cut: handles of an older life fail.
    life: u64,
    capacity: Option<u64>,
    syncs: u64,
    /// Storage operations left before the power goes; `None` for no limit.
    ops_left: Option<u64>,
    /// The OS error every change fails with, while set.
    fault: Option<i32>,
}

impl Disk {
    /// Spends one operation of the budget; fails once the power is (about to be) gone.
    fn spend(&mut self) -> io::Result<()> {
        if let Some(code) = self.fault {
            return Err(io::Error::from_raw_os_error(code));
        }
        match &mut self.ops_left {
            Some(0) => Err(io::Error::other("the simulated disk lost power")),
            Some(n) => {
                *n -= 1;
                Ok(())
            }
            None => Ok(()),
        }
    }

    fn used(&self) -> u64 {
        self.inodes.values().map(|i| i.data.len() as u64).sum()
    }
}

/// A simulated disk holding one directory. Clones share the same disk.
#[derive(Debug, Clone, Default)]
pub struct SimDisk {
    disk: Arc<Mutex<Disk>>,
}

/// A file of a [`SimDisk`].
#[derive(Debug)]
pub struct SimFile {
    disk: Arc<Mutex<Disk>>,
    inode: u64,
    life: u64,
}

/// A small deterministic generator, so a failing power cut replays from its seed.
fn next_random(state: &mut u64) -> u64 {
    *state ^= *state << 13;
    *state ^= *state >> 7;
    *state ^= *state << 17;
    *state
}

impl SimDisk {
    /// An empty disk without a size limit.
    pub fn new() -> Self {
        SimDisk::default()
    }

    fn lock(&self) -> MutexGuard<'_, Disk> {
        // A test that panicked while holding the lock leaves a usable disk behind.
        self.disk.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Limits the bytes all files may hold together; `None` lifts the limit.
    pub fn set_capacity(&self, capacity: Option<u64>) {
        self.lock().capacity = capacity;
    }

    /// Lets `ops` more storage operations (file or directory) succeed; every later one
    /// fails, as if the power went at that moment. `None` lifts the limit.
    pub fn fail_after(&self, ops: Option<u64>) {
        self.lock().ops_left = ops;
    }

    /// Makes every change fail with the OS error `code` (`libc`'s EIO is 5) and change
    /// nothing, as a failing card does; `None` heals the disk. Reads still work.
    pub fn fail_writes(&self, code: Option<i32>) {
        self.lock().fault = code;
    }

    /// Bytes all files hold now.
    pub fn used(&self) -> u64 {
        self.lock().used()
    }

    /// How many file syncs succeeded so far.
    pub fn syncs(&self) -> u64 {
        self.lock().syncs
    }

    /// The current bytes of a file, if it exists.
    pub fn contents(&self, name: &str) -> Option<Vec<u8>> {
        let disk = self.lock();
        let inode = disk.dir.get(name)?;
        disk.inodes.get(inode).map(|i| i.data.clone())
    }

    /// Replaces bytes of a file in place, as bit rot or a stray write would, and makes the
    /// change durable.
    pub fn overwrite(&self, name: &str, offset: usize, bytes: &[u8]) -> io::Result<()> {
        let mut disk = self.lock();
        let inode = *disk.dir.get(name).ok_or(io::ErrorKind::NotFound)?;
        let file = disk.inodes.get_mut(&inode).ok_or(io::ErrorKind::NotFound)?;
        let end = offset + bytes.len();
        if end > file.data.len() {
            return Err(io::ErrorKind::InvalidInput.into());
        }
        file.data[offset..end].copy_from_slice(bytes);
        file.synced = file.data.clone();
        Ok(())
    }

    /// Cuts the power: every write and directory change not yet synced is dropped or torn,
    /// chosen by `seed`. Open handles stop working.
    pub fn power_cut(&self, seed: u64) {
        let mut state = seed | 1;
        let mut disk = self.lock();
        disk.life += 1;
        disk.ops_left = None;
        disk.dir = disk.synced_dir.clone();
        let live: Vec<u64> = disk.dir.values().copied().collect();
        disk.inodes.retain(|inode, _| live.contains(inode));
        for file in disk.inodes.values_mut() {
            let extends = file.data.len() > file.synced.len()
                && file.data[..file.synced.len()] == file.synced[..];
            let mut kept = file.synced.clone();
            if extends {
                let unsynced = &file.data[file.synced.len()..];
                match next_random(&mut state) % 3 {
                    // Dropped: the page cache never reached the disk.
                    0 => {}
                    // Torn: a prefix reached the disk.
                    1 => {
                        let n = (next_random(&mut state) as usize) % (unsynced.len() + 1);
                        kept.extend_from_slice(&unsynced[..n]);
                    }
                    // Torn and garbled: a prefix whose last sector came back as junk.
                    _ => {
                        let n = (next_random(&mut state) as usize) % (unsynced.len() + 1);
                        kept.extend_from_slice(&unsynced[..n]);
                        let junk = n.min(16);
                        let len = kept.len();
                        for b in &mut kept[len - junk..] {
                            *b = next_random(&mut state) as u8;
                        }
                    }
                }
            }
            file.data = kept.clone();
            file.synced = kept;
        }
    }

    fn file(&self, inode: u64, life: u64) -> SimFile {
        SimFile {
            disk: Arc::clone(&self.disk),
            inode,
            life,
        }
    }
}

impl Storage for SimDisk {
    type File = SimFile;

    fn list(&self) -> io::Result<Vec<String>> {
        Ok(self.lock().dir.keys().cloned().collect())
    }

    fn create(&self, name: &str) -> io::Result<SimFile> {
        let mut disk = self.lock();
        disk.spend()?;
        let inode = disk.next_inode;
        disk.next_inode += 1;
        disk.inodes.insert(inode, Inode::default());
        if let Some(old) = disk.dir.insert(name.to_owned(), inode)
            && !disk.synced_dir.values().any(|i| *i == old)
        {
            disk.inodes.remove(&old);
        }
        let life = disk.life;
        drop(disk);
        Ok(self.file(inode, life))
    }

    fn open(&self, name: &str) -> io::Result<SimFile> {
        let disk = self.lock();
        let inode = *disk.dir.get(name).ok_or(io::ErrorKind::NotFound)?;
        let life = disk.life;
        drop(disk);
        Ok(self.file(inode, life))
    }

    fn remove(&self, name: &str) -> io::Result<()> {
        // The inode stays until no directory state (current or synced) names it, so a power
        // cut before the directory sync brings the file back whole.
        let mut disk = self.lock();
        disk.spend()?;
        disk.dir.remove(name);
        Ok(())
    }

    fn rename(&self, from: &str, to: &str) -> io::Result<()> {
        let mut disk = self.lock();
        disk.spend()?;
        let inode = disk.dir.remove(from).ok_or(io::ErrorKind::NotFound)?;
        disk.dir.insert(to.to_owned(), inode);
        Ok(())
    }

    fn sync_dir(&self) -> io::Result<()> {
        let mut disk = self.lock();
        disk.spend()?;
        disk.synced_dir = disk.dir.clone();
        let live: Vec<u64> = disk.dir.values().copied().collect();
        disk.inodes.retain(|inode, _| live.contains(inode));
        Ok(())
    }
}

impl SimFile {
    fn with<T>(&self, f: impl FnOnce(&mut Disk, u64) -> io::Result<T>) -> io::Result<T> {
        let mut disk = self.disk.lock().unwrap_or_else(|e| e.into_inner());
        if disk.life != self.life {
            return Err(io::Error::other("the simulated disk lost power"));
        }
        f(&mut disk, self.inode)
    }
}

fn inode(disk: &mut Disk, inode: u64) -> io::Result<&mut Inode> {
    disk.inodes
        .get_mut(&inode)
        .ok_or_else(|| io::Error::from(io::ErrorKind::NotFound))
}

impl StorageFile for SimFile {
    fn append(&mut self, buf: &[u8]) -> io::Result<()> {
        self.with(|disk, i| {
            disk.spend()?;
            if let Some(cap) = disk.capacity
                && disk.used() + buf.len() as u64 > cap
            {
                return Err(io::ErrorKind::StorageFull.into());
            }
            inode(disk, i)?.data.extend_from_slice(buf);
            Ok(())
        })
    }

    fn read_at(&self, offset: u64, buf: &mut [u8]) -> io::Result<usize> {
        self.with(|disk, i| {
            let data = &inode(disk, i)?.data;
            let start = usize::try_from(offset)
                .unwrap_or(usize::MAX)
                .min(data.len());
            let n = buf.len().min(data.len() - start);
            buf[..n].copy_from_slice(&data[start..start + n]);
            Ok(n)
        })
    }

    fn len(&self) -> io::Result<u64> {
        self.with(|disk, i| Ok(inode(disk, i)?.data.len() as u64))
    }

    fn truncate(&mut self, len: u64) -> io::Result<()> {
        self.with(|disk, i| {
            disk.spend()?;
            let len = usize::try_from(len).map_err(|_| io::ErrorKind::InvalidInput)?;
            inode(disk, i)?.data.truncate(len);
            Ok(())
        })
    }

    fn sync(&mut self) -> io::Result<()> {
        self.with(|disk, i| {
            disk.spend()?;
            let file = inode(disk, i)?;
            file.synced = file.data.clone();
            disk.syncs += 1;
            Ok(())
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn synced_bytes_survive_a_power_cut_and_unsynced_ones_may_not() {
        for seed in 0..50 {
            let disk = SimDisk::new();
            let mut f = disk.create("a").unwrap();
            f.append(b"durable").unwrap();
            f.sync().unwrap();
            disk.sync_dir().unwrap();
            f.append(b" volatile tail").unwrap();
            disk.power_cut(seed);
            let after = disk.contents("a").unwrap();
            assert!(after.starts_with(b"durable"), "seed {seed}: {after:?}");
            assert!(after.len() <= b"durable volatile tail".len());
            assert!(
                f.append(b"x").is_err(),
                "old handles must fail after the cut"
            );
        }
    }

    #[test]
    fn a_file_created_without_a_directory_sync_vanishes_at_a_power_cut() {
        let disk = SimDisk::new();
        let mut f = disk.create("new").unwrap();
        f.append(b"x").unwrap();
        f.sync().unwrap();
        disk.power_cut(1);
        assert_eq!(disk.contents("new"), None);
    }

    #[test]
    fn an_unsynced_rename_is_undone_by_a_power_cut() {
        let disk = SimDisk::new();
        let mut old = disk.create("cursor").unwrap();
        old.append(b"old").unwrap();
        old.sync().unwrap();
        disk.sync_dir().unwrap();
        let mut new = disk.create("cursor.tmp").unwrap();
        new.append(b"new").unwrap();
        new.sync().unwrap();
        disk.rename("cursor.tmp", "cursor").unwrap();
        assert_eq!(disk.contents("cursor").unwrap(), b"new");
        disk.power_cut(3);
        assert_eq!(disk.contents("cursor").unwrap(), b"old");
    }

    #[test]
    fn appends_beyond_the_capacity_fail_with_storage_full() {
        let disk = SimDisk::new();
        disk.set_capacity(Some(4));
        let mut f = disk.create("a").unwrap();
        f.append(b"abcd").unwrap();
        let err = f.append(b"e").unwrap_err();
        assert_eq!(err.kind(), io::ErrorKind::StorageFull);
        assert_eq!(disk.contents("a").unwrap(), b"abcd");
    }
}
