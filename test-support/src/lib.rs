//! What the tests of several Aloft crates share, as a dev-dependency.
//!
//! # Layout
//!
//! - [`mounts`]: real filesystems mounted for a test, a small tmpfs (a disk that fills) and
//!   a read-only bind mount (a store on a write-protected card), unmounted when dropped.
//! - [`firmware`]: the detector front end's firmware image, built once, running in
//!   `qemu-system-arm -machine lm3s6965evb` with its UART on a pseudo-terminal.
//! - [`flight`]: the simulated flight to 12 km as an agent's record stream, for export
//!   tests and benchmarks.
//! - [`mosquitto`]: a real Mosquitto broker on a free loopback port (TLS, passwords, ACL,
//!   restart, SIGSTOP) and the real `mosquitto_sub`/`mosquitto_pub` clients.
//! - [`python`]: the Python interpreter holding the dataset readers, for read-back tests.
//! - [`serial_relay`]: a relay between a device's terminal and a pty a driver opens
//!   instead, inserting bytes on the line (noise, requests the driver never sends).
//!
//! Only what more than one crate's tests use lives here; a crate's own harness stays in its
//! `tests/common/`.

pub mod firmware;
pub mod flight;
pub mod mosquitto;
pub mod mounts;
pub mod python;
pub mod serial_relay;
