//! The I2C devices: BME280, MS5611, SCD41, MS4525DO, SPS30 and the ICM-20948 IMU, on a
//! Linux i2c-dev bus or on the register models of the simulated flight.
//!
//! One [`I2cDevice`] per sensor, generic over the bus and delay it gets from its
//! [`BusOpener`], so the same code reads hardware and simulators. `open` reopens the bus and
//! runs the driver's `init`, which is each device's soft restart (BME280 soft reset and
//! trim, MS5611 reset and PROM, SCD41 re-init, MS4525DO first read).
//!
//! The MS5611 runs its next pressure conversion between polls and converts the
//! temperature every third poll ([`aloft_sensors::ms5611::pipeline`]): its pressure is
//! stamped when the conversion started, one interval before the poll that reads it.
//!
//! The ICM-20948 is drained once per interval (its FIFO holds the samples between polls)
//! and its frames feed the attitude filter, which the MS4525DO's true airspeed compensates
//! in turns; roll, pitch and heading come out at the output rate its tunables set.
//!
//! Invariants: a single NACK or CRC failure is survived and reported as degraded; only
//! [`FAILURES_BEFORE_RESTART`] consecutive failed measurements hand the device back to the
//! supervisor for a restart; the SCD41's compensation and the MS4525DO's true airspeed use
//! the newest values of the sensors their config names, never older than
//! [`MAX_INPUT_AGE`].

use std::fmt;
use std::path::PathBuf;
use std::time::Duration;

use aloft_protocol::{Quality, Quantity, Reading, SensorDescriptor, SensorId, Timestamp};
use aloft_sensors::Sample;
use aloft_sensors::bme280::{self, Bme280, Oversampling};
use aloft_sensors::icm20948::fusion::{Ahrs, Speed};
use aloft_sensors::icm20948::{self, Icm20948};
use aloft_sensors::ms4525do::{self, Ms4525do, OutsideAir};
use aloft_sensors::ms5611::Ms5611;
use aloft_sensors::ms5611::pipeline::Pipeline;
use aloft_sensors::sbs::{self, Sbs};
use aloft_sensors::scd41::{self, Scd41};
use aloft_sensors::sps30::{self, OperatingAir, Sps30};
use embedded_hal::delay::DelayNs;
use embedded_hal::i2c::I2c;

use super::{Device, DeviceError, LatestValues, PollOutcome};
use crate::clock::AgentClock;
use crate::config::tunables::{self, Tunables};
use crate::config::{SensorConfig, SensorKind};

/// Consecutive failed measurements after which the device is restarted.
pub const FAILURES_BEFORE_RESTART: u32 = 3;

/// The oldest value of another sensor that compensation or true airspeed may use.
pub const MAX_INPUT_AGE: Duration = Duration::from_secs(10);

/// Opens the bus afresh and gives the delay the driver waits with.
pub type BusOpener<I2C, D> = Box<dyn FnMut() -> Result<(I2C, D), DeviceError> + Send>;

/// Runs before every measurement (the simulation moves its register models to the
/// flight's present state).
pub type BeforeMeasure = Box<dyn FnMut() + Send>;

enum Driver<I2C, D> {
    Bme280(Bme280<I2C>, D),
    /// With its conversions running between polls (the pipeline's module says why).
    Ms5611(Ms5611<I2C>, D, Pipeline),
    Scd41(Scd41<I2C, D>),
    Ms4525do(Ms4525do<I2C, D>),
    Sps30(Sps30<I2C, D>),
    /// With the attitude filter its FIFO's frames feed.
    Icm20948(Icm20948<I2C>, D, Box<AttitudeFilter>),
    /// A smart battery: SMBus reads need no waits.
    Sbs(Sbs<I2C>),
}

/// ICM-20948: the settings its tunables make, kept across reopens.
#[derive(Debug, Clone, Copy, PartialEq)]
struct AttitudeSettings {
    imu: icm20948::Config,
    output_rate_hz: f64,
    declination_deg: f64,
}

impl Default for AttitudeSettings {
    fn default() -> Self {
        AttitudeSettings {
            imu: icm20948::Config::default(),
            output_rate_hz: 4.0,
            declination_deg: icm20948::fusion::DECLINATION_DEG,
        }
    }
}

/// ICM-20948: the fusion between drains (it starts afresh at every open: a restarted part
/// is not trusted until the filter has converged again).
struct AttitudeFilter {
    ahrs: Ahrs,
    /// Seconds of samples since the last output.
    since_output_s: f64,
    /// A sample since the last output sat at a range's rail.
    saturated: bool,
}

impl AttitudeFilter {
    fn new(declination_deg: f64) -> Self {
        AttitudeFilter {
            ahrs: Ahrs::new(declination_deg),
            since_output_s: 0.0,
            saturated: false,
        }
    }
}

/// Empty drains in a row that mean a stalled FIFO: four sample periods' worth, at least
/// the driver's minimum (polls faster than the samples come see empty drains in between).
fn stalled_drains(interval: Duration, imu: &icm20948::Config) -> u32 {
    let period_s = 1.0 / imu.fifo_rate_hz();
    let polls = (4.0 * period_s / interval.as_secs_f64().max(1e-3)).ceil();
    if polls.is_finite() && polls > 0.0 {
        polls.min(1000.0) as u32
    } else {
        icm20948::STALLED_DRAINS
    }
}

/// `time` moved `back_s` seconds into the past.
fn earlier(time: Timestamp, back_s: f64) -> Timestamp {
    let ns = (back_s.max(0.0) * 1e9) as u64;
    Timestamp {
        mono_ns: time.mono_ns.saturating_sub(ns),
        utc_ns: time
            .utc_ns
            .map(|u| u.saturating_sub(i64::try_from(ns).unwrap_or(i64::MAX))),
        source: time.source,
    }
}

/// Where an I2C sensor's inputs from other sensors come from.
#[derive(Debug, Clone, Default)]
pub struct Inputs {
    /// SCD41: the sensor whose pressure compensates CO2.
    pub ambient_pressure_from: Option<String>,
    /// MS4525DO: the sensor whose pressure is the static pressure.
    pub static_pressure_from: Option<String>,
    /// MS4525DO: the sensor whose temperature is the outside air temperature; SPS30: the
    /// sensor whose temperature is checked against the operating range.
    pub outside_air_from: Option<String>,
    /// ICM-20948: the sensor whose true airspeed compensates turns.
    pub airspeed_from: Option<String>,
    /// ICM-20948: the GNSS receiver whose velocity it may use.
    pub ground_velocity_from: Option<String>,
}

impl Inputs {
    /// The inputs a sensor's config names.
    pub fn from_config(config: &SensorConfig) -> Self {
        Inputs {
            ambient_pressure_from: config.ambient_pressure_from.clone(),
            static_pressure_from: config.static_pressure_from.clone(),
            outside_air_from: config.outside_air_from.clone(),
            airspeed_from: config.airspeed_from.clone(),
            ground_velocity_from: config.ground_velocity_from.clone(),
        }
    }
}

/// One I2C sensor.
pub struct I2cDevice<I2C, D> {
    id: SensorId,
    kind: SensorKind,
    address: u8,
    interval: Duration,
    open_bus: BusOpener<I2C, D>,
    before_measure: Option<BeforeMeasure>,
    driver: Option<Driver<I2C, D>>,
    inputs: Inputs,
    latest: LatestValues,
    clock: AgentClock,
    consecutive_failures: u32,
    /// BME280: the measurement settings its tunables make, kept across reopens.
    bme280: bme280::Config,
    /// ICM-20948: the settings its tunables make, kept across reopens.
    attitude: AttitudeSettings,
    /// A descriptor that changed while open (new settings), for the supervisor to record.
    changed_descriptor: Option<SensorDescriptor>,
    /// SPS30: the auto-cleaning interval its tunables ask for, s, kept across reopens.
    sps30_cleaning_s: Option<u32>,
    /// What the last measurement reported that readings flow despite (an SPS30's status).
    degraded: Option<String>,
}

impl<I2C, D> fmt::Debug for I2cDevice<I2C, D> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("I2cDevice")
            .field("id", &self.id)
            .field("kind", &self.kind)
            .field("address", &self.address)
            .field("interval", &self.interval)
            .field("open", &self.driver.is_some())
            .finish_non_exhaustive()
    }
}

/// The BME280 oversampling of a factor its tunables accept.
fn oversampling(factor: i64) -> Option<Oversampling> {
    Some(match factor {
        1 => Oversampling::X1,
        2 => Oversampling::X2,
        4 => Oversampling::X4,
        8 => Oversampling::X8,
        16 => Oversampling::X16,
        _ => return None,
    })
}

impl<I2C, D> I2cDevice<I2C, D>
where
    I2C: I2c + Send,
    D: DelayNs + Send,
{
    /// A sensor of `kind` at `address`, sampled every `interval`, on the bus `open_bus`
    /// opens.
    #[allow(clippy::too_many_arguments)]
    pub fn new(
        id: SensorId,
        kind: SensorKind,
        address: u8,
        interval: Duration,
        open_bus: BusOpener<I2C, D>,
        inputs: Inputs,
        latest: LatestValues,
    ) -> Result<Self, DeviceError> {
        if !kind.is_i2c() {
            return Err(DeviceError::Config(format!(
                "{} is not an I2C device",
                kind.as_str()
            )));
        }
        Ok(I2cDevice {
            id,
            kind,
            address,
            interval,
            open_bus,
            before_measure: None,
            driver: None,
            inputs,
            latest,
            clock: AgentClock::new(),
            consecutive_failures: 0,
            bme280: bme280::Config::default(),
            attitude: AttitudeSettings::default(),
            changed_descriptor: None,
            sps30_cleaning_s: None,
            degraded: None,
        })
    }

    /// Running `hook` before every measurement.
    pub fn with_before_measure(mut self, hook: BeforeMeasure) -> Self {
        self.before_measure = Some(hook);
        self
    }

    fn input(
        &self,
        from: Option<&String>,
        quantity: Quantity,
        now_ns: u64,
    ) -> Option<(f64, aloft_protocol::Quality)> {
        let from = from?;
        self.latest
            .get(from, quantity, now_ns, MAX_INPUT_AGE)
            .map(|v| (v.value, v.quality))
    }

    /// One measurement: readings appended, or the driver's error in words and whether it
    /// is a failure (not merely "no new data").
    fn measure(&mut self, out: &mut Vec<Reading>) -> Result<(), Option<String>> {
        let now = self.clock.now();
        let pressure_for_co2 = self.input(
            self.inputs.ambient_pressure_from.as_ref(),
            Quantity::AirPressure,
            now.mono_ns,
        );
        let static_pressure = self.input(
            self.inputs.static_pressure_from.as_ref(),
            Quantity::AirPressure,
            now.mono_ns,
        );
        let outside_air = self.input(
            self.inputs.outside_air_from.as_ref(),
            Quantity::AirTemperature,
            now.mono_ns,
        );
        let operating_air = match (&self.inputs.outside_air_from, outside_air) {
            (None, _) => OperatingAir::NotConfigured,
            (Some(_), Some((temperature_k, quality))) => OperatingAir::Known {
                temperature_k,
                quality,
            },
            (Some(_), None) => OperatingAir::Stale,
        };
        let airspeed = self.input(
            self.inputs.airspeed_from.as_ref(),
            Quantity::TrueAirspeed,
            now.mono_ns,
        );
        let output_rate_hz = self.attitude.output_rate_hz;
        let id = self.id;
        let clock = &self.clock;
        let Some(driver) = self.driver.as_mut() else {
            return Err(Some("not open".into()));
        };
        match driver {
            Driver::Bme280(d, delay) => match d.measure(delay) {
                Ok(m) => m.push_readings(id, now, out),
                Err(e) => return Err(Some(e.to_string())),
            },
            Driver::Ms5611(d, delay, pipeline) => {
                match pipeline.measure(d, delay, &mut || clock.now()) {
                    Ok(sampled) => sampled.push_readings(id, out),
                    Err(e) => return Err(Some(e.to_string())),
                }
            }
            Driver::Scd41(d) => {
                if let Some((p, _)) = pressure_for_co2
                    && let Err(e) = d.set_ambient_pressure(p)
                {
                    return Err(Some(format!("pressure compensation: {e}")));
                }
                match d.measurement() {
                    Ok(m) => m.push_readings(id, now, out),
                    Err(scd41::Error::NotReady) => return Err(None),
                    Err(e) => return Err(Some(e.to_string())),
                }
            }
            Driver::Ms4525do(d) => {
                let air = static_pressure
                    .zip(outside_air)
                    .map(|((p, pq), (t, tq))| OutsideAir {
                        static_pressure_pa: p,
                        temperature_k: t,
                        quality: pq | tq,
                    });
                let measured = match air {
                    Some(air) => d.measure_with_outside_air(air),
                    None => d.measure(),
                };
                match measured {
                    Ok(m) => m.push_readings(id, now, out),
                    Err(e) => return Err(Some(e.to_string())),
                }
            }
            Driver::Sps30(d) => match d.measurement(operating_air) {
                Ok(m) => {
                    m.push_readings(id, now, out);
                    if m.status.0 != 0 {
                        self.degraded = Some(format!("SPS30 status: {}", m.status.describe()));
                    }
                }
                // None each second it has nothing new, and for the 10 s of a fan cleaning.
                Err(sps30::Error::NotReady) => return Err(None),
                Err(e) => return Err(Some(e.to_string())),
            },
            Driver::Icm20948(d, _, filter) => {
                let die_k = d.die_temperature_k().map_err(|e| Some(e.to_string()))?;
                let drain = d.drain().map_err(|e| Some(e.to_string()))?;
                // A flagged airspeed is no better than none for the turn compensation
                // (the fusion module says why the ground speed is no stand-in).
                let speed = match airspeed {
                    Some((tas, q))
                        if !q.contains(Quality::INVALID) && !q.contains(Quality::OUT_OF_RANGE) =>
                    {
                        Speed::True(tas)
                    }
                    _ => Speed::Unknown,
                };
                let (low, high) = icm20948::RATED_TEMPERATURE_K;
                let too_hot_or_cold = !(low..=high).contains(&die_k);
                let dt = 1.0 / d.config().fifo_rate_hz();
                let period = 1.0 / output_rate_hz.max(0.1);
                let n = drain.frames.len();
                for (i, frame) in drain.frames.iter().enumerate() {
                    filter.ahrs.update(frame, dt, speed);
                    filter.saturated |= frame.saturated;
                    filter.since_output_s += dt;
                    if filter.since_output_s + dt / 2.0 < period {
                        continue;
                    }
                    filter.since_output_s = (filter.since_output_s - period).max(0.0);
                    let e = filter.ahrs.estimate();
                    let mut quality = Quality::GOOD;
                    if !e.converged {
                        quality |= Quality::INVALID;
                    }
                    if !e.turn_compensated {
                        quality |= Quality::DEGRADED_INPUT;
                    }
                    if filter.saturated || too_hot_or_cold {
                        quality |= Quality::OUT_OF_RANGE;
                    }
                    filter.saturated = false;
                    let time = earlier(now, (n - 1 - i) as f64 * dt);
                    for (quantity, value) in [
                        (Quantity::PlatformRoll, e.roll_deg),
                        (Quantity::PlatformPitch, e.pitch_deg),
                        (Quantity::PlatformYaw, e.heading_deg),
                        (Quantity::AttitudeAccuracy, e.attitude_sigma_deg),
                        (Quantity::HeadingAccuracy, e.heading_sigma_deg),
                    ] {
                        out.push(Reading {
                            sensor: id,
                            quantity,
                            time,
                            value,
                            quality,
                        });
                    }
                }
            }
            Driver::Sbs(d) => match d.measure() {
                Ok(m) => m.push_readings(id, now, out),
                Err(e) => return Err(Some(e.to_string())),
            },
        }
        Ok(())
    }
}

impl<I2C, D> Device for I2cDevice<I2C, D>
where
    I2C: I2c + Send,
    I2C::Error: Send + Sync + 'static,
    D: DelayNs + Send,
{
    fn open(&mut self) -> Result<SensorDescriptor, DeviceError> {
        self.close();
        self.consecutive_failures = 0;
        let (bus, mut delay) = (self.open_bus)()?;
        if let Some(hook) = self.before_measure.as_mut() {
            hook();
        }
        let (driver, descriptor) = match self.kind {
            SensorKind::Bme280 => {
                let mut d = Bme280::with_config(bus, self.address, self.bme280);
                d.init(&mut delay)
                    .map_err(|e| DeviceError::Init(Box::new(e)))?;
                let descriptor = d.descriptor();
                (Driver::Bme280(d, delay), descriptor)
            }
            SensorKind::Ms5611 => {
                let mut d = Ms5611::new(bus, self.address);
                d.init(&mut delay)
                    .map_err(|e| DeviceError::Init(Box::new(e)))?;
                let descriptor = d.descriptor();
                (Driver::Ms5611(d, delay, Pipeline::new()), descriptor)
            }
            SensorKind::Scd41 => {
                let mut d = Scd41::new(bus, delay);
                d.init().map_err(|e| DeviceError::Init(Box::new(e)))?;
                let descriptor = d.descriptor();
                (Driver::Scd41(d), descriptor)
            }
            SensorKind::Ms4525do => {
                let defaults = ms4525do::Config::default();
                let config =
                    ms4525do::Config::new(self.address, defaults.output_type, defaults.range);
                let mut d = Ms4525do::new(bus, delay, config);
                d.init().map_err(|e| DeviceError::Init(Box::new(e)))?;
                let descriptor = d.descriptor();
                (Driver::Ms4525do(d), descriptor)
            }
            SensorKind::Sps30 => {
                let mut d =
                    Sps30::new(bus, delay).with_auto_cleaning_interval(self.sps30_cleaning_s);
                d.init().map_err(|e| DeviceError::Init(Box::new(e)))?;
                let descriptor = d.descriptor();
                (Driver::Sps30(d), descriptor)
            }
            SensorKind::Icm20948 => {
                let mut d = Icm20948::new(bus, self.address, self.attitude.imu);
                d.init(&mut delay)
                    .map_err(|e| DeviceError::Init(Box::new(e)))?;
                d.set_stalled_drains(stalled_drains(self.interval, &self.attitude.imu));
                let descriptor = d
                    .descriptor()
                    .with_integer("output_rate_hz", self.attitude.output_rate_hz as i64)
                    .with_integer("declination_deg", self.attitude.declination_deg as i64);
                (
                    Driver::Icm20948(
                        d,
                        delay,
                        Box::new(AttitudeFilter::new(self.attitude.declination_deg)),
                    ),
                    descriptor,
                )
            }
            SensorKind::Sbs => {
                let mut d = Sbs::new(bus, sbs::Config::new(self.address, true));
                d.init().map_err(|e| DeviceError::Init(Box::new(e)))?;
                let descriptor = d.descriptor();
                (Driver::Sbs(d), descriptor)
            }
            kind if !kind.is_i2c() => {
                return Err(DeviceError::Config("not an I2C device".into()));
            }
            kind => {
                return Err(DeviceError::Config(format!("no I2C driver for {kind} yet")));
            }
        };
        self.driver = Some(driver);
        Ok(descriptor)
    }

    fn poll(&mut self, out: &mut Vec<Reading>) -> Result<PollOutcome, DeviceError> {
        if let Some(hook) = self.before_measure.as_mut() {
            hook();
        }
        match self.measure(out) {
            Ok(()) => {
                self.consecutive_failures = 0;
                Ok(self
                    .degraded
                    .take()
                    .map_or(PollOutcome::Healthy, PollOutcome::Degraded))
            }
            Err(None) => Ok(PollOutcome::Healthy),
            Err(Some(message)) => {
                self.consecutive_failures += 1;
                tracing::debug!(sensor = self.id.0, address = self.address, failures = self.consecutive_failures, error = %message, "I2C measurement failed.");
                if self.consecutive_failures >= FAILURES_BEFORE_RESTART {
                    Err(DeviceError::NotAnswering(format!(
                        "{} failed measurements at {:#04x}, last: {message}",
                        self.consecutive_failures, self.address
                    )))
                } else {
                    Ok(PollOutcome::Degraded(format!(
                        "measurement failed at {:#04x}: {message}",
                        self.address
                    )))
                }
            }
        }
    }

    fn close(&mut self) {
        // Dropping the driver drops its bus handle; the SCD41 keeps measuring on its own
        // and is stopped by the next init.
        self.driver = None;
    }

    fn interval(&self) -> Option<Duration> {
        Some(self.interval)
    }

    fn set_interval(&mut self, interval: Duration) -> bool {
        // Only the polling schedule changes: every kind here measures on demand (the
        // SCD41 measures every 5 s on its own, and its minimum interval is that period).
        self.interval = interval;
        let imu = self.attitude.imu;
        if let Some(Driver::Icm20948(d, _, _)) = self.driver.as_mut() {
            d.set_stalled_drains(stalled_drains(interval, &imu));
        }
        true
    }

    fn set_tunables(&mut self, tunables: &Tunables) -> Result<(), DeviceError> {
        if self.kind == SensorKind::Sps30 {
            return self.set_sps30_tunables(tunables);
        }
        if self.kind == SensorKind::Icm20948 {
            return self.set_attitude_tunables(tunables);
        }
        if self.kind != SensorKind::Bme280 {
            return Ok(());
        }
        let factor = |key: &str| {
            oversampling(tunables::integer(tunables, key).unwrap_or(1)).unwrap_or(Oversampling::X1)
        };
        let mut config = bme280::Config::default();
        config.temperature = factor("temperature_oversampling");
        config.pressure = Some(factor("pressure_oversampling"));
        config.humidity = Some(factor("humidity_oversampling"));
        self.bme280 = config;
        if let Some(Driver::Bme280(d, _)) = self.driver.as_mut()
            && *d.config() != config
        {
            // From the next measurement on: every one writes ctrl_hum and ctrl_meas.
            d.set_config(config);
            self.changed_descriptor = Some(d.descriptor());
        }
        Ok(())
    }

    fn take_descriptor(&mut self) -> Option<SensorDescriptor> {
        self.changed_descriptor.take()
    }

    fn silence_limit(&self) -> Duration {
        // Failed measurements end in a restart by themselves; silence here means a device
        // that answers without data (an SCD41 that is never ready).
        (self.interval * 4).max(Duration::from_secs(12))
    }
}

impl<I2C, D> I2cDevice<I2C, D>
where
    I2C: I2c + Send,
    I2C::Error: Send + Sync + 'static,
    D: DelayNs + Send,
{
    /// The SPS30's auto-cleaning interval: kept for every open, and written to an open
    /// device now (a failed write keeps the previous interval, on the device and here).
    fn set_sps30_tunables(&mut self, tunables: &Tunables) -> Result<(), DeviceError> {
        let days = tunables::integer(tunables, "auto_cleaning_interval_days").unwrap_or(7);
        let seconds = u32::try_from(days.saturating_mul(86_400)).unwrap_or(u32::MAX);
        if self.sps30_cleaning_s == Some(seconds) {
            return Ok(());
        }
        if let Some(Driver::Sps30(d)) = self.driver.as_mut() {
            d.write_auto_cleaning_interval(seconds)
                .map_err(|e| DeviceError::NotAnswering(format!("auto-cleaning interval: {e}")))?;
            self.changed_descriptor = Some(d.descriptor());
        }
        self.sps30_cleaning_s = Some(seconds);
        Ok(())
    }

    /// ICM-20948: ranges and sample rate written to the part at once (its FIFO reset, so
    /// no frame of the old scale is read with the new one), the output rate from the next
    /// drain; all kept for the next open.
    fn set_attitude_tunables(&mut self, tunables: &Tunables) -> Result<(), DeviceError> {
        let defaults = AttitudeSettings::default();
        let int = |key: &str| tunables::integer(tunables, key);
        let imu = icm20948::Config {
            sample_rate_hz: int("sample_rate_hz")
                .map(|r| r as f64)
                .unwrap_or(defaults.imu.sample_rate_hz),
            gyro_range: int("gyro_range_dps")
                .and_then(icm20948::GyroRange::from_dps)
                .unwrap_or(defaults.imu.gyro_range),
            accel_range: int("accel_range_g")
                .and_then(icm20948::AccelRange::from_g)
                .unwrap_or(defaults.imu.accel_range),
        };
        let settings = AttitudeSettings {
            imu,
            output_rate_hz: int("output_rate_hz")
                .map(|r| r as f64)
                .unwrap_or(defaults.output_rate_hz),
            declination_deg: int("declination_deg")
                .map(|d| d as f64)
                .unwrap_or(defaults.declination_deg),
        };
        if settings == self.attitude {
            return Ok(());
        }
        self.attitude = settings;
        let stalled = stalled_drains(self.interval, &imu);
        if let Some(Driver::Icm20948(d, _, filter)) = self.driver.as_mut() {
            filter.ahrs.set_declination(settings.declination_deg);
            d.set_stalled_drains(stalled);
            if *d.config() != imu {
                d.set_config(imu)
                    .map_err(|e| DeviceError::NotAnswering(e.to_string()))?;
            }
            self.changed_descriptor = Some(
                d.descriptor()
                    .with_integer("output_rate_hz", settings.output_rate_hz as i64)
                    .with_integer("declination_deg", settings.declination_deg as i64),
            );
        }
        Ok(())
    }
}

/// The adapter of an I2C sensor on a Linux i2c-dev bus (or, when the bus path is a Unix
/// socket, on the bridge to simulated devices in another process).
pub fn linux_device(
    id: SensorId,
    config: &SensorConfig,
    latest: &LatestValues,
) -> Result<Box<dyn Device>, DeviceError> {
    let bus: PathBuf = config
        .bus
        .clone()
        .ok_or_else(|| DeviceError::Config(format!("sensor {} needs a bus", config.name)))?;
    let address = config
        .address_or_default()
        .ok_or_else(|| DeviceError::Config(format!("sensor {} needs an address", config.name)))?;
    let interval = config
        .interval_or_default()
        .ok_or_else(|| DeviceError::Config(format!("sensor {} needs an interval", config.name)))?;
    let open_bus: BusOpener<aloft_sensors::i2c::Bus, linux_embedded_hal::Delay> =
        Box::new(move || {
            let dev = aloft_sensors::i2c::open_bus(&bus).map_err(|e| DeviceError::open(&bus, e))?;
            Ok((dev, linux_embedded_hal::Delay))
        });
    Ok(Box::new(I2cDevice::new(
        id,
        config.kind,
        address,
        interval,
        open_bus,
        Inputs::from_config(config),
        latest.clone(),
    )?))
}

#[cfg(test)]
mod tests {
    use super::*;
    use aloft_protocol::{Quality, Timestamp};
    use aloft_sensors::bme280::sim::Bme280Sim;
    use aloft_sensors::i2c::sim::{NoopDelay, SimDelay};
    use aloft_sensors::ms4525do::sim::Ms4525doSim;
    use aloft_sensors::ms5611::sim::Ms5611Sim;

    fn ms5611(sim: &Ms5611Sim) -> I2cDevice<Ms5611Sim, SimDelay> {
        let s = sim.clone();
        let open: BusOpener<Ms5611Sim, SimDelay> = Box::new(move || Ok((s.clone(), s.delay())));
        I2cDevice::new(
            SensorId(2),
            SensorKind::Ms5611,
            0x77,
            Duration::from_millis(100),
            open,
            Inputs::default(),
            LatestValues::new(),
        )
        .expect("an I2C kind")
    }

    #[test]
    fn a_single_nack_is_degraded_and_only_repeated_failures_ask_for_a_restart() {
        let sim = Ms5611Sim::new(0x77);
        sim.set_environment(19_400.0, 223.15, 0.2);
        let mut device = ms5611(&sim);
        device.open().expect("opens");
        let mut out = Vec::new();
        assert!(matches!(device.poll(&mut out), Ok(PollOutcome::Healthy)));
        assert!(!out.is_empty());

        sim.nack_next(1);
        assert!(matches!(
            device.poll(&mut out),
            Ok(PollOutcome::Degraded(_))
        ));
        assert!(matches!(device.poll(&mut out), Ok(PollOutcome::Healthy)));

        sim.nack_until_cleared();
        for _ in 1..FAILURES_BEFORE_RESTART {
            assert!(matches!(
                device.poll(&mut out),
                Ok(PollOutcome::Degraded(_))
            ));
        }
        let last = device.poll(&mut out);
        assert!(
            matches!(&last, Err(DeviceError::NotAnswering(m)) if m.contains("0x77")),
            "{last:?}"
        );
        // The soft restart path re-initialises once the device answers again.
        sim.clear_faults();
        device.open().expect("opens again");
        assert!(matches!(device.poll(&mut out), Ok(PollOutcome::Healthy)));
    }

    #[test]
    fn a_chip_that_is_not_the_configured_kind_fails_initialisation() {
        let sim = Bme280Sim::new(0x76);
        sim.set_chip_id(0x58);
        let s = sim.clone();
        let open: BusOpener<Bme280Sim, SimDelay> = Box::new(move || Ok((s.clone(), s.delay())));
        let mut device = I2cDevice::new(
            SensorId(1),
            SensorKind::Bme280,
            0x76,
            Duration::from_millis(100),
            open,
            Inputs::default(),
            LatestValues::new(),
        )
        .expect("an I2C kind");
        let e = device.open().expect_err("a BMP280 is not a BME280");
        assert!(
            matches!(&e, DeviceError::Init(source) if source.to_string().contains("0x58")),
            "{e:?}"
        );
        // The driver's own error stays reachable as the source, not only its text.
        let source = std::error::Error::source(&e).expect("the driver's error");
        assert!(
            matches!(
                source.downcast_ref::<aloft_sensors::bme280::Error<embedded_hal::i2c::ErrorKind>>(),
                Some(aloft_sensors::bme280::Error::WrongChipId(0x58))
            ),
            "{source:?}"
        );
    }

    fn attitude(
        sim: &aloft_sensors::icm20948::sim::Icm20948Sim,
        latest: &LatestValues,
    ) -> I2cDevice<aloft_sensors::icm20948::sim::Icm20948Sim, SimDelay> {
        let s = sim.clone();
        let open: BusOpener<aloft_sensors::icm20948::sim::Icm20948Sim, SimDelay> =
            Box::new(move || Ok((s.clone(), s.delay())));
        let inputs = Inputs {
            airspeed_from: Some("pitot".into()),
            ..Inputs::default()
        };
        I2cDevice::new(
            SensorId(4),
            SensorKind::Icm20948,
            icm20948::ADDRESS_AD0_LOW,
            icm20948::DEFAULT_INTERVAL,
            open,
            inputs,
            latest.clone(),
        )
        .expect("an I2C kind")
    }

    /// Polls `n` times, the part's clock moving one interval before each.
    fn drain_polls(
        device: &mut I2cDevice<aloft_sensors::icm20948::sim::Icm20948Sim, SimDelay>,
        sim: &aloft_sensors::icm20948::sim::Icm20948Sim,
        n: usize,
    ) -> Vec<Reading> {
        let mut out = Vec::new();
        for _ in 0..n {
            sim.advance(icm20948::DEFAULT_INTERVAL);
            assert!(matches!(device.poll(&mut out), Ok(PollOutcome::Healthy)));
        }
        out
    }

    fn tas_now(latest: &LatestValues, tas: f64) {
        latest.record(
            "pitot",
            &[Reading {
                sensor: SensorId(3),
                quantity: Quantity::TrueAirspeed,
                time: AgentClock::new().now(),
                value: tas,
                quality: Quality::GOOD,
            }],
        );
    }

    #[test]
    fn the_horizon_is_invalid_until_converged_and_degraded_without_an_airspeed() {
        let sim = aloft_sensors::icm20948::sim::Icm20948Sim::new(icm20948::ADDRESS_AD0_LOW);
        let latest = LatestValues::new();
        let mut device = attitude(&sim, &latest);
        device.open().expect("opens");
        let first = drain_polls(&mut device, &sim, 2);
        let rolls: Vec<&Reading> = first
            .iter()
            .filter(|r| r.quantity == Quantity::PlatformRoll)
            .collect();
        // One output per 250 ms drain at the default 4 Hz.
        assert_eq!(rolls.len(), 2, "{first:?}");
        assert!(rolls.iter().all(|r| r.quality.contains(Quality::INVALID)));
        assert!(
            rolls
                .iter()
                .all(|r| r.quality.contains(Quality::DEGRADED_INPUT))
        );

        tas_now(&latest, 40.0);
        let later = drain_polls(&mut device, &sim, 24);
        let last = |q| {
            later
                .iter()
                .rev()
                .find(|r| r.quantity == q)
                .copied()
                .expect("an output")
        };
        let roll = last(Quantity::PlatformRoll);
        assert!(roll.quality.is_good(), "{roll:?}");
        assert!(roll.value.abs() < 0.5, "{roll:?}");
        // The model starts level with its nose to true north: the declination added to
        // the magnetic heading brings it back there.
        let yaw = last(Quantity::PlatformYaw);
        assert!(yaw.value < 1.0 || yaw.value > 359.0, "{yaw:?}");
        assert!(last(Quantity::HeadingAccuracy).value >= 1.0);

        // A die colder than the part's rating flags the outputs, never drops them.
        sim.set_die_temperature_k(228.15);
        tas_now(&latest, 40.0);
        let cold = drain_polls(&mut device, &sim, 1);
        assert!(
            cold.iter()
                .all(|r| r.quality.contains(Quality::OUT_OF_RANGE)),
            "{cold:?}"
        );
    }

    #[test]
    fn attitude_tunables_apply_live_and_survive_a_reopen() {
        let sim = aloft_sensors::icm20948::sim::Icm20948Sim::new(icm20948::ADDRESS_AD0_LOW);
        let latest = LatestValues::new();
        let mut device = attitude(&sim, &latest);
        device.open().expect("opens");
        let mut set = Tunables::new();
        set.insert(
            "sample_rate_hz".into(),
            aloft_protocol::sync::TunableValue::Integer(100),
        );
        set.insert(
            "output_rate_hz".into(),
            aloft_protocol::sync::TunableValue::Integer(10),
        );
        set.insert(
            "gyro_range_dps".into(),
            aloft_protocol::sync::TunableValue::Integer(250),
        );
        tunables::check(SensorKind::Icm20948, &set).expect("a valid set");
        device.set_tunables(&set).expect("applied");
        let descriptor = device.take_descriptor().expect("a new descriptor");
        use aloft_protocol::ParameterValue::Integer;
        assert_eq!(descriptor.parameter("GYRO_SMPLRT_DIV"), Some(&Integer(10)));
        assert_eq!(descriptor.parameter("gyro_range_dps"), Some(&Integer(250)));
        let before = sim.samples_written();
        let out = drain_polls(&mut device, &sim, 4);
        let written = sim.samples_written() - before;
        assert!((98..=102).contains(&written), "{written} samples in 1 s");
        let outputs = out
            .iter()
            .filter(|r| r.quantity == Quantity::PlatformRoll)
            .count();
        assert!((9..=11).contains(&outputs), "{outputs} outputs in 1 s");

        device.open().expect("reopens");
        let before = sim.samples_written();
        drain_polls(&mut device, &sim, 4);
        let written = sim.samples_written() - before;
        assert!((98..=102).contains(&written), "after the reopen: {written}");
    }

    #[test]
    fn a_declination_tunable_turns_the_heading_at_once() {
        let sim = aloft_sensors::icm20948::sim::Icm20948Sim::new(icm20948::ADDRESS_AD0_LOW);
        let latest = LatestValues::new();
        let mut device = attitude(&sim, &latest);
        device.open().expect("opens");
        tas_now(&latest, 40.0);
        let yaw = |out: &[Reading]| {
            out.iter()
                .rev()
                .find(|r| r.quantity == Quantity::PlatformYaw)
                .map(|r| r.value)
                .expect("a heading")
        };
        // Nose to true north, the field 13° east of it: the default declination is right.
        let before = yaw(&drain_polls(&mut device, &sim, 24));
        assert!(!(1.0..359.0).contains(&before), "{before}");
        let mut set = Tunables::new();
        set.insert(
            "declination_deg".into(),
            aloft_protocol::sync::TunableValue::Integer(-5),
        );
        tunables::check(SensorKind::Icm20948, &set).expect("a valid set");
        device.set_tunables(&set).expect("applied");
        tas_now(&latest, 40.0);
        let after = yaw(&drain_polls(&mut device, &sim, 2));
        // Magnetic heading 347°, now plus 5° west.
        assert!((after - 342.0).abs() < 1.0, "{after}");
    }

    #[test]
    fn polls_faster_than_the_samples_allow_more_empty_drains_before_a_stall() {
        let slow = icm20948::Config {
            sample_rate_hz: 25.0,
            ..icm20948::Config::default()
        };
        // 25 Hz drained every 20 ms: four sample periods are eight polls.
        assert_eq!(stalled_drains(Duration::from_millis(20), &slow), 8);
        assert_eq!(
            stalled_drains(icm20948::DEFAULT_INTERVAL, &icm20948::Config::default()),
            1
        );
    }

    #[test]
    fn a_nack_on_the_attitude_bus_is_degraded_and_the_next_drain_is_healthy() {
        let sim = aloft_sensors::icm20948::sim::Icm20948Sim::new(icm20948::ADDRESS_AD0_LOW);
        let latest = LatestValues::new();
        let mut device = attitude(&sim, &latest);
        device.open().expect("opens");
        drain_polls(&mut device, &sim, 1);
        sim.nack_next(1);
        sim.advance(icm20948::DEFAULT_INTERVAL);
        let mut out = Vec::new();
        assert!(matches!(
            device.poll(&mut out),
            Ok(PollOutcome::Degraded(_))
        ));
        drain_polls(&mut device, &sim, 1);
        // A host that slept too long: the FIFO overflowed, was reset, and drains go on.
        sim.overflow_fifo();
        assert!(matches!(
            device.poll(&mut out),
            Ok(PollOutcome::Degraded(m)) if m.contains("overflow")
        ));
        drain_polls(&mut device, &sim, 1);
    }

    #[test]
    fn the_sps30_cleaning_interval_follows_its_tunables_and_the_outside_air_flags_it() {
        use aloft_protocol::sync::TunableValue;
        use aloft_sensors::sps30::sim::{SimDelay as Sps30Delay, Sps30Sim};
        let sim = Sps30Sim::new("SPS", 1);
        let s = sim.clone();
        let open: BusOpener<Sps30Sim, Sps30Delay> = Box::new(move || Ok((s.clone(), s.delay())));
        let latest = LatestValues::new();
        let inputs = Inputs {
            outside_air_from: Some("outside-air".into()),
            ..Inputs::default()
        };
        let mut device = I2cDevice::new(
            SensorId(4),
            SensorKind::Sps30,
            sps30::ADDRESS,
            Duration::from_secs(1),
            open,
            inputs,
            latest.clone(),
        )
        .expect("an I2C kind");
        let days = |d| {
            Tunables::from([(
                "auto_cleaning_interval_days".into(),
                TunableValue::Integer(d),
            )])
        };
        device.set_tunables(&days(1)).expect("kept for the open");
        device.open().expect("opens");
        assert_eq!(sim.auto_cleaning_interval_s(), 86_400);
        device.set_tunables(&days(0)).expect("written now");
        assert_eq!(sim.auto_cleaning_interval_s(), 0);
        assert!(device.take_descriptor().is_some());

        // No outside air yet: degraded input. Then -30 °C: out of the operating range.
        let pm25 = |out: &[Reading]| {
            out.iter()
                .find(|r| r.quantity == Quantity::Pm2p5MassConcentration)
                .map(|r| r.quality)
        };
        sim.advance(Duration::from_secs(1));
        let mut out = Vec::new();
        assert_eq!(device.poll(&mut out).ok(), Some(PollOutcome::Healthy));
        assert_eq!(pm25(&out), Some(Quality::DEGRADED_INPUT));
        let now = AgentClock::new().now().mono_ns;
        latest.record(
            "outside-air",
            &[Reading {
                sensor: SensorId(0),
                quantity: Quantity::AirTemperature,
                time: Timestamp::monotonic(now),
                value: 243.15,
                quality: Quality::GOOD,
            }],
        );
        sim.advance(Duration::from_secs(1));
        out.clear();
        device.poll(&mut out).expect("measures");
        assert_eq!(pm25(&out), Some(Quality::OUT_OF_RANGE));
        // A fan error: readings flagged invalid, the poll degraded with the status.
        sim.fan_error();
        sim.advance(Duration::from_secs(1));
        out.clear();
        let outcome = device.poll(&mut out).expect("measures");
        assert!(
            matches!(&outcome, PollOutcome::Degraded(m) if m.contains("fan error")),
            "{outcome:?}"
        );
        assert!(pm25(&out).is_some_and(|q| q.contains(Quality::INVALID)));
    }

    #[test]
    fn true_airspeed_needs_fresh_values_from_both_named_sensors() {
        let sim = Ms4525doSim::new(ms4525do::Config::default(), 1);
        sim.set_differential_pressure_pa(1_500.0);
        let latest = LatestValues::new();
        let s = sim.clone();
        let open: BusOpener<Ms4525doSim, NoopDelay> = Box::new(move || Ok((s.clone(), NoopDelay)));
        let inputs = Inputs {
            static_pressure_from: Some("static".into()),
            outside_air_from: Some("outside-air".into()),
            ..Inputs::default()
        };
        let mut device = I2cDevice::new(
            SensorId(3),
            SensorKind::Ms4525do,
            0x28,
            Duration::from_millis(20),
            open,
            inputs,
            latest.clone(),
        )
        .expect("an I2C kind");
        device.open().expect("opens");
        let tas = |out: &[Reading]| out.iter().any(|r| r.quantity == Quantity::TrueAirspeed);

        let mut out = Vec::new();
        device.poll(&mut out).expect("measures");
        assert!(!tas(&out), "no inputs yet");

        let now = AgentClock::new().now().mono_ns;
        let reading = |quantity, value| Reading {
            sensor: SensorId(0),
            quantity,
            time: Timestamp::monotonic(now),
            value,
            quality: Quality::GOOD,
        };
        latest.record("static", &[reading(Quantity::AirPressure, 19_400.0)]);
        out.clear();
        device.poll(&mut out).expect("measures");
        assert!(!tas(&out), "the outside air temperature is still missing");

        latest.record("outside-air", &[reading(Quantity::AirTemperature, 216.65)]);
        out.clear();
        device.poll(&mut out).expect("measures");
        assert!(tas(&out), "{out:?}");
    }

    #[test]
    fn a_smart_battery_reads_its_pack_and_survives_a_corrupted_pec() {
        use aloft_sensors::sbs::sim::SbsSim;
        let sim = SbsSim::at_default_address(4);
        sim.set_pack(13.9, 2.5, 0.42, 268.15);
        let s = sim.clone();
        let open: BusOpener<SbsSim, NoopDelay> = Box::new(move || Ok((s.clone(), NoopDelay)));
        let mut device = I2cDevice::new(
            SensorId(5),
            SensorKind::Sbs,
            sbs::ADDRESS,
            Duration::from_secs(5),
            open,
            Inputs::default(),
            LatestValues::new(),
        )
        .expect("an I2C kind");
        let descriptor = device.open().expect("opens");
        assert!(descriptor.device.contains("bq40z50"), "{descriptor:?}");
        let mut out = Vec::new();
        assert!(matches!(device.poll(&mut out), Ok(PollOutcome::Healthy)));
        let value = |q| out.iter().find(|r| r.quantity == q).map(|r| r.value);
        assert!((value(Quantity::BatteryStateOfCharge).unwrap() - 0.42).abs() < 1e-9);
        assert!((value(Quantity::BatteryCurrent).unwrap() - 2.5).abs() < 0.03);
        assert!((value(Quantity::BatteryVoltage).unwrap() - 13.9).abs() < 0.02);
        sim.corrupt_pec_next(1);
        out.clear();
        assert!(
            matches!(device.poll(&mut out), Ok(PollOutcome::Degraded(why)) if why.contains("PEC"))
        );
        out.clear();
        assert!(matches!(device.poll(&mut out), Ok(PollOutcome::Healthy)));
    }
}
