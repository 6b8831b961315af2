//! [`TarOutput`]: an export's files as one tar stream (POSIX ustar, with a pax `path`
//! record for a name longer than ustar's 100 bytes), written to a [`std::io::Write`].
//!
//! Each file is written first to a temporary file in the hub's data directory (a tar
//! header states the size before the content), then copied into the stream as soon as it
//! is complete, and the temporary file removed; so the export is never held in memory,
//! and at most one file of it is on disk at a time.
//!
//! Invariants: headers are deterministic (mode 0644, uid and gid 0, no user or group
//! names, mtime the export's creation time), so the stream's bytes depend only on the
//! files' names and contents; the end-of-archive marker is written only by
//! [`TarOutput::finish`], after every file: a stream cut short never looks complete;
//! a temporary file is removed when its copy ends, whether it ended well or not.

use std::fs::File;
use std::io::{self, BufWriter, Read, Seek, Write};
use std::path::{Path, PathBuf};

use aloft_dataset::output::{Hashing, check_path};
use aloft_dataset::{ExportError, FileEntry, Output};

/// Tar's block.
const BLOCK: usize = 512;

/// The longest name a ustar header holds without a pax record.
const USTAR_NAME: usize = 100;

/// An export's files as a tar stream into `sink`.
pub struct TarOutput<W: Write> {
    dir: PathBuf,
    sink: W,
    mtime: u64,
    files: Vec<FileEntry>,
    /// Called once, when the first file is complete and about to go into the stream.
    first_file: Option<Box<dyn FnOnce() + Send>>,
}

impl<W: Write> TarOutput<W> {
    /// Files spooled in `dir` (made if missing), streamed into `sink`, stamped with
    /// `created_utc_ns` (whole seconds, as tar holds them).
    pub fn new(dir: &Path, sink: W, created_utc_ns: i64) -> Result<TarOutput<W>, ExportError> {
        std::fs::create_dir_all(dir).map_err(|source| ExportError::Output {
            path: dir.display().to_string(),
            source,
        })?;
        Ok(TarOutput {
            dir: dir.to_owned(),
            sink,
            mtime: u64::try_from(created_utc_ns.div_euclid(1_000_000_000)).unwrap_or(0),
            files: Vec::new(),
            first_file: None,
        })
    }

    /// Calls `f` once, when the first file is complete and its first byte is about to go
    /// into the stream (the export is under way).
    pub fn on_first_file(&mut self, f: impl FnOnce() + Send + 'static) {
        self.first_file = Some(Box::new(f));
    }

    /// Writes the end-of-archive marker; the sink back.
    pub fn finish(mut self) -> io::Result<W> {
        self.sink.write_all(&[0u8; 2 * BLOCK])?;
        self.sink.flush()?;
        Ok(self.sink)
    }

    /// The sink, without an end-of-archive marker (the export failed).
    pub fn into_sink(self) -> W {
        self.sink
    }
}

impl<W: Write> std::fmt::Debug for TarOutput<W> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TarOutput")
            .field("dir", &self.dir)
            .field("files", &self.files)
            .finish_non_exhaustive()
    }
}

/// The tar header blocks of a regular file `path` of `size` bytes, modified at `mtime`.
pub fn header_blocks(path: &str, size: u64, mtime: u64) -> io::Result<Vec<u8>> {
    let mut out = Vec::with_capacity(3 * BLOCK);
    let name = if path.len() > USTAR_NAME {
        let record = pax_record("path", path);
        let pax = ustar_header(
            &format!("PaxHeader/{}", truncate(path, 80)),
            record.len() as u64,
            mtime,
            tar::EntryType::XHeader,
        )?;
        out.extend_from_slice(&pax);
        out.extend_from_slice(record.as_bytes());
        pad(&mut out);
        truncate(path, USTAR_NAME)
    } else {
        path
    };
    out.extend_from_slice(&ustar_header(name, size, mtime, tar::EntryType::Regular)?);
    Ok(out)
}

fn ustar_header(
    name: &str,
    size: u64,
    mtime: u64,
    kind: tar::EntryType,
) -> io::Result<[u8; BLOCK]> {
    let mut h = tar::Header::new_ustar();
    let field = &mut h.as_old_mut().name;
    let bytes = name.as_bytes();
    if bytes.len() > field.len() {
        return Err(io::Error::other(format!("tar name {name:?} is too long")));
    }
    field[..bytes.len()].copy_from_slice(bytes);
    h.set_size(size);
    h.set_mode(0o644);
    h.set_uid(0);
    h.set_gid(0);
    h.set_mtime(mtime);
    h.set_entry_type(kind);
    h.set_cksum();
    Ok(*h.as_bytes())
}

/// A pax extended header record: `LEN KEY=VALUE\n`, LEN counting itself.
fn pax_record(key: &str, value: &str) -> String {
    let rest = key.len() + value.len() + 3; // ' ', '=', '\n'
    let mut len = rest + 1;
    while len != rest + len.to_string().len() {
        len = rest + len.to_string().len();
    }
    format!("{len} {key}={value}\n")
}

fn truncate(s: &str, max: usize) -> &str {
    let mut end = s.len().min(max);
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    &s[..end]
}

fn pad(out: &mut Vec<u8>) {
    let rem = out.len() % BLOCK;
    if rem != 0 {
        out.resize(out.len() + BLOCK - rem, 0);
    }
}

/// A spool file whose write errors say which file and where (a full disk on the hub is
/// the hub operator's to fix, and the message reaches the log and the client).
struct Named<'f> {
    file: &'f File,
    what: String,
}

impl Write for Named<'_> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.file
            .write(buf)
            .map_err(|e| io::Error::new(e.kind(), format!("{}: {e}", self.what)))
    }

    fn flush(&mut self) -> io::Result<()> {
        self.file.flush()
    }
}

impl<W: Write> Output for TarOutput<W> {
    fn file(
        &mut self,
        path: &str,
        format: &str,
        mediatype: &str,
        write: &mut dyn FnMut(&mut dyn Write) -> Result<(), ExportError>,
    ) -> Result<FileEntry, ExportError> {
        check_path(path)?;
        let spool_error = |source| ExportError::Output {
            path: format!("{} (spooling {path})", self.dir.display()),
            source,
        };
        // Removed when dropped: at the end of this call, however it ends.
        let spool = tempfile::Builder::new()
            .prefix(".export-")
            .tempfile_in(&self.dir)
            .map_err(spool_error)?;
        let named = Named {
            file: spool.as_file(),
            what: format!("spooling {path} in {}", self.dir.display()),
        };
        let mut w = Hashing::new(BufWriter::with_capacity(256 << 10, named));
        let started = std::time::Instant::now();
        write(&mut w)?;
        let spooled_s = started.elapsed().as_secs_f64();
        let (bytes, sha256, buf) = w.finish();
        buf.into_inner().map_err(|e| spool_error(e.into_error()))?;
        let mut file: &File = spool.as_file();
        file.rewind().map_err(spool_error)?;
        let stream = |e: io::Error| ExportError::Write(e);
        if let Some(f) = self.first_file.take() {
            f();
        }
        self.sink
            .write_all(&header_blocks(path, bytes, self.mtime).map_err(stream)?)
            .map_err(stream)?;
        let copied = io::copy(&mut Read::take(&mut file, bytes), &mut self.sink).map_err(stream)?;
        if copied != bytes {
            return Err(ExportError::Write(io::Error::other(format!(
                "{path}: spooled {bytes} bytes, read back {copied}"
            ))));
        }
        let rem = (bytes % BLOCK as u64) as usize;
        if rem != 0 {
            self.sink
                .write_all(&[0u8; BLOCK][..BLOCK - rem])
                .map_err(stream)?;
        }
        drop(spool);
        tracing::debug!(
            file = path,
            bytes,
            spooled_s,
            sent_s = started.elapsed().as_secs_f64() - spooled_s,
            "Export file sent."
        );
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
    fn a_pax_record_counts_its_own_length() {
        for value in ["a", &"x".repeat(90), &"y".repeat(995)] {
            let r = pax_record("path", value);
            let (len, _) = r.split_once(' ').unwrap_or_default();
            assert_eq!(len.parse::<usize>().ok(), Some(r.len()), "{r}");
        }
    }

    #[test]
    fn files_come_out_in_order_as_a_tar_the_tar_crate_reads_back_and_spools_are_gone() {
        let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
        let long = format!("{}.csv", "n".repeat(150));
        let mut out = TarOutput::new(dir.path(), Vec::new(), 1_780_000_000_500_000_000)
            .unwrap_or_else(|e| panic!("{e}"));
        for (name, content) in [
            ("a.csv", b"x,y\r\n".to_vec()),
            (long.as_str(), vec![7u8; 1300]),
        ] {
            out.file(name, "csv", "text/csv", &mut |w| {
                w.write_all(&content).map_err(ExportError::write)
            })
            .unwrap_or_else(|e| panic!("{e}"));
        }
        let bytes = out.finish().unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(bytes.len() % BLOCK, 0);
        let mut archive = tar::Archive::new(bytes.as_slice());
        let mut seen = Vec::new();
        for entry in archive.entries().unwrap_or_else(|e| panic!("{e}")) {
            let mut entry = entry.unwrap_or_else(|e| panic!("{e}"));
            let path = entry
                .path()
                .unwrap_or_else(|e| panic!("{e}"))
                .display()
                .to_string();
            let header = entry.header();
            assert_eq!(header.mode().ok(), Some(0o644));
            assert_eq!(header.mtime().ok(), Some(1_780_000_000));
            assert_eq!(header.uid().ok(), Some(0));
            let mut content = Vec::new();
            entry
                .read_to_end(&mut content)
                .unwrap_or_else(|e| panic!("{e}"));
            seen.push((path, content.len()));
        }
        assert_eq!(seen, [("a.csv".to_owned(), 5), (long.clone(), 1300)]);
        let left: Vec<_> = std::fs::read_dir(dir.path())
            .map(|d| d.flatten().map(|e| e.path()).collect())
            .unwrap_or_default();
        assert!(left.is_empty(), "{left:?}");
    }

    #[test]
    fn a_failed_file_leaves_no_spool_and_no_end_marker() {
        let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
        let mut out = TarOutput::new(dir.path(), Vec::new(), 0).unwrap_or_else(|e| panic!("{e}"));
        let failed = out.file("a.csv", "csv", "text/csv", &mut |w| {
            w.write_all(b"half").map_err(ExportError::write)?;
            Err(ExportError::BadInterval)
        });
        assert!(failed.is_err());
        assert!(
            out.into_sink().is_empty(),
            "nothing streamed of a failed file"
        );
        let left = std::fs::read_dir(dir.path())
            .map(|d| d.count())
            .unwrap_or(1);
        assert_eq!(left, 0);
    }
}
