//! The Aloft edge agent.
//!
//! # Layout
//!
//! - [`replay`]: decode a capture from a real device into JSON records (`aloft-agent replay`).
//! - [`demo`]: the simulated flight read live by the real drivers (`cargo xtask demo`).
//! - [`clock`]: monotonic time always, UTC when the system clock can be trusted.

pub mod clock;
pub mod demo;
pub mod replay;
