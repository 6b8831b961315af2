//! The CosmicWatch muon detector (v2 at 9600 baud, v3X at 115 200): lines into events and a
//! dead-time-corrected count rate.
//!
//! Invariants: the port is opened by its configured path at every open; a bad line is
//! counted and reported as degraded, never fatal; the detector's own descriptor (format and
//! name from its boot header) is handed to the supervisor when the stream learns it.

use std::path::PathBuf;
use std::time::Duration;

use aloft_protocol::{Reading, SensorDescriptor, SensorId};
use aloft_sensors::cosmicwatch::{MuonDetector, StreamItem};
use aloft_sensors::serial::Port;

use super::capture::Capture;
use super::ublox::{open_port, read_port};
use super::{Device, DeviceError, PollOutcome};
use crate::clock::AgentClock;

/// The v2 detector's line rate.
pub const DEFAULT_BAUD: u32 = 9600;

/// Window of the count-rate estimate, s.
const RATE_WINDOW_S: f64 = 60.0;

/// How long a read waits on a quiet line: it returns as soon as bytes arrive, so this only
/// bounds idle wake-ups (two a second) and how soon a stop or restart is seen.
const IDLE_READ_TIMEOUT: Duration = Duration::from_millis(500);

/// The adapter.
#[derive(Debug)]
pub struct CosmicWatchDevice {
    id: SensorId,
    path: PathBuf,
    baud: u32,
    clock: AgentClock,
    port: Option<Port>,
    detector: MuonDetector,
    buf: Vec<u8>,
    capture: Option<Capture>,
    /// A good line was seen since the open: a bad line before it is the tail of one cut
    /// by the open, not line noise.
    synced: bool,
    silence_limit: Duration,
}

impl CosmicWatchDevice {
    /// The detector on `path` at `baud`.
    pub fn new(id: SensorId, path: PathBuf, baud: u32) -> Self {
        CosmicWatchDevice {
            id,
            path,
            baud,
            clock: AgentClock::new(),
            port: None,
            detector: MuonDetector::new(RATE_WINDOW_S),
            capture: None,
            synced: false,
            buf: vec![0; 1024],
            // About one muon per second at sea level, more aloft: 30 s of silence is
            // practically impossible from a live detector.
            silence_limit: Duration::from_secs(30),
        }
    }

    /// Writing the bytes read from the port to `capture`.
    pub fn with_capture(mut self, capture: Capture) -> Self {
        self.capture = Some(capture);
        self
    }

    /// With a shorter or longer normal silence (tests, a very quiet detector).
    pub fn with_silence_limit(mut self, limit: Duration) -> Self {
        self.silence_limit = limit;
        self
    }
}

impl Device for CosmicWatchDevice {
    fn open(&mut self) -> Result<SensorDescriptor, DeviceError> {
        self.close();
        self.port = Some(open_port(&self.path, self.baud, IDLE_READ_TIMEOUT)?);
        // A reopened detector may have rebooted; its header will say so.
        self.detector = MuonDetector::new(RATE_WINDOW_S);
        self.synced = false;
        Ok(SensorDescriptor::new("CosmicWatch muon detector"))
    }

    fn poll(&mut self, out: &mut Vec<Reading>) -> Result<PollOutcome, DeviceError> {
        let Some(port) = self.port.as_mut() else {
            return Err(DeviceError::not_open(&self.path));
        };
        let Some(n) = read_port(port, &self.path, &mut self.buf)? else {
            return Ok(PollOutcome::Healthy);
        };
        let mut bad = 0u32;
        let now = self.clock.now();
        let bytes = self.buf.get(..n).unwrap_or_default();
        if let Some(c) = self.capture.as_mut() {
            c.write(bytes);
        }
        let synced = &mut self.synced;
        self.detector.push_bytes(bytes, self.id, now, out, |item| {
            if matches!(item, StreamItem::Bad(_)) {
                if *synced {
                    bad += 1;
                }
            } else {
                *synced = true;
            }
        });
        Ok(if bad > 0 {
            PollOutcome::Degraded(format!("{bad} bad line(s)"))
        } else {
            PollOutcome::Healthy
        })
    }

    fn close(&mut self) {
        self.port = None;
        if let Some(c) = self.capture.as_mut() {
            c.flush();
        }
    }

    fn interval(&self) -> Option<Duration> {
        None
    }

    fn silence_limit(&self) -> Duration {
        self.silence_limit
    }

    fn take_descriptor(&mut self) -> Option<SensorDescriptor> {
        self.detector.take_new_descriptor()
    }
}
