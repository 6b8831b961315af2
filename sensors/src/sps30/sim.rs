//! Register-level model of an SPS30 behind an [`embedded_hal::i2c::I2c`] bus.
//!
//! [`Sps30Sim`] is a cheap-to-clone handle (see [`crate::i2c::sim`]): the driver owns one
//! clone as its bus while a test or the simulation changes the air and injects faults
//! through another. The model is the datasheet's state machine: idle after power-up or
//! reset, measuring after start measurement (a new result every second), a fan cleaning of
//! 10 s without new results (on command, or when the auto-cleaning interval has passed
//! while measuring). Commands that are not allowed in the present state are NACKed, as on
//! the part. Time is simulated: it moves by [`Sps30Sim::advance`], by the [`FlightState`]
//! applied, or by the delay handed to the driver; nothing here sleeps.
//!
//! Size distribution: the flight gives the PM2.5 mass; the other channels follow the
//! ratios of a typical aged continental aerosol as the SPS30 reports it (most mass and
//! almost all particles below 1 µm): PM1 = 0.955, PM4 = 1.014, PM10 = 1.018 × PM2.5, and
//! about 8.3 particles per cm3 per µg m-3 of PM2.5, 88 % of them below 0.5 µm... counted
//! cumulatively as NC0.5 = 7.3, NC1 = 8.28, NC2.5 = 8.32, NC4 = 8.324, NC10 = 8.325 per
//! µg m-3. The typical size shrinks from 0.6 µm in the polluted boundary layer towards
//! 0.45 µm in clean air. Noise: a per-device gain within ±3 % (seeded) and Gaussian noise
//! of 0.1 µg m-3 + 2 % (1 sigma) on the mass, the same relative noise on the numbers;
//! concentrations never go below zero.
//!
//! Invariant: every word sent is followed by its CRC (unless CRC corruption is injected),
//! every argument word received is checked (a bad one is NACKed).

use std::time::Duration;

use embedded_hal::i2c::{ErrorKind, NoAcknowledgeSource, Operation};

use super::{
    ADDRESS, DEFAULT_AUTO_CLEANING_INTERVAL_S, FAN_CLEANING_S, MEASUREMENT_PERIOD_MS,
    RawMeasurement, command, status,
};
use crate::flight::{FlightState, Noise};
use crate::i2c::sim::{Persistence, RegisterModel, SimClock, SimDevice};
use crate::scd41::{crc8, encode_word};

/// Cumulative number concentration per µg m-3 of PM2.5, # cm-3: NC0.5 .. NC10.
pub const NUMBER_PER_UG: [f64; 5] = [7.3, 8.28, 8.32, 8.324, 8.325];
/// Mass of each channel per mass of PM2.5: PM1, PM2.5, PM4, PM10.
pub const MASS_RATIO: [f64; 4] = [0.955, 1.0, 1.014, 1.018];

const NS_PER_S: u64 = 1_000_000_000;

/// What the model is doing.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SimMode {
    /// Idle: settings and identification commands only.
    Idle,
    /// Measuring, a new result every second.
    Measuring,
}

/// The SPS30's state machine and measurements ([`Sps30Sim`]'s model).
#[derive(Debug)]
pub struct Sps30Model {
    serial_number: String,
    clock: SimClock,
    mode: SimMode,
    busy_until_ns: u64,
    next_due_ns: u64,
    cleaning_until_ns: u64,
    /// Simulated time of the last cleaning (or of the start of measuring), for the
    /// auto-cleaning interval.
    last_cleaned_ns: u64,
    auto_cleaning_interval_s: u32,
    fresh: bool,
    values: RawMeasurement,
    response: Option<Vec<u8>>,
    pm2p5_ug_m3: f64,
    gain: f64,
    noise: Noise,
    status: u32,
    corrupt_crc: Persistence,
    never_ready: bool,
    cleanings: u64,
    measurements: u64,
}

/// A simulated SPS30. Clones share one device. Derefs to its bus side (simulated time,
/// NACKs, transaction count).
pub type Sps30Sim = SimDevice<Sps30Model>;

impl SimDevice<Sps30Model> {
    /// A device with `serial_number` and noise seed `seed`, idle, in air with 8 µg m-3 of
    /// PM2.5.
    pub fn new(serial_number: &str, seed: u64) -> Self {
        let mut noise = Noise::new(seed);
        let gain = 1.0 + noise.gaussian(0.01).clamp(-0.03, 0.03);
        SimDevice::with_model(|bus| Sps30Model {
            serial_number: serial_number.chars().take(31).collect(),
            clock: bus.clock(),
            mode: SimMode::Idle,
            busy_until_ns: 0,
            next_due_ns: 0,
            cleaning_until_ns: 0,
            last_cleaned_ns: 0,
            auto_cleaning_interval_s: DEFAULT_AUTO_CLEANING_INTERVAL_S,
            fresh: false,
            values: RawMeasurement::from_values([0.0; 10]),
            response: None,
            pm2p5_ug_m3: 8.0,
            gain,
            noise,
            status: 0,
            corrupt_crc: Persistence::Off,
            never_ready: false,
            cleanings: 0,
            measurements: 0,
        })
    }

    /// Takes the PM2.5 from the flight's true state and moves simulated time to its time
    /// (never backwards).
    pub fn apply(&self, state: &FlightState) {
        let mut m = self.lock();
        m.pm2p5_ug_m3 = state.air.pm2p5_kg_m3 * 1e9;
        // `as` saturates: a negative or NaN time leaves the clock where it is.
        m.clock.advance_to_ns((state.t_s * 1e9) as u64);
        m.update();
    }

    /// Moves simulated time forward and completes the measurements due by then.
    pub fn advance(&self, by: Duration) {
        crate::i2c::sim::SimBus::advance(self, by);
        self.lock().update();
    }

    /// A delay for the driver that advances this device's simulated time.
    pub fn delay(&self) -> SimDelay {
        SimDelay { sim: self.clone() }
    }

    /// Sets the true PM2.5 mass concentration, µg m-3.
    pub fn set_pm2p5_ug_m3(&self, value: f64) {
        self.lock().pm2p5_ug_m3 = value;
    }

    /// What the model is doing.
    pub fn mode(&self) -> SimMode {
        self.lock().mode
    }

    /// Whether the fan is cleaning now.
    pub fn cleaning(&self) -> bool {
        let m = self.lock();
        m.clock.now_ns() < m.cleaning_until_ns
    }

    /// Fan cleanings so far (commanded and automatic).
    pub fn cleanings(&self) -> u64 {
        self.lock().cleanings
    }

    /// Measurements completed so far.
    pub fn measurements(&self) -> u64 {
        self.lock().measurements
    }

    /// The auto-cleaning interval in force, s.
    pub fn auto_cleaning_interval_s(&self) -> u32 {
        self.lock().auto_cleaning_interval_s
    }

    /// Corrupts a CRC in the next `reads` answers.
    pub fn corrupt_crc_next(&self, reads: u32) {
        self.lock().corrupt_crc = Persistence::Next(reads);
    }

    /// Corrupts a CRC in every answer until cleared.
    pub fn corrupt_crc_until_cleared(&self) {
        self.lock().corrupt_crc = Persistence::UntilCleared;
    }

    /// Sets the fan error bit (the fan stopped) until cleared.
    pub fn fan_error(&self) {
        self.lock().status |= status::FAN_ERROR;
    }

    /// Sets the laser error bit until cleared.
    pub fn laser_error(&self) {
        self.lock().status |= status::LASER_ERROR;
    }

    /// Makes measurements never complete (data never ready) until cleared.
    pub fn never_ready(&self) {
        self.lock().never_ready = true;
    }

    /// Ends every injected fault.
    pub fn clear_faults(&self) {
        crate::i2c::sim::SimBus::clear_faults(self);
        let mut m = self.lock();
        m.corrupt_crc = Persistence::Off;
        m.never_ready = false;
        m.status = 0;
    }
}

impl Sps30Model {
    fn now_ns(&self) -> u64 {
        self.clock.now_ns()
    }

    fn update(&mut self) {
        if self.mode != SimMode::Measuring {
            return;
        }
        let now = self.now_ns();
        let interval_ns = u64::from(self.auto_cleaning_interval_s).saturating_mul(NS_PER_S);
        if interval_ns > 0
            && now >= self.cleaning_until_ns
            && now.saturating_sub(self.last_cleaned_ns) >= interval_ns
        {
            self.start_cleaning();
        }
        if now < self.next_due_ns {
            return;
        }
        let period = u64::from(MEASUREMENT_PERIOD_MS) * 1_000_000;
        // Whole periods that passed unread leave only the newest result.
        let periods = (now - self.next_due_ns) / period + 1;
        self.next_due_ns = self
            .next_due_ns
            .saturating_add(periods.saturating_mul(period));
        if now < self.cleaning_until_ns || self.never_ready {
            return;
        }
        self.complete_measurement();
    }

    fn start_cleaning(&mut self) {
        let now = self.now_ns();
        self.cleaning_until_ns = now.saturating_add(u64::from(FAN_CLEANING_S) * NS_PER_S);
        self.last_cleaned_ns = now;
        self.cleanings += 1;
        // What was measured before the cleaning is not new after it.
        self.fresh = false;
    }

    fn complete_measurement(&mut self) {
        let truth = self.pm2p5_ug_m3.max(0.0) * self.gain;
        let relative = 1.0 + self.noise.gaussian(0.02);
        let pm25 = (truth * relative + self.noise.gaussian(0.1)).max(0.0);
        let mass = MASS_RATIO.map(|r| (pm25 * r) as f32);
        let number = NUMBER_PER_UG.map(|n| (pm25 * n).max(0.0) as f32);
        let size = 0.45 + 0.15 * truth / (truth + 2.0);
        let mut values = [0f32; 10];
        values[..4].copy_from_slice(&mass);
        values[4..9].copy_from_slice(&number);
        values[9] = size as f32;
        self.values = RawMeasurement::from_values(values);
        self.fresh = true;
        self.measurements += 1;
    }

    fn execute(&mut self, bytes: &[u8]) -> Result<(), ErrorKind> {
        let nack_data = ErrorKind::NoAcknowledge(NoAcknowledgeSource::Data);
        if self.now_ns() < self.busy_until_ns {
            return Err(ErrorKind::NoAcknowledge(NoAcknowledgeSource::Address));
        }
        let Some((code, rest)) = bytes.split_first_chunk::<2>() else {
            return Err(nack_data);
        };
        let code = u16::from_be_bytes(*code);
        let mut arguments = Vec::new();
        for word in rest.chunks(3) {
            match word {
                [a, b, crc] if crc8(&[*a, *b]) == *crc => {
                    arguments.push(u16::from_be_bytes([*a, *b]));
                }
                _ => return Err(nack_data),
            }
        }
        self.response = None;
        let measuring = self.mode == SimMode::Measuring;
        let busy_ms = match (code, arguments.as_slice()) {
            (command::START_MEASUREMENT, [format]) if !measuring => {
                if format.to_be_bytes()[0] != command::FLOAT_FORMAT {
                    // The model speaks floats only; the driver never asks for integers.
                    return Err(nack_data);
                }
                self.mode = SimMode::Measuring;
                let now = self.now_ns();
                self.next_due_ns = now.saturating_add(u64::from(MEASUREMENT_PERIOD_MS) * 1_000_000);
                self.last_cleaned_ns = now;
                self.fresh = false;
                command::START_STOP_MS
            }
            (command::STOP_MEASUREMENT, []) if measuring => {
                self.mode = SimMode::Idle;
                self.cleaning_until_ns = 0;
                command::START_STOP_MS
            }
            (command::READ_DATA_READY, []) => {
                self.response = Some(words(&[u16::from(self.fresh)]));
                0
            }
            (command::READ_MEASURED_VALUES, []) if measuring => {
                let bits: Vec<u16> = self
                    .values
                    .values()
                    .into_iter()
                    .flat_map(|v| {
                        let b = v.to_bits();
                        [(b >> 16) as u16, b as u16]
                    })
                    .collect();
                self.response = Some(words(&bits));
                self.fresh = false;
                0
            }
            (command::START_FAN_CLEANING, []) if measuring => {
                self.start_cleaning();
                command::COMMAND_MS
            }
            (command::AUTO_CLEANING_INTERVAL, []) => {
                let s = self.auto_cleaning_interval_s;
                self.response = Some(words(&[(s >> 16) as u16, s as u16]));
                0
            }
            (command::AUTO_CLEANING_INTERVAL, [hi, lo]) => {
                self.auto_cleaning_interval_s = (u32::from(*hi) << 16) | u32::from(*lo);
                // The datasheet: a new interval counts from now.
                self.last_cleaned_ns = self.now_ns();
                command::COMMAND_MS
            }
            (command::READ_DEVICE_STATUS, []) => {
                let s = self.status;
                self.response = Some(words(&[(s >> 16) as u16, s as u16]));
                0
            }
            (command::READ_SERIAL_NUMBER, []) => {
                let mut ascii = [0u8; 32];
                for (slot, b) in ascii.iter_mut().zip(self.serial_number.bytes()) {
                    *slot = b;
                }
                let w: Vec<u16> = ascii
                    .chunks_exact(2)
                    .map(|p| u16::from_be_bytes([p[0], p[1]]))
                    .collect();
                self.response = Some(words(&w));
                0
            }
            (command::READ_FIRMWARE_VERSION, []) => {
                self.response = Some(words(&[u16::from_be_bytes([2, 2])]));
                0
            }
            (command::RESET, []) => {
                self.mode = SimMode::Idle;
                self.cleaning_until_ns = 0;
                self.fresh = false;
                command::RESET_MS
            }
            _ => return Err(nack_data),
        };
        self.busy_until_ns = self.now_ns().saturating_add(u64::from(busy_ms) * 1_000_000);
        Ok(())
    }

    fn answer(&mut self, buf: &mut [u8]) -> Result<(), ErrorKind> {
        let mut response = self
            .response
            .take()
            .ok_or(ErrorKind::NoAcknowledge(NoAcknowledgeSource::Address))?;
        if self.corrupt_crc.strike()
            && let Some(crc) = response.get_mut(2)
        {
            *crc ^= 0x5A;
        }
        for (i, byte) in buf.iter_mut().enumerate() {
            *byte = response.get(i).copied().unwrap_or(0xFF);
        }
        Ok(())
    }
}

fn words(values: &[u16]) -> Vec<u8> {
    values.iter().flat_map(|w| encode_word(*w)).collect()
}

impl RegisterModel for Sps30Model {
    fn address(&self) -> u8 {
        ADDRESS
    }

    /// The device measures and cleans whether or not it is addressed.
    fn catch_up(&mut self) {
        self.update();
    }

    fn transaction(&mut self, operations: &mut [Operation<'_>]) -> Result<(), ErrorKind> {
        for operation in operations {
            match operation {
                Operation::Write(bytes) => self.execute(bytes)?,
                Operation::Read(buf) => self.answer(buf)?,
            }
        }
        Ok(())
    }
}

/// A delay that advances the simulated device's clock instead of sleeping.
#[derive(Debug, Clone)]
pub struct SimDelay {
    sim: Sps30Sim,
}

impl embedded_hal::delay::DelayNs for SimDelay {
    fn delay_ns(&mut self, ns: u32) {
        self.sim.advance(Duration::from_nanos(u64::from(ns)));
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sps30::{DeviceStatus, Error, OperatingAir, Sps30};
    use aloft_protocol::Quality;

    fn started(seed: u64) -> (Sps30Sim, Sps30<Sps30Sim, SimDelay>) {
        let sim = Sps30Sim::new("A1B2C3D4E5F60708", seed);
        let mut d = Sps30::new(sim.clone(), sim.delay());
        let info = d.init().expect("initialises");
        assert_eq!(info.serial_number, "A1B2C3D4E5F60708");
        assert_eq!(info.firmware, (2, 2));
        assert_eq!(
            info.auto_cleaning_interval_s,
            DEFAULT_AUTO_CLEANING_INTERVAL_S
        );
        assert_eq!(sim.mode(), SimMode::Measuring);
        (sim, d)
    }

    #[test]
    fn a_measurement_a_second_spreads_pm2p5_over_the_size_channels() {
        let (sim, mut d) = started(3);
        sim.set_pm2p5_ug_m3(8.0);
        assert_eq!(
            d.measurement(OperatingAir::NotConfigured),
            Err(Error::NotReady)
        );
        sim.advance(Duration::from_secs(1));
        let m = d.measurement(OperatingAir::NotConfigured).expect("ready");
        let [pm1, pm25, pm4, pm10] = m.raw.mass_ug_m3;
        assert!((pm25 - 8.0).abs() < 1.5, "{pm25}");
        assert!(pm1 < pm25 && pm25 < pm4 && pm4 < pm10);
        let n = m.raw.number_per_cm3;
        assert!(n.windows(2).all(|w| w[0] <= w[1]), "cumulative: {n:?}");
        assert!((n[4] / pm25 - 8.325).abs() < 0.01);
        assert!((0.45..0.6).contains(&m.raw.typical_size_um));
        assert_eq!(m.status, DeviceStatus(0));
        // Read once: not new again until the next second.
        assert_eq!(
            d.measurement(OperatingAir::NotConfigured),
            Err(Error::NotReady)
        );
    }

    #[test]
    fn a_fan_cleaning_gives_ten_seconds_without_data() {
        let (sim, mut d) = started(4);
        sim.advance(Duration::from_secs(1));
        d.start_fan_cleaning().expect("cleans");
        assert!(sim.cleaning());
        for _ in 0..9 {
            sim.advance(Duration::from_secs(1));
            assert_eq!(
                d.measurement(OperatingAir::NotConfigured),
                Err(Error::NotReady)
            );
        }
        sim.advance(Duration::from_secs(2));
        assert!(!sim.cleaning());
        assert!(d.measurement(OperatingAir::NotConfigured).is_ok());
        assert_eq!(sim.cleanings(), 1);
    }

    #[test]
    fn the_auto_cleaning_interval_is_written_and_cleans_when_it_passes() {
        let sim = Sps30Sim::new("X", 5);
        let mut d = Sps30::new(sim.clone(), sim.delay()).with_auto_cleaning_interval(Some(30));
        assert_eq!(d.init().expect("init").auto_cleaning_interval_s, 30);
        assert_eq!(sim.auto_cleaning_interval_s(), 30);
        for _ in 0..31 {
            sim.advance(Duration::from_secs(1));
        }
        assert_eq!(sim.cleanings(), 1);
        assert!(sim.cleaning());
        d.write_auto_cleaning_interval(0).expect("disables");
        assert_eq!(d.read_auto_cleaning_interval(), Ok(0));
    }

    #[test]
    fn faults_are_typed_errors_or_flags_and_clear() {
        let (sim, mut d) = started(6);
        sim.advance(Duration::from_secs(1));
        sim.corrupt_crc_next(1);
        assert_eq!(d.measurement(OperatingAir::NotConfigured), Err(Error::Crc));
        sim.nack_next(1);
        assert!(matches!(d.data_ready(), Err(Error::I2c(_))));
        sim.laser_error();
        sim.advance(Duration::from_secs(1));
        let m = d
            .measurement(OperatingAir::NotConfigured)
            .expect("still answers");
        assert!(m.status.has_error());
        assert!(m.common_quality().contains(Quality::INVALID));
        sim.clear_faults();
        sim.never_ready();
        sim.advance(Duration::from_secs(3));
        assert_eq!(
            d.measurement(OperatingAir::NotConfigured),
            Err(Error::NotReady)
        );
        sim.clear_faults();
        sim.advance(Duration::from_secs(1));
        let m = d
            .measurement(OperatingAir::NotConfigured)
            .expect("ready again");
        assert_eq!(m.common_quality(), Quality::GOOD);
    }

    #[test]
    fn particles_fall_with_altitude_in_the_flight() {
        let sim = Sps30Sim::new("X", 7);
        let mut d = Sps30::new(sim.clone(), sim.delay());
        d.init().expect("init");
        let mut at = |h: f64, t: f64| {
            let mut state = crate::flight::isa_state(h, t);
            state.air.pm2p5_kg_m3 = crate::flight::scenario::pm2p5_kg_m3(h, 0.0);
            sim.apply(&state);
            sim.advance(Duration::from_secs(1));
            d.measurement(OperatingAir::NotConfigured)
                .expect("ready")
                .raw
                .mass_ug_m3[1]
        };
        let low = at(1_500.0, 10.0);
        let high = at(9_000.0, 20.0);
        assert!(high < low / 5.0, "{low} then {high}");
    }
}
