//! Aloft's sensor layer: bytes and registers in, typed readings out.
//!
//! # Layout
//!
//! - [`gps`]: GNSS receivers: the NMEA 0183 parser ([`gps::nmea`]), fix assembly
//!   ([`gps::fix`]), the u-blox UBX codec ([`gps::ubx`]), the port demultiplexer that splits
//!   interleaved NMEA and UBX ([`gps::framer`]), dynamic-model configuration
//!   ([`gps::ublox`]) and a u-blox receiver simulator ([`gps::sim`]).
//! - [`cosmicwatch`]: the CosmicWatch v2 / v3X muon detector's serial format, count rate
//!   with dead-time correction, and its simulator.
//! - [`frontend`]: Aloft's own detector front end (the firmware's logic, from
//!   `aloft-detector`) simulated behind a pseudo-terminal, with resets, watchdog and faults.
//! - [`pom`]: the 2B Technologies ozone monitor's serial data line, and its simulator.
//! - [`bme280`], [`ms5611`], [`scd41`], [`ms4525do`], [`icm20948`] (with its attitude
//!   fusion), [`sps30`], [`sbs`] (the smart battery on SMBus): I2C drivers generic over
//!   embedded-hal 1.0 [`embedded_hal::i2c::I2c`], each with a register-level simulator in
//!   its `sim` module.
//! - [`airspeed`]: indicated and true airspeed from differential pressure.
//! - [`atmosphere`]: the ICAO standard atmosphere.
//! - [`flight`]: one seeded flight scenario (a climb in wave to 12 km) that drives every
//!   simulator coherently, and the noise generator the simulators share.
//! - [`wind`]: the wind derived from other instruments (wind triangle, circling drift).
//! - [`serial`]: opening real serial ports, and running a simulated serial device behind a
//!   pseudo-terminal with real baud pacing and injectable faults.
//! - [`crc`]: the CRC-8 of Sensirion's words and SMBus's packet error code.
//! - [`i2c`]: opening a Linux i2c-dev bus, with retries; [`i2c::sim`] holds what the
//!   register-level simulators share (simulated clock and delay, bus faults).
//! - `fuzzing`: the bodies of the fuzz targets, so their corpora replay as tests.
//!
//! Invariants: parsers never panic on any input and return typed errors; values are in the
//! units of [`aloft_protocol::Quantity`]; a value outside its sensor's rated range is
//! flagged [`aloft_protocol::Quality::OUT_OF_RANGE`], never clamped.

pub mod airspeed;
pub mod atmosphere;
pub mod bme280;
pub mod cosmicwatch;
pub mod crc;
pub mod flight;
pub mod frontend;
#[doc(hidden)]
pub mod fuzzing;
pub mod gps;
pub mod i2c;
pub mod icm20948;
pub mod ms4525do;
pub mod ms5611;
pub mod pom;
pub mod sbs;
pub mod scd41;
pub mod serial;
pub mod sps30;
pub mod wind;

use aloft_protocol::{Reading, SensorId, Timestamp};

/// A decoded sample of a device that turns into readings (one per quantity).
pub trait Sample {
    /// Appends this sample's readings for `sensor`, taken at `time`, to `out`.
    ///
    /// A sample that carries its own better time (a GNSS fix's UTC) uses it for the UTC
    /// part and keeps `time.mono_ns`.
    fn push_readings(&self, sensor: SensorId, time: Timestamp, out: &mut Vec<Reading>);
}
