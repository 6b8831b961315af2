//! What the register-level I2C simulators share: a simulated clock that only a
//! [`SimDelay`] (or the simulation's own time) advances; the bus side of every simulated
//! device ([`SimBus`]): that clock, the bus faults a test injects and the count of
//! transactions addressed to the device; the handle every simulator is ([`SimDevice`]: a
//! register model behind a mutex, with its bus side); and the air an atmospheric sensor
//! sits in ([`SimAir`]).
//!
//! A simulator is `SimDevice<ItsModel>`: it derefs to its [`SimBus`], so `nack_next`,
//! `nack_until_cleared`, `set_bus_error`, `clock`, `delay`, `advance` and `transactions`
//! are one set of methods for every device, and its `I2c` implementation (count, bus
//! faults, then the model) is written once; a simulator's own `clear_faults` clears the
//! bus's faults and its device-specific ones.
//!
//! Invariant: simulated time moves only when a driver waits or the simulation moves it,
//! so a driver that does not wait long enough for a conversion sees what the real device
//! would show (a busy bit, an ADC reading of zero), and no test ever sleeps.

use std::ops::Deref;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use embedded_hal::delay::DelayNs;
use embedded_hal::i2c::{ErrorKind, ErrorType, I2c, NoAcknowledgeSource, Operation};

use crate::flight::{FlightState, Noise};

/// Which temperature of the flight a simulated sensor sees.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum TemperatureSource {
    /// Mounted in the outside air (the outside-air sensor).
    #[default]
    OutsideAir,
    /// Inside the heated instrument box.
    InstrumentBox,
}

impl TemperatureSource {
    /// The temperature a sensor mounted here sees in `state`, K.
    pub fn temperature_k(self, state: &FlightState) -> f64 {
        match self {
            TemperatureSource::OutsideAir => state.outside_air_k,
            TemperatureSource::InstrumentBox => state.box_temperature_k,
        }
    }
}

/// A delay that returns at once: for drivers whose simulated device needs no waiting.
#[derive(Debug, Clone, Copy, Default)]
pub struct NoopDelay;

impl DelayNs for NoopDelay {
    fn delay_ns(&mut self, _ns: u32) {}
}

/// Simulated time in nanoseconds, shared by a simulator and the delays that drive it.
#[derive(Debug, Clone, Default)]
pub struct SimClock(Arc<AtomicU64>);

impl SimClock {
    /// A clock at zero.
    pub fn new() -> Self {
        SimClock::default()
    }

    /// Nanoseconds since the clock was made.
    pub fn now_ns(&self) -> u64 {
        self.0.load(Ordering::SeqCst)
    }

    /// Moves the clock forward by `ns` (it stops at `u64::MAX` instead of wrapping).
    pub fn advance_ns(&self, ns: u64) {
        // The closure always returns Some: the update cannot fail.
        let _ = self
            .0
            .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |now| {
                Some(now.saturating_add(ns))
            });
    }

    /// Moves the clock to `ns` if that is later (never backwards).
    pub fn advance_to_ns(&self, ns: u64) {
        self.0.fetch_max(ns, Ordering::SeqCst);
    }
}

/// A `DelayNs` that returns at once and advances a [`SimClock`] instead, recording what
/// was asked for.
#[derive(Debug, Clone, Default)]
pub struct SimDelay {
    clock: SimClock,
    calls: u32,
    total_ns: u64,
}

impl SimDelay {
    /// A delay with its own clock.
    pub fn new() -> Self {
        SimDelay::default()
    }

    /// A delay that advances `clock` (a simulator's).
    pub fn on(clock: SimClock) -> Self {
        SimDelay {
            clock,
            calls: 0,
            total_ns: 0,
        }
    }

    /// How many waits were requested.
    pub fn calls(&self) -> u32 {
        self.calls
    }

    /// Total time waited, ns.
    pub fn total_ns(&self) -> u64 {
        self.total_ns
    }
}

impl DelayNs for SimDelay {
    fn delay_ns(&mut self, ns: u32) {
        self.calls = self.calls.saturating_add(1);
        self.total_ns = self.total_ns.saturating_add(u64::from(ns));
        self.clock.advance_ns(u64::from(ns));
    }
}

/// Bus-level faults of a simulated device, checked before each transaction.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct BusFaults {
    /// NACK the address of this many coming transactions.
    pub nack_next: u32,
    /// NACK every transaction until cleared.
    pub nack_always: bool,
    /// Fail every transaction with a bus error (arbitration, SDA stuck) until cleared.
    pub bus_error: bool,
}

impl BusFaults {
    /// Decides the fate of one transaction to `address` for a device at `device`:
    /// an error to return, or `None` to let the device answer.
    pub fn check(&mut self, address: u8, device: u8) -> Option<ErrorKind> {
        if self.bus_error {
            return Some(ErrorKind::Bus);
        }
        // A wrong address: nobody answers, as on a real bus.
        if address != device || self.nack_always {
            return Some(ErrorKind::NoAcknowledge(NoAcknowledgeSource::Address));
        }
        if self.nack_next > 0 {
            self.nack_next -= 1;
            return Some(ErrorKind::NoAcknowledge(NoAcknowledgeSource::Address));
        }
        None
    }

    /// Clears every fault.
    pub fn clear(&mut self) {
        *self = BusFaults::default();
    }
}

/// How long an injected fault lasts.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub(crate) enum Persistence {
    #[default]
    Off,
    Next(u32),
    UntilCleared,
}

impl Persistence {
    /// Whether the fault hits this transaction; counts it down.
    pub(crate) fn strike(&mut self) -> bool {
        match *self {
            Persistence::Off => false,
            Persistence::UntilCleared => true,
            Persistence::Next(n) => {
                *self = if n <= 1 {
                    Persistence::Off
                } else {
                    Persistence::Next(n - 1)
                };
                n > 0
            }
        }
    }
}

/// The bus side of one simulated I2C device: its clock, the bus faults injected into it and
/// the transactions addressed to it. A cheap handle: clones share one bus side, so a test
/// injects faults through one while the driver owns the device as its bus.
#[derive(Debug, Clone, Default)]
pub struct SimBus {
    clock: SimClock,
    faults: Arc<Mutex<BusFaults>>,
    transactions: Arc<AtomicU64>,
}

impl SimBus {
    /// A bus side with no faults and its clock at zero.
    pub fn new() -> Self {
        SimBus::default()
    }

    /// The clock the device's conversions run on.
    pub fn clock(&self) -> SimClock {
        self.clock.clone()
    }

    /// A delay that advances this device's clock: what a driver under test should wait with.
    pub fn delay(&self) -> SimDelay {
        SimDelay::on(self.clock())
    }

    /// Moves simulated time forward.
    pub fn advance(&self, by: Duration) {
        self.clock
            .advance_ns(u64::try_from(by.as_nanos()).unwrap_or(u64::MAX));
    }

    /// Simulated time since the device was made.
    pub fn now(&self) -> Duration {
        Duration::from_nanos(self.clock.now_ns())
    }

    /// NACKs the next `n` transactions.
    pub fn nack_next(&self, n: u32) {
        self.faults().nack_next = n;
    }

    /// NACKs every transaction until the device's faults are cleared.
    pub fn nack_until_cleared(&self) {
        self.faults().nack_always = true;
    }

    /// Fails every transaction with a bus error until cleared.
    pub fn set_bus_error(&self, on: bool) {
        self.faults().bus_error = on;
    }

    /// Clears the bus faults (a simulator's `clear_faults` also clears its own).
    pub fn clear_faults(&self) {
        self.faults().clear();
    }

    /// Transactions addressed to the bus so far (including failed ones).
    pub fn transactions(&self) -> u64 {
        self.transactions.load(Ordering::SeqCst)
    }

    /// Counts one transaction to `address` and decides its fate for a device answering at
    /// `device`: the error the bus shows, or `Ok` to let the device answer.
    pub fn transaction(&self, address: u8, device: u8) -> Result<(), ErrorKind> {
        self.transactions.fetch_add(1, Ordering::SeqCst);
        match self.faults().check(address, device) {
            Some(error) => Err(error),
            None => Ok(()),
        }
    }

    fn faults(&self) -> MutexGuard<'_, BusFaults> {
        // A panicking test thread must not take the device down with it.
        self.faults.lock().unwrap_or_else(|e| e.into_inner())
    }
}

/// A register model: what one simulated device answers once the bus lets a transaction
/// through to it.
pub trait RegisterModel {
    /// The address the device answers at.
    fn address(&self) -> u8;

    /// Brings the model up to its clock before the bus decides a transaction's fate: for
    /// a device that measures on its own whether or not it is addressed.
    fn catch_up(&mut self) {}

    /// Answers one transaction addressed to the device.
    fn transaction(&mut self, operations: &mut [Operation<'_>]) -> Result<(), ErrorKind>;
}

/// A simulated I2C device: its register model behind a cheap handle (clones share one
/// device, so a test changes the environment or injects faults while the driver owns a
/// clone as its bus), and its bus side, which it derefs to.
#[derive(Debug)]
pub struct SimDevice<M> {
    model: Arc<Mutex<M>>,
    bus: SimBus,
}

impl<M> Clone for SimDevice<M> {
    fn clone(&self) -> Self {
        SimDevice {
            model: Arc::clone(&self.model),
            bus: self.bus.clone(),
        }
    }
}

impl<M> SimDevice<M> {
    /// A device whose model `build` makes on the device's new bus side (the model keeps
    /// the bus's clock).
    pub(crate) fn with_model(build: impl FnOnce(&SimBus) -> M) -> Self {
        let bus = SimBus::new();
        SimDevice {
            model: Arc::new(Mutex::new(build(&bus))),
            bus,
        }
    }

    pub(crate) fn lock(&self) -> MutexGuard<'_, M> {
        // A test that panicked while holding the lock leaves a consistent model: keep going.
        self.model.lock().unwrap_or_else(|e| e.into_inner())
    }
}

impl<M> Deref for SimDevice<M> {
    type Target = SimBus;

    fn deref(&self) -> &SimBus {
        &self.bus
    }
}

impl<M> ErrorType for SimDevice<M> {
    type Error = ErrorKind;
}

impl<M: RegisterModel> I2c for SimDevice<M> {
    fn transaction(
        &mut self,
        address: u8,
        operations: &mut [Operation<'_>],
    ) -> Result<(), ErrorKind> {
        let mut model = self.lock();
        model.catch_up();
        self.bus.transaction(address, model.address())?;
        model.transaction(operations)
    }
}

/// The air around a simulated atmospheric sensor, where the sensor is mounted and its
/// seeded datasheet-level noise (none unless asked for).
#[derive(Debug)]
pub struct SimAir {
    pub(crate) pressure_pa: f64,
    pub(crate) temperature_k: f64,
    pub(crate) relative_humidity: f64,
    pub(crate) source: TemperatureSource,
    pub(crate) noise: Option<Noise>,
}

impl SimAir {
    /// ISA sea-level air at 50 % relative humidity, outside, without noise.
    pub fn sea_level() -> Self {
        SimAir {
            pressure_pa: crate::atmosphere::P0_PA,
            temperature_k: crate::atmosphere::T0_K,
            relative_humidity: 0.5,
            source: TemperatureSource::OutsideAir,
            noise: None,
        }
    }
}

/// A register model of a sensor that sits in the air ([`SimAir`]).
pub trait InAir {
    /// The air the model samples.
    fn air(&mut self) -> &mut SimAir;
}

impl<M: InAir> SimDevice<M> {
    /// Adds seeded Gaussian noise at the datasheet's RMS levels (per oversampling ratio
    /// where the part has them).
    pub fn with_noise(self, seed: u64) -> Self {
        self.lock().air().noise = Some(Noise::new(seed));
        self
    }

    /// Chooses which temperature of a [`FlightState`] the device sees.
    pub fn with_temperature_source(self, source: TemperatureSource) -> Self {
        self.lock().air().source = source;
        self
    }

    /// Sets the air the device is in (Pa, K, fraction 0..1; a part that measures no
    /// humidity ignores the last).
    pub fn set_environment(&self, pressure_pa: f64, temperature_k: f64, relative_humidity: f64) {
        let mut model = self.lock();
        let air = model.air();
        air.pressure_pa = pressure_pa;
        air.temperature_k = temperature_k;
        air.relative_humidity = relative_humidity;
    }

    /// Sets the environment from the flight's true state.
    pub fn apply(&self, state: &FlightState) {
        let mut model = self.lock();
        let air = model.air();
        air.temperature_k = air.source.temperature_k(state);
        air.pressure_pa = state.pressure_pa;
        air.relative_humidity = state.relative_humidity;
    }
}

/// Inverts a monotonic compensation: the simulators find raw ADC values with it.
///
/// The `x` in `lo..=hi` whose `f(x)` is closest to `target`, for `f` non-decreasing.
pub fn bisect(lo: u32, hi: u32, target: f64, f: impl Fn(u32) -> f64) -> u32 {
    let (mut lo, mut hi) = (lo, hi);
    // Smallest x with f(x) >= target.
    while lo < hi {
        let mid = lo + (hi - lo) / 2;
        if f(mid) >= target {
            hi = mid;
        } else {
            lo = mid + 1;
        }
    }
    if lo > 0 && (f(lo - 1) - target).abs() < (f(lo) - target).abs() {
        lo - 1
    } else {
        lo
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn delay_advances_the_shared_clock_and_records() {
        let clock = SimClock::new();
        let mut delay = SimDelay::on(clock.clone());
        delay.delay_ms(3);
        delay.delay_us(5);
        assert_eq!(clock.now_ns(), 3_005_000);
        assert_eq!(delay.total_ns(), 3_005_000);
        assert!(delay.calls() >= 2);
    }

    #[test]
    fn nack_next_counts_down_then_the_device_answers() {
        let mut faults = BusFaults {
            nack_next: 2,
            ..BusFaults::default()
        };
        assert!(faults.check(0x76, 0x76).is_some());
        assert!(faults.check(0x76, 0x76).is_some());
        assert_eq!(faults.check(0x76, 0x76), None);
        assert!(faults.check(0x77, 0x76).is_some());
    }

    #[test]
    fn a_bus_side_counts_every_transaction_and_its_clones_share_the_faults() {
        let bus = SimBus::new();
        let handle = bus.clone();
        handle.nack_next(1);
        assert!(bus.transaction(0x76, 0x76).is_err());
        assert_eq!(bus.transaction(0x76, 0x76), Ok(()));
        handle.set_bus_error(true);
        assert_eq!(bus.transaction(0x76, 0x76), Err(ErrorKind::Bus));
        handle.nack_until_cleared();
        handle.set_bus_error(false);
        assert!(bus.transaction(0x76, 0x76).is_err());
        handle.clear_faults();
        assert_eq!(bus.transaction(0x76, 0x76), Ok(()));
        assert_eq!(handle.transactions(), 5);
        handle.advance(Duration::from_millis(3));
        bus.clock().advance_to_ns(1_000);
        assert_eq!(bus.now(), Duration::from_millis(3));
        bus.clock().advance_ns(u64::MAX);
        assert_eq!(handle.clock().now_ns(), u64::MAX);
    }

    #[test]
    fn persistence_strikes_n_times_or_until_cleared() {
        let mut p = Persistence::Next(2);
        assert!(p.strike());
        assert!(p.strike());
        assert!(!p.strike());
        assert_eq!(p, Persistence::Off);
        assert!(!Persistence::Next(0).strike());
        let mut always = Persistence::UntilCleared;
        assert!(always.strike() && always.strike());
    }

    #[test]
    fn bisect_finds_the_closest_point_of_a_step_function() {
        // f(x) = 3x: 10 lies between f(3) = 9 and f(4) = 12, closer to 9.
        assert_eq!(bisect(0, 100, 10.0, |x| f64::from(3 * x)), 3);
        assert_eq!(bisect(0, 100, 11.0, |x| f64::from(3 * x)), 4);
        assert_eq!(bisect(0, 100, -5.0, |x| f64::from(3 * x)), 0);
        assert_eq!(bisect(0, 100, 1e9, |x| f64::from(3 * x)), 100);
    }
}
