//! 2B Technologies Personal Ozone Monitor (UV absorption at 254 nm): its serial data line.

/// The baud rate the monitor ships with.
pub const DEFAULT_BAUD: u32 = 2_400;
/// The baud rates its menu offers.
pub const BAUDS: &[u32] = &[2_400, 4_800, 19_200];
/// Data lines per second at most (one per 2 s average, its shortest).
pub const LINES_PER_S_MAX: f64 = 0.5;
