//! End-to-end tests of Aloft: the real `aloft-hub` and `aloft-agent` binaries, talking over
//! a loopback link that cuts, stalls, slows and half-opens like the glider's Starlink link.
//!
//! # Layout
//!
//! - [`link`]: the link simulator (a fault-injecting TCP forwarder) and its scripts; the
//!   sync benchmark uses it too, to count the bytes that cross.
//! - [`system`]: starts and stops the real binaries in temporary directories, waits for
//!   events with deadlines, and compares what the hub holds with what the agent's store
//!   holds.
//!
//! The scenarios live in `tests/*.rs`. They find the binaries next to the test executable
//! (cargo and nextest build every workspace binary before running tests) and never run
//! cargo themselves.

pub mod link;
pub mod system;
