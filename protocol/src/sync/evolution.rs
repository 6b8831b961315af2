//! How the protocol grows without breaking a peer of another version: a glider's agent is
//! updated on the ground, whenever it lands, and its hub whenever its operator gets to it,
//! so either may be the newer one for months. docs/protocol.md, "Evolution", is the rule in
//! words; this module is what each end calls to follow it.
//!
//! - **Versions.** The agent's hello offers a version: its [`PROTOCOL_VERSION`] at first.
//!   A hub welcomes an offer from [`OLDEST_PROTOCOL_VERSION`] up to its own, and its
//!   welcome names the version of the session: the one offered. It refuses any other
//!   offer with [`RefusalCode::ProtocolVersion`](super::RefusalCode) (a version 1 hub
//!   refuses every version but 1). An agent refused so offers one version less on its next
//!   connection, at once, down to the oldest, and keeps the version that was welcomed. From
//!   then on each end sends only what the session's version decodes.
//! - **Quantities** travel by their stable code ([`crate::Quantity::code`]). From version 2
//!   on, a decoder keeps a code it does not know and passes it on, so a new quantity needs
//!   no new version; only a version 1 peer is spared codes past [`V1_QUANTITIES`].
//! - **Record kinds** added after the first six travel as
//!   [`Record::Extension`]: kind code and length-prefixed body. From version 2 on, a
//!   decoder keeps an extension record of a kind it does not know, whole; a version 1 peer
//!   is never sent one. A record never changes: a record that needs more fields is a new
//!   kind.
//! - **Fields** are only ever added at the end of a message's outermost struct (a hello, a
//!   live update, a desired spec), as types whose all-zero encoding means "absent"
//!   (`Option`, `Vec`, `bool` false, `0`). An older decoder ignores bytes after the fields
//!   it knows; a newer decoder reads an older peer's message as if it ended in one zero
//!   byte per field added since the peer's version ([`decode_message`],
//!   [`FIELDS_ADDED`]), so the added fields read as absent. A field that belongs to each
//!   entry of a list (each sensor of a desired spec) goes into a new list at the end of the
//!   message, keyed like the first one (by sensor name).
//! - **Messages** added later (a new [`Uplink`](super::Uplink) or
//!   [`Downlink`](super::Downlink) variant) are sent only in a session whose version
//!   decodes them.
//!
//! Invariant: what one end sends, the other decodes, whichever is newer; what an older end
//! cannot read is either kept whole (quantity codes, extension records), ignored (added
//! fields), or never sent to it.

use alloc::vec::Vec;

use serde::de::DeserializeOwned;

use super::{DecodeError, Downlink, MAX_MESSAGE_BYTES};
use crate::Record;

/// The version this build speaks: what it offers, and the newest it welcomes.
/// 1: the first protocol. 2: quantity codes and extension records kept when unknown,
/// fields added at the end of a message read as absent from an older peer, older versions
/// welcomed and offered, and the node's health on the live lane ([`HEALTH_VERSION`]).
/// 3: sensor tunables at the end of the desired spec and of the observed state
/// ([`TUNABLES_VERSION`]). 4: the power step at the end of the node's health, and the
/// sensors exempted from power steps at the end of the desired spec ([`POWER_VERSION`]).
pub const PROTOCOL_VERSION: u16 = 4;

/// The oldest version a hub of this build welcomes and an agent of this build offers.
pub const OLDEST_PROTOCOL_VERSION: u16 = 1;

/// Fields added to the outermost struct of a message, per version that added them: `(the
/// version, most fields that version added to any one message)`. Version 2 added none;
/// version 3 added one to `DesiredSpec` and one to `Observed` (their `tunables`); version 4
/// one to `NodeHealth` (`power`) and one to `DesiredSpec` (`power_overrides`).
pub const FIELDS_ADDED: &[(u16, usize)] = &[(TUNABLES_VERSION, 1), (POWER_VERSION, 1)];

/// The first version whose node health carries the power step and whose desired spec
/// carries the sensors exempted from power steps.
pub const POWER_VERSION: u16 = 4;

/// The first version whose desired spec and observed state carry sensor tunables.
pub const TUNABLES_VERSION: u16 = 3;

/// The first version whose decoders keep unknown quantity codes and extension records.
pub const PASS_THROUGH_VERSION: u16 = 2;

/// The first version with [`Uplink::Health`](super::Uplink::Health).
pub const HEALTH_VERSION: u16 = 2;

/// Quantity codes version 1 decodes (0 to 36); its decoders refuse any other.
pub const V1_QUANTITIES: u16 = 37;

/// How many fields, at most, a message of this build has that a peer of `version` does not
/// send: the zero bytes [`decode_message`] reads past the end of that peer's messages.
pub fn fields_added_since(version: u16) -> usize {
    FIELDS_ADDED
        .iter()
        .filter(|(added_in, _)| *added_in > version)
        .map(|(_, fields)| fields)
        .sum()
}

/// Whether a hub of this build welcomes a hello offering `version`.
pub const fn welcomes(version: u16) -> bool {
    version >= OLDEST_PROTOCOL_VERSION && version <= PROTOCOL_VERSION
}

/// Whether a peer of `version` decodes `record`: every record for version 2 and later
/// (they keep what they do not know); for version 1, only the first six kinds, with
/// quantity codes it knows.
pub fn record_decodable_by(record: &Record, version: u16) -> bool {
    if version >= PASS_THROUGH_VERSION {
        return true;
    }
    match record {
        Record::Reading(r) => r.quantity.code() < V1_QUANTITIES,
        Record::Extension(_) => false,
        _ => true,
    }
}

/// `message` as a peer of `version` is sent it: what that version cannot use is left
/// out (a desired spec's tunables, before [`TUNABLES_VERSION`]: an older agent would
/// ignore them, and the hub would wait for an observed set that never comes; its power
/// overrides, before [`POWER_VERSION`]).
pub fn downlink_for(message: Downlink, version: u16) -> Downlink {
    match message {
        Downlink::Desired(mut spec) if version < POWER_VERSION => {
            spec.power_overrides.clear();
            if version < TUNABLES_VERSION {
                spec.tunables.clear();
            }
            Downlink::Desired(spec)
        }
        other => other,
    }
}

/// Decodes one message by the rule for added fields: bytes after what this build knows are
/// ignored (a newer peer's added fields), and a message that ends early is read again as if
/// followed by `absent_fields` zero bytes ([`fields_added_since`] the peer's version: the
/// fields it does not send read as absent). With none, a message that ends early is
/// malformed. Refuses messages above [`MAX_MESSAGE_BYTES`].
pub fn decode_message<T: DeserializeOwned>(
    bytes: &[u8],
    absent_fields: usize,
) -> Result<T, DecodeError> {
    if bytes.len() > MAX_MESSAGE_BYTES {
        return Err(DecodeError::TooLarge {
            size: bytes.len(),
            max: MAX_MESSAGE_BYTES,
        });
    }
    match postcard::from_bytes(bytes) {
        Err(postcard::Error::DeserializeUnexpectedEnd) if absent_fields > 0 => {
            let mut padded = Vec::with_capacity(bytes.len() + absent_fields);
            padded.extend_from_slice(bytes);
            padded.resize(bytes.len() + absent_fields, 0);
            postcard::from_bytes(&padded).map_err(DecodeError::Malformed)
        }
        other => other.map_err(DecodeError::Malformed),
    }
}
