//! Register-level model of an MS4525DO behind an [`embedded_hal::i2c::I2c`] bus.
//!
//! [`Ms4525doSim`] is a cheap-to-clone handle: the driver owns one clone as its bus while a
//! test or the demo sets the pitot pressure and injects faults through another. The part
//! converts continuously, one conversion per response time (0.5 ms); a fetch before the
//! next conversion returns the same data with the stale status, as the datasheet describes.
//! Time is *simulated* ([`Ms4525doSim::advance`] or the time of the applied
//! [`FlightState`]); nothing here sleeps.
//!
//! Noise: the datasheet's ±0.25 % of span accuracy and ±1.5 °C temperature accuracy, each
//! taken as 3 sigma. Counts saturate at what 14 and 11 bits carry, as the wire format
//! would.

use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use embedded_hal::i2c::{ErrorKind, ErrorType, I2c, NoAcknowledgeSource, Operation};

use crate::flight::{FlightState, Noise};
pub use crate::scd41::sim::NoopDelay;
use crate::scd41::sim::Persistence;

use super::{Config, RawSample, Status, temperature_counts_for};

/// The part's response time, which is also how often it converts, ns.
pub const UPDATE_PERIOD_NS: u64 = 500_000;

#[derive(Debug)]
struct Model {
    config: Config,
    now_ns: u64,
    last_conversion_ns: Option<u64>,
    latest: RawSample,
    fetched: bool,
    differential_pressure_pa: f64,
    temperature_k: f64,
    noise: Noise,
    nack: Persistence,
    fault: bool,
    never_ready: bool,
    fetches: u64,
}

/// A simulated MS4525DO. Clones share one device.
#[derive(Debug, Clone)]
pub struct Ms4525doSim {
    model: Arc<Mutex<Model>>,
}

impl Ms4525doSim {
    /// A device of the part `config` describes, with noise seed `seed`, seeing no airflow
    /// at 20 °C.
    pub fn new(config: Config, seed: u64) -> Self {
        let model = Model {
            config,
            now_ns: 0,
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
            nack: Persistence::Off,
            fault: false,
            never_ready: false,
            fetches: 0,
        };
        Ms4525doSim {
            model: Arc::new(Mutex::new(model)),
        }
    }

    fn lock(&self) -> MutexGuard<'_, Model> {
        // A test that panicked while holding the lock leaves a consistent model: keep going.
        self.model
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
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
        m.now_ns = m.now_ns.max(t_ns);
    }

    /// Moves simulated time forward.
    pub fn advance(&self, by: Duration) {
        let mut m = self.lock();
        m.now_ns = m
            .now_ns
            .saturating_add(u64::try_from(by.as_nanos()).unwrap_or(u64::MAX));
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

    /// NACKs the next `transactions` transactions.
    pub fn nack_next(&self, transactions: u32) {
        self.lock().nack = Persistence::Next(transactions);
    }

    /// NACKs every transaction until [`Ms4525doSim::clear_faults`].
    pub fn nack_until_cleared(&self) {
        self.lock().nack = Persistence::UntilCleared;
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
        let mut m = self.lock();
        m.nack = Persistence::Off;
        m.fault = false;
        m.never_ready = false;
    }
}

impl Model {
    fn convert_if_due(&mut self) {
        if self.never_ready && self.last_conversion_ns.is_some() {
            return;
        }
        let due = self
            .last_conversion_ns
            .is_none_or(|last| self.now_ns >= last.saturating_add(UPDATE_PERIOD_NS));
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
        self.last_conversion_ns = Some(self.now_ns);
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

impl ErrorType for Ms4525doSim {
    type Error = ErrorKind;
}

impl I2c for Ms4525doSim {
    fn transaction(
        &mut self,
        address: u8,
        operations: &mut [Operation<'_>],
    ) -> Result<(), ErrorKind> {
        let mut m = self.lock();
        if address != m.config.address || m.nack.strike() {
            return Err(ErrorKind::NoAcknowledge(NoAcknowledgeSource::Address));
        }
        for operation in operations {
            match operation {
                // A write header is a measurement request (Read_MR): the part converts
                // continuously anyway, so it only acknowledges.
                Operation::Write(_) => {}
                Operation::Read(buf) => m.fetch(buf),
            }
        }
        Ok(())
    }
}
