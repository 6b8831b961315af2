//! The u-blox GNSS receiver: NMEA and UBX interleaved on one serial port.
//!
//! At every open the receiver is set to its dynamic model (the `dynamic_model` tunable,
//! Airborne <2g unless it says otherwise) and the setting is
//! confirmed by reading it back (the default Portable model drops fixes above 12 000 m or
//! 310 m/s, the glider's ceiling). Every `model_check_every` the model in force is read
//! again: a brown-out reverts the receiver to Portable without closing the port, and only
//! this check notices; the model is then restored and the poll says so in a notice.
//!
//! Invariants: the port is opened by its configured path at every open, so a
//! `/dev/serial/by-id/...` symlink follows a re-enumerated adapter; fixes come from NMEA,
//! or from UBX when `nav_pvt` is on: NAV-PVT, or the legacy NAV-SOL/POSLLH/VELNED/TIMEUTC
//! set of a receiver without it, and HNR-PVT (never NMEA and UBX both, which would double
//! every reading).

use std::path::PathBuf;
use std::time::{Duration, Instant};

use aloft_protocol::{DynamicModel, Reading, SensorDescriptor, SensorId};
use aloft_sensors::gps::ublox;

use super::capture::Capture;
use super::gnss::{FixSource, GnssStream};
use super::line::SerialLine;
use super::{Device, DeviceError, PollOutcome};
use crate::clock::AgentClock;
use crate::config::tunables::{self, Tunables};

/// The default line rate of the receivers the glider carries.
pub const DEFAULT_BAUD: u32 = 115_200;

/// How the adapter talks to the receiver.
#[derive(Debug, Clone, Copy, PartialEq)]
#[non_exhaustive]
pub struct UbloxOptions {
    /// Take fixes from UBX instead of NMEA: NAV-PVT, or the legacy NAV set of a receiver
    /// that has no NAV-PVT, and HNR-PVT.
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

    /// Taking fixes from UBX (NAV-PVT, or the legacy NAV set, and HNR-PVT).
    pub fn with_nav_pvt(mut self, on: bool) -> Self {
        self.nav_pvt = on;
        self
    }
}

/// The adapter.
#[derive(Debug)]
pub struct UbloxDevice {
    id: SensorId,
    options: UbloxOptions,
    clock: AgentClock,
    line: SerialLine,
    gnss: GnssStream,
    last_model_check: Instant,
    /// The dynamic model set at every open and restored by the checks (the
    /// `dynamic_model` tunable; Airborne <2g unless it says otherwise).
    model: DynamicModel,
    /// The receiver's descriptor after a live change of its model, for the supervisor.
    changed_descriptor: Option<SensorDescriptor>,
}

/// A dynamic model as the notices and logs say it.
fn model_words(model: DynamicModel) -> String {
    match model {
        DynamicModel::Airborne2g => "Airborne <2g".to_string(),
        other => format!("{other:?}"),
    }
}

impl UbloxDevice {
    /// The receiver on `path` at `baud`.
    pub fn new(id: SensorId, path: PathBuf, baud: u32, options: UbloxOptions) -> Self {
        UbloxDevice {
            id,
            options,
            clock: AgentClock::new(),
            // What a pacing window can bring at any line rate (pacing.rs).
            line: SerialLine::new(path.clone(), baud, options.read_timeout, 4096).paced(),
            gnss: GnssStream::new(
                if options.nav_pvt {
                    FixSource::Ubx
                } else {
                    FixSource::Nmea
                },
                path,
            ),
            last_model_check: Instant::now(),
            model: DynamicModel::Airborne2g,
            changed_descriptor: None,
        }
    }

    /// Writing the bytes read from the port to `capture`.
    pub fn with_capture(mut self, capture: Capture) -> Self {
        self.line.capture_to(capture);
        self
    }

    /// The replay kind of what this adapter captures: fixes come from UBX or NMEA.
    pub fn capture_kind(&self) -> &'static str {
        if self.options.nav_pvt { "ubx" } else { "nmea" }
    }

    fn check_model(&mut self) -> Result<Option<PollOutcome>, DeviceError> {
        self.last_model_check = Instant::now();
        let timeout = self.options.command_timeout;
        let port = self.line.port()?;
        let model = self.model;
        match ublox::check_dynamic_model(port, timeout) {
            Ok(found) if found == model => Ok(None),
            Ok(found) => {
                tracing::warn!(port = %self.line.path().display(), ?found, wanted = ?model, "GNSS dynamic model reverted, restoring it.");
                let port = self.line.port()?;
                match ublox::configure_dynamic_model(port, model, timeout) {
                    Ok(_) => Ok(Some(PollOutcome::Notice(format!(
                        "dynamic model had reverted to {found:?} (brown-out?); {} restored",
                        model_words(model)
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

    fn lost(&self, e: std::io::Error) -> DeviceError {
        DeviceError::lost(self.line.path(), e)
    }
}

/// The receiver did not take its dynamic model at `open`.
#[derive(Debug, thiserror::Error)]
#[error("dynamic model not confirmed: {0}")]
struct ModelNotConfirmed(#[source] ublox::ConfigError);

impl Device for UbloxDevice {
    fn open(&mut self) -> Result<SensorDescriptor, DeviceError> {
        let port = self.line.open()?;
        let configured =
            ublox::configure_dynamic_model(port, self.model, self.options.command_timeout);
        let info = match configured {
            Ok(info) => info,
            Err(e) => {
                // A receiver that did not take the model is not open.
                self.line.close();
                return Err(DeviceError::Init(Box::new(ModelNotConfirmed(e))));
            }
        };
        self.gnss.reset();
        self.last_model_check = Instant::now();
        Ok(info.to_descriptor())
    }

    fn poll(&mut self, out: &mut Vec<Reading>) -> Result<PollOutcome, DeviceError> {
        self.line.port()?;
        let mut outcome = PollOutcome::Healthy;
        if self.last_model_check.elapsed() >= self.options.model_check_every
            && let Some(o) = self.check_model()?
        {
            outcome = o;
        }
        let Some(bytes) = self.line.read()? else {
            return Ok(outcome);
        };
        let now = self.clock.now();
        let bad = self.gnss.push(bytes, self.id, now, out);
        if self.gnss.between_epochs() {
            self.line.burst_ended();
        }
        if outcome == PollOutcome::Healthy {
            outcome = PollOutcome::counting_bad(bad, "bad sentence(s) or frame(s)");
        }
        Ok(outcome)
    }

    fn close(&mut self) {
        self.line.close();
    }

    fn interval(&self) -> Option<Duration> {
        None
    }

    fn set_tunables(&mut self, tunables: &Tunables) -> Result<(), DeviceError> {
        let model = tunables::dynamic_model(tunables);
        let previous = self.model;
        if model == previous {
            return Ok(());
        }
        self.model = model;
        // Closed: the next open sets it. Open: set and confirmed now, like at an open.
        let timeout = self.options.command_timeout;
        let Ok(port) = self.line.port() else {
            return Ok(());
        };
        match ublox::configure_dynamic_model(port, model, timeout) {
            Ok(info) => {
                tracing::info!(port = %self.line.path().display(), ?model, "GNSS dynamic model changed.");
                self.last_model_check = Instant::now();
                self.changed_descriptor = Some(info.to_descriptor());
                Ok(())
            }
            Err(e) => {
                // The previous model stays the one in force: the next check or open puts
                // the receiver back on it.
                self.model = previous;
                Err(match e {
                    ublox::ConfigError::Io(e) => self.lost(e),
                    e => DeviceError::Init(Box::new(ModelNotConfirmed(e))),
                })
            }
        }
    }

    fn take_descriptor(&mut self) -> Option<SensorDescriptor> {
        self.changed_descriptor.take()
    }

    fn silence_limit(&self) -> Duration {
        // A model check holds the line for up to a few command timeouts.
        self.options
            .silence_limit
            .max(self.options.command_timeout * 3)
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use aloft_protocol::{Quantity, TimeSource};
    use aloft_sensors::flight::Scenario;
    use aloft_sensors::gps::sim::{Outputs, UbloxSim, UbloxSimConfig};
    use aloft_sensors::serial::pty::{PortOptions, SimulatedPort};

    use super::*;

    /// Polls until `fixes` latitude readings came, within a bound.
    fn poll_fixes(device: &mut UbloxDevice, fixes: usize) -> Vec<Reading> {
        let deadline = Instant::now() + Duration::from_secs(20);
        let mut out = Vec::new();
        while out
            .iter()
            .filter(|r: &&Reading| r.quantity == Quantity::Latitude)
            .count()
            < fixes
        {
            assert!(Instant::now() < deadline, "only {out:?}");
            let outcome = device.poll(&mut out).expect("the receiver answers");
            assert_eq!(outcome, PollOutcome::Healthy);
        }
        out
    }

    #[test]
    fn a_receiver_without_nav_pvt_gets_its_legacy_epochs_to_readings_over_a_pty() {
        // Half an hour in: climbing in wave with a fix.
        let scenario = Arc::new(Scenario::new(5, 1_780_000_000_000_000_000));
        let receiver =
            UbloxSim::new(UbloxSimConfig::default().with_outputs(Outputs::LEGACY_NAV_ONLY));
        let baud = receiver.config().baud;
        let port = SimulatedPort::spawn(
            receiver,
            Arc::clone(&scenario),
            PortOptions::new().scenario_offset_s(1800.0),
        )
        .expect("a pty");
        let path = port.path().expect("the receiver is present");
        let mut device = UbloxDevice::new(
            SensorId(2),
            path,
            baud,
            UbloxOptions::default().with_nav_pvt(true),
        );
        assert_eq!(device.capture_kind(), "ubx");
        let descriptor = device.open().expect("the receiver takes its dynamic model");
        assert_eq!(descriptor.dynamic_model, Some(DynamicModel::Airborne2g));
        let out = poll_fixes(&mut device, 10);
        let latitudes: Vec<&Reading> = out
            .iter()
            .filter(|r| r.quantity == Quantity::Latitude)
            .collect();
        for r in &latitudes {
            assert!(r.quality.is_good(), "{r:?}");
            assert_eq!(r.time.source, TimeSource::Gnss);
            let t = (r.time.utc_ns.expect("dated by NAV-TIMEUTC") - scenario.start_utc_ns()) as f64
                / 1e9;
            let truth = scenario.state_at(t);
            // 2.5 m CEP: 30 m is far outside.
            assert!((r.value - truth.latitude_deg).abs() * 111_000.0 < 30.0);
        }
        // One fix per epoch: the epochs' times never repeat.
        let mut times: Vec<i64> = latitudes.iter().filter_map(|r| r.time.utc_ns).collect();
        let n = times.len();
        times.dedup();
        assert_eq!(times.len(), n);
        for q in [
            Quantity::VerticalSpeed,
            Quantity::SatellitesUsed,
            Quantity::Pdop,
        ] {
            assert!(out.iter().any(|r| r.quantity == q), "{q:?}");
        }
        device.close();
        port.stop().expect("clean stop");
    }
}
