//! The NMEA parser and fix assembler against a real receiver: gpsd's NEO-M8N regression
//! capture, checked sentence by sentence and fix by fix against gpsd's own decode of it
//! (the `.chk` file), and corrupted the ways a serial line corrupts data.

use aloft_sensors::gps::fix::{Fix, FixAssembler};
use aloft_sensors::gps::nmea::{self, NmeaError, Sentence};

mod common;

fn read_capture(name: &str) -> String {
    String::from_utf8(common::read_capture(name)).expect("a text capture")
}

/// The capture's sentences with their CRLF line ends, without the recorder's `#` lines.
fn capture_lines() -> Vec<String> {
    read_capture("gpsd-neo-m8n.nmea")
        .split_inclusive('\n')
        .filter(|l| !l.starts_with('#') && !l.trim().is_empty())
        .map(str::to_owned)
        .collect()
}

fn assemble<'a>(lines: impl IntoIterator<Item = &'a [u8]>) -> Vec<Fix> {
    let mut assembler = FixAssembler::new();
    let mut fixes = Vec::new();
    for line in lines {
        if let Ok(sentence) = nmea::parse(line) {
            fixes.extend(assembler.push(&sentence));
        }
    }
    fixes.extend(assembler.finish());
    fixes
}

#[test]
fn every_sentence_of_the_neo_m8n_capture_parses_into_a_typed_sentence() {
    let lines = capture_lines();
    assert!(lines.len() > 250, "{} lines", lines.len());
    let mut counts = [0usize; 8];
    for line in &lines {
        assert!(
            line.ends_with("\r\n"),
            "capture has CRLF line ends: {line:?}"
        );
        let sentence = nmea::parse(line.as_bytes()).unwrap_or_else(|e| panic!("{line:?}: {e}"));
        let slot = match sentence {
            Sentence::Gga(_) => 0,
            Sentence::Rmc(_) => 1,
            Sentence::Gsa(_) => 2,
            Sentence::Gsv(_) => 3,
            Sentence::Vtg(_) => 4,
            Sentence::Gll(_) => 5,
            Sentence::Other(_) => 6,
            Sentence::Gns(_) | Sentence::Zda(_) => 7,
        };
        counts[slot] += 1;
    }
    // The receiver sends the six types and nothing else; every line was counted once.
    assert!(counts[..6].iter().all(|&n| n > 0), "{counts:?}");
    assert_eq!(counts[6..], [0, 0]);
    assert_eq!(counts.iter().sum::<usize>(), lines.len());
}

/// gpsd's TPV reports: the position it decoded per epoch.
struct Tpv {
    lat: f64,
    lon: f64,
    alt_msl: Option<f64>,
    speed: Option<f64>,
    /// `hh:mm:ss.sss` (the date is a regression-harness artefact: 2034, not 2015).
    time_of_day: Option<String>,
}

fn gpsd_tpv_reports() -> Vec<Tpv> {
    read_capture("gpsd-neo-m8n.nmea.chk")
        .lines()
        .filter(|l| l.starts_with('{'))
        .map(|l| serde_json::from_str::<serde_json::Value>(l).expect("gpsd writes JSON"))
        .filter(|v| v["class"] == "TPV")
        .map(|v| Tpv {
            lat: v["lat"].as_f64().expect("every TPV has lat"),
            lon: v["lon"].as_f64().expect("every TPV has lon"),
            alt_msl: v["altMSL"].as_f64(),
            speed: v["speed"].as_f64(),
            time_of_day: v["time"].as_str().map(|t| {
                t.split_once('T')
                    .expect("TPV time is ISO 8601")
                    .1
                    .trim_end_matches('Z')
                    .to_owned()
            }),
        })
        .collect()
}

fn time_of_day(fix: &Fix) -> String {
    let t = fix.time.expect("every epoch of the capture has a time");
    format!(
        "{:02}:{:02}:{:02}.{:03}",
        t.hour,
        t.minute,
        t.second,
        t.nanosecond / 1_000_000
    )
}

#[test]
fn assembled_fixes_match_gpsds_decode_of_the_same_capture() {
    let lines = capture_lines();
    let fixes = assemble(lines.iter().map(|l| l.as_bytes()));
    let reports = gpsd_tpv_reports();
    assert_eq!(reports.len(), 23);
    // gpsd reports an epoch when its cycle ends (at GLL); the capture stops in the middle
    // of one more epoch, which only our finish() flushes.
    assert_eq!(fixes.len(), reports.len() + 1);
    for (i, (fix, tpv)) in fixes.iter().zip(&reports).enumerate() {
        let lat = fix.latitude_deg.unwrap();
        let lon = fix.longitude_deg.unwrap();
        // gpsd prints 9 decimals.
        assert!(
            (lat - tpv.lat).abs() < 1e-8,
            "epoch {i}: lat {lat} vs {}",
            tpv.lat
        );
        assert!(
            (lon - tpv.lon).abs() < 1e-8,
            "epoch {i}: lon {lon} vs {}",
            tpv.lon
        );
        if let Some(alt) = tpv.alt_msl {
            assert_eq!(fix.altitude_msl_m, Some(alt), "epoch {i}");
        }
        if let Some(speed) = tpv.speed {
            let ours = fix.ground_speed_mps.unwrap();
            // gpsd prints 3 decimals.
            assert!((ours - speed).abs() <= 5e-4, "epoch {i}: {ours} vs {speed}");
        }
        if let Some(t) = &tpv.time_of_day {
            assert_eq!(&time_of_day(fix), t, "epoch {i}");
            assert_eq!(fix.time.and_then(|t| t.date), Some((2015, 3, 18)));
        }
        assert!(fix.valid, "epoch {i}");
    }
    // The first epoch is the capture's leading GLL alone: gpsd reports it without time.
    assert_eq!(reports[0].time_of_day, None);
    assert_eq!(time_of_day(&fixes[0]), "17:19:25.000");
    assert_eq!(time_of_day(fixes.last().unwrap()), "17:19:48.000");
}

#[test]
fn a_line_cut_in_two_gives_typed_errors_for_both_halves() {
    for line in capture_lines() {
        let bytes = line.as_bytes();
        for cut in 1..bytes.len() - 2 {
            let (head, tail) = bytes.split_at(cut);
            assert!(nmea::parse(head).is_err(), "{head:?}");
            assert!(nmea::parse(tail).is_err(), "{tail:?}");
        }
    }
}

#[test]
fn two_lines_spliced_where_bytes_were_lost_fail_the_checksum() {
    let lines = capture_lines();
    for pair in lines.windows(2) {
        let (a, b) = (pair[0].as_bytes(), pair[1].as_bytes());
        // Lose the end of one line and the start of the next, as an overrun UART does.
        let spliced = [&a[..a.len() / 2], &b[b.len() / 2..]].concat();
        let err = nmea::parse(&spliced).unwrap_err();
        assert!(
            matches!(
                err,
                NmeaError::ChecksumMismatch { .. } | NmeaError::TooLong | NmeaError::BadAddress
            ),
            "{:?}: {err:?}",
            String::from_utf8_lossy(&spliced)
        );
    }
}

#[test]
fn every_single_bit_flip_in_the_capture_is_a_typed_error() {
    for line in capture_lines() {
        let mut bytes = line.into_bytes();
        let original = bytes.clone();
        let checksum_digits = bytes.len() - 4..bytes.len() - 2;
        for i in 0..bytes.len() {
            for bit in 0..8 {
                bytes[i] ^= 1 << bit;
                // The case bit of a checksum hex letter: the same checksum, read the same.
                if checksum_digits.contains(&i)
                    && bit == 5
                    && bytes[i].is_ascii_alphabetic()
                    && bytes[i].is_ascii_hexdigit()
                {
                    assert_eq!(nmea::parse(&bytes), nmea::parse(&original));
                    bytes[i] ^= 1 << bit;
                    continue;
                }
                assert!(
                    nmea::parse(&bytes).is_err(),
                    "{:?}",
                    String::from_utf8_lossy(&bytes)
                );
                bytes[i] ^= 1 << bit;
            }
        }
    }
}

#[test]
fn a_garbled_stream_loses_sentences_but_never_yields_a_wrong_fix() {
    let lines = capture_lines();
    let clean = assemble(lines.iter().map(|l| l.as_bytes()));
    // Many damage patterns: each seed garbles or cuts a different third of the lines, so
    // every kind of sentence (the timed ones and the cycle's first and last) gets lost
    // in every combination with its neighbours somewhere. The first two epochs stay
    // whole: the assembler learns the receiver's cycle from them.
    const LEARNING: usize = 30;
    for seed in 1..=40u64 {
        let mut state = seed.wrapping_mul(0x9E37_79B9_7F4A_7C15);
        let mut next = move || {
            state = state
                .wrapping_mul(6_364_136_223_846_793_005)
                .wrapping_add(1_442_695_040_888_963_407);
            state >> 33
        };
        let garbled: Vec<Vec<u8>> = lines
            .iter()
            .enumerate()
            .map(|(n, l)| {
                let mut b = l.clone().into_bytes();
                match if n < LEARNING { 5 } else { next() % 6 } {
                    0 => {
                        let i = 1 + usize::try_from(next()).unwrap() % (b.len() - 3);
                        b[i] = if b[i] == b'9' { b'8' } else { b'9' };
                    }
                    1 => b.truncate(b.len() / 2),
                    _ => {}
                }
                b
            })
            .collect();
        let dropped = garbled.iter().filter(|l| nmea::parse(l).is_err()).count();
        assert!(
            dropped > (lines.len() - LEARNING) / 6,
            "seed {seed}: {dropped}"
        );
        let fixes = assemble(garbled.iter().map(Vec::as_slice));
        assert!(fixes.len() > clean.len() / 2, "seed {seed}");
        for fix in &fixes {
            if fix.time.is_none() {
                // The remains of an epoch whose timed sentences were all lost: no position.
                assert_eq!(
                    (fix.latitude_deg, fix.longitude_deg),
                    (None, None),
                    "seed {seed}: {fix:?}"
                );
                continue;
            }
            let twin = clean
                .iter()
                .find(|c| c.time == fix.time)
                .unwrap_or_else(|| {
                    panic!("seed {seed}: a fix at a time the receiver never sent: {fix:?}")
                });
            for (ours, truth) in [
                (fix.latitude_deg, twin.latitude_deg),
                (fix.longitude_deg, twin.longitude_deg),
                (fix.altitude_msl_m, twin.altitude_msl_m),
                (fix.ground_speed_mps, twin.ground_speed_mps),
                (fix.pdop, twin.pdop),
            ] {
                if let Some(v) = ours {
                    let t = truth.unwrap();
                    // Position from RMC or GLL when GGA was lost: the same solution.
                    assert!((v - t).abs() < 1e-9, "seed {seed}: {v} vs {t} in {fix:?}");
                }
            }
            assert!(
                fix.satellites.len() <= twin.satellites.len(),
                "seed {seed}: {} satellites at {:?}, the receiver listed {}; damaged lines: {:?}",
                fix.satellites.len(),
                fix.time,
                twin.satellites.len(),
                garbled
                    .iter()
                    .enumerate()
                    .filter(|(_, l)| nmea::parse(l).is_err())
                    .map(|(i, _)| i)
                    .collect::<Vec<_>>()
            );
        }
    }
}

#[test]
fn the_capture_with_doubled_starts_and_lower_case_checksums_gives_the_same_fixes() {
    let lines = capture_lines();
    let plain = assemble(lines.iter().map(|l| l.as_bytes()));
    // Every other line with `$$`, every third with its checksum in lower case, as receivers
    // with an overrun buffer or a lower-case printer send them.
    let variants: Vec<String> = lines
        .iter()
        .enumerate()
        .map(|(i, l)| {
            let (head, digits) = l.trim_end().split_at(l.trim_end().len() - 2);
            let digits = if i % 3 == 0 {
                digits.to_ascii_lowercase()
            } else {
                digits.to_owned()
            };
            let start = if i % 2 == 0 { "$" } else { "" };
            format!("{start}{head}{digits}\r\n")
        })
        .collect();
    assert!(variants.iter().any(|l| l.starts_with("$$")));
    assert!(
        variants
            .iter()
            .any(|l| l.trim_end().ends_with(|c: char| c.is_ascii_lowercase()))
    );
    let varied = assemble(variants.iter().map(|l| l.as_bytes()));
    assert_eq!(varied, plain);
    assert!(plain.len() >= 22);
}
