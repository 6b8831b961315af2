//! A register-level MS5611 simulator that implements `embedded_hal::i2c::I2c`.
//!
//! It models the command set (reset, PROM read, D1/D2 conversion per OSR, ADC read) with
//! conversions that take the datasheet's typical time on a [`SimClock`] that only
//! [`SimDelay`](crate::i2c::sim::SimDelay) advances: an ADC read before the conversion finished, or a second read
//! of one result, returns 0 as the real device does. Its D1/D2 come from inverting the
//! driver's own compensation by bisection, so a driver recovers the environment to within
//! the compensation's resolution (plus datasheet-level noise per OSR, if enabled).
//!
//! Invariants: a cheap handle (`Arc<Mutex<..>>`) so a test can change the environment or
//! inject faults while the driver owns a clone; never panics on any transaction.

use embedded_hal::i2c::{ErrorKind, Operation};

use super::{Osr, Prom, cmd};
pub use crate::i2c::sim::TemperatureSource;
use crate::i2c::sim::{InAir, RegisterModel, SimAir, SimBus, SimClock, SimDevice, bisect};

/// The datasheet's worked-example coefficients C1..C6 with a plausible serial code and a
/// valid CRC.
pub fn typical_prom() -> Prom {
    Prom::with_valid_crc([0x0000, 40127, 36924, 23317, 23282, 33464, 28312, 0x4B10])
}

#[derive(Debug, Clone, Copy)]
struct Pending {
    done_at_ns: u64,
    value: u32,
}

/// The MS5611's command set, PROM and conversions ([`Ms5611Sim`]'s model).
#[derive(Debug)]
pub struct Ms5611Model {
    address: u8,
    prom: Prom,
    corrupt_prom: bool,
    command: Option<u8>,
    conversion: Option<Pending>,
    adc_result: u32,
    prom_ready_at_ns: u64,
    air: SimAir,
    stuck_conversion: bool,
    zero_adc_reads: u32,
    clock: SimClock,
}

/// A simulated MS5611; clones share one device. Derefs to its
/// [`SimBus`] (clock, delay, bus faults, transaction count).
pub type Ms5611Sim = SimDevice<Ms5611Model>;

impl SimDevice<Ms5611Model> {
    /// A device at `address` with [`typical_prom`], in ISA sea-level air, without noise,
    /// reading the outside air.
    pub fn new(address: u8) -> Self {
        SimDevice::with_model(|bus| Ms5611Model {
            address,
            prom: typical_prom(),
            corrupt_prom: false,
            command: None,
            conversion: None,
            adc_result: 0,
            prom_ready_at_ns: 0,
            air: SimAir::sea_level(),
            stuck_conversion: false,
            zero_adc_reads: 0,
            clock: bus.clock(),
        })
    }

    /// Uses `prom` as the device's PROM (its CRC is kept as given).
    pub fn with_prom(self, prom: Prom) -> Self {
        self.lock().prom = prom;
        self
    }

    /// The device's PROM.
    pub fn prom(&self) -> Prom {
        self.lock().prom
    }

    /// Conversions never finish: every ADC read returns 0.
    pub fn set_stuck_conversion(&self, on: bool) {
        self.lock().stuck_conversion = on;
    }

    /// PROM reads return C3 with one bit flipped, so the CRC fails.
    pub fn set_corrupt_prom(&self, on: bool) {
        self.lock().corrupt_prom = on;
    }

    /// The next `n` ADC reads return 0, as if read before the conversion finished.
    pub fn zero_next_adc_reads(&self, n: u32) {
        self.lock().zero_adc_reads = n;
    }

    /// Clears every fault.
    pub fn clear_faults(&self) {
        SimBus::clear_faults(self);
        let mut s = self.lock();
        s.stuck_conversion = false;
        s.corrupt_prom = false;
        s.zero_adc_reads = 0;
    }
}

/// D1 and D2 whose compensation comes closest to (`pressure_pa`, `temperature_k`),
/// found by bisection (TEMP rises with D2; P rises with D1 for a sane PROM).
pub fn invert(prom: &Prom, pressure_pa: f64, temperature_k: f64) -> (u32, u32) {
    const ADC24: u32 = 0xFF_FFFF;
    let temp_target = (temperature_k - 273.15) * 100.0;
    let d2 = bisect(1, ADC24, temp_target, |d2| {
        prom.compensate(1, d2).temp as f64
    });
    let d1 = bisect(1, ADC24, pressure_pa, |d1| prom.compensate(d1, d2).p as f64);
    (d1, d2)
}

impl Ms5611Model {
    fn now(&self) -> u64 {
        self.clock.now_ns()
    }

    fn command(&mut self, command: u8) {
        self.command = Some(command);
        match command {
            cmd::RESET => {
                self.conversion = None;
                self.adc_result = 0;
                self.prom_ready_at_ns = self.now() + u64::from(super::RESET_TIME_US) * 1000;
            }
            cmd::ADC_READ => {
                let now = self.now();
                self.adc_result = match self.conversion {
                    Some(p) if !self.stuck_conversion && now >= p.done_at_ns => {
                        self.conversion = None;
                        p.value
                    }
                    // Too early, or no conversion started (or its result already read).
                    _ => 0,
                };
                if self.zero_adc_reads > 0 {
                    self.zero_adc_reads -= 1;
                    self.adc_result = 0;
                }
            }
            0x40..=0x48 | 0x50..=0x58 => {
                if let Some(osr) = Osr::from_command_offset(command & 0x0F) {
                    let (d1, d2) = self.digital_values(osr);
                    let value = if command & 0xF0 == cmd::CONVERT_D1 {
                        d1
                    } else {
                        d2
                    };
                    let done_at_ns =
                        self.now() + u64::from(osr.typical_conversion_time_us()) * 1000;
                    self.conversion = Some(Pending { done_at_ns, value });
                }
            }
            _ => {}
        }
    }

    fn digital_values(&mut self, osr: Osr) -> (u32, u32) {
        let (mut p, mut t) = (self.air.pressure_pa, self.air.temperature_k);
        if let Some(noise) = &mut self.air.noise {
            // Datasheet resolution RMS per OSR: pressure in mbar, temperature in °C.
            let (sigma_mbar, sigma_c) = match osr {
                Osr::Osr256 => (0.065, 0.012),
                Osr::Osr512 => (0.042, 0.008),
                Osr::Osr1024 => (0.027, 0.005),
                Osr::Osr2048 => (0.018, 0.003),
                Osr::Osr4096 => (0.012, 0.002),
            };
            p += noise.gaussian(sigma_mbar * 100.0);
            t += noise.gaussian(sigma_c);
        }
        invert(&self.prom, p, t)
    }

    /// What a read of `len` bytes returns after the last command.
    fn read(&mut self, buffer: &mut [u8]) {
        buffer.fill(0);
        match self.command {
            Some(cmd::ADC_READ) => {
                let bytes = self.adc_result.to_be_bytes();
                for (dst, src) in buffer.iter_mut().zip(bytes.iter().skip(1)) {
                    *dst = *src;
                }
                // A result is read once; reading again gives 0.
                self.adc_result = 0;
            }
            Some(c @ 0xA0..=0xAE) if c % 2 == 0 && self.now() >= self.prom_ready_at_ns => {
                let index = usize::from((c - cmd::PROM_READ) / 2);
                let mut word = self.prom.words.get(index).copied().unwrap_or(0);
                if self.corrupt_prom && index == 3 {
                    word ^= 0x0100;
                }
                for (dst, src) in buffer.iter_mut().zip(word.to_be_bytes()) {
                    *dst = src;
                }
            }
            _ => {}
        }
    }
}

impl InAir for Ms5611Model {
    fn air(&mut self) -> &mut SimAir {
        &mut self.air
    }
}

impl RegisterModel for Ms5611Model {
    fn address(&self) -> u8 {
        self.address
    }

    fn transaction(&mut self, operations: &mut [Operation<'_>]) -> Result<(), ErrorKind> {
        for op in operations {
            match op {
                Operation::Write(bytes) => {
                    for &byte in bytes.iter() {
                        self.command(byte);
                    }
                }
                Operation::Read(buffer) => self.read(buffer),
            }
        }
        Ok(())
    }
}
