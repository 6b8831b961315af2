//! The serial protocol between the agent and Aloft's own detector front end: the firmware
//! of the microcontroller that samples a SiPM channel pair (firmware/).
//!
//! The front end sends [`FromFrontEnd`] messages (a boot message once per start, batches of
//! events, housekeeping at its interval, replies to requests); the agent sends
//! [`ToFrontEnd`] requests (ping for the time sync, settings, reset). Both directions use
//! the same framing, [`encode_frame`] and [`FrameDecoder`]:
//!
//! ```text
//! COBS( postcard(message) ‖ CRC-32(postcard(message)) as 4 bytes little-endian ) ‖ 0x00
//! ```
//!
//! CRC-32 is the IEEE 802.3 / ISO-HDLC one (zlib's, crc32fast's). A zero byte never occurs
//! inside a frame, so a reader that lost its place resynchronises at the next zero; a frame
//! that fails COBS, CRC or decoding is one rejected frame, never a misread message.
//!
//! Invariants: everything here is `no_std` and allocation-free (the firmware has no
//! allocator); enum variants and struct fields are only ever appended (postcard encodes
//! variant indices and field order); [`DETECTOR_PROTOCOL_VERSION`] changes when a peer of
//! the previous version would misread a message, and the agent refuses a front end whose
//! boot message carries another version. No encoded frame is longer than
//! [`MAX_FRAME_BYTES`].

use core::fmt;

use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};

/// The version of this protocol, sent in [`BootInfo::protocol_version`].
pub const DETECTOR_PROTOCOL_VERSION: u16 = 1;

/// The most events one [`EventBatch`] carries.
pub const MAX_BATCH_EVENTS: usize = 16;

/// The longest postcard encoding of any message in either direction, bytes (without CRC).
pub const MAX_MESSAGE_BYTES: usize = 224;

/// The longest frame on the line: the message, its CRC, COBS overhead and the delimiter.
pub const MAX_FRAME_BYTES: usize = cobs::max_encoding_length(MAX_MESSAGE_BYTES + CRC_BYTES) + 1;

const CRC_BYTES: usize = 4;

const CRC32: crc::Crc<u32, crc::Table<1>> =
    crc::Crc::<u32, crc::Table<1>>::new(&crc::CRC_32_ISO_HDLC);

/// CRC-32 (IEEE 802.3 / ISO-HDLC) of `bytes`: the frame check.
pub fn crc32(bytes: &[u8]) -> u32 {
    CRC32.checksum(bytes)
}

/// The firmware's version.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct FirmwareVersion {
    /// Major version.
    pub major: u8,
    /// Minor version.
    pub minor: u8,
    /// Patch version.
    pub patch: u8,
}

impl fmt::Display for FirmwareVersion {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}.{}.{}", self.major, self.minor, self.patch)
    }
}

/// Why the microcontroller last started.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum ResetCause {
    /// Power was applied (no record of an earlier run survived in RAM).
    PowerOn,
    /// The firmware reset itself on request ([`Command::Reset`]).
    Software,
    /// The watchdog reset a stalled main loop.
    Watchdog,
    /// The reset pin, or anything else the firmware did not record itself.
    External,
}

impl ResetCause {
    /// The cause's name in the stream and the API.
    pub const fn as_str(self) -> &'static str {
        match self {
            Self::PowerOn => "power-on",
            Self::Software => "software",
            Self::Watchdog => "watchdog",
            Self::External => "external",
        }
    }
}

impl fmt::Display for ResetCause {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The front end's settings, as applied.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct DetectorSettings {
    /// The discriminator threshold on both channels' pulse heights, mV.
    pub threshold_mv: u16,
    /// Two channels' hits closer than this are one coincident event, ns.
    pub coincidence_window_ns: u32,
    /// How often a [`Housekeeping`] message is sent, ms.
    pub housekeeping_interval_ms: u32,
    /// The line rate the firmware paces its output to, bit/s.
    pub baud: u32,
}

/// The front end's first message after every start.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct BootInfo {
    /// The firmware's version.
    pub firmware: FirmwareVersion,
    /// The protocol version it speaks ([`DETECTOR_PROTOCOL_VERSION`] when compatible).
    pub protocol_version: u16,
    /// Why it started.
    pub reset_cause: ResetCause,
    /// Starts since power-on, this one included (1 at power-on).
    pub boot_count: u32,
    /// The microcontroller's serial number.
    pub serial: u64,
    /// The rate of the counter that time-stamps events, Hz.
    pub tick_hz: u32,
    /// The settings it starts with.
    pub settings: DetectorSettings,
}

/// Which channels of the pair fired in one event.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Channels(pub u8);

impl Channels {
    /// Channel A alone.
    pub const A: Self = Self(0b01);
    /// Channel B alone.
    pub const B: Self = Self(0b10);
    /// Both within the coincidence window.
    pub const BOTH: Self = Self(0b11);

    /// Both channels fired within the coincidence window.
    pub const fn coincident(self) -> bool {
        self.0 & 0b11 == 0b11
    }
}

/// One event: a pulse on one channel, or on both within the coincidence window.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Event {
    /// Ticks since the previous event of the batch (0 for the first).
    pub delta_ticks: u32,
    /// The channels that fired.
    pub channels: Channels,
    /// Channel A's pulse height, mV (0 when it did not fire).
    pub pulse_a_mv: u16,
    /// Channel B's pulse height, mV (0 when it did not fire).
    pub pulse_b_mv: u16,
}

/// Events in arrival order.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct EventBatch {
    /// The number of the first event since start (numbers run on across batches: a gap is
    /// events dropped because the line was too slow).
    pub first_event: u32,
    /// The counter at the first event, ticks since start.
    pub first_ticks: u64,
    /// The events.
    pub events: heapless::Vec<Event, MAX_BATCH_EVENTS>,
}

/// Counts over one housekeeping interval and totals since start.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Housekeeping {
    /// The counter at the end of the interval, ticks since start.
    pub ticks: u64,
    /// The interval's length, ticks.
    pub interval_ticks: u32,
    /// Channel A's hits in the interval (coincident ones included).
    pub hits_a: u32,
    /// Channel B's hits in the interval (coincident ones included).
    pub hits_b: u32,
    /// Coincident events in the interval.
    pub coincidences: u32,
    /// Ticks of the interval the front end was dead (busy with a pulse, blind to the next).
    pub dead_ticks: u32,
    /// The detector's temperature, hundredths of °C.
    pub temperature_centi_c: i16,
    /// Events since start.
    pub events_total: u32,
    /// Events since start that the line could not carry and were dropped.
    pub dropped_events_total: u32,
    /// Frames from the agent rejected since start (COBS, CRC or decoding).
    pub rejected_frames_total: u32,
}

/// What the agent asks of the front end.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum Command {
    /// Reply with the counter now: the time sync.
    Ping,
    /// Set the discriminator threshold, mV.
    SetThreshold {
        /// The threshold, mV.
        mv: u16,
    },
    /// Set the coincidence window, ns.
    SetCoincidenceWindow {
        /// The window, ns.
        ns: u32,
    },
    /// Set the housekeeping interval, ms.
    SetHousekeepingInterval {
        /// The interval, ms.
        ms: u32,
    },
    /// Reply with the settings in force.
    GetSettings,
    /// Reply [`ReplyBody::Resetting`], then reset the microcontroller.
    Reset,
    /// Stall the main loop so the watchdog resets it: honoured only by a test build with
    /// the fault hook, refused ([`Refusal::NotBuiltIn`]) by any other.
    Stall,
}

/// A request from the agent.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct ToFrontEnd {
    /// Chosen by the agent, echoed in the [`Reply`].
    pub id: u16,
    /// What to do.
    pub command: Command,
}

/// Why a request was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum Refusal {
    /// The value is outside what the front end can do.
    OutOfRange,
    /// This build does not do that.
    NotBuiltIn,
}

/// The outcome of a request.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum ReplyBody {
    /// The counter when the ping was handled.
    Pong {
        /// Ticks since start.
        ticks: u64,
    },
    /// The settings in force after the request.
    Settings(DetectorSettings),
    /// The request was refused; nothing changed.
    Refused(Refusal),
    /// The reset follows this reply.
    Resetting,
}

/// The reply to one request.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Reply {
    /// The request's id.
    pub id: u16,
    /// The outcome.
    pub body: ReplyBody,
}

/// What the front end sends.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum FromFrontEnd {
    /// Sent once after every start.
    Boot(BootInfo),
    /// Events in arrival order.
    Events(EventBatch),
    /// Counts at the housekeeping interval.
    Housekeeping(Housekeeping),
    /// The reply to a request.
    Reply(Reply),
}

/// Why a frame could not be encoded or was rejected.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FrameError {
    /// The message does not fit [`MAX_MESSAGE_BYTES`] (encoding) or the frame ran past
    /// [`MAX_FRAME_BYTES`] before its delimiter (decoding).
    TooLong,
    /// The bytes between two delimiters are not valid COBS.
    Cobs,
    /// The frame is shorter than its CRC.
    Short,
    /// The CRC does not match the content.
    Crc {
        /// The CRC the frame carries.
        carried: u32,
        /// The CRC of the content.
        computed: u32,
    },
    /// The content is not a message of the expected type.
    Decode,
    /// The output buffer is smaller than the frame.
    BufferTooSmall,
}

impl fmt::Display for FrameError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::TooLong => write!(f, "frame longer than {MAX_FRAME_BYTES} bytes"),
            Self::Cobs => f.write_str("frame is not valid COBS"),
            Self::Short => f.write_str("frame shorter than its CRC"),
            Self::Crc { carried, computed } => {
                write!(
                    f,
                    "frame CRC {carried:#010x} does not match its content's {computed:#010x}"
                )
            }
            Self::Decode => f.write_str("frame content is not a message of this protocol"),
            Self::BufferTooSmall => f.write_str("output buffer smaller than the frame"),
        }
    }
}

impl core::error::Error for FrameError {}

/// Encodes `message` as one frame (delimiter included) into `out`; returns its length.
pub fn encode_frame<T: Serialize>(message: &T, out: &mut [u8]) -> Result<usize, FrameError> {
    let mut raw = [0u8; MAX_MESSAGE_BYTES + CRC_BYTES];
    let len = postcard::to_slice(message, &mut raw[..MAX_MESSAGE_BYTES])
        .map_err(|_| FrameError::TooLong)?
        .len();
    let crc = crc32(&raw[..len]);
    raw[len..len + CRC_BYTES].copy_from_slice(&crc.to_le_bytes());
    let content = &raw[..len + CRC_BYTES];
    if out.len() < cobs::max_encoding_length(content.len()) + 1 {
        return Err(FrameError::BufferTooSmall);
    }
    let encoded = cobs::encode(content, out);
    out[encoded] = 0;
    Ok(encoded + 1)
}

/// Reassembles frames from a byte stream and decodes them as messages of type `T`.
///
/// Bytes are fed one at a time ([`Self::push`]) or as a slice ([`Self::push_slice`]); a
/// message comes out at each delimiter. Empty frames (two delimiters in a row, the idle
/// pattern) are skipped. A frame longer than [`MAX_FRAME_BYTES`] is rejected once at its
/// delimiter, and reading goes on with the next frame.
#[derive(Debug, Clone)]
pub struct FrameDecoder {
    buf: [u8; MAX_FRAME_BYTES],
    len: usize,
    overlong: bool,
}

impl Default for FrameDecoder {
    fn default() -> Self {
        Self::new()
    }
}

impl FrameDecoder {
    /// A decoder expecting the start of a frame.
    pub const fn new() -> Self {
        Self {
            buf: [0; MAX_FRAME_BYTES],
            len: 0,
            overlong: false,
        }
    }

    /// Forgets a partly received frame.
    pub fn reset(&mut self) {
        self.len = 0;
        self.overlong = false;
    }

    /// Bytes of a frame received so far (0 between frames).
    pub fn pending(&self) -> usize {
        self.len
    }

    /// Feeds one byte; at a delimiter, the frame it ends, decoded.
    pub fn push<T: DeserializeOwned>(&mut self, byte: u8) -> Option<Result<T, FrameError>> {
        if byte != 0 {
            if self.len < self.buf.len() {
                self.buf[self.len] = byte;
                self.len += 1;
            } else {
                self.overlong = true;
            }
            return None;
        }
        let len = core::mem::replace(&mut self.len, 0);
        if core::mem::replace(&mut self.overlong, false) {
            return Some(Err(FrameError::TooLong));
        }
        if len == 0 {
            return None;
        }
        Some(decode_content(&mut self.buf[..len]))
    }

    /// Feeds `bytes`, calling `on_frame` with each frame they end; returns how many.
    pub fn push_slice<T: DeserializeOwned>(
        &mut self,
        bytes: &[u8],
        mut on_frame: impl FnMut(Result<T, FrameError>),
    ) -> usize {
        let mut frames = 0;
        for &byte in bytes {
            if let Some(frame) = self.push(byte) {
                frames += 1;
                on_frame(frame);
            }
        }
        frames
    }
}

/// Decodes one frame's COBS content (without its delimiter), in place.
fn decode_content<T: DeserializeOwned>(encoded: &mut [u8]) -> Result<T, FrameError> {
    let len = cobs::decode_in_place(encoded).map_err(|_| FrameError::Cobs)?;
    if len < CRC_BYTES {
        return Err(FrameError::Short);
    }
    let (content, carried) = encoded[..len].split_at(len - CRC_BYTES);
    let carried = u32::from_le_bytes([carried[0], carried[1], carried[2], carried[3]]);
    let computed = crc32(content);
    if carried != computed {
        return Err(FrameError::Crc { carried, computed });
    }
    match postcard::take_from_bytes::<T>(content) {
        Ok((message, [])) => Ok(message),
        _ => Err(FrameError::Decode),
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    extern crate std;

    use std::vec::Vec;

    use proptest::prelude::*;

    use super::*;

    fn settings() -> DetectorSettings {
        DetectorSettings {
            threshold_mv: 40,
            coincidence_window_ns: 200,
            housekeeping_interval_ms: 1000,
            baud: 115_200,
        }
    }

    fn full_batch() -> FromFrontEnd {
        let mut events = heapless::Vec::new();
        for _ in 0..MAX_BATCH_EVENTS {
            events
                .push(Event {
                    delta_ticks: u32::MAX,
                    channels: Channels::BOTH,
                    pulse_a_mv: u16::MAX,
                    pulse_b_mv: u16::MAX,
                })
                .unwrap();
        }
        FromFrontEnd::Events(EventBatch {
            first_event: u32::MAX,
            first_ticks: u64::MAX,
            events,
        })
    }

    fn frame<T: Serialize>(message: &T) -> Vec<u8> {
        let mut out = [0u8; MAX_FRAME_BYTES];
        let len = encode_frame(message, &mut out).unwrap();
        out[..len].to_vec()
    }

    fn decode_all(bytes: &[u8]) -> Vec<Result<FromFrontEnd, FrameError>> {
        let mut decoder = FrameDecoder::new();
        let mut out = Vec::new();
        decoder.push_slice(bytes, |frame| out.push(frame));
        out
    }

    #[test]
    fn crc_is_zlibs() {
        // The check value of CRC-32/ISO-HDLC.
        assert_eq!(crc32(b"123456789"), 0xCBF4_3926);
    }

    #[test]
    fn the_largest_message_fits_its_bounds() {
        let mut raw = [0u8; 1024];
        let len = postcard::to_slice(&full_batch(), &mut raw).unwrap().len();
        assert!(len <= MAX_MESSAGE_BYTES, "{len} > {MAX_MESSAGE_BYTES}");
        assert!(frame(&full_batch()).len() <= MAX_FRAME_BYTES);
    }

    #[test]
    fn frames_round_trip_in_a_stream() {
        let boot = FromFrontEnd::Boot(BootInfo {
            firmware: FirmwareVersion {
                major: 1,
                minor: 0,
                patch: 0,
            },
            protocol_version: DETECTOR_PROTOCOL_VERSION,
            reset_cause: ResetCause::Watchdog,
            boot_count: 3,
            serial: 0x1234_5678_9abc,
            tick_hz: 12_000_000,
            settings: settings(),
        });
        let reply = FromFrontEnd::Reply(Reply {
            id: 7,
            body: ReplyBody::Pong { ticks: 99 },
        });
        let mut stream = Vec::new();
        stream.extend(frame(&boot));
        stream.push(0);
        stream.extend(frame(&full_batch()));
        stream.extend(frame(&reply));
        let out: Vec<_> = decode_all(&stream)
            .into_iter()
            .map(Result::unwrap)
            .collect();
        assert_eq!(out, [boot, full_batch(), reply]);
    }

    #[test]
    fn a_flipped_bit_is_a_crc_error_and_the_next_frame_reads() {
        let reply = FromFrontEnd::Reply(Reply {
            id: 1,
            body: ReplyBody::Resetting,
        });
        let mut bad = frame(&reply);
        bad[2] ^= 0x10;
        if bad[2] == 0 {
            bad[2] = 0x10;
        }
        let mut stream = bad;
        stream.extend(frame(&reply));
        let out = decode_all(&stream);
        assert_eq!(out.len(), 2);
        assert!(out[0].is_err());
        assert_eq!(out[1], Ok(reply));
    }

    #[test]
    fn an_overlong_frame_is_rejected_once() {
        let mut stream = std::vec![0x55u8; MAX_FRAME_BYTES * 3];
        stream.push(0);
        let request = ToFrontEnd {
            id: 2,
            command: Command::SetThreshold { mv: 30 },
        };
        stream.extend(frame(&request));
        let mut decoder = FrameDecoder::new();
        let mut out: Vec<Result<ToFrontEnd, FrameError>> = Vec::new();
        decoder.push_slice(&stream, |frame| out.push(frame));
        assert_eq!(out, [Err(FrameError::TooLong), Ok(request)]);
    }

    #[test]
    fn a_message_of_the_other_direction_is_not_misread() {
        let request = ToFrontEnd {
            id: 2,
            command: Command::Reset,
        };
        // Valid COBS and CRC, but a request is not a front-end message (or, when its bytes
        // happen to decode, not the whole content).
        for message in decode_all(&frame(&request)).into_iter().flatten() {
            let mut reencoded = [0u8; MAX_MESSAGE_BYTES];
            let again = postcard::to_slice(&message, &mut reencoded).unwrap();
            let mut raw = [0u8; MAX_MESSAGE_BYTES];
            let original = postcard::to_slice(&request, &mut raw).unwrap();
            assert_eq!(again, original, "only a byte-exact decode is accepted");
        }
    }

    proptest! {
        #[test]
        fn any_bytes_never_panic_and_resync(noise in proptest::collection::vec(any::<u8>(), 0..600)) {
            let reply = FromFrontEnd::Reply(Reply { id: 9, body: ReplyBody::Settings(settings()) });
            let mut stream = noise;
            stream.push(0);
            stream.extend(frame(&reply));
            let out = decode_all(&stream);
            prop_assert_eq!(out.last(), Some(&Ok(reply)));
        }

        #[test]
        fn any_single_corruption_is_rejected(position in 0usize..64, mask in 1u8..=255) {
            let message = full_batch();
            let mut bytes = frame(&message);
            let position = position % (bytes.len() - 1);
            bytes[position] ^= mask;
            let out = decode_all(&bytes);
            // A corrupted byte that became a delimiter splits the frame: every piece is
            // rejected; nothing decodes to a message other than the one sent.
            for decoded in out.into_iter().flatten() {
                prop_assert_eq!(decoded, message.clone());
            }
        }

        #[test]
        fn requests_round_trip(id in any::<u16>(), mv in any::<u16>(), ns in any::<u32>()) {
            for command in [Command::Ping, Command::SetThreshold { mv }, Command::SetCoincidenceWindow { ns }, Command::Reset] {
                let request = ToFrontEnd { id, command };
                let mut decoder = FrameDecoder::new();
                let mut out: Vec<Result<ToFrontEnd, FrameError>> = Vec::new();
                decoder.push_slice(&frame(&request), |frame| out.push(frame));
                prop_assert_eq!(out, std::vec![Ok(request)]);
            }
        }
    }
}
