//! Demultiplexer for a GNSS port that carries NMEA sentences and UBX frames interleaved.
//!
//! Bytes are pushed as they arrive, split anywhere; [`GnssFramer::next_item`] takes out
//! one [`Item`] at a time: an NMEA line (without its CR LF), a checksum-verified UBX
//! frame, or a count of bytes skipped with the reason. Items borrow from the framer's
//! buffer (zero-copy); the buffer is compacted on the next push.
//!
//! Invariants:
//! - every byte pushed is accounted for exactly once: in a line (plus its CR LF), in a
//!   frame, or in a skipped count;
//! - memory is bounded: an NMEA candidate longer than [`MAX_NMEA_LEN`] (130 bytes with
//!   CR LF, the parser's bound: NMEA 0183 allows 82, high-precision receivers print more)
//!   and a UBX length field over [`MAX_UBX_PAYLOAD`] are
//!   rejected at once, so the framer never holds more than one maximal item plus the bytes
//!   pushed since the last take;
//! - a rejected candidate costs only its first byte: the framer resyncs on the next `$` or
//!   `0xB5` after it, so a valid frame that follows a false start (a stray `$`, a
//!   corrupted UBX header) is still found.
//!
//! An NMEA line is `$` (or a doubled `$$`, which some receivers print: the line then keeps
//! both and the parser reads them as one), printable ASCII without `$`, `*`, two hex digits
//! (either case) of the XOR checksum, CR LF (a bare LF is accepted too). The checksum is verified here, so a line
//! the framer hands out is a whole sentence; field parsing is [`super::nmea`]'s job.

use super::nmea::checksum as nmea_checksum;
use super::ubx::{self, Frame, FrameError};

/// Longest NMEA sentence, `$` to LF inclusive: the parser's bound,
/// [`nmea::MAX_SENTENCE_LEN`](super::nmea::MAX_SENTENCE_LEN) (NMEA 0183 itself: 82).
pub const MAX_NMEA_LEN: usize = super::nmea::MAX_SENTENCE_LEN;

/// Largest UBX payload accepted. The largest messages a NEO-M8N sends in Aloft's setup are
/// NAV-SAT with 72 channels (872 bytes) and RXM-RAWX with 32 measurements (1040 bytes);
/// 2048 leaves room for both and keeps a corrupted length field from making the framer
/// wait for 64 KiB while it holds back the traffic behind it.
pub const MAX_UBX_PAYLOAD: usize = 2048;

/// Why bytes were skipped.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SkipReason {
    /// Bytes before any `$` or UBX sync.
    NoSync,
    /// An NMEA candidate reached [`MAX_NMEA_LEN`] bytes without a line end.
    NmeaTooLong,
    /// An NMEA candidate held a byte no sentence may contain (control byte, second `$`).
    NmeaBadByte,
    /// An NMEA line without a valid `*hh` checksum, or whose checksum did not match.
    NmeaChecksum,
    /// A UBX header announced a payload over [`MAX_UBX_PAYLOAD`].
    UbxTooLong,
    /// A UBX frame whose checksum did not match.
    UbxChecksum,
    /// An item left incomplete when the input ended ([`GnssFramer::finish`]).
    Truncated,
}

/// One thing taken out of the byte stream.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Item<'a> {
    /// An NMEA sentence from `$` (or a doubled `$$`) to the checksum digits, without CR LF;
    /// checksum verified.
    Nmea(&'a [u8]),
    /// A UBX frame, checksum verified.
    Ubx(Frame<'a>),
    /// Bytes discarded.
    Skipped {
        /// How many.
        bytes: usize,
        /// Why.
        reason: SkipReason,
    },
}

/// What the byte at the head of the buffer starts.
enum Step {
    Wait,
    Nmea { line_len: usize, consumed: usize },
    Ubx { consumed: usize },
    Skip(SkipReason),
}

/// The NMEA/UBX demultiplexer of one port.
#[derive(Debug, Default)]
pub struct GnssFramer {
    buf: Vec<u8>,
    pos: usize,
    finished: bool,
}

impl GnssFramer {
    /// An empty framer.
    pub fn new() -> Self {
        Self::default()
    }

    /// Appends bytes received from the port.
    pub fn push(&mut self, bytes: &[u8]) {
        if self.pos > 0 {
            self.buf.drain(..self.pos);
            self.pos = 0;
        }
        self.buf.extend_from_slice(bytes);
        self.finished = false;
    }

    /// Declares that no more bytes follow (end of a file, port closed): an incomplete item
    /// at the end is skipped instead of waited for. A later [`GnssFramer::push`] resumes.
    pub fn finish(&mut self) {
        self.finished = true;
    }

    /// Bytes pushed and not yet taken out.
    pub fn pending(&self) -> usize {
        self.buf.len() - self.pos
    }

    /// Takes the next item out, or `None` when more bytes are needed.
    pub fn next_item(&mut self) -> Option<Item<'_>> {
        let step = self.step();
        let start = self.pos;
        match step {
            Step::Wait => None,
            Step::Nmea { line_len, consumed } => {
                self.pos += consumed;
                self.buf.get(start..start + line_len).map(Item::Nmea)
            }
            Step::Ubx { consumed } => {
                self.pos += consumed;
                let bytes = self.buf.get(start..start + consumed)?;
                Frame::decode(bytes).ok().map(|(f, _)| Item::Ubx(f))
            }
            Step::Skip(reason) => {
                let rest = self.buf.get(start + 1..).unwrap_or_default();
                let bytes = 1 + rest
                    .iter()
                    .position(|&b| b == b'$' || b == ubx::SYNC[0])
                    .unwrap_or(rest.len());
                self.pos += bytes;
                Some(Item::Skipped { bytes, reason })
            }
        }
    }

    fn step(&self) -> Step {
        let data = self.buf.get(self.pos..).unwrap_or_default();
        match data.first() {
            None => Step::Wait,
            Some(b'$') => self.nmea_step(data),
            Some(&b) if b == ubx::SYNC[0] => self.ubx_step(data),
            Some(_) => Step::Skip(SkipReason::NoSync),
        }
    }

    fn incomplete(&self) -> Step {
        if self.finished {
            Step::Skip(SkipReason::Truncated)
        } else {
            Step::Wait
        }
    }

    fn ubx_step(&self, data: &[u8]) -> Step {
        if let Some(&[_, 0x62, _, _, l0, l1]) = data.get(..ubx::HEADER_LEN)
            && usize::from(u16::from_le_bytes([l0, l1])) > MAX_UBX_PAYLOAD
        {
            return Step::Skip(SkipReason::UbxTooLong);
        }
        match Frame::decode(data) {
            Ok((_, consumed)) => Step::Ubx { consumed },
            Err(FrameError::Truncated { .. }) => self.incomplete(),
            Err(FrameError::BadSync) => Step::Skip(SkipReason::NoSync),
            Err(FrameError::Checksum { .. }) => Step::Skip(SkipReason::UbxChecksum),
        }
    }

    fn nmea_step(&self, data: &[u8]) -> Step {
        let limit = data.len().min(MAX_NMEA_LEN);
        for (i, &b) in data.iter().enumerate().take(limit).skip(1) {
            match b {
                b'\n' => {
                    let line_len = if data.get(i - 1) == Some(&b'\r') {
                        i - 1
                    } else {
                        i
                    };
                    let line = data.get(..line_len).unwrap_or_default();
                    return if nmea_checksum_ok(line) {
                        Step::Nmea {
                            line_len,
                            consumed: i + 1,
                        }
                    } else {
                        Step::Skip(SkipReason::NmeaChecksum)
                    };
                }
                b'\r' => match data.get(i + 1) {
                    Some(b'\n') | None => {}
                    Some(_) => return Step::Skip(SkipReason::NmeaBadByte),
                },
                // A doubled start is a start.
                b'$' if i == 1 => {}
                b'$' => return Step::Skip(SkipReason::NmeaBadByte),
                0x20..=0x7E => {}
                _ => return Step::Skip(SkipReason::NmeaBadByte),
            }
        }
        if limit == MAX_NMEA_LEN {
            Step::Skip(SkipReason::NmeaTooLong)
        } else {
            self.incomplete()
        }
    }
}

/// `line` is `$body*hh` or `$$body*hh` and `hh` (either case) is the XOR of `body`.
fn nmea_checksum_ok(line: &[u8]) -> bool {
    let line = match line {
        [b'$', b'$', rest @ ..] => rest,
        [b'$', rest @ ..] => rest,
        _ => return false,
    };
    let Some((&[star, hi, lo], head)) = line
        .split_last_chunk::<3>()
        .map(|(head, tail)| (tail, head))
    else {
        return false;
    };
    let hex = |c: u8| char::from(c).to_digit(16);
    match (star, hex(hi), hex(lo)) {
        (b'*', Some(h), Some(l)) => u32::from(nmea_checksum(head)) == h * 16 + l,
        _ => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::gps::ubx::{msg, poll};
    use proptest::prelude::*;

    /// What a test keeps of an item: owned bytes of lines and frames.
    #[derive(Debug, Clone, PartialEq, Eq)]
    enum Owned {
        Nmea(Vec<u8>),
        Ubx(Vec<u8>),
        Skipped(usize, SkipReason),
    }

    fn drain(framer: &mut GnssFramer, out: &mut Vec<Owned>) {
        while let Some(item) = framer.next_item() {
            out.push(match item {
                Item::Nmea(l) => Owned::Nmea(l.to_vec()),
                Item::Ubx(f) => Owned::Ubx(f.to_bytes()),
                Item::Skipped { bytes, reason } => Owned::Skipped(bytes, reason),
            });
        }
    }

    fn run(chunks: &[&[u8]]) -> Vec<Owned> {
        let mut framer = GnssFramer::new();
        let mut out = Vec::new();
        for c in chunks {
            framer.push(c);
            drain(&mut framer, &mut out);
        }
        framer.finish();
        drain(&mut framer, &mut out);
        out
    }

    fn sentence(body: &str) -> Vec<u8> {
        format!("${body}*{:02X}\r\n", nmea_checksum(body.as_bytes())).into_bytes()
    }

    const GGA: &[u8] =
        b"$GPGGA,085001.00,3454.3735960,S,13836.4871940,E,2,00,,28.85,M,-1.662,M,,*4A\r\n";

    #[test]
    fn real_gga_line_comes_out_without_crlf() {
        let out = run(&[GGA]);
        assert_eq!(out, vec![Owned::Nmea(GGA[..GGA.len() - 2].to_vec())]);
    }

    #[test]
    fn nmea_and_ubx_interleaved_byte_by_byte() {
        let frame = poll(msg::MON_VER);
        let mut stream = GGA.to_vec();
        stream.extend(&frame);
        let rmc = sentence("GNRMC,,V,,,,,,,,,,N");
        stream.extend(&rmc);
        let chunks: Vec<&[u8]> = stream.chunks(1).collect();
        let out = run(&chunks);
        assert_eq!(
            out,
            vec![
                Owned::Nmea(GGA[..GGA.len() - 2].to_vec()),
                Owned::Ubx(frame),
                Owned::Nmea(rmc[..rmc.len() - 2].to_vec()),
            ]
        );
    }

    #[test]
    fn garbage_before_a_frame_is_counted_with_its_reason() {
        let mut stream = b"\x00\x01noise".to_vec();
        stream.extend(poll(msg::CFG_NAV5));
        let out = run(&[&stream]);
        assert_eq!(out[0], Owned::Skipped(7, SkipReason::NoSync));
        assert_eq!(out[1], Owned::Ubx(poll(msg::CFG_NAV5)));
    }

    #[test]
    fn overlong_nmea_line_is_rejected_and_the_next_sentence_survives() {
        let mut stream = b"$GPXXX,".to_vec();
        stream.extend(std::iter::repeat_n(b'1', 150));
        stream.extend(GGA);
        let out = run(&[&stream]);
        assert_eq!(out[0], Owned::Skipped(157, SkipReason::NmeaTooLong));
        assert_eq!(out[1], Owned::Nmea(GGA[..GGA.len() - 2].to_vec()));
        assert_eq!(out.len(), 2);
    }

    #[test]
    fn a_high_precision_gga_past_82_bytes_comes_out_whole_up_to_130() {
        let gga = b"$GPGGA,172814.0,3723.46587704,N,12202.26957864,W,2,6,1.2,18.893,M,-25.669,M,2.0,0031*4F\r\n";
        assert!(gga.len() > 82);
        let out = run(&[gga]);
        assert_eq!(out, vec![Owned::Nmea(gga[..gga.len() - 2].to_vec())]);
        let fill = |n: usize| sentence(&format!("GPTXT,{}", "x".repeat(n)));
        let longest = fill(MAX_NMEA_LEN - 2 - 1 - 6 - 3);
        assert_eq!(longest.len(), MAX_NMEA_LEN);
        let too_long = fill(MAX_NMEA_LEN - 2 - 1 - 6 - 3 + 1);
        let out = run(&[&longest, &too_long, GGA]);
        assert_eq!(out[0], Owned::Nmea(longest[..longest.len() - 2].to_vec()));
        assert_eq!(
            out[1],
            Owned::Skipped(too_long.len(), SkipReason::NmeaTooLong)
        );
        assert_eq!(out[2], Owned::Nmea(GGA[..GGA.len() - 2].to_vec()));
    }

    #[test]
    fn a_doubled_start_and_a_lower_case_checksum_are_one_sentence_each() {
        let mut doubled = b"$".to_vec();
        doubled.extend(GGA);
        let lower = sentence("GNVTG,,T,,M,0.117,N,0.216,K,A").to_ascii_lowercase();
        let lower = [
            b"$GNVTG,,T,,M,0.117,N,0.216,K,A*".as_slice(),
            &lower[lower.len() - 4..],
        ]
        .concat();
        let out = run(&[&doubled, &lower]);
        assert_eq!(
            out,
            vec![
                Owned::Nmea(doubled[..doubled.len() - 2].to_vec()),
                Owned::Nmea(lower[..lower.len() - 2].to_vec()),
            ]
        );
        for line in [&doubled[..doubled.len() - 2], &lower[..lower.len() - 2]] {
            assert!(crate::gps::nmea::parse(line).is_ok());
        }
        // A third `$` is a false start: skipped, and the doubled sentence after it found.
        let mut tripled = b"$".to_vec();
        tripled.extend(&doubled);
        let out = run(&[&tripled]);
        assert_eq!(out[0], Owned::Skipped(1, SkipReason::NmeaBadByte));
        assert_eq!(out[1], Owned::Nmea(doubled[..doubled.len() - 2].to_vec()));
    }

    #[test]
    fn bad_nmea_checksum_is_skipped() {
        let mut bad = GGA.to_vec();
        bad[10] = b'9';
        let out = run(&[&bad]);
        assert_eq!(
            out,
            vec![Owned::Skipped(GGA.len(), SkipReason::NmeaChecksum)]
        );
    }

    #[test]
    fn oversized_ubx_length_resyncs_at_once_without_waiting() {
        let mut stream = vec![0xB5, 0x62, 0x01, 0x07, 0xFF, 0xFF];
        stream.extend(poll(msg::MON_VER));
        let mut framer = GnssFramer::new();
        framer.push(&stream);
        let mut out = Vec::new();
        drain(&mut framer, &mut out);
        assert_eq!(
            out,
            vec![
                Owned::Skipped(6, SkipReason::UbxTooLong),
                Owned::Ubx(poll(msg::MON_VER))
            ]
        );
    }

    #[test]
    fn frame_hidden_inside_a_corrupted_frame_is_recovered() {
        // A header whose length swallows the next frame: the checksum fails once the
        // bytes are in, and the framer rescans from the byte after the false sync.
        let inner = poll(msg::CFG_NAV5);
        let mut stream = vec![0xB5, 0x62, 0x01, 0x07, 10, 0];
        stream.extend(&inner);
        stream.extend([0, 0, 0, 0]);
        let out = run(&[&stream]);
        assert_eq!(out[0], Owned::Skipped(6, SkipReason::UbxChecksum));
        assert_eq!(out[1], Owned::Ubx(inner));
    }

    #[test]
    fn incomplete_tail_waits_then_is_skipped_at_finish() {
        let mut framer = GnssFramer::new();
        framer.push(b"$GPGGA,1");
        assert!(framer.next_item().is_none());
        assert_eq!(framer.pending(), 8);
        framer.finish();
        assert_eq!(
            framer.next_item(),
            Some(Item::Skipped {
                bytes: 8,
                reason: SkipReason::Truncated
            })
        );
    }

    /// A piece of a test stream: a valid frame or garbage.
    #[derive(Debug, Clone)]
    enum Piece {
        Frame(Owned, Vec<u8>),
        Garbage(Vec<u8>),
    }

    fn piece() -> impl Strategy<Value = Piece> {
        let nmea = "[A-Z]{5}(,[0-9A-Z.]{0,8}){0,7}".prop_map(|body| {
            let wire = sentence(&body);
            Piece::Frame(Owned::Nmea(wire[..wire.len() - 2].to_vec()), wire)
        });
        let ubx = (
            any::<u8>(),
            any::<u8>(),
            proptest::collection::vec(any::<u8>(), 0..120),
        )
            .prop_map(|(c, i, p)| {
                let wire = Frame::new((c, i), &p).to_bytes();
                Piece::Frame(Owned::Ubx(wire.clone()), wire)
            });
        // Garbage rich in the bytes that start, end or confuse items.
        let byte = prop_oneof![
            any::<u8>(),
            Just(b'$'),
            Just(0xB5),
            Just(0x62),
            Just(b'*'),
            Just(b'\r'),
            Just(b'\n'),
            Just(b'A'),
        ];
        let garbage = proptest::collection::vec(byte, 1..40).prop_map(Piece::Garbage);
        prop_oneof![3 => nmea, 3 => ubx, 2 => garbage]
    }

    proptest! {
        #![proptest_config(ProptestConfig { cases: 200, ..ProptestConfig::default() })]

        #[test]
        fn every_untouched_frame_survives_any_split_in_order(
            pieces in proptest::collection::vec(piece(), 0..20),
            cuts in proptest::collection::vec(any::<prop::sample::Index>(), 0..30),
        ) {
            let mut stream = Vec::new();
            let mut expected = Vec::new();
            for p in &pieces {
                match p {
                    Piece::Frame(item, wire) => {
                        // Garbage that runs into a frame (a `$` without a line end, a UBX
                        // header whose length covers the frame) is rejected by the
                        // framer at the latest at the end of input, and rescanning then
                        // finds the frame: so every frame is expected.
                        expected.push(item.clone());
                        stream.extend(wire);
                    }
                    Piece::Garbage(g) => stream.extend(g),
                }
            }
            let mut at: Vec<usize> = cuts.iter().map(|i| i.index(stream.len() + 1)).collect();
            at.push(0);
            at.push(stream.len());
            at.sort_unstable();
            let chunks: Vec<&[u8]> = at.windows(2).map(|w| &stream[w[0]..w[1]]).collect();
            let out = run(&chunks);

            let accounted: usize = out.iter().map(|o| match o {
                Owned::Nmea(l) => l.len() + 2,
                Owned::Ubx(f) => f.len(),
                Owned::Skipped(n, _) => *n,
            }).sum();
            prop_assert_eq!(accounted, stream.len());

            // Garbage ending in `$` before a sentence makes it a doubled start: the same
            // sentence.
            let got: Vec<Owned> = out
                .iter()
                .filter(|o| !matches!(o, Owned::Skipped(..)))
                .map(|o| match o {
                    Owned::Nmea(l) if l.starts_with(b"$$") => Owned::Nmea(l[1..].to_vec()),
                    o => o.clone(),
                })
                .collect();
            let mut rest = got.iter();
            for e in &expected {
                prop_assert!(rest.any(|g| g == e), "missing {:?} in {:?}", e, got);
            }
        }

        #[test]
        fn arbitrary_bytes_never_panic_and_are_all_accounted(
            bytes in proptest::collection::vec(any::<u8>(), 0..600),
            split in 1usize..64,
        ) {
            let chunks: Vec<&[u8]> = bytes.chunks(split).collect();
            let out = run(&chunks);
            let accounted: usize = out.iter().map(|o| match o {
                Owned::Nmea(l) => l.len() + 2,
                Owned::Ubx(f) => f.len(),
                Owned::Skipped(n, _) => *n,
            }).sum();
            // Lines ending in a bare LF count one byte less than assumed here.
            let bare_lf = out.iter().filter(|o| matches!(o, Owned::Nmea(_))).count();
            prop_assert!(accounted >= bytes.len() && accounted <= bytes.len() + bare_lf);
        }
    }
}
