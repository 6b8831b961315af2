//! Power steps in exports: the simulated flight crosses two steps and recovers; the
//! sidecar lists each step with its UTC, level, reason and effects by sensor name, the
//! package README says the same in words, and pandas reading the CSV beside the sidecar
//! finds that the sensors went quiet or slowed exactly while the steps said so. Damaged or
//! hostile power step records are skipped and counted, never a panic.

#![allow(clippy::unwrap_used)]

use aloft_dataset::catalog::Catalog;
use aloft_dataset::source::MemorySource;
use aloft_dataset::{Completeness, Dataset, DirOutput, ExportOptions, Format, Selection, export};
use aloft_protocol::{
    Boot, BootId, ExtensionRecord, POWER_STEP_RECORD_KIND, PowerEffect, PowerStepRecord, Record,
    SensorId, StoreEpoch, TimeCorrelation, TimeSource, Timestamp,
};
use aloft_test_support::flight::{FlightOptions, FlightRecords, POWER_STEPS};
use aloft_test_support::python;
use proptest::prelude::*;
use serde_json::Value;

const NODE: &str = "glider-1";
const EPOCH: StoreEpoch = StoreEpoch([5; 16]);

fn flight() -> MemorySource {
    let records: Vec<(StoreEpoch, u64, Record)> = FlightRecords::new(FlightOptions {
        duration_s: 600.0,
        power_steps: true,
        ..FlightOptions::default()
    })
    .enumerate()
    .map(|(i, r)| (EPOCH, i as u64, r))
    .collect();
    MemorySource::new(records, Completeness::default())
}

fn export_to(source: &MemorySource, format: Format, dir: &std::path::Path) -> Value {
    let options = ExportOptions::new(NODE, 1_790_000_000_000_000_000);
    let ds = Dataset::open(source, NODE, Selection::default(), options).unwrap();
    let mut out = DirOutput::new(dir, false).unwrap();
    export(&ds, format, &mut out).unwrap();
    out.commit().unwrap();
    let sidecar = std::fs::read_to_string(dir.join(format!("aloft-{NODE}.sidecar.json")))
        .or_else(|_| {
            // The stem's default when the options name none.
            let found = std::fs::read_dir(dir)
                .unwrap()
                .flatten()
                .map(|e| e.path())
                .find(|p| p.to_string_lossy().ends_with(".sidecar.json"))
                .unwrap();
            std::fs::read_to_string(found)
        })
        .unwrap();
    serde_json::from_str(&sidecar).unwrap()
}

#[test]
fn the_sidecar_lists_every_step_with_its_utc_level_reason_and_effects_by_name() {
    let dir = tempfile::tempdir().unwrap();
    let sidecar = export_to(&flight(), Format::Csv, dir.path());
    let steps = sidecar["power_steps"].as_array().unwrap();
    assert_eq!(steps.len(), POWER_STEPS.len());
    assert_eq!(sidecar["power_steps_damaged"], 0);
    let start = FlightOptions::default().start_utc_ns;
    for (shown, truth) in steps.iter().zip(POWER_STEPS) {
        assert_eq!(shown["step"], truth.step);
        assert_eq!(shown["level"], truth.level);
        assert_eq!(shown["reason"], truth.reason);
        assert_eq!(
            shown["upload_bytes_per_s"].as_u64(),
            truth.upload_bytes_per_s
        );
        // UTC by the dataset's one definition: the step carried system-clock UTC.
        let utc = start + (truth.at * 600.0 * 1e9).round() as i64;
        assert_eq!(
            shown["time"].as_str().unwrap(),
            aloft_dataset::time::rfc3339_ns(utc)
        );
        assert_eq!(shown["time_source"], "system_clock");
        let effects = shown["effects"].as_array().unwrap();
        let by_name = |name: &str| effects.iter().find(|e| e["sensor"] == name);
        match truth.pitot_interval_ms {
            Some(ms) => assert_eq!(by_name("pitot").unwrap()["interval_ms"], ms),
            None => assert!(by_name("pitot").is_none()),
        }
        assert_eq!(
            by_name("cosmic").is_some_and(|e| e["disabled"] == true),
            truth.cosmic_disabled
        );
        if truth.cosmic_disabled {
            let gps = by_name("gps").unwrap();
            assert_eq!(gps["overridden"], true);
            assert_eq!(gps["disabled"], false);
        }
    }
}

#[test]
fn the_package_readme_says_why_a_sensor_went_quiet() {
    let dir = tempfile::tempdir().unwrap();
    export_to(&flight(), Format::Package, dir.path());
    let readme = std::fs::read_to_string(dir.path().join("README.md")).unwrap();
    let section = readme.split("## Power steps").nth(1).unwrap();
    for step in POWER_STEPS {
        assert!(section.contains(step.reason), "{}: {section}", step.reason);
    }
    assert!(section.contains("survival (level 2)"), "{section}");
    assert!(section.contains("cosmic stopped"), "{section}");
    assert!(section.contains("pitot at most every 5000 ms"), "{section}");
    assert!(
        section.contains("gps at most every 10000 ms (exempted by the operator: not applied)"),
        "{section}"
    );
    assert!(section.contains("upload budget 5000 bytes/s"), "{section}");
}

/// pandas reads the CSV, Python's json the sidecar: between a step that stops a sensor and
/// the next step, that sensor has no row; under a step that slows a sensor, its rows are
/// at least the step's interval apart; the sensors the steps never touched keep their rate;
/// after the last step (full power) every sensor is back.
const CROSS_CHECK: &str = r#"
import json, sys
import pandas as pd
csv_path, sidecar_path = sys.argv[1], sys.argv[2]
sidecar = json.load(open(sidecar_path))
steps = sidecar["power_steps"]
assert [s["level"] for s in steps] == [1, 2, 1, 0], steps
frame = pd.read_csv(csv_path, keep_default_na=False)
frame = frame[frame["time_utc"] != ""].copy()
frame["t"] = pd.to_datetime(frame["time_utc"], utc=True, format="ISO8601")
ends = [pd.to_datetime(s["time"], utc=True, format="ISO8601") for s in steps[1:]] + [frame["t"].max() + pd.Timedelta(seconds=1)]
checked = 0
for step, end in zip(steps, ends):
    begin = pd.to_datetime(step["time"], utc=True, format="ISO8601")
    inside = frame[(frame["t"] >= begin) & (frame["t"] < end)]
    for effect in step["effects"]:
        if effect["overridden"]:
            continue
        rows = inside[inside["sensor"] == effect["sensor"]]
        if effect["disabled"]:
            assert len(rows) == 0, (step["step"], effect, len(rows))
            checked += 1
        elif effect["interval_ms"] is not None:
            times = rows[rows["quantity"] == "differential_pressure"]["t"].sort_values()
            gaps = times.diff().dropna().dt.total_seconds()
            assert len(gaps) > 0 and gaps.min() >= effect["interval_ms"] / 1000 - 1e-6, (step["step"], gaps.min())
            checked += 1
    if step["level"] == 0:
        for sensor in ["gps", "static", "pitot", "cosmic"]:
            assert len(inside[inside["sensor"] == sensor]) > 0, sensor
    static = inside[(inside["sensor"] == "static") & (inside["quantity"] == "air_pressure")]
    span = (end - begin).total_seconds()
    assert abs(len(static) - span) <= 2 or step is steps[-1], (step["step"], len(static), span)
assert checked == 4, checked
print("ok", checked)
"#;

#[test]
fn pandas_finds_the_sensors_quiet_and_slow_exactly_while_the_steps_say() {
    let Some(python) = python::readers() else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    export_to(&flight(), Format::Csv, dir.path());
    let find = |suffix: &str| {
        std::fs::read_dir(dir.path())
            .unwrap()
            .flatten()
            .map(|e| e.path())
            .find(|p| p.to_string_lossy().ends_with(suffix))
            .unwrap()
    };
    let csv = find(".csv");
    let sidecar = find(".sidecar.json");
    let out = python::run(
        &python,
        CROSS_CHECK,
        &[csv.as_os_str(), sidecar.as_os_str()],
    );
    assert!(out.stdout.starts_with("ok 4"), "{}", out.stdout);
}

/// An export of a time range lists the step in force when the range begins and the ones
/// that took effect inside it, not the node's whole history.
#[test]
fn a_time_range_keeps_the_step_in_force_at_its_start_and_the_ones_inside() {
    let source = flight();
    let start = FlightOptions::default().start_utc_ns;
    let at = |fraction: f64| start + (fraction * 600.0 * 1e9).round() as i64;
    let names = |selection: Selection| -> Vec<String> {
        let options = ExportOptions::new(NODE, 1_790_000_000_000_000_000);
        let ds = Dataset::open(&source, NODE, selection, options).unwrap();
        ds.catalog
            .power_steps
            .iter()
            .map(|p| format!("{}@{}", p.step, p.level))
            .collect()
    };
    let all: Vec<String> = POWER_STEPS
        .iter()
        .map(|p| format!("{}@{}", p.step, p.level))
        .collect();
    assert_eq!(names(Selection::default()), all);
    // From just after the second step to just after the third: the second was in force at
    // the start, the third took effect inside.
    let second = POWER_STEPS[1].at;
    let third = POWER_STEPS[2].at;
    let range = Selection {
        from_utc_ns: Some(at(second) + 1_000_000_000),
        to_utc_ns: Some(at(third) + 1_000_000_000),
        ..Selection::default()
    };
    assert_eq!(names(range), all[1..3]);
    // A range that ends before the first step: none held.
    let before = Selection {
        to_utc_ns: Some(at(POWER_STEPS[0].at) - 1_000_000_000),
        ..Selection::default()
    };
    assert!(names(before).is_empty());
    // A range that starts after the last step: only the last, still in force.
    let after = Selection {
        from_utc_ns: Some(at(POWER_STEPS[3].at) + 1_000_000_000),
        ..Selection::default()
    };
    assert_eq!(names(after), all[3..]);
}

fn step(time: Timestamp, effects: Vec<PowerEffect>) -> PowerStepRecord {
    PowerStepRecord {
        time,
        step: "economy".into(),
        level: 1,
        reason: "battery voltage 13.9 V below 14.0 V".into(),
        effects,
        upload_bytes_per_s: None,
    }
}

fn extension(record: &PowerStepRecord) -> Record {
    Record::Extension(ExtensionRecord {
        kind: POWER_STEP_RECORD_KIND,
        body: postcard::to_allocvec(record).unwrap(),
    })
}

#[test]
fn a_step_without_utc_gets_its_boots_reconstructed_utc_from_a_later_correlation() {
    let boot = BootId([9; 16]);
    let records = vec![
        Record::Boot(Boot {
            boot_id: boot,
            mono_ns: 1_000,
            utc_ns: None,
            agent_version: "0.1.0".into(),
        }),
        extension(&step(
            Timestamp::monotonic(2_000_000_000),
            vec![PowerEffect {
                sensor: SensorId(7),
                interval_ms: None,
                disabled: true,
                overridden: false,
            }],
        )),
        Record::TimeCorrelation(TimeCorrelation {
            boot_id: boot,
            mono_ns: 3_000_000_000,
            utc_ns: 1_790_000_003_000_000_000,
            source: TimeSource::Gnss,
            uncertainty_ns: None,
        }),
    ];
    let source = MemorySource::new(
        records
            .into_iter()
            .enumerate()
            .map(|(i, r)| (EPOCH, i as u64, r))
            .collect(),
        Completeness::default(),
    );
    let catalog = Catalog::scan(&source).unwrap();
    assert_eq!(catalog.power_steps.len(), 1);
    let shown = &catalog.power_steps[0];
    assert_eq!(shown.time_source, "reconstructed");
    assert_eq!(shown.utc_ns, Some(1_790_000_002_000_000_000));
    assert_eq!(shown.mono_ns, 2_000_000_000);
    // A sensor no descriptor named is shown as the hub shows it.
    assert_eq!(shown.effects[0].sensor, "sensor-7");
    assert!(shown.effects[0].disabled);
}

fn hostile_body() -> impl Strategy<Value = Vec<u8>> {
    prop_oneof![
        prop::collection::vec(any::<u8>(), 0..64),
        // A valid record's bytes cut short or with a byte flipped.
        (any::<usize>(), any::<u8>(), "\\PC{0,40}").prop_map(|(at, flip, reason)| {
            let mut record = step(
                Timestamp::monotonic(5),
                vec![PowerEffect {
                    sensor: SensorId(1),
                    interval_ms: Some(1),
                    disabled: false,
                    overridden: false,
                }],
            );
            record.reason = reason;
            let mut body = postcard::to_allocvec(&record).unwrap();
            let i = at % body.len();
            if flip == 0 {
                body.truncate(i);
            } else {
                body[i] ^= flip;
            }
            body
        }),
        // Lengths that claim far more than the body holds.
        Just(vec![0, 0xFF, 0xFF, 0xFF, 0xFF, 0x0F]),
        Just(vec![5, 0xFF, 0xFF, 0xFF, 0xFF, 0x0F, b'a']),
    ]
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    /// Any body under the power step kind, and under other extension kinds, between good
    /// steps: the catalog and every export finish; a body that does not decode is counted,
    /// one that does is listed, other kinds are left alone.
    #[test]
    fn hostile_power_step_bodies_are_skipped_and_counted_never_a_panic(
        bodies in prop::collection::vec((hostile_body(), prop_oneof![Just(POWER_STEP_RECORD_KIND), any::<u16>()]), 1..6),
    ) {
        let good = extension(&step(Timestamp::monotonic(1), vec![]));
        let mut records = vec![good.clone()];
        let mut damaged = 0;
        let mut decoded = 1;
        for (body, kind) in &bodies {
            if *kind == POWER_STEP_RECORD_KIND {
                match postcard::from_bytes::<PowerStepRecord>(body) {
                    Ok(_) => decoded += 1,
                    Err(_) => damaged += 1,
                }
            }
            records.push(Record::Extension(ExtensionRecord { kind: *kind, body: body.clone() }));
        }
        records.push(good);
        decoded += 1;
        let source = MemorySource::new(
            records.into_iter().enumerate().map(|(i, r)| (EPOCH, i as u64, r)).collect(),
            Completeness::default(),
        );
        let catalog = Catalog::scan(&source).unwrap();
        prop_assert_eq!(catalog.damaged_power_steps, damaged);
        prop_assert_eq!(catalog.power_steps.len(), decoded);
        let dir = tempfile::tempdir().unwrap();
        let sidecar = export_to(&source, Format::Csv, dir.path());
        prop_assert_eq!(sidecar["power_steps_damaged"].as_u64(), Some(damaged));
    }
}

/// The `icartt` package (PyPI) reads every file of an export of the flight with power
/// steps: the header's line count stays exact and its special comments are printed.
const ICARTT_SPECIAL: &str = r#"
import sys, os, glob, json, warnings
import icartt
out = {}
for path in sorted(glob.glob(os.path.join(sys.argv[1], "*.ict"))):
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        ds = icartt.Dataset(path)
    out[os.path.basename(path)] = {
        "complaints": [str(w.message) for w in caught if not issubclass(w.category, DeprecationWarning)],
        "n_header": ds.nHeader,
        "n_header_file": ds.nHeaderFile,
        "special": [str(c) for c in ds.specialComments],
    }
print(json.dumps(out))
"#;

#[test]
fn icartt_files_of_a_sensor_a_step_touched_say_so_in_special_comments() {
    let dir = tempfile::tempdir().unwrap();
    export_to(&flight(), Format::Icartt, dir.path());
    let file = |prefix: &str| {
        std::fs::read_dir(dir.path())
            .unwrap()
            .flatten()
            .map(|e| e.path())
            .find(|p| {
                p.file_name()
                    .unwrap()
                    .to_string_lossy()
                    .to_uppercase()
                    .starts_with(prefix)
            })
            .unwrap_or_else(|| panic!("no {prefix} file"))
    };
    let cosmic = std::fs::read_to_string(file("COSMIC")).unwrap();
    assert!(
        cosmic.contains("Power step survival (level 2) from 2026-05-28T"),
        "{cosmic:.3000}"
    );
    assert!(cosmic.contains("; this sensor stopped"), "{cosmic:.3000}");
    assert!(
        cosmic.contains("Power step full (level 0)") && cosmic.contains("back to its desired rate"),
        "{cosmic:.3000}"
    );
    let gps = std::fs::read_to_string(file("GPS")).unwrap();
    assert!(gps.contains("exempted by the operator"), "{gps:.3000}");
    // The static port was never touched: no special comment at all.
    let static_port = std::fs::read_to_string(file("STATIC")).unwrap();
    assert!(!static_port.contains("Power step"), "{static_port:.3000}");

    let Some(python) = python::readers() else {
        return;
    };
    let out = python::run(&python, ICARTT_SPECIAL, &[dir.path().as_os_str()]);
    let read: serde_json::Map<String, Value> = serde_json::from_str(&out.stdout).unwrap();
    assert_eq!(read.len(), 4, "{read:?}");
    for (name, f) in &read {
        assert_eq!(f["complaints"], Value::Array(vec![]), "{name}");
        assert_eq!(f["n_header"], f["n_header_file"], "{name}");
        let special = f["special"].as_array().unwrap();
        let upper = name.to_uppercase();
        let expected = if upper.starts_with("COSMIC") {
            3 // survival stops it, economy and full let it run again
        } else if upper.starts_with("PITOT") {
            4
        } else if upper.starts_with("GPS") {
            3
        } else {
            0
        };
        assert_eq!(special.len(), expected, "{name}: {special:?}");
    }
}

const NETCDF_STEPS: &str = r#"
import sys, json
import netCDF4
ds = netCDF4.Dataset(sys.argv[1])
print(json.dumps(ds.getncattr("aloft_power_steps").split("\n")))
"#;

#[test]
fn netcdf_carries_the_steps_in_a_global_attribute_netcdf4_reads_and_cf_accepts() {
    let dir = tempfile::tempdir().unwrap();
    export_to(&flight(), Format::NetCdf, dir.path());
    let file = std::fs::read_dir(dir.path())
        .unwrap()
        .flatten()
        .map(|e| e.path())
        .find(|p| p.extension().is_some_and(|x| x == "nc"))
        .unwrap();
    let Some(python) = python::readers() else {
        return;
    };
    let out = python::run(&python, NETCDF_STEPS, &[file.as_os_str()]);
    let lines: Vec<String> = serde_json::from_str(&out.stdout).unwrap();
    assert_eq!(lines.len(), POWER_STEPS.len(), "{lines:?}");
    for (line, step) in lines.iter().zip(POWER_STEPS) {
        assert!(
            line.contains(&format!(
                "{} (level {}): {}",
                step.step, step.level, step.reason
            )),
            "{line}"
        );
    }
    assert!(lines[1].contains("cosmic stopped"), "{}", lines[1]);
    assert!(
        lines[1].contains("gps exempted by the operator"),
        "{}",
        lines[1]
    );
    assert!(
        lines[0].contains("pitot every 5000 ms at most"),
        "{}",
        lines[0]
    );

    // The IOOS compliance-checker (CF 1.8) finds nothing of high priority.
    let checker = python.with_file_name("compliance-checker");
    let report = tempfile::NamedTempFile::new().unwrap();
    let run = std::process::Command::new(&checker)
        .args(["--test=cf:1.8", "--format=json", "-o"])
        .arg(report.path())
        .arg(&file)
        .output()
        .unwrap_or_else(|e| panic!("cannot run {}: {e}", checker.display()));
    let json: Value = serde_json::from_slice(&std::fs::read(report.path()).unwrap())
        .unwrap_or_else(|e| panic!("no report ({e}): {}", String::from_utf8_lossy(&run.stderr)));
    let high = &json["cf:1.8"]["high_priorities"];
    let failures: Vec<&Value> = high
        .as_array()
        .unwrap()
        .iter()
        .filter(|r| !r["msgs"].as_array().unwrap().is_empty())
        .collect();
    assert!(failures.is_empty(), "{failures:?}");
}
