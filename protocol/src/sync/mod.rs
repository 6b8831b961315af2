//! The edge-hub sync protocol: the messages `aloft-agent` and `aloft-hub` exchange over one
//! WebSocket (binary messages over TLS), each one postcard-encoded [`Uplink`] (agent to hub)
//! or [`Downlink`] (hub to agent). docs/protocol.md is the full specification.
//!
//! Invariants (docs/design.md invariants 1-4 and 8):
//! - Only records durable in the agent's store travel in a [`Batch`]. A batch covers the
//!   sequence range `first..=last` of one store epoch: a number of that range that is not
//!   in the batch does not exist in the store (the full-store policy removed it; a gap
//!   record, in this batch or a later one, says so). That is what lets the hub's contiguous
//!   watermark pass over holes.
//! - The hub acks ([`Downlink::Ack`]) its contiguous watermark per (node, epoch) only after
//!   it has persisted everything up to it; it ignores numbers it already holds, so a resend
//!   is harmless.
//! - The live lane ([`LiveUpdate`]) carries copies of the newest values and sensor states:
//!   it is not part of the stream, has no sequence numbers, and may be lost.
//! - Desired state is level-triggered (a generation per sensor, never expires); commands are
//!   edge-triggered (an id, an expiry, applied at most once, acked when received and
//!   reported when done).
//! - Enum variants are only ever appended, never reordered: postcard encodes the variant
//!   index. [`Uplink::Hello`] is variant 0 and its first field is the protocol version, so a
//!   peer of any version can read the version of a hello ([`hello_version`]).
//! - Peers of different versions talk by the rule of [`evolution`]: each end sends only
//!   what the other's version decodes, fields are only added at the end of a message, and
//!   unknown quantity codes and record kinds are kept, not refused.

pub mod batch;
pub mod evolution;
pub mod fuzzing;

use alloc::string::String;
use alloc::vec::Vec;

use serde::{Deserialize, Serialize};

use crate::{BootId, Reading, SensorState, StoreEpoch, Timestamp};
pub use batch::{BatchEncoding, BatchError, BatchLimits};
pub use evolution::{OLDEST_PROTOCOL_VERSION, PROTOCOL_VERSION};

/// The largest WebSocket message either side accepts, bytes (a batch's compressed payload
/// included). Larger messages are refused and the connection closed.
pub const MAX_MESSAGE_BYTES: usize = 1 << 20;

/// Most sensors one [`DesiredSpec`] names. With names of at most
/// [`crate::MAX_NAME_LEN`] characters a whole spec stays far under [`MAX_MESSAGE_BYTES`]
/// (about 82 bytes an entry at worst, 84 KiB in all), so the hub never has to split one,
/// and the agent never has to refuse one. The hub refuses the write that would pass it.
pub const MAX_DESIRED_SENSORS: usize = 1024;

/// Most bytes of free text (a refusal's message, a command id) in a downlink message;
/// longer text is cut at a character boundary ([`bounded_text`]).
pub const MAX_TEXT_BYTES: usize = 1024;

/// [`LogBatch::request`] of log lines the agent sends without being asked: problems the
/// hub should see, such as a downlink message the agent refused. Requests the hub makes
/// are numbered from 1; a hub that predates this drops such a batch as an answer nobody
/// waits for.
pub const UNSOLICITED_LOGS: u64 = 0;

/// `text` cut to at most `max` bytes at a character boundary, with `…` marking the cut.
pub fn bounded_text(text: &str, max: usize) -> String {
    if text.len() <= max {
        return String::from(text);
    }
    let mark = "…";
    let mut end = max.saturating_sub(mark.len());
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    let mut out = String::from(&text[..end]);
    out.push_str(mark);
    out
}

/// The WebSocket path nodes connect to; the node's token travels in the upgrade request's
/// `Authorization: Bearer <token>` header.
pub const NODE_PATH: &str = "/v1/nodes/connect";

/// A message from the agent to the hub.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[non_exhaustive]
pub enum Uplink {
    /// First message of every session.
    Hello(Hello),
    /// Durable records of the store, oldest first.
    Batch(Batch),
    /// The newest values and sensor states (not part of the stream).
    Live(LiveUpdate),
    /// Keepalive; the peer answers [`Downlink::Pong`] with the same nonce.
    Ping {
        /// Echoed back.
        nonce: u64,
    },
    /// Answer to [`Downlink::Ping`].
    Pong {
        /// The ping's nonce.
        nonce: u64,
    },
    /// The agent has durably recorded a command: the hub marks it delivered and stops
    /// resending it.
    CommandAck {
        /// The command's id.
        id: String,
    },
    /// A command came to its end on the agent.
    CommandResult {
        /// The command's id.
        id: String,
        /// How it ended.
        outcome: CommandOutcome,
    },
    /// The generations of desired state the agent has applied, per sensor.
    Observed(Observed),
    /// Recent log lines, answering [`Downlink::FetchLogs`].
    Logs(LogBatch),
    /// The node itself between sensor reports, on the live lane (not part of the stream; may
    /// be lost). Added in version 2: sent only in a session of version 2 or later
    /// ([`evolution::HEALTH_VERSION`]).
    Health(NodeHealth),
}

/// A message from the hub to the agent.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[non_exhaustive]
pub enum Downlink {
    /// Answer to a hello: where the agent resumes.
    Welcome(Welcome),
    /// The hub's contiguous watermark for an epoch: every number up to `watermark`
    /// (inclusive) is persisted at the hub or known not to exist.
    Ack {
        /// The store epoch.
        epoch: StoreEpoch,
        /// Highest number of the contiguous prefix the hub holds.
        watermark: u64,
    },
    /// The hub refuses the session (sent just before it closes the connection).
    Refused {
        /// Why, for programs.
        code: RefusalCode,
        /// Why, for people.
        message: String,
    },
    /// Keepalive; the agent answers [`Uplink::Pong`].
    Ping {
        /// Echoed back.
        nonce: u64,
    },
    /// Answer to [`Uplink::Ping`].
    Pong {
        /// The ping's nonce.
        nonce: u64,
    },
    /// The node's desired sensor state, whole (level-triggered): sent after every welcome
    /// and whenever it changes.
    Desired(DesiredSpec),
    /// A command to apply once. Resent after every welcome until the agent acks it.
    Command(Command),
    /// Asks for recent agent log lines.
    FetchLogs {
        /// Echoed in [`LogBatch::request`].
        request: u64,
        /// Only lines about this sensor, when given.
        sensor: Option<String>,
        /// At most this many lines, newest last.
        max_lines: u32,
    },
}

/// First message of a session.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Hello {
    /// [`PROTOCOL_VERSION`] of the agent, or an older version it falls back to for a hub
    /// that refused it. Keep first.
    pub protocol_version: u16,
    /// The node's name; must be the token's node.
    pub node: String,
    /// The agent's store epoch.
    pub epoch: StoreEpoch,
    /// This boot of the agent.
    pub boot: BootId,
    /// `CARGO_PKG_VERSION` of the agent.
    pub agent_version: String,
    /// The first number the agent's store has not seen acked.
    pub first_unacked: u64,
    /// One past the agent's newest durable record.
    pub durable_end: u64,
}

/// The hub's answer to a hello.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Welcome {
    /// The version of the session: the one the hello offered, which the hub speaks. Both
    /// ends send nothing this version cannot decode ([`evolution`]).
    pub protocol_version: u16,
    /// The epoch of the hello.
    pub epoch: StoreEpoch,
    /// The hub's contiguous watermark for that epoch; `None` when it holds nothing of it
    /// (a new epoch: a replaced SD card is synced from its start).
    pub watermark: Option<u64>,
    /// The hub's clock, ns since the Unix epoch, UTC.
    pub server_utc_ns: i64,
}

/// Durable records of one epoch.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Batch {
    /// The store epoch.
    pub epoch: StoreEpoch,
    /// First number the batch covers.
    pub first: u64,
    /// Last number the batch covers (inclusive); numbers of `first..=last` missing from the
    /// payload do not exist in the store.
    pub last: u64,
    /// How `payload` is encoded.
    pub encoding: BatchEncoding,
    /// The records with their numbers ([`batch::encode_batch`]).
    pub payload: Vec<u8>,
}

/// Why a hub refused a session.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[non_exhaustive]
pub enum RefusalCode {
    /// The hello's protocol version is not spoken here (older than the oldest this hub
    /// welcomes; a version 1 hub refuses every other version).
    ProtocolVersion,
    /// The hello names another node than the token's.
    WrongNode,
    /// A message could not be decoded.
    Malformed,
    /// A message or a batch's decoded size passed its cap.
    TooLarge,
    /// A message that is not allowed now (a batch before the hello, a second hello).
    Unexpected,
    /// A newer session of the same node replaced this one.
    Replaced,
    /// The hub could not persist (its disk); try again later.
    Unavailable,
}

/// The newest values and states, sent first on every connection and then periodically.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct LiveUpdate {
    /// When the agent made this update.
    pub time: Timestamp,
    /// The newest reading of every (sensor, quantity) that changed since the last update.
    pub readings: Vec<Reading>,
    /// Every sensor's state (all of them, each update).
    pub sensors: Vec<SensorReport>,
    /// The store's unsent backlog.
    pub backlog: BacklogReport,
}

/// One sensor as the agent sees it now.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SensorReport {
    /// The sensor's number in readings.
    pub sensor: crate::SensorId,
    /// Its name in the config file.
    pub name: String,
    /// Its configured kind (`ublox`, `bme280`, ...).
    pub kind: String,
    /// Its state.
    pub state: SensorState,
    /// Why it is in that state.
    pub reason: String,
    /// Restarts since the agent started.
    pub restarts: u32,
    /// When it last restarted, and why.
    pub last_restart: Option<(Timestamp, String)>,
    /// The last error seen, if any.
    pub last_error: Option<String>,
    /// Sampling interval in effect, ms (`None` for devices that send at their own rate).
    pub interval_ms: Option<u32>,
    /// Whether it is enabled.
    pub enabled: bool,
    /// Readings taken since the agent started.
    pub readings: u64,
}

/// The node itself, as the agent sees it now: what the hub, alerts and a console need to
/// know between sensor reports. Sent on connect and with every live update.
///
/// Fields are added at the end only (docs/protocol.md, section 8), and none is an enum this
/// version would have to extend: the full-store policy is a name, the dynamic model a
/// u-blox code, so a newer agent's value reaches an older hub as it is.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct NodeHealth {
    /// When the agent took it; its `source` is what a reading taken now gets (UTC from a
    /// trusted system clock, from GNSS, or none yet).
    pub time: Timestamp,
    /// Whether the agent trusts its system clock (NTP-synchronised or set from GNSS);
    /// `None` when it cannot tell.
    pub clock_trusted: Option<bool>,
    /// Bytes of records the store holds on disk.
    pub store_bytes: u64,
    /// The most bytes of records the store keeps before its full policy applies.
    pub store_max_bytes: u64,
    /// What the store does when full, as the agent's config spells it (`drop-oldest`,
    /// `decimate`, `reject-new`).
    pub store_policy: String,
    /// Per GNSS receiver, the dynamic model it confirmed at its latest (re)start, as the
    /// u-blox code ([`crate::DynamicModel::code`]; 7 is airborne < 2 g).
    pub gnss_models: Vec<GnssModel>,
    /// Added in version 4 ([`evolution::POWER_VERSION`]): the power step in force, when the
    /// agent's config has a power policy.
    pub power: Option<crate::PowerReport>,
}

/// The dynamic model a GNSS receiver has in force.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct GnssModel {
    /// The receiver.
    pub sensor: crate::SensorId,
    /// Its u-blox dynamic model code ([`crate::DynamicModel::from_code`]).
    pub code: u8,
}

/// The store's unsent backlog.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct BacklogReport {
    /// Durable records not yet acked.
    pub records: u64,
    /// Their bytes in the store.
    pub bytes: u64,
    /// Age of the oldest unsent record, s, when known.
    pub oldest_age_s: Option<f64>,
}

/// Desired state of a node's sensors.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct DesiredSpec {
    /// One entry per sensor the hub has a spec for.
    pub sensors: Vec<DesiredSensorSpec>,
    /// Added in version 3 ([`evolution::TUNABLES_VERSION`]): the tunables the hub wants of
    /// each sensor, keyed by sensor name like `sensors`; a sensor it names no tunables of
    /// is left out. Never sent in an older session (an older agent would not apply them).
    pub tunables: Vec<SensorTunables>,
    /// Added in version 4 ([`evolution::POWER_VERSION`]): the sensors the operator exempts
    /// from the agent's power steps, by name (their desired state applies as it is, whatever
    /// the battery). Never sent in an older session.
    pub power_overrides: Vec<String>,
}

/// The tunables of one sensor: the settings of its driver that its kind declares
/// (docs/design.md, "Tunables"), in a desired spec what the hub wants, in an observed
/// state what is in force.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SensorTunables {
    /// The sensor's name.
    pub name: String,
    /// Key and value, sorted by key, each key once.
    pub tunables: Vec<(String, TunableValue)>,
}

/// Most tunables of one sensor.
pub const MAX_TUNABLES: usize = 8;

/// Most bytes of a tunable's key.
pub const MAX_TUNABLE_KEY_BYTES: usize = 32;

/// Most bytes of a tunable's text value.
pub const MAX_TUNABLE_TEXT_BYTES: usize = 32;

/// The value of a tunable: a switch, a whole number or a name. Every setting a driver has
/// is one of these (a register code, a count, a factor, a model's name); a fractional
/// setting is written as a whole number of a finer unit (Pa, ms). Without floats, values
/// compare exactly, so "the same set" is the same bytes at both ends and a rewrite of an
/// unchanged set changes nothing. The set is closed, so unlike an enum of choices this enum
/// never grows a variant; a choice among names (a GNSS dynamic model) travels as
/// [`TunableValue::Text`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum TunableValue {
    /// A switch.
    Bool(bool),
    /// A whole number (an oversampling factor, a pressure in Pa).
    Integer(i64),
    /// A name (at most [`MAX_TUNABLE_TEXT_BYTES`]).
    Text(String),
}

impl TunableValue {
    /// What kind of value it is, for a refusal's reason.
    pub fn type_name(&self) -> &'static str {
        match self {
            TunableValue::Bool(_) => "a bool",
            TunableValue::Integer(_) => "an integer",
            TunableValue::Text(_) => "a string",
        }
    }
}

impl core::fmt::Display for TunableValue {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        match self {
            TunableValue::Bool(b) => write!(f, "{b}"),
            TunableValue::Integer(i) => write!(f, "{i}"),
            TunableValue::Text(t) => write!(f, "{t:?}"),
        }
    }
}

/// Why a set of tunables is out of the protocol's bounds.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum TunablesError {
    /// More than [`MAX_TUNABLES`] keys.
    #[error("{count} tunables; at most {MAX_TUNABLES} per sensor")]
    TooMany {
        /// How many.
        count: usize,
    },
    /// A key empty, too long, or not made of `a-z`, `0-9` and `_`.
    #[error("tunable key {0:?} is not 1 to {MAX_TUNABLE_KEY_BYTES} of a-z, 0-9 and _")]
    Key(String),
    /// A text value too long.
    #[error("tunable {key}: text of {len} bytes; at most {MAX_TUNABLE_TEXT_BYTES}")]
    TextTooLong {
        /// The key.
        key: String,
        /// Its length.
        len: usize,
    },
}

/// Checks the protocol's bounds of one sensor's tunables: count, key shape and length,
/// text length. What a sensor's kind accepts is the agent's to check.
pub fn check_tunables<'a>(
    tunables: impl ExactSizeIterator<Item = (&'a str, &'a TunableValue)>,
) -> Result<(), TunablesError> {
    if tunables.len() > MAX_TUNABLES {
        return Err(TunablesError::TooMany {
            count: tunables.len(),
        });
    }
    for (key, value) in tunables {
        if key.is_empty()
            || key.len() > MAX_TUNABLE_KEY_BYTES
            || !key
                .bytes()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_')
        {
            return Err(TunablesError::Key(
                key.chars().take(MAX_TUNABLE_KEY_BYTES).collect(),
            ));
        }
        if let TunableValue::Text(t) = value
            && t.len() > MAX_TUNABLE_TEXT_BYTES
        {
            return Err(TunablesError::TextTooLong {
                key: String::from(key),
                len: t.len(),
            });
        }
    }
    Ok(())
}

/// What the hub wants of one sensor: only what may change remotely (invariant 5).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct DesiredSensorSpec {
    /// The sensor's name in the node's config file.
    pub name: String,
    /// Bumped by the hub at every change of this spec.
    pub generation: u64,
    /// Sampling interval, ms, when set.
    pub interval_ms: Option<u32>,
    /// Whether the sensor runs, when set.
    pub enabled: Option<bool>,
}

/// What the agent applied of the desired state.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Observed {
    /// Per sensor.
    pub sensors: Vec<ObservedSensor>,
    /// Added in version 3 ([`evolution::TUNABLES_VERSION`]): the tunables in force of each
    /// sensor `sensors` names that has any, keyed by sensor name. A refused set leaves the
    /// previous one in force, and that is what this says.
    pub tunables: Vec<SensorTunables>,
}

/// The generation of one sensor's spec the agent has applied.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ObservedSensor {
    /// The sensor's name.
    pub name: String,
    /// The generation applied (or refused: then `refused` says why).
    pub observed_generation: u64,
    /// Why (part of) the spec could not be applied (an unknown sensor, an interval below
    /// what the part can do, a tunable its kind does not accept).
    pub refused: Option<String>,
}

/// A command, edge-triggered.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Command {
    /// Unique at the hub; the agent remembers the ids it applied.
    pub id: String,
    /// After this, UTC ns, the agent does not apply it (reports it expired).
    pub expires_utc_ns: i64,
    /// What to do.
    pub action: CommandAction,
}

/// What a command does.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[non_exhaustive]
pub enum CommandAction {
    /// Restart a sensor: soft (close, reopen, re-initialise) or hard (power-cycle its power
    /// line first).
    RestartSensor {
        /// The sensor's name.
        sensor: String,
        /// Power-cycle first.
        hard: bool,
    },
}

/// How a command ended on the agent.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[non_exhaustive]
pub enum CommandOutcome {
    /// Done.
    Succeeded {
        /// What happened, for the operator.
        message: String,
    },
    /// Not done, or not completely.
    Failed {
        /// Why (including "interrupted by an agent restart").
        message: String,
    },
    /// Arrived after its expiry; not applied.
    Expired,
}

/// Recent log lines.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct LogBatch {
    /// The [`Downlink::FetchLogs`] request this answers.
    pub request: u64,
    /// Oldest first.
    pub lines: Vec<LogLine>,
}

/// One log line of the agent.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct LogLine {
    /// When.
    pub time: Timestamp,
    /// `ERROR`, `WARN`, `INFO`, `DEBUG`, `TRACE`.
    pub level: String,
    /// The sensor it is about, when it is about one.
    pub sensor: Option<String>,
    /// The formatted line (message and fields).
    pub message: String,
}

/// Why a message could not be decoded.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum DecodeError {
    /// Larger than [`MAX_MESSAGE_BYTES`].
    #[error("message of {size} bytes is over the {max}-byte cap")]
    TooLarge {
        /// Its size.
        size: usize,
        /// The cap.
        max: usize,
    },
    /// Not a valid message of this protocol version.
    #[error("malformed message: {0}")]
    Malformed(postcard::Error),
}

macro_rules! codec {
    ($ty:ty) => {
        impl $ty {
            /// Encodes for one binary WebSocket message.
            pub fn encode(&self) -> Vec<u8> {
                // Serializing these types into a Vec cannot fail: no maps, no unsized
                // sequences, no custom serializers.
                postcard::to_allocvec(self).unwrap_or_default()
            }

            /// Decodes one binary WebSocket message of a peer of this build's version,
            /// refusing it above the size cap.
            pub fn decode(bytes: &[u8]) -> Result<Self, DecodeError> {
                evolution::decode_message(bytes, 0)
            }

            /// Decodes one binary WebSocket message of a peer of `peer_version`: the
            /// fields added since that version read as absent
            /// ([`evolution::decode_message`]).
            pub fn decode_from(bytes: &[u8], peer_version: u16) -> Result<Self, DecodeError> {
                evolution::decode_message(bytes, evolution::fields_added_since(peer_version))
            }
        }
    };
}
codec!(Uplink);
codec!(Downlink);

/// The protocol version of a message that starts like a hello (variant 0, then the
/// version), whatever the rest of it is; `None` if it is not a hello.
pub fn hello_version(bytes: &[u8]) -> Option<u16> {
    let (variant, rest) = postcard::take_from_bytes::<u32>(bytes).ok()?;
    if variant != 0 {
        return None;
    }
    postcard::take_from_bytes::<u16>(rest).ok().map(|(v, _)| v)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{Quality, Quantity, SensorId};
    use alloc::vec;

    fn hello() -> Hello {
        Hello {
            protocol_version: PROTOCOL_VERSION,
            node: "glider-1".into(),
            epoch: StoreEpoch([3; 16]),
            boot: BootId([4; 16]),
            agent_version: "0.1.0".into(),
            first_unacked: 10,
            durable_end: 20,
        }
    }

    #[test]
    fn every_message_round_trips() {
        let reading = Reading {
            sensor: SensorId(2),
            quantity: Quantity::AirPressure,
            time: Timestamp::monotonic(7),
            value: 19_400.5,
            quality: Quality::GOOD,
        };
        let uplinks = vec![
            Uplink::Hello(hello()),
            Uplink::Batch(Batch {
                epoch: StoreEpoch([3; 16]),
                first: 10,
                last: 12,
                encoding: BatchEncoding::Postcard,
                payload: vec![1, 2, 3],
            }),
            Uplink::Live(LiveUpdate {
                time: Timestamp::monotonic(9),
                readings: vec![reading],
                sensors: vec![SensorReport {
                    sensor: SensorId(2),
                    name: "static".into(),
                    kind: "ms5611".into(),
                    state: SensorState::Running,
                    reason: "ok".into(),
                    restarts: 1,
                    last_restart: Some((Timestamp::monotonic(3), "operator".into())),
                    last_error: None,
                    interval_ms: Some(100),
                    enabled: true,
                    readings: 99,
                }],
                backlog: BacklogReport {
                    records: 5,
                    bytes: 200,
                    oldest_age_s: Some(1.5),
                },
            }),
            Uplink::Ping { nonce: 1 },
            Uplink::Pong { nonce: 2 },
            Uplink::CommandAck { id: "c1".into() },
            Uplink::CommandResult {
                id: "c1".into(),
                outcome: CommandOutcome::Failed {
                    message: "interrupted by an agent restart".into(),
                },
            },
            Uplink::Observed(Observed {
                sensors: vec![ObservedSensor {
                    name: "static".into(),
                    observed_generation: 3,
                    refused: None,
                }],
                tunables: vec![SensorTunables {
                    name: "static".into(),
                    tunables: vec![("pressure_oversampling".into(), TunableValue::Integer(16))],
                }],
            }),
            Uplink::Logs(LogBatch {
                request: 4,
                lines: vec![LogLine {
                    time: Timestamp::monotonic(1),
                    level: "WARN".into(),
                    sensor: Some("gps".into()),
                    message: "stalled".into(),
                }],
            }),
            Uplink::Health(NodeHealth {
                time: Timestamp::monotonic(2),
                clock_trusted: Some(false),
                store_bytes: 4096,
                store_max_bytes: 1 << 30,
                store_policy: "decimate".into(),
                gnss_models: vec![GnssModel {
                    sensor: SensorId(0),
                    code: 7,
                }],
                power: Some(crate::PowerReport {
                    step: "economy".into(),
                    level: 1,
                    reason: "battery voltage 13.9 V below 14.0 V".into(),
                    since: Timestamp::monotonic(1),
                    upload_bytes_per_s: Some(50_000),
                    overridden: vec!["gps".into()],
                }),
            }),
        ];
        for message in uplinks {
            assert_eq!(Uplink::decode(&message.encode()), Ok(message));
        }
        let downlinks = vec![
            Downlink::Welcome(Welcome {
                protocol_version: PROTOCOL_VERSION,
                epoch: StoreEpoch([3; 16]),
                watermark: Some(9),
                server_utc_ns: 1_780_000_000_000_000_000,
            }),
            Downlink::Ack {
                epoch: StoreEpoch([3; 16]),
                watermark: 12,
            },
            Downlink::Refused {
                code: RefusalCode::WrongNode,
                message: "token is glider-2's".into(),
            },
            Downlink::Desired(DesiredSpec {
                sensors: vec![DesiredSensorSpec {
                    name: "static".into(),
                    generation: 2,
                    interval_ms: Some(200),
                    enabled: None,
                }],
                tunables: vec![SensorTunables {
                    name: "gps".into(),
                    tunables: vec![
                        (
                            "dynamic_model".into(),
                            TunableValue::Text("airborne4g".into()),
                        ),
                        ("nav_pvt".into(), TunableValue::Bool(true)),
                        ("offset_pa".into(), TunableValue::Integer(-50)),
                    ],
                }],
                power_overrides: vec!["gps".into()],
            }),
            Downlink::Command(Command {
                id: "c1".into(),
                expires_utc_ns: 5,
                action: CommandAction::RestartSensor {
                    sensor: "cosmic-ray".into(),
                    hard: true,
                },
            }),
            Downlink::FetchLogs {
                request: 4,
                sensor: None,
                max_lines: 100,
            },
        ];
        for message in downlinks {
            assert_eq!(Downlink::decode(&message.encode()), Ok(message));
        }
    }

    #[test]
    fn hello_version_is_readable_from_a_hello_of_another_version() {
        let mut future = hello();
        future.protocol_version = 9;
        let mut bytes = Uplink::Hello(future).encode();
        // A future hello may carry fields this build cannot decode.
        bytes.truncate(4);
        assert_eq!(hello_version(&bytes), Some(9));
        assert_eq!(hello_version(&Uplink::Ping { nonce: 1 }.encode()), None);
        assert_eq!(hello_version(&[]), None);
    }

    #[test]
    fn the_largest_desired_spec_the_hub_can_hold_fits_one_message() {
        let spec = DesiredSpec {
            sensors: (0..MAX_DESIRED_SENSORS)
                .map(|i| DesiredSensorSpec {
                    name: alloc::format!("{i:0>63}"),
                    generation: u64::MAX,
                    interval_ms: Some(u32::MAX),
                    enabled: Some(true),
                })
                .collect(),
            tunables: vec![],
            power_overrides: vec![],
        };
        let size = Downlink::Desired(spec).encode().len();
        assert!(size < MAX_MESSAGE_BYTES / 8, "{size} bytes");
    }

    #[test]
    fn the_largest_desired_spec_with_the_most_tunables_fits_one_message() {
        let name = |i: usize| alloc::format!("{i:0>63}");
        let spec = DesiredSpec {
            sensors: (0..MAX_DESIRED_SENSORS)
                .map(|i| DesiredSensorSpec {
                    name: name(i),
                    generation: u64::MAX,
                    interval_ms: Some(u32::MAX),
                    enabled: Some(true),
                })
                .collect(),
            tunables: (0..MAX_DESIRED_SENSORS)
                .map(|i| SensorTunables {
                    name: name(i),
                    tunables: (0..MAX_TUNABLES)
                        .map(|k| {
                            (
                                alloc::format!("{k:_>width$}", width = MAX_TUNABLE_KEY_BYTES),
                                TunableValue::Text("x".repeat(MAX_TUNABLE_TEXT_BYTES)),
                            )
                        })
                        .collect(),
                })
                .collect(),
            power_overrides: (0..MAX_DESIRED_SENSORS).map(name).collect(),
        };
        assert!(
            check_tunables(
                spec.tunables[0]
                    .tunables
                    .iter()
                    .map(|(k, v)| (k.as_str(), v))
            )
            .is_ok()
        );
        let size = Downlink::Desired(spec).encode().len();
        assert!(size < MAX_MESSAGE_BYTES, "{size} bytes");
    }

    proptest::proptest! {
        #[test]
        fn check_tunables_holds_every_bound(
            keys in proptest::collection::vec("[a-z_0-9A-Z. ]{0,40}", 0..12),
            text in "[a-z]{0,40}",
            number in proptest::num::i64::ANY,
        ) {
            let values: Vec<(String, TunableValue)> = keys
                .into_iter()
                .enumerate()
                .map(|(i, k)| (k, match i % 3 {
                    0 => TunableValue::Text(text.clone()),
                    1 => TunableValue::Integer(number),
                    _ => TunableValue::Integer(i as i64),
                }))
                .collect();
            let ok = check_tunables(values.iter().map(|(k, v)| (k.as_str(), v))).is_ok();
            let within = values.len() <= MAX_TUNABLES
                && values.iter().all(|(k, v)| {
                    !k.is_empty()
                        && k.len() <= MAX_TUNABLE_KEY_BYTES
                        && k.bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_')
                        && match v {
                            TunableValue::Text(t) => t.len() <= MAX_TUNABLE_TEXT_BYTES,
                            _ => true,
                        }
                });
            proptest::prop_assert_eq!(ok, within);
        }
    }

    #[test]
    fn bounded_text_cuts_at_a_character_boundary() {
        assert_eq!(bounded_text("short", 10), "short");
        let cut = bounded_text(&"é".repeat(100), 11);
        assert!(cut.len() <= 11 && cut.ends_with('…'), "{cut}");
        assert_eq!(
            bounded_text(&"x".repeat(5000), MAX_TEXT_BYTES).len(),
            MAX_TEXT_BYTES
        );
    }

    #[test]
    fn oversized_messages_are_refused_before_decoding() {
        let bytes = vec![0u8; MAX_MESSAGE_BYTES + 1];
        assert!(matches!(
            Uplink::decode(&bytes),
            Err(DecodeError::TooLarge { .. })
        ));
    }

    proptest::proptest! {
        #[test]
        fn arbitrary_bytes_never_panic(bytes in proptest::collection::vec(proptest::num::u8::ANY, 0..256)) {
            let _ = Uplink::decode(&bytes);
            let _ = Downlink::decode(&bytes);
            let _ = hello_version(&bytes);
        }
    }
}
