//! Raw capture: the bytes a serial sensor sent, in rotating files `aloft-agent replay`
//! reads, so a flight can be replayed through the same parsers.
//!
//! Files are `<dir>/<sensor>.<index>.<ext>` (`gps.000042.ubx`, `cosmic-ray.000003.cosmicwatch`),
//! the extension naming the replay kind. A file is rotated once it holds `max_file_bytes`;
//! beyond `max_files` the oldest of this sensor is deleted. Numbering continues after the
//! highest index already in the directory, so a restart of the agent never overwrites the
//! previous flight's capture.
//!
//! Invariants: a capture holds exactly the bytes read from the port, in order, with nothing
//! added (a UBX capture must stay a valid byte stream); a capture failure (full card,
//! removed directory) is logged and never stops the sensor.

use std::fs::{self, File, OpenOptions};
use std::io::{self, Write};
use std::path::{Path, PathBuf};

use crate::config::CaptureConfig;

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
    written: u64,
    next_index: u64,
    failing: bool,
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
        match self.try_write(bytes) {
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
            self.rotate()?;
        }
        let path = self.path_of(self.next_index.saturating_sub(1));
        let Some(file) = self.file.as_mut() else {
            return Ok(());
        };
        file.write_all(bytes)
            .map_err(|source| CaptureError::Io { path, source })?;
        self.written = self.written.saturating_add(bytes.len() as u64);
        Ok(())
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
