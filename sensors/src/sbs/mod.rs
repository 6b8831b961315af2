//! A smart battery on SMBus (Smart Battery Data Specification 1.1, as a TI bq40z50 fuel
//! gauge speaks it): the avionics pack's voltage, current, state of charge and temperature.
//!
//! The gauge answers SBS commands with SMBus "read word" (two bytes, low byte first) and
//! "block read" (a count byte, then that many bytes) replies, each optionally followed by a
//! packet error code: CRC-8 (polynomial 0x07, initial value 0) over every byte of the
//! transaction, addresses included. The reply decoders ([`decode_word`], [`decode_block`])
//! carry no I/O and take any bytes: a short reply, a count beyond 32 or a PEC that does
//! not match is a typed error.
//!
//! Units as the specification fixes them: Temperature in 0.1 K, Voltage in mV, Current in
//! mA (signed, positive while *charging*), RelativeStateOfCharge in %, capacities in mAh
//! (BatteryMode's CAPACITY_MODE left at its default). Aloft's battery current is positive
//! while discharging, so the sign is turned once, here.
//!
//! Invariants: nothing is clamped. A value outside what the gauge is rated for (a state of
//! charge above 100 %, a pack temperature outside -40..85 °C) is flagged OUT_OF_RANGE, and
//! so are the readings an alarm bit of BatteryStatus speaks about (over-temperature: the
//! temperature; over-charged, terminate-discharge or fully discharged: voltage and state
//! of charge). [`sim`] holds a register-level model of the gauge.

pub mod sim;

use core::time::Duration;

use aloft_protocol::{Quality, Quantity, Reading, SensorDescriptor, SensorId, Timestamp};
use embedded_hal::i2c::I2c;

use crate::Sample;

/// The smart battery's address on SMBus (the specification fixes it).
pub const ADDRESS: u8 = 0x0B;
/// The shortest sampling interval accepted: a gauge updates its values once a second.
pub const MIN_INTERVAL: Duration = Duration::from_secs(1);

/// The SBS commands the driver uses (Smart Battery Data Specification 1.1, section 5).
pub mod command {
    /// Pack temperature, 0.1 K.
    pub const TEMPERATURE: u8 = 0x08;
    /// Pack voltage, mV.
    pub const VOLTAGE: u8 = 0x09;
    /// Pack current, mA, signed, positive while charging.
    pub const CURRENT: u8 = 0x0A;
    /// Remaining capacity as a percentage of full charge capacity.
    pub const RELATIVE_STATE_OF_CHARGE: u8 = 0x0D;
    /// Remaining capacity, mAh.
    pub const REMAINING_CAPACITY: u8 = 0x0F;
    /// Predicted capacity when fully charged, mAh.
    pub const FULL_CHARGE_CAPACITY: u8 = 0x10;
    /// Alarm and status bits.
    pub const BATTERY_STATUS: u8 = 0x16;
    /// Theoretical capacity of a new pack, mAh.
    pub const DESIGN_CAPACITY: u8 = 0x18;
    /// Theoretical voltage of a new pack, mV.
    pub const DESIGN_VOLTAGE: u8 = 0x19;
    /// Serial number.
    pub const SERIAL_NUMBER: u8 = 0x1C;
    /// Manufacturer's name (block).
    pub const MANUFACTURER_NAME: u8 = 0x20;
    /// Device name (block).
    pub const DEVICE_NAME: u8 = 0x21;
}

/// The longest block an SMBus block read carries.
pub const MAX_BLOCK: usize = 32;

/// Lowest pack temperature the gauge is rated for, K (-40 °C).
pub const RATED_MIN_K: f64 = 233.15;
/// Highest pack temperature the gauge is rated for, K (85 °C).
pub const RATED_MAX_K: f64 = 358.15;

/// The SMBus packet error code: CRC-8, polynomial x^8 + x^2 + x + 1, initial value 0, no
/// reflection, over every byte of the transaction.
pub fn pec(bytes: &[u8]) -> u8 {
    crate::crc::crc8_msb_first(0x07, 0, bytes)
}

/// The PEC of a read of `command` at `address` whose reply is `reply` (without its PEC):
/// the write address, the command, the read address, then the reply.
pub fn read_pec(address: u8, command: u8, reply: &[u8]) -> u8 {
    let header = [address << 1, command, (address << 1) | 1];
    let mut crc_input = [0u8; 3 + 1 + MAX_BLOCK];
    let n = reply.len().min(1 + MAX_BLOCK);
    crc_input[..3].copy_from_slice(&header);
    crc_input[3..3 + n].copy_from_slice(&reply[..n]);
    pec(&crc_input[..3 + n])
}

/// A reply that carries no value.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum ReplyError {
    /// Fewer bytes than the reply needs.
    #[error("SBS reply to command {command:#04x} too short: {len} bytes")]
    Short {
        /// The command.
        command: u8,
        /// Bytes there were.
        len: usize,
    },
    /// The packet error code does not match the bytes.
    #[error(
        "SBS reply to command {command:#04x} fails its PEC: {got:#04x}, expected {expected:#04x}"
    )]
    Pec {
        /// The command.
        command: u8,
        /// The PEC computed over the transaction.
        expected: u8,
        /// The PEC the gauge sent.
        got: u8,
    },
    /// A block count beyond what SMBus carries.
    #[error("SBS block reply to command {command:#04x} claims {count} bytes (at most 32)")]
    BlockLength {
        /// The command.
        command: u8,
        /// The count byte.
        count: u8,
    },
}

/// The word in a read-word reply (`lo`, `hi`, then the PEC when `with_pec`).
pub fn decode_word(
    address: u8,
    command: u8,
    reply: &[u8],
    with_pec: bool,
) -> Result<u16, ReplyError> {
    let short = ReplyError::Short {
        command,
        len: reply.len(),
    };
    let (&[lo, hi], rest) = reply.split_first_chunk::<2>().ok_or(short)?;
    if with_pec {
        let got = rest.first().copied().ok_or(short)?;
        let expected = read_pec(address, command, &[lo, hi]);
        if got != expected {
            return Err(ReplyError::Pec {
                command,
                expected,
                got,
            });
        }
    }
    Ok(u16::from_le_bytes([lo, hi]))
}

/// The data of a block-read reply (count, data, then the PEC when `with_pec`; bytes
/// beyond are ignored, as a fixed-size read returns them).
pub fn decode_block(
    address: u8,
    command: u8,
    reply: &[u8],
    with_pec: bool,
) -> Result<&[u8], ReplyError> {
    let short = ReplyError::Short {
        command,
        len: reply.len(),
    };
    let (&count, rest) = reply.split_first().ok_or(short)?;
    let n = usize::from(count);
    if n > MAX_BLOCK {
        return Err(ReplyError::BlockLength { command, count });
    }
    let data = rest.get(..n).ok_or(short)?;
    if with_pec {
        let got = rest.get(n).copied().ok_or(short)?;
        let expected = read_pec(address, command, &reply[..=n]);
        if got != expected {
            return Err(ReplyError::Pec {
                command,
                expected,
                got,
            });
        }
    }
    Ok(data)
}

/// BatteryStatus (0x16): alarm bits, status bits and the error code of the last command.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct BatteryStatus(pub u16);

impl BatteryStatus {
    /// OVER_CHARGED_ALARM.
    pub const OVER_CHARGED_ALARM: u16 = 0x8000;
    /// TERMINATE_CHARGE_ALARM.
    pub const TERMINATE_CHARGE_ALARM: u16 = 0x4000;
    /// OVER_TEMP_ALARM.
    pub const OVER_TEMP_ALARM: u16 = 0x1000;
    /// TERMINATE_DISCHARGE_ALARM.
    pub const TERMINATE_DISCHARGE_ALARM: u16 = 0x0800;
    /// REMAINING_CAPACITY_ALARM.
    pub const REMAINING_CAPACITY_ALARM: u16 = 0x0200;
    /// REMAINING_TIME_ALARM.
    pub const REMAINING_TIME_ALARM: u16 = 0x0100;
    /// INITIALIZED.
    pub const INITIALIZED: u16 = 0x0080;
    /// DISCHARGING.
    pub const DISCHARGING: u16 = 0x0040;
    /// FULLY_CHARGED.
    pub const FULLY_CHARGED: u16 = 0x0020;
    /// FULLY_DISCHARGED.
    pub const FULLY_DISCHARGED: u16 = 0x0010;

    /// Whether every bit of `bits` is set.
    pub fn has(self, bits: u16) -> bool {
        self.0 & bits == bits
    }

    /// The error code of the last command (0 is OK).
    pub fn error_code(self) -> u8 {
        (self.0 & 0x000F) as u8
    }

    /// The alarm bits set, by their names in the specification.
    pub fn alarms(self) -> impl Iterator<Item = &'static str> {
        [
            (Self::OVER_CHARGED_ALARM, "over-charged"),
            (Self::TERMINATE_CHARGE_ALARM, "terminate charge"),
            (Self::OVER_TEMP_ALARM, "over-temperature"),
            (Self::TERMINATE_DISCHARGE_ALARM, "terminate discharge"),
            (Self::REMAINING_CAPACITY_ALARM, "remaining capacity"),
            (Self::REMAINING_TIME_ALARM, "remaining time"),
        ]
        .into_iter()
        .filter(move |(bit, _)| self.has(*bit))
        .map(|(_, name)| name)
    }
}

/// One set of the gauge's words, as read.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct RawSample {
    /// Temperature, 0.1 K.
    pub temperature_dk: u16,
    /// Voltage, mV.
    pub voltage_mv: u16,
    /// Current, mA, positive while charging (SBS sign).
    pub current_ma: i16,
    /// Relative state of charge, %.
    pub relative_soc_pct: u16,
    /// Remaining capacity, mAh.
    pub remaining_mah: u16,
    /// Full charge capacity, mAh.
    pub full_charge_mah: u16,
    /// BatteryStatus.
    pub status: BatteryStatus,
}

/// One measurement of the pack, in SI units and Aloft's sign.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Measurement {
    /// The words as read.
    pub raw: RawSample,
    /// Pack voltage, V.
    pub voltage_v: f64,
    /// Current out of the pack, A, positive while discharging.
    pub current_a: f64,
    /// State of charge, fraction (0..1 when the gauge is sane).
    pub state_of_charge: f64,
    /// Pack temperature, K.
    pub temperature_k: f64,
}

impl Measurement {
    /// Converts the words.
    pub fn from_raw(raw: RawSample) -> Self {
        Measurement {
            raw,
            voltage_v: f64::from(raw.voltage_mv) / 1_000.0,
            current_a: -f64::from(raw.current_ma) / 1_000.0,
            state_of_charge: f64::from(raw.relative_soc_pct) / 100.0,
            temperature_k: f64::from(raw.temperature_dk) / 10.0,
        }
    }

    /// Power out of the pack, W, positive while discharging.
    pub fn power_w(&self) -> f64 {
        self.voltage_v * self.current_a
    }

    /// Quality of the temperature reading.
    pub fn temperature_quality(&self) -> Quality {
        let outside = !(RATED_MIN_K..=RATED_MAX_K).contains(&self.temperature_k);
        if outside || self.raw.status.has(BatteryStatus::OVER_TEMP_ALARM) {
            Quality::OUT_OF_RANGE
        } else {
            Quality::GOOD
        }
    }

    /// Quality of the voltage reading.
    pub fn voltage_quality(&self) -> Quality {
        let s = self.raw.status;
        if s.has(BatteryStatus::OVER_CHARGED_ALARM)
            || s.has(BatteryStatus::TERMINATE_DISCHARGE_ALARM)
            || s.has(BatteryStatus::FULLY_DISCHARGED)
        {
            Quality::OUT_OF_RANGE
        } else {
            Quality::GOOD
        }
    }

    /// Quality of the state-of-charge reading.
    pub fn soc_quality(&self) -> Quality {
        if self.raw.relative_soc_pct > 100 {
            Quality::OUT_OF_RANGE
        } else {
            self.voltage_quality()
        }
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
            Quantity::BatteryVoltage,
            self.voltage_v,
            self.voltage_quality(),
        ));
        out.push(reading(
            Quantity::BatteryCurrent,
            self.current_a,
            Quality::GOOD,
        ));
        out.push(reading(
            Quantity::BatteryStateOfCharge,
            self.state_of_charge,
            self.soc_quality(),
        ));
        out.push(reading(
            Quantity::BatteryTemperature,
            self.temperature_k,
            self.temperature_quality(),
        ));
        out.push(reading(
            Quantity::BatteryPower,
            self.power_w(),
            self.voltage_quality() | Quality::DERIVED,
        ));
    }
}

/// What the gauge says it is (read once, at init).
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Identity {
    /// ManufacturerName.
    pub manufacturer: String,
    /// DeviceName.
    pub device: String,
    /// SerialNumber.
    pub serial: u16,
    /// DesignCapacity, mAh.
    pub design_capacity_mah: u16,
    /// DesignVoltage, mV.
    pub design_voltage_mv: u16,
}

/// Errors of the SBS driver.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum Error<E> {
    /// The bus failed (for example a NACK).
    #[error("SMBus error: {0:?}")]
    I2c(E),
    /// A reply was malformed or failed its PEC.
    #[error(transparent)]
    Reply(#[from] ReplyError),
}

/// Where the gauge is and whether it appends a PEC.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub struct Config {
    /// SMBus address (0x0B by the specification).
    pub address: u8,
    /// Read (and check) a PEC after every reply.
    pub pec: bool,
}

impl Default for Config {
    /// Address 0x0B, with PEC (the bq40z50 appends one when the host reads it).
    fn default() -> Self {
        Config {
            address: ADDRESS,
            pec: true,
        }
    }
}

impl Config {
    /// A gauge at `address`, with or without PEC.
    pub fn new(address: u8, pec: bool) -> Self {
        Config { address, pec }
    }
}

/// Driver of one smart battery. Owns its bus.
#[derive(Debug)]
pub struct Sbs<I2C> {
    bus: I2C,
    config: Config,
    identity: Identity,
}

impl<I2C: I2c> Sbs<I2C> {
    /// A driver for the gauge `config` describes on `bus`.
    pub fn new(bus: I2C, config: Config) -> Self {
        Sbs {
            bus,
            config,
            identity: Identity::default(),
        }
    }

    /// Gives the bus back.
    pub fn destroy(self) -> I2C {
        self.bus
    }

    /// Reads one word.
    pub fn read_word(&mut self, command: u8) -> Result<u16, Error<I2C::Error>> {
        let mut buf = [0u8; 3];
        let n = if self.config.pec { 3 } else { 2 };
        self.bus
            .write_read(self.config.address, &[command], &mut buf[..n])
            .map_err(Error::I2c)?;
        Ok(decode_word(
            self.config.address,
            command,
            &buf[..n],
            self.config.pec,
        )?)
    }

    /// Reads one block as text (bytes that are not UTF-8 are replaced).
    pub fn read_text(&mut self, command: u8) -> Result<String, Error<I2C::Error>> {
        // Count, up to 32 bytes, PEC: what an SMBus block read can carry at most.
        let mut buf = [0u8; 2 + MAX_BLOCK];
        self.bus
            .write_read(self.config.address, &[command], &mut buf)
            .map_err(Error::I2c)?;
        let data = decode_block(self.config.address, command, &buf, self.config.pec)?;
        Ok(String::from_utf8_lossy(data)
            .trim_end_matches('\0')
            .to_owned())
    }

    /// (Re)initialises: reads who the gauge is. The gauge has no reset the host should
    /// send, so a successful identity read is what "open" means.
    pub fn init(&mut self) -> Result<&Identity, Error<I2C::Error>> {
        self.identity = Identity {
            manufacturer: self.read_text(command::MANUFACTURER_NAME)?,
            device: self.read_text(command::DEVICE_NAME)?,
            serial: self.read_word(command::SERIAL_NUMBER)?,
            design_capacity_mah: self.read_word(command::DESIGN_CAPACITY)?,
            design_voltage_mv: self.read_word(command::DESIGN_VOLTAGE)?,
        };
        tracing::debug!(
            address = self.config.address,
            device = %self.identity.device,
            serial = self.identity.serial,
            "Smart battery initialised."
        );
        Ok(&self.identity)
    }

    /// What this sensor is.
    pub fn descriptor(&self) -> SensorDescriptor {
        SensorDescriptor::new(format!(
            "SBS {} {}",
            self.identity.manufacturer, self.identity.device
        ))
        .with_integer("address", i64::from(self.config.address))
        .with_integer("serial", i64::from(self.identity.serial))
        .with_integer(
            "design_capacity_mah",
            i64::from(self.identity.design_capacity_mah),
        )
        .with_integer(
            "design_voltage_mv",
            i64::from(self.identity.design_voltage_mv),
        )
        .with_integer("pec", i64::from(self.config.pec))
    }

    /// Reads the gauge's words.
    pub fn read_raw(&mut self) -> Result<RawSample, Error<I2C::Error>> {
        Ok(RawSample {
            temperature_dk: self.read_word(command::TEMPERATURE)?,
            voltage_mv: self.read_word(command::VOLTAGE)?,
            current_ma: self.read_word(command::CURRENT)? as i16,
            relative_soc_pct: self.read_word(command::RELATIVE_STATE_OF_CHARGE)?,
            remaining_mah: self.read_word(command::REMAINING_CAPACITY)?,
            full_charge_mah: self.read_word(command::FULL_CHARGE_CAPACITY)?,
            status: BatteryStatus(self.read_word(command::BATTERY_STATUS)?),
        })
    }

    /// One measurement.
    pub fn measure(&mut self) -> Result<Measurement, Error<I2C::Error>> {
        let raw = self.read_raw()?;
        if raw.status.alarms().next().is_some() {
            tracing::warn!(
                status = raw.status.0,
                alarms = ?raw.status.alarms().collect::<Vec<_>>(),
                "Smart battery raises an alarm."
            );
        }
        Ok(Measurement::from_raw(raw))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use embedded_hal_mock::eh1::i2c::{Mock, Transaction};
    use proptest::prelude::*;

    fn word_reply(command: u8, value: u16) -> Vec<u8> {
        let [lo, hi] = value.to_le_bytes();
        vec![lo, hi, read_pec(ADDRESS, command, &[lo, hi])]
    }

    #[test]
    fn pec_is_crc8_with_polynomial_seven() {
        // CRC-8/SMBUS check value over "123456789".
        assert_eq!(pec(b"123456789"), 0xF4);
        assert_eq!(pec(&[]), 0);
    }

    #[test]
    fn a_word_reply_decodes_low_byte_first_and_checks_its_pec() {
        let reply = word_reply(command::VOLTAGE, 15_600);
        assert_eq!(
            decode_word(ADDRESS, command::VOLTAGE, &reply, true),
            Ok(15_600)
        );
        assert_eq!(
            decode_word(ADDRESS, command::VOLTAGE, &reply[..2], false),
            Ok(15_600)
        );
        let mut bad = reply.clone();
        bad[2] ^= 1;
        assert!(matches!(
            decode_word(ADDRESS, command::VOLTAGE, &bad, true),
            Err(ReplyError::Pec { .. })
        ));
        assert!(matches!(
            decode_word(ADDRESS, command::VOLTAGE, &reply[..2], true),
            Err(ReplyError::Short { len: 2, .. })
        ));
        // The PEC covers the command: the same bytes as the reply to another are wrong.
        assert!(decode_word(ADDRESS, command::CURRENT, &reply, true).is_err());
    }

    #[test]
    fn a_block_reply_decodes_its_count_and_ignores_the_padding() {
        let name = b"bq40z50";
        let mut reply = vec![name.len() as u8];
        reply.extend_from_slice(name);
        reply.push(read_pec(ADDRESS, command::DEVICE_NAME, &reply));
        reply.resize(34, 0xFF);
        assert_eq!(
            decode_block(ADDRESS, command::DEVICE_NAME, &reply, true),
            Ok(&name[..])
        );
        assert_eq!(
            decode_block(ADDRESS, command::DEVICE_NAME, &[33, 0, 0], false),
            Err(ReplyError::BlockLength {
                command: command::DEVICE_NAME,
                count: 33
            })
        );
        assert!(matches!(
            decode_block(ADDRESS, command::DEVICE_NAME, &[5, b'a'], false),
            Err(ReplyError::Short { .. })
        ));
    }

    #[test]
    fn current_turns_to_positive_while_discharging_and_values_take_si_units() {
        let m = Measurement::from_raw(RawSample {
            temperature_dk: 2_931,
            voltage_mv: 15_600,
            current_ma: -3_000,
            relative_soc_pct: 80,
            remaining_mah: 14_400,
            full_charge_mah: 18_000,
            status: BatteryStatus(BatteryStatus::INITIALIZED | BatteryStatus::DISCHARGING),
        });
        assert!((m.voltage_v - 15.6).abs() < 1e-12);
        assert!((m.current_a - 3.0).abs() < 1e-12);
        assert!((m.state_of_charge - 0.8).abs() < 1e-12);
        assert!((m.temperature_k - 293.1).abs() < 1e-9);
        assert!((m.power_w() - 46.8).abs() < 1e-9);
        let mut out = Vec::new();
        m.push_readings(SensorId(7), Timestamp::monotonic(1), &mut out);
        let quantities: Vec<_> = out.iter().map(|r| r.quantity).collect();
        assert_eq!(
            quantities,
            [
                Quantity::BatteryVoltage,
                Quantity::BatteryCurrent,
                Quantity::BatteryStateOfCharge,
                Quantity::BatteryTemperature,
                Quantity::BatteryPower
            ]
        );
        assert!(out[..4].iter().all(|r| r.quality.is_good()));
    }

    #[test]
    fn alarms_and_values_beyond_the_rating_are_flagged_not_clamped() {
        let base = RawSample {
            temperature_dk: 2_931,
            voltage_mv: 12_000,
            current_ma: -3_000,
            relative_soc_pct: 5,
            ..RawSample::default()
        };
        let m = Measurement::from_raw(RawSample {
            status: BatteryStatus(BatteryStatus::TERMINATE_DISCHARGE_ALARM),
            ..base
        });
        assert!(m.voltage_quality().contains(Quality::OUT_OF_RANGE));
        assert!(m.soc_quality().contains(Quality::OUT_OF_RANGE));
        assert!(m.temperature_quality().is_good());
        let hot = Measurement::from_raw(RawSample {
            status: BatteryStatus(BatteryStatus::OVER_TEMP_ALARM),
            ..base
        });
        assert!(hot.temperature_quality().contains(Quality::OUT_OF_RANGE));
        let cold = Measurement::from_raw(RawSample {
            temperature_dk: 2_300,
            ..base
        });
        assert!((cold.temperature_k - 230.0).abs() < 1e-9);
        assert!(cold.temperature_quality().contains(Quality::OUT_OF_RANGE));
        let odd = Measurement::from_raw(RawSample {
            relative_soc_pct: 130,
            ..base
        });
        assert!((odd.state_of_charge - 1.3).abs() < 1e-12);
        assert!(odd.soc_quality().contains(Quality::OUT_OF_RANGE));
        assert_eq!(
            BatteryStatus(0x8800 | 0x0080).alarms().collect::<Vec<_>>(),
            ["over-charged", "terminate discharge"]
        );
        assert_eq!(BatteryStatus(0x0083).error_code(), 3);
    }

    #[test]
    fn a_measurement_is_seven_word_reads_with_pec() {
        let words = [
            (command::TEMPERATURE, 2_881u16),
            (command::VOLTAGE, 15_400),
            (command::CURRENT, (-2_500i16) as u16),
            (command::RELATIVE_STATE_OF_CHARGE, 77),
            (command::REMAINING_CAPACITY, 13_860),
            (command::FULL_CHARGE_CAPACITY, 18_000),
            (command::BATTERY_STATUS, 0x00C0),
        ];
        let expectations: Vec<_> = words
            .iter()
            .map(|&(c, v)| Transaction::write_read(ADDRESS, vec![c], word_reply(c, v)))
            .collect();
        let mut bus = Mock::new(&expectations);
        let mut sbs = Sbs::new(bus.clone(), Config::default());
        let m = sbs.measure().unwrap();
        assert!((m.current_a - 2.5).abs() < 1e-12);
        assert_eq!(m.raw.remaining_mah, 13_860);
        bus.done();
    }

    proptest! {
        #[test]
        fn any_word_reply_decodes_or_fails_typed(reply in proptest::collection::vec(any::<u8>(), 0..5), command: u8, with_pec: bool) {
            let _ = decode_word(ADDRESS, command, &reply, with_pec);
        }

        #[test]
        fn any_block_reply_decodes_or_fails_typed(reply in proptest::collection::vec(any::<u8>(), 0..40), command: u8, with_pec: bool) {
            if let Ok(data) = decode_block(ADDRESS, command, &reply, with_pec) {
                prop_assert!(data.len() <= MAX_BLOCK);
            }
        }

        #[test]
        fn words_round_trip_and_any_one_bit_flip_fails_the_pec(value: u16, command: u8, bit in 0usize..24) {
            let [lo, hi] = value.to_le_bytes();
            let mut reply = vec![lo, hi, read_pec(ADDRESS, command, &[lo, hi])];
            prop_assert_eq!(decode_word(ADDRESS, command, &reply, true), Ok(value));
            reply[bit / 8] ^= 1 << (bit % 8);
            let is_pec_error = matches!(decode_word(ADDRESS, command, &reply, true), Err(ReplyError::Pec { .. }));
            prop_assert!(is_pec_error);
        }

        #[test]
        fn blocks_round_trip(data in proptest::collection::vec(any::<u8>(), 0..=32), command: u8, padding in 0usize..4) {
            let mut reply = vec![data.len() as u8];
            reply.extend_from_slice(&data);
            reply.push(read_pec(ADDRESS, command, &reply));
            reply.extend(std::iter::repeat_n(0xFF, padding));
            prop_assert_eq!(decode_block(ADDRESS, command, &reply, true), Ok(&data[..]));
        }

        #[test]
        fn any_words_convert_to_finite_readings(temperature: u16, voltage: u16, current: i16, soc: u16, status: u16) {
            let m = Measurement::from_raw(RawSample {
                temperature_dk: temperature,
                voltage_mv: voltage,
                current_ma: current,
                relative_soc_pct: soc,
                status: BatteryStatus(status),
                ..RawSample::default()
            });
            let mut out = Vec::new();
            m.push_readings(SensorId(0), Timestamp::monotonic(0), &mut out);
            prop_assert!(out.iter().all(|r| r.value.is_finite()));
        }
    }
}
