//! GNSS receivers: NMEA 0183 and u-blox UBX on one serial port.
//!
//! # Layout
//!
//! - [`nmea`]: zero-allocation NMEA 0183 sentence parser (GGA, RMC, GSA, GSV, VTG, GLL, GNS, ZDA).
//! - [`fix`]: the [`Fix`] type, and assembly of one fix per epoch from NMEA sentences.
//! - [`ubx`]: UBX frame codec (Fletcher checksum) and the messages Aloft uses.
//! - [`nav`]: one fix per epoch from UBX: NAV-PVT, the legacy NAV-SOL/POSLLH/VELNED/TIMEUTC
//!   set, HNR-PVT.
//! - [`framer`]: demultiplexes the interleaved NMEA and UBX byte stream of one port.
//! - [`ublox`]: configures and verifies the receiver's dynamic model (Airborne <2g).
//! - [`sim`]: a u-blox receiver simulator that speaks both protocols.

pub mod fix;
pub mod framer;
pub mod nav;
pub mod nmea;
pub mod sim;
pub mod ublox;
pub mod ubx;

pub use fix::{Fix, FixAssembler, GnssTime};
