//! Small state replaced whole and crash-safely: the store's epoch and cursor files, and the
//! agent's own small state (desired state, applied command ids, last good time).
//!
//! Invariant: after a crash or power cut at any moment, the file holds either its old bytes
//! or its new bytes, never a mix and never nothing (once it existed). The recipe: write a
//! temporary file, fsync it, rename it over the old one, fsync the directory.

use std::io;
use std::path::Path;

use crate::storage::{OsStorage, Storage, StorageFile};

/// Replaces the file `name` of `storage` with `bytes`, crash-safely.
pub fn replace_file<S: Storage>(storage: &S, name: &str, bytes: &[u8]) -> io::Result<()> {
    let tmp = format!("{name}.tmp");
    let mut file = storage.create(&tmp)?;
    file.append(bytes)?;
    file.sync()?;
    drop(file);
    storage.rename(&tmp, name)?;
    storage.sync_dir()
}

/// Reads the whole file `name` of `storage`, or `None` if it does not exist.
pub fn read_file<S: Storage>(storage: &S, name: &str) -> io::Result<Option<Vec<u8>>> {
    let file = match storage.open(name) {
        Ok(f) => f,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(e),
    };
    let len = usize::try_from(file.len()?).map_err(|_| io::ErrorKind::InvalidData)?;
    let mut bytes = vec![0; len];
    file.read_exact_at(0, &mut bytes)?;
    Ok(Some(bytes))
}

/// Replaces the file at `path` with `bytes`, crash-safely (temporary file beside it, fsync,
/// rename, fsync of the directory). The directory must exist.
pub fn atomic_replace(path: &Path, bytes: &[u8]) -> io::Result<()> {
    let dir = match path.parent() {
        Some(d) if !d.as_os_str().is_empty() => d,
        _ => Path::new("."),
    };
    let name = path
        .file_name()
        .and_then(|n| n.to_str())
        .ok_or_else(|| io::Error::new(io::ErrorKind::InvalidInput, "no UTF-8 file name"))?;
    replace_file(&OsStorage::new(dir)?, name, bytes)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::storage::sim::SimDisk;

    #[test]
    fn a_power_cut_at_any_step_leaves_the_old_or_the_new_bytes() {
        // Cut the power after each storage operation of a replace in turn: the recipe has
        // five steps (create, append, sync, rename, sync_dir).
        for cut_after in 0..=5 {
            for seed in 0..20 {
                let disk = SimDisk::new();
                replace_file(&disk, "state", b"old state").unwrap();
                let tmp = "state.tmp";
                let mut steps = 0;
                let step = |done: &mut u32| {
                    *done += 1;
                    *done <= cut_after
                };
                if step(&mut steps) {
                    let mut f = disk.create(tmp).unwrap();
                    if step(&mut steps) {
                        f.append(b"new state, longer").unwrap();
                        if step(&mut steps) {
                            f.sync().unwrap();
                            if step(&mut steps) {
                                disk.rename(tmp, "state").unwrap();
                                if step(&mut steps) {
                                    disk.sync_dir().unwrap();
                                }
                            }
                        }
                    }
                }
                disk.power_cut(seed);
                let after = read_file(&disk, "state").unwrap().unwrap();
                assert!(
                    after == b"old state" || after == b"new state, longer",
                    "cut after {cut_after} steps, seed {seed}: {after:?}"
                );
                if cut_after == 5 {
                    assert_eq!(after, b"new state, longer");
                }
            }
        }
    }

    #[test]
    fn atomic_replace_on_a_real_directory_replaces_and_leaves_no_temporary() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("desired.json");
        atomic_replace(&path, b"{\"generation\":1}").unwrap();
        atomic_replace(&path, b"{\"generation\":2}").unwrap();
        assert_eq!(std::fs::read(&path).unwrap(), b"{\"generation\":2}");
        let names: Vec<_> = std::fs::read_dir(dir.path())
            .unwrap()
            .map(|e| e.unwrap().file_name())
            .collect();
        assert_eq!(names, vec![std::ffi::OsString::from("desired.json")]);
    }

    #[test]
    fn reading_a_missing_file_is_none_not_an_error() {
        let disk = SimDisk::new();
        assert_eq!(read_file(&disk, "absent").unwrap(), None);
    }
}
