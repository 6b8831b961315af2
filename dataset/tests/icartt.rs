//! ICARTT exports of the simulated flight, read back by the `icartt` package (PyPI): every
//! file, every variable and every value with UTC, the header's line count, the 16
//! normal-comment keywords in order, and the readings without UTC left out and listed.

#![allow(clippy::unwrap_used)]

mod track_common;

use std::collections::BTreeMap;

use aloft_dataset::formats::icartt::KEYWORDS;
use aloft_dataset::{Format, Selection};
use aloft_protocol::Quantity;
use aloft_test_support::flight::FlightOptions;
use aloft_test_support::python;
use serde_json::Value;
use track_common::*;

const READ_BACK: &str = r#"
import sys, os, glob, json, math, warnings
import numpy as np
import icartt

out = {}
for path in sorted(glob.glob(os.path.join(sys.argv[1], "*.ict"))):
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        ds = icartt.Dataset(path)
    complaints = [str(w.message) for w in caught if not issubclass(w.category, DeprecationWarning)]
    data = {}
    for name in ds.variables:
        column = np.atleast_1d(ds.data[name])
        # repr: the shortest text that parses back to the same float
        data[name] = [None if math.isnan(x) else repr(float(x)) for x in column]
    out[os.path.basename(path)] = {
        "complaints": complaints,
        "data_id": ds.dataID,
        "location_id": ds.locationID,
        "version": ds.version,
        "date": list(ds.dateOfCollection),
        "n_header": ds.nHeader,
        "n_header_file": ds.nHeaderFile,
        "revision": ds.revision,
        "pi": ds.PIName,
        "keywords": list(ds.normalComments.keywords.keys()),
        "units": {k: v.units for k, v in ds.variables.items()},
        "data": data,
    }
print(json.dumps(out))
"#;

fn read_back(dir: &std::path::Path) -> Option<BTreeMap<String, Value>> {
    let python = python::readers()?;
    let out = python::run(&python, READ_BACK, &[dir.as_os_str()]);
    Some(serde_json::from_str(&out.stdout).unwrap())
}

fn floats(v: &Value) -> Vec<Option<f64>> {
    v.as_array()
        .unwrap()
        .iter()
        .map(|x| x.as_str().map(|s| s.parse::<f64>().unwrap()))
        .collect()
}

fn check_against_source(opts: FlightOptions) {
    let source = memory(opts);
    let (dir, files) =
        export_to_dir(&source, Format::Icartt, Selection::default(), options()).unwrap();
    let Some(read) = read_back(dir.path()) else {
        return;
    };
    let all = instants(&source, Selection::default());
    let with_utc: Vec<_> = all.iter().filter(|i| i.utc_ns.is_some()).collect();
    let first = with_utc.iter().map(|i| i.utc_ns.unwrap()).min().unwrap();
    let day = first.div_euclid(86_400_000_000_000) * 86_400_000_000_000;
    let (y, m, d, ..) = aloft_dataset::time::civil(day / 1_000_000_000);
    let date = format!("{y:04}{m:02}{d:02}");

    let mut sensors: Vec<String> = with_utc.iter().map(|i| i.sensor.clone()).collect();
    sensors.sort();
    sensors.dedup();
    assert_eq!(sensors, ["cosmic", "gps", "pitot", "static"]);
    assert_eq!(read.len(), sensors.len(), "{:?}", read.keys());
    // The sidecar comes last and says what was left out.
    let sidecar: Value = serde_json::from_slice(
        &std::fs::read(dir.path().join(&files.last().unwrap().path)).unwrap(),
    )
    .unwrap();
    assert!(sidecar["readings_without_utc"].is_array(), "{sidecar}");

    for sensor in &sensors {
        let name = format!("{}_glider_{date}_RA.ict", sensor.to_uppercase());
        let f = read
            .get(&name)
            .unwrap_or_else(|| panic!("{name} not in {:?}", read.keys()));
        assert_eq!(f["complaints"], Value::Array(vec![]), "{name}");
        assert_eq!(f["data_id"], sensor.to_uppercase());
        assert_eq!(f["location_id"], "glider");
        assert_eq!(f["version"], "V02_2016");
        assert_eq!(f["n_header"], f["n_header_file"], "{name}");
        assert_eq!(f["revision"], "A");
        assert_eq!(f["date"], serde_json::json!([y, m, d]));
        assert_eq!(f["pi"], "Not stated, Not stated");
        let keywords: Vec<&str> = f["keywords"]
            .as_array()
            .unwrap()
            .iter()
            .map(|k| k.as_str().unwrap())
            .collect();
        assert_eq!(&keywords[..16], &KEYWORDS[..], "{name}");

        let mine: Vec<_> = with_utc.iter().filter(|i| &i.sensor == sensor).collect();
        let data = &f["data"];
        let times = floats(&data["Time_Start"]);
        assert_eq!(
            times.len(),
            mine.len(),
            "{name}: one row per instant with UTC"
        );
        let mut quantities: Vec<Quantity> = mine
            .iter()
            .flat_map(|i| i.values.iter().map(|v| v.0))
            .collect();
        quantities.sort();
        quantities.dedup();
        let units = &f["units"];
        for q in &quantities {
            let want = match q.unit().unwrap() {
                "1" => "none",
                u => u,
            };
            assert_eq!(units[q.to_string()], want, "{name} {q}");
        }
        for (row, i) in mine.iter().enumerate() {
            let t = times[row].unwrap();
            let want = (i.utc_ns.unwrap() - day) as f64 / 1e9;
            assert!((t - want).abs() <= 2e-9, "{name} row {row}: {t} vs {want}");
            for q in &quantities {
                let got = floats(&data[q.to_string()])[row];
                let flags = floats(&data[format!("{q}_flags")])[row];
                match i.get(*q) {
                    Some((v, quality)) => {
                        assert_eq!(got, Some(v), "{name} row {row} {q}");
                        assert_eq!(
                            flags,
                            Some(f64::from(quality.bits())),
                            "{name} row {row} {q}"
                        );
                    }
                    None => {
                        assert_eq!(got, None, "{name} row {row} {q}");
                        assert_eq!(flags, None);
                    }
                }
            }
            let source = floats(&data["time_source"])[row].unwrap();
            assert_eq!(
                source,
                f64::from(aloft_dataset::time::source_code(i.time_source))
            );
        }
    }
}

#[test]
fn every_sensor_file_reads_back_with_every_value_and_the_readings_without_utc_are_left_out() {
    check_against_source(flight());
    // The static sensor's readings before the first fix have reconstructed times, flagged 3;
    // the second boot's have none and are in no file.
    let source = memory(flight());
    let (dir, _) = export_to_dir(&source, Format::Icartt, Selection::default(), options()).unwrap();
    let Some(read) = read_back(dir.path()) else {
        return;
    };
    let st = read
        .iter()
        .find(|(k, _)| k.starts_with("STATIC_"))
        .unwrap()
        .1;
    let sources = floats(&st["data"]["time_source"]);
    assert!(sources.contains(&Some(3.0)) && sources.contains(&Some(1.0)));
    assert_eq!(
        sources.len(),
        300,
        "the second boot's 10 readings are left out"
    );
    let pitot = read
        .iter()
        .find(|(k, _)| k.starts_with("PITOT_"))
        .unwrap()
        .1;
    assert_eq!(
        floats(&pitot["data"]["Time_Start"]).len(),
        270,
        "30 s of outage"
    );
}

#[test]
fn a_flight_across_utc_midnight_keeps_counting_past_86400_seconds() {
    // 2026-05-28T23:58:00Z.
    let start = aloft_dataset::time::parse_utc("2026-05-28T23:58:00Z").unwrap();
    let opts = FlightOptions {
        start_utc_ns: start,
        duration_s: 240.0,
        ..flight()
    };
    check_against_source(opts.clone());
    let source = memory(opts);
    let (dir, _) = export_to_dir(&source, Format::Icartt, Selection::default(), options()).unwrap();
    let Some(read) = read_back(dir.path()) else {
        return;
    };
    let gps = read.get("GPS_glider_20260528_RA.ict").unwrap();
    let times = floats(&gps["data"]["Time_Start"]);
    assert!(
        times.last().unwrap().unwrap() > 86_400.0,
        "{:?}",
        times.last()
    );
    assert!(times.windows(2).all(|w| w[0] < w[1]));
}

#[test]
fn a_selection_without_any_utc_is_refused_by_name() {
    let source = memory(flight());
    // Only the uncorrelated second boot's time: no reading with UTC can match a time range
    // before the flight, so select a range that holds nothing.
    let sel = Selection {
        sensors: vec!["static".to_owned()],
        from_utc_ns: Some(0),
        to_utc_ns: Some(1),
        ..Selection::default()
    };
    let e = export_to_dir(&source, Format::Icartt, sel, options()).unwrap_err();
    assert!(e.is_request_error(), "{e}");
    assert!(e.to_string().contains("ICARTT"), "{e}");
}

#[test]
fn metadata_with_line_breaks_and_commas_keeps_the_header_intact() {
    let source = memory(FlightOptions {
        duration_s: 40.0,
        ..flight()
    });
    let mut opts = options();
    opts.metadata.principal_investigator = "O'Brien, Ann\r\nInjected: line".to_owned();
    opts.metadata.institution = "Lab, Dept.\nOTHER_COMMENTS: fake".to_owned();
    opts.metadata.project = "WAVE\t2026".to_owned();
    let (dir, _) = export_to_dir(&source, Format::Icartt, Selection::default(), opts).unwrap();
    let Some(read) = read_back(dir.path()) else {
        return;
    };
    for (name, f) in &read {
        assert_eq!(f["complaints"], Value::Array(vec![]), "{name}");
        assert_eq!(f["n_header"], f["n_header_file"], "{name}");
        assert_eq!(f["pi"], "O'Brien, Ann  Injected: line");
    }
}

#[test]
fn a_store_directory_gives_the_same_files_as_the_records_held_by_a_hub() {
    store_export_equals_memory_export(Format::Icartt);
}

#[test]
fn the_sidecar_lists_the_readings_without_utc_as_left_out() {
    // The second boot's 10 static readings never got a time correlation.
    assert_eq!(
        without_utc_in_sidecar(Format::Icartt),
        [("static".to_owned(), 10, false)]
    );
}

#[test]
fn a_time_that_goes_back_across_store_epochs_is_said_in_a_special_comment() {
    use aloft_dataset::Completeness;
    use aloft_dataset::source::MemorySource;
    use aloft_protocol::StoreEpoch;
    use aloft_test_support::flight::FlightRecords;
    // A replaced SD card: the second epoch holds an earlier flight of the same day.
    let later = FlightOptions {
        duration_s: 40.0,
        ..FlightOptions::default()
    };
    let earlier = FlightOptions {
        start_utc_ns: later.start_utc_ns - 3_600_000_000_000,
        ..later.clone()
    };
    let mut records = Vec::new();
    for (epoch, opts) in [(StoreEpoch([1; 16]), later), (StoreEpoch([2; 16]), earlier)] {
        records.extend(
            FlightRecords::new(opts)
                .enumerate()
                .map(|(i, r)| (epoch, i as u64, r)),
        );
    }
    let source = MemorySource::new(records, Completeness::default());
    let (dir, _) = export_to_dir(&source, Format::Icartt, Selection::default(), options()).unwrap();
    let gps = files(dir.path())
        .into_iter()
        .find(|(n, _)| n.starts_with("GPS_"))
        .unwrap();
    let text = String::from_utf8(gps.1).unwrap();
    assert!(text.contains("Time_Start goes back 1 times"), "{text}");
    let Some(read) = read_back(dir.path()) else {
        return;
    };
    for (name, f) in &read {
        assert_eq!(f["complaints"], Value::Array(vec![]), "{name}");
        assert_eq!(f["n_header"], f["n_header_file"], "{name}");
    }
    assert_eq!(floats(&read[&gps.0]["data"]["Time_Start"]).len(), 40);
}

proptest::proptest! {
    #![proptest_config(proptest::prelude::ProptestConfig::with_cases(24))]

    #[test]
    fn any_metadata_keeps_the_header_line_count_exact(
        pi in proptest::prelude::any::<String>(),
        institution in "\\PC*",
        project in proptest::prelude::any::<String>(),
        platform in proptest::prelude::any::<String>(),
    ) {
        let source = memory(FlightOptions { duration_s: 22.0, ..flight() });
        let mut opts = options();
        opts.metadata.principal_investigator = pi;
        opts.metadata.institution = institution;
        opts.metadata.project = project;
        opts.metadata.platform = platform;
        let (dir, files) = export_to_dir(&source, Format::Icartt, Selection::default(), opts).unwrap();
        for f in files.iter().filter(|f| f.format == "icartt") {
            proptest::prop_assert!(f.path.len() <= 127 && f.path.bytes().all(|b| b.is_ascii_alphanumeric() || b"-_.".contains(&b)), "{}", f.path);
            let text = std::fs::read_to_string(dir.path().join(&f.path)).unwrap();
            let lines: Vec<&str> = text.split('\n').collect();
            let n: usize = lines[0].split(',').next().unwrap().trim().parse().unwrap();
            // The last header line names the variables; the first data line follows.
            proptest::prop_assert!(lines[n - 1].starts_with("Time_Start, "), "{}", lines[n - 1]);
            proptest::prop_assert!(lines[n].starts_with(|c: char| c.is_ascii_digit()), "{}", lines[n]);
            // The normal comments' count matches the lines from the keywords to the names.
            let k = lines.iter().position(|l| l.starts_with("PI_CONTACT_INFO: ")).unwrap();
            let count: usize = lines[k - 1].trim().parse().unwrap();
            proptest::prop_assert_eq!(k - 1 + count, n - 1);
        }
    }
}

#[test]
fn an_averaged_selection_says_so_and_has_one_row_per_interval() {
    use aloft_dataset::Resample;
    let source = memory(flight());
    let sel = Selection {
        resample: Some(Resample::Mean {
            interval_ns: 10_000_000_000,
        }),
        ..Selection::default()
    };
    let (dir, _) = export_to_dir(&source, Format::Icartt, sel, options()).unwrap();
    let all = files(dir.path());
    let (name, bytes) = all.iter().find(|(n, _)| n.starts_with("STATIC_")).unwrap();
    let text = std::str::from_utf8(bytes).unwrap();
    assert!(
        text.contains("averaged: the arithmetic mean over each 10 s interval"),
        "{text}"
    );
    let Some(read) = read_back(dir.path()) else {
        return;
    };
    let f = &read[name];
    assert_eq!(f["complaints"], Value::Array(vec![]));
    let times = floats(&f["data"]["Time_Start"]);
    // 300 s of static readings with UTC, in 10 s intervals aligned to the Unix epoch.
    assert!((30..=31).contains(&times.len()), "{}", times.len());
    assert!(
        times
            .windows(2)
            .all(|w| w[1].unwrap() - w[0].unwrap() == 10.0)
    );
}
