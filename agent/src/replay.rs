//! `aloft-agent replay`: decode a capture from a real device the way the agent decodes the
//! live port, and print one JSON object per record: how a field engineer checks a capture.
//!
//! Invariants: every byte of the capture goes through the same parsers as live data;
//! recorder `#` comment lines are skipped; a line (or, in a binary UBX capture, a stretch of
//! bytes) that cannot be decoded is reported on the diagnostic stream with its line number
//! and skipped, never fatal. Only a failure to write the output is an error.

use std::io::{self, Write};

use aloft_sensors::cosmicwatch::{CountRate, DetectorStream, MuonEvent, StreamItem};
use serde::Serialize;

/// The device a capture comes from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum CaptureKind {
    /// NMEA 0183 text from a GNSS receiver: one JSON object per navigation epoch (fix).
    Nmea,
    /// u-blox binary (UBX, possibly with NMEA interleaved): one JSON object per NAV-PVT fix.
    Ubx,
    /// CosmicWatch v2 or v3X detector output: one JSON object per event.
    Cosmicwatch,
}

/// What a replay decoded.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ReplaySummary {
    /// JSON records written.
    pub records: u64,
    /// Lines (or UBX stretches) reported and skipped.
    pub skipped: u64,
}

/// Decodes `capture` as `kind`, writing JSON lines to `out` and problems to `diagnostics`.
pub fn run(
    kind: CaptureKind,
    capture: &[u8],
    out: &mut impl Write,
    diagnostics: &mut impl Write,
) -> io::Result<ReplaySummary> {
    match kind {
        CaptureKind::Nmea => gnss::replay_nmea(capture, out, diagnostics),
        CaptureKind::Ubx => gnss::replay_ubx(capture, out, diagnostics),
        CaptureKind::Cosmicwatch => replay_cosmicwatch(capture, out, diagnostics),
    }
}

/// Lines of a text capture with their 1-based numbers, without the line end.
pub(crate) fn numbered_lines(capture: &[u8]) -> impl Iterator<Item = (usize, &[u8])> {
    capture
        .split(|&b| b == b'\n')
        .map(|l| l.strip_suffix(b"\r").unwrap_or(l))
        .enumerate()
        .map(|(i, l)| (i + 1, l))
        // A capture that ends with a newline has no line after it.
        .filter(|(_, l)| !l.is_empty())
}

fn write_json(out: &mut (impl Write + ?Sized), value: &impl Serialize) -> io::Result<()> {
    serde_json::to_writer(&mut *out, value).map_err(io::Error::other)?;
    out.write_all(b"\n")
}

/// One detector event as replay prints it.
#[derive(Serialize)]
struct EventRecord {
    line: usize,
    event: u64,
    detector_time_s: f64,
    adc: u16,
    sipm_peak_v: f64,
    dead_time_s: f64,
    temperature_k: Option<f64>,
    coincidence: Option<bool>,
    pressure_pa: Option<f64>,
    acceleration_m_s2: Option<[f64; 3]>,
    angular_rate_rad_s: Option<[f64; 3]>,
    /// Dead-time-corrected rate over the detector's window, when it has live time.
    count_rate_per_s: Option<f64>,
}

impl EventRecord {
    fn new(line: usize, e: &MuonEvent, rate: Option<f64>) -> Self {
        EventRecord {
            line,
            event: e.event,
            detector_time_s: e.detector_time_s,
            adc: e.adc,
            sipm_peak_v: e.sipm_peak_v,
            dead_time_s: e.dead_time_s,
            temperature_k: e.temperature_k,
            coincidence: e.coincidence,
            pressure_pa: e.pressure_pa,
            acceleration_m_s2: e.imu.map(|i| i.acceleration_mps2),
            angular_rate_rad_s: e.imu.map(|i| i.angular_rate_rad_s),
            count_rate_per_s: rate,
        }
    }
}

fn replay_cosmicwatch(
    capture: &[u8],
    out: &mut impl Write,
    diagnostics: &mut impl Write,
) -> io::Result<ReplaySummary> {
    let mut stream = DetectorStream::new();
    let mut rate = CountRate::default();
    let mut summary = ReplaySummary::default();
    for (n, line) in numbered_lines(capture) {
        let event = match stream.feed_line(line) {
            StreamItem::Event(e) => e,
            StreamItem::Reboot { cause, first_event } => {
                writeln!(diagnostics, "line {n}: the detector restarted ({cause:?})")?;
                rate.restart();
                match first_event {
                    Some(e) => e,
                    None => {
                        rate.restart_at_run_start();
                        continue;
                    }
                }
            }
            StreamItem::RunStart => {
                rate.restart_at_run_start();
                continue;
            }
            StreamItem::Bad(e) => {
                summary.skipped += 1;
                writeln!(diagnostics, "line {n}: skipped: {e}")?;
                continue;
            }
            StreamItem::Nothing | StreamItem::Descriptor(_) => continue,
        };
        let estimate = rate.push(&event).ok().map(|r| r.rate_per_s);
        write_json(out, &EventRecord::new(n, &event, estimate))?;
        summary.records += 1;
    }
    Ok(summary)
}

mod gnss;

#[cfg(test)]
mod tests {
    use super::*;

    fn replay(
        kind: CaptureKind,
        capture: &[u8],
    ) -> (Vec<serde_json::Value>, String, ReplaySummary) {
        let (mut out, mut diag) = (Vec::new(), Vec::new());
        let summary = run(kind, capture, &mut out, &mut diag).unwrap();
        let records = out
            .split(|&b| b == b'\n')
            .filter(|l| !l.is_empty())
            .map(|l| serde_json::from_slice(l).unwrap())
            .collect();
        (records, String::from_utf8(diag).unwrap(), summary)
    }

    #[test]
    fn cosmicwatch_bad_lines_are_reported_with_their_number_and_skipped() {
        let capture = b"# CosmicWatch: The Desktop Muon Detector\nDevice ID: billy\n\
            1 54840 675 317.99 10 18.00\nnot an event\n2 322779 696 307.73 128 19.61\n";
        let (records, diag, summary) = replay(CaptureKind::Cosmicwatch, capture);
        assert_eq!(
            summary,
            ReplaySummary {
                records: 2,
                skipped: 1
            }
        );
        assert_eq!(records[0]["event"], 1);
        assert_eq!(records[1]["line"], 5);
        assert!(diag.starts_with("line 4: skipped"), "{diag}");
    }

    #[test]
    fn numbered_lines_strip_crlf_and_count_from_one() {
        let lines: Vec<_> = numbered_lines(b"a\r\n\r\nb\n").collect();
        assert_eq!(lines, vec![(1, &b"a"[..]), (3, &b"b"[..])]);
    }
}
