//! A real NEO-M8N UBX capture (gpsd's regression log ublox-neo-m8n.log) through the port
//! framer and the NAV-PVT decoder, checked against gpsd's own decode of the same bytes
//! (the .chk file): every TPV report gpsd made from a NAV-PVT must be matched by ours in
//! time, latitude, longitude and both altitudes.

use aloft_sensors::gps::fix::{Fix, FixMode};
use aloft_sensors::gps::framer::{GnssFramer, Item};
use aloft_sensors::gps::ubx::{NavPvt, msg};

mod common;

use common::captures_dir as captures;

/// The binary part of the capture: everything after the `#` comment lines.
fn capture_bytes() -> Vec<u8> {
    let raw = std::fs::read(captures().join("gpsd-ublox-neo-m8n.ubx")).expect("capture readable");
    let mut at = 0;
    while raw.get(at) == Some(&b'#') {
        let end = raw[at..]
            .iter()
            .position(|&b| b == b'\n')
            .expect("header line ends");
        at += end + 1;
    }
    raw[at..].to_vec()
}

struct Decoded {
    fixes: Vec<Fix>,
    frame_counts: std::collections::BTreeMap<(u8, u8), usize>,
    skipped: usize,
}

fn decode(bytes: &[u8], chunk: usize) -> Decoded {
    let mut framer = GnssFramer::new();
    let mut out = Decoded {
        fixes: Vec::new(),
        frame_counts: Default::default(),
        skipped: 0,
    };
    let take = |framer: &mut GnssFramer, out: &mut Decoded| {
        while let Some(item) = framer.next_item() {
            match item {
                Item::Ubx(frame) => {
                    *out.frame_counts.entry(frame.kind()).or_default() += 1;
                    if frame.kind() == msg::NAV_PVT {
                        out.fixes
                            .push(NavPvt::decode(&frame).expect("NAV-PVT decodes").to_fix());
                    }
                }
                Item::Nmea(line) => panic!("unexpected NMEA {line:?}"),
                Item::Skipped { bytes, .. } => out.skipped += bytes,
            }
        }
    };
    for piece in bytes.chunks(chunk) {
        framer.push(piece);
        take(&mut framer, &mut out);
    }
    framer.finish();
    take(&mut framer, &mut out);
    out
}

/// gpsd's TPV time `2017-07-19T08:50:01.000Z` as (date, ms of day).
fn tpv_time(s: &str) -> ((u16, u8, u8), i64) {
    let n = |a: usize, b: usize| s[a..b].parse::<i64>().expect("TPV time digits");
    let date = (n(0, 4) as u16, n(5, 7) as u8, n(8, 10) as u8);
    let ms = ((n(11, 13) * 60 + n(14, 16)) * 60 + n(17, 19)) * 1000 + n(20, 23);
    (date, ms)
}

/// A fix's UTC as (date, ms of day), rounded to the millisecond as gpsd prints it.
fn fix_time(fix: &Fix) -> ((u16, u8, u8), i64) {
    let t = fix.time.expect("NAV-PVT time valid");
    let ms = ((i64::from(t.hour) * 60 + i64::from(t.minute)) * 60 + i64::from(t.second)) * 1000
        + (i64::from(t.nanosecond) + 500_000) / 1_000_000;
    (t.date.expect("NAV-PVT date valid"), ms)
}

#[test]
fn every_nav_pvt_of_the_neo_m8n_capture_matches_gpsd() {
    let bytes = capture_bytes();
    let decoded = decode(&bytes, 64);

    let chk = std::fs::read_to_string(captures().join("gpsd-ublox-neo-m8n.ubx.chk")).unwrap();
    let tpvs: Vec<serde_json::Value> = chk
        .lines()
        .filter(|l| l.starts_with('{'))
        .map(|l| serde_json::from_str::<serde_json::Value>(l).unwrap())
        .filter(|v| v["class"] == "TPV")
        .collect();
    assert!(
        tpvs.len() >= 20,
        "only {} TPV reports in the .chk",
        tpvs.len()
    );

    for tpv in &tpvs {
        let time = tpv_time(tpv["time"].as_str().unwrap());
        let fix = decoded
            .fixes
            .iter()
            .find(|f| fix_time(f) == time)
            .unwrap_or_else(|| panic!("no NAV-PVT at {time:?}"));
        let lat = tpv["lat"].as_f64().unwrap();
        let lon = tpv["lon"].as_f64().unwrap();
        let alt_msl = tpv["altMSL"].as_f64().unwrap();
        let alt_hae = tpv["altHAE"].as_f64().unwrap();
        // gpsd prints degrees to 1e-9 and metres to 1e-4: NAV-PVT's 1e-7 deg and mm are exact.
        assert!(
            (fix.latitude_deg.unwrap() - lat).abs() < 1e-9,
            "{time:?} lat"
        );
        assert!(
            (fix.longitude_deg.unwrap() - lon).abs() < 1e-9,
            "{time:?} lon"
        );
        assert!(
            (fix.altitude_msl_m.unwrap() - alt_msl).abs() < 1e-4,
            "{time:?} altMSL"
        );
        let hae = fix.altitude_msl_m.unwrap() + fix.geoid_separation_m.unwrap();
        assert!((hae - alt_hae).abs() < 1e-4, "{time:?} altHAE");
        // gpsd takes speed, track and the accuracy estimates straight from NAV-PVT (its
        // climb it derives from altitude differences, so that is not compared).
        let close = |ours: Option<f64>, key: &str, tol: f64| {
            let theirs = tpv[key].as_f64().expect("TPV field");
            assert!(
                (ours.expect("field decoded") - theirs).abs() < tol,
                "{time:?} {key}"
            );
        };
        close(fix.ground_speed_mps, "speed", 5e-4);
        close(fix.track_deg, "track", 5e-5);
        close(fix.horizontal_accuracy_m, "eph", 5e-4);
        close(fix.vertical_accuracy_m, "epv", 5e-4);
        assert_eq!(fix.mode, Some(FixMode::ThreeD));
        assert!(fix.valid);
    }

    // gpsd reports a TPV for every epoch but the first (it has not yet seen an epoch end)
    // and the last (the log ends before the next one).
    assert_eq!(decoded.fixes.len(), tpvs.len() + 2);
    // The rest of the capture: NAV-TIMEGPS each epoch (the log ends one byte short of the
    // last one) and NAV-SAT every fifth.
    assert_eq!(
        decoded.frame_counts.get(&(0x01, 0x20)),
        Some(&(decoded.fixes.len() - 1))
    );
    assert_eq!(decoded.frame_counts.get(&(0x01, 0x35)), Some(&5));
    assert_eq!(decoded.frame_counts.len(), 3, "{:?}", decoded.frame_counts);
    // Only the line break after the header, two stray bytes before the first frame, and
    // the 23 bytes of the cut-off last frame.
    assert_eq!(decoded.skipped, 3 + 23);
}

#[test]
fn capture_decodes_the_same_whatever_the_read_size() {
    let bytes = capture_bytes();
    let whole = decode(&bytes, bytes.len());
    for chunk in [1, 3, 92, 100, 511] {
        let split = decode(&bytes, chunk);
        assert_eq!(split.fixes, whole.fixes, "chunk {chunk}");
        assert_eq!(split.frame_counts, whole.frame_counts, "chunk {chunk}");
        assert_eq!(split.skipped, whole.skipped, "chunk {chunk}");
    }
}

#[test]
fn the_ubx_fix_assembler_gives_the_captures_nav_pvt_fixes_and_nothing_more() {
    let bytes = capture_bytes();
    let whole = decode(&bytes, bytes.len());
    let mut framer = GnssFramer::new();
    framer.push(&bytes);
    framer.finish();
    let mut assembler = aloft_sensors::gps::nav::UbxFixAssembler::new();
    let mut fixes = Vec::new();
    while let Some(item) = framer.next_item() {
        if let Item::Ubx(frame) = item {
            // NAV-TIMEGPS and NAV-SAT carry no solution: ignored, not errors.
            assembler
                .push(&frame, |f| fixes.push(f))
                .expect("solution frames decode");
        }
    }
    assert!(assembler.uses_nav_pvt());
    assert_eq!(assembler.finish(), None);
    assert_eq!(fixes, whole.fixes);
}
