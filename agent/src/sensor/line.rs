//! The serial line every serial adapter (u-blox, NMEA, CosmicWatch) reads through: the port
//! opened by its configured path, reads bounded by a timeout and, for receivers that send
//! in bursts, paced ([`super::pacing`]), every byte read copied to the sensor's raw capture,
//! and a close that lets go of the port and writes out the capture.
//!
//! Invariants: the port is opened by its configured path at every [`SerialLine::open`], so
//! a `/dev/serial/by-id/...` symlink follows a re-enumerated adapter; a read that times out
//! is not an error, a port that closed or failed is [`DeviceError::Lost`]; the bytes a read
//! returns are in the capture before the adapter parses them.

use std::io::Read;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use aloft_sensors::serial::{self, LineError, Port};

use super::DeviceError;
use super::capture::Capture;
use super::pacing::ReadPacing;

/// One serial port of a device, closed until [`SerialLine::open`].
#[derive(Debug)]
pub(crate) struct SerialLine {
    path: PathBuf,
    baud: u32,
    read_timeout: Duration,
    port: Option<Port>,
    buf: Vec<u8>,
    pacing: Option<ReadPacing>,
    capture: Option<Capture>,
}

impl SerialLine {
    /// The port at `path` and `baud`, each read waiting at most `read_timeout` and
    /// returning at most `buf_len` bytes; unpaced, without a capture.
    pub(crate) fn new(path: PathBuf, baud: u32, read_timeout: Duration, buf_len: usize) -> Self {
        SerialLine {
            path,
            baud,
            read_timeout,
            port: None,
            buf: vec![0; buf_len],
            pacing: None,
            capture: None,
        }
    }

    /// Pacing the reads for a receiver that sends in bursts (GNSS epochs).
    pub(crate) fn paced(mut self) -> Self {
        self.pacing = Some(ReadPacing::for_baud(self.baud));
        self
    }

    /// Copying every byte read to `capture`.
    pub(crate) fn capture_to(&mut self, capture: Capture) {
        self.capture = Some(capture);
    }

    /// The configured path.
    pub(crate) fn path(&self) -> &Path {
        &self.path
    }

    /// Closes the port if open, opens it again by its path (logging where a symlink points
    /// now) and starts the pacing afresh.
    pub(crate) fn open(&mut self) -> Result<&mut Port, DeviceError> {
        self.close();
        let port = serial::open(&self.path, self.baud, self.read_timeout)
            .map_err(|e| DeviceError::open(&self.path, e))?;
        // A by-id name points at whichever ttyUSBn the adapter got this time.
        let target = std::fs::canonicalize(&self.path).unwrap_or_else(|_| self.path.clone());
        tracing::info!(port = %self.path.display(), device = %target.display(), baud = self.baud, "Serial port opened.");
        if let Some(pacing) = self.pacing.as_mut() {
            pacing.reset();
        }
        Ok(self.port.insert(port))
    }

    /// The open port (for commands to the device), or [`DeviceError::Lost`] if not open.
    pub(crate) fn port(&mut self) -> Result<&mut Port, DeviceError> {
        self.port
            .as_mut()
            .ok_or_else(|| DeviceError::not_open(&self.path))
    }

    /// Reads the port once, after the pacing's wait: the bytes read (already in the
    /// capture), or `None` when the read timed out.
    pub(crate) fn read(&mut self) -> Result<Option<&[u8]>, DeviceError> {
        let Some(port) = self.port.as_mut() else {
            return Err(DeviceError::not_open(&self.path));
        };
        if let Some(pacing) = self.pacing.as_ref() {
            pacing.wait();
        }
        let read = match port.read(&mut self.buf) {
            Ok(0) => {
                let closed =
                    std::io::Error::new(std::io::ErrorKind::UnexpectedEof, "the port closed");
                return Err(DeviceError::lost(&self.path, closed));
            }
            Ok(n) => Some(n),
            Err(e) => match LineError::from_io(&e) {
                LineError::Timeout => None,
                _ => return Err(DeviceError::lost(&self.path, e)),
            },
        };
        if let Some(pacing) = self.pacing.as_mut() {
            pacing.record(read.is_some(), Instant::now());
        }
        let Some(n) = read else {
            return Ok(None);
        };
        let bytes = self.buf.get(..n).unwrap_or_default();
        if let Some(capture) = self.capture.as_mut() {
            capture.write(bytes);
        }
        Ok(Some(bytes))
    }

    /// The burst ended (a GNSS epoch's last sentence): the line is quiet until the next
    /// one, so the next read waits for its first byte, unpaced.
    pub(crate) fn burst_ended(&mut self) {
        if let Some(pacing) = self.pacing.as_mut() {
            pacing.reset();
        }
    }

    /// Lets go of the port and writes out what the capture gathered. Dropping the port
    /// closes it; nothing is written to it first, so a wedged line cannot block the close.
    pub(crate) fn close(&mut self) {
        self.port = None;
        if let Some(capture) = self.capture.as_mut() {
            capture.flush();
        }
    }

    /// The pacing, if the reads are paced.
    #[cfg(test)]
    pub(crate) fn pacing(&self) -> Option<&ReadPacing> {
        self.pacing.as_ref()
    }
}
