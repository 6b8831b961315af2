//! Register-level model of an MS4525DO behind an [`embedded_hal::i2c::I2c`] bus.
//!
//! [`Ms4525doSim`] is a cheap-to-clone handle: the driver owns one clone as its bus while a
//! test or the demo sets the pitot pressure and injects faults through another. The part
//! converts continuously, one conversion per response time (0.5 ms); a fetch before the
//! next conversion returns the same data with the stale status, as the datasheet describes.
//! Time is *simulated* ([`SimBus::advance`] or the time of the applied
//! [`FlightState`]); nothing here sleeps.
//!
//! Noise: the datasheet's ±0.25 % of span accuracy and ±1.5 °C temperature accuracy, each
//! taken as 3 sigma. Counts saturate at what 14 and 11 bits carry, as the wire format
//! would.

use embedded_hal::i2c::{ErrorKind, Operation};

use crate::flight::{FlightState, Noise};
pub use crate::i2c::sim::NoopDelay;
use crate::i2c::sim::{RegisterModel, SimBus, SimClock, SimDevice};

use super::{Config, RawSample, Status, temperature_counts_for};

/// The part's response time, which is also how often it converts, ns.
pub const UPDATE_PERIOD_NS: u64 = 500_000;

/// The MS4525DO's conversions and fetches ([`Ms4525doSim`]'s model).
#[derive(Debug)]
pub struct Ms4525doModel {
    config: Config,
    clock: SimClock,
    last_conversion_ns: Option<u64>,
    latest: RawSample,
    fetched: bool,
    differential_pressure_pa: f64,
    temperature_k: f64,
    noise: Noise,
    fault: bool,
    never_ready: bool,
    fetches: u64,
}

/// A simulated MS4525DO. Clones share one device. Derefs to its [`SimBus`] (simulated time,
/// NACKs, transaction count).
pub type Ms4525doSim = SimDevice<Ms4525doModel>;

impl SimDevice<Ms4525doModel> {
    /// A device of the part `config` describes, with noise seed `seed`, seeing no airflow
    /// at 20 °C.
    pub fn new(config: Config, seed: u64) -> Self {
        SimDevice::with_model(|bus| Ms4525doModel {
            config,
            clock: bus.clock(),
            last_conversion_ns: None,
            latest: RawSample {
                status: Status::Normal,
                bridge: 0,
                temperature: 0,
            },
            fetched: false,
            differential_pressure_pa: 0.0,
            temperature_k: 293.15,
            noise: Noise::new(seed),
            fault: false,
            never_ready: false,
            fetches: 0,
        })
    }

    /// Takes the pitot pressure and the instrument box's temperature (where the part sits,
    /// plumbed to the pitot-static lines) from the flight, and moves simulated time to its
    /// time (never backwards).
    pub fn apply(&self, state: &FlightState) {
        let mut m = self.lock();
        m.differential_pressure_pa = state.differential_pressure_pa;
        m.temperature_k = state.box_temperature_k;
        // `as` saturates: a negative or NaN time leaves the clock where it is.
        let t_ns = (state.t_s * 1e9) as u64;
        m.clock.advance_to_ns(t_ns);
    }

    /// Sets the true differential pressure, Pa.
    pub fn set_differential_pressure_pa(&self, value: f64) {
        self.lock().differential_pressure_pa = value;
    }

    /// Sets the die temperature, K.
    pub fn set_temperature_k(&self, value: f64) {
        self.lock().temperature_k = value;
    }

    /// Packets fetched so far.
    pub fn fetches(&self) -> u64 {
        self.lock().fetches
    }

    /// Reports the fault status (3) until cleared.
    pub fn fault(&self) {
        self.lock().fault = true;
    }

    /// Stops converting (data never ready: every fetch is stale) until cleared.
    pub fn never_ready(&self) {
        self.lock().never_ready = true;
    }

    /// Ends every injected fault.
    pub fn clear_faults(&self) {
        SimBus::clear_faults(self);
        let mut m = self.lock();
        m.fault = false;
        m.never_ready = false;
    }
}

impl Ms4525doModel {
    fn now_ns(&self) -> u64 {
        self.clock.now_ns()
    }

    fn convert_if_due(&mut self) {
        if self.never_ready && self.last_conversion_ns.is_some() {
            return;
        }
        let due = self
            .last_conversion_ns
            .is_none_or(|last| self.now_ns() >= last.saturating_add(UPDATE_PERIOD_NS));
        if !due {
            return;
        }
        let span = self.config.range.max_pa - self.config.range.min_pa;
        let pressure = self.differential_pressure_pa + self.noise.gaussian(0.0025 * span / 3.0);
        let temperature = self.temperature_k + self.noise.gaussian(1.5 / 3.0);
        // `as` after clamp: the registers hold 14 and 11 bits.
        let bridge = self
            .config
            .counts_for(pressure)
            .round()
            .clamp(0.0, 16_383.0) as u16;
        let temperature = temperature_counts_for(temperature)
            .round()
            .clamp(0.0, 2_047.0) as u16;
        self.latest = RawSample {
            status: Status::Normal,
            bridge,
            temperature,
        };
        self.fetched = false;
        self.last_conversion_ns = Some(self.now_ns());
    }

    fn fetch(&mut self, buf: &mut [u8]) {
        self.convert_if_due();
        let status = if self.fault {
            Status::Fault
        } else if self.fetched {
            Status::Stale
        } else {
            Status::Normal
        };
        self.fetched = true;
        self.fetches += 1;
        let packet = RawSample {
            status,
            ..self.latest
        }
        .to_bytes();
        // Reading past the packet yields 0xFF, as an idle bus does.
        for (i, byte) in buf.iter_mut().enumerate() {
            *byte = packet.get(i).copied().unwrap_or(0xFF);
        }
    }
}

impl RegisterModel for Ms4525doModel {
    fn address(&self) -> u8 {
        self.config.address
    }

    fn transaction(&mut self, operations: &mut [Operation<'_>]) -> Result<(), ErrorKind> {
        for operation in operations {
            match operation {
                // A write header is a measurement request (Read_MR): the part converts
                // continuously anyway, so it only acknowledges.
                Operation::Write(_) => {}
                Operation::Read(buf) => self.fetch(buf),
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::Sample;
    use crate::ms4525do::{Error, Measurement, Ms4525do, OutsideAir};
    use aloft_protocol::{Quality, Quantity, SensorId, Timestamp};
    use embedded_hal::i2c::I2c;
    use embedded_hal::i2c::NoAcknowledgeSource;
    use std::time::Duration;

    /// The true state at `altitude_m` in the ISA, flying at 30 m/s indicated, the box at
    /// 20 °C.
    fn state_at(altitude_m: f64, t_s: f64) -> FlightState {
        crate::flight::isa_state(altitude_m, t_s)
    }

    fn started(seed: u64) -> (Ms4525doSim, Ms4525do<Ms4525doSim, NoopDelay>) {
        let sim = Ms4525doSim::new(Config::default(), seed);
        let mut ms = Ms4525do::new(sim.clone(), NoopDelay, Config::default());
        ms.init().unwrap();
        sim.advance(Duration::from_millis(1));
        (sim, ms)
    }

    fn outside(state: &FlightState) -> OutsideAir {
        OutsideAir {
            static_pressure_pa: state.pressure_pa,
            temperature_k: state.outside_air_k,
            quality: Quality::GOOD,
        }
    }

    fn value(m: &Measurement, quantity: Quantity) -> Option<(f64, Quality)> {
        let mut out = Vec::new();
        m.push_readings(SensorId(4), Timestamp::monotonic(0), &mut out);
        out.iter()
            .find(|r| r.quantity == quantity)
            .map(|r| (r.value, r.quality))
    }

    #[test]
    fn true_airspeed_follows_the_flight_and_is_twice_indicated_at_twelve_km() {
        let (sim, mut ms) = started(1);
        for step in 0..=24 {
            let altitude_m = f64::from(step) * 500.0;
            let state = state_at(altitude_m, f64::from(step) + 1.0);
            sim.apply(&state);
            // Average 16 conversions, as an airspeed filter would: the datasheet's ±0.25 %
            // of span is 2 % of the pitot pressure at 30 m/s on a ±1 psi part.
            let (mut tas, mut ias) = (0.0, 0.0);
            for _ in 0..16 {
                sim.advance(Duration::from_millis(1));
                let m = ms.measure_with_outside_air(outside(&state)).unwrap();
                let (t, q) = value(&m, Quantity::TrueAirspeed).unwrap();
                assert_eq!(q, Quality::DERIVED);
                tas += t / 16.0;
                ias += value(&m, Quantity::IndicatedAirspeed).unwrap().0 / 16.0;
            }
            assert!(
                (tas - state.true_airspeed_mps).abs() < 0.03 * state.true_airspeed_mps,
                "at {altitude_m} m: {tas} vs {}",
                state.true_airspeed_mps
            );
            assert!((ias - 30.0).abs() < 1.0, "at {altitude_m} m: {ias}");
            if altitude_m == 12_000.0 {
                let ratio = tas / ias;
                assert!((ratio - 2.0).abs() < 0.15, "{ratio}");
            }
        }
    }

    #[test]
    fn reading_faster_than_the_update_rate_is_stale() {
        let (sim, mut ms) = started(2);
        sim.set_differential_pressure_pa(500.0);
        let fresh = ms.measure().unwrap();
        let again = ms.measure().unwrap();
        assert!(!fresh.pressure_quality().contains(Quality::STALE));
        assert!(again.pressure_quality().contains(Quality::STALE));
        assert_eq!(
            again.raw.bridge, fresh.raw.bridge,
            "stale data repeats the last conversion"
        );
        sim.advance(Duration::from_nanos(UPDATE_PERIOD_NS));
        assert!(
            !ms.measure()
                .unwrap()
                .pressure_quality()
                .contains(Quality::STALE)
        );
        assert_eq!(sim.fetches(), 4);
    }

    #[test]
    fn at_minus_fifty_celsius_every_reading_is_out_of_range() {
        let (sim, mut ms) = started(3);
        let state = state_at(11_000.0, 2.0);
        sim.apply(&state);
        sim.set_temperature_k(223.15);
        let m = ms.measure_with_outside_air(outside(&state)).unwrap();
        let mut out = Vec::new();
        m.push_readings(SensorId(4), Timestamp::monotonic(0), &mut out);
        assert_eq!(out.len(), 4);
        assert!(
            out.iter()
                .all(|r| r.quality.contains(Quality::OUT_OF_RANGE))
        );
    }

    #[test]
    fn a_pressure_beyond_the_span_is_flagged() {
        let (sim, mut ms) = started(4);
        // 2 psi on a ±1 psi part: the counts saturate near the top of 14 bits.
        sim.set_differential_pressure_pa(2.0 * crate::ms4525do::PA_PER_PSI);
        let m = ms.measure().unwrap();
        assert!(m.differential_pressure_pa > crate::ms4525do::PA_PER_PSI);
        assert!(m.pressure_quality().contains(Quality::OUT_OF_RANGE));
    }

    #[test]
    fn a_fault_status_is_a_typed_error_and_the_driver_recovers() {
        let (sim, mut ms) = started(5);
        sim.fault();
        assert_eq!(ms.measure(), Err(Error::Fault));
        assert_eq!(ms.init(), Err(Error::Fault));
        sim.clear_faults();
        sim.advance(Duration::from_millis(1));
        ms.init().unwrap();
        sim.advance(Duration::from_millis(1));
        assert!(ms.measure().unwrap().pressure_quality().is_good());
    }

    #[test]
    fn nacks_are_typed_errors_for_n_transactions_or_until_cleared() {
        let (sim, mut ms) = started(6);
        sim.nack_next(2);
        for _ in 0..2 {
            assert_eq!(
                ms.measure(),
                Err(Error::I2c(ErrorKind::NoAcknowledge(
                    NoAcknowledgeSource::Address
                )))
            );
        }
        assert!(ms.measure().is_ok());
        sim.nack_until_cleared();
        for _ in 0..5 {
            assert!(matches!(ms.measure(), Err(Error::I2c(_))));
        }
        sim.clear_faults();
        sim.advance(Duration::from_millis(1));
        assert!(ms.measure().unwrap().pressure_quality().is_good());
    }

    #[test]
    fn data_that_never_becomes_ready_stays_stale_until_cleared() {
        let (sim, mut ms) = started(7);
        ms.measure().unwrap();
        sim.never_ready();
        for _ in 0..3 {
            sim.advance(Duration::from_millis(10));
            assert!(
                ms.measure()
                    .unwrap()
                    .pressure_quality()
                    .contains(Quality::STALE)
            );
        }
        sim.clear_faults();
        sim.advance(Duration::from_millis(1));
        assert!(
            !ms.measure()
                .unwrap()
                .pressure_quality()
                .contains(Quality::STALE)
        );
    }

    #[test]
    fn the_other_addresses_answer_only_at_their_own() {
        let config = Config::new(
            crate::ms4525do::ADDRESS_K,
            crate::ms4525do::OutputType::B,
            crate::ms4525do::PressureRange::gauge_psi(5.0),
        );
        let sim = Ms4525doSim::new(config, 8);
        let mut wrong = Ms4525do::new(sim.clone(), NoopDelay, Config::default());
        assert!(matches!(wrong.init(), Err(Error::I2c(_))));
        let mut right = Ms4525do::new(sim.clone(), NoopDelay, config);
        sim.set_differential_pressure_pa(10_000.0);
        let m = right.measure().unwrap();
        assert!(
            (m.differential_pressure_pa - 10_000.0).abs()
                < 0.0025 * 5.0 * crate::ms4525do::PA_PER_PSI * 2.0
        );
    }

    proptest::proptest! {
        #[test]
        fn arbitrary_bus_traffic_never_panics_the_model(
            ops in proptest::collection::vec(
                (0u8..4, proptest::prelude::any::<u8>(), 0usize..8, proptest::prelude::any::<u64>(), proptest::prelude::any::<f64>()),
                0..40,
            )
        ) {
            let mut sim = Ms4525doSim::new(Config::default(), 99);
            for (kind, address, len, n, x) in ops {
                match kind {
                    0 => { let _ = sim.write(address, &[]); }
                    1 => { let mut buf = vec![0u8; len]; let _ = sim.read(address, &mut buf); }
                    2 => sim.advance(Duration::from_nanos(n)),
                    _ => {
                        sim.set_differential_pressure_pa(x);
                        sim.set_temperature_k(x);
                        sim.apply(&FlightState { t_s: x, ..state_at(0.0, 0.0) });
                    }
                }
            }
        }
    }
}
