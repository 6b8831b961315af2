//! Bosch BME280 humidity, pressure and temperature sensor on I2C (0x76 or 0x77).
//!
//! The driver owns its bus: it checks the chip id (0x60), soft-resets the device, waits
//! for the NVM copy of the trim values, reads them, then takes forced-mode measurements
//! and compensates them with Bosch's integer formulas (32-bit temperature, 64-bit
//! pressure, humidity).
//!
//! Invariants: compensated values are never clamped. Bosch's reference code clamps
//! pressure to 300..1100 hPa and temperature to -40..85 °C, but at the glider's 12 km the
//! air is at ~194 hPa and -56 °C: such values are reported as computed and flagged
//! [`Quality::OUT_OF_RANGE`]. Every wait on the device is bounded: a status bit that never
//! clears gives a typed timeout, not a hang. Compensation never panics for any raw input
//! or trim (the arithmetic is widened to `i128`, which cannot overflow for 16-bit trim and
//! 20-bit samples, and gives Bosch's results exactly wherever Bosch's narrower types do not
//! overflow).

pub mod sim;

use aloft_protocol::{Quality, Quantity, Reading, SensorDescriptor, SensorId, Timestamp};
use embedded_hal::delay::DelayNs;
use embedded_hal::i2c::I2c;

use crate::Sample;

/// Address with SDO to GND.
pub const ADDRESS_PRIMARY: u8 = 0x76;
/// Address with SDO to VDDIO.
pub const ADDRESS_SECONDARY: u8 = 0x77;
/// What register 0xD0 holds on a BME280 (a BMP280 says 0x58).
pub const CHIP_ID: u8 = 0x60;

/// Register map (datasheet section 5.3).
pub(crate) mod reg {
    pub const CALIB_00: u8 = 0x88;
    pub const CALIB_00_LEN: usize = 26;
    pub const ID: u8 = 0xD0;
    pub const RESET: u8 = 0xE0;
    pub const CALIB_26: u8 = 0xE1;
    pub const CALIB_26_LEN: usize = 7;
    pub const CTRL_HUM: u8 = 0xF2;
    pub const STATUS: u8 = 0xF3;
    pub const CTRL_MEAS: u8 = 0xF4;
    pub const CONFIG: u8 = 0xF5;
    pub const DATA: u8 = 0xF7;
    pub const DATA_LEN: usize = 8;

    /// Written to RESET: the only value that resets.
    pub const RESET_COMMAND: u8 = 0xB6;
    /// STATUS bit 3: a conversion is running.
    pub const STATUS_MEASURING: u8 = 1 << 3;
    /// STATUS bit 0: the NVM is being copied to the image registers.
    pub const STATUS_IM_UPDATE: u8 = 1 << 0;
    /// ctrl_meas mode bits for forced mode.
    pub const MODE_FORCED: u8 = 0b01;
}

/// Rated pressure range, Pa (300..1100 hPa).
pub const RATED_PRESSURE_PA: core::ops::RangeInclusive<f64> = 30_000.0..=110_000.0;
/// Rated (operating) temperature range, K (-40..85 °C).
pub const RATED_TEMPERATURE_K: core::ops::RangeInclusive<f64> = 233.15..=358.15;
/// Physically meaningful relative humidity, as a fraction.
pub const RATED_HUMIDITY: core::ops::RangeInclusive<f64> = 0.0..=1.0;

/// Oversampling of one measurement (osrs_t, osrs_p, osrs_h).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Oversampling {
    /// One sample.
    X1,
    /// Two samples.
    X2,
    /// Four samples.
    X4,
    /// Eight samples.
    X8,
    /// Sixteen samples.
    X16,
}

impl Oversampling {
    /// The 3-bit register code (0 means skipped, see [`osrs_bits`]).
    pub const fn bits(self) -> u8 {
        match self {
            Oversampling::X1 => 1,
            Oversampling::X2 => 2,
            Oversampling::X4 => 3,
            Oversampling::X8 => 4,
            Oversampling::X16 => 5,
        }
    }

    /// Number of samples averaged.
    pub const fn factor(self) -> u32 {
        match self {
            Oversampling::X1 => 1,
            Oversampling::X2 => 2,
            Oversampling::X4 => 4,
            Oversampling::X8 => 8,
            Oversampling::X16 => 16,
        }
    }

    /// Decodes a register code; `None` for 0 (skipped). Codes above 5 mean x16.
    pub const fn from_bits(bits: u8) -> Option<Self> {
        match bits & 0b111 {
            0 => None,
            1 => Some(Oversampling::X1),
            2 => Some(Oversampling::X2),
            3 => Some(Oversampling::X4),
            4 => Some(Oversampling::X8),
            _ => Some(Oversampling::X16),
        }
    }
}

/// Register code of an optional oversampling (0 = measurement skipped).
pub const fn osrs_bits(osr: Option<Oversampling>) -> u8 {
    match osr {
        Some(o) => o.bits(),
        None => 0,
    }
}

/// Measurement settings.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub struct Config {
    /// Temperature oversampling; temperature is always measured because pressure and
    /// humidity compensation need it.
    pub temperature: Oversampling,
    /// Pressure oversampling, `None` to skip pressure.
    pub pressure: Option<Oversampling>,
    /// Humidity oversampling, `None` to skip humidity.
    pub humidity: Option<Oversampling>,
    /// Status polls (1 ms apart) allowed after the datasheet's maximum conversion time or
    /// the reset start-up time, before a still-busy device is reported as a timeout.
    pub max_status_polls: u8,
}

impl Default for Config {
    /// Pressure x4 (about 2.4 Pa RMS, 0.2 m of altitude), temperature and humidity x1:
    /// close to the datasheet's weather-monitoring setting with a quieter pressure, at
    /// about 16 ms per forced measurement.
    fn default() -> Self {
        Config {
            temperature: Oversampling::X1,
            pressure: Some(Oversampling::X4),
            humidity: Some(Oversampling::X1),
            max_status_polls: 10,
        }
    }
}

impl Config {
    /// The datasheet's maximum forced-mode measurement time (section 9.1), µs.
    pub fn max_measurement_time_us(&self) -> u32 {
        let t = 2300 * self.temperature.factor();
        let p = self.pressure.map_or(0, |o| 2300 * o.factor() + 575);
        let h = self.humidity.map_or(0, |o| 2300 * o.factor() + 575);
        1250 + t + p + h
    }

    /// The datasheet's typical forced-mode measurement time, µs (what the simulator takes).
    pub fn typical_measurement_time_us(&self) -> u32 {
        let t = 2000 * self.temperature.factor();
        let p = self.pressure.map_or(0, |o| 2000 * o.factor() + 500);
        let h = self.humidity.map_or(0, |o| 2000 * o.factor() + 500);
        1000 + t + p + h
    }
}

/// Errors of the BME280 driver.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum Error<E> {
    /// The bus transfer failed (NACK, arbitration loss, adapter error).
    #[error("I2C transfer to the BME280 failed: {0:?}")]
    I2c(E),
    /// Something answered at the address, but it is not a BME280.
    #[error("chip id {0:#04x} is not a BME280's 0x60")]
    WrongChipId(u8),
    /// `im_update` stayed set after reset: the trim values were never copied.
    #[error("the BME280's NVM copy did not finish after {0} status polls")]
    NvmCopyTimeout(u8),
    /// `measuring` stayed set: the conversion never finished.
    #[error("the BME280's conversion did not finish after {0} status polls")]
    ConversionTimeout(u8),
    /// `measure` before a successful `init`.
    #[error("the BME280 driver is not initialised")]
    NotInitialized,
    /// The trim values make pressure compensation divide by zero (corrupt NVM).
    #[error("the BME280's trim values make pressure compensation impossible")]
    InvalidCalibration,
}

/// The factory trim values (datasheet table 16), in the datasheet's names.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
#[allow(missing_docs)]
pub struct Calibration {
    pub dig_t1: u16,
    pub dig_t2: i16,
    pub dig_t3: i16,
    pub dig_p1: u16,
    pub dig_p2: i16,
    pub dig_p3: i16,
    pub dig_p4: i16,
    pub dig_p5: i16,
    pub dig_p6: i16,
    pub dig_p7: i16,
    pub dig_p8: i16,
    pub dig_p9: i16,
    pub dig_h1: u8,
    pub dig_h2: i16,
    pub dig_h3: u8,
    pub dig_h4: i16,
    pub dig_h5: i16,
    pub dig_h6: i8,
}

fn le_u16(bytes: &[u8], at: usize) -> u16 {
    let lo = bytes.get(at).copied().unwrap_or(0);
    let hi = bytes.get(at + 1).copied().unwrap_or(0);
    u16::from_le_bytes([lo, hi])
}

fn le_i16(bytes: &[u8], at: usize) -> i16 {
    le_u16(bytes, at) as i16
}

impl Calibration {
    /// Decodes registers 0x88..0xA1 (`calib00`, 26 bytes) and 0xE1..0xE7 (`calib26`, 7 bytes).
    ///
    /// dig_H4 and dig_H5 are 12-bit signed values sharing register 0xE5: H4 is
    /// `0xE4[7:0] << 4 | 0xE5[3:0]`, H5 is `0xE6[7:0] << 4 | 0xE5[7:4]`, the high bytes signed.
    pub fn from_registers(
        calib00: &[u8; reg::CALIB_00_LEN],
        calib26: &[u8; reg::CALIB_26_LEN],
    ) -> Self {
        let [_, _, h3, e4, e5, e6, h6] = *calib26;
        Calibration {
            dig_t1: le_u16(calib00, 0),
            dig_t2: le_i16(calib00, 2),
            dig_t3: le_i16(calib00, 4),
            dig_p1: le_u16(calib00, 6),
            dig_p2: le_i16(calib00, 8),
            dig_p3: le_i16(calib00, 10),
            dig_p4: le_i16(calib00, 12),
            dig_p5: le_i16(calib00, 14),
            dig_p6: le_i16(calib00, 16),
            dig_p7: le_i16(calib00, 18),
            dig_p8: le_i16(calib00, 20),
            dig_p9: le_i16(calib00, 22),
            // 0xA0 (offset 24) is not used.
            dig_h1: calib00[25],
            dig_h2: le_i16(calib26, 0),
            dig_h3: h3,
            dig_h4: (i16::from(e4 as i8) << 4) | i16::from(e5 & 0x0F),
            dig_h5: (i16::from(e6 as i8) << 4) | i16::from(e5 >> 4),
            dig_h6: h6 as i8,
        }
    }

    /// Encodes the trim back into register images (the simulator's NVM). dig_H4 and dig_H5
    /// keep their low 12 bits, as the device does.
    pub fn to_registers(&self) -> ([u8; reg::CALIB_00_LEN], [u8; reg::CALIB_26_LEN]) {
        let mut a = [0u8; reg::CALIB_00_LEN];
        let words: [u16; 12] = [
            self.dig_t1,
            self.dig_t2 as u16,
            self.dig_t3 as u16,
            self.dig_p1,
            self.dig_p2 as u16,
            self.dig_p3 as u16,
            self.dig_p4 as u16,
            self.dig_p5 as u16,
            self.dig_p6 as u16,
            self.dig_p7 as u16,
            self.dig_p8 as u16,
            self.dig_p9 as u16,
        ];
        for (chunk, w) in a.chunks_exact_mut(2).zip(words) {
            chunk.copy_from_slice(&w.to_le_bytes());
        }
        a[25] = self.dig_h1;
        let h2 = self.dig_h2.to_le_bytes();
        let h4 = self.dig_h4 as u16;
        let h5 = self.dig_h5 as u16;
        let b = [
            h2[0],
            h2[1],
            self.dig_h3,
            (h4 >> 4) as u8,
            ((h4 & 0x0F) as u8) | (((h5 & 0x0F) as u8) << 4),
            (h5 >> 4) as u8,
            self.dig_h6 as u8,
        ];
        (a, b)
    }

    /// Bosch's 32-bit temperature compensation: (temperature in 0.01 °C, t_fine).
    pub fn compensate_temperature(&self, adc_t: u32) -> (i64, i64) {
        let adc_t = i128::from(adc_t);
        let t1 = i128::from(self.dig_t1);
        let var1 = (((adc_t >> 3) - (t1 << 1)) * i128::from(self.dig_t2)) >> 11;
        let d = (adc_t >> 4) - t1;
        let var2 = (((d * d) >> 12) * i128::from(self.dig_t3)) >> 14;
        let t_fine = var1 + var2;
        let centi = (t_fine * 5 + 128) >> 8;
        (centi as i64, t_fine as i64)
    }

    /// Bosch's 64-bit pressure compensation: Pa in Q24.8, or `None` when the trim makes
    /// the divisor zero. Not clamped.
    pub fn compensate_pressure(&self, adc_p: u32, t_fine: i64) -> Option<i64> {
        let var1 = i128::from(t_fine) - 128_000;
        let mut var2 = var1 * var1 * i128::from(self.dig_p6);
        var2 += (var1 * i128::from(self.dig_p5)) << 17;
        var2 += i128::from(self.dig_p4) << 35;
        let var1 = ((var1 * var1 * i128::from(self.dig_p3)) >> 8)
            + ((var1 * i128::from(self.dig_p2)) << 12);
        let var1 = (((1i128 << 47) + var1) * i128::from(self.dig_p1)) >> 33;
        if var1 == 0 {
            return None;
        }
        let p = 1_048_576 - i128::from(adc_p);
        let p = (((p << 31) - var2) * 3125) / var1;
        let var1 = (i128::from(self.dig_p9) * (p >> 13) * (p >> 13)) >> 25;
        let var2 = (i128::from(self.dig_p8) * p) >> 19;
        let p = ((p + var1 + var2) >> 8) + (i128::from(self.dig_p7) << 4);
        i64::try_from(p).ok()
    }

    /// Bosch's humidity compensation: %RH in Q22.10, without Bosch's clamp to 0..100 %.
    pub fn compensate_humidity(&self, adc_h: u16, t_fine: i64) -> i64 {
        let adc_h = i128::from(adc_h);
        let x = i128::from(t_fine) - 76_800;
        let x = (((adc_h << 14) - (i128::from(self.dig_h4) << 20) - (i128::from(self.dig_h5) * x)
            + 16_384)
            >> 15)
            * (((((((x * i128::from(self.dig_h6)) >> 10)
                * (((x * i128::from(self.dig_h3)) >> 11) + 32_768))
                >> 10)
                + 2_097_152)
                * i128::from(self.dig_h2)
                + 8192)
                >> 14);
        let x = x - (((((x >> 15) * (x >> 15)) >> 7) * i128::from(self.dig_h1)) >> 4);
        // Q22.10 after the shift; i64 holds any value these widths can produce.
        i64::try_from(x >> 12).unwrap_or(if x < 0 { i64::MIN } else { i64::MAX })
    }
}

/// Uncompensated ADC values of one measurement (20, 20 and 16 bits).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct RawSample {
    /// adc_P (0x80000 when pressure was skipped).
    pub adc_p: u32,
    /// adc_T.
    pub adc_t: u32,
    /// adc_H (0x8000 when humidity was skipped).
    pub adc_h: u16,
}

impl RawSample {
    /// Decodes the burst read of 0xF7..0xFE.
    pub fn from_registers(data: &[u8; reg::DATA_LEN]) -> Self {
        let [p_msb, p_lsb, p_xlsb, t_msb, t_lsb, t_xlsb, h_msb, h_lsb] = *data;
        let twenty = |msb: u8, lsb: u8, xlsb: u8| {
            (u32::from(msb) << 12) | (u32::from(lsb) << 4) | (u32::from(xlsb) >> 4)
        };
        RawSample {
            adc_p: twenty(p_msb, p_lsb, p_xlsb),
            adc_t: twenty(t_msb, t_lsb, t_xlsb),
            adc_h: u16::from_be_bytes([h_msb, h_lsb]),
        }
    }

    /// Encodes into the data registers (the simulator's side).
    pub fn to_registers(&self) -> [u8; reg::DATA_LEN] {
        let p = self.adc_p & 0xF_FFFF;
        let t = self.adc_t & 0xF_FFFF;
        let h = self.adc_h.to_be_bytes();
        [
            (p >> 12) as u8,
            (p >> 4) as u8,
            ((p & 0xF) << 4) as u8,
            (t >> 12) as u8,
            (t >> 4) as u8,
            ((t & 0xF) << 4) as u8,
            h[0],
            h[1],
        ]
    }
}

/// One compensated measurement.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Measurement {
    /// Air temperature, K.
    pub temperature_k: f64,
    /// Air pressure, Pa; `None` when pressure was not measured.
    pub pressure_pa: Option<f64>,
    /// Relative humidity, fraction; `None` when humidity was not measured.
    pub relative_humidity: Option<f64>,
    /// What the ADCs said.
    pub raw: RawSample,
}

impl Measurement {
    /// Compensates `raw` with `calibration`; pressure and humidity only where `config`
    /// measured them. `None` when the trim makes pressure compensation impossible.
    pub fn compensate(calibration: &Calibration, config: &Config, raw: RawSample) -> Option<Self> {
        let (centi, t_fine) = calibration.compensate_temperature(raw.adc_t);
        let pressure_pa = match config.pressure {
            Some(_) => Some(calibration.compensate_pressure(raw.adc_p, t_fine)? as f64 / 256.0),
            None => None,
        };
        let relative_humidity = config
            .humidity
            .map(|_| calibration.compensate_humidity(raw.adc_h, t_fine) as f64 / 1024.0 / 100.0);
        Some(Measurement {
            temperature_k: centi as f64 / 100.0 + 273.15,
            pressure_pa,
            relative_humidity,
            raw,
        })
    }

    /// Flags shared by every reading: compensation is only specified within the rated
    /// temperature range, so a temperature outside it taints pressure and humidity too.
    fn temperature_quality(&self) -> Quality {
        if RATED_TEMPERATURE_K.contains(&self.temperature_k) {
            Quality::GOOD
        } else {
            Quality::OUT_OF_RANGE
        }
    }

    /// Quality of the pressure reading.
    pub fn pressure_quality(&self) -> Quality {
        let mut q = self.temperature_quality();
        if let Some(p) = self.pressure_pa
            && !RATED_PRESSURE_PA.contains(&p)
        {
            q |= Quality::OUT_OF_RANGE;
        }
        q
    }

    /// Quality of the humidity reading.
    pub fn humidity_quality(&self) -> Quality {
        let mut q = self.temperature_quality();
        if let Some(h) = self.relative_humidity
            && !RATED_HUMIDITY.contains(&h)
        {
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
            Quantity::AirTemperature,
            self.temperature_k,
            self.temperature_quality(),
        ));
        if let Some(p) = self.pressure_pa {
            out.push(reading(Quantity::AirPressure, p, self.pressure_quality()));
        }
        if let Some(h) = self.relative_humidity {
            out.push(reading(
                Quantity::RelativeHumidity,
                h,
                self.humidity_quality(),
            ));
        }
    }
}

/// A BME280 on an I2C bus the driver owns.
#[derive(Debug)]
pub struct Bme280<I2C> {
    bus: I2C,
    address: u8,
    config: Config,
    calibration: Option<Calibration>,
}

impl<I2C: I2c> Bme280<I2C> {
    /// A driver for the device at `address` with the default [`Config`]. Talks to the
    /// device only from [`Bme280::init`] on.
    pub fn new(bus: I2C, address: u8) -> Self {
        Bme280::with_config(bus, address, Config::default())
    }

    /// A driver with explicit measurement settings.
    pub fn with_config(bus: I2C, address: u8, config: Config) -> Self {
        Bme280 {
            bus,
            address,
            config,
            calibration: None,
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

    /// The measurement settings.
    pub fn config(&self) -> &Config {
        &self.config
    }

    /// Changes the measurement settings; they apply from the next measurement.
    pub fn set_config(&mut self, config: Config) {
        self.config = config;
    }

    /// The trim values read at the last successful init.
    pub fn calibration(&self) -> Option<&Calibration> {
        self.calibration.as_ref()
    }

    /// Checks the chip id, resets the device, waits for its NVM copy and reads its trim.
    ///
    /// Safe to call again at any time: the agent's soft restart of the sensor calls it.
    pub fn init<D: DelayNs>(&mut self, delay: &mut D) -> Result<(), Error<I2C::Error>> {
        self.calibration = None;
        let id = self.read_register(reg::ID)?;
        if id != CHIP_ID {
            return Err(Error::WrongChipId(id));
        }
        self.write_register(reg::RESET, reg::RESET_COMMAND)?;
        // Start-up time after reset is 2 ms (datasheet table 1).
        delay.delay_ms(2);
        self.wait_status_clear(reg::STATUS_IM_UPDATE, Error::NvmCopyTimeout, delay)?;
        let mut calib00 = [0u8; reg::CALIB_00_LEN];
        let mut calib26 = [0u8; reg::CALIB_26_LEN];
        self.bus
            .write_read(self.address, &[reg::CALIB_00], &mut calib00)
            .map_err(Error::I2c)?;
        self.bus
            .write_read(self.address, &[reg::CALIB_26], &mut calib26)
            .map_err(Error::I2c)?;
        let calibration = Calibration::from_registers(&calib00, &calib26);
        if calibration.dig_p1 == 0 {
            // dig_P1 multiplies the pressure divisor: zero means erased or corrupt NVM.
            return Err(Error::InvalidCalibration);
        }
        // No IIR filter, standby irrelevant in forced mode.
        self.write_register(reg::CONFIG, 0x00)?;
        tracing::debug!(address = self.address, ?calibration, "BME280 initialised.");
        self.calibration = Some(calibration);
        Ok(())
    }

    /// Re-initialises the device (reset, NVM copy, trim): the same as [`Bme280::init`].
    pub fn soft_reset<D: DelayNs>(&mut self, delay: &mut D) -> Result<(), Error<I2C::Error>> {
        self.init(delay)
    }

    /// Takes one forced-mode measurement and compensates it.
    pub fn measure<D: DelayNs>(&mut self, delay: &mut D) -> Result<Measurement, Error<I2C::Error>> {
        let calibration = self.calibration.ok_or(Error::NotInitialized)?;
        let config = self.config;
        // ctrl_hum only takes effect with the following ctrl_meas write; writing it every
        // time also repairs a device that browned out and lost its settings.
        self.write_register(reg::CTRL_HUM, osrs_bits(config.humidity))?;
        let ctrl_meas =
            (config.temperature.bits() << 5) | (osrs_bits(config.pressure) << 2) | reg::MODE_FORCED;
        self.write_register(reg::CTRL_MEAS, ctrl_meas)?;
        delay.delay_us(config.max_measurement_time_us());
        self.wait_status_clear(reg::STATUS_MEASURING, Error::ConversionTimeout, delay)?;
        let mut data = [0u8; reg::DATA_LEN];
        self.bus
            .write_read(self.address, &[reg::DATA], &mut data)
            .map_err(Error::I2c)?;
        let raw = RawSample::from_registers(&data);
        Measurement::compensate(&calibration, &config, raw).ok_or(Error::InvalidCalibration)
    }

    /// What this sensor is: part, address, settings and trim in the datasheet's names.
    pub fn descriptor(&self) -> SensorDescriptor {
        let c = &self.config;
        let mut d = SensorDescriptor::new("BME280")
            .with_integer("address", i64::from(self.address))
            .with_integer("chip_id", i64::from(CHIP_ID))
            .with_integer("osrs_t", i64::from(c.temperature.bits()))
            .with_integer("osrs_p", i64::from(osrs_bits(c.pressure)))
            .with_integer("osrs_h", i64::from(osrs_bits(c.humidity)));
        if let Some(k) = &self.calibration {
            let words: [(&str, i64); 18] = [
                ("dig_T1", k.dig_t1.into()),
                ("dig_T2", k.dig_t2.into()),
                ("dig_T3", k.dig_t3.into()),
                ("dig_P1", k.dig_p1.into()),
                ("dig_P2", k.dig_p2.into()),
                ("dig_P3", k.dig_p3.into()),
                ("dig_P4", k.dig_p4.into()),
                ("dig_P5", k.dig_p5.into()),
                ("dig_P6", k.dig_p6.into()),
                ("dig_P7", k.dig_p7.into()),
                ("dig_P8", k.dig_p8.into()),
                ("dig_P9", k.dig_p9.into()),
                ("dig_H1", k.dig_h1.into()),
                ("dig_H2", k.dig_h2.into()),
                ("dig_H3", k.dig_h3.into()),
                ("dig_H4", k.dig_h4.into()),
                ("dig_H5", k.dig_h5.into()),
                ("dig_H6", k.dig_h6.into()),
            ];
            for (name, value) in words {
                d = d.with_integer(name, value);
            }
        }
        d
    }

    fn read_register(&mut self, register: u8) -> Result<u8, Error<I2C::Error>> {
        let mut value = [0u8; 1];
        self.bus
            .write_read(self.address, &[register], &mut value)
            .map_err(Error::I2c)?;
        Ok(value[0])
    }

    fn write_register(&mut self, register: u8, value: u8) -> Result<(), Error<I2C::Error>> {
        self.bus
            .write(self.address, &[register, value])
            .map_err(Error::I2c)
    }

    /// Polls STATUS until `bit` is clear, at most `max_status_polls` times 1 ms apart;
    /// `timeout` builds the error for a bit that stays set.
    fn wait_status_clear<D: DelayNs>(
        &mut self,
        bit: u8,
        timeout: fn(u8) -> Error<I2C::Error>,
        delay: &mut D,
    ) -> Result<(), Error<I2C::Error>> {
        let polls = self.config.max_status_polls.max(1);
        for poll in 0..polls {
            if self.read_register(reg::STATUS)? & bit == 0 {
                return Ok(());
            }
            if poll + 1 < polls {
                delay.delay_ms(1);
            }
        }
        // Debug only: the supervisor that gets the error counts and logs it.
        tracing::debug!(
            address = self.address,
            bit,
            polls,
            "BME280 status bit stuck."
        );
        Err(timeout(polls))
    }
}

#[cfg(test)]
mod tests {
    use super::sim::{Bme280Sim, TYPICAL_CALIBRATION};
    use super::*;
    use crate::atmosphere;
    use crate::i2c::sim::SimDelay;
    use embedded_hal::i2c::ErrorKind;
    use embedded_hal_mock::eh1::i2c::{Mock, Transaction};
    use proptest::prelude::*;

    /// Bosch's floating-point compensation (datasheet 8.1), written independently of the
    /// integer code under test: (°C, Pa, %RH).
    fn bosch_double(c: &Calibration, raw: RawSample) -> (f64, f64, f64) {
        let (adc_t, adc_p, adc_h) = (
            f64::from(raw.adc_t),
            f64::from(raw.adc_p),
            f64::from(raw.adc_h),
        );
        let t1 = f64::from(c.dig_t1);
        let var1 = (adc_t / 16384.0 - t1 / 1024.0) * f64::from(c.dig_t2);
        let var2 = (adc_t / 131072.0 - t1 / 8192.0).powi(2) * f64::from(c.dig_t3);
        let t_fine = var1 + var2;
        let t = t_fine / 5120.0;

        let mut var1 = t_fine / 2.0 - 64000.0;
        let mut var2 = var1 * var1 * f64::from(c.dig_p6) / 32768.0;
        var2 += var1 * f64::from(c.dig_p5) * 2.0;
        var2 = var2 / 4.0 + f64::from(c.dig_p4) * 65536.0;
        var1 =
            (f64::from(c.dig_p3) * var1 * var1 / 524288.0 + f64::from(c.dig_p2) * var1) / 524288.0;
        var1 = (1.0 + var1 / 32768.0) * f64::from(c.dig_p1);
        let mut p = 1048576.0 - adc_p;
        p = (p - var2 / 4096.0) * 6250.0 / var1;
        let var1 = f64::from(c.dig_p9) * p * p / 2147483648.0;
        let var2 = p * f64::from(c.dig_p8) / 32768.0;
        p += (var1 + var2 + f64::from(c.dig_p7)) / 16.0;

        let mut h = t_fine - 76800.0;
        h = (adc_h - (f64::from(c.dig_h4) * 64.0 + f64::from(c.dig_h5) / 16384.0 * h))
            * (f64::from(c.dig_h2) / 65536.0
                * (1.0
                    + f64::from(c.dig_h6) / 67108864.0
                        * h
                        * (1.0 + f64::from(c.dig_h3) / 67108864.0 * h)));
        h *= 1.0 - f64::from(c.dig_h1) * h / 524288.0;
        (t, p, h)
    }

    #[test]
    fn datasheet_worked_example_gives_25_08_c_and_100653_27_pa() {
        // BMP280 datasheet section 3.12 (the BME280 shares the T and P formulas):
        // adc_T = 519888, adc_P = 415148 -> t_fine = 128422, T = 25.08 °C, p = 100653.27 Pa.
        let c = TYPICAL_CALIBRATION;
        let (centi, t_fine) = c.compensate_temperature(519_888);
        assert_eq!((centi, t_fine), (2508, 128_422));
        // The datasheet's figures come from the double-precision formulas; the 64-bit
        // integer path lands within 0.02 Pa of them (here 25767233 / 256 Pa).
        let p = c.compensate_pressure(415_148, t_fine).unwrap() as f64 / 256.0;
        assert!((p - 100_653.27).abs() < 0.02, "{p}");
        let raw = RawSample {
            adc_p: 415_148,
            adc_t: 519_888,
            adc_h: 0,
        };
        let (tc, pd, _) = bosch_double(&c, raw);
        assert!(
            (tc - 25.08).abs() < 0.005 && (pd - 100_653.27).abs() < 0.005,
            "{tc} {pd}"
        );
    }

    #[test]
    fn integer_compensation_matches_bosch_double_formulas_across_the_flight() {
        let config = Config::default();
        for alt in [0.0, 2_000.0, 6_000.0, 9_000.0, 12_000.0] {
            for t in [293.15, 253.15, 217.15] {
                let raw = sim::invert(
                    &TYPICAL_CALIBRATION,
                    &config,
                    atmosphere::pressure_pa(alt),
                    t,
                    0.4,
                );
                let m = Measurement::compensate(&TYPICAL_CALIBRATION, &config, raw).unwrap();
                let (tc, p, h) = bosch_double(&TYPICAL_CALIBRATION, raw);
                assert!((m.temperature_k - 273.15 - tc).abs() <= 0.01, "{alt} {t}");
                assert!(
                    (m.pressure_pa.unwrap() - p).abs() <= 0.5,
                    "{alt} {t}: {:?} {p}",
                    m.pressure_pa
                );
                assert!(
                    (m.relative_humidity.unwrap() * 100.0 - h).abs() <= 0.05,
                    "{alt} {t}"
                );
            }
        }
    }

    #[test]
    fn h4_and_h5_unpack_signed_nibbles_from_shared_register() {
        let calib00 = [0u8; reg::CALIB_00_LEN];
        // 0xE4 = 0xFF, 0xE5 = 0xA5, 0xE6 = 0x80: H4 = 0xFF5 (-11), H5 = 0x80A (-2038).
        let calib26 = [0x72, 0x01, 0x00, 0xFF, 0xA5, 0x80, 0x1E];
        let c = Calibration::from_registers(&calib00, &calib26);
        assert_eq!(
            (c.dig_h2, c.dig_h4, c.dig_h5, c.dig_h6),
            (370, -11, -2038, 30)
        );
        let calib26 = [0x72, 0x01, 0x00, 0x13, 0x26, 0x03, 0x1E];
        let c = Calibration::from_registers(&calib00, &calib26);
        assert_eq!((c.dig_h4, c.dig_h5), (310, 50));
    }

    fn calibration_bytes() -> ([u8; reg::CALIB_00_LEN], [u8; reg::CALIB_26_LEN]) {
        TYPICAL_CALIBRATION.to_registers()
    }

    #[test]
    fn init_and_measurement_produce_the_exact_bus_traffic() {
        let (calib00, calib26) = calibration_bytes();
        let raw = RawSample {
            adc_p: 415_148,
            adc_t: 519_888,
            adc_h: 0x6A00,
        };
        let expectations = [
            Transaction::write_read(0x77, vec![0xD0], vec![0x60]),
            Transaction::write(0x77, vec![0xE0, 0xB6]),
            // Still copying at the first poll, done at the second.
            Transaction::write_read(0x77, vec![0xF3], vec![0x01]),
            Transaction::write_read(0x77, vec![0xF3], vec![0x00]),
            Transaction::write_read(0x77, vec![0x88], calib00.to_vec()),
            Transaction::write_read(0x77, vec![0xE1], calib26.to_vec()),
            Transaction::write(0x77, vec![0xF5, 0x00]),
            Transaction::write(0x77, vec![0xF2, 0x01]),
            // osrs_t x1 (001), osrs_p x4 (011), forced (01).
            Transaction::write(0x77, vec![0xF4, (0b001 << 5) | (0b011 << 2) | 0b01]),
            Transaction::write_read(0x77, vec![0xF3], vec![0x00]),
            Transaction::write_read(0x77, vec![0xF7], raw.to_registers().to_vec()),
        ];
        let mut bus = Mock::new(&expectations);
        let mut delay = SimDelay::new();
        let mut bme = Bme280::new(bus.clone(), ADDRESS_SECONDARY);
        bme.init(&mut delay).unwrap();
        let m = bme.measure(&mut delay).unwrap();
        bus.done();
        assert!(
            (m.temperature_k - 298.23).abs() < 1e-9,
            "{}",
            m.temperature_k
        );
        assert!((m.pressure_pa.unwrap() - 100_653.27).abs() < 0.02);
        assert_eq!(m.raw, raw);
        // 2 ms start-up, one 1 ms poll interval, then the datasheet's maximum conversion time.
        let conversion_ns = u64::from(Config::default().max_measurement_time_us()) * 1000;
        assert_eq!(delay.total_ns(), 3_000_000 + conversion_ns);
        assert_eq!(Config::default().max_measurement_time_us(), 16_200);
    }

    #[test]
    fn another_chip_is_refused_before_anything_is_written() {
        let expectations = [Transaction::write_read(0x76, vec![0xD0], vec![0x58])];
        let mut bus = Mock::new(&expectations);
        let mut bme = Bme280::new(bus.clone(), ADDRESS_PRIMARY);
        assert_eq!(
            bme.init(&mut SimDelay::new()),
            Err(Error::WrongChipId(0x58))
        );
        bus.done();
    }

    fn sim_driver(sim: &Bme280Sim) -> (Bme280<Bme280Sim>, SimDelay) {
        let mut delay = sim.delay();
        let mut bme = Bme280::new(sim.clone(), ADDRESS_PRIMARY);
        bme.init(&mut delay).unwrap();
        (bme, delay)
    }

    #[test]
    fn driver_recovers_the_environment_from_sea_level_to_12_km() {
        let sim = Bme280Sim::new(ADDRESS_PRIMARY);
        let (mut bme, mut delay) = sim_driver(&sim);
        for step in 0..=24 {
            let alt = f64::from(step) * 500.0;
            // +20 °C at the ground down to -56 °C at the ceiling.
            let t = 293.15 - 76.0 * f64::from(step) / 24.0;
            let p = atmosphere::pressure_pa(alt);
            let rh = 0.9 - 0.035 * f64::from(step);
            sim.set_environment(p, t, rh);
            let m = bme.measure(&mut delay).unwrap();
            // Resolution: 0.01 °C, 1/256 Pa of the integer output (plus its rounding), 1/1024 %RH.
            assert!(
                (m.temperature_k - t).abs() <= 0.01,
                "{alt}: {} vs {t}",
                m.temperature_k
            );
            let pm = m.pressure_pa.unwrap();
            assert!((pm - p).abs() <= 0.5, "{alt}: {pm} vs {p}");
            let hm = m.relative_humidity.unwrap();
            assert!((hm - rh).abs() <= 0.001, "{alt}: {hm} vs {rh}");
        }
    }

    #[test]
    fn noisy_simulator_stays_within_five_sigma_of_the_datasheet_noise() {
        let sim = Bme280Sim::new(ADDRESS_PRIMARY).with_noise(42);
        let (mut bme, mut delay) = sim_driver(&sim);
        sim.set_environment(70_000.0, 263.15, 0.6);
        let mut spread = 0.0f64;
        for _ in 0..50 {
            let m = bme.measure(&mut delay).unwrap();
            let dp = m.pressure_pa.unwrap() - 70_000.0;
            assert!(dp.abs() < 5.0 * 2.1 + 0.5, "{dp}");
            assert!((m.temperature_k - 263.15).abs() < 0.04);
            spread = spread.max(dp.abs());
        }
        // The noise is really there.
        assert!(spread > 0.5, "{spread}");
    }

    #[test]
    fn at_12_km_and_minus_50_c_readings_are_reported_unclamped_and_flagged() {
        let sim = Bme280Sim::new(ADDRESS_PRIMARY);
        let (mut bme, mut delay) = sim_driver(&sim);
        sim.set_environment(19_400.0, 223.15, 0.3);
        let m = bme.measure(&mut delay).unwrap();
        assert!((m.pressure_pa.unwrap() - 19_400.0).abs() <= 0.5);
        assert!((m.temperature_k - 223.15).abs() <= 0.01);
        let mut out = Vec::new();
        m.push_readings(SensorId(3), Timestamp::monotonic(7), &mut out);
        let quantities: Vec<_> = out.iter().map(|r| r.quantity).collect();
        assert_eq!(
            quantities,
            [
                Quantity::AirTemperature,
                Quantity::AirPressure,
                Quantity::RelativeHumidity
            ]
        );
        assert!(
            out.iter()
                .all(|r| r.quality.contains(Quality::OUT_OF_RANGE))
        );
        assert!(
            out.iter()
                .all(|r| r.sensor == SensorId(3) && r.time.mono_ns == 7)
        );

        // Inside the rated ranges nothing is flagged.
        sim.set_environment(95_000.0, 293.15, 0.3);
        let m = bme.measure(&mut delay).unwrap();
        out.clear();
        m.push_readings(SensorId(3), Timestamp::monotonic(8), &mut out);
        assert!(out.iter().all(|r| r.quality.is_good()), "{out:?}");

        // Low pressure at a rated temperature flags only the pressure.
        sim.set_environment(25_000.0, 253.15, 0.3);
        let m = bme.measure(&mut delay).unwrap();
        assert!(m.pressure_quality().contains(Quality::OUT_OF_RANGE));
        assert!(m.temperature_quality().is_good());
        assert!(m.humidity_quality().is_good());
    }

    #[test]
    fn skipped_pressure_and_humidity_give_no_readings() {
        let sim = Bme280Sim::new(ADDRESS_PRIMARY);
        let config = Config {
            pressure: None,
            humidity: None,
            ..Config::default()
        };
        let mut delay = sim.delay();
        let mut bme = Bme280::with_config(sim.clone(), ADDRESS_PRIMARY, config);
        bme.init(&mut delay).unwrap();
        let m = bme.measure(&mut delay).unwrap();
        assert_eq!((m.pressure_pa, m.relative_humidity), (None, None));
        assert_eq!(m.raw.adc_p, 0x80000);
        let mut out = Vec::new();
        m.push_readings(SensorId(0), Timestamp::monotonic(0), &mut out);
        assert_eq!(out.len(), 1);
    }

    #[test]
    fn nack_fails_init_and_the_driver_recovers_when_it_clears() {
        let sim = Bme280Sim::new(ADDRESS_PRIMARY);
        let mut delay = sim.delay();
        let mut bme = Bme280::new(sim.clone(), ADDRESS_PRIMARY);
        sim.nack_next(2);
        for _ in 0..2 {
            assert!(matches!(
                bme.init(&mut delay),
                Err(Error::I2c(ErrorKind::NoAcknowledge(_)))
            ));
        }
        bme.init(&mut delay).unwrap();
        bme.measure(&mut delay).unwrap();

        sim.nack_until_cleared();
        assert!(matches!(
            bme.measure(&mut delay),
            Err(Error::I2c(ErrorKind::NoAcknowledge(_)))
        ));
        assert!(bme.init(&mut delay).is_err());
        // A failed init forgets the trim: no measurement on stale state.
        assert_eq!(bme.measure(&mut delay).err(), Some(Error::NotInitialized));
        sim.clear_faults();
        bme.soft_reset(&mut delay).unwrap();
        bme.measure(&mut delay).unwrap();
    }

    #[test]
    fn bus_error_is_typed_and_recoverable() {
        let sim = Bme280Sim::new(ADDRESS_PRIMARY);
        let (mut bme, mut delay) = sim_driver(&sim);
        sim.set_bus_error(true);
        assert_eq!(
            bme.measure(&mut delay).err(),
            Some(Error::I2c(ErrorKind::Bus))
        );
        sim.set_bus_error(false);
        bme.measure(&mut delay).unwrap();
    }

    #[test]
    fn stuck_measuring_bit_times_out_after_the_configured_polls() {
        let sim = Bme280Sim::new(ADDRESS_PRIMARY);
        let (mut bme, mut delay) = sim_driver(&sim);
        sim.set_stuck_measuring(true);
        let before = sim.transactions();
        assert_eq!(
            bme.measure(&mut delay).err(),
            Some(Error::ConversionTimeout(10))
        );
        // ctrl_hum, ctrl_meas, then exactly ten status polls.
        assert_eq!(sim.transactions() - before, 12);
        sim.clear_faults();
        bme.init(&mut delay).unwrap();
        bme.measure(&mut delay).unwrap();
    }

    #[test]
    fn stuck_nvm_copy_times_out_init() {
        let sim = Bme280Sim::new(ADDRESS_PRIMARY);
        sim.set_stuck_nvm_copy(true);
        let mut delay = sim.delay();
        let mut bme = Bme280::new(sim.clone(), ADDRESS_PRIMARY);
        assert_eq!(bme.init(&mut delay), Err(Error::NvmCopyTimeout(10)));
        sim.clear_faults();
        bme.init(&mut delay).unwrap();
    }

    #[test]
    fn wrong_address_and_wrong_chip_are_typed() {
        let sim = Bme280Sim::new(ADDRESS_PRIMARY);
        let mut delay = sim.delay();
        let mut other = Bme280::new(sim.clone(), ADDRESS_SECONDARY);
        assert!(matches!(
            other.init(&mut delay),
            Err(Error::I2c(ErrorKind::NoAcknowledge(_)))
        ));
        sim.set_chip_id(0x58);
        let mut bme = Bme280::new(sim.clone(), ADDRESS_PRIMARY);
        assert_eq!(bme.init(&mut delay), Err(Error::WrongChipId(0x58)));
        assert_eq!(
            Error::<ErrorKind>::WrongChipId(0x58).to_string(),
            "chip id 0x58 is not a BME280's 0x60"
        );
    }

    #[test]
    fn descriptor_names_the_trim_as_the_datasheet_does() {
        let sim = Bme280Sim::new(ADDRESS_PRIMARY);
        let (bme, _) = sim_driver(&sim);
        let d = bme.descriptor();
        assert_eq!(d.device, "BME280");
        use aloft_protocol::ParameterValue::Integer;
        assert_eq!(d.parameter("dig_T1"), Some(&Integer(27504)));
        assert_eq!(d.parameter("dig_P9"), Some(&Integer(6000)));
        assert_eq!(d.parameter("dig_H5"), Some(&Integer(50)));
        assert_eq!(d.parameter("osrs_p"), Some(&Integer(3)));
        assert_eq!(bme.destroy().transactions(), sim.transactions());
    }

    fn arb_calibration() -> impl Strategy<Value = Calibration> {
        (
            any::<[u8; reg::CALIB_00_LEN]>(),
            any::<[u8; reg::CALIB_26_LEN]>(),
        )
            .prop_map(|(a, b)| Calibration::from_registers(&a, &b))
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(512))]

        #[test]
        fn compensation_never_panics_for_any_trim_and_raw_sample(
            c in arb_calibration(),
            adc_t in 0u32..=0xF_FFFF,
            adc_p in 0u32..=0xF_FFFF,
            adc_h in any::<u16>(),
        ) {
            let raw = RawSample { adc_p, adc_t, adc_h };
            let m = Measurement::compensate(&c, &Config::default(), raw);
            if let Some(m) = m {
                prop_assert!(m.temperature_k.is_finite());
            }
        }

        #[test]
        fn data_registers_round_trip(adc_t in 0u32..=0xF_FFFF, adc_p in 0u32..=0xF_FFFF, adc_h in any::<u16>()) {
            let raw = RawSample { adc_p, adc_t, adc_h };
            prop_assert_eq!(RawSample::from_registers(&raw.to_registers()), raw);
        }

        #[test]
        fn trim_registers_round_trip(a in any::<[u8; reg::CALIB_00_LEN]>(), b in any::<[u8; reg::CALIB_26_LEN]>()) {
            let c = Calibration::from_registers(&a, &b);
            let (a2, b2) = c.to_registers();
            prop_assert_eq!(Calibration::from_registers(&a2, &b2), c);
        }

        #[test]
        fn driver_recovers_any_environment_of_the_flight_envelope(
            p in 15_000.0f64..110_000.0,
            t in 213.15f64..313.15,
            rh in 0.0f64..=1.0,
        ) {
            let sim = Bme280Sim::new(ADDRESS_PRIMARY);
            sim.set_environment(p, t, rh);
            let (mut bme, mut delay) = sim_driver(&sim);
            let m = bme.measure(&mut delay).unwrap();
            prop_assert!((m.temperature_k - t).abs() <= 0.01, "{} vs {}", m.temperature_k, t);
            prop_assert!((m.pressure_pa.unwrap_or(f64::NAN) - p).abs() <= 0.5);
            prop_assert!((m.relative_humidity.unwrap_or(f64::NAN) - rh).abs() <= 0.001);
        }

        #[test]
        fn simulator_survives_any_transaction(addr in any::<u8>(), write in proptest::collection::vec(any::<u8>(), 0..12), read_len in 0usize..40) {
            let mut sim = Bme280Sim::new(ADDRESS_PRIMARY);
            let mut buf = vec![0u8; read_len];
            let _ = sim.write_read(addr, &write, &mut buf);
        }
    }
}
