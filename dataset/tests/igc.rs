//! IGC exports of the simulated flight, read back by `aerofiles` (PyPI): the header, the
//! I record, and every B record's time, position (to IGC's thousandth of a minute), GNSS
//! altitude (ellipsoidal, to 1 m), pressure altitude (ISA of the nearest static pressure,
//! to 1 m) and extensions, against the source fixes.

#![allow(clippy::unwrap_used)]

mod track_common;

use aloft_dataset::{Format, Instant, Resample, Selection};
use aloft_protocol::Quantity;
use aloft_test_support::flight::FlightOptions;
use aloft_test_support::python;
use serde_json::Value;
use track_common::*;

const READ_BACK: &str = r#"
import sys, json
from aerofiles.igc import Reader

with open(sys.argv[1], "r", newline=None) as f:
    igc = Reader().read(f)
errors = {k: [repr(e) for e in v[0]] for k, v in igc.items() if v[0]}
fixes = []
for b in igc["fix_records"][1]:
    fixes.append({
        "datetime": b["datetime"].isoformat(),
        "lat": repr(b["lat"]),
        "lon": repr(b["lon"]),
        "validity": b["validity"],
        "pressure_alt": b["pressure_alt"],
        "gps_alt": b["gps_alt"],
        "FXA": b.get("FXA"),
        "SIU": b.get("SIU"),
        "TAS": b.get("TAS"),
    })
print(json.dumps({
    "errors": errors,
    "logger": igc["logger_id"][1],
    "header": {k: str(v) for k, v in igc["header"][1].items()},
    "extensions": igc["fix_record_extensions"][1],
    "security": igc["security_records"][1],
    "fixes": fixes,
}))
"#;

fn read_back(path: &std::path::Path) -> Option<Value> {
    let python = python::readers()?;
    let out = python::run(&python, READ_BACK, &[path.as_os_str()]);
    Some(serde_json::from_str(&out.stdout).unwrap())
}

/// The reading of `q` of `sensor` nearest to `utc` within 1 s (a tie to the earlier).
fn nearest(all: &[Instant], sensor: &str, q: Quantity, utc: i64) -> Option<f64> {
    let mut best: Option<(u64, i64, f64)> = None;
    for i in all.iter().filter(|i| i.sensor == sensor) {
        let (Some(t), Some((v, _))) = (i.utc_ns, i.get(q)) else {
            continue;
        };
        let d = t.abs_diff(utc);
        if d > 1_000_000_000 {
            continue;
        }
        let better = match best {
            None => true,
            Some((bd, bt, _)) => d < bd || (d == bd && t < bt),
        };
        if better {
            best = Some((d, t, v));
        }
    }
    best.map(|(_, _, v)| v)
}

fn check(opts: FlightOptions, selection: Selection) -> Value {
    let source = memory(opts);
    let (dir, files) = export_to_dir(&source, Format::Igc, selection.clone(), options()).unwrap();
    assert_eq!(files[0].path, "aloft-glider-1.igc");
    let Some(read) = read_back(&dir.path().join("aloft-glider-1.igc")) else {
        return Value::Null;
    };
    assert_eq!(read["errors"], serde_json::json!({}), "{read}");
    assert_eq!(read["logger"]["manufacturer"], "XAL");
    assert_eq!(read["security"], serde_json::json!([]), "no G record");
    let h = &read["header"];
    assert_eq!(h["gnss_altitude"], "ELL");
    assert_eq!(h["pressure_altitude"], "ISA");
    assert_eq!(h["gps_datum"], "WGS-1984");
    assert_eq!(h["gps_manufacturer"], "u-blox NEO-M8N");
    assert_eq!(h["pressure_sensor_manufacturer"], "BME280");
    assert_eq!(h["pilot"], "not stated");
    assert_eq!(
        read["extensions"],
        serde_json::json!([
            {"bytes": [36, 38], "extension_type": "FXA"},
            {"bytes": [39, 40], "extension_type": "SIU"},
            {"bytes": [41, 45], "extension_type": "TAS"},
        ])
    );

    // What the hub holds for the selection: every GNSS fix with UTC, and the selected
    // static and pitot readings to look the nearest up in (thinned like the fixes).
    let picked = instants(&source, selection);
    let fixes: Vec<&Instant> = picked
        .iter()
        .filter(|i| i.sensor == "gps" && i.utc_ns.is_some())
        .collect();
    let got = read["fixes"].as_array().unwrap();
    assert_eq!(got.len(), fixes.len());
    let first_day = fixes[0].utc_ns.unwrap().div_euclid(86_400_000_000_000);
    let (y, m, d) = aloft_dataset::time::civil_from_days(first_day);
    assert_eq!(h["utc_date"], format!("{y:04}-{m:02}-{d:02}"));
    for (b, fix) in got.iter().zip(&fixes) {
        let utc = fix.utc_ns.unwrap();
        let whole_s = utc.div_euclid(1_000_000_000) * 1_000_000_000;
        let want_time = aloft_dataset::time::rfc3339_s(whole_s).replace('Z', "+00:00");
        assert_eq!(b["datetime"], want_time);
        let lat: f64 = b["lat"].as_str().unwrap().parse().unwrap();
        let lon: f64 = b["lon"].as_str().unwrap().parse().unwrap();
        let half_milliminute = 0.5 / 60_000.0 + 1e-12;
        assert!((lat - fix.get(Quantity::Latitude).unwrap().0).abs() <= half_milliminute);
        assert!((lon - fix.get(Quantity::Longitude).unwrap().0).abs() <= half_milliminute);
        assert_eq!(b["validity"], "A");
        let ell = fix.get(Quantity::AltitudeMsl).unwrap().0
            + fix.get(Quantity::GeoidSeparation).unwrap().0;
        assert_eq!(b["gps_alt"].as_i64().unwrap(), ell.round() as i64);
        let p = nearest(&picked, "static", Quantity::AirPressure, utc).unwrap();
        let isa = aloft_sensors::atmosphere::pressure_altitude_m(p);
        assert!(
            (b["pressure_alt"].as_f64().unwrap() - isa).abs() <= 0.5 + 1e-9,
            "{b} vs {isa}"
        );
        assert_eq!(b["FXA"], 5);
        assert_eq!(
            b["SIU"].as_f64().unwrap(),
            fix.get(Quantity::SatellitesUsed).unwrap().0
        );
        match nearest(&picked, "pitot", Quantity::TrueAirspeed, utc) {
            Some(tas) => assert_eq!(b["TAS"].as_i64().unwrap(), (tas * 360.0).round() as i64),
            None => assert_eq!(b["TAS"], Value::Null, "no pitot reading: no TAS, never 0"),
        }
    }
    read
}

#[test]
fn every_fix_reads_back_with_its_position_altitudes_and_extensions() {
    let read = check(flight(), Selection::default());
    if read.is_null() {
        return;
    }
    let fixes = read["fixes"].as_array().unwrap();
    // The pitot outage (30 s) leaves fixes without TAS, never with 0.
    // The pitot gives nothing from 100 s to 129 s: the fixes of 101 s to 128 s have no
    // reading within 1 s.
    let without_tas = fixes.iter().filter(|b| b["TAS"].is_null()).count();
    assert_eq!(without_tas, 28);
    // The glider climbs: the pressure altitude rises with the GNSS altitude.
    let alt = |b: &Value| b["pressure_alt"].as_i64().unwrap();
    assert!(alt(fixes.last().unwrap()) > alt(&fixes[0]));
}

#[test]
fn a_decimating_interval_writes_one_fix_per_interval() {
    let sel = Selection {
        resample: Some(Resample::Decimate {
            interval_ns: 10_000_000_000,
        }),
        ..Selection::default()
    };
    let read = check(flight(), sel);
    if read.is_null() {
        return;
    }
    assert!((28..=29).contains(&read["fixes"].as_array().unwrap().len()));
}

#[test]
fn a_flight_across_utc_midnight_keeps_the_first_date_and_wraps_the_times() {
    let start = aloft_dataset::time::parse_utc("2026-05-28T23:58:00Z").unwrap();
    let read = check(
        FlightOptions {
            start_utc_ns: start,
            duration_s: 240.0,
            ..flight()
        },
        Selection::default(),
    );
    if read.is_null() {
        return;
    }
    assert_eq!(read["header"]["utc_date"], "2026-05-28");
    let last = read["fixes"].as_array().unwrap().last().unwrap();
    assert!(
        last["datetime"]
            .as_str()
            .unwrap()
            .starts_with("2026-05-29T00:01"),
        "{last}"
    );
}

#[test]
fn no_fix_and_averaging_are_refused_with_what_to_do() {
    let source = memory(flight());
    let sel = Selection {
        sensors: vec!["static".to_owned()],
        ..Selection::default()
    };
    let e = export_to_dir(&source, Format::Igc, sel, options()).unwrap_err();
    assert!(
        e.is_request_error() && e.to_string().contains("GNSS fixes"),
        "{e}"
    );
    let sel = Selection {
        resample: Some(Resample::Mean {
            interval_ns: 1_000_000_000,
        }),
        ..Selection::default()
    };
    let e = export_to_dir(&source, Format::Igc, sel, options()).unwrap_err();
    assert!(
        e.is_request_error() && e.to_string().contains("decimat"),
        "{e}"
    );
}

#[test]
fn pilot_and_glider_from_the_metadata_are_in_the_header_and_hostile_text_is_made_safe() {
    let source = memory(FlightOptions {
        duration_s: 40.0,
        ..flight()
    });
    let mut opts = options();
    opts.metadata.pilot = "Jürgen Müller\r\nHFPLTPILOTINCHARGE:Someone Else".to_owned();
    opts.metadata.glider_type = "Stemme S12".to_owned();
    opts.metadata.glider_id = "D-KALO".to_owned();
    opts.metadata.competition_id = "AL".to_owned();
    let (dir, _) = export_to_dir(&source, Format::Igc, Selection::default(), opts).unwrap();
    let path = dir.path().join("aloft-glider-1.igc");
    let text = std::fs::read_to_string(&path).unwrap();
    assert!(
        text.lines()
            .all(|l| l.bytes().all(|b| (0x20..0x7f).contains(&b)))
    );
    assert_eq!(text.lines().filter(|l| l.starts_with("HFPLT")).count(), 1);
    let Some(read) = read_back(&path) else { return };
    assert_eq!(read["errors"], serde_json::json!({}), "{read}");
    assert_eq!(
        read["header"]["pilot"],
        "J_rgen M_ller__HFPLTPILOTINCHARGE:Someone Else"
    );
    assert_eq!(read["header"]["glider_model"], "Stemme S12");
    assert_eq!(read["header"]["glider_registration"], "D-KALO");
    assert_eq!(read["header"]["competition_id"], "AL");
}

#[test]
fn a_store_directory_gives_the_same_file_as_the_records_held_by_a_hub() {
    store_export_equals_memory_export(Format::Igc);
}

#[test]
fn the_sidecar_lists_the_readings_without_utc_as_left_out() {
    // The second boot's 10 static readings never got a time correlation.
    assert_eq!(
        without_utc_in_sidecar(Format::Igc),
        [("static".to_owned(), 10, false)]
    );
}
