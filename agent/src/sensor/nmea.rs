//! Any NMEA 0183 GNSS receiver on a serial port: sentences into one fix per epoch.
//!
//! Invariants: the port is opened by its configured path at every open; a sentence with a
//! bad checksum or an unknown shape is counted and reported as degraded, never fatal.

use std::path::PathBuf;
use std::time::{Duration, Instant};

use aloft_protocol::{Reading, SensorDescriptor, SensorId};
use aloft_sensors::Sample;
use aloft_sensors::gps::fix::FixAssembler;
use aloft_sensors::gps::framer::{GnssFramer, Item};
use aloft_sensors::gps::nmea;
use aloft_sensors::serial::Port;

use super::capture::Capture;
use super::pacing::ReadPacing;
use super::ublox::{open_port, read_port};
use super::{Device, DeviceError, PollOutcome};
use crate::clock::AgentClock;

/// NMEA 0183's standard line rate.
pub const DEFAULT_BAUD: u32 = 4800;

/// How long a read waits on a quiet line: it returns as soon as bytes arrive, so this only
/// bounds idle wake-ups (two a second) and how soon a stop or restart is seen.
const IDLE_READ_TIMEOUT: Duration = Duration::from_millis(500);

/// The adapter.
#[derive(Debug)]
pub struct NmeaDevice {
    id: SensorId,
    path: PathBuf,
    baud: u32,
    clock: AgentClock,
    port: Option<Port>,
    framer: GnssFramer,
    fixes: FixAssembler,
    buf: Vec<u8>,
    pacing: ReadPacing,
    capture: Option<Capture>,
    /// A complete sentence was seen since the open (see the u-blox adapter).
    synced: bool,
}

impl NmeaDevice {
    /// The receiver on `path` at `baud`.
    pub fn new(id: SensorId, path: PathBuf, baud: u32) -> Self {
        NmeaDevice {
            id,
            path,
            baud,
            clock: AgentClock::new(),
            port: None,
            framer: GnssFramer::new(),
            fixes: FixAssembler::new(),
            capture: None,
            synced: false,
            // What a pacing window can bring at any line rate (pacing.rs).
            buf: vec![0; 4096],
            pacing: ReadPacing::for_baud(baud),
        }
    }

    /// Writing the bytes read from the port to `capture`.
    pub fn with_capture(mut self, capture: Capture) -> Self {
        self.capture = Some(capture);
        self
    }
}

impl Device for NmeaDevice {
    fn open(&mut self) -> Result<SensorDescriptor, DeviceError> {
        self.close();
        self.port = Some(open_port(&self.path, self.baud, IDLE_READ_TIMEOUT)?);
        self.framer = GnssFramer::new();
        self.synced = false;
        self.fixes = FixAssembler::new();
        self.pacing.reset();
        Ok(SensorDescriptor::new("NMEA 0183 GNSS receiver"))
    }

    fn poll(&mut self, out: &mut Vec<Reading>) -> Result<PollOutcome, DeviceError> {
        let Some(port) = self.port.as_mut() else {
            return Err(DeviceError::Lost {
                path: self.path.clone(),
                message: "not open".into(),
            });
        };
        self.pacing.wait();
        let read = read_port(port, &self.path, &mut self.buf)?;
        self.pacing.record(read.is_some(), Instant::now());
        let Some(n) = read else {
            return Ok(PollOutcome::Healthy);
        };
        let bytes = self.buf.get(..n).unwrap_or_default();
        if let Some(c) = self.capture.as_mut() {
            c.write(bytes);
        }
        self.framer.push(bytes);
        let now = self.clock.now();
        let mut bad = 0u32;
        while let Some(item) = self.framer.next_item() {
            if !matches!(item, Item::Skipped { .. }) {
                self.synced = true;
            }
            match item {
                Item::Nmea(line) => match nmea::parse(line) {
                    Ok(sentence) => {
                        if let Some(fix) = self.fixes.push(&sentence) {
                            fix.push_readings(self.id, now, out);
                        }
                    }
                    Err(_) => bad += 1,
                },
                Item::Skipped { .. } if self.synced => bad += 1,
                _ => {}
            }
        }
        Ok(if bad > 0 {
            PollOutcome::Degraded(format!("{bad} bad sentence(s)"))
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
        // 1 Hz receivers are common; three missed epochs is not normal.
        Duration::from_secs(3)
    }
}
