//! The I/O seam: the few file operations the segmented log does, behind a trait, so that
//! tests can put a disk under it that loses or tears everything not yet fsynced.
//!
//! Invariants the log relies on, which every implementation keeps:
//! - A file's bytes written before a successful [`StorageFile::sync`] survive a power cut.
//! - A directory change (create, rename, remove) survives a power cut only after a
//!   successful [`Storage::sync_dir`].
//! - Nothing else is promised: unsynced writes may vanish, be cut short or be garbled.
//!
//! [`OsStorage`] is the real thing (one directory of the local filesystem); [`sim`] holds
//! the simulated disk the power-loss and disk-full tests use.

use std::fs::{self, File, OpenOptions};
use std::io::{self, Write};
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};

pub mod sim;

/// One directory of files: where a store keeps its segments and small state.
pub trait Storage: Send {
    /// An open file of this storage.
    type File: StorageFile;

    /// Names of the files in the directory (no subdirectories).
    fn list(&self) -> io::Result<Vec<String>>;
    /// Creates `name` empty (truncating it if it exists), open for reading and appending.
    fn create(&self, name: &str) -> io::Result<Self::File>;
    /// Opens an existing file for reading and appending.
    fn open(&self, name: &str) -> io::Result<Self::File>;
    /// Removes a file; removing a missing file is not an error.
    fn remove(&self, name: &str) -> io::Result<()>;
    /// Renames `from` to `to`, replacing `to` atomically.
    fn rename(&self, from: &str, to: &str) -> io::Result<()>;
    /// Makes the directory's entries (creations, renames, removals) durable.
    fn sync_dir(&self) -> io::Result<()>;
}

/// An open file: appended to at its end, read anywhere.
#[allow(clippy::len_without_is_empty)] // a file's emptiness is never asked
pub trait StorageFile: Send {
    /// Appends all of `buf` at the end of the file.
    fn append(&mut self, buf: &[u8]) -> io::Result<()>;
    /// Reads up to `buf.len()` bytes at `offset`; returns how many were read (0 at the end).
    fn read_at(&self, offset: u64, buf: &mut [u8]) -> io::Result<usize>;
    /// The file's current length.
    fn len(&self) -> io::Result<u64>;
    /// Cuts the file to `len` bytes.
    fn truncate(&mut self, len: u64) -> io::Result<()>;
    /// Makes everything written so far durable (fdatasync).
    fn sync(&mut self) -> io::Result<()>;

    /// Reads exactly `buf.len()` bytes at `offset`, or fails with `UnexpectedEof`.
    fn read_exact_at(&self, mut offset: u64, mut buf: &mut [u8]) -> io::Result<()> {
        while !buf.is_empty() {
            let n = self.read_at(offset, buf)?;
            if n == 0 {
                return Err(io::ErrorKind::UnexpectedEof.into());
            }
            offset += n as u64;
            buf = &mut buf[n..];
        }
        Ok(())
    }
}

/// A directory of the local filesystem; a store's directory is held exclusively
/// ([`OsStorage::exclusive`]): two processes (or two opens) on one store would number records
/// twice, so the second open fails while the first lives. An inspection opens it
/// [`OsStorage::read_only`]: files are opened for reading only and every change is refused,
/// so looking at a store can never alter it.
#[derive(Debug, Clone)]
pub struct OsStorage {
    dir: PathBuf,
    /// The open `lock` file whose exclusive lock marks the store as in use; released when
    /// the last clone is dropped or the process dies.
    _lock: Option<std::sync::Arc<File>>,
    read_only: bool,
}

fn refused_read_only() -> io::Error {
    io::Error::new(
        io::ErrorKind::PermissionDenied,
        "the store is open read-only for inspection",
    )
}

/// Name of the file whose lock marks a store in use.
pub const LOCK_FILE: &str = "lock";

impl OsStorage {
    /// Uses `dir`, creating it (and its parents) if missing, without holding it.
    pub fn new(dir: impl AsRef<Path>) -> io::Result<Self> {
        fs::create_dir_all(dir.as_ref())?;
        Ok(OsStorage {
            dir: dir.as_ref().to_path_buf(),
            _lock: None,
            read_only: false,
        })
    }

    /// Uses the existing directory `dir` for reading only: nothing is created, locked,
    /// written, renamed or removed (a read-only directory or filesystem works). A store a
    /// running agent writes may be read this way; its newest bytes may be mid-write.
    pub fn read_only(dir: impl AsRef<Path>) -> io::Result<Self> {
        if !fs::metadata(dir.as_ref())?.is_dir() {
            return Err(io::Error::new(
                io::ErrorKind::NotADirectory,
                "not a directory",
            ));
        }
        Ok(OsStorage {
            dir: dir.as_ref().to_path_buf(),
            _lock: None,
            read_only: true,
        })
    }

    /// Uses `dir` as a store's directory, creating it if missing, and holds it: a directory
    /// another process (or another open) holds fails with [`io::ErrorKind::ResourceBusy`].
    pub fn exclusive(dir: impl AsRef<Path>) -> io::Result<Self> {
        fs::create_dir_all(dir.as_ref())?;
        let lock = fs::OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .open(dir.as_ref().join(LOCK_FILE))?;
        match lock.try_lock() {
            Ok(()) => {}
            Err(fs::TryLockError::WouldBlock) => {
                return Err(io::Error::new(
                    io::ErrorKind::ResourceBusy,
                    "the store is in use by another process (is aloft-agent running?)",
                ));
            }
            Err(fs::TryLockError::Error(e)) => return Err(e),
        }
        Ok(OsStorage {
            dir: dir.as_ref().to_path_buf(),
            _lock: Some(std::sync::Arc::new(lock)),
            read_only: false,
        })
    }

    /// The directory.
    pub fn dir(&self) -> &Path {
        &self.dir
    }
}

/// A file of [`OsStorage`].
#[derive(Debug)]
pub struct OsFile(File);

impl Storage for OsStorage {
    type File = OsFile;

    fn list(&self) -> io::Result<Vec<String>> {
        let mut names = Vec::new();
        for entry in fs::read_dir(&self.dir)? {
            let entry = entry?;
            if entry.file_type()?.is_file()
                && let Some(name) = entry.file_name().to_str()
            {
                names.push(name.to_owned());
            }
        }
        Ok(names)
    }

    fn create(&self, name: &str) -> io::Result<OsFile> {
        if self.read_only {
            return Err(refused_read_only());
        }
        let file = OpenOptions::new()
            .read(true)
            .append(true)
            .create(true)
            .truncate(false)
            .open(self.dir.join(name))?;
        file.set_len(0)?;
        Ok(OsFile(file))
    }

    fn open(&self, name: &str) -> io::Result<OsFile> {
        let file = OpenOptions::new()
            .read(true)
            .append(!self.read_only)
            .open(self.dir.join(name))?;
        Ok(OsFile(file))
    }

    fn remove(&self, name: &str) -> io::Result<()> {
        if self.read_only {
            return Err(refused_read_only());
        }
        match fs::remove_file(self.dir.join(name)) {
            Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(()),
            other => other,
        }
    }

    fn rename(&self, from: &str, to: &str) -> io::Result<()> {
        if self.read_only {
            return Err(refused_read_only());
        }
        fs::rename(self.dir.join(from), self.dir.join(to))
    }

    fn sync_dir(&self) -> io::Result<()> {
        if self.read_only {
            return Err(refused_read_only());
        }
        File::open(&self.dir)?.sync_all()
    }
}

impl StorageFile for OsFile {
    fn append(&mut self, buf: &[u8]) -> io::Result<()> {
        self.0.write_all(buf)
    }

    fn read_at(&self, offset: u64, buf: &mut [u8]) -> io::Result<usize> {
        FileExt::read_at(&self.0, buf, offset)
    }

    fn len(&self) -> io::Result<u64> {
        Ok(self.0.metadata()?.len())
    }

    fn truncate(&mut self, len: u64) -> io::Result<()> {
        self.0.set_len(len)
    }

    fn sync(&mut self) -> io::Result<()> {
        self.0.sync_data()
    }
}

#[cfg(test)]
mod lock_tests {
    use super::*;

    #[test]
    fn a_store_is_held_by_one_open_at_a_time() {
        let dir = tempfile::tempdir().unwrap();
        let first = OsStorage::exclusive(dir.path()).unwrap();
        let second = OsStorage::exclusive(dir.path()).unwrap_err();
        assert_eq!(second.kind(), io::ErrorKind::ResourceBusy);
        // Plain use of the directory (small-state files beside the store) is not held off.
        OsStorage::new(dir.path()).unwrap();
        let clone = first.clone();
        drop(first);
        assert!(
            OsStorage::exclusive(dir.path()).is_err(),
            "a clone still holds the store"
        );
        drop(clone);
        OsStorage::exclusive(dir.path()).expect("free again once every holder is gone");
    }
}
