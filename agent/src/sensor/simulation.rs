//! The simulated flight's devices, built in one place for `[simulation]` configs (and, later,
//! the demo).
//!
//! Every configured sensor gets the simulator of its kind, driven by one seeded
//! [`Scenario`]: serial devices run behind [`SimulatedPort`]s, each with a stable symlink
//! in `link_dir` that its adapter opens (so the by-id re-resolution path is the one
//! exercised when a port vanishes and comes back as a new pty); I2C devices are the
//! register models, moved to the flight's present state before every measurement. A
//! sensor with a power line gets a [`SimulatedPowerLine`].
//!
//! Invariants: the adapters are the ones real hardware uses; only the port path, the bus
//! and the power line differ. The handles (`ublox`, `i2c`, `port`, `power_line`) let tests
//! inject faults: a brown-out, NACKs, a vanished or stalled port.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use aloft_protocol::SensorId;
use aloft_sensors::bme280::sim::Bme280Sim;
use aloft_sensors::cosmicwatch::{CosmicWatchSim, Format};
use aloft_sensors::flight::{FlightClock, FlightState, Scenario, start_utc_for_now};
use aloft_sensors::frontend::{FrontEndError, FrontEndOptions, SimulatedFrontEnd};
use aloft_sensors::gps::sim::{Outputs, UbloxSim, UbloxSimConfig};
use aloft_sensors::i2c::sim::{NoopDelay, SimDelay, TemperatureSource};
use aloft_sensors::icm20948::sim::Icm20948Sim;
use aloft_sensors::ms4525do;
use aloft_sensors::ms4525do::sim::Ms4525doSim;
use aloft_sensors::ms5611::sim::Ms5611Sim;
use aloft_sensors::pom::{PomFaults, PomSim};
use aloft_sensors::sbs::sim::SbsSim;
use aloft_sensors::scd41::sim::Scd41Sim;
use aloft_sensors::serial::SerialDevice;
use aloft_sensors::serial::pty::{PortOptions, PtyError, SimulatedPort};
use aloft_sensors::sps30::sim::Sps30Sim;

use super::cosmicwatch::CosmicWatchDevice;
use super::detector::DetectorDevice;
use super::i2c::{BusOpener, I2cDevice, Inputs};
use super::nmea::NmeaDevice;
use super::pom::PomDevice;
use super::power::{PowerLine, SimulatedPowerLine};
use super::slot::{self, SensorSlot};
use super::ublox::{UbloxDevice, UbloxOptions};
use super::wind::WindDevice;
use super::{Device, DeviceError, LatestValues, with_capture};
use crate::config::{SensorConfig, SensorKind, SimulationConfig};

/// Why the simulation could not start.
#[derive(Debug, thiserror::Error)]
pub enum SimulationError {
    /// A simulated serial device could not start.
    #[error("cannot start the simulated device of sensor {sensor}: {source}")]
    Port {
        /// The sensor.
        sensor: String,
        /// Why.
        source: PtyError,
    },
    /// A simulated detector front end could not start.
    #[error("cannot start the simulated front end of sensor {sensor}: {source}")]
    FrontEnd {
        /// The sensor.
        sensor: String,
        /// Why.
        source: FrontEndError,
    },
    /// An adapter could not be built.
    #[error("sensor {sensor}: {source}")]
    Device {
        /// The sensor.
        sensor: String,
        /// Why.
        source: DeviceError,
    },
}

/// Knobs of the simulated adapters (tests shorten the periodic checks).
#[derive(Debug, Clone, Copy, PartialEq, Default)]
#[non_exhaustive]
pub struct SimulationTuning {
    /// The u-blox adapters' options.
    pub ublox: UbloxOptions,
    /// The CosmicWatch adapters' normal silence, when not the default.
    pub cosmicwatch_silence: Option<Duration>,
    /// The ozone monitors' normal silence, when not the one of their averaging period.
    pub pom_silence: Option<Duration>,
}

impl SimulationTuning {
    /// With these u-blox options.
    pub fn with_ublox(mut self, ublox: UbloxOptions) -> Self {
        self.ublox = ublox;
        self
    }

    /// With this normal silence for the ozone monitors.
    pub fn with_pom_silence(mut self, silence: Duration) -> Self {
        self.pom_silence = Some(silence);
        self
    }
}

/// A u-blox simulator shared between its port's thread and the tests that brown it out.
#[derive(Debug, Clone)]
pub struct SharedUblox(Arc<Mutex<UbloxSim>>);

impl SharedUblox {
    fn lock(&self) -> MutexGuard<'_, UbloxSim> {
        self.0.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// A supply dip: the receiver reverts to its default (Portable) model.
    pub fn brown_out(&self) {
        self.lock().brown_out();
    }

    /// The dynamic model in force.
    pub fn dynamic_model(&self) -> aloft_protocol::DynamicModel {
        self.lock().dynamic_model()
    }
}

impl SerialDevice for SharedUblox {
    fn baud(&self) -> u32 {
        self.lock().baud()
    }

    fn tick(&mut self, state: &FlightState, out: &mut Vec<u8>) {
        self.lock().tick(state, out);
    }

    fn receive(&mut self, bytes: &[u8], out: &mut Vec<u8>) {
        self.lock().receive(bytes, out);
    }
}

/// A register model of the simulated flight, for fault injection.
#[derive(Debug, Clone)]
pub enum SimulatedI2c {
    /// A BME280.
    Bme280(Bme280Sim),
    /// An MS5611.
    Ms5611(Ms5611Sim),
    /// An SCD41.
    Scd41(Scd41Sim),
    /// An MS4525DO.
    Ms4525do(Ms4525doSim),
    /// An SPS30.
    Sps30(Sps30Sim),
    /// An ICM-20948.
    Icm20948(Icm20948Sim),
    /// A smart battery.
    Sbs(SbsSim),
}

impl SimulatedI2c {
    /// NACKs every transaction until [`SimulatedI2c::clear_faults`].
    pub fn nack_until_cleared(&self) {
        match self {
            SimulatedI2c::Bme280(s) => s.nack_until_cleared(),
            SimulatedI2c::Ms5611(s) => s.nack_until_cleared(),
            SimulatedI2c::Scd41(s) => s.nack_until_cleared(),
            SimulatedI2c::Ms4525do(s) => s.nack_until_cleared(),
            SimulatedI2c::Sps30(s) => s.nack_until_cleared(),
            SimulatedI2c::Icm20948(s) => s.nack_until_cleared(),
            SimulatedI2c::Sbs(s) => s.nack_until_cleared(),
        }
    }

    /// Clears every injected fault.
    pub fn clear_faults(&self) {
        match self {
            SimulatedI2c::Bme280(s) => s.clear_faults(),
            SimulatedI2c::Ms5611(s) => s.clear_faults(),
            SimulatedI2c::Scd41(s) => s.clear_faults(),
            SimulatedI2c::Ms4525do(s) => s.clear_faults(),
            SimulatedI2c::Sps30(s) => s.clear_faults(),
            SimulatedI2c::Icm20948(s) => s.clear_faults(),
            SimulatedI2c::Sbs(s) => s.clear_faults(),
        }
    }

    /// Moves the device's own time forward (conversions complete, periodic measurements
    /// come due): simulated devices follow real time between transactions.
    pub(crate) fn advance(&self, by: Duration) {
        let ns = u64::try_from(by.as_nanos()).unwrap_or(u64::MAX);
        match self {
            SimulatedI2c::Bme280(s) => s.clock().advance_ns(ns),
            SimulatedI2c::Ms5611(s) => s.clock().advance_ns(ns),
            SimulatedI2c::Scd41(s) => s.advance(by),
            SimulatedI2c::Ms4525do(s) => s.advance(by),
            SimulatedI2c::Sps30(s) => s.advance(by),
            SimulatedI2c::Icm20948(s) => s.clock().advance_ns(ns),
            SimulatedI2c::Sbs(s) => s.advance(by),
        }
    }

    /// One bus transaction with the model, as a driver would do it.
    pub(crate) fn transaction(
        &mut self,
        address: u8,
        operations: &mut [embedded_hal::i2c::Operation<'_>],
    ) -> Result<(), embedded_hal::i2c::ErrorKind> {
        use embedded_hal::i2c::I2c;
        match self {
            SimulatedI2c::Bme280(s) => s.transaction(address, operations),
            SimulatedI2c::Ms5611(s) => s.transaction(address, operations),
            SimulatedI2c::Scd41(s) => s.transaction(address, operations),
            SimulatedI2c::Ms4525do(s) => s.transaction(address, operations),
            SimulatedI2c::Sps30(s) => s.transaction(address, operations),
            SimulatedI2c::Icm20948(s) => s.transaction(address, operations),
            SimulatedI2c::Sbs(s) => s.transaction(address, operations),
        }
    }

    pub(crate) fn apply(&self, state: &FlightState) {
        match self {
            SimulatedI2c::Bme280(s) => s.apply(state),
            SimulatedI2c::Ms5611(s) => s.apply(state),
            SimulatedI2c::Scd41(s) => s.apply(state),
            SimulatedI2c::Ms4525do(s) => s.apply(state),
            SimulatedI2c::Sps30(s) => s.apply(state),
            SimulatedI2c::Icm20948(s) => s.apply(state),
            SimulatedI2c::Sbs(s) => s.apply(state),
        }
    }
}

/// The running simulation: keep it alive as long as the sensors run.
#[derive(Debug)]
pub struct Simulation {
    ports: HashMap<String, SimulatedPort>,
    ublox: HashMap<String, SharedUblox>,
    i2c: HashMap<String, SimulatedI2c>,
    power_lines: HashMap<String, SimulatedPowerLine>,
    pom: HashMap<String, PomFaults>,
    front_ends: HashMap<String, SimulatedFrontEnd>,
}

impl Simulation {
    /// Starts the simulator of every configured sensor and returns the slots the
    /// supervisor runs. Serial symlinks are made in `link_dir`, which must exist.
    pub fn start(
        config: &SimulationConfig,
        sensors: &[SensorConfig],
        link_dir: &Path,
        latest: &LatestValues,
        tuning: SimulationTuning,
    ) -> Result<(Simulation, Vec<SensorSlot>), SimulationError> {
        let SimulatedFlight {
            scenario,
            clock: flight,
        } = SimulatedFlight::start(config);
        let mut sim = Simulation {
            ports: HashMap::new(),
            ublox: HashMap::new(),
            i2c: HashMap::new(),
            power_lines: HashMap::new(),
            pom: HashMap::new(),
            front_ends: HashMap::new(),
        };
        let slots = slot::assemble(sensors, true, |id, sensor| {
            let n = usize::from(id.0);
            let seed = device_seed(config, n);
            let device_error = |source| SimulationError::Device {
                sensor: sensor.name.clone(),
                source,
            };
            let device: Box<dyn Device> = match sensor.kind {
                SensorKind::Wind => {
                    Box::new(WindDevice::new(id, sensor, latest.clone()).map_err(device_error)?)
                }
                // Another program's readings, simulated or not, come over the bus.
                SensorKind::Mqtt => {
                    Box::new(super::mqtt::MqttDevice::detached(sensor).map_err(device_error)?)
                }
                kind if kind.is_derived() => {
                    return Err(device_error(DeviceError::Config(format!(
                        "no adapter for {kind} yet"
                    ))));
                }
                SensorKind::Detector => {
                    let link = link_dir.join(&sensor.name);
                    let front_end = spawn_front_end(sensor, seed, port_options(config, &link))?;
                    sim.front_ends.insert(sensor.name.clone(), front_end);
                    let baud = sensor.baud.unwrap_or(super::detector::DEFAULT_BAUD);
                    Box::new(with_capture(
                        DetectorDevice::new(id, link, baud),
                        sensor,
                        "detector",
                        DetectorDevice::with_capture,
                    ))
                }
                kind if kind.is_serial() => {
                    let link = link_dir.join(&sensor.name);
                    let options = port_options(config, &link);
                    sim.serial(sensor, id, seed, link, options, &scenario, tuning)?
                }
                kind => {
                    let model = i2c_model(kind, sensor, seed);
                    let address = sensor.address_or_default().unwrap_or_default();
                    let interval = sensor.interval_or_default().ok_or_else(|| {
                        device_error(DeviceError::Config(format!(
                            "{kind} has no sampling interval"
                        )))
                    })?;
                    let hook_model = model.clone();
                    let hook_scenario = Arc::clone(&scenario);
                    // The model's time follows real time between measurements, as the
                    // hosted devices' does, plus the driver's simulated waits.
                    let mut last_hook: Option<Instant> = None;
                    let hook = Box::new(move || {
                        let now = Instant::now();
                        if let Some(last) = last_hook {
                            hook_model.advance(now.saturating_duration_since(last));
                        }
                        last_hook = Some(now);
                        hook_model.apply(&hook_scenario.state_at(flight.t_s()));
                    });
                    sim.i2c.insert(sensor.name.clone(), model.clone());
                    let inputs = Inputs::from_config(sensor);
                    let latest = latest.clone();
                    match model {
                        SimulatedI2c::Bme280(s) => {
                            let open: BusOpener<Bme280Sim, SimDelay> =
                                Box::new(move || Ok((s.clone(), s.delay())));
                            boxed(
                                I2cDevice::new(id, kind, address, interval, open, inputs, latest),
                                hook,
                            )
                        }
                        SimulatedI2c::Ms5611(s) => {
                            let open: BusOpener<Ms5611Sim, SimDelay> =
                                Box::new(move || Ok((s.clone(), s.delay())));
                            boxed(
                                I2cDevice::new(id, kind, address, interval, open, inputs, latest),
                                hook,
                            )
                        }
                        SimulatedI2c::Scd41(s) => {
                            let open: BusOpener<Scd41Sim, aloft_sensors::scd41::sim::SimDelay> =
                                Box::new(move || Ok((s.clone(), s.delay())));
                            boxed(
                                I2cDevice::new(id, kind, address, interval, open, inputs, latest),
                                hook,
                            )
                        }
                        SimulatedI2c::Ms4525do(s) => {
                            let open: BusOpener<Ms4525doSim, NoopDelay> =
                                Box::new(move || Ok((s.clone(), NoopDelay)));
                            boxed(
                                I2cDevice::new(id, kind, address, interval, open, inputs, latest),
                                hook,
                            )
                        }
                        SimulatedI2c::Sps30(s) => {
                            let open: BusOpener<Sps30Sim, aloft_sensors::sps30::sim::SimDelay> =
                                Box::new(move || Ok((s.clone(), s.delay())));
                            boxed(
                                I2cDevice::new(id, kind, address, interval, open, inputs, latest),
                                hook,
                            )
                        }
                        SimulatedI2c::Icm20948(s) => {
                            let open: BusOpener<Icm20948Sim, SimDelay> =
                                Box::new(move || Ok((s.clone(), s.delay())));
                            boxed(
                                I2cDevice::new(id, kind, address, interval, open, inputs, latest),
                                hook,
                            )
                        }
                        SimulatedI2c::Sbs(s) => {
                            let open: BusOpener<SbsSim, NoopDelay> =
                                Box::new(move || Ok((s.clone(), NoopDelay)));
                            boxed(
                                I2cDevice::new(id, kind, address, interval, open, inputs, latest),
                                hook,
                            )
                        }
                    }
                    .map_err(device_error)?
                }
            };
            let line = sensor.power.as_ref().map(|_| {
                let line = SimulatedPowerLine::new();
                sim.power_lines.insert(sensor.name.clone(), line.clone());
                Box::new(line) as Box<dyn PowerLine>
            });
            Ok((device, line))
        })?;
        Ok((sim, slots))
    }

    #[allow(clippy::too_many_arguments)]
    fn serial(
        &mut self,
        sensor: &SensorConfig,
        id: SensorId,
        seed: u64,
        link: PathBuf,
        options: PortOptions,
        scenario: &Arc<Scenario>,
        tuning: SimulationTuning,
    ) -> Result<Box<dyn Device>, SimulationError> {
        let spawned = spawn_port(sensor, seed, options, scenario, tuning)?;
        let device: Box<dyn Device> = match sensor.kind {
            SensorKind::Ublox => {
                let device = UbloxDevice::new(id, link, spawned.baud, tuning.ublox);
                let kind = device.capture_kind();
                Box::new(with_capture(
                    device,
                    sensor,
                    kind,
                    UbloxDevice::with_capture,
                ))
            }
            SensorKind::Nmea => {
                let device = NmeaDevice::new(id, link, spawned.baud);
                Box::new(with_capture(
                    device,
                    sensor,
                    "nmea",
                    NmeaDevice::with_capture,
                ))
            }
            SensorKind::Pom => {
                let mut device = PomDevice::new(id, link, spawned.baud);
                if let Some(limit) = tuning.pom_silence {
                    device = device.with_silence_limit(limit);
                }
                Box::new(with_capture(device, sensor, "pom", PomDevice::with_capture))
            }
            _ => {
                let mut device = CosmicWatchDevice::new(id, link, spawned.baud);
                if let Some(limit) = tuning.cosmicwatch_silence {
                    device = device.with_silence_limit(limit);
                }
                Box::new(with_capture(
                    device,
                    sensor,
                    "cosmicwatch",
                    CosmicWatchDevice::with_capture,
                ))
            }
        };
        if let Some(receiver) = spawned.ublox {
            self.ublox.insert(sensor.name.clone(), receiver);
        }
        if let Some(faults) = spawned.pom {
            self.pom.insert(sensor.name.clone(), faults);
        }
        self.ports.insert(sensor.name.clone(), spawned.port);
        Ok(device)
    }

    /// The simulated port of a serial sensor (to inject [`aloft_sensors::serial::pty::Fault`]s).
    pub fn port(&self, sensor: &str) -> Option<&SimulatedPort> {
        self.ports.get(sensor)
    }

    /// The u-blox simulator of a sensor (to brown it out).
    pub fn ublox(&self, sensor: &str) -> Option<&SharedUblox> {
        self.ublox.get(sensor)
    }

    /// The register model of an I2C sensor (to make it NACK).
    pub fn i2c(&self, sensor: &str) -> Option<&SimulatedI2c> {
        self.i2c.get(sensor)
    }

    /// The faults of a simulated ozone monitor (garbled lines, a stall, no flow).
    pub fn pom(&self, sensor: &str) -> Option<&PomFaults> {
        self.pom.get(sensor)
    }

    /// The simulated detector front end of a sensor (to inject noise, stall or unplug it).
    pub fn front_end(&self, sensor: &str) -> Option<&SimulatedFrontEnd> {
        self.front_ends.get(sensor)
    }

    /// The simulated power line of a sensor that has one.
    pub fn power_line(&self, sensor: &str) -> Option<&SimulatedPowerLine> {
        self.power_lines.get(sensor)
    }

    /// Stops every simulated port (removing its symlink).
    pub fn stop(self) {
        for (_, port) in self.ports {
            // A port only fails to stop if its thread panicked; the logs said so.
            let _ = port.stop();
        }
        for (_, front_end) in self.front_ends {
            let _ = front_end.stop();
        }
    }
}

/// The flight every simulated device follows: one seeded scenario and its clock.
pub(crate) struct SimulatedFlight {
    /// The scenario, its UTC arranged so that the flight is happening now.
    pub scenario: Arc<Scenario>,
    /// Where in the flight we are, at the configured speed.
    pub clock: FlightClock,
}

impl SimulatedFlight {
    /// Starts the flight of `config` at its `start_at_s`.
    pub(crate) fn start(config: &SimulationConfig) -> SimulatedFlight {
        SimulatedFlight {
            scenario: Arc::new(Scenario::new(
                config.seed,
                start_utc_for_now(config.start_at_s),
            )),
            clock: FlightClock::start(config.start_at_s, flight_speed(config)),
        }
    }
}

/// The configured speed, or real time if it is not a positive number.
fn flight_speed(config: &SimulationConfig) -> f64 {
    if config.speed.is_finite() && config.speed > 0.0 {
        config.speed
    } else {
        1.0
    }
}

/// The seed of the `n`th configured sensor's device: the same flight wherever the
/// devices run.
pub(crate) fn device_seed(config: &SimulationConfig, n: usize) -> u64 {
    config.seed.wrapping_add(n as u64 + 1)
}

/// How a serial device of the flight runs behind its pty, with its symlink at `link`.
pub(crate) fn port_options(config: &SimulationConfig, link: &Path) -> PortOptions {
    PortOptions::new()
        .speed(flight_speed(config))
        .scenario_offset_s(config.start_at_s)
        .symlink(link)
}

/// Starts the simulated detector front end of a `detector` sensor behind a pseudo-terminal:
/// the firmware's own logic over the simulated SiPM pair, pulses from `seed`, the serial
/// number derived from it, the fault hook built in (so tests can stall it).
pub(crate) fn spawn_front_end(
    sensor: &SensorConfig,
    seed: u64,
    options: PortOptions,
) -> Result<SimulatedFrontEnd, SimulationError> {
    let serial = 0xA10F_0000_0000_0000 | (seed & 0xFFFF_FFFF);
    SimulatedFrontEnd::spawn(
        FrontEndOptions::new(serial, seed)
            .fault_hook(true)
            .port(options),
    )
    .map_err(|source| SimulationError::FrontEnd {
        sensor: sensor.name.clone(),
        source,
    })
}

/// A serial device of the simulated flight, running behind its pseudo-terminal.
pub(crate) struct SpawnedPort {
    /// The running port.
    pub port: SimulatedPort,
    /// The receiver, for a u-blox (to brown it out).
    pub ublox: Option<SharedUblox>,
    /// The monitor's faults, for an ozone monitor.
    pub pom: Option<PomFaults>,
    /// The baud rate the device speaks.
    pub baud: u32,
}

/// Starts the simulator of a serial sensor (u-blox, plain NMEA receiver or CosmicWatch)
/// behind a pseudo-terminal.
pub(crate) fn spawn_port(
    sensor: &SensorConfig,
    seed: u64,
    options: PortOptions,
    scenario: &Arc<Scenario>,
    tuning: SimulationTuning,
) -> Result<SpawnedPort, SimulationError> {
    let port_error = |source| SimulationError::Port {
        sensor: sensor.name.clone(),
        source,
    };
    Ok(match sensor.kind {
        SensorKind::Ublox => {
            let outputs = Outputs {
                nav_pvt: tuning.ublox.nav_pvt,
                ..Outputs::ALL
            };
            let receiver = SharedUblox(Arc::new(Mutex::new(UbloxSim::new(
                UbloxSimConfig::default()
                    .with_seed(seed)
                    .with_outputs(outputs),
            ))));
            let baud = receiver.baud();
            let port = SimulatedPort::spawn(receiver.clone(), Arc::clone(scenario), options)
                .map_err(port_error)?;
            SpawnedPort {
                port,
                ublox: Some(receiver),
                pom: None,
                baud,
            }
        }
        SensorKind::Nmea => {
            // A plain receiver: NMEA only, once a second, at 9600 baud.
            let config = UbloxSimConfig::default()
                .with_seed(seed)
                .with_rate_hz(1.0)
                .with_baud(9600)
                .with_outputs(Outputs {
                    nav_pvt: false,
                    ..Outputs::ALL
                });
            let port = SimulatedPort::spawn(UbloxSim::new(config), Arc::clone(scenario), options)
                .map_err(port_error)?;
            SpawnedPort {
                port,
                ublox: None,
                pom: None,
                baud: 9600,
            }
        }
        SensorKind::Pom => {
            // The monitor set up as the sensor's tunables say its menu is.
            let (units, averaging_s) = super::pom::settings(&crate::config::tunables::in_force(
                SensorKind::Pom,
                &sensor.tunables(),
            ));
            let baud = sensor.baud.unwrap_or(super::pom::DEFAULT_BAUD);
            let monitor = PomSim::new(baud, averaging_s, units, seed);
            let faults = monitor.faults();
            let port =
                SimulatedPort::spawn(monitor, Arc::clone(scenario), options).map_err(port_error)?;
            SpawnedPort {
                port,
                ublox: None,
                pom: Some(faults),
                baud,
            }
        }
        _ => {
            let detector = CosmicWatchSim::new(Format::V2, sensor.name.clone(), seed);
            let port = SimulatedPort::spawn(detector, Arc::clone(scenario), options)
                .map_err(port_error)?;
            SpawnedPort {
                port,
                ublox: None,
                pom: None,
                baud: Format::V2.baud(),
            }
        }
    })
}

fn boxed<I2C, D>(
    device: Result<I2cDevice<I2C, D>, DeviceError>,
    hook: Box<dyn FnMut() + Send>,
) -> Result<Box<dyn Device>, DeviceError>
where
    I2C: embedded_hal::i2c::I2c + Send + 'static,
    I2C::Error: Send + Sync + 'static,
    D: embedded_hal::delay::DelayNs + Send + 'static,
{
    Ok(Box::new(device?.with_before_measure(hook)))
}

/// The register model of an I2C kind, mounted as the glider carries it.
pub(crate) fn i2c_model(kind: SensorKind, sensor: &SensorConfig, seed: u64) -> SimulatedI2c {
    let address = sensor.address_or_default().unwrap_or_default();
    match kind {
        SensorKind::Bme280 => SimulatedI2c::Bme280(
            Bme280Sim::new(address)
                .with_noise(seed)
                .with_temperature_source(TemperatureSource::OutsideAir),
        ),
        SensorKind::Scd41 => SimulatedI2c::Scd41(Scd41Sim::new(0x0A10_F7A1_2026, seed)),
        SensorKind::Sps30 => SimulatedI2c::Sps30(Sps30Sim::new("8C1F6A2B9D04E733", seed)),
        SensorKind::Ms4525do => {
            let defaults = ms4525do::Config::default();
            SimulatedI2c::Ms4525do(Ms4525doSim::new(
                ms4525do::Config::new(address, defaults.output_type, defaults.range),
                seed,
            ))
        }
        SensorKind::Icm20948 => SimulatedI2c::Icm20948(Icm20948Sim::new(address).with_noise(seed)),
        SensorKind::Sbs => SimulatedI2c::Sbs(SbsSim::new(address, seed)),
        // MS5611, and any serial kind (never asked for here), as the static pressure port.
        _ => SimulatedI2c::Ms5611(
            Ms5611Sim::new(address)
                .with_noise(seed)
                .with_temperature_source(TemperatureSource::InstrumentBox),
        ),
    }
}
