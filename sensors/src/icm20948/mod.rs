//! TDK InvenSense ICM-20948 9-axis IMU (accelerometer, gyroscope, AK09916 magnetometer) on
//! I2C: the glider's artificial horizon.
//!
//! Its address is 0x68 with AD0 low, 0x69 with AD0 high. The board wires AD0 low: the
//! SPS30 particle sensor has the fixed address 0x69 and shares the bus.

use core::time::Duration;

/// The address with AD0 tied low (the board's wiring).
pub const ADDRESS_AD0_LOW: u8 = 0x68;
/// The address with AD0 tied high.
pub const ADDRESS_AD0_HIGH: u8 = 0x69;
/// How often the agent drains the FIFO when the config names no interval: a few wake-ups
/// a second, whatever the sample rate.
pub const DEFAULT_INTERVAL: Duration = Duration::from_millis(250);
/// The shortest drain interval accepted.
pub const MIN_INTERVAL: Duration = Duration::from_millis(20);
/// Readings one drain produces at most: roll, pitch, yaw and the two accuracies for each
/// attitude output of the drain.
pub const READINGS_PER_POLL_MAX: f64 = 5.0 * 3.0;
