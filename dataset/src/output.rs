//! Where an export's files go: the [`Output`] seam, and [`DirOutput`], a directory that
//! gets every file at once or none.
//!
//! Invariants: a file is written under a temporary name (`.NAME.part`) and every file of
//! the export is renamed into place only by [`DirOutput::commit`], after the last one is
//! complete and synced; an export that fails (a full disk, a read error, a refused
//! request) removes what it wrote, so no half-written file ever looks complete. An
//! existing file is replaced only when the caller said so (`--force`). Every file's size
//! and SHA-256 are recorded as it is written, for the sidecar and the data package.

use std::fs::{self, File};
use std::io::{self, BufWriter, Write};
use std::path::{Path, PathBuf};

use serde::Serialize;
use sha2::{Digest, Sha256};

use crate::ExportError;

/// One file of an export, as written.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct FileEntry {
    /// Its name, relative to the export (`/`-separated).
    pub path: String,
    /// What it is: `parquet`, `csv`, `netcdf`, `icartt`, `igc`, `geojson`, `kml`, `json`,
    /// `markdown`.
    pub format: String,
    /// Its media type.
    pub mediatype: String,
    /// Its size, bytes.
    pub bytes: u64,
    /// SHA-256 of its content, lowercase hex.
    pub sha256: String,
}

/// A sink of export files.
pub trait Output {
    /// Writes file `path` (relative, `/`-separated, no `..`) with `write`; returns it once
    /// complete. `format` and `mediatype` describe it for the manifest.
    fn file(
        &mut self,
        path: &str,
        format: &str,
        mediatype: &str,
        write: &mut dyn FnMut(&mut dyn Write) -> Result<(), ExportError>,
    ) -> Result<FileEntry, ExportError>;

    /// The files written so far, in order.
    fn files(&self) -> &[FileEntry];
}

/// A writer that counts and hashes what passes through it.
#[derive(Debug)]
pub struct Hashing<W> {
    inner: W,
    hasher: Sha256,
    bytes: u64,
}

impl<W: Write> Hashing<W> {
    /// Wraps `inner`.
    pub fn new(inner: W) -> Self {
        Hashing {
            inner,
            hasher: Sha256::new(),
            bytes: 0,
        }
    }

    /// Bytes written and their SHA-256 (hex), and the inner writer.
    pub fn finish(self) -> (u64, String, W) {
        let digest = self.hasher.finalize();
        (self.bytes, crate::source::hex(&digest), self.inner)
    }
}

impl<W: Write> Write for Hashing<W> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        let n = self.inner.write(buf)?;
        self.hasher.update(&buf[..n]);
        self.bytes += n as u64;
        Ok(n)
    }

    fn flush(&mut self) -> io::Result<()> {
        self.inner.flush()
    }
}

/// Checks that an export path is relative and stays inside the export.
pub fn check_path(path: &str) -> Result<(), ExportError> {
    let ok = !path.is_empty()
        && !path.starts_with('/')
        && path
            .split('/')
            .all(|part| !part.is_empty() && part != "." && part != ".." && !part.contains('\\'));
    if ok {
        Ok(())
    } else {
        Err(ExportError::BadFileName(path.to_owned()))
    }
}

/// A directory that receives an export's files all at once.
#[derive(Debug)]
pub struct DirOutput {
    dir: PathBuf,
    force: bool,
    /// (temporary, final) paths of the files written.
    pending: Vec<(PathBuf, PathBuf)>,
    /// Directories this output made (for files in subdirectories), outermost first.
    made: Vec<PathBuf>,
    files: Vec<FileEntry>,
    committed: bool,
}

impl DirOutput {
    /// An output into `dir`, made if missing. Without `force`, a file that already exists
    /// is refused before anything is written to it.
    pub fn new(dir: &Path, force: bool) -> Result<DirOutput, ExportError> {
        fs::create_dir_all(dir).map_err(|source| ExportError::Output {
            path: dir.display().to_string(),
            source,
        })?;
        Ok(DirOutput {
            dir: dir.to_path_buf(),
            force,
            pending: Vec::new(),
            made: Vec::new(),
            files: Vec::new(),
            committed: false,
        })
    }

    /// Renames every file into place (after syncing each); nothing was visible before.
    pub fn commit(mut self) -> Result<Vec<FileEntry>, ExportError> {
        for (tmp, fin) in &self.pending {
            if !self.force && fin.exists() {
                return Err(ExportError::Exists(fin.display().to_string()));
            }
            fs::rename(tmp, fin).map_err(|source| ExportError::Output {
                path: fin.display().to_string(),
                source,
            })?;
        }
        if let Ok(d) = File::open(&self.dir) {
            let _ = d.sync_all();
        }
        self.committed = true;
        Ok(std::mem::take(&mut self.files))
    }
}

impl Drop for DirOutput {
    fn drop(&mut self) {
        if !self.committed {
            for (tmp, _) in &self.pending {
                let _ = fs::remove_file(tmp);
            }
            // Innermost first; a directory that holds anything else stays.
            for dir in self.made.iter().rev() {
                let _ = fs::remove_dir(dir);
            }
        }
    }
}

impl Output for DirOutput {
    fn file(
        &mut self,
        path: &str,
        format: &str,
        mediatype: &str,
        write: &mut dyn FnMut(&mut dyn Write) -> Result<(), ExportError>,
    ) -> Result<FileEntry, ExportError> {
        check_path(path)?;
        if self.files.iter().any(|f| f.path == path) {
            return Err(ExportError::BadFileName(format!("{path} (written twice)")));
        }
        let fin = self.dir.join(path);
        if !self.force && fin.exists() {
            return Err(ExportError::Exists(fin.display().to_string()));
        }
        let parent = fin.parent().unwrap_or(&self.dir).to_path_buf();
        let io_err = |source| ExportError::Output {
            path: fin.display().to_string(),
            source,
        };
        let mut missing: Vec<PathBuf> = parent
            .ancestors()
            .take_while(|d| *d != self.dir && !d.exists())
            .map(Path::to_path_buf)
            .collect();
        fs::create_dir_all(&parent).map_err(io_err)?;
        missing.reverse();
        self.made.extend(missing);
        let name = fin
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default();
        let tmp = parent.join(format!(".{name}.part"));
        let file = File::create(&tmp).map_err(io_err)?;
        self.pending.push((tmp.clone(), fin.clone()));
        let mut w = Hashing::new(BufWriter::with_capacity(256 << 10, file));
        write(&mut w)?;
        let (bytes, sha256, buf) = w.finish();
        let file = buf.into_inner().map_err(|e| io_err(e.into_error()))?;
        file.sync_all().map_err(io_err)?;
        let entry = FileEntry {
            path: path.to_owned(),
            format: format.to_owned(),
            mediatype: mediatype.to_owned(),
            bytes,
            sha256,
        };
        self.files.push(entry.clone());
        Ok(entry)
    }

    fn files(&self) -> &[FileEntry] {
        &self.files
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nothing_is_visible_until_commit_and_a_failed_export_leaves_nothing() {
        let dir = tempfile::tempdir().unwrap();
        {
            let mut out = DirOutput::new(dir.path(), false).unwrap();
            out.file("a.csv", "csv", "text/csv", &mut |w| {
                w.write_all(b"x\n").map_err(ExportError::write)
            })
            .unwrap();
            assert!(!dir.path().join("a.csv").exists());
            out.file("deep/er/c.csv", "csv", "text/csv", &mut |w| {
                w.write_all(b"y\n").map_err(ExportError::write)
            })
            .unwrap();
            let failed = out.file("b.csv", "csv", "text/csv", &mut |w| {
                w.write_all(b"half")
                    .map_err(ExportError::write)
                    .and(Err(ExportError::BadInterval))
            });
            assert!(failed.is_err());
        }
        let left: Vec<_> = fs::read_dir(dir.path()).unwrap().collect();
        assert!(left.is_empty(), "{left:?}");
    }

    #[test]
    fn an_existing_file_is_refused_without_force_and_replaced_with_it() {
        let dir = tempfile::tempdir().unwrap();
        fs::write(dir.path().join("a.csv"), b"old").unwrap();
        let mut out = DirOutput::new(dir.path(), false).unwrap();
        let e = out
            .file("a.csv", "csv", "text/csv", &mut |_| Ok(()))
            .unwrap_err();
        assert!(matches!(e, ExportError::Exists(_)), "{e}");
        let mut out = DirOutput::new(dir.path(), true).unwrap();
        let entry = out
            .file("a.csv", "csv", "text/csv", &mut |w| {
                w.write_all(b"new").map_err(ExportError::write)
            })
            .unwrap();
        out.commit().unwrap();
        assert_eq!(fs::read(dir.path().join("a.csv")).unwrap(), b"new");
        assert_eq!(entry.bytes, 3);
        assert_eq!(
            entry.sha256,
            "11507a0e2f5e69d5dfa40a62a1bd7b6ee57e6bcd85c67c9b8431b36fff21c437"
        );
    }

    #[test]
    fn paths_that_leave_the_export_are_refused() {
        for bad in ["", "/etc/passwd", "../x", "a/../../x", "a//b", "a\\b", "."] {
            assert!(check_path(bad).is_err(), "{bad}");
        }
        for good in ["a.csv", "wide/gps.parquet"] {
            assert!(check_path(good).is_ok(), "{good}");
        }
    }
}
