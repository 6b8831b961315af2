//! The u-blox GNSS receiver: NMEA and UBX interleaved on one serial port.
//!
//! At every open the receiver is set to the Airborne <2g dynamic model and the setting is
//! confirmed by reading it back (the default Portable model drops fixes above 12 000 m or
//! 310 m/s, the glider's ceiling). Every `model_check_every` the model in force is read
//! again: a brown-out reverts the receiver to Portable without closing the port, and only
//! this check notices; the model is then restored and the poll says so in a notice.
//!
//! Invariants: the port is opened by its configured path at every open, so a
//! `/dev/serial/by-id/...` symlink follows a re-enumerated adapter; fixes come from NMEA,
//! or from NAV-PVT when `nav_pvt` is on (never both, which would double every reading).

use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use aloft_protocol::{DynamicModel, Reading, SensorDescriptor, SensorId};
use aloft_sensors::Sample;
use aloft_sensors::gps::fix::FixAssembler;
use aloft_sensors::gps::framer::{GnssFramer, Item};
use aloft_sensors::gps::ubx::{NavPvt, msg};
use aloft_sensors::gps::{nmea, ublox};
use aloft_sensors::serial::{self, LineError, Port};

use super::capture::Capture;
use super::pacing::ReadPacing;
use super::{Device, DeviceError, PollOutcome};
use crate::clock::AgentClock;

/// The default line rate of the receivers the glider carries.
pub const DEFAULT_BAUD: u32 = 115_200;

/// How the adapter talks to the receiver.
#[derive(Debug, Clone, Copy, PartialEq)]
#[non_exhaustive]
pub struct UbloxOptions {
    /// Take fixes from NAV-PVT instead of NMEA.
    pub nav_pvt: bool,
    /// How often the dynamic model in force is read back.
    pub model_check_every: Duration,
    /// Bound of each wait for an answer to a UBX command.
    pub command_timeout: Duration,
    /// Bound of each read of the port.
    pub read_timeout: Duration,
    /// The longest normal silence of the receiver (see [`Device::silence_limit`]).
    pub silence_limit: Duration,
}

impl Default for UbloxOptions {
    fn default() -> Self {
        UbloxOptions {
            nav_pvt: false,
            // A minute: a brown-out costs at most a minute of Portable-model flight, and the
            // check (two UBX exchanges) is a negligible share of the line.
            model_check_every: Duration::from_secs(60),
            command_timeout: Duration::from_secs(1),
            read_timeout: Duration::from_millis(100),
            // 10 Hz normally, 1 Hz at worst: two seconds without a fix is not normal.
            silence_limit: Duration::from_secs(2),
        }
    }
}

impl UbloxOptions {
    /// Checking the dynamic model every `every`.
    pub fn with_model_check_every(mut self, every: Duration) -> Self {
        self.model_check_every = every;
        self
    }

    /// With this normal silence (tests shorten it to notice a stall quickly).
    pub fn with_silence_limit(mut self, limit: Duration) -> Self {
        self.silence_limit = limit;
        self
    }

    /// Bounding each wait for a UBX answer by `timeout`.
    pub fn with_command_timeout(mut self, timeout: Duration) -> Self {
        self.command_timeout = timeout;
        self
    }

    /// Taking fixes from NAV-PVT.
    pub fn with_nav_pvt(mut self, on: bool) -> Self {
        self.nav_pvt = on;
        self
    }
}

/// Opens a serial port by its configured path, logging where a symlink points now.
pub(crate) fn open_port(path: &Path, baud: u32, timeout: Duration) -> Result<Port, DeviceError> {
    let port = serial::open(path, baud, timeout).map_err(|e| DeviceError::open(path, e))?;
    // A by-id name points at whichever ttyUSBn the adapter got this time.
    let target = std::fs::canonicalize(path).unwrap_or_else(|_| path.to_path_buf());
    tracing::info!(port = %path.display(), device = %target.display(), baud, "Serial port opened.");
    Ok(port)
}

/// Reads the port once: `Ok(None)` when the read timed out.
pub(crate) fn read_port(
    port: &mut Port,
    path: &Path,
    buf: &mut [u8],
) -> Result<Option<usize>, DeviceError> {
    let lost = |source: std::io::Error| DeviceError::Lost {
        path: path.to_path_buf(),
        source,
    };
    match port.read(buf) {
        Ok(0) => Err(lost(std::io::Error::new(
            std::io::ErrorKind::UnexpectedEof,
            "the port closed",
        ))),
        Ok(n) => Ok(Some(n)),
        Err(e) => match LineError::from_io(&e) {
            LineError::Timeout => Ok(None),
            _ => Err(lost(e)),
        },
    }
}

/// The receiver did not take the airborne dynamic model at `open`.
#[derive(Debug, thiserror::Error)]
#[error("dynamic model not confirmed: {0}")]
struct ModelNotConfirmed(#[source] ublox::ConfigError);

/// The adapter.
#[derive(Debug)]
pub struct UbloxDevice {
    id: SensorId,
    path: PathBuf,
    baud: u32,
    options: UbloxOptions,
    clock: AgentClock,
    port: Option<Port>,
    framer: GnssFramer,
    fixes: FixAssembler,
    last_model_check: Instant,
    buf: Vec<u8>,
    pacing: ReadPacing,
    capture: Option<Capture>,
    /// A complete sentence or frame was seen since the open: bytes skipped before it are
    /// the tail of one cut by the open, not line noise.
    synced: bool,
}

impl UbloxDevice {
    /// The receiver on `path` at `baud`.
    pub fn new(id: SensorId, path: PathBuf, baud: u32, options: UbloxOptions) -> Self {
        UbloxDevice {
            id,
            path,
            baud,
            options,
            clock: AgentClock::new(),
            port: None,
            framer: GnssFramer::new(),
            fixes: FixAssembler::new(),
            last_model_check: Instant::now(),
            capture: None,
            synced: false,
            buf: vec![0; 4096],
            pacing: ReadPacing::for_baud(baud),
        }
    }

    /// Writing the bytes read from the port to `capture`.
    pub fn with_capture(mut self, capture: Capture) -> Self {
        self.capture = Some(capture);
        self
    }

    /// The replay kind of what this adapter captures: fixes come from NAV-PVT or NMEA.
    pub fn capture_kind(&self) -> &'static str {
        if self.options.nav_pvt { "ubx" } else { "nmea" }
    }

    fn check_model(&mut self, port: &mut Port) -> Result<Option<PollOutcome>, DeviceError> {
        self.last_model_check = Instant::now();
        let timeout = self.options.command_timeout;
        match ublox::check_dynamic_model(port, timeout) {
            Ok(DynamicModel::Airborne2g) => Ok(None),
            Ok(found) => {
                tracing::warn!(port = %self.path.display(), ?found, "GNSS dynamic model reverted, restoring Airborne <2g.");
                match ublox::configure_dynamic_model(port, DynamicModel::Airborne2g, timeout) {
                    Ok(_) => Ok(Some(PollOutcome::Notice(format!(
                        "dynamic model had reverted to {found:?} (brown-out?); Airborne <2g restored"
                    )))),
                    Err(ublox::ConfigError::Io(e)) => Err(self.lost(e)),
                    Err(e) => Ok(Some(PollOutcome::Degraded(format!(
                        "dynamic model is {found:?} and could not be restored: {e}"
                    )))),
                }
            }
            Err(ublox::ConfigError::Io(e)) => Err(self.lost(e)),
            Err(e) => Ok(Some(PollOutcome::Degraded(format!(
                "dynamic model check failed: {e}"
            )))),
        }
    }

    fn lost(&self, source: std::io::Error) -> DeviceError {
        DeviceError::Lost {
            path: self.path.clone(),
            source,
        }
    }
}

impl Device for UbloxDevice {
    fn open(&mut self) -> Result<SensorDescriptor, DeviceError> {
        self.close();
        let mut port = open_port(&self.path, self.baud, self.options.read_timeout)?;
        let info = ublox::configure_dynamic_model(
            &mut port,
            DynamicModel::Airborne2g,
            self.options.command_timeout,
        )
        .map_err(|e| DeviceError::Init(Box::new(ModelNotConfirmed(e))))?;
        self.framer = GnssFramer::new();
        self.synced = false;
        self.fixes = FixAssembler::new();
        self.last_model_check = Instant::now();
        self.pacing.reset();
        self.port = Some(port);
        Ok(info.to_descriptor())
    }

    fn poll(&mut self, out: &mut Vec<Reading>) -> Result<PollOutcome, DeviceError> {
        let Some(mut port) = self.port.take() else {
            return Err(DeviceError::not_open(&self.path));
        };
        let mut outcome = PollOutcome::Healthy;
        if self.last_model_check.elapsed() >= self.options.model_check_every
            && let Some(o) = self.check_model(&mut port)?
        {
            outcome = o;
        }
        self.pacing.wait();
        let n = read_port(&mut port, &self.path, &mut self.buf)?;
        self.pacing.record(n.is_some(), Instant::now());
        self.port = Some(port);
        let Some(n) = n else { return Ok(outcome) };
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
                Item::Nmea(line) if !self.options.nav_pvt => match nmea::parse(line) {
                    Ok(sentence) => {
                        if let Some(fix) = self.fixes.push(&sentence) {
                            fix.push_readings(self.id, now, out);
                        }
                    }
                    Err(_) => bad += 1,
                },
                Item::Ubx(frame) if self.options.nav_pvt && frame.kind() == msg::NAV_PVT => {
                    match NavPvt::decode(&frame) {
                        Ok(pvt) => pvt.to_fix().push_readings(self.id, now, out),
                        Err(_) => bad += 1,
                    }
                }
                Item::Skipped { bytes, reason } => {
                    tracing::debug!(port = %self.path.display(), bytes, ?reason, "GNSS bytes skipped.");
                    if self.synced {
                        bad += 1;
                    }
                }
                _ => {}
            }
        }
        // The epoch closed at the end of the receiver's cycle: the line is quiet until
        // the next burst, so the next read waits for its first byte, unpaced.
        if self.fixes.between_epochs() && self.framer.pending() == 0 {
            self.pacing.reset();
        }
        if bad > 0 && outcome == PollOutcome::Healthy {
            outcome = PollOutcome::Degraded(format!("{bad} bad sentence(s) or frame(s)"));
        }
        Ok(outcome)
    }

    fn close(&mut self) {
        // Dropping the port closes it; writing nothing first keeps a wedged line from
        // blocking the close.
        if let Some(mut port) = self.port.take() {
            let _ = port.flush();
        }
        if let Some(c) = self.capture.as_mut() {
            c.flush();
        }
    }

    fn interval(&self) -> Option<Duration> {
        None
    }

    fn silence_limit(&self) -> Duration {
        // A model check holds the line for up to a few command timeouts.
        self.options
            .silence_limit
            .max(self.options.command_timeout * 3)
    }
}
