//! NMEA 0183 sentence parsing: one line of bytes in, one typed [`Sentence`] out.
//!
//! The parser borrows from the line and never allocates, so the agent can run it on every
//! sentence of a 10 Hz receiver on a small ARM board. It understands GGA, RMC, GSA, GSV,
//! VTG, GLL, GNS and ZDA from any two-letter talker (GP, GL, GA, GB, BD, GQ, GN, ...) and
//! hands every other well-formed sentence (TXT, GBS, proprietary `$P...`) back as
//! [`Sentence::Other`], so that it is not counted as bad input.
//!
//! Invariants:
//! - Any byte sequence gives either a sentence or a [`NmeaError`]; nothing panics.
//! - The checksum is verified before any field is interpreted, so a single changed byte
//!   anywhere in a line is always an error, except a change of case of a checksum hex
//!   letter: receivers print the checksum in either case and both mean the same value.
//! - A line is at most [`MAX_SENTENCE_LEN`] bytes including CR LF: more than NMEA 0183's
//!   82, because high-precision receivers print longer sentences (see the constant).
//! - A doubled start (`$$GPGGA,...`), which some receivers print after a buffer overrun,
//!   reads as one `$`; the checksum still covers only the body after it.
//! - Values are typed and range-checked; an empty field is `None`. Positions come out in
//!   signed decimal degrees; speeds keep the sentence's unit in the field name
//!   (`speed_knots`), with `*_mps` helpers for SI.
//!
//! [`encode`] writes the same six types back as text, for simulators and tests.
//!
//! Layout: [`sentence`](self) types (talkers, fields, the six sentence types) in `sentence.rs`;
//! the parser in `parse.rs`; the encoder, which only simulators and tests use, in [`encode`].

use thiserror::Error;

/// Longest sentence accepted, `$` to LF inclusive.
///
/// NMEA 0183 allows 82 characters, but receivers that print more precision do not fit:
/// GGA with eight decimals of arc minutes (Trimble BX-960: 91 characters, Unicore UM980,
/// u-blox F9 in high-precision mode), Skytraq's 103-character `$PSTI`. gpsd raised its own
/// bound (`NMEA_MAX`) for these: 102 in the packaged 3.22, 130 today. Aloft takes gpsd's
/// present 130, which covers every receiver gpsd has met and still bounds the framer's
/// memory and the parser's work per line.
pub const MAX_SENTENCE_LEN: usize = 130;

/// The sentence length NMEA 0183 itself allows, `$` to LF inclusive.
pub const STANDARD_SENTENCE_LEN: usize = 82;

/// Metres per second in one knot (1852 m per hour).
pub const MPS_PER_KNOT: f64 = 1852.0 / 3600.0;

/// XOR of `body`: the NMEA checksum of the bytes between `$` and `*`.
pub fn checksum(body: &[u8]) -> u8 {
    body.iter().fold(0, |acc, b| acc ^ b)
}

/// Knots to m s-1.
pub fn knots_to_mps(knots: f64) -> f64 {
    knots * MPS_PER_KNOT
}

/// km h-1 to m s-1.
pub fn kmh_to_mps(kmh: f64) -> f64 {
    kmh / 3.6
}

/// Converts NMEA's `dddmm.mmmm` (degrees times 100 plus minutes) and its hemisphere into
/// signed decimal degrees (south and west negative).
pub fn ddmm_to_degrees(ddmm: f64, hemisphere: Hemisphere) -> f64 {
    let degrees = (ddmm / 100.0).trunc();
    let minutes = ddmm - degrees * 100.0;
    let unsigned = degrees + minutes / 60.0;
    match hemisphere {
        Hemisphere::North | Hemisphere::East => unsigned,
        Hemisphere::South | Hemisphere::West => -unsigned,
    }
}

/// Why a line is not a sentence. Small and `Copy`: it is returned on the hot path and
/// counted by the agent, never allocated.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Error)]
pub enum NmeaError {
    /// The line is empty (or only a line end).
    #[error("empty line")]
    Empty,
    /// The line does not start with `$`.
    #[error("sentence does not start with '$'")]
    MissingStart,
    /// Longer than [`MAX_SENTENCE_LEN`] bytes including CR LF.
    #[error("sentence longer than 130 bytes")]
    TooLong,
    /// No `*HH` checksum at the end of the line.
    #[error("missing '*HH' checksum")]
    MissingChecksum,
    /// The checksum is not two hex digits.
    #[error("checksum is not two hex digits")]
    BadChecksumSyntax,
    /// The checksum does not match the sentence.
    #[error("checksum mismatch: sentence says {stated:#04x}, body gives {computed:#04x}")]
    ChecksumMismatch {
        /// What the `*HH` said.
        stated: u8,
        /// XOR of the body.
        computed: u8,
    },
    /// A byte that may not appear in a sentence (control character, non-ASCII, `$` or `*`
    /// inside the body, anything after the line end).
    #[error("invalid byte in sentence")]
    InvalidByte,
    /// The address field (talker and type) is malformed.
    #[error("malformed address field")]
    BadAddress,
    /// The sentence has a number of fields its type does not allow.
    #[error("{found} fields is not a valid field count for this sentence type")]
    FieldCount {
        /// Fields after the address.
        found: u8,
    },
    /// A field's syntax or value is invalid (numeric syntax, range, unknown letter).
    #[error("field {index} is invalid")]
    BadField {
        /// Index of the field after the address, from 0.
        index: u8,
    },
}

impl NmeaError {
    /// Stable snake-case name of the kind of error, for counters and metrics labels.
    pub fn kind(&self) -> &'static str {
        match self {
            NmeaError::Empty => "empty",
            NmeaError::MissingStart => "missing_start",
            NmeaError::TooLong => "too_long",
            NmeaError::MissingChecksum => "missing_checksum",
            NmeaError::BadChecksumSyntax => "bad_checksum_syntax",
            NmeaError::ChecksumMismatch { .. } => "checksum_mismatch",
            NmeaError::InvalidByte => "invalid_byte",
            NmeaError::BadAddress => "bad_address",
            NmeaError::FieldCount { .. } => "field_count",
            NmeaError::BadField { .. } => "bad_field",
        }
    }
}

mod parse;
mod sentence;

pub mod encode;

pub use parse::parse;
pub use sentence::*;

#[cfg(test)]
mod tests;
