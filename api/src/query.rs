//! The rows of the stream queries: [`Reading`] (one NDJSON line of
//! `GET /api/v1/nodes/{node}/readings`), [`Gap`] (an item of a `GapList`) and [`LogLine`]
//! (an item of a `LogList`).
//!
//! Invariant: a reading's row keeps the snake_case names of the readings stream
//! (`utc_ns`, `time_source`), which scripts already parse; everything else is camelCase.

use serde::{Deserialize, Serialize};

/// One stored reading.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct Reading {
    /// The sensor's name.
    pub sensor: String,
    /// Quantity name.
    pub quantity: String,
    /// Its unit (`None`: a quantity this hub has no name for, shown by its code).
    pub unit: Option<String>,
    /// The value (`None`: not a number).
    pub value: Option<f64>,
    /// Its UTC, RFC 3339 (`None`: the hub has no correlation for its boot yet).
    pub utc: Option<String>,
    /// The same UTC, ns since 1970.
    pub utc_ns: Option<i64>,
    /// The agent's monotonic time, ns.
    pub mono_ns: u64,
    /// `gnss`, `system_clock`, `reconstructed` or `monotonic`.
    pub time_source: String,
    /// Its quality flags; empty when good.
    pub quality: Vec<String>,
    /// Its store epoch, 32 hex digits.
    pub epoch: String,
    /// Its number in the epoch.
    pub seq: u64,
}

/// A loss in a node's stream.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "lowercase")]
pub enum Gap {
    /// A gap record of the agent: data lost on the node.
    Recorded {
        /// Its store epoch.
        epoch: String,
        /// The gap record's number.
        seq: u64,
        /// `DroppedOldest`, `Decimated`, `RejectedNew`, `CorruptRegion`, `Crash` or
        /// `SensorOutage`.
        reason: String,
        /// The numbers it covers, when known.
        covers: Option<SeqRange>,
        /// Readings lost, when known.
        readings: Option<u64>,
        /// The sensor's number, when one sensor's.
        sensor: Option<u16>,
        /// The time span lost, when known.
        span: Option<TimeSpan>,
    },
    /// Numbers the hub has not received, between its watermark and what it received beyond.
    Unsynced {
        /// The store epoch.
        epoch: String,
        /// The numbers missing.
        covers: SeqRange,
    },
}

/// An inclusive range of record numbers.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct SeqRange {
    /// The first.
    pub first: u64,
    /// The last.
    pub last: u64,
}

/// The time a gap covers.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct TimeSpan {
    /// Start on the agent's monotonic clock, ns.
    pub from_mono_ns: u64,
    /// Start, UTC.
    pub from: Option<String>,
    /// End on the agent's monotonic clock, ns.
    pub to_mono_ns: u64,
    /// End, UTC.
    pub to: Option<String>,
}

/// One line of an agent's log.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct LogLine {
    /// RFC 3339 UTC, or `+S.mmms` on the agent's monotonic clock.
    pub time: String,
    /// `ERROR`, `WARN`, `INFO`, ...
    pub level: String,
    /// The sensor it is about.
    pub sensor: Option<String>,
    /// The message.
    pub message: String,
}
