//! TE Connectivity MS5611-01BA03 barometric pressure sensor on I2C (0x76 or 0x77).
//!
//! The driver owns its bus: it resets the device, reads its PROM (8 words at 0xA0..0xAE)
//! and checks the CRC-4 of application note AN520, then runs D1 (pressure) and D2
//! (temperature) conversions at a selectable oversampling, waits the datasheet's maximum
//! conversion time, reads the 24-bit ADC and applies the datasheet's first- and
//! second-order compensation, including the branch below -15 °C that the glider flies in.
//! PROM and ADC reads are one transaction each (command, repeated start, read), as Linux's
//! own ms5611 driver does them (`i2c_smbus_read_i2c_block_data`): on a 10 Hz sensor that is
//! 20 bus transactions, and as many wake-ups, fewer a second.
//!
//! Invariants: an ADC read of 0 (the device's answer when no conversion has finished) is a
//! typed error, never a pressure. Values are not clamped: outside 10..1200 mbar or
//! -40..85 °C they are flagged [`Quality::OUT_OF_RANGE`]. Compensation never panics for
//! any PROM and any 24-bit D1/D2 (all intermediates fit in `i64`, see
//! [`Prom::compensate`]). The temperature is the die's, so it is reported as
//! [`Quantity::SensorTemperature`], not as air temperature.

pub mod pipeline;
pub mod sim;

use aloft_protocol::{Quality, Quantity, Reading, SensorDescriptor, SensorId, Timestamp};
use embedded_hal::delay::DelayNs;
use embedded_hal::i2c::I2c;

use crate::Sample;

/// Address with CSB high.
pub const ADDRESS_CSB_HIGH: u8 = 0x76;
/// Address with CSB low.
pub const ADDRESS_CSB_LOW: u8 = 0x77;

/// Commands (datasheet, "Commands").
pub(crate) mod cmd {
    pub const RESET: u8 = 0x1E;
    pub const CONVERT_D1: u8 = 0x40;
    pub const CONVERT_D2: u8 = 0x50;
    pub const ADC_READ: u8 = 0x00;
    pub const PROM_READ: u8 = 0xA0;
}

/// Time for the PROM to reload after reset (2.8 ms max), µs.
pub const RESET_TIME_US: u32 = 2_800;

/// Rated pressure range, Pa (10..1200 mbar).
pub const RATED_PRESSURE_PA: core::ops::RangeInclusive<f64> = 1_000.0..=120_000.0;
/// Rated (operating) temperature range, K (-40..85 °C).
pub const RATED_TEMPERATURE_K: core::ops::RangeInclusive<f64> = 233.15..=358.15;

/// Oversampling ratio of a conversion.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub enum Osr {
    /// 256 samples, 0.60 ms.
    Osr256,
    /// 512 samples, 1.17 ms.
    Osr512,
    /// 1024 samples, 2.28 ms.
    Osr1024,
    /// 2048 samples, 4.54 ms.
    Osr2048,
    /// 4096 samples, 9.04 ms: 0.012 mbar RMS (about 10 cm of altitude).
    #[default]
    Osr4096,
}

impl Osr {
    /// Every ratio, lowest first.
    pub const ALL: [Osr; 5] = [
        Osr::Osr256,
        Osr::Osr512,
        Osr::Osr1024,
        Osr::Osr2048,
        Osr::Osr4096,
    ];

    /// What is added to the conversion command.
    pub const fn command_offset(self) -> u8 {
        match self {
            Osr::Osr256 => 0x00,
            Osr::Osr512 => 0x02,
            Osr::Osr1024 => 0x04,
            Osr::Osr2048 => 0x06,
            Osr::Osr4096 => 0x08,
        }
    }

    /// Decodes a command's offset (the low nibble of a conversion command).
    pub const fn from_command_offset(offset: u8) -> Option<Osr> {
        match offset {
            0x00 => Some(Osr::Osr256),
            0x02 => Some(Osr::Osr512),
            0x04 => Some(Osr::Osr1024),
            0x06 => Some(Osr::Osr2048),
            0x08 => Some(Osr::Osr4096),
            _ => None,
        }
    }

    /// The datasheet's maximum conversion time, µs.
    pub const fn max_conversion_time_us(self) -> u32 {
        match self {
            Osr::Osr256 => 600,
            Osr::Osr512 => 1_170,
            Osr::Osr1024 => 2_280,
            Osr::Osr2048 => 4_540,
            Osr::Osr4096 => 9_040,
        }
    }

    /// The datasheet's typical conversion time, µs (what the simulator takes).
    pub const fn typical_conversion_time_us(self) -> u32 {
        match self {
            Osr::Osr256 => 540,
            Osr::Osr512 => 1_060,
            Osr::Osr1024 => 2_080,
            Osr::Osr2048 => 4_130,
            Osr::Osr4096 => 8_220,
        }
    }

    /// The oversampling ratio itself.
    pub const fn ratio(self) -> u16 {
        match self {
            Osr::Osr256 => 256,
            Osr::Osr512 => 512,
            Osr::Osr1024 => 1024,
            Osr::Osr2048 => 2048,
            Osr::Osr4096 => 4096,
        }
    }
}

/// Errors of the MS5611 driver.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum Error<E> {
    /// The bus transfer failed (NACK, arbitration loss, adapter error).
    #[error("I2C transfer to the MS5611 failed: {0:?}")]
    I2c(E),
    /// The PROM's CRC-4 does not match its contents.
    #[error("MS5611 PROM CRC mismatch: stored {stored:#x}, computed {computed:#x}")]
    PromCrc {
        /// The CRC nibble in word 7.
        stored: u8,
        /// The CRC of the words read.
        computed: u8,
    },
    /// The PROM reads as all zeros or all ones: no device, or a dead one.
    #[error("the MS5611's PROM is blank")]
    BlankProm,
    /// The ADC returned 0: no conversion had finished (too early, or read twice).
    #[error("the MS5611's ADC returned 0 for {0:?}: conversion not finished")]
    AdcNotReady(Conversion),
    /// `measure` before a successful `init`.
    #[error("the MS5611 driver is not initialised")]
    NotInitialized,
}

/// Which of the two conversions.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Conversion {
    /// D1: digital pressure.
    Pressure,
    /// D2: digital temperature.
    Temperature,
}

/// The CRC-4 of AN520 over the 8 PROM words, with word 7's CRC nibble taken as zero.
pub fn crc4(prom: &[u16; 8]) -> u8 {
    let mut words = *prom;
    words[7] &= 0xFF00;
    let mut rem: u16 = 0;
    for byte in words.iter().flat_map(|w| w.to_be_bytes()) {
        rem ^= u16::from(byte);
        for _ in 0..8 {
            rem = if rem & 0x8000 != 0 {
                (rem << 1) ^ 0x3000
            } else {
                rem << 1
            };
        }
    }
    ((rem >> 12) & 0xF) as u8
}

/// The PROM: factory data, calibration C1..C6, serial and CRC.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Prom {
    /// The eight words as read (0: factory data, 1..6: C1..C6, 7: serial code and CRC).
    pub words: [u16; 8],
}

/// Result of the datasheet's compensation.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Compensated {
    /// Temperature, 0.01 °C.
    pub temp: i64,
    /// Pressure, 0.01 mbar (= Pa).
    pub p: i64,
}

impl Prom {
    /// Calibration coefficient `C<n>` for n in 1..=6 (0 otherwise).
    pub fn c(&self, n: usize) -> i64 {
        if (1..=6).contains(&n) {
            self.words.get(n).map_or(0, |&w| i64::from(w))
        } else {
            0
        }
    }

    /// The CRC nibble stored in word 7.
    pub fn stored_crc(&self) -> u8 {
        (self.words[7] & 0x000F) as u8
    }

    /// Checks the CRC; also refuses a blank PROM (all zeros passes the CRC).
    pub fn validate<E>(&self) -> Result<(), Error<E>> {
        if self.words.iter().all(|&w| w == 0) || self.words.iter().all(|&w| w == 0xFFFF) {
            return Err(Error::BlankProm);
        }
        let computed = crc4(&self.words);
        let stored = self.stored_crc();
        if computed != stored {
            return Err(Error::PromCrc { stored, computed });
        }
        Ok(())
    }

    /// Words with the CRC nibble recomputed (for building simulated PROMs).
    pub fn with_valid_crc(mut words: [u16; 8]) -> Self {
        words[7] &= 0xFFF0;
        words[7] |= u16::from(crc4(&words));
        Prom { words }
    }

    /// First- and second-order compensation of the datasheet, with floor shifts for the
    /// divisions by powers of two.
    ///
    /// Bounds for any 16-bit C and 24-bit D: |dT| < 2^24, so |TEMP - 2000| < 2^17,
    /// |OFF| < 2^34 and |SENS| < 2^33 before the second order; OFF2 and SENS2 stay below
    /// 2^38 (squares of at most 2^17, times at most 7 + 5/2), so |D1 * SENS| < 2^24 * 2^39
    /// = 2^63 is never reached (the worst case is about 2^61).
    pub fn compensate(&self, d1: u32, d2: u32) -> Compensated {
        let (d1, d2) = (i64::from(d1 & 0xFF_FFFF), i64::from(d2 & 0xFF_FFFF));
        let dt = d2 - (self.c(5) << 8);
        let mut temp = 2000 + ((dt * self.c(6)) >> 23);
        let mut off = (self.c(2) << 16) + ((self.c(4) * dt) >> 7);
        let mut sens = (self.c(1) << 15) + ((self.c(3) * dt) >> 8);
        if temp < 2000 {
            let t2 = (dt * dt) >> 31;
            let low = (temp - 2000) * (temp - 2000);
            let mut off2 = 5 * low / 2;
            let mut sens2 = 5 * low / 4;
            if temp < -1500 {
                let very_low = (temp + 1500) * (temp + 1500);
                off2 += 7 * very_low;
                sens2 += 11 * very_low / 2;
            }
            temp -= t2;
            off -= off2;
            sens -= sens2;
        }
        let p = (((d1 * sens) >> 21) - off) >> 15;
        Compensated { temp, p }
    }
}

/// One compensated measurement.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Measurement {
    /// Air pressure, Pa.
    pub pressure_pa: f64,
    /// Die temperature, K.
    pub temperature_k: f64,
    /// Digital pressure value.
    pub d1: u32,
    /// Digital temperature value.
    pub d2: u32,
}

impl Measurement {
    /// Compensates raw `d1`, `d2` with `prom`.
    pub fn compensate(prom: &Prom, d1: u32, d2: u32) -> Self {
        let c = prom.compensate(d1, d2);
        Measurement {
            pressure_pa: c.p as f64,
            temperature_k: c.temp as f64 / 100.0 + 273.15,
            d1,
            d2,
        }
    }

    /// Quality of the temperature reading (and part of the pressure's: compensation is
    /// only specified within the rated temperature range).
    pub fn temperature_quality(&self) -> Quality {
        if RATED_TEMPERATURE_K.contains(&self.temperature_k) {
            Quality::GOOD
        } else {
            Quality::OUT_OF_RANGE
        }
    }

    /// Quality of the pressure reading.
    pub fn pressure_quality(&self) -> Quality {
        let mut q = self.temperature_quality();
        if !RATED_PRESSURE_PA.contains(&self.pressure_pa) {
            q |= Quality::OUT_OF_RANGE;
        }
        q
    }
}

impl Sample for Measurement {
    fn push_readings(&self, sensor: SensorId, time: Timestamp, out: &mut Vec<Reading>) {
        out.push(Reading {
            sensor,
            quantity: Quantity::AirPressure,
            time,
            value: self.pressure_pa,
            quality: self.pressure_quality(),
        });
        out.push(Reading {
            sensor,
            quantity: Quantity::SensorTemperature,
            time,
            value: self.temperature_k,
            quality: self.temperature_quality(),
        });
    }
}

/// An MS5611 on an I2C bus the driver owns.
#[derive(Debug)]
pub struct Ms5611<I2C> {
    bus: I2C,
    address: u8,
    osr: Osr,
    prom: Option<Prom>,
}

impl<I2C: I2c> Ms5611<I2C> {
    /// A driver for the device at `address`, converting at OSR 4096. Talks to the device
    /// only from [`Ms5611::init`] on.
    pub fn new(bus: I2C, address: u8) -> Self {
        Ms5611 {
            bus,
            address,
            osr: Osr::default(),
            prom: None,
        }
    }

    /// Gives the bus back.
    pub fn destroy(self) -> I2C {
        self.bus
    }

    /// The device's address.
    pub fn address(&self) -> u8 {
        self.address
    }

    /// The oversampling ratio of both conversions.
    pub fn osr(&self) -> Osr {
        self.osr
    }

    /// Sets the oversampling ratio from the next measurement on.
    pub fn set_osr(&mut self, osr: Osr) {
        self.osr = osr;
    }

    /// The PROM read at the last successful init.
    pub fn prom(&self) -> Option<&Prom> {
        self.prom.as_ref()
    }

    /// Resets the device, reads its PROM and checks its CRC.
    ///
    /// Safe to call again at any time: the agent's soft restart of the sensor calls it.
    pub fn init<D: DelayNs>(&mut self, delay: &mut D) -> Result<(), Error<I2C::Error>> {
        self.prom = None;
        self.bus
            .write(self.address, &[cmd::RESET])
            .map_err(Error::I2c)?;
        delay.delay_us(RESET_TIME_US);
        let mut words = [0u16; 8];
        for (i, word) in (0u8..).zip(words.iter_mut()) {
            let mut buf = [0u8; 2];
            self.bus
                .write_read(self.address, &[cmd::PROM_READ + 2 * i], &mut buf)
                .map_err(Error::I2c)?;
            *word = u16::from_be_bytes(buf);
        }
        let prom = Prom { words };
        prom.validate()?;
        tracing::debug!(address = self.address, ?words, "MS5611 initialised.");
        self.prom = Some(prom);
        Ok(())
    }

    /// Re-initialises the device (reset, PROM, CRC): the same as [`Ms5611::init`].
    pub fn soft_reset<D: DelayNs>(&mut self, delay: &mut D) -> Result<(), Error<I2C::Error>> {
        self.init(delay)
    }

    /// Runs a D1 and a D2 conversion and compensates them.
    pub fn measure<D: DelayNs>(&mut self, delay: &mut D) -> Result<Measurement, Error<I2C::Error>> {
        let prom = self.prom.ok_or(Error::NotInitialized)?;
        let d1 = self.convert(Conversion::Pressure, delay)?;
        let d2 = self.convert(Conversion::Temperature, delay)?;
        Ok(Measurement::compensate(&prom, d1, d2))
    }

    /// What this sensor is: part, address, OSR and the PROM words in the datasheet's names.
    pub fn descriptor(&self) -> SensorDescriptor {
        let mut d = SensorDescriptor::new("MS5611-01BA03")
            .with_integer("address", i64::from(self.address))
            .with_integer("osr", i64::from(self.osr.ratio()));
        if let Some(prom) = &self.prom {
            let [factory, c1, c2, c3, c4, c5, c6, serial_crc] = prom.words;
            let words = [
                ("factory", factory),
                ("C1", c1),
                ("C2", c2),
                ("C3", c3),
                ("C4", c4),
                ("C5", c5),
                ("C6", c6),
                ("serial_crc", serial_crc),
            ];
            for (name, value) in words {
                d = d.with_integer(name, i64::from(value));
            }
        }
        d
    }

    /// Runs one conversion: starts it, waits the datasheet's maximum time, reads it.
    pub fn convert<D: DelayNs>(
        &mut self,
        which: Conversion,
        delay: &mut D,
    ) -> Result<u32, Error<I2C::Error>> {
        self.start_conversion(which)?;
        delay.delay_us(self.osr.max_conversion_time_us());
        self.read_conversion(which)
    }

    /// Starts a conversion at the current oversampling ratio; its result is ready
    /// [`Osr::max_conversion_time_us`] later, for [`Ms5611::read_conversion`].
    pub fn start_conversion(&mut self, which: Conversion) -> Result<(), Error<I2C::Error>> {
        let base = match which {
            Conversion::Pressure => cmd::CONVERT_D1,
            Conversion::Temperature => cmd::CONVERT_D2,
        };
        self.bus
            .write(self.address, &[base + self.osr.command_offset()])
            .map_err(Error::I2c)
    }

    /// Reads the result of the conversion started last (`which` names it in errors).
    pub fn read_conversion(&mut self, which: Conversion) -> Result<u32, Error<I2C::Error>> {
        let mut buf = [0u8; 3];
        self.bus
            .write_read(self.address, &[cmd::ADC_READ], &mut buf)
            .map_err(Error::I2c)?;
        let [hi, mid, lo] = buf;
        let value = u32::from_be_bytes([0, hi, mid, lo]);
        if value == 0 {
            // Debug only: the supervisor that gets the error counts and logs it.
            tracing::debug!(
                address = self.address,
                ?which,
                "MS5611 ADC read 0 (conversion not finished)."
            );
            return Err(Error::AdcNotReady(which));
        }
        Ok(value)
    }
}

#[cfg(test)]
mod tests {
    use super::sim::{Ms5611Sim, typical_prom};
    use super::*;
    use crate::atmosphere;
    use crate::i2c::sim::SimDelay;
    use embedded_hal::i2c::ErrorKind;
    use embedded_hal_mock::eh1::i2c::{Mock, Transaction};
    use proptest::prelude::*;

    const DATASHEET_C: [u16; 6] = [40127, 36924, 23317, 23282, 33464, 28312];

    /// The datasheet's flow chart in floating point, written independently of the
    /// integer code: (TEMP in 0.01 °C, P in 0.01 mbar), second order included or not.
    fn datasheet_float(prom: &Prom, d1: u32, d2: u32, second_order: bool) -> (f64, f64) {
        let c = |n| prom.c(n) as f64;
        let dt = f64::from(d2) - c(5) * 256.0;
        let mut temp = 2000.0 + dt * c(6) / 8_388_608.0;
        let mut off = c(2) * 65536.0 + c(4) * dt / 128.0;
        let mut sens = c(1) * 32768.0 + c(3) * dt / 256.0;
        if second_order && temp < 2000.0 {
            let t2 = dt * dt / 2_147_483_648.0;
            let mut off2 = 5.0 * (temp - 2000.0).powi(2) / 2.0;
            let mut sens2 = 5.0 * (temp - 2000.0).powi(2) / 4.0;
            if temp < -1500.0 {
                off2 += 7.0 * (temp + 1500.0).powi(2);
                sens2 += 11.0 * (temp + 1500.0).powi(2) / 2.0;
            }
            temp -= t2;
            off -= off2;
            sens -= sens2;
        }
        (temp, (f64::from(d1) * sens / 2_097_152.0 - off) / 32768.0)
    }

    #[test]
    fn datasheet_worked_example_gives_20_07_c_and_1000_09_mbar() {
        let prom = typical_prom();
        assert_eq!(&prom.words[1..7], &DATASHEET_C);
        let c = prom.compensate(9_085_466, 8_569_150);
        assert_eq!(
            c,
            Compensated {
                temp: 2007,
                p: 100_009
            }
        );
        let m = Measurement::compensate(&prom, 9_085_466, 8_569_150);
        assert!((m.temperature_k - 293.22).abs() < 1e-9);
        assert_eq!(m.pressure_pa, 100_009.0);
    }

    #[test]
    fn second_order_compensation_follows_the_datasheet_in_both_cold_branches() {
        let prom = typical_prom();
        // +10 °C (T < 20 °C branch), -30 °C and -55 °C (T < -15 °C branch).
        for (t_k, p_pa) in [(283.15, 90_000.0), (243.15, 40_000.0), (218.15, 19_400.0)] {
            let (d1, d2) = sim::invert(&prom, p_pa, t_k);
            let c = prom.compensate(d1, d2);
            let (temp, p) = datasheet_float(&prom, d1, d2, true);
            assert!(
                (c.temp as f64 - temp).abs() <= 1.0,
                "{t_k}: {} vs {temp}",
                c.temp
            );
            assert!((c.p as f64 - p).abs() <= 1.0, "{t_k}: {} vs {p}", c.p);
            // The correction is not negligible where the glider flies.
            let (_, p_first) = datasheet_float(&prom, d1, d2, false);
            if t_k < 250.0 {
                assert!((p_first - p).abs() > 50.0, "{t_k}: {p_first} vs {p}");
            }
        }
    }

    #[test]
    fn crc4_of_the_an520_example_is_0xb() {
        // AN520's own example PROM (0x3132, 0x3334, ..., 0x4500) and its printed result.
        let words = [
            0x3132, 0x3334, 0x3536, 0x3738, 0x3940, 0x4142, 0x4344, 0x4500,
        ];
        assert_eq!(crc4(&words), 0xB);
        // The CRC nibble itself is excluded from the computation.
        assert_eq!(
            crc4(&[
                0x3132, 0x3334, 0x3536, 0x3738, 0x3940, 0x4142, 0x4344, 0x450B
            ]),
            0xB
        );
        assert_eq!(Prom::with_valid_crc(words).words[7], 0x450B);
    }

    #[test]
    fn typical_prom_passes_the_crc_and_every_single_bit_flip_fails_it() {
        let prom = typical_prom();
        assert_eq!(prom.validate::<()>(), Ok(()));
        for word in 0..8 {
            for bit in 0..16 {
                // AN520 clears word 7's low byte before the CRC: bits 4..7 are not covered.
                if word == 7 && (4..8).contains(&bit) {
                    continue;
                }
                let mut words = prom.words;
                words[word] ^= 1 << bit;
                assert!(
                    Prom { words }.validate::<()>().is_err(),
                    "flip of word {word} bit {bit} went unnoticed"
                );
            }
        }
        assert_eq!(
            Prom { words: [0; 8] }.validate::<()>(),
            Err(Error::BlankProm)
        );
        assert_eq!(
            Prom { words: [0xFFFF; 8] }.validate::<()>(),
            Err(Error::BlankProm)
        );
    }

    fn prom_bytes(prom: &Prom) -> Vec<Transaction> {
        (0u8..8)
            .flat_map(|i| {
                let word = prom.words[usize::from(i)];
                [Transaction::write_read(
                    0x77,
                    vec![0xA0 + 2 * i],
                    word.to_be_bytes().to_vec(),
                )]
            })
            .collect()
    }

    #[test]
    fn init_and_measurement_produce_the_exact_bus_traffic() {
        let prom = typical_prom();
        let mut expectations = vec![Transaction::write(0x77, vec![0x1E])];
        expectations.extend(prom_bytes(&prom));
        expectations.extend([
            Transaction::write(0x77, vec![0x48]),
            Transaction::write_read(0x77, vec![0x00], vec![0x8A, 0xA2, 0x1A]),
            Transaction::write(0x77, vec![0x58]),
            Transaction::write_read(0x77, vec![0x00], vec![0x82, 0xC1, 0x3E]),
        ]);
        let mut bus = Mock::new(&expectations);
        let mut delay = SimDelay::new();
        let mut ms = Ms5611::new(bus.clone(), ADDRESS_CSB_LOW);
        ms.init(&mut delay).unwrap();
        let m = ms.measure(&mut delay).unwrap();
        bus.done();
        // 0x8AA21A = 9085466 and 0x82C13E = 8569150: the datasheet's example.
        assert_eq!((m.d1, m.d2), (9_085_466, 8_569_150));
        assert_eq!(m.pressure_pa, 100_009.0);
        assert_eq!(delay.total_ns(), (2_800 + 2 * 9_040) * 1000);
    }

    fn sim_driver(sim: &Ms5611Sim) -> (Ms5611<Ms5611Sim>, SimDelay) {
        let mut delay = sim.delay();
        let mut ms = Ms5611::new(sim.clone(), ADDRESS_CSB_HIGH);
        ms.init(&mut delay).unwrap();
        (ms, delay)
    }

    #[test]
    fn driver_recovers_the_environment_from_sea_level_to_12_km_at_every_osr() {
        let sim = Ms5611Sim::new(ADDRESS_CSB_HIGH);
        let (mut ms, mut delay) = sim_driver(&sim);
        for osr in Osr::ALL {
            ms.set_osr(osr);
            for step in 0..=24 {
                let alt = f64::from(step) * 500.0;
                let t = 293.15 - 76.0 * f64::from(step) / 24.0;
                let p = atmosphere::pressure_pa(alt);
                sim.set_environment(p, t, 0.0);
                let m = ms.measure(&mut delay).unwrap();
                // Resolution of the compensated output: 0.01 °C and 0.01 mbar (1 Pa).
                assert!(
                    (m.temperature_k - t).abs() <= 0.011,
                    "{osr:?} {alt}: {} vs {t}",
                    m.temperature_k
                );
                assert!(
                    (m.pressure_pa - p).abs() <= 1.0,
                    "{osr:?} {alt}: {} vs {p}",
                    m.pressure_pa
                );
            }
        }
    }

    #[test]
    fn noisy_simulator_stays_within_five_sigma_of_the_datasheet_resolution() {
        let sim = Ms5611Sim::new(ADDRESS_CSB_HIGH).with_noise(7);
        let (mut ms, mut delay) = sim_driver(&sim);
        ms.set_osr(Osr::Osr256);
        sim.set_environment(30_000.0, 233.15, 0.0);
        let mut spread = 0.0f64;
        for _ in 0..50 {
            let dp = ms.measure(&mut delay).unwrap().pressure_pa - 30_000.0;
            assert!(dp.abs() <= 5.0 * 6.5 + 1.0, "{dp}");
            spread = spread.max(dp.abs());
        }
        assert!(spread >= 2.0, "{spread}");
    }

    #[test]
    fn at_194_hpa_pressure_is_rated_but_minus_50_c_is_flagged() {
        let sim = Ms5611Sim::new(ADDRESS_CSB_HIGH);
        let (mut ms, mut delay) = sim_driver(&sim);
        // In the heated box at 12 km: 194 hPa is inside the MS5611's 10..1200 mbar.
        sim.set_environment(19_400.0, 288.15, 0.0);
        let m = ms.measure(&mut delay).unwrap();
        assert!(m.pressure_quality().is_good() && m.temperature_quality().is_good());
        // Outside at -50 °C: reported as computed, flagged.
        sim.set_environment(19_400.0, 223.15, 0.0);
        let m = ms.measure(&mut delay).unwrap();
        assert!((m.pressure_pa - 19_400.0).abs() <= 1.0);
        assert!((m.temperature_k - 223.15).abs() <= 0.011);
        let mut out = Vec::new();
        m.push_readings(SensorId(1), Timestamp::monotonic(5), &mut out);
        assert_eq!(out.len(), 2);
        assert_eq!(out[0].quantity, Quantity::AirPressure);
        assert_eq!(out[1].quantity, Quantity::SensorTemperature);
        assert!(
            out.iter()
                .all(|r| r.quality.contains(Quality::OUT_OF_RANGE))
        );
        // Below 10 mbar the pressure itself is flagged.
        sim.set_environment(800.0, 288.15, 0.0);
        let m = ms.measure(&mut delay).unwrap();
        assert!(m.pressure_quality().contains(Quality::OUT_OF_RANGE));
        assert!(m.temperature_quality().is_good());
    }

    #[test]
    fn bad_prom_crc_is_typed_and_init_recovers_when_it_reads_clean() {
        let sim = Ms5611Sim::new(ADDRESS_CSB_HIGH);
        sim.set_corrupt_prom(true);
        let mut delay = sim.delay();
        let mut ms = Ms5611::new(sim.clone(), ADDRESS_CSB_HIGH);
        assert!(matches!(ms.init(&mut delay), Err(Error::PromCrc { .. })));
        assert_eq!(ms.measure(&mut delay).err(), Some(Error::NotInitialized));
        sim.clear_faults();
        ms.init(&mut delay).unwrap();
        ms.measure(&mut delay).unwrap();
    }

    #[test]
    fn adc_read_of_zero_is_an_error_not_a_pressure() {
        let sim = Ms5611Sim::new(ADDRESS_CSB_HIGH);
        let (mut ms, mut delay) = sim_driver(&sim);
        sim.zero_next_adc_reads(1);
        assert_eq!(
            ms.measure(&mut delay).err(),
            Some(Error::AdcNotReady(Conversion::Pressure))
        );
        ms.measure(&mut delay).unwrap();

        sim.set_stuck_conversion(true);
        assert_eq!(
            ms.measure(&mut delay).err(),
            Some(Error::AdcNotReady(Conversion::Pressure))
        );
        sim.clear_faults();
        ms.measure(&mut delay).unwrap();
    }

    #[test]
    fn a_driver_that_does_not_wait_reads_zero_from_the_simulator() {
        let sim = Ms5611Sim::new(ADDRESS_CSB_HIGH);
        let (mut ms, _) = sim_driver(&sim);
        // A delay on its own clock: the device sees no time pass.
        let mut impatient = SimDelay::new();
        assert_eq!(
            ms.measure(&mut impatient).err(),
            Some(Error::AdcNotReady(Conversion::Pressure))
        );
    }

    #[test]
    fn nack_and_bus_error_are_typed_and_recoverable() {
        let sim = Ms5611Sim::new(ADDRESS_CSB_HIGH);
        let (mut ms, mut delay) = sim_driver(&sim);
        sim.nack_next(1);
        assert!(matches!(
            ms.measure(&mut delay),
            Err(Error::I2c(ErrorKind::NoAcknowledge(_)))
        ));
        ms.measure(&mut delay).unwrap();
        sim.nack_until_cleared();
        assert!(ms.init(&mut delay).is_err());
        sim.clear_faults();
        sim.set_bus_error(true);
        assert_eq!(ms.init(&mut delay).err(), Some(Error::I2c(ErrorKind::Bus)));
        sim.set_bus_error(false);
        ms.soft_reset(&mut delay).unwrap();
        ms.measure(&mut delay).unwrap();
        let mut wrong = Ms5611::new(sim.clone(), ADDRESS_CSB_LOW);
        assert!(matches!(
            wrong.init(&mut delay),
            Err(Error::I2c(ErrorKind::NoAcknowledge(_)))
        ));
    }

    #[test]
    fn descriptor_names_the_prom_words_as_the_datasheet_does() {
        let sim = Ms5611Sim::new(ADDRESS_CSB_HIGH);
        let (ms, _) = sim_driver(&sim);
        let d = ms.descriptor();
        use aloft_protocol::ParameterValue::Integer;
        for (n, c) in DATASHEET_C.iter().enumerate() {
            assert_eq!(
                d.parameter(&format!("C{}", n + 1)),
                Some(&Integer(i64::from(*c)))
            );
        }
        assert_eq!(d.parameter("osr"), Some(&Integer(4096)));
    }

    #[test]
    fn apply_takes_pressure_and_the_chosen_temperature_from_the_flight() {
        use super::sim::TemperatureSource;
        let state = crate::flight::FlightState {
            t_s: 0.0,
            utc_ns: 0,
            latitude_deg: 0.0,
            longitude_deg: 0.0,
            altitude_m: 12_000.0,
            geoid_separation_m: 0.0,
            ground_speed_mps: 0.0,
            track_deg: 0.0,
            vertical_speed_mps: 0.0,
            pressure_pa: atmosphere::pressure_pa(12_000.0),
            outside_air_k: 223.15,
            box_temperature_k: 283.15,
            relative_humidity: 0.2,
            co2_mol_mol: 420e-6,
            true_airspeed_mps: 40.0,
            differential_pressure_pa: 300.0,
            muon_rate_per_s: 5.0,
            ..crate::flight::isa_state(0.0, 0.0)
        };
        for (source, expected) in [
            (TemperatureSource::OutsideAir, 223.15),
            (TemperatureSource::InstrumentBox, 283.15),
        ] {
            let sim = Ms5611Sim::new(ADDRESS_CSB_HIGH).with_temperature_source(source);
            sim.apply(&state);
            let (mut ms, mut delay) = sim_driver(&sim);
            let m = ms.measure(&mut delay).unwrap();
            assert!((m.temperature_k - expected).abs() <= 0.011, "{source:?}");
            assert!((m.pressure_pa - state.pressure_pa).abs() <= 1.0);
        }
    }

    #[test]
    fn osr_command_offsets_round_trip() {
        for osr in Osr::ALL {
            assert_eq!(Osr::from_command_offset(osr.command_offset()), Some(osr));
            assert!(osr.typical_conversion_time_us() < osr.max_conversion_time_us());
        }
        assert_eq!(Osr::from_command_offset(0x01), None);
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(512))]

        #[test]
        fn compensation_never_panics_for_any_prom_and_raw_values(
            words in any::<[u16; 8]>(),
            d1 in 0u32..=0xFF_FFFF,
            d2 in 0u32..=0xFF_FFFF,
        ) {
            let prom = Prom { words };
            let c = prom.compensate(d1, d2);
            let _ = crc4(&words);
            let _ = prom.validate::<()>();
            prop_assert!(c.temp < 2000 + (1 << 17));
        }

        #[test]
        fn extreme_corners_of_the_raw_space_stay_in_i64(
            words in proptest::sample::select(vec![[0u16; 8], [0xFFFF; 8]]),
            d1 in proptest::sample::select(vec![0u32, 1, 0xFF_FFFF]),
            d2 in proptest::sample::select(vec![0u32, 1, 0xFF_FFFF]),
        ) {
            let _ = Prom { words }.compensate(d1, d2);
        }

        #[test]
        fn any_prom_with_a_recomputed_crc_validates(words in any::<[u16; 8]>()) {
            let prom = Prom::with_valid_crc(words);
            prop_assume!(prom.words.iter().any(|&w| w != 0) && prom.words.iter().any(|&w| w != 0xFFFF));
            prop_assert_eq!(prom.validate::<()>(), Ok(()));
        }

        #[test]
        fn driver_recovers_any_environment_of_the_flight_envelope(
            p in 1_000.0f64..120_000.0,
            t in 213.15f64..358.15,
        ) {
            let sim = Ms5611Sim::new(ADDRESS_CSB_HIGH);
            sim.set_environment(p, t, 0.0);
            let (mut ms, mut delay) = sim_driver(&sim);
            let m = ms.measure(&mut delay).unwrap();
            prop_assert!((m.temperature_k - t).abs() <= 0.011, "{} vs {}", m.temperature_k, t);
            prop_assert!((m.pressure_pa - p).abs() <= 1.0, "{} vs {}", m.pressure_pa, p);
        }

        #[test]
        fn simulator_survives_any_transaction(addr in any::<u8>(), write in proptest::collection::vec(any::<u8>(), 0..6), read_len in 0usize..8) {
            let mut sim = Ms5611Sim::new(ADDRESS_CSB_HIGH);
            let mut buf = vec![0u8; read_len];
            let _ = sim.write(addr, &write);
            let _ = sim.read(addr, &mut buf);
        }
    }
}
