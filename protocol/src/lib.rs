//! Wire types shared by Aloft's firmware, agent and hub.
//!
//! # Layout
//!
//! - [`name`]: the one grammar of node and sensor names (a DNS-1123 label), the same
//!   in the agent's config, the hub's API and the protocol.
//! - [`quantity`]: the one vocabulary of measured quantities (name, SI unit, CF standard
//!   name). The agent, hub and dataset exports all speak it.
//! - [`reading`]: one sample of one quantity ([`Reading`]), its [`Timestamp`] and its
//!   [`Quality`] flags.
//! - [`descriptor`]: what a sensor is (device, firmware, serial number, calibration, GNSS
//!   dynamic model), recorded at every sensor (re)start.
//! - [`record`]: the agent's stream: readings, gaps, boots, time correlations, descriptors
//!   and sensor status, each with the next sequence number of its store epoch.
//! - [`power`]: the power step the agent samples under, as recorded in the stream and
//!   reported on the live lane.
//! - [`detector`] (feature `detector`): the serial protocol of Aloft's own detector front
//!   end (firmware/): its messages and their COBS + CRC-32 framing, without an allocator.
//! - [`sync`] (feature `sync`): the edge-hub protocol's messages and batch codec.
//!
//! Everything here is `no_std` and free of I/O. Types are encoded with postcard; enum
//! variants are only ever appended, never reordered, because postcard encodes the
//! variant index. How the wire grows without breaking older peers (quantity codes,
//! extension records, fields added at the end, the version in the hello and the welcome)
//! is the rule in `sync::evolution` and docs/protocol.md, "Evolution".
#![no_std]

#[cfg(feature = "alloc")]
extern crate alloc;

#[cfg(feature = "alloc")]
pub mod descriptor;
#[cfg(feature = "detector")]
pub mod detector;
pub mod name;
#[cfg(feature = "alloc")]
pub mod power;
pub mod quantity;
pub mod reading;
#[cfg(feature = "alloc")]
pub mod record;
#[cfg(feature = "sync")]
pub mod sync;

#[cfg(feature = "alloc")]
pub use descriptor::{DeviceParameter, DynamicModel, ParameterValue, SensorDescriptor};
pub use name::{MAX_NAME_LEN, NAME_RULE, NameError, check_name, is_valid_name};
#[cfg(feature = "alloc")]
pub use power::{POWER_STEP_RECORD_KIND, PowerEffect, PowerReport, PowerStepRecord};
pub use quantity::Quantity;
pub use reading::{Quality, Reading, SensorId, TimeSource, Timestamp};
#[cfg(feature = "alloc")]
pub use record::{
    Boot, BootId, DescriptorRecord, ExtensionRecord, Gap, GapReason, Record, SensorState,
    StatusRecord, StoreEpoch, TimeCorrelation,
};
