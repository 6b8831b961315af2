//! The Aloft edge agent.
//!
//! # Layout
//!
//! - [`replay`]: decode a capture from a real device into JSON records (`aloft-agent replay`).
//! - [`demo`]: the simulated flight read live by the real drivers (`cargo xtask demo`).
//! - [`config`]: the configuration file's types (the file owns the hardware).
//! - [`clock`]: monotonic time always, UTC when the system clock can be trusted.
//! - [`supervisor`]: one supervised thread per sensor: states, backoff, restarts, power lines.
//! - [`sensor`]: the adapter of each device kind, the shared latest values, the simulation.

pub mod clock;
pub mod config;
pub mod demo;
pub mod replay;
pub mod sensor;
pub mod supervisor;
