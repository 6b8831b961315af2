//! Register-level model of an SCD41 behind an [`embedded_hal::i2c::I2c`] bus.
//!
//! [`Scd41Sim`] is a cheap-to-clone handle: a driver owns one clone as its bus while a test
//! or the demo changes the environment and injects faults through another. The model is a
//! command state machine (idle, periodic, single shot) with the datasheet's execution times:
//! a command sent while the device is still busy is NACKed, as on the real part, which
//! catches drivers that forget a delay. Time is *simulated*: it moves by
//! [`Scd41Sim::advance`], by the time of the [`FlightState`] applied, or by the
//! [`SimDelay`] handed to the driver; nothing here sleeps.
//!
//! Physics: the photoacoustic cell counts CO2 molecules, so the reported mole fraction is
//! the true one scaled by `p_actual / p_compensation` (sea level when no pressure was fed),
//! plus noise with 3 sigma at the datasheet accuracy of ±(40 ppm + 5 % of reading).
//! Temperature and humidity saturate at what 16 bits carry (-45 °C at the bottom), as the
//! wire format would.
//!
//! Invariant: every word sent is followed by its CRC (unless CRC corruption is injected),
//! and every argument word received is checked (a bad one is NACKed).

use std::time::Duration;

use embedded_hal::delay::DelayNs;
use embedded_hal::i2c::{ErrorKind, NoAcknowledgeSource, Operation};

use super::{ADDRESS, RawMeasurement, command, crc8, encode_word};
use crate::atmosphere;
use crate::flight::{FlightState, Noise};
pub use crate::i2c::sim::{NoopDelay, TemperatureSource};
use crate::i2c::sim::{Persistence, RegisterModel, SimBus, SimClock, SimDevice};

/// What the model is doing.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum SimMode {
    /// Idle, accepting configuration commands.
    Idle,
    /// Measuring every 5 s.
    Periodic,
    /// A single-shot measurement completes at this simulated time.
    SingleShot {
        /// Completion time, ns of simulated time.
        due_ns: u64,
    },
}

/// The SCD41's command state machine and measurements ([`Scd41Sim`]'s model).
#[derive(Debug)]
pub struct Scd41Model {
    serial_number: u64,
    mounting: TemperatureSource,
    mode: SimMode,
    // Integer nanoseconds: delays split into chunks must add up exactly.
    clock: SimClock,
    busy_until_ns: u64,
    next_due_ns: u64,
    buffer: Option<RawMeasurement>,
    response: Option<Vec<u8>>,
    ambient_pressure_hpa: Option<u16>,
    co2_mol_mol: f64,
    pressure_pa: f64,
    temperature_k: f64,
    relative_humidity: f64,
    noise: Noise,
    corrupt_crc: Persistence,
    never_ready: bool,
    measurements: u64,
}

/// A simulated SCD41. Clones share one device. Derefs to its [`SimBus`] (simulated time,
/// NACKs, transaction count).
pub type Scd41Sim = SimDevice<Scd41Model>;

impl SimDevice<Scd41Model> {
    /// A device with `serial_number` (48 bits) and noise seed `seed`, idle, at sea level in
    /// standard air with 420 ppm CO2.
    pub fn new(serial_number: u64, seed: u64) -> Self {
        SimDevice::with_model(|bus| Scd41Model {
            serial_number: serial_number & 0xFFFF_FFFF_FFFF,
            mounting: TemperatureSource::OutsideAir,
            mode: SimMode::Idle,
            clock: bus.clock(),
            busy_until_ns: 0,
            next_due_ns: 0,
            buffer: None,
            response: None,
            ambient_pressure_hpa: None,
            co2_mol_mol: 420e-6,
            pressure_pa: atmosphere::P0_PA,
            temperature_k: atmosphere::T0_K,
            relative_humidity: 0.5,
            noise: Noise::new(seed),
            corrupt_crc: Persistence::Off,
            never_ready: false,
            measurements: 0,
        })
    }

    /// Places the sensor (decides which temperature [`Scd41Sim::apply`] uses).
    pub fn set_mounting(&self, mounting: TemperatureSource) {
        self.lock().mounting = mounting;
    }

    /// Takes the environment from the flight's true state and moves simulated time to its
    /// time (never backwards).
    pub fn apply(&self, state: &FlightState) {
        let mut m = self.lock();
        m.co2_mol_mol = state.co2_mol_mol;
        m.pressure_pa = state.pressure_pa;
        m.temperature_k = m.mounting.temperature_k(state);
        m.relative_humidity = state.relative_humidity;
        // `as` saturates: a negative or NaN time leaves the clock where it is.
        let t_ns = (state.t_s * 1e9) as u64;
        m.clock.advance_to_ns(t_ns);
        m.update();
    }

    /// Moves simulated time forward and completes the measurements due by then.
    pub fn advance(&self, by: Duration) {
        SimBus::advance(self, by);
        self.lock().update();
    }

    /// A delay for the driver that advances this device's simulated time instead of
    /// sleeping.
    pub fn delay(&self) -> SimDelay {
        SimDelay { sim: self.clone() }
    }

    /// Sets the true CO2 mole fraction, mol mol-1.
    pub fn set_co2_mol_mol(&self, value: f64) {
        self.lock().co2_mol_mol = value;
    }

    /// Sets the true ambient pressure, Pa.
    pub fn set_pressure_pa(&self, value: f64) {
        self.lock().pressure_pa = value;
    }

    /// Sets the temperature the sensor sees, K.
    pub fn set_temperature_k(&self, value: f64) {
        self.lock().temperature_k = value;
    }

    /// Sets the relative humidity, fraction.
    pub fn set_relative_humidity(&self, value: f64) {
        self.lock().relative_humidity = value;
    }

    /// The device's serial number.
    pub fn serial_number(&self) -> u64 {
        self.lock().serial_number
    }

    /// The ambient pressure last accepted for compensation, hPa (`None`: sea level).
    pub fn ambient_pressure_hpa(&self) -> Option<u16> {
        self.lock().ambient_pressure_hpa
    }

    /// What the model is doing.
    pub fn mode(&self) -> SimMode {
        self.lock().mode
    }

    /// Measurements completed so far.
    pub fn measurements(&self) -> u64 {
        self.lock().measurements
    }

    /// Corrupts a CRC in the next `reads` answers.
    pub fn corrupt_crc_next(&self, reads: u32) {
        self.lock().corrupt_crc = Persistence::Next(reads);
    }

    /// Corrupts a CRC in every answer until [`Scd41Sim::clear_faults`].
    pub fn corrupt_crc_until_cleared(&self) {
        self.lock().corrupt_crc = Persistence::UntilCleared;
    }

    /// Makes measurements never complete (data never ready) until cleared.
    pub fn never_ready(&self) {
        self.lock().never_ready = true;
    }

    /// Ends every injected fault.
    pub fn clear_faults(&self) {
        SimBus::clear_faults(self);
        let mut m = self.lock();
        m.corrupt_crc = Persistence::Off;
        m.never_ready = false;
    }
}

impl Scd41Model {
    fn now_ns(&self) -> u64 {
        self.clock.now_ns()
    }

    /// Completes the measurements due by now.
    fn update(&mut self) {
        match self.mode {
            SimMode::Periodic if self.now_ns() >= self.next_due_ns => {
                // Skip whole periods that passed unread: only the newest result is kept.
                let periods = (self.now_ns() - self.next_due_ns) / PERIOD_NS + 1;
                self.next_due_ns = self
                    .next_due_ns
                    .saturating_add(periods.saturating_mul(PERIOD_NS));
                self.complete_measurement();
            }
            SimMode::SingleShot { due_ns } if self.now_ns() >= due_ns => {
                self.mode = SimMode::Idle;
                self.complete_measurement();
            }
            _ => {}
        }
    }

    fn complete_measurement(&mut self) {
        if self.never_ready {
            return;
        }
        let compensation_pa = self
            .ambient_pressure_hpa
            .map_or(atmosphere::P0_PA, |hpa| f64::from(hpa) * 100.0);
        let true_ppm = self.co2_mol_mol * 1e6;
        let reported_ppm = true_ppm * self.pressure_pa / compensation_pa;
        // The datasheet's ±(40 ppm + 5 %) taken as 3 sigma.
        let sigma_ppm = (40.0 + 0.05 * reported_ppm.abs()) / 3.0;
        let co2 = reported_ppm + self.noise.gaussian(sigma_ppm);
        // ±0.8 °C and ±6 %RH accuracy, again as 3 sigma.
        let t = self.temperature_k + self.noise.gaussian(0.8 / 3.0);
        let rh = self.relative_humidity + self.noise.gaussian(0.06 / 3.0);
        self.buffer = Some(RawMeasurement {
            co2_ppm: co2.round().clamp(0.0, 65_535.0) as u16,
            temperature: RawMeasurement::temperature_ticks(t),
            humidity: RawMeasurement::humidity_ticks(rh),
        });
        self.measurements += 1;
    }

    /// Executes one written command (with its argument bytes); `Err` NACKs it.
    fn execute(&mut self, bytes: &[u8]) -> Result<(), ErrorKind> {
        let nack_data = ErrorKind::NoAcknowledge(NoAcknowledgeSource::Data);
        let (code, argument) = match bytes {
            [c0, c1] => (u16::from_be_bytes([*c0, *c1]), None),
            [c0, c1, a0, a1, crc] if crc8(&[*a0, *a1]) == *crc => (
                u16::from_be_bytes([*c0, *c1]),
                Some(u16::from_be_bytes([*a0, *a1])),
            ),
            _ => return Err(nack_data),
        };
        if code == command::WAKE_UP {
            // The real device never acknowledges wake_up.
            self.busy_until_ns = self.now_ns().saturating_add(ms_to_ns(command::REINIT_MS));
            return Err(nack_data);
        }
        if self.now_ns() < self.busy_until_ns || matches!(self.mode, SimMode::SingleShot { .. }) {
            return Err(ErrorKind::NoAcknowledge(NoAcknowledgeSource::Address));
        }
        // A new command discards an answer nobody read.
        self.response = None;
        let periodic = self.mode == SimMode::Periodic;
        let busy_ms = match (code, argument) {
            (command::START_PERIODIC_MEASUREMENT, None) if !periodic => {
                self.mode = SimMode::Periodic;
                self.next_due_ns = self.now_ns().saturating_add(PERIOD_NS);
                0
            }
            (command::STOP_PERIODIC_MEASUREMENT, None) => {
                self.mode = SimMode::Idle;
                command::STOP_MS
            }
            (command::READ_MEASUREMENT, None) => {
                // An empty buffer leaves no answer: the read is NACKed.
                self.response = self
                    .buffer
                    .take()
                    .map(|r| words([r.co2_ppm, r.temperature, r.humidity]));
                command::READ_MS
            }
            (command::GET_DATA_READY_STATUS, None) => {
                // Upper bits are not part of the flag: set one to catch drivers that test them.
                let status = if self.buffer.is_some() {
                    0x8006
                } else {
                    0x8000
                };
                self.response = Some(words([status]));
                command::READ_MS
            }
            (command::GET_SERIAL_NUMBER, None) if !periodic => {
                let s = self.serial_number;
                self.response = Some(words([(s >> 32) as u16, (s >> 16) as u16, s as u16]));
                command::READ_MS
            }
            (command::SET_AMBIENT_PRESSURE, Some(hpa)) => {
                // Values the device does not accept are ignored; the driver never sends them.
                if (700..=1200).contains(&hpa) {
                    self.ambient_pressure_hpa = Some(hpa);
                }
                command::READ_MS
            }
            (command::SET_AMBIENT_PRESSURE, None) => {
                // Without an argument the same code reads the setting back.
                let hpa = self.ambient_pressure_hpa.unwrap_or(1013);
                self.response = Some(words([hpa]));
                command::READ_MS
            }
            (command::REINIT, None) if !periodic => {
                self.ambient_pressure_hpa = None;
                self.buffer = None;
                command::REINIT_MS
            }
            (command::MEASURE_SINGLE_SHOT, None) if !periodic => {
                self.mode = SimMode::SingleShot {
                    due_ns: self
                        .now_ns()
                        .saturating_add(ms_to_ns(command::SINGLE_SHOT_MS)),
                };
                0
            }
            _ => return Err(nack_data),
        };
        self.busy_until_ns = self.now_ns().saturating_add(ms_to_ns(busy_ms));
        Ok(())
    }

    /// Fills `buf` with the pending answer; no answer pending NACKs the read.
    fn answer(&mut self, buf: &mut [u8]) -> Result<(), ErrorKind> {
        if self.now_ns() < self.busy_until_ns {
            return Err(ErrorKind::NoAcknowledge(NoAcknowledgeSource::Address));
        }
        let mut response = self
            .response
            .take()
            .ok_or(ErrorKind::NoAcknowledge(NoAcknowledgeSource::Address))?;
        if self.corrupt_crc.strike()
            && let Some(crc) = response.get_mut(2)
        {
            *crc ^= 0x5A;
        }
        // Reading past the answer yields 0xFF, as an idle bus does.
        for (i, byte) in buf.iter_mut().enumerate() {
            *byte = response.get(i).copied().unwrap_or(0xFF);
        }
        Ok(())
    }
}

fn ms_to_ns(ms: u32) -> u64 {
    u64::from(ms) * 1_000_000
}

/// Interval of periodic measurements, ns.
const PERIOD_NS: u64 = 5_000_000_000;

fn words<const N: usize>(values: [u16; N]) -> Vec<u8> {
    values.into_iter().flat_map(encode_word).collect()
}

impl RegisterModel for Scd41Model {
    fn address(&self) -> u8 {
        ADDRESS
    }

    /// The device measures whether or not it is addressed.
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
    sim: Scd41Sim,
}

impl DelayNs for SimDelay {
    fn delay_ns(&mut self, ns: u32) {
        self.sim.advance(Duration::from_nanos(u64::from(ns)));
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::scd41::{COMPENSATION_MIN_PA, Compensation, Error, Mode, RATED_MIN_K, Scd41};
    use aloft_protocol::Quality;
    use embedded_hal::i2c::I2c;

    const SERIAL: u64 = 0xA1B2_C3D4_E5F6;
    const TRUE_CO2: f64 = 420e-6;

    /// The true state at `altitude_m` in the ISA, with the box heated to 20 °C.
    fn state_at(altitude_m: f64, t_s: f64) -> FlightState {
        crate::flight::isa_state(altitude_m, t_s)
    }

    fn started(seed: u64) -> (Scd41Sim, Scd41<Scd41Sim, SimDelay>) {
        let sim = Scd41Sim::new(SERIAL, seed);
        let mut scd = Scd41::new(sim.clone(), sim.delay());
        assert_eq!(scd.init(), Ok(SERIAL));
        (sim, scd)
    }

    /// The datasheet accuracy band, mol mol-1.
    fn accuracy(co2: f64) -> f64 {
        40e-6 + 0.05 * co2
    }

    #[test]
    fn init_reads_the_serial_number_and_starts_periodic_measurement() {
        let (sim, scd) = started(1);
        assert_eq!(sim.mode(), SimMode::Periodic);
        assert_eq!(
            scd.descriptor().serial_number.as_deref(),
            Some("A1B2C3D4E5F6")
        );
    }

    #[test]
    fn data_is_ready_every_five_simulated_seconds_and_read_once() {
        let (sim, mut scd) = started(2);
        assert_eq!(scd.measurement(), Err(Error::NotReady));
        sim.advance(Duration::from_millis(4_900));
        assert_eq!(scd.measurement(), Err(Error::NotReady));
        sim.advance(Duration::from_millis(200));
        assert!(scd.measurement().is_ok());
        // The buffer empties on read-out.
        assert_eq!(scd.measurement(), Err(Error::NotReady));
        // The device would NACK a blind read of an empty buffer.
        assert!(matches!(scd.read_measurement(), Err(Error::I2c(_))));
        sim.advance(Duration::from_secs(5));
        assert!(scd.measurement().is_ok());
        assert_eq!(sim.measurements(), 2);
    }

    #[test]
    fn co2_is_recovered_across_the_flight_when_fed_the_true_pressure() {
        let (sim, mut scd) = started(3);
        let mut t_s = 0.0;
        let mut in_range = 0;
        for step in 0..=48 {
            let altitude_m = f64::from(step) * 250.0;
            t_s += 5.0;
            let state = state_at(altitude_m, t_s);
            sim.apply(&state);
            scd.set_ambient_pressure(state.pressure_pa).unwrap();
            sim.advance(Duration::from_secs(5));
            let m = scd.measurement().unwrap();
            let p_sent = f64::from(sim.ambient_pressure_hpa().unwrap()) * 100.0;
            if state.pressure_pa >= COMPENSATION_MIN_PA {
                in_range += 1;
                assert!(
                    (m.co2_mol_mol() - TRUE_CO2).abs() < 1.5 * accuracy(TRUE_CO2),
                    "at {altitude_m} m: {}",
                    m.co2_mol_mol()
                );
                assert!(!m.co2_quality().contains(Quality::OUT_OF_RANGE));
            } else {
                // Above ~3000 m the device is told 700 hPa: biased low, and flagged.
                assert_eq!(p_sent, COMPENSATION_MIN_PA);
                let expected = TRUE_CO2 * state.pressure_pa / p_sent;
                assert!((m.co2_mol_mol() - expected).abs() < 1.5 * accuracy(expected));
                assert!(m.co2_quality().contains(Quality::OUT_OF_RANGE));
            }
        }
        assert!(in_range >= 10, "{in_range}");
    }

    #[test]
    fn co2_is_biased_by_actual_over_set_pressure_when_compensation_is_wrong() {
        let (sim, mut scd) = started(4);
        let state = state_at(1_500.0, 1.0);
        sim.apply(&state);
        let mut unfed = Vec::new();
        for _ in 0..20 {
            sim.advance(Duration::from_secs(5));
            unfed.push(scd.measurement().unwrap());
        }
        // Told 1000 hPa while the air is at 845 hPa.
        scd.set_ambient_pressure(100_000.0).unwrap();
        let mut wrong = Vec::new();
        for _ in 0..20 {
            sim.advance(Duration::from_secs(5));
            wrong.push(scd.measurement().unwrap());
        }
        let mean = |ms: &[crate::scd41::Measurement]| {
            ms.iter().map(|m| m.co2_mol_mol()).sum::<f64>() / ms.len() as f64
        };
        let sea_level_ratio = state.pressure_pa / atmosphere::P0_PA;
        let wrong_ratio = state.pressure_pa / 100_000.0;
        assert!(
            (mean(&unfed) / TRUE_CO2 - sea_level_ratio).abs() < 0.03,
            "{}",
            mean(&unfed)
        );
        assert!(
            (mean(&wrong) / TRUE_CO2 - wrong_ratio).abs() < 0.03,
            "{}",
            mean(&wrong)
        );
        assert!(
            unfed
                .iter()
                .all(|m| m.co2_quality().contains(Quality::DEGRADED_INPUT))
        );
        assert!(wrong.iter().all(|m| m.co2_quality().is_good()));
    }

    #[test]
    fn at_twelve_km_and_minus_fifty_six_celsius_every_reading_is_flagged() {
        let (sim, mut scd) = started(5);
        let state = state_at(12_000.0, 10.0);
        assert!((state.pressure_pa - 19_400.0).abs() < 200.0);
        sim.apply(&state);
        scd.set_ambient_pressure(state.pressure_pa).unwrap();
        assert_eq!(sim.ambient_pressure_hpa(), Some(700));
        sim.advance(Duration::from_secs(5));
        let m = scd.measurement().unwrap();
        assert!(m.temperature_k() < RATED_MIN_K);
        let mut out = Vec::new();
        crate::Sample::push_readings(
            &m,
            aloft_protocol::SensorId(1),
            aloft_protocol::Timestamp::monotonic(0),
            &mut out,
        );
        assert!(
            out.iter()
                .all(|r| r.quality.contains(Quality::OUT_OF_RANGE))
        );
    }

    #[test]
    fn at_minus_fifty_celsius_in_the_box_mount_only_the_outside_matters() {
        let sim = Scd41Sim::new(SERIAL, 6);
        sim.set_mounting(TemperatureSource::InstrumentBox);
        let mut scd = Scd41::new(sim.clone(), sim.delay());
        scd.init().unwrap();
        let mut state = state_at(9_000.0, 1.0);
        state.outside_air_k = 223.15;
        sim.apply(&state);
        sim.advance(Duration::from_secs(5));
        let m = scd.measurement().unwrap();
        assert!(!m.temperature_quality().contains(Quality::OUT_OF_RANGE));
        sim.set_mounting(TemperatureSource::OutsideAir);
        sim.apply(&state);
        sim.advance(Duration::from_secs(5));
        let m = scd.measurement().unwrap();
        assert!(m.temperature_quality().contains(Quality::OUT_OF_RANGE));
        assert!(
            (m.temperature_k() - 228.15).abs() < 0.01,
            "saturates at -45 °C: {}",
            m.temperature_k()
        );
    }

    #[test]
    fn a_nack_is_a_typed_error_and_the_driver_recovers_when_it_clears() {
        let (sim, mut scd) = started(7);
        sim.advance(Duration::from_secs(5));
        sim.nack_next(1);
        assert!(matches!(
            scd.measurement(),
            Err(Error::I2c(ErrorKind::NoAcknowledge(_)))
        ));
        assert!(scd.measurement().is_ok());

        sim.nack_until_cleared();
        sim.advance(Duration::from_secs(5));
        for _ in 0..3 {
            assert!(matches!(scd.measurement(), Err(Error::I2c(_))));
        }
        assert!(scd.init().is_err());
        sim.clear_faults();
        assert_eq!(scd.init(), Ok(SERIAL));
        sim.advance(Duration::from_secs(5));
        assert!(scd.measurement().is_ok());
    }

    #[test]
    fn a_corrupted_crc_is_a_typed_error_and_the_next_read_is_good() {
        let (sim, mut scd) = started(8);
        sim.advance(Duration::from_secs(5));
        sim.corrupt_crc_next(1);
        assert_eq!(scd.measurement(), Err(Error::Crc));
        sim.corrupt_crc_until_cleared();
        sim.advance(Duration::from_secs(5));
        assert_eq!(scd.measurement(), Err(Error::Crc));
        assert_eq!(
            scd.read_serial_number(),
            Err(Error::I2c(ErrorKind::NoAcknowledge(
                NoAcknowledgeSource::Data
            )))
        );
        sim.clear_faults();
        sim.advance(Duration::from_secs(5));
        assert!(scd.measurement().is_ok());
    }

    #[test]
    fn data_that_never_becomes_ready_is_not_ready_until_cleared() {
        let (sim, mut scd) = started(9);
        sim.never_ready();
        for _ in 0..4 {
            sim.advance(Duration::from_secs(5));
            assert_eq!(scd.measurement(), Err(Error::NotReady));
        }
        sim.clear_faults();
        sim.advance(Duration::from_secs(5));
        assert!(scd.measurement().is_ok());
    }

    #[test]
    fn a_driver_that_does_not_wait_out_stop_is_nacked() {
        let sim = Scd41Sim::new(SERIAL, 10);
        let mut scd = Scd41::new(sim.clone(), NoopDelay);
        assert!(matches!(
            scd.init(),
            Err(Error::I2c(ErrorKind::NoAcknowledge(_)))
        ));
    }

    #[test]
    fn single_shot_from_idle_takes_five_simulated_seconds() {
        let (sim, mut scd) = started(11);
        scd.stop_periodic_measurement().unwrap();
        assert_eq!(scd.mode(), Mode::Idle);
        let before = sim.now();
        let m = scd.single_shot_measurement().unwrap();
        assert!(sim.now() - before >= Duration::from_secs(5));
        assert!((m.co2_mol_mol() - TRUE_CO2).abs() < 1.5 * accuracy(TRUE_CO2));
        assert_eq!(sim.mode(), SimMode::Idle);
    }

    #[test]
    fn reinit_forgets_the_pressure_and_init_feeds_it_again() {
        let (sim, mut scd) = started(12);
        scd.set_ambient_pressure(85_000.0).unwrap();
        assert_eq!(sim.ambient_pressure_hpa(), Some(850));
        scd.init().unwrap();
        assert_eq!(sim.ambient_pressure_hpa(), Some(850));
        scd.stop_periodic_measurement().unwrap();
        scd.reinit().unwrap();
        assert_eq!(sim.ambient_pressure_hpa(), None);
        assert_eq!(scd.compensation(), Compensation::SeaLevel);
    }

    #[test]
    fn idle_only_commands_are_nacked_while_measuring() {
        let (_sim, mut scd) = started(13);
        assert!(matches!(scd.read_serial_number(), Err(Error::I2c(_))));
    }

    #[test]
    fn the_wrong_address_is_nacked() {
        let mut sim = Scd41Sim::new(SERIAL, 14);
        assert_eq!(
            sim.write(0x61, &command::REINIT.to_be_bytes()),
            Err(ErrorKind::NoAcknowledge(NoAcknowledgeSource::Address))
        );
    }

    proptest::proptest! {
        #[test]
        fn arbitrary_bus_traffic_never_panics_the_model(
            ops in proptest::collection::vec(
                (0u8..5, proptest::collection::vec(proptest::prelude::any::<u8>(), 0..12), proptest::prelude::any::<u32>(), proptest::prelude::any::<f64>()),
                0..40,
            )
        ) {
            let mut sim = Scd41Sim::new(SERIAL, 99);
            for (kind, bytes, n, x) in ops {
                match kind {
                    0 => { let _ = sim.write(ADDRESS, &bytes); }
                    1 => { let mut buf = vec![0u8; bytes.len()]; let _ = sim.read(ADDRESS, &mut buf); }
                    2 => sim.advance(Duration::from_millis(u64::from(n))),
                    3 => sim.apply(&FlightState { t_s: x, pressure_pa: x, co2_mol_mol: x, ..state_at(0.0, 0.0) }),
                    _ => {
                        // The commands the device knows, with a valid CRC on any argument.
                        let code = [0x21B1u16, 0xEC05, 0x3F86, 0xE4B8, 0x3682, 0xE000, 0x3646, 0x219D, 0x36F6][(n % 9) as usize];
                        let mut frame = code.to_be_bytes().to_vec();
                        if n % 2 == 0 { frame.extend(encode_word(n as u16)); }
                        let _ = sim.write(ADDRESS, &frame);
                    }
                }
            }
        }
    }
}
