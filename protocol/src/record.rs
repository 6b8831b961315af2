//! The agent's stream: every record its store accepts, in sequence-number order.
//!
//! Invariants (docs/design.md invariants 1, 3 and 8):
//! - Within a [`StoreEpoch`], every sequence number from the first to the newest is either
//!   held by a record or covered by the `covers` range of a [`Gap`] record: whatever is lost
//!   (dropped or decimated by the full-store policy, a corrupt region skipped at open) is
//!   said by a gap record, never silently.
//! - A record's content never changes once it has a sequence number.
//! - Readings carry monotonic time; a [`Boot`] record names the boot their monotonic clock
//!   belongs to (readings follow the newest boot record before them), and
//!   [`TimeCorrelation`] records map that clock to UTC once it is known.

use alloc::string::String;
use alloc::vec::Vec;

use serde::{Deserialize, Serialize};

use crate::{Reading, SensorDescriptor, SensorId, TimeSource, Timestamp};

/// A store's identity: random, made when the store is created, so that a replaced SD card
/// starts new sequence numbers instead of colliding with old ones.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub struct StoreEpoch(pub [u8; 16]);

/// One boot of the agent's board: random, made at every start of the agent.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub struct BootId(pub [u8; 16]);

/// One record of the stream.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[non_exhaustive]
pub enum Record {
    /// One sample.
    Reading(Reading),
    /// Records or readings that were lost, and why.
    Gap(Gap),
    /// The agent started: the monotonic clock of the readings that follow is this boot's.
    Boot(Boot),
    /// A moment known on both the monotonic clock and UTC.
    TimeCorrelation(TimeCorrelation),
    /// What a sensor is, recorded at every (re)start of the sensor.
    Descriptor(DescriptorRecord),
    /// A sensor changed state (started, degraded, failed, restarting, ...).
    Status(StatusRecord),
    /// A record of a kind added after these six, by its kind code, with its body
    /// length-prefixed: a decoder that does not know the kind keeps it whole, so a hub
    /// older than the agent stores and dumps it as it came (docs/protocol.md, "Evolution").
    /// New record kinds only ever come this way, never as variants after this one.
    Extension(ExtensionRecord),
}

/// A record of a kind added after the first six: what it is ([`kind`](Self::kind)) and its
/// postcard encoding ([`body`](Self::body)), which only decoders of that kind read.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ExtensionRecord {
    /// The record kind's stable code; never reused.
    pub kind: u16,
    /// The record, postcard-encoded by the version that added the kind.
    pub body: Vec<u8>,
}

/// Why something was lost.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[non_exhaustive]
pub enum GapReason {
    /// The store was full and its policy dropped the oldest unsent records.
    DroppedOldest,
    /// The store was full and its policy thinned the oldest unsent backlog: of the covered
    /// range, every record is either still held or lost to this gap.
    Decimated,
    /// The store was full and its policy refused new readings (they never got numbers).
    RejectedNew,
    /// A region of a store file failed its checksum at open and was skipped.
    CorruptRegion,
    /// The agent or board stopped without a clean shutdown: what it had accepted but not
    /// yet made durable (at most one flush window) is gone.
    Crash,
    /// A sensor's data could not be read for a while (its readings never existed).
    SensorOutage,
}

/// Records or readings lost, and why.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Gap {
    /// Why.
    pub reason: GapReason,
    /// Sequence numbers (inclusive) that this gap accounts for, when the lost records had
    /// numbers; `None` when they never got any (rejected, lost in a crash before commit).
    pub covers: Option<(u64, u64)>,
    /// How many readings were lost, when known.
    pub readings: Option<u64>,
    /// The sensor concerned, when the loss is one sensor's.
    pub sensor: Option<SensorId>,
    /// Time of the first and last lost reading, when known.
    pub span: Option<(Timestamp, Timestamp)>,
}

/// The start of one boot of the agent.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Boot {
    /// This boot.
    pub boot_id: BootId,
    /// Monotonic time when the agent started, ns.
    pub mono_ns: u64,
    /// UTC then, if the system clock was trusted.
    pub utc_ns: Option<i64>,
    /// The agent's version (`CARGO_PKG_VERSION`).
    pub agent_version: String,
}

/// A moment known on both clocks: maps a boot's monotonic time to UTC.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct TimeCorrelation {
    /// The boot whose monotonic clock `mono_ns` is on.
    pub boot_id: BootId,
    /// Monotonic time, ns.
    pub mono_ns: u64,
    /// UTC at that moment, ns since the Unix epoch.
    pub utc_ns: i64,
    /// Where the UTC came from (GNSS, a trusted system clock).
    pub source: TimeSource,
    /// Uncertainty of `utc_ns`, ns, when known (GNSS time accuracy, serial latency).
    pub uncertainty_ns: Option<u64>,
}

/// What a sensor is, recorded at its (re)start.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct DescriptorRecord {
    /// The sensor's number in this node's readings.
    pub sensor: SensorId,
    /// The sensor's name in the node's config (`gps`, `static`, `outside-air`).
    pub name: String,
    /// The configured kind (`ublox`, `bme280`, `cosmicwatch`, ...).
    pub kind: String,
    /// When it (re)started.
    pub time: Timestamp,
    /// What the device said it is.
    pub descriptor: SensorDescriptor,
}

/// The state of a supervised sensor.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[non_exhaustive]
pub enum SensorState {
    /// Opening and initialising the device.
    Starting,
    /// Producing readings.
    Running,
    /// Producing readings, with errors (bad lines, CRC failures, a stale value).
    Degraded,
    /// Not producing readings; a restart is scheduled.
    Failed,
    /// Being restarted (by backoff or by an operator).
    Restarting,
    /// Switched off by config or desired state.
    Disabled,
}

/// A sensor's state change.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct StatusRecord {
    /// Which sensor.
    pub sensor: SensorId,
    /// Its new state.
    pub state: SensorState,
    /// Why, in words an operator reads (`port /dev/ttyUSB0 vanished`, `NACK at 0x76`).
    pub reason: String,
    /// Restarts of this sensor since the agent started.
    pub restarts: u32,
    /// When.
    pub time: Timestamp,
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{Quality, Quantity};

    #[test]
    fn every_record_kind_round_trips_through_postcard() {
        let t = Timestamp::monotonic(5);
        let records = [
            Record::Reading(Reading {
                sensor: SensorId(1),
                quantity: Quantity::AirPressure,
                time: t,
                value: 19_400.0,
                quality: Quality::GOOD,
            }),
            Record::Gap(Gap {
                reason: GapReason::Decimated,
                covers: Some((10, 20)),
                readings: Some(5),
                sensor: None,
                span: Some((t, t)),
            }),
            Record::Boot(Boot {
                boot_id: BootId([7; 16]),
                mono_ns: 1,
                utc_ns: None,
                agent_version: "0.1.0".into(),
            }),
            Record::TimeCorrelation(TimeCorrelation {
                boot_id: BootId([7; 16]),
                mono_ns: 9,
                utc_ns: 1_780_000_000_000_000_000,
                source: TimeSource::Gnss,
                uncertainty_ns: Some(1_000_000),
            }),
            Record::Descriptor(DescriptorRecord {
                sensor: SensorId(0),
                name: "gps".into(),
                kind: "ublox".into(),
                time: t,
                descriptor: SensorDescriptor::new("u-blox NEO-M8N"),
            }),
            Record::Status(StatusRecord {
                sensor: SensorId(0),
                state: SensorState::Restarting,
                reason: "operator".into(),
                restarts: 1,
                time: t,
            }),
            Record::Extension(ExtensionRecord {
                kind: 3,
                body: alloc::vec![1, 2, 3],
            }),
        ];
        for r in records {
            let bytes = postcard::to_allocvec(&r).unwrap();
            assert_eq!(postcard::from_bytes::<Record>(&bytes).unwrap(), r);
        }
    }

    #[test]
    fn a_reading_record_is_compact() {
        let r = Record::Reading(Reading {
            sensor: SensorId(3),
            quantity: Quantity::AirTemperature,
            time: Timestamp::monotonic(3_600_000_000_000),
            value: 223.15,
            quality: Quality::OUT_OF_RANGE,
        });
        // tag 1 + sensor 1 + quantity 1 + mono 6 + utc 1 + source 1 + f64 8 + quality 1.
        assert!(postcard::to_allocvec(&r).unwrap().len() <= 22);
    }
}
