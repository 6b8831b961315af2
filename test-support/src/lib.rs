//! What the tests of several Aloft crates share, as a dev-dependency.
//!
//! # Layout
//!
//! - [`mounts`]: real filesystems mounted for a test, a small tmpfs (a disk that fills) and
//!   a read-only bind mount (a store on a write-protected card), unmounted when dropped.
//! - [`flight`]: the simulated flight to 12 km as an agent's record stream, for export
//!   tests and benchmarks.
//! - [`mosquitto`]: a real Mosquitto broker on a free loopback port (TLS, passwords, ACL,
//!   restart, SIGSTOP) and the real `mosquitto_sub`/`mosquitto_pub` clients.
//! - [`python`]: the Python interpreter holding the dataset readers, for read-back tests.
//!
//! Only what more than one crate's tests use lives here; a crate's own harness stays in its
//! `tests/common/`.

pub mod flight;
pub mod mosquitto;
pub mod mounts;
pub mod python;
