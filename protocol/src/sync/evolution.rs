//! How the protocol grows without breaking a peer of another version: a glider's agent is
//! updated on the ground, whenever it lands, and its hub whenever its operator gets to it,
//! so either may be the newer one for months. docs/protocol.md, "Evolution", is the rule in
//! words; this module is what each end calls to follow it.
//!
//! - **Versions.** [`Hello::protocol_version`](super::Hello) is the agent's
//!   [`PROTOCOL_VERSION`], [`Welcome::protocol_version`](super::Welcome) the hub's. A hub
//!   welcomes any agent of version [`OLDEST_PROTOCOL_VERSION`] or later, newer ones
//!   included; each end sends only what the other's version decodes
//!   ([`session_version`]). A version 1 hub refuses every other version, so an agent it
//!   refuses says hello again as version 1 and then sends only what version 1 decodes.
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
//!   it knows; a newer decoder reads an older peer's message as if it ended in zero bytes
//!   ([`decode_message`]), so the added fields read as absent. A field that belongs to each
//!   entry of a list (each sensor of a desired spec) goes into a new list at the end of the
//!   message, keyed like the first one (by sensor name).
//! - **Messages** added later (a new [`Uplink`](super::Uplink) or
//!   [`Downlink`](super::Downlink) variant) are sent only to a peer whose version decodes
//!   them, by the [`session_version`].
//!
//! Invariant: what one end sends, the other decodes, whichever is newer; what an older end
//! cannot read is either kept whole (quantity codes, extension records), ignored (added
//! fields), or never sent to it.

use alloc::vec::Vec;

use serde::de::DeserializeOwned;

use super::{DecodeError, MAX_MESSAGE_BYTES};
use crate::Record;

/// The version this build speaks: what it sends at most, and everything older it decodes.
/// 1: the first protocol. 2: quantity codes and extension records kept when unknown, added
/// trailing fields tolerated, hellos of newer agents welcomed.
pub const PROTOCOL_VERSION: u16 = 2;

/// The oldest version a hub of this build welcomes and an agent of this build can fall back
/// to.
pub const OLDEST_PROTOCOL_VERSION: u16 = 1;

/// The first version whose decoders keep unknown quantity codes and extension records.
pub const PASS_THROUGH_VERSION: u16 = 2;

/// Quantity codes version 1 decodes (0 to 36); its decoders refuse any other.
pub const V1_QUANTITIES: u16 = 37;

/// Most zero bytes a decoder reads past the end of a message for the fields an older peer
/// did not send: at least one per field ever added to a message's outermost struct.
pub const MAX_ADDED_FIELD_BYTES: usize = 16;

/// The version both ends of a session decode: the older of the two.
pub const fn session_version(ours: u16, theirs: u16) -> u16 {
    if ours < theirs { ours } else { theirs }
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

/// Decodes one message by the rule for added fields: bytes after what this build knows are
/// ignored (a newer peer's added fields), and a message that ends early is read again as if
/// followed by [`MAX_ADDED_FIELD_BYTES`] zero bytes (an older peer's message, without the
/// fields added since: they read as absent). Refuses messages above [`MAX_MESSAGE_BYTES`].
pub fn decode_message<T: DeserializeOwned>(bytes: &[u8]) -> Result<T, DecodeError> {
    if bytes.len() > MAX_MESSAGE_BYTES {
        return Err(DecodeError::TooLarge {
            size: bytes.len(),
            max: MAX_MESSAGE_BYTES,
        });
    }
    match postcard::from_bytes(bytes) {
        Err(postcard::Error::DeserializeUnexpectedEnd) => {
            let mut padded = Vec::with_capacity(bytes.len() + MAX_ADDED_FIELD_BYTES);
            padded.extend_from_slice(bytes);
            padded.resize(bytes.len() + MAX_ADDED_FIELD_BYTES, 0);
            postcard::from_bytes(&padded).map_err(DecodeError::Malformed)
        }
        other => other.map_err(DecodeError::Malformed),
    }
}
