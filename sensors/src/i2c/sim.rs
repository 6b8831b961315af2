//! What the register-level I2C simulators share: a simulated clock that only a
//! [`SimDelay`] advances, and the bus faults every simulated device can inject.
//!
//! Invariant: simulated time moves only when a driver waits, so a driver that does not
//! wait long enough for a conversion sees what the real device would show (a busy bit,
//! an ADC reading of zero), and no test ever sleeps.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use embedded_hal::delay::DelayNs;
use embedded_hal::i2c::{ErrorKind, NoAcknowledgeSource};

use crate::flight::FlightState;

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

    /// Moves the clock forward by `ns`.
    pub fn advance_ns(&self, ns: u64) {
        self.0.fetch_add(ns, Ordering::SeqCst);
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
    fn bisect_finds_the_closest_point_of_a_step_function() {
        // f(x) = 3x: 10 lies between f(3) = 9 and f(4) = 12, closer to 9.
        assert_eq!(bisect(0, 100, 10.0, |x| f64::from(3 * x)), 3);
        assert_eq!(bisect(0, 100, 11.0, |x| f64::from(3 * x)), 4);
        assert_eq!(bisect(0, 100, -5.0, |x| f64::from(3 * x)), 0);
        assert_eq!(bisect(0, 100, 1e9, |x| f64::from(3 * x)), 100);
    }
}
