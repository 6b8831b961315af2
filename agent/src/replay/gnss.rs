//! Replay of GNSS captures: NMEA text into one fix per epoch, UBX binary into one fix per
//! navigation solution (NAV-PVT, the legacy NAV set of one epoch, or an HNR-PVT).
//!
//! Invariant: the NMEA path parses each line with the same parser the live port uses, and
//! the UBX path splits the bytes with the same demultiplexer and assembles fixes with the
//! same assembler, so a capture replays exactly as the agent would have decoded it.

use std::io::{self, Write};

use aloft_sensors::gps::Fix;
use aloft_sensors::gps::fix::FixAssembler;
use aloft_sensors::gps::framer::{GnssFramer, Item};
use aloft_sensors::gps::nav::UbxFixAssembler;
use aloft_sensors::gps::nmea;
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
    // The live path's assembler: NAV-PVT, the legacy NAV set or HNR-PVT, whichever the
    // receiver sends.
    let mut assembler = UbxFixAssembler::new();
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
                    let mut fixes = Vec::new();
                    if let Err(e) = assembler.push(&frame, |fix| fixes.push(fix)) {
                        summary.skipped += 1;
                        writeln!(
                            diagnostics,
                            "frame {frames}: {:?} skipped: {e}",
                            frame.kind()
                        )?;
                    }
                    for fix in &fixes {
                        write_fix(out, frames, fix, &mut summary)?;
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
    if let Some(fix) = assembler.finish() {
        write_fix(out, frames, &fix, &mut summary)?;
    }
    Ok(summary)
}

/// One fix of a UBX capture as a JSON line, numbered by the frame that completed it.
fn write_fix(
    out: &mut impl Write,
    frame: u64,
    fix: &Fix,
    summary: &mut ReplaySummary,
) -> io::Result<()> {
    let utc_ns = fix.time.and_then(|t| t.utc_ns());
    write_json(
        out,
        &FixRecord {
            line: None,
            frame: Some(frame),
            utc_ns,
            fix,
        },
    )?;
    summary.records += 1;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_receiver_without_nav_pvt_replays_one_fix_per_epoch() {
        use aloft_sensors::flight::Scenario;
        use aloft_sensors::gps::sim::{Outputs, UbloxSim, UbloxSimConfig};
        use aloft_sensors::serial::SerialDevice;

        let scenario = Scenario::new(3, 1_700_000_000_000_000_000);
        let mut receiver = UbloxSim::new(
            UbloxSimConfig::default()
                .with_seed(3)
                .with_rate_hz(1.0)
                .with_outputs(Outputs::LEGACY_NAV_ONLY),
        );
        let mut capture = b"# aloft capture: ubx\n".to_vec();
        for second in 0..30 {
            let mut bytes = Vec::new();
            receiver.tick(&scenario.state_at(600.0 + f64::from(second)), &mut bytes);
            capture.extend_from_slice(&bytes);
        }
        let (mut out, mut diagnostics) = (Vec::new(), Vec::new());
        let summary = replay_ubx(&capture, &mut out, &mut diagnostics).unwrap();
        let text = String::from_utf8(out).unwrap();
        assert_eq!(
            summary.skipped,
            0,
            "{}",
            String::from_utf8_lossy(&diagnostics)
        );
        // One fix per second of output, each with a position.
        assert!((28..=30).contains(&summary.records), "{summary:?}");
        assert_eq!(text.lines().count() as u64, summary.records);
        assert!(text.lines().all(|l| l.contains("\"latitude")), "{text}");
    }

    #[test]
    fn binary_starts_after_the_last_comment_line() {
        assert_eq!(binary_start(b"# a\n# b\n\xb5\x62"), 8);
        assert_eq!(binary_start(b"\xb5\x62#"), 0);
        assert_eq!(binary_start(b"# only a comment"), 16);
    }
}
