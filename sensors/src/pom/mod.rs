//! 2B Technologies Personal Ozone Monitor (UV absorption at 254 nm): its serial data line.
//!
//! The monitor sends one comma-separated ASCII line per averaging period (2 s, 10 s,
//! 1 min or 5 min, a menu setting) at 2400, 4800 or 19200 baud, 8N1:
//!
//! ```text
//! [log number,]ozone (ppb),cell temperature,cell pressure,flow (cc/min),dd/mm/yy,hh:mm:ss
//! ```
//!
//! The units of the cell temperature (°C or K) and pressure (mbar or torr) are menu
//! settings the line does not carry, so the agent is told them ([`Units`]). The log number
//! precedes lines replayed from the monitor's logger. Other lines (messages when logging
//! starts or the averaging time changes) are not data and are reported as such.
//!
//! - [`mod@line`]: the parser of one line, typed errors, never a panic.
//! - [`stream`]: bytes from the port into lines, samples and readings.
//! - [`sim`]: the monitor behind a pseudo-terminal, following the simulated flight, with
//!   its faults (garbled lines, dropped bytes, a stalled monitor, the zero-flow alarm).
//!
//! Invariants: values come out in SI units (mol mol-1, K, Pa, m3 s-1); nothing is clamped;
//! a value outside the monitor's range is flagged [`aloft_protocol::Quality::OUT_OF_RANGE`],
//! and a flow outside its nominal band flags the ozone reading too (the cell was not
//! flushed as the calibration assumes).

pub mod line;
pub mod sim;
pub mod stream;

pub use line::{DataLine, LineError, PomSample, PressureUnit, TemperatureUnit, Units, parse_line};
pub use sim::{PomFaults, PomSim};
pub use stream::{OzoneStream, StreamItem};

/// The baud rate the monitor ships with.
pub const DEFAULT_BAUD: u32 = 2_400;
/// The baud rates its menu offers.
pub const BAUDS: &[u32] = &[2_400, 4_800, 19_200];
/// Data lines per second at most (one per 2 s average, its shortest).
pub const LINES_PER_S_MAX: f64 = 0.5;
/// The averaging periods its menu offers, s.
pub const AVERAGING_S: &[u32] = &[2, 10, 60, 300];

/// Lowest ozone reading taken as in range, ppb: the photometer reports small negative
/// values around zero (its noise); far below that the zero has drifted.
pub const OZONE_MIN_PPB: f64 = -10.0;
/// Top of the linear dynamic range, ppb (10 ppm).
pub const OZONE_MAX_PPB: f64 = 10_000.0;
/// Cell temperatures the monitor compensates for, K (0..60 °C).
pub const CELL_TEMPERATURE_MIN_K: f64 = 273.15;
/// See [`CELL_TEMPERATURE_MIN_K`].
pub const CELL_TEMPERATURE_MAX_K: f64 = 333.15;
/// Cell pressures the pressure sensor reads, Pa (100..1100 mbar).
pub const CELL_PRESSURE_MIN_PA: f64 = 10_000.0;
/// See [`CELL_PRESSURE_MIN_PA`].
pub const CELL_PRESSURE_MAX_PA: f64 = 110_000.0;
/// The nominal sample flow band, cc/min: about 1 L/min through the cell; outside it the
/// cell is not flushed between the ozone and the scrubbed (zero) measurement as the
/// calibration assumes.
pub const FLOW_MIN_CC_MIN: f64 = 700.0;
/// See [`FLOW_MIN_CC_MIN`].
pub const FLOW_MAX_CC_MIN: f64 = 1_500.0;
/// The longest line taken from the port, bytes; a longer one is garbage.
pub const MAX_LINE: usize = 128;
