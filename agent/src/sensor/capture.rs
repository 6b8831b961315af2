//! Raw capture: the bytes a serial sensor sent, in rotating files `aloft-agent replay`
//! reads, so a flight can be replayed through the same parsers.
//!
//! Files are `<dir>/<sensor>.<index>.<ext>` (`gps.000042.ubx`, `cosmic-ray.000003.cosmicwatch`),
//! the extension naming the replay kind. A file is rotated once it holds `max_file_bytes`;
//! beyond `max_files` the oldest of this sensor is deleted. Numbering continues after the
//! highest index already in the directory, so a restart of the agent never overwrites the
//! previous flight's capture.
//!
//! Bytes are gathered in memory and written at most every [`WRITE_EVERY`] or
//! [`WRITE_AT_BYTES`], whichever comes first, and whenever the capture is flushed or
//! dropped (a device's close, the agent's stop). A GPS at 10 Hz hands over a read every
//! 25 ms; a write of each to the card cost the sensor's thread as much as the read itself
//! (a write syscall and an inode time update each), so a SIGKILL or a power cut now loses
//! at most the last second of capture. The readings themselves are in the store, which has
//! its own durability; the capture is for replaying parsers.
//!
//! Invariants: a capture holds exactly the bytes read from the port, in order, with nothing
//! added (a UBX capture must stay a valid byte stream); a capture failure (full card,
//! removed directory) is logged and never stops the sensor.

use std::fs::{self, File, OpenOptions};
use std::io::{self, Write};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use crate::config::CaptureConfig;

/// The longest captured bytes wait in memory before they are written.
pub const WRITE_EVERY: Duration = Duration::from_secs(1);

/// Gathered bytes are written once they reach this size, whatever their age.
pub const WRITE_AT_BYTES: usize = 16 * 1024;

/// Why a capture file could not be written.
#[derive(Debug, thiserror::Error)]
pub enum CaptureError {
    /// Creating, writing or deleting a file failed.
    #[error("capture file {path}: {source}")]
    Io {
        /// The file or directory.
        path: PathBuf,
        /// Why.
        source: io::Error,
    },
}

/// The capture of one serial sensor.
#[derive(Debug)]
pub struct Capture {
    dir: PathBuf,
    sensor: String,
    ext: &'static str,
    max_file_bytes: u64,
    max_files: u32,
    file: Option<File>,
    /// Bytes of the current file, written or gathered.
    written: u64,
    next_index: u64,
    failing: bool,
    /// Bytes for the current file not written yet, and since when the oldest waits.
    gathered: Vec<u8>,
    gathered_since: Option<Instant>,
}

impl Capture {
    /// Capturing `sensor`'s bytes as `ext` (`nmea`, `ubx`, `cosmicwatch`) per `config`.
    pub fn new(config: &CaptureConfig, sensor: &str, ext: &'static str) -> Self {
        let mut capture = Capture {
            dir: config.dir.clone(),
            sensor: sensor.to_string(),
            ext,
            // A zero limit would rotate at every write; one byte is the least that works.
            max_file_bytes: config.max_file_bytes.max(1),
            max_files: config.max_files.max(1),
            file: None,
            written: 0,
            next_index: 0,
            failing: false,
            gathered: Vec::new(),
            gathered_since: None,
        };
        capture.next_index = capture
            .existing()
            .last()
            .map_or(0, |(i, _)| i.saturating_add(1));
        capture
    }

    /// This sensor's capture files in the directory, oldest (lowest index) first.
    pub fn existing(&self) -> Vec<(u64, PathBuf)> {
        let prefix = format!("{}.", self.sensor);
        let suffix = format!(".{}", self.ext);
        let mut files: Vec<(u64, PathBuf)> = fs::read_dir(&self.dir)
            .into_iter()
            .flatten()
            .filter_map(Result::ok)
            .filter_map(|e| {
                let name = e.file_name().into_string().ok()?;
                let index = name.strip_prefix(&prefix)?.strip_suffix(&suffix)?;
                Some((index.parse().ok()?, e.path()))
            })
            .collect();
        files.sort();
        files
    }

    fn path_of(&self, index: u64) -> PathBuf {
        self.dir
            .join(format!("{}.{index:06}.{}", self.sensor, self.ext))
    }

    /// Appends `bytes` (logging, not returning, a failure: capture never stops a sensor).
    pub fn write(&mut self, bytes: &[u8]) {
        let result = self.try_write(bytes);
        self.outcome(result);
    }

    /// Writes what was gathered (a device's close; the drop does it too).
    pub fn flush(&mut self) {
        let result = self.write_gathered();
        self.outcome(result);
    }

    fn outcome(&mut self, result: Result<(), CaptureError>) {
        match result {
            Ok(()) => self.failing = false,
            Err(e) => {
                // One warning per failing spell, not one per read.
                if !self.failing {
                    tracing::warn!(sensor = %self.sensor, error = %e, "Raw capture failed; retrying with the next bytes.");
                }
                self.failing = true;
                self.file = None;
            }
        }
    }

    fn try_write(&mut self, bytes: &[u8]) -> Result<(), CaptureError> {
        if bytes.is_empty() {
            return Ok(());
        }
        if self.file.is_none() || self.written >= self.max_file_bytes {
            self.write_gathered()?;
            self.rotate()?;
        }
        self.gathered.extend_from_slice(bytes);
        self.written = self.written.saturating_add(bytes.len() as u64);
        let since = *self.gathered_since.get_or_insert_with(Instant::now);
        if self.gathered.len() >= WRITE_AT_BYTES || since.elapsed() >= WRITE_EVERY {
            self.write_gathered()?;
        }
        Ok(())
    }

    /// Writes the gathered bytes to the current file. On failure they are dropped (the
    /// file is reopened with the next bytes), so memory stays bounded on a dead card.
    fn write_gathered(&mut self) -> Result<(), CaptureError> {
        self.gathered_since = None;
        if self.gathered.is_empty() {
            return Ok(());
        }
        let path = self.path_of(self.next_index.saturating_sub(1));
        let result = match self.file.as_mut() {
            Some(file) => file
                .write_all(&self.gathered)
                .map_err(|source| CaptureError::Io { path, source }),
            None => Ok(()),
        };
        self.gathered.clear();
        result
    }

    fn rotate(&mut self) -> Result<(), CaptureError> {
        self.file = None;
        fs::create_dir_all(&self.dir).map_err(|source| CaptureError::Io {
            path: self.dir.clone(),
            source,
        })?;
        let path = self.path_of(self.next_index);
        let file = OpenOptions::new()
            .create(true)
            .append(true)
            .open(&path)
            .map_err(|source| CaptureError::Io {
                path: path.clone(),
                source,
            })?;
        tracing::debug!(sensor = %self.sensor, file = %path.display(), "Raw capture file opened.");
        self.file = Some(file);
        self.written = 0;
        self.next_index = self.next_index.saturating_add(1);
        let files = self.existing();
        let excess = files.len().saturating_sub(self.max_files as usize);
        for (_, old) in files.into_iter().take(excess) {
            remove(&old)?;
        }
        Ok(())
    }
}

impl Drop for Capture {
    fn drop(&mut self) {
        self.flush();
    }
}

fn remove(path: &Path) -> Result<(), CaptureError> {
    match fs::remove_file(path) {
        Ok(()) => Ok(()),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(()),
        Err(source) => Err(CaptureError::Io {
            path: path.to_path_buf(),
            source,
        }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config(dir: &Path, max_file_bytes: u64, max_files: u32) -> CaptureConfig {
        CaptureConfig {
            dir: dir.to_path_buf(),
            max_file_bytes,
            max_files,
        }
    }

    #[test]
    fn bytes_are_kept_in_order_across_rotations_and_only_the_newest_files_stay() {
        let dir = tempfile::tempdir().expect("a temporary directory");
        let mut capture = Capture::new(&config(dir.path(), 10, 3), "gps", "nmea");
        let all: Vec<u8> = (0u8..100).collect();
        for chunk in all.chunks(7) {
            capture.write(chunk);
        }
        capture.flush();
        let files = capture.existing();
        assert_eq!(files.len(), 3);
        let kept: Vec<u8> = files
            .iter()
            .flat_map(|(_, p)| fs::read(p).expect("readable"))
            .collect();
        // Whole writes go to one file, so a file may exceed the limit by one write.
        assert!(all.ends_with(&kept), "the newest bytes, in order");
        assert!(kept.len() >= 20);
        let names: Vec<String> = files
            .iter()
            .filter_map(|(_, p)| p.file_name()?.to_str().map(String::from))
            .collect();
        assert!(
            names
                .iter()
                .all(|n| n.starts_with("gps.") && n.ends_with(".nmea"))
        );
    }

    #[test]
    fn a_new_capture_continues_after_the_previous_runs_files() {
        let dir = tempfile::tempdir().expect("a temporary directory");
        let mut first = Capture::new(&config(dir.path(), 1_000, 10), "gps", "ubx");
        first.write(b"first run");
        drop(first);
        let mut second = Capture::new(&config(dir.path(), 1_000, 10), "gps", "ubx");
        second.write(b"second run");
        second.flush();
        let files = second.existing();
        assert_eq!(
            files.iter().map(|(i, _)| *i).collect::<Vec<_>>(),
            vec![0, 1]
        );
        assert_eq!(fs::read(&files[0].1).expect("readable"), b"first run");
        assert_eq!(fs::read(&files[1].1).expect("readable"), b"second run");
    }

    #[test]
    fn other_sensors_files_are_neither_counted_nor_deleted() {
        let dir = tempfile::tempdir().expect("a temporary directory");
        fs::write(dir.path().join("cosmic-ray.000000.cosmicwatch"), b"x").expect("writable");
        let mut capture = Capture::new(&config(dir.path(), 1, 1), "gps", "nmea");
        capture.write(b"a");
        capture.write(b"b");
        assert_eq!(capture.existing().len(), 1);
        assert!(dir.path().join("cosmic-ray.000000.cosmicwatch").exists());
    }

    #[test]
    fn bytes_wait_in_memory_until_a_second_passes_a_size_is_reached_or_a_flush() {
        let dir = tempfile::tempdir().expect("a temporary directory");
        let mut capture = Capture::new(&config(dir.path(), 1 << 20, 4), "gps", "ubx");
        let on_disk = |capture: &Capture| -> Vec<u8> {
            capture
                .existing()
                .iter()
                .flat_map(|(_, p)| fs::read(p).expect("readable"))
                .collect()
        };
        capture.write(b"$GNGGA");
        assert_eq!(on_disk(&capture), b"", "gathered, not written");
        std::thread::sleep(WRITE_EVERY + Duration::from_millis(50));
        capture.write(b",1");
        assert_eq!(
            on_disk(&capture),
            b"$GNGGA,1",
            "written once the oldest byte waited"
        );

        let big = vec![b'x'; WRITE_AT_BYTES];
        capture.write(&big);
        assert_eq!(
            on_disk(&capture).len(),
            8 + WRITE_AT_BYTES,
            "written at the size"
        );

        capture.write(b"tail");
        capture.flush();
        assert!(
            on_disk(&capture).ends_with(b"xtail"),
            "written by the flush"
        );
    }

    #[test]
    fn an_unwritable_directory_is_survived() {
        let dir = tempfile::tempdir().expect("a temporary directory");
        let blocker = dir.path().join("not-a-dir");
        fs::write(&blocker, b"").expect("writable");
        let mut capture = Capture::new(&config(&blocker.join("sub"), 10, 2), "gps", "nmea");
        capture.write(b"lost");
        capture.write(b"lost again");
        assert!(capture.existing().is_empty());
    }
}
