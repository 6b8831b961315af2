//! Sensirion SCD41 photoacoustic CO2 sensor (I2C address 0x62): driver and conversions.
//!
//! The SCD41 speaks 16-bit commands; every 16-bit word it sends or receives is followed by
//! a Sensirion CRC-8 (polynomial 0x31, initial value 0xFF). A mismatch is a typed
//! [`Error::Crc`], never a silently wrong value.
//!
//! Its photoacoustic cell measures the number of CO2 molecules, so the mole fraction it
//! reports depends on the ambient pressure it is told: the agent feeds the static pressure
//! sensor's value through [`Scd41::set_ambient_pressure`]. The device accepts 700..1200 hPa
//! only; outside that the driver sends the nearest limit and flags every CO2 reading
//! [`Quality::OUT_OF_RANGE`] until a pressure inside the range is fed again. Until a pressure
//! has been fed at all, the device compensates for sea level and CO2 readings carry
//! [`Quality::DEGRADED_INPUT`].
//!
//! Invariants: values are in SI units (mol mol-1, K, fraction); nothing is clamped; a
//! temperature outside the rated -10..60 °C flags all three readings OUT_OF_RANGE.
//! [`sim`] holds a register-level model of the device.

pub mod sim;

use aloft_protocol::{Quality, Quantity, Reading, SensorDescriptor, SensorId, Timestamp};
use embedded_hal::delay::DelayNs;
use embedded_hal::i2c::I2c;

use crate::Sample;

/// The SCD41's fixed I2C address.
pub const ADDRESS: u8 = 0x62;

/// Lowest ambient pressure the SCD41 accepts for compensation, Pa.
pub const COMPENSATION_MIN_PA: f64 = 70_000.0;
/// Highest ambient pressure the SCD41 accepts for compensation, Pa.
pub const COMPENSATION_MAX_PA: f64 = 120_000.0;
/// Lowest rated operating temperature, K (-10 °C).
pub const RATED_MIN_K: f64 = 263.15;
/// Highest rated operating temperature, K (60 °C).
pub const RATED_MAX_K: f64 = 333.15;
/// Highest rated relative humidity (non-condensing), fraction.
pub const RATED_MAX_RH: f64 = 0.95;
/// Top of the SCD41's CO2 output range, ppm.
pub const CO2_MAX_PPM: f64 = 40_000.0;
/// Interval of periodic measurements, s.
pub const PERIOD_S: f64 = 5.0;

const CELSIUS_OFFSET_K: f64 = 273.15;

/// Command codes and execution times from the SCD4x datasheet.
pub mod command {
    /// Start periodic measurement (one every 5 s).
    pub const START_PERIODIC_MEASUREMENT: u16 = 0x21B1;
    /// Read the buffered measurement (3 words).
    pub const READ_MEASUREMENT: u16 = 0xEC05;
    /// Stop periodic measurement; takes 500 ms.
    pub const STOP_PERIODIC_MEASUREMENT: u16 = 0x3F86;
    /// Data-ready status (1 word; ready when its 11 least significant bits are non-zero).
    pub const GET_DATA_READY_STATUS: u16 = 0xE4B8;
    /// 48-bit serial number (3 words); idle only.
    pub const GET_SERIAL_NUMBER: u16 = 0x3682;
    /// Ambient pressure for compensation, hPa (1 argument word); also allowed while
    /// measuring periodically.
    pub const SET_AMBIENT_PRESSURE: u16 = 0xE000;
    /// Reload settings from EEPROM; idle only; takes 30 ms.
    pub const REINIT: u16 = 0x3646;
    /// One measurement on demand; takes 5000 ms.
    pub const MEASURE_SINGLE_SHOT: u16 = 0x219D;
    /// Wake from sleep; the device does not acknowledge it; takes 30 ms.
    pub const WAKE_UP: u16 = 0x36F6;

    /// Execution time of stop_periodic_measurement, ms.
    pub const STOP_MS: u32 = 500;
    /// Execution time of reinit and wake_up, ms.
    pub const REINIT_MS: u32 = 30;
    /// Execution time of the commands that answer with data, ms.
    pub const READ_MS: u32 = 1;
    /// Execution time of measure_single_shot, ms.
    pub const SINGLE_SHOT_MS: u32 = 5_000;
}

/// Sensirion CRC-8 (polynomial 0x31, initial 0xFF, no reflection, no final XOR) of `data`.
pub fn crc8(data: &[u8]) -> u8 {
    crate::crc::crc8_msb_first(0x31, 0xFF, data)
}

/// Errors of the SCD41 driver. Small and `Copy` when the bus error is: it sits on the poll
/// path.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum Error<E> {
    /// The bus failed (for example a NACK).
    #[error("I2C bus error: {0:?}")]
    I2c(E),
    /// A word's CRC did not match: the caller counts it, the value is discarded.
    #[error("CRC mismatch in the SCD41's answer")]
    Crc,
    /// No new measurement is buffered yet (periodic data every 5 s).
    #[error("no new SCD41 measurement is ready")]
    NotReady,
    /// The pressure fed for compensation is not a finite number.
    #[error("ambient pressure for compensation is not finite")]
    InvalidPressure,
}

/// A word's CRC did not match, or the answer was too short to hold its words.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("CRC mismatch in an SCD41 word")]
pub struct CrcMismatch;

impl<E> From<CrcMismatch> for Error<E> {
    fn from(_: CrcMismatch) -> Self {
        Error::Crc
    }
}

/// Decodes `N` words from their wire form (each word followed by its CRC).
///
/// Works on any slice length: a slice shorter than `3 * N` bytes is a CRC error, never a
/// panic, so a truncated read cannot produce a value.
pub fn decode_words<const N: usize>(bytes: &[u8]) -> Result<[u16; N], CrcMismatch> {
    let mut words = [0u16; N];
    let mut chunks = bytes.chunks_exact(3);
    for word in &mut words {
        match chunks.next() {
            Some(&[msb, lsb, crc]) if crc8(&[msb, lsb]) == crc => {
                *word = u16::from_be_bytes([msb, lsb]);
            }
            _ => return Err(CrcMismatch),
        }
    }
    Ok(words)
}

/// Encodes one word with its CRC, as the device and the bus carry it.
pub fn encode_word(word: u16) -> [u8; 3] {
    let [msb, lsb] = word.to_be_bytes();
    [msb, lsb, crc8(&[msb, lsb])]
}

/// The three raw words of a measurement.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RawMeasurement {
    /// CO2, ppm.
    pub co2_ppm: u16,
    /// Temperature ticks: T = -45 + 175 * raw / 65535 °C.
    pub temperature: u16,
    /// Humidity ticks: RH = 100 * raw / 65535 %.
    pub humidity: u16,
}

impl RawMeasurement {
    /// CO2 mole fraction, mol mol-1.
    pub fn co2_mol_mol(self) -> f64 {
        f64::from(self.co2_ppm) * 1e-6
    }

    /// Temperature, K.
    pub fn temperature_k(self) -> f64 {
        -45.0 + 175.0 * f64::from(self.temperature) / 65_535.0 + CELSIUS_OFFSET_K
    }

    /// Relative humidity, fraction.
    pub fn relative_humidity(self) -> f64 {
        f64::from(self.humidity) / 65_535.0
    }

    /// Raw temperature ticks for `temperature_k`, as the device would send them (rounded,
    /// and limited to what 16 bits can carry).
    pub fn temperature_ticks(temperature_k: f64) -> u16 {
        to_u16((temperature_k - CELSIUS_OFFSET_K + 45.0) * 65_535.0 / 175.0)
    }

    /// Raw humidity ticks for a relative humidity fraction.
    pub fn humidity_ticks(relative_humidity: f64) -> u16 {
        to_u16(relative_humidity * 65_535.0)
    }
}

/// Rounds to the nearest u16; what a 16-bit register can hold (NaN becomes 0).
fn to_u16(x: f64) -> u16 {
    // `as` saturates and maps NaN to 0: the register cannot hold anything else.
    x.round() as u16
}

/// What the device was told about ambient pressure when a measurement was read.
///
/// Recorded at read-out: a pressure fed less than one period before may not have applied to
/// the buffered result yet, so at a crossing of 700 hPa one reading's flag can lag by one
/// measurement (5 s).
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Compensation {
    /// No pressure fed since the last (re)init: the device assumes sea level.
    SeaLevel,
    /// A pressure was fed.
    Pressure {
        /// The pressure the caller asked for, Pa.
        requested_pa: f64,
        /// What was sent, hPa (the requested value, or the nearest limit).
        sent_hpa: u16,
    },
}

impl Compensation {
    /// True when the requested pressure was outside 700..1200 hPa and a limit was sent.
    pub fn out_of_range(self) -> bool {
        match self {
            Compensation::SeaLevel => false,
            Compensation::Pressure { requested_pa, .. } => {
                !(COMPENSATION_MIN_PA..=COMPENSATION_MAX_PA).contains(&requested_pa)
            }
        }
    }
}

/// One decoded SCD41 measurement with the compensation it was made under.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Measurement {
    /// The words as read.
    pub raw: RawMeasurement,
    /// The pressure compensation in force.
    pub compensation: Compensation,
}

impl Measurement {
    /// CO2 mole fraction, mol mol-1.
    pub fn co2_mol_mol(&self) -> f64 {
        self.raw.co2_mol_mol()
    }

    /// Temperature, K.
    pub fn temperature_k(&self) -> f64 {
        self.raw.temperature_k()
    }

    /// Relative humidity, fraction.
    pub fn relative_humidity(&self) -> f64 {
        self.raw.relative_humidity()
    }

    /// Flags every reading of this measurement shares: temperature outside the rated range.
    fn common_quality(&self) -> Quality {
        if (RATED_MIN_K..=RATED_MAX_K).contains(&self.temperature_k()) {
            Quality::GOOD
        } else {
            Quality::OUT_OF_RANGE
        }
    }

    /// Quality of the CO2 reading.
    pub fn co2_quality(&self) -> Quality {
        let mut q = self.common_quality();
        if self.compensation.out_of_range() || self.co2_mol_mol() * 1e6 > CO2_MAX_PPM {
            q |= Quality::OUT_OF_RANGE;
        }
        if self.compensation == Compensation::SeaLevel {
            q |= Quality::DEGRADED_INPUT;
        }
        q
    }

    /// Quality of the temperature reading.
    pub fn temperature_quality(&self) -> Quality {
        self.common_quality()
    }

    /// Quality of the relative-humidity reading.
    pub fn humidity_quality(&self) -> Quality {
        let mut q = self.common_quality();
        if self.relative_humidity() > RATED_MAX_RH {
            q |= Quality::OUT_OF_RANGE;
        }
        q
    }
}

impl Sample for Measurement {
    fn push_readings(&self, sensor: SensorId, time: Timestamp, out: &mut Vec<Reading>) {
        let reading = |quantity, value, quality| Reading {
            sensor,
            quantity,
            time,
            value,
            quality,
        };
        out.push(reading(
            Quantity::Co2MoleFraction,
            self.co2_mol_mol(),
            self.co2_quality(),
        ));
        out.push(reading(
            Quantity::AirTemperature,
            self.temperature_k(),
            self.temperature_quality(),
        ));
        out.push(reading(
            Quantity::RelativeHumidity,
            self.relative_humidity(),
            self.humidity_quality(),
        ));
    }
}

/// What the driver believes the device is doing.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    /// Idle: configuration commands are accepted.
    Idle,
    /// Measuring every 5 s.
    Periodic,
}

/// Driver of one SCD41. Owns its bus and delay.
#[derive(Debug)]
pub struct Scd41<I2C, D> {
    bus: I2C,
    delay: D,
    serial_number: Option<u64>,
    compensation: Compensation,
    mode: Mode,
}

impl<I2C: I2c, D: DelayNs> Scd41<I2C, D> {
    /// A driver for the SCD41 on `bus`. Talks to the device only from [`Scd41::init`] on.
    pub fn new(bus: I2C, delay: D) -> Self {
        Scd41 {
            bus,
            delay,
            serial_number: None,
            compensation: Compensation::SeaLevel,
            mode: Mode::Idle,
        }
    }

    /// Gives the bus back.
    pub fn destroy(self) -> I2C {
        self.bus
    }

    /// (Re)initialises the device whatever state it is in, and starts periodic measurement.
    ///
    /// The agent's soft restart calls this: wake up (in case it sleeps; the device does not
    /// acknowledge that, so its NACK is expected), stop a periodic measurement that may still
    /// run from before, reload settings, read the serial number, feed the last known
    /// ambient pressure again (reinit forgets it) and start measuring. Returns the serial
    /// number.
    pub fn init(&mut self) -> Result<u64, Error<I2C::Error>> {
        // The SCD41 never ACKs wake_up: ignoring this error is the datasheet's procedure.
        let _ = self.write_command(command::WAKE_UP);
        self.delay.delay_ms(command::REINIT_MS);
        self.stop_periodic_measurement()?;
        self.write_command(command::REINIT)?;
        self.delay.delay_ms(command::REINIT_MS);
        let serial = self.read_serial_number()?;
        if let Compensation::Pressure { requested_pa, .. } = self.compensation {
            self.set_ambient_pressure(requested_pa)?;
        }
        self.start_periodic_measurement()?;
        tracing::debug!(serial = format_args!("{serial:012X}"), "SCD41 initialised.");
        Ok(serial)
    }

    /// The serial number read at the last [`Scd41::init`] or [`Scd41::read_serial_number`].
    pub fn serial_number(&self) -> Option<u64> {
        self.serial_number
    }

    /// What the driver believes the device is doing.
    pub fn mode(&self) -> Mode {
        self.mode
    }

    /// The pressure compensation currently in force.
    pub fn compensation(&self) -> Compensation {
        self.compensation
    }

    /// What this sensor is, with its serial number once read.
    pub fn descriptor(&self) -> SensorDescriptor {
        let mut d =
            SensorDescriptor::new("Sensirion SCD41").with_integer("address", i64::from(ADDRESS));
        d.serial_number = self.serial_number.map(|s| format!("{s:012X}"));
        d
    }

    /// Reads the 48-bit serial number (idle only).
    pub fn read_serial_number(&mut self) -> Result<u64, Error<I2C::Error>> {
        let [a, b, c] = self.read_words::<3>(command::GET_SERIAL_NUMBER)?;
        let serial = (u64::from(a) << 32) | (u64::from(b) << 16) | u64::from(c);
        self.serial_number = Some(serial);
        Ok(serial)
    }

    /// Starts measuring every 5 s.
    pub fn start_periodic_measurement(&mut self) -> Result<(), Error<I2C::Error>> {
        self.write_command(command::START_PERIODIC_MEASUREMENT)?;
        self.mode = Mode::Periodic;
        Ok(())
    }

    /// Stops periodic measurement and waits the 500 ms the device needs.
    pub fn stop_periodic_measurement(&mut self) -> Result<(), Error<I2C::Error>> {
        self.write_command(command::STOP_PERIODIC_MEASUREMENT)?;
        self.delay.delay_ms(command::STOP_MS);
        self.mode = Mode::Idle;
        Ok(())
    }

    /// Reloads the device's settings from its EEPROM (idle only). Forgets the ambient
    /// pressure on the device, so the driver's record of it is reset too.
    pub fn reinit(&mut self) -> Result<(), Error<I2C::Error>> {
        self.write_command(command::REINIT)?;
        self.delay.delay_ms(command::REINIT_MS);
        self.compensation = Compensation::SeaLevel;
        Ok(())
    }

    /// Whether a new measurement is buffered.
    pub fn data_ready(&mut self) -> Result<bool, Error<I2C::Error>> {
        let [status] = self.read_words::<1>(command::GET_DATA_READY_STATUS)?;
        Ok(status & 0x07FF != 0)
    }

    /// Feeds the ambient (static) pressure, Pa, for CO2 compensation. Allowed while
    /// measuring. Outside 700..1200 hPa the nearest limit is sent and CO2 readings are
    /// flagged OUT_OF_RANGE. Returns what is now in force.
    pub fn set_ambient_pressure(
        &mut self,
        pressure_pa: f64,
    ) -> Result<Compensation, Error<I2C::Error>> {
        if !pressure_pa.is_finite() {
            return Err(Error::InvalidPressure);
        }
        let sent_hpa = to_u16(pressure_pa.clamp(COMPENSATION_MIN_PA, COMPENSATION_MAX_PA) / 100.0);
        self.write_command_with_argument(command::SET_AMBIENT_PRESSURE, sent_hpa)?;
        self.delay.delay_ms(command::READ_MS);
        self.compensation = Compensation::Pressure {
            requested_pa: pressure_pa,
            sent_hpa,
        };
        Ok(self.compensation)
    }

    /// Reads the buffered measurement if one is ready, else [`Error::NotReady`] (the device
    /// would NACK a read of an empty buffer).
    pub fn measurement(&mut self) -> Result<Measurement, Error<I2C::Error>> {
        if !self.data_ready()? {
            return Err(Error::NotReady);
        }
        self.read_measurement()
    }

    /// Reads the buffered measurement without asking whether one is ready.
    pub fn read_measurement(&mut self) -> Result<Measurement, Error<I2C::Error>> {
        let [co2_ppm, temperature, humidity] = self.read_words::<3>(command::READ_MEASUREMENT)?;
        Ok(Measurement {
            raw: RawMeasurement {
                co2_ppm,
                temperature,
                humidity,
            },
            compensation: self.compensation,
        })
    }

    /// One measurement on demand from idle: sends the command, waits the 5 s it takes
    /// (on the delay the driver owns) and reads the result.
    pub fn single_shot_measurement(&mut self) -> Result<Measurement, Error<I2C::Error>> {
        self.write_command(command::MEASURE_SINGLE_SHOT)?;
        self.delay.delay_ms(command::SINGLE_SHOT_MS);
        self.read_measurement()
    }

    fn write_command(&mut self, code: u16) -> Result<(), Error<I2C::Error>> {
        self.bus
            .write(ADDRESS, &code.to_be_bytes())
            .map_err(Error::I2c)
    }

    fn write_command_with_argument(
        &mut self,
        code: u16,
        argument: u16,
    ) -> Result<(), Error<I2C::Error>> {
        let [c0, c1] = code.to_be_bytes();
        let [a0, a1, crc] = encode_word(argument);
        self.bus
            .write(ADDRESS, &[c0, c1, a0, a1, crc])
            .map_err(Error::I2c)
    }

    /// Sends a command, waits its execution time, reads `N` words and checks their CRCs.
    fn read_words<const N: usize>(&mut self, code: u16) -> Result<[u16; N], Error<I2C::Error>> {
        self.write_command(code)?;
        self.delay.delay_ms(command::READ_MS);
        // Three words are the most any command returns.
        let mut buf = [0u8; 9];
        let bytes = buf.get_mut(..N * 3).ok_or(Error::Crc)?;
        self.bus.read(ADDRESS, bytes).map_err(Error::I2c)?;
        Ok(decode_words::<N>(bytes)?)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use embedded_hal::i2c::{ErrorKind, NoAcknowledgeSource};
    use embedded_hal_mock::eh1::delay::NoopDelay;
    use embedded_hal_mock::eh1::i2c::{Mock, Transaction};
    use proptest::prelude::*;

    fn command_bytes(code: u16) -> Vec<u8> {
        code.to_be_bytes().to_vec()
    }

    fn words(values: &[u16]) -> Vec<u8> {
        values.iter().flat_map(|w| encode_word(*w)).collect()
    }

    fn measurement(
        co2_ppm: u16,
        temperature: u16,
        humidity: u16,
        compensation: Compensation,
    ) -> Measurement {
        Measurement {
            raw: RawMeasurement {
                co2_ppm,
                temperature,
                humidity,
            },
            compensation,
        }
    }

    const FED_1000_HPA: Compensation = Compensation::Pressure {
        requested_pa: 100_000.0,
        sent_hpa: 1000,
    };

    #[test]
    fn crc_matches_the_datasheet_example() {
        assert_eq!(crc8(&[0xBE, 0xEF]), 0x92);
    }

    #[test]
    fn datasheet_read_measurement_example_decodes_to_500_ppm_25_c_37_percent() {
        // SCD4x datasheet, read_measurement example: 500 ppm, 25 °C, 37 %RH.
        let bytes = [0x01, 0xF4, 0x33, 0x66, 0x67, 0xA2, 0x5E, 0xB9, 0x3C];
        let [co2, t, rh] = decode_words::<3>(&bytes).unwrap();
        let m = measurement(co2, t, rh, FED_1000_HPA);
        assert_eq!(co2, 500);
        assert!((m.co2_mol_mol() - 500e-6).abs() < 1e-12);
        assert!(
            (m.temperature_k() - 298.15).abs() < 0.01,
            "{}",
            m.temperature_k()
        );
        assert!(
            (m.relative_humidity() - 0.37).abs() < 1e-4,
            "{}",
            m.relative_humidity()
        );
    }

    #[test]
    fn a_word_with_a_wrong_crc_is_a_crc_error_not_a_value() {
        let mut bytes = words(&[500, 0x6667, 0x5EB9]);
        bytes[5] ^= 0x01;
        assert_eq!(decode_words::<3>(&bytes), Err(CrcMismatch));
        assert_eq!(decode_words::<3>(&bytes[..8]), Err(CrcMismatch));
    }

    #[test]
    fn below_minus_ten_celsius_every_reading_is_out_of_range() {
        let cold = RawMeasurement::temperature_ticks(223.15);
        let m = measurement(420, cold, 30_000, FED_1000_HPA);
        let mut out = Vec::new();
        m.push_readings(SensorId(3), Timestamp::monotonic(1), &mut out);
        assert_eq!(out.len(), 3);
        assert!(
            out.iter()
                .all(|r| r.quality.contains(Quality::OUT_OF_RANGE))
        );
        let warm = measurement(
            420,
            RawMeasurement::temperature_ticks(293.15),
            30_000,
            FED_1000_HPA,
        );
        assert!(warm.co2_quality().is_good());
        assert!(warm.temperature_quality().is_good());
        assert!(warm.humidity_quality().is_good());
    }

    #[test]
    fn compensation_outside_the_accepted_range_flags_only_co2() {
        let thin_air = Compensation::Pressure {
            requested_pa: 19_400.0,
            sent_hpa: 700,
        };
        let m = measurement(
            120,
            RawMeasurement::temperature_ticks(293.15),
            30_000,
            thin_air,
        );
        assert!(m.co2_quality().contains(Quality::OUT_OF_RANGE));
        assert!(m.temperature_quality().is_good());
        let unfed = measurement(
            420,
            RawMeasurement::temperature_ticks(293.15),
            30_000,
            Compensation::SeaLevel,
        );
        assert_eq!(unfed.co2_quality(), Quality::DEGRADED_INPUT);
    }

    #[test]
    fn init_runs_the_recovery_sequence_and_reads_the_serial_number() {
        let serial: u64 = 0x1234_5678_9ABC;
        let expectations = [
            Transaction::write(ADDRESS, command_bytes(command::WAKE_UP))
                .with_error(ErrorKind::NoAcknowledge(NoAcknowledgeSource::Data)),
            Transaction::write(ADDRESS, command_bytes(command::STOP_PERIODIC_MEASUREMENT)),
            Transaction::write(ADDRESS, command_bytes(command::REINIT)),
            Transaction::write(ADDRESS, command_bytes(command::GET_SERIAL_NUMBER)),
            Transaction::read(ADDRESS, words(&[0x1234, 0x5678, 0x9ABC])),
            Transaction::write(ADDRESS, command_bytes(command::START_PERIODIC_MEASUREMENT)),
        ];
        let mut bus = Mock::new(&expectations);
        let mut scd = Scd41::new(bus.clone(), NoopDelay::new());
        assert_eq!(scd.init(), Ok(serial));
        assert_eq!(scd.mode(), Mode::Periodic);
        let d = scd.descriptor();
        assert_eq!(d.serial_number.as_deref(), Some("123456789ABC"));
        bus.done();
    }

    #[test]
    fn a_measurement_asks_for_data_ready_then_reads_three_words() {
        let expectations = [
            Transaction::write(ADDRESS, vec![0xE0, 0x00, 0x03, 0x4C, crc8(&[0x03, 0x4C])]),
            Transaction::write(ADDRESS, command_bytes(command::GET_DATA_READY_STATUS)),
            Transaction::read(ADDRESS, words(&[0x0000])),
            Transaction::write(ADDRESS, command_bytes(command::GET_DATA_READY_STATUS)),
            Transaction::read(ADDRESS, words(&[0x8006])),
            Transaction::write(ADDRESS, command_bytes(command::READ_MEASUREMENT)),
            Transaction::read(
                ADDRESS,
                vec![0x01, 0xF4, 0x33, 0x66, 0x67, 0xA2, 0x5E, 0xB9, 0x3C],
            ),
        ];
        let mut bus = Mock::new(&expectations);
        let mut scd = Scd41::new(bus.clone(), NoopDelay::new());
        // 844 hPa is 0x034C.
        scd.set_ambient_pressure(84_400.0).unwrap();
        assert_eq!(scd.measurement(), Err(Error::NotReady));
        let m = scd.measurement().unwrap();
        assert_eq!(m.raw.co2_ppm, 500);
        assert!(m.co2_quality().is_good());
        bus.done();
    }

    #[test]
    fn pressure_below_700_hpa_sends_the_limit_and_flags_co2() {
        let expectations = [Transaction::write(
            ADDRESS,
            vec![0xE0, 0x00, 0x02, 0xBC, crc8(&[0x02, 0xBC])],
        )];
        let mut bus = Mock::new(&expectations);
        let mut scd = Scd41::new(bus.clone(), NoopDelay::new());
        let c = scd.set_ambient_pressure(19_400.0).unwrap();
        assert_eq!(
            c,
            Compensation::Pressure {
                requested_pa: 19_400.0,
                sent_hpa: 700
            }
        );
        assert!(c.out_of_range());
        assert_eq!(
            scd.set_ambient_pressure(f64::NAN),
            Err(Error::InvalidPressure)
        );
        bus.done();
    }

    #[test]
    fn a_crc_error_on_the_bus_is_a_typed_error() {
        let mut bad = words(&[500, 0x6667, 0x5EB9]);
        bad[8] ^= 0xFF;
        let expectations = [
            Transaction::write(ADDRESS, command_bytes(command::READ_MEASUREMENT)),
            Transaction::read(ADDRESS, bad),
        ];
        let mut bus = Mock::new(&expectations);
        let mut scd = Scd41::new(bus.clone(), NoopDelay::new());
        assert_eq!(scd.read_measurement(), Err(Error::Crc));
        bus.done();
    }

    proptest! {
        #[test]
        fn decoding_arbitrary_bytes_never_panics(bytes in proptest::collection::vec(any::<u8>(), 0..16)) {
            let _ = decode_words::<3>(&bytes);
            let _ = decode_words::<1>(&bytes);
        }

        #[test]
        fn words_round_trip_through_their_wire_form(a: u16, b: u16, c: u16) {
            let bytes = words(&[a, b, c]);
            prop_assert_eq!(decode_words::<3>(&bytes), Ok([a, b, c]));
        }

        #[test]
        fn conversions_are_finite_and_in_physical_bounds_over_the_raw_space(co2: u16, t: u16, rh: u16, p in -1e6f64..1e6) {
            let m = measurement(co2, t, rh, Compensation::Pressure { requested_pa: p, sent_hpa: 700 });
            prop_assert!(m.co2_mol_mol() >= 0.0 && m.co2_mol_mol() <= 0.065_535 + 1e-12);
            prop_assert!(m.temperature_k() >= 228.15 - 1e-9 && m.temperature_k() <= 403.15 + 1e-9);
            prop_assert!((0.0..=1.0).contains(&m.relative_humidity()));
            let mut out = Vec::new();
            m.push_readings(SensorId(0), Timestamp::monotonic(0), &mut out);
            prop_assert_eq!(out.len(), 3);
        }

        #[test]
        fn temperature_ticks_invert_the_conversion(t in 0u16..=u16::MAX) {
            let k = RawMeasurement { co2_ppm: 0, temperature: t, humidity: 0 }.temperature_k();
            prop_assert_eq!(RawMeasurement::temperature_ticks(k), t);
        }
    }
}
