//! Sensirion SPS30 particulate matter sensor on I2C (address 0x69): driver and conversions.
//!
//! The SPS30 counts particles by laser scattering in a fan-driven air stream and reports,
//! once a second, four mass concentrations (PM1.0, PM2.5, PM4.0, PM10, µg m-3), five
//! cumulative number concentrations (NC0.5 .. NC10, # cm-3) and the typical particle size
//! (µm), as ten big-endian IEEE-754 floats when measurement is started with output format
//! 0x03. Every 16-bit word on the wire is followed by the Sensirion CRC-8
//! ([`crate::scd41::crc8`], the same polynomial 0x31 and initial value 0xFF), so each float
//! is two words and two CRCs: 60 bytes for a measurement.
//!
//! Fan cleaning blows the dust out at full fan speed for [`FAN_CLEANING_S`]; meanwhile no
//! new measurement comes (data-ready stays 0). The device cleans by itself every
//! auto-cleaning interval (a week by default) counted while it measures, and on command
//! ([`Sps30::start_fan_cleaning`]).
//!
//! Invariants: values come out in SI units (kg m-3, m-3, m); nothing is clamped; a mass
//! concentration above the rated 1000 µg m-3 is flagged [`Quality::OUT_OF_RANGE`] (that
//! reading only), an operating temperature outside -10..60 °C flags every reading of the
//! measurement OUT_OF_RANGE, a configured temperature input that is stale or missing flags
//! them [`Quality::DEGRADED_INPUT`], and a fan or laser error in the device status
//! register flags them [`Quality::INVALID`]; a non-finite float on the wire is a typed
//! [`Error::NotFinite`], never a reading. [`sim`] holds a register-level model.

pub mod sim;

use aloft_protocol::{Quality, Quantity, Reading, SensorDescriptor, SensorId, Timestamp};
use embedded_hal::delay::DelayNs;
use embedded_hal::i2c::I2c;

use crate::Sample;
use crate::scd41::{CrcMismatch, decode_words, encode_word};

/// The SPS30's fixed I2C address.
pub const ADDRESS: u8 = 0x69;

/// Top of the rated mass concentration range, kg m-3 (1000 µg m-3).
pub const MASS_MAX_KG_M3: f64 = 1_000e-9;
/// Lowest rated operating temperature, K (-10 °C).
pub const OPERATING_MIN_K: f64 = 263.15;
/// Highest rated operating temperature, K (60 °C).
pub const OPERATING_MAX_K: f64 = 333.15;
/// How long a fan cleaning lasts, s.
pub const FAN_CLEANING_S: u32 = 10;
/// The factory auto-cleaning interval, s (one week).
pub const DEFAULT_AUTO_CLEANING_INTERVAL_S: u32 = 604_800;
/// A new measurement every second while measuring.
pub const MEASUREMENT_PERIOD_MS: u32 = 1_000;

/// µg m-3 in kg m-3.
const UG_M3: f64 = 1e-9;
/// # cm-3 in m-3.
const PER_CM3: f64 = 1e6;
/// µm in m.
const UM: f64 = 1e-6;

/// Command codes (16-bit pointers) and execution times from the SPS30 datasheet.
pub mod command {
    /// Start measurement (1 argument word: output format, then a dummy byte).
    pub const START_MEASUREMENT: u16 = 0x0010;
    /// Big-endian IEEE-754 float output, the argument's first byte.
    pub const FLOAT_FORMAT: u8 = 0x03;
    /// Stop measurement (back to idle).
    pub const STOP_MEASUREMENT: u16 = 0x0104;
    /// Data-ready flag (1 word: 0x0001 when a new measurement is ready).
    pub const READ_DATA_READY: u16 = 0x0202;
    /// Measured values (10 floats, 20 words).
    pub const READ_MEASURED_VALUES: u16 = 0x0300;
    /// Start a fan cleaning now (measurement mode only).
    pub const START_FAN_CLEANING: u16 = 0x5607;
    /// Read (no argument) or write (2 argument words) the auto-cleaning interval, s.
    pub const AUTO_CLEANING_INTERVAL: u16 = 0x8004;
    /// Device status register (2 words).
    pub const READ_DEVICE_STATUS: u16 = 0xD206;
    /// Serial number: up to 32 ASCII characters, NUL-terminated (16 words).
    pub const READ_SERIAL_NUMBER: u16 = 0xD033;
    /// Firmware version: major and minor byte (1 word).
    pub const READ_FIRMWARE_VERSION: u16 = 0xD100;
    /// Soft reset (back to idle with the stored settings).
    pub const RESET: u16 = 0xD304;

    /// Execution time of start and stop measurement, ms.
    pub const START_STOP_MS: u32 = 20;
    /// Execution time of reset, ms.
    pub const RESET_MS: u32 = 100;
    /// Time between setting a read pointer and reading, and after a write of a setting, ms.
    pub const COMMAND_MS: u32 = 5;
}

/// Bits of the device status register.
pub mod status {
    /// The fan speed is more than 10 % off its target (a warning; values still valid).
    pub const FAN_SPEED_WARNING: u32 = 1 << 21;
    /// The laser current is out of range: the values are unusable.
    pub const LASER_ERROR: u32 = 1 << 5;
    /// The fan is switched on but turns at 0 RPM: the values are unusable.
    pub const FAN_ERROR: u32 = 1 << 4;
}

/// Errors of the SPS30 driver.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum Error<E> {
    /// The bus failed (for example a NACK).
    #[error("I2C bus error: {0:?}")]
    I2c(E),
    /// A word's CRC did not match: the caller counts it, the value is discarded.
    #[error("CRC mismatch in the SPS30's answer")]
    Crc,
    /// No new measurement is ready yet (one a second; none while the fan cleans).
    #[error("no new SPS30 measurement is ready")]
    NotReady,
    /// A value on the wire was NaN or infinite.
    #[error("the SPS30 sent a value that is not a finite number")]
    NotFinite,
}

impl<E> From<CrcMismatch> for Error<E> {
    fn from(_: CrcMismatch) -> Self {
        Error::Crc
    }
}

/// The device status register, as read.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct DeviceStatus(pub u32);

impl DeviceStatus {
    /// The fan or the laser failed: measurements are not to be trusted.
    pub fn has_error(self) -> bool {
        self.0 & (status::FAN_ERROR | status::LASER_ERROR) != 0
    }

    /// The fan speed is off its target.
    pub fn fan_speed_warning(self) -> bool {
        self.0 & status::FAN_SPEED_WARNING != 0
    }

    /// What is wrong, in words (empty when nothing is).
    pub fn describe(self) -> String {
        let mut what = Vec::new();
        if self.0 & status::FAN_ERROR != 0 {
            what.push("fan error");
        }
        if self.0 & status::LASER_ERROR != 0 {
            what.push("laser error");
        }
        if self.fan_speed_warning() {
            what.push("fan speed warning");
        }
        what.join(", ")
    }
}

/// One measurement as the device reports it, in its own units.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct RawMeasurement {
    /// PM1.0, PM2.5, PM4.0, PM10 mass concentrations, µg m-3.
    pub mass_ug_m3: [f32; 4],
    /// NC0.5, NC1.0, NC2.5, NC4.0, NC10 number concentrations, # cm-3.
    pub number_per_cm3: [f32; 5],
    /// Typical particle size, µm.
    pub typical_size_um: f32,
}

impl RawMeasurement {
    /// The ten floats in wire order.
    pub fn values(&self) -> [f32; 10] {
        let [m1, m25, m4, m10] = self.mass_ug_m3;
        let [n05, n1, n25, n4, n10] = self.number_per_cm3;
        [
            m1,
            m25,
            m4,
            m10,
            n05,
            n1,
            n25,
            n4,
            n10,
            self.typical_size_um,
        ]
    }

    /// From the ten floats in wire order.
    pub fn from_values(v: [f32; 10]) -> Self {
        RawMeasurement {
            mass_ug_m3: [v[0], v[1], v[2], v[3]],
            number_per_cm3: [v[4], v[5], v[6], v[7], v[8]],
            typical_size_um: v[9],
        }
    }

    /// Decodes the 60 bytes of a measured-values answer (20 words, each with its CRC).
    ///
    /// Any slice: a short one is a CRC error and a non-finite float [`Error::NotFinite`],
    /// never a panic.
    pub fn decode<E>(bytes: &[u8]) -> Result<Self, Error<E>> {
        let words = decode_words::<20>(bytes)?;
        let mut values = [0f32; 10];
        for (value, pair) in values.iter_mut().zip(words.chunks_exact(2)) {
            let (hi, lo) = (pair.first().copied(), pair.get(1).copied());
            let (Some(hi), Some(lo)) = (hi, lo) else {
                return Err(Error::Crc);
            };
            *value = f32::from_bits((u32::from(hi) << 16) | u32::from(lo));
            if !value.is_finite() {
                return Err(Error::NotFinite);
            }
        }
        Ok(RawMeasurement::from_values(values))
    }

    /// The 60 bytes the device sends for these values.
    pub fn encode(&self) -> Vec<u8> {
        self.values()
            .into_iter()
            .flat_map(|v| {
                let bits = v.to_bits();
                [(bits >> 16) as u16, bits as u16]
            })
            .flat_map(encode_word)
            .collect()
    }
}

/// The operating temperature a measurement was taken at, as the agent knows it.
#[derive(Debug, Clone, Copy, PartialEq, Default)]
pub enum OperatingAir {
    /// No temperature input is configured: nothing is flagged for it.
    #[default]
    NotConfigured,
    /// The configured input's fresh value, K, with its own quality.
    Known {
        /// Temperature, K.
        temperature_k: f64,
        /// The input reading's quality.
        quality: Quality,
    },
    /// The configured input has no fresh value.
    Stale,
}

/// A decoded measurement with what is known about the conditions it was taken in.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Measurement {
    /// The values as sent.
    pub raw: RawMeasurement,
    /// The device status read with it.
    pub status: DeviceStatus,
    /// The operating temperature.
    pub air: OperatingAir,
}

impl Measurement {
    /// The flags every reading of this measurement carries.
    pub fn common_quality(&self) -> Quality {
        let mut q = Quality::GOOD;
        match self.air {
            OperatingAir::NotConfigured => {}
            OperatingAir::Stale => q |= Quality::DEGRADED_INPUT,
            OperatingAir::Known {
                temperature_k,
                quality,
            } => {
                if !(OPERATING_MIN_K..=OPERATING_MAX_K).contains(&temperature_k) {
                    q |= Quality::OUT_OF_RANGE;
                }
                if quality.contains(Quality::OUT_OF_RANGE)
                    || quality.contains(Quality::INVALID)
                    || quality.contains(Quality::DEGRADED_INPUT)
                {
                    q |= Quality::DEGRADED_INPUT;
                }
            }
        }
        if self.status.has_error() {
            q |= Quality::INVALID;
        }
        q
    }

    /// Mass concentrations PM1.0, PM2.5, PM4.0, PM10, kg m-3.
    pub fn mass_kg_m3(&self) -> [f64; 4] {
        self.raw.mass_ug_m3.map(|v| f64::from(v) * UG_M3)
    }

    /// Number concentrations NC0.5 .. NC10, m-3.
    pub fn number_per_m3(&self) -> [f64; 5] {
        self.raw.number_per_cm3.map(|v| f64::from(v) * PER_CM3)
    }

    /// Typical particle size, m.
    pub fn typical_size_m(&self) -> f64 {
        f64::from(self.raw.typical_size_um) * UM
    }
}

/// The quantities of the mass concentrations, in wire order.
pub const MASS_QUANTITIES: [Quantity; 4] = [
    Quantity::Pm1MassConcentration,
    Quantity::Pm2p5MassConcentration,
    Quantity::Pm4MassConcentration,
    Quantity::Pm10MassConcentration,
];

/// The quantities of the number concentrations, in wire order.
pub const NUMBER_QUANTITIES: [Quantity; 5] = [
    Quantity::Nc0p5NumberConcentration,
    Quantity::Nc1NumberConcentration,
    Quantity::Nc2p5NumberConcentration,
    Quantity::Nc4NumberConcentration,
    Quantity::Nc10NumberConcentration,
];

impl Sample for Measurement {
    fn push_readings(&self, sensor: SensorId, time: Timestamp, out: &mut Vec<Reading>) {
        let common = self.common_quality();
        let reading = |quantity, value, quality| Reading {
            sensor,
            quantity,
            time,
            value,
            quality,
        };
        for (quantity, value) in MASS_QUANTITIES.into_iter().zip(self.mass_kg_m3()) {
            let mut q = common;
            if !(0.0..=MASS_MAX_KG_M3).contains(&value) {
                q |= Quality::OUT_OF_RANGE;
            }
            out.push(reading(quantity, value, q));
        }
        for (quantity, value) in NUMBER_QUANTITIES.into_iter().zip(self.number_per_m3()) {
            let mut q = common;
            if value < 0.0 {
                q |= Quality::OUT_OF_RANGE;
            }
            out.push(reading(quantity, value, q));
        }
        out.push(reading(
            Quantity::TypicalParticleSize,
            self.typical_size_m(),
            common,
        ));
    }
}

/// What [`Sps30::init`] learned from the device.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DeviceInfo {
    /// The serial number, as the device spells it.
    pub serial_number: String,
    /// Firmware major and minor version.
    pub firmware: (u8, u8),
    /// The auto-cleaning interval in force, s.
    pub auto_cleaning_interval_s: u32,
}

/// Driver of one SPS30. Owns its bus and delay.
#[derive(Debug)]
pub struct Sps30<I2C, D> {
    bus: I2C,
    delay: D,
    info: Option<DeviceInfo>,
    auto_cleaning_interval_s: Option<u32>,
}

impl<I2C: I2c, D: DelayNs> Sps30<I2C, D> {
    /// A driver for the SPS30 on `bus`. Talks to the device only from [`Sps30::init`] on.
    pub fn new(bus: I2C, delay: D) -> Self {
        Sps30 {
            bus,
            delay,
            info: None,
            auto_cleaning_interval_s: None,
        }
    }

    /// Sets the auto-cleaning interval [`Sps30::init`] writes (`None`: the device's own).
    pub fn with_auto_cleaning_interval(mut self, seconds: Option<u32>) -> Self {
        self.auto_cleaning_interval_s = seconds;
        self
    }

    /// Gives the bus back.
    pub fn destroy(self) -> I2C {
        self.bus
    }

    /// (Re)initialises the device whatever state it is in: soft reset (which also stops a
    /// measurement that still runs), serial number and firmware version, the auto-cleaning
    /// interval (written if one was asked for, read back either way), then start
    /// measurement with float output.
    pub fn init(&mut self) -> Result<DeviceInfo, Error<I2C::Error>> {
        self.write(command::RESET, &[])?;
        self.delay.delay_ms(command::RESET_MS);
        let serial_number = self.read_serial_number()?;
        let [version] = self.read_words::<1>(command::READ_FIRMWARE_VERSION)?;
        let [major, minor] = version.to_be_bytes();
        // The interval lives in the device's flash: written only when it differs.
        let mut auto_cleaning_interval_s = self.read_auto_cleaning_interval()?;
        if let Some(seconds) = self.auto_cleaning_interval_s
            && seconds != auto_cleaning_interval_s
        {
            self.write_auto_cleaning_interval(seconds)?;
            auto_cleaning_interval_s = self.read_auto_cleaning_interval()?;
        }
        self.start_measurement()?;
        let info = DeviceInfo {
            serial_number,
            firmware: (major, minor),
            auto_cleaning_interval_s,
        };
        tracing::debug!(serial = %info.serial_number, major, minor, auto_cleaning_interval_s, "SPS30 initialised.");
        self.info = Some(info.clone());
        Ok(info)
    }

    /// What the last [`Sps30::init`] learned.
    pub fn info(&self) -> Option<&DeviceInfo> {
        self.info.as_ref()
    }

    /// What this sensor is, with its serial number, firmware and cleaning interval once
    /// read.
    pub fn descriptor(&self) -> SensorDescriptor {
        let mut d = SensorDescriptor::new("Sensirion SPS30")
            .with_integer("address", i64::from(ADDRESS))
            .with_real("mass_concentration_max_kg_m3", MASS_MAX_KG_M3)
            .with_real("operating_temperature_min_k", OPERATING_MIN_K)
            .with_real("operating_temperature_max_k", OPERATING_MAX_K);
        if let Some(info) = &self.info {
            d = d.with_integer(
                "auto_cleaning_interval_s",
                i64::from(info.auto_cleaning_interval_s),
            );
            d.firmware = Some(format!("{}.{}", info.firmware.0, info.firmware.1));
            d.serial_number = Some(info.serial_number.clone());
        }
        d
    }

    /// Starts measuring, one measurement a second, as big-endian floats.
    pub fn start_measurement(&mut self) -> Result<(), Error<I2C::Error>> {
        self.write(
            command::START_MEASUREMENT,
            &[u16::from_be_bytes([command::FLOAT_FORMAT, 0x00])],
        )?;
        self.delay.delay_ms(command::START_STOP_MS);
        Ok(())
    }

    /// Stops measuring.
    pub fn stop_measurement(&mut self) -> Result<(), Error<I2C::Error>> {
        self.write(command::STOP_MEASUREMENT, &[])?;
        self.delay.delay_ms(command::START_STOP_MS);
        Ok(())
    }

    /// Whether a new measurement is ready.
    pub fn data_ready(&mut self) -> Result<bool, Error<I2C::Error>> {
        let [flag] = self.read_words::<1>(command::READ_DATA_READY)?;
        Ok(flag & 0x0001 != 0)
    }

    /// Reads the measured values without asking whether new ones are ready.
    pub fn read_measured_values(&mut self) -> Result<RawMeasurement, Error<I2C::Error>> {
        let mut buf = [0u8; 60];
        self.read_into(command::READ_MEASURED_VALUES, &mut buf)?;
        RawMeasurement::decode(&buf)
    }

    /// The device status register.
    pub fn read_status(&mut self) -> Result<DeviceStatus, Error<I2C::Error>> {
        let [hi, lo] = self.read_words::<2>(command::READ_DEVICE_STATUS)?;
        Ok(DeviceStatus((u32::from(hi) << 16) | u32::from(lo)))
    }

    /// A new measurement with the status register read alongside, or [`Error::NotReady`].
    pub fn measurement(&mut self, air: OperatingAir) -> Result<Measurement, Error<I2C::Error>> {
        if !self.data_ready()? {
            return Err(Error::NotReady);
        }
        let raw = self.read_measured_values()?;
        let status = self.read_status()?;
        Ok(Measurement { raw, status, air })
    }

    /// Starts a fan cleaning (10 s without new measurements). Measurement mode only.
    pub fn start_fan_cleaning(&mut self) -> Result<(), Error<I2C::Error>> {
        self.write(command::START_FAN_CLEANING, &[])?;
        self.delay.delay_ms(command::COMMAND_MS);
        Ok(())
    }

    /// Reads the auto-cleaning interval, s.
    pub fn read_auto_cleaning_interval(&mut self) -> Result<u32, Error<I2C::Error>> {
        let [hi, lo] = self.read_words::<2>(command::AUTO_CLEANING_INTERVAL)?;
        Ok((u32::from(hi) << 16) | u32::from(lo))
    }

    /// Writes the auto-cleaning interval, s (0 disables it). Kept for the next init too.
    pub fn write_auto_cleaning_interval(&mut self, seconds: u32) -> Result<(), Error<I2C::Error>> {
        self.write(
            command::AUTO_CLEANING_INTERVAL,
            &[(seconds >> 16) as u16, seconds as u16],
        )?;
        self.delay.delay_ms(command::COMMAND_MS);
        self.auto_cleaning_interval_s = Some(seconds);
        if let Some(info) = self.info.as_mut() {
            info.auto_cleaning_interval_s = seconds;
        }
        Ok(())
    }

    /// Reads the serial number (ASCII up to the first NUL).
    pub fn read_serial_number(&mut self) -> Result<String, Error<I2C::Error>> {
        let words = self.read_words::<16>(command::READ_SERIAL_NUMBER)?;
        let bytes: Vec<u8> = words
            .iter()
            .flat_map(|w| w.to_be_bytes())
            .take_while(|&b| b != 0)
            .collect();
        Ok(String::from_utf8_lossy(&bytes).into_owned())
    }

    fn write(&mut self, code: u16, arguments: &[u16]) -> Result<(), Error<I2C::Error>> {
        let mut bytes = [0u8; 8];
        let [c0, c1] = code.to_be_bytes();
        bytes[0] = c0;
        bytes[1] = c1;
        let mut len = 2;
        for word in arguments.iter().take(2) {
            for b in encode_word(*word) {
                if let Some(slot) = bytes.get_mut(len) {
                    *slot = b;
                    len += 1;
                }
            }
        }
        self.bus
            .write(ADDRESS, bytes.get(..len).unwrap_or(&bytes))
            .map_err(Error::I2c)
    }

    fn read_into(&mut self, code: u16, buf: &mut [u8]) -> Result<(), Error<I2C::Error>> {
        self.bus
            .write(ADDRESS, &code.to_be_bytes())
            .map_err(Error::I2c)?;
        self.delay.delay_ms(command::COMMAND_MS);
        self.bus.read(ADDRESS, buf).map_err(Error::I2c)
    }

    fn read_words<const N: usize>(&mut self, code: u16) -> Result<[u16; N], Error<I2C::Error>> {
        let mut buf = [0u8; 48];
        let len = (3 * N).min(buf.len());
        let slice = buf.get_mut(..len).unwrap_or_default();
        self.read_into(code, slice)?;
        Ok(decode_words::<N>(slice)?)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    type E = embedded_hal::i2c::ErrorKind;

    fn sample() -> RawMeasurement {
        RawMeasurement::from_values([1.06, 1.11, 1.127, 1.13, 8.1, 9.19, 9.236, 9.239, 9.24, 0.6])
    }

    #[test]
    fn a_measurement_round_trips_through_its_sixty_wire_bytes() {
        let raw = sample();
        let bytes = raw.encode();
        assert_eq!(bytes.len(), 60);
        assert_eq!(RawMeasurement::decode::<E>(&bytes), Ok(raw));
    }

    #[test]
    fn readings_are_in_si_units_and_the_mass_range_is_flagged_alone() {
        let mut raw = sample();
        raw.mass_ug_m3[3] = 1_200.0;
        let m = Measurement {
            raw,
            status: DeviceStatus(0),
            air: OperatingAir::NotConfigured,
        };
        let mut out = Vec::new();
        m.push_readings(SensorId(1), Timestamp::monotonic(1), &mut out);
        assert_eq!(out.len(), 10);
        let pm25 = out
            .iter()
            .find(|r| r.quantity == Quantity::Pm2p5MassConcentration)
            .unwrap();
        assert!((pm25.value - 1.11e-9).abs() < 1e-12);
        assert_eq!(pm25.quality, Quality::GOOD);
        let pm10 = out
            .iter()
            .find(|r| r.quantity == Quantity::Pm10MassConcentration)
            .unwrap();
        assert!(pm10.quality.contains(Quality::OUT_OF_RANGE));
        let nc05 = out
            .iter()
            .find(|r| r.quantity == Quantity::Nc0p5NumberConcentration)
            .unwrap();
        assert!((nc05.value - 8.1e6).abs() < 1.0);
        let size = out
            .iter()
            .find(|r| r.quantity == Quantity::TypicalParticleSize)
            .unwrap();
        assert!((size.value - 0.6e-6).abs() < 1e-12);
    }

    #[test]
    fn the_operating_temperature_and_a_stale_input_flag_every_reading() {
        let at = |air| {
            Measurement {
                raw: sample(),
                status: DeviceStatus(0),
                air,
            }
            .common_quality()
        };
        let cold = at(OperatingAir::Known {
            temperature_k: 250.0,
            quality: Quality::GOOD,
        });
        assert_eq!(cold, Quality::OUT_OF_RANGE);
        let mild = at(OperatingAir::Known {
            temperature_k: 290.0,
            quality: Quality::GOOD,
        });
        assert_eq!(mild, Quality::GOOD);
        assert_eq!(at(OperatingAir::Stale), Quality::DEGRADED_INPUT);
        let broken = Measurement {
            raw: sample(),
            status: DeviceStatus(status::LASER_ERROR),
            air: OperatingAir::NotConfigured,
        };
        assert_eq!(broken.common_quality(), Quality::INVALID);
        assert_eq!(
            DeviceStatus(status::FAN_ERROR | status::FAN_SPEED_WARNING).describe(),
            "fan error, fan speed warning"
        );
    }

    #[test]
    fn a_nan_on_the_wire_is_a_typed_error() {
        let mut raw = sample();
        raw.typical_size_um = f32::NAN;
        assert_eq!(
            RawMeasurement::decode::<E>(&raw.encode()),
            Err(Error::NotFinite)
        );
    }

    proptest! {
        #[test]
        fn any_bytes_decode_to_an_error_or_finite_values(bytes in proptest::collection::vec(any::<u8>(), 0..80)) {
            if let Ok(raw) = RawMeasurement::decode::<E>(&bytes) {
                prop_assert!(raw.values().iter().all(|v| v.is_finite()));
            }
        }

        #[test]
        fn any_finite_values_round_trip_and_one_flipped_byte_is_caught(
            values in proptest::array::uniform10(-1e6f32..1e6),
            flip in 0usize..60,
            mask in 1u8..=255,
        ) {
            let raw = RawMeasurement::from_values(values);
            let mut bytes = raw.encode();
            prop_assert_eq!(RawMeasurement::decode::<E>(&bytes), Ok(raw));
            bytes[flip] ^= mask;
            prop_assert!(RawMeasurement::decode::<E>(&bytes).is_err());
        }
    }
}
