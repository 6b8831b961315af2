//! A register-level BME280 simulator that implements `embedded_hal::i2c::I2c`.
//!
//! It models the register file (chip id, reset, NVM trim, ctrl_hum, ctrl_meas, config,
//! status, data), forced-mode conversions that take the datasheet's typical time on a
//! [`SimClock`] that only [`SimDelay`](crate::i2c::sim::SimDelay) advances, and the faults a real bus shows. Its ADC
//! values come from inverting the driver's own integer compensation by bisection, so a
//! driver reading it recovers the environment to within the compensation's resolution
//! (plus the datasheet-level noise, if enabled).
//!
//! Invariants: the simulator is a cheap handle (`Arc<Mutex<..>>`), so a test can change
//! the environment or inject a fault while the driver owns a clone as its bus. It never
//! panics on any transaction; unknown registers read as zero and ignore writes.

use embedded_hal::i2c::{ErrorKind, Operation};

use super::{Calibration, Config, Oversampling, RawSample, reg};
pub use crate::i2c::sim::TemperatureSource;
use crate::i2c::sim::{InAir, RegisterModel, SimAir, SimBus, SimClock, SimDevice, bisect};

/// Trim of a plausible device: temperature and pressure words are the BMP280 datasheet's
/// worked example (section 3.12; BME280 shares the formulas), humidity words are typical
/// of real BME280 parts.
pub const TYPICAL_CALIBRATION: Calibration = Calibration {
    dig_t1: 27504,
    dig_t2: 26435,
    dig_t3: -1000,
    dig_p1: 36477,
    dig_p2: -10685,
    dig_p3: 3024,
    dig_p4: 2855,
    dig_p5: 140,
    dig_p6: -7,
    dig_p7: 15500,
    dig_p8: -14600,
    dig_p9: 6000,
    dig_h1: 75,
    dig_h2: 370,
    dig_h3: 0,
    dig_h4: 310,
    dig_h5: 50,
    dig_h6: 30,
};

/// Data registers after power-on/reset: the "skipped" values 0x80000 / 0x8000.
const RESET_DATA: [u8; reg::DATA_LEN] = [0x80, 0, 0, 0x80, 0, 0, 0x80, 0];
/// How long the NVM copy after reset keeps `im_update` set, ns.
const NVM_COPY_NS: u64 = 1_000_000;

#[derive(Debug)]
struct Conversion {
    done_at_ns: u64,
    data: [u8; reg::DATA_LEN],
}

/// The BME280's register file and conversions ([`Bme280Sim`]'s model).
#[derive(Debug)]
pub struct Bme280Model {
    address: u8,
    chip_id: u8,
    calibration: Calibration,
    nvm: ([u8; reg::CALIB_00_LEN], [u8; reg::CALIB_26_LEN]),
    pointer: u8,
    ctrl_hum: u8,
    ctrl_meas: u8,
    config: u8,
    data: [u8; reg::DATA_LEN],
    conversion: Option<Conversion>,
    nvm_ready_at_ns: u64,
    air: SimAir,
    stuck_measuring: bool,
    stuck_nvm_copy: bool,
    clock: SimClock,
}

/// A simulated BME280; clones share one device. Derefs to its
/// [`SimBus`] (clock, delay, bus faults, transaction count).
pub type Bme280Sim = SimDevice<Bme280Model>;

impl SimDevice<Bme280Model> {
    /// A device at `address` with [`TYPICAL_CALIBRATION`], in ISA sea-level air at 50 %
    /// relative humidity, without noise, reading the outside air.
    pub fn new(address: u8) -> Self {
        let calibration = TYPICAL_CALIBRATION;
        SimDevice::with_model(|bus| Bme280Model {
            address,
            chip_id: super::CHIP_ID,
            calibration,
            nvm: calibration.to_registers(),
            pointer: 0,
            ctrl_hum: 0,
            ctrl_meas: 0,
            config: 0,
            data: RESET_DATA,
            conversion: None,
            nvm_ready_at_ns: 0,
            air: SimAir::sea_level(),
            stuck_measuring: false,
            stuck_nvm_copy: false,
            clock: bus.clock(),
        })
    }

    /// Uses `calibration` as the device's trim.
    pub fn with_calibration(self, calibration: Calibration) -> Self {
        {
            let mut s = self.lock();
            s.calibration = calibration;
            s.nvm = calibration.to_registers();
        }
        self
    }

    /// The device's trim.
    pub fn calibration(&self) -> Calibration {
        self.lock().calibration
    }

    /// The oversampling of temperature, pressure and humidity the device measures with, as
    /// the driver last wrote ctrl_meas and ctrl_hum (`None`: skipped, or never written).
    pub fn oversampling(&self) -> [Option<Oversampling>; 3] {
        let s = self.lock();
        [
            Oversampling::from_bits(s.ctrl_meas >> 5),
            Oversampling::from_bits(s.ctrl_meas >> 2),
            Oversampling::from_bits(s.ctrl_hum),
        ]
    }

    /// Keeps the `measuring` status bit set: conversions never finish.
    pub fn set_stuck_measuring(&self, on: bool) {
        self.lock().stuck_measuring = on;
    }

    /// Keeps the `im_update` status bit set: the NVM copy never finishes.
    pub fn set_stuck_nvm_copy(&self, on: bool) {
        self.lock().stuck_nvm_copy = on;
    }

    /// Answers with another chip id (0x58 is a BMP280).
    pub fn set_chip_id(&self, id: u8) {
        self.lock().chip_id = id;
    }

    /// Clears every fault and restores the BME280 chip id.
    pub fn clear_faults(&self) {
        SimBus::clear_faults(self);
        let mut s = self.lock();
        s.stuck_measuring = false;
        s.stuck_nvm_copy = false;
        s.chip_id = super::CHIP_ID;
    }
}

impl Bme280Model {
    fn now(&self) -> u64 {
        self.clock.now_ns()
    }

    /// Latches a finished conversion into the data registers.
    fn settle(&mut self) {
        if self.stuck_measuring {
            return;
        }
        let now = self.now();
        if let Some(c) = self.conversion.take_if(|c| now >= c.done_at_ns) {
            self.data = c.data;
            // Forced mode returns to sleep after one conversion.
            self.ctrl_meas &= !0b11;
        }
    }

    fn status(&self) -> u8 {
        let mut status = 0;
        if self.conversion.is_some() {
            status |= reg::STATUS_MEASURING;
        }
        if self.stuck_nvm_copy || self.now() < self.nvm_ready_at_ns {
            status |= reg::STATUS_IM_UPDATE;
        }
        status
    }

    fn read(&self, register: u8) -> u8 {
        let at = |base: u8| usize::from(register.wrapping_sub(base));
        match register {
            0x88..=0xA1 => self.nvm.0.get(at(reg::CALIB_00)).copied().unwrap_or(0),
            reg::ID => self.chip_id,
            0xE1..=0xE7 => self.nvm.1.get(at(reg::CALIB_26)).copied().unwrap_or(0),
            reg::CTRL_HUM => self.ctrl_hum,
            reg::STATUS => self.status(),
            reg::CTRL_MEAS => self.ctrl_meas,
            reg::CONFIG => self.config,
            0xF7..=0xFE => self.data.get(at(reg::DATA)).copied().unwrap_or(0),
            _ => 0,
        }
    }

    fn write(&mut self, register: u8, value: u8) {
        match register {
            reg::RESET if value == reg::RESET_COMMAND => self.reset(),
            reg::CTRL_HUM => self.ctrl_hum = value & 0b111,
            reg::CTRL_MEAS => {
                self.ctrl_meas = value;
                if value & 0b11 != 0 {
                    self.start_conversion();
                }
            }
            reg::CONFIG => self.config = value,
            _ => {}
        }
    }

    fn reset(&mut self) {
        self.ctrl_hum = 0;
        self.ctrl_meas = 0;
        self.config = 0;
        self.data = RESET_DATA;
        self.conversion = None;
        self.nvm_ready_at_ns = self.now() + NVM_COPY_NS;
    }

    fn start_conversion(&mut self) {
        let temperature = Oversampling::from_bits(self.ctrl_meas >> 5);
        let pressure = Oversampling::from_bits(self.ctrl_meas >> 2);
        let humidity = Oversampling::from_bits(self.ctrl_hum);
        let mut config = Config {
            temperature: temperature.unwrap_or(Oversampling::X1),
            pressure,
            humidity,
            ..Config::default()
        };
        let mut raw = self.sample(&config);
        if temperature.is_none() {
            raw.adc_t = 0x80000;
            config.temperature = Oversampling::X1;
        }
        let done_at_ns = self.now() + u64::from(config.typical_measurement_time_us()) * 1000;
        self.conversion = Some(Conversion {
            done_at_ns,
            data: raw.to_registers(),
        });
    }

    /// The ADC values the device would produce in the current environment.
    fn sample(&mut self, config: &Config) -> RawSample {
        let air = &mut self.air;
        let (mut p, mut t, mut h) = (air.pressure_pa, air.temperature_k, air.relative_humidity);
        if let Some(noise) = &mut air.noise {
            // Datasheet RMS noise, filter off: pressure by oversampling, T 0.005 °C, H 0.02 %RH.
            let sigma_p = match config.pressure {
                Some(Oversampling::X1) | None => 3.3,
                Some(Oversampling::X2) => 2.6,
                Some(Oversampling::X4) => 2.1,
                Some(Oversampling::X8) => 1.6,
                Some(Oversampling::X16) => 1.3,
            };
            p += noise.gaussian(sigma_p);
            t += noise.gaussian(0.005);
            h += noise.gaussian(0.0002);
        }
        invert(&self.calibration, config, p, t, h)
    }
}

/// The raw sample whose compensation comes closest to (`pressure_pa`, `temperature_k`,
/// `relative_humidity`), found by bisection over each ADC's range.
pub fn invert(
    calibration: &Calibration,
    config: &Config,
    pressure_pa: f64,
    temperature_k: f64,
    relative_humidity: f64,
) -> RawSample {
    const ADC20: u32 = 0xF_FFFF;
    let t_fine_target = (temperature_k - 273.15) * 5120.0;
    let adc_t = bisect(0, ADC20, t_fine_target, |x| {
        calibration.compensate_temperature(x).1 as f64
    });
    let t_fine = calibration.compensate_temperature(adc_t).1;
    let adc_p = match config.pressure {
        // Pressure falls as adc_P rises: bisect on its negation.
        Some(_) => bisect(0, ADC20, -pressure_pa, |x| {
            calibration
                .compensate_pressure(x, t_fine)
                .map_or(f64::NAN, |p| -(p as f64) / 256.0)
        }),
        None => 0x80000,
    };
    let adc_h = match config.humidity {
        Some(_) => {
            let target = relative_humidity * 100.0;
            let x = bisect(0, u32::from(u16::MAX), target, |x| {
                let adc = u16::try_from(x).unwrap_or(u16::MAX);
                calibration.compensate_humidity(adc, t_fine) as f64 / 1024.0
            });
            u16::try_from(x).unwrap_or(u16::MAX)
        }
        None => 0x8000,
    };
    RawSample {
        adc_p,
        adc_t,
        adc_h,
    }
}

impl InAir for Bme280Model {
    fn air(&mut self) -> &mut SimAir {
        &mut self.air
    }
}

impl RegisterModel for Bme280Model {
    fn address(&self) -> u8 {
        self.address
    }

    fn transaction(&mut self, operations: &mut [Operation<'_>]) -> Result<(), ErrorKind> {
        self.settle();
        for op in operations {
            match op {
                Operation::Write(bytes) => {
                    if let Some(&first) = bytes.first() {
                        self.pointer = first;
                    }
                    // Multi-byte writes are register/value pairs (datasheet 6.2.1).
                    for pair in bytes.chunks_exact(2) {
                        if let [register, value] = *pair {
                            self.write(register, value);
                        }
                    }
                }
                Operation::Read(buffer) => {
                    for byte in buffer.iter_mut() {
                        *byte = self.read(self.pointer);
                        // Burst reads auto-increment the register address.
                        self.pointer = self.pointer.wrapping_add(1);
                    }
                }
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::atmosphere;
    use crate::bme280::{Bme280, Measurement};
    use embedded_hal::i2c::I2c;

    #[test]
    fn inversion_recovers_the_environment_through_the_drivers_compensation() {
        let config = Config::default();
        for (p, t, h) in [
            (101_325.0, 288.15, 0.5),
            (19_330.0, 216.65, 0.05),
            (54_020.0, 255.65, 0.9),
        ] {
            let raw = invert(&TYPICAL_CALIBRATION, &config, p, t, h);
            let m = Measurement::compensate(&TYPICAL_CALIBRATION, &config, raw).unwrap();
            assert!(
                (m.temperature_k - t).abs() <= 0.01,
                "{} vs {t}",
                m.temperature_k
            );
            assert!(
                (m.pressure_pa.unwrap() - p).abs() <= 0.5,
                "{:?} vs {p}",
                m.pressure_pa
            );
            assert!(
                (m.relative_humidity.unwrap() - h).abs() <= 0.001,
                "{:?} vs {h}",
                m.relative_humidity
            );
        }
    }

    #[test]
    fn reading_before_the_conversion_ends_shows_measuring_and_old_data() {
        let mut sim = Bme280Sim::new(0x76);
        let mut status = [0u8];
        sim.write(0x76, &[reg::CTRL_HUM, 1]).unwrap();
        sim.write(0x76, &[reg::CTRL_MEAS, (1 << 5) | (1 << 2) | 1])
            .unwrap();
        sim.write_read(0x76, &[reg::STATUS], &mut status).unwrap();
        assert_ne!(status[0] & reg::STATUS_MEASURING, 0);
        let mut data = [0u8; reg::DATA_LEN];
        sim.write_read(0x76, &[reg::DATA], &mut data).unwrap();
        assert_eq!(data, RESET_DATA);
        sim.clock().advance_ns(10_000_000);
        sim.write_read(0x76, &[reg::STATUS], &mut status).unwrap();
        assert_eq!(status[0] & reg::STATUS_MEASURING, 0);
        sim.write_read(0x76, &[reg::DATA], &mut data).unwrap();
        assert_ne!(data, RESET_DATA);
    }

    #[test]
    fn trim_registers_read_back_as_written() {
        let mut sim = Bme280Sim::new(0x77);
        let mut a = [0u8; reg::CALIB_00_LEN];
        let mut b = [0u8; reg::CALIB_26_LEN];
        sim.write_read(0x77, &[reg::CALIB_00], &mut a).unwrap();
        sim.write_read(0x77, &[reg::CALIB_26], &mut b).unwrap();
        assert_eq!(Calibration::from_registers(&a, &b), TYPICAL_CALIBRATION);
    }

    #[test]
    fn wrong_address_nacks() {
        let mut sim = Bme280Sim::new(0x76);
        let mut id = [0u8];
        assert!(matches!(
            sim.write_read(0x77, &[reg::ID], &mut id),
            Err(ErrorKind::NoAcknowledge(_))
        ));
    }

    #[test]
    fn apply_uses_the_configured_temperature_source() {
        let mut state = crate::flight::FlightState {
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
            box_temperature_k: 288.15,
            relative_humidity: 0.2,
            co2_mol_mol: 420e-6,
            true_airspeed_mps: 40.0,
            differential_pressure_pa: 300.0,
            muon_rate_per_s: 5.0,
            ..crate::flight::isa_state(0.0, 0.0)
        };
        for (source, expected) in [
            (TemperatureSource::OutsideAir, 223.15),
            (TemperatureSource::InstrumentBox, 288.15),
        ] {
            let sim = Bme280Sim::new(0x76).with_temperature_source(source);
            sim.apply(&state);
            let mut delay = sim.delay();
            let mut driver = Bme280::new(sim.clone(), 0x76);
            driver.init(&mut delay).unwrap();
            let m = driver.measure(&mut delay).unwrap();
            assert!(
                (m.temperature_k - expected).abs() < 0.01,
                "{source:?}: {}",
                m.temperature_k
            );
        }
        state.pressure_pa = 0.0;
        let sim = Bme280Sim::new(0x76);
        sim.apply(&state);
        let mut delay = sim.delay();
        let mut driver = Bme280::new(sim.clone(), 0x76);
        driver.init(&mut delay).unwrap();
        // Far below the rated range the ADC saturates, and the reading says so.
        let m = driver.measure(&mut delay).unwrap();
        assert!(
            m.pressure_quality()
                .contains(aloft_protocol::Quality::OUT_OF_RANGE)
        );
    }
}
