//! `aloft-agent replay` as a field engineer runs it: the real binary on the real device
//! captures, and on damaged ones.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

/// The device captures in the repository (the sensors crate's test data).
fn captures() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../sensors/testdata/captures")
}

fn replay(kind: &str, file: &Path) -> Output {
    Command::new(env!("CARGO_BIN_EXE_aloft-agent"))
        .args(["replay", "--kind", kind])
        .arg(file)
        .output()
        .expect("aloft-agent runs")
}

fn records(output: &Output) -> Vec<serde_json::Value> {
    String::from_utf8_lossy(&output.stdout)
        .lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("not JSON ({e}): {l}")))
        .collect()
}

#[test]
fn nmea_capture_replays_one_fix_per_epoch_matching_gpsd() {
    let out = replay("nmea", &captures().join("gpsd-neo-m8n.nmea"));
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let fixes = records(&out);
    assert_eq!(
        fixes.len(),
        24,
        "one per epoch, the last one cut off by the capture's end"
    );
    // gpsd's decode of the 17:19:26 epoch (gpsd-neo-m8n.nmea.chk): lat 44.069010500,
    // lon -121.314246333, altMSL 1147.2.
    let fix = fixes
        .iter()
        .find(|f| {
            f["time"]
                .as_str()
                .is_some_and(|t| t.ends_with("17:19:26.000Z"))
        })
        .expect("the 17:19:26 fix");
    assert!((fix["latitude_deg"].as_f64().unwrap() - 44.069_010_5).abs() < 1e-8);
    assert!((fix["longitude_deg"].as_f64().unwrap() + 121.314_246_333).abs() < 1e-8);
    assert!((fix["altitude_msl_m"].as_f64().unwrap() - 1147.2).abs() < 1e-9);
    assert_eq!(fix["time"], "2015-03-18T17:19:26.000Z");
    assert!(fix["utc_ns"].as_i64().is_some());
}

#[test]
fn ubx_capture_replays_one_fix_per_nav_pvt() {
    let out = replay("ubx", &captures().join("gpsd-ublox-neo-m8n.ubx"));
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let fixes = records(&out);
    assert_eq!(fixes.len(), 24);
    // gpsd's decode of 08:50:01.400 (gpsd-ublox-neo-m8n.ubx.chk): lat -34.906227100,
    // lon 138.608120200, altMSL 28.7290.
    let fix = fixes
        .iter()
        // NAV-PVT carries nanoseconds; gpsd rounds them to the millisecond.
        .find(|f| {
            f["time"]
                .as_str()
                .is_some_and(|t| t.starts_with("2017-07-19T08:50:01.3998"))
        })
        .expect("the 08:50:01.400 fix");
    assert!((fix["latitude_deg"].as_f64().unwrap() + 34.906_227_1).abs() < 1e-7);
    assert!((fix["longitude_deg"].as_f64().unwrap() - 138.608_120_2).abs() < 1e-7);
    assert!((fix["altitude_msl_m"].as_f64().unwrap() - 28.729).abs() < 1e-3);
    // The capture's last frame is one byte short: reported, not fatal.
    assert!(String::from_utf8_lossy(&out.stderr).contains("skipped"));
}

#[test]
fn cosmicwatch_recording_replays_one_record_per_event() {
    let out = replay("cosmicwatch", &captures().join("cosmicwatch-v2-sim.txt"));
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let events = records(&out);
    assert_eq!(events.len(), 634);
    // First event line of the file: `1 2407 99 21.91 0 20.11`.
    let first = &events[0];
    assert_eq!(first["event"], 1);
    assert_eq!(first["adc"], 99);
    assert!((first["detector_time_s"].as_f64().unwrap() - 2.407).abs() < 1e-9);
    assert!((first["sipm_peak_v"].as_f64().unwrap() - 0.021_91).abs() < 1e-9);
    assert!((first["temperature_k"].as_f64().unwrap() - 293.26).abs() < 1e-9);
    assert!(
        events.last().unwrap()["count_rate_per_s"]
            .as_f64()
            .is_some()
    );
}

#[test]
fn damaged_captures_report_bad_lines_by_number_and_still_exit_zero() {
    let dir = tempfile::tempdir().unwrap();
    let nmea = std::fs::read(captures().join("gpsd-neo-m8n.nmea")).unwrap();
    let mut damaged = Vec::new();
    for (i, line) in nmea.split_inclusive(|&b| b == b'\n').enumerate() {
        let mut line = line.to_vec();
        let middle = line.len() / 2;
        match i {
            // A flipped bit (line 11), a line cut short (line 21), line noise (line 31).
            10 => line[middle] ^= 0x01,
            20 => {
                line.truncate(middle);
                line.extend_from_slice(b"\r\n");
            }
            30 => damaged.extend_from_slice(b"\xff\x00garbage\xfe\r\n"),
            _ => {}
        }
        damaged.extend_from_slice(&line);
    }
    let path = dir.path().join("damaged.nmea");
    std::fs::write(&path, &damaged).unwrap();
    let out = replay("nmea", &path);
    assert!(out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    for n in [11, 21, 31] {
        assert!(
            stderr.contains(&format!("line {n}: skipped")),
            "line {n} not reported:\n{stderr}"
        );
    }
    assert!(
        records(&out).len() >= 20,
        "the rest of the capture still decodes"
    );
}

#[test]
fn a_missing_capture_is_a_clear_error() {
    let out = replay("nmea", Path::new("/nonexistent/flight.nmea"));
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("cannot read capture /nonexistent/flight.nmea"),
        "{stderr}"
    );
}
