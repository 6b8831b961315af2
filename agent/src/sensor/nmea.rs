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
            return Err(DeviceError::not_open(&self.path));
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
        // The epoch closed at the end of the receiver's cycle: the line is quiet until
        // the next burst, so the next read waits for its first byte, unpaced.
        if self.fixes.between_epochs() && self.framer.pending() == 0 {
            self.pacing.reset();
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

#[cfg(test)]
mod tests {
    use std::io::Write;
    use std::time::Instant;

    use nix::fcntl::OFlag;

    use super::*;

    /// One epoch of a receiver whose cycle ends in GLL, at second `s`.
    fn epoch(s: u8) -> String {
        [
            format!("GPRMC,1200{s:02}.00,A,4404.14063,N,12118.85478,W,50.0,,180325,,,A"),
            format!("GPGGA,1200{s:02}.00,4404.14063,N,12118.85478,W,1,08,0.9,9500.0,M,10.0,M,,"),
            "GPGSA,A,3,01,11,31,,,,,,,,,,1.5,0.9,1.2".to_owned(),
            format!("GPGLL,4404.14063,N,12118.85478,W,1200{s:02}.00,A,A"),
        ]
        .map(|b| aloft_sensors::gps::nmea::encode::finish(&b))
        .concat()
    }

    #[test]
    fn the_read_after_an_epochs_last_sentence_is_not_paced() {
        let master = nix::pty::posix_openpt(OFlag::O_RDWR | OFlag::O_NOCTTY).expect("a pty");
        nix::pty::grantpt(&master).expect("grantpt");
        nix::pty::unlockpt(&master).expect("unlockpt");
        let path = PathBuf::from(nix::pty::ptsname_r(&master).expect("its name"));
        let mut receiver = std::fs::File::from(std::os::fd::OwnedFd::from(master));
        let mut device = NmeaDevice::new(SensorId(0), path, 115_200);
        device.open().expect("opens");
        let mut out = Vec::new();
        let mut poll_until_fixes = |device: &mut NmeaDevice, fixes: usize| {
            let deadline = Instant::now() + Duration::from_secs(5);
            while out
                .iter()
                .filter(|r: &&Reading| r.quantity == aloft_protocol::Quantity::Latitude)
                .count()
                < fixes
            {
                assert!(Instant::now() < deadline, "no fix from the pty");
                device.poll(&mut out).expect("polls");
            }
        };
        // The first epoch teaches the cycle (its fix comes with the second's RMC); the
        // second's GLL closes it, and the reader stops pacing until the next burst.
        receiver.write_all(epoch(0).as_bytes()).expect("written");
        receiver.write_all(epoch(1).as_bytes()).expect("written");
        poll_until_fixes(&mut device, 2);
        assert!(device.fixes.between_epochs());
        assert_eq!(device.pacing.delay_at(Instant::now()), Duration::ZERO);
        // Mid-epoch (the RMC and part of the GGA), a read with data paces the next.
        let third = epoch(2);
        let gga_at = third
            .match_indices('$')
            .nth(1)
            .map(|(i, _)| i)
            .expect("two lines");
        receiver
            .write_all(&third.as_bytes()[..gga_at + 10])
            .expect("written");
        while device.framer.pending() == 0 {
            device.poll(&mut out).expect("polls");
        }
        assert!(!device.fixes.between_epochs());
        assert!(device.pacing.delay_at(Instant::now()) > Duration::ZERO);
    }
}
