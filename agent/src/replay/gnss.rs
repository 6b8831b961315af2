//! Replay of GNSS captures: NMEA text into one fix per epoch, UBX binary into one fix per
//! NAV-PVT.
//!
//! Invariant: the NMEA path parses each line with the same parser the live port uses, and
//! the UBX path splits the bytes with the same demultiplexer, so a capture replays exactly
//! as the agent would have decoded it.

use std::io::{self, Write};

use aloft_sensors::gps::Fix;
use aloft_sensors::gps::fix::FixAssembler;
use aloft_sensors::gps::framer::{GnssFramer, Item};
use aloft_sensors::gps::nmea;
use aloft_sensors::gps::ubx::{NavPvt, msg};
use serde::Serialize;

use super::{ReplaySummary, numbered_lines, write_json};

/// One fix as replay prints it: where it came from, then the fix's own fields.
#[derive(Serialize)]
struct FixRecord<'a> {
    /// Line of the capture that completed the epoch (NMEA), or the ordinal of the UBX frame.
    #[serde(skip_serializing_if = "Option::is_none")]
    line: Option<usize>,
    #[serde(skip_serializing_if = "Option::is_none")]
    frame: Option<u64>,
    /// Nanoseconds since the Unix epoch, when the fix carried a date.
    #[serde(skip_serializing_if = "Option::is_none")]
    utc_ns: Option<i64>,
    #[serde(flatten)]
    fix: &'a Fix,
}

pub(super) fn replay_nmea(
    capture: &[u8],
    out: &mut impl Write,
    diagnostics: &mut impl Write,
) -> io::Result<ReplaySummary> {
    let mut summary = ReplaySummary::default();
    let mut assembler = FixAssembler::new();
    let emit = |fix: Fix, line: usize, out: &mut dyn Write| -> io::Result<()> {
        let utc_ns = fix.time.and_then(|t| t.utc_ns());
        write_json(
            out,
            &FixRecord {
                line: Some(line),
                frame: None,
                utc_ns,
                fix: &fix,
            },
        )
    };
    let mut last_line = 0;
    for (n, line) in numbered_lines(capture) {
        last_line = n;
        if line.first() == Some(&b'#') {
            continue;
        }
        match nmea::parse(line) {
            Ok(sentence) => {
                if let Some(fix) = assembler.push(&sentence) {
                    emit(fix, n, out)?;
                    summary.records += 1;
                }
            }
            Err(e) => {
                summary.skipped += 1;
                writeln!(diagnostics, "line {n}: skipped: {e}")?;
            }
        }
    }
    if let Some(fix) = assembler.finish() {
        emit(fix, last_line, out)?;
        summary.records += 1;
    }
    Ok(summary)
}

/// Where the binary part of a UBX capture starts: after the recorder's `#` header lines.
fn binary_start(capture: &[u8]) -> usize {
    let mut at = 0;
    while capture.get(at) == Some(&b'#') {
        match capture
            .get(at..)
            .and_then(|rest| rest.iter().position(|&b| b == b'\n'))
        {
            Some(end) => at += end + 1,
            None => return capture.len(),
        }
    }
    at
}

pub(super) fn replay_ubx(
    capture: &[u8],
    out: &mut impl Write,
    diagnostics: &mut impl Write,
) -> io::Result<ReplaySummary> {
    let mut summary = ReplaySummary::default();
    let mut framer = GnssFramer::new();
    let mut frames: u64 = 0;
    let body = capture.get(binary_start(capture)..).unwrap_or_default();
    // Fed in port-sized pieces, as the live path sees it.
    let mut chunks = body.chunks(4096).peekable();
    while let Some(chunk) = chunks.next() {
        framer.push(chunk);
        if chunks.peek().is_none() {
            framer.finish();
        }
        while let Some(item) = framer.next_item() {
            match item {
                Item::Ubx(frame) => {
                    frames += 1;
                    if (frame.class, frame.id) != msg::NAV_PVT {
                        continue;
                    }
                    match NavPvt::decode(&frame) {
                        Ok(pvt) => {
                            let fix = pvt.to_fix();
                            let utc_ns = fix.time.and_then(|t| t.utc_ns());
                            write_json(
                                out,
                                &FixRecord {
                                    line: None,
                                    frame: Some(frames),
                                    utc_ns,
                                    fix: &fix,
                                },
                            )?;
                            summary.records += 1;
                        }
                        Err(e) => {
                            summary.skipped += 1;
                            writeln!(diagnostics, "frame {frames}: NAV-PVT skipped: {e}")?;
                        }
                    }
                }
                Item::Nmea(_) => frames += 1,
                Item::Skipped { bytes, reason } => {
                    summary.skipped += 1;
                    writeln!(
                        diagnostics,
                        "after frame {frames}: skipped {bytes} bytes ({reason:?})"
                    )?;
                }
            }
        }
    }
    Ok(summary)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn binary_starts_after_the_last_comment_line() {
        assert_eq!(binary_start(b"# a\n# b\n\xb5\x62"), 8);
        assert_eq!(binary_start(b"\xb5\x62#"), 0);
        assert_eq!(binary_start(b"# only a comment"), 16);
    }
}
