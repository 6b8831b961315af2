//! The detector front end's logic, shared by the firmware (`firmware/`, on the MCU) and the
//! agent's simulator (`aloft_sensors::frontend`, on the host): `no_std`, no allocator, no
//! floating point.
//!
//! # Layout
//!
//! - [`pulse`]: the [`PulseSource`] seam (the pulses of a SiPM channel pair, in arrival
//!   order) and the seeded [`SimulatedDetector`] behind it (Poisson arrivals, Moyal pulse
//!   heights, singles, a temperature that shifts the gain).
//! - [`frontend`]: the [`FrontEnd`]: discriminator, coincidence window, dead time, event
//!   batches, housekeeping, request handling and output paced to the baud rate, dropping
//!   whole events when the line is too slow.
//! - [`budget`]: framed bytes per event and the highest event rate a line carries.
//! - [`random`]: the seeded generator and fixed-point distributions.
//! - `fuzzing`: the body of the request-intake fuzz target.
//!
//! # Calling pattern
//!
//! The caller owns the clock (a tick counter at [`FrontEndConfig::tick_hz`], 0 at start)
//! and the UART; nothing here blocks:
//!
//! ```
//! use aloft_detector::{BootFacts, DetectorModel, FrontEnd, FrontEndConfig, SimulatedDetector};
//! use aloft_protocol::detector::{FirmwareVersion, ResetCause};
//!
//! let firmware = FirmwareVersion { major: 1, minor: 0, patch: 0 };
//! let config = FrontEndConfig::new(0x5EED, firmware, 1_000_000);
//! let boot = BootFacts { reset_cause: ResetCause::PowerOn, boot_count: 1 };
//! let source = SimulatedDetector::new(DetectorModel::default(), 42);
//! let mut front_end = FrontEnd::new(config, boot, source).expect("a valid config");
//! let mut line = Vec::new();
//! for now in (0..2_000_000u64).step_by(1_000) {
//!     // for each byte the UART received: front_end.receive(byte, now);
//!     front_end.poll(now);
//!     while let Some(byte) = front_end.next_tx_byte(now) {
//!         line.push(byte); // the UART's data register
//!     }
//!     if front_end.action().is_some() {
//!         break; // Reset: reset the MCU; Stall: stop kicking the watchdog
//!     }
//! }
//! assert!(line.len() <= 2 * 11_520 + 1, "two seconds of a 115 200 baud line");
//! ```
//!
//! Invariants: the same seed, configuration and calling sequence produce the same bytes
//! on every platform; no input makes anything here panic.

#![no_std]

pub mod budget;
pub mod frontend;
#[doc(hidden)]
pub mod fuzzing;
pub mod pulse;
pub mod random;

pub use budget::{LineBudget, line_budget};
pub use frontend::{
    Action, BootFacts, ConfigError, DEFAULT_SETTINGS, FrontEnd, FrontEndConfig, FrontEndCounters,
};
pub use pulse::{Channel, DetectorModel, Pulse, PulseSource, SimulatedDetector};
pub use random::Rng;
