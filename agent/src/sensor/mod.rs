//! The adapters that run each kind of device, and the seams they share.
//!
//! An adapter is a [`Device`]: blocking, driven by one supervisor thread. `open` opens the
//! port or bus, (re-)initialises the device and says what it is; `poll` produces readings;
//! `close` lets go of the port. The supervisor decides when to open, poll, close and
//! restart; adapters never retry on their own, so every retry shows in the sensor's state.
//!
//! - [`ublox`], [`nmea`], [`cosmicwatch`], [`pom`] (the ozone monitor), [`detector`]
//!   (Aloft's own detector front end, framed and reset by command): serial devices,
//!   opened by path at every `open` (a `/dev/serial/by-id/...` symlink is resolved afresh
//!   each time). They share `line` (the port, paced reads, the raw capture, the close)
//!   and the two GNSS adapters `gnss` (framer to fixes); [`pacing`] paces bursts,
//!   [`capture`] records the raw bytes.
//! - [`i2c`]: BME280, MS5611, SCD41, MS4525DO and SPS30 on an I2C bus (Linux i2c-dev, or the
//!   register models).
//! - [`latest`]: the newest value of every (sensor, quantity), which the SCD41 (pressure
//!   compensation) and the MS4525DO (true airspeed) read from other sensors.
//! - [`simulation`]: the simulated flight's devices, built in one place.
//! - [`power`]: the GPIO line that switches a sensor's supply, for hard restarts.
//! - [`wind`]: the derived wind, computed from other sensors' newest readings (no port,
//!   no bus): the same adapter on hardware and in the simulation.
//! - [`slot`]: the wiring place: each configured sensor's [`SensorSlot`] (adapter, power
//!   line, number), assembled the same way for hardware and simulation.
//!
//! The supervisor (`crate::supervisor`) drives what this module builds; nothing here uses
//! the supervisor, so the dependency runs one way.
//!
//! Invariants: an adapter's readings carry the sensor's id; nothing from a device panics the
//! agent (docs/design.md invariant 6): a bad line or CRC is counted and reported as degraded, a
//! vanished port or a NACK is an error the supervisor answers with a restart.

pub mod capture;
pub mod cosmicwatch;
pub mod detector;
pub(crate) mod gnss;
pub mod hosted;
pub mod i2c;
pub mod latest;
pub(crate) mod line;
pub mod mqtt;
pub mod nmea;
pub mod pacing;
pub mod pom;
pub mod power;
pub mod simulation;
pub mod slot;
pub mod ublox;
pub mod wind;

use std::path::{Path, PathBuf};
use std::time::Duration;

use aloft_protocol::{Reading, SensorDescriptor, SensorId};

use crate::config::{SensorConfig, SensorKind};

pub use latest::LatestValues;
pub use slot::{PowerSwitch, SensorSlot};

/// Why a device could not be opened or read. The supervisor closes it and restarts it.
#[derive(Debug, thiserror::Error)]
pub enum DeviceError {
    /// The port or bus could not be opened (missing, busy, no permission).
    #[error("cannot open {path}: {source}")]
    Open {
        /// The port or bus.
        path: PathBuf,
        /// Why.
        source: Box<dyn std::error::Error + Send + Sync>,
    },
    /// The device did not initialise (no answer, wrong chip, rejected configuration).
    #[error("initialisation failed: {0}")]
    Init(#[source] Box<dyn std::error::Error + Send + Sync>),
    /// The port vanished or closed (an unplugged USB adapter).
    #[error("port {path} lost: {source}")]
    Lost {
        /// The port.
        path: PathBuf,
        /// Why.
        source: std::io::Error,
    },
    /// The device answered no more (NACKs, bus errors, stuck conversions).
    #[error("device not answering: {0}")]
    NotAnswering(String),
    /// The config lacks something this kind needs.
    #[error("config: {0}")]
    Config(String),
}

impl DeviceError {
    pub(crate) fn open(
        path: &Path,
        source: impl Into<Box<dyn std::error::Error + Send + Sync>>,
    ) -> Self {
        DeviceError::Open {
            path: path.to_path_buf(),
            source: source.into(),
        }
    }

    /// The port at `path` is not open (polled after a failed open).
    pub(crate) fn not_open(path: &Path) -> Self {
        DeviceError::Lost {
            path: path.to_path_buf(),
            source: std::io::Error::new(std::io::ErrorKind::NotConnected, "not open"),
        }
    }

    pub(crate) fn lost(path: &Path, source: std::io::Error) -> Self {
        DeviceError::Lost {
            path: path.to_path_buf(),
            source,
        }
    }
}

/// What one poll found beside its readings.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PollOutcome {
    /// All well (possibly no reading this time: a serial device between lines).
    Healthy,
    /// Readings flow, with problems (bad lines, CRC failures, a failed model check).
    Degraded(String),
    /// All well, and something an operator should know happened (a brown-out reverted the
    /// GNSS dynamic model and it was restored).
    Notice(String),
}

impl PollOutcome {
    /// `Healthy` when a poll saw nothing bad, else `Degraded` saying how many `what` (bad
    /// lines, sentences, frames) it saw.
    pub(crate) fn counting_bad(bad: u32, what: &str) -> Self {
        if bad > 0 {
            PollOutcome::Degraded(format!("{bad} {what}"))
        } else {
            PollOutcome::Healthy
        }
    }
}

/// One device, driven by its supervisor thread.
pub trait Device: Send {
    /// Opens the port or bus and initialises the device (the soft restart path: BME280
    /// soft reset, SCD41 re-init, u-blox dynamic model). Returns what the device is.
    fn open(&mut self) -> Result<SensorDescriptor, DeviceError>;

    /// Reads what the device has; appends readings to `out`. Blocks at most about
    /// its port's read timeout (serial devices) or one measurement (I2C devices).
    fn poll(&mut self, out: &mut Vec<Reading>) -> Result<PollOutcome, DeviceError>;

    /// Lets go of the port or bus. Called before every reopen and at shutdown.
    fn close(&mut self);

    /// `Some(interval)` for a device sampled on a schedule (I2C); `None` for one that
    /// sends at its own rate (serial), which is polled continuously.
    fn interval(&self) -> Option<Duration>;

    /// Samples every `interval` from the next poll on (the hub's desired state, applied
    /// live without reopening the device). Returns `false`, changing nothing, for a device
    /// that sends at its own rate. The supervisor checks the part's minimum beforehand.
    fn set_interval(&mut self, _interval: Duration) -> bool {
        false
    }

    /// Takes a checked, complete set of the kind's tunables ([`crate::config::tunables::in_force`]): the
    /// adapter keeps it for every later open and, when the device is open, changes the
    /// device now, as the interval does. On an error the adapter keeps its previous set,
    /// which its own checks or the next open put back on the device. A kind that declares
    /// no tunables is given only the empty set.
    fn set_tunables(
        &mut self,
        _tunables: &crate::config::tunables::Tunables,
    ) -> Result<(), DeviceError> {
        Ok(())
    }

    /// The longest silence (no reading) that is normal for this device. The supervisor
    /// calls a longer one degraded, and several times longer a failure to restart from
    /// (a stalled GPS, a wedged adapter).
    fn silence_limit(&self) -> Duration;

    /// A better descriptor learned while running (a CosmicWatch names itself in its boot
    /// header, after the port was opened); recorded like the one from `open`.
    fn take_descriptor(&mut self) -> Option<SensorDescriptor> {
        None
    }

    /// Whether the device can reset itself on request ([`Device::reset_hard`]), so that a
    /// hard restart needs no power line (a front end whose firmware takes a reset command).
    fn resets_itself(&self) -> bool {
        false
    }

    /// A hard restart by the device's own reset, called with the device closed: `Ok` once
    /// it has started again (the next `open` goes on from there), an error when it did not
    /// answer in time, and the supervisor cycles the power line instead.
    fn reset_hard(&mut self) -> Result<(), DeviceError> {
        Err(DeviceError::NotAnswering(
            "the device has no reset of its own".into(),
        ))
    }
}

/// The adapter for one configured sensor on real hardware.
pub fn hardware_device(
    id: SensorId,
    config: &SensorConfig,
    latest: &LatestValues,
) -> Result<Box<dyn Device>, DeviceError> {
    let port = || {
        config
            .port
            .clone()
            .ok_or_else(|| DeviceError::Config(format!("sensor {} needs a port", config.name)))
    };
    Ok(match config.kind {
        SensorKind::Ublox => {
            let device = ublox::UbloxDevice::new(
                id,
                port()?,
                config.baud.unwrap_or(ublox::DEFAULT_BAUD),
                ublox::UbloxOptions::default(),
            );
            let kind = device.capture_kind();
            Box::new(with_capture(
                device,
                config,
                kind,
                ublox::UbloxDevice::with_capture,
            ))
        }
        SensorKind::Nmea => Box::new(with_capture(
            nmea::NmeaDevice::new(id, port()?, config.baud.unwrap_or(nmea::DEFAULT_BAUD)),
            config,
            "nmea",
            nmea::NmeaDevice::with_capture,
        )),
        SensorKind::Cosmicwatch => Box::new(with_capture(
            cosmicwatch::CosmicWatchDevice::new(
                id,
                port()?,
                config.baud.unwrap_or(cosmicwatch::DEFAULT_BAUD),
            ),
            config,
            "cosmicwatch",
            cosmicwatch::CosmicWatchDevice::with_capture,
        )),
        SensorKind::Pom => Box::new(with_capture(
            pom::PomDevice::new(id, port()?, config.baud.unwrap_or(pom::DEFAULT_BAUD)),
            config,
            "pom",
            pom::PomDevice::with_capture,
        )),
        SensorKind::Detector => Box::new(with_capture(
            detector::DetectorDevice::new(
                id,
                port()?,
                config.baud.unwrap_or(detector::DEFAULT_BAUD),
            ),
            config,
            "detector",
            detector::DetectorDevice::with_capture,
        )),
        kind if kind.is_i2c() => i2c::linux_device(id, config, latest)?,
        SensorKind::Wind => Box::new(wind::WindDevice::new(id, config, latest.clone())?),
        SensorKind::Mqtt => Box::new(mqtt::MqttDevice::detached(config)?),
        kind => {
            return Err(DeviceError::Config(format!("no adapter for {kind} yet")));
        }
    })
}

/// Attaches the raw capture the sensor's config asks for, if any.
pub(crate) fn with_capture<T>(
    device: T,
    config: &SensorConfig,
    kind: &'static str,
    attach: fn(T, capture::Capture) -> T,
) -> T {
    match &config.capture {
        Some(c) => attach(device, capture::Capture::new(c, &config.name, kind)),
        None => device,
    }
}

/// Why the hardware sensors could not be set up.
#[derive(Debug, thiserror::Error)]
#[error("sensor {sensor}: {source}")]
pub struct SlotError {
    /// The sensor.
    pub sensor: String,
    /// Why.
    pub source: DeviceError,
}

/// The slots of the configured sensors on real hardware, numbered in config order. A power
/// line that cannot be opened is logged and left out (the sensor runs, and a hard restart
/// of it is refused), so a miswired GPIO never keeps a sensor from reading.
pub fn hardware_slots(
    sensors: &[SensorConfig],
    latest: &LatestValues,
) -> Result<Vec<SensorSlot>, SlotError> {
    slot::assemble(sensors, false, |id, config| {
        let device = hardware_device(id, config, latest).map_err(|source| SlotError {
            sensor: config.name.clone(),
            source,
        })?;
        let line = config.power.as_ref().and_then(|p| {
            match power::GpioPowerLine::open(p) {
                Ok(line) => Some(Box::new(line) as Box<dyn power::PowerLine>),
                Err(e) => {
                    tracing::error!(sensor = %config.name, error = %e, "Power line unusable; hard restarts of this sensor are refused.");
                    None
                }
            }
        });
        Ok((device, line))
    })
}
