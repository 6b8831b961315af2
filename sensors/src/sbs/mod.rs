//! A smart battery on SMBus (Smart Battery Data Specification 1.1, as a TI bq40z50 fuel
//! gauge speaks it): the avionics pack's voltage, current, state of charge and temperature.

use core::time::Duration;

/// The smart battery's address on SMBus (the specification fixes it).
pub const ADDRESS: u8 = 0x0B;
/// The shortest sampling interval accepted: a gauge updates its values once a second.
pub const MIN_INTERVAL: Duration = Duration::from_secs(1);
